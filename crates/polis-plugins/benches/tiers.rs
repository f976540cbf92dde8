//! One policy call per tier, side by side: builtin, wasm (fresh instance +
//! trivial call, and greedy on a full snapshot), process (round trip on a
//! persistent worker, and spawn per call).
//!
//! `cargo bench -p polis-plugins --bench tiers` after
//! `cargo build -p polis-example-greedy --release --target wasm32-unknown-unknown`.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark set-up that cannot run should stop at once")]

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use polis_core::manifest::Manifest;
use polis_core::policy::{Call, EndpointPolicy, Policy, no_host};
use polis_plugins::Tiers;
use polis_process::{ProcessPlugin, ProcessSpec};
use polis_rebalance::builtins::{Builtin, BuiltinPolicy};
use polis_rebalance::contract::{Rebalance, RebalanceParams};
use polis_rebalance::gbfs::Feed;
use polis_rebalance::snapshot::{SnapshotBuilder, SnapshotOptions};
use polis_wasm::RunControl;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifest(dir: &str) -> Manifest {
    Manifest::from_json(&std::fs::read(repo().join(dir).join("manifest.json")).unwrap()).unwrap()
}

fn tiers(c: &mut Criterion) {
    let tiers = Tiers::new().unwrap();
    let week = polis_testdata::find("baywheels-2023-03-06").expect("the Bay Wheels week in ../shared/data");
    let feed = Feed::open(&week).unwrap();
    let snapshot = feed.snapshot_at(Some(feed.snapshots[0].ts + 9 * 3600)).unwrap();
    let built = SnapshotBuilder::new(SnapshotOptions::default()).build(&feed, snapshot, None).unwrap();
    let ctx = polis_rebalance::contract::RunContext {
        system_id: built.system_id.clone(),
        sv: built.sv.clone(),
        decision_bucket_ts: built.decision_bucket_ts,
        horizon_steps: 0,
        request_id: "bench".into(),
        now_iso: "2023-03-06T09:00:00Z".into(),
        seed: 1,
    };
    let params = RebalanceParams::default();
    let (control, host) = (RunControl::new(), no_host());
    let network = polis_rebalance::network::Network::new(&built.input, &params).unwrap();
    let call = Call::<Rebalance> {
        context: &ctx,
        input: &built.input,
        params: &params,
        checked: &network,
        seed: 1,
        control: &control,
        host: &host,
    };

    let builtin = BuiltinPolicy::new(Builtin::Greedy);
    c.bench_function("builtin greedy, full snapshot", |b| b.iter(|| builtin.run(&call)));

    let trivial = wat::parse_str(
        r#"(module
            (memory (export "memory") 1)
            (data (i32.const 2048) "{\"ok\":1}")
            (func (export "polis_abi_version") (result i32) (i32.const 1))
            (func (export "polis_alloc") (param i32) (result i32) (i32.const 1024))
            (func (export "polis_run") (param i32 i32) (result i64) (i64.const 8796093022216)))"#,
    )
    .unwrap();
    let trivial = tiers.wasm.load(manifest("examples/plugins/greedy-rust"), &trivial).unwrap();
    let control = RunControl::new();
    c.bench_function("wasm fresh instance + trivial call", |b| b.iter(|| trivial.call(b"{}", 1, &control)));

    let wasm = polis_testdata::example_wasm("polis_example_greedy.wasm");
    let greedy = EndpointPolicy::<Rebalance>::new(Arc::new(
        tiers.wasm.load(manifest("examples/plugins/greedy-rust"), &wasm).unwrap(),
    ));
    c.bench_function("wasm greedy, full snapshot", |b| b.iter(|| greedy.run(&call)));

    let python = polis_process::resolve_program(&repo(), "python3", &tiers.process.sandbox).unwrap();
    let dir = repo().join("crates/polis-process/tests/fixtures/hostile").canonicalize().unwrap();
    let sdk = repo().join("sdk/python").canonicalize().unwrap();
    let mut config = tiers.process.clone();
    if let Some(prefix) = python.parent().and_then(|b| b.parent()) {
        config.sandbox.read_paths.push(prefix.to_path_buf());
    }
    config.sandbox.read_paths.push(sdk.clone());
    let env = vec![("PYTHONPATH".to_owned(), sdk.display().to_string())];
    let spec = ProcessSpec { program: python, args: vec!["plugin.py".into()], dir: dir.clone(), env };
    let small = br#"{"input":{},"params":{"allowed_bucket_quality":["ok"]}}"#;
    let worker = Arc::new(ProcessPlugin::start(manifest(dir.to_str().unwrap()), spec.clone(), config.clone()).unwrap());
    c.bench_function("process round trip, persistent worker", |b| b.iter(|| worker.call(small)));
    // What each sandbox layer costs a round trip: the same worker with one
    // layer turned off, measured beside the full sandbox.
    let mut layers = c.benchmark_group("process round trip without");
    type Toggle = fn(&mut polis_process::SandboxConfig);
    let toggles: [(&str, Toggle); 5] = [
        ("seccomp", |s| s.seccomp = false),
        ("landlock", |s| s.landlock = false),
        ("pid_namespace", |s| s.pid_namespace = false),
        ("namespaces", |s| {
            s.namespaces = false;
            s.pid_namespace = false;
        }),
        ("rlimits", |s| s.rlimits = false),
    ];
    for (layer, toggle) in toggles {
        let mut lighter = config.clone();
        toggle(&mut lighter.sandbox);
        let worker = ProcessPlugin::start(manifest(dir.to_str().unwrap()), spec.clone(), lighter).unwrap();
        layers.bench_function(layer, |b| b.iter(|| worker.call(small)));
    }
    layers.finish();
    let mut group = c.benchmark_group("process");
    group.sample_size(10);
    group.bench_function("spawn per call", |b| {
        b.iter(|| {
            let plugin = ProcessPlugin::start(manifest(dir.to_str().unwrap()), spec.clone(), config.clone()).unwrap();
            plugin.call(small)
        })
    });
    group.finish();
}

criterion_group!(benches, tiers);
criterion_main!(benches);
