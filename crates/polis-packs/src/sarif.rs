//! SARIF 2.1.0 output: an evaluation's findings as a log that GitHub code
//! scanning accepts (`polis pack eval --sarif`).
//!
//! One run, whose `tool.driver` is polis with one rule per distinct finding
//! code (sorted by code), and one result per finding in the evaluation's
//! order. The output depends only on the evaluation and the effective
//! policy, never on where the repository was checked out, so the same
//! repository gives the same bytes.
//!
//! - **Level**: `block` and `error` are `error`, `warning` is `warning`,
//!   `info` is `note`.
//! - **Location**: every result has exactly one, because GitHub displays no
//!   result without a file location: the finding's repository-relative path
//!   (percent-encoded where a character is not allowed in a URI) against
//!   `uriBaseId` `%SRCROOT%`, the repository root. A finding about the policy
//!   rather than a file (an unanswered clarification) is placed on the
//!   repository's own policy file when it has one, else on
//!   [`POLICY_FALLBACK_URI`], the file the repository would add. The region
//!   is always given, since GitHub requires `region.startLine`: the
//!   finding's line, or line 1 for a finding about a whole file (or a file
//!   that is missing).
//! - **Fingerprint**: `partialFingerprints["polisFinding/v1"]` is the hex
//!   SHA-256 of the code, the location's URI and the finding's subject (its
//!   clarification key, section, file, check or step; the message when it
//!   has none), joined by NUL bytes. Lines and wording are left out, so an
//!   alert stays the same alert while a plan is edited around it.
//! - **Properties**: each result carries polis's `severity`, `scope`,
//!   `suggested_fix` and `metadata`; the run carries the `pack`, the
//!   `effective_hash`, the `mode` and whether the evaluation was `blocked`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::effective::EffectivePolicy;
use crate::eval::Evaluation;
use crate::finding::{Finding, Severity};

/// The `$schema` of the log: the SARIF 2.1.0 schema as GitHub's
/// documentation names it.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The SARIF version written.
pub const SARIF_VERSION: &str = "2.1.0";

/// The `uriBaseId` every location is relative to: the repository root.
pub const SRCROOT: &str = "%SRCROOT%";

/// Where a finding without a file is placed when the repository has no
/// policy file of its own.
pub const POLICY_FALLBACK_URI: &str = ".polis/policy.json";

/// The key of the fingerprint in `partialFingerprints`.
pub const FINGERPRINT_KEY: &str = "polisFinding/v1";

/// The short description and general help of each code polis emits; a code
/// not listed here (from a newer polis) is described by its name and its
/// first finding's suggested fix.
const RULES: [(&str, &str, &str); 8] = [
    (
        "policy.ci.required_check_missing",
        "A required CI check script is missing",
        "Add the script to the repository or change the policy's required checks.",
    ),
    (
        "policy.ci.required_check_not_executable",
        "A required CI check script is not executable",
        "Make the script an executable regular file (`chmod +x PATH`) so CI can execute it.",
    ),
    (
        "policy.clarification.unanswered",
        "A question of the policy has no recorded answer",
        "Answer it; the recommended value is shown, never assumed.",
    ),
    (
        "policy.protocol.missing_file",
        "A protocol run lacks a required file",
        "Regenerate the protocol artifacts or add the missing file.",
    ),
    (
        "policy.repo_local.relax_refused",
        "The repository's policy file tried to relax the policy",
        "Change the project's policy instead of the repository's file.",
    ),
    (
        "policy.step.file_missing",
        "The plan names a step that has no file",
        "Add the step file under the protocol directory or correct the plan.",
    ),
    (
        "policy.step.missing_section",
        "A step file lacks a required section",
        "Add a heading for each required section (`## SECTION`) to the step file.",
    ),
    ("policy.step.unreadable", "A step file cannot be checked", "Keep step files as UTF-8 Markdown under 1 MiB."),
];

