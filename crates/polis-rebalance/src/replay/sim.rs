//! The event-driven simulator of one policy and one replication.
//!
//! Time is the union of the snapshot times, the decision times, the
//! stochastic demand events and the van arrivals, in seconds. Between two
//! consecutive times the state is constant, so station-seconds are exact.
//! At equal times the order is: snapshot, demand, arrivals, decision.
//!
//! **Stations and gaps.** A station is *active* from a snapshot that
//! lists it until the next snapshot; a station missing from a snapshot
//! has no data and is inactive (not counted, not shown to policies) until
//! it reappears. Its simulated bikes are kept while it is away. The
//! station's *usable docks* are the last observed `bikes + docks` (docks
//! and bikes that are disabled are not usable); a station is *empty* when
//! it has no bike and *full* when its bikes fill its usable docks, which
//! for the observed data is exactly `num_docks_available = 0`.
//!
//! **Moves.** Bikes leave the donor at the decision time. Without travel
//! lag they arrive at once; with lag they arrive `ceil(dist_m / speed)`
//! seconds later. A van that finds fewer free docks than bikes waits at
//! the receiver and docks the rest as docks free up, so moves never create
//! or destroy bikes ([`Ledger`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use polis_core::canonical::{self, Digest};
use serde_json::json;

use super::demand::{Demand, DemandEvent, Kind, is_jump};
use super::kpi::Kpis;
use super::output::{DecisionError, DecisionRecord, MoveRow, TimePoint};
use super::{Progress, ReplayConfig, ReplayError};
use crate::contract::{DecisionSubject, Neighbor, PolicyInput, RebalanceParams, RunKey, Station};
use crate::gbfs::{Feed, StationStatus};
use crate::host::{Decision, Host};
use crate::snapshot::{neighbor_graph, quality};

/// One snapshot inside the window, by local station index.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Its time; the first frame is moved to the window start.
    pub ts: i64,
    /// Rows sorted by local index.
    pub rows: Vec<(u32, StationStatus)>,
}

/// The observed data of a window, shared by every run.
#[derive(Debug)]
pub struct World<'f> {
    /// The feed.
    pub feed: &'f Feed,
    /// Window start (the first frame's time).
    pub start: i64,
    /// Window end, exclusive.
    pub end: i64,
    /// Feed indices of the stations seen in the window, ascending (so in
    /// station-id order); a station's position here is its local index.
    pub stations: Vec<usize>,
    /// Local index by station id.
    pub index: BTreeMap<String, u32>,
    /// The snapshot at or before the start, then every snapshot inside
    /// the window.
    pub frames: Vec<Frame>,
    /// Decision times: bucket boundaries in the window.
    pub decisions: Vec<i64>,
    config_digest: Digest,
}

/// Decision times: every multiple of `bucket_s` in `[from, to)`.
pub fn decision_times(from: i64, to: i64, bucket_s: i64) -> Vec<i64> {
    let first = (from + bucket_s - 1).div_euclid(bucket_s) * bucket_s;
    (0..).map(|i| first + i * bucket_s).take_while(|&t| t < to).collect()
}

impl<'f> World<'f> {
    /// Cuts the window out of the feed; `config` has been prepared.
    pub fn new(feed: &'f Feed, config: &super::ReplayConfig) -> Result<Self, ReplayError> {
        let start = config.from;
        let end = config.to;
        let first = feed.snapshots.partition_point(|s| s.ts <= start).saturating_sub(1);
        let last = feed.snapshots.partition_point(|s| s.ts < end);
        let snapshots = feed.snapshots.get(first..last.max(first)).unwrap_or_default();
        let mut seen = vec![false; feed.stations.len()];
        for snapshot in snapshots {
            for row in &snapshot.rows {
                seen[row.station] = true;
            }
        }
        let stations: Vec<usize> = (0..feed.stations.len()).filter(|&i| seen[i]).collect();
        let mut local = vec![u32::MAX; feed.stations.len()];
        for (l, &i) in stations.iter().enumerate() {
            local[i] = l as u32;
        }
        let index =
            stations.iter().enumerate().map(|(l, &i)| (feed.stations[i].station_id.clone(), l as u32)).collect();
        let frames = snapshots
            .iter()
            .enumerate()
            .map(|(n, s)| Frame {
                ts: if n == 0 { start.max(s.ts) } else { s.ts },
                rows: s.rows.iter().map(|r| (local[r.station], *r)).collect(),
            })
            .collect();
        let mut identity = config.clone();
        identity.policies.clear();
        let config_digest = canonical::digest_of(&json!({
            "system_id": feed.system_id,
            "station_information_last_updated": feed.info_last_updated,
            "config": identity,
        }))
        .map_err(|e| not_canonical("replay configuration", &e))?;
        Ok(World {
            feed,
            start,
            end,
            stations,
            index,
            frames,
            decisions: decision_times(start, end, config.bucket_s),
            config_digest,
        })
    }

