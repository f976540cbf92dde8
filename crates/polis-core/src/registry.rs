//! The policy registry: resolves a `policy_version` to a policy, failing
//! closed.
//!
//! A registry holds the policies of one contract. Registration validates
//! the manifest and checks that it names this contract; a plugin that fails
//! is kept as *disabled* with its reason, so `polis plugins list` can say
//! why, and the rest keep running. Resolving an unknown or disabled version
//! is an error, never a fallback to some other policy.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::canonical::Digest;
use crate::contract::Contract;
use crate::manifest::{Manifest, TierKind};
use crate::policy::Policy;

/// A registered, active policy.
pub struct Entry<C: Contract> {
    /// Its validated manifest, with the contract's fields normalised.
    pub manifest: Manifest,
    /// The contract's own manifest fields, decoded.
    pub fields: C::ManifestFields,
    /// `SHA-256(JCS(manifest))`.
    pub manifest_digest: Digest,
    /// SHA-256 of the artifact (wasm module, script), when there is one.
    pub artifact_digest: Option<Digest>,
    /// The implementation.
    pub policy: Arc<dyn Policy<C>>,
}

impl<C: Contract> Clone for Entry<C> {
    fn clone(&self) -> Self {
        Entry {
            manifest: self.manifest.clone(),
            fields: self.fields.clone(),
            manifest_digest: self.manifest_digest,
            artifact_digest: self.artifact_digest,
            policy: Arc::clone(&self.policy),
        }
    }
}

/// Whether a plugin may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Activation {
    /// It resolves and runs.
    Active,
    /// It is kept out, for the stated reason.
    Disabled {
        /// Why, naming the field or rule.
        reason: String,
    },
}

/// One row of `polis plugins list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginStatus {
    /// The contract the plugin was registered under.
    pub contract: &'static str,
    /// Plugin id, or the source it came from when its manifest is unreadable.
    pub plugin_id: String,
    /// Its policy version, when known.
    pub policy_version: String,
    /// Its strategy, when known.
    pub strategy: String,
    /// Its tier.
    pub tier: TierKind,
    /// Its manifest hash, when it has a valid manifest.
    pub manifest_sha256: Option<Digest>,
    /// Its artifact hash, when it has an artifact.
    pub artifact_sha256: Option<Digest>,
    /// Active, or disabled with a reason.
    #[serde(flatten)]
    pub activation: Activation,
}

/// Why a version did not resolve or a plugin did not register.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No plugin provides this version.
    #[error("unknown policy version `{version}` for `{contract}`; known: {}", known.join(", "))]
    UnknownVersion {
        /// The contract searched.
        contract: &'static str,
        /// The version asked for.
        version: String,
        /// The active versions, sorted.
        known: Vec<String>,
    },
    /// The plugin exists but is disabled.
    #[error("policy version `{version}` is disabled: {reason}")]
    Disabled {
        /// The version asked for.
        version: String,
        /// Why it is disabled.
        reason: String,
    },
    /// The plugin could not be registered; it is now listed as disabled.
    #[error("plugin `{plugin_id}` was not registered: {reason}")]
    Rejected {
        /// The plugin id.
        plugin_id: String,
        /// Why.
        reason: String,
    },
}

impl RegistryError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::UnknownVersion { .. } => "registry.unknown_version",
            RegistryError::Disabled { .. } => "registry.disabled",
            RegistryError::Rejected { .. } => "registry.rejected",
        }
    }
}

/// The policies of contract `C`, keyed by policy version.
pub struct Registry<C: Contract> {
    active: BTreeMap<String, Entry<C>>,
    disabled: BTreeMap<(String, String), PluginStatus>,
}

impl<C: Contract> Default for Registry<C> {
    fn default() -> Self {
        Registry { active: BTreeMap::new(), disabled: BTreeMap::new() }
    }
}

impl<C: Contract> Clone for Registry<C> {
    fn clone(&self) -> Self {
        Registry { active: self.active.clone(), disabled: self.disabled.clone() }
    }
}

impl<C: Contract> Registry<C> {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a policy. On failure the plugin is recorded as disabled
    /// with the reason and the error is returned; the registry stays usable.
    pub fn register(
        &mut self,
        policy: Arc<dyn Policy<C>>,
        artifact_digest: Option<Digest>,
    ) -> Result<(), RegistryError> {
        let manifest = policy.manifest().clone();
        match self.admit(&manifest) {
            Ok((manifest, fields, manifest_digest)) => {
                self.active.insert(
                    manifest.policy_version.clone(),
                    Entry { manifest, fields, manifest_digest, artifact_digest, policy },
                );
                Ok(())
            }
            Err(reason) => {
                self.record_disabled(&manifest, artifact_digest, reason.clone());
                Err(RegistryError::Rejected { plugin_id: manifest.plugin_id, reason })
            }
        }
    }

