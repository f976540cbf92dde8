//! A polis strategy.v1 plugin in Rust, compiled to wasm32-unknown-unknown.
//!
//! A long-only RSI reversion: long when `rsi_14` falls below `oversold`,
//! flat once it rises above `exit`. polis makes one instance per strategy
//! and symbol and keeps the module's memory between calls, so an instance's
//! fields are its state across events. Edit the `impl Strategy`.
//!
//! Build and test:
//!
//! ```sh
//! cargo test
//! cargo build --release --target wasm32-unknown-unknown
//! cp target/wasm32-unknown-unknown/release/*.wasm .
//! polis plugin test .
//! ```

use polis_guest::Error;
use polis_guest::strategy::{Direction, FeatureVector, Intent, Strategy, StrategyContext};
use serde_json::Value;

const KNOWN: [&str; 3] = ["notional", "oversold", "exit"];

/// One instance: its params and the position it last asked for.
#[derive(Debug)]
pub struct RsiReversion {
    notional: f64,
    oversold: f64,
    exit: f64,
    direction: Direction,
}

impl Default for RsiReversion {
    fn default() -> Self {
        RsiReversion { notional: 10_000.0, oversold: 30.0, exit: 50.0, direction: Direction::Flat }
    }
}

impl Strategy for RsiReversion {
    fn validate_params(&mut self, params: &Value) -> Result<(), Vec<String>> {
        let mut errors: Vec<String> = params
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter(|k| !KNOWN.contains(&k.as_str()))
            .map(|k| format!("unknown param `{k}`"))
            .collect();
        let num = |key: &str, default: f64| params.get(key).and_then(Value::as_f64).unwrap_or(default);
        self.notional = num("notional", 10_000.0);
        self.oversold = num("oversold", 30.0);
        self.exit = num("exit", 50.0);
        if !(0.0 < self.oversold && self.oversold < self.exit && self.exit < 100.0) {
            errors.push("need 0 < `oversold` < `exit` < 100".to_owned());
        }
        self.direction = Direction::Flat;
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    fn required_features(&self) -> Vec<String> {
        vec!["rsi_14".to_owned()]
    }

    fn warmup_bars(&self) -> u32 {
        // rsi_14 has its first value on bar 15.
        15
    }

    fn on_event(&mut self, fv: &FeatureVector, ctx: &StrategyContext) -> Result<Option<Intent>, Error> {
        let Some(&rsi) = fv.values.get("rsi_14") else { return Ok(None) };
        let next = if rsi < self.oversold {
            Direction::Long
        } else if rsi > self.exit {
            Direction::Flat
        } else {
            self.direction
        };
        if next == self.direction {
            return Ok(None);
        }
        self.direction = next;
        Ok(Some(Intent {
            strategy_id: ctx.strategy_id.clone(),
            symbol: fv.symbol.clone(),
            direction: next,
            confidence: (1.0 - rsi / 100.0).clamp(0.0, 1.0),
            target_notional: if next == Direction::Long { self.notional } else { 0.0 },
            horizon: fv.timeframe.clone(),
            rationale: vec![format!("rsi_14 {rsi:.2}")],
            meta: Default::default(),
        }))
    }
}

polis_guest::export_strategy!(RsiReversion);

#[cfg(test)]
mod tests {
    use polis_guest::strategy::Instances;

    use super::*;

    fn answer(instances: &mut Instances<RsiReversion>, method: &str, request: &str) -> String {
        String::from_utf8(instances.answer(method, request.as_bytes())).unwrap_or_default()
    }

    fn event(rsi: f64) -> String {
        format!(
            r#"{{"instance":"a","fv":{{"symbol":"SYN","event_ts":"2020-01-01T00:00:00Z","timeframe":"1d","schema_version":"feature_vector.v3","values":{{"rsi_14":{rsi}}}}},"ctx":{{"strategy_id":"s","strategy_type":"t","version":"0.1.0","params":{{}}}},"upstream":[]}}"#
        )
    }

    #[test]
    fn unknown_params_are_refused_and_it_trades_the_rsi() {
        let mut i = Instances::<RsiReversion>::default();
        let refused = answer(&mut i, "validate_params", r#"{"instance":"a","params":{"colour":1}}"#);
        assert_eq!(refused, r#"{"ok":{"errors":["unknown param `colour`"]}}"#);
        assert_eq!(answer(&mut i, "validate_params", r#"{"instance":"a","params":{}}"#), r#"{"ok":{"errors":[]}}"#);
        assert!(answer(&mut i, "on_event", &event(25.0)).contains(r#""direction":"long""#));
        assert_eq!(answer(&mut i, "on_event", &event(40.0)), r#"{"ok":{"intent":null}}"#);
        assert!(answer(&mut i, "on_event", &event(55.0)).contains(r#""direction":"flat""#));
    }
}