    /// The station id of local station `l`.
    pub fn key(&self, l: usize) -> &str {
        &self.feed.stations[self.stations[l]].station_id
    }

    /// The serving view of replication `r`: `rp1-` plus 16 hex digits of
    /// the SHA-256 of the system, its station-information watermark, the
    /// configuration (without the policy list) and `r`. Every input of a
    /// replay is built from this view, so it names it in every run key.
    pub fn serving_view(&self, replication: u32) -> Result<String, ReplayError> {
        let digest = canonical::digest_of(&json!({"config": self.config_digest, "replication": replication}))
            .map_err(|e| not_canonical("serving view", &e))?;
        Ok(format!("rp1-{}", &digest.to_hex()[..16]))
    }
}

/// Bikes in and out of the simulated system, to check conservation: at
/// any time `held() == entered + returns - rentals`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Bikes found at stations when they were first observed.
    pub entered: u64,
    /// Returns that docked.
    pub returns: u64,
    /// Rentals that found a bike.
    pub rentals: u64,
    /// Docked bikes at the end.
    pub docked: u64,
    /// Bikes in vans on the road at the end.
    pub in_transit: u64,
    /// Bikes in vans waiting for a free dock at the end.
    pub waiting: u64,
}

impl Ledger {
    /// Every bike the simulation holds.
    pub fn held(&self) -> u64 {
        self.docked + self.in_transit + self.waiting
    }

    /// Whether no bike was created or destroyed.
    pub fn balanced(&self) -> bool {
        self.held() + self.rentals == self.entered + self.returns
    }
}

/// Everything one run produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The policy version.
    pub policy: String,
    /// The replication, from 0.
    pub replication: u32,
    /// Its key figures.
    pub kpis: Kpis,
    /// One record per decision.
    pub records: Vec<DecisionRecord>,
    /// Every applied move.
    pub moves: Vec<MoveRow>,
    /// Station counts at every decision time, before deciding.
    pub timeseries: Vec<TimePoint>,
    /// The bike ledger.
    pub ledger: Ledger,
}

struct State {
    bikes: Vec<u32>,
    usable: Vec<u32>,
    active: Vec<bool>,
    last: Vec<Option<StationStatus>>,
    waiting: Vec<u32>,
    waiting_total: u64,
    in_transit: u64,
    touched: Vec<bool>,
    ledger: Ledger,
    kpis: Kpis,
}

impl State {
    fn new(n: usize) -> Self {
        State {
            bikes: vec![0; n],
            usable: vec![0; n],
            active: vec![false; n],
            last: vec![None; n],
            waiting: vec![0; n],
            waiting_total: 0,
            in_transit: 0,
            touched: vec![false; n],
            ledger: Ledger::default(),
            kpis: Kpis::default(),
        }
    }

    fn is_full(&self, l: usize) -> bool {
        self.bikes[l] >= self.usable[l]
    }

    fn accumulate(&mut self, seconds: i64) {
        if seconds <= 0 {
            return;
        }
        let seconds = seconds as u64;
        for l in 0..self.bikes.len() {
            if self.active[l] {
                if self.bikes[l] == 0 {
                    self.kpis.empty_station_s += seconds;
                }
                if self.is_full(l) {
                    self.kpis.full_station_s += seconds;
                }
            }
        }
    }

