//! Cross-tier parity: `mean_reversion` in Rust on `polis_guest::strategy`,
//! compiled to wasm and loaded from a plugin root, gives the built-in's
//! intent digest on GOOG daily; its instances' state lives in the one
//! module instance polis keeps for the plugin, which a fresh instance per
//! call would lose.

mod common;

use polis_core::policy::{CallEnv, RunControl, no_host};
use polis_plugins::Tiers;
use polis_runtime::BreakerConfig;
use polis_strategy::catalog::{Catalog, EntryState};
use polis_strategy::contract::{REQUIRED_METHODS, Strategy};
use polis_strategy::plugins::{LoadedStrategies, engine_for};
use polis_strategy::replay::{ReplayConfig, replay, replay_with};

#[test]
fn a_wasm_plugin_gives_the_builtin_mean_reversion_digest_on_goog() {
    let Some(bars) = common::goog() else { return };
    let root = common::wasm_root("wasm-goog");
    let (plugins, reports) = LoadedStrategies::load(&[&root], &Tiers::new().unwrap());
    std::fs::remove_dir_all(&root).unwrap();
    assert!(reports.iter().all(|r| r.outcome.is_ok()), "{reports:?}");
    let builtin = replay(&bars, &Catalog::load("b.toml", common::BUILTIN).unwrap(), &ReplayConfig::default()).unwrap();
    let catalog = common::plugin_catalog("strategy.mean_reversion_wasm.v1", "1.0.0");
    let checked = plugins.check(&catalog);
    assert_eq!(checked.entries[0].state, EntryState::Enabled, "{:?}", checked.entries[0].reasons);
    assert_eq!(
        (checked.entries[0].features.as_slice(), checked.entries[0].warmup_bars),
        (&["bb_zscore".to_owned()][..], 20)
    );
    let mut engine = engine_for(&catalog, BreakerConfig::default(), &plugins);
    let run = replay_with(&bars, &mut engine, &ReplayConfig::default()).unwrap();
    assert_eq!(run.evaluations[0].counters.errors, 0, "{:?}", run.evaluations[0].counters);
    assert!(builtin.intents.len() > 20);
    assert_eq!(run.intents, builtin.intents);
    assert_eq!(run.digest, builtin.digest);
}

#[test]
fn instance_state_survives_calls_only_in_a_resident_module() {
    let root = common::wasm_root("wasm-resident");
    let tiers = Tiers::new().unwrap();
    let (resident, _) = polis_plugins::load_stateful_endpoints::<Strategy>(&[&root], &tiers, REQUIRED_METHODS);
    let (fresh, _) = polis_plugins::load_endpoints::<Strategy>(&[&root], &tiers, REQUIRED_METHODS);
    std::fs::remove_dir_all(&root).unwrap();
    let control = RunControl::new();
    let host = no_host();
    let env = CallEnv { seed: 0, control: &control, host: &host };
    for (loaded, keeps) in [(&resident[0], true), (&fresh[0], false)] {
        let endpoint = &loaded.endpoint;
        let valid = endpoint.call("validate_params", br#"{"instance": "a", "params": {}}"#, &env).unwrap();
        assert_eq!(valid, br#"{"errors":[]}"#);
        let warmup = endpoint.call("warmup_bars", br#"{"instance": "a"}"#, &env);
        if keeps {
            assert_eq!(warmup.unwrap(), b"20");
        } else {
            let error = warmup.unwrap_err().to_string();
            assert!(error.contains("instance `a` has no params yet"), "{error}");
        }
    }
}
