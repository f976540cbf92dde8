//! The capped problem: `max_moves` and `max_stations_touched` turn the
//! transfer flow into a fixed-charge problem (each used edge costs a move,
//! each touched station a touch). It is NP-hard in general, so
//! `rebal.global.v1` solves it by *selecting stations, then solving exactly
//! on the selection*:
//!
//! 1. **Seeds.** Six deterministic constructions each pick a set of
//!    edges that fits both caps: greedy's, the original system's
//!    bikes-per-metre rule, largest transfer first, most bikes per newly
//!    touched station, the uncapped optimum's largest transfers, and whole
//!    stars (one donor and its receivers, or one receiver and its donors)
//!    by bikes per newly touched station. The rule-based ones recompute
//!    every candidate's transfer `x = min(excess, need, budget left)` each
//!    round from the current state and take the best by their key (ties:
//!    shorter edge, then from key, then to key).
//! 2. **Exact flow on the selection.** A seed's touched stations define a
//!    station set; the min-cost max-flow on *every* transfer edge inside
//!    that set is solved, and if it uses more than `max_moves` edges its
//!    largest transfers are kept (ties: shorter, then edge order) and the
//!    flow is re-solved on them. A seed's own edges are re-solved too; the
//!    better of the two is the seed's value.
//! 3. **Local search** on the best seed's station set. A round first tries
//!    station swaps: remove the station carrying least flow (ties: lower
//!    index) and add the outside station or donor→receiver pair with the
//!    largest estimated gain (`min(own excess or need, what its neighbours
//!    in the set still need or offer)`, ties: lower index). When none
//!    improves it rebuilds: drop one component of the plan (stations
//!    joined by its moves), or two of its five smallest, and refill the
//!    freed touches star by star. Each try is re-solved exactly and kept
//!    only when it delivers strictly more bikes, or as many for strictly
//!    less distance. The search stops at the first round without
//!    improvement, or after [`MAX_ROUNDS`] rounds.
//!
//! The touch cap is what binds on real snapshots (the plans touch all 30
//! stations with 17–19 of the 20 moves), and the exact optimum differs from
//! a swap-local one by whole stars: a donor with much excess feeding two or
//! three receivers pays its own touch back. Stars and rebuilds took the
//! Bay Wheels week from 96.4 % to 99.1 % of the exact optimum
//! (BENCHMARKS.md).
//!
//! Every candidate is compared by (bikes delivered descending, Σ bikes·mm
//! ascending); among equals the earlier one in the order above is kept.
//! Greedy and the bikes-per-metre rule are seeds, so the result never
//! delivers fewer bikes than either.
//!
//! [`upper_bound`] proves how far the result can be from the capped
//! optimum: no plan delivers more than the uncapped optimum, than the best
//! `max_moves` edge transfers together, or than the touched donors can give
//! and the touched receivers can take when at most `max_stations_touched`
//! stations are touched.

use crate::global::{Solution, solve};
use crate::network::Network;
use crate::validate::Ledger;

/// Local search gives up after this many improving rounds.
pub const MAX_ROUNDS: usize = 24;

/// Removal candidates tried per round (least flow first).
const REMOVALS: usize = 3;

/// Additions tried per removal (largest estimated gain first).
const ADDITIONS: usize = 4;

/// Rebuilds drop pairs among this many smallest components.
const PAIRED_COMPONENTS: usize = 5;

/// The constructions a capped plan can come from, in tie order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    /// `rebal.greedy.v1`'s moves.
    Greedy,
    /// The original system's rule: most bikes per metre.
    PerMetre,
    /// Largest transfer first.
    Largest,
    /// Most bikes per newly touched station.
    PerTouch,
    /// The uncapped optimum's largest transfers.
    Optimum,
    /// Whole stars, most bikes per newly touched station first.
    Stars,
}

impl Seed {
    /// The diagnostic label.
    pub fn label(self) -> &'static str {
        match self {
            Seed::Greedy => "greedy",
            Seed::PerMetre => "bikes_per_metre",
            Seed::Largest => "largest_transfer",
            Seed::PerTouch => "bikes_per_touch",
            Seed::Optimum => "uncapped_optimum",
            Seed::Stars => "stars",
        }
    }
}

/// The result of the capped search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capped {
    /// The best plan found; it fits both caps.
    pub solution: Solution,
    /// The seed the search started from.
    pub seed: Seed,
    /// Improving local-search rounds.
    pub rounds: usize,
    /// A proven upper bound on the capped optimum's bikes.
    pub bound: u64,
}

