//! SARIF output of the fixture repository's evaluations: valid against the
//! published SARIF 2.1.0 schema (`tests/fixtures/sarif-schema-2.1.0.json`),
//! shaped as GitHub code scanning needs it, and byte-stable (a golden).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use polis_packs::eval::{Answers, Context, evaluate};
use polis_packs::local::RepoLocal;
use polis_packs::{Catalog, Mode, ProjectLayer, resolve, sarif, scan, view};
use serde_json::Value;
use time::macros::datetime;

const PACKS: [&str; 5] = ["default", "beginner-guided", "startup-fast", "team-standard", "enterprise-compliance"];

fn sarif_of(repo: &Path, key: &str, mode: Option<Mode>) -> Value {
    let catalog = Catalog::builtin().unwrap();
    let pack = catalog.resolve(&key.parse().unwrap()).unwrap();
    let project = ProjectLayer { enforcement_mode: mode, ..ProjectLayer::default() };
    let repo_local = polis_packs::local::load(repo).unwrap();
    let effective = resolve(pack, &project, repo_local.as_ref()).unwrap();
    let facts =
        scan::scan(repo, &view::protocol_files(&effective.policy), &view::required_checks(&effective.policy)).unwrap();
    let answers = Answers::new();
    let context = Context { answers: &answers, waivers: &[], now: datetime!(2026-03-01 12:00 UTC), phase: None };
    let evaluation = evaluate(&effective, &facts, &context).unwrap();
    sarif::log(&evaluation, &effective)
}

