//! The RTGS simulator, following SimCash's `Orchestrator::tick`
//! (`simulator/src/orchestrator/engine.rs`) step by step; `docs/payments.md`
//! cites the file behind each rule.
//!
//! Agents are kept in configuration order (counterparty draws depend on
//! it) and visited in sorted-id order wherever SimCash sorts. Payments are
//! numbered in creation order (`tx00000001`, …) instead of SimCash's random
//! UUIDs, which no decision depends on.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::config::{AmountDistribution, PriorityDistribution, Scenario, ScenarioEvent};
use super::policy::Resolved;
use super::rng::Rng;
use crate::dsl::fields::Scope;
use crate::dsl::{CompiledPolicy, DecisionPath, Field, PaymentAction};

mod context;
mod lsm;
mod trees;

use context::{PayCtx, Snapshot};

/// SimCash's default end-of-day rush threshold (the YAML path drops any
/// configured value).
const EOD_RUSH_THRESHOLD: f64 = 0.8;
/// SimCash's default collateral haircut.
const DEFAULT_HAIRCUT: f64 = 0.02;

/// Why a simulation stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario uses something this simulator does not compute yet.
    #[error("not supported yet: {0}")]
    Unsupported(String),
    /// A scenario event that cannot apply when it fires (SimCash aborts the
    /// run too).
    #[error("scenario_events[{index}], tick {tick}: {message}")]
    Scenario {
        /// The event's index in the scenario.
        index: usize,
        /// The tick.
        tick: usize,
        /// What is wrong.
        message: String,
    },
    /// A policy failed while deciding (SimCash aborts the run too).
    #[error("agent `{agent}`, tick {tick}: {message}")]
    Policy {
        /// The agent.
        agent: String,
        /// The tick.
        tick: usize,
        /// What failed.
        message: String,
    },
}

#[derive(Clone, Debug)]
struct Tx {
    sender: usize,
    receiver: usize,
    amount: i64,
    remaining: i64,
    arrival: usize,
    deadline: usize,
    priority: u8,
    overdue_since: Option<usize>,
    parent: Option<usize>,
    is_split: bool,
    in_q2: bool,
}

#[derive(Clone, Debug)]
struct Agent {
    id: String,
    balance: i64,
    unsecured_cap: i64,
    posted_collateral: i64,
    haircut: f64,
    allocated: i64,
    pool: Option<i64>,
    daily_fraction: f64,
    q1: Vec<usize>,
    max_collateral_capacity: Option<i64>,
    /// Collateral auto-withdrawals by the tick they fall due.
    collateral_timers: BTreeMap<usize, Vec<i64>>,
    budget: Budget,
    policy: Arc<CompiledPolicy>,
    registers: Vec<f64>,
    arrival: Option<super::config::ArrivalConfig>,
    bands: Option<super::config::ArrivalBands>,
    base_rate: f64,
}

impl Agent {
    fn allowed_overdraft_limit(&self) -> i64 {
        let collateral = (self.posted_collateral as f64 * (1.0 - self.haircut).max(0.0)).floor() as i64;
        collateral + self.unsecured_cap
    }

    fn available_liquidity(&self) -> i64 {
        let credit_used = (-self.balance).max(0);
        self.balance.max(0) + (self.allowed_overdraft_limit() - credit_used).max(0)
    }

    fn can_pay(&self, amount: i64) -> bool {
        amount <= self.available_liquidity()
    }

    /// SimCash's default capacity is ten times the unsecured cap.
    fn max_collateral_capacity(&self) -> i64 {
        self.max_collateral_capacity.unwrap_or(self.unsecured_cap * 10)
    }

    fn remaining_collateral_capacity(&self) -> i64 {
        self.max_collateral_capacity() - self.posted_collateral
    }

    /// Collateral needed to back the credit in use beyond the unsecured cap.
    fn required_collateral_for_usage(&self) -> f64 {
        if self.haircut >= 1.0 {
            return 0.0;
        }
        let credit_used = (-self.balance).max(0);
        let beyond_cap = credit_used - self.unsecured_cap.min(credit_used);
        (beyond_cap as f64 / (1.0 - self.haircut).max(0.0)).ceil()
    }

    /// SimCash's `max_withdrawable_collateral`: what can go while the limit
    /// still covers the credit in use plus `buffer`.
    fn max_withdrawable_collateral(&self, buffer: i64) -> i64 {
        let keep = (1.0 - self.haircut).max(0.0);
        if keep <= 0.0 {
            return self.posted_collateral;
        }
        let target = (-self.balance).max(0) + buffer;
        let from_collateral = target.saturating_sub(self.unsecured_cap.min(target));
        let required = (from_collateral as f64 / keep).ceil() as i64;
        (self.posted_collateral - required).max(0)
    }
}

/// A bank tree's `SetReleaseBudget` (`models/agent.rs`): how much may still
/// be released this tick, to whom, and how much each counterparty has had.
#[derive(Clone, Debug)]
struct Budget {
    remaining: i64,
    focus: Option<Vec<String>>,
    per_counterparty: Option<i64>,
    used: BTreeMap<usize, i64>,
}

impl Budget {
    /// No budget: SimCash's `reset_release_budget`.
    fn unlimited() -> Budget {
        Budget { remaining: i64::MAX, focus: None, per_counterparty: None, used: BTreeMap::new() }
    }

    fn allows(&self, receiver: usize, receiver_id: &str, amount: i64) -> bool {
        amount <= self.remaining
            && self.focus.as_ref().is_none_or(|f| f.iter().any(|c| c == receiver_id))
            && self.per_counterparty.is_none_or(|cap| self.used.get(&receiver).copied().unwrap_or(0) + amount <= cap)
    }

    fn track(&mut self, receiver: usize, amount: i64) {
        self.remaining = self.remaining.saturating_sub(amount);
        *self.used.entry(receiver).or_insert(0) += amount;
    }
}

/// Costs by component, integer cents, as SimCash accrues them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Costs {
    /// Overdraft (SimCash's `liquidity_cost`).
    pub overdraft: i64,
    /// Delay of queued payments.
    pub delay: i64,
    /// Deadline penalties, once per payment.
    pub deadline_penalty: i64,
    /// End-of-day penalties.
    pub eod_penalty: i64,
    /// Split friction.
    pub split_friction: i64,
    /// Posted collateral.
    pub collateral: i64,
    /// Opportunity cost of allocated liquidity.
    pub liquidity_opportunity: i64,
}

