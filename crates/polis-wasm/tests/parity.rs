//! Cross-tier parity: the Rust wasm re-implementation of `rebal.greedy.v1`
//! (`examples/plugins/greedy-rust`) returns byte-identical outputs to the
//! built-in on every Bay Wheels snapshot of one day.
//!
//! `scripts/test` builds the example for `wasm32-unknown-unknown` before
//! `cargo test`; run that command (or the `cargo build` it shows) first.

use std::path::PathBuf;
use std::sync::Arc;

use polis_core::manifest::Manifest;
use polis_rebalance::builtins;
use polis_rebalance::contract::Rebalance;
use polis_rebalance::gbfs::Feed;
use polis_rebalance::host::Host;
use polis_rebalance::parity;
use polis_runtime::HostLimits;
use polis_wasm::{WasmConfig, WasmRuntime};

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins/greedy-rust")
}

#[test]
fn wasm_greedy_matches_the_builtin_on_every_snapshot_of_a_day() {
    let Some(week) = polis_testdata::require("baywheels-2023-03-06") else {
        return;
    };
    let manifest = Manifest::from_json(&std::fs::read(example_dir().join("manifest.json")).unwrap()).unwrap();
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let module = runtime.load(manifest, &polis_testdata::example_wasm("polis_example_greedy.wasm")).unwrap();
    let digest = module.artifact_digest();
    let mut registry = builtins::registry();
    registry.register(Arc::new(polis_core::EndpointPolicy::<Rebalance>::new(Arc::new(module))), Some(digest)).unwrap();
    let host = Host::new(registry, HostLimits::default()).unwrap();

    let feed = Feed::open(&week).unwrap();
    // A day of snapshots every ~8 minutes, most of which need moves: the
    // comparison is not vacuous.
    let parity = parity::compare(&host, &feed, feed.snapshots[0].ts, 86_400, "rebal.greedy.v1", "rebal.greedy_wasm.v1");
    parity.unwrap().assert_identical(100);
}
