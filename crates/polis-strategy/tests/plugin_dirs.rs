//! Strategy plugins loaded from a plugin root (`--plugin-dir`) by the
//! naming rule: the Python mean_reversion gives the built-in's digest on
//! GOOG through `engine_for`; unknown plugins, wrong versions and refused
//! params disable their entries with reasons; the declared contract claims
//! strategy manifests.

mod common;

use polis_core::contract::Contract;
use polis_plugins::Tiers;
use polis_runtime::BreakerConfig;
use polis_strategy::catalog::{Catalog, EntryState};
use polis_strategy::contract::Strategy;
use polis_strategy::plugins::{LoadedStrategies, engine_for};
use polis_strategy::replay::{ReplayConfig, replay, replay_with};

const PY: &str = "strategy.mean_reversion_py.v1";

#[test]
fn a_python_plugin_from_a_plugin_dir_gives_the_builtin_digest_on_goog() {
    let Some(bars) = common::goog() else { return };
    let root = common::python_root("dirs-goog");
    let (plugins, reports) = LoadedStrategies::load(&[&root], &Tiers::new().unwrap());
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].outcome.is_ok(), "{reports:?}");
    let builtin = replay(&bars, &Catalog::load("b.toml", common::BUILTIN).unwrap(), &ReplayConfig::default()).unwrap();
    let catalog = common::plugin_catalog(PY, "1.0.0");
    // `Catalog::load` alone does not know the plugin; `check` does.
    assert_eq!(catalog.entries[0].state, EntryState::Disabled);
    let checked = plugins.check(&catalog);
    assert_eq!(checked.entries[0].state, EntryState::Enabled, "{:?}", checked.entries[0].reasons);
    assert_eq!(checked.entries[0].features, ["bb_zscore"]);
    assert_eq!(checked.entries[0].warmup_bars, 20);
    let mut engine = engine_for(&catalog, BreakerConfig::default(), &plugins);
    let run = replay_with(&bars, &mut engine, &ReplayConfig::default()).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(run.evaluations[0].counters.errors, 0, "{:?}", run.evaluations[0].counters);
    assert!(builtin.intents.len() > 20);
    assert_eq!(run.intents, builtin.intents);
    assert_eq!(run.digest, builtin.digest);
}

#[test]
fn unknown_plugins_wrong_versions_and_refused_params_fail_closed_with_reasons() {
    let root = common::python_root("dirs-closed");
    let (plugins, _) = LoadedStrategies::load(&[&root], &Tiers::new().unwrap());
    let text = format!(
        "[[strategies]]\nstrategy_id = \"ghost\"\nstrategy_type = \"strategy.nobody.v1\"\nversion = \"1.0.0\"\nsymbols = [\"GOOG\"]\n\
         [[strategies]]\nstrategy_id = \"old\"\nstrategy_type = \"{PY}\"\nversion = \"0.9.0\"\nsymbols = [\"GOOG\"]\n\
         [[strategies]]\nstrategy_id = \"bad\"\nstrategy_type = \"{PY}\"\nversion = \"1.0.0\"\nparams = {{ colour = 1 }}\nsymbols = [\"GOOG\"]\n\
         [[strategies]]\nstrategy_id = \"good\"\nstrategy_type = \"{PY}\"\nversion = \"1.0.0\"\nsymbols = [\"GOOG\"]\n"
    );
    let checked = plugins.check(&Catalog::load("c.toml", &text).unwrap());
    std::fs::remove_dir_all(&root).unwrap();
    let states: Vec<(&str, &EntryState, Vec<String>)> =
        checked.entries.iter().map(|e| (e.entry.strategy_id.as_str(), &e.state, e.reasons.clone())).collect();
    assert_eq!(
        states,
        [
            ("bad", &EntryState::Disabled, vec!["params: unknown param `colour`".to_owned()]),
            ("ghost", &EntryState::Disabled, vec!["unknown strategy_type `strategy.nobody.v1`".to_owned()]),
            ("good", &EntryState::Enabled, vec![],),
            (
                "old",
                &EntryState::Disabled,
                vec![format!("plugin `test.strategy.mean_reversion_py.v1` (`{PY}`) is version `1.0.0`, not `0.9.0`")],
            ),
        ]
    );
}

#[test]
fn a_plugin_named_like_a_loaded_plugin_does_not_load() {
    let root = common::python_root("dirs-dupes");
    let twin = root.join("twin");
    common::copy(&root.join("mean_reversion_py"), &twin, &["plugin.py", "polis_plugin.py", "polis_strategy.py"]);
    let manifest = std::fs::read_to_string(root.join("mean_reversion_py/manifest.json")).unwrap();
    std::fs::write(twin.join("manifest.json"), manifest.replace("test.strategy.mean_reversion_py.v1", "test.twin.v1"))
        .unwrap();
    let (plugins, reports) = LoadedStrategies::load(&[&root], &Tiers::new().unwrap());
    std::fs::remove_dir_all(&root).unwrap();
    let outcomes: Vec<Result<(), String>> = reports.into_iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Ok(()),
            Err(format!(
                "plugin `test.twin.v1`: policy_version `{PY}` is already plugin `test.strategy.mean_reversion_py.v1`'s"
            )),
        ]
    );
    assert_eq!(plugins.plugins().count(), 1);
}

#[test]
fn the_declared_contract_claims_strategy_manifests_and_describes_on_event() {
    let dir = common::repo().join("crates/polis-strategy/tests/fixtures/mean_reversion_py/manifest.json");
    let manifest = polis_core::Manifest::from_json(&std::fs::read(dir).unwrap()).unwrap();
    assert!(Strategy::claims(&manifest));
    assert_eq!((Strategy::ID, Strategy::METHOD), ("strategy.v1", "on_event"));
    let schemas = polis_core::contract::schemas::<Strategy>();
    let input = schemas.input.to_string();
    for field in ["instance", "fv", "ctx", "upstream"] {
        assert!(input.contains(&format!("\"{field}\"")), "{input}");
    }
    assert!(schemas.output.to_string().contains("\"intent\""), "{}", schemas.output);
    assert_eq!(
        polis_strategy::contract::REQUIRED_METHODS,
        ["validate_params", "required_features", "warmup_bars", "on_event"]
    );
}
