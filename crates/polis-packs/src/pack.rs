//! Pack documents, their validation, and the catalog that answers "which
//! version of this pack".

use std::collections::BTreeMap;

use polis_core::contract::Violation;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::check::{self, Kind};
use crate::error::PackError;
use crate::schema;
use crate::version;

/// Whether a pack version may be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackStatus {
    /// Chosen by "latest active" and by a pinned version.
    Active,
    /// Only by a pinned version (evaluation says so with a finding).
    Deprecated,
    /// Never.
    Disabled,
}

/// A versioned pack, the payload of `POST /policy_packs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackDocument {
    /// The stable key, such as `team-standard`.
    pub key: String,
    /// The version, ordered as [`crate::version`] says.
    pub version: String,
    /// A display name.
    #[serde(default)]
    pub name: String,
    /// What the pack is for.
    #[serde(default)]
    pub description: String,
    /// Whether it may be chosen; `active` when absent.
    #[serde(default = "active")]
    pub status: PackStatus,
    /// The policy body: `meta`, `defaults`, `requirements`,
    /// `clarifications`, `enforcement`, `constraints`.
    pub pack: Value,
}

fn active() -> PackStatus {
    PackStatus::Active
}

impl PackDocument {
    /// Parses and validates a pack document from JSON bytes.
    pub fn from_json(subject: &str, bytes: &[u8]) -> Result<Self, PackError> {
        if bytes.len() > check::MAX_BYTES {
            return Err(PackError::TooLarge {
                subject: subject.into(),
                bytes: bytes.len() as u64,
                cap: check::MAX_BYTES as u64,
            });
        }
        let value = crate::local::parse_json_strict(subject, bytes)?;
        Self::from_value(subject, value)
    }

    /// Validates a pack document given as a JSON value.
    ///
    /// Checks, in order: the byte and depth caps, unknown top-level keys of
    /// the document and of its body (each named), the JSON Schema (with the
    /// list caps), that `pack.meta.key` and `pack.meta.version` match `key`
    /// and `version`, that paths stay inside the repository, and the secrets
    /// rule (see [`crate::check`]).
    pub fn from_value(subject: &str, value: Value) -> Result<Self, PackError> {
        let mut violations = Vec::new();
        match &value {
            Value::Object(map) => {
                for key in map.keys().filter(|k| !schema::DOCUMENT_KEYS.contains(&k.as_str())) {
                    violations.push(Violation::new(
                        "pack.unknown_key",
                        format!("/{}", check::escape(key)),
                        format!("unknown top-level key `{key}` (allowed: {})", schema::DOCUMENT_KEYS.join(", ")),
                    ));
                }
            }
            _ => violations.push(Violation::new("pack.not_object", "", "must be a JSON object")),
        }
        check::finish(subject, violations)?;
        let body = value.get("pack").cloned().unwrap_or(Value::Null);
        let mut header = value.clone();
        if let Some(map) = header.as_object_mut() {
            map.insert("pack".into(), serde_json::json!({"meta": {"key": "-", "version": "-"}}));
        }
        let violations: Vec<Violation> = check::document_validator()?
            .iter_errors(&header)
            .take(20)
            .map(|e| Violation::new("pack.schema", e.instance_path().to_string(), e.to_string()))
            .collect();
        check::finish(subject, violations)?;
        check::policy(subject, &body, Kind::PackBody).map_err(|e| prefix_paths(e, "/pack"))?;
        let document: PackDocument = serde_json::from_value(value).map_err(|e| PackError::Parse {
            subject: subject.into(),
            format: "JSON",
            message: e.to_string(),
        })?;
        let mut violations = Vec::new();
        if document.pack.pointer("/meta/key").and_then(Value::as_str) != Some(document.key.as_str()) {
            violations.push(Violation::new(
                "pack.meta_mismatch",
                "/pack/meta/key",
                format!("must equal `key` (`{}`)", document.key),
            ));
        }
        if document.pack.pointer("/meta/version").and_then(Value::as_str) != Some(document.version.as_str()) {
            violations.push(Violation::new(
                "pack.meta_mismatch",
                "/pack/meta/version",
                format!("must equal `version` (`{}`)", document.version),
            ));
        }
        check::finish(subject, violations)?;
        Ok(document)
    }

    /// `key@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.key, self.version)
    }
}

