//! The approval gate: a plugin version runs only once an operator has
//! approved exactly the files it holds.
//!
//! When [`crate::Tiers::approval`] is set, every plugin loaded from a
//! directory is wrapped in a [`Gated`] endpoint and recorded in the gate
//! as seen, with its plugin version and the SHA-256 of its file list
//! ([`crate::signing::files_digest`]). Each call asks the gate first:
//!
//! - approved for this version with these files: the call goes through;
//! - never approved: refused, `pending_approval`;
//! - approved for this version with *other* files: refused, naming both
//!   digests. A plugin whose code changed must say so with a new version,
//!   which is approved afresh.
//!
//! A refusal is [`PolicyError::NotApproved`], which does not count against
//! the plugin's circuit breaker. The gate is shared by every contract and
//! tier, so one approval (`POST /api/plugins/{id}/approve`) lets the plugin
//! run wherever it is loaded. Approvals are kept by the service's store;
//! the gate holds this process's copy.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use polis_core::canonical::Digest;
use polis_core::manifest::Manifest;
use polis_core::permission::Grants;
use polis_core::policy::{CallEnv, PluginEndpoint, PolicyError};
use serde::Serialize;

/// One approval, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// The plugin.
    pub plugin_id: String,
    /// The plugin version approved.
    pub plugin_version: String,
    /// The file list approved.
    pub files_sha256: Digest,
    /// Who approved it (the token's subject).
    pub approved_by: String,
    /// When, epoch ms.
    pub approved_at_ms: i64,
}

/// A loaded plugin, as the gate saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// Its plugin version.
    pub plugin_version: String,
    /// Its file list's digest.
    pub files_sha256: Digest,
}

/// Where a loaded plugin stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Standing {
    /// It runs.
    Approved {
        /// The approval.
        approval: Approval,
    },
    /// No one has approved this version yet.
    PendingApproval,
    /// This version was approved with other files.
    ArtifactChanged {
        /// What was approved.
        approval: Approval,
        /// What the directory holds now.
        files_sha256: Digest,
    },
}

impl Standing {
    /// Why a call is refused, or `None` when it may go through.
    pub fn refusal(&self, plugin_id: &str, seen: &Seen) -> Option<String> {
        match self {
            Standing::Approved { .. } => None,
            Standing::PendingApproval => Some(format!(
                "plugin `{plugin_id}` version {} (files sha256:{}) is pending approval; an admin approves it with \
                 `polis plugins approve {plugin_id}` or POST /api/plugins/{plugin_id}/approve",
                seen.plugin_version,
                seen.files_sha256.to_hex()
            )),
            Standing::ArtifactChanged { approval, files_sha256 } => Some(format!(
                "plugin `{plugin_id}` version {} was approved with files sha256:{} but now holds files sha256:{}; \
                 a changed plugin needs a new plugin_version",
                approval.plugin_version,
                approval.files_sha256.to_hex(),
                files_sha256.to_hex()
            )),
        }
    }
}

/// Why an approval was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// No loaded plugin has this id.
    #[error("no loaded plugin `{0}`")]
    Unknown(String),
    /// The caller approved a file list other than the one loaded.
    #[error(
        "plugin `{plugin_id}` holds files sha256:{loaded}, not the sha256:{asked} given; look at the plugin again before approving it"
    )]
    NotWhatWasLoaded {
        /// The plugin.
        plugin_id: String,
        /// What is loaded.
        loaded: String,
        /// What the caller named.
        asked: String,
    },
    /// This version was approved before with other files.
    #[error(
        "plugin `{plugin_id}` version {plugin_version} was approved with files sha256:{approved}; its files are now sha256:{loaded}, so it needs a new plugin_version"
    )]
    ArtifactChanged {
        /// The plugin.
        plugin_id: String,
        /// The version.
        plugin_version: String,
        /// What was approved.
        approved: String,
        /// What is loaded.
        loaded: String,
    },
}