    /// Applies a snapshot: activity, usable docks, and in flow mode the
    /// observed change since the station's last observation.
    fn observe(&mut self, frame: &Frame, flow: bool, jump_threshold: u32) {
        self.active.iter_mut().for_each(|a| *a = false);
        for &(l, status) in &frame.rows {
            let l = l as usize;
            let usable = status.bikes.saturating_add(status.docks);
            match self.last[l] {
                None => {
                    self.bikes[l] = status.bikes;
                    self.ledger.entered += u64::from(status.bikes);
                }
                Some(previous) if flow => {
                    let change = i64::from(status.bikes) - i64::from(previous.bikes);
                    if is_jump(change, jump_threshold) {
                        self.kpis.jumps_removed += 1;
                    } else if change > 0 {
                        self.give_back(l, change as u64, usable);
                    } else if change < 0 {
                        self.take(l, change.unsigned_abs());
                    }
                }
                Some(_) => {}
            }
            self.usable[l] = usable;
            self.active[l] = true;
            self.last[l] = Some(status);
        }
    }

    /// `count` returns at `l`, docking while docks are free.
    fn give_back(&mut self, l: usize, count: u64, usable: u32) {
        let free = u64::from(usable.saturating_sub(self.bikes[l]));
        let docked = count.min(free);
        self.bikes[l] += docked as u32;
        self.ledger.returns += docked;
        self.kpis.failed_returns += count - docked;
    }

    /// `count` rentals at `l`, served while bikes last.
    fn take(&mut self, l: usize, count: u64) {
        let served = count.min(u64::from(self.bikes[l]));
        self.bikes[l] -= served as u32;
        self.ledger.rentals += served;
        self.kpis.failed_rentals += count - served;
    }

    fn demand(&mut self, event: &DemandEvent) {
        let l = event.station as usize;
        // Demand at a station with no data at the time is not observed.
        if !self.active[l] {
            return;
        }
        match event.kind {
            Kind::Rental => self.take(l, 1),
            Kind::Return => self.give_back(l, 1, self.usable[l]),
        }
    }

    fn deliver(&mut self, l: usize, bikes: u32) {
        let free = self.usable[l].saturating_sub(self.bikes[l]);
        let docked = bikes.min(free);
        self.bikes[l] += docked;
        self.waiting[l] += bikes - docked;
        self.waiting_total += u64::from(bikes - docked);
    }

    fn dock_waiting(&mut self) {
        if self.waiting_total == 0 {
            return;
        }
        for l in 0..self.waiting.len() {
            if self.waiting[l] > 0 {
                let free = self.usable[l].saturating_sub(self.bikes[l]);
                let docked = self.waiting[l].min(free);
                self.bikes[l] += docked;
                self.waiting[l] -= docked;
                self.waiting_total -= u64::from(docked);
            }
        }
    }

    fn time_point(&self, ts: i64) -> TimePoint {
        let mut point = TimePoint { ts, active: 0, empty: 0, full: 0 };
        for l in 0..self.bikes.len() {
            if self.active[l] {
                point.active += 1;
                point.empty += u32::from(self.bikes[l] == 0);
                point.full += u32::from(self.is_full(l));
            }
        }
        point
    }
}

/// The neighbour graph of the last station set, and its digest.
#[derive(Default)]
struct GraphCache {
    present: Vec<usize>,
    neighbors: Vec<Neighbor>,
    digest: Option<Digest>,
}

/// A van on the road: (arrival time, sequence, receiver, bikes).
type Arrival = Reverse<(i64, u64, u32, u32)>;