/// True when `a` is strictly better than `b`: more bikes, or as many for
/// less distance.
fn better(a: &Solution, b: &Solution) -> bool {
    (a.delivered, std::cmp::Reverse(a.cost_mm)) > (b.delivered, std::cmp::Reverse(b.cost_mm))
}

/// Solves the capped problem, starting from the uncapped `optimum` (which
/// does not fit the caps) and greedy's edges.
pub fn solve_capped(network: &Network, transfer: &[usize], optimum: &Solution, greedy_edges: &[usize]) -> Capped {
    let bound = upper_bound(network, transfer, optimum.delivered);
    let index = Index::new(network, transfer);
    let seeds = [
        (Seed::Greedy, greedy_edges.to_vec()),
        (Seed::PerMetre, rule_greedy(network, transfer, Rule::PerMetre).0),
        (Seed::Largest, rule_greedy(network, transfer, Rule::Largest).0),
        (Seed::PerTouch, rule_greedy(network, transfer, Rule::PerTouch).0),
        (Seed::Optimum, crate::global::largest_fitting(network, optimum)),
        (Seed::Stars, star_greedy_from(network, &index, &[])),
    ];
    let mut best: Option<(Solution, Seed)> = None;
    for (seed, edges) in seeds {
        let candidate = on_edges(network, &index, &edges);
        if best.as_ref().is_none_or(|(b, _)| better(&candidate, b)) {
            best = Some((candidate, seed));
        }
    }
    let Some((mut solution, seed)) = best else {
        unreachable!("six seeds were evaluated");
    };
    let mut rounds = 0;
    while rounds < MAX_ROUNDS && solution.delivered < bound {
        match improve(network, &index, &solution).or_else(|| rebuild(network, &index, &solution)) {
            Some(next) => {
                solution = next;
                rounds += 1;
            }
            None => break,
        }
    }
    Capped { solution, seed, rounds, bound }
}

/// A seed's value: the better of re-solving on its own edges and the exact
/// flow on its station set.
fn on_edges(network: &Network, index: &Index, edges: &[usize]) -> Solution {
    let own = fit(network, solve(network, edges));
    let mut set = vec![false; network.len()];
    for &e in edges {
        set[network.edges()[e].from] = true;
        set[network.edges()[e].to] = true;
    }
    let induced = on_set(network, index, &set);
    if better(&induced, &own) { induced } else { own }
}

/// The exact flow on every transfer edge inside a station set, trimmed to
/// `max_moves`.
fn on_set(network: &Network, index: &Index, set: &[bool]) -> Solution {
    // Stations ascending, each one's edges ascending: the edge list is in
    // edge order, as `solve` expects.
    let edges: Vec<usize> = (0..network.len())
        .filter(|&s| set[s])
        .flat_map(|s| index.out[s].iter().copied().filter(|&e| set[network.edges()[e].to]))
        .collect();
    fit(network, solve(network, &edges))
}

/// Makes a flow fit `max_moves` (a flow on a station set within the touch
/// cap already fits that): keep its largest transfers and re-solve.
fn fit(network: &Network, solution: Solution) -> Solution {
    if solution.fits_caps(network) {
        return solution;
    }
    solve(network, &crate::global::largest_fitting(network, &solution))
}

/// One local-search round: the first strictly better swap, or add when the
/// touch cap leaves room.
fn improve(network: &Network, index: &Index, current: &Solution) -> Option<Solution> {
    let cap = network.effort().max_stations_touched as usize;
    let mut set = vec![false; network.len()];
    let mut through = vec![0u64; network.len()];
    for &(e, f) in &current.flows {
        let edge = &network.edges()[e];
        set[edge.from] = true;
        set[edge.to] = true;
        through[edge.from] += u64::from(f);
        through[edge.to] += u64::from(f);
    }
    let size = set.iter().filter(|&&s| s).count();
    let mut removals: Vec<Option<usize>> = Vec::new();
    if size < cap {
        removals.push(None);
    }
    let mut members: Vec<usize> = (0..network.len()).filter(|&s| set[s]).collect();
    members.sort_by_key(|&s| (through[s], s));
    removals.extend(members.iter().take(REMOVALS).map(|&s| Some(s)));
    for removed in removals {
        let mut trial_set = set.clone();
        if let Some(r) = removed {
            trial_set[r] = false;
        }
        let trial_size = size - usize::from(removed.is_some());
        let base = on_set(network, index, &trial_set);
        for addition in additions(network, index, &trial_set, &base, cap - trial_size) {
            let mut next = trial_set.clone();
            for s in addition {
                next[s] = true;
            }
            let candidate = on_set(network, index, &next);
            if better(&candidate, current) {
                return Some(candidate);
            }
        }
    }
    None
}

