//! Reading `policy.input.v1` documents from files, with size caps and
//! errors that name the field.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use polis_core::canonical;
use polis_rebalance::contract::{PolicyInput, RebalanceParams};
use polis_rebalance::urbanflow;
use serde::Deserialize;

/// Input documents larger than this are refused.
pub const MAX_INPUT_BYTES: u64 = 256 << 20;

/// An input with whatever context came with it.
pub struct LoadedInput {
    /// The input document.
    pub input: PolicyInput,
    /// Params, from the envelope or the defaults.
    pub params: RebalanceParams,
    /// Context fields: from the envelope, from the GBFS snapshot, or the
    /// documented defaults for a bare input.
    pub context: ContextFields,
    /// Station display names, when known.
    pub names: BTreeMap<String, String>,
    /// `(view_snapshot_id, view_snapshot_sha256)`, when built from GBFS.
    pub snapshot: Option<(String, String)>,
    /// What an original-format (UrbanFlow) request's output echoes, when
    /// the input came as one.
    pub original: Option<urbanflow::Original>,
}

/// The context fields a caller may set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextFields {
    /// System id. Bare inputs get `local`.
    pub system_id: String,
    /// Serving view. Bare inputs get `input-` plus 16 hex digits of the
    /// input's hash.
    pub sv: String,
    /// Decision bucket. Bare inputs get 0.
    pub decision_bucket_ts: i64,
    /// Horizon. Default 0.
    #[serde(default)]
    pub horizon_steps: u32,
    /// Request id; derived from the run key when absent.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Ignored: polis derives `now_iso` from the bucket.
    #[serde(default)]
    #[expect(dead_code, reason = "accepted so contexts round-trip, but polis derives it")]
    pub now_iso: Option<String>,
    /// Ignored: polis derives the seed from the run key.
    #[serde(default)]
    #[expect(dead_code, reason = "accepted so contexts round-trip, but polis derives it")]
    pub seed: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(default)]
    context: Option<ContextFields>,
    input: PolicyInput,
    #[serde(default)]
    params: Option<RebalanceParams>,
    /// Accepted so that `polis rebalance snapshot --envelope` output can be
    /// fed straight back.
    #[serde(default)]
    snapshot: Option<serde_json::Value>,
}

/// Reads a file (or `-` for stdin) holding a bare `policy.input.v1`, an
/// envelope `{"context": …, "input": …, "params": …}`, or a request in the
/// original system's format (a top-level `spec` beside `stations`).
pub fn load(path: &Path) -> anyhow::Result<LoadedInput> {
    let bytes = read_capped(path)?;
    parse(&bytes).with_context(|| format!("`{}` is not a valid policy input", path.display()))
}

/// Reads a file (or `-` for stdin) of at most the input limit.
pub fn read_capped(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?)
    };
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        bail!("`{}` is larger than the {MAX_INPUT_BYTES}-byte input limit", path.display());
    }
    Ok(bytes)
}

/// Parses input bytes; see [`load`].
pub fn parse(bytes: &[u8]) -> anyhow::Result<LoadedInput> {
    let value: serde_json::Value = serde_json::from_slice(bytes).context("malformed JSON")?;
    if urbanflow::Request::looks_like(&value) {
        let request = urbanflow::Request::from_value(value).context("a request in the original's format")?;
        let translated = request.translate().context("a request in the original's format")?;
        let digest = canonical::digest_of(&translated.input).context("input cannot be canonicalised")?;
        let context = ContextFields {
            system_id: translated.original.system_id.clone(),
            sv: format!("input-{}", &digest.to_hex()[..16]),
            decision_bucket_ts: translated.original.decision_bucket_ts,
            horizon_steps: 0,
            request_id: None,
            now_iso: None,
            seed: None,
        };
        return Ok(LoadedInput {
            input: translated.input,
            params: translated.params,
            context,
            names: BTreeMap::new(),
            snapshot: None,
            original: Some(translated.original),
        });
    }
    let is_envelope = value.get("input").is_some();
    let (input, params, context, snapshot) = if is_envelope {
        let envelope: Envelope = from_value(value)?;
        let snapshot = envelope.snapshot.as_ref().and_then(|s| {
            Some((s.get("view_snapshot_id")?.as_str()?.to_owned(), s.get("view_snapshot_sha256")?.as_str()?.to_owned()))
        });
        (envelope.input, envelope.params.unwrap_or_default(), envelope.context, snapshot)
    } else {
        (from_value(value)?, RebalanceParams::default(), None, None)
    };
    let context = match context {
        Some(context) => context,
        None => {
            let digest = canonical::digest_of(&input).context("input cannot be canonicalised")?;
            ContextFields {
                system_id: "local".to_owned(),
                sv: format!("input-{}", &digest.to_hex()[..16]),
                decision_bucket_ts: 0,
                horizon_steps: 0,
                request_id: None,
                now_iso: None,
                seed: None,
            }
        }
    };
    Ok(LoadedInput { input, params, context, names: BTreeMap::new(), snapshot, original: None })
}

fn from_value<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> anyhow::Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("`{path}`: {}", e.into_inner())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        match parse(text.as_bytes()) {
            Ok(_) => String::new(),
            Err(e) => format!("{e:#}"),
        }
    }

    const EFFORT: &str = r#""effort":{"bike_move_budget_per_step":10,"max_stations_touched":4,"max_moves":2},"targets":{"alpha":0.2,"beta":0.8,"min_capacity_for_policy":5}"#;

    #[test]
    fn malformed_json_is_reported() {
        assert!(error_of("{\"stations\": [").contains("malformed JSON"));
    }

    #[test]
    fn negative_capacity_names_the_field() {
        let doc = format!(
            r#"{{"stations":[{{"station_key":"a","capacity":-3,"bikes":0,"docks":0,"bucket_quality":"ok"}}],"neighbors":[],{EFFORT}}}"#
        );
        assert!(error_of(&doc).contains("stations[0].capacity"), "{}", error_of(&doc));
    }

    #[test]
    fn envelope_errors_name_the_nested_field() {
        let doc = format!(r#"{{"input":{{"stations":[],"neighbors":[{{"from_station_key":"a"}}],{EFFORT}}}}}"#);
        assert!(error_of(&doc).contains("input.neighbors[0]"), "{}", error_of(&doc));
    }

    #[test]
    fn bare_input_gets_documented_defaults() {
        let doc = format!(r#"{{"stations":[],"neighbors":[],{EFFORT}}}"#);
        let loaded = parse(doc.as_bytes()).unwrap();
        assert_eq!(loaded.context.system_id, "local");
        assert!(loaded.context.sv.starts_with("input-"));
        assert_eq!(loaded.params, RebalanceParams::default());
    }
}
