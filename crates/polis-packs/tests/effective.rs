//! The effective policy: goldens with provenance, merge laws as
//! properties, and hostile repo-local files.

#![allow(clippy::unwrap_used, clippy::panic)]

use polis_packs::local::{self, RepoLocal};
use polis_packs::merge::{Layer, merge_patch};
use polis_packs::{Catalog, Mode, PackError, ProjectLayer, resolve};
use proptest::prelude::*;
use serde_json::{Value, json};

fn pack(key: &str) -> polis_packs::PackDocument {
    Catalog::builtin().unwrap().resolve(&key.parse().unwrap()).unwrap().clone()
}

fn team_project() -> ProjectLayer {
    ProjectLayer {
        overrides: Some(json!({
            "defaults": {"models": {"planning": "house-model"}, "git": {"draft_pr_default": false}},
            "requirements": {"protocol_files": ["plan.md", "context.md"]},
            "constraints": {"deploy_token": {"env": "DEPLOY_TOKEN"}}
        })),
        ops: vec![json!({"op": "add", "path": "/requirements/step_sections/-", "value": "Threat Model"})],
        enforcement_mode: None,
    }
}

#[test]
fn effective_team_standard_with_overrides_and_a_repo_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".polis")).unwrap();
    std::fs::write(
        dir.path().join(".polis/policy.yml"),
        "requirements:\n  required_checks:\n    - scripts/ci/audit.sh\nenforcement:\n  mode: block\n",
    )
    .unwrap();
    let repo = local::load(dir.path()).unwrap().unwrap();
    let effective = resolve(&pack("team-standard"), &team_project(), Some(&repo)).unwrap();
    assert_eq!(effective.mode, Mode::Block);
    assert_eq!(effective.mode_source, Layer::Repo);
    insta::assert_json_snapshot!("team_standard_effective", effective);
}

#[test]
fn effective_builtin_packs_without_overrides() {
    for key in ["default", "beginner-guided", "startup-fast", "team-standard", "enterprise-compliance"] {
        let effective = resolve(&pack(key), &ProjectLayer::default(), None).unwrap();
        assert!(effective.provenance.0.values().all(|l| *l == Layer::Pack), "{key}");
        insta::assert_json_snapshot!(
            format!("effective_{key}"),
            json!({
                "hash": effective.effective_hash, "mode": effective.mode, "policy": effective.policy
            })
        );
    }
}

#[test]
fn the_project_mode_wins_over_the_pack_and_the_repo_cannot_lower_it() {
    let project = ProjectLayer { enforcement_mode: Some(Mode::Block), ..ProjectLayer::default() };
    let repo = RepoLocal {
        file: ".polis/policy.json".into(),
        patch: json!({"enforcement": {"mode": "warn", "block_codes": []},
                      "clarifications": [{"key": "data_classification", "question": "?", "blocking": false}]}),
    };
    let effective = resolve(&pack("enterprise-compliance"), &project, Some(&repo)).unwrap();
    assert_eq!(effective.mode, Mode::Block);
    assert_eq!(effective.mode_source, Layer::Project);
    assert_eq!(effective.policy["enforcement"]["block_codes"].as_array().unwrap().len(), 5);
    let blocking: Vec<&str> = effective.policy["clarifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["blocking"] == json!(true))
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(blocking.len(), 5, "{blocking:?}");
    let notes: Vec<&str> = effective.notes.iter().map(|n| n.message.as_str()).collect();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(effective.notes.iter().all(|n| n.code == "policy.repo_local.relax_refused"));
}

#[test]
fn without_a_project_setting_the_pack_mode_decides_and_warn_is_the_default() {
    let effective = resolve(&pack("default"), &ProjectLayer::default(), None).unwrap();
    assert_eq!((effective.mode, effective.mode_source), (Mode::Warn, Layer::Pack));
    let mut bare = pack("default");
    bare.pack["enforcement"].as_object_mut().unwrap().remove("mode");
    let effective = resolve(&bare, &ProjectLayer::default(), None).unwrap();
    assert_eq!(effective.mode, Mode::Warn);
    assert_eq!(effective.policy["enforcement"]["mode"], "warn");
}

#[test]
fn overrides_may_not_touch_meta() {
    let project = ProjectLayer { overrides: Some(json!({"meta": {"key": "x"}})), ..ProjectLayer::default() };
    let err = resolve(&pack("default"), &project, None).unwrap_err().to_string();
    assert!(err.contains("project overrides") && err.contains("unknown top-level key `meta`"), "{err}");
}

#[test]
fn a_failing_test_operation_is_an_error_naming_the_layer() {
    let project = ProjectLayer {
        ops: vec![json!({"op": "test", "path": "/enforcement/mode", "value": "block"})],
        ..ProjectLayer::default()
    };
    let err = resolve(&pack("default"), &project, None).unwrap_err().to_string();
    assert!(err.starts_with("project operations"), "{err}");
}

// ---- hostile repo-local files ----------------------------------------------

fn load_hostile(file: &str, content: &[u8]) -> PackError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    let err = local::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains(file), "the error names the file: {err}");
    err
}