/// A larger step, tried when no station swap improves: drop one of the
/// plan's components (stations joined by its moves; least bikes first,
/// ties: lowest edge index), or two of its five smallest, refill the freed
/// touches from what is left by the bikes-per-touch rule and by the
/// largest-transfer rule, and solve each result exactly on its station
/// set. The first strictly better plan is returned.
///
/// With the touch cap full a one-station swap rarely helps: the exact
/// optimum differs by whole stars (a donor with much excess feeding two or
/// three receivers) that only a rebuild of several stations finds.
fn rebuild(network: &Network, index: &Index, current: &Solution) -> Option<Solution> {
    let components = components(network, current);
    let mut drops: Vec<Vec<usize>> = (0..components.len()).map(|c| vec![c]).collect();
    let small = components.len().min(PAIRED_COMPONENTS);
    for a in 0..small {
        for b in a + 1..small {
            drops.push(vec![a, b]);
        }
    }
    for drop in drops {
        let kept: Vec<(usize, u32)> = components
            .iter()
            .enumerate()
            .filter(|(c, _)| !drop.contains(c))
            .flat_map(|(_, (_, flows))| flows.iter().copied())
            .collect();
        let candidate = on_edges(network, index, &star_greedy_from(network, index, &kept));
        if better(&candidate, current) {
            return Some(candidate);
        }
    }
    None
}