/// Simulates `policy` over the world with one replication's demand.
pub fn simulate(
    world: &World<'_>,
    host: &Host,
    config: &ReplayConfig,
    policy: &str,
    replication: u32,
    demand: &Demand,
    progress: &dyn Progress,
) -> Result<RunResult, ReplayError> {
    let n = world.stations.len();
    let mut state = State::new(n);
    let flow = matches!(demand, Demand::Flow);
    let events: &[DemandEvent] = match demand {
        Demand::Flow => &[],
        Demand::Events(events) => events,
    };
    let sv = world.serving_view(replication)?;
    let mut graph = GraphCache::default();
    let mut arrivals: BinaryHeap<Arrival> = BinaryHeap::new();
    let mut sequence = 0u64;
    let mut records = Vec::with_capacity(world.decisions.len());
    let mut moves = Vec::new();
    let mut timeseries = Vec::with_capacity(world.decisions.len());
    let (mut fi, mut di, mut ki) = (0usize, 0usize, 0usize);
    if let Some(frame) = world.frames.first() {
        state.observe(frame, flow, config.jump_threshold);
        fi = 1;
    }
    let mut now = world.start;
    loop {
        let mut next = world.end;
        if let Some(frame) = world.frames.get(fi) {
            next = next.min(frame.ts);
        }
        if let Some(event) = events.get(di) {
            next = next.min(event.t);
        }
        if let Some(Reverse((t, ..))) = arrivals.peek() {
            next = next.min(*t);
        }
        if let Some(&t) = world.decisions.get(ki) {
            next = next.min(t);
        }
        state.accumulate(next - now);
        now = next;
        if now >= world.end {
            break;
        }
        while let Some(frame) = world.frames.get(fi).filter(|f| f.ts <= now) {
            state.observe(frame, flow, config.jump_threshold);
            fi += 1;
        }
        while let Some(event) = events.get(di).filter(|e| e.t <= now) {
            state.demand(event);
            di += 1;
        }
        while let Some(&Reverse((t, _, to, bikes))) = arrivals.peek() {
            if t > now {
                break;
            }
            arrivals.pop();
            state.in_transit -= u64::from(bikes);
            state.deliver(to as usize, bikes);
        }
        state.dock_waiting();
        if world.decisions.get(ki) == Some(&now) {
            ki += 1;
            timeseries.push(state.time_point(now));
            let mut run =
                Run { world, host, config, policy, replication, sv: &sv, state: &mut state, graph: &mut graph };
            let record = run.decide(now, &mut arrivals, &mut sequence, &mut moves)?;
            records.push(record);
            progress.advance(1);
        }
    }
    state.ledger.docked = state.bikes.iter().map(|&b| u64::from(b)).sum();
    state.ledger.in_transit = state.in_transit;
    state.ledger.waiting = state.waiting_total;
    state.kpis.stations_touched = state.touched.iter().filter(|&&t| t).count() as u64;
    Ok(RunResult {
        policy: policy.to_owned(),
        replication,
        kpis: state.kpis,
        records,
        moves,
        timeseries,
        ledger: state.ledger,
    })
}

/// One run's fixed context while it decides.
struct Run<'r, 'f> {
    world: &'r World<'f>,
    host: &'r Host,
    config: &'r ReplayConfig,
    policy: &'r str,
    replication: u32,
    sv: &'r str,
    state: &'r mut State,
    graph: &'r mut GraphCache,
}

