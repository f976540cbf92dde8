//! Pack documents: the built-ins, the seed's payloads, validation and the
//! "latest active" rule.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use polis_packs::eval::{Answers, Context, evaluate};
use polis_packs::{Catalog, PackDocument, PackError, PackRef, PackStatus, ProjectLayer, resolve, scan};
use serde_json::{Value, json};

const KEYS: [&str; 5] = ["default", "beginner-guided", "startup-fast", "team-standard", "enterprise-compliance"];

fn seed_pack(key: &str) -> Option<PackDocument> {
    let path = polis_testdata::require(&format!("packs/{key}.json"))?;
    let bytes = std::fs::read(&path).unwrap();
    Some(PackDocument::from_json(&format!("`{}`", path.display()), &bytes).unwrap())
}

#[test]
fn the_five_builtin_packs_validate_at_version_1_0() {
    let catalog = Catalog::builtin().unwrap();
    let listed: Vec<(&str, Vec<&str>)> =
        catalog.list().map(|(key, versions)| (key, versions.iter().map(|d| d.version.as_str()).collect())).collect();
    let mut expected: Vec<(&str, Vec<&str>)> = KEYS.iter().map(|k| (*k, vec!["1.0"])).collect();
    expected.sort();
    assert_eq!(listed, expected);
}

/// The seed's published payloads load unchanged and, on the defective
/// fixture, give the same findings (code, severity, location, subject) as
/// polis's own pack of the same key: the rewording kept every intent.
#[test]
fn the_seed_payloads_load_and_evaluate_like_the_builtin_packs() {
    let dir = tempfile::tempdir().unwrap();
    common::defective_repo(dir.path());
    let builtin = Catalog::builtin().unwrap();
    let answers = Answers::new();
    let now = time::macros::datetime!(2026-01-01 00:00 UTC);
    for key in KEYS {
        let Some(seed) = seed_pack(key) else { return };
        let ours = builtin.resolve(&key.parse::<PackRef>().unwrap()).unwrap();
        let mut summaries = Vec::new();
        for pack in [&seed, ours] {
            let effective = resolve(pack, &ProjectLayer::default(), None).unwrap();
            let files = polis_packs::view::protocol_files(&effective.policy);
            let checks = polis_packs::view::required_checks(&effective.policy);
            let facts = scan::scan(dir.path(), &files, &checks).unwrap();
            let context = Context { answers: &answers, waivers: &[], now, phase: None };
            let evaluation = evaluate(&effective, &facts, &context).unwrap();
            let summary: Vec<String> = evaluation
                .findings
                .iter()
                .map(|f| format!("{} {:?} {:?}:{:?} {}", f.code, f.severity, f.path, f.line, f.subject()))
                .collect();
            summaries.push(summary);
        }
        assert!(!summaries[0].is_empty(), "{key}");
        assert_eq!(summaries[0], summaries[1], "pack `{key}`: seed payload and built-in disagree");
    }
}

#[test]
fn the_seed_payloads_keep_their_block_codes_and_blocking_questions() {
    let builtin = Catalog::builtin().unwrap();
    for key in KEYS {
        let Some(seed) = seed_pack(key) else { return };
        let ours = builtin.resolve(&key.parse::<PackRef>().unwrap()).unwrap();
        for pointer in ["/enforcement", "/requirements", "/defaults/ci", "/defaults/qa"] {
            assert_eq!(seed.pack.pointer(pointer), ours.pack.pointer(pointer), "{key} {pointer}");
        }
        let shape = |pack: &PackDocument| -> Vec<Value> {
            pack.pack["clarifications"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| json!([c["key"], c["options"], c["recommended"], c["blocking"], c["applies_to"]]))
                .collect()
        };
        assert_eq!(shape(&seed), shape(ours), "{key} clarifications");
    }
}

fn document(key: &str, version: &str) -> Value {
    json!({"key": key, "version": version, "name": "T", "status": "active",
           "pack": {"meta": {"key": key, "version": version}, "requirements": {"step_sections": ["Context"]}}})
}

fn violations(value: Value) -> Vec<String> {
    match PackDocument::from_value("pack `t`", value) {
        Err(PackError::Invalid { violations, .. }) => {
            violations.0.iter().map(|v| format!("{} {}", v.code, v.path)).collect()
        }
        Err(other) => vec![other.to_string()],
        Ok(_) => vec![],
    }
}