impl Costs {
    /// Each component with its `--json` name, in the report's order.
    pub fn by_component(&self) -> [(&'static str, i64); 7] {
        [
            ("overdraft", self.overdraft),
            ("delay", self.delay),
            ("deadline_penalty", self.deadline_penalty),
            ("eod_penalty", self.eod_penalty),
            ("split_friction", self.split_friction),
            ("collateral", self.collateral),
            ("liquidity_opportunity", self.liquidity_opportunity),
        ]
    }

    /// The sum.
    pub fn total(&self) -> i64 {
        self.overdraft
            + self.delay
            + self.deadline_penalty
            + self.eod_penalty
            + self.split_friction
            + self.collateral
            + self.liquidity_opportunity
    }

    fn add(&mut self, o: &Costs) {
        self.overdraft += o.overdraft;
        self.delay += o.delay;
        self.deadline_penalty += o.deadline_penalty;
        self.eod_penalty += o.eod_penalty;
        self.split_friction += o.split_friction;
        self.collateral += o.collateral;
        self.liquidity_opportunity += o.liquidity_opportunity;
    }
}

/// One line of `events.jsonl`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[expect(missing_docs, reason = "fields are named for what they hold")]
pub enum Event {
    /// A payment arrived in its sender's queue 1.
    Arrival { tick: usize, tx: String, sender: String, receiver: String, amount: i64, deadline: usize, priority: u8 },
    /// A policy decided about a queued payment.
    Decision { tick: usize, tx: String, agent: String, action: String, path: String },
    /// A payment settled (`rtgs`, `queue2`, `lsm_bilateral` or `lsm_cycle`).
    Settlement { tick: usize, tx: String, sender: String, receiver: String, amount: i64, how: &'static str },
    /// A cycle of three or more agents settled in the LSM (each payment
    /// also has its `settlement`).
    LsmCycle { tick: usize, agents: Vec<String>, payments: usize, value: i64 },
    /// A bank tree decided (budget or state register).
    BankDecision { tick: usize, agent: String, action: String, path: String },
    /// Posted collateral changed (`change` > 0 posted, < 0 withdrawn).
    Collateral { tick: usize, agent: String, change: i64, posted: i64, path: String },
    /// A scenario's `ScheduledSettlement`: settled at once, or not at all
    /// when the payer lacked the liquidity.
    ScheduledSettlement { tick: usize, sender: String, receiver: String, amount: i64, settled: bool },
    /// A released payment waits in queue 2.
    Queued { tick: usize, tx: String, sender: String },
    /// A payment passed its deadline.
    Overdue { tick: usize, tx: String, sender: String, penalty: i64 },
    /// Costs accrued this tick for an agent (only when non-zero).
    Costs { tick: usize, agent: String, costs: Costs },
    /// End of day.
    EndOfDay { tick: usize, day: usize, unsettled: usize },
}

/// Per-agent totals over the whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AgentTotals {
    /// Costs by component.
    pub costs: Costs,
    /// Payments that arrived for this sender.
    pub arrived_count: u64,
    /// Their value.
    pub arrived_value: i64,
    /// Payments fully settled.
    pub settled_count: u64,
    /// Value settled (children count towards their parent).
    pub settled_value: i64,
    /// Σ value × (settle tick − arrival tick) over settled payments.
    pub delay_value_ticks: i128,
    /// The deepest balance below the opening one, cents (≥ 0).
    pub peak_liquidity_used: i64,
}

/// What one tick did, for the throughput plot.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct TickStats {
    /// Settlements this tick (each split child counts).
    pub settlements: u64,
    /// Payments completed this tick: a payment whose last part settled
    /// (SimCash's transaction records by `settlement_tick`).
    pub completed: u64,
    /// Value settled this tick.
    pub settled_value: i64,
    /// Σ over agents of max(0, −balance) at the end of the tick.
    pub overdraft: i64,
}

/// A finished simulation.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Agent ids, sorted.
    pub agents: Vec<(String, AgentTotals)>,
    /// Per tick.
    pub ticks: Vec<TickStats>,
    /// The event log.
    pub events: Vec<Event>,
}

/// The simulation state.
pub struct Sim {
    scenario: Scenario,
    agents: Vec<Agent>,
    /// Agent indices in id order.
    sorted: Vec<usize>,
    /// Each agent's position in `sorted`.
    rank: Vec<usize>,
    txs: Vec<Tx>,
    q2: Vec<usize>,
    rng: Rng,
    totals: Vec<AgentTotals>,
    opening: Vec<i64>,
    events: Vec<Event>,
    ticks: Vec<TickStats>,
    record: bool,
}

/// Payment-tree fields this simulator computes. A policy reading any other
/// field is refused before the run starts.
fn computed(field: Field) -> bool {
    use Field::*;
    matches!(
        field,
        Amount
            | RemainingAmount
            | SettledAmount
            | ArrivalTick
            | DeadlineTick
            | Priority
            | IsSplit
            | IsPastDeadline
            | IsOverdue
            | IsInQueue2
            | OverdueDuration
            | TicksToDeadline
            | QueueAge
            | CostDelayThisTxOneTick
            | CostOverdraftThisAmountOneTick
            | Balance
            | CreditLimit
            | AvailableLiquidity
            | CreditUsed
            | EffectiveLiquidity
            | IsUsingCredit
            | LiquidityBuffer
            | OutgoingQueueSize
            | LiquidityPressure
            | CreditHeadroom
            | IsOverdraftCapped
            | CurrentTick
            | RtgsQueueSize
            | RtgsQueueValue
            | TotalAgents
            | PostedCollateral
            | MaxCollateralCapacity
            | RemainingCollateralCapacity
            | CollateralUtilization
            | RequiredCollateralForUsage
            | ExcessCollateral
            | OverdraftUtilization
            | Queue2NearestDeadline
            | TicksToNearestQueue2Deadline
            | AllowedOverdraftLimit
            | OverdraftHeadroom
            | CollateralHaircut
            | UnsecuredCap
            | Queue1LiquidityGap
            | Queue1TotalValue
            | Headroom
            | Queue2Size
            | Queue2CountForAgent
            | CostOverdraftBpsPerTick
            | CostDelayPerTickPerCent
            | CostCollateralBpsPerTick
            | CostSplitFriction
            | CostDeadlinePenalty
            | CostEodPenalty
            | SystemTicksPerDay
            | SystemCurrentDay
            | SystemTickInDay
            | TicksRemainingInDay
            | DayProgressFraction
            | IsEodRush
    )
}