impl Run<'_, '_> {
    /// Builds the input from the simulated state, decides through the
    /// host, and applies a valid output.
    fn decide(
        &mut self,
        now: i64,
        arrivals: &mut BinaryHeap<Arrival>,
        sequence: &mut u64,
        moves: &mut Vec<MoveRow>,
    ) -> Result<DecisionRecord, ReplayError> {
        let world = self.world;
        let state = &mut *self.state;
        let present: Vec<usize> = (0..world.stations.len()).filter(|&l| state.active[l]).collect();
        let feed_present: Vec<usize> = present.iter().map(|&l| world.stations[l]).collect();
        if self.graph.digest.is_none() || self.graph.present != feed_present {
            self.graph.neighbors =
                neighbor_graph(&world.feed.stations, &feed_present, self.config.k, self.config.radius_m);
            self.graph.digest =
                Some(canonical::digest_of(&self.graph.neighbors).map_err(|e| not_canonical("neighbour graph", &e))?);
            self.graph.present = feed_present;
        }
        let stations: Vec<Station> = present
            .iter()
            .map(|&l| {
                let capacity = state.usable[l].max(state.bikes[l]);
                let (installed, renting, returning, reported) = state.last[l].map_or((false, false, false, now), |s| {
                    (s.is_installed, s.is_renting, s.is_returning, s.last_reported)
                });
                Station {
                    station_key: world.key(l).to_owned(),
                    capacity,
                    bikes: state.bikes[l],
                    docks: capacity - state.bikes[l],
                    bucket_quality: quality(installed, renting, returning, now - reported).to_owned(),
                }
            })
            .collect();
        let view_snapshot_sha256 =
            canonical::digest_of(&json!({"stations": &stations, "neighbors_sha256": self.graph.digest}))
                .map_err(|e| not_canonical("simulated view", &e))?;
        // The graph is lent to the input and taken back after the decision:
        // cloning its thousands of edges per decision cost more than the
        // decision.
        let mut input = PolicyInput {
            stations,
            neighbors: std::mem::take(&mut self.graph.neighbors),
            effort: self.config.effort.clone(),
            targets: self.config.targets.clone(),
        };
        let subject = DecisionSubject {
            system_id: world.feed.system_id.clone(),
            sv: self.sv.to_owned(),
            decision_bucket_ts: now,
            horizon_steps: 0,
        };
        let decision = Decision::new(&subject, &input, &self.config.params);
        let (run_key, run_key_sha256) = run_key(self.policy, &subject, &self.config.params)?;
        let entry = self.host.registry().resolve(self.policy).ok();
        let mut record = DecisionRecord {
            policy: self.policy.to_owned(),
            replication: self.replication,
            decision_bucket_ts: now,
            run_key_sha256,
            policy_spec_sha256: run_key.policy_spec_sha256,
            run_key,
            plugin_id: entry.map(|e| e.manifest.plugin_id.clone()),
            manifest_sha256: entry.map(|e| e.manifest_digest),
            view_snapshot_id: format!("{}@{now}", self.sv),
            view_snapshot_sha256,
            input_sha256: None,
            output_sha256: None,
            moves: 0,
            bikes_moved: 0,
            error: None,
        };
        state.kpis.decisions += 1;
        let result = self.host.check_input(&input, &self.config.params).and_then(|checked| {
            record.input_sha256 = Some(checked.digest);
            self.host.decide_checked(self.policy, &decision, &checked)
        });
        self.graph.neighbors = std::mem::take(&mut input.neighbors);
        let output = match result {
            Ok(run) => {
                record.output_sha256 = Some(run.output_sha256);
                run.output
            }
            Err(error) => {
                state.kpis.errors += 1;
                record.error = Some(DecisionError { code: error.code().to_owned(), message: error.to_string() });
                return Ok(record);
            }
        };
        let speed_m_per_s = self.config.speed_kmh.map(|kmh| kmh / 3.6);
        for m in &output.moves {
            // The guard validated the output against this input, so both
            // keys are known and the donor holds the bikes; the lookups
            // stay defensive all the same.
            let (Some(&from), Some(&to)) = (world.index.get(&m.from_station_key), world.index.get(&m.to_station_key))
            else {
                continue;
            };
            let (from, to) = (from as usize, to as usize);
            let bikes = m.bikes_moved.min(state.bikes[from]);
            if bikes == 0 {
                continue;
            }
            state.bikes[from] -= bikes;
            match speed_m_per_s {
                Some(speed) => {
                    let lag = (m.dist_m / speed).ceil().max(0.0) as i64;
                    *sequence += 1;
                    arrivals.push(Reverse((now + lag, *sequence, to as u32, bikes)));
                    state.in_transit += u64::from(bikes);
                }
                None => state.deliver(to, bikes),
            }
            state.touched[from] = true;
            state.touched[to] = true;
            state.kpis.bikes_moved += u64::from(bikes);
            state.kpis.moves += 1;
            state.kpis.weighted_distance_m += f64::from(bikes) * m.dist_m;
            record.moves += 1;
            record.bikes_moved += u64::from(bikes);
            moves.push(MoveRow {
                replication: self.replication,
                decision_bucket_ts: now,
                move_rank: m.move_rank,
                from_station_key: m.from_station_key.clone(),
                to_station_key: m.to_station_key.clone(),
                bikes,
                dist_m: m.dist_m,
                reason_codes: m.reason_codes.join(";"),
            });
        }
        Ok(record)
    }
}

/// The run key of `policy`'s decision on `subject`, with its digest.
fn run_key(policy: &str, subject: &DecisionSubject, params: &RebalanceParams) -> Result<(RunKey, Digest), ReplayError> {
    let key = Host::run_key(policy, subject, params)
        .map_err(|e| ReplayError::NotCanonical { what: "run key", message: e.to_string() })?;
    let digest = key.digest().map_err(|e| not_canonical("run key", &e))?;
    Ok((key, digest))
}

fn not_canonical(what: &'static str, error: &canonical::CanonicalError) -> ReplayError {
    ReplayError::NotCanonical { what, message: error.to_string() }
}
