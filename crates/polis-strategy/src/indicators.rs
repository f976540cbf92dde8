//! Incremental indicators that reproduce TA-Lib's numbers bar by bar.
//!
//! Each indicator takes one bar at a time in O(1) and returns `None` until
//! the bar at which TA-Lib's function returns its first value (its
//! *lookback*), then TA-Lib's value. Matching TA-Lib means more than its
//! formulas: the same seeding (an EMA starts from the SMA of its first `n`
//! inputs; MACD's fast EMA is seeded from the `fast` bars that end where the
//! slow EMA starts), the same running sums, and the same order of floating
//! point operations, so that the results agree to the last few bits rather
//! than drifting apart. Each type names the TA-Lib C function it follows
//! (`ta_SMA.c`, `ta_EMA.c`, `ta_MACD.c`, `ta_RSI.c`, `ta_ATR.c`,
//! `ta_BBANDS.c`, TA-Lib 0.6, default compatibility, no unstable period).

use std::collections::VecDeque;

/// TA-Lib's `TA_IS_ZERO`: within 1e-8 of zero.
fn ta_is_zero(v: f64) -> bool {
    -0.000_000_01 < v && v < 0.000_000_01
}

/// Simple moving average (`TA_SMA`): first value at bar `n - 1`.
///
/// TA-Lib keeps a running total that, between bars, holds the newest
/// `n - 1` inputs: each bar adds its input, divides, then drops the oldest.
#[derive(Debug, Clone)]
pub struct Sma {
    n: usize,
    window: VecDeque<f64>,
    total: f64,
}

impl Sma {
    /// An SMA over `n >= 1` bars.
    pub fn new(n: usize) -> Sma {
        Sma { n, window: VecDeque::with_capacity(n + 1), total: 0.0 }
    }

    /// Adds a bar.
    pub fn push(&mut self, x: f64) -> Option<f64> {
        self.total += x;
        self.window.push_back(x);
        if self.window.len() < self.n {
            return None;
        }
        let out = self.total / self.n as f64;
        if let Some(trailing) = self.window.pop_front() {
            self.total -= trailing;
        }
        Some(out)
    }
}

/// Exponential moving average (`TA_EMA`), `k = 2 / (n + 1)`, seeded with
/// the SMA of its first `n` inputs: first value at bar `n - 1`.
#[derive(Debug, Clone)]
pub struct Ema {
    n: usize,
    k: f64,
    seen: usize,
    seed_total: f64,
    value: Option<f64>,
}

impl Ema {
    /// An EMA over `n >= 1` bars.
    pub fn new(n: usize) -> Ema {
        Ema { n, k: 2.0 / ((n + 1) as f64), seen: 0, seed_total: 0.0, value: None }
    }

    /// An EMA that starts from `seed` (already TA-Lib's first value).
    fn seeded(n: usize, seed: f64) -> Ema {
        Ema { value: Some(seed), seen: n, ..Ema::new(n) }
    }

    /// Adds a bar.
    pub fn push(&mut self, x: f64) -> Option<f64> {
        let next = match self.value {
            Some(prev) => ((x - prev) * self.k) + prev,
            None => {
                self.seed_total += x;
                self.seen += 1;
                if self.seen < self.n {
                    return None;
                }
                self.seed_total / self.n as f64
            }
        };
        self.value = Some(next);
        Some(next)
    }
}

/// MACD line, signal and histogram (`TA_MACD`), first values at bar
/// `slow - 1 + signal - 1` (33 for 12, 26, 9).
///
/// TA-Lib starts both EMAs at bar `slow - 1`: the slow one from the SMA of
/// bars `0..slow`, the fast one from the SMA of the `fast` bars that end
/// there (not from bar 0), and the signal EMA from the SMA of the first
/// `signal` MACD values. This keeps the last `fast` inputs until then.
#[derive(Debug, Clone)]
pub struct Macd {
    fast_n: usize,
    slow: Ema,
    recent: VecDeque<f64>,
    fast: Option<Ema>,
    signal: Ema,
}

/// One bar's MACD outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacdValue {
    /// Fast EMA minus slow EMA.
    pub macd: f64,
    /// EMA of the MACD line.
    pub signal: f64,
    /// MACD minus signal.
    pub hist: f64,
}

impl Macd {
    /// MACD with these periods; like TA-Lib, swaps fast and slow when fast
    /// is the longer.
    pub fn new(fast: usize, slow: usize, signal: usize) -> Macd {
        let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
        Macd {
            fast_n: fast,
            slow: Ema::new(slow),
            recent: VecDeque::with_capacity(fast + 1),
            fast: None,
            signal: Ema::new(signal),
        }
    }

