//! Replay behaviour: observed data reproduced, bikes conserved, demand
//! shared, failures contained, outputs reproducible and verifiable.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::sync::Arc;

use polis_core::manifest::Manifest;
use polis_core::policy::Call;
use polis_core::policy::{Policy, PolicyError};
use polis_rebalance::contract::{Move, PolicyOutput, Rebalance, Summary};
use polis_rebalance::gbfs::Feed;
use polis_rebalance::host::Host;
use polis_rebalance::replay::{self, DemandModel, NOOP_VERSION, ReplayConfig, output};
use polis_rebalance::synth::{self, CityOptions};
use polis_runtime::HostLimits;
use proptest::prelude::*;

fn host() -> Host {
    Host::new(replay::with_noop(polis_rebalance::builtins::registry()), HostLimits::default()).unwrap()
}

fn city(stations: usize, seed: u64) -> Feed {
    synth::generate(CityOptions { stations, days: 1, seed }).feed
}

fn day(feed: &Feed) -> ReplayConfig {
    let from = feed.snapshots[0].ts;
    ReplayConfig::new(from, from + 86_400)
}

/// Empty and full station-seconds straight from the snapshots: each
/// station listed in a snapshot keeps that state until the next snapshot
/// (listed there or not) or the window end; a station missing from a
/// snapshot counts nothing until it is listed again.
fn observed_station_seconds(feed: &Feed, from: i64, to: i64) -> (u64, u64) {
    let first = feed.snapshots.partition_point(|s| s.ts <= from).saturating_sub(1);
    let (mut empty, mut full) = (0u64, 0u64);
    for (i, snapshot) in feed.snapshots.iter().enumerate().skip(first) {
        if snapshot.ts >= to {
            break;
        }
        let start = snapshot.ts.max(from);
        let end = feed.snapshots.get(i + 1).map_or(to, |s| s.ts.min(to));
        let seconds = (end - start).max(0) as u64;
        for row in &snapshot.rows {
            if row.bikes == 0 {
                empty += seconds;
            }
            if row.docks == 0 {
                full += seconds;
            }
        }
    }
    (empty, full)
}

#[expect(clippy::unwrap_used, reason = "a test helper: a failed replay fails the test")]
fn assert_noop_reproduces(feed: &Feed, from: i64, to: i64) {
    let mut config = ReplayConfig::new(from, to);
    config.policies = vec!["noop".to_owned()];
    config.jump_threshold = 0;
    let replay = replay::run(feed, &host(), &config, &()).unwrap();
    let kpis = replay.runs[0].kpis;
    let (empty, full) = observed_station_seconds(feed, replay.config.from, to);
    assert!(empty > 0 && full > 0, "the window should have empty and full stations");
    assert_eq!((kpis.empty_station_s, kpis.full_station_s), (empty, full));
    assert_eq!((kpis.failed_rentals, kpis.failed_returns, kpis.bikes_moved), (0, 0, 0));
}

#[test]
fn noop_flow_replay_reproduces_the_synthetic_city() {
    let feed = city(60, 3);
    let config = day(&feed);
    assert_noop_reproduces(&feed, config.from, config.to);
}

#[test]
fn noop_flow_replay_reproduces_observed_bay_wheels_minutes() {
    let Some(dir) = polis_testdata::require("baywheels-2023-03-06") else {
        return;
    };
    let feed = Feed::open(&dir).unwrap();
    // Tuesday 2023-03-07, a whole UTC day, with the gaps and the stations
    // that come and go in the archive.
    assert_noop_reproduces(&feed, 1_678_147_200, 1_678_233_600);
}

