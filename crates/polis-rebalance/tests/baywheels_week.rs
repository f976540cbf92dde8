//! Both built-ins on every snapshot of the real Bay Wheels week: every
//! output passes the contract's schema and semantic validation (through the
//! guard), and the global optimiser never delivers fewer bikes than greedy.

use polis_rebalance::gbfs::Feed;
use polis_rebalance::host::Decision;
use polis_rebalance::snapshot::{SnapshotBuilder, SnapshotOptions};

#[test]
fn every_week_snapshot_yields_valid_outputs_and_global_delivers_at_least_greedy() {
    let Some(week) = polis_testdata::require("baywheels-2023-03-06") else {
        return;
    };
    let feed = Feed::open(&week).unwrap();
    assert_eq!(feed.snapshots.len(), 875, "the week has 875 snapshots");
    let host = polis_rebalance::host::builtin().unwrap();
    let mut builder = SnapshotBuilder::new(SnapshotOptions::default());
    let (mut greedy_total, mut global_total, mut optimal, mut strictly_more, mut uncapped) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for snapshot in &feed.snapshots {
        let built = builder.build(&feed, snapshot, None).unwrap();
        let params = Default::default();
        let decision = Decision {
            subject: &polis_rebalance::contract::DecisionSubject {
                system_id: built.system_id.clone(),
                sv: built.sv.clone(),
                decision_bucket_ts: built.decision_bucket_ts,
                horizon_steps: 0,
            },
            input: &built.input,
            params: &params,
            request_id: None,
            control: None,
            host: None,
        };
        let checked = host.check_input(&built.input, &params).unwrap();
        let greedy = host.decide_checked("rebal.greedy.v1", &decision, &checked).unwrap();
        let global = host.decide_checked("rebal.global.v1", &decision, &checked).unwrap();
        let (g, o) = (greedy.output.summary.bikes_moved_total, global.output.summary.bikes_moved_total);
        assert!(o >= g, "snapshot {}: global moved {o} bikes, greedy {g}", snapshot.ts);
        // The original system's bikes-per-metre heuristic is the other
        // baseline global never falls below.
        let network = polis_rebalance::network::Network::new(&built.input, &params).unwrap();
        let per_metre = polis_rebalance::capped::per_metre_bikes(&network);
        assert!(
            u64::from(o) >= per_metre,
            "snapshot {}: global moved {o} bikes, bikes-per-metre {per_metre}",
            snapshot.ts
        );
        greedy_total += u64::from(g);
        global_total += u64::from(o);
        strictly_more += u64::from(o > g);
        let diagnostics = global.output.diagnostics.as_ref().unwrap();
        optimal += u64::from(diagnostics["optimal"] == serde_json::json!(true));
        uncapped += diagnostics["uncapped_optimum_bikes"].as_u64().unwrap();
    }
    eprintln!(
        "bay wheels week, 875 snapshots: greedy {greedy_total} bikes, global {global_total} bikes; \
         global delivered more on {strictly_more} snapshots and was provably optimal on {optimal}; \
         the uncapped optimum is {uncapped} bikes"
    );
    assert!(global_total > greedy_total);
}
