//! The `rebalance.v1` contract: `policy.input.v1` in, `policy.output.v1`
//! out, exactly as the seed's §5 types, plus the host-side params, the run
//! key's subject, the context a plugin sees and the seed's manifest fields.

use std::collections::BTreeMap;

use polis_core::canonical::Digest;
use polis_core::contract::{Contract, Violations};
use polis_core::manifest::{FieldProblem, Manifest};
use polis_core::run::{rfc3339, seed_of};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::network::Network;

/// The input document version rebalancing plugins take.
pub const INPUT_SCHEMA_VERSION: &str = "policy.input.v1";
/// The output document version they return.
pub const OUTPUT_SCHEMA_VERSION: &str = "policy.output.v1";
/// The largest `max_horizon_steps` a manifest may declare (one day of
/// five-minute steps).
pub const MAX_HORIZON_STEPS: i64 = 288;

/// The rebalancing contract.
pub struct Rebalance;

/// Seed 000's run key: `(system_id, sv, decision_bucket_ts, policy_version,
/// policy_spec_sha256, horizon_steps)`.
pub type RunKey = polis_core::run::RunKey<DecisionSubject>;

impl Contract for Rebalance {
    const ID: &'static str = "rebalance.v1";
    const OUTPUT_DOCUMENT: &'static str = OUTPUT_SCHEMA_VERSION;

    type Input = PolicyInput;
    type Output = PolicyOutput;
    type Params = RebalanceParams;
    type Subject = DecisionSubject;
    type Context = RunContext;
    type ManifestFields = RebalanceManifest;

    /// Seed 000's manifests predate `contract`: one whose
    /// `input_schema_version` is `policy.input.v1` is a rebalancing plugin.
    fn claims(manifest: &Manifest) -> bool {
        match &manifest.contract {
            Some(contract) => contract == Self::ID,
            None => {
                manifest.extensions.get("input_schema_version").and_then(|v| v.as_str()) == Some(INPUT_SCHEMA_VERSION)
            }
        }
    }

    fn manifest_fields(manifest: &Manifest) -> Result<RebalanceManifest, Vec<FieldProblem>> {
        let fields: RebalanceManifest = manifest.parse_fields()?;
        fields.check()?;
        Ok(fields)
    }

    /// `now_iso` is the bucket start, never a clock reading, so reruns
    /// match; `request_id` is `polis-` plus the first 16 hex digits of the
    /// key digest unless the caller gave one.
    fn context(key: &RunKey, key_sha256: &Digest, request_id: Option<&str>) -> RunContext {
        let subject = &key.subject;
        let request_id = request_id.map_or_else(|| format!("polis-{}", &key_sha256.to_hex()[..16]), str::to_owned);
        RunContext {
            system_id: subject.system_id.clone(),
            sv: subject.sv.clone(),
            decision_bucket_ts: subject.decision_bucket_ts,
            horizon_steps: subject.horizon_steps,
            request_id,
            now_iso: rfc3339(subject.decision_bucket_ts),
            seed: seed_of(key_sha256),
        }
    }

    /// A plugin runs only horizons it declared: `horizon_steps` at most its
    /// `max_horizon_steps`.
    fn admit(
        fields: &RebalanceManifest,
        subject: &DecisionSubject,
        _input: &PolicyInput,
        _params: &RebalanceParams,
    ) -> Result<(), String> {
        let horizon = i64::from(subject.horizon_steps);
        if horizon > fields.max_horizon_steps {
            return Err(format!(
                "`horizon_steps` is {horizon} but the plugin's `max_horizon_steps` is {}",
                fields.max_horizon_steps
            ));
        }
        Ok(())
    }

    /// The validated network: built once per input, then handed to every
    /// built-in that decides on it and to the output check.
    type Checked = Network;

    fn input_digest(input: &PolicyInput) -> Result<Digest, polis_core::canonical::CanonicalError> {
        crate::digest::input_digest(input)
    }

    fn check_input(input: &PolicyInput, params: &RebalanceParams) -> Result<Network, Violations> {
        Network::new(input, params)
    }

