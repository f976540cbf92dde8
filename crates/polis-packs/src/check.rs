//! The checks every policy document goes through, whichever layer it comes
//! from: byte and depth caps, named unknown top-level keys, the JSON
//! Schema, safe relative paths, and the secrets rule.
//!
//! **The secrets rule.** A policy may *refer* to an environment variable,
//! never hold a secret: a value `{"env": "NAME"}` (the object has that one
//! key, and `NAME` is `[A-Z_][A-Z0-9_]*`, at most 128 characters) names a
//! variable that whoever runs a step provides. polis never reads the
//! variable, never resolves it and returns only the name. A field whose
//! name says it holds a secret (`token`, `secret`, `password`, `passwd`,
//! `api_key`, `apikey`, `credential`, `private_key`, in any case, anywhere
//! in the name) must be such a reference, and a string that looks like a
//! credential (a PEM block, or a well-known token prefix such as `ghp_`,
//! `github_pat_`, `glpat-`, `xoxb-`, `AKIA`, `sk-` followed by 20 or more
//! token characters) is refused wherever it appears.

use std::sync::OnceLock;

use polis_core::contract::{Violation, Violations};
use serde_json::Value;

use crate::error::PackError;
use crate::schema;

/// Largest policy document, in bytes of compact JSON (the original's cap).
pub const MAX_BYTES: usize = 256_000;

/// Deepest nesting of arrays and objects a policy document may have.
pub const MAX_DEPTH: usize = 32;

/// The kind of document, which decides its schema and its allowed keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A pack's body: `meta` plus the sections.
    PackBody,
    /// An override or a repo-local file: the sections without `meta`.
    Override,
}

/// Checks a policy body and returns the violations found, or the first
/// cap it broke as an error.
pub fn policy(subject: &str, value: &Value, kind: Kind) -> Result<(), PackError> {
    let bytes = serde_json::to_vec(value).map_err(|e| PackError::Parse {
        subject: subject.to_owned(),
        format: "JSON",
        message: e.to_string(),
    })?;
    if bytes.len() > MAX_BYTES {
        return Err(PackError::TooLarge {
            subject: subject.to_owned(),
            bytes: bytes.len() as u64,
            cap: MAX_BYTES as u64,
        });
    }
    let mut violations = Vec::new();
    depth(value, 0, "", &mut violations);
    if violations.is_empty() {
        let allowed: &[&str] = match kind {
            Kind::PackBody => &schema::PACK_SECTIONS,
            Kind::Override => &schema::OVERRIDABLE_SECTIONS,
        };
        match value {
            Value::Object(map) => {
                for key in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
                    violations.push(Violation::new(
                        "policy.unknown_key",
                        format!("/{key}"),
                        format!("unknown top-level key `{key}` (allowed: {})", allowed.join(", ")),
                    ));
                }
            }
            _ => violations.push(Violation::new("policy.not_object", "", "must be a JSON object")),
        }
    }
    if violations.is_empty() {
        let validator = match kind {
            Kind::PackBody => pack_validator(),
            Kind::Override => override_validator(),
        }?;
        violations.extend(
            validator
                .iter_errors(value)
                .take(20)
                .map(|e| Violation::new("policy.schema", e.instance_path().to_string(), e.to_string())),
        );
    }
    if violations.is_empty() {
        paths(value, &mut violations);
        clarification_keys(value, &mut violations);
        secrets(value, "", &mut violations);
    }
    finish(subject, violations)
}

/// Turns a list of violations into `Ok` when empty.
pub fn finish(subject: &str, violations: Vec<Violation>) -> Result<(), PackError> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(PackError::Invalid { subject: subject.to_owned(), violations: Violations(violations) })
    }
}

fn compile(schema: Value) -> Result<jsonschema::Validator, String> {
    jsonschema::draft202012::new(&schema).map_err(|e| e.to_string())
}

fn pack_validator() -> Result<&'static jsonschema::Validator, PackError> {
    static V: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    V.get_or_init(|| compile(schema::pack_body())).as_ref().map_err(|e| schema_bug(e))
}

fn override_validator() -> Result<&'static jsonschema::Validator, PackError> {
    static V: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    V.get_or_init(|| compile(schema::override_body())).as_ref().map_err(|e| schema_bug(e))
}

