//! One suite, run against both backends: every behaviour is checked on a
//! fresh SQLite file and on a fresh PostgreSQL schema.
//!
//! PostgreSQL is found at `POLIS_TEST_DATABASE_URL` (by default
//! `postgres://postgres@127.0.0.1:5432/test`). Without a server the
//! PostgreSQL half says it was skipped, except under CI, where it fails.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test code: a failing unwrap is a failing test")]

use std::collections::BTreeSet;

use polis_store::rebalance::{DecisionCompletion, MoveRow, NewDecision, NewSnapshot, SnapshotRecord, StationRow};
use polis_store::{
    AgentPolicy, ApprovalRecord, JobResult, JobStatus, NewJob, PluginRecord, SessionRow, Store, StoreConfig,
    StoredInput, WorldPut, WorldRow, scratch,
};

async fn sqlite() -> Store {
    let dir = std::env::temp_dir().join(format!(
        "polis-store-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("polis.db").display());
    Store::connect(&url, &StoreConfig::default()).await.unwrap()
}

async fn postgres() -> Option<Store> {
    Some(Store::connect(&postgres_url().await?, &StoreConfig::default()).await.unwrap())
}

/// A fresh, empty PostgreSQL schema's URL.
async fn postgres_url() -> Option<String> {
    let base = scratch::postgres_base_url();
    match scratch::postgres_schema(&base, "store").await {
        Ok(url) => Some(url),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI requires PostgreSQL at {base}: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no PostgreSQL at {base}: {e}");
            None
        }
    }
}

/// Runs `$name(store)` once per backend, as `$name::sqlite` and
/// `$name::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::sqlite().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(store) = super::postgres().await {
                    super::$name(store).await;
                }
            }
        }
    )*};
}

on_both_backends!(
    an_agent_policy_put_replaces_the_previous_one,
    a_world_id_holds_one_document_and_a_session_advances_only_from_the_version_it_read,
    a_plugin_version_is_approved_once_and_the_first_approval_stands,
    ingest_keeps_the_first_copy_of_a_snapshot,
    snapshots_resolve_by_sv_and_by_bucket,
    enqueue_is_idempotent_by_run_key,
    a_claimed_run_is_not_claimed_again_until_its_lease_expires,
    only_the_lease_holder_stores_a_result,
    concurrent_workers_claim_each_run_exactly_once,
    cancel_stops_a_run_and_asking_again_requeues_it,
    runs_whose_lease_keeps_expiring_end_in_error,
    moves_page_in_rank_order_and_counts_group_by_kind_status_and_policy,
    allowlist_rows_for_a_system_override_the_wildcard,
    a_worker_claims_only_the_kinds_it_knows,
    a_generic_job_keeps_its_key_payload_and_result,
    inputs_are_stored_once_under_their_digest,
);

