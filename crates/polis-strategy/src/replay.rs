//! Replay over history: intents, a digest that proves two replays
//! identical, and an evaluation of the intents as target positions.
//!
//! The digest is SHA-256 over the intent stream as `intents.jsonl` holds
//! it: each record's RFC 8785 canonical JSON followed by a newline, in
//! emission order (bar order, then catalog order). Two replays agree iff
//! their digests do; [`first_difference`] names the first intent that
//! differs.
//!
//! Evaluation: each strategy's position on a symbol is the signed target
//! notional of its latest intent on it (long +, short −, flat 0), taken at
//! the bar's close and held over the next bar. Per bar, the P&L is
//! Σ position × return of the next close, less `cost_bps` of every change
//! of position (turnover). Equity starts at `capital`. Reported: total
//! return, annualised Sharpe (mean / σ of bar returns × √periods a year:
//! 252 for `1d`, 52 for `1w`, else seconds a year / the timeframe),
//! maximum drawdown, hit rate (bars in a position that made money, over
//! bars in a position), turnover (Σ|Δposition| / capital) and exposure
//! (bars in a position, over all bars).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use polis_core::canonical::{Digest, to_canonical_vec};
use serde::Serialize;

use crate::bars::Bar;
use crate::catalog::{Catalog, CheckedEntry};
use crate::contract::{IntentRecord, StrategyPlugin};
use crate::engine::{Engine, StrategyCounters};
use crate::features::Streams;
use polis_runtime::{BreakerConfig, BreakerState};

/// How to replay and evaluate.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The bar length, such as `1d`.
    pub timeframe: String,
    /// Cost of trading, in basis points of the notional traded.
    pub cost_bps: f64,
    /// Starting equity of each strategy.
    pub capital: f64,
    /// The strategies' breakers.
    pub breaker: BreakerConfig,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig { timeframe: "1d".into(), cost_bps: 0.0, capital: 100_000.0, breaker: BreakerConfig::default() }
    }
}

/// One strategy's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// `strategy_id@version`.
    pub strategy: String,
    /// Intents it emitted.
    pub intents: usize,
    /// Final equity / capital − 1.
    pub total_return: f64,
    /// Annualised Sharpe ratio of bar returns (0 when σ is 0).
    pub sharpe: f64,
    /// Largest peak-to-trough fall of equity, as a fraction of the peak.
    pub max_drawdown: f64,
    /// Bars in a position with a gain, over bars in a position.
    pub hit_rate: f64,
    /// Σ |Δ position| / capital.
    pub turnover: f64,
    /// Bars in a position, over all bars.
    pub exposure: f64,
    /// Events, intents, errors and drops.
    pub counters: StrategyCounters,
}

/// What a replay produced.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Every intent, in order.
    pub intents: Vec<IntentRecord>,
    /// SHA-256 of the canonical intent stream.
    pub digest: Digest,
    /// One evaluation per strategy, in catalog order.
    pub evaluations: Vec<Evaluation>,
    /// Each strategy's equity after every distinct bar time.
    pub equity: BTreeMap<String, Vec<(i64, f64)>>,
    /// How many bars were replayed.
    pub bars: usize,
    /// Each strategy's breaker at the last bar's time, in catalog order.
    pub breakers: Vec<(String, BreakerState)>,
}

/// The `intents.jsonl` bytes of a list of intents (canonical JSON lines).
pub fn intents_jsonl(intents: &[IntentRecord]) -> Result<Vec<u8>, polis_core::canonical::CanonicalError> {
    let mut out = Vec::new();
    for i in intents {
        out.extend(to_canonical_vec(i)?);
        out.push(b'\n');
    }
    Ok(out)
}

/// The first position at which two intent streams differ, with both sides.
pub fn first_difference<'a>(
    a: &'a [IntentRecord],
    b: &'a [IntentRecord],
) -> Option<(usize, Option<&'a IntentRecord>, Option<&'a IntentRecord>)> {
    let n = a.len().max(b.len());
    (0..n).find(|&i| a.get(i) != b.get(i)).map(|i| (i, a.get(i), b.get(i)))
}

