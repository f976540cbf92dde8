//! `polis pack …` end to end: the real binary on a real repository.

#![expect(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::path::Path;
use std::process::{Command, Output};

fn polis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polis")).args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A repository whose one run lacks `log.md` and whose step lacks sections.
fn repo(root: &Path) {
    write(root, ".protocols/0001-x/plan.md", "# Plan\n\n- `01-a.md`\n");
    write(root, ".protocols/0001-x/context.md", "# Context\n");
    write(root, ".protocols/0001-x/01-a.md", "# A\n\n## Sub-tasks\n\n## Verification\n");
}

#[test]
fn list_shows_the_five_builtin_packs() {
    let out = polis(&["pack", "list", "--json"]);
    assert!(out.status.success());
    let packs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = packs.as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["beginner-guided", "default", "enterprise-compliance", "startup-fast", "team-standard"]);
}

#[test]
fn validate_accepts_the_seed_payloads_and_names_an_unknown_key() {
    let Some(dir) = polis_testdata::require("packs") else { return };
    let file = dir.join("enterprise-compliance.json");
    let out = polis(&["pack", "validate", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("valid pack `enterprise-compliance@1.0`"));

    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yml");
    std::fs::write(&bad, "requirements: {}\nrunner: x\n").unwrap();
    let out = polis(&["pack", "validate", "--policy", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("unknown top-level key `runner`"), "{}", stdout(&out));
}

#[test]
fn effective_prints_each_value_with_its_layer() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "overrides.yml", "requirements:\n  protocol_files: [plan.md]\n");
    write(tmp.path(), "repo/.polis/policy.json", r#"{"enforcement": {"mode": "block"}}"#);
    let overrides = tmp.path().join("overrides.yml");
    let repo = tmp.path().join("repo");
    let out = polis(&[
        "pack",
        "effective",
        "--pack",
        "team-standard@1.0",
        "--overrides",
        overrides.to_str().unwrap(),
        "--repo",
        repo.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let effective: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(effective["mode"], "block");
    assert_eq!(effective["provenance"]["/enforcement/mode"], "repo");
    assert_eq!(effective["provenance"]["/requirements/protocol_files/0"], "pack");
    assert_eq!(effective["policy"]["requirements"]["protocol_files"], serde_json::json!(["plan.md"]));
    assert!(effective["effective_hash"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn eval_json_lists_sorted_findings_and_block_mode_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    repo(tmp.path());
    let root = tmp.path().to_str().unwrap();
    let out = polis(&["pack", "eval", root, "--pack", "team-standard", "--json"]);
    assert!(out.status.success(), "warn mode never blocks: {}", stdout(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["blocked"], false);
    let codes: Vec<&str> = report["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert!(
        codes.contains(&"policy.protocol.missing_file") && codes.contains(&"policy.step.missing_section"),
        "{codes:?}"
    );
    let out = polis(&["pack", "gate", root, "--pack", "team-standard", "--mode", "block"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("blocked"), "{}", stdout(&out));
}

#[test]
fn eval_sarif_prints_or_writes_a_log_and_conflicts_with_json() {
    let tmp = tempfile::tempdir().unwrap();
    repo(tmp.path());
    let root = tmp.path().to_str().unwrap();
    let out = polis(&["pack", "eval", root, "--pack", "team-standard", "--mode", "block", "--sarif"]);
    assert_eq!(out.status.code(), Some(1), "blocked, as without --sarif");
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["ruleId"] == "policy.step.missing_section" && r["level"] == "error"));
    let uris: Vec<&str> = results
        .iter()
        .map(|r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().unwrap())
        .collect();
    assert!(uris.contains(&".protocols/0001-x/log.md") && uris.iter().all(|u| !u.starts_with('/')), "{uris:?}");

    let file = tmp.path().join("polis.sarif");
    let flag = format!("--sarif={}", file.display());
    let out = polis(&["pack", "eval", root, "--pack", "team-standard", &flag]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("findings, 0 blocking"), "the table still prints: {}", stdout(&out));
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written["runs"][0]["properties"]["mode"], "warn");

    let out = polis(&["pack", "eval", root, "--sarif", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"), "{out:?}");
}

#[test]
fn a_hostile_repo_local_file_fails_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    repo(tmp.path());
    write(tmp.path(), ".polis/policy.yml", "constraints:\n  api_token: plain-text-secret\n");
    let out = polis(&["pack", "eval", tmp.path().to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(text.contains(".polis/policy.yml") && text.contains("looks like a secret"), "{text}");
    assert!(!text.contains("plain-text-secret"), "{text}");
}

#[test]
fn guidance_renders_markdown_with_the_hash() {
    let out = polis(&["pack", "guidance", "--pack", "startup-fast"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.starts_with("# Policy guidance: startup-fast@1.0"), "{text}");
    assert!(text.contains("- `Sub-tasks`") && text.contains("sha256:"), "{text}");
}