impl Sim {
    /// Builds the day-0 state. `policies` are the agents' resolved
    /// policies, in configuration order. `record` keeps the event log;
    /// `honour_all` applies the collateral fields SimCash's YAML path drops.
    pub fn new(scenario: Scenario, policies: Vec<Resolved>, record: bool, honour_all: bool) -> Result<Sim, SimError> {
        check_supported(&scenario, &policies)?;
        let mut agents = Vec::with_capacity(scenario.agents.len());
        for (config, resolved) in scenario.agents.iter().zip(policies) {
            // SimCash: balance = opening + floor(pool × fraction) (engine.rs:988).
            let allocated = config
                .liquidity_pool
                .map(|pool| (pool as f64 * config.liquidity_allocation_fraction.unwrap_or(1.0)).floor() as i64)
                .unwrap_or(0);
            let policy = resolved.checked.policy.clone();
            agents.push(Agent {
                id: config.id.clone(),
                balance: config.opening_balance + allocated,
                unsecured_cap: config.unsecured_cap,
                // Dropped on SimCash's YAML path (to_ffi_dict).
                posted_collateral: if honour_all { config.posted_collateral.unwrap_or(0).max(0) } else { 0 },
                haircut: match config.collateral_haircut {
                    Some(h) if honour_all => h,
                    _ => DEFAULT_HAIRCUT,
                },
                allocated,
                max_collateral_capacity: config.max_collateral_capacity,
                collateral_timers: BTreeMap::new(),
                budget: Budget::unlimited(),
                pool: config.liquidity_pool,
                daily_fraction: resolved.daily_liquidity_fraction,
                q1: Vec::new(),
                registers: vec![0.0; policy.registers.len()],
                policy,
                base_rate: config.arrival_config.as_ref().map_or(0.0, |a| a.rate_per_tick),
                arrival: config.arrival_config.clone(),
                bands: config.arrival_bands.clone(),
            });
        }
        let mut sorted: Vec<usize> = (0..agents.len()).collect();
        sorted.sort_by(|&a, &b| agents[a].id.cmp(&agents[b].id));
        let mut rank = vec![0; agents.len()];
        for (r, &i) in sorted.iter().enumerate() {
            rank[i] = r;
        }
        let opening = agents.iter().map(|a| a.balance).collect();
        let n = agents.len();
        Ok(Sim {
            rng: Rng::new(scenario.simulation.rng_seed),
            scenario,
            agents,
            sorted,
            rank,
            txs: Vec::new(),
            q2: Vec::new(),
            totals: vec![AgentTotals::default(); n],
            opening,
            events: Vec::new(),
            ticks: Vec::new(),
            record,
        })
    }