/// Periods a year for a timeframe such as `1d`, `1w`, `5m`, `1h`.
pub fn periods_per_year(timeframe: &str) -> Option<f64> {
    let (num, unit) = timeframe.split_at(timeframe.find(|c: char| !c.is_ascii_digit())?);
    let n: f64 = num.parse().ok().filter(|n: &f64| *n > 0.0)?;
    Some(match unit {
        "d" => 252.0 / n,
        "w" => 52.0 / n,
        "h" => 365.25 * 24.0 / n,
        "m" => 365.25 * 24.0 * 60.0 / n,
        "s" => 365.25 * 86_400.0 / n,
        _ => return None,
    })
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The timeframe is not `<n><s|m|h|d|w>`.
    #[error("timeframe `{0}` is not a number and a unit (s, m, h, d, w), such as `1d`")]
    Timeframe(String),
    /// An intent could not be canonicalised.
    #[error("{0}")]
    Canonical(#[from] polis_core::canonical::CanonicalError),
}

struct Book {
    positions: BTreeMap<String, f64>,
    equity: f64,
    peak: f64,
    max_dd: f64,
    returns: Vec<f64>,
    in_position: usize,
    hits: usize,
    traded: f64,
    curve: Vec<(i64, f64)>,
    pending: f64,
    intents: usize,
    held: bool,
}

/// Makes a strategy's instances: one call per (strategy, symbol).
pub type Factory = Box<dyn Fn() -> Box<dyn StrategyPlugin> + Send>;

/// Replays `bars` through the catalog's enabled built-in strategies, the
/// independent groups in parallel (see [`replay_parallel`]).
pub fn replay(bars: &[Bar], catalog: &Catalog, config: &ReplayConfig) -> Result<Replay, ReplayError> {
    replay_parallel(bars, catalog, config, &builtin, &|_, _| {})
}

/// The built-in family of an entry, as a [`Factory`].
pub fn builtin(entry: &CheckedEntry) -> Option<Factory> {
    let family = entry.family()?;
    Some(Box::new(move || (family.make)()))
}

/// The enabled strategies in groups that must run in one engine: an
/// overlay (an entry whose params name `sources`) is grouped with the
/// strategies whose intents it consumes. Groups are in catalog order of
/// their first member; each group's members in catalog order.
pub fn groups(catalog: &Catalog) -> Vec<Vec<String>> {
    let enabled: Vec<&CheckedEntry> = catalog.enabled().collect();
    let mut parent: Vec<usize> = (0..enabled.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, e) in enabled.iter().enumerate() {
        let sources = e.entry.params.get("sources").and_then(|s| s.as_array()).cloned().unwrap_or_default();
        for source in sources.iter().filter_map(|s| s.as_str()) {
            for (j, other) in enabled.iter().enumerate() {
                if other.entry.strategy_id == source {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let mut out: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, e) in enabled.iter().enumerate() {
        let r = root(&mut parent, i);
        match out.iter_mut().find(|(root, _)| *root == r) {
            Some((_, members)) => members.push(e.key()),
            None => out.push((r, vec![e.key()])),
        }
    }
    out.into_iter().map(|(_, members)| members).collect()
}

/// Replays `bars` through the catalog's enabled strategies whose plugins
/// `make` provides, each of [`groups`] in an engine of its own, on up to
/// as many threads as the machine has cores.
///
/// The result is the one a single engine gives ([`replay_with`]): intents
/// are merged in bar order, then catalog order, so the digest does not
/// depend on the number of threads. `progress(done, total)` is called from
/// the worker threads as bars are processed (`total` is bars × groups).
pub fn replay_parallel(
    bars: &[Bar],
    catalog: &Catalog,
    config: &ReplayConfig,
    make: &(dyn Fn(&CheckedEntry) -> Option<Factory> + Sync),
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Replay, ReplayError> {
    let per_year =
        periods_per_year(&config.timeframe).ok_or_else(|| ReplayError::Timeframe(config.timeframe.clone()))?;
    let groups = groups(catalog);
    let order: BTreeMap<String, usize> = catalog.enabled().enumerate().map(|(i, e)| (e.key(), i)).collect();
    let total = (bars.len() as u64).saturating_mul(groups.len() as u64);
    let next = AtomicUsize::new(0);
    let runs: Mutex<Vec<Run>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(groups.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let g = next.fetch_add(1, Ordering::SeqCst);
                    let Some(members) = groups.get(g) else { break };
                    let mut engine = Engine::with_plugins(catalog, config.breaker, |entry| {
                        if members.contains(&entry.key()) { make(entry) } else { None }
                    });
                    let run = run_engine(bars, &mut engine, config, &|done| progress(done, total));
                    runs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(run);
                }
            });
        }
    });
    let runs = runs.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    finish(runs, &order, per_year, config, bars.len())
}

