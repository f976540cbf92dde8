//! The process tier with real Python workers: cross-tier parity of the
//! Python greedy example, and a hostile suite where every case is
//! contained, reported naming the plugin, and followed by a normal call.

#![expect(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail loudly; clippy allows this in #[test] functions but not in the helpers they share"
)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use polis_core::manifest::Manifest;
use polis_core::policy::{PolicyError, RunControl};
use polis_core::registry::Registry;
use polis_process::{LayerState, ProcessConfig, ProcessPlugin, ProcessSpec, SandboxConfig};
use polis_rebalance::builtins;
use polis_rebalance::contract::{Rebalance, RebalanceParams};
use polis_rebalance::gbfs::Feed;
use polis_rebalance::host::{Decision, Host, HostError};
use polis_rebalance::parity;
use polis_runtime::{HostLimits, RunError, RunRecord};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The interpreter the process tier itself would pick for `python3` (the
/// first on PATH that the worker's account can run, never a pyenv shim,
/// which would need to fork) and its installation prefix.
fn python() -> (PathBuf, PathBuf) {
    let exe = polis_process::resolve_program(Path::new("/"), "python3", &SandboxConfig::default())
        .expect("python3 must be installed where the worker can run it (scripts/test checks)");
    let out = std::process::Command::new(&exe).args(["-c", "import sys; print(sys.base_prefix)"]).output().unwrap();
    (exe, PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()))
}

/// Starts the Python plugin in `dir`. The SDK is not copied into test
/// fixtures: the host grants read access to `sdk/python` and puts it on
/// `PYTHONPATH`, as a deployment with the SDK installed would.
fn start(dir: &Path, logs: Option<Arc<Mutex<Vec<String>>>>) -> ProcessPlugin {
    start_with(dir, logs, |_| {})
}

