//! The semantic rules of `policy.output.v1`, and the bookkeeping that
//! policies share to produce outputs that satisfy them.
//!
//! The rules, checked move by move on running totals:
//! - `move_rank` runs 1..n;
//! - every move is on a neighbour edge of the input, with `bikes_moved > 0`
//!   and the edge's `dist_m`;
//! - both ends are eligible;
//! - every station stays within `[0, capacity]`, a donor never goes below
//!   its band top U and a receiver never goes above its band bottom L;
//! - a station that received bikes never gives in the same decision, and one
//!   that gave never receives (with a band that holds no integer,
//!   `L = U + 1`, a bike could otherwise ping-pong between two stations);
//! - total bikes ≤ `bike_move_budget_per_step`, distinct stations ≤
//!   `max_stations_touched`, moves ≤ `max_moves`;
//! - `budget_exhausted` and `neighbor_exhausted` say what actually
//!   happened, and `summary` agrees with `moves`.

use polis_core::contract::{Violation, Violations};

use crate::contract::{Move, PolicyOutput, Summary};
use crate::network::Network;

/// Distances in a move may differ from the edge's by at most this much,
/// to forgive float formatting in other languages.
const DIST_TOLERANCE_M: f64 = 1e-6;

/// Validation stops listing problems after this many.
const MAX_REPORTED: usize = 50;

/// Running state while moves are applied in order.
#[derive(Debug, Clone)]
pub struct Ledger<'n> {
    network: &'n Network,
    bikes: Vec<u32>,
    touched: Vec<bool>,
    role: Vec<Role>,
    touched_count: u32,
    moved: u64,
}

/// What a station has done so far in this decision. A station that gave
/// never receives and one that received never gives: with a band that holds
/// no integer (`L = U + 1`) a bike could otherwise ping-pong between two
/// stations, each move "valid" on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Untouched,
    Gave,
    Received,
}

impl<'n> Ledger<'n> {
    /// Starts from the snapshot's inventory.
    pub fn new(network: &'n Network) -> Self {
        Ledger {
            network,
            bikes: network.stations().iter().map(|s| s.bikes).collect(),
            touched: vec![false; network.len()],
            role: vec![Role::Untouched; network.len()],
            touched_count: 0,
            moved: 0,
        }
    }

    /// Bikes at station `i` now.
    pub fn bikes(&self, i: usize) -> u32 {
        self.bikes[i]
    }

    /// Excess of station `i` now: what it can still give, zero once it has
    /// received bikes in this decision.
    pub fn excess(&self, i: usize) -> u32 {
        if self.role[i] == Role::Received { 0 } else { self.network.stations()[i].excess(self.bikes[i]) }
    }

    /// Need of station `i` now: what it can still take, zero once it has
    /// given bikes in this decision.
    pub fn need(&self, i: usize) -> u32 {
        if self.role[i] == Role::Gave { 0 } else { self.network.stations()[i].need(self.bikes[i]) }
    }

    /// Whether station `i` has received bikes in this decision.
    pub fn has_received(&self, i: usize) -> bool {
        self.role[i] == Role::Received
    }

    /// Whether station `i` has given bikes in this decision.
    pub fn has_given(&self, i: usize) -> bool {
        self.role[i] == Role::Gave
    }

    /// Whether station `i` has been touched.
    pub fn is_touched(&self, i: usize) -> bool {
        self.touched[i]
    }

    /// Distinct stations touched so far.
    pub fn touched_count(&self) -> u32 {
        self.touched_count
    }

    /// Bikes moved so far.
    pub fn moved(&self) -> u64 {
        self.moved
    }

    /// Bikes left in the budget.
    pub fn remaining_budget(&self) -> u64 {
        u64::from(self.network.effort().bike_move_budget_per_step).saturating_sub(self.moved)
    }

    /// How many new stations a move `from → to` would touch.
    pub fn new_stations(&self, from: usize, to: usize) -> u32 {
        u32::from(!self.touched[from]) + u32::from(!self.touched[to])
    }

    /// Applies a move; the caller has checked it fits.
    pub fn apply(&mut self, from: usize, to: usize, bikes: u32) {
        self.bikes[from] = self.bikes[from].saturating_sub(bikes);
        self.bikes[to] = self.bikes[to].saturating_add(bikes);
        self.role[from] = Role::Gave;
        self.role[to] = Role::Received;
        for i in [from, to] {
            if !self.touched[i] {
                self.touched[i] = true;
                self.touched_count += 1;
            }
        }
        self.moved += u64::from(bikes);
    }

