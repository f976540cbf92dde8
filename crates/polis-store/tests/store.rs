//! One suite, run against both backends: every behaviour is checked on a
//! fresh SQLite file and on a fresh PostgreSQL schema.
//!
//! PostgreSQL is found at `POLIS_TEST_DATABASE_URL` (by default
//! `postgres://postgres@127.0.0.1:5432/test`). Without a server the
//! PostgreSQL half says it was skipped, except under CI, where it fails.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test code: a failing unwrap is a failing test")]

use std::collections::BTreeSet;

use polis_store::{
    Completion, MoveRow, NewRun, NewSnapshot, PluginRecord, RunStatus, SnapshotRecord, StationRow, Store, StoreConfig,
    scratch,
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
    let base = scratch::postgres_base_url();
    match scratch::postgres_schema(&base, "store").await {
        Ok(url) => Some(Store::connect(&url, &StoreConfig::default()).await.unwrap()),
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
    ingest_keeps_the_first_copy_of_a_snapshot,
    snapshots_resolve_by_sv_and_by_bucket,
    enqueue_is_idempotent_by_run_key,
    a_claimed_run_is_not_claimed_again_until_its_lease_expires,
    only_the_lease_holder_stores_a_result,
    concurrent_workers_claim_each_run_exactly_once,
    cancel_stops_a_run_and_asking_again_requeues_it,
    runs_whose_lease_keeps_expiring_end_in_error,
    moves_page_in_rank_order_and_counts_group_by_status_and_policy,
    allowlist_rows_for_a_system_override_the_wildcard,
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

fn run(n: usize) -> NewRun {
    NewRun {
        run_id: format!("run-{n:06}"),
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
    }
}

fn completion(moves: usize) -> Completion {
    Completion {
        plugin_id: "polis.rebal.greedy.v1".into(),
        manifest_sha256: "m".repeat(64),
        input_sha256: "i".repeat(64),
        output_sha256: "o".repeat(64),
        output_json: r#"{"moves":[]}"#.into(),
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
        plugin_us: 42,
    }
}

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
    let (first, inserted) = store.enqueue(&run(1), 10).await.unwrap();
    assert!(inserted);
    assert_eq!(first.status, RunStatus::Pending);
    let mut same_key = run(1);
    same_key.run_id = "run-other".into();
    let (second, inserted) = store.enqueue(&same_key, 20).await.unwrap();
    assert!(!inserted);
    assert_eq!(second.run.run_id, "run-000001");
    assert_eq!(second.created_at_ms, 10);
    assert_eq!(store.queue_depth().await.unwrap(), 1);
    assert_eq!(store.run_by_id("run-000001").await.unwrap().unwrap().run, run(1));
}

async fn a_claimed_run_is_not_claimed_again_until_its_lease_expires(store: Store) {
    store.enqueue(&run(1), 0).await.unwrap();
    let claimed = store.claim("w1", 1_000, 5_000, 3).await.unwrap().unwrap();
    assert_eq!((claimed.status, claimed.attempts), (RunStatus::Running, 1));
    assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
    assert_eq!(claimed.lease_expires_at_ms, Some(6_000));
    assert!(store.claim("w2", 5_999, 5_000, 3).await.unwrap().is_none());
    assert!(store.heartbeat("run-000001", "w1", 8_000).await.unwrap());
    assert!(store.claim("w2", 7_000, 5_000, 3).await.unwrap().is_none(), "the heartbeat extended the lease");
    let reclaimed = store.claim("w2", 8_001, 5_000, 3).await.unwrap().unwrap();
    assert_eq!((reclaimed.attempts, reclaimed.lease_owner.as_deref()), (2, Some("w2")));
    assert!(!store.heartbeat("run-000001", "w1", 20_000).await.unwrap(), "w1 lost its lease");
}

async fn only_the_lease_holder_stores_a_result(store: Store) {
    store.enqueue(&run(1), 0).await.unwrap();
    store.claim("w1", 0, 100, 3).await.unwrap().unwrap();
    store.claim("w2", 200, 100, 3).await.unwrap().unwrap();
    assert!(!store.complete("run-000001", "w1", &completion(3), 250).await.unwrap());
    assert!(!store.fail("run-000001", "w1", "x", "late", None, 250).await.unwrap());
    assert!(store.complete("run-000001", "w2", &completion(2), 260).await.unwrap());
    assert!(!store.complete("run-000001", "w2", &completion(5), 270).await.unwrap(), "a ready run is final");
    let row = store.run_by_id("run-000001").await.unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Ready);
    assert_eq!(row.plugin_id.as_deref(), Some("polis.rebal.greedy.v1"));
    assert_eq!((row.plugin_us, row.finished_at_ms, row.lease_owner), (Some(42), Some(260), None));
    assert_eq!(store.moves("run-000001", 0, 100).await.unwrap().1, 2);
}

