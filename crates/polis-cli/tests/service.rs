//! Acceptance tests that start the real `polis` binary: ingest, serve and
//! workers, on SQLite and on PostgreSQL, talking HTTP over loopback.
//!
//! Waiting loops poll until a deadline so a broken build fails instead of
//! hanging; no assertion is about how fast anything is.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failing unwrap is a failing test"
)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{postgres_url, scratch_dir};

const ADMIN: &str = "admin-secret";
const READ: &str = "read-secret";

fn polis() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_polis"));
    command.env("POLIS_LOG", "warn");
    command
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `polis serve`.
struct Server {
    proc: Proc,
    addr: String,
}

impl Server {
    fn start(database_url: &str, extra: &[&str]) -> Server {
        let mut child = polis()
            .args(["serve", "--database-url", database_url, "--listen", "127.0.0.1:0", "--admin-token", ADMIN])
            .args(["--read-token", READ])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr =
            line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("unexpected: {line}")).to_owned();
        Server { proc: Proc(child), addr }
    }

    /// Whether the server process is still running.
    fn alive(&mut self) -> bool {
        self.proc.0.try_wait().unwrap().is_none()
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        http(&self.addr, method, path, token, body.map(|b| b.to_string()).as_deref())
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, Some(READ), None)
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(READ), Some(body))
    }

    /// Polls a run's status until it is no longer pending.
    fn wait_final(&self, run_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (code, body) = self.get(&format!("/api/policy/status?run_id={run_id}"));
            assert_eq!(code, 200, "{body}");
            if body["status"] != "pending" {
                return body;
            }
            assert!(Instant::now() < deadline, "run {run_id} still pending: {body}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One HTTP/1.1 exchange over a fresh connection.
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let payload = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(payload)
    } else {
        payload.to_owned()
    };
    let value = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
    (code, value)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

fn ingest(path: &Path, database_url: &str) -> Value {
    let out =
        polis().args(["--json", "ingest", "gbfs"]).arg(path).args(["--database-url", database_url]).output().unwrap();
    assert!(out.status.success(), "ingest failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// ingest → config → run (pending → ready) → moves → status → cancel, with
/// the Bay Wheels week.
fn end_to_end(database_url: &str) {
    let Some(week) = polis_testdata::require("baywheels-2023-03-06") else {
        return;
    };
    let ingested = ingest(&week, database_url);
    assert_eq!(ingested["inserted"], 875, "{ingested}");
    let again = ingest(&week, database_url);
    assert_eq!((again["inserted"].as_u64(), again["skipped"].as_u64()), (Some(0), Some(875)), "ingest is idempotent");
    let system = ingested["system_id"].as_str().unwrap().to_owned();

    // Every claim is held for two seconds, so a run just asked for is
    // still pending or running when the cancel arrives.
    let server = Server::start(database_url, &["--hold-after-claim-ms", "2000"]);
    let (code, config) = server.get("/api/policy/config");
    assert_eq!(code, 200, "{config}");
    assert_eq!(config["available_policy_versions"], json!(["rebal.global.v1", "rebal.greedy.v1"]));
    assert_eq!(config["systems"][0]["system_id"], system.as_str());
    assert_eq!(config["systems"][0]["snapshots"], 875);

    // Monday 2023-03-06 08:30 Pacific.
    let bucket = 1_678_120_200;
    let ask = |policy: &str| json!({"system_id": system, "decision_bucket_ts": bucket, "policy_version": policy});
    let (code, pending) = server.post("/api/policy/run", &ask("rebal.global.v1"));
    assert_eq!(code, 200, "{pending}");
    assert_eq!(pending["status"], "pending");
    let run_id = pending["run_id"].as_str().unwrap().to_owned();

    let (code, other) = server.post("/api/policy/run", &ask("rebal.greedy.v1"));
    assert_eq!(code, 200);
    let (code, cancelled) = server.post("/api/policy/cancel", &json!({"run_id": other["run_id"]}));
    assert_eq!(code, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");

    let done = server.wait_final(&run_id);
    assert_eq!(done["status"], "ready", "{done}");
    let (_, ready) = server.post("/api/policy/run", &ask("rebal.global.v1"));
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["run_id"], run_id.as_str());
    let moves_total = ready["result"]["moves"].as_array().unwrap().len();
    assert!(moves_total > 0, "a Monday morning in San Francisco needs moves");
    assert_eq!(ready["provenance"]["view_snapshot_id"].as_str().unwrap().split('@').next(), Some(system.as_str()));

    let (code, page) = server.get(&format!("/api/policy/moves?run_id={run_id}&limit=5"));
    assert_eq!(code, 200);
    assert_eq!(page["total"].as_u64(), Some(moves_total as u64));
    assert_eq!(page["moves"][0]["move_rank"], 1);
    assert_eq!(page["moves"][0]["from_station_key"], ready["result"]["moves"][0]["from_station_key"]);

    let (code, status) = server.get(&format!("/api/policy/status?run_id={}", other["run_id"].as_str().unwrap()));
    assert_eq!((code, status["status"].as_str()), (200, Some("cancelled")), "the cancelled run stays cancelled");

    let (code, plugins) = server.get("/api/plugins");
    assert_eq!(code, 200);
    let rebalancing = plugins["plugins"].as_array().unwrap().iter().filter(|p| p["contract"] == "rebalance.v1").count();
    assert_eq!(rebalancing, 2, "{plugins}");

    // A second contract, through the generic run path and the same
    // workers: no route, table or job kind of its own.
    let echo = serde_json::json!({"contract": "echo.v1", "policy_version": "echo.scale.v1",
        "subject": {"label": "service"}, "input": {"values": [2, 4]}, "params": {"scale": 10}});
    let (code, pending) = server.post("/api/runs", &echo);
    assert_eq!(code, 200, "{pending}");
    let job_id = pending["job_id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let done = loop {
        let (_, job) = server.get(&format!("/api/jobs/{job_id}"));
        if job["status"] != "pending" || std::time::Instant::now() > deadline {
            break job;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(done["status"], "ready", "{done}");
    assert_eq!(done["result"]["sum"], 60, "{done}");
    let (code, metrics) = server.get("/metrics");
    assert_eq!(code, 200);
    assert!(metrics.as_str().unwrap().contains(r#"polis_runs{policy_version="rebal.global.v1",status="ready"} 1"#));
    let (code, denied) = server.call("GET", "/api/policy/config", None, None);
    assert_eq!((code, denied["error"]["field"].as_str()), (401, Some("authorization")));
}

#[test]
fn end_to_end_on_sqlite() {
    let dir = scratch_dir("e2e");
    end_to_end(&format!("sqlite://{}", dir.join("polis.db").display()));
}

#[test]
fn end_to_end_on_postgres() {
    if let Some(url) = postgres_url("e2e") {
        end_to_end(&url);
    }
}

fn start_worker(database_url: &str, extra: &[&str]) -> Proc {
    let mut child =
        polis().args(["worker", "--database-url", database_url]).args(extra).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "worker started");
    Proc(child)
}

/// A synthetic city written to disk and ingested.
fn synthetic_city(database_url: &str) -> String {
    let dir = scratch_dir("city");
    let out = polis()
        .args(["rebalance", "synth", "--stations", "60", "--days", "2", "--seed", "5", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    ingest(&dir, database_url)["system_id"].as_str().unwrap().to_owned()
}

#[test]
fn two_workers_on_postgres_process_1000_runs_once_each() {
    let Some(url) = postgres_url("scale") else {
        return;
    };
    let system = synthetic_city(&url);
    let server = Server::start(&url, &["--workers", "0"]);
    let start = 1_704_067_200; // 2024-01-01T00:00Z, the synthetic city's first snapshot
    let mut run_ids = Vec::new();
    for n in 0..500 {
        for policy in ["rebal.greedy.v1", "rebal.global.v1"] {
            let body = json!({"system_id": system, "decision_bucket_ts": start + n * 300, "policy_version": policy});
            let (code, answer) = server.post("/api/policy/run", &body);
            assert_eq!((code, answer["status"].as_str()), (200, Some("pending")), "{answer}");
            run_ids.push(answer["run_id"].as_str().unwrap().to_owned());
        }
    }
    let distinct: std::collections::BTreeSet<&String> = run_ids.iter().collect();
    assert_eq!(distinct.len(), 1000);
    let _a = start_worker(&url, &["--workers", "2"]);
    let _b = start_worker(&url, &["--workers", "2"]);
    let mut attempts_total = 0;
    for run_id in &run_ids {
        let done = server.wait_final(run_id);
        assert_eq!(done["status"], "ready", "{done}");
        attempts_total += done["timings"]["attempts"].as_i64().unwrap();
    }
    assert_eq!(attempts_total, 1000, "every run was claimed exactly once");
    let (_, metrics) = server.get("/metrics");
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains(r#"polis_runs{policy_version="rebal.global.v1",status="ready"} 500"#), "{metrics}");
    assert!(metrics.contains(r#"polis_runs{policy_version="rebal.greedy.v1",status="ready"} 500"#), "{metrics}");
    assert!(metrics.contains("polis_queue_depth 0"), "{metrics}");
}

#[test]
fn a_run_of_a_killed_worker_completes_on_another_after_the_lease() {
    let Some(url) = postgres_url("kill") else {
        return;
    };
    let system = synthetic_city(&url);
    let server = Server::start(&url, &["--workers", "0"]);
    let body = json!({"system_id": system, "decision_bucket_ts": 1_704_067_200 + 9 * 3600, "policy_version": "rebal.global.v1"});
    let (_, pending) = server.post("/api/policy/run", &body);
    let run_id = pending["run_id"].as_str().unwrap().to_owned();

    // This worker claims the run and then sits on it.
    let mut stuck = start_worker(&url, &["--workers", "1", "--lease-seconds", "2", "--hold-after-claim-ms", "600000"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, status) = server.get(&format!("/api/policy/status?run_id={run_id}"));
        if status["run_status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "never claimed: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL: no clean-up, no lease release.
    stuck.0.kill().unwrap();
    stuck.0.wait().unwrap();

    let _rescuer = start_worker(&url, &["--workers", "1", "--lease-seconds", "2"]);
    let done = server.wait_final(&run_id);
    assert_eq!(done["status"], "ready", "{done}");
    assert_eq!(done["timings"]["attempts"], 2, "claimed by the killed worker, then by the rescuer");
}

#[test]
fn a_worker_serves_its_own_metrics() {
    let dir = scratch_dir("worker-metrics");
    let url = format!("sqlite://{}", dir.join("polis.db").display());
    let system = synthetic_city(&url);
    let server = Server::start(&url, &["--workers", "0"]);
    let mut child = polis()
        .args(["worker", "--database-url", &url, "--workers", "1", "--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let _worker = Proc(child);
    let mut lines = [String::new(), String::new()];
    for line in &mut lines {
        stdout.read_line(line).unwrap();
    }
    assert_eq!(lines[0].trim(), "worker started");
    let addr = lines[1]
        .trim()
        .strip_prefix("metrics listening on http://")
        .unwrap_or_else(|| panic!("unexpected: {}", lines[1]))
        .to_owned();

    let body = json!({"system_id": system, "decision_bucket_ts": 1_704_067_200 + 9 * 3600, "policy_version": "rebal.global.v1"});
    let (_, pending) = server.post("/api/policy/run", &body);
    let done = server.wait_final(pending["run_id"].as_str().unwrap());
    assert_eq!(done["status"], "ready", "{done}");

    let (code, health) = http(&addr, "GET", "/healthz", None, None);
    assert_eq!((code, &health["status"]), (200, &json!("ok")));
    let (code, text) = http(&addr, "GET", "/metrics", None, None);
    assert_eq!(code, 200);
    let text = text.as_str().unwrap();
    for expected in [
        r#"polis_runs_processed_total{policy_version="rebal.global.v1",status="ready"} 1"#,
        r#"polis_plugin_latency_seconds_count{plugin_id="polis.rebal.global.v1"} 1"#,
        r#"polis_runs{policy_version="rebal.global.v1",status="ready"} 1"#,
        "polis_queue_depth 0",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

/// A plugin root holding the process tier's hostile Python fixture, with
/// the SDK beside it as `polis plugin new` lays a plugin out.
fn hostile_plugin_root() -> PathBuf {
    let root = scratch_dir("plugins");
    let dir = root.join("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in ["manifest.json", "plugin.py"] {
        std::fs::copy(crates.join("polis-process/tests/fixtures/hostile").join(file), dir.join(file)).unwrap();
    }
    std::fs::copy(crates.join("../sdk/python/polis_plugin.py"), dir.join("polis_plugin.py")).unwrap();
    root
}

#[test]
fn cancelling_a_run_stops_its_plugin_mid_call_and_frees_the_worker() {
    let dir = scratch_dir("cancel");
    let url = format!("sqlite://{}", dir.join("polis.db").display());
    let system = synthetic_city(&url);
    let root = hostile_plugin_root();
    // One worker and a policy timeout far beyond the test: only the
    // cancellation can free the worker from a plugin that sleeps an hour.
    let server =
        Server::start(&url, &["--workers", "1", "--timeout-seconds", "3600", "--plugin-dir", root.to_str().unwrap()]);
    let plugin = "hostile.python.v1";
    let (code, body) = server.call(
        "POST",
        &format!("/api/admin/plugins/{plugin}/systems/{system}"),
        Some(ADMIN),
        Some(&json!({"enabled": true})),
    );
    assert_eq!(code, 200, "{body}");
    let ask = |quality: &[&str]| {
        json!({"system_id": system, "decision_bucket_ts": 1_704_067_200 + 9 * 3600,
            "policy_version": "rebal.hostile_python.v1", "params": {"allowed_bucket_quality": quality}})
    };
    let (code, hung) = server.post("/api/policy/run", &ask(&["ok", "degraded", "mode:hang_half"]));
    assert_eq!((code, hung["status"].as_str()), (200, Some("pending")), "{hung}");

    // Wait until the worker's call is inside the plugin.
    let runtime = || {
        let (_, plugins) = server.get("/api/plugins");
        let row = plugins["plugins"].as_array().unwrap().iter().find(|p| p["plugin_id"] == plugin).cloned();
        row.unwrap_or_else(|| panic!("{plugin} not listed: {plugins}"))["runtime"].clone()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime()["calls"] != 1 {
        assert!(Instant::now() < deadline, "the plugin was never called: {}", runtime());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, cancelled) = server.post("/api/policy/cancel", &json!({"run_id": hung["run_id"]}));
    assert_eq!((code, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");

    // The single worker is free again: a normal run of the same plugin
    // completes, and the hung call ended as a cancellation in the tier.
    let (_, normal) = server.post("/api/policy/run", &ask(&["ok", "degraded"]));
    let done = server.wait_final(normal["run_id"].as_str().unwrap());
    assert_eq!(done["status"], "ready", "{done}");
    let runtime = runtime();
    assert_eq!(runtime["errors"]["policy.cancelled"], 1, "{runtime}");
    assert_eq!(runtime["successes"], 1, "{runtime}");
}

/// The run request of the hostile fixture in `mode` (none: a valid no-op);
/// `tag`, which the plugin ignores, makes a distinct run key (a run asked
/// again with the same key is answered from the store).
fn hostile_run(system: &str, mode: Option<&str>, tag: &str) -> Value {
    let mut quality = vec!["ok".to_owned(), "degraded".to_owned(), format!("tag:{tag}")];
    quality.extend(mode.map(|m| format!("mode:{m}")));
    json!({"system_id": system, "decision_bucket_ts": 1_704_067_200 + 9 * 3600,
        "policy_version": "rebal.hostile_python.v1", "params": {"allowed_bucket_quality": quality}})
}

#[test]
fn a_plugin_in_the_server_cannot_kill_it_or_read_its_database_or_etc_shadow() {
    let dir = scratch_dir("hostile-serve");
    let db = dir.join("polis.db");
    let url = format!("sqlite://{}", db.display());
    let system = synthetic_city(&url);
    let root = hostile_plugin_root();
    let mut server = Server::start(&url, &["--workers", "1", "--plugin-dir", root.to_str().unwrap()]);
    let pid = server.proc.0.id();
    let plugin = "hostile.python.v1";
    let path = format!("/api/admin/plugins/{plugin}/systems/{system}");
    let (code, body) = server.call("POST", &path, Some(ADMIN), Some(&json!({"enabled": true})));
    assert_eq!(code, 200, "{body}");
    // Four attacks: a fifth failure within the minute would open the
    // plugin's breaker, and the last run must reach the plugin.
    for mode in [
        format!("kill:{pid}"),
        "kill_parent".to_owned(),
        format!("read:{}", db.display()),
        "read:/etc/shadow".to_owned(),
    ] {
        let (code, run) = server.post("/api/policy/run", &hostile_run(&system, Some(&mode), "attack"));
        assert_eq!(code, 200, "{mode}: {run}");
        let done = server.wait_final(run["run_id"].as_str().unwrap());
        assert_eq!(done["status"], "error", "{mode} was not contained: {done}");
        assert!(done["error"]["message"].as_str().unwrap().contains(plugin), "{mode}: {done}");
        assert!(!done.to_string().contains("root:"), "{mode} leaked /etc/shadow: {done}");
        assert!(server.alive(), "{mode} killed the server");
        let (code, health) = server.call("GET", "/healthz", None, None);
        assert_eq!(code, 200, "{mode}: {health}");
    }
    let (_, normal) = server.post("/api/policy/run", &hostile_run(&system, None, "after"));
    let done = server.wait_final(normal["run_id"].as_str().unwrap());
    assert_eq!(done["status"], "ready", "{done}");
}

/// The hostile fixture's row of `GET /api/plugins`.
fn plugin_row(server: &Server, plugin: &str) -> Value {
    let (_, plugins) = server.get("/api/plugins");
    let row = plugins["plugins"].as_array().unwrap().iter().find(|p| p["plugin_id"] == plugin).cloned();
    row.unwrap_or_else(|| panic!("{plugin} not listed: {plugins}"))
}

#[test]
fn an_unapproved_plugin_never_runs_and_a_changed_one_is_refused_naming_both_digests() {
    let dir = scratch_dir("approval");
    let url = format!("sqlite://{}", dir.join("polis.db").display());
    let system = synthetic_city(&url);
    let root = hostile_plugin_root();
    let plugin = "hostile.python.v1";
    let args = ["--workers", "1", "--require-approval", "--plugin-dir", root.to_str().unwrap()];
    let server = Server::start(&url, &args);
    let path = format!("/api/admin/plugins/{plugin}/systems/{system}");
    assert_eq!(server.call("POST", &path, Some(ADMIN), Some(&json!({"enabled": true}))).0, 200);
    let row = plugin_row(&server, plugin);
    assert_eq!(row["approval"]["state"], "pending_approval", "{row}");
    let files = row["approval"]["files_sha256"].as_str().unwrap().to_owned();

    let (_, run) = server.post("/api/policy/run", &hostile_run(&system, None, "pending"));
    let refused = server.wait_final(run["run_id"].as_str().unwrap());
    assert_eq!(
        (refused["status"].as_str(), refused["error"]["code"].as_str()),
        (Some("error"), Some("policy.not_approved"))
    );
    assert!(refused["error"]["message"].as_str().unwrap().contains("pending approval"), "{refused}");
    assert_eq!(plugin_row(&server, plugin)["runtime"]["breaker"], "closed", "a refusal is not the plugin's fault");

    let approve = format!("/api/plugins/{plugin}/approve");
    let (code, body) = server.call("POST", &approve, Some(READ), Some(&json!({})));
    assert_eq!(code, 403, "a read token cannot approve: {body}");
    let wrong = "0".repeat(64);
    let (code, body) = server.call("POST", &approve, Some(ADMIN), Some(&json!({"files_sha256": wrong})));
    assert_eq!((code, body["error"]["code"].as_str()), (409, Some("plugin.files_mismatch")), "{body}");
    let out = polis()
        .args(["plugins", "approve", plugin, "--server", &format!("http://{}", server.addr), "--token", ADMIN])
        .args(["--files-sha256", &format!("sha256:{files}")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("approved    {plugin} 1.0.0 files sha256:{files} by token:")), "{stdout}");
    let row = plugin_row(&server, plugin);
    assert_eq!(row["approval"]["state"], "approved", "{row}");
    assert!(row["approval"]["approved"]["approved_by"].as_str().unwrap().starts_with("token:"), "{row}");
    let (_, run) = server.post("/api/policy/run", &hostile_run(&system, None, "approved"));
    let approved = server.wait_final(run["run_id"].as_str().unwrap());
    assert_eq!(approved["status"], "ready", "{approved}");
    drop(server);

    // The same version with a changed file: refused at every run, and the
    // approval cannot be renewed.
    let script = root.join("hostile/plugin.py");
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("\n# changed after approval\n");
    std::fs::write(&script, text).unwrap();
    let server = Server::start(&url, &args);
    let row = plugin_row(&server, plugin);
    assert_eq!(row["approval"]["state"], "artifact_changed", "{row}");
    let changed = row["approval"]["files_sha256"].as_str().unwrap().to_owned();
    assert_ne!(changed, files);
    let (_, run) = server.post("/api/policy/run", &hostile_run(&system, None, "changed"));
    let refused = server.wait_final(run["run_id"].as_str().unwrap());
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains(&files) && message.contains(&changed), "{refused}");
    let (code, body) = server.call("POST", &approve, Some(ADMIN), Some(&json!({})));
    assert_eq!((code, body["error"]["code"].as_str()), (409, Some("plugin.artifact_changed")), "{body}");
}
