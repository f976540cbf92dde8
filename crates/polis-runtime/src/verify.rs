//! Replay verification: run stored work again and report every hash that
//! drifted.
//!
//! A domain's replay (a rebalancing window, a strategy's intent stream, a
//! payment simulation) records one [`Trace`] per run: a key that names it
//! (any ordered type: the rebalancing replay's is policy, replication and
//! decision time) and the hashes polis records. `--verify` re-runs the same work and
//! hands both sets of traces to [`compare`], which lists every difference in
//! key order, so every domain reports drift the same way.

use std::collections::BTreeMap;

use polis_core::canonical::Digest;
use serde::Serialize;

/// The hashes one run recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace<K> {
    /// Names the run within its replay; unique, and drifts are listed in
    /// its order.
    pub key: K,
    /// The run key's digest.
    pub run_key_sha256: Digest,
    /// The input's digest, when the input was valid.
    pub input_sha256: Option<Digest>,
    /// The output's digest, when the run succeeded.
    pub output_sha256: Option<Digest>,
    /// The error code, when it failed.
    pub error_code: Option<String>,
}

/// One difference between a stored run and its re-run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift<K> {
    /// The run's key.
    pub key: K,
    /// Which field differs: `run_key_sha256`, `input_sha256`,
    /// `output_sha256`, `error`, or `record` when a run is missing on one
    /// side.
    pub field: &'static str,
    /// As stored.
    pub expected: String,
    /// As re-run.
    pub actual: String,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport<K> {
    /// Runs re-run.
    pub checked: usize,
    /// Differences, in (key, field) order.
    pub drifts: Vec<Drift<K>>,
}

fn show(digest: Option<Digest>) -> String {
    digest.map_or_else(|| "none".to_owned(), |d| d.to_hex())
}

/// Compares stored traces with fresh ones.
pub fn compare<'a, K: Ord + Clone + 'a>(
    stored: impl IntoIterator<Item = &'a Trace<K>>,
    fresh: impl IntoIterator<Item = &'a Trace<K>>,
) -> VerifyReport<K> {
    let old: BTreeMap<&K, &Trace<K>> = stored.into_iter().map(|t| (&t.key, t)).collect();
    let new: BTreeMap<&K, &Trace<K>> = fresh.into_iter().map(|t| (&t.key, t)).collect();
    let mut keys: Vec<&K> = old.keys().chain(new.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let mut drifts = Vec::new();
    let drift = |key: &K, field, expected: String, actual: String| Drift { key: key.clone(), field, expected, actual };
    for key in keys {
        match (old.get(key), new.get(key)) {
            (Some(a), Some(b)) => {
                if a.run_key_sha256 != b.run_key_sha256 {
                    drifts.push(drift(key, "run_key_sha256", a.run_key_sha256.to_hex(), b.run_key_sha256.to_hex()));
                }
                if a.input_sha256 != b.input_sha256 {
                    drifts.push(drift(key, "input_sha256", show(a.input_sha256), show(b.input_sha256)));
                }
                if a.output_sha256 != b.output_sha256 {
                    drifts.push(drift(key, "output_sha256", show(a.output_sha256), show(b.output_sha256)));
                }
                let code = |t: &Trace<K>| t.error_code.clone().unwrap_or_else(|| "none".to_owned());
                if code(a) != code(b) {
                    drifts.push(drift(key, "error", code(a), code(b)));
                }
            }
            (Some(_), None) => drifts.push(drift(key, "record", "stored".to_owned(), "not re-run".to_owned())),
            (None, Some(_)) => drifts.push(drift(key, "record", "not stored".to_owned(), "re-run".to_owned())),
            (None, None) => {}
        }
    }
    VerifyReport { checked: new.len(), drifts }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(key: &str, output: &[u8]) -> Trace<String> {
        Trace {
            key: key.to_owned(),
            run_key_sha256: Digest::of_bytes(key.as_bytes()),
            input_sha256: Some(Digest::of_bytes(b"in")),
            output_sha256: Some(Digest::of_bytes(output)),
            error_code: None,
        }
    }

    #[test]
    fn identical_traces_have_no_drift() {
        let a = [trace("a", b"1"), trace("b", b"2")];
        let report = compare(&a, &a);
        assert_eq!(report.checked, 2);
        assert!(report.drifts.is_empty());
    }

    #[test]
    fn a_changed_output_and_a_missing_run_are_reported_in_key_order() {
        let stored = [trace("a", b"1"), trace("b", b"2"), trace("c", b"3")];
        let fresh = [trace("a", b"1"), trace("b", b"tampered")];
        let report = compare(&stored, &fresh);
        let fields: Vec<(&str, &str)> = report.drifts.iter().map(|d| (d.key.as_str(), d.field)).collect();
        assert_eq!(fields, [("b", "output_sha256"), ("c", "record")]);
    }
}