    /// Runs every tick and returns the totals.
    pub fn run(mut self) -> Result<Outcome, SimError> {
        let total = self.scenario.simulation.ticks_per_day * self.scenario.simulation.num_days;
        for tick in 0..total {
            self.tick(tick)?;
        }
        let mut agents: Vec<(String, AgentTotals)> =
            self.sorted.iter().map(|&i| (self.agents[i].id.clone(), self.totals[i].clone())).collect();
        agents.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Outcome { agents, ticks: self.ticks, events: self.events })
    }

    fn tpd(&self) -> usize {
        self.scenario.simulation.ticks_per_day
    }

    fn tx_name(i: usize) -> String {
        format!("tx{:08}", i + 1)
    }

    fn emit(&mut self, event: impl FnOnce(&Sim) -> Event) {
        if self.record {
            let e = event(self);
            self.events.push(e);
        }
    }

    fn tick(&mut self, tick: usize) -> Result<(), SimError> {
        let tpd = self.tpd();
        let mut stats = TickStats::default();
        let mut deferred: Option<BTreeMap<usize, i64>> = self.scenario.deferred_crediting.then(BTreeMap::new);

        // STEP 0.25: start-of-day liquidity on days after the first.
        if tick.is_multiple_of(tpd) && tick > 0 {
            for &i in &self.sorted.clone() {
                let a = &mut self.agents[i];
                if let Some(pool) = a.pool {
                    let allocation = (pool as f64 * a.daily_fraction).floor() as i64;
                    a.balance += allocation;
                    a.allocated = allocation;
                }
            }
        }

        // STEP 0.5: scenario events, in configuration order.
        let events = self.scenario.scenario_events.clone().unwrap_or_default();
        for (index, event) in events.iter().enumerate() {
            self.scenario_event(event, tick).map_err(|message| SimError::Scenario { index, tick, message })?;
        }

        // STEP 1: Poisson arrivals, agents in sorted order.
        for &i in &self.sorted.clone() {
            self.arrivals(i, tick);
        }

        // STEP 1.5, 1.75, 1.8: strategic collateral, bank trees, timers.
        self.collateral_trees(tick, trees::Layer::Strategic)?;
        self.bank_trees(tick)?;
        self.collateral_timers(tick);

        // STEP 2: policy decisions on queue 1, agents with queued payments in
        // sorted order; each agent decides for every payment against the same
        // pre-step state, then the decisions apply in queue order.
        let mut pending: Vec<usize> = Vec::new();
        for &i in &self.sorted.clone() {
            if self.agents[i].q1.is_empty() {
                continue;
            }
            self.decide(i, tick, &mut pending)?;
        }

        // STEP 2b: queue-2 withdrawals and resubmissions.
        self.requeue(tick);

        // STEP 3: released payments settle at once or join queue 2.
        for tx in pending {
            if self.try_settle(tx, tick, deferred.as_mut(), "rtgs", &mut stats) {
                continue;
            }
            self.txs[tx].in_q2 = true;
            self.q2.push(tx);
            self.emit(|s| Event::Queued { tick, tx: Self::tx_name(tx), sender: s.agents[s.txs[tx].sender].id.clone() });
        }

        // STEP 4: one FIFO pass over queue 2.
        self.process_queue(tick, deferred.as_mut(), &mut stats);

        // STEP 5: LSM.
        self.lsm(tick, deferred.as_mut(), &mut stats);

        // STEP 5.5: end-of-tick collateral.
        self.collateral_trees(tick, trees::Layer::EndOfTick)?;

        // STEP 5.7: deferred credits, in sorted agent order.
        if let Some(credits) = deferred.take() {
            let mut by_id: Vec<(usize, i64)> = credits.into_iter().collect();
            by_id.sort_by(|a, b| self.agents[a.0].id.cmp(&self.agents[b.0].id));
            for (agent, amount) in by_id {
                self.agents[agent].balance += amount;
            }
        }

        // STEP 6: costs.
        self.accrue_costs(tick);

        // Liquidity used, measured before the end of day returns the pool.
        for (i, a) in self.agents.iter().enumerate() {
            let used = (self.opening[i] - a.balance).max(0);
            let peak = &mut self.totals[i].peak_liquidity_used;
            *peak = (*peak).max(used);
            stats.overdraft += (-a.balance).max(0);
        }

        // STEP 8: end of day.
        if tick % tpd == tpd - 1 {
            self.end_of_day(tick);
        }
        self.ticks.push(stats);
        Ok(())
    }

    fn scenario_event(&mut self, event: &ScenarioEvent, tick: usize) -> Result<(), String> {
        match event {
            ScenarioEvent::CustomTransactionArrival {
                from_agent,
                to_agent,
                amount,
                priority,
                deadline,
                schedule,
                ..
            } => {
                if !schedule.fires_at(tick) {
                    return Ok(());
                }
                let tpd = self.tpd();
                let raw = tick + deadline.unwrap_or((tpd / 10).max(5));
                let capped = self.cap_deadline_scripted(tick, raw);
                let (s, r) = (self.index_of(from_agent), self.index_of(to_agent));
                self.add_arrival(s, r, *amount, tick, capped, priority.unwrap_or(5));
            }
            ScenarioEvent::DirectTransfer { from_agent, to_agent, amount, schedule } => {
                if schedule.fires_at(tick) {
                    let (s, r) = (self.index_of(from_agent), self.index_of(to_agent));
                    self.agents[s].balance -= amount;
                    self.agents[r].balance += amount;
                }
            }
            ScenarioEvent::CollateralAdjustment { agent, delta, schedule } => {
                // SimCash changes the credit limit, not posted collateral.
                if schedule.fires_at(tick) {
                    let a = self.index_of(agent);
                    self.agents[a].unsecured_cap = (self.agents[a].unsecured_cap + delta).max(0);
                }
            }
            ScenarioEvent::GlobalArrivalRateChange { multiplier, schedule } => {
                if schedule.fires_at(tick) {
                    positive("multiplier", *multiplier)?;
                    for a in &mut self.agents {
                        if let Some(c) = &mut a.arrival {
                            c.rate_per_tick = a.base_rate * multiplier;
                        }
                    }
                }
            }
            ScenarioEvent::AgentArrivalRateChange { agent, multiplier, schedule } => {
                // SimCash's `set_rate`: the current rate times the
                // multiplier, which also becomes the base later global
                // changes scale.
                if schedule.fires_at(tick) {
                    positive("multiplier", *multiplier)?;
                    let i = self.index_of(agent);
                    let a = &mut self.agents[i];
                    if let Some(c) = &mut a.arrival {
                        c.rate_per_tick *= multiplier;
                        a.base_rate = c.rate_per_tick;
                    }
                }
            }
            ScenarioEvent::CounterpartyWeightChange { agent, counterparty, new_weight, schedule, .. } => {
                // `auto_balance_others` is recorded by SimCash and not applied.
                if schedule.fires_at(tick) {
                    if *new_weight < 0.0 {
                        return Err(format!("`new_weight` cannot be negative, got {new_weight}"));
                    }
                    let i = self.index_of(agent);
                    if let Some(c) = &mut self.agents[i].arrival {
                        c.counterparty_weights.insert(counterparty.clone(), *new_weight);
                    }
                }
            }
            ScenarioEvent::DeadlineWindowChange { min_ticks_multiplier, max_ticks_multiplier, schedule } => {
                if schedule.fires_at(tick) {
                    for (name, m) in
                        [("min_ticks_multiplier", min_ticks_multiplier), ("max_ticks_multiplier", max_ticks_multiplier)]
                    {
                        if let Some(m) = m {
                            positive(name, *m)?;
                        }
                    }
                    let scale = |x: usize, m: &Option<f64>| m.map_or(x, |m| (x as f64 * m).round() as usize);
                    for a in &mut self.agents {
                        if let Some(c) = &mut a.arrival {
                            let [lo, hi] = c.deadline_range;
                            c.deadline_range = [scale(lo, min_ticks_multiplier), scale(hi, max_ticks_multiplier)];
                        }
                    }
                }
            }
            ScenarioEvent::ScheduledSettlement { from_agent, to_agent, amount, schedule } => {
                // Settles at once if the payer can pay, else nothing; it is
                // not a payment of either agent's (no arrival, no queue).
                if schedule.fires_at(tick) {
                    if *amount <= 0 {
                        return Err(format!("`amount` must be positive, got {amount}"));
                    }
                    let (s, r) = (self.index_of(from_agent), self.index_of(to_agent));
                    let settled = self.agents[s].can_pay(*amount);
                    if settled {
                        self.agents[s].balance -= amount;
                        self.agents[r].balance += amount;
                    }
                    self.emit(|_| Event::ScheduledSettlement {
                        tick,
                        sender: from_agent.clone(),
                        receiver: to_agent.clone(),
                        amount: *amount,
                        settled,
                    });
                }
            }
        }
        Ok(())
    }

    fn index_of(&self, id: &str) -> usize {
        // Every agent an event names was checked when the scenario loaded.
        self.agents.iter().position(|a| a.id == id).unwrap_or(0)
    }

    /// SimCash's `cap_deadline` for scripted arrivals: at most the episode
    /// end, with `deadline_cap_at_eod` at most the day's last tick, and at
    /// least one tick after arrival.
    fn cap_deadline_scripted(&self, arrival: usize, raw: usize) -> usize {
        let tpd = self.tpd();
        let mut capped = raw.min(self.scenario.simulation.num_days * tpd);
        if self.scenario.deadline_cap_at_eod {
            capped = capped.min((arrival / tpd + 1) * tpd - 1);
        }
        capped.max(arrival + 1)
    }

    fn add_arrival(&mut self, sender: usize, receiver: usize, amount: i64, tick: usize, deadline: usize, priority: u8) {
        let id = self.txs.len();
        self.txs.push(Tx {
            sender,
            receiver,
            amount,
            remaining: amount,
            arrival: tick,
            deadline,
            priority,
            overdue_since: None,
            parent: None,
            is_split: false,
            in_q2: false,
        });
        self.agents[sender].q1.push(id);
        self.totals[sender].arrived_count += 1;
        self.totals[sender].arrived_value += amount;
        self.emit(|s| Event::Arrival {
            tick,
            tx: Self::tx_name(id),
            sender: s.agents[sender].id.clone(),
            receiver: s.agents[receiver].id.clone(),
            amount,
            deadline,
            priority,
        });
    }

    /// SimCash's `generate_for_agent`: count, then per payment amount,
    /// counterparty, deadline and priority, in that draw order.
    fn arrivals(&mut self, i: usize, tick: usize) {
        if let Some(bands) = self.agents[i].bands.clone() {
            return self.band_arrivals(i, tick, &bands);
        }
        let Some(config) = self.agents[i].arrival.clone() else { return };
        let n = self.rng.poisson(config.rate_per_tick);
        for _ in 0..n {
            let amount = self.sample_amount(&config.amount_distribution);
            let receiver = self.select_counterparty(i, &config.counterparty_weights);
            let deadline = self.arrival_deadline(tick, config.deadline_range);
            let priority = match &config.priority_distribution {
                None => config.priority,
                Some(d) => self.sample_priority(d),
            };
            // SimCash keeps the default 5 when a sampled priority is 0.
            let priority = if priority > 0 { priority } else { 5 };
            self.add_arrival(i, receiver, amount, tick, deadline, priority);
        }
    }

    /// SimCash's `generate_from_bands`: urgent, normal, low, each its own
    /// Poisson count, then per payment amount, counterparty, deadline and a
    /// priority drawn uniformly in the band (kept even when 0).
    fn band_arrivals(&mut self, i: usize, tick: usize, bands: &super::config::ArrivalBands) {
        for (band, lo, hi) in bands.in_order() {
            let n = self.rng.poisson(band.rate_per_tick);
            for _ in 0..n {
                let amount = self.sample_amount(&band.amount_distribution);
                let receiver = self.select_counterparty(i, &band.counterparty_weights);
                let deadline = self.arrival_deadline(tick, [band.deadline_offset_min, band.deadline_offset_max]);
                let priority = self.rng.range(i64::from(lo), i64::from(hi) + 1) as u8;
                self.add_arrival(i, receiver, amount, tick, deadline, priority);
            }
        }
    }

    fn sample_amount(&mut self, d: &AmountDistribution) -> i64 {
        let rounded =
            |raw: f64| if raw.is_finite() && raw > 0.0 { (raw.round().min(i64::MAX as f64) as i64).max(1) } else { 1 };
        match *d {
            AmountDistribution::Uniform { min, max } => self.rng.range(min, max + 1),
            AmountDistribution::Normal { mean, std_dev } => {
                let z = self.rng.standard_normal();
                rounded(mean + std_dev * z)
            }
            AmountDistribution::LogNormal { mean, std_dev } => {
                if mean <= 0.0 || std_dev < 0.0 {
                    return 1;
                }
                let sigma2 = (1.0 + std_dev * std_dev / (mean * mean)).ln();
                let mu = mean.ln() - sigma2 / 2.0;
                let z = self.rng.standard_normal();
                let raw = (mu + sigma2.sqrt() * z).exp();
                if raw.is_finite() && raw > 0.0 { rounded(raw) } else { (mean.round() as i64).max(1) }
            }
            AmountDistribution::Exponential { lambda } => {
                let u = self.rng.next_f64().max(f64::MIN_POSITIVE);
                rounded(-u.ln() / lambda)
            }
        }
    }

    /// Candidates in configuration order minus the sender; a missing weight
    /// is 1.0.
    fn select_counterparty(&mut self, sender: usize, weights: &BTreeMap<String, f64>) -> usize {
        let candidates: Vec<usize> = (0..self.agents.len()).filter(|&j| j != sender).collect();
        if weights.is_empty() {
            let k = self.rng.range(0, candidates.len() as i64) as usize;
            return candidates[k.min(candidates.len() - 1)];
        }
        let weight = |j: usize| weights.get(&self.agents[j].id).copied().unwrap_or(1.0);
        let total: f64 = candidates.iter().map(|&j| weight(j)).sum();
        let mut target = self.rng.next_f64() * total;
        for &j in &candidates {
            target -= weight(j);
            if target <= 0.0 {
                return j;
            }
        }
        candidates[candidates.len() - 1]
    }

    fn arrival_deadline(&mut self, tick: usize, range: [usize; 2]) -> usize {
        let tpd = self.tpd();
        let offset = self.rng.range(range[0] as i64, range[1] as i64 + 1) as usize;
        let mut capped = (tick + offset).min(self.scenario.simulation.num_days * tpd);
        if self.scenario.deadline_cap_at_eod {
            capped = capped.min((tick / tpd + 1) * tpd);
        }
        capped.max(tick + 1)
    }

    fn sample_priority(&mut self, d: &PriorityDistribution) -> u8 {
        match d {
            PriorityDistribution::Fixed { value } => *value,
            PriorityDistribution::Categorical { values, weights } => {
                if values.is_empty() {
                    return 5;
                }
                let total: f64 = weights.iter().sum();
                if total <= 0.0 {
                    return values[0];
                }
                let mut target = self.rng.next_f64() * total;
                for (k, w) in weights.iter().enumerate() {
                    target -= w;
                    if target <= 0.0 {
                        return values.get(k).copied().unwrap_or(5).min(10);
                    }
                }
                values.last().copied().unwrap_or(5).min(10)
            }
            PriorityDistribution::Uniform { min, max } => {
                let lo = i64::from(*min);
                (self.rng.range(lo, i64::from(*max) + 1) as u8).min(10)
            }
        }
    }

    /// Evaluates the payment tree for one payment into what SimCash's
    /// `build_decision` returns.
    fn decision(&self, i: usize, tx: usize, tick: usize, snap: &Snapshot) -> Result<(Decided, String), SimError> {
        let policy = &self.agents[i].policy;
        let Some(tree) = &policy.payment else { return Ok((Decided::Hold, String::new())) };
        let ctx = PayCtx { sim: self, agent: i, tx, tick, snap };
        let fail = |e: crate::dsl::EvalError| SimError::Policy {
            agent: self.agents[i].id.clone(),
            tick,
            message: e.to_string(),
        };
        let num = |n: &crate::dsl::Num, name: &str| n.eval(&ctx, &Arc::from(name)).map_err(fail);
        let mut path = DecisionPath::default();
        let action = tree.evaluate(&ctx, self.record.then_some(&mut path)).map_err(fail)?;
        let decided = match action {
            PaymentAction::Release { priority_flag, timed_for_tick } => Decided::Release {
                priority: *priority_flag,
                at: match timed_for_tick {
                    Some(t) => Some(num(t, "timed_for_tick")? as usize),
                    None => None,
                },
            },
            PaymentAction::Hold { .. } => Decided::Hold,
            PaymentAction::Drop => Decided::Drop,
            PaymentAction::Split { num_splits } => Decided::Split(num(num_splits, "num_splits")? as usize),
            PaymentAction::StaggerSplit {
                num_splits,
                stagger_first_now,
                stagger_gap_ticks,
                priority_boost_children,
            } => {
                // The gap is evaluated (and may fail) but, as in SimCash, the
                // later children only return to queue 1.
                num(stagger_gap_ticks, "stagger_gap_ticks")?;
                Decided::StaggerSplit {
                    n: num(num_splits, "num_splits")? as usize,
                    now: num(stagger_first_now, "stagger_first_now")? as usize,
                    boost: num(priority_boost_children, "priority_boost_children")?.clamp(0.0, 255.0) as u8,
                }
            }
            PaymentAction::Reprioritize { new_priority } => {
                Decided::Reprioritize(num(new_priority, "new_priority")?.clamp(0.0, 255.0) as u8)
            }
            PaymentAction::WithdrawFromRtgs => Decided::Withdraw,
            PaymentAction::ResubmitToRtgs { .. } => Decided::Resubmit,
        };
        Ok((decided, path.to_string()))
    }

    fn record_decision(&mut self, tick: usize, i: usize, tx: usize, decision: &Decided, path: String) {
        if self.record {
            let agent = self.agents[i].id.clone();
            self.events.push(Event::Decision { tick, tx: Self::tx_name(tx), agent, action: decision.name(), path });
        }
    }

    /// SimCash's step 2: the payment tree decides for every queue-1 payment
    /// against the same state, then the decisions apply in queue order.
    fn decide(&mut self, i: usize, tick: usize, pending: &mut Vec<usize>) -> Result<(), SimError> {
        if self.agents[i].policy.payment.is_none() {
            // A policy without a payment tree holds everything.
            return Ok(());
        }
        let snapshot = Snapshot::of(self, i);
        let queue = self.agents[i].q1.clone();
        let mut decisions = Vec::with_capacity(queue.len());
        for &tx in &queue {
            decisions.push((tx, self.decision(i, tx, tick, &snapshot)?));
        }
        for (tx, (decision, path)) in decisions {
            self.record_decision(tick, i, tx, &decision, path);
            let fail = |sim: &Sim, message: String| SimError::Policy { agent: sim.agents[i].id.clone(), tick, message };
            match decision {
                Decided::Release { priority, at } => {
                    if let Some(p) = priority {
                        self.txs[tx].priority = p;
                    }
                    // A release timed for a later tick leaves it in queue 1.
                    if at.is_some_and(|t| t > tick) {
                        continue;
                    }
                    let (receiver, amount) = (self.txs[tx].receiver, self.txs[tx].remaining);
                    let a = &self.agents[i];
                    if a.budget.allows(receiver, &self.agents[receiver].id, amount) {
                        self.agents[i].q1.retain(|&t| t != tx);
                        self.agents[i].budget.track(receiver, amount);
                        pending.push(tx);
                    }
                }
                Decided::Hold | Decided::Withdraw => {
                    // Withdrawing a payment that is not in queue 2 fails and
                    // leaves it where it is.
                }
                Decided::Resubmit => {
                    // SimCash appends a second copy of the payment to queue 1
                    // here; polis keeps the one it has (docs/payments.md).
                }
                Decided::Drop => {
                    // SimCash marks a dropped payment overdue and forgets it:
                    // it never pays deadline, delay or EOD costs again.
                    self.agents[i].q1.retain(|&t| t != tx);
                    self.txs[tx].overdue_since = Some(tick);
                }
                Decided::Reprioritize(p) => self.txs[tx].priority = p,
                Decided::Split(n) => {
                    if n < 2 {
                        return Err(fail(self, format!("num_splits must be >= 2, got {n}")));
                    }
                    self.agents[i].q1.retain(|&t| t != tx);
                    pending.extend(self.split(tx, n, None));
                    self.totals[i].costs.split_friction +=
                        self.scenario.cost_rates.split_friction_cost * (n as i64 - 1);
                }
                Decided::StaggerSplit { n, now, boost } => {
                    if n < 2 {
                        return Err(fail(self, format!("num_splits must be >= 2, got {n}")));
                    }
                    if now > n {
                        return Err(fail(self, format!("stagger_first_now ({now}) cannot exceed num_splits ({n})")));
                    }
                    self.agents[i].q1.retain(|&t| t != tx);
                    let boosted = self.txs[tx].priority.saturating_add(boost).min(10);
                    let children = self.split(tx, n, Some(boosted));
                    pending.extend(&children[..now]);
                    self.agents[i].q1.extend(&children[now..]);
                    self.totals[i].costs.split_friction +=
                        self.scenario.cost_rates.split_friction_cost * (n as i64 - 1);
                }
            }
        }
        Ok(())
    }

    /// SimCash's step 2b: payments in queue 2 are re-evaluated, and only
    /// `WithdrawFromRtgs` (out of queue 2, into no queue) and
    /// `ResubmitToRtgs` (back to the end of queue 1) act. Only policies that
    /// can reach one of those two are evaluated; for the others the step
    /// changes nothing. A failed evaluation is a hold here, as SimCash's
    /// `evaluate_single` makes it.
    fn requeue(&mut self, tick: usize) {
        let mut moves = Vec::new();
        for &i in &self.sorted.clone() {
            let reaches = self.agents[i].policy.payment.as_ref().is_some_and(|t| {
                t.actions().any(|a| matches!(a, PaymentAction::WithdrawFromRtgs | PaymentAction::ResubmitToRtgs { .. }))
            });
            if !reaches {
                continue;
            }
            let snapshot = Snapshot::of(self, i);
            let mine: Vec<usize> = self.q2.iter().copied().filter(|&t| self.txs[t].sender == i).collect();
            for tx in mine {
                if let Ok((decision @ (Decided::Withdraw | Decided::Resubmit), path)) =
                    self.decision(i, tx, tick, &snapshot)
                {
                    moves.push((i, tx, decision, path));
                }
            }
        }
        for (i, tx, decision, path) in moves {
            self.record_decision(tick, i, tx, &decision, path);
            self.q2.retain(|&t| t != tx);
            self.txs[tx].in_q2 = false;
            if matches!(decision, Decided::Resubmit) {
                self.agents[i].q1.push(tx);
            }
        }
    }

    /// Splits a payment into `n` children (the last takes the remainder)
    /// with the parent's arrival, deadline and, unless given, priority.
    fn split(&mut self, tx: usize, n: usize, priority: Option<u8>) -> Vec<usize> {
        let parent = self.txs[tx].clone();
        let base = parent.amount / n as i64;
        let rem = parent.amount % n as i64;
        let mut children = Vec::with_capacity(n);
        for k in 0..n {
            let amount = if k == n - 1 { base + rem } else { base };
            children.push(self.txs.len());
            self.txs.push(Tx {
                amount,
                remaining: amount,
                priority: priority.unwrap_or(parent.priority),
                overdue_since: None,
                parent: Some(tx),
                is_split: true,
                in_q2: false,
                ..parent.clone()
            });
        }
        children
    }

    fn try_settle(
        &mut self,
        tx: usize,
        tick: usize,
        deferred: Option<&mut BTreeMap<usize, i64>>,
        how: &'static str,
        stats: &mut TickStats,
    ) -> bool {
        let (s, r, amount) = (self.txs[tx].sender, self.txs[tx].receiver, self.txs[tx].remaining);
        if !self.agents[s].can_pay(amount) {
            return false;
        }
        self.transfer(tx, tick, deferred, how, stats);
        let _ = r;
        true
    }

    /// Moves a payment's remaining amount and books the settlement.
    fn transfer(
        &mut self,
        tx: usize,
        tick: usize,
        deferred: Option<&mut BTreeMap<usize, i64>>,
        how: &'static str,
        stats: &mut TickStats,
    ) {
        let (s, r, amount) = (self.txs[tx].sender, self.txs[tx].receiver, self.txs[tx].remaining);
        self.agents[s].balance -= amount;
        match deferred {
            Some(d) => *d.entry(r).or_insert(0) += amount,
            None => self.agents[r].balance += amount,
        }
        self.txs[tx].remaining = 0;
        stats.settlements += 1;
        stats.settled_value += amount;
        self.emit(|sim| Event::Settlement {
            tick,
            tx: Self::tx_name(tx),
            sender: sim.agents[s].id.clone(),
            receiver: sim.agents[r].id.clone(),
            amount,
            how,
        });
        // A payment counts once, when it (or its last child) settles.
        let root = match self.txs[tx].parent {
            Some(p) => {
                self.txs[p].remaining -= amount;
                if self.txs[p].remaining > 0 {
                    self.totals[s].settled_value += amount;
                    return;
                }
                p
            }
            None => tx,
        };
        stats.completed += 1;
        let t = &mut self.totals[s];
        t.settled_value += amount;
        t.settled_count += 1;
        let root_amount = self.txs[root].amount;
        t.delay_value_ticks += i128::from(root_amount) * (tick - self.txs[root].arrival) as i128;
    }

    /// SimCash's `process_queue`: one pass in order; a payment past its
    /// deadline is marked overdue here.
    fn process_queue(
        &mut self,
        tick: usize,
        mut deferred: Option<&mut BTreeMap<usize, i64>>,
        stats: &mut TickStats,
    ) -> i64 {
        let queue = std::mem::take(&mut self.q2);
        let mut still = Vec::with_capacity(queue.len());
        let mut settled = 0;
        for tx in queue {
            if self.txs[tx].remaining == 0 {
                continue;
            }
            if tick > self.txs[tx].deadline && self.txs[tx].overdue_since.is_none() {
                self.txs[tx].overdue_since = Some(tick);
            }
            let amount = self.txs[tx].remaining;
            if self.try_settle(tx, tick, deferred.as_deref_mut(), "queue2", stats) {
                settled += amount;
                self.txs[tx].in_q2 = false;
            } else {
                still.push(tx);
            }
        }
        self.q2 = still;
        settled
    }

    /// SimCash's `accrue_costs` (engine.rs:4535), integer cents.
    fn accrue_costs(&mut self, tick: usize) {
        let rates = self.scenario.cost_rates.clone();
        for &i in &self.sorted.clone() {
            // Newly overdue: queue-1 payments past deadline not yet marked,
            // and queue-2 payments marked this tick.
            let mut newly = Vec::new();
            for &tx in &self.agents[i].q1 {
                if tick > self.txs[tx].deadline && self.txs[tx].overdue_since.is_none() {
                    newly.push(tx);
                }
            }
            for &tx in &self.q2 {
                if self.txs[tx].sender == i && self.txs[tx].overdue_since == Some(tick) {
                    newly.push(tx);
                }
            }
            let mut penalty = 0;
            for &tx in &newly {
                self.txs[tx].overdue_since = Some(tick);
                let p = rates.deadline_penalty.resolve(self.txs[tx].amount);
                penalty += p;
                self.emit(|s| Event::Overdue {
                    tick,
                    tx: Self::tx_name(tx),
                    sender: s.agents[i].id.clone(),
                    penalty: p,
                });
            }
            let a = &self.agents[i];
            let costs = Costs {
                overdraft: scaled_cost(
                    u128::from((-a.balance).max(0).unsigned_abs()),
                    rates.overdraft_bps_per_tick,
                    1000,
                    10_000 * 1000,
                ),
                delay: self.delay_cost(i),
                deadline_penalty: penalty,
                eod_penalty: 0,
                split_friction: 0,
                collateral: scaled_cost(
                    a.posted_collateral.max(0).unsigned_abs().into(),
                    rates.collateral_cost_per_tick_bps,
                    1_000_000,
                    10_000 * 1_000_000,
                ),
                liquidity_opportunity: scaled_cost(
                    a.allocated.max(0).unsigned_abs().into(),
                    rates.liquidity_cost_per_tick_bps,
                    1_000_000,
                    10_000 * 1_000_000,
                ),
            };
            self.totals[i].costs.add(&costs);
            if costs.total() > 0 {
                self.emit(|s| Event::Costs { tick, agent: s.agents[i].id.clone(), costs });
            }
        }
    }

    /// Σ over queue 1 and the agent's queue 2 of remaining × multipliers
    /// (scaled by 1000), times the rate (scaled by 1e6), rounded once.
    fn delay_cost(&self, i: usize) -> i64 {
        let rates = &self.scenario.cost_rates;
        let rate = scale(rates.delay_cost_per_tick_per_cent, 1e6);
        if rate == 0 {
            return 0;
        }
        let overdue_mult = if rates.overdue_delay_multiplier.is_finite() && rates.overdue_delay_multiplier >= 0.0 {
            (rates.overdue_delay_multiplier * 1000.0).round() as u128
        } else {
            1000
        };
        let weighted = |tx: usize| -> u128 {
            let t = &self.txs[tx];
            let amount = t.remaining.max(0) as u128;
            let om = if t.overdue_since.is_some() { overdue_mult } else { 1000 };
            let pm = rates.priority_delay_multipliers.map_or(1000, |m| {
                let x = m.for_priority(t.priority);
                if x.is_finite() && x >= 0.0 { (x * 1000.0).round() as u128 } else { 1000 }
            });
            amount * (om * pm / 1000)
        };
        let mut total: u128 = self.agents[i].q1.iter().map(|&t| weighted(t)).sum();
        total += self.q2.iter().filter(|&&t| self.txs[t].sender == i).map(|&t| weighted(t)).sum::<u128>();
        let scale_total: u128 = 1000 * 1_000_000;
        i64::try_from((total * rate + scale_total / 2) / scale_total).unwrap_or(i64::MAX)
    }

    /// SimCash's `handle_end_of_day`: EOD penalties for every queued payment
    /// past its deadline, register reset, pool returned.
    fn end_of_day(&mut self, tick: usize) {
        let rates = self.scenario.cost_rates.clone();
        for &i in &self.sorted.clone() {
            let mut penalty = 0;
            for &tx in &self.agents[i].q1 {
                if self.txs[tx].deadline < tick {
                    penalty += rates.eod_penalty.resolve(self.txs[tx].remaining);
                }
            }
            for &tx in &self.q2 {
                if self.txs[tx].sender == i && self.txs[tx].deadline < tick {
                    penalty += rates.eod_penalty.resolve(self.txs[tx].remaining);
                }
            }
            self.totals[i].costs.eod_penalty += penalty;
            let a = &mut self.agents[i];
            a.registers.iter_mut().for_each(|r| *r = 0.0);
            if a.pool.is_some() && a.allocated != 0 {
                a.balance -= a.allocated;
                a.allocated = 0;
            }
        }
        let unsettled = self.q2.len() + self.agents.iter().map(|a| a.q1.len()).sum::<usize>();
        let day = tick / self.tpd();
        self.emit(|_| Event::EndOfDay { tick, day, unsettled });
    }
}

