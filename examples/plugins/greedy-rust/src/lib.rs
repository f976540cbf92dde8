//! `rebal.greedy.v1` as a polis wasm plugin, written against the guest SDK
//! only (no polis host crates), so that its agreement with the built-in is
//! evidence that the ABI carries a policy faithfully.
//!
//! The rule, as the built-in states it: repeat until the bike budget, the
//! move cap or the candidates run out; the candidates are the neighbour
//! edges `u → v` with both ends eligible and `x = min(excess_u, need_v) >
//! 0`; order them by `dist_m` ascending, then `x` descending, then the from
//! key, then the to key (bytes); take the first whose stations keep the
//! touched set within `max_stations_touched`, and move `min(x, remaining
//! budget)` bikes.
//!
//! Build with `cargo build -p polis-example-greedy --release --target
//! wasm32-unknown-unknown`.
#![deny(missing_docs)]

use std::collections::BTreeMap;

use polis_guest::{Error, Request};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `policy.input.v1`.
#[derive(Debug, Deserialize)]
pub struct Input {
    /// Stations in any order.
    pub stations: Vec<Station>,
    /// Directed neighbour edges.
    pub neighbors: Vec<Neighbor>,
    /// Effort limits.
    pub effort: Effort,
    /// The fill band.
    pub targets: Targets,
}

/// One station.
#[derive(Debug, Deserialize)]
pub struct Station {
    /// Unique key.
    pub station_key: String,
    /// Docks.
    pub capacity: u32,
    /// Bikes available.
    pub bikes: u32,
    /// Data quality label.
    pub bucket_quality: String,
}

/// One edge.
#[derive(Debug, Deserialize)]
pub struct Neighbor {
    /// Donor.
    pub from_station_key: String,
    /// Receiver.
    pub to_station_key: String,
    /// Metres.
    pub dist_m: f64,
}

/// Effort limits.
#[derive(Debug, Deserialize)]
pub struct Effort {
    /// Most bikes moved.
    pub bike_move_budget_per_step: u32,
    /// Most stations touched.
    pub max_stations_touched: u32,
    /// Most moves.
    pub max_moves: u32,
}

/// The band.
#[derive(Debug, Deserialize)]
pub struct Targets {
    /// Lower fraction.
    pub alpha: f64,
    /// Upper fraction.
    pub beta: f64,
    /// Smaller stations are left alone.
    pub min_capacity_for_policy: u32,
}

/// The host-side params.
#[derive(Debug, Deserialize)]
pub struct Params {
    /// Eligible bucket qualities.
    pub allowed_bucket_quality: Vec<String>,
}

/// `policy.output.v1`.
#[derive(Debug, Serialize)]
pub struct Output {
    /// The moves.
    pub moves: Vec<Move>,
    /// Totals.
    pub summary: Summary,
    /// Facts about the decision.
    pub diagnostics: BTreeMap<String, Value>,
}

/// One move.
#[derive(Debug, Serialize)]
pub struct Move {
    /// 1-based rank.
    pub move_rank: u32,
    /// Donor.
    pub from_station_key: String,
    /// Receiver.
    pub to_station_key: String,
    /// Bikes.
    pub bikes_moved: u32,
    /// The edge's distance.
    pub dist_m: f64,
    /// No budget left after this move.
    pub budget_exhausted: bool,
    /// The donor has nothing left to give its neighbours.
    pub neighbor_exhausted: bool,
    /// Why.
    pub reason_codes: Vec<String>,
}

/// Totals.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Bikes moved.
    pub bikes_moved_total: u32,
    /// Distinct stations.
    pub stations_touched: u32,
    /// No moves.
    pub no_op: bool,
}

const REASON: &str = "min_distance_then_max_transfer";
const BAND_TOLERANCE: f64 = 1e-9;

struct Node {
    bikes: u32,
    low: u32,
    high: u32,
    eligible: bool,
}

impl Node {
    fn need(&self, bikes: u32) -> u32 {
        self.low.saturating_sub(bikes)
    }
    fn excess(&self, bikes: u32) -> u32 {
        bikes.saturating_sub(self.high)
    }
}