async fn concurrent_workers_claim_each_run_exactly_once(store: Store) {
    const RUNS: usize = 200;
    for n in 0..RUNS {
        store.enqueue(&run(n), n as i64).await.unwrap();
    }
    let mut workers = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let owner = format!("w{w}");
            let mut mine = Vec::new();
            while let Some(row) = store.claim(&owner, 1_000, 60_000, 3).await.unwrap() {
                assert!(store.complete(&row.run.run_id, &owner, &completion(1), 1_001).await.unwrap());
                mine.push(row.run.run_id);
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
    store.enqueue(&run(1), 0).await.unwrap();
    store.claim("w1", 0, 1_000, 3).await.unwrap().unwrap();
    let cancelled = store.cancel("run-000001", 10).await.unwrap().unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(!store.complete("run-000001", "w1", &completion(1), 20).await.unwrap(), "the worker's result is dropped");
    assert!(store.claim("w2", 5_000, 1_000, 3).await.unwrap().is_none());
    assert!(store.cancel("run-unknown", 10).await.unwrap().is_none());
    let (again, enqueued) = store.enqueue(&run(1), 30).await.unwrap();
    assert!(enqueued);
    assert_eq!((again.status, again.attempts), (RunStatus::Pending, 0));
    // Cancelling a finished run changes nothing.
    store.claim("w3", 40, 1_000, 3).await.unwrap().unwrap();
    assert!(store.complete("run-000001", "w3", &completion(1), 50).await.unwrap());
    assert_eq!(store.cancel("run-000001", 60).await.unwrap().unwrap().status, RunStatus::Ready);
}

async fn runs_whose_lease_keeps_expiring_end_in_error(store: Store) {
    store.enqueue(&run(1), 0).await.unwrap();
    assert!(store.claim("w1", 0, 10, 2).await.unwrap().is_some());
    assert!(store.claim("w2", 100, 10, 2).await.unwrap().is_some());
    assert!(store.claim("w3", 200, 10, 2).await.unwrap().is_none());
    let row = store.run_by_id("run-000001").await.unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Error);
    assert_eq!(row.error_code.as_deref(), Some("run.lease_exhausted"));
    assert!(row.error_message.unwrap().contains("2 times"));
}

async fn moves_page_in_rank_order_and_counts_group_by_status_and_policy(store: Store) {
    for n in 1..=3 {
        store.enqueue(&run(n), n as i64).await.unwrap();
    }
    let claimed = store.claim("w", 10, 1_000, 3).await.unwrap().unwrap();
    assert_eq!(claimed.run.run_id, "run-000001", "oldest first");
    store.complete("run-000001", "w", &completion(7), 11).await.unwrap();
    let (page, total) = store.moves("run-000001", 5, 5).await.unwrap();
    assert_eq!(total, 7);
    assert_eq!(page.iter().map(|m| m.move_rank).collect::<Vec<_>>(), vec![6, 7]);
    assert!(page[1].budget_exhausted && !page[0].budget_exhausted);
    assert_eq!(page[0].dist_m, 120.5);
    let counts: Vec<(RunStatus, String, i64)> =
        store.run_counts().await.unwrap().into_iter().map(|c| (c.status, c.policy_version, c.count)).collect();
    assert_eq!(
        counts,
        vec![
            (RunStatus::Pending, "rebal.global.v1".to_owned(), 1),
            (RunStatus::Pending, "rebal.greedy.v1".to_owned(), 1),
            (RunStatus::Ready, "rebal.global.v1".to_owned(), 1),
        ]
    );
    let recent: Vec<String> = store.recent_runs(2).await.unwrap().into_iter().map(|r| r.run.run_id).collect();
    assert_eq!(recent, vec!["run-000003", "run-000002"]);
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