#[test]
fn unknown_top_level_keys_are_named_in_the_document_and_the_body() {
    let mut value = document("t", "1.0");
    value["extra"] = json!(1);
    assert_eq!(violations(value), ["pack.unknown_key /extra"]);
    let mut value = document("t", "1.0");
    value["pack"]["gates"] = json!({});
    let err = PackDocument::from_value("pack `t`", value).unwrap_err().to_string();
    assert!(err.contains("unknown top-level key `gates`"), "{err}");
    assert!(err.contains("/pack/gates"), "{err}");
}

#[test]
fn meta_key_and_version_must_match_the_document() {
    let mut value = document("t", "1.0");
    value["pack"]["meta"] = json!({"key": "other", "version": "2.0"});
    assert_eq!(violations(value), ["pack.meta_mismatch /pack/meta/key", "pack.meta_mismatch /pack/meta/version"]);
}

#[test]
fn a_pack_over_256_kb_is_refused_by_size() {
    let mut value = document("t", "1.0");
    value["pack"]["constraints"] = json!({"note": "x".repeat(300_000)});
    let text = serde_json::to_vec(&value).unwrap();
    assert!(matches!(PackDocument::from_json("pack `t`", &text), Err(PackError::TooLarge { .. })));
    assert!(matches!(PackDocument::from_value("pack `t`", value), Err(PackError::TooLarge { .. })));
}

#[test]
fn a_status_outside_the_three_is_refused() {
    let mut value = document("t", "1.0");
    value["status"] = json!("archived");
    assert_eq!(violations(value), ["pack.schema /status"]);
}

#[test]
fn repeated_keys_in_a_pack_document_are_refused() {
    let text = br#"{"key": "t", "key": "u", "version": "1.0", "pack": {"meta": {"key": "t", "version": "1.0"}}}"#;
    let err = PackDocument::from_json("pack `t`", text).unwrap_err().to_string();
    assert!(err.contains("duplicate key `key`"), "{err}");
}

#[test]
fn latest_active_is_the_highest_active_version_by_semver_like_order() {
    let mut catalog = Catalog::default();
    for version in ["1.9", "1.10", "2.0-rc.1", "1.2"] {
        catalog.insert(PackDocument::from_value("t", document("t", version)).unwrap()).unwrap();
    }
    let latest = |c: &Catalog| c.resolve(&"t".parse().unwrap()).map(|d| d.version.clone());
    assert_eq!(latest(&catalog).unwrap(), "2.0-rc.1");
    catalog.deprecate("t", Some("2.0-rc.1")).unwrap();
    assert_eq!(latest(&catalog).unwrap(), "1.10");
    // A deprecated version can still be pinned.
    assert_eq!(catalog.resolve(&"t@2.0-rc.1".parse().unwrap()).unwrap().status, PackStatus::Deprecated);
    catalog.deprecate("t", None).unwrap();
    assert!(matches!(latest(&catalog), Err(PackError::NoActiveVersion { .. })));
    assert!(matches!(catalog.resolve(&"t@9".parse().unwrap()), Err(PackError::UnknownVersion { .. })));
    assert!(matches!(catalog.resolve(&"u".parse().unwrap()), Err(PackError::UnknownPack { .. })));
}

#[test]
fn publishing_the_same_version_twice_is_idempotent_but_never_an_edit() {
    let mut catalog = Catalog::default();
    let first = PackDocument::from_value("t", document("t", "1.0")).unwrap();
    catalog.insert(first.clone()).unwrap();
    catalog.insert(first).unwrap();
    let mut changed = document("t", "1.0");
    changed["name"] = json!("Changed");
    let err = catalog.insert(PackDocument::from_value("t", changed).unwrap()).unwrap_err();
    assert!(matches!(err, PackError::Conflict { .. }), "{err}");
}

#[test]
fn a_disabled_version_cannot_be_pinned() {
    let mut catalog = Catalog::default();
    let mut value = document("t", "1.0");
    value["status"] = json!("disabled");
    catalog.insert(PackDocument::from_value("t", value).unwrap()).unwrap();
    assert!(matches!(catalog.resolve(&"t@1.0".parse().unwrap()), Err(PackError::Disabled { .. })));
}
