//! `polis payments` end to end, through the built binary.
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on bad fixtures")]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

fn polis_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn validate_accepts_a_corpus_policy_and_names_its_hash() {
    let Some(file) = polis_testdata::require("simcash-policies/target2_crisis_risk_denier.json") else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["payments", "validate", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("valid (policy `target2_crisis_risk_denier_v1`, sha256 "), "{stdout}");
}

#[test]
fn validate_from_stdin_prints_every_error_with_its_path_and_exits_1() {
    let policy = r#"{"version": "1.0", "parameters": {},
        "payment_tree": {"type": "condition", "node_id": "N1",
            "condition": {"op": ">", "left": {"field": "balanse"}, "right": {"param": "buffer"}},
            "on_true": {"type": "action", "node_id": "N1", "action": "Release"},
            "on_false": {"type": "action", "node_id": "A2", "action": "PostCollateral", "parameters": {"amount": {"value": 1}}}}}"#;
    let out = polis_stdin(&["payments", "validate", "-", "--json"], policy);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["valid"], false);
    let errors: Vec<(String, String)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().to_string(), e["path"].as_str().unwrap().to_string()))
        .collect();
    let want = [
        ("unknown_field", "$.payment_tree.condition.left"),
        ("unknown_parameter", "$.payment_tree.condition.right"),
        ("duplicate_node_id", "$.payment_tree.on_true"),
        ("action_not_allowed", "$.payment_tree.on_false.action"),
    ];
    for (kind, path) in want {
        assert!(errors.contains(&(kind.to_string(), path.to_string())), "missing {kind} at {path}: {errors:?}");
    }
    let human = polis_stdin(&["payments", "validate", "-"], policy);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("error   $.payment_tree.condition.left: unknown field `balanse` [unknown_field]"), "{text}");
}

#[test]
fn validate_refuses_text_that_is_not_json() {
    let out = polis_stdin(&["payments", "validate", "-", "--json"], "{\"version\": ");
    assert_eq!(out.status.code(), Some(1));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["errors"][0]["kind"], "invalid_json");
}

#[test]
fn simulate_prints_simcash_costs_and_writes_the_event_log_costs_and_plot() {
    let Some(file) = polis_testdata::require("simcash-scenarios/castro_exp1_2period.yaml") else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["payments", "simulate", file.to_str().unwrap(), "--json", "--out", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let agents = body["agents"].as_array().unwrap();
    assert_eq!(agents[0]["id"], "BANK_A");
    assert_eq!(agents[0]["total_cost"], 10_000);
    assert_eq!(agents[1]["costs"]["liquidity_opportunity"], 10_000);
    assert_eq!(body["system"]["settlements"], 3);
    let events = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert!(events.lines().any(|l| l.contains(r#""event":"decision""#) && l.contains(r#""path":"A1""#)), "{events}");
    let csv = std::fs::read_to_string(dir.path().join("costs.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().starts_with("BANK_A,10000,"), "{csv}");
    assert!(std::fs::read_to_string(dir.path().join("plot.svg")).unwrap().starts_with("<svg"));
}

#[test]
fn a_policy_stored_for_an_agent_runs_from_the_database_and_is_recorded_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("polis.db").display());
    let policy = r#"{"version": "1.0", "policy_id": "stored_release",
        "payment_tree": {"type": "action", "node_id": "A1", "action": "Release"}}"#;
    let put = polis_stdin(&["payments", "policies", "put", "BANK_A", "-", "--database-url", &db, "--json"], policy);
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let stored: serde_json::Value = serde_json::from_slice(&put.stdout).unwrap();
    assert_eq!(stored["policy_id"], "stored_release");

    let get = polis_stdin(&["payments", "policies", "get", "BANK_A", "--database-url", &db], "");
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), policy);

    // An invalid policy is refused and nothing is stored.
    let bad = r#"{"version": "1.0", "payment_tree": {"type": "action", "node_id": "A1", "action": "Teleport"}}"#;
    let refused = polis_stdin(&["payments", "policies", "put", "BANK_B", "-", "--database-url", &db], bad);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stdout).contains("unknown action `Teleport`"));
    let list = polis_stdin(&["payments", "policies", "list", "--database-url", &db, "--json"], "");
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");

    let scenario = dir.path().join("two.yaml");
    std::fs::write(
        &scenario,
        r#"simulation: {ticks_per_day: 4, num_days: 1, rng_seed: 1}
agents:
  - {id: BANK_A, opening_balance: 100000, policy: {type: FromDatabase}}
  - {id: BANK_B, opening_balance: 100000}
scenario_events:
  - {type: CustomTransactionArrival, from_agent: BANK_A, to_agent: BANK_B, amount: 1000, deadline: 2, schedule: {type: OneTime, tick: 0}}
"#,
    )
    .unwrap();
    let sim = polis_stdin(&["payments", "simulate", scenario.to_str().unwrap(), "--database-url", &db, "--json"], "");
    assert!(sim.status.success(), "{}", String::from_utf8_lossy(&sim.stderr));
    let report: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();
    let a = &report["agents"][0];
    assert_eq!(a["policy"]["kind"], "database");
    assert_eq!(a["policy"]["location"], "agent_policies/BANK_A");
    assert_eq!(a["settled_count"], 1);

    // Without a store the same scenario is refused, naming the flag.
    let without = polis_stdin(&["payments", "simulate", scenario.to_str().unwrap()], "");
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stderr).contains("--database-url"));
}
