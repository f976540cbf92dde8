//! Payment policies and simulations over HTTP against the real `polis
//! serve`, on SQLite and on PostgreSQL: a policy is validated before it is
//! stored (an invalid one is a 422 naming its path, and a read token may
//! not store one); a scenario whose agent reads it with `FromDatabase`
//! runs as jobs the server's worker claims, one per sweep point, and each
//! point's report is what `polis payments simulate` prints for that value;
//! `FromUrl` and `json_path` are refused before anything runs.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test code: a failing unwrap is a failing test")]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{READ, Server, postgres_url, scratch_dir};

const SCENARIO: &str = r#"simulation: {ticks_per_day: 10, num_days: 1, rng_seed: 3}
agents:
  - id: BANK_A
    opening_balance: 50000
    unsecured_cap: 20000
    policy: {type: FromDatabase}
    arrival_config: {rate_per_tick: 1.0, amount_distribution: {type: Uniform, min: 5000, max: 30000},
      counterparty_weights: {BANK_B: 1.0}, deadline_range: [2, 6]}
  - id: BANK_B
    opening_balance: 50000
    arrival_config: {rate_per_tick: 1.0, amount_distribution: {type: Uniform, min: 5000, max: 30000},
      counterparty_weights: {BANK_A: 1.0}, deadline_range: [2, 6]}
"#;

/// Holds what would take BANK_A below `buffer`, releases near the deadline.
const POLICY: &str = r#"{"version": "1.0", "policy_id": "buffered", "parameters": {"buffer": 20000},
  "payment_tree": {"type": "condition", "node_id": "N1",
    "condition": {"op": "<=", "left": {"field": "ticks_to_deadline"}, "right": {"value": 1}},
    "on_true": {"type": "action", "node_id": "A1", "action": "Release"},
    "on_false": {"type": "condition", "node_id": "N2",
      "condition": {"op": ">=", "left": {"compute": {"op": "-", "left": {"field": "balance"}, "right": {"field": "amount"}}},
        "right": {"param": "buffer"}},
      "on_true": {"type": "action", "node_id": "A2", "action": "Release"},
      "on_false": {"type": "action", "node_id": "A3", "action": "Hold"}}}}"#;

fn numbers_as_f64(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(numbers_as_f64).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), numbers_as_f64(v))).collect()),
        other => other.clone(),
    }
}

fn wait_ready(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = server.get(&format!("/api/payments/simulations/{id}"));
        match body["status"].as_str() {
            Some("ready") => return body,
            Some("pending") if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => panic!("simulation {id}: {body}"),
        }
    }
}

