//! Invariants over random bar series: features are finite and appear at
//! their TA-Lib lookback; a replay's digest depends on nothing but its
//! bars and catalog; intents always pass the semantic validator.

use std::sync::Arc;

use polis_strategy::bars::Bar;
use polis_strategy::catalog::Catalog;
use polis_strategy::contract::validate_intent;
use polis_strategy::features::{Feature, FeatureSet, Pipeline};
use polis_strategy::replay::{ReplayConfig, replay};
use proptest::prelude::*;

fn series(steps: &[(i8, u8, u8, bool)]) -> Vec<Bar> {
    let mut close: f64 = 100.0;
    steps
        .iter()
        .enumerate()
        .map(|(i, &(step, up, down, flat))| {
            let open = close;
            if !flat {
                close = (close * (1.0 + f64::from(step) / 1000.0)).max(0.01);
            }
            Bar {
                symbol: "P".into(),
                ts: i as i64 * 86_400,
                open,
                high: open.max(close) * (1.0 + f64::from(up) / 10_000.0),
                low: open.min(close) * (1.0 - f64::from(down) / 10_000.0),
                close,
                volume: if flat { 0.0 } else { f64::from(up) * 100.0 },
            }
        })
        .collect()
}

const CATALOG: &str = "[[strategies]]\nstrategy_id = \"legacy\"\nstrategy_type = \"legacy_macd_rsi\"\nversion = \"1.0.0\"\nsymbols = [\"P\"]\n\n[[strategies]]\nstrategy_id = \"mr\"\nstrategy_type = \"mean_reversion\"\nversion = \"1.0.0\"\nparams = { entry_z = 1.0, exit_z = 0.2 }\nsymbols = [\"P\"]\n\n[[strategies]]\nstrategy_id = \"trend\"\nstrategy_type = \"trend_multifactor\"\nversion = \"1.0.0\"\nparams = { ema_period = 10, breakout_period = 5, threshold = 0.3 }\nsymbols = [\"P\"]\n\n[[strategies]]\nstrategy_id = \"overlay\"\nstrategy_type = \"volatility_overlay\"\nversion = \"1.0.0\"\npriority = 5\nparams = { sources = [\"mr\", \"trend\"] }\nsymbols = [\"P\"]\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn features_are_finite_and_start_at_their_lookback(steps in prop::collection::vec((-60i8..60, 0u8..100, 0u8..100, prop::bool::weighted(0.1)), 40..200)) {
        let bars = series(&steps);
        let set = Arc::new(FeatureSet::default_set());
        let mut p = Pipeline::new(set.clone(), "P");
        for (i, bar) in bars.iter().enumerate() {
            let row = p.push(bar);
            for (name, v) in set.names().iter().zip(&row.values) {
                let first = Feature::parse(name).unwrap().first_bar();
                if let Some(v) = v {
                    prop_assert!(v.is_finite(), "{name} at {i}: {v}");
                    prop_assert!(i >= first, "{name} present at {i} before {first}");
                } else if name != "bb_zscore" {
                    prop_assert!(i < first, "{name} absent at {i} after {first}");
                }
            }
        }
    }

    #[test]
    fn replays_are_identical_and_every_intent_is_valid(steps in prop::collection::vec((-60i8..60, 0u8..100, 0u8..100, prop::bool::weighted(0.05)), 60..300)) {
        let bars = series(&steps);
        let catalog = Catalog::load("p.toml", CATALOG).unwrap();
        let a = replay(&bars, &catalog, &ReplayConfig::default()).unwrap();
        let b = replay(&bars, &catalog, &ReplayConfig::default()).unwrap();
        prop_assert_eq!(a.digest, b.digest);
        for r in &a.intents {
            prop_assert!(validate_intent(&r.intent, "P", &r.intent.strategy_id).is_ok());
        }
        for e in &a.evaluations {
            prop_assert!(e.total_return.is_finite() && e.sharpe.is_finite() && (0.0..=1.0).contains(&e.max_drawdown));
        }
    }
}