    fn validate_output(
        _input: &PolicyInput,
        _params: &RebalanceParams,
        network: &Network,
        output: &PolicyOutput,
    ) -> Result<(), Violations> {
        crate::validate::check_output(network, output)
    }

    fn output_items(output: &PolicyOutput) -> usize {
        output.moves.len()
    }
}

/// What a rebalancing run decides on besides its input: the seed's run-key
/// fields that are not the policy's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub struct DecisionSubject {
    /// The system (city) the decision is for.
    pub system_id: String,
    /// The serving view: a token derived from the data's watermarks.
    pub sv: String,
    /// Start of the decision bucket, epoch seconds UTC.
    pub decision_bucket_ts: i64,
    /// Planning horizon in steps.
    pub horizon_steps: u32,
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

/// Seed 000's manifest fields (§5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RebalanceManifest {
    /// Whether the policy plans over more than one step. By default `false`.
    #[serde(default)]
    pub supports_horizon_steps: bool,
    /// Largest horizon the policy accepts, 0..=288; must be 0 when
    /// `supports_horizon_steps` is false. By default 0.
    #[serde(default)]
    pub max_horizon_steps: i64,
    /// Whether the policy needs the neighbour graph in its input. By default
    /// `false`.
    #[serde(default)]
    pub requires_neighbor_graph: bool,
    /// The input document version; must be `policy.input.v1`.
    pub input_schema_version: String,
    /// The output document version; must be `policy.output.v1`.
    pub output_schema_version: String,
}

impl RebalanceManifest {
    /// The fields of a built-in: no horizon, neighbour graph required.
    pub fn builtin() -> Self {
        RebalanceManifest {
            supports_horizon_steps: false,
            max_horizon_steps: 0,
            requires_neighbor_graph: true,
            input_schema_version: INPUT_SCHEMA_VERSION.to_owned(),
            output_schema_version: OUTPUT_SCHEMA_VERSION.to_owned(),
        }
    }

    /// Checks the seed's rules, naming the field of every problem.
    pub fn check(&self) -> Result<(), Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let mut problem =
            |field: &str, message: String| problems.push(FieldProblem { field: field.to_owned(), message });
        if !(0..=MAX_HORIZON_STEPS).contains(&self.max_horizon_steps) {
            problem("max_horizon_steps", format!("{} is outside 0..={MAX_HORIZON_STEPS}", self.max_horizon_steps));
        } else if !self.supports_horizon_steps && self.max_horizon_steps != 0 {
            problem(
                "max_horizon_steps",
                format!("is {} but `supports_horizon_steps` is false; it must then be 0", self.max_horizon_steps),
            );
        }
        if self.input_schema_version != INPUT_SCHEMA_VERSION {
            problem(
                "input_schema_version",
                format!(
                    "is `{}`, but contract `rebalance.v1` takes `{INPUT_SCHEMA_VERSION}`",
                    self.input_schema_version
                ),
            );
        }
        if self.output_schema_version != OUTPUT_SCHEMA_VERSION {
            problem(
                "output_schema_version",
                format!(
                    "is `{}`, but contract `rebalance.v1` returns `{OUTPUT_SCHEMA_VERSION}`",
                    self.output_schema_version
                ),
            );
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// `policy.input.v1`: one station snapshot with its neighbour graph and the
/// effort and target settings for this decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// The stations, in any order; policies order them by `station_key`.
    pub stations: Vec<Station>,
    /// Directed neighbour edges along which bikes may be moved.
    pub neighbors: Vec<Neighbor>,
    /// How much work one decision may do.
    pub effort: Effort,
    /// The fill band every station should sit in.
    pub targets: Targets,
}

/// One station's state at the decision time.
// Fields are declared in key order, so the canonical writer (RFC 8785)
// writes each of an input's thousands of stations without reordering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Station {
    /// Bikes available.
    pub bikes: u32,
    /// Data quality of this station in this bucket: `ok`, `degraded`,
    /// `stale` or `offline` from GBFS; any label is accepted.
    pub bucket_quality: String,
    /// Number of docks.
    pub capacity: u32,
    /// Docks available.
    pub docks: u32,
    /// Unique key (the GBFS `station_id`).
    pub station_key: String,
}

