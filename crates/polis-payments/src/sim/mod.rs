//! An RTGS simulator that runs SimCash scenario files with SimCash's
//! semantics: its tick order, settlement rule, queues, bilateral LSM, cost
//! formulas in integer cents and its random stream, so that the same file
//! and seed give SimCash's numbers.
//!
//! [`simulate`] reads a scenario, resolves every agent's policy (recording
//! where it came from and its hash) and runs it; [`Report`] is what
//! `polis payments simulate --json` prints.

pub mod config;
pub mod engine;
pub mod plot;
pub mod policy;
pub mod rng;
pub mod sweep;

use serde::Serialize;

pub use config::{Loaded, Scenario};
pub use engine::{AgentTotals, Costs, Event, Outcome, TickStats};
pub use policy::{Lookup, PolicyFetcher, PolicySourceRecord, Resolver};

use crate::dsl::PolicyCache;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The scenario file.
    #[error("scenario: {0}")]
    Config(#[from] config::ConfigError),
    /// An agent's policy.
    #[error("policy at {0}")]
    Policy(#[from] policy::PolicyError),
    /// The run.
    #[error(transparent)]
    Run(#[from] engine::SimError),
    /// A sweep that cannot be run.
    #[error("sweep: {0}")]
    Sweep(String),
}

/// Options of one run.
#[derive(Clone, Default)]
pub struct Options {
    /// Unknown keys are errors rather than warnings.
    pub strict: bool,
    /// Keep the event log (with every decision path).
    pub record_events: bool,
    /// Where `json_path` policies are looked for.
    pub resolver: Resolver,
    /// Apply what SimCash's YAML path drops (each policy's `params`, each
    /// agent's `posted_collateral` and `collateral_haircut`): results then
    /// diverge from SimCash's on purpose.
    pub honour_all: bool,
    /// Where `FromDatabase` and `FromUrl` policies come from.
    pub fetcher: Option<std::sync::Arc<dyn PolicyFetcher>>,
    /// Policy parameters set by a sweep point (see [`sweep`]).
    pub sweep: std::collections::BTreeMap<String, f64>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("strict", &self.strict)
            .field("record_events", &self.record_events)
            .field("resolver", &self.resolver)
            .field("honour_all", &self.honour_all)
            .field("fetcher", &self.fetcher.is_some())
            .field("sweep", &self.sweep)
            .finish()
    }
}

/// A finished run with what it was made from.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// Totals, ticks and events.
    pub outcome: Outcome,
    /// Each agent's policy source, in sorted agent order.
    pub sources: Vec<(String, PolicySourceRecord)>,
    /// Keys SimCash ignores or drops, with their paths.
    pub warnings: Vec<String>,
}

/// Reads, resolves and runs a scenario.
pub fn simulate(text: &str, options: &Options, cache: &PolicyCache) -> Result<Simulation, SimulateError> {
    let loaded = config::parse(text, options.strict)?;
    let mut resolved = Vec::with_capacity(loaded.scenario.agents.len());
    for (i, agent) in loaded.scenario.agents.iter().enumerate() {
        let lookup = Lookup {
            resolver: &options.resolver,
            cache,
            fetcher: options.fetcher.as_deref(),
            apply_params: options.honour_all,
            sweep: &options.sweep,
        };
        resolved.push(policy::resolve(agent.policy.as_ref(), &format!("agents[{i}].policy"), &agent.id, &lookup)?);
    }
    for name in options.sweep.keys() {
        if !resolved.iter().any(|r| r.checked.policy.parameters.contains_key(name)) {
            return Err(SimulateError::Sweep(format!("no agent's policy has a parameter `{name}`")));
        }
    }
    let mut warnings = loaded.warnings;
    for (i, agent) in loaded.scenario.agents.iter().enumerate() {
        if agent.policy.as_ref().is_some_and(|p| p.get("params").is_some()) && !options.honour_all {
            warnings.push(format!(
                "agents[{i}].policy.params: not applied (SimCash's YAML path drops it; --honour-all applies it)"
            ));
        }
    }
    let mut sources: Vec<(String, PolicySourceRecord)> =
        loaded.scenario.agents.iter().zip(&resolved).map(|(a, r)| (a.id.clone(), r.source.clone())).collect();
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    let sim = engine::Sim::new(loaded.scenario, resolved, options.record_events, options.honour_all)?;
    let outcome = sim.run()?;
    Ok(Simulation { outcome, sources, warnings })
}