/// Builds moves star by star from the moves `start`: each round takes the
/// star (one donor and its receivers, or one receiver and its donors, the
/// largest transfers first) whose bikes per newly touched station are
/// highest, among stars within the move and touch caps, until none adds
/// bikes. A touch-free star beats all; ties go to more bikes, then to the
/// lower edge list. Centres are examined touched ones first, then by the
/// best ratio they could reach (their own bikes over the touches they must
/// pay), then by index, and the scan stops at the first centre that cannot
/// beat the best star, which also settles ties the scan did not reach.
/// Where the rules above judge an edge alone, this sees that a donor with
/// much excess pays its own touch back over several receivers. Returns the
/// edges used, ascending.
fn star_greedy_from(network: &Network, index: &Index, start: &[(usize, u32)]) -> Vec<usize> {
    let effort = network.effort();
    let edges = network.edges();
    let (mut ledger, mut used) = ledger_from(network, start);
    loop {
        let moves_left = (effort.max_moves as usize).saturating_sub(used.len());
        let budget = ledger.remaining_budget();
        if moves_left == 0 || budget == 0 {
            break;
        }
        // Centres: touched ones first, then by what they can give or take,
        // most first, so the scan can stop once no centre left can beat
        // the best star (a star around an untouched centre costs at least
        // one touch and moves at most the centre's own bikes).
        // An untouched centre none of whose arms reaches a touched station
        // pays at least two touches.
        let mut near_touched = vec![false; network.len()];
        for t in (0..network.len()).filter(|&t| ledger.is_touched(t)) {
            for &e in index.out[t].iter().chain(&index.into[t]) {
                near_touched[edges[e].from] = true;
                near_touched[edges[e].to] = true;
            }
        }
        // (touched, own, least touches, centre, donor side)
        let mut centres: Vec<(bool, u32, u64, usize, bool)> = (0..network.len())
            .flat_map(|c| [(c, true), (c, false)])
            .filter_map(|(c, donor_side)| {
                let (own, arms) =
                    if donor_side { (ledger.excess(c), &index.out[c]) } else { (ledger.need(c), &index.into[c]) };
                let touched = ledger.is_touched(c);
                let least = if touched {
                    0
                } else if near_touched[c] {
                    1
                } else {
                    2
                };
                (own > 0 && !arms.is_empty()).then_some((touched, own, least, c, donor_side))
            })
            .collect();
        // Touched centres first, then by the best ratio they could reach.
        centres.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then((u64::from(b.1) * a.2.max(1)).cmp(&(u64::from(a.1) * b.2.max(1))))
                .then(a.3.cmp(&b.3))
                .then(b.4.cmp(&a.4))
        });
        // (bikes, touches, edges) of the best star so far.
        let mut best: Option<(u64, u64, Vec<usize>)> = None;
        for (touched, own, least, centre, donor_side) in centres {
            if let (false, Some((b, t, _))) = (touched, &best)
                && (*t == 0 || u64::from(own) * t <= *b * least)
            {
                break;
            }
            {
                let arms = if donor_side { &index.out[centre] } else { &index.into[centre] };
                let mut options: Vec<(u32, u32, usize)> = arms
                    .iter()
                    .filter(|e| used.binary_search(e).is_err())
                    .filter_map(|&e| {
                        let other = if donor_side { edges[e].to } else { edges[e].from };
                        let room = if donor_side { ledger.need(other) } else { ledger.excess(other) };
                        (room > 0).then(|| (room, u32::from(!ledger.is_touched(other)), e))
                    })
                    .collect();
                // Only the largest `moves_left` arms can be in a star.
                let order = |a: &(u32, u32, usize), b: &(u32, u32, usize)| {
                    b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
                };
                if options.len() > moves_left {
                    options.select_nth_unstable_by(moves_left - 1, order);
                    options.truncate(moves_left);
                }
                options.sort_by(order);
                let mut touches = u64::from(!ledger.is_touched(centre));
                let (mut room, mut star) = (0u64, Vec::new());
                for (other_room, new, e) in options {
                    touches += u64::from(new);
                    if u64::from(ledger.touched_count()) + touches > u64::from(effort.max_stations_touched) {
                        break;
                    }
                    room += u64::from(other_room);
                    star.push(e);
                    let bikes = room.min(u64::from(own)).min(budget);
                    let wins = match &best {
                        None => true,
                        Some((b, t, edges)) => {
                            // Bikes per touch (a touch-free star above
                            // all), then more bikes, then lower edges.
                            let (b, t) = (*b, *t);
                            (touches == 0)
                                .cmp(&(t == 0))
                                .then((bikes * t.max(1)).cmp(&(b * touches.max(1))))
                                .then(bikes.cmp(&b))
                                .then(edges.cmp(&star))
                                .is_gt()
                        }
                    };
                    if bikes > 0 && wins {
                        best = Some((bikes, touches, star.clone()));
                    }
                }
            }
        }
        let Some((_, _, star)) = best else { break };
        for e in star {
            let (from, to) = (edges[e].from, edges[e].to);
            let x = ledger.excess(from).min(ledger.need(to));
            let x = u64::from(x).min(ledger.remaining_budget()) as u32;
            if x > 0 {
                ledger.apply(from, to, x);
                let at = used.binary_search(&e).unwrap_or_else(|i| i);
                used.insert(at, e);
            }
        }
    }
    used.sort_unstable();
    used.dedup();
    used
}

/// A ledger with the moves `start` (edge, bikes) applied, and their edges,
/// ascending.
fn ledger_from<'n>(network: &'n Network, start: &[(usize, u32)]) -> (Ledger<'n>, Vec<usize>) {
    let mut ledger = Ledger::new(network);
    for &(e, f) in start {
        ledger.apply(network.edges()[e].from, network.edges()[e].to, f);
    }
    let mut used: Vec<usize> = start.iter().map(|&(e, _)| e).collect();
    used.sort_unstable();
    (ledger, used)
}

/// The plan's components: its moves grouped by shared stations, each with
/// its bikes, ordered by bikes ascending, then by lowest edge index.
fn components(network: &Network, plan: &Solution) -> Vec<(u64, Vec<(usize, u32)>)> {
    let mut parent: Vec<usize> = (0..plan.flows.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..plan.flows.len() {
        for j in 0..i {
            let (a, b) = (&network.edges()[plan.flows[i].0], &network.edges()[plan.flows[j].0]);
            if a.from == b.from || a.to == b.to {
                let (ri, rj) = (root(&mut parent, i), root(&mut parent, j));
                parent[ri.max(rj)] = ri.min(rj);
            }
        }
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<(usize, u32)>> = std::collections::BTreeMap::new();
    for i in 0..plan.flows.len() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(plan.flows[i]);
    }
    let mut out: Vec<(u64, Vec<(usize, u32)>)> =
        groups.into_values().map(|flows| (flows.iter().map(|&(_, f)| u64::from(f)).sum(), flows)).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1[0].0.cmp(&b.1[0].0)));
    out
}

