//! `rebal.global.v1`: a global optimiser by min-cost flow.
//!
//! Donors (eligible stations above their band top) supply their excess,
//! receivers (eligible stations below their band bottom) demand their need,
//! and bikes travel only along the input's neighbour edges, directly from a
//! donor to a receiver. Among all such transfers within the bike budget the
//! solver first **maximises the bikes delivered**, then **minimises
//! Σ bikes·dist_m**. Distances enter as whole millimetres so the optimum
//! is exact integer arithmetic; two transfers whose distances differ by
//! less than half a millimetre count as equally long.
//!
//! That optimum ignores `max_moves` and `max_stations_touched`. When it
//! happens to satisfy both, it is returned as is and is optimal
//! (`optimal: true`). When a cap binds the problem becomes a fixed-charge
//! flow, and [`crate::capped`] solves it: deterministic seeds (greedy's
//! edges, the original system's bikes-per-metre rule, largest transfer
//! first, bikes per newly touched station, the optimum's largest
//! transfers, whole stars), each turned into an exact flow on its station
//! set, then a local search that swaps touched stations and rebuilds parts
//! of the plan star by star. The result never delivers fewer bikes than
//! greedy or the bikes-per-metre rule, since both are seeds.
//!
//! Diagnostics report the proven bound (`upper_bound_bikes`, see
//! [`crate::capped::upper_bound`]), the gap to it (`gap_bikes`),
//! `bikes_optimal` when the gap is zero, the seed the search started from
//! (`repair`) and its improving rounds (`search_rounds`). BENCHMARKS.md
//! measures the result against an exact MIP over the Bay Wheels week.

use std::collections::BTreeMap;

use serde_json::json;

use crate::capped::{Seed, solve_capped};
use crate::contract::PolicyOutput;
use crate::flow::{FlowGraph, INFINITE};
use crate::network::Network;
use crate::validate::build_output;

/// The reason code on every global move.
pub const REASON: &str = "min_cost_flow";

/// Added to moves of a capped solution.
pub const REPAIR_REASON: &str = "caps_repair";

/// A flow solution: bikes per edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solution {
    /// `(edge index, bikes)` for every edge carrying bikes, by edge index.
    pub flows: Vec<(usize, u32)>,
    /// Bikes delivered.
    pub delivered: u64,
    /// `Σ bikes·dist` in millimetres.
    pub cost_mm: i128,
}

impl Solution {
    /// Distinct stations touched.
    pub fn stations_touched(&self, network: &Network) -> usize {
        let mut touched: Vec<usize> =
            self.flows.iter().flat_map(|&(e, _)| [network.edges()[e].from, network.edges()[e].to]).collect();
        touched.sort_unstable();
        touched.dedup();
        touched.len()
    }

    pub(crate) fn fits_caps(&self, network: &Network) -> bool {
        let effort = network.effort();
        self.flows.len() as u64 <= u64::from(effort.max_moves)
            && self.stations_touched(network) as u64 <= u64::from(effort.max_stations_touched)
    }
}

/// How the returned solution was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// The uncapped optimum fit the caps.
    None,
    /// A cap bound: the capped search, from this seed.
    Capped(Seed),
}

impl Repair {
    /// The diagnostic label.
    pub fn label(self) -> &'static str {
        match self {
            Repair::None => "none",
            Repair::Capped(seed) => seed.label(),
        }
    }
}

/// The full result of the global policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The uncapped optimum.
    pub optimum: Solution,
    /// What is returned: the optimum, or its repair.
    pub chosen: Solution,
    /// How `chosen` was obtained.
    pub repair: Repair,
    /// A proven upper bound on the bikes any plan within the caps
    /// delivers; `chosen.delivered` equals it when `chosen` is optimal.
    pub bound: u64,
    /// Improving local-search rounds (0 when no cap bound).
    pub rounds: usize,
}

/// Distance in whole millimetres.
pub fn cost_mm(dist_m: f64) -> i64 {
    (dist_m * 1000.0).round() as i64
}

/// Eligible donor → receiver edges, by edge index.
pub fn transfer_edges(network: &Network) -> Vec<usize> {
    let stations = network.stations();
    network
        .edges()
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            let (u, v) = (&stations[e.from], &stations[e.to]);
            u.eligible && v.eligible && u.excess(u.bikes) > 0 && v.need(v.bikes) > 0
        })
        .map(|(i, _)| i)
        .collect()
}

