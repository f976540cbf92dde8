//! Cross-tier parity: `mean_reversion` written in TypeScript on the
//! strategy SDK (`sdk/typescript/polis_strategy.ts`), compiled by `tsc` and
//! loaded from a plugin root as a process plugin, gives the built-in's
//! intent digest on GOOG daily.

mod common;

use polis_plugins::Tiers;
use polis_runtime::BreakerConfig;
use polis_strategy::catalog::{Catalog, EntryState};
use polis_strategy::contract::StrategyPlugin;
use polis_strategy::endpoint::EndpointStrategy;
use polis_strategy::plugins::{LoadedStrategies, engine_for};
use polis_strategy::replay::{ReplayConfig, replay, replay_with};

#[test]
fn a_typescript_process_plugin_gives_the_builtin_mean_reversion_digest_on_goog() {
    let Some(bars) = common::goog() else { return };
    let Some(root) = common::typescript_root("ts-goog") else { return };
    let (plugins, reports) = LoadedStrategies::load(&[&root], &Tiers::new().unwrap());
    assert!(reports.iter().all(|r| r.outcome.is_ok()), "{reports:?}");
    let builtin = replay(&bars, &Catalog::load("b.toml", common::BUILTIN).unwrap(), &ReplayConfig::default()).unwrap();
    let catalog = common::plugin_catalog("strategy.mean_reversion_ts.v1", "1.0.0");
    let checked = plugins.check(&catalog);
    assert_eq!(checked.entries[0].state, EntryState::Enabled, "{:?}", checked.entries[0].reasons);
    let mut engine = engine_for(&catalog, BreakerConfig::default(), &plugins);
    let run = replay_with(&bars, &mut engine, &ReplayConfig::default()).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(run.evaluations[0].counters.errors, 0, "{:?}", run.evaluations[0].counters);
    assert!(builtin.intents.len() > 20);
    assert_eq!(run.intents, builtin.intents);
    assert_eq!(run.digest, builtin.digest);
}

#[test]
fn the_typescript_plugin_reports_every_invalid_param_and_refuses_unvalidated_instances() {
    let Some(root) = common::typescript_root("ts-params") else { return };
    let (plugins, _) = LoadedStrategies::load(&[&root], &Tiers::new().unwrap());
    let endpoint = plugins.plugins().next().unwrap().endpoint.clone();
    let mut bad = EndpointStrategy::new(endpoint.clone(), "x");
    let errors = bad.validate_params(&serde_json::json!({"entry_z": 1, "exit_z": 2, "colour": 3})).unwrap_err();
    let mut ok = EndpointStrategy::new(endpoint.clone(), "y");
    ok.validate_params(&serde_json::json!({})).unwrap();
    let request = br#"{"instance": "never", "fv": {}, "ctx": {}, "upstream": []}"#;
    let host = polis_core::policy::no_host();
    let control = polis_core::policy::RunControl::new();
    let env = polis_core::policy::CallEnv { seed: 0, control: &control, host: &host };
    let unvalidated = endpoint.call("on_event", request, &env).unwrap_err().to_string();
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(errors, ["unknown param `colour`", "`exit_z` must be below `entry_z`"]);
    assert_eq!(ok.required_features(), ["bb_zscore"]);
    assert_eq!(ok.warmup_bars(), 20);
    assert!(unvalidated.contains("instance `never` has no params yet"), "{unvalidated}");
}
