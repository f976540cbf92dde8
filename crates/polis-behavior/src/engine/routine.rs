//! Routine graphs: which node is active, after the original's
//! `routine_resolver.py` `find_active_routine_node`.
//!
//! Nodes are tried in the order listed and the first active one wins: a
//! time slot whose range covers the time of day (`start <= t < end`, or,
//! when `start > end`, the slot wraps midnight: `t >= start || t < end`),
//! a decision node whose conditions all hold, or an activity node, which
//! is always active. Edges are not followed, as in the original.

use crate::engine::conditions::Eval;
use crate::engine::config::{Node, NodeType, Routine, TimeRange};

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// Whether `range` covers `second_of_day`.
pub fn covers(range: TimeRange, second_of_day: i64) -> bool {
    if range.start <= range.end {
        range.start <= second_of_day && second_of_day < range.end
    } else {
        second_of_day >= range.start || second_of_day < range.end
    }
}

/// The first active node of `routine` at `world_time`. With
/// `decisions == false` (the schedule-only tier) decision nodes are
/// passed over without evaluating their conditions.
pub fn active_node<'r>(
    routine: &'r Routine,
    world_time: i64,
    eval: &mut Eval<'_>,
    decisions: bool,
) -> Option<&'r Node> {
    let second = world_time.rem_euclid(DAY);
    routine.nodes.iter().find(|node| match node.node_type {
        NodeType::TimeSlot => node.time_range_seconds.is_some_and(|r| covers(r, second)),
        NodeType::Decision => decisions && eval.all(&node.decision_conditions),
        NodeType::Activity => true,
    })
}
