//! The rules, enforcement, answers, waivers and the gate.
//!
//! Rules (the original's, TasksGodzilla `PolicyService.evaluate_*`):
//!
//! - every run must hold every `requirements.protocol_files` entry, else
//!   `policy.protocol.missing_file` (metadata `run`, `file`);
//! - when the policy requires step sections, a step the plan names without
//!   its file is `policy.step.file_missing` (at the plan's line), and a step
//!   file without a required section is `policy.step.missing_section`
//!   (metadata `path`, `section`); as in the original, step rules apply
//!   only when `requirements.step_sections` is not empty;
//! - each required check (repository-relative) missing is
//!   `policy.ci.required_check_missing`, present but not an executable
//!   file `policy.ci.required_check_not_executable`;
//! - each clarification without an answer is `policy.clarification.unanswered`
//!   (metadata `key`, `applies_to`, `blocking`, and the recommended value,
//!   shown and never assumed).
//!
//! Enforcement: in `warn` mode every finding is a warning. In `block` mode a
//! finding whose code is in `enforcement.block_codes` blocks, and so does an
//! unanswered blocking clarification whose phase is at or before the phase
//! being gated (phases in order onboarding, planning, execution, qa; with
//! no phase given, every phase counts). A waiver whose code (and path, if
//! it names one) matches turns a blocking finding back into a warning until
//! `expires_at`; from that instant on it applies nowhere.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::effective::{EffectivePolicy, Mode};
use crate::error::PackError;
use crate::finding::{self, Finding, Scope, Severity};
use crate::scan::{CheckState, RepoFacts};
use crate::schema::PHASES;
use crate::view::{self, Clarification};

/// An answer to one clarification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The answer.
    pub value: Value,
    /// Who answered.
    pub answered_by: String,
}

/// Answers by clarification key.
pub type Answers = BTreeMap<String, Answer>;

/// Checks answers against the policy's clarifications: every key asked,
/// every value among the options when the policy lists them (a list answer
/// when every element is an option), and who answered named.
pub fn check_answers(policy: &Value, answers: &Answers) -> Result<(), PackError> {
    let asked = view::clarifications(policy);
    for (key, answer) in answers {
        let subject = format!("answer `{key}`");
        let clarification = asked.iter().find(|c| &c.key == key).ok_or_else(|| PackError::Rejected {
            subject: subject.clone(),
            message: "the policy asks no such question".into(),
        })?;
        check_answer(clarification, answer).map_err(|message| PackError::Rejected { subject, message })?;
    }
    Ok(())
}

/// Checks one answer against its clarification.
pub fn check_answer(clarification: &Clarification, answer: &Answer) -> Result<(), String> {
    if answer.answered_by.trim().is_empty() {
        return Err("`answered_by` must name who answered".into());
    }
    if answer.value.is_null() {
        return Err("the answer is empty".into());
    }
    let Some(options) = &clarification.options else { return Ok(()) };
    let allowed = |v: &Value| options.contains(v);
    let ok = match &answer.value {
        Value::Array(items) => !items.is_empty() && items.iter().all(allowed),
        single => allowed(single),
    };
    if ok {
        Ok(())
    } else {
        let listed: Vec<String> = options.iter().map(Value::to_string).collect();
        Err(format!("`{}` is not one of the options ({})", answer.value, listed.join(", ")))
    }
}

/// A time-limited exception for one blocking finding code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waiver {
    /// The finding code it waives.
    pub code: String,
    /// The finding path it is limited to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Why.
    pub reason: String,
    /// Who granted it.
    pub granted_by: String,
    /// RFC 3339; the waiver applies strictly before this instant.
    pub expires_at: String,
}

impl Waiver {
    /// Checks the fields and returns the expiry.
    pub fn expiry(&self) -> Result<OffsetDateTime, PackError> {
        let subject = format!("waiver for `{}`", self.code);
        let reject = |message: &str| PackError::Rejected { subject: subject.clone(), message: message.into() };
        if self.code.trim().is_empty() {
            return Err(reject("`code` is empty"));
        }
        if self.reason.trim().is_empty() {
            return Err(reject("`reason` must say why"));
        }
        if self.granted_by.trim().is_empty() {
            return Err(reject("`granted_by` must name who granted it"));
        }
        OffsetDateTime::parse(&self.expires_at, &Rfc3339)
            .map_err(|e| reject(&format!("`expires_at` is not RFC 3339: {e}")))
    }
}

