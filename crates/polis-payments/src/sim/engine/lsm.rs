//! The liquidity-saving mechanism, as SimCash's `run_lsm_pass_with_deferred`
//! (`simulator/src/settlement/lsm.rs`, `lsm/pair_index.rs`,
//! `lsm/graph.rs`): up to three rounds of bilateral offsetting and cycle
//! settlement while value settles.
//!
//! Two of SimCash's quirks decide which cycles settle, and are kept:
//! triangles are found only in ascending order of agent id (`u → v → w → u`
//! with `u < v < w`: the other orientation of the same three agents is never
//! tried), and a cycle that cannot settle still uses one of the
//! `max_cycles_per_tick` places.

use std::collections::{BTreeMap, BTreeSet};

use super::{Event, Sim, TickStats};

/// SimCash skips the search for cycles of four or more payments when queue 2
/// holds more than this (`DFS_QUEUE_THRESHOLD` in `detect_cycles`).
const DFS_QUEUE_THRESHOLD: usize = 100;
/// SimCash's `MAX_ITERATIONS`.
const MAX_ROUNDS: usize = 3;

/// A cycle found in queue 2: the payments that settle together if it is
/// feasible, and the value SimCash orders cycles by.
struct Cycle {
    /// The agents around the cycle, by rank, starting where it was found.
    agents: Vec<usize>,
    txs: Vec<usize>,
    total_value: i64,
}

impl Sim {
    /// SimCash's `run_lsm_pass_with_deferred`.
    pub(super) fn lsm(&mut self, tick: usize, mut deferred: Option<&mut BTreeMap<usize, i64>>, stats: &mut TickStats) {
        let config = self.scenario.lsm_config.clone();
        let mut total: i64 = 0;
        for _ in 0..MAX_ROUNDS {
            if self.q2.is_empty() {
                break;
            }
            let before = total;
            if config.enable_bilateral {
                let (offset_value, settlements) = self.bilateral(tick, deferred.as_deref_mut(), stats);
                total += offset_value;
                if settlements > 0 {
                    // SimCash's queue pass here is never deferred.
                    total += self.process_queue(tick, None, stats);
                }
            }
            if config.enable_cycles && !self.q2.is_empty() {
                let cycles = self.detect_cycles(config.max_cycle_length);
                let mut settled = BTreeSet::new();
                for cycle in cycles.iter().take(config.max_cycles_per_tick) {
                    total += self.settle_cycle(cycle, tick, deferred.as_deref_mut(), stats, &mut settled);
                }
                if !settled.is_empty() {
                    self.q2.retain(|t| !settled.contains(t));
                }
                if !cycles.is_empty() {
                    total += self.process_queue(tick, None, stats);
                }
            }
            if total == before {
                break;
            }
        }
    }

    /// SimCash's `bilateral_offset_with_deferred`: every pair with queue-2
    /// flow both ways, by liquidity released (descending) then ids. Returns
    /// the offset value (counted even for pairs that could not settle, as
    /// SimCash counts it) and the settlements.
    fn bilateral(
        &mut self,
        tick: usize,
        mut deferred: Option<&mut BTreeMap<usize, i64>>,
        stats: &mut TickStats,
    ) -> (i64, usize) {
        // Flows by (sender rank, receiver rank), queue order within each.
        let mut flows: BTreeMap<(usize, usize), (i64, Vec<usize>)> = BTreeMap::new();
        for &tx in &self.q2 {
            let t = &self.txs[tx];
            let e = flows.entry((self.rank[t.sender], self.rank[t.receiver])).or_insert((0, Vec::new()));
            e.0 += t.remaining;
            e.1.push(tx);
        }
        let mut ready: Vec<(i64, usize, usize)> = Vec::new();
        for (&(a, b), (sum_ab, _)) in &flows {
            if a < b
                && let Some((sum_ba, _)) = flows.get(&(b, a))
                && *sum_ab > 0
                && *sum_ba > 0
            {
                ready.push((-(*sum_ab).min(*sum_ba), a, b));
            }
        }
        ready.sort();
        let mut offset_value = 0;
        let mut settlements = 0;
        let mut removed = BTreeSet::new();
        for (neg, a, b) in ready {
            offset_value += -neg;
            let ab = flows.get(&(a, b)).map(|f| f.1.clone()).unwrap_or_default();
            let ba = flows.get(&(b, a)).map(|f| f.1.clone()).unwrap_or_default();
            let sum = |list: &[usize]| list.iter().map(|&t| self.txs[t].remaining).sum::<i64>();
            let (sum_ab, sum_ba) = (sum(&ab), sum(&ba));
            let net = (sum_ab - sum_ba).abs();
            let net_payer = if sum_ab > sum_ba { self.txs[ab[0]].sender } else { self.txs[ba[0]].sender };
            let payer = &self.agents[net_payer];
            if payer.balance - net < -payer.allowed_overdraft_limit() {
                continue;
            }
            for &tx in ab.iter().chain(ba.iter()) {
                self.transfer(tx, tick, deferred.as_deref_mut(), "lsm_bilateral", stats);
                self.txs[tx].in_q2 = false;
                removed.insert(tx);
                settlements += 1;
            }
        }
        if !removed.is_empty() {
            self.q2.retain(|t| !removed.contains(t));
        }
        (offset_value, settlements)
    }

    /// SimCash's `detect_cycles`: triangles of the aggregated queue-2 graph,
    /// then (when queue 2 is small) cycles of four or more single payments,
    /// ordered by total value descending, ties in the order found.
    fn detect_cycles(&self, max_cycle_length: usize) -> Vec<Cycle> {
        let mut cycles = self.triangles();
        if max_cycle_length >= 4 && self.q2.len() <= DFS_QUEUE_THRESHOLD {
            cycles.extend(self.long_cycles(max_cycle_length).into_iter().filter(|c| c.txs.len() >= 4));
        }
        // A stable sort, as SimCash's `sort_by`.
        cycles.sort_by_key(|c| std::cmp::Reverse(c.total_value));
        cycles
    }