/// Replays `bars` through one engine.
pub fn replay_with(bars: &[Bar], engine: &mut Engine, config: &ReplayConfig) -> Result<Replay, ReplayError> {
    replay_engine(bars, engine, config, &|_, _| {})
}

/// Replays `bars` through one engine, calling `progress(done, total)` as
/// bars are processed (`total` is the number of bars).
pub fn replay_engine(
    bars: &[Bar],
    engine: &mut Engine,
    config: &ReplayConfig,
    progress: &dyn Fn(u64, u64),
) -> Result<Replay, ReplayError> {
    let per_year =
        periods_per_year(&config.timeframe).ok_or_else(|| ReplayError::Timeframe(config.timeframe.clone()))?;
    let total = bars.len() as u64;
    let run = run_engine(bars, engine, config, &|done| progress(done, total));
    let order: BTreeMap<String, usize> = run.keys.iter().cloned().enumerate().map(|(i, k)| (k, i)).collect();
    finish(vec![run], &order, per_year, config, bars.len())
}

/// What one engine produced over the bars.
struct Run {
    /// Its strategies, in run order.
    keys: Vec<String>,
    /// Each intent with the index of the bar that caused it.
    intents: Vec<(usize, IntentRecord)>,
    books: BTreeMap<String, Book>,
    counters: BTreeMap<String, StrategyCounters>,
    breakers: Vec<(String, BreakerState)>,
}

/// Bars between two progress reports.
const PROGRESS_EVERY: usize = 4096;

fn run_engine(bars: &[Bar], engine: &mut Engine, config: &ReplayConfig, progress: &dyn Fn(u64)) -> Run {
    let mut streams = Streams::new(engine.features().clone());
    let keys: Vec<String> = engine.counters().into_iter().map(|(k, _)| k).collect();
    let mut books: BTreeMap<String, Book> = keys
        .iter()
        .map(|k| {
            let book = Book {
                positions: BTreeMap::new(),
                equity: config.capital,
                peak: config.capital,
                max_dd: 0.0,
                returns: Vec::new(),
                in_position: 0,
                hits: 0,
                traded: 0.0,
                curve: Vec::new(),
                pending: 0.0,
                intents: 0,
                held: false,
            };
            (k.clone(), book)
        })
        .collect();
    let mut prev_close: BTreeMap<String, f64> = BTreeMap::new();
    let mut intents = Vec::new();
    let mut current_ts: Option<i64> = None;
    let cost = config.cost_bps / 10_000.0;
    for (index, bar) in bars.iter().enumerate() {
        if index % PROGRESS_EVERY == PROGRESS_EVERY - 1 {
            progress(PROGRESS_EVERY as u64);
        }
        if current_ts.is_some_and(|t| t != bar.ts) {
            close_period(&mut books, current_ts.unwrap_or(0), config.capital);
        }
        current_ts = Some(bar.ts);
        // P&L of positions held over this bar, before new intents.
        if let Some(&prev) = prev_close.get(&bar.symbol) {
            let r = bar.close / prev - 1.0;
            for book in books.values_mut() {
                if let Some(&pos) = book.positions.get(&bar.symbol) {
                    book.pending += pos * r;
                }
            }
        }
        prev_close.insert(bar.symbol.clone(), bar.close);
        let row = streams.push(bar);
        for record in engine.on_row(&row, &config.timeframe) {
            if let Some(book) = books.get_mut(&record.strategy) {
                let target = record.intent.direction.sign() * record.intent.target_notional;
                let old = book.positions.insert(bar.symbol.clone(), target).unwrap_or(0.0);
                let traded = (target - old).abs();
                book.traded += traded;
                book.pending -= traded * cost;
                book.intents += 1;
            }
            intents.push((index, record));
        }
    }
    progress((bars.len() % PROGRESS_EVERY) as u64);
    if let Some(ts) = current_ts {
        close_period(&mut books, ts, config.capital);
    }
    let counters = engine.counters().into_iter().collect();
    let breakers = engine.breakers(current_ts.unwrap_or(0));
    Run { keys, intents, books, counters, breakers }
}