/// A directed edge `from → to` along which bikes may be moved.
// Fields are declared in key order, as `Station`'s: an input holds up to K
// edges per station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Neighbor {
    /// Distance in metres, finite and non-negative.
    pub dist_m: f64,
    /// Donor side.
    pub from_station_key: String,
    /// 1 for the nearest neighbour of `from`, 2 for the next, and so on.
    pub rank: u32,
    /// Receiver side.
    pub to_station_key: String,
}

/// Effort limits for one decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Effort {
    /// Most bikes moved in all.
    pub bike_move_budget_per_step: u32,
    /// Most distinct stations touched (as donor or receiver).
    pub max_stations_touched: u32,
    /// Most moves.
    pub max_moves: u32,
}

/// The fill band: a station should hold between `ceil(alpha·capacity)` and
/// `floor(beta·capacity)` bikes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Lower band fraction, in `[0, beta]`.
    pub alpha: f64,
    /// Upper band fraction, in `[alpha, 1]`.
    pub beta: f64,
    /// Stations with fewer docks are left alone.
    pub min_capacity_for_policy: u32,
}

/// `policy.output.v1`: the moves a policy decided, in execution order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyOutput {
    /// The moves; `move_rank` runs 1..n.
    pub moves: Vec<Move>,
    /// Totals that must agree with `moves`.
    pub summary: Summary,
    /// Free-form, deterministic facts about the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<BTreeMap<String, serde_json::Value>>,
}

/// Move `bikes_moved` bikes from one station to a neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Move {
    /// Position in execution order, from 1.
    pub move_rank: u32,
    /// Donor.
    pub from_station_key: String,
    /// Receiver.
    pub to_station_key: String,
    /// Bikes moved, at least 1.
    pub bikes_moved: u32,
    /// The edge's `dist_m`.
    pub dist_m: f64,
    /// True when no bike budget remains after this move.
    pub budget_exhausted: bool,
    /// True when, after this move, the donor has nothing left to give its
    /// neighbours: its excess is zero, or none of its eligible neighbours
    /// still needs bikes.
    pub neighbor_exhausted: bool,
    /// Why the move was made, such as `min_cost_flow`.
    pub reason_codes: Vec<String>,
}

/// Totals over the moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Sum of `bikes_moved`.
    pub bikes_moved_total: u32,
    /// Distinct stations appearing in any move.
    pub stations_touched: u32,
    /// True exactly when there are no moves.
    pub no_op: bool,
}

impl PolicyOutput {
    /// The empty decision.
    pub fn no_op(diagnostics: Option<BTreeMap<String, serde_json::Value>>) -> Self {
        PolicyOutput {
            moves: Vec::new(),
            summary: Summary { bikes_moved_total: 0, stations_touched: 0, no_op: true },
            diagnostics,
        }
    }
}

/// Host-side settings of a rebalancing run that are not in the seed's input
/// document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RebalanceParams {
    /// Stations whose `bucket_quality` is not in this list are not eligible.
    /// By default `["ok", "degraded"]`.
    #[serde(default = "default_allowed_quality")]
    pub allowed_bucket_quality: Vec<String>,
}

fn default_allowed_quality() -> Vec<String> {
    vec!["ok".to_owned(), "degraded".to_owned()]
}

impl Default for RebalanceParams {
    fn default() -> Self {
        RebalanceParams { allowed_bucket_quality: default_allowed_quality() }
    }
}

/// Default effort for snapshots built by polis: 60 bikes, 30 stations and 20
/// moves per decision, roughly two vans' worth of work every few minutes in
/// a city the size of San Francisco.
pub const DEFAULT_EFFORT: Effort = Effort { bike_move_budget_per_step: 60, max_stations_touched: 30, max_moves: 20 };

/// Default band for snapshots built by polis: keep stations between 20 %
/// and 80 % full, and leave stations with fewer than 5 docks alone.
pub fn default_targets() -> Targets {
    Targets { alpha: 0.2, beta: 0.8, min_capacity_for_policy: 5 }
}
