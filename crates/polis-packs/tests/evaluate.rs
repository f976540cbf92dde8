//! Evaluation of a fixture repository with known defects under each pack,
//! and the enterprise-compliance gate in `block` mode.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use polis_packs::eval::{Answer, Answers, Context, Evaluation, Waiver, evaluate, gate};
use polis_packs::{Catalog, Mode, PackError, ProjectLayer, resolve, scan, view};
use serde_json::json;
use std::path::Path;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

fn run(
    repo: &Path,
    key: &str,
    mode: Option<Mode>,
    answers: &Answers,
    waivers: &[Waiver],
    phase: Option<&str>,
) -> Evaluation {
    let catalog = Catalog::builtin().unwrap();
    let pack = catalog.resolve(&key.parse().unwrap()).unwrap();
    let project = ProjectLayer { enforcement_mode: mode, ..ProjectLayer::default() };
    let effective = resolve(pack, &project, None).unwrap();
    let facts =
        scan::scan(repo, &view::protocol_files(&effective.policy), &view::required_checks(&effective.policy)).unwrap();
    evaluate(&effective, &facts, &Context { answers, waivers, now: NOW, phase }).unwrap()
}

#[test]
fn each_pack_finds_exactly_the_fixture_defects() {
    let dir = tempfile::tempdir().unwrap();
    common::defective_repo(dir.path());
    for key in ["default", "beginner-guided", "startup-fast", "team-standard", "enterprise-compliance"] {
        let evaluation = run(dir.path(), key, None, &Answers::new(), &[], None);
        assert!(!evaluation.blocked, "{key}: warn mode never blocks");
        insta::assert_json_snapshot!(format!("findings_{key}"), evaluation);
    }
}

#[test]
fn block_mode_escalates_only_the_block_codes() {
    let dir = tempfile::tempdir().unwrap();
    common::defective_repo(dir.path());
    common::executable(dir.path(), "scripts/ci/test.sh", false);
    let evaluation = run(dir.path(), "startup-fast", Some(Mode::Block), &Answers::new(), &[], None);
    let blocking: Vec<&str> = evaluation
        .findings
        .iter()
        .filter(|f| f.severity == polis_packs::Severity::Block)
        .map(|f| f.code.as_str())
        .collect();
    // startup-fast lists only the two check codes; the missing step file warns.
    assert_eq!(blocking, ["policy.ci.required_check_not_executable"]);
    assert!(
        evaluation
            .findings
            .iter()
            .any(|f| f.code == "policy.step.file_missing" && f.severity == polis_packs::Severity::Warning)
    );
}

