//! Run keys, run contexts and policy specs.
//!
//! A run is identified by its [`RunKey`], the seed's
//! `(system_id, sv, decision_bucket_ts, policy_version, policy_spec_sha256,
//! horizon_steps)`. Everything random in a run derives from the key's
//! digest, so the same key always yields the same seed and, for a
//! deterministic policy, the same output.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::canonical::{self, CanonicalError, Digest};

/// Seeds are kept below 2^53 so that JavaScript and JSON parsers that read
/// numbers as doubles see the exact value.
pub const SEED_MASK: u64 = (1 << 53) - 1;

/// Identifies one decision: the same key must always produce the same
/// output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunKey {
    /// The system (city, desk, project) the decision is for.
    pub system_id: String,
    /// The serving view: a token derived from the data's watermarks.
    pub sv: String,
    /// Start of the decision bucket, epoch seconds UTC.
    pub decision_bucket_ts: i64,
    /// The policy version asked for.
    pub policy_version: String,
    /// Hash of the policy spec (version plus params).
    pub policy_spec_sha256: Digest,
    /// Planning horizon in steps.
    pub horizon_steps: u32,
}

impl RunKey {
    /// `SHA-256(JCS(key))`, the key's stable identity.
    pub fn digest(&self) -> Digest {
        // A RunKey holds only strings and integers, which always canonicalise.
        canonical::digest_of(self).unwrap_or_else(|_| Digest::of_bytes(b"unreachable"))
    }

    /// The deterministic seed for any randomness in this run: the first
    /// eight bytes of the key digest, masked to 53 bits.
    pub fn seed(&self) -> u64 {
        self.digest().prefix_u64() & SEED_MASK
    }
}

/// What a policy sees besides its input: the seed's `PolicyPluginContextV1`
/// plus the run seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunContext {
    /// The system the decision is for.
    pub system_id: String,
    /// The serving view token.
    pub sv: String,
    /// Start of the decision bucket, epoch seconds UTC.
    pub decision_bucket_ts: i64,
    /// Planning horizon in steps.
    pub horizon_steps: u32,
    /// Caller's request id, for correlating logs.
    pub request_id: String,
    /// The decision time in RFC 3339; polis sets it from
    /// `decision_bucket_ts`, never from a clock, so reruns match.
    pub now_iso: String,
    /// Seed for any randomness, derived from the run key, below 2^53.
    #[serde(default)]
    pub seed: u64,
}

impl RunContext {
    /// Builds the context for a run key: `now_iso` is the bucket start,
    /// `request_id` is `polis-` plus the first 16 hex digits of the key
    /// digest unless one is given, and `seed` comes from the key.
    pub fn for_key(key: &RunKey, request_id: Option<String>) -> RunContext {
        RunContext {
            system_id: key.system_id.clone(),
            sv: key.sv.clone(),
            decision_bucket_ts: key.decision_bucket_ts,
            horizon_steps: key.horizon_steps,
            request_id: request_id.unwrap_or_else(|| format!("polis-{}", &key.digest().to_hex()[..16])),
            now_iso: rfc3339(key.decision_bucket_ts),
            seed: key.seed(),
        }
    }
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

    fn key() -> RunKey {
        RunKey {
            system_id: "baywheels".into(),
            sv: "sv1:abc".into(),
            decision_bucket_ts: 1_678_090_200,
            policy_version: "rebal.greedy.v1".into(),
            policy_spec_sha256: Digest::of_bytes(b"spec"),
            horizon_steps: 0,
        }
    }

    #[test]
    fn same_key_same_seed_and_context() {
        assert_eq!(key().seed(), key().seed());
        assert_eq!(RunContext::for_key(&key(), None), RunContext::for_key(&key(), None));
        assert!(key().seed() <= SEED_MASK);
    }

    #[test]
    fn any_key_field_changes_the_seed() {
        let mut other = key();
        other.decision_bucket_ts += 300;
        assert_ne!(key().seed(), other.seed());
        let mut other = key();
        other.policy_version = "rebal.global.v1".into();
        assert_ne!(key().digest(), other.digest());
    }

    #[test]
    fn now_iso_comes_from_the_bucket_not_the_clock() {
        let ctx = RunContext::for_key(&key(), None);
        assert_eq!(ctx.now_iso, "2023-03-06T08:10:00Z");
        assert!(ctx.request_id.starts_with("polis-"));
    }

    #[test]
    fn times_parse_from_epoch_or_rfc3339() {
        assert_eq!(parse_time("1678090200"), Ok(1_678_090_200));
        assert_eq!(parse_time("2023-03-06T08:10:00Z"), Ok(1_678_090_200));
        assert_eq!(parse_time("2023-03-06T00:10:00-08:00"), Ok(1_678_090_200));
        assert!(parse_time("yesterday").is_err());
    }
}