/// Merges engines' runs into one replay: intents by bar, then by `order`
/// (catalog order); evaluations in `order`.
fn finish(
    runs: Vec<Run>,
    order: &BTreeMap<String, usize>,
    per_year: f64,
    config: &ReplayConfig,
    bars: usize,
) -> Result<Replay, ReplayError> {
    let position = |key: &str| order.get(key).copied().unwrap_or(usize::MAX);
    let mut tagged: Vec<(usize, usize, IntentRecord)> = Vec::new();
    let mut evaluations: Vec<(usize, Evaluation)> = Vec::new();
    let mut equity = BTreeMap::new();
    let mut breakers: Vec<(usize, (String, BreakerState))> = Vec::new();
    for mut run in runs {
        breakers.extend(run.breakers.drain(..).map(|b| (position(&b.0), b)));
        tagged.extend(run.intents.into_iter().map(|(bar, r)| (bar, position(&r.strategy), r)));
        for key in &run.keys {
            let Some(book) = run.books.remove(key) else { continue };
            let n = book.returns.len().max(1) as f64;
            let mean = book.returns.iter().sum::<f64>() / n;
            let var = book.returns.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n;
            let sharpe = if var > 0.0 { mean / var.sqrt() * per_year.sqrt() } else { 0.0 };
            let evaluation = Evaluation {
                strategy: key.clone(),
                intents: book.intents,
                total_return: book.equity / config.capital - 1.0,
                sharpe,
                max_drawdown: book.max_dd,
                hit_rate: if book.in_position > 0 { book.hits as f64 / book.in_position as f64 } else { 0.0 },
                turnover: book.traded / config.capital,
                exposure: book.in_position as f64 / n,
                counters: run.counters.get(key).cloned().unwrap_or_default(),
            };
            evaluations.push((position(key), evaluation));
            equity.insert(key.clone(), book.curve);
        }
    }
    // Stable: within one bar and strategy, intents keep their order.
    tagged.sort_by_key(|(bar, at, _)| (*bar, *at));
    evaluations.sort_by_key(|(at, _)| *at);
    breakers.sort_by_key(|(at, _)| *at);
    let intents: Vec<IntentRecord> = tagged.into_iter().map(|(_, _, r)| r).collect();
    let digest = Digest::of_bytes(&intents_jsonl(&intents)?);
    Ok(Replay {
        intents,
        digest,
        evaluations: evaluations.into_iter().map(|(_, e)| e).collect(),
        equity,
        bars,
        breakers: breakers.into_iter().map(|(_, b)| b).collect(),
    })
}

