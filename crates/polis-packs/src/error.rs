//! The one error type of this crate.

use polis_core::contract::Violations;

/// What can go wrong loading, validating or resolving a policy.
///
/// Every variant names its subject: the pack (`key@version`), the file, or
/// the layer (`project overrides`). Messages never quote the content of a
/// rejected file, so an untrusted file cannot echo secrets into logs.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The document broke one or more rules; each violation names its path.
    #[error("{subject} is invalid: {violations}")]
    Invalid {
        /// What was checked, such as ``pack `default@1.0` ``.
        subject: String,
        /// What is wrong, with JSON-pointer paths.
        violations: Violations,
    },
    /// The document is bigger than its cap.
    #[error("{subject} is {bytes} bytes, more than the cap of {cap}")]
    TooLarge {
        /// What was read.
        subject: String,
        /// Its size (at least `cap + 1` when read through a cap).
        bytes: u64,
        /// The cap.
        cap: u64,
    },
    /// The text is not JSON or YAML of the expected shape.
    #[error("{subject} is not valid {format}: {message}")]
    Parse {
        /// What was read.
        subject: String,
        /// `JSON` or `YAML`.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {subject}: {message}")]
    Io {
        /// The file.
        subject: String,
        /// Why.
        message: String,
    },
    /// No pack has this key.
    #[error("no policy pack `{key}`")]
    UnknownPack {
        /// The key asked for.
        key: String,
    },
    /// The pack exists but not at this version.
    #[error("policy pack `{key}` has no version `{version}`")]
    UnknownVersion {
        /// The key.
        key: String,
        /// The version asked for.
        version: String,
    },
    /// Every version of the pack is deprecated or disabled, so "latest
    /// active" has no answer; pin a version to use a deprecated one.
    #[error("policy pack `{key}` has no active version (pin one with `{key}@VERSION`)")]
    NoActiveVersion {
        /// The key.
        key: String,
    },
    /// A pinned version is disabled and may not be used at all.
    #[error("policy pack `{key}@{version}` is disabled")]
    Disabled {
        /// The key.
        key: String,
        /// The version.
        version: String,
    },
    /// The same key and version with a different body.
    #[error("policy pack `{key}@{version}` already exists with different content; publish a new version")]
    Conflict {
        /// The key.
        key: String,
        /// The version.
        version: String,
    },
    /// An answer, waiver or reference that does not fit the policy.
    #[error("{subject}: {message}")]
    Rejected {
        /// What was given, such as ``answer `ci_provider` ``.
        subject: String,
        /// Why it was refused.
        message: String,
    },
    /// A value could not be canonicalised for hashing.
    #[error("cannot hash the effective policy: {0}")]
    Hash(String),
}