#[test]
fn a_10_mb_file_is_refused_by_size() {
    let big = format!("{{\"constraints\": {{\"x\": \"{}\"}}}}", "a".repeat(10 << 20));
    let err = load_hostile(".polis/policy.json", big.as_bytes());
    assert!(matches!(err, PackError::TooLarge { bytes, .. } if bytes == big.len() as u64), "{err}");
}

#[test]
fn nesting_10000_deep_is_refused_in_json_and_yaml() {
    let json_text = format!("{{\"constraints\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let err = load_hostile(".polis/policy.json", json_text.as_bytes());
    assert!(matches!(err, PackError::Parse { format: "JSON", .. }), "{err}");
    let yaml_text = format!("constraints: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let err = load_hostile(".polis/policy.yaml", yaml_text.as_bytes());
    assert!(matches!(err, PackError::Parse { format: "YAML", .. }), "{err}");
    let mut block = String::from("constraints:\n");
    for level in 1..200 {
        block.push_str(&format!("{}k:\n", "  ".repeat(level)));
    }
    let err = load_hostile(".polis/policy.yml", block.as_bytes());
    assert!(matches!(err, PackError::Parse { format: "YAML", .. }), "{err}");
}

#[test]
fn a_yaml_alias_bomb_is_refused() {
    let bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n\
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n\
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n\
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    let err = load_hostile(".polis/policy.yaml", bomb.as_bytes());
    assert!(matches!(err, PackError::Parse { format: "YAML", .. }), "{err}");
}

#[test]
fn duplicate_keys_are_refused_in_yaml_and_json() {
    let err = load_hostile(".polis/policy.yml", b"enforcement:\n  mode: warn\n  mode: block\n");
    assert!(matches!(err, PackError::Parse { format: "YAML", .. }), "{err}");
    let err = load_hostile(".tasksgodzilla/policy.json", br#"{"enforcement": {"mode": "warn", "mode": "block"}}"#);
    assert!(err.to_string().contains("duplicate key `mode`"), "{err}");
}

#[test]
fn an_unknown_key_is_refused_and_named() {
    let err = load_hostile(".polis/policy.yml", b"requirements: {}\nrunner: {image: evil}\n");
    assert!(err.to_string().contains("unknown top-level key `runner`"), "{err}");
}

#[test]
fn a_secret_value_is_refused_without_echoing_it() {
    let err = load_hostile(".polis/policy.yml", b"constraints:\n  registry_password: hunter2-very-secret\n");
    let text = err.to_string();
    assert!(text.contains("/constraints/registry_password") && text.contains("looks like a secret"), "{text}");
    assert!(!text.contains("hunter2"), "the value is never echoed: {text}");
    let err = load_hostile(".polis/policy.json", br#"{"constraints": {"note": "AKIAABCDEFGHIJKLMNOP1234"}}"#);
    assert!(!err.to_string().contains("AKIAABCDEF"), "{err}");
}

#[test]
fn an_environment_reference_is_kept_as_a_name_and_never_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".polis")).unwrap();
    std::fs::write(dir.path().join(".polis/policy.yml"), "constraints:\n  api_token: {env: PATH}\n").unwrap();
    let repo = local::load(dir.path()).unwrap().unwrap();
    let effective = resolve(&pack("default"), &ProjectLayer::default(), Some(&repo)).unwrap();
    assert_eq!(effective.policy["constraints"]["api_token"], json!({"env": "PATH"}));
}

#[test]
fn a_symlinked_policy_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".polis")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join(".polis/policy.json")).unwrap();
    let err = local::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("regular file"), "{err}");
}