fn prefix_paths(error: PackError, prefix: &str) -> PackError {
    match error {
        PackError::Invalid { subject, mut violations } => {
            for violation in &mut violations.0 {
                violation.path = format!("{prefix}{}", violation.path);
            }
            PackError::Invalid { subject, violations }
        }
        other => other,
    }
}

/// A reference to a pack: `KEY` (latest active) or `KEY@VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackRef {
    /// The key.
    pub key: String,
    /// The pinned version, if any.
    pub version: Option<String>,
}

impl std::str::FromStr for PackRef {
    type Err = PackError;

    fn from_str(text: &str) -> Result<Self, PackError> {
        let (key, version) = match text.split_once('@') {
            Some((key, version)) => (key, Some(version.to_owned())),
            None => (text, None),
        };
        if key.is_empty() || version.as_deref() == Some("") {
            return Err(PackError::Rejected {
                subject: format!("pack reference `{text}`"),
                message: "expected KEY or KEY@VERSION".into(),
            });
        }
        Ok(PackRef { key: key.to_owned(), version })
    }
}

/// Every version of every pack known to one process, in memory.
///
/// The server keeps packs in its store and resolves through the same
/// [`select`] rule; the CLI fills a catalog from the built-ins and
/// `--pack-file`.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    packs: BTreeMap<String, Vec<PackDocument>>,
}

impl Catalog {
    /// A catalog of polis's five built-in packs.
    pub fn builtin() -> Result<Self, PackError> {
        let mut catalog = Catalog::default();
        for document in crate::builtin::all()? {
            catalog.insert(document)?;
        }
        Ok(catalog)
    }

    /// Adds a pack version; the same key and version again is accepted only
    /// with the same body and status (publishing is idempotent, never an
    /// edit).
    pub fn insert(&mut self, document: PackDocument) -> Result<(), PackError> {
        let versions = self.packs.entry(document.key.clone()).or_default();
        if let Some(existing) = versions.iter().find(|d| d.version == document.version) {
            if *existing == document {
                return Ok(());
            }
            return Err(PackError::Conflict { key: document.key, version: document.version });
        }
        versions.push(document);
        versions.sort_by(|a, b| version::compare(&a.version, &b.version));
        Ok(())
    }

    /// Marks a version (or, without one, every version) of a pack deprecated.
    pub fn deprecate(&mut self, key: &str, version: Option<&str>) -> Result<(), PackError> {
        let versions = self.packs.get_mut(key).ok_or_else(|| PackError::UnknownPack { key: key.into() })?;
        let mut found = false;
        for document in versions.iter_mut().filter(|d| version.is_none_or(|v| v == d.version)) {
            if document.status == PackStatus::Active {
                document.status = PackStatus::Deprecated;
            }
            found = true;
        }
        match (found, version) {
            (false, Some(version)) => Err(PackError::UnknownVersion { key: key.into(), version: version.into() }),
            _ => Ok(()),
        }
    }

    /// Every pack's versions, oldest first, keys in order.
    pub fn list(&self) -> impl Iterator<Item = (&str, &[PackDocument])> {
        self.packs.iter().map(|(key, versions)| (key.as_str(), versions.as_slice()))
    }

    /// Resolves a reference by [`select`].
    pub fn resolve(&self, reference: &PackRef) -> Result<&PackDocument, PackError> {
        let versions =
            self.packs.get(&reference.key).ok_or_else(|| PackError::UnknownPack { key: reference.key.clone() })?;
        select(&reference.key, versions, reference.version.as_deref())
    }
}

/// Picks a version from a pack's versions: a pinned version unless it is
/// disabled, or else the latest active by the version order of
/// [`crate::version`]. No active version is an error, never a fallback to
/// a deprecated one.
pub fn select<'a>(
    key: &str,
    versions: &'a [PackDocument],
    pinned: Option<&str>,
) -> Result<&'a PackDocument, PackError> {
    match pinned {
        Some(wanted) => {
            let found = versions
                .iter()
                .find(|d| d.version == wanted)
                .ok_or_else(|| PackError::UnknownVersion { key: key.into(), version: wanted.into() })?;
            if found.status == PackStatus::Disabled {
                return Err(PackError::Disabled { key: key.into(), version: wanted.into() });
            }
            Ok(found)
        }
        None => versions
            .iter()
            .filter(|d| d.status == PackStatus::Active)
            .max_by(|a, b| version::compare(&a.version, &b.version))
            .ok_or_else(|| PackError::NoActiveVersion { key: key.into() }),
    }
}
