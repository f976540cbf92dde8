//! Min-cost flow by successive shortest paths with Dijkstra and node
//! potentials.
//!
//! Costs and capacities are integers, so the result is exact and the same
//! on every machine. After pushing `k` units the flow is a minimum-cost flow
//! of value `k`; stopping at a limit therefore gives the cheapest flow of
//! the largest value up to that limit. Ties are broken by the order arcs
//! were added: Dijkstra pops the smallest `(distance, node)` and keeps the
//! first predecessor that reaches a node at its final distance.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Capacity meaning "unbounded" (large, but safe to add to).
pub const INFINITE: i64 = i64::MAX / 4;

#[derive(Debug, Clone, Copy)]
struct Arc {
    to: usize,
    cap: i64,
    cost: i64,
}

/// A flow network with integer capacities and non-negative costs.
#[derive(Debug, Clone, Default)]
pub struct FlowGraph {
    arcs: Vec<Arc>,
    adjacency: Vec<Vec<usize>>,
    original_cap: Vec<i64>,
}

/// The result of [`FlowGraph::min_cost_flow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowResult {
    /// Units sent from source to sink.
    pub flow: i64,
    /// Total cost of the flow.
    pub cost: i128,
}

impl FlowGraph {
    /// A graph with `nodes` nodes and no arcs.
    pub fn new(nodes: usize) -> Self {
        FlowGraph { arcs: Vec::new(), adjacency: vec![Vec::new(); nodes], original_cap: Vec::new() }
    }

    /// Adds an arc and returns its id. `cost` must be non-negative.
    pub fn add_arc(&mut self, from: usize, to: usize, cap: i64, cost: i64) -> usize {
        let id = self.arcs.len();
        self.arcs.push(Arc { to, cap, cost });
        self.arcs.push(Arc { to: from, cap: 0, cost: -cost });
        self.adjacency[from].push(id);
        self.adjacency[to].push(id + 1);
        self.original_cap.push(cap);
        id
    }

    /// Flow currently on arc `id`.
    pub fn flow(&self, id: usize) -> i64 {
        self.original_cap[id / 2] - self.arcs[id].cap
    }

    /// Sends up to `limit` units from `source` to `sink` at minimum cost.
    pub fn min_cost_flow(&mut self, source: usize, sink: usize, limit: i64) -> FlowResult {
        let n = self.adjacency.len();
        let mut potential = vec![0i64; n];
        let mut result = FlowResult { flow: 0, cost: 0 };
        let mut dist = vec![INFINITE; n];
        let mut via = vec![usize::MAX; n];
        while result.flow < limit {
            dist.fill(INFINITE);
            via.fill(usize::MAX);
            dist[source] = 0;
            let mut heap = BinaryHeap::new();
            heap.push(Reverse((0i64, source)));
            while let Some(Reverse((d, u))) = heap.pop() {
                if d > dist[u] {
                    continue;
                }
                // Nodes farther than the sink cannot shorten this path; their
                // potentials are capped at the sink's distance below, which
                // keeps every residual reduced cost non-negative.
                if u == sink {
                    break;
                }
                for &id in &self.adjacency[u] {
                    let arc = self.arcs[id];
                    if arc.cap <= 0 {
                        continue;
                    }
                    let next = d + arc.cost + potential[u] - potential[arc.to];
                    if next < dist[arc.to] {
                        dist[arc.to] = next;
                        via[arc.to] = id;
                        heap.push(Reverse((next, arc.to)));
                    }
                }
            }
            if dist[sink] >= INFINITE {
                break;
            }
            for v in 0..n {
                // Nodes settled before the sink move by their distance, all
                // others by the sink's: the standard truncated update.
                potential[v] += dist[v].min(dist[sink]);
            }
            let mut push = limit - result.flow;
            let mut v = sink;
            while v != source {
                let id = via[v];
                push = push.min(self.arcs[id].cap);
                v = self.arcs[id ^ 1].to;
            }
            let mut v = sink;
            while v != source {
                let id = via[v];
                self.arcs[id].cap -= push;
                self.arcs[id ^ 1].cap += push;
                result.cost += i128::from(push) * i128::from(self.arcs[id].cost);
                v = self.arcs[id ^ 1].to;
            }
            result.flow += push;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_cheaper_of_two_paths_first() {
        // 0 → 1 → 3 costs 2, 0 → 2 → 3 costs 5; each path carries 1 unit.
        let mut g = FlowGraph::new(4);
        let a = g.add_arc(0, 1, 1, 1);
        g.add_arc(1, 3, 1, 1);
        let b = g.add_arc(0, 2, 1, 2);
        g.add_arc(2, 3, 1, 3);
        assert_eq!(g.min_cost_flow(0, 3, 1), FlowResult { flow: 1, cost: 2 });
        assert_eq!((g.flow(a), g.flow(b)), (1, 0));
        assert_eq!(g.min_cost_flow(0, 3, 10), FlowResult { flow: 1, cost: 5 });
    }

    #[test]
    fn reroutes_through_residual_arcs_when_that_is_cheaper_overall() {
        // The classic case where the first shortest path must be undone.
        let mut g = FlowGraph::new(4);
        g.add_arc(0, 1, 1, 1);
        g.add_arc(0, 2, 1, 5);
        g.add_arc(1, 2, 1, 1);
        g.add_arc(1, 3, 1, 5);
        g.add_arc(2, 3, 1, 1);
        let r = g.min_cost_flow(0, 3, 2);
        assert_eq!(r, FlowResult { flow: 2, cost: 12 });
    }
}
