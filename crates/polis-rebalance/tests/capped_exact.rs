//! `rebal.global.v1` against the exact capped optimum on real snapshots.
//!
//! Snapshots spread evenly over the Bay Wheels week (default effort: 60
//! bikes, 30 stations, 20 moves) are solved exactly as a MIP by HiGHS
//! (scipy.optimize.milp, `tests/exact_mip.py`, installed by `scripts/test`'s
//! set-up stage). Per snapshot the test checks that the exact optimum lies
//! between global's bikes and the bound global reports, and that global
//! delivers at least greedy and the original's bikes-per-metre rule; over
//! the week, that global reaches at least 98 % of the exact optimum's
//! bikes on average (see the floor below). The per-snapshot table is printed (`--nocapture`).

#![expect(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::io::Write;
use std::process::{Command, Stdio};

use polis_rebalance::builtins::Builtin;
use polis_rebalance::contract::RebalanceParams;
use polis_rebalance::gbfs::Feed;
use polis_rebalance::network::Network;
use polis_rebalance::snapshot::{SnapshotBuilder, SnapshotOptions};
use polis_rebalance::{capped, global};
use serde_json::{Value, json};

/// Snapshots per neighbourhood size: enough to cover the week's rhythm,
/// few enough that the MIPs solve in well under a minute.
const SNAPSHOTS: usize = 14;

/// The MIP form of one network: transfer edges with their largest transfer.
fn mip_instance(network: &Network) -> Value {
    let stations = network.stations();
    let edges: Vec<Value> = global::transfer_edges(network)
        .into_iter()
        .map(|e| {
            let edge = network.edges()[e];
            let (u, v) = (&stations[edge.from], &stations[edge.to]);
            json!([edge.from, edge.to, u.excess(u.bikes).min(v.need(v.bikes))])
        })
        .collect();
    let effort = network.effort();
    json!({
        "stations": network.len(),
        "excess": stations.iter().map(|s| s.excess(s.bikes)).collect::<Vec<_>>(),
        "need": stations.iter().map(|s| s.need(s.bikes)).collect::<Vec<_>>(),
        "budget": effort.bike_move_budget_per_step,
        "max_moves": effort.max_moves,
        "max_stations": effort.max_stations_touched,
        "edges": edges,
    })
}

/// Runs the MIP script, or says why it cannot (`None` means skip).
fn exact(instances: &[Value]) -> Option<Vec<Value>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/exact_mip.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(serde_json::to_vec(instances).unwrap().as_slice()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.code() == Some(3) {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert!(std::env::var_os("CI").is_none(), "{why}: scripts/test's set-up stage installs it with pip");
        eprintln!("skipping the exact comparison: {why} (pip install scipy)");
        return None;
    }
    assert!(out.status.success(), "exact_mip.py failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn compare(k: usize, radius_m: f64) {
    let Some(week) = polis_testdata::require("baywheels-2023-03-06") else {
        return;
    };
    let feed = Feed::open(&week).unwrap();
    let mut builder = SnapshotBuilder::new(SnapshotOptions { k, radius_m, ..SnapshotOptions::default() });
    let step = feed.snapshots.len() / SNAPSHOTS;
    let inputs: Vec<_> = (0..SNAPSHOTS)
        .map(|i| {
            let snapshot = &feed.snapshots[i * step + step / 2];
            (snapshot.ts, builder.build(&feed, snapshot, None).unwrap().input)
        })
        .collect();
    let params = RebalanceParams::default();
    let networks: Vec<_> = inputs.iter().map(|(_, input)| Network::new(input, &params).unwrap()).collect();
    let Some(exact) = exact(&networks.iter().map(mip_instance).collect::<Vec<_>>()) else {
        return;
    };
    let (mut ratio_sum, mut worst) = (0.0, f64::INFINITY);
    eprintln!("K={k} R={radius_m}m: ts, greedy, per-metre, global, exact, bound, MIP s");
    for (((ts, _), network), exact) in inputs.iter().zip(&networks).zip(&exact) {
        assert_eq!(exact["status"], "optimal", "snapshot {ts}: HiGHS did not prove optimality: {exact}");
        let optimum = exact["bikes"].as_u64().unwrap();
        let plan = global::plan(network);
        let got = plan.chosen.delivered;
        let greedy = u64::from(Builtin::Greedy.decide(network).summary.bikes_moved_total);
        let per_metre = capped::per_metre_bikes(network);
        eprintln!(
            "{ts} {greedy:>4} {per_metre:>4} {got:>4} {optimum:>4} {:>4} {:.2}",
            plan.bound,
            exact["seconds"].as_f64().unwrap()
        );
        assert!(got <= optimum, "snapshot {ts}: global claims {got} bikes, above the exact optimum {optimum}");
        assert!(optimum <= plan.bound, "snapshot {ts}: the bound {} is below the exact optimum {optimum}", plan.bound);
        assert!(got >= greedy, "snapshot {ts}: global {got} < greedy {greedy}");
        assert!(got >= per_metre, "snapshot {ts}: global {got} < bikes-per-metre {per_metre}");
        let ratio = if optimum == 0 { 1.0 } else { got as f64 / optimum as f64 };
        ratio_sum += ratio;
        worst = worst.min(ratio);
    }
    let mean = ratio_sum / SNAPSHOTS as f64;
    eprintln!(
        "K={k}: global reaches {:.2} % of the exact optimum on average, worst {:.2} %",
        mean * 100.0,
        worst * 100.0
    );
    // Issue 11's target: a mean gap of at most 2 %. Measured 99.08 % at
    // K=25 (worst 95.00 %).
    assert!(mean >= 0.98, "K={k}: mean {:.2} % of the exact optimum, below 98 %", mean * 100.0);
}

#[test]
fn global_reaches_the_exact_capped_optimum_over_the_week_at_k25() {
    compare(25, 1200.0);
}

#[test]
#[ignore = "HiGHS needs over 5 minutes for these 14 K=100 MIPs; run by hand"]
fn global_reaches_the_exact_capped_optimum_over_the_week_at_k100() {
    compare(100, 3000.0);
}
