//! The seams every execution tier implements.
//!
//! - [`Policy`] is decision logic behind one contract. A built-in policy
//!   implements it directly on typed values, with no serialisation on the
//!   hot path.
//! - [`PluginEndpoint`] is a sandboxed plugin (WebAssembly, a worker
//!   process, a remote endpoint) spoken to in JSON: one request to a named
//!   method, one reply. The tiers implement only this, so they know no
//!   contract. [`EndpointPolicy`] puts an endpoint behind [`Policy`] for a
//!   one-method contract; a domain whose plugins answer several methods
//!   (a strategy's `on_event`, a behaviour plugin's `evaluate_condition`)
//!   wraps the endpoint in its own typed trait instead. Either way a host
//!   never knows which tier runs a plugin.
//! - [`HostApi`] is what a plugin may call back on the host during one
//!   call: the domain's capabilities ([`crate::permission::Capability`]).
//!   The tier checks the permission before it asks the host.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::contract::Contract;
use crate::manifest::Manifest;
use crate::permission::{self, Grants};

/// Decision logic behind contract `C`.
pub trait Policy<C: Contract>: Send + Sync {
    /// The policy's manifest.
    fn manifest(&self) -> &Manifest;

    /// Decides. Must be deterministic in the call's context, input, params
    /// and seed, and should end with [`PolicyError::Cancelled`] soon after
    /// `call.control` is cancelled: tiers that can interrupt a running
    /// plugin (a wasm store's epoch, a killable worker process) do so;
    /// built-ins that finish in milliseconds check the control before they
    /// start ([`Call::check_cancelled`]).
    fn run(&self, call: &Call<'_, C>) -> Result<C::Output, PolicyError>;
}

/// Everything one run hands a policy.
pub struct Call<'a, C: Contract> {
    /// What the plugin sees of the run.
    pub context: &'a C::Context,
    /// The input.
    pub input: &'a C::Input,
    /// The params.
    pub params: &'a C::Params,
    /// What the host's check of the input kept ([`Contract::check_input`]).
    pub checked: &'a C::Checked,
    /// The run's seed, derived from its key, below 2^53.
    pub seed: u64,
    /// Cancels the run from outside.
    pub control: &'a RunControl,
    /// The host's capabilities for this call.
    pub host: &'a Arc<dyn HostApi>,
}

impl<C: Contract> Call<'_, C> {
    /// `Err(Cancelled)` when the run was cancelled before it started.
    pub fn check_cancelled(&self) -> Result<(), PolicyError> {
        if self.control.is_cancelled() { Err(PolicyError::Cancelled) } else { Ok(()) }
    }
}

/// The host side of a plugin's calls back: the domain's capabilities for
/// one call. The tier has already checked that the plugin holds the
/// capability's permission when [`HostApi::call`] is reached.
pub trait HostApi: Send + Sync {
    /// Answers host method `method` with JSON `params`, returning a JSON
    /// result.
    fn call(&self, method: &str, params: &[u8]) -> Result<Vec<u8>, HostCallError>;
}

/// A host that offers no capabilities: every call is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHost;

impl HostApi for NoHost {
    fn call(&self, method: &str, _params: &[u8]) -> Result<Vec<u8>, HostCallError> {
        Err(HostCallError::UnknownMethod(method.to_owned()))
    }
}

/// A shared [`NoHost`].
pub fn no_host() -> Arc<dyn HostApi> {
    Arc::new(NoHost)
}

/// Why a host call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostCallError {
    /// No such host method.
    #[error("the host has no method `{0}`")]
    UnknownMethod(String),
    /// The plugin lacks the method's permission.
    #[error(transparent)]
    PermissionDenied(#[from] permission::PermissionDenied),
    /// The params are wrong.
    #[error("bad params for `{method}`: {message}")]
    BadParams {
        /// The method.
        method: String,
        /// What is wrong.
        message: String,
    },
    /// The host refused the call (a write outside the plugin's namespace,
    /// a limit reached).
    #[error("`{method}` refused: {message}")]
    Refused {
        /// The method.
        method: String,
        /// Why.
        message: String,
    },
}

impl HostCallError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            HostCallError::UnknownMethod(_) => "host.unknown_method",
            HostCallError::PermissionDenied(_) => "permission.denied",
            HostCallError::BadParams { .. } => "host.bad_params",
            HostCallError::Refused { .. } => "host.refused",
        }
    }
}

/// A sandboxed plugin of any tier, spoken to in JSON.
pub trait PluginEndpoint: Send + Sync {
    /// The plugin's manifest.
    fn manifest(&self) -> &Manifest;

    /// The permissions the plugin was granted.
    fn grants(&self) -> &Grants;

    /// Sends `request` (a JSON document) to the plugin's `method` and
    /// returns its reply (the JSON result). Every failure is contained and
    /// reported as a [`PolicyError`] naming the limit or fault.
    fn call(&self, method: &str, request: &[u8], env: &CallEnv<'_>) -> Result<Vec<u8>, PolicyError>;

    /// Starts whatever the tier keeps running (a worker process) now rather
    /// than on the first call, so a broken plugin shows at once. By default
    /// there is nothing to start.
    fn probe(&self) -> Result<(), PolicyError> {
        Ok(())
    }
}

/// The per-call environment of an endpoint call.
pub struct CallEnv<'a> {
    /// Seeds the `random` capability.
    pub seed: u64,
    /// Cancels the call.
    pub control: &'a RunControl,
    /// Answers the plugin's calls back on the host.
    pub host: &'a Arc<dyn HostApi>,
}