fn close_period(books: &mut BTreeMap<String, Book>, ts: i64, capital: f64) {
    for book in books.values_mut() {
        let pnl = std::mem::take(&mut book.pending);
        // The P&L is of the positions held over this bar, set before it.
        let held = std::mem::replace(&mut book.held, book.positions.values().any(|p| *p != 0.0));
        let before = book.equity;
        book.equity += pnl;
        book.returns.push(if before != 0.0 { pnl / before } else { pnl / capital });
        if held {
            book.in_position += 1;
            if pnl > 0.0 {
                book.hits += 1;
            }
        }
        book.peak = book.peak.max(book.equity);
        if book.peak > 0.0 {
            book.max_dd = book.max_dd.max((book.peak - book.equity) / book.peak);
        }
        book.curve.push((ts, book.equity));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"
[[strategies]]
strategy_id = "legacy"
strategy_type = "legacy_macd_rsi"
version = "1.0.0"
symbols = ["A", "B"]

[[strategies]]
strategy_id = "overlay"
strategy_type = "volatility_overlay"
version = "1.0.0"
priority = 9
params = { sources = ["trend"], vol_target = 0.08 }
symbols = ["A", "B"]

[[strategies]]
strategy_id = "trend"
strategy_type = "trend_multifactor"
version = "1.0.0"
priority = 1
symbols = ["A", "B"]

[[strategies]]
strategy_id = "mr"
strategy_type = "mean_reversion"
version = "1.0.0"
priority = 2
params = { entry_z = 1.2, exit_z = 0.3 }
symbols = ["B"]
"#;

    /// Two interleaved symbols of a deterministic zig-zag walk.
    fn bars(n: i64) -> Vec<Bar> {
        let mut out = Vec::new();
        let mut price = [100.0_f64, 50.0];
        for i in 0..n {
            for (s, symbol) in ["A", "B"].iter().enumerate() {
                let step = (((i * 37 + s as i64 * 11) % 23) as f64 - 11.0) / 200.0;
                price[s] *= 1.0 + step;
                let c = price[s];
                out.push(Bar {
                    symbol: (*symbol).into(),
                    ts: i * 86_400,
                    open: c,
                    high: c * 1.01,
                    low: c * 0.99,
                    close: c,
                    volume: 1_000.0,
                });
            }
        }
        out
    }

    #[test]
    fn overlays_are_grouped_with_their_sources_in_catalog_order() {
        let catalog = Catalog::load("s.toml", CATALOG).unwrap();
        assert_eq!(
            groups(&catalog),
            [
                vec!["legacy@1.0.0".to_owned()],
                vec!["trend@1.0.0".into(), "overlay@1.0.0".into()],
                vec!["mr@1.0.0".into()]
            ]
        );
    }

    #[test]
    fn parallel_groups_give_the_single_engine_replay_byte_for_byte() {
        let catalog = Catalog::load("s.toml", CATALOG).unwrap();
        let bars = bars(600);
        let config = ReplayConfig { cost_bps: 3.0, ..ReplayConfig::default() };
        let mut engine = Engine::new(&catalog, config.breaker);
        let one = replay_with(&bars, &mut engine, &config).unwrap();
        let done = AtomicUsize::new(0);
        let parallel = replay_parallel(&bars, &catalog, &config, &builtin, &|n, total| {
            assert_eq!(total, 1_200 * 3);
            done.fetch_add(usize::try_from(n).unwrap(), Ordering::SeqCst);
        })
        .unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 1_200 * 3);
        assert!(one.intents.len() > 20, "{}", one.intents.len());
        assert!(one.intents.iter().any(|r| r.strategy == "overlay@1.0.0"));
        assert_eq!(parallel.intents, one.intents);
        assert_eq!(parallel.digest, one.digest);
        assert_eq!(parallel.evaluations, one.evaluations);
        assert_eq!(parallel.equity, one.equity);
        assert_eq!(parallel.breakers, one.breakers);
        assert_eq!(parallel.breakers.len(), 4);
    }
}