/// The document schema's validator, for pack documents.
pub fn document_validator() -> Result<&'static jsonschema::Validator, PackError> {
    static V: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    V.get_or_init(|| compile(schema::document())).as_ref().map_err(|e| schema_bug(e))
}

fn schema_bug(message: &str) -> PackError {
    PackError::Rejected { subject: "the policy schema".into(), message: format!("does not compile: {message}") }
}

fn depth(value: &Value, level: usize, path: &str, out: &mut Vec<Violation>) {
    if level > MAX_DEPTH {
        out.push(Violation::new("policy.too_deep", path, format!("nested deeper than {MAX_DEPTH} levels")));
        return;
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                depth(item, level + 1, &format!("{path}/{i}"), out);
                if !out.is_empty() {
                    return;
                }
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                depth(item, level + 1, &format!("{path}/{}", escape(key)), out);
                if !out.is_empty() {
                    return;
                }
            }
        }
        _ => {}
    }
}

/// Escapes a key for a JSON pointer (RFC 6901).
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Protocol files and required checks are paths the evaluator looks at
/// inside the repository; they must stay inside it.
fn paths(value: &Value, out: &mut Vec<Violation>) {
    let lists = ["/requirements/protocol_files", "/requirements/required_checks", "/defaults/ci/required_checks"];
    for list in lists {
        let Some(Value::Array(items)) = value.pointer(list) else { continue };
        for (i, item) in items.iter().enumerate() {
            let Some(text) = item.as_str() else { continue };
            if let Err(why) = relative_path(text) {
                out.push(Violation::new("policy.path", format!("{list}/{i}"), format!("`{text}` {why}")));
            }
        }
    }
}

/// Whether `text` is a relative path that stays inside the directory it is
/// joined to.
pub fn relative_path(text: &str) -> Result<(), &'static str> {
    if text.starts_with('/') || text.starts_with('\\') {
        return Err("must be relative to the repository root");
    }
    if text.contains('\0') || text.contains('\\') {
        return Err("must not contain NUL or backslashes");
    }
    if text.split('/').any(|part| part == "..") {
        return Err("must not leave the repository (`..`)");
    }
    Ok(())
}

fn clarification_keys(value: &Value, out: &mut Vec<Violation>) {
    let Some(Value::Array(items)) = value.get("clarifications") else { return };
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(key) = item.get("key").and_then(Value::as_str)
            && !seen.insert(key)
        {
            out.push(Violation::new(
                "policy.clarification.duplicate",
                format!("/clarifications/{i}/key"),
                format!("clarification `{key}` is asked twice"),
            ));
        }
    }
}

const SECRET_NAMES: [&str; 8] =
    ["token", "secret", "password", "passwd", "api_key", "apikey", "credential", "private_key"];

