//! The Rust guest SDK's host functions end to end: the example in
//! `examples/plugins/seeded-rust`, compiled from Rust with `polis_guest::host`,
//! logs through `log:emit` and draws seeded numbers through `random`.
//!
//! `scripts/test` builds the example for `wasm32-unknown-unknown` first.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use polis_core::manifest::Manifest;
use polis_rebalance::builtins;
use polis_rebalance::contract::{Rebalance, RebalanceParams};
use polis_rebalance::host::{Decision, Host};
use polis_runtime::HostLimits;
use polis_wasm::{LogLine, WasmConfig, WasmRuntime};
use serde_json::Value;

const WASM: &str = "polis_example_seeded.wasm";

fn manifest() -> Manifest {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins/seeded-rust/manifest.json");
    Manifest::from_json(&std::fs::read(path).unwrap()).unwrap()
}

/// A host with the example loaded, and the log lines it emits.
fn host() -> (Host, Arc<Mutex<Vec<LogLine>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let lines = Arc::clone(&lines);
        Arc::new(move |line: &LogLine| lines.lock().unwrap().push(line.clone()))
    };
    let runtime = WasmRuntime::new(WasmConfig { log_sink: sink, ..WasmConfig::default() }).unwrap();
    let module = runtime.load(manifest(), &polis_testdata::example_wasm(WASM)).unwrap();
    let mut registry = builtins::registry();
    registry.register(Arc::new(polis_core::EndpointPolicy::<Rebalance>::new(Arc::new(module))), None).unwrap();
    (Host::new(registry, HostLimits::default()).unwrap(), lines)
}

/// The example's draws for a decision at `bucket`.
fn draws(host: &Host, bucket: i64) -> Value {
    let input = polis_rebalance::synth::tiny_input();
    let params = RebalanceParams::default();
    let decision = Decision {
        subject: &polis_rebalance::contract::DecisionSubject {
            system_id: "test".to_owned(),
            sv: "sv1".to_owned(),
            decision_bucket_ts: bucket,
            horizon_steps: 0,
        },
        input: &input,
        params: &params,
        request_id: None,
        control: None,
        host: None,
    };
    let record = host.decide("rebal.seeded_wasm.v1", &decision).unwrap();
    record.output.diagnostics.unwrap()["draws"].clone()
}

#[test]
fn a_rust_plugin_logs_through_the_sdk_tagged_with_its_plugin_id() {
    let (host, lines) = host();
    draws(&host, 1_678_090_200);
    let lines = lines.lock().unwrap();
    assert_eq!(*lines, [LogLine { plugin_id: "example.seeded_wasm.v1".into(), message: "saw 2 stations".into() }]);
}

#[test]
fn a_rust_plugin_draws_the_same_numbers_for_the_same_run_and_others_for_another() {
    let (host, _) = host();
    let first = draws(&host, 1_678_090_200);
    assert_eq!(first.as_array().unwrap().len(), 3);
    assert_ne!(first[0], first[1], "three draws of one run differ");
    assert_eq!(draws(&host, 1_678_090_200), first, "a rerun draws the same numbers");
    assert_ne!(draws(&host, 1_678_090_500), first, "another run key seeds another sequence");
}

#[test]
fn without_its_permissions_the_same_module_does_not_load() {
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let mut manifest = manifest();
    manifest.permissions.retain(|p| p != "log:emit");
    let Err(error) = runtime.load(manifest, &polis_testdata::example_wasm(WASM)) else {
        panic!("the module loaded without `log:emit`");
    };
    assert!(error.to_string().contains("needs permission `log:emit`"), "{error}");
}