fn policies_and_sweeps_run_as_jobs(database_url: &str, dir: &std::path::Path) {
    let server = Server::start(database_url, &[]);

    // Storing needs the admin role, and a valid policy.
    let put = json!({"agent_id": "BANK_A", "policy_json": POLICY});
    let (status, body) = server.call("POST", "/api/payments/policies", READ, Some(&put));
    assert_eq!(status, 403, "{body}");
    let bad = json!({"agent_id": "BANK_A", "policy": {"version": "1.0",
        "payment_tree": {"type": "action", "node_id": "A1", "action": "Relase"}}});
    let (status, body) = server.admin("POST", "/api/payments/policies", &bad);
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("$.payment_tree.action"), "{body}");
    assert_eq!(server.get("/api/payments/policies"), json!([]), "nothing was stored");
    let (status, body) = server.admin("POST", "/api/payments/policies", &put);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["policy_id"], "buffered");
    assert_eq!(server.get("/api/payments/policies/BANK_A")["policy_json"], POLICY);

    // A sweep over the stored policy's parameter: one job per value.
    let request = json!({"scenario": SCENARIO, "sweep": "buffer=0..40000:20000"});
    let (status, body) = server.call("POST", "/api/payments/simulations", READ, Some(&request));
    assert_eq!(status, 202, "{body}");
    let id = body["simulation_id"].as_str().unwrap().to_owned();
    let done = wait_ready(&server, &id);
    let points = done["points"].as_array().unwrap();
    assert_eq!(points.len(), 3, "{done}");
    let distinct: std::collections::BTreeSet<String> = points.iter().map(|p| p["job_id"].to_string()).collect();
    assert_eq!(distinct.len(), 3, "one job per point");

    // Each point is what the CLI gives for that value.
    let scenario = dir.join("scenario.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let put_cli = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["payments", "policies", "put", "BANK_A", "-", "--database-url", database_url])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(POLICY.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(put_cli.success());
    let cli = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["payments", "simulate", scenario.to_str().unwrap(), "--database-url", database_url])
        .args(["--sweep", "buffer=0..40000:20000", "--json"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    for (served, local) in points.iter().zip(cli["points"].as_array().unwrap()) {
        assert_eq!(served["value"], local["value"]);
        // The service stores reports as RFC 8785 JSON, where 1.0 is 1.
        assert_eq!(numbers_as_f64(&served["report"]), numbers_as_f64(&local["report"]), "value {}", local["value"]);
    }
    let a = &points[0]["report"]["agents"][0];
    assert_eq!(a["policy"]["kind"], "database");

    // Asking again is the same simulation.
    let (status, again) = server.call("POST", "/api/payments/simulations", READ, Some(&request));
    assert_eq!(status, 202);
    assert_eq!(again["simulation_id"], id.as_str());

    // The console lists the jobs, draws the sweep, and shows one job's costs.
    let (status, page) = server.call("GET", &format!("/console/payments?simulation={id}"), READ, None);
    assert_eq!(status, 200);
    let page = page.as_str().unwrap().to_owned();
    assert!(page.contains("<table id=\"policies\">") && page.contains("BANK_A"), "{page}");
    assert!(page.contains("<table id=\"simulations\">") && page.contains("buffer=20000"), "{page}");
    assert!(page.contains("<div id=\"sweep-plot\"><svg"), "the sweep is drawn: {page}");
    let job = points[1]["job_id"].as_str().unwrap();
    let (status, page) = server.call("GET", &format!("/console/payments?job={job}"), READ, None);
    assert_eq!(status, 200);
    let page = page.as_str().unwrap().to_owned();
    let total = points[1]["report"]["system"]["total_cost"].to_string();
    assert!(page.contains("<table id=\"agents\">") && page.contains("database <code>buffered</code>"), "{page}");
    assert!(page.contains(&format!("System: {total} cents")), "{page}");
    let (status, _) = server.call("GET", "/console/payments?job=nope", READ, None);
    assert_eq!(status, 404);

    // The service reads no URL and no file a request names.
    for policy in
        [r#"{type: FromUrl, url: "http://127.0.0.1:9/p.json"}"#, r#"{type: FromJson, json_path: /etc/passwd}"#]
    {
        let text = SCENARIO.replace("{type: FromDatabase}", policy);
        let (status, body) = server.call("POST", "/api/payments/simulations", READ, Some(&json!({"scenario": text})));
        assert_eq!(status, 422, "{body}");
        assert!(body.to_string().contains("agents[0].policy"), "{body}");
    }
    let (status, body) = server.call("GET", "/api/payments/simulations/sim-nope", READ, None);
    assert_eq!(status, 404, "{body}");
}

#[test]
fn policies_and_sweeps_on_sqlite_run_as_jobs() {
    let dir = scratch_dir("payments-sqlite");
    policies_and_sweeps_run_as_jobs(&format!("sqlite://{}", dir.join("polis.db").display()), &dir);
}

#[test]
fn policies_and_sweeps_on_postgres_run_as_jobs() {
    let Some(url) = postgres_url("payments") else { return };
    policies_and_sweeps_run_as_jobs(&url, &scratch_dir("payments-postgres"));
}
