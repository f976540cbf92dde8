//! Cross-tier parity: `mean_reversion` written in Python on the strategy
//! SDK (`sdk/python/polis_strategy.py`), run as a sandboxed process plugin
//! with one worker for all its instances, gives the built-in's intent
//! digest on GOOG daily; and a plugin that keeps failing degrades alone.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use polis_core::Manifest;
use polis_core::policy::PluginEndpoint;
use polis_process::{ProcessConfig, ProcessPlugin, ProcessSpec, SandboxConfig};
mod common;

use common::goog;
use polis_runtime::BreakerConfig;
use polis_strategy::catalog::Catalog;
use polis_strategy::contract::StrategyPlugin;
use polis_strategy::endpoint::EndpointStrategy;
use polis_strategy::engine::Engine;
use polis_strategy::replay::{ReplayConfig, replay, replay_with};

fn python_plugin() -> Arc<ProcessPlugin> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mean_reversion_py");
    let manifest =
        Manifest::from_value(serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap())
            .unwrap();
    let python = polis_testdata::python();
    let mut sandbox = SandboxConfig::default();
    sandbox.read_paths.extend([python.prefix.clone(), python.exe.parent().unwrap().to_path_buf(), python.sdk.clone()]);
    let env = vec![("PYTHONPATH".to_owned(), python.sdk.display().to_string())];
    let spec = ProcessSpec { program: python.exe, args: vec!["plugin.py".into()], dir, env };
    let plugin = ProcessPlugin::new(
        manifest,
        spec,
        ProcessConfig { sandbox, ..ProcessConfig::default() },
        polis_core::permission::PermissionCatalog::platform(),
    );
    plugin.start_worker().unwrap();
    Arc::new(plugin)
}

const CATALOG: &str = "[[strategies]]\nstrategy_id = \"mr\"\nstrategy_type = \"mean_reversion\"\nversion = \"1.0.0\"\nparams = { entry_z = 1.8, exit_z = 0.4 }\nsymbols = [\"GOOG\"]\n";

#[test]
fn a_python_process_plugin_gives_the_builtin_mean_reversion_digest_on_goog() {
    let Some(bars) = goog() else { return };
    let catalog = Catalog::load("s.toml", CATALOG).unwrap();
    let builtin = replay(&bars, &catalog, &ReplayConfig::default()).unwrap();
    assert!(builtin.intents.len() > 20, "{}", builtin.intents.len());
    let endpoint: Arc<dyn PluginEndpoint> = python_plugin();
    let made = Arc::new(AtomicUsize::new(0));
    let mut engine = Engine::with_plugins(&catalog, BreakerConfig::default(), |_| {
        let endpoint = endpoint.clone();
        let made = made.clone();
        Some(Box::new(move || {
            let n = made.fetch_add(1, Ordering::SeqCst);
            Box::new(EndpointStrategy::new(endpoint.clone(), format!("mr/{n}"))) as Box<dyn StrategyPlugin>
        }))
    });
    let python = replay_with(&bars, &mut engine, &ReplayConfig::default()).unwrap();
    assert_eq!(python.evaluations[0].counters.errors, 0, "{:?}", python.evaluations[0].counters);
    assert_eq!(python.intents, builtin.intents);
    assert_eq!(python.digest, builtin.digest);
}

#[test]
fn invalid_params_are_reported_by_the_python_plugin_with_every_reason() {
    let endpoint: Arc<dyn PluginEndpoint> = python_plugin();
    let mut plugin = EndpointStrategy::new(endpoint, "x");
    let errors = plugin.validate_params(&serde_json::json!({"entry_z": 1, "exit_z": 2, "colour": 3})).unwrap_err();
    assert_eq!(errors, ["unknown param `colour`", "`exit_z` must be below `entry_z`"]);
    let mut ok = EndpointStrategy::new(python_plugin(), "y");
    ok.validate_params(&serde_json::json!({})).unwrap();
    assert_eq!(ok.required_features(), ["bb_zscore"]);
    assert_eq!(ok.warmup_bars(), 20);
}