/// This process's approvals and the plugins it has loaded.
#[derive(Debug, Default)]
pub struct ApprovalGate {
    state: RwLock<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    seen: BTreeMap<String, Seen>,
    approvals: BTreeMap<(String, String), Approval>,
}

impl ApprovalGate {
    /// A gate holding `approvals` (as read from the store).
    pub fn new(approvals: impl IntoIterator<Item = Approval>) -> Arc<ApprovalGate> {
        let gate = ApprovalGate::default();
        gate.replace(approvals);
        Arc::new(gate)
    }

    /// Replaces the approvals with `approvals` (a fresh read of the store),
    /// keeping what was seen.
    pub fn replace(&self, approvals: impl IntoIterator<Item = Approval>) {
        let approvals = approvals.into_iter().map(|a| ((a.plugin_id.clone(), a.plugin_version.clone()), a)).collect();
        self.write().approvals = approvals;
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, GateState> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, GateState> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a loaded plugin.
    pub fn saw(&self, plugin_id: &str, seen: Seen) {
        self.write().seen.insert(plugin_id.to_owned(), seen);
    }

    /// What was loaded under `plugin_id`.
    pub fn seen(&self, plugin_id: &str) -> Option<Seen> {
        self.read().seen.get(plugin_id).cloned()
    }

    /// Where a loaded plugin stands; `None` when none was loaded.
    pub fn standing(&self, plugin_id: &str) -> Option<Standing> {
        let state = self.read();
        let seen = state.seen.get(plugin_id)?;
        Some(standing_of(&state, plugin_id, seen))
    }

    /// Checks that `plugin_id` is loaded with files `files_sha256` (when
    /// the caller names them) and that its version was not approved with
    /// other files; returns the approval to record.
    pub fn approval_for(
        &self,
        plugin_id: &str,
        files_sha256: Option<&str>,
        approved_by: &str,
        now_ms: i64,
    ) -> Result<Approval, ApprovalError> {
        let seen = self.seen(plugin_id).ok_or_else(|| ApprovalError::Unknown(plugin_id.to_owned()))?;
        let loaded = seen.files_sha256.to_hex();
        if let Some(asked) = files_sha256.map(|h| h.trim_start_matches("sha256:").to_ascii_lowercase())
            && asked != loaded
        {
            return Err(ApprovalError::NotWhatWasLoaded { plugin_id: plugin_id.to_owned(), loaded, asked });
        }
        let key = (plugin_id.to_owned(), seen.plugin_version.clone());
        if let Some(previous) = self.read().approvals.get(&key) {
            if previous.files_sha256 != seen.files_sha256 {
                return Err(ApprovalError::ArtifactChanged {
                    plugin_id: plugin_id.to_owned(),
                    plugin_version: seen.plugin_version,
                    approved: previous.files_sha256.to_hex(),
                    loaded,
                });
            }
            return Ok(previous.clone());
        }
        Ok(Approval {
            plugin_id: plugin_id.to_owned(),
            plugin_version: seen.plugin_version,
            files_sha256: seen.files_sha256,
            approved_by: approved_by.to_owned(),
            approved_at_ms: now_ms,
        })
    }

    /// Adds an approval (once the store holds it).
    pub fn approve(&self, approval: Approval) {
        let key = (approval.plugin_id.clone(), approval.plugin_version.clone());
        self.write().approvals.entry(key).or_insert(approval);
    }

    fn refusal(&self, plugin_id: &str) -> Option<String> {
        let state = self.read();
        let Some(seen) = state.seen.get(plugin_id) else {
            return Some(format!("plugin `{plugin_id}` was not recorded when it loaded"));
        };
        standing_of(&state, plugin_id, seen).refusal(plugin_id, seen)
    }
}

fn standing_of(state: &GateState, plugin_id: &str, seen: &Seen) -> Standing {
    match state.approvals.get(&(plugin_id.to_owned(), seen.plugin_version.clone())) {
        Some(approval) if approval.files_sha256 == seen.files_sha256 => {
            Standing::Approved { approval: approval.clone() }
        }
        Some(approval) => Standing::ArtifactChanged { approval: approval.clone(), files_sha256: seen.files_sha256 },
        None => Standing::PendingApproval,
    }
}

/// A plugin that asks the gate before each call.
pub struct Gated {
    inner: Arc<dyn PluginEndpoint>,
    gate: Arc<ApprovalGate>,
}

impl Gated {
    /// Wraps `inner`, recording it in `gate` as `seen`.
    pub fn new(inner: Arc<dyn PluginEndpoint>, gate: Arc<ApprovalGate>, seen: Seen) -> Gated {
        gate.saw(&inner.manifest().plugin_id, seen);
        Gated { inner, gate }
    }
}

impl PluginEndpoint for Gated {
    fn manifest(&self) -> &Manifest {
        self.inner.manifest()
    }

