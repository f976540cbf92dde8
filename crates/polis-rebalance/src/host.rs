//! The rebalancing host: the runtime's [`polis_runtime::Host`] over the
//! rebalancing contract, and the run subject every caller builds.
//!
//! Every caller — the CLI, replays, parity checks, the server's workers —
//! decides through [`Host::decide`], so every decision gets the same key
//! derivation, validation and hashes.

use polis_runtime::HostLimits;

use crate::contract::Rebalance;

pub use crate::contract::{DecisionSubject, RunKey};

/// The rebalancing host.
pub type Host = polis_runtime::Host<Rebalance>;

/// A decision to make.
pub type Decision<'a> = polis_runtime::Decision<'a, Rebalance>;

/// Why a decision failed.
pub use polis_runtime::HostError;

/// A host over the built-ins with default limits.
pub fn builtin() -> Result<Host, polis_core::contract::SchemaError> {
    Host::new(crate::builtins::registry(), HostLimits::default())
}
