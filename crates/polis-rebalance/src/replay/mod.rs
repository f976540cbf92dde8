//! Counterfactual replay: run policies against a window of observed GBFS
//! data and compare what they would have achieved.
//!
//! A replay takes a [`Feed`], a time window and a list of policies. For
//! each policy (and, in stochastic mode, each replication) it simulates
//! the stations' bikes through the window: demand comes from the
//! [`demand`] model, and at every decision bucket the host builds a
//! `policy.input.v1` from the *simulated* state, calls the policy through
//! the registry and the runtime guard, and applies the validated moves.
//! An invalid output or a failing policy is recorded as an error for that
//! bucket and never applied.
//!
//! - [`demand`]: the flow-replay and stochastic demand models, the
//!   operator-rebalancing jump rule and the censoring-corrected rates.
//! - [`sim`]: the event-driven simulator of one policy and replication.
//! - [`kpi`]: key figures per run, means and 95 % intervals, deltas
//!   against `noop`.
//! - [`output`]: the files of `--out` and `--verify`.
//!
//! Every policy sees the same demand: flow replay is deterministic, and
//! the stochastic model draws from one seeded stream per station and
//! kind, shared by all policies (common random numbers). Runs are
//! independent, so they run in parallel (rayon) and are collected in a
//! fixed order; the same configuration gives byte-identical outputs.
//!
//! `docs/replay.md` explains the models and rules for people.

pub mod chart;
pub mod demand;
pub mod kpi;
pub mod output;
pub mod sim;

use std::sync::Arc;

use polis_core::manifest::Manifest;
use polis_core::policy::{Call, Policy, PolicyError};
use polis_core::registry::Registry;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::contract::{DEFAULT_EFFORT, Effort, PolicyOutput, Rebalance, RebalanceParams, Targets, default_targets};
use crate::gbfs::Feed;
use crate::host::Host;

pub use kpi::{Kpis, Summary};
pub use output::DecisionRecord;
pub use sim::RunResult;

/// The policy version of the do-nothing baseline.
pub const NOOP_VERSION: &str = "rebal.noop.v1";

/// Default jump threshold: an observed change of at least this many bikes
/// between two consecutive observations of a station is taken as operator
/// rebalancing. 99.9 % of the Bay Wheels week's changes are smaller.
pub const DEFAULT_JUMP_THRESHOLD: u32 = 6;

/// Which demand drives the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum DemandModel {
    /// Replay the observed net changes of every station.
    Flow,
    /// Poisson rentals and returns per station and 15-minute slot.
    Stochastic {
        /// Number of replications, at least 1.
        replications: u32,
    },
}

impl DemandModel {
    /// Replications run: 1 for flow replay.
    pub fn replications(self) -> u32 {
        match self {
            DemandModel::Flow => 1,
            DemandModel::Stochastic { replications } => replications.max(1),
        }
    }
}

/// Everything that determines a replay's results. Stored beside the
/// outputs so that `--verify` can run it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// Window start, epoch seconds; moved to the first snapshot when the
    /// data starts later.
    pub from: i64,
    /// Window end (exclusive), epoch seconds.
    pub to: i64,
    /// Decision bucket length in seconds. By default 300.
    pub bucket_s: i64,
    /// Policy versions, in report order. `noop` is accepted for
    /// [`NOOP_VERSION`].
    pub policies: Vec<String>,
    /// Seed of the stochastic demand. By default 7.
    pub seed: u64,
    /// The demand model.
    pub demand: DemandModel,
    /// Jump threshold in bikes; 0 keeps every observed change (then `noop`
    /// flow replay reproduces the observed data exactly).
    pub jump_threshold: u32,
    /// Van speed for travel lag, km/h; `None` applies moves instantly.
    pub speed_kmh: Option<f64>,
    /// Neighbours per station.
    pub k: usize,
    /// Neighbour radius in metres.
    pub radius_m: f64,
    /// Effort limits per decision.
    pub effort: Effort,
    /// The fill band.
    pub targets: Targets,
    /// Host-side params passed to every policy.
    pub params: RebalanceParams,
}