#[derive(Clone, Copy)]
struct Edge {
    from: usize,
    to: usize,
    dist_m: f64,
}

fn band(x: f64, round: fn(f64) -> f64) -> u32 {
    let nearest = x.round();
    let value = if (x - nearest).abs() < BAND_TOLERANCE { nearest } else { round(x) };
    value.clamp(0.0, f64::from(u32::MAX)) as u32
}

struct Graph<'a> {
    keys: Vec<&'a str>,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    out: Vec<usize>,
}

impl<'a> Graph<'a> {
    fn new(input: &'a Input, params: &Params) -> Result<Graph<'a>, Error> {
        let mut order: Vec<&Station> = input.stations.iter().collect();
        order.sort_by(|a, b| a.station_key.cmp(&b.station_key));
        let t = &input.targets;
        let keys: Vec<&str> = order.iter().map(|s| s.station_key.as_str()).collect();
        let nodes = order
            .iter()
            .map(|s| {
                let capacity = f64::from(s.capacity);
                Node {
                    bikes: s.bikes.min(s.capacity),
                    low: band(t.alpha * capacity, f64::ceil).min(s.capacity),
                    high: band(t.beta * capacity, f64::floor).min(s.capacity),
                    eligible: s.capacity >= t.min_capacity_for_policy
                        && params.allowed_bucket_quality.contains(&s.bucket_quality),
                }
            })
            .collect::<Vec<_>>();
        let mut edges = Vec::with_capacity(input.neighbors.len());
        for n in &input.neighbors {
            let find = |key: &str| {
                keys.binary_search(&key).map_err(|_| Error::Rejected(format!("edge names unknown station `{key}`")))
            };
            let (from, to) = (find(&n.from_station_key)?, find(&n.to_station_key)?);
            if from != to {
                edges.push(Edge { from, to, dist_m: n.dist_m });
            }
        }
        edges.sort_by_key(|e| (e.from, e.to));
        let mut out = vec![0; nodes.len() + 1];
        for e in &edges {
            out[e.from + 1] += 1;
        }
        for i in 0..nodes.len() {
            out[i + 1] += out[i];
        }
        Ok(Graph { keys, nodes, edges, out })
    }

    fn edges_from(&self, i: usize) -> &[Edge] {
        &self.edges[self.out[i]..self.out[i + 1]]
    }

    fn edge(&self, from: usize, to: usize) -> Option<&Edge> {
        let out = self.edges_from(from);
        out.binary_search_by_key(&to, |e| e.to).ok().map(|i| &out[i])
    }
}

struct Ledger {
    bikes: Vec<u32>,
    touched: Vec<bool>,
    touched_count: u32,
    moved: u64,
    budget: u64,
}

impl Ledger {
    fn new(graph: &Graph<'_>, effort: &Effort) -> Ledger {
        Ledger {
            bikes: graph.nodes.iter().map(|n| n.bikes).collect(),
            touched: vec![false; graph.nodes.len()],
            touched_count: 0,
            moved: 0,
            budget: u64::from(effort.bike_move_budget_per_step),
        }
    }
    fn remaining(&self) -> u64 {
        self.budget.saturating_sub(self.moved)
    }
    fn apply(&mut self, from: usize, to: usize, bikes: u32) {
        self.bikes[from] = self.bikes[from].saturating_sub(bikes);
        self.bikes[to] = self.bikes[to].saturating_add(bikes);
        for i in [from, to] {
            if !self.touched[i] {
                self.touched[i] = true;
                self.touched_count += 1;
            }
        }
        self.moved += u64::from(bikes);
    }
}

/// Decides: the greedy plan, its moves and its diagnostics.
pub fn decide(request: Request<Input, Params>) -> Result<Output, Error> {
    let input = &request.input;
    let graph = Graph::new(input, &request.params)?;
    let effort = &input.effort;
    let nodes = &graph.nodes;

    let candidates: Vec<usize> = (0..graph.edges.len())
        .filter(|&c| {
            let e = graph.edges[c];
            let (u, v) = (&nodes[e.from], &nodes[e.to]);
            u.eligible && v.eligible && u.excess(u.bikes) > 0 && v.need(v.bikes) > 0
        })
        .collect();
    let mut ledger = Ledger::new(&graph, effort);
    let mut plan: Vec<(usize, usize, u32)> = Vec::new();
    let stop = loop {
        if ledger.remaining() == 0 {
            break "budget_exhausted";
        }
        if plan.len() as u64 >= u64::from(effort.max_moves) {
            break "max_moves";
        }
        let mut best: Option<(usize, u32)> = None;
        let mut blocked = false;
        for &c in &candidates {
            let e = graph.edges[c];
            let x = nodes[e.from].excess(ledger.bikes[e.from]).min(nodes[e.to].need(ledger.bikes[e.to]));
            if x == 0 {
                continue;
            }
            let new = u32::from(!ledger.touched[e.from]) + u32::from(!ledger.touched[e.to]);
            if ledger.touched_count + new > effort.max_stations_touched {
                blocked = true;
                continue;
            }
            let better = match best {
                None => true,
                Some((b, bx)) => {
                    let be = graph.edges[b];
                    e.dist_m
                        .total_cmp(&be.dist_m)
                        .then(bx.cmp(&x))
                        .then(e.from.cmp(&be.from))
                        .then(e.to.cmp(&be.to))
                        .is_lt()
                }
            };
            if better {
                best = Some((c, x));
            }
        }
        let Some((c, x)) = best else {
            break if blocked { "max_stations_touched" } else { "no_candidates" };
        };
        let e = graph.edges[c];
        let amount = u64::from(x).min(ledger.remaining()) as u32;
        ledger.apply(e.from, e.to, amount);
        plan.push((e.from, e.to, amount));
    };

    let mut diagnostics = totals(&graph);
    diagnostics.insert("stop_reason".into(), json!(stop));
    let weighted: f64 = plan.iter().map(|&(f, t, b)| f64::from(b) * graph.edge(f, t).map_or(0.0, |e| e.dist_m)).sum();
    diagnostics.insert("weighted_distance_m".into(), json!((weighted * 10.0).round() / 10.0));

    let mut replay = Ledger::new(&graph, effort);
    let mut moves = Vec::with_capacity(plan.len());
    for (rank, &(from, to, bikes)) in plan.iter().enumerate() {
        replay.apply(from, to, bikes);
        let donor_exhausted = nodes[from].excess(replay.bikes[from]) == 0
            || !graph.edges_from(from).iter().any(|e| nodes[e.to].eligible && nodes[e.to].need(replay.bikes[e.to]) > 0);
        moves.push(Move {
            move_rank: rank as u32 + 1,
            from_station_key: graph.keys[from].to_owned(),
            to_station_key: graph.keys[to].to_owned(),
            bikes_moved: bikes,
            dist_m: graph.edge(from, to).map_or(0.0, |e| e.dist_m),
            budget_exhausted: replay.remaining() == 0,
            neighbor_exhausted: donor_exhausted,
            reason_codes: vec![REASON.to_owned()],
        });
    }
    let summary = Summary {
        bikes_moved_total: u32::try_from(replay.moved).unwrap_or(u32::MAX),
        stations_touched: replay.touched_count,
        no_op: moves.is_empty(),
    };
    Ok(Output { moves, summary, diagnostics })
}

fn totals(graph: &Graph<'_>) -> BTreeMap<String, Value> {
    let (mut eligible, mut donors, mut receivers, mut excess, mut need) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for n in graph.nodes.iter().filter(|n| n.eligible) {
        eligible += 1;
        let (x, k) = (n.excess(n.bikes), n.need(n.bikes));
        donors += u64::from(x > 0);
        receivers += u64::from(k > 0);
        excess += u64::from(x);
        need += u64::from(k);
    }
    BTreeMap::from([
        ("eligible_stations".to_owned(), json!(eligible)),
        ("donors".to_owned(), json!(donors)),
        ("receivers".to_owned(), json!(receivers)),
        ("total_excess".to_owned(), json!(excess)),
        ("total_need".to_owned(), json!(need)),
    ])
}

polis_guest::export_policy!(decide);
