//! The effective policy: pack → project overrides → repo-local file, with
//! the layer of every leaf, the enforcement mode, and the hash.
//!
//! **Enforcement mode, one source of truth.** The project's own setting
//! when it has one; else `enforcement.mode` of the policy after the project
//! layer (the pack's, or the project's override of it); else `warn`. The
//! repo-local file may raise the mode to `block` but never lower it: a
//! lower setting is refused with a `policy.repo_local.relax_refused`
//! finding. The resolved mode is written into the effective policy's
//! `enforcement.mode`, so the hash covers it.
//!
//! **What else a repository cannot relax.** It may not drop a block code
//! nor drop or unblock a blocking clarification that the layers below
//! have; such edits are undone and reported with the same finding. It can
//! add requirements, codes and questions freely.
//!
//! **The hash** is `sha256:` and the hex SHA-256 of the RFC 8785 form of
//! the effective policy (`polis_core::canonical::digest_of`), so it is the
//! same whatever the key order of the inputs and changes with any value.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::check::{self, Kind};
use crate::error::PackError;
use crate::finding::{Finding, Scope, Severity};
use crate::local::RepoLocal;
use crate::merge::{self, Layer, Provenance};
use crate::pack::PackDocument;
use crate::view::block_codes;

/// How findings count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every finding is a warning; nothing blocks.
    Warn,
    /// Block codes and unanswered blocking clarifications block.
    Block,
}

impl std::str::FromStr for Mode {
    type Err = PackError;
    fn from_str(text: &str) -> Result<Self, PackError> {
        match text {
            "warn" => Ok(Mode::Warn),
            "block" => Ok(Mode::Block),
            other => Err(PackError::Rejected {
                subject: format!("mode `{other}`"),
                message: "expected `warn` or `block`".into(),
            }),
        }
    }
}

impl Mode {
    /// `warn` or `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Warn => "warn",
            Mode::Block => "block",
        }
    }
}

/// A project's own policy settings, the middle layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectLayer {
    /// An RFC 7396 merge patch over the overridable sections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<Value>,
    /// RFC 6902 operations applied after the merge patch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<Value>,
    /// The project's enforcement mode; the first source of truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement_mode: Option<Mode>,
}

impl ProjectLayer {
    /// Checks the overrides and operations (the same checks as any policy
    /// layer).
    pub fn check(&self) -> Result<json_patch::Patch, PackError> {
        if let Some(overrides) = &self.overrides {
            check::policy("project overrides", overrides, Kind::Override)?;
        }
        merge::check_ops("project operations", &self.ops)
    }
}

/// The merged policy and everything known about how it came to be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectivePolicy {
    /// The pack's key.
    pub pack_key: String,
    /// The pack's version.
    pub pack_version: String,
    /// `sha256:<hex>` over the RFC 8785 form of `policy`.
    pub effective_hash: String,
    /// The resolved mode.
    pub mode: Mode,
    /// The layer that decided the mode.
    pub mode_source: Layer,
    /// The repo-local file applied, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo_file: Option<String>,
    /// The merged policy.
    pub policy: Value,
    /// The layer of each leaf, by JSON pointer.
    pub provenance: Provenance,
    /// Findings about the layering itself (a refused relaxation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Finding>,
}

