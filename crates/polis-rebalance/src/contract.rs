//! The `rebalance.v1` contract: `policy.input.v1` in, `policy.output.v1`
//! out, exactly as the seed's §5 types, plus the host-side params.

use std::collections::BTreeMap;

use polis_core::contract::{Contract, Violations};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::network::Network;

/// The rebalancing contract.
pub struct Rebalance;

impl Contract for Rebalance {
    const ID: &'static str = "rebalance.v1";
    const INPUT_SCHEMA_VERSION: &'static str = "policy.input.v1";
    const OUTPUT_SCHEMA_VERSION: &'static str = "policy.output.v1";

    type Input = PolicyInput;
    type Output = PolicyOutput;
    type Params = RebalanceParams;

    fn validate_input(input: &PolicyInput, params: &RebalanceParams) -> Result<(), Violations> {
        Network::new(input, params).map(|_| ())
    }

    fn validate_output(input: &PolicyInput, params: &RebalanceParams, output: &PolicyOutput) -> Result<(), Violations> {
        let network = Network::new(input, params)?;
        crate::validate::check_output(&network, output)
    }

    fn output_items(output: &PolicyOutput) -> usize {
        output.moves.len()
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Station {
    /// Unique key (the GBFS `station_id`).
    pub station_key: String,
    /// Number of docks.
    pub capacity: u32,
    /// Bikes available.
    pub bikes: u32,
    /// Docks available.
    pub docks: u32,
    /// Data quality of this station in this bucket: `ok`, `degraded`,
    /// `stale` or `offline` from GBFS; any label is accepted.
    pub bucket_quality: String,
}

/// A directed edge `from → to` along which bikes may be moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Neighbor {
    /// Donor side.
    pub from_station_key: String,
    /// Receiver side.
    pub to_station_key: String,
    /// Distance in metres, finite and non-negative.
    pub dist_m: f64,
    /// 1 for the nearest neighbour of `from`, 2 for the next, and so on.
    pub rank: u32,
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