    /// Adds a bar.
    pub fn push(&mut self, x: f64) -> Option<MacdValue> {
        let slow = self.slow.push(x);
        let fast = match &mut self.fast {
            Some(fast) => fast.push(x),
            None => {
                self.recent.push_back(x);
                if self.recent.len() > self.fast_n {
                    self.recent.pop_front();
                }
                slow?;
                // TA_INT_EMA's seed: a plain sum of the window, in order.
                let mut total = 0.0;
                for v in &self.recent {
                    total += v;
                }
                let seed = total / self.fast_n as f64;
                self.fast = Some(Ema::seeded(self.fast_n, seed));
                self.recent = VecDeque::new();
                Some(seed)
            }
        };
        let macd = fast? - slow?;
        let signal = self.signal.push(macd)?;
        Some(MacdValue { macd, signal, hist: macd - signal })
    }
}

/// Wilder's RSI (`TA_RSI`): first value at bar `n`.
#[derive(Debug, Clone)]
pub struct Rsi {
    n: usize,
    prev: Option<f64>,
    diffs: usize,
    gain: f64,
    loss: f64,
}

impl Rsi {
    /// An RSI over `n >= 2` bars.
    pub fn new(n: usize) -> Rsi {
        Rsi { n, prev: None, diffs: 0, gain: 0.0, loss: 0.0 }
    }

    /// Adds a bar.
    pub fn push(&mut self, x: f64) -> Option<f64> {
        let prev = self.prev.replace(x)?;
        let d = x - prev;
        let n = self.n as f64;
        if self.diffs < self.n {
            if d < 0.0 {
                self.loss -= d;
            } else {
                self.gain += d;
            }
            self.diffs += 1;
            if self.diffs < self.n {
                return None;
            }
        } else {
            let m = (self.n - 1) as f64;
            self.loss *= m;
            self.gain *= m;
            if d < 0.0 {
                self.loss -= d;
            } else {
                self.gain += d;
            }
        }
        self.loss /= n;
        self.gain /= n;
        let total = self.gain + self.loss;
        Some(if ta_is_zero(total) { 0.0 } else { 100.0 * (self.gain / total) })
    }
}

/// TA-Lib's true range (`TA_TRANGE`) of a bar after `prev_close`.
pub fn true_range(high: f64, low: f64, prev_close: f64) -> f64 {
    let mut greatest = high - low;
    let v2 = (prev_close - high).abs();
    if v2 > greatest {
        greatest = v2;
    }
    let v3 = (prev_close - low).abs();
    if v3 > greatest {
        greatest = v3;
    }
    greatest
}

/// Wilder's average true range (`TA_ATR`): first value at bar `n`, the
/// mean of the first `n` true ranges (bars `1..=n`), then Wilder smoothing.
#[derive(Debug, Clone)]
pub struct Atr {
    n: usize,
    prev_close: Option<f64>,
    seen: usize,
    total: f64,
    value: Option<f64>,
}

impl Atr {
    /// An ATR over `n >= 2` bars.
    pub fn new(n: usize) -> Atr {
        Atr { n, prev_close: None, seen: 0, total: 0.0, value: None }
    }

    /// Adds a bar.
    pub fn push(&mut self, high: f64, low: f64, close: f64) -> Option<f64> {
        let prev_close = self.prev_close.replace(close)?;
        let tr = true_range(high, low, prev_close);
        let n = self.n as f64;
        let next = match self.value {
            Some(prev) => ((prev * (n - 1.0)) + tr) / n,
            None => {
                self.total += tr;
                self.seen += 1;
                if self.seen < self.n {
                    return None;
                }
                self.total / n
            }
        };
        self.value = Some(next);
        Some(next)
    }
}

/// Bollinger bands over an SMA (`TA_BBANDS` with `TA_MAType_SMA`), first
/// values at bar `n - 1`.
///
/// The middle band is TA-Lib's running-sum SMA, bit for bit. The
/// population standard deviation is computed the way TA-Lib 0.6+ gets its
/// accuracy, not with the classic running sum of squares (which loses
/// ~1e-8 relative right after a flat stretch at prices of a few hundred):
/// running sums of deviations from a shift `K`, re-anchored on the window's
/// mean and recomputed from the window every `n` bars, so that no rounding
/// error survives longer than one window and each bar still costs O(1)
/// amortised. A variance below 1e-8 is zero, as `TA_IS_ZERO_OR_NEG` says.
#[derive(Debug, Clone)]
pub struct Bollinger {
    n: usize,
    k: f64,
    sma: Sma,
    window: VecDeque<f64>,
    shift: f64,
    s1: f64,
    s2: f64,
    since_anchor: usize,
}

/// One bar's bands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    /// Middle plus `k` deviations.
    pub upper: f64,
    /// The SMA.
    pub middle: f64,
    /// Middle minus `k` deviations.
    pub lower: f64,
    /// The population standard deviation.
    pub sigma: f64,
}

impl Bollinger {
    /// Bands over `n >= 2` bars, `k` deviations wide.
    pub fn new(n: usize, k: f64) -> Bollinger {
        Bollinger {
            n,
            k,
            sma: Sma::new(n),
            window: VecDeque::with_capacity(n + 1),
            shift: 0.0,
            s1: 0.0,
            s2: 0.0,
            since_anchor: 0,
        }
    }