/// Transfer edges indexed for the local search.
struct Index {
    /// Transfer edges into each station.
    into: Vec<Vec<usize>>,
    /// Transfer edges out of each station.
    out: Vec<Vec<usize>>,
    /// Transfer edges by starting transfer `min(excess, need)` descending,
    /// then edge order.
    by_size: Vec<(u64, usize)>,
}

impl Index {
    fn new(network: &Network, transfer: &[usize]) -> Self {
        let stations = network.stations();
        let (mut into, mut out) = (vec![Vec::new(); network.len()], vec![Vec::new(); network.len()]);
        let mut by_size = Vec::with_capacity(transfer.len());
        for &e in transfer {
            let edge = &network.edges()[e];
            into[edge.to].push(e);
            out[edge.from].push(e);
            let (u, v) = (&stations[edge.from], &stations[edge.to]);
            by_size.push((u64::from(u.excess(u.bikes).min(v.need(v.bikes))), e));
        }
        by_size.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        Index { into, out, by_size }
    }
}

/// The stations (one, or a donor→receiver pair when `room` ≥ 2) outside
/// `set` worth adding, largest estimated gain per added station first
/// (ties: lower station indices), at most [`ADDITIONS`].
fn additions(network: &Network, index: &Index, set: &[bool], base: &Solution, room: usize) -> Vec<Vec<usize>> {
    if room == 0 {
        return Vec::new();
    }
    let stations = network.stations();
    let mut out_flow = vec![0u64; network.len()];
    let mut in_flow = vec![0u64; network.len()];
    for &(e, f) in &base.flows {
        out_flow[network.edges()[e].from] += u64::from(f);
        in_flow[network.edges()[e].to] += u64::from(f);
    }
    let left = u64::from(network.effort().bike_move_budget_per_step).saturating_sub(base.delivered);
    let spare = |s: usize| u64::from(stations[s].excess(stations[s].bikes)).saturating_sub(out_flow[s]);
    let short = |s: usize| u64::from(stations[s].need(stations[s].bikes)).saturating_sub(in_flow[s]);
    // Gains are doubled per station so that a pair's gain compares per
    // station touched.
    let mut offered: std::collections::BTreeMap<usize, u64> = std::collections::BTreeMap::new();
    for s in (0..network.len()).filter(|&s| set[s]) {
        for &e in &index.out[s] {
            let to = network.edges()[e].to;
            if !set[to] {
                *offered.entry(to).or_default() += spare(s);
            }
        }
        for &e in &index.into[s] {
            let from = network.edges()[e].from;
            if !set[from] {
                *offered.entry(from).or_default() += short(s);
            }
        }
    }
    let mut gains: Vec<(u64, Vec<usize>)> = offered
        .into_iter()
        .map(|(s, offer)| (2 * spare(s).max(short(s)).min(offer).min(left), vec![s]))
        .filter(|(g, _)| *g > 0)
        .collect();
    if room >= 2 {
        let pairs = index
            .by_size
            .iter()
            .map(|&(x, e)| (x, &network.edges()[e]))
            .filter(|(_, edge)| !set[edge.from] && !set[edge.to])
            .take(ADDITIONS)
            .map(|(x, edge)| (x.min(left), vec![edge.from, edge.to]));
        gains.extend(pairs.filter(|(g, _)| *g > 0));
    }
    gains.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    gains.truncate(ADDITIONS);
    gains.into_iter().map(|(_, s)| s).collect()
}

/// Bikes the original system's bikes-per-metre rule delivers: the
/// baseline `rebal.global.v1` never falls below.
pub fn per_metre_bikes(network: &Network) -> u64 {
    let transfer = crate::global::transfer_edges(network);
    rule_greedy(network, &transfer, Rule::PerMetre).1
}

/// The rule-based constructions.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Most `x / max(1, dist_m)` (the original system's global rule).
    PerMetre,
    /// Largest `x`, then fewer new stations.
    Largest,
    /// Most `x` per newly touched station; an edge between touched stations
    /// comes first.
    PerTouch,
}

/// Builds moves by a rule, recomputing every candidate's transfer each
/// round, until the budget, the move cap or the candidates run out; returns
/// the edges used, ascending, and the bikes moved.
fn rule_greedy(network: &Network, transfer: &[usize], rule: Rule) -> (Vec<usize>, u64) {
    rule_greedy_from(network, transfer, rule, &[])
}

