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

/// The real interpreter (not a pyenv shim, which would need to fork) and
/// its installation prefix.
fn python() -> (PathBuf, PathBuf) {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable); print(sys.base_prefix)"])
        .output()
        .expect("python3 must be installed (scripts/test checks)");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let exe = PathBuf::from(lines.next().unwrap()).canonicalize().unwrap();
    (exe, PathBuf::from(lines.next().unwrap()))
}

/// Starts the Python plugin in `dir`. The SDK is not copied into test
/// fixtures: the host grants read access to `sdk/python` and puts it on
/// `PYTHONPATH`, as a deployment with the SDK installed would.
fn start(dir: &Path, logs: Option<Arc<Mutex<Vec<String>>>>) -> ProcessPlugin {
    let (exe, prefix) = python();
    let manifest = Manifest::from_json(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let sdk = repo().join("sdk/python");
    let mut sandbox = SandboxConfig::default();
    sandbox.read_paths.extend([prefix, exe.parent().unwrap().to_path_buf(), sdk.clone()]);
    let mut config = ProcessConfig { sandbox, ..ProcessConfig::default() };
    if let Some(logs) = logs {
        config.log_sink = Arc::new(move |id: &str, line: &str| logs.lock().unwrap().push(format!("{id}: {line}")));
    }
    let env = vec![("PYTHONPATH".to_owned(), sdk.display().to_string())];
    let spec = ProcessSpec { program: exe, args: vec!["plugin.py".into()], dir: dir.to_path_buf(), env };
    ProcessPlugin::start(manifest, spec, config).unwrap()
}

fn host_with(plugin: ProcessPlugin) -> Host {
    let mut registry: Registry<Rebalance> = builtins::registry();
    registry.register(Arc::new(polis_core::EndpointPolicy::<Rebalance>::new(Arc::new(plugin))), None).unwrap();
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

fn hostile() -> (Host, Arc<Mutex<Vec<String>>>) {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let dir = repo().join("crates/polis-process/tests/fixtures/hostile");
    (host_with(start(&dir, Some(Arc::clone(&logs)))), logs)
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
