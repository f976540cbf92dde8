//! Planning guidance: the effective policy rendered for a planner, so an
//! orchestrator puts the required artifacts into planning and decomposition
//! prompts and they come out right the first time (seed 002's "prompt
//! injection" gap).

use serde::Serialize;
use serde_json::Value;

use crate::effective::EffectivePolicy;
use crate::eval::Answers;
use crate::view;

/// What a planner must know, carrying the effective hash it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Guidance {
    /// The pack, `key@version`.
    pub pack: String,
    /// The effective policy's hash.
    pub effective_hash: String,
    /// `warn` or `block`.
    pub mode: String,
    /// Files every protocol run must hold.
    pub protocol_files: Vec<String>,
    /// Headings every step file must have.
    pub step_sections: Vec<String>,
    /// Check scripts that must exist and be executable.
    pub required_checks: Vec<String>,
    /// `defaults.qa`, as the policy gives it.
    pub qa: Value,
    /// `defaults.models`, as the policy gives it.
    pub models: Value,
    /// Questions still open: key, question, recommended value, blocking.
    pub unanswered: Vec<Value>,
}

/// Builds the guidance for an effective policy and the answers so far.
pub fn guidance(effective: &EffectivePolicy, answers: &Answers) -> Guidance {
    let policy = &effective.policy;
    Guidance {
        pack: format!("{}@{}", effective.pack_key, effective.pack_version),
        effective_hash: effective.effective_hash.clone(),
        mode: effective.mode.as_str().to_owned(),
        protocol_files: view::protocol_files(policy),
        step_sections: view::step_sections(policy),
        required_checks: view::required_checks(policy),
        qa: policy.pointer("/defaults/qa").cloned().unwrap_or(Value::Null),
        models: policy.pointer("/defaults/models").cloned().unwrap_or(Value::Null),
        unanswered: view::clarifications(policy)
            .into_iter()
            .filter(|c| !answers.contains_key(&c.key))
            .map(|c| {
                serde_json::json!({"key": c.key, "question": c.question, "recommended": c.recommended,
                                   "options": c.options, "blocking": c.blocking, "applies_to": c.applies_to})
            })
            .collect(),
    }
}

impl Guidance {
    /// The guidance as Markdown for a prompt.
    pub fn to_markdown(&self) -> String {
        let list = |items: &[String]| -> String {
            if items.is_empty() {
                "- (none)\n".to_owned()
            } else {
                items.iter().map(|i| format!("- `{i}`\n")).collect()
            }
        };
        let mut out = format!(
            "# Policy guidance: {}\n\nEffective policy `{}`, enforcement mode `{}`.\n\n",
            self.pack, self.effective_hash, self.mode
        );
        out.push_str("## Required protocol files\n\nEvery `.protocols/<run>/` must contain:\n\n");
        out.push_str(&list(&self.protocol_files));
        out.push_str("\n## Required step sections\n\nEvery step file `NN-<name>.md` must have these headings:\n\n");
        out.push_str(&list(&self.step_sections));
        out.push_str("\n## Required checks\n\nThese scripts must exist and be executable:\n\n");
        out.push_str(&list(&self.required_checks));
        out.push_str(&format!("\n## QA policy\n\n`{}`\n", self.qa));
        if self.models.is_null() {
            out.push_str("\n## Model defaults\n\nNone set (`defaults.models`).\n");
        } else {
            out.push_str(&format!("\n## Model defaults\n\n`{}`\n", self.models));
        }
        out.push_str("\n## Unanswered clarifications\n\n");
        if self.unanswered.is_empty() {
            out.push_str("- (none)\n");
        }
        for item in &self.unanswered {
            out.push_str(&format!(
                "- `{}`{}: {} (recommended: `{}`; applies to {})\n",
                item["key"].as_str().unwrap_or_default(),
                if item["blocking"] == Value::Bool(true) { " **blocking**" } else { "" },
                item["question"].as_str().unwrap_or_default(),
                item["recommended"],
                item["applies_to"].as_str().unwrap_or_default()
            ));
        }
        out
    }
}
