//! The live loop's core: JSON lines in (bars or feature vectors), intents
//! out, and atomic catalog reloads.
//!
//! Each input line is either a bar, `{"symbol", "ts" | "event_ts", "open",
//! "high", "low", "close", "volume"}` (`ts` epoch seconds or any time the
//! CSV reader accepts), which goes through the feature pipeline, or a
//! `feature_vector.v3` document, whose values are used as given. A bad line
//! is an error for that line only; the loop goes on. [`Live::reload`]
//! checks a new catalog completely before swapping it in: a catalog that
//! does not parse leaves the old one running and says why. A reload that
//! changes nothing keeps every strategy's state; one that changes the
//! catalog starts a new engine (every strategy warms up again), since an
//! instance's state belongs to its params.

use std::sync::Arc;

use polis_runtime::BreakerConfig;
use serde::Deserialize;

use crate::bars::{Bar, parse_time};
use crate::catalog::{Catalog, CatalogError};
use crate::contract::IntentRecord;
use crate::engine::Engine;
use crate::features::{FeatureVectorV3, Row, SCHEMA_VERSION, Streams};
use crate::plugins::{LoadedStrategies, engine_for};

/// Longest input line, in bytes.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The live loop.
pub struct Live {
    text: String,
    catalog: Catalog,
    engine: Engine,
    streams: Streams,
    timeframe: String,
    breaker: BreakerConfig,
    last_ts: std::collections::BTreeMap<String, i64>,
    timed: bool,
    plugins: Arc<LoadedStrategies>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("engine", &self.engine).finish_non_exhaustive()
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The file is unchanged.
    Unchanged,
    /// The new catalog runs now.
    Swapped,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BarLine {
    symbol: String,
    #[serde(alias = "event_ts")]
    ts: serde_json::Value,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

impl Live {
    /// A loop over the catalog in `text` (named `file` in errors), built-in
    /// families only.
    pub fn new(file: &str, text: &str, timeframe: &str, breaker: BreakerConfig) -> Result<Live, CatalogError> {
        Live::with_plugins(file, text, timeframe, breaker, Arc::new(LoadedStrategies::none()))
    }

    /// A loop over the catalog in `text` whose entries may also name
    /// loaded plugins ([`crate::plugins`]'s naming rule). A plugin that
    /// fails (its worker killed, an exception, a bad intent) counts against
    /// its strategy's breaker and the loop goes on; a process worker that
    /// died is started again on its next call.
    pub fn with_plugins(
        file: &str,
        text: &str,
        timeframe: &str,
        breaker: BreakerConfig,
        plugins: Arc<LoadedStrategies>,
    ) -> Result<Live, CatalogError> {
        let catalog = plugins.check(&Catalog::load(file, text)?);
        let engine = engine_for(&catalog, breaker, &plugins);
        let streams = Streams::new(engine.features().clone());
        Ok(Live {
            text: text.to_owned(),
            catalog,
            engine,
            streams,
            timeframe: timeframe.to_owned(),
            breaker,
            last_ts: Default::default(),
            timed: false,
            plugins,
        })
    }

    /// The running catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The running engine (counters, breakers).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Measures every plugin call's latency (for `strategy_eval_latency_ms`),
    /// across reloads too.
    pub fn measure_latency(&mut self, on: bool) {
        self.timed = on;
        self.engine.measure_latency(on);
    }

    /// Swaps in the catalog in `text` if it checks; on error the old one
    /// keeps running.
    pub fn reload(&mut self, file: &str, text: &str) -> Result<Reloaded, CatalogError> {
        if text == self.text {
            return Ok(Reloaded::Unchanged);
        }
        let catalog = self.plugins.check(&Catalog::load(file, text)?);
        let mut engine = engine_for(&catalog, self.breaker, &self.plugins);
        engine.measure_latency(self.timed);
        self.streams = Streams::new(engine.features().clone());
        self.engine = engine;
        self.catalog = catalog;
        self.text = text.to_owned();
        self.last_ts.clear();
        Ok(Reloaded::Swapped)
    }

    /// Handles one input line; `Err` says what is wrong with it.
    pub fn on_line(&mut self, line: &str) -> Result<Vec<IntentRecord>, String> {
        if line.len() > MAX_LINE_BYTES {
            return Err(format!("line of {} bytes exceeds {MAX_LINE_BYTES}", line.len()));
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        if value.get("schema_version").is_some() {
            let fv: FeatureVectorV3 =
                serde_json::from_value(value).map_err(|e| format!("not a feature vector: {e}"))?;
            if fv.schema_version != SCHEMA_VERSION {
                return Err(format!("schema_version `{}` is not `{SCHEMA_VERSION}`", fv.schema_version));
            }
            if let Some(bad) = fv.values.iter().find(|(_, v)| !v.is_finite()) {
                return Err(format!("feature `{}` is not finite", bad.0));
            }
            let set = Arc::new(self.engine.features().clone());
            let values = set.names().iter().map(|n| fv.values.get(n).copied()).collect();
            let row = Row { symbol: Arc::from(fv.symbol.as_str()), ts: fv.event_ts, set, values };
            return Ok(self.engine.on_row(&row, &fv.timeframe));
        }
        let b: BarLine =
            serde_json::from_value(value).map_err(|e| format!("neither a bar nor a feature vector: {e}"))?;
        let ts = match &b.ts {
            serde_json::Value::Number(n) => n.as_i64().ok_or_else(|| format!("`ts` {n} is not whole seconds"))?,
            serde_json::Value::String(s) => parse_time(s).map_err(|e| format!("`ts`: {e}"))?,
            other => return Err(format!("`ts` {other} is not a time")),
        };
        for (name, v) in [("open", b.open), ("high", b.high), ("low", b.low), ("close", b.close)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("`{name}` {v} is not a positive price"));
            }
        }
        if !(b.volume.is_finite() && b.volume >= 0.0) || b.low > b.high {
            return Err("`volume` must be finite and not negative, and `low` at most `high`".into());
        }
        if self.last_ts.get(&b.symbol).is_some_and(|&t| ts <= t) {
            return Err(format!("bar of `{}` at {ts} is not after the previous one", b.symbol));
        }
        self.last_ts.insert(b.symbol.clone(), ts);
        let bar =
            Bar { symbol: b.symbol, ts, open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume };
        let row = self.streams.push(&bar);
        let timeframe = self.timeframe.clone();
        Ok(self.engine.on_row(&row, &timeframe))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[[strategies]]\nstrategy_id = \"mr\"\nstrategy_type = \"mean_reversion\"\nversion = \"1.0.0\"\nparams = { entry_z = 1.0, exit_z = 0.2 }\nsymbols = [\"X\"]\n";

    fn bar(i: i64) -> String {
        let c = 100.0 + ((i * 7) % 13) as f64 - ((i * 3) % 5) as f64;
        format!(
            r#"{{"symbol":"X","ts":{},"open":{c},"high":{},"low":{},"close":{c},"volume":10}}"#,
            i * 86_400,
            c + 1.0,
            c - 1.0
        )
    }

    #[test]
    fn a_bad_reload_keeps_the_old_catalog_running() {
        let mut live = Live::new("s.toml", GOOD, "1d", BreakerConfig::default()).unwrap();
        let mut before = 0;
        for i in 0..60 {
            before += live.on_line(&bar(i)).unwrap().len();
        }
        assert!(before > 0);
        let err = live.reload("s.toml", "[[strategies]]\nstrategy_id = ").unwrap_err();
        assert!(err.to_string().starts_with("catalog `s.toml`"), "{err}");
        assert_eq!(live.catalog().enabled().count(), 1);
        // The old catalog and its state go on: the same intents as a loop never reloaded.
        let mut fresh = Live::new("s.toml", GOOD, "1d", BreakerConfig::default()).unwrap();
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..120 {
            let x = fresh.on_line(&bar(i)).unwrap();
            if i >= 60 {
                a.extend(x);
                b.extend(live.on_line(&bar(i)).unwrap());
            }
        }
        assert_eq!(a, b);
        assert_eq!(live.reload("s.toml", GOOD).unwrap(), Reloaded::Unchanged);
        let swapped = live.reload("s.toml", &GOOD.replace("entry_z = 1.0", "entry_z = 1.5")).unwrap();
        assert_eq!(swapped, Reloaded::Swapped);
    }

    #[test]
    fn bad_lines_are_refused_one_by_one_and_the_loop_goes_on() {
        let mut live = Live::new("s.toml", GOOD, "1d", BreakerConfig::default()).unwrap();
        assert!(live.on_line("{").unwrap_err().starts_with("not JSON"));
        assert!(
            live.on_line(r#"{"symbol":"X","ts":1,"open":-1,"high":1,"low":1,"close":1,"volume":1}"#)
                .unwrap_err()
                .contains("`open`")
        );
        assert!(live.on_line(&"x".repeat(MAX_LINE_BYTES + 1)).unwrap_err().contains("exceeds"));
        live.on_line(&bar(1)).unwrap();
        assert!(live.on_line(&bar(1)).unwrap_err().contains("not after"));
    }

    #[test]
    fn feature_vectors_and_bars_give_the_same_intents() {
        let mut from_bars = Live::new("s.toml", GOOD, "1d", BreakerConfig::default()).unwrap();
        let mut from_vectors = Live::new("s.toml", GOOD, "1d", BreakerConfig::default()).unwrap();
        let mut streams = Streams::new(crate::features::FeatureSet::default_set());
        for i in 0..100 {
            let line = bar(i);
            let a = from_bars.on_line(&line).unwrap();
            let b: BarLine = serde_json::from_str(&line).unwrap();
            let bar = Bar {
                symbol: b.symbol,
                ts: i * 86_400,
                open: b.open,
                high: b.high,
                low: b.low,
                close: b.close,
                volume: b.volume,
            };
            let fv = serde_json::to_string(&streams.push(&bar).to_vector("1d")).unwrap();
            assert_eq!(from_vectors.on_line(&fv).unwrap(), a, "bar {i}");
        }
    }
}
