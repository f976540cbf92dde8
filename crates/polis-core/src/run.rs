//! Run keys, seeds and policy specs.
//!
//! A run is identified by its [`RunKey`]: the contract's *subject* (what
//! the run decides on besides its input: seed 000's `(system_id, sv,
//! decision_bucket_ts, horizon_steps)`, a replay's window, a simulation's
//! scenario) plus the policy version and the hash of the policy spec. The
//! subject's fields sit beside `policy_version` and `policy_spec_sha256` in
//! one flat JSON object, so rebalancing's key is exactly seed 000's
//! six-field tuple. Everything random in a run derives from the key's
//! digest, so the same key always yields the same seed and, for a
//! deterministic policy, the same output.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::canonical::{self, CanonicalError, Digest};

/// Seeds are kept below 2^53 so that JavaScript and JSON parsers that read
/// numbers as doubles see the exact value.
pub const SEED_MASK: u64 = (1 << 53) - 1;

/// Identifies one run: the same key must always produce the same output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub struct RunKey<S> {
    /// What the run decides on, besides its input; its fields are flattened
    /// into the key object.
    #[serde(flatten)]
    pub subject: S,
    /// The policy version asked for.
    pub policy_version: String,
    /// Hash of the policy spec (version plus params).
    pub policy_spec_sha256: Digest,
}

impl<S: Serialize> RunKey<S> {
    /// `SHA-256(JCS(key))`, the key's stable identity. Fails only when the
    /// subject holds a value JSON cannot represent (a NaN).
    pub fn digest(&self) -> Result<Digest, CanonicalError> {
        canonical::digest_of(self)
    }
}

/// A request id derived from a run key's digest, for a caller that gave
/// none: `prefix`, a dash and the first 16 hex digits.
pub fn request_id(prefix: &str, key: &Digest) -> String {
    format!("{prefix}-{}", &key.to_hex()[..16])
}

/// The deterministic seed of a run whose key digest is `key`: the first
/// eight bytes, masked to 53 bits.
pub fn seed_of(key: &Digest) -> u64 {
    key.prefix_u64() & SEED_MASK
}

/// The configuration a policy runs with: its version and its params. Its
/// digest is the run key's `policy_spec_sha256`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// The policy version.
    pub policy_version: String,
    /// The params as JSON.
    pub params: serde_json::Value,
}

impl PolicySpec {
    /// The spec of `policy_version` run with `params`. Params that cannot
    /// be represented as JSON are an error, never a null spec.
    pub fn new<P: Serialize>(policy_version: &str, params: &P) -> Result<PolicySpec, CanonicalError> {
        let params = serde_json::to_value(params).map_err(|e| CanonicalError::new(format!("params: {e}")))?;
        Ok(PolicySpec { policy_version: policy_version.to_owned(), params })
    }

    /// `SHA-256(JCS(spec))`.
    pub fn digest(&self) -> Result<Digest, CanonicalError> {
        canonical::digest_of(self)
    }
}

/// Formats epoch seconds as RFC 3339 UTC, such as `2023-03-06T08:30:00Z`.
/// Out-of-range timestamps format as the epoch.
pub fn rfc3339(epoch_seconds: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(epoch_seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Parses a time given as epoch seconds (`1678090200`) or RFC 3339
/// (`2023-03-06T08:10:00Z`).
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("`{text}` is neither epoch seconds nor RFC 3339 ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Subject {
        system_id: String,
        sv: String,
        decision_bucket_ts: i64,
        horizon_steps: u32,
    }

    fn key() -> RunKey<Subject> {
        RunKey {
            subject: Subject {
                system_id: "baywheels".into(),
                sv: "sv1:abc".into(),
                decision_bucket_ts: 1_678_090_200,
                horizon_steps: 0,
            },
            policy_version: "rebal.greedy.v1".into(),
            policy_spec_sha256: Digest::of_bytes(b"spec"),
        }
    }

    #[test]
    fn the_key_is_one_flat_object_of_subject_and_policy_fields() {
        let text = String::from_utf8(canonical::to_canonical_vec(&key()).unwrap()).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"decision_bucket_ts":1678090200,"horizon_steps":0,"policy_spec_sha256":"{}","policy_version":"rebal.greedy.v1","sv":"sv1:abc","system_id":"baywheels"}}"#,
                Digest::of_bytes(b"spec")
            )
        );
        let back: RunKey<Subject> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, key());
    }

    #[test]
    fn same_key_same_seed_and_any_field_changes_it() {
        let seed = seed_of(&key().digest().unwrap());
        assert_eq!(seed, seed_of(&key().digest().unwrap()));
        assert!(seed <= SEED_MASK);
        let mut other = key();
        other.subject.decision_bucket_ts += 300;
        assert_ne!(seed, seed_of(&other.digest().unwrap()));
        let mut other = key();
        other.policy_version = "rebal.global.v1".into();
        assert_ne!(key().digest().unwrap(), other.digest().unwrap());
    }

    #[test]
    fn a_key_that_cannot_be_canonicalised_is_an_error() {
        #[derive(Serialize)]
        struct Bad {
            x: f64,
        }
        let key = RunKey {
            subject: Bad { x: f64::NAN },
            policy_version: "a.b".into(),
            policy_spec_sha256: Digest::of_bytes(b""),
        };
        assert!(key.digest().is_err());
    }

    #[test]
    fn times_parse_from_epoch_or_rfc3339() {
        assert_eq!(parse_time("1678090200"), Ok(1_678_090_200));
        assert_eq!(parse_time("2023-03-06T08:10:00Z"), Ok(1_678_090_200));
        assert_eq!(parse_time("2023-03-06T00:10:00-08:00"), Ok(1_678_090_200));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(rfc3339(1_678_090_200), "2023-03-06T08:10:00Z");
    }
}