/// SimCash refuses a multiplier that is not positive when its event fires.
fn positive(name: &str, x: f64) -> Result<(), String> {
    if x > 0.0 { Ok(()) } else { Err(format!("`{name}` must be positive, got {x}")) }
}

/// A payment decision, its parameters evaluated.
#[derive(Clone, Copy, Debug)]
enum Decided {
    Release { priority: Option<u8>, at: Option<usize> },
    Hold,
    Drop,
    Split(usize),
    StaggerSplit { n: usize, now: usize, boost: u8 },
    Reprioritize(u8),
    Withdraw,
    Resubmit,
}

impl Decided {
    fn name(&self) -> String {
        match self {
            Decided::Release { at: Some(t), .. } => format!("Release(at {t})"),
            Decided::Release { .. } => "Release".into(),
            Decided::Hold => "Hold".into(),
            Decided::Drop => "Drop".into(),
            Decided::Split(n) => format!("Split({n})"),
            Decided::StaggerSplit { n, now, .. } => format!("StaggerSplit({n}, {now} now)"),
            Decided::Reprioritize(p) => format!("Reprioritize({p})"),
            Decided::Withdraw => "WithdrawFromRtgs".into(),
            Decided::Resubmit => "ResubmitToRtgs".into(),
        }
    }
}

fn scale(rate: f64, by: f64) -> u128 {
    if rate.is_finite() && rate >= 0.0 { (rate * by).round() as u128 } else { 0 }
}

/// `round(amount × round(rate×scale) / divisor)`, half up, as SimCash's
/// overdraft, collateral and liquidity costs.
fn scaled_cost(amount: u128, rate: f64, rate_scale: u128, divisor: u128) -> i64 {
    let r = scale(rate, rate_scale as f64);
    if r == 0 || amount == 0 {
        return 0;
    }
    i64::try_from((amount * r + divisor / 2) / divisor).unwrap_or(i64::MAX)
}

/// Refuses, before anything runs, what this simulator does not compute.
fn check_supported(s: &Scenario, policies: &[Resolved]) -> Result<(), SimError> {
    let unsupported = |m: String| Err(SimError::Unsupported(m));
    for (i, r) in policies.iter().enumerate() {
        let p = &r.checked.policy;
        let id = &s.agents[i].id;
        for field in p.fields.iter().flatten() {
            if !computed(*field) {
                let scope = if field.scope() == Scope::Transaction { "payment" } else { "bank" };
                return unsupported(format!("agent `{id}`: {scope} field `{}`", field.name()));
            }
        }
    }
    Ok(())
}