/// What to evaluate against besides the policy and the repository.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// Recorded answers.
    pub answers: &'a Answers,
    /// Granted waivers.
    pub waivers: &'a [Waiver],
    /// The instant waivers are judged at; the caller reads the clock.
    pub now: OffsetDateTime,
    /// The phase being gated; `None` gates every phase.
    pub phase: Option<&'a str>,
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// The effective policy's hash.
    pub effective_hash: String,
    /// The mode the findings were enforced under.
    pub mode: Mode,
    /// Whether any finding blocks.
    pub blocked: bool,
    /// The findings, sorted by (scope, code, path, line, key).
    pub findings: Vec<Finding>,
}

/// Evaluates a repository's facts under an effective policy.
pub fn evaluate(
    effective: &EffectivePolicy,
    facts: &RepoFacts,
    context: &Context<'_>,
) -> Result<Evaluation, PackError> {
    let policy = &effective.policy;
    check_answers(policy, context.answers)?;
    let phase_limit = match context.phase {
        None => PHASES.len() - 1,
        Some(phase) => PHASES.iter().position(|p| *p == phase).ok_or_else(|| PackError::Rejected {
            subject: format!("phase `{phase}`"),
            message: format!("expected one of {}", PHASES.join(", ")),
        })?,
    };
    let mut waivers = Vec::new();
    for waiver in context.waivers {
        waivers.push((waiver, waiver.expiry()?));
    }

    let mut findings = effective.notes.clone();
    rules(policy, facts, &mut findings);
    for clarification in view::clarifications(policy) {
        if !context.answers.contains_key(&clarification.key) {
            findings.push(unanswered(&clarification));
        }
    }

    let block_codes = view::block_codes(policy);
    for finding in &mut findings {
        finding.severity = match effective.mode {
            Mode::Warn => Severity::Warning,
            Mode::Block => enforced(finding, &block_codes, phase_limit),
        };
        if finding.severity == Severity::Block {
            waive(finding, &waivers, context.now);
        }
    }
    finding::sort(&mut findings);
    let blocked = findings.iter().any(|f| f.severity == Severity::Block);
    Ok(Evaluation { effective_hash: effective.effective_hash.clone(), mode: effective.mode, blocked, findings })
}

fn enforced(finding: &mut Finding, block_codes: &[String], phase_limit: usize) -> Severity {
    if finding.code == "policy.clarification.unanswered" {
        let blocking = finding.metadata.get("blocking") == Some(&json!(true));
        let phase = finding.metadata.get("applies_to").and_then(Value::as_str).unwrap_or("onboarding");
        let index = PHASES.iter().position(|p| *p == phase).unwrap_or(0);
        if blocking && index <= phase_limit {
            finding.metadata.insert("enforcement_mode".into(), json!("block"));
            return Severity::Block;
        }
        return Severity::Warning;
    }
    if block_codes.contains(&finding.code) {
        finding.metadata.insert("enforcement_mode".into(), json!("block"));
        return Severity::Block;
    }
    Severity::Warning
}

fn waive(finding: &mut Finding, waivers: &[(&Waiver, OffsetDateTime)], now: OffsetDateTime) {
    let matching = waivers
        .iter()
        .filter(|(w, _)| w.code == finding.code && w.path.as_ref().is_none_or(|p| Some(p) == finding.path.as_ref()));
    let mut expired = None;
    for (waiver, expiry) in matching {
        if now < *expiry {
            finding.severity = Severity::Warning;
            finding.metadata.insert(
                "waiver".into(),
                json!({"reason": waiver.reason, "granted_by": waiver.granted_by, "expires_at": waiver.expires_at}),
            );
            return;
        }
        expired = Some(waiver.expires_at.clone());
    }
    if let Some(at) = expired {
        finding.metadata.insert("waiver_expired_at".into(), json!(at));
    }
}