/// Resolves the effective policy from its three layers.
pub fn resolve(
    pack: &PackDocument,
    project: &ProjectLayer,
    repo: Option<&RepoLocal>,
) -> Result<EffectivePolicy, PackError> {
    let ops = project.check()?;
    let mut policy = pack.pack.clone();
    let mut provenance = Provenance::of(&policy, Layer::Pack);

    let before = policy.clone();
    if let Some(overrides) = &project.overrides {
        merge::merge_patch(&mut policy, overrides);
    }
    merge::apply_ops("project operations", &mut policy, &ops)?;
    check::policy("the policy after project overrides", &policy, Kind::PackBody)?;
    provenance.apply(&before, &policy, Layer::Project);

    let (mut mode, mut mode_source) = match project.enforcement_mode {
        Some(mode) => (mode, Layer::Project),
        None => match policy.pointer("/enforcement/mode").and_then(Value::as_str) {
            Some("block") => (Mode::Block, *provenance.0.get("/enforcement/mode").unwrap_or(&Layer::Pack)),
            Some(_) => (Mode::Warn, *provenance.0.get("/enforcement/mode").unwrap_or(&Layer::Pack)),
            None => (Mode::Warn, Layer::Pack),
        },
    };

    let mut notes = Vec::new();
    if let Some(repo) = repo {
        let subject = format!("repo-local policy `{}`", repo.file);
        check::policy(&subject, &repo.patch, Kind::Override)?;
        let before = policy.clone();
        merge::merge_patch(&mut policy, &repo.patch);
        let asked = repo.patch.pointer("/enforcement/mode").and_then(Value::as_str);
        match asked {
            Some("block") if mode == Mode::Warn => {
                mode = Mode::Block;
                mode_source = Layer::Repo;
            }
            Some("warn") if mode == Mode::Block => {
                notes.push(refused(&repo.file, "lower the enforcement mode from `block` to `warn`"))
            }
            _ => {}
        }
        keep_block_codes(&before, &mut policy, &repo.file, &mut notes);
        keep_blocking_clarifications(&before, &mut policy, &repo.file, &mut notes);
        check::policy("the policy after the repo-local file", &policy, Kind::PackBody)?;
        provenance.apply(&before, &policy, Layer::Repo);
    }

    set_mode(&mut policy, mode);
    provenance.0.insert("/enforcement/mode".into(), mode_source);

    let digest = polis_core::canonical::digest_of(&policy).map_err(|e| PackError::Hash(e.to_string()))?;
    Ok(EffectivePolicy {
        pack_key: pack.key.clone(),
        pack_version: pack.version.clone(),
        effective_hash: format!("sha256:{}", digest.to_hex()),
        mode,
        mode_source,
        repo_file: repo.map(|r| r.file.clone()),
        policy,
        provenance,
        notes,
    })
}

fn set_mode(policy: &mut Value, mode: Mode) {
    if !policy.get("enforcement").is_some_and(Value::is_object) {
        policy["enforcement"] = json!({});
    }
    policy["enforcement"]["mode"] = json!(mode.as_str());
}

fn refused(file: &str, what: &str) -> Finding {
    Finding::new(
        "policy.repo_local.relax_refused",
        Severity::Warning,
        Scope::Project,
        format!("the repo-local policy tried to {what}; a repository may tighten the policy but not relax it"),
        "Change the project's policy instead of the repository's file.",
    )
    .at(file, None)
}

/// A block code as text: the schema allows strings and numbers, as the
/// original did.
pub fn code_text(code: &Value) -> String {
    match code {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn keep_block_codes(before: &Value, after: &mut Value, file: &str, notes: &mut Vec<Finding>) {
    let kept = block_codes(before);
    let now: BTreeSet<String> = block_codes(after).into_iter().collect();
    let missing: Vec<&String> = kept.iter().filter(|c| !now.contains(*c)).collect();
    if missing.is_empty() {
        return;
    }
    let mut codes: Vec<Value> = match after.pointer("/enforcement/block_codes").and_then(Value::as_array) {
        Some(list) => list.clone(),
        None => Vec::new(),
    };
    codes.extend(missing.iter().map(|c| json!(c)));
    if !after.get("enforcement").is_some_and(Value::is_object) {
        after["enforcement"] = json!({});
    }
    after["enforcement"]["block_codes"] = Value::Array(codes);
    let names: Vec<String> = missing.iter().map(|c| format!("`{c}`")).collect();
    notes.push(refused(file, &format!("remove block codes {}", names.join(", "))));
}

fn keep_blocking_clarifications(before: &Value, after: &mut Value, file: &str, notes: &mut Vec<Finding>) {
    let Some(old) = before.get("clarifications").and_then(Value::as_array) else { return };
    let blocking: Vec<&Value> = old.iter().filter(|c| c.get("blocking") == Some(&json!(true))).collect();
    if blocking.is_empty() {
        return;
    }
    if !after.get("clarifications").is_some_and(Value::is_array) {
        after["clarifications"] = json!([]);
    }
    let Some(list) = after.get_mut("clarifications").and_then(Value::as_array_mut) else { return };
    let mut restored = Vec::new();
    for item in blocking {
        let key = item.get("key").cloned().unwrap_or(Value::Null);
        match list.iter_mut().find(|c| c.get("key") == Some(&key)) {
            Some(current) if current.get("blocking") == Some(&json!(true)) => {}
            Some(current) => {
                current["blocking"] = json!(true);
                restored.push(code_text(&key));
            }
            None => {
                list.push(item.clone());
                restored.push(code_text(&key));
            }
        }
    }
    if !restored.is_empty() {
        let names: Vec<String> = restored.iter().map(|k| format!("`{k}`")).collect();
        notes.push(refused(file, &format!("drop or unblock blocking clarifications {}", names.join(", "))));
    }
}
