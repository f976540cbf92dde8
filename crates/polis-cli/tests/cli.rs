//! The `polis` binary end to end: each test runs the real executable.

#![expect(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn polis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polis")).args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name).display().to_string()
}

fn rebalance_fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../polis-rebalance/tests/fixtures").join(name).display().to_string()
}

#[test]
fn demo_prints_moves_from_both_builtins() {
    let out = polis(&["rebalance", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("rebal.greedy.v1 on synthetic") && text.contains("rebal.global.v1 on synthetic"), "{text}");
    assert!(text.contains("bikes") && text.contains("run key"), "{text}");
}

#[test]
fn run_on_a_file_prints_a_table_or_the_output_document() {
    let input = rebalance_fixture("greedy_trap.json");
    let out = polis(&["rebalance", "run", "--policy", "rebal.global.v1", "--input", &input]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 moves, 4 bikes"), "{}", stdout(&out));

    let out = polis(&["rebalance", "run", "--policy", "rebal.greedy.v1", "--input", &input, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["bikes_moved_total"], 2);
    assert_eq!(doc["moves"][0]["reason_codes"][0], "min_distance_then_max_transfer");
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    let input = rebalance_fixture("small_city.json");
    let a = polis(&["rebalance", "run", "--input", &input, "--json"]);
    let b = polis(&["rebalance", "run", "--input", &input, "--json"]);
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn unknown_policy_versions_fail_closed() {
    let input = rebalance_fixture("small_city.json");
    let out = polis(&["rebalance", "run", "--policy", "rebal.greedy.v2", "--input", &input]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown policy version `rebal.greedy.v2`"), "{}", stderr(&out));
}

#[test]
fn bad_input_names_the_field() {
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rebalance_fixture("small_city.json")).unwrap()).unwrap();
    doc["stations"][2]["bikes"] = serde_json::json!(99);
    let out = run_with_stdin(&["rebalance", "run", "--input", "-"], &doc.to_string());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("stations[2].bikes"), "{}", stderr(&out));

    let out = run_with_stdin(&["rebalance", "run", "--input", "-", "--json"], "{\"stations\": [");
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(error["error"]["causes"].to_string().contains("malformed JSON"), "{error}");
}

fn run_with_stdin(args: &[&str], input: &str) -> Output {
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
fn snapshot_envelopes_feed_straight_back_into_run() {
    let feed = rebalance_fixture("gbfs_v2");
    let out = polis(&["rebalance", "snapshot", "--gbfs", &feed, "--envelope", "--k", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let envelope = stdout(&out);
    assert!(envelope.contains("\"view_snapshot_id\": \"gbfs_v2@1678090200\""), "{envelope}");
    let run = run_with_stdin(&["rebalance", "run", "--input", "-"], &envelope);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stdout(&run).contains("on gbfs_v2 at 2023-03-06T08:10:00Z"), "{}", stdout(&run));
}

#[test]
fn seed_manifests_validate_unchanged() {
    for name in ["seed_example_manifest.json", "seed_full_manifest.json"] {
        let out = polis(&["manifest", "validate", &fixture(name)]);
        assert!(out.status.success(), "{name}: {}", stdout(&out));
        assert!(stdout(&out).contains("contract rebalance.v1"), "{}", stdout(&out));
    }
}

#[test]
fn bad_manifest_lists_every_problem_by_field() {
    let out = polis(&["manifest", "validate", &fixture("bad_manifest.json"), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fields: Vec<&str> =
        report["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["contract_version", "plugin_id", "deterministic", "max_horizon_steps"]);
}

#[test]
fn contract_schema_is_json_schema_2020_12() {
    let out = polis(&["contract", "schema", "rebalance.v1", "--part", "input"]);
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(schema["title"], "PolicyInput");
    let out = polis(&["contract", "schema", "rebalance.v9"]);
    assert!(stderr(&out).contains("unknown contract `rebalance.v9`"));
}

#[test]
fn plugins_list_shows_every_contracts_builtins_active() {
    let out = polis(&["plugins", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["policy_version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["rebal.global.v1", "rebal.greedy.v1", "echo.scale.v1"], "every contract's built-ins");
    assert!(rows.as_array().unwrap().iter().all(|r| r["status"] == "active"));
}

#[test]
fn the_documented_real_data_command_prints_moves() {
    let Some(week) = polis_testdata::require("baywheels-2023-03-06") else {
        return;
    };
    let week = week.display().to_string();
    let out =
        polis(&["rebalance", "run", "--policy", "rebal.global.v1", "--gbfs", &week, "--at", "2023-03-08T16:00:00Z"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("rebal.global.v1 on baywheels-2023-03-06 at 2023-03-08T16:00:00Z"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn synth_writes_a_city_that_run_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let out = polis(&["rebalance", "synth", "--stations", "60", "--days", "1", "--seed", "3", "--out", &path]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = polis(&["rebalance", "run", "--gbfs", &path, "--at", "2024-01-01T09:30:00Z"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("(60 stations)"), "{}", stdout(&out));
}

#[test]
fn replay_out_draws_the_kpi_comparison_as_a_chart_and_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let city = dir.path().join("city").display().to_string();
    let out = polis(&["rebalance", "synth", "--stations", "40", "--days", "1", "--seed", "3", "--out", &city]);
    assert!(out.status.success(), "{}", stderr(&out));
    let replay = dir.path().join("replay");
    let replay_arg = replay.display().to_string();
    let args = ["rebalance", "replay", "--data", &city, "--to", "2024-01-01T12:00:00Z", "--out", &replay_arg];
    let out = polis(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("kpis.svg, report.html"), "{}", stdout(&out));
    let svg = std::fs::read_to_string(replay.join("kpis.svg")).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    assert_eq!(svg.matches("<g class=\"panel\"").count(), 6, "one panel per key figure");
    assert_eq!(svg.matches("<rect class=\"bar\"").count(), 6 * 3, "one bar per policy in every panel");
    assert!(svg.contains("data-metric=\"constrained_station_minutes\""), "{svg}");
    assert!(svg.contains("vs noop)"), "bars are labelled with their difference to noop: {svg}");
    // The constrained-minutes bars are as long as the CSV's means say.
    let csv = std::fs::read_to_string(replay.join("kpis.csv")).unwrap();
    let mean = |policy: &str| -> f64 {
        let row = csv.lines().find(|l| l.starts_with(&format!("{policy},1,constrained_station_minutes,"))).unwrap();
        row.split(',').nth(3).unwrap().parse().unwrap()
    };
    let panel = &svg[svg.find("data-metric=\"constrained_station_minutes\"").unwrap()..];
    let width = |policy: &str| -> f64 {
        let bar = &panel[panel.find(&format!("data-policy=\"{policy}\"")).unwrap()..];
        let at = bar.find("width=\"").unwrap() + 7;
        bar[at..at + bar[at..].find('"').unwrap()].parse().unwrap()
    };
    let (noop, greedy) = (mean("rebal.noop.v1"), mean("rebal.greedy.v1"));
    assert!(noop > 0.0, "{csv}");
    let ratio = width("rebal.greedy.v1") / width("rebal.noop.v1");
    assert!((ratio - greedy / noop).abs() < 0.01, "bars scale with the means: {ratio} against {greedy} / {noop}");
    let page = std::fs::read_to_string(replay.join("report.html")).unwrap();
    assert!(page.contains("<figure id=\"kpis\"><svg"), "the page shows the chart");
    assert!(page.contains("constrained min"), "and the table");
    let again = dir.path().join("again");
    let again_arg = again.display().to_string();
    let out = polis(&["rebalance", "replay", "--data", &city, "--to", "2024-01-01T12:00:00Z", "--out", &again_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(svg, std::fs::read_to_string(again.join("kpis.svg")).unwrap(), "the same replay draws the same bytes");
}

#[test]
fn polis_run_decides_any_contract_and_prints_the_run_record() {
    let document = r#"{"subject": {"label": "try"}, "input": {"values": [1, 2, 3]}, "params": {"scale": 2}}"#;
    let out = run_with_stdin(&["run", "--contract", "echo.v1", "--policy", "echo.scale.v1", "--input", "-"], document);
    assert!(out.status.success(), "{}", stderr(&out));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["output"], serde_json::json!({"values": [2, 4, 6], "sum": 12, "notes": []}));
    assert_eq!(record["run_key"]["label"], "try");
    assert_eq!(record["plugin_id"], "polis.echo.scale.v1");
    let bad = run_with_stdin(
        &["run", "--contract", "echo.v1", "--policy", "echo.scale.v1", "--input", "-"],
        r#"{"subject": {"label": "x"}, "input": {"values": ["one"]}, "params": {"scale": 2}}"#,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("values[0]"), "{}", stderr(&bad));
}

#[test]
fn contract_list_names_every_contract_with_its_permissions_and_host_methods() {
    let out = polis(&["contract", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["contract"].as_str().unwrap()).collect();
    assert_eq!(ids, ["rebalance.v1", "echo.v1", "strategy.v1"]);
    let echo = &list[1];
    assert_eq!(echo["capabilities"][0]["method"], "echo.note");
    assert_eq!(echo["capabilities"][0]["permission"], "echo:note");
    assert_eq!(echo["capabilities"][0]["wasm_import"], "echo_note");
}

#[test]
fn a_settings_file_with_an_unknown_key_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("polis.toml"), "workerz = 3\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["plugins", "list"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown setting `workerz`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The same document by RFC 8785: `150` and `150.0` are one number.
fn canonical(value: &serde_json::Value) -> String {
    String::from_utf8(polis_core::canonical::to_canonical_vec(value).unwrap()).unwrap()
}

#[test]
fn an_original_format_request_round_trips_to_the_original_output_shape() {
    let request = fixture("urbanflow/tiebreak_request.json");
    let out = polis(&["rebalance", "run", "--input", &request, "--output-format", "urbanflow"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("urbanflow/tiebreak_expected.json")).unwrap()).unwrap();
    assert_eq!(canonical(&got), canonical(&expected));
}

#[test]
fn an_original_format_request_that_turns_off_a_rule_names_the_field() {
    let mut request: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("urbanflow/tiebreak_request.json")).unwrap()).unwrap();
    request["spec"]["constraints"]["forbid_donating_below_L"] = serde_json::json!(false);
    let out = run_with_stdin(&["rebalance", "run", "--input", "-"], &request.to_string());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("spec.constraints.forbid_donating_below_L"), "{}", stderr(&out));
    request["spec"]["constraints"]["forbid_donating_below_L"] = serde_json::json!(true);
    request["spec"]["effort"]["max_moves"] = serde_json::json!("four");
    let out = run_with_stdin(&["rebalance", "run", "--input", "-"], &request.to_string());
    assert!(stderr(&out).contains("spec.effort.max_moves"), "{}", stderr(&out));
}

#[test]
fn the_original_output_shape_needs_an_original_request() {
    let input = rebalance_fixture("small_city.json");
    let out = polis(&["rebalance", "run", "--input", &input, "--output-format", "urbanflow"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("needs a request in the original's format"), "{}", stderr(&out));
}
