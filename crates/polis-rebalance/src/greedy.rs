//! `rebal.greedy.v1`: nearest-first, largest-transfer greedy.
//!
//! Repeat until the bike budget, the move cap or the candidates run out:
//! the candidates are the neighbour edges `u → v` with both ends eligible
//! and `x = min(excess_u, need_v) > 0`; order them by `dist_m` ascending,
//! then `x` descending, then the from key, then the to key (keys compared
//! as bytes); take the first whose stations keep the touched set within
//! `max_stations_touched`, and move `min(x, remaining budget)` bikes.
//! Excess and need are read from the current state each round, and a
//! station that received bikes never gives while one that gave never
//! receives (the output rule in [`crate::validate`]): with a band that holds
//! no integer (`L = U + 1`) a donor drops to U and would need one bike, a
//! receiver rises to L and would have one to spare.

use std::collections::BTreeMap;

use serde_json::json;

use crate::contract::PolicyOutput;
use crate::network::Network;
use crate::validate::{Ledger, build_output};

/// The reason code on every greedy move.
pub const REASON: &str = "min_distance_then_max_transfer";

/// Why the greedy loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The bike budget is spent.
    BudgetExhausted,
    /// `max_moves` moves were made.
    MaxMoves,
    /// Candidates remain but every one would exceed `max_stations_touched`.
    StationsCap,
    /// No edge can move a bike any more.
    NoCandidates,
}

impl Stop {
    /// The diagnostic label.
    pub fn label(self) -> &'static str {
        match self {
            Stop::BudgetExhausted => "budget_exhausted",
            Stop::MaxMoves => "max_moves",
            Stop::StationsCap => "max_stations_touched",
            Stop::NoCandidates => "no_candidates",
        }
    }
}

/// The greedy plan: `(from, to, bikes)` in execution order, and why it
/// stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The moves.
    pub moves: Vec<(usize, usize, u32)>,
    /// Why the loop ended.
    pub stop: Stop,
}

/// Runs the greedy rule on a network.
pub fn plan(network: &Network) -> Plan {
    let stations = network.stations();
    let effort = network.effort();
    // Under the give-or-receive rule excess and need only shrink as moves
    // are made (a station's excess grows only by receiving, which ends its
    // giving; its need grows only by giving, which ends its receiving), so
    // an edge that starts with x = 0 never becomes a candidate, and one
    // whose x drops to 0 stays dead. Candidates are sorted once by (dist, from, to); each round the
    // winner is the first live, fitting candidate in that order, or a later
    // one at the same distance with a strictly larger x. That is exactly the
    // rule's order (dist asc, x desc, from, to), without rescanning the dead
    // prefix every round.
    let mut order: Vec<usize> = network
        .edges()
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            let (u, v) = (&stations[e.from], &stations[e.to]);
            u.eligible && v.eligible && u.excess(u.bikes) > 0 && v.need(v.bikes) > 0
        })
        .map(|(i, _)| i)
        .collect();
    let edges = network.edges();
    // Edges are sorted by (from, to) and station indices follow key byte
    // order, so a stable sort by distance leaves ties in key order.
    order.sort_by(|&a, &b| edges[a].dist_m.total_cmp(&edges[b].dist_m));

    let mut ledger = Ledger::new(network);
    let mut moves = Vec::new();
    let mut live_from = 0;
    let stop = loop {
        if ledger.remaining_budget() == 0 {
            break Stop::BudgetExhausted;
        }
        if moves.len() as u64 >= u64::from(effort.max_moves) {
            break Stop::MaxMoves;
        }
        let x_of = |ledger: &Ledger<'_>, c: usize| ledger.excess(edges[c].from).min(ledger.need(edges[c].to));
        while live_from < order.len() && x_of(&ledger, order[live_from]) == 0 {
            live_from += 1;
        }
        let fits = |ledger: &Ledger<'_>, c: usize| {
            ledger.touched_count() + ledger.new_stations(edges[c].from, edges[c].to) <= effort.max_stations_touched
        };
        let mut best: Option<(usize, u32)> = None;
        let mut blocked_by_cap = false;
        let mut i = live_from;
        while i < order.len() {
            let c = order[i];
            i += 1;
            let x = x_of(&ledger, c);
            if x == 0 {
                continue;
            }
            if !fits(&ledger, c) {
                blocked_by_cap = true;
                continue;
            }
            best = Some((c, x));
            let dist = edges[c].dist_m;
            while i < order.len() && edges[order[i]].dist_m.total_cmp(&dist).is_eq() {
                let c = order[i];
                i += 1;
                let x = x_of(&ledger, c);
                if best.is_some_and(|(_, bx)| x > bx) && fits(&ledger, c) {
                    best = Some((c, x));
                }
            }
            break;
        }
        let Some((c, x)) = best else {
            break if blocked_by_cap { Stop::StationsCap } else { Stop::NoCandidates };
        };
        let e = &edges[c];
        let amount = u64::from(x).min(ledger.remaining_budget()) as u32;
        ledger.apply(e.from, e.to, amount);
        moves.push((e.from, e.to, amount));
    };
    Plan { moves, stop }
}

/// Runs `rebal.greedy.v1` and builds its output.
pub fn run(network: &Network) -> PolicyOutput {
    let plan = plan(network);
    let mut diagnostics = crate::diagnostics::totals(network);
    diagnostics.insert("stop_reason".into(), json!(plan.stop.label()));
    diagnostics.extend(crate::diagnostics::effort_used(network, &plan.moves));
    build_output(network, &plan.moves, &[REASON], BTreeMap::from_iter(diagnostics))
}