/// [`rule_greedy`] continuing from the moves `start` (edge, bikes).
fn rule_greedy_from(network: &Network, transfer: &[usize], rule: Rule, start: &[(usize, u32)]) -> (Vec<usize>, u64) {
    let effort = network.effort();
    let edges = network.edges();
    let (mut ledger, mut used) = ledger_from(network, start);
    while ledger.remaining_budget() > 0 && (used.len() as u64) < u64::from(effort.max_moves) {
        let mut best: Option<(usize, u64, u32)> = None;
        for &c in transfer {
            let e = &edges[c];
            let x = u64::from(ledger.excess(e.from).min(ledger.need(e.to))).min(ledger.remaining_budget());
            if x == 0 {
                continue;
            }
            let new = ledger.new_stations(e.from, e.to);
            if ledger.touched_count() + new > effort.max_stations_touched {
                continue;
            }
            let wins = match best {
                None => true,
                Some((b, bx, bnew)) => prefer(rule, (e.dist_m, x, new), (edges[b].dist_m, bx, bnew)).is_lt(),
            };
            if wins {
                best = Some((c, x, new));
            }
        }
        let Some((c, x, _)) = best else { break };
        ledger.apply(edges[c].from, edges[c].to, x as u32);
        used.push(c);
    }
    used.sort_unstable();
    used.dedup();
    (used, ledger.moved())
}

/// Orders two candidates `(dist_m, x, new stations)` by a rule; `Less`
/// means the first is preferred. Equal keys keep the earlier edge (edge
/// order is from key, then to key).
fn prefer(rule: Rule, a: (f64, u64, u32), b: (f64, u64, u32)) -> std::cmp::Ordering {
    let by_dist = a.0.total_cmp(&b.0);
    match rule {
        Rule::PerMetre => {
            let (ea, eb) = (a.1 as f64 / a.0.max(1.0), b.1 as f64 / b.0.max(1.0));
            eb.total_cmp(&ea).then(by_dist).then(b.1.cmp(&a.1))
        }
        Rule::Largest => b.1.cmp(&a.1).then(a.2.cmp(&b.2)).then(by_dist),
        Rule::PerTouch => {
            // x_a / new_a versus x_b / new_b, with new = 0 ranked above all.
            let key = |(_, x, new): (f64, u64, u32)| (new == 0, if new == 0 { x } else { 0 });
            key(b).cmp(&key(a)).then((a.1 * u64::from(b.2)).cmp(&(b.1 * u64::from(a.2))).reverse()).then(by_dist)
        }
    }
}

/// A proven upper bound on the bikes any plan within the caps delivers:
/// the least of the uncapped optimum, the `max_moves` largest single-edge
/// transfers added up, and the best split of `max_stations_touched`
/// touches between donors (largest excess first) and receivers (largest
/// need first), each side counting only stations with a transfer edge.
pub fn upper_bound(network: &Network, transfer: &[usize], uncapped: u64) -> u64 {
    let stations = network.stations();
    let effort = network.effort();
    let mut per_edge: Vec<u64> = transfer
        .iter()
        .map(|&e| {
            let edge = &network.edges()[e];
            let (u, v) = (&stations[edge.from], &stations[edge.to]);
            u64::from(u.excess(u.bikes).min(v.need(v.bikes)))
        })
        .collect();
    per_edge.sort_unstable_by(|a, b| b.cmp(a));
    let by_moves: u64 = per_edge.iter().take(effort.max_moves as usize).sum();

    let (mut donors, mut receivers) = (vec![false; network.len()], vec![false; network.len()]);
    for &e in transfer {
        donors[network.edges()[e].from] = true;
        receivers[network.edges()[e].to] = true;
    }
    let prefix = |flags: &[bool], value: &dyn Fn(usize) -> u32| {
        let mut v: Vec<u64> = (0..flags.len()).filter(|&s| flags[s]).map(|s| u64::from(value(s))).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        let mut sums = vec![0u64];
        for x in v {
            sums.push(sums.last().copied().unwrap_or(0) + x);
        }
        sums
    };
    let give = prefix(&donors, &|s| stations[s].excess(stations[s].bikes));
    let take = prefix(&receivers, &|s| stations[s].need(stations[s].bikes));
    let touches = effort.max_stations_touched as usize;
    let by_touches = (0..=touches)
        .map(|d| {
            let g = give[d.min(give.len() - 1)];
            let t = take[(touches - d).min(take.len() - 1)];
            g.min(t)
        })
        .max()
        .unwrap_or(0);
    uncapped.min(by_moves).min(by_touches)
}
