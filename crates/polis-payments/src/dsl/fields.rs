//! The context fields a policy may read, as SimCash's evaluation context
//! defines them (`simulator/src/policy/tree/context.rs`).
//!
//! SimCash builds two contexts: `EvalContext::build` for one payment (used
//! by `payment_tree`) and `EvalContext::bank_level` for the bank as a whole
//! (used by `bank_tree` and both collateral trees). A field that only the
//! payment context inserts is [`Scope::Transaction`]; reading it from another
//! tree fails in SimCash at run time, so polis refuses it at validation.
//! Fields named `bank_state_*` are the policy's state registers and are
//! available everywhere (an unset register reads 0).

/// Where a field is available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only in `payment_tree`: the field describes one payment.
    Transaction,
    /// In every tree: the field describes the bank or the system.
    Bank,
}

macro_rules! fields {
    ($( $var:ident = $name:literal : $scope:ident ),* $(,)?) => {
        /// One context field, by SimCash's name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[expect(missing_docs, reason = "each variant is the SimCash field its name() gives")]
        pub enum Field { $($var),* }

        impl Field {
            /// Every field, in SimCash's order.
            pub const ALL: &'static [Field] = &[$(Field::$var),*];

            /// The field's name in policy JSON.
            pub fn name(self) -> &'static str {
                match self { $(Field::$var => $name),* }
            }

            /// Where the field is available.
            pub fn scope(self) -> Scope {
                match self { $(Field::$var => Scope::$scope),* }
            }

            /// The field called `name`, if SimCash's context has one.
            pub fn from_name(name: &str) -> Option<Field> {
                match name { $($name => Some(Field::$var),)* _ => None }
            }
        }
    };
}