    /// Adds a bar.
    pub fn push(&mut self, x: f64) -> Option<Bands> {
        let middle = self.sma.push(x);
        if self.window.is_empty() {
            self.shift = x;
        }
        self.window.push_back(x);
        let d = x - self.shift;
        self.s1 += d;
        self.s2 += d * d;
        if self.window.len() > self.n
            && let Some(old) = self.window.pop_front()
        {
            let d = old - self.shift;
            self.s1 -= d;
            self.s2 -= d * d;
        }
        let middle = middle?;
        self.since_anchor += 1;
        if self.since_anchor >= self.n {
            self.reanchor();
        }
        let n = self.n as f64;
        let mean_d = self.s1 / n;
        let variance = self.s2 / n - mean_d * mean_d;
        let sigma = if variance < 0.000_000_01 { 0.0 } else { variance.sqrt() };
        let width = sigma * self.k;
        Some(Bands { upper: middle + width, middle, lower: middle - width, sigma })
    }

    /// Moves the shift to the window's mean and recomputes the sums.
    fn reanchor(&mut self) {
        self.shift += self.s1 / self.n as f64;
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in &self.window {
            let d = v - self.shift;
            s1 += d;
            s2 += d * d;
        }
        (self.s1, self.s2, self.since_anchor) = (s1, s2, 0);
    }
}

/// Realised volatility: the square root of the sum of the last `n` squared
/// log returns, not annualised; first value at bar `n`. Not a TA-Lib
/// function. The running sum is reset to exactly zero whenever the window
/// holds only zero returns, so a flat stretch reads 0, not rounding dust.
#[derive(Debug, Clone)]
pub struct RealizedVol {
    n: usize,
    window: VecDeque<f64>,
    total: f64,
    nonzero: usize,
}

impl RealizedVol {
    /// Over the last `n >= 1` returns.
    pub fn new(n: usize) -> RealizedVol {
        RealizedVol { n, window: VecDeque::with_capacity(n + 1), total: 0.0, nonzero: 0 }
    }

    /// Adds one bar's log return.
    pub fn push(&mut self, log_return: f64) -> Option<f64> {
        let sq = log_return * log_return;
        self.window.push_back(sq);
        self.total += sq;
        if sq != 0.0 {
            self.nonzero += 1;
        }
        if self.window.len() > self.n
            && let Some(old) = self.window.pop_front()
        {
            self.total -= old;
            if old != 0.0 {
                self.nonzero -= 1;
            }
        }
        if self.nonzero == 0 {
            self.total = 0.0;
        }
        (self.window.len() == self.n).then(|| self.total.max(0.0).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(f: impl FnMut(f64) -> Option<f64>, xs: &[f64]) -> Vec<Option<f64>> {
        xs.iter().copied().map(f).collect()
    }

    #[test]
    fn lookbacks_are_talibs() {
        let xs: Vec<f64> = (0..60).map(|i| 100.0 + f64::from(i % 7) - f64::from(i % 3)).collect();
        let first = |v: Vec<Option<f64>>| v.iter().position(Option::is_some);
        let mut sma = Sma::new(20);
        assert_eq!(first(series(|x| sma.push(x), &xs)), Some(19));
        let mut ema = Ema::new(12);
        assert_eq!(first(series(|x| ema.push(x), &xs)), Some(11));
        let mut rsi = Rsi::new(14);
        assert_eq!(first(series(|x| rsi.push(x), &xs)), Some(14));
        let mut atr = Atr::new(14);
        assert_eq!(first(series(|x| atr.push(x + 1.0, x - 1.0, x), &xs)), Some(14));
        let mut macd = Macd::new(12, 26, 9);
        assert_eq!(first(series(|x| macd.push(x).map(|m| m.macd), &xs)), Some(33));
        let mut bb = Bollinger::new(20, 2.0);
        assert_eq!(first(series(|x| bb.push(x).map(|b| b.middle), &xs)), Some(19));
        let mut rv = RealizedVol::new(20);
        assert_eq!(first(series(|x| rv.push(x), &xs[1..])), Some(19));
    }

    #[test]
    fn a_flat_series_has_zero_spread_and_zero_rsi_like_talib() {
        let mut bb = Bollinger::new(5, 2.0);
        let mut rsi = Rsi::new(3);
        let mut last = None;
        for _ in 0..10 {
            last = bb.push(7.25);
            rsi.push(7.25);
        }
        assert_eq!(last.map(|b| b.sigma), Some(0.0));
        assert_eq!(rsi.push(7.25), Some(0.0));
    }

    #[test]
    fn an_ema_seeded_from_the_sma_then_smooths() {
        let mut ema = Ema::new(3);
        assert_eq!(ema.push(1.0), None);
        assert_eq!(ema.push(2.0), None);
        assert_eq!(ema.push(3.0), Some(2.0));
        assert_eq!(ema.push(4.0), Some(3.0));
    }
}