    /// True when the donor has nothing left to give its neighbours: no
    /// excess, or no eligible neighbour that still needs bikes.
    pub fn donor_exhausted(&self, from: usize) -> bool {
        if self.excess(from) == 0 {
            return true;
        }
        let stations = self.network.stations();
        !self.network.edges_from(from).iter().any(|e| stations[e.to].eligible && self.need(e.to) > 0)
    }
}

/// Turns a planned sequence of `(from, to, bikes)` into contract moves with
/// ranks, truthful flags and a summary.
pub fn build_output(
    network: &Network,
    plan: &[(usize, usize, u32)],
    reason_codes: &[&str],
    diagnostics: std::collections::BTreeMap<String, serde_json::Value>,
) -> PolicyOutput {
    let mut ledger = Ledger::new(network);
    let mut moves = Vec::with_capacity(plan.len());
    for (rank, &(from, to, bikes)) in plan.iter().enumerate() {
        ledger.apply(from, to, bikes);
        let dist_m = network.edge(from, to).map_or(0.0, |e| e.dist_m);
        moves.push(Move {
            move_rank: rank as u32 + 1,
            from_station_key: network.key(from).to_owned(),
            to_station_key: network.key(to).to_owned(),
            bikes_moved: bikes,
            dist_m,
            budget_exhausted: ledger.remaining_budget() == 0,
            neighbor_exhausted: ledger.donor_exhausted(from),
            reason_codes: reason_codes.iter().map(|c| (*c).to_owned()).collect(),
        });
    }
    let summary = Summary {
        bikes_moved_total: u32::try_from(ledger.moved()).unwrap_or(u32::MAX),
        stations_touched: ledger.touched_count(),
        no_op: moves.is_empty(),
    };
    PolicyOutput { moves, summary, diagnostics: Some(diagnostics) }
}