/// The `--json` report: per-agent costs and counts, in integer cents,
/// agents sorted by id, summed over the whole run.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Report {
    /// Per agent.
    pub agents: Vec<AgentReport>,
    /// The system.
    pub system: SystemReport,
}

/// One agent's line.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct AgentReport {
    /// Agent id.
    pub id: String,
    /// Sum of `costs`.
    pub total_cost: i64,
    /// By component.
    pub costs: Costs,
    /// Payments that arrived.
    pub arrived_count: u64,
    /// Their value.
    pub arrived_value: i64,
    /// Payments settled.
    pub settled_count: u64,
    /// Value settled.
    pub settled_value: i64,
    /// `settled_count / arrived_count`, as SimCash's `settlement_rate` (1
    /// when nothing arrived).
    pub settlement_rate: f64,
    /// Value-weighted ticks from arrival to settlement, over settled payments.
    pub value_weighted_delay: f64,
    /// The most the balance fell below its opening value, cents.
    pub peak_liquidity_used: i64,
    /// Where the agent's policy came from.
    pub policy: PolicySourceRecord,
}

/// System totals.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SystemReport {
    /// Sum of every agent's cost.
    pub total_cost: i64,
    /// Payments that arrived.
    pub arrivals: u64,
    /// Payments settled.
    pub settlements: u64,
    /// `settlements / arrivals`, as SimCash's `get_system_metrics`.
    pub settlement_rate: f64,
    /// Value arrived.
    pub arrived_value: i64,
    /// Value settled.
    pub settled_value: i64,
}

/// `costs.csv`: one row per agent, sorted by id, integer cents.
pub fn costs_csv(report: &Report) -> String {
    let components: Vec<&str> = Costs::default().by_component().iter().map(|(name, _)| *name).collect();
    let mut out = format!("agent,total_cost,{},arrived_count,settled_count,settlement_rate\n", components.join(","));
    for a in &report.agents {
        let costs: Vec<String> = a.costs.by_component().iter().map(|(_, cents)| cents.to_string()).collect();
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            a.id,
            a.total_cost,
            costs.join(","),
            a.arrived_count,
            a.settled_count,
            a.settlement_rate
        ));
    }
    out
}

fn rate(settled: i64, arrived: i64) -> f64 {
    if arrived == 0 { 1.0 } else { settled as f64 / arrived as f64 }
}

impl Report {
    /// The report of a finished simulation.
    pub fn of(sim: &Simulation) -> Report {
        let agents: Vec<AgentReport> = sim
            .outcome
            .agents
            .iter()
            .zip(&sim.sources)
            .map(|((id, t), (_, source))| AgentReport {
                id: id.clone(),
                total_cost: t.costs.total(),
                costs: t.costs,
                arrived_count: t.arrived_count,
                arrived_value: t.arrived_value,
                settled_count: t.settled_count,
                settled_value: t.settled_value,
                settlement_rate: rate(t.settled_count as i64, t.arrived_count as i64),
                value_weighted_delay: if t.settled_value == 0 {
                    0.0
                } else {
                    t.delay_value_ticks as f64 / t.settled_value as f64
                },
                peak_liquidity_used: t.peak_liquidity_used,
                policy: source.clone(),
            })
            .collect();
        let arrived_value = agents.iter().map(|a| a.arrived_value).sum();
        let settled_value = agents.iter().map(|a| a.settled_value).sum();
        let arrivals: u64 = agents.iter().map(|a| a.arrived_count).sum();
        let settlements: u64 = agents.iter().map(|a| a.settled_count).sum();
        let system = SystemReport {
            total_cost: agents.iter().map(|a| a.total_cost).sum(),
            arrivals,
            settlements,
            settlement_rate: rate(settlements as i64, arrivals as i64),
            arrived_value,
            settled_value,
        };
        Report { agents, system }
    }
}