fn snapshot(system: &str, ts: i64, graph: &str) -> NewSnapshot {
    NewSnapshot {
        record: SnapshotRecord {
            system_id: system.into(),
            snapshot_ts: ts,
            sv: format!("sv1-{system}-{ts}"),
            decision_bucket_ts: ts - ts.rem_euclid(300),
            view_snapshot_id: format!("{system}@{ts}"),
            view_snapshot_sha256: format!("{:064x}", ts),
            body_json: format!(r#"{{"stations":[],"ts":{ts}}}"#),
            graph_sha256: graph.into(),
        },
        neighbors_json: format!(r#"["{graph}"]"#),
    }
}

fn run(n: usize) -> NewDecision {
    NewDecision {
        job_id: format!("run-{n:06}"),
        run_key_sha256: format!("{n:064x}"),
        system_id: "city".into(),
        sv: "sv1-city-1000".into(),
        decision_bucket_ts: 900,
        policy_version: if n.is_multiple_of(2) { "rebal.greedy.v1".into() } else { "rebal.global.v1".into() },
        policy_spec_sha256: format!("{:064x}", 7),
        horizon_steps: 0,
        policy_spec_json: "{}".into(),
        view_snapshot_id: "city@1000".into(),
        view_snapshot_sha256: format!("{:064x}", 1000),
        submitted_by: None,
    }
}

fn completion(moves: usize) -> DecisionCompletion {
    DecisionCompletion {
        result: JobResult {
            plugin_id: Some("polis.rebal.greedy.v1".into()),
            manifest_sha256: Some("m".repeat(64)),
            input_sha256: Some("i".repeat(64)),
            output_sha256: Some("o".repeat(64)),
            result_json: r#"{"moves":[]}"#.into(),
            plugin_us: Some(42),
        },
        diagnostics_json: Some(r#"{"k":1}"#.into()),
        moves: (1..=moves)
            .map(|rank| MoveRow {
                move_rank: rank as i64,
                from_station_key: format!("s{rank}"),
                to_station_key: format!("t{rank}"),
                bikes_moved: 2,
                dist_m: 120.5,
                budget_exhausted: rank == moves,
                neighbor_exhausted: false,
                reason_codes_json: r#"["greedy"]"#.into(),
            })
            .collect(),
    }
}

const DECIDE: &[&str] = &[polis_store::rebalance::DECIDE_KIND];

async fn ingest_keeps_the_first_copy_of_a_snapshot(store: Store) {
    let stations = vec![StationRow {
        system_id: "city".into(),
        station_key: "a".into(),
        name: "A".into(),
        lat: 37.5,
        lon: -122.25,
        capacity: 10,
    }];
    let first =
        store.ingest(&stations, &[snapshot("city", 1000, "g1"), snapshot("city", 1480, "g1")], 1).await.unwrap();
    assert_eq!((first.inserted, first.skipped, first.stations), (2, 0, 1));
    let mut changed = snapshot("city", 1000, "g2");
    changed.record.body_json = "{}".into();
    let again = store.ingest(&stations, &[changed, snapshot("city", 1960, "g2")], 2).await.unwrap();
    assert_eq!((again.inserted, again.skipped), (1, 1));
    let kept = store.snapshot_by_sv("city", "sv1-city-1000").await.unwrap().unwrap();
    assert_eq!(kept, snapshot("city", 1000, "g1").record);
    assert_eq!(store.graph("g2").await.unwrap().as_deref(), Some(r#"["g2"]"#));
    assert_eq!(store.stations("city").await.unwrap(), stations);
    let systems = store.systems().await.unwrap();
    assert_eq!(systems.len(), 1);
    assert_eq!((systems[0].snapshots, systems[0].first_ts, systems[0].last_ts), (3, 1000, 1960));
}

async fn snapshots_resolve_by_sv_and_by_bucket(store: Store) {
    store.ingest(&[], &[snapshot("city", 1000, "g"), snapshot("city", 1480, "g")], 1).await.unwrap();
    let at = |bucket| {
        let store = store.clone();
        async move { store.snapshot_for_bucket("city", bucket, 300, 900).await.unwrap().map(|s| s.snapshot_ts) }
    };
    assert_eq!(at(900).await, Some(1000), "the snapshot inside the bucket");
    assert_eq!(at(1200).await, Some(1480), "the latest one before the bucket ends");
    assert_eq!(at(1800).await, Some(1480), "an earlier one within max_age");
    assert_eq!(at(600).await, None, "nothing before the first snapshot");
    assert_eq!(at(3000).await, None, "nothing more than max_age old");
    assert!(store.snapshot_for_bucket("elsewhere", 900, 300, 900).await.unwrap().is_none());
    assert!(store.snapshot_by_sv("city", "sv1-nope").await.unwrap().is_none());
}

async fn enqueue_is_idempotent_by_run_key(store: Store) {
    let (first, inserted) = store.enqueue_decision(&run(1), 10).await.unwrap();
    assert!(inserted);
    assert_eq!(first.job.status, JobStatus::Pending);
    let mut same_key = run(1);
    same_key.job_id = "run-other".into();
    let (second, inserted) = store.enqueue_decision(&same_key, 20).await.unwrap();
    assert!(!inserted);
    assert_eq!(second.decision.job_id, "run-000001");
    assert_eq!(second.job.created_at_ms, 10);
    assert_eq!(store.queue_depth().await.unwrap(), 1);
    assert_eq!(store.decision_by_id("run-000001").await.unwrap().unwrap().decision, run(1));
}

async fn a_claimed_run_is_not_claimed_again_until_its_lease_expires(store: Store) {
    store.enqueue_decision(&run(1), 0).await.unwrap();
    let claimed = store.claim_job("w1", DECIDE, 1_000, 5_000, 3).await.unwrap().unwrap();
    assert_eq!((claimed.status, claimed.attempts), (JobStatus::Running, 1));
    assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
    assert_eq!(claimed.lease_expires_at_ms, Some(6_000));
    assert!(store.claim_job("w2", DECIDE, 5_999, 5_000, 3).await.unwrap().is_none());
    assert!(store.heartbeat("run-000001", "w1", 8_000).await.unwrap());
    assert!(
        store.claim_job("w2", DECIDE, 7_000, 5_000, 3).await.unwrap().is_none(),
        "the heartbeat extended the lease"
    );
    let reclaimed = store.claim_job("w2", DECIDE, 8_001, 5_000, 3).await.unwrap().unwrap();
    assert_eq!((reclaimed.attempts, reclaimed.lease_owner.as_deref()), (2, Some("w2")));
    assert!(!store.heartbeat("run-000001", "w1", 20_000).await.unwrap(), "w1 lost its lease");
}

async fn only_the_lease_holder_stores_a_result(store: Store) {
    store.enqueue_decision(&run(1), 0).await.unwrap();
    store.claim_job("w1", DECIDE, 0, 100, 3).await.unwrap().unwrap();
    store.claim_job("w2", DECIDE, 200, 100, 3).await.unwrap().unwrap();
    assert!(!store.complete_decision("run-000001", "w1", &completion(3), 250).await.unwrap());
    assert!(!store.fail_job("run-000001", "w1", "x", "late", None, 250).await.unwrap());
    assert!(store.complete_decision("run-000001", "w2", &completion(2), 260).await.unwrap());
    assert!(!store.complete_decision("run-000001", "w2", &completion(5), 270).await.unwrap(), "a ready run is final");
    let row = store.job_by_id("run-000001").await.unwrap().unwrap();
    assert_eq!(row.status, JobStatus::Ready);
    assert_eq!(row.plugin_id.as_deref(), Some("polis.rebal.greedy.v1"));
    assert_eq!((row.plugin_us, row.finished_at_ms, row.lease_owner), (Some(42), Some(260), None));
    assert_eq!(store.moves("run-000001", 0, 100).await.unwrap().1, 2);
}

async fn concurrent_workers_claim_each_run_exactly_once(store: Store) {
    const RUNS: usize = 200;
    for n in 0..RUNS {
        store.enqueue_decision(&run(n), n as i64).await.unwrap();
    }
    let mut workers = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let owner = format!("w{w}");
            let mut mine = Vec::new();
            while let Some(row) = store.claim_job(&owner, DECIDE, 1_000, 60_000, 3).await.unwrap() {
                assert!(store.complete_decision(&row.job.job_id, &owner, &completion(1), 1_001).await.unwrap());
                mine.push(row.job.job_id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let distinct: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), RUNS, "no run claimed twice");
    assert_eq!(distinct.len(), RUNS, "no run lost");
    assert_eq!(store.queue_depth().await.unwrap(), 0);
}

async fn cancel_stops_a_run_and_asking_again_requeues_it(store: Store) {
    store.enqueue_decision(&run(1), 0).await.unwrap();
    store.claim_job("w1", DECIDE, 0, 1_000, 3).await.unwrap().unwrap();
    let cancelled = store.cancel_job("run-000001", 10).await.unwrap().unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(
        !store.complete_decision("run-000001", "w1", &completion(1), 20).await.unwrap(),
        "the worker's result is dropped"
    );
    assert!(store.claim_job("w2", DECIDE, 5_000, 1_000, 3).await.unwrap().is_none());
    assert!(store.cancel_job("run-unknown", 10).await.unwrap().is_none());
    let (again, enqueued) = store.enqueue_decision(&run(1), 30).await.unwrap();
    assert!(enqueued);
    assert_eq!((again.job.status, again.job.attempts), (JobStatus::Pending, 0));
    // Cancelling a finished run changes nothing.
    store.claim_job("w3", DECIDE, 40, 1_000, 3).await.unwrap().unwrap();
    assert!(store.complete_decision("run-000001", "w3", &completion(1), 50).await.unwrap());
    assert_eq!(store.cancel_job("run-000001", 60).await.unwrap().unwrap().status, JobStatus::Ready);
}

async fn runs_whose_lease_keeps_expiring_end_in_error(store: Store) {
    store.enqueue_decision(&run(1), 0).await.unwrap();
    assert!(store.claim_job("w1", DECIDE, 0, 10, 2).await.unwrap().is_some());
    assert!(store.claim_job("w2", DECIDE, 100, 10, 2).await.unwrap().is_some());
    assert!(store.claim_job("w3", DECIDE, 200, 10, 2).await.unwrap().is_none());
    let row = store.job_by_id("run-000001").await.unwrap().unwrap();
    assert_eq!(row.status, JobStatus::Error);
    assert_eq!(row.error_code.as_deref(), Some("job.lease_exhausted"));
    assert!(row.error_message.unwrap().contains("2 times"));
}

async fn moves_page_in_rank_order_and_counts_group_by_kind_status_and_policy(store: Store) {
    for n in 1..=3 {
        store.enqueue_decision(&run(n), n as i64).await.unwrap();
    }
    let claimed = store.claim_job("w", DECIDE, 10, 1_000, 3).await.unwrap().unwrap();
    assert_eq!(claimed.job.job_id, "run-000001", "oldest first");
    store.complete_decision("run-000001", "w", &completion(7), 11).await.unwrap();
    let (page, total) = store.moves("run-000001", 5, 5).await.unwrap();
    assert_eq!(total, 7);
    assert_eq!(page.iter().map(|m| m.move_rank).collect::<Vec<_>>(), vec![6, 7]);
    assert!(page[1].budget_exhausted && !page[0].budget_exhausted);
    assert_eq!(page[0].dist_m, 120.5);
    let counts: Vec<(String, JobStatus, Option<String>, i64)> =
        store.job_counts().await.unwrap().into_iter().map(|c| (c.kind, c.status, c.policy_version, c.count)).collect();
    let decide = || "rebalance.decide".to_owned();
    assert_eq!(
        counts,
        vec![
            (decide(), JobStatus::Pending, Some("rebal.global.v1".to_owned()), 1),
            (decide(), JobStatus::Pending, Some("rebal.greedy.v1".to_owned()), 1),
            (decide(), JobStatus::Ready, Some("rebal.global.v1".to_owned()), 1),
        ]
    );
    let recent: Vec<String> = store.recent_decisions(2).await.unwrap().into_iter().map(|r| r.decision.job_id).collect();
    assert_eq!(recent, vec!["run-000003", "run-000002"]);
    let ready = store.decision_by_id("run-000001").await.unwrap().unwrap();
    assert_eq!(ready.diagnostics_json.as_deref(), Some(r#"{"k":1}"#));
}

async fn allowlist_rows_for_a_system_override_the_wildcard(store: Store) {
    let plugin = PluginRecord {
        plugin_id: "p".into(),
        contract: "rebalance.v1".into(),
        policy_version: "rebal.p.v1".into(),
        strategy: "p.v1".into(),
        tier: "builtin".into(),
        manifest_sha256: Some("a".repeat(64)),
        artifact_sha256: None,
        activation: "active".into(),
        disabled_reason: None,
    };
    store.sync_plugins(std::slice::from_ref(&plugin), 1).await.unwrap();
    assert!(store.plugin_enabled_for("p", "sf").await.unwrap(), "new plugins run everywhere");
    assert!(store.set_plugin_system("p", "sf", false, 2).await.unwrap());
    assert!(!store.plugin_enabled_for("p", "sf").await.unwrap());
    assert!(store.plugin_enabled_for("p", "nyc").await.unwrap());
    store.sync_plugins(std::slice::from_ref(&plugin), 3).await.unwrap();
    assert!(!store.plugin_enabled_for("p", "sf").await.unwrap(), "a resync keeps the admin's choice");
    assert!(store.set_plugin_system("p", "*", false, 4).await.unwrap());
    assert!(store.set_plugin_system("p", "nyc", true, 4).await.unwrap());
    assert!(store.plugin_enabled_for("p", "nyc").await.unwrap());
    assert!(!store.plugin_enabled_for("p", "la").await.unwrap());
    assert!(!store.set_plugin_system("unknown", "sf", true, 5).await.unwrap());
    assert!(!store.plugin_enabled_for("unknown", "sf").await.unwrap());
    assert_eq!(store.plugins().await.unwrap(), vec![plugin]);
    let systems: Vec<(String, bool)> =
        store.plugin_systems("p").await.unwrap().into_iter().map(|o| (o.system_id, o.enabled)).collect();
    assert_eq!(systems, vec![("*".into(), false), ("nyc".into(), true), ("sf".into(), false)]);
}

async fn a_plugin_version_is_approved_once_and_the_first_approval_stands(store: Store) {
    let first = ApprovalRecord {
        plugin_id: "p".into(),
        plugin_version: "1.0.0".into(),
        files_sha256: "a".repeat(64),
        approved_by: "token:0123".into(),
        approved_at_ms: 10,
    };
    assert_eq!(store.approve_plugin(&first).await.unwrap(), first);
    let other = ApprovalRecord {
        files_sha256: "b".repeat(64),
        approved_by: "token:4567".into(),
        approved_at_ms: 20,
        ..first.clone()
    };
    assert_eq!(store.approve_plugin(&other).await.unwrap(), first, "a version is approved once");
    let next = ApprovalRecord { plugin_version: "1.0.1".into(), ..other };
    assert_eq!(store.approve_plugin(&next).await.unwrap(), next);
    assert_eq!(store.plugin_approvals().await.unwrap(), vec![first, next]);
}

async fn an_agent_policy_put_replaces_the_previous_one(store: Store) {
    let first = AgentPolicy {
        agent_id: "BANK_A".into(),
        policy_json: r#"{"version": "1.0"}"#.into(),
        policy_sha256: "a".repeat(64),
        updated_by: "cli".into(),
        updated_at_ms: 10,
    };
    assert_eq!(store.agent_policy("BANK_A").await.unwrap(), None);
    store.put_agent_policy(&first).await.unwrap();
    assert_eq!(store.agent_policy("BANK_A").await.unwrap(), Some(first.clone()));
    let second = AgentPolicy { policy_sha256: "b".repeat(64), updated_at_ms: 20, ..first.clone() };
    store.put_agent_policy(&second).await.unwrap();
    let other = AgentPolicy { agent_id: "BANK_0".into(), ..first };
    store.put_agent_policy(&other).await.unwrap();
    assert_eq!(store.agent_policies().await.unwrap(), vec![other, second]);
}

async fn a_world_id_holds_one_document_and_a_session_advances_only_from_the_version_it_read(store: Store) {
    let world = WorldRow {
        world_id: "village".into(),
        world_json: r#"{"id":"village"}"#.into(),
        world_sha256: "a".repeat(64),
        created_by: "admin".into(),
        created_at_ms: 1,
    };
    assert_eq!(store.put_world(&world).await.unwrap(), WorldPut::Created);
    assert_eq!(store.put_world(&world).await.unwrap(), WorldPut::Unchanged);
    let other = WorldRow { world_sha256: "b".repeat(64), ..world.clone() };
    assert_eq!(store.put_world(&other).await.unwrap(), WorldPut::Conflict);
    assert_eq!(store.world("village").await.unwrap(), Some(world.clone()));
    assert_eq!(store.worlds().await.unwrap(), vec![world]);

    let session = SessionRow {
        session_id: "s1".into(),
        world_id: "village".into(),
        session_json: "{}".into(),
        version: 0,
        created_by: "reader".into(),
        created_at_ms: 2,
        updated_at_ms: 2,
    };
    assert!(store.insert_session(&session).await.unwrap());
    assert!(!store.insert_session(&session).await.unwrap(), "an id is taken once");
    let entries = vec![r#"{"n":0}"#.to_owned(), r#"{"n":1}"#.to_owned()];
    assert!(store.advance_session("s1", 0, r#"{"v":1}"#, &entries, 3).await.unwrap());
    assert!(!store.advance_session("s1", 0, r#"{"v":"late"}"#, &entries, 4).await.unwrap(), "version 0 is gone");
    assert!(store.advance_session("s1", 1, r#"{"v":2}"#, &entries[..1], 5).await.unwrap());
    let now = store.session("s1").await.unwrap().unwrap();
    assert_eq!((now.version, now.session_json.as_str(), now.updated_at_ms), (2, r#"{"v":2}"#, 5));
    let timeline = store.session_timeline("s1", 0, 10).await.unwrap();
    let seen: Vec<(i64, i64, &str)> = timeline.iter().map(|r| (r.seq, r.version, r.entry_json.as_str())).collect();
    assert_eq!(seen, vec![(0, 1, r#"{"n":0}"#), (1, 1, r#"{"n":1}"#), (2, 2, r#"{"n":0}"#)]);
    assert_eq!(store.session_timeline("s1", 2, 10).await.unwrap().len(), 1);
    assert_eq!(store.recent_sessions(5).await.unwrap(), vec![now]);
}

fn job(n: usize, kind: &str) -> NewJob {
    NewJob {
        job_id: format!("job-{n:06}"),
        kind: kind.into(),
        contract: Some("echo.v1".into()),
        key_sha256: format!("{:064x}", n + 1_000_000),
        key_json: Some(format!(r#"{{"label":"{n}"}}"#)),
        payload_json: Some(r#"{"p":1}"#.into()),
        policy_version: Some("echo.scale.v1".into()),
        input_sha256: Some("d".repeat(64)),
        submitted_by: Some("reader".into()),
    }
}

async fn a_worker_claims_only_the_kinds_it_knows(store: Store) {
    store.enqueue_job(&job(1, "payments.simulate"), 0).await.unwrap();
    store.enqueue_job(&job(2, "run"), 1).await.unwrap();
    assert!(store.claim_job("w", &["strategy.replay"], 10, 1_000, 3).await.unwrap().is_none());
    assert!(store.claim_job("w", &[], 10, 1_000, 3).await.unwrap().is_none(), "no kinds, no job");
    let claimed = store.claim_job("w", &["run", "strategy.replay"], 10, 1_000, 3).await.unwrap().unwrap();
    assert_eq!(claimed.job.job_id, "job-000002");
    let claimed = store.claim_job("w", &["payments.simulate"], 10, 1_000, 3).await.unwrap().unwrap();
    assert_eq!(claimed.job.job_id, "job-000001");
}

async fn a_generic_job_keeps_its_key_payload_and_result(store: Store) {
    let (row, enqueued) = store.enqueue_job(&job(1, "run"), 5).await.unwrap();
    assert!(enqueued);
    assert_eq!(row.job, job(1, "run"));
    let (again, enqueued) = store.enqueue_job(&job(1, "run"), 6).await.unwrap();
    assert!(!enqueued, "the same key is the same job");
    assert_eq!(again.created_at_ms, 5);
    store.claim_job("w", &["run"], 10, 1_000, 3).await.unwrap().unwrap();
    let result = JobResult {
        plugin_id: Some("polis.echo.scale.v1".into()),
        manifest_sha256: Some("m".repeat(64)),
        input_sha256: None,
        output_sha256: Some("o".repeat(64)),
        result_json: r#"{"sum":3}"#.into(),
        plugin_us: Some(7),
    };
    assert!(!store.complete_job("job-000001", "someone-else", &result, 11).await.unwrap());
    assert!(store.complete_job("job-000001", "w", &result, 12).await.unwrap());
    let done = store.job_by_key(&job(1, "run").key_sha256).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Ready);
    assert_eq!(done.result_json.as_deref(), Some(r#"{"sum":3}"#));
    assert_eq!(done.job.input_sha256, job(1, "run").input_sha256, "a result without an input hash keeps the job's");
    assert_eq!(done.plugin_id.as_deref(), Some("polis.echo.scale.v1"));
    let recent: Vec<String> =
        store.recent_jobs(Some("run"), 10).await.unwrap().into_iter().map(|r| r.job.job_id).collect();
    assert_eq!(recent, ["job-000001"]);
    assert!(store.recent_jobs(Some("other"), 10).await.unwrap().is_empty());
}

async fn inputs_are_stored_once_under_their_digest(store: Store) {
    let input =
        StoredInput { input_sha256: "e".repeat(64), contract: "echo.v1".into(), body_json: r#"{"values":[1]}"#.into() };
    store.put_input(&input, 1).await.unwrap();
    store.put_input(&input, 2).await.unwrap();
    assert_eq!(store.input(&input.input_sha256).await.unwrap(), Some(input));
    assert_eq!(store.input(&"f".repeat(64)).await.unwrap(), None);
}

/// The first migration's schema, with one ready run and its moves, then
/// every later migration: the run is a rebalancing job with the same id,
/// key, hashes, output and moves.
async fn legacy_runs_move_to_the_job_tables(url: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let dir = std::env::temp_dir().join(format!("polis-migrations-{}-{}", std::process::id(), url.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/0001_init.sql");
    std::fs::copy(first, dir.join("0001_init.sql")).unwrap();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap().run(&mut conn).await.unwrap();
    sqlx::query(
        "INSERT INTO policy_runs (run_id, run_key_sha256, system_id, sv, decision_bucket_ts, policy_version, \
         policy_spec_sha256, horizon_steps, policy_spec_json, view_snapshot_id, view_snapshot_sha256, status, plugin_id, \
         manifest_sha256, input_sha256, output_sha256, output_json, diagnostics_json, attempts, created_at_ms, \
         finished_at_ms, plugin_us) VALUES ('run-old', 'k', 'city', 'sv1', 900, 'rebal.greedy.v1', 's', 0, '{}', \
         'city@1000', 'v', 'ready', 'polis.rebal.greedy.v1', 'm', 'i', 'o', '{\"moves\":[]}', '{\"d\":1}', 1, 5, 6, 42)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO policy_moves (run_id, move_rank, from_station_key, to_station_key, bikes_moved, dist_m, \
         budget_exhausted, neighbor_exhausted, reason_codes_json) VALUES ('run-old', 1, 'a', 'b', 3, 10.5, 1, 0, '[]')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let store = Store::connect(url, &StoreConfig::default()).await.unwrap();
    let row = store.decision_by_key("k").await.unwrap().unwrap();
    assert_eq!(row.decision.job_id, "run-old");
    assert_eq!(row.job.job.kind, "rebalance.decide");
    assert_eq!(row.job.status, JobStatus::Ready);
    assert_eq!((row.decision.system_id.as_str(), row.decision.decision_bucket_ts), ("city", 900));
    assert_eq!(row.job.result_json.as_deref(), Some(r#"{"moves":[]}"#));
    assert_eq!(row.diagnostics_json.as_deref(), Some(r#"{"d":1}"#));
    assert_eq!(row.job.job.input_sha256.as_deref(), Some("i"));
    let (moves, total) = store.moves("run-old", 0, 10).await.unwrap();
    assert_eq!((total, moves[0].bikes_moved, moves[0].budget_exhausted), (1, 3, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_runs_move_to_the_job_tables_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("polis-legacy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::fs::remove_file(dir.join("legacy.db"));
    legacy_runs_move_to_the_job_tables(&format!("sqlite://{}?mode=rwc", dir.join("legacy.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_runs_move_to_the_job_tables_on_postgres() {
    if let Some(url) = postgres_url().await {
        legacy_runs_move_to_the_job_tables(&url).await;
    }
}