impl ReplayConfig {
    /// A flow replay of `[from, to)` with the default settings and the three
    /// standard policies.
    pub fn new(from: i64, to: i64) -> Self {
        ReplayConfig {
            from,
            to,
            bucket_s: crate::snapshot::BUCKET_SECONDS,
            policies: vec![NOOP_VERSION.to_owned(), "rebal.greedy.v1".to_owned(), "rebal.global.v1".to_owned()],
            seed: 7,
            demand: DemandModel::Flow,
            jump_threshold: DEFAULT_JUMP_THRESHOLD,
            speed_kmh: None,
            k: 25,
            radius_m: 1200.0,
            effort: DEFAULT_EFFORT,
            targets: default_targets(),
            params: RebalanceParams::default(),
        }
    }
}

/// Why a replay could not run. Decisions that fail do not stop a replay;
/// they are counted and recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A setting is out of range.
    #[error("invalid `{field}`: {message}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A policy version does not resolve.
    #[error("unknown policy `{0}`: it is neither `noop` nor a registered policy version")]
    UnknownPolicy(String),
    /// The window holds no data.
    #[error("the window {from}..{to} holds no snapshot (the data covers {first}..{last})")]
    NoData {
        /// Window start.
        from: i64,
        /// Window end.
        to: i64,
        /// First snapshot.
        first: i64,
        /// Last snapshot.
        last: i64,
    },
    /// A stored record could not be read.
    #[error("`runs.jsonl` line {line}: {message}")]
    Record {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A digest the replay records could not be taken (a value JSON cannot
    /// represent, such as a NaN in the configuration).
    #[error("cannot hash the {what}: {message}")]
    NotCanonical {
        /// What could not be hashed.
        what: &'static str,
        /// Why.
        message: String,
    },
}

impl ReplayError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ReplayError::Config { .. } => "replay.config",
            ReplayError::UnknownPolicy(_) => "replay.unknown_policy",
            ReplayError::NoData { .. } => "replay.no_data",
            ReplayError::Record { .. } => "replay.record",
            ReplayError::NotCanonical { .. } => "replay.not_canonical",
        }
    }
}

/// The do-nothing baseline, `rebal.noop.v1`: a real policy behind the
/// same registry, guard and records as every other, that never moves a
/// bike.
pub struct NoopPolicy {
    manifest: Manifest,
}

impl Default for NoopPolicy {
    fn default() -> Self {
        let fields = crate::contract::RebalanceManifest {
            requires_neighbor_graph: false,
            ..crate::contract::RebalanceManifest::builtin()
        };
        let manifest = crate::builtins::builtin_manifest(
            "polis.rebal.noop.v1",
            NOOP_VERSION,
            "noop.v1",
            "No rebalancing",
            "Never moves a bike: the baseline every replay compares against.",
            &fields,
        );
        NoopPolicy { manifest }
    }
}

impl Policy<Rebalance> for NoopPolicy {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn run(&self, call: &Call<'_, Rebalance>) -> Result<PolicyOutput, PolicyError> {
        call.check_cancelled()?;
        Ok(PolicyOutput::no_op(None))
    }
}

/// Adds [`NoopPolicy`] to a registry unless a `rebal.noop.v1` is already
/// there.
pub fn with_noop(mut registry: Registry<Rebalance>) -> Registry<Rebalance> {
    if registry.resolve(NOOP_VERSION).is_err() {
        // The noop manifest is valid by construction; a clash would leave
        // the registry without it and `resolve` would then report it.
        let _ = registry.register(Arc::new(NoopPolicy::default()), None);
    }
    registry
}

/// The policy version a user's policy name stands for: `noop` is
/// [`NOOP_VERSION`], anything else is itself.
pub fn policy_version(name: &str) -> String {
    if name == "noop" { NOOP_VERSION.to_owned() } else { name.to_owned() }
}

/// Reports progress: called with the number of decisions just made.
pub trait Progress: Sync {
    /// `decisions` more decisions are done.
    fn advance(&self, decisions: u64);
}

impl Progress for () {
    fn advance(&self, _decisions: u64) {}
}