    /// SimCash's `TriangleFinder::find_triangles` over the graph whose edge
    /// `a → b` holds every queue-2 payment from `a` to `b`. Only `u → v → w
    /// → u` with ranks `u < v < w` is looked for. (SimCash first requires a
    /// strongly connected component of three or more agents; any triangle
    /// lies in one, so the check changes nothing and is not repeated.)
    fn triangles(&self) -> Vec<Cycle> {
        let n = self.agents.len();
        let mut edges: BTreeMap<(usize, usize), (i64, Vec<usize>)> = BTreeMap::new();
        for &tx in &self.q2 {
            let t = &self.txs[tx];
            let e = edges.entry((self.rank[t.sender], self.rank[t.receiver])).or_insert((0, Vec::new()));
            e.0 = e.0.saturating_add(t.remaining);
            e.1.push(tx);
        }
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut has = vec![false; n * n];
        for &(a, b) in edges.keys() {
            out[a].push(b);
            has[a * n + b] = true;
        }
        let mut found = Vec::new();
        for u in 0..n {
            for &v in out[u].iter().filter(|&&v| v > u) {
                for &w in out[v].iter().filter(|&&w| w > v) {
                    if has[w * n + u] {
                        let legs = [&edges[&(u, v)], &edges[&(v, w)], &edges[&(w, u)]];
                        found.push(Cycle {
                            agents: vec![u, v, w],
                            txs: legs.iter().flat_map(|leg| leg.1.iter().copied()).collect(),
                            total_value: legs.iter().map(|leg| leg.0).sum(),
                        });
                    }
                }
            }
        }
        found
    }

    /// SimCash's `detect_cycles_dfs`: from each sender in id order, a
    /// depth-first walk over single queue-2 payments (queue order) that
    /// never revisits an agent on its path, closing at the start. The same
    /// cycle is found once from each of its agents, as in SimCash.
    fn long_cycles(&self, max_len: usize) -> Vec<Cycle> {
        let mut graph: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
        for &tx in &self.q2 {
            let t = &self.txs[tx];
            graph.entry(self.rank[t.sender]).or_default().push((self.rank[t.receiver], tx));
        }
        let mut cycles = Vec::new();
        for &start in graph.keys() {
            let mut path = Vec::new();
            let mut on_path = BTreeSet::new();
            self.walk(start, start, &graph, &mut path, &mut on_path, &mut cycles, max_len);
        }
        cycles
    }

    #[expect(clippy::too_many_arguments, reason = "the recursion's state, as SimCash's find_cycles_from_start")]
    fn walk(
        &self,
        start: usize,
        at: usize,
        graph: &BTreeMap<usize, Vec<(usize, usize)>>,
        path: &mut Vec<(usize, usize)>,
        on_path: &mut BTreeSet<usize>,
        cycles: &mut Vec<Cycle>,
        max_len: usize,
    ) {
        if path.len() >= max_len {
            return;
        }
        on_path.insert(at);
        for &(next, tx) in graph.get(&at).map(Vec::as_slice).unwrap_or_default() {
            if next == start && !path.is_empty() {
                let mut txs: Vec<usize> = path.iter().map(|&(_, t)| t).collect();
                txs.push(tx);
                let total_value = txs.iter().map(|&t| self.txs[t].remaining).fold(0i64, i64::saturating_add);
                let agents = std::iter::once(start).chain(path.iter().map(|&(node, _)| node)).collect();
                cycles.push(Cycle { agents, txs, total_value });
            } else if !on_path.contains(&next) {
                path.push((next, tx));
                self.walk(start, next, graph, path, on_path, cycles, max_len);
                path.pop();
            }
        }
        on_path.remove(&at);
    }

    /// SimCash's `settle_cycle_with_deferred`: every payment of the cycle
    /// settles in full, or none does. A cycle holding a payment an earlier
    /// cycle settled is refused; so is one where a net payer lacks the
    /// liquidity for its net outflow or would pass its overdraft limit.
    /// Returns the value settled.
    fn settle_cycle(
        &mut self,
        cycle: &Cycle,
        tick: usize,
        mut deferred: Option<&mut BTreeMap<usize, i64>>,
        stats: &mut TickStats,
        settled: &mut BTreeSet<usize>,
    ) -> i64 {
        if cycle.txs.iter().any(|&t| self.txs[t].remaining == 0) {
            return 0;
        }
        let mut net: BTreeMap<usize, i64> = BTreeMap::new();
        for &t in &cycle.txs {
            let tx = &self.txs[t];
            *net.entry(tx.sender).or_insert(0) -= tx.remaining;
            *net.entry(tx.receiver).or_insert(0) += tx.remaining;
        }
        for (&agent, &position) in &net {
            if position < 0 {
                let a = &self.agents[agent];
                if a.available_liquidity() < -position || a.balance + position < -a.allowed_overdraft_limit() {
                    return 0;
                }
            }
        }
        let mut value = 0;
        for &t in &cycle.txs {
            value += self.txs[t].remaining;
            self.transfer(t, tick, deferred.as_deref_mut(), "lsm_cycle", stats);
            self.txs[t].in_q2 = false;
            settled.insert(t);
        }
        self.emit(|s| Event::LsmCycle {
            tick,
            agents: cycle.agents.iter().map(|&r| s.agents[s.sorted[r]].id.clone()).collect(),
            payments: cycle.txs.len(),
            value,
        });
        value
    }
}