    fn grants(&self) -> &Grants {
        self.inner.grants()
    }

    fn call(&self, method: &str, request: &[u8], env: &CallEnv<'_>) -> Result<Vec<u8>, PolicyError> {
        if let Some(reason) = self.gate.refusal(&self.inner.manifest().plugin_id) {
            return Err(PolicyError::NotApproved(reason));
        }
        self.inner.call(method, request, env)
    }

    fn probe(&self) -> Result<(), PolicyError> {
        self.inner.probe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(version: &str, files: &[u8]) -> Seen {
        Seen { plugin_version: version.to_owned(), files_sha256: Digest::of_bytes(files) }
    }

    #[test]
    fn a_new_version_is_pending_until_approved_then_runs() {
        let gate = ApprovalGate::new([]);
        gate.saw("p", seen("1.0.0", b"a"));
        assert_eq!(gate.standing("p"), Some(Standing::PendingApproval));
        assert!(gate.refusal("p").unwrap().contains("pending approval"));
        let approval = gate.approval_for("p", None, "token:abc", 7).unwrap();
        gate.approve(approval);
        assert!(gate.refusal("p").is_none());
        assert!(matches!(gate.standing("p"), Some(Standing::Approved { .. })));
    }

    #[test]
    fn changed_files_under_an_approved_version_are_refused_naming_both_digests() {
        let gate = ApprovalGate::new([]);
        gate.saw("p", seen("1.0.0", b"a"));
        gate.approve(gate.approval_for("p", None, "ops", 1).unwrap());
        gate.saw("p", seen("1.0.0", b"b"));
        let refusal = gate.refusal("p").unwrap();
        let (a, b) = (Digest::of_bytes(b"a").to_hex(), Digest::of_bytes(b"b").to_hex());
        assert!(refusal.contains(&a) && refusal.contains(&b), "{refusal}");
        let error = gate.approval_for("p", None, "ops", 2).unwrap_err();
        assert!(matches!(error, ApprovalError::ArtifactChanged { .. }), "{error}");
        // A new version is approved afresh.
        gate.saw("p", seen("1.0.1", b"b"));
        gate.approve(gate.approval_for("p", None, "ops", 3).unwrap());
        assert!(gate.refusal("p").is_none());
    }

    #[test]
    fn approving_other_files_than_were_loaded_is_refused() {
        let gate = ApprovalGate::new([]);
        gate.saw("p", seen("1.0.0", b"a"));
        let other = Digest::of_bytes(b"z").to_hex();
        assert!(matches!(gate.approval_for("p", Some(&other), "ops", 1), Err(ApprovalError::NotWhatWasLoaded { .. })));
        let loaded = format!("sha256:{}", Digest::of_bytes(b"a").to_hex());
        assert!(gate.approval_for("p", Some(&loaded), "ops", 1).is_ok());
        assert!(matches!(gate.approval_for("q", None, "ops", 1), Err(ApprovalError::Unknown(_))));
    }
}
