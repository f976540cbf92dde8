//! A validated, canonically ordered view of a `policy.input.v1` document.
//!
//! Every built-in policy and the output validator work on a [`Network`]:
//! stations sorted by `station_key` in byte order (so a station's index
//! order *is* key order), edges sorted by `(from, to)`, and each station's
//! band computed once. Because the order comes from the keys and never
//! from the document, the same stations and edges given in any order
//! produce the same decisions.

use polis_core::contract::{Violation, Violations};

use crate::contract::{Effort, PolicyInput, RebalanceParams};

/// Distances above this (half the Earth's circumference) are rejected as
/// nonsense.
pub const MAX_DIST_M: f64 = 20_037_508.0;

/// Products `alpha·capacity` within this of an integer count as that
/// integer, so that `0.2 × 15` gives a band bottom of 3, not 4.
const BAND_TOLERANCE: f64 = 1e-9;

/// One station's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationState {
    /// Docks.
    pub capacity: u32,
    /// Bikes at the decision time.
    pub bikes: u32,
    /// Band bottom `L = ceil(alpha·capacity)`.
    pub low: u32,
    /// Band top `U = floor(beta·capacity)`.
    pub high: u32,
    /// Capacity is at least `min_capacity_for_policy` and the bucket
    /// quality is allowed.
    pub eligible: bool,
}

impl StationState {
    /// Bikes needed to reach the band bottom: `max(0, L − bikes)`.
    pub fn need(&self, bikes: u32) -> u32 {
        self.low.saturating_sub(bikes)
    }

    /// Bikes above the band top: `max(0, bikes − U)`.
    pub fn excess(&self, bikes: u32) -> u32 {
        bikes.saturating_sub(self.high)
    }
}

/// A directed edge between station indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edge {
    /// Donor index.
    pub from: usize,
    /// Receiver index.
    pub to: usize,
    /// Distance in metres.
    pub dist_m: f64,
}

/// The canonical view of one input.
#[derive(Debug, Clone)]
pub struct Network {
    keys: Vec<String>,
    stations: Vec<StationState>,
    edges: Vec<Edge>,
    /// `out[i]..out[i + 1]` are the edges leaving station `i`.
    out: Vec<usize>,
    effort: Effort,
}

impl Network {
    /// Validates `input` and builds its canonical view. Every problem is
    /// reported with its path, such as `stations[3].bikes`.
    pub fn new(input: &PolicyInput, params: &RebalanceParams) -> Result<Network, Violations> {
        let mut problems = Vec::new();
        check_targets(input, &mut problems);

        let mut order: Vec<usize> = (0..input.stations.len()).collect();
        order.sort_by(|&a, &b| input.stations[a].station_key.cmp(&input.stations[b].station_key));
        for pair in order.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            if input.stations[first].station_key == input.stations[second].station_key {
                problems.push(Violation::new(
                    "input.duplicate_station",
                    format!("stations[{second}].station_key"),
                    format!("station key `{}` also appears at stations[{first}]", input.stations[second].station_key),
                ));
            }
        }

        let targets = &input.targets;
        let mut keys = Vec::with_capacity(order.len());
        let mut stations = Vec::with_capacity(order.len());
        for &i in &order {
            let s = &input.stations[i];
            if s.station_key.is_empty() {
                problems.push(Violation::new(
                    "input.empty_key",
                    format!("stations[{i}].station_key"),
                    "must not be empty",
                ));
            }
            if s.bikes > s.capacity {
                problems.push(Violation::new(
                    "input.bikes_over_capacity",
                    format!("stations[{i}].bikes"),
                    format!("station `{}` has {} bikes but capacity {}", s.station_key, s.bikes, s.capacity),
                ));
            }
            if s.docks > s.capacity {
                problems.push(Violation::new(
                    "input.docks_over_capacity",
                    format!("stations[{i}].docks"),
                    format!("station `{}` has {} docks free but capacity {}", s.station_key, s.docks, s.capacity),
                ));
            }
            let capacity = f64::from(s.capacity);
            let low = band_ceil(targets.alpha * capacity).min(s.capacity);
            let high = band_floor(targets.beta * capacity).min(s.capacity);
            let eligible = s.capacity >= targets.min_capacity_for_policy
                && params.allowed_bucket_quality.contains(&s.bucket_quality);
            keys.push(s.station_key.as_str());
            stations.push(StationState { capacity: s.capacity, bikes: s.bikes.min(s.capacity), low, high, eligible });
        }