fn enterprise_answers() -> Answers {
    let by = |value| Answer { value, answered_by: "lead@example.com".into() };
    [
        ("data_classification", by(json!("confidential"))),
        ("change_window", by(json!("scheduled"))),
        ("security_gate", by(json!("required"))),
        ("audit_artifacts", by(json!(["CI logs"]))),
        ("required_checks_confirm", by(json!(["scripts/ci/test.sh"]))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn blocking_codes(evaluation: &Evaluation) -> Vec<String> {
    gate(evaluation, None).blocking.iter().map(|f| format!("{} {}", f.code, f.subject())).collect()
}

#[test]
fn enterprise_compliance_blocks_until_answered_and_fixed_or_waived() {
    let dir = tempfile::tempdir().unwrap();
    common::defective_repo(dir.path());
    let repo = dir.path();

    let first = run(repo, "enterprise-compliance", Some(Mode::Block), &Answers::new(), &[], None);
    assert!(first.blocked);
    let unanswered = first.findings.iter().filter(|f| f.code == "policy.clarification.unanswered").count();
    assert_eq!(unanswered, 5);
    insta::assert_json_snapshot!("enterprise_block_gate", gate(&first, None));

    // Onboarding's gate waits only for onboarding's questions (and defects).
    let onboarding = run(repo, "enterprise-compliance", Some(Mode::Block), &Answers::new(), &[], Some("onboarding"));
    let questions: Vec<String> =
        blocking_codes(&onboarding).into_iter().filter(|c| c.starts_with("policy.clarification")).collect();
    assert_eq!(
        questions,
        [
            "policy.clarification.unanswered data_classification",
            "policy.clarification.unanswered required_checks_confirm",
            "policy.clarification.unanswered security_gate"
        ]
    );

    // Answered, the questions stop blocking; the defects still block.
    let answers = enterprise_answers();
    let answered = run(repo, "enterprise-compliance", Some(Mode::Block), &answers, &[], None);
    assert!(answered.blocked);
    assert!(answered.findings.iter().all(|f| f.code != "policy.clarification.unanswered"));

    // Fix the files; waive the one check the team cannot add yet.
    common::fix_repo(repo);
    std::fs::remove_file(repo.join("scripts/ci/security.sh")).unwrap();
    let still = run(repo, "enterprise-compliance", Some(Mode::Block), &answers, &[], None);
    assert_eq!(blocking_codes(&still), ["policy.ci.required_check_missing scripts/ci/security.sh"]);
    let waiver = Waiver {
        code: "policy.ci.required_check_missing".into(),
        path: Some("scripts/ci/security.sh".into()),
        reason: "security scanner arrives next sprint".into(),
        granted_by: "ciso@example.com".into(),
        expires_at: "2026-03-01T12:00:01Z".into(),
    };
    let waived = run(repo, "enterprise-compliance", Some(Mode::Block), &answers, std::slice::from_ref(&waiver), None);
    assert!(!waived.blocked, "{:?}", blocking_codes(&waived));
    let finding = waived.findings.iter().find(|f| f.code == "policy.ci.required_check_missing").unwrap();
    assert_eq!(finding.metadata["waiver"]["granted_by"], "ciso@example.com");

    // The instant it expires it applies nowhere.
    let expired = Waiver { expires_at: "2026-03-01T12:00:00Z".into(), ..waiver };
    let again = run(repo, "enterprise-compliance", Some(Mode::Block), &answers, &[expired], None);
    assert!(again.blocked);
    let finding = again.findings.iter().find(|f| f.code == "policy.ci.required_check_missing").unwrap();
    assert_eq!(finding.metadata["waiver_expired_at"], "2026-03-01T12:00:00Z");
}

#[test]
fn a_waiver_for_another_path_does_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    common::defective_repo(dir.path());
    std::fs::remove_file(dir.path().join("scripts/ci/test.sh")).unwrap();
    let waiver = Waiver {
        code: "policy.ci.required_check_missing".into(),
        path: Some("scripts/ci/other.sh".into()),
        reason: "r".into(),
        granted_by: "g".into(),
        expires_at: "2030-01-01T00:00:00Z".into(),
    };
    let evaluation = run(dir.path(), "startup-fast", Some(Mode::Block), &Answers::new(), &[waiver], None);
    assert!(evaluation.blocked);
}

#[test]
fn answers_are_checked_against_the_options_and_the_questions_asked() {
    let dir = tempfile::tempdir().unwrap();
    common::defective_repo(dir.path());
    let catalog = Catalog::builtin().unwrap();
    let pack = catalog.resolve(&"team-standard".parse().unwrap()).unwrap();
    let effective = resolve(pack, &ProjectLayer::default(), None).unwrap();
    let facts = scan::RepoFacts::default();
    let try_answers = |key: &str, value| {
        let answers: Answers = [(key.to_owned(), Answer { value, answered_by: "a".into() })].into_iter().collect();
        evaluate(&effective, &facts, &Context { answers: &answers, waivers: &[], now: NOW, phase: None })
    };
    assert!(try_answers("environments", json!(["dev", "staging"])).is_ok());
    let err = try_answers("environments", json!(["dev", "moon"])).unwrap_err();
    assert!(matches!(err, PackError::Rejected { .. }) && err.to_string().contains("not one of the options"), "{err}");
    let err = try_answers("favourite_colour", json!("blue")).unwrap_err();
    assert!(err.to_string().contains("asks no such question"), "{err}");
    let err = try_answers("review_policy", json!("3-approvals")).unwrap_err();
    assert!(err.to_string().starts_with("answer `review_policy`"), "{err}");
}

#[test]
fn an_unknown_phase_and_a_bad_waiver_are_errors() {
    let catalog = Catalog::builtin().unwrap();
    let pack = catalog.resolve(&"default".parse().unwrap()).unwrap();
    let effective = resolve(pack, &ProjectLayer::default(), None).unwrap();
    let facts = scan::RepoFacts::default();
    let none = Answers::new();
    let err = evaluate(&effective, &facts, &Context { answers: &none, waivers: &[], now: NOW, phase: Some("deploy") })
        .unwrap_err();
    assert!(err.to_string().contains("phase `deploy`"), "{err}");
    let waiver = Waiver {
        code: "x".into(),
        path: None,
        reason: "r".into(),
        granted_by: "g".into(),
        expires_at: "next week".into(),
    };
    let err = evaluate(&effective, &facts, &Context { answers: &none, waivers: &[waiver], now: NOW, phase: None })
        .unwrap_err();
    assert!(err.to_string().contains("RFC 3339"), "{err}");
}

#[test]
fn guidance_lists_what_a_planner_must_produce() {
    let catalog = Catalog::builtin().unwrap();
    let pack = catalog.resolve(&"enterprise-compliance".parse().unwrap()).unwrap();
    let effective = resolve(pack, &ProjectLayer::default(), None).unwrap();
    let mut answers = enterprise_answers();
    answers.remove("change_window");
    let guidance = polis_packs::guidance::guidance(&effective, &answers);
    assert_eq!(guidance.unanswered.len(), 1);
    insta::assert_snapshot!("enterprise_guidance", guidance.to_markdown());
}