/// Checks an output against its input's network; see the module docs for
/// the rules.
pub fn check_output(network: &Network, output: &PolicyOutput) -> Result<(), Violations> {
    let mut problems = Vec::new();
    let effort = network.effort();
    let stations = network.stations();
    let mut ledger = Ledger::new(network);
    let mut total: u64 = 0;

    if output.moves.len() as u64 > u64::from(effort.max_moves) {
        problems.push(Violation::new(
            "output.too_many_moves",
            "moves",
            format!("{} moves exceed `max_moves` {}", output.moves.len(), effort.max_moves),
        ));
    }
    for (i, m) in output.moves.iter().enumerate() {
        if problems.len() >= MAX_REPORTED {
            break;
        }
        let path = format!("moves[{i}]");
        if m.move_rank as usize != i + 1 {
            problems.push(Violation::new(
                "output.move_rank",
                format!("{path}.move_rank"),
                format!("is {}, expected {}", m.move_rank, i + 1),
            ));
        }
        let (Some(from), Some(to)) = (network.index_of(&m.from_station_key), network.index_of(&m.to_station_key))
        else {
            problems.push(Violation::new(
                "output.unknown_station",
                path,
                format!("move `{}` → `{}` names a station not in the input", m.from_station_key, m.to_station_key),
            ));
            continue;
        };
        let Some(edge) = network.edge(from, to) else {
            problems.push(Violation::new(
                "output.not_neighbor",
                path,
                format!("`{}` → `{}` is not a neighbour edge of the input", m.from_station_key, m.to_station_key),
            ));
            continue;
        };
        if !m.dist_m.is_finite() || (m.dist_m - edge.dist_m).abs() > DIST_TOLERANCE_M {
            problems.push(Violation::new(
                "output.wrong_distance",
                format!("{path}.dist_m"),
                format!("is {}, but the edge's `dist_m` is {}", m.dist_m, edge.dist_m),
            ));
        }
        if m.bikes_moved == 0 {
            problems.push(Violation::new("output.empty_move", format!("{path}.bikes_moved"), "must be at least 1"));
            continue;
        }
        for (side, idx) in [("from", from), ("to", to)] {
            if !stations[idx].eligible {
                problems.push(Violation::new(
                    "output.ineligible_station",
                    format!("{path}.{side}_station_key"),
                    format!("station `{}` is not eligible (capacity or bucket quality)", network.key(idx)),
                ));
            }
        }
        if ledger.has_received(from) {
            problems.push(Violation::new(
                "output.receiver_gives",
                format!("{path}.from_station_key"),
                format!("`{}` received bikes earlier in this decision and cannot give", m.from_station_key),
            ));
        }
        if ledger.has_given(to) {
            problems.push(Violation::new(
                "output.donor_receives",
                format!("{path}.to_station_key"),
                format!("`{}` gave bikes earlier in this decision and cannot receive", m.to_station_key),
            ));
        }
        if m.bikes_moved > ledger.bikes(from) {
            problems.push(Violation::new(
                "output.negative_inventory",
                format!("{path}.bikes_moved"),
                format!("moves {} bikes but `{}` holds {}", m.bikes_moved, m.from_station_key, ledger.bikes(from)),
            ));
            continue;
        }
        let from_after = ledger.bikes(from) - m.bikes_moved;
        let to_after = u64::from(ledger.bikes(to)) + u64::from(m.bikes_moved);
        if to_after > u64::from(stations[to].capacity) {
            problems.push(Violation::new(
                "output.over_capacity",
                format!("{path}.bikes_moved"),
                format!(
                    "`{}` would hold {to_after} bikes, above its capacity {}",
                    m.to_station_key, stations[to].capacity
                ),
            ));
        }
        if from_after < stations[from].high {
            problems.push(Violation::new(
                "output.donor_below_band",
                format!("{path}.bikes_moved"),
                format!(
                    "donor `{}` would drop to {from_after} bikes, below its band top U = {}",
                    m.from_station_key, stations[from].high
                ),
            ));
        }
        if to_after > u64::from(stations[to].low) {
            problems.push(Violation::new(
                "output.receiver_above_band",
                format!("{path}.bikes_moved"),
                format!(
                    "receiver `{}` would rise to {to_after} bikes, above its band bottom L = {}",
                    m.to_station_key, stations[to].low
                ),
            ));
        }
        ledger.apply(from, to, m.bikes_moved);
        total += u64::from(m.bikes_moved);
        if total > u64::from(effort.bike_move_budget_per_step) {
            problems.push(Violation::new(
                "output.over_budget",
                format!("{path}.bikes_moved"),
                format!(
                    "brings the total to {total}, above `bike_move_budget_per_step` {}",
                    effort.bike_move_budget_per_step
                ),
            ));
        }
        let budget_exhausted = ledger.remaining_budget() == 0;
        if m.budget_exhausted != budget_exhausted {
            problems.push(Violation::new(
                "output.budget_flag",
                format!("{path}.budget_exhausted"),
                format!("is {}, but {} of the budget remains", m.budget_exhausted, ledger.remaining_budget()),
            ));
        }
        let neighbor_exhausted = ledger.donor_exhausted(from);
        if m.neighbor_exhausted != neighbor_exhausted {
            problems.push(Violation::new(
                "output.neighbor_flag",
                format!("{path}.neighbor_exhausted"),
                format!(
                    "is {}, but after this move donor `{}` {}",
                    m.neighbor_exhausted,
                    m.from_station_key,
                    if neighbor_exhausted {
                        "has nothing left to give its neighbours"
                    } else {
                        "can still serve a neighbour in need"
                    }
                ),
            ));
        }
    }
    if ledger.touched_count() > effort.max_stations_touched {
        problems.push(Violation::new(
            "output.too_many_stations",
            "moves",
            format!(
                "{} stations touched exceed `max_stations_touched` {}",
                ledger.touched_count(),
                effort.max_stations_touched
            ),
        ));
    }
    let expected = Summary {
        bikes_moved_total: u32::try_from(output.moves.iter().map(|m| u64::from(m.bikes_moved)).sum::<u64>())
            .unwrap_or(u32::MAX),
        stations_touched: distinct_stations(output),
        no_op: output.moves.is_empty(),
    };
    for (field, got, want) in [
        ("bikes_moved_total", u64::from(output.summary.bikes_moved_total), u64::from(expected.bikes_moved_total)),
        ("stations_touched", u64::from(output.summary.stations_touched), u64::from(expected.stations_touched)),
        ("no_op", u64::from(output.summary.no_op), u64::from(expected.no_op)),
    ] {
        if got != want {
            problems.push(Violation::new(
                "output.summary",
                format!("summary.{field}"),
                format!("is {got}, but the moves give {want}"),
            ));
        }
    }
    Violations::check(problems)
}

fn distinct_stations(output: &PolicyOutput) -> u32 {
    let mut keys: Vec<&str> =
        output.moves.iter().flat_map(|m| [m.from_station_key.as_str(), m.to_station_key.as_str()]).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.len() as u32
}