/// The SARIF log of an evaluation made under `effective`.
///
/// # Example
///
/// ```
/// use polis_packs::{Catalog, ProjectLayer, resolve, sarif};
/// use polis_packs::eval::{Answers, Context, evaluate};
///
/// let catalog = Catalog::builtin().unwrap();
/// let pack = catalog.resolve(&"startup-fast".parse().unwrap()).unwrap();
/// let effective = resolve(pack, &ProjectLayer::default(), None).unwrap();
/// let facts = polis_packs::scan::RepoFacts::default();
/// let context = Context { answers: &Answers::new(), waivers: &[], now: time::OffsetDateTime::UNIX_EPOCH, phase: None };
/// let evaluation = evaluate(&effective, &facts, &context).unwrap();
/// let log = sarif::log(&evaluation, &effective);
/// assert_eq!(log["version"], "2.1.0");
/// let result = &log["runs"][0]["results"][0];
/// assert_eq!(result["ruleId"], "policy.clarification.unanswered");
/// assert_eq!(result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], ".polis/policy.json");
/// ```
pub fn log(evaluation: &Evaluation, effective: &EffectivePolicy) -> Value {
    let policy_uri = effective.repo_file.as_deref().map_or_else(|| POLICY_FALLBACK_URI.to_owned(), encode_path);

    let mut codes: BTreeMap<&str, &Finding> = BTreeMap::new();
    for finding in &evaluation.findings {
        codes.entry(finding.code.as_str()).or_insert(finding);
    }
    let index: BTreeMap<&str, usize> = codes.keys().enumerate().map(|(i, code)| (*code, i)).collect();
    let rules: Vec<Value> = codes.iter().map(|(code, first)| rule(code, first)).collect();
    let results: Vec<Value> = evaluation
        .findings
        .iter()
        .map(|finding| result(finding, index.get(finding.code.as_str()).copied().unwrap_or(0), &policy_uri))
        .collect();

    json!({
        "$schema": SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": "polis",
                "informationUri": env!("CARGO_PKG_REPOSITORY"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "originalUriBaseIds": {SRCROOT: {"description": {"text": "The root of the repository evaluated."}}},
            "results": results,
            "properties": {
                "pack": format!("{}@{}", effective.pack_key, effective.pack_version),
                "effective_hash": evaluation.effective_hash,
                "mode": evaluation.mode.as_str(),
                "blocked": evaluation.blocked,
            },
        }],
    })
}

fn rule(code: &str, first: &Finding) -> Value {
    let (short, help) = match RULES.iter().find(|(c, _, _)| *c == code) {
        Some((_, short, help)) => ((*short).to_owned(), (*help).to_owned()),
        None => (code.to_owned(), first.suggested_fix.clone()),
    };
    json!({
        "id": code,
        "shortDescription": {"text": short},
        "help": {"text": help},
    })
}

fn result(finding: &Finding, rule_index: usize, policy_uri: &str) -> Value {
    let uri = finding.path.as_deref().map_or_else(|| policy_uri.to_owned(), encode_path);
    let subject = match finding.subject() {
        "" => finding.message.as_str(),
        subject => subject,
    };
    let fingerprint = [finding.code.as_str(), &uri, subject].join("\0");
    let fingerprint = polis_core::canonical::Digest::of_bytes(fingerprint.as_bytes()).to_hex();
    json!({
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": level(finding.severity),
        "message": {"text": finding.message},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": uri, "uriBaseId": SRCROOT},
            "region": {"startLine": finding.line.unwrap_or(1)},
        }}],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
        "properties": {
            "severity": finding.severity,
            "scope": finding.scope,
            "suggested_fix": finding.suggested_fix,
            "metadata": finding.metadata,
        },
    })
}

/// The SARIF `level` of a severity.
pub fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Block | Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A repository-relative path as a relative URI reference: `/` separates
/// segments, and every byte that is not unreserved (RFC 3986: letters,
/// digits, `-`, `.`, `_`, `~`) is percent-encoded, so a run named with a
/// space or `#` still names its file.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_percent_encoded_outside_the_unreserved_set() {
        assert_eq!(encode_path(".protocols/0001-x/01-a.md"), ".protocols/0001-x/01-a.md");
        assert_eq!(encode_path(".protocols/my run#1/plan.md"), ".protocols/my%20run%231/plan.md");
        assert_eq!(encode_path("é"), "%C3%A9");
    }

    #[test]
    fn levels_follow_severity() {
        assert_eq!(level(Severity::Block), "error");
        assert_eq!(level(Severity::Error), "error");
        assert_eq!(level(Severity::Warning), "warning");
        assert_eq!(level(Severity::Info), "note");
    }
}