/// Solves the min-cost max-flow problem restricted to `edges` (indices into
/// `network.edges()`, in ascending order) within the bike budget.
pub fn solve(network: &Network, edges: &[usize]) -> Solution {
    let stations = network.stations();
    // Node layout: 0 = source, 1 = sink, then one node per station that
    // appears in `edges`, numbered in station (key) order.
    let mut node_of = vec![usize::MAX; network.len()];
    let mut used: Vec<usize> = edges.iter().flat_map(|&e| [network.edges()[e].from, network.edges()[e].to]).collect();
    used.sort_unstable();
    used.dedup();
    for (n, &s) in used.iter().enumerate() {
        node_of[s] = n + 2;
    }
    let mut graph = FlowGraph::new(used.len() + 2);
    for &s in &used {
        let st = &stations[s];
        let (excess, need) = (st.excess(st.bikes), st.need(st.bikes));
        if excess > 0 {
            graph.add_arc(0, node_of[s], i64::from(excess), 0);
        }
        if need > 0 {
            graph.add_arc(node_of[s], 1, i64::from(need), 0);
        }
    }
    let arc_ids: Vec<usize> = edges
        .iter()
        .map(|&e| {
            let edge = &network.edges()[e];
            graph.add_arc(node_of[edge.from], node_of[edge.to], INFINITE, cost_mm(edge.dist_m))
        })
        .collect();
    let budget = i64::from(network.effort().bike_move_budget_per_step);
    let result = graph.min_cost_flow(0, 1, budget);
    let flows: Vec<(usize, u32)> = edges
        .iter()
        .zip(arc_ids)
        .filter_map(|(&e, arc)| {
            let f = graph.flow(arc);
            (f > 0).then(|| (e, u32::try_from(f).unwrap_or(u32::MAX)))
        })
        .collect();
    Solution { flows, delivered: u64::try_from(result.flow).unwrap_or(0), cost_mm: result.cost }
}

/// Runs the optimiser and, when a cap binds, the capped search.
pub fn plan(network: &Network) -> Plan {
    let transfer = transfer_edges(network);
    let optimum = solve(network, &transfer);
    if optimum.fits_caps(network) {
        let bound = optimum.delivered;
        return Plan { chosen: optimum.clone(), optimum, repair: Repair::None, bound, rounds: 0 };
    }
    let mut greedy_edges: Vec<usize> =
        crate::greedy::plan(network).moves.iter().filter_map(|&(f, t, _)| network.edge_index(f, t)).collect();
    greedy_edges.sort_unstable();
    greedy_edges.dedup();
    let capped = solve_capped(network, &transfer, &optimum, &greedy_edges);
    Plan {
        optimum,
        chosen: capped.solution,
        repair: Repair::Capped(capped.seed),
        bound: capped.bound,
        rounds: capped.rounds,
    }
}

/// The optimum's transfers, largest first (then shorter, then by edge
/// order), kept while they fit `max_moves` and `max_stations_touched`.
pub(crate) fn largest_fitting(network: &Network, optimum: &Solution) -> Vec<usize> {
    let effort = network.effort();
    let mut order = optimum.flows.clone();
    order.sort_by(|&(ea, fa), &(eb, fb)| {
        fb.cmp(&fa).then(network.edges()[ea].dist_m.total_cmp(&network.edges()[eb].dist_m)).then(ea.cmp(&eb))
    });
    let mut touched = vec![false; network.len()];
    let mut touched_count = 0u64;
    let mut kept = Vec::new();
    for (e, _) in order {
        if kept.len() as u64 >= u64::from(effort.max_moves) {
            break;
        }
        let edge = &network.edges()[e];
        let new = u64::from(!touched[edge.from]) + u64::from(!touched[edge.to]);
        if touched_count + new > u64::from(effort.max_stations_touched) {
            continue;
        }
        touched[edge.from] = true;
        touched[edge.to] = true;
        touched_count += new;
        kept.push(e);
    }
    kept.sort_unstable();
    kept
}

/// Runs `rebal.global.v1` and builds its output. Moves are listed shortest
/// first, then largest, then by from and to key.
pub fn run(network: &Network) -> PolicyOutput {
    let plan = plan(network);
    let mut moves: Vec<(usize, usize, u32)> =
        plan.chosen.flows.iter().map(|&(e, bikes)| (network.edges()[e].from, network.edges()[e].to, bikes)).collect();
    moves.sort_by(|a, b| {
        let (da, db) =
            (network.edge(a.0, a.1).map_or(0.0, |e| e.dist_m), network.edge(b.0, b.1).map_or(0.0, |e| e.dist_m));
        da.total_cmp(&db).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1))
    });
    let mut diagnostics = crate::diagnostics::totals(network);
    diagnostics.extend(crate::diagnostics::effort_used(network, &moves));
    diagnostics.insert("optimal".into(), json!(plan.repair == Repair::None));
    diagnostics.insert("bikes_optimal".into(), json!(plan.chosen.delivered >= plan.bound));
    diagnostics.insert("repair".into(), json!(plan.repair.label()));
    diagnostics.insert("search_rounds".into(), json!(plan.rounds));
    diagnostics.insert("uncapped_optimum_bikes".into(), json!(plan.optimum.delivered));
    diagnostics.insert("upper_bound_bikes".into(), json!(plan.bound));
    diagnostics.insert("gap_bikes".into(), json!(plan.bound.saturating_sub(plan.chosen.delivered)));
    let reasons: &[&str] = if plan.repair == Repair::None { &[REASON] } else { &[REASON, REPAIR_REASON] };
    build_output(network, &moves, reasons, BTreeMap::from_iter(diagnostics))
}
