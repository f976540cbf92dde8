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

use polis_core::canonical::{Digest, to_canonical_vec};
use serde::Serialize;

use crate::bars::Bar;
use crate::catalog::Catalog;
use crate::contract::IntentRecord;
use crate::engine::{Engine, StrategyCounters};
use crate::features::Streams;
use polis_runtime::BreakerConfig;

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

/// Replays `bars` through the catalog's enabled built-in strategies.
pub fn replay(bars: &[Bar], catalog: &Catalog, config: &ReplayConfig) -> Result<Replay, ReplayError> {
    let mut engine = Engine::new(catalog, config.breaker);
    replay_with(bars, &mut engine, config)
}

/// Replays `bars` through an engine.
pub fn replay_with(bars: &[Bar], engine: &mut Engine, config: &ReplayConfig) -> Result<Replay, ReplayError> {
    let per_year =
        periods_per_year(&config.timeframe).ok_or_else(|| ReplayError::Timeframe(config.timeframe.clone()))?;
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
    for bar in bars {
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
            intents.push(record);
        }
    }
    if let Some(ts) = current_ts {
        close_period(&mut books, ts, config.capital);
    }
    let counters: BTreeMap<String, StrategyCounters> = engine.counters().into_iter().collect();
    let mut evaluations = Vec::new();
    let mut equity = BTreeMap::new();
    for key in &keys {
        let Some(book) = books.remove(key) else { continue };
        let n = book.returns.len().max(1) as f64;
        let mean = book.returns.iter().sum::<f64>() / n;
        let var = book.returns.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n;
        let sharpe = if var > 0.0 { mean / var.sqrt() * per_year.sqrt() } else { 0.0 };
        evaluations.push(Evaluation {
            strategy: key.clone(),
            intents: book.intents,
            total_return: book.equity / config.capital - 1.0,
            sharpe,
            max_drawdown: book.max_dd,
            hit_rate: if book.in_position > 0 { book.hits as f64 / book.in_position as f64 } else { 0.0 },
            turnover: book.traded / config.capital,
            exposure: book.in_position as f64 / n,
            counters: counters.get(key).cloned().unwrap_or_default(),
        });
        equity.insert(key.clone(), book.curve);
    }
    let digest = Digest::of_bytes(&intents_jsonl(&intents)?);
    Ok(Replay { intents, digest, evaluations, equity, bars: bars.len() })
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