#[test]
fn removing_jumps_changes_noop_only_where_vans_moved_bikes() {
    let feed = city(60, 3);
    let mut config = day(&feed);
    config.policies = vec!["noop".to_owned()];
    config.jump_threshold = 1;
    let everything_a_jump = replay::run(&feed, &host(), &config, &()).unwrap();
    let kpis = everything_a_jump.runs[0].kpis;
    assert!(kpis.jumps_removed > 0);
    assert_eq!(kpis.jumps_removed, everything_a_jump.jumps_removed);
    // With every change removed, nothing happens to any station.
    assert_eq!((kpis.failed_rentals, kpis.failed_returns), (0, 0));
    assert!(everything_a_jump.runs[0].ledger.balanced());
    assert_eq!(everything_a_jump.runs[0].ledger.rentals + everything_a_jump.runs[0].ledger.returns, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn flow_replay_moves_never_create_or_destroy_bikes(
        seed in 0u64..1_000,
        stations in 12usize..40,
        lag in proptest::option::of(5.0f64..40.0),
        jump in 0u32..8,
        budget in 1u32..80,
    ) {
        let feed = city(stations, seed);
        let mut config = day(&feed);
        config.to = config.from + 6 * 3600 + 7 * 3600; // through the morning rush
        config.speed_kmh = lag;
        config.jump_threshold = jump;
        config.effort.bike_move_budget_per_step = budget;
        let replay = replay::run(&feed, &host(), &config, &()).unwrap();
        let noop = &replay.runs[0];
        for run in &replay.runs {
            prop_assert!(run.ledger.balanced(), "{} {:?}", run.policy, run.ledger);
            // Flow demand is the same for every policy; only who gets
            // served differs, and moves add no bikes: every bike held is
            // one that entered or was returned.
            prop_assert_eq!(run.ledger.entered, noop.ledger.entered);
            prop_assert_eq!(run.kpis.errors, 0);
            let moved: u64 = run.moves.iter().map(|m| u64::from(m.bikes)).sum();
            prop_assert_eq!(moved, run.kpis.bikes_moved);
        }
    }
}

#[test]
fn stochastic_demand_is_common_to_every_policy() {
    let feed = city(40, 5);
    let mut config = day(&feed);
    config.demand = DemandModel::Stochastic { replications: 3 };
    let replay = replay::run(&feed, &host(), &config, &()).unwrap();
    assert_eq!(replay.runs.len(), 9);
    for r in 0..3 {
        let attempts: Vec<(u64, u64)> = replay
            .runs
            .iter()
            .filter(|run| run.replication == r)
            .map(|run| (run.ledger.rentals + run.kpis.failed_rentals, run.ledger.returns + run.kpis.failed_returns))
            .collect();
        assert_eq!(attempts.len(), 3);
        assert!(attempts.iter().all(|a| *a == attempts[0]), "replication {r}: {attempts:?}");
        assert!(attempts[0].0 > 0 && attempts[0].1 > 0);
    }
    let per_rep: Vec<u64> =
        replay.runs.iter().filter(|run| run.policy == NOOP_VERSION).map(|run| run.ledger.rentals).collect();
    assert!(per_rep.windows(2).any(|w| w[0] != w[1]), "replications should differ: {per_rep:?}");
    let constrained = replay.summary.policies[2].get("constrained_station_minutes").unwrap();
    assert!(constrained.value.ci95_low < constrained.value.ci95_high);
    assert!(constrained.delta_vs_noop.unwrap().mean < 0.0, "global should beat noop: {constrained:?}");
}

#[test]
fn the_same_seed_writes_byte_identical_files_and_another_seed_does_not() {
    let feed = city(40, 5);
    let mut config = day(&feed);
    config.to = config.from + 12 * 3600;
    config.demand = DemandModel::Stochastic { replications: 2 };
    let first = output::files(&replay::run(&feed, &host(), &config, &()).unwrap());
    let second = output::files(&replay::run(&feed, &host(), &config, &()).unwrap());
    assert_eq!(first, second);
    config.seed += 1;
    let other = output::files(&replay::run(&feed, &host(), &config, &()).unwrap());
    assert_ne!(first[0], other[0], "kpis.csv should depend on the seed");
}

/// A policy that returns a move along an edge that does not exist.
struct Rogue(Manifest);

impl Policy<Rebalance> for Rogue {
    fn manifest(&self) -> &Manifest {
        &self.0
    }

    fn run(&self, call: &Call<'_, Rebalance>) -> Result<PolicyOutput, PolicyError> {
        let from = &call.input.stations[0];
        if from.bikes > 1000 {
            return Err(PolicyError::Failed("unreachable".into()));
        }
        Ok(PolicyOutput {
            moves: vec![Move {
                move_rank: 1,
                from_station_key: from.station_key.clone(),
                to_station_key: "nowhere".into(),
                bikes_moved: 5,
                dist_m: 1.0,
                budget_exhausted: false,
                neighbor_exhausted: false,
                reason_codes: vec!["rogue".into()],
            }],
            summary: Summary { bikes_moved_total: 5, stations_touched: 2, no_op: false },
            diagnostics: None,
        })
    }
}

#[test]
fn invalid_outputs_are_counted_and_never_applied() {
    let mut manifest = polis_rebalance::builtins::Builtin::Greedy.manifest();
    manifest.plugin_id = "test.rogue.v1".into();
    manifest.policy_version = "test.rogue.v1".into();
    let mut registry = replay::with_noop(polis_rebalance::builtins::registry());
    registry.register(Arc::new(Rogue(manifest)), None).unwrap();
    let host = Host::new(registry, HostLimits::default()).unwrap();
    let feed = city(30, 2);
    let mut config = day(&feed);
    config.to = config.from + 3 * 3600;
    config.policies = vec!["noop".into(), "test.rogue.v1".into()];
    let replay = replay::run(&feed, &host, &config, &()).unwrap();
    let rogue = &replay.runs[1];
    assert_eq!(rogue.kpis.decisions, 36);
    assert_eq!(rogue.kpis.errors, 36);
    assert_eq!((rogue.kpis.bikes_moved, rogue.moves.len()), (0, 0));
    assert_eq!(rogue.kpis.empty_station_s, replay.runs[0].kpis.empty_station_s);
    let record = &rogue.records[0];
    assert_eq!(record.error.as_ref().unwrap().code, "run.invalid_output");
    assert!(record.output_sha256.is_none() && record.input_sha256.is_some());
}

#[test]
fn unknown_policies_and_empty_windows_are_refused() {
    let feed = city(20, 1);
    let mut config = day(&feed);
    config.policies = vec!["rebal.nothing.v9".into()];
    let error = replay::run(&feed, &host(), &config, &()).unwrap_err();
    assert_eq!(error.code(), "replay.unknown_policy");
    let mut config = day(&feed);
    config.from += 10 * 86_400;
    config.to += 10 * 86_400;
    assert_eq!(replay::run(&feed, &host(), &config, &()).unwrap_err().code(), "replay.no_data");
}

#[test]
fn verify_finds_no_drift_on_a_fresh_replay_and_exactly_a_tampered_hash() {
    let feed = city(40, 9);
    let mut config = day(&feed);
    config.to = config.from + 8 * 3600;
    config.speed_kmh = Some(20.0);
    let host = host();
    let replay = replay::run(&feed, &host, &config, &()).unwrap();
    let jsonl = output::runs_jsonl(&replay);
    let stored = output::parse_runs(&jsonl).unwrap();
    assert_eq!(stored.len(), 3 * 96);
    let report = output::verify(&feed, &host, &config, &stored, &()).unwrap();
    assert_eq!(report.checked, 3 * 96);
    assert!(report.drifts.is_empty(), "{:?}", report.drifts);

    // Edit one stored output hash: a greedy decision with moves.
    let mut lines: Vec<String> = jsonl.lines().map(str::to_owned).collect();
    let target = stored.iter().position(|r| r.policy == "rebal.greedy.v1" && r.moves > 0).unwrap();
    let real = stored[target].output_sha256.unwrap().to_hex();
    let fake = format!("{}{}", if real.starts_with('0') { "1" } else { "0" }, &real[1..]);
    lines[target] = lines[target].replace(&real, &fake);
    let tampered = output::parse_runs(&lines.join("\n")).unwrap();
    let report = output::verify(&feed, &host, &config, &tampered, &()).unwrap();
    assert_eq!(report.drifts.len(), 1, "{:?}", report.drifts);
    let drift = &report.drifts[0];
    assert_eq!(
        (
            drift.key.policy.as_str(),
            drift.key.decision_bucket_ts,
            drift.field,
            drift.expected.as_str(),
            drift.actual.as_str()
        ),
        ("rebal.greedy.v1", stored[target].decision_bucket_ts, "output_sha256", fake.as_str(), real.as_str())
    );
}
