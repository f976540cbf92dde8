//! The host loop: register → validate → warm-up → active, for every enabled
//! catalog entry and each of its symbols.
//!
//! The engine owns one plugin instance per (strategy, symbol), made on the
//! symbol's first event. Per event it runs the strategies in catalog order
//! and decides, for each, in this order:
//!
//! 1. the breaker is open → skipped (`circuit_open`);
//! 2. the event is not after the instance's last one → `stale`;
//! 3. warm-up: the instance consumes the event; an intent is dropped
//!    (`warmup`);
//! 4. a required feature is missing → not called (`missing_features`);
//! 5. the plugin is called; an error or a panic, or an intent that fails
//!    the semantic validator, counts against the breaker (`errors`);
//! 6. the host's limits: an intent within `cooldown_seconds` of the last
//!    one on that symbol (`cooldown`), or one that would open a position
//!    beyond `max_parallel_positions` (`max_positions`), is dropped.
//!
//! The breaker is the runtime's ([`polis_runtime::Breaker`]) on *event*
//! time: its instants are a fixed origin plus the event's seconds, so a
//! replay trips and recovers at the same events every time. One
//! strategy's failures never touch another's state.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polis_runtime::{Breaker, BreakerConfig, BreakerState};
use serde::Serialize;

use crate::catalog::{Catalog, CheckedEntry};
use crate::contract::{Direction, Event, IntentRecord, StrategyContext, StrategyPlugin, intent_id, validate_intent};
use crate::features::{FeatureSet, Row};

/// How many events one strategy saw and what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StrategyCounters {
    /// `strategy_events_total`.
    pub events: u64,
    /// `strategy_intents_total`.
    pub intents: u64,
    /// `strategy_errors_total`: errors, panics and invalid intents.
    pub errors: u64,
    /// `strategy_circuit_open_total`: times the breaker opened.
    pub circuit_opened: u64,
    /// Events skipped while the breaker was open.
    pub circuit_open: u64,
    /// Events consumed during warm-up.
    pub warmup: u64,
    /// Events without a required feature.
    pub missing_features: u64,
    /// Events not after the previous one.
    pub stale: u64,
    /// Intents dropped by the cooldown.
    pub cooldown: u64,
    /// Intents dropped by the position limit.
    pub max_positions: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// One symbol's instance of a strategy.
struct Instance {
    plugin: Box<dyn StrategyPlugin>,
    seen: usize,
    last_ts: Option<i64>,
    last_intent_ts: Option<i64>,
    position: Direction,
}

/// One enabled strategy.
struct Running {
    entry: CheckedEntry,
    key: String,
    ctx: StrategyContext,
    sources: Vec<String>,
    instances: BTreeMap<String, Instance>,
    breaker: Breaker,
    counters: StrategyCounters,
    make: Box<dyn Fn() -> Box<dyn StrategyPlugin> + Send>,
    /// The slots of `entry.features` in the feature set last seen, so the
    /// missing-feature check costs no name lookups per event.
    slots: Option<(Arc<FeatureSet>, Vec<Option<usize>>)>,
    /// Plugin call latency, when the engine measures it.
    latency: Latency,
}

/// Upper bounds of the `strategy_eval_latency_ms` buckets, milliseconds.
pub const LATENCY_BUCKETS_MS: [f64; 11] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0];

/// A histogram of plugin call latencies (`strategy_eval_latency_ms`).
///
/// Measured only when [`Engine::measure_latency`] is on (the live loop),
/// since two clock reads per call would be a quarter of a built-in's cost
/// in a replay. Latencies never decide anything and are not part of a
/// replay's outputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Calls at or under each bound of [`LATENCY_BUCKETS_MS`]
    /// (cumulative, as Prometheus counts them).
    pub buckets: [u64; LATENCY_BUCKETS_MS.len()],
    /// Every call measured.
    pub count: u64,
    /// Their sum, milliseconds.
    pub sum_ms: f64,
}

impl Latency {
    fn record(&mut self, ms: f64) {
        for (bound, n) in LATENCY_BUCKETS_MS.iter().zip(&mut self.buckets) {
            if ms <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum_ms += ms;
    }
}

/// Runs a catalog's enabled strategies over events.
pub struct Engine {
    running: Vec<Running>,
    origin: Instant,
    features: FeatureSet,
    timed: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("strategies", &self.running.iter().map(|r| &r.key).collect::<Vec<_>>()).finish()
    }
}

