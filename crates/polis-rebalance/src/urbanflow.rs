//! The original system's formats (UrbanFlow's `packages/policy`): its
//! request `{policy_version, system_id, decision_bucket_ts, bucket_size_s,
//! spec, stations}` and its expected-output shape with `stations_touched`,
//! so its fixtures run through polis unchanged.
//!
//! A request maps onto polis's contract without loss: `spec.targets` and
//! `spec.effort` are the input's, `spec.neighborhood.edges` its neighbours,
//! `spec.missing_data.input_bucket_quality_allowed` the params' allowed
//! qualities. The rest of the spec describes rules polis always applies
//! (capacity bounds, the band, skipping stations with missing data), so a
//! value that asks for anything else is refused with the field's path
//! rather than silently ignored. `policy_spec_sha256` is, as in the
//! original, the SHA-256 of the spec's sorted-key JSON, which for its
//! ASCII keys is exactly RFC 8785.
//!
//! Two documented differences: `stations_touched` is sorted by key bytes
//! (the original uses `localeCompare`, which agrees for the keys GBFS
//! systems use), and band edges snap to the nearest integer within 1e-9
//! before rounding (the original's `Math.ceil(0.7 * 10)` is 8; polis's L is
//! 7).

use std::collections::BTreeMap;

use polis_core::canonical::{self, Digest};
use serde::{Deserialize, Serialize};

use crate::contract::{Effort, Neighbor, PolicyInput, PolicyOutput, RebalanceParams, Station, Targets};
use crate::network::Network;
use crate::validate::Ledger;

/// The original's request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The policy to run, such as `rebal.greedy.v1`.
    pub policy_version: String,
    /// The bike-share system.
    pub system_id: String,
    /// The decision bucket, epoch seconds.
    pub decision_bucket_ts: i64,
    /// The bucket's length in seconds.
    pub bucket_size_s: u32,
    /// The policy spec.
    pub spec: serde_json::Value,
    /// The stations.
    pub stations: Vec<Station>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    targets: SpecTargets,
    effort: Effort,
    neighborhood: Neighborhood,
    #[expect(dead_code, reason = "the scoring is the policy's own; read so a malformed field is an error")]
    scoring: Scoring,
    constraints: Constraints,
    missing_data: MissingData,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecTargets {
    #[serde(rename = "type")]
    kind: String,
    alpha: f64,
    beta: f64,
    min_capacity_for_policy: u32,
    inactive_station_behavior: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "the graph's provenance: read so a malformed field is an error, not used to decide")]
struct Neighborhood {
    #[serde(rename = "type")]
    kind: String,
    max_neighbors: u32,
    neighbor_radius_m: f64,
    distance_metric: String,
    edges: Vec<Neighbor>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "read so a malformed field is an error")]
struct Scoring {
    #[serde(rename = "type")]
    kind: String,
    epsilon_m: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Constraints {
    respect_capacity_bounds: bool,
    #[serde(rename = "forbid_donating_below_L")]
    forbid_donating_below_low: bool,
    #[serde(rename = "forbid_receiving_above_U")]
    forbid_receiving_above_high: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MissingData {
    input_bucket_quality_allowed: Vec<String>,
    #[expect(dead_code, reason = "carry-forward happens when snapshots are built, before a request exists")]
    carry_forward_window_s: u32,
    on_missing: String,
}

/// A request in polis's terms.
#[derive(Debug, Clone)]
pub struct Translated {
    /// What the output echoes.
    pub original: Original,
    /// The `policy.input.v1` document.
    pub input: PolicyInput,
    /// The params.
    pub params: RebalanceParams,
}

/// The parts of a request its output echoes.
#[derive(Debug, Clone)]
pub struct Original {
    /// The policy the request names.
    pub policy_version: String,
    /// The bike-share system.
    pub system_id: String,
    /// The decision bucket, epoch seconds.
    pub decision_bucket_ts: i64,
    /// SHA-256 of the spec's canonical JSON, as the original reports it.
    pub policy_spec_sha256: Digest,
    /// The effort, echoed in the output.
    pub effort: Effort,
}

/// Why a request cannot be translated: the field's path and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("`{path}`: {message}")]
pub struct RequestError {
    /// The JSON path, such as `spec.constraints.respect_capacity_bounds`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl RequestError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        RequestError { path: path.into(), message: message.into() }
    }
}

impl Request {
    /// Whether a JSON document is in this format: a top-level `spec`
    /// beside `stations` (polis's own input has `neighbors` instead).
    pub fn looks_like(value: &serde_json::Value) -> bool {
        value.get("spec").is_some() && value.get("stations").is_some()
    }

    /// Parses a request, naming the field of the first error.
    pub fn from_value(value: serde_json::Value) -> Result<Request, RequestError> {
        serde_path_to_error::deserialize(value)
            .map_err(|e| RequestError::new(e.path().to_string(), e.into_inner().to_string()))
    }

