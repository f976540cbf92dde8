//! What a policy's trees read: SimCash's `EvalContext::build` (a queued
//! payment and its bank) and `EvalContext::bank_level` (the bank alone), in
//! `simulator/src/policy/tree/context.rs`. Fields are computed on demand,
//! from a snapshot of the agent's queues taken once before its decisions.

use super::{EOD_RUSH_THRESHOLD, Sim};
use crate::dsl::{Context, Field};

/// Per-agent values computed once before an agent's decisions (SimCash
/// evaluates every payment against the same pre-step state).
pub(super) struct Snapshot {
    q1_total: i64,
    q2_count: usize,
    q2_size: usize,
    q2_value: i64,
    /// The earliest deadline of the agent's queue-2 payments, if any.
    q2_nearest_deadline: Option<usize>,
}

impl Snapshot {
    pub(super) fn of(sim: &Sim, i: usize) -> Snapshot {
        let q1_total = sim.agents[i].q1.iter().map(|&t| sim.txs[t].remaining).fold(0i64, i64::saturating_add);
        let mine = || sim.q2.iter().filter(|&&t| sim.txs[t].sender == i);
        Snapshot {
            q1_total,
            q2_count: mine().count(),
            q2_size: sim.q2.len(),
            q2_value: sim.q2.iter().map(|&t| sim.txs[t].remaining).sum(),
            q2_nearest_deadline: mine().map(|&t| sim.txs[t].deadline).min(),
        }
    }
}

/// The context of one queued payment.
pub(super) struct PayCtx<'a> {
    pub(super) sim: &'a Sim,
    pub(super) agent: usize,
    pub(super) tx: usize,
    pub(super) tick: usize,
    pub(super) snap: &'a Snapshot,
}

/// The context of a bank without a payment: `bank_tree` and the collateral
/// trees. Transaction fields are refused outside `payment_tree` by
/// validation, so this never answers one.
pub(super) struct BankCtx<'a> {
    pub(super) sim: &'a Sim,
    pub(super) agent: usize,
    pub(super) tick: usize,
    pub(super) snap: &'a Snapshot,
    /// The amount `cost_deadline_penalty` and `cost_eod_penalty` are
    /// resolved for: 0 for `bank_tree` (`bank_level`), 1 for the collateral
    /// trees, which SimCash evaluates against a dummy payment of 1 cent.
    pub(super) penalty_basis: i64,
}

impl Context for PayCtx<'_> {
    fn register(&self, slot: usize) -> f64 {
        self.sim.agents[self.agent].registers.get(slot).copied().unwrap_or(0.0)
    }

    fn field(&self, field: Field) -> f64 {
        use Field::*;
        let t = &self.sim.txs[self.tx];
        let rates = &self.sim.scenario.cost_rates;
        let tick = self.tick;
        let b = |x: bool| if x { 1.0 } else { 0.0 };
        match field {
            Amount => t.amount as f64,
            RemainingAmount => t.remaining as f64,
            SettledAmount => (t.amount - t.remaining) as f64,
            ArrivalTick => t.arrival as f64,
            DeadlineTick => t.deadline as f64,
            Priority => f64::from(t.priority),
            IsSplit => b(t.is_split),
            IsPastDeadline => b(tick > t.deadline),
            IsOverdue => b(t.overdue_since.is_some()),
            IsInQueue2 => b(t.in_q2),
            OverdueDuration => t.overdue_since.map_or(0.0, |s| tick.saturating_sub(s) as f64),
            TicksToDeadline => t.deadline as f64 - tick as f64,
            QueueAge => tick.saturating_sub(t.arrival) as f64,
            CostDelayThisTxOneTick => t.remaining as f64 * rates.delay_cost_per_tick_per_cent,
            CostOverdraftThisAmountOneTick => rates.overdraft_bps_per_tick / 10_000.0 * t.remaining as f64,
            CostDeadlinePenalty => rates.deadline_penalty.resolve(t.amount) as f64,
            CostEodPenalty => rates.eod_penalty.resolve(t.remaining) as f64,
            other => bank_field(self.sim, self.agent, tick, self.snap, other),
        }
    }
}