/// How an engine's breakers behave. Counted in events' seconds.
pub type EngineBreaker = BreakerConfig;

impl Engine {
    /// An engine for the catalog's enabled entries, built-in families.
    pub fn new(catalog: &Catalog, breaker: BreakerConfig) -> Engine {
        Engine::with_plugins(catalog, breaker, |entry| {
            let family = entry.family()?;
            Some(Box::new(move || (family.make)()) as Box<dyn Fn() -> Box<dyn StrategyPlugin> + Send>)
        })
    }

    /// An engine whose plugins `make` provides per entry (another tier, or
    /// a test's plugin); entries it has none for are left out.
    pub fn with_plugins(
        catalog: &Catalog,
        breaker: BreakerConfig,
        make: impl Fn(&CheckedEntry) -> Option<Box<dyn Fn() -> Box<dyn StrategyPlugin> + Send>>,
    ) -> Engine {
        let mut names: Vec<String> = Vec::new();
        let running = catalog
            .enabled()
            .filter_map(|entry| {
                let make = make(entry)?;
                names.extend(entry.features.iter().cloned());
                let sources = entry
                    .entry
                    .params
                    .get("sources")
                    .and_then(|s| s.as_array())
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                Some(Running {
                    key: entry.key(),
                    ctx: entry.context(),
                    entry: entry.clone(),
                    sources,
                    instances: BTreeMap::new(),
                    breaker: Breaker::new(breaker),
                    counters: StrategyCounters::default(),
                    make,
                    slots: None,
                    latency: Latency::default(),
                })
            })
            .collect();
        // A checked catalog's enabled entries name only features the
        // pipeline produces; were one unknown, it is left out of the set and
        // its strategy counts every event as missing that feature.
        let known: Vec<String> = names.into_iter().filter(|n| crate::features::Feature::parse(n).is_ok()).collect();
        let features = FeatureSet::new(&known).unwrap_or_else(|_| FeatureSet::default_set());
        // The breaker needs instants; only differences from this origin
        // matter, and those are event seconds, so no decision reads the clock.
        Engine { running, origin: Instant::now(), features, timed: false }
    }

    /// Measures every plugin call's latency from now on (off by default).
    pub fn measure_latency(&mut self, on: bool) {
        self.timed = on;
    }

    /// Each strategy's `strategy_id@version` and call latencies, in run
    /// order; empty histograms unless [`Engine::measure_latency`] is on.
    pub fn latencies(&self) -> Vec<(String, Latency)> {
        self.running.iter().map(|r| (r.key.clone(), r.latency.clone())).collect()
    }

    /// Every feature the enabled strategies need.
    pub fn features(&self) -> &FeatureSet {
        &self.features
    }

    /// Each strategy's `strategy_id@version` and counters, in run order.
    pub fn counters(&self) -> Vec<(String, StrategyCounters)> {
        self.running.iter().map(|r| (r.key.clone(), r.counters.clone())).collect()
    }

    /// Each strategy's breaker state at `ts`.
    pub fn breakers(&self, ts: i64) -> Vec<(String, BreakerState)> {
        let now = self.instant(ts);
        self.running.iter().map(|r| (r.key.clone(), r.breaker.state(now))).collect()
    }

    fn instant(&self, ts: i64) -> Instant {
        self.origin + Duration::from_secs(u64::try_from(ts.max(0)).unwrap_or(0))
    }

    /// Runs every strategy that trades the row's symbol on it; returns the
    /// intents in catalog order.
    pub fn on_row(&mut self, row: &Row, timeframe: &str) -> Vec<IntentRecord> {
        let now = self.instant(row.ts);
        let mut emitted: Vec<IntentRecord> = Vec::new();
        for r in &mut self.running {
            if !r.entry.entry.symbols.iter().any(|s| **s == *row.symbol) {
                continue;
            }
            let upstream: Vec<IntentRecord> = if r.sources.is_empty() {
                Vec::new()
            } else {
                emitted.iter().filter(|i| r.sources.contains(&i.intent.strategy_id)).cloned().collect()
            };
            if let Some(record) = step(r, row, timeframe, &upstream, now, self.timed) {
                emitted.push(record);
            }
        }
        emitted
    }
}