#[test]
fn two_policy_files_are_refused_rather_than_one_guessed() {
    let dir = tempfile::tempdir().unwrap();
    for file in [".polis/policy.json", ".tasksgodzilla/policy.yml"] {
        std::fs::create_dir_all(dir.path().join(file).parent().unwrap()).unwrap();
        std::fs::write(dir.path().join(file), "{}").unwrap();
    }
    let err = local::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains(".polis/policy.json, .tasksgodzilla/policy.yml"), "{err}");
}

// ---- merge laws -----------------------------------------------------------

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        "[a-z]{0,6}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-d]", value(), 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// A merge patch: like an object, but some values are `null` (deletions).
fn patch() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-d]", prop_oneof![3 => value(), 1 => Just(Value::Null)], 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn constraints_pack(constraints: &Value) -> polis_packs::PackDocument {
    let mut document = pack("default");
    document.pack["constraints"] = constraints.clone();
    document
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn an_empty_override_is_the_identity(doc in object()) {
        let mut merged = doc.clone();
        merge_patch(&mut merged, &json!({}));
        prop_assert_eq!(&merged, &doc);
        let base = constraints_pack(&doc);
        let plain = resolve(&base, &ProjectLayer::default(), None).unwrap();
        let empty = ProjectLayer { overrides: Some(json!({})), ..ProjectLayer::default() };
        let with_empty = resolve(&base, &empty, None).unwrap();
        prop_assert_eq!(plain, with_empty);
    }

    #[test]
    fn null_deletes_and_other_values_replace(doc in object(), p in patch()) {
        let mut merged = doc.clone();
        merge_patch(&mut merged, &p);
        for (key, value) in p.as_object().unwrap() {
            if value.is_null() {
                prop_assert!(merged.get(key).is_none());
            } else if !value.is_object() {
                prop_assert_eq!(merged.get(key), Some(value));
            }
        }
        for (key, value) in doc.as_object().unwrap() {
            if !p.as_object().unwrap().contains_key(key) {
                prop_assert_eq!(merged.get(key), Some(value));
            }
        }
    }

    #[test]
    fn layers_apply_in_order_and_the_last_writer_owns_a_leaf(base in object(), a in patch(), b in patch()) {
        let document = constraints_pack(&base);
        let project = ProjectLayer { overrides: Some(json!({"constraints": a})), ..ProjectLayer::default() };
        let repo = RepoLocal { file: ".polis/policy.json".into(), patch: json!({"constraints": b}) };
        let effective = resolve(&document, &project, Some(&repo)).unwrap();
        let mut expected = base.clone();
        merge_patch(&mut expected, &a);
        let after_project = expected.clone();
        merge_patch(&mut expected, &b);
        let got = effective.policy.get("constraints").cloned().unwrap_or(Value::Null);
        prop_assert_eq!(&got, &expected);
        for (pointer, layer) in &effective.provenance.0 {
            let Some(rest) = pointer.strip_prefix("/constraints") else { continue };
            let value = expected.pointer(rest);
            let expected_layer = if after_project.pointer(rest) != value {
                Layer::Repo
            } else if base.pointer(rest) != value {
                Layer::Project
            } else {
                Layer::Pack
            };
            prop_assert_eq!(*layer, expected_layer, "{}", pointer);
        }
    }

    #[test]
    fn the_hash_ignores_key_order_and_changes_with_any_value(doc in object(), key in "[a-d]", extra in leaf()) {
        let forward = constraints_pack(&doc);
        let mut reversed_map = serde_json::Map::new();
        for (k, v) in doc.as_object().unwrap().iter().rev() {
            reversed_map.insert(k.clone(), v.clone());
        }
        let reversed = constraints_pack(&Value::Object(reversed_map));
        let h1 = resolve(&forward, &ProjectLayer::default(), None).unwrap().effective_hash;
        let h2 = resolve(&reversed, &ProjectLayer::default(), None).unwrap().effective_hash;
        prop_assert_eq!(&h1, &h2);
        let mut changed = doc.clone();
        let old = changed.get(&key).cloned();
        changed[&key] = json!({"changed": extra});
        prop_assume!(old.as_ref() != changed.get(&key));
        let h3 = resolve(&constraints_pack(&changed), &ProjectLayer::default(), None).unwrap().effective_hash;
        prop_assert_ne!(h1, h3);
    }
}
