//! The rebalancing domain's tables: station information, neighbour graphs
//! and snapshots ([`snapshots`]), and each decision's run-key fields, spec,
//! snapshot binding and moves ([`decisions`]). A decision is a job of kind
//! [`DECIDE_KIND`] in the generic queue; these tables hold what only
//! rebalancing knows about it.

mod decisions;
mod snapshots;

pub use decisions::{DECIDE_KIND, DecisionCompletion, DecisionRow, MoveRow, NewDecision};
pub use snapshots::{IngestCounts, NewSnapshot, SnapshotRecord, StationRow, SystemSummary};