/// A finished replay: every run's results and the summary.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The configuration, with policy names resolved and the window as run.
    pub config: ReplayConfig,
    /// One result per policy and replication, policy-major in config order.
    pub runs: Vec<RunResult>,
    /// Means, intervals and deltas per policy.
    pub summary: Summary,
    /// Observed changes left out by the jump rule.
    pub jumps_removed: u64,
}

/// Checks a configuration and resolves its policy names against `host`.
pub fn prepare(feed: &Feed, host: &Host, config: &ReplayConfig) -> Result<ReplayConfig, ReplayError> {
    let mut config = config.clone();
    if config.bucket_s <= 0 {
        return Err(ReplayError::Config {
            field: "bucket_s",
            message: format!("must be positive, got {}", config.bucket_s),
        });
    }
    if config.to <= config.from {
        return Err(ReplayError::Config {
            field: "to",
            message: format!("must be after `from` ({} ≤ {})", config.to, config.from),
        });
    }
    if let Some(speed) = config.speed_kmh
        && !(speed.is_finite() && speed > 0.0)
    {
        return Err(ReplayError::Config {
            field: "speed_kmh",
            message: format!("must be a positive number, got {speed}"),
        });
    }
    if let DemandModel::Stochastic { replications: 0 } = config.demand {
        return Err(ReplayError::Config { field: "replications", message: "must be at least 1".to_owned() });
    }
    if config.policies.is_empty() {
        return Err(ReplayError::Config { field: "policies", message: "name at least one policy".to_owned() });
    }
    config.policies = config.policies.iter().map(|p| policy_version(p)).collect();
    let mut seen = std::collections::BTreeSet::new();
    for policy in &config.policies {
        if !seen.insert(policy.clone()) {
            return Err(ReplayError::Config { field: "policies", message: format!("`{policy}` is listed twice") });
        }
        if host.registry().resolve(policy).is_err() {
            return Err(ReplayError::UnknownPolicy(policy.clone()));
        }
    }
    let first = feed.snapshots.first().map_or(0, |s| s.ts);
    let last = feed.snapshots.last().map_or(0, |s| s.ts);
    if config.from < first {
        config.from = first;
    }
    if feed.snapshots.is_empty() || config.from >= config.to || config.from > last {
        return Err(ReplayError::NoData { from: config.from, to: config.to, first, last });
    }
    Ok(config)
}

/// Runs a replay: every policy (and replication) in parallel, collected
/// in configuration order. `host` must know every policy; use
/// [`with_noop`] to add the baseline.
pub fn run(feed: &Feed, host: &Host, config: &ReplayConfig, progress: &dyn Progress) -> Result<Replay, ReplayError> {
    let config = prepare(feed, host, config)?;
    let world = sim::World::new(feed, &config)?;
    let replications = config.demand.replications();
    let demands: Vec<demand::Demand> = match config.demand {
        DemandModel::Flow => vec![demand::Demand::Flow],
        DemandModel::Stochastic { .. } => {
            let rates = demand::Rates::estimate(&world, config.jump_threshold);
            (0..replications)
                .into_par_iter()
                .map(|r| demand::Demand::Events(rates.generate(&world, config.seed, r)))
                .collect()
        }
    };
    let tasks: Vec<(usize, u32)> =
        (0..config.policies.len()).flat_map(|p| (0..replications).map(move |r| (p, r))).collect();
    let runs: Vec<RunResult> = tasks
        .into_par_iter()
        .map(|(p, r)| sim::simulate(&world, host, &config, &config.policies[p], r, &demands[r as usize], progress))
        .collect::<Result<_, _>>()?;
    let summary = Summary::new(&config, &runs);
    let jumps_removed = demand::count_jumps(&world, config.jump_threshold);
    Ok(Replay { jumps_removed, config, runs, summary })
}

/// Decisions a replay of `config` will make, for sizing a progress bar.
pub fn decision_count(feed: &Feed, host: &Host, config: &ReplayConfig) -> Result<u64, ReplayError> {
    let config = prepare(feed, host, config)?;
    let per_run = sim::decision_times(config.from, config.to, config.bucket_s).len() as u64;
    Ok(per_run * config.policies.len() as u64 * u64::from(config.demand.replications()))
}