        let mut edges = Vec::with_capacity(input.neighbors.len());
        let mut positions = Vec::with_capacity(input.neighbors.len());
        // Key → index by hash: an edge costs two lookups, and a binary
        // search over UUID-like keys costs a dozen string comparisons. Only
        // looked up, never iterated, so its order decides nothing.
        let index: std::collections::HashMap<&str, usize> = keys.iter().enumerate().map(|(i, &k)| (k, i)).collect();
        let find = |key: &str| index.get(key).copied().ok_or(());
        // Inputs list a station's edges together, so the previous edge's
        // donor lookup is usually this edge's too.
        let mut last_from: Option<(&str, Result<usize, ()>)> = None;
        for (i, n) in input.neighbors.iter().enumerate() {
            let from = match last_from {
                Some((key, found)) if key == n.from_station_key => found,
                _ => find(&n.from_station_key),
            };
            last_from = Some((n.from_station_key.as_str(), from));
            let to = find(&n.to_station_key);
            for (side, found, key) in [("from", &from, &n.from_station_key), ("to", &to, &n.to_station_key)] {
                if found.is_err() {
                    problems.push(Violation::new(
                        "input.unknown_station",
                        format!("neighbors[{i}].{side}_station_key"),
                        format!("edge names station `{key}`, which is not in `stations`"),
                    ));
                }
            }
            if !n.dist_m.is_finite() || n.dist_m < 0.0 || n.dist_m > MAX_DIST_M {
                problems.push(Violation::new(
                    "input.bad_distance",
                    format!("neighbors[{i}].dist_m"),
                    format!("distance must be finite and within 0..={MAX_DIST_M} m, got {}", n.dist_m),
                ));
            }
            if n.rank == 0 {
                problems.push(Violation::new("input.bad_rank", format!("neighbors[{i}].rank"), "ranks start at 1"));
            }
            if let (Ok(from), Ok(to)) = (from, to) {
                if from == to {
                    problems.push(Violation::new(
                        "input.self_edge",
                        format!("neighbors[{i}]"),
                        format!("edge from station `{}` to itself", n.from_station_key),
                    ));
                    continue;
                }
                edges.push(Edge { from, to, dist_m: n.dist_m });
                positions.push(i);
            }
        }
        // (from, to) order, equal pairs in input order: a counting sort by
        // donor, then each donor's few edges by receiver. A comparison sort
        // of all edges took 40 % of validating a 200,000-edge input.
        let mut first = vec![0usize; stations.len() + 1];
        for edge in &edges {
            first[edge.from + 1] += 1;
        }
        for i in 0..stations.len() {
            first[i + 1] += first[i];
        }
        let mut next = first.clone();
        let mut by_pair = vec![0usize; edges.len()];
        for (i, edge) in edges.iter().enumerate() {
            by_pair[next[edge.from]] = i;
            next[edge.from] += 1;
        }
        for s in 0..stations.len() {
            by_pair[first[s]..first[s + 1]].sort_by_key(|&e| edges[e].to);
        }
        for pair in by_pair.windows(2) {
            let (a, b) = (edges[pair[0]], edges[pair[1]]);
            if (a.from, a.to) == (b.from, b.to) {
                problems.push(Violation::new(
                    "input.duplicate_edge",
                    format!("neighbors[{}]", positions[pair[1]]),
                    format!(
                        "edge `{}` → `{}` also appears at neighbors[{}]",
                        keys[a.from], keys[a.to], positions[pair[0]]
                    ),
                ));
            }
        }
        if !problems.is_empty() {
            return Err(Violations(problems));
        }
        let edges: Vec<Edge> = by_pair.into_iter().map(|e| edges[e]).collect();
        let mut out = vec![0; stations.len() + 1];
        for edge in &edges {
            out[edge.from + 1] += 1;
        }
        for i in 0..stations.len() {
            out[i + 1] += out[i];
        }
        let keys = keys.into_iter().map(str::to_owned).collect();
        Ok(Network { keys, stations, edges, out, effort: input.effort.clone() })
    }

    /// Number of stations.
    pub fn len(&self) -> usize {
        self.stations.len()
    }

    /// True when there are no stations.
    pub fn is_empty(&self) -> bool {
        self.stations.is_empty()
    }

    /// Station keys in index (byte) order.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The key of station `i`.
    pub fn key(&self, i: usize) -> &str {
        &self.keys[i]
    }

    /// Index of a station key.
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.keys.binary_search_by(|k| k.as_str().cmp(key)).ok()
    }

    /// Station states in index order.
    pub fn stations(&self) -> &[StationState] {
        &self.stations
    }

    /// All edges, sorted by `(from, to)`.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The edges leaving station `i`, sorted by `to`.
    pub fn edges_from(&self, i: usize) -> &[Edge] {
        &self.edges[self.out[i]..self.out[i + 1]]
    }

    /// The edge `from → to`, if there is one.
    pub fn edge(&self, from: usize, to: usize) -> Option<&Edge> {
        let out = self.edges_from(from);
        out.binary_search_by_key(&to, |e| e.to).ok().map(|i| &out[i])
    }

    /// The index (into [`Network::edges`]) of the edge `from → to`.
    pub fn edge_index(&self, from: usize, to: usize) -> Option<usize> {
        let out = self.edges_from(from);
        out.binary_search_by_key(&to, |e| e.to).ok().map(|i| self.out[from] + i)
    }

    /// The effort limits.
    pub fn effort(&self) -> &Effort {
        &self.effort
    }
}

fn check_targets(input: &PolicyInput, problems: &mut Vec<Violation>) {
    let t = &input.targets;
    for (field, value) in [("alpha", t.alpha), ("beta", t.beta)] {
        if !value.is_finite() || !(0.0..=1.0).contains(&value) {
            problems.push(Violation::new(
                "input.bad_target",
                format!("targets.{field}"),
                format!("must be a fraction within 0..=1, got {value}"),
            ));
        }
    }
    if t.alpha > t.beta {
        problems.push(Violation::new(
            "input.bad_target",
            "targets.alpha",
            format!("alpha {} is above beta {}; the band would be empty", t.alpha, t.beta),
        ));
    }
}

fn band_ceil(x: f64) -> u32 {
    let nearest = x.round();
    let value = if (x - nearest).abs() < BAND_TOLERANCE { nearest } else { x.ceil() };
    value.clamp(0.0, f64::from(u32::MAX)) as u32
}

fn band_floor(x: f64) -> u32 {
    let nearest = x.round();
    let value = if (x - nearest).abs() < BAND_TOLERANCE { nearest } else { x.floor() };
    value.clamp(0.0, f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_rounding_forgives_float_noise() {
        assert_eq!(band_ceil(0.2 * 15.0), 3);
        assert_eq!(band_ceil(0.2 * 16.0), 4);
        assert_eq!(band_floor(0.7 * 10.0), 7);
        assert_eq!(band_floor(0.8 * 19.0), 15);
    }
}