impl Context for BankCtx<'_> {
    fn register(&self, slot: usize) -> f64 {
        self.sim.agents[self.agent].registers.get(slot).copied().unwrap_or(0.0)
    }

    fn field(&self, field: Field) -> f64 {
        let rates = &self.sim.scenario.cost_rates;
        match field {
            Field::CostDeadlinePenalty => rates.deadline_penalty.resolve(self.penalty_basis) as f64,
            Field::CostEodPenalty => rates.eod_penalty.resolve(self.penalty_basis) as f64,
            other => bank_field(self.sim, self.agent, self.tick, self.snap, other),
        }
    }
}

/// A bank or system field. `check_supported` refuses, before the run, a
/// policy reading a field this does not compute (answered NaN here).
fn bank_field(sim: &Sim, agent: usize, tick: usize, snap: &Snapshot, field: Field) -> f64 {
    use Field::*;
    let a = &sim.agents[agent];
    let rates = &sim.scenario.cost_rates;
    let tpd = sim.tpd();
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    let credit_used = (-a.balance).max(0);
    let credit_headroom = a.unsecured_cap - credit_used;
    let required_collateral = a.required_collateral_for_usage();
    match field {
        Balance => a.balance as f64,
        CreditLimit | UnsecuredCap => a.unsecured_cap as f64,
        AvailableLiquidity => a.available_liquidity() as f64,
        CreditUsed => credit_used as f64,
        EffectiveLiquidity => (a.balance + credit_headroom) as f64,
        IsUsingCredit => b(a.balance < 0),
        // SimCash's configurable buffer, which no scenario sets.
        LiquidityBuffer => 0.0,
        OutgoingQueueSize => a.q1.len() as f64,
        LiquidityPressure => {
            let total = (a.balance + a.unsecured_cap + a.posted_collateral) as f64;
            if total == 0.0 { 1.0 } else { 1.0 - a.balance.max(0) as f64 / total }
        }
        CreditHeadroom => credit_headroom as f64,
        IsOverdraftCapped => 1.0,
        CurrentTick => tick as f64,
        RtgsQueueSize | Queue2Size => snap.q2_size as f64,
        RtgsQueueValue => snap.q2_value as f64,
        TotalAgents => sim.agents.len() as f64,
        PostedCollateral => a.posted_collateral as f64,
        MaxCollateralCapacity => a.max_collateral_capacity() as f64,
        RemainingCollateralCapacity => a.remaining_collateral_capacity() as f64,
        CollateralUtilization => {
            let cap = a.max_collateral_capacity() as f64;
            if cap > 0.0 { a.posted_collateral as f64 / cap } else { 0.0 }
        }
        RequiredCollateralForUsage => required_collateral,
        ExcessCollateral => (a.posted_collateral as f64 - required_collateral).max(0.0),
        OverdraftUtilization => {
            let limit = a.allowed_overdraft_limit() as f64;
            if limit > 0.0 { credit_used as f64 / limit } else { 0.0 }
        }
        AllowedOverdraftLimit => a.allowed_overdraft_limit() as f64,
        OverdraftHeadroom => (a.allowed_overdraft_limit() - credit_used) as f64,
        CollateralHaircut => a.haircut,
        Queue1LiquidityGap => (snap.q1_total.saturating_sub(a.available_liquidity())).max(0) as f64,
        Queue1TotalValue => snap.q1_total as f64,
        Headroom => a.available_liquidity().saturating_sub(snap.q1_total) as f64,
        Queue2CountForAgent => snap.q2_count as f64,
        // SimCash's index answers usize::MAX when the agent has nothing queued.
        Queue2NearestDeadline => snap.q2_nearest_deadline.map_or(usize::MAX as f64, |d| d as f64),
        TicksToNearestQueue2Deadline => {
            snap.q2_nearest_deadline.map_or(f64::INFINITY, |d| d.saturating_sub(tick) as f64)
        }
        CostOverdraftBpsPerTick => rates.overdraft_bps_per_tick,
        CostDelayPerTickPerCent => rates.delay_cost_per_tick_per_cent,
        CostCollateralBpsPerTick => rates.collateral_cost_per_tick_bps,
        CostSplitFriction => rates.split_friction_cost as f64,
        SystemTicksPerDay => tpd as f64,
        SystemCurrentDay => (tick / tpd) as f64,
        SystemTickInDay => (tick % tpd) as f64,
        TicksRemainingInDay => tpd.saturating_sub(tick % tpd).saturating_sub(1) as f64,
        DayProgressFraction => (tick % tpd) as f64 / tpd as f64,
        IsEodRush => b((tick % tpd) as f64 / tpd as f64 >= EOD_RUSH_THRESHOLD),
        _ => f64::NAN,
    }
}
