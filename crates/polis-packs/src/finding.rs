//! Findings: what evaluation says about a repository under a policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For information.
    Info,
    /// To fix, but nothing waits for it.
    Warning,
    /// Wrong, but not blocking under the current mode.
    Error,
    /// Blocks the gate.
    Block,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The project or repository as a whole.
    Project,
    /// One protocol run (`.protocols/<run>/`).
    Protocol,
    /// One step of a run.
    Step,
}

/// One finding, in the original's shape plus a location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// A stable code, such as `policy.step.missing_section`.
    pub code: String,
    /// How much it matters, after enforcement.
    pub severity: Severity,
    /// What is wrong, for a person.
    pub message: String,
    /// What it is about.
    pub scope: Scope,
    /// What to do.
    pub suggested_fix: String,
    /// The file, relative to the repository root, where one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The 1-based line in `path`, where one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Details such as `run`, `file`, `section`, `key`.
    pub metadata: BTreeMap<String, Value>,
}

impl Finding {
    /// A finding without location or metadata.
    pub fn new(code: &str, severity: Severity, scope: Scope, message: String, suggested_fix: &str) -> Self {
        Finding {
            code: code.into(),
            severity,
            message,
            scope,
            suggested_fix: suggested_fix.into(),
            path: None,
            line: None,
            metadata: BTreeMap::new(),
        }
    }

    /// With a location.
    pub fn at(mut self, path: &str, line: Option<u32>) -> Self {
        self.path = Some(path.into());
        self.line = line;
        self
    }

    /// With one metadata entry.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// What the finding is about within its code: the clarification key,
    /// section, file or check.
    pub fn subject(&self) -> &str {
        ["key", "section", "file", "check", "step"]
            .iter()
            .find_map(|k| self.metadata.get(*k).and_then(Value::as_str))
            .unwrap_or("")
    }
}

/// Sorts findings by (scope, code, path, line, key), the documented order
/// of `polis pack eval --json`; the metadata's JSON text breaks any tie.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (a.scope, &a.code, &a.path, a.line, a.subject())
            .cmp(&(b.scope, &b.code, &b.path, b.line, b.subject()))
            .then_with(|| serde_json::to_string(&a.metadata).ok().cmp(&serde_json::to_string(&b.metadata).ok()))
    });
}