fn secrets(value: &Value, path: &str, out: &mut Vec<Violation>) {
    match value {
        Value::Object(map) => {
            if map.contains_key("env") {
                if let Err(why) = env_reference(value) {
                    out.push(Violation::new("policy.secret", path, why));
                }
                return;
            }
            for (key, item) in map {
                let here = format!("{path}/{}", escape(key));
                let lower = key.to_ascii_lowercase();
                if SECRET_NAMES.iter().any(|name| lower.contains(name)) && !matches!(item, Value::Null) {
                    if let Err(why) = env_reference(item) {
                        out.push(Violation::new(
                            "policy.secret",
                            &here,
                            format!(
                                "`{key}` looks like a secret; refer to an environment variable by name instead ({why})"
                            ),
                        ));
                    }
                    continue;
                }
                secrets(item, &here, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                secrets(item, &format!("{path}/{i}"), out);
            }
        }
        Value::String(text) if looks_like_credential(text) => out.push(Violation::new(
            "policy.secret",
            path,
            "this value looks like a credential; a policy may only name an environment variable ({\"env\": \"NAME\"})",
        )),
        _ => {}
    }
}

/// Whether `value` is `{"env": "NAME"}` and nothing else.
fn env_reference(value: &Value) -> Result<(), String> {
    let expected = "expected {\"env\": \"NAME\"} with NAME in [A-Z_][A-Z0-9_]*";
    let Value::Object(map) = value else { return Err(expected.into()) };
    if map.len() != 1 {
        return Err(expected.into());
    }
    let Some(Value::String(name)) = map.get("env") else { return Err(expected.into()) };
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.bytes().enumerate().all(|(i, b)| b == b'_' || b.is_ascii_uppercase() || (i > 0 && b.is_ascii_digit()));
    if valid { Ok(()) } else { Err(expected.into()) }
}

fn looks_like_credential(text: &str) -> bool {
    if text.contains("-----BEGIN") {
        return true;
    }
    let prefixes = ["ghp_", "gho_", "ghs_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "AKIA", "sk-"];
    prefixes.iter().any(|prefix| {
        text.strip_prefix(prefix).is_some_and(|rest| {
            rest.len() >= 16 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
    })
}

/// Nesting depth of a value (a scalar is 0), computed without recursion so
/// a hostile value cannot exhaust the stack.
pub fn nesting(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((item, level)) = stack.pop() {
        deepest = deepest.max(level);
        match item {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, level + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, level + 1))),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(value: Value, kind: Kind) -> Vec<String> {
        match policy("test", &value, kind) {
            Ok(()) => vec![],
            Err(PackError::Invalid { violations, .. }) => {
                violations.0.iter().map(|v| format!("{} {}", v.code, v.path)).collect()
            }
            Err(other) => vec![other.to_string()],
        }
    }

    #[test]
    fn an_unknown_top_level_key_is_named() {
        let err = policy("project overrides", &json!({"meta": {}, "nope": 1}), Kind::Override).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unknown top-level key `meta`"), "{text}");
        assert!(text.contains("unknown top-level key `nope`"), "{text}");
    }

    #[test]
    fn list_caps_are_enforced() {
        let sections: Vec<String> = (0..31).map(|i| format!("S{i}")).collect();
        assert_eq!(
            codes(json!({"requirements": {"step_sections": sections}}), Kind::Override),
            ["policy.schema /requirements/step_sections"]
        );
        let codes_list: Vec<String> = (0..201).map(|i| format!("c{i}")).collect();
        assert_eq!(
            codes(json!({"enforcement": {"block_codes": codes_list}}), Kind::Override),
            ["policy.schema /enforcement/block_codes"]
        );
    }

    #[test]
    fn paths_must_stay_inside_the_repository() {
        assert_eq!(
            codes(json!({"defaults": {"ci": {"required_checks": ["/bin/sh", "a/../../x", "ok.sh"]}}}), Kind::Override),
            ["policy.path /defaults/ci/required_checks/0", "policy.path /defaults/ci/required_checks/1"]
        );
    }

    #[test]
    fn secrets_must_be_environment_references() {
        assert_eq!(
            codes(json!({"constraints": {"github_token": {"env": "GITHUB_TOKEN"}}}), Kind::Override),
            Vec::<String>::new()
        );
        assert_eq!(
            codes(json!({"constraints": {"github_token": "hunter2"}}), Kind::Override),
            ["policy.secret /constraints/github_token"]
        );
        assert_eq!(
            codes(json!({"constraints": {"note": "ghp_abcdefghijklmnopqrstuvwxyz012345"}}), Kind::Override),
            ["policy.secret /constraints/note"]
        );
        assert_eq!(
            codes(json!({"constraints": {"x": {"env": "lower-case"}}}), Kind::Override),
            ["policy.secret /constraints/x"]
        );
    }

    #[test]
    fn depth_is_capped_with_the_path_named() {
        let mut value = json!(1);
        for _ in 0..40 {
            value = json!({"a": value});
        }
        let found = codes(json!({"constraints": value}), Kind::Override);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("policy.too_deep /constraints/a/a"), "{found:?}");
        assert_eq!(nesting(&json!({"a": [1, {"b": 2}]})), 3);
    }

    #[test]
    fn duplicate_clarification_keys_are_refused() {
        let value = json!({"clarifications": [{"key": "a", "question": "?"}, {"key": "a", "question": "?"}]});
        assert_eq!(codes(value, Kind::Override), ["policy.clarification.duplicate /clarifications/1/key"]);
    }
}