fn step(
    r: &mut Running,
    row: &Row,
    timeframe: &str,
    upstream: &[IntentRecord],
    now: Instant,
    timed: bool,
) -> Option<IntentRecord> {
    r.counters.events += 1;
    if r.breaker.admit(now).is_err() {
        r.counters.circuit_open += 1;
        return None;
    }
    let symbol: &str = &row.symbol;
    if !r.instances.contains_key(symbol) {
        let mut plugin = (r.make)();
        if let Err(problems) = plugin.validate_params(&r.ctx.params) {
            fail(r, now, format!("params: {}", problems.join("; ")));
            return None;
        }
        r.instances.insert(
            symbol.to_owned(),
            Instance { plugin, seen: 0, last_ts: None, last_intent_ts: None, position: Direction::Flat },
        );
    }
    if !r.slots.as_ref().is_some_and(|(set, _)| Arc::ptr_eq(set, &row.set)) {
        let slots = r.entry.features.iter().map(|f| row.set.slot(f)).collect();
        r.slots = Some((row.set.clone(), slots));
    }
    let open_positions = r.instances.values().filter(|i| i.position != Direction::Flat).count();
    let inst = r.instances.get_mut(symbol)?;
    if inst.last_ts.is_some_and(|t| row.ts <= t) {
        r.counters.stale += 1;
        return None;
    }
    inst.last_ts = Some(row.ts);
    inst.seen += 1;
    let warming = inst.seen <= inst.plugin.warmup_bars();
    let missing =
        r.slots.as_ref().is_some_and(|(_, slots)| slots.iter().any(|s| s.and_then(|i| row.values[i]).is_none()));
    if !warming && missing {
        r.counters.missing_features += 1;
        return None;
    }
    let event = Event { row, timeframe, upstream };
    let ctx = &r.ctx;
    let plugin = &mut inst.plugin;
    let started = timed.then(Instant::now);
    let outcome = catch_unwind(AssertUnwindSafe(|| plugin.on_event(&event, ctx)));
    if let Some(started) = started {
        r.latency.record(started.elapsed().as_secs_f64() * 1e3);
    }
    let intent = match outcome {
        Ok(Ok(intent)) => intent,
        Ok(Err(fault)) => {
            fail(r, now, fault.0);
            return None;
        }
        Err(_) => {
            fail(r, now, "the plugin panicked".to_owned());
            return None;
        }
    };
    if warming {
        r.counters.warmup += 1;
        r.breaker.record(true, now);
        return None;
    }
    let Some(intent) = intent else {
        r.breaker.record(true, now);
        return None;
    };
    if let Err(v) = validate_intent(&intent, &row.symbol, &r.ctx.strategy_id) {
        fail(r, now, format!("invalid intent: {v}"));
        return None;
    }
    r.breaker.record(true, now);
    let inst = r.instances.get_mut(symbol)?;
    if let (Some(cool), Some(last)) = (r.entry.entry.cooldown_seconds, inst.last_intent_ts)
        && row.ts.saturating_sub(last) < i64::try_from(cool).unwrap_or(i64::MAX)
    {
        r.counters.cooldown += 1;
        return None;
    }
    if let Some(max) = r.entry.entry.max_parallel_positions
        && inst.position == Direction::Flat
        && intent.direction != Direction::Flat
        && open_positions >= max
    {
        r.counters.max_positions += 1;
        return None;
    }
    inst.last_intent_ts = Some(row.ts);
    inst.position = intent.direction;
    r.counters.intents += 1;
    Some(IntentRecord {
        intent_id: intent_id(&r.key, symbol, row.ts),
        event_ts: row.ts,
        strategy: r.key.clone(),
        intent,
    })
}

fn fail(r: &mut Running, now: Instant, message: String) {
    r.counters.errors += 1;
    r.counters.last_error = Some(message);
    let was_open = r.breaker.times_opened();
    r.breaker.record(false, now);
    if r.breaker.times_opened() > was_open {
        r.counters.circuit_opened += 1;
    }
}