    /// The request in polis's terms.
    pub fn translate(self) -> Result<Translated, RequestError> {
        let policy_spec_sha256 =
            canonical::digest_of(&self.spec).map_err(|e| RequestError::new("spec", e.to_string()))?;
        let spec: Spec = serde_path_to_error::deserialize(self.spec)
            .map_err(|e| RequestError::new(format!("spec.{}", e.path()), e.into_inner().to_string()))?;
        let expect = |path: &str, got: &str, want: &str| {
            if got == want {
                Ok(())
            } else {
                Err(RequestError::new(path, format!("is `{got}`; polis supports only `{want}`")))
            }
        };
        expect("spec.targets.type", &spec.targets.kind, "band_fraction_of_capacity")?;
        expect("spec.targets.inactive_station_behavior", &spec.targets.inactive_station_behavior, "ignore")?;
        expect("spec.neighborhood.type", &spec.neighborhood.kind, "explicit_neighbors")?;
        expect("spec.missing_data.on_missing", &spec.missing_data.on_missing, "skip_station")?;
        let constraints = &spec.constraints;
        for (field, value) in [
            ("respect_capacity_bounds", constraints.respect_capacity_bounds),
            ("forbid_donating_below_L", constraints.forbid_donating_below_low),
            ("forbid_receiving_above_U", constraints.forbid_receiving_above_high),
        ] {
            if !value {
                return Err(RequestError::new(
                    format!("spec.constraints.{field}"),
                    "is false; polis always enforces this rule",
                ));
            }
        }
        let input = PolicyInput {
            stations: self.stations,
            neighbors: spec.neighborhood.edges,
            effort: spec.effort.clone(),
            targets: Targets {
                alpha: spec.targets.alpha,
                beta: spec.targets.beta,
                min_capacity_for_policy: spec.targets.min_capacity_for_policy,
            },
        };
        Ok(Translated {
            original: Original {
                policy_version: self.policy_version,
                system_id: self.system_id,
                decision_bucket_ts: self.decision_bucket_ts,
                policy_spec_sha256,
                effort: spec.effort,
            },
            input,
            params: RebalanceParams { allowed_bucket_quality: spec.missing_data.input_bucket_quality_allowed },
        })
    }
}

/// The original's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// The policy that decided.
    pub policy_version: String,
    /// SHA-256 of the request's spec.
    pub policy_spec_sha256: String,
    /// The bike-share system.
    pub system_id: String,
    /// The decision bucket.
    pub decision_bucket_ts: i64,
    /// The effort, as requested.
    pub effort: Effort,
    /// The moves, in execution order.
    pub moves: Vec<OutputMove>,
    /// Every station a move touched, sorted by key.
    pub stations_touched: Vec<StationTouched>,
    /// Totals.
    pub summary: crate::contract::Summary,
}

/// One move in the original's shape: `rank` is the neighbour edge's rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputMove {
    /// Donor.
    pub from_station_key: String,
    /// Receiver.
    pub to_station_key: String,
    /// Bikes moved.
    pub bikes_moved: u32,
    /// The edge's distance.
    pub dist_m: f64,
    /// The edge's neighbour rank.
    pub rank: u32,
    /// Why.
    pub reason_codes: Vec<String>,
}

/// A touched station before and after the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(non_snake_case, reason = "the original's field names")]
pub struct StationTouched {
    /// Station key.
    pub station_key: String,
    /// Docks in total.
    pub capacity: u32,
    /// Bikes in the snapshot.
    pub bikes_before: u32,
    /// Bikes after every move.
    pub bikes_after: u32,
    /// Band bottom.
    pub L_s: u32,
    /// Band top.
    pub U_s: u32,
    /// Bikes below the band bottom in the snapshot.
    pub need_before: u32,
    /// Bikes above the band top in the snapshot.
    pub excess_before: u32,
}

impl Output {
    /// The original's output for `output`, decided by `policy_version` on
    /// a translated request's `input`, which polis validated as `network`.
    /// Fails only if a move is not on one of the input's edges, which the
    /// guard has already refused.
    pub fn new(
        original: &Original,
        policy_version: &str,
        input: &PolicyInput,
        network: &Network,
        output: &PolicyOutput,
    ) -> Result<Output, RequestError> {
        let ranks: BTreeMap<(&str, &str), u32> = input
            .neighbors
            .iter()
            .map(|n| ((n.from_station_key.as_str(), n.to_station_key.as_str()), n.rank))
            .collect();
        let mut ledger = Ledger::new(network);
        let mut moves = Vec::with_capacity(output.moves.len());
        for (i, m) in output.moves.iter().enumerate() {
            let (from, to) = (m.from_station_key.as_str(), m.to_station_key.as_str());
            let (Some(&rank), Some(f), Some(t)) =
                (ranks.get(&(from, to)), network.index_of(from), network.index_of(to))
            else {
                return Err(RequestError::new(format!("moves[{i}]"), "is not on an edge of the request"));
            };
            ledger.apply(f, t, m.bikes_moved);
            moves.push(OutputMove {
                from_station_key: from.to_owned(),
                to_station_key: to.to_owned(),
                bikes_moved: m.bikes_moved,
                dist_m: m.dist_m,
                rank,
                reason_codes: m.reason_codes.clone(),
            });
        }
        // Station indices follow key byte order, so this is sorted by key.
        let stations_touched = (0..network.len())
            .filter(|&i| ledger.is_touched(i))
            .map(|i| {
                let s = &network.stations()[i];
                StationTouched {
                    station_key: network.key(i).to_owned(),
                    capacity: s.capacity,
                    bikes_before: s.bikes,
                    bikes_after: ledger.bikes(i),
                    L_s: s.low,
                    U_s: s.high,
                    need_before: s.need(s.bikes),
                    excess_before: s.excess(s.bikes),
                }
            })
            .collect();
        Ok(Output {
            policy_version: policy_version.to_owned(),
            policy_spec_sha256: original.policy_spec_sha256.to_hex(),
            system_id: original.system_id.clone(),
            decision_bucket_ts: original.decision_bucket_ts,
            effort: original.effort.clone(),
            moves,
            stations_touched,
            summary: output.summary.clone(),
        })
    }
}
