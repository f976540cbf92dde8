//! Typed reads of a validated policy value.

use serde_json::Value;

use crate::effective::code_text;
use crate::schema::PHASES;

/// The codes that block in `block` mode when a policy lists none (the
/// original's safe allowlist).
pub const DEFAULT_BLOCK_CODES: [&str; 5] = [
    "policy.ci.required_check_missing",
    "policy.ci.required_check_not_executable",
    "policy.protocol.missing_file",
    "policy.step.missing_section",
    "policy.step.file_missing",
];

/// One question a policy asks.
#[derive(Debug, Clone, PartialEq)]
pub struct Clarification {
    /// Its stable key.
    pub key: String,
    /// The question.
    pub question: String,
    /// The allowed answers, when the policy lists them.
    pub options: Option<Vec<Value>>,
    /// The recommended answer, shown, never assumed.
    pub recommended: Option<Value>,
    /// Whether it blocks its phase's gate in `block` mode.
    pub blocking: bool,
    /// The phase it belongs to; `onboarding` when absent.
    pub applies_to: String,
}

impl Clarification {
    /// The position of its phase in [`PHASES`].
    pub fn phase_index(&self) -> usize {
        PHASES.iter().position(|p| *p == self.applies_to).unwrap_or(0)
    }
}

fn strings(policy: &Value, pointer: &str) -> Vec<String> {
    policy
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `requirements.protocol_files`.
pub fn protocol_files(policy: &Value) -> Vec<String> {
    strings(policy, "/requirements/protocol_files")
}

/// `requirements.step_sections`.
pub fn step_sections(policy: &Value) -> Vec<String> {
    strings(policy, "/requirements/step_sections")
}

/// `defaults.ci.required_checks` then `requirements.required_checks`,
/// without repeats, in that order (as the original).
pub fn required_checks(policy: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for check in strings(policy, "/defaults/ci/required_checks")
        .into_iter()
        .chain(strings(policy, "/requirements/required_checks"))
    {
        if !out.contains(&check) {
            out.push(check);
        }
    }
    out
}

/// `enforcement.block_codes`, or [`DEFAULT_BLOCK_CODES`] when absent.
pub fn block_codes(policy: &Value) -> Vec<String> {
    match policy.pointer("/enforcement/block_codes").and_then(Value::as_array) {
        Some(codes) => codes.iter().map(code_text).collect(),
        None => DEFAULT_BLOCK_CODES.iter().map(|c| (*c).to_owned()).collect(),
    }
}

/// The clarifications, in the policy's order.
pub fn clarifications(policy: &Value) -> Vec<Clarification> {
    let Some(items) = policy.get("clarifications").and_then(Value::as_array) else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            Some(Clarification {
                key: item.get("key")?.as_str()?.to_owned(),
                question: item.get("question").and_then(Value::as_str).unwrap_or_default().to_owned(),
                options: item.get("options").and_then(Value::as_array).cloned(),
                recommended: item.get("recommended").cloned(),
                blocking: item.get("blocking").and_then(Value::as_bool).unwrap_or(false),
                applies_to: item.get("applies_to").and_then(Value::as_str).unwrap_or("onboarding").to_owned(),
            })
        })
        .collect()
}