    /// Records a plugin that could not even be loaded (an unreadable
    /// manifest, a missing artifact), so that listings show why.
    pub fn record_load_failure(&mut self, source: &str, tier: TierKind, reason: String) {
        self.disabled.insert(
            (source.to_owned(), String::new()),
            PluginStatus {
                contract: C::ID,
                plugin_id: source.to_owned(),
                policy_version: String::new(),
                strategy: String::new(),
                tier,
                manifest_sha256: None,
                artifact_sha256: None,
                activation: Activation::Disabled { reason },
            },
        );
    }

    /// Checks a manifest for this contract and returns it normalised, with
    /// its decoded fields and digest.
    fn admit(&self, manifest: &Manifest) -> Result<(Manifest, C::ManifestFields, Digest), String> {
        manifest.validate().map_err(|e| e.to_string())?;
        if !C::claims(manifest) {
            return Err(match &manifest.contract {
                Some(other) => format!("the manifest names contract `{other}`, not `{}`", C::ID),
                None => format!("the manifest does not name contract `{}` (set `contract`)", C::ID),
            });
        }
        let fields = C::manifest_fields(manifest).map_err(|problems| {
            let list = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            format!("manifest is invalid for `{}`: {list}", C::ID)
        })?;
        let manifest = manifest.clone().with_fields(&fields).map_err(|p| p.to_string())?;
        if let Some(existing) = self.active.get(&manifest.policy_version) {
            return Err(format!(
                "policy version `{}` is already provided by plugin `{}`",
                manifest.policy_version, existing.manifest.plugin_id
            ));
        }
        if let Some(existing) = self.active.values().find(|e| e.manifest.plugin_id == manifest.plugin_id) {
            return Err(format!(
                "plugin id `{}` is already registered for `{}`",
                manifest.plugin_id, existing.manifest.policy_version
            ));
        }
        let digest = manifest.digest().map_err(|e| e.to_string())?;
        Ok((manifest, fields, digest))
    }

    fn record_disabled(&mut self, manifest: &Manifest, artifact: Option<Digest>, reason: String) {
        self.disabled.insert(
            (manifest.plugin_id.clone(), manifest.policy_version.clone()),
            PluginStatus {
                contract: C::ID,
                plugin_id: manifest.plugin_id.clone(),
                policy_version: manifest.policy_version.clone(),
                strategy: manifest.strategy.clone(),
                tier: manifest.tier(),
                manifest_sha256: manifest.digest().ok(),
                artifact_sha256: artifact,
                activation: Activation::Disabled { reason },
            },
        );
    }

    /// Disables an active version with a reason; it stops resolving.
    pub fn disable(&mut self, policy_version: &str, reason: String) -> bool {
        let Some(entry) = self.active.remove(policy_version) else {
            return false;
        };
        self.record_disabled(&entry.manifest, entry.artifact_digest, reason);
        true
    }

    /// Resolves a version to its active policy; unknown and disabled
    /// versions are errors.
    pub fn resolve(&self, policy_version: &str) -> Result<&Entry<C>, RegistryError> {
        if let Some(entry) = self.active.get(policy_version) {
            return Ok(entry);
        }
        if let Some(status) = self.disabled.values().find(|s| s.policy_version == policy_version) {
            let reason = match &status.activation {
                Activation::Disabled { reason } => reason.clone(),
                Activation::Active => String::new(),
            };
            return Err(RegistryError::Disabled { version: policy_version.to_owned(), reason });
        }
        Err(RegistryError::UnknownVersion {
            contract: C::ID,
            version: policy_version.to_owned(),
            known: self.versions(),
        })
    }

    /// The active versions, sorted in byte order.
    pub fn versions(&self) -> Vec<String> {
        self.active.keys().cloned().collect()
    }

    /// The active entries, sorted by version.
    pub fn entries(&self) -> impl Iterator<Item = &Entry<C>> {
        self.active.values()
    }

    /// Every known plugin, active then disabled, each sorted by version and
    /// plugin id.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        let mut rows: Vec<PluginStatus> = self
            .active
            .values()
            .map(|e| PluginStatus {
                contract: C::ID,
                plugin_id: e.manifest.plugin_id.clone(),
                policy_version: e.manifest.policy_version.clone(),
                strategy: e.manifest.strategy.clone(),
                tier: e.manifest.tier(),
                manifest_sha256: Some(e.manifest_digest),
                artifact_sha256: e.artifact_digest,
                activation: Activation::Active,
            })
            .collect();
        rows.extend(self.disabled.values().cloned());
        rows
    }
}