fn rules(policy: &Value, facts: &RepoFacts, out: &mut Vec<Finding>) {
    let sections = view::step_sections(policy);
    for run in &facts.runs {
        for file in &run.missing_files {
            let path = format!(".protocols/{}/{file}", run.name);
            out.push(
                Finding::new(
                    "policy.protocol.missing_file",
                    Severity::Warning,
                    Scope::Protocol,
                    format!("protocol run `{}` lacks the required file `{file}`", run.name),
                    "Regenerate the protocol artifacts or add the missing file.",
                )
                .at(&path, None)
                .with("run", run.name.as_str())
                .with("file", file.as_str()),
            );
        }
        if sections.is_empty() {
            continue;
        }
        for (name, step) in &run.steps {
            let path = format!(".protocols/{}/{name}", run.name);
            if !step.exists {
                out.push(
                    Finding::new(
                        "policy.step.file_missing",
                        Severity::Warning,
                        Scope::Step,
                        format!("the plan of `{}` names step `{name}`, which has no file", run.name),
                        "Add the step file under the protocol directory or correct the plan.",
                    )
                    .at(&format!(".protocols/{}/plan.md", run.name), step.plan_line)
                    .with("run", run.name.as_str())
                    .with("step", name.as_str())
                    .with("expected_path", path.as_str()),
                );
                continue;
            }
            if let Some(why) = &step.unreadable {
                out.push(
                    Finding::new(
                        "policy.step.unreadable",
                        Severity::Warning,
                        Scope::Step,
                        format!("step file `{path}` cannot be checked: {why}"),
                        "Keep step files as UTF-8 Markdown under 1 MiB.",
                    )
                    .at(&path, None)
                    .with("run", run.name.as_str())
                    .with("step", name.as_str()),
                );
                continue;
            }
            for section in &sections {
                if step.headings.contains(&crate::scan::normalize_heading(section)) {
                    continue;
                }
                out.push(
                    Finding::new(
                        "policy.step.missing_section",
                        Severity::Warning,
                        Scope::Step,
                        format!("step `{path}` lacks the required section `{section}`"),
                        &format!("Add a `## {section}` heading to the step file."),
                    )
                    .at(&path, None)
                    .with("run", run.name.as_str())
                    .with("path", path.as_str())
                    .with("section", section.as_str()),
                );
            }
        }
    }
    for (check, state) in &facts.checks {
        let (code, message, fix) = match state {
            CheckState::Executable => continue,
            CheckState::Missing => (
                "policy.ci.required_check_missing",
                format!("required check script `{check}` is missing"),
                "Add the script to the repository or change the policy's required checks.".to_owned(),
            ),
            CheckState::NotExecutable => (
                "policy.ci.required_check_not_executable",
                format!("required check script `{check}` is not executable"),
                format!("Run `chmod +x {check}` so CI can execute it."),
            ),
        };
        out.push(
            Finding::new(code, Severity::Warning, Scope::Project, message, &fix)
                .at(check, None)
                .with("check", check.as_str()),
        );
    }
}

fn unanswered(clarification: &Clarification) -> Finding {
    let recommended = match &clarification.recommended {
        Some(value) => format!(" (recommended: {value})"),
        None => String::new(),
    };
    let mut finding = Finding::new(
        "policy.clarification.unanswered",
        Severity::Warning,
        Scope::Project,
        format!("clarification `{}` is unanswered: {}{recommended}", clarification.key, clarification.question),
        "Answer it; the recommended value is shown, never assumed.",
    )
    .with("key", clarification.key.as_str())
    .with("applies_to", clarification.applies_to.as_str())
    .with("blocking", clarification.blocking);
    if let Some(value) = &clarification.recommended {
        finding = finding.with("recommended", value.clone());
    }
    if let Some(options) = &clarification.options {
        finding = finding.with("options", Value::Array(options.clone()));
    }
    finding
}

/// The gate's answer for one phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateDecision {
    /// Whether the run may go on.
    pub allowed: bool,
    /// The phase gated, or `all`.
    pub phase: String,
    /// The effective hash decided under.
    pub effective_hash: String,
    /// The findings that block.
    pub blocking: Vec<Finding>,
}

/// Decides a gate from an evaluation made for that phase.
pub fn gate(evaluation: &Evaluation, phase: Option<&str>) -> GateDecision {
    let blocking: Vec<Finding> =
        evaluation.findings.iter().filter(|f| f.severity == Severity::Block).cloned().collect();
    GateDecision {
        allowed: blocking.is_empty(),
        phase: phase.unwrap_or("all").to_owned(),
        effective_hash: evaluation.effective_hash.clone(),
        blocking,
    }
}
