//! The [`Policy`] trait: the one seam every execution tier implements.
//!
//! A built-in policy implements it directly on typed values, with no
//! serialisation on the hot path. The sandboxed tiers (WebAssembly, worker
//! processes, remote endpoints) implement it by encoding the context and
//! input as JSON, calling out, and decoding the answer, so a domain host
//! drives every policy the same way and never knows which tier runs it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::contract::Contract;
use crate::manifest::Manifest;
use crate::run::RunContext;

/// Decision logic behind contract `C`.
pub trait Policy<C: Contract>: Send + Sync {
    /// The policy's manifest.
    fn manifest(&self) -> &Manifest;

    /// Decides. Must be deterministic in `(ctx, input, params)`.
    fn run(&self, ctx: &RunContext, input: &C::Input, params: &C::Params) -> Result<C::Output, PolicyError>;

    /// Decides like [`Policy::run`], ending with [`PolicyError::Cancelled`]
    /// soon after `control` is cancelled. Tiers that can interrupt a
    /// running plugin (a wasm store's epoch callback, a worker process
    /// that can be killed) override this; the default only refuses to
    /// start a run that was cancelled before it began, which suits
    /// built-ins that finish in milliseconds.
    fn run_controlled(
        &self,
        ctx: &RunContext,
        input: &C::Input,
        params: &C::Params,
        control: &RunControl,
    ) -> Result<C::Output, PolicyError> {
        if control.is_cancelled() {
            return Err(PolicyError::Cancelled);
        }
        self.run(ctx, input, params)
    }
}

/// Cancels one run. Cloning shares the flag; cancelling never affects any
/// other run, even of the same plugin, because each run gets its own
/// control and only that run's tier checks it.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    cancelled: Arc<AtomicBool>,
}

impl RunControl {
    /// A control that has not been cancelled.
    pub fn new() -> RunControl {
        RunControl::default()
    }

    /// Asks the run to stop. Each tier notices within its own tick: an
    /// epoch for wasm, a poll of the reply pipe for a worker process.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether [`RunControl::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
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

#[derive(serde::Serialize)]
struct Request<'a, I, P> {
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a RunContext>,
    input: &'a I,
    params: &'a P,
}

/// The JSON request every sandboxed tier sends a plugin:
/// `{"context"?, "input", "params"}`, with the context only when the
/// plugin holds `context:read` (`with_context`).
pub fn encode_request<C: Contract>(
    ctx: &RunContext,
    input: &C::Input,
    params: &C::Params,
    with_context: bool,
) -> Result<Vec<u8>, PolicyError> {
    let context = with_context.then_some(ctx);
    serde_json::to_vec(&Request { context, input, params })
        .map_err(|e| PolicyError::Failed(format!("request could not be encoded: {e}")))
}

/// Decodes a plugin's reply of type `T` (the contract's output, or a tier's
/// envelope around it), naming the JSON path of the first mismatch against
/// `schema_version`.
pub fn decode_reply<T: serde::de::DeserializeOwned>(reply: &[u8], schema_version: &str) -> Result<T, PolicyError> {
    let mut de = serde_json::Deserializer::from_slice(reply);
    let decoded = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        PolicyError::Failed(if inner.is_syntax() || inner.is_eof() {
            format!("reply is not valid JSON: {inner}")
        } else {
            format!("reply does not match `{schema_version}` at `{path}`: {inner}")
        })
    })?;
    de.end().map_err(|e| PolicyError::Failed(format!("reply is not valid JSON: {e}")))?;
    Ok(decoded)
}