/// Every schema violation, as `pointer: message`.
fn violations(log: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(include_str!("fixtures/sarif-schema-2.1.0.json")).unwrap();
    let validator = jsonschema::draft4::options().should_validate_formats(true).build(&schema).unwrap();
    validator.iter_errors(log).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

/// What GitHub code scanning needs beyond the schema: a driver name, rules
/// whose index matches, and on every result a rule, a message, one file
/// location relative to the checkout with a start line, and a fingerprint.
fn check_github_shape(log: &Value) {
    assert_eq!(log["$schema"], sarif::SCHEMA_URI);
    assert_eq!(log["version"], "2.1.0");
    let runs = log["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["tool"]["driver"]["name"], "polis");
    assert_eq!(run["tool"]["driver"]["semanticVersion"], env!("CARGO_PKG_VERSION"));
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "one rule per code, sorted");
    for rule in rules {
        assert!(!rule["shortDescription"]["text"].as_str().unwrap().is_empty());
        assert!(!rule["help"]["text"].as_str().unwrap().is_empty());
    }
    let mut fingerprints = BTreeSet::new();
    let mut used = BTreeSet::new();
    for result in run["results"].as_array().unwrap() {
        let index = usize::try_from(result["ruleIndex"].as_u64().unwrap()).unwrap();
        assert_eq!(result["ruleId"], rules[index]["id"]);
        used.insert(index);
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
        assert!(!result["message"]["text"].as_str().unwrap().is_empty());
        let locations = result["locations"].as_array().unwrap();
        assert_eq!(locations.len(), 1);
        let physical = &locations[0]["physicalLocation"];
        let uri = physical["artifactLocation"]["uri"].as_str().unwrap();
        assert!(!uri.is_empty() && !uri.starts_with('/') && !uri.contains("://"), "{uri}");
        assert_eq!(physical["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        assert!(physical["region"]["startLine"].as_u64().unwrap() >= 1);
        let fingerprint = result["partialFingerprints"][sarif::FINGERPRINT_KEY].as_str().unwrap();
        assert!(fingerprints.insert(fingerprint.to_owned()), "fingerprints are unique: {result}");
    }
    assert_eq!(used.len(), rules.len(), "every rule is used");
    assert!(run["properties"]["effective_hash"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn the_fixture_evaluations_are_valid_sarif_for_github() {
    let dir = tempfile::tempdir().unwrap();
    common::defective_repo(dir.path());
    for key in PACKS {
        for mode in [None, Some(Mode::Block)] {
            let log = sarif_of(dir.path(), key, mode);
            assert_eq!(violations(&log), Vec::<String>::new(), "{key} {mode:?}");
            check_github_shape(&log);
        }
    }
}

#[test]
fn the_schema_check_catches_a_broken_log() {
    let dir = tempfile::tempdir().unwrap();
    common::defective_repo(dir.path());
    let mut log = sarif_of(dir.path(), "team-standard", None);
    log["runs"][0]["results"][0]["level"] = "fatal".into();
    log["runs"][0]["results"][1]["message"] = serde_json::json!({});
    log["version"] = "2.0.0".into();
    let found = violations(&log);
    for pointer in ["/version", "/runs/0/results/0/level", "/runs/0/results/1/message"] {
        assert!(found.iter().any(|v| v.starts_with(&format!("{pointer}:"))), "{pointer} in {found:?}");
    }
}

#[test]
fn enterprise_compliance_in_block_mode_golden() {
    let dir = tempfile::tempdir().unwrap();
    common::defective_repo(dir.path());
    let log = sarif_of(dir.path(), "enterprise-compliance", Some(Mode::Block));
    insta::assert_json_snapshot!("sarif_enterprise_compliance_block", log);
}

#[test]
fn the_log_does_not_depend_on_where_the_repository_is() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    common::defective_repo(a.path());
    common::defective_repo(b.path());
    let text = |dir: &Path| serde_json::to_string(&sarif_of(dir, "team-standard", Some(Mode::Block))).unwrap();
    assert_eq!(text(a.path()), text(b.path()));
}

#[test]
fn policy_findings_are_placed_on_the_repository_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    common::defective_repo(dir.path());
    let locations = |log: &Value, code: &str| -> BTreeSet<String> {
        log["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["ruleId"] == code)
            .map(|r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().unwrap().to_owned())
            .collect()
    };
    let without = sarif_of(dir.path(), "team-standard", None);
    assert_eq!(locations(&without, "policy.clarification.unanswered"), BTreeSet::from([".polis/policy.json".into()]));

    // A repository file that tries to lower the mode: the refusal and the
    // questions both point at it.
    common::write(dir.path(), ".polis/policy.yml", "enforcement:\n  mode: warn\n");
    let with = sarif_of(dir.path(), "team-standard", Some(Mode::Block));
    assert_eq!(violations(&with), Vec::<String>::new());
    check_github_shape(&with);
    assert_eq!(locations(&with, "policy.clarification.unanswered"), BTreeSet::from([".polis/policy.yml".into()]));
    assert_eq!(locations(&with, "policy.repo_local.relax_refused"), BTreeSet::from([".polis/policy.yml".into()]));
}

#[test]
fn fingerprints_ignore_lines_and_wording_but_not_the_subject() {
    let catalog = Catalog::builtin().unwrap();
    let pack = catalog.resolve(&"team-standard".parse().unwrap()).unwrap();
    let effective = resolve(pack, &ProjectLayer::default(), None::<&RepoLocal>).unwrap();
    let finding = |line: u32, message: &str, step: &str| {
        polis_packs::Finding::new(
            "policy.step.file_missing",
            polis_packs::Severity::Warning,
            polis_packs::Scope::Step,
            message.into(),
            "fix",
        )
        .at(".protocols/0001-x/plan.md", Some(line))
        .with("step", step)
    };
    let evaluation = polis_packs::eval::Evaluation {
        effective_hash: effective.effective_hash.clone(),
        mode: Mode::Warn,
        blocked: false,
        findings: vec![
            finding(3, "one wording", "03-a.md"),
            finding(9, "another", "03-a.md"),
            finding(3, "x", "04-b.md"),
        ],
    };
    let log = sarif::log(&evaluation, &effective);
    let prints: Vec<&str> = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["partialFingerprints"][sarif::FINGERPRINT_KEY].as_str().unwrap())
        .collect();
    assert_eq!(prints[0], prints[1]);
    assert_ne!(prints[0], prints[2]);
}
