//! Benchmarks of the built-in policies, their guarded end-to-end path and
//! canonical hashing, on a Bay Wheels snapshot and a 2,000-station
//! synthetic city. Results and the command live in BENCHMARKS.md:
//!
//! ```text
//! cargo bench -p polis-rebalance --bench policies
//! ```
#![expect(clippy::unwrap_used, reason = "a benchmark harness")]

use criterion::{Criterion, criterion_group, criterion_main};
use polis_rebalance::builtins::Builtin;
use polis_rebalance::contract::{PolicyInput, RebalanceParams};
use polis_rebalance::gbfs::Feed;
use polis_rebalance::host::Decision;
use polis_rebalance::network::Network;
use polis_rebalance::snapshot::{SnapshotBuilder, SnapshotOptions};
use polis_rebalance::synth::{self, CityOptions};
use std::hint::black_box;

/// Wednesday 2023-03-08 08:00 in San Francisco: the morning peak.
const BAYWHEELS_AT: i64 = 1_678_291_200;

fn bench_policies(c: &mut Criterion, label: &str, input: &PolicyInput) {
    let params = RebalanceParams::default();
    let network = Network::new(input, &params).unwrap();
    let mut group = c.benchmark_group(label);
    group.bench_function("rebal.greedy.v1", |b| b.iter(|| black_box(Builtin::Greedy.decide(&network))));
    group.bench_function("rebal.global.v1", |b| b.iter(|| black_box(Builtin::Global.decide(&network))));
    let host = polis_rebalance::host::builtin().unwrap();
    let decision = Decision {
        subject: &polis_rebalance::contract::DecisionSubject {
            system_id: "bench".to_owned(),
            sv: "sv".to_owned(),
            decision_bucket_ts: 0,
            horizon_steps: 0,
        },
        input,
        params: &params,
        request_id: None,
        control: None,
        host: None,
    };
    group.bench_function("guarded rebal.global.v1 (validate, run, validate, hash)", |b| {
        b.iter(|| black_box(host.decide("rebal.global.v1", &decision).unwrap()))
    });
    let checked = host.check_input(input, &params).unwrap();
    group.bench_function("guarded rebal.global.v1, input checked once", |b| {
        b.iter(|| black_box(host.decide_checked("rebal.global.v1", &decision, &checked).unwrap()))
    });
    group.bench_function("input validation (the network)", |b| {
        b.iter(|| black_box(Network::new(input, &params).unwrap()))
    });
    group.bench_function("canonical hash of the input (polis writer)", |b| {
        b.iter(|| black_box(polis_core::canonical::digest_of(input).unwrap()))
    });
    group.bench_function("canonical hash of the input (via serde_json::Value)", |b| {
        b.iter(|| black_box(polis_core::canonical::digest_of(&serde_json::to_value(input).unwrap()).unwrap()))
    });
    group.finish();
}

fn baywheels(c: &mut Criterion) {
    let Some(week) = polis_testdata::find("baywheels-2023-03-06") else {
        eprintln!("skipping Bay Wheels benchmarks: shared data not found");
        return;
    };
    let feed = Feed::open(&week).unwrap();
    let snapshot = feed.snapshot_at(Some(BAYWHEELS_AT)).unwrap();
    for (k, radius_m, label) in [(25, 1200.0, "baywheels K=25 R=1200m"), (100, 3000.0, "baywheels K=100 R=3km")] {
        let built = SnapshotBuilder::new(SnapshotOptions { k, radius_m, ..SnapshotOptions::default() })
            .build(&feed, snapshot, None)
            .unwrap();
        eprintln!("{label}: {} stations, {} edges", built.input.stations.len(), built.input.neighbors.len());
        bench_policies(c, label, &built.input);
    }
}

fn synthetic(c: &mut Criterion) {
    let city = synth::generate(CityOptions { stations: 2000, days: 1, seed: 7 });
    let snapshot = city.feed.snapshot_at(Some(synth::START_TS + 9 * 3600 + 1800)).unwrap();
    let built = SnapshotBuilder::new(SnapshotOptions { k: 100, radius_m: 3000.0, ..SnapshotOptions::default() })
        .build(&city.feed, snapshot, None)
        .unwrap();
    eprintln!("synthetic: {} stations, {} edges", built.input.stations.len(), built.input.neighbors.len());
    bench_policies(c, "synthetic 2000 stations K=100", &built.input);
}

criterion_group!(benches, baywheels, synthetic);
criterion_main!(benches);