/// A one-method contract's sandboxed plugin behind [`Policy`]: encodes the
/// call as `{"context"?, "input", "params"}` (the context only with
/// `context:read`), calls [`Contract::METHOD`] and decodes the reply into the
/// contract's output, which the runtime's guard then validates like any
/// built-in's.
pub struct EndpointPolicy<C: Contract> {
    endpoint: Arc<dyn PluginEndpoint>,
    _contract: std::marker::PhantomData<fn() -> C>,
}

impl<C: Contract> EndpointPolicy<C> {
    /// Wraps an endpoint.
    pub fn new(endpoint: Arc<dyn PluginEndpoint>) -> Self {
        EndpointPolicy { endpoint, _contract: std::marker::PhantomData }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Arc<dyn PluginEndpoint> {
        &self.endpoint
    }
}

impl<C: Contract> std::fmt::Debug for EndpointPolicy<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointPolicy")
            .field("contract", &C::ID)
            .field("plugin_id", &self.endpoint.manifest().plugin_id)
            .finish()
    }
}

impl<C: Contract> Policy<C> for EndpointPolicy<C> {
    fn manifest(&self) -> &Manifest {
        self.endpoint.manifest()
    }

    fn run(&self, call: &Call<'_, C>) -> Result<C::Output, PolicyError> {
        call.check_cancelled()?;
        let with_context = self.endpoint.grants().allows(permission::CONTEXT_READ);
        let request = encode_request(with_context.then_some(call.context), call.input, call.params)?;
        let env = CallEnv { seed: call.seed, control: call.control, host: call.host };
        let reply = self.endpoint.call(C::METHOD, &request, &env)?;
        decode_reply(&reply, C::OUTPUT_DOCUMENT)
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
    /// The plugin does not answer this method.
    #[error("plugin does not provide method `{0}`")]
    NoSuchMethod(String),
    /// The run was cancelled.
    #[error("run was cancelled")]
    Cancelled,
    /// The operator has not approved this plugin's version and files, so
    /// it was not called (the service's approval workflow). Not the
    /// plugin's fault: it does not count against its breaker.
    #[error("plugin is not approved to run: {0}")]
    NotApproved(String),
}

impl PolicyError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::Rejected(_) => "policy.rejected",
            PolicyError::Failed(_) => "policy.failed",
            PolicyError::LimitExceeded { .. } => "policy.limit_exceeded",
            PolicyError::NoSuchMethod(_) => "policy.no_such_method",
            PolicyError::Cancelled => "policy.cancelled",
            PolicyError::NotApproved(_) => "policy.not_approved",
        }
    }
}

#[derive(serde::Serialize)]
struct Request<'a, X, I, P> {
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a X>,
    input: &'a I,
    params: &'a P,
}

/// The JSON request a one-method contract sends its sandboxed plugins:
/// `{"context"?, "input", "params"}`.
pub fn encode_request<X: serde::Serialize, I: serde::Serialize, P: serde::Serialize>(
    context: Option<&X>,
    input: &I,
    params: &P,
) -> Result<Vec<u8>, PolicyError> {
    serde_json::to_vec(&Request { context, input, params })
        .map_err(|e| PolicyError::Failed(format!("request could not be encoded: {e}")))
}

/// Decodes a plugin's reply of type `T`, naming the JSON path of the first
/// mismatch against `what` (the contract or document the reply should be).
pub fn decode_reply<T: serde::de::DeserializeOwned>(reply: &[u8], what: &str) -> Result<T, PolicyError> {
    let mut de = serde_json::Deserializer::from_slice(reply);
    let decoded = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        PolicyError::Failed(if inner.is_syntax() || inner.is_eof() {
            format!("reply is not valid JSON: {inner}")
        } else {
            format!("reply does not match `{what}` at `{path}`: {inner}")
        })
    })?;
    de.end().map_err(|e| PolicyError::Failed(format!("reply is not valid JSON: {e}")))?;
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_decode_and_bad_ones_name_the_path() {
        assert_eq!(decode_reply::<Vec<u32>>(b"[1,2]", "v1"), Ok(vec![1, 2]));
        assert!(
            matches!(decode_reply::<Vec<u32>>(br#"["x"]"#, "v1"), Err(PolicyError::Failed(m)) if m.contains("does not match `v1` at `[0]`"))
        );
        assert!(
            matches!(decode_reply::<Vec<u32>>(b"[1,", "v1"), Err(PolicyError::Failed(m)) if m.contains("not valid JSON"))
        );
        assert!(matches!(decode_reply::<Vec<u32>>(b"[1] trailing", "v1"), Err(PolicyError::Failed(_))));
    }

    #[test]
    fn the_request_carries_the_context_only_when_asked() {
        let with = encode_request(Some(&"ctx"), &1, &2).unwrap();
        assert_eq!(with, br#"{"context":"ctx","input":1,"params":2}"#);
        let without = encode_request::<&str, _, _>(None, &1, &2).unwrap();
        assert_eq!(without, br#"{"input":1,"params":2}"#);
    }

    #[test]
    fn no_host_refuses_every_method() {
        assert_eq!(NoHost.call("session.get", b"{}"), Err(HostCallError::UnknownMethod("session.get".into())));
    }
}
