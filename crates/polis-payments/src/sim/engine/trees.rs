//! The bank-level trees, as SimCash's `Orchestrator::tick` runs them
//! (`simulator/src/orchestrator/engine.rs`, steps 1.5, 1.75, 1.8 and 5.5):
//! the strategic collateral tree, the bank tree (release budgets and state
//! registers), collateral auto-withdrawal timers, and the end-of-tick
//! collateral tree. Every agent is visited in sorted id order.

use super::context::{BankCtx, Snapshot};
use super::{Budget, Event, Sim, SimError};
use crate::dsl::{BankAction, CollateralAction, DecisionPath, Tree};

/// SimCash's guarded withdrawal for timers keeps the limit covering the
/// credit in use plus this (`SAFETY_BUFFER`).
const SAFETY_BUFFER: i64 = 100;

/// Which collateral tree runs.
#[derive(Clone, Copy, Debug)]
pub(super) enum Layer {
    /// Step 1.5, before payments are decided.
    Strategic,
    /// Step 5.5, after the LSM.
    EndOfTick,
}

impl Sim {
    fn policy_error(&self, agent: usize, tick: usize, message: String) -> SimError {
        SimError::Policy { agent: self.agents[agent].id.clone(), tick, message }
    }

    /// Steps 1.5 and 5.5: each agent's collateral tree posts, withdraws or
    /// holds. Posting more than the remaining capacity aborts the run, as in
    /// SimCash.
    pub(super) fn collateral_trees(&mut self, tick: usize, layer: Layer) -> Result<(), SimError> {
        for &i in &self.sorted.clone() {
            let policy = self.agents[i].policy.clone();
            let tree: Option<&Tree<CollateralAction>> = match layer {
                Layer::Strategic => policy.strategic_collateral.as_ref(),
                Layer::EndOfTick => policy.end_of_tick_collateral.as_ref(),
            };
            let Some(tree) = tree else { continue };
            let snap = Snapshot::of(self, i);
            let ctx = BankCtx { sim: self, agent: i, tick, snap: &snap, penalty_basis: 1 };
            let mut path = DecisionPath::default();
            let fail = |e: crate::dsl::EvalError| self.policy_error(i, tick, e.to_string());
            let action = tree.evaluate(&ctx, self.record.then_some(&mut path)).map_err(fail)?;
            // SimCash truncates amounts to whole cents; zero or less is a hold.
            let (post, withdraw, auto_withdraw) = match action {
                CollateralAction::Post { amount, auto_withdraw_after_ticks } => {
                    let amount = amount.eval(&ctx, &"amount".into()).map_err(fail)? as i64;
                    let after = match auto_withdraw_after_ticks {
                        Some(t) => Some(t.eval(&ctx, &"auto_withdraw_after_ticks".into()).map_err(fail)?),
                        None => None,
                    };
                    (amount, 0, after.filter(|&t| t > 0.0).map(|t| t as usize))
                }
                CollateralAction::Withdraw { amount } => {
                    (0, amount.eval(&ctx, &"amount".into()).map_err(fail)? as i64, None)
                }
                CollateralAction::Hold => (0, 0, None),
            };
            let a = &mut self.agents[i];
            let change = if post > 0 {
                let capacity = a.remaining_collateral_capacity();
                if post > capacity {
                    return Err(self.policy_error(
                        i,
                        tick,
                        format!("tried to post {post} collateral but only has {capacity} capacity remaining"),
                    ));
                }
                a.posted_collateral += post;
                if let Some(after) = auto_withdraw {
                    a.collateral_timers.entry(tick + after).or_default().push(post);
                }
                post
            } else if withdraw > 0 {
                let actual = withdraw.min(a.posted_collateral);
                a.posted_collateral -= actual;
                -actual
            } else {
                0
            };
            if change != 0 {
                let total = self.agents[i].posted_collateral;
                self.emit(|s| Event::Collateral {
                    tick,
                    agent: s.agents[i].id.clone(),
                    change,
                    posted: total,
                    path: path.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Step 1.75: each agent's bank tree sets its release budget or a state
    /// register; `NoAction`, or no bank tree at all, lifts the budget.
    pub(super) fn bank_trees(&mut self, tick: usize) -> Result<(), SimError> {
        for &i in &self.sorted.clone() {
            let policy = self.agents[i].policy.clone();
            let Some(tree) = policy.bank.as_ref() else {
                self.agents[i].budget = Budget::unlimited();
                continue;
            };
            let snap = Snapshot::of(self, i);
            let ctx = BankCtx { sim: self, agent: i, tick, snap: &snap, penalty_basis: 0 };
            let mut path = DecisionPath::default();
            let fail = |e: crate::dsl::EvalError| self.policy_error(i, tick, e.to_string());
            let action = tree.evaluate(&ctx, self.record.then_some(&mut path)).map_err(fail)?;
            let (name, budget, register) = match action {
                BankAction::SetReleaseBudget { max_value_to_release, focus_counterparties, max_per_counterparty } => {
                    let max = max_value_to_release.eval(&ctx, &"max_value_to_release".into()).map_err(fail)? as i64;
                    let per = match max_per_counterparty {
                        Some(n) => Some(n.eval(&ctx, &"max_per_counterparty".into()).map_err(fail)? as i64),
                        None => None,
                    };
                    let focus = focus_counterparties.clone().filter(|f| !f.is_empty());
                    let budget = Budget { remaining: max, focus, per_counterparty: per, used: Default::default() };
                    (format!("SetReleaseBudget({max})"), Some(budget), None)
                }
                BankAction::SetState { slot, value } => {
                    let v = value.eval(&ctx, &"value".into()).map_err(fail)?;
                    (format!("SetState({}={v})", policy.registers[*slot]), None, Some((*slot, v)))
                }
                BankAction::AddState { slot, value } => {
                    let v = ctx.sim.agents[i].registers[*slot] + value.eval(&ctx, &"value".into()).map_err(fail)?;
                    (format!("AddState({}={v})", policy.registers[*slot]), None, Some((*slot, v)))
                }
                BankAction::NoAction => ("NoAction".to_string(), Some(Budget::unlimited()), None),
            };
            let a = &mut self.agents[i];
            if let Some(budget) = budget {
                a.budget = budget;
            }
            if let Some((slot, v)) = register {
                a.registers[slot] = v;
            }
            if self.record {
                let agent = self.agents[i].id.clone();
                self.events.push(Event::BankDecision { tick, agent, action: name, path: path.to_string() });
            }
        }
        Ok(())
    }

    /// Step 1.8: collateral auto-withdrawals falling due now, each as much
    /// as keeps the limit covering the credit in use plus a safety buffer.
    /// (SimCash's five-tick minimum holding period never binds on this
    /// path: posting through a tree does not record when it was posted.)
    pub(super) fn collateral_timers(&mut self, tick: usize) {
        for &i in &self.sorted.clone() {
            let Some(due) = self.agents[i].collateral_timers.remove(&tick) else { continue };
            for requested in due {
                let a = &mut self.agents[i];
                let actual = requested.min(a.max_withdrawable_collateral(SAFETY_BUFFER)).min(a.posted_collateral);
                if requested > 0 && actual > 0 {
                    a.posted_collateral -= actual;
                    let total = a.posted_collateral;
                    self.emit(|s| Event::Collateral {
                        tick,
                        agent: s.agents[i].id.clone(),
                        change: -actual,
                        posted: total,
                        path: "auto_withdraw".into(),
                    });
                }
            }
        }
    }
}