fields! {
    // Transaction fields (EvalContext::build only).
    Amount = "amount": Transaction,
    RemainingAmount = "remaining_amount": Transaction,
    SettledAmount = "settled_amount": Transaction,
    ArrivalTick = "arrival_tick": Transaction,
    DeadlineTick = "deadline_tick": Transaction,
    Priority = "priority": Transaction,
    IsSplit = "is_split": Transaction,
    IsPastDeadline = "is_past_deadline": Transaction,
    IsOverdue = "is_overdue": Transaction,
    IsInQueue2 = "is_in_queue2": Transaction,
    OverdueDuration = "overdue_duration": Transaction,
    TicksToDeadline = "ticks_to_deadline": Transaction,
    QueueAge = "queue_age": Transaction,
    MyQ2OutValueToCounterparty = "my_q2_out_value_to_counterparty": Transaction,
    MyQ2InValueFromCounterparty = "my_q2_in_value_from_counterparty": Transaction,
    MyBilateralNetQ2 = "my_bilateral_net_q2": Transaction,
    MyQ2OutValueTop1 = "my_q2_out_value_top_1": Transaction,
    MyQ2OutValueTop2 = "my_q2_out_value_top_2": Transaction,
    MyQ2OutValueTop3 = "my_q2_out_value_top_3": Transaction,
    MyQ2OutValueTop4 = "my_q2_out_value_top_4": Transaction,
    MyQ2OutValueTop5 = "my_q2_out_value_top_5": Transaction,
    TopCpty1IdHash = "top_cpty_1_id_hash": Transaction,
    TopCpty2IdHash = "top_cpty_2_id_hash": Transaction,
    TopCpty3IdHash = "top_cpty_3_id_hash": Transaction,
    TopCpty4IdHash = "top_cpty_4_id_hash": Transaction,
    TopCpty5IdHash = "top_cpty_5_id_hash": Transaction,
    MyQ2InValueTop1 = "my_q2_in_value_top_1": Transaction,
    MyQ2InValueTop2 = "my_q2_in_value_top_2": Transaction,
    MyQ2InValueTop3 = "my_q2_in_value_top_3": Transaction,
    MyQ2InValueTop4 = "my_q2_in_value_top_4": Transaction,
    MyQ2InValueTop5 = "my_q2_in_value_top_5": Transaction,
    MyBilateralNetQ2Top1 = "my_bilateral_net_q2_top_1": Transaction,
    MyBilateralNetQ2Top2 = "my_bilateral_net_q2_top_2": Transaction,
    MyBilateralNetQ2Top3 = "my_bilateral_net_q2_top_3": Transaction,
    MyBilateralNetQ2Top4 = "my_bilateral_net_q2_top_4": Transaction,
    MyBilateralNetQ2Top5 = "my_bilateral_net_q2_top_5": Transaction,
    LsmRunRateLast10Ticks = "lsm_run_rate_last_10_ticks": Transaction,
    SystemThroughputGuidanceFractionByTick = "system_throughput_guidance_fraction_by_tick": Transaction,
    TxCounterpartyId = "tx_counterparty_id": Transaction,
    TxIsTopCounterparty = "tx_is_top_counterparty": Transaction,
    OverdraftUtilization = "overdraft_utilization": Transaction,
    CostDelayThisTxOneTick = "cost_delay_this_tx_one_tick": Transaction,
    CostOverdraftThisAmountOneTick = "cost_overdraft_this_amount_one_tick": Transaction,
    // Bank and system fields (both contexts).
    Balance = "balance": Bank,
    CreditLimit = "credit_limit": Bank,
    AvailableLiquidity = "available_liquidity": Bank,
    CreditUsed = "credit_used": Bank,
    EffectiveLiquidity = "effective_liquidity": Bank,
    IsUsingCredit = "is_using_credit": Bank,
    LiquidityBuffer = "liquidity_buffer": Bank,
    OutgoingQueueSize = "outgoing_queue_size": Bank,
    IncomingExpectedCount = "incoming_expected_count": Bank,
    LiquidityPressure = "liquidity_pressure": Bank,
    CreditHeadroom = "credit_headroom": Bank,
    IsOverdraftCapped = "is_overdraft_capped": Bank,
    SystemQueue2PressureIndex = "system_queue2_pressure_index": Bank,
    MyThroughputFractionToday = "my_throughput_fraction_today": Bank,
    ExpectedThroughputFractionByNow = "expected_throughput_fraction_by_now": Bank,
    ThroughputGap = "throughput_gap": Bank,
    CurrentTick = "current_tick": Bank,
    RtgsQueueSize = "rtgs_queue_size": Bank,
    RtgsQueueValue = "rtgs_queue_value": Bank,
    TotalAgents = "total_agents": Bank,
    PostedCollateral = "posted_collateral": Bank,
    MaxCollateralCapacity = "max_collateral_capacity": Bank,
    RemainingCollateralCapacity = "remaining_collateral_capacity": Bank,
    CollateralUtilization = "collateral_utilization": Bank,
    AllowedOverdraftLimit = "allowed_overdraft_limit": Bank,
    OverdraftHeadroom = "overdraft_headroom": Bank,
    CollateralHaircut = "collateral_haircut": Bank,
    UnsecuredCap = "unsecured_cap": Bank,
    RequiredCollateralForUsage = "required_collateral_for_usage": Bank,
    ExcessCollateral = "excess_collateral": Bank,
    Queue1LiquidityGap = "queue1_liquidity_gap": Bank,
    Queue1TotalValue = "queue1_total_value": Bank,
    Headroom = "headroom": Bank,
    Queue2Size = "queue2_size": Bank,
    Queue2CountForAgent = "queue2_count_for_agent": Bank,
    Queue2NearestDeadline = "queue2_nearest_deadline": Bank,
    TicksToNearestQueue2Deadline = "ticks_to_nearest_queue2_deadline": Bank,
    CostOverdraftBpsPerTick = "cost_overdraft_bps_per_tick": Bank,
    CostDelayPerTickPerCent = "cost_delay_per_tick_per_cent": Bank,
    CostCollateralBpsPerTick = "cost_collateral_bps_per_tick": Bank,
    CostSplitFriction = "cost_split_friction": Bank,
    CostDeadlinePenalty = "cost_deadline_penalty": Bank,
    CostEodPenalty = "cost_eod_penalty": Bank,
    SystemTicksPerDay = "system_ticks_per_day": Bank,
    SystemCurrentDay = "system_current_day": Bank,
    SystemTickInDay = "system_tick_in_day": Bank,
    TicksRemainingInDay = "ticks_remaining_in_day": Bank,
    DayProgressFraction = "day_progress_fraction": Bank,
    IsEodRush = "is_eod_rush": Bank,
}

/// The prefix of state-register fields (`bank_state_cooldown`, …).
pub const STATE_PREFIX: &str = "bank_state_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_maps_back_to_its_field() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(*field));
        }
        assert_eq!(Field::from_name("no_such_field"), None);
    }

    #[test]
    fn transaction_fields_are_scoped_to_payments() {
        assert_eq!(Field::Amount.scope(), Scope::Transaction);
        assert_eq!(Field::Balance.scope(), Scope::Bank);
    }
}
