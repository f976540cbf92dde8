//! `mean_reversion@1.0.0` as a wasm strategy plugin: the built-in's rule
//! (`crates/polis-strategy/src/builtins.rs`) on `polis_guest::strategy`,
//! so the cross-tier test can require the built-in's intent digest.
//!
//! Build: `cargo build --release -p polis-example-mean-reversion --target
//! wasm32-unknown-unknown`; the module is
//! `target/wasm32-unknown-unknown/release/polis_example_mean_reversion.wasm`
//! (the manifest's entry, copied beside it in a plugin directory).

use polis_guest::Error;
use polis_guest::strategy::{Direction, FeatureVector, Intent, Strategy, StrategyContext};
use serde_json::Value;

/// One instance: its params and the position it last asked for.
#[derive(Debug)]
pub struct MeanReversion {
    notional: f64,
    entry_z: f64,
    exit_z: f64,
    direction: Direction,
}

impl Default for MeanReversion {
    fn default() -> Self {
        MeanReversion { notional: 10_000.0, entry_z: 2.0, exit_z: 0.5, direction: Direction::Flat }
    }
}

/// `key` of `params` as a number in `[min, max]`, else `default` with the
/// problem recorded, as the built-in reads it.
fn num(params: &Value, key: &str, default: f64, (min, max): (f64, f64), problems: &mut Vec<String>) -> f64 {
    let Some(v) = params.get(key) else { return default };
    match v.as_f64() {
        Some(n) if (min..=max).contains(&n) => n,
        Some(n) => {
            problems.push(format!("`{key}`: {n} is outside [{min}, {max}]"));
            default
        }
        None => {
            problems.push(format!("`{key}`: {v} is not a number"));
            default
        }
    }
}

impl Strategy for MeanReversion {
    fn validate_params(&mut self, params: &Value) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let known = ["notional", "entry_z", "exit_z"];
        for key in params.as_object().into_iter().flat_map(|m| m.keys()) {
            if !known.contains(&key.as_str()) {
                problems.push(format!("unknown param `{key}` (known: {})", known.join(", ")));
            }
        }
        self.notional = num(params, "notional", 10_000.0, (0.0, 1e12), &mut problems);
        self.entry_z = num(params, "entry_z", 2.0, (0.1, 10.0), &mut problems);
        self.exit_z = num(params, "exit_z", 0.5, (0.0, 10.0), &mut problems);
        if self.exit_z >= self.entry_z {
            problems.push(format!("`exit_z` {} must be below `entry_z` {}", self.exit_z, self.entry_z));
        }
        self.direction = Direction::Flat;
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    fn required_features(&self) -> Vec<String> {
        vec!["bb_zscore".to_owned()]
    }

    fn warmup_bars(&self) -> u32 {
        20
    }

    fn on_event(&mut self, fv: &FeatureVector, ctx: &StrategyContext) -> Result<Option<Intent>, Error> {
        let Some(&z) = fv.values.get("bb_zscore") else { return Ok(None) };
        let next = if z <= -self.entry_z {
            Direction::Long
        } else if z >= self.entry_z {
            Direction::Short
        } else if z.abs() <= self.exit_z {
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
            confidence: (z.abs() / (2.0 * self.entry_z)).min(1.0).clamp(0.0, 1.0),
            target_notional: if next == Direction::Flat { 0.0 } else { self.notional },
            horizon: fv.timeframe.clone(),
            rationale: vec![format!("bb_zscore {z:.3} (entry ±{}, exit ±{})", self.entry_z, self.exit_z)],
            meta: Default::default(),
        }))
    }
}

polis_guest::export_strategy!(MeanReversion);

#[cfg(test)]
mod tests {
    use polis_guest::strategy::Instances;

    use super::*;

    fn answer(instances: &mut Instances<MeanReversion>, method: &str, request: &str) -> String {
        String::from_utf8(instances.answer(method, request.as_bytes())).unwrap_or_default()
    }

    #[test]
    fn an_instance_keeps_its_params_and_position_between_events() {
        let mut i = Instances::<MeanReversion>::default();
        assert_eq!(
            answer(&mut i, "validate_params", r#"{"instance":"a","params":{"colour":1}}"#),
            r#"{"ok":{"errors":["unknown param `colour` (known: notional, entry_z, exit_z)"]}}"#
        );
        assert_eq!(answer(&mut i, "validate_params", r#"{"instance":"a","params":{}}"#), r#"{"ok":{"errors":[]}}"#);
        assert_eq!(answer(&mut i, "warmup_bars", r#"{"instance":"a"}"#), r#"{"ok":20}"#);
        let event = |z: f64| {
            format!(
                r#"{{"instance":"a","fv":{{"symbol":"S","event_ts":"2020-01-01T00:00:00Z","timeframe":"1d","schema_version":"feature_vector.v3","values":{{"bb_zscore":{z}}}}},"ctx":{{"strategy_id":"mr","strategy_type":"t","version":"1.0.0","params":{{}}}},"upstream":[]}}"#
            )
        };
        assert!(answer(&mut i, "on_event", &event(-2.5)).contains(r#""direction":"long""#));
        assert_eq!(answer(&mut i, "on_event", &event(-2.6)), r#"{"ok":{"intent":null}}"#);
        assert!(answer(&mut i, "on_event", &event(0.1)).contains(r#""direction":"flat""#));
        let unknown = answer(&mut i, "on_event", &event(0.1).replace(r#""instance":"a""#, r#""instance":"b""#));
        assert!(unknown.contains("instance `b` has no params yet"), "{unknown}");
    }
}
