//! The [`Policy`] trait: the one seam every execution tier implements.
//!
//! A built-in policy implements it directly on typed values, with no
//! serialisation on the hot path. The sandboxed tiers (WebAssembly, worker
//! processes, remote endpoints) implement it by encoding the context and
//! input as JSON, calling out, and decoding the answer, so a domain host
//! drives every policy the same way and never knows which tier runs it.

use crate::contract::Contract;
use crate::manifest::Manifest;
use crate::run::RunContext;

/// Decision logic behind contract `C`.
pub trait Policy<C: Contract>: Send + Sync {
    /// The policy's manifest.
    fn manifest(&self) -> &Manifest;

    /// Decides. Must be deterministic in `(ctx, input, params)`.
    fn run(&self, ctx: &RunContext, input: &C::Input, params: &C::Params) -> Result<C::Output, PolicyError>;
}

/// Why a policy failed to produce an output. The host records it against
/// the plugin and carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The policy refused the input or params.
    #[error("policy rejected its input: {0}")]
    Rejected(String),
    /// The policy broke while running.
    #[error("policy failed: {0}")]
    Failed(String),
    /// The run exceeded a limit (time, memory, output size).
    #[error("policy exceeded its {limit} limit: {detail}")]
    LimitExceeded {
        /// Which limit, such as `timeout` or `output_bytes`.
        limit: &'static str,
        /// What happened.
        detail: String,
    },
    /// The run was cancelled.
    #[error("run was cancelled")]
    Cancelled,
}

impl PolicyError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::Rejected(_) => "policy.rejected",
            PolicyError::Failed(_) => "policy.failed",
            PolicyError::LimitExceeded { .. } => "policy.limit_exceeded",
            PolicyError::Cancelled => "policy.cancelled",
        }
    }
}