fn start_with(
    dir: &Path,
    logs: Option<Arc<Mutex<Vec<String>>>>,
    tweak: impl FnOnce(&mut ProcessConfig),
) -> ProcessPlugin {
    let (exe, prefix) = python();
    let manifest = Manifest::from_json(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let sdk = repo().join("sdk/python");
    let mut sandbox = SandboxConfig::default();
    sandbox.read_paths.extend([prefix, exe.parent().unwrap().to_path_buf(), sdk.clone()]);
    let mut config = ProcessConfig { sandbox, ..ProcessConfig::default() };
    if let Some(logs) = logs {
        config.log_sink = Arc::new(move |id: &str, line: &str| logs.lock().unwrap().push(format!("{id}: {line}")));
    }
    tweak(&mut config);
    let env = vec![("PYTHONPATH".to_owned(), sdk.display().to_string())];
    let spec = ProcessSpec { program: exe, args: vec!["plugin.py".into()], dir: dir.to_path_buf(), env };
    ProcessPlugin::start(manifest, spec, config).unwrap()
}

fn host_with(plugin: ProcessPlugin) -> Host {
    host_of(Arc::new(plugin))
}

fn host_of(plugin: Arc<ProcessPlugin>) -> Host {
    let mut registry: Registry<Rebalance> = builtins::registry();
    registry.register(Arc::new(polis_core::EndpointPolicy::<Rebalance>::new(plugin)), None).unwrap();
    Host::new(registry, HostLimits::default()).unwrap()
}

fn decide(host: &Host, version: &str, mode: Option<&str>) -> Result<RunRecord<Rebalance>, HostError> {
    decide_controlled(host, version, mode, None)
}

fn decide_controlled(
    host: &Host,
    version: &str,
    mode: Option<&str>,
    control: Option<&RunControl>,
) -> Result<RunRecord<Rebalance>, HostError> {
    let input = polis_rebalance::synth::tiny_input();
    let mut params = RebalanceParams::default();
    params.allowed_bucket_quality.extend(mode.map(|m| format!("mode:{m}")));
    let decision = Decision {
        subject: &polis_rebalance::contract::DecisionSubject {
            system_id: "test".to_owned(),
            sv: "sv1".to_owned(),
            decision_bucket_ts: 1_678_090_200,
            horizon_steps: 0,
        },
        input: &input,
        params: &params,
        request_id: None,
        control,
        host: None,
    };
    host.decide(version, &decision)
}

fn hostile_dir() -> PathBuf {
    repo().join("crates/polis-process/tests/fixtures/hostile")
}

fn hostile() -> (Host, Arc<Mutex<Vec<String>>>) {
    let logs = Arc::new(Mutex::new(Vec::new()));
    (host_with(start(&hostile_dir(), Some(Arc::clone(&logs)))), logs)
}

/// The hostile plugin with its configuration tweaked, kept reachable so a
/// test can watch its worker.
fn hostile_with(tweak: impl FnOnce(&mut ProcessConfig)) -> (Host, Arc<ProcessPlugin>, Arc<Mutex<Vec<String>>>) {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let plugin = Arc::new(start_with(&hostile_dir(), Some(Arc::clone(&logs)), tweak));
    (host_of(Arc::clone(&plugin)), plugin, logs)
}

fn limit_exceeded(error: &PolicyError) -> (&'static str, &str) {
    match error {
        PolicyError::LimitExceeded { limit, detail } => (limit, detail),
        other => panic!("expected a limit, got {other}"),
    }
}

fn hostile_error(host: &Host, mode: &str) -> PolicyError {
    match decide(host, "rebal.hostile_python.v1", Some(mode)) {
        Ok(record) => panic!("mode {mode} unexpectedly succeeded: {:?}", record.output),
        Err(HostError::Run(RunError::Policy { plugin_id, error })) => {
            assert_eq!(plugin_id, "hostile.python.v1");
            error
        }
        Err(other) => panic!("mode {mode}: unexpected error {other}"),
    }
}

fn running_as_root() -> bool {
    polis_process::sandbox::worker_identity(&SandboxConfig::default()).unwrap().drops_root
}

/// Runs `mode`, checks the host then serves a normal call, and returns the
/// hostile call's error.
fn contained(host: &Host, mode: &str) -> PolicyError {
    let error = match decide(host, "rebal.hostile_python.v1", Some(mode)) {
        Ok(record) => panic!("mode {mode} unexpectedly succeeded: {:?}", record.output),
        Err(HostError::Run(RunError::Policy { plugin_id, error })) => {
            assert_eq!(plugin_id, "hostile.python.v1");
            error
        }
        Err(other) => panic!("mode {mode}: unexpected error {other}"),
    };
    let next = decide(host, "rebal.hostile_python.v1", None).unwrap();
    assert!(next.output.summary.no_op);
    error
}

fn failure(error: &PolicyError) -> &str {
    match error {
        PolicyError::Failed(message) => message,
        other => panic!("expected a failure, got {other}"),
    }
}

#[test]
fn the_tests_python_is_the_interpreter_the_tier_resolves() {
    assert_eq!(polis_testdata::python().exe, python().0);
}

#[test]
fn every_sandbox_layer_is_active_on_this_kernel() {
    let report = polis_process::sandbox::report(&SandboxConfig::default());
    for (layer, state) in report.layers() {
        assert_eq!(*state, LayerState::Active, "layer {layer}");
    }
}

#[test]
fn a_crash_mid_call_is_reported_and_the_worker_restarted() {
    let (host, _) = hostile();
    let error = contained(&host, "crash");
    assert!(failure(&error).contains("worker exited mid-call"), "{error}");
    assert!(failure(&error).contains("exit status: 3"), "{error}");
}

#[test]
fn a_hang_after_half_a_response_times_out_and_the_worker_is_killed() {
    let (host, _) = hostile();
    match contained(&host, "hang_half") {
        PolicyError::LimitExceeded { limit, detail } => {
            assert_eq!(limit, "timeout");
            assert!(detail.contains("the worker was killed"), "{detail}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
}

#[test]
fn cancelling_a_run_kills_its_hung_worker_and_the_next_call_is_served() {
    let (host, _) = hostile();
    let control = RunControl::new();
    let canceller = {
        let control = control.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            control.cancel();
        })
    };
    // The plugin sleeps for an hour; only the cancellation can end the
    // call before the manifest's timeout, and it reports as a cancel.
    let result = decide_controlled(&host, "rebal.hostile_python.v1", Some("hang_half"), Some(&control));
    canceller.join().unwrap();
    match result {
        Err(HostError::Run(RunError::Policy { error: PolicyError::Cancelled, .. })) => {}
        other => panic!("expected a cancellation, got {:?}", other.map(|r| r.output)),
    }
    assert!(decide(&host, "rebal.hostile_python.v1", None).unwrap().output.summary.no_op);
    // A cancellation is the caller's choice, not the plugin's fault.
    let metrics = host.guard().metrics("hostile.python.v1").unwrap();
    assert_eq!(metrics.errors.get("policy.cancelled"), Some(&1));
}

#[test]
fn a_fork_bomb_cannot_fork() {
    let (host, _) = hostile();
    let error = contained(&host, "fork_bomb");
    assert!(failure(&error).contains("Operation not permitted"), "{error}");
}

#[test]
fn a_file_write_is_refused_and_nothing_is_written() {
    let (host, _) = hostile();
    let target = std::env::temp_dir().join(format!("polis-hostile-write-{}", std::process::id()));
    let error = contained(&host, &format!("write:{}", target.display()));
    assert!(failure(&error).contains("Permission denied"), "{error}");
    assert!(!target.exists());
}

#[test]
fn a_tcp_connect_to_localhost_is_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (host, _) = hostile();
    let error = contained(&host, &format!("connect:{port}"));
    assert!(failure(&error).contains("PermissionError"), "{error}");
    assert_eq!(listener.accept().map(|_| ()).map_err(|e| e.kind()), Err(std::io::ErrorKind::WouldBlock));
}

#[test]
fn reading_a_file_outside_the_allowed_paths_is_refused() {
    let secret = std::env::temp_dir().join(format!("polis-secret-{}", std::process::id()));
    std::fs::write(&secret, "the host's secret").unwrap();
    let (host, _) = hostile();
    let error = contained(&host, &format!("read:{}", secret.display()));
    let _ = std::fs::remove_file(&secret);
    assert!(failure(&error).contains("Permission denied"), "{error}");
}

#[test]
fn stderr_becomes_log_lines_tagged_with_the_plugin_id() {
    let (host, logs) = hostile();
    decide(&host, "rebal.hostile_python.v1", Some("log")).unwrap();
    // The stderr thread forwards asynchronously; a normal call after it
    // cannot complete before the worker wrote the line, but the forwarder
    // may still be reading it, so wait for it to arrive.
    let wanted = "hostile.python.v1: hello from stderr";
    for _ in 0..500 {
        if logs.lock().unwrap().iter().any(|l| l == wanted) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("log line never arrived: {:?}", logs.lock().unwrap());
}

#[test]
fn python_greedy_matches_the_builtin_on_every_snapshot_of_a_day() {
    let Some(week) = polis_testdata::require("baywheels-2023-03-06") else {
        return;
    };
    let host = host_with(start(&repo().join("examples/plugins/greedy-python"), None));
    let feed = Feed::open(&week).unwrap();
    let parity =
        parity::compare(&host, &feed, feed.snapshots[0].ts, 86_400, "rebal.greedy.v1", "rebal.greedy_python.v1");
    parity.unwrap().assert_identical(100);
}

#[test]
fn the_example_s_vendored_python_sdk_matches_the_sdk() {
    // The example ships the SDK beside its plugin, as `polis plugin new`
    // does, so that the directory runs anywhere on its own.
    let sdk = std::fs::read(repo().join("sdk/python/polis_plugin.py")).unwrap();
    let copy = std::fs::read(repo().join("examples/plugins/greedy-python/polis_plugin.py")).unwrap();
    assert!(copy == sdk, "examples/plugins/greedy-python/polis_plugin.py differs from sdk/python; copy it again");
}

// --- The host cannot be signalled, traced or inspected. ---

#[test]
fn the_worker_runs_unprivileged_as_process_one_of_its_own_namespace() {
    let (host, _) = hostile();
    let record = decide(&host, "rebal.hostile_python.v1", Some("whoami")).unwrap();
    let who = serde_json::to_value(&record.output).unwrap()["diagnostics"].clone();
    let report = polis_process::sandbox::report(&SandboxConfig::default());
    assert_eq!(who["uid"], report.worker_uid, "{who}");
    assert_eq!(who["gid"], report.worker_gid, "{who}");
    if running_as_root() {
        assert_ne!(who["uid"], 0, "{who}");
        assert_eq!(who["groups"], serde_json::json!([]), "no supplementary groups: {who}");
    }
    if report.pid_namespace == LayerState::Active {
        assert_eq!(who["pid"], 1, "{who}");
        assert_eq!(who["ppid"], 0, "its parent is outside its namespace: {who}");
    }
}

#[test]
fn killing_the_parent_fails_and_the_host_serves_the_next_call() {
    let (host, _) = hostile();
    let error = contained(&host, "kill_parent");
    assert!(failure(&error).contains("returned") || failure(&error).contains("Error"), "{error}");
}

#[test]
fn killing_the_host_by_pid_fails() {
    let (host, _) = hostile();
    let error = contained(&host, &format!("kill:{}", std::process::id()));
    let message = failure(&error);
    assert!(message.contains("ProcessLookupError") || message.contains("PermissionError"), "{error}");
}

#[test]
fn killing_every_process_it_can_see_kills_nothing_outside() {
    let (host, _) = hostile();
    let _ = decide(&host, "rebal.hostile_python.v1", Some("kill_all"));
    // The test process (the host) is alive to make the next call.
    assert!(decide(&host, "rebal.hostile_python.v1", None).unwrap().output.summary.no_op);
}

#[test]
fn tracing_the_host_is_refused() {
    let (host, _) = hostile();
    let error = contained(&host, &format!("ptrace:{}", std::process::id()));
    assert!(failure(&error).contains("Operation not permitted"), "{error}");
}

// --- No secrets are readable. ---

fn refused_read(path: &Path) {
    let (host, _) = hostile();
    let error = contained(&host, &format!("read:{}", path.display()));
    let message = failure(&error);
    assert!(message.contains("Permission denied") || message.contains("No such file"), "{error}");
}

#[test]
fn etc_shadow_is_unreadable() {
    refused_read(Path::new("/etc/shadow"));
}

#[test]
fn etc_passwd_is_unreadable_too() {
    // Only what interpreters need of /etc is readable.
    refused_read(Path::new("/etc/passwd"));
}

#[test]
fn the_host_s_environment_is_unreadable() {
    refused_read(&PathBuf::from(format!("/proc/{}/environ", std::process::id())));
}

#[test]
fn a_database_file_of_the_host_is_unreadable() {
    let dir = std::env::temp_dir().join(format!("polis-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("polis.sqlite");
    std::fs::write(&db, "SQLite format 3\0 the host's data").unwrap();
    refused_read(&db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn another_plugin_s_directory_is_unreadable() {
    refused_read(&repo().join("examples/plugins/greedy-python/plugin.py"));
}

// --- Resource abuse is bounded and attributed. ---

/// Waits until the plugin's worker has died (the watchdog killed it).
fn wait_for_death(plugin: &ProcessPlugin) {
    for _ in 0..300 {
        if !plugin.worker_running() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the worker was never killed");
}

#[test]
fn threads_left_spinning_after_a_reply_are_killed_at_the_cpu_budget_and_counted() {
    let (host, plugin, _) = hostile_with(|c| c.sandbox.cpu_ms_per_call = 1000);
    // It answers at once, leaving eight threads burning the cores.
    let spun = decide(&host, "rebal.hostile_python.v1", Some("spin_threads:8"));
    assert!(spun.as_ref().is_ok_and(|r| r.output.summary.no_op), "{:?}", spun.map(|r| r.output));
    wait_for_death(&plugin);
    let error = hostile_error(&host, "");
    let (limit, detail) = limit_exceeded(&error);
    assert_eq!(limit, "cpu_time");
    assert!(detail.contains("over the budget of 1000 ms"), "{detail}");
    // A fresh worker serves the next call; the breach counted against the plugin.
    assert!(decide(&host, "rebal.hostile_python.v1", None).unwrap().output.summary.no_op);
    assert_eq!(plugin.stats().limit_kills, 1);
    let metrics = host.guard().metrics("hostile.python.v1").unwrap();
    assert_eq!(metrics.errors.get("policy.limit_exceeded"), Some(&1));
}

#[test]
fn a_call_that_spins_is_killed_at_its_cpu_budget_before_its_deadline() {
    let (host, _, _) = hostile_with(|c| c.sandbox.cpu_ms_per_call = 300);
    let error = contained(&host, "spin");
    assert_eq!(limit_exceeded(&error).0, "cpu_time", "{error}");
}

#[test]
fn too_many_threads_kill_the_worker() {
    let (host, plugin, _) = hostile_with(|_| {});
    // It answers, leaving 20 sleeping threads; the watchdog kills it. On a
    // loaded machine the watchdog can count the threads before the reply is
    // written, and the call itself is the one killed.
    let error = match decide(&host, "rebal.hostile_python.v1", Some("threads:20")) {
        Ok(record) => {
            assert!(record.output.summary.no_op);
            wait_for_death(&plugin);
            hostile_error(&host, "")
        }
        Err(HostError::Run(RunError::Policy { plugin_id, error })) => {
            assert_eq!(plugin_id, "hostile.python.v1");
            error
        }
        Err(other) => panic!("unexpected error {other}"),
    };
    let (limit, detail) = limit_exceeded(&error);
    assert_eq!(limit, "threads");
    assert!(detail.contains("more than the 16 allowed"), "{detail}");
    assert_eq!(plugin.stats().limit_kills, 1);
    assert!(decide(&host, "rebal.hostile_python.v1", None).unwrap().output.summary.no_op);
}

#[test]
fn opening_too_many_files_fails_inside_the_plugin() {
    let (host, _) = hostile();
    let error = contained(&host, "open_files:200");
    assert!(failure(&error).contains("Too many open files"), "{error}");
}

#[test]
fn a_stderr_flood_kills_the_worker() {
    let (host, _, logs) = hostile_with(|_| {});
    let error = contained(&host, &format!("stderr_flood:{}", 2 << 20));
    let (limit, _) = limit_exceeded(&error);
    assert_eq!(limit, "stderr_bytes");
    let logs = logs.lock().unwrap();
    assert!(logs.len() < 700, "{} lines were forwarded", logs.len());
    assert!(logs.iter().any(|l| l.contains("stderr exceeds 1048576 bytes a minute")));
}

#[test]
fn stderr_lines_past_the_rate_limit_are_dropped_with_one_notice() {
    let (host, _, logs) = hostile_with(|c| c.max_log_lines_per_minute = 50);
    decide(&host, "rebal.hostile_python.v1", Some("log_many:1000")).unwrap();
    let notice = "more than 50 stderr lines this minute";
    for _ in 0..500 {
        if logs.lock().unwrap().iter().any(|l| l.contains(notice)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let logs = logs.lock().unwrap();
    assert_eq!(logs.iter().filter(|l| l.contains(notice)).count(), 1, "{logs:?}");
    assert_eq!(logs.len(), 51, "50 lines and the notice");
}

#[test]
fn replies_past_the_per_minute_volume_kill_the_worker() {
    let (host, plugin, _) = hostile_with(|c| c.max_reply_bytes_per_minute = 4000);
    let error = hostile_error(&host, "big:5000");
    let (limit, detail) = limit_exceeded(&error);
    assert_eq!(limit, "reply_bytes_per_minute");
    assert!(detail.contains("more than the 4000 allowed"), "{detail}");
    assert_eq!(plugin.stats().limit_kills, 1);
}
