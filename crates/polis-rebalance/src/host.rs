//! The rebalancing host: resolves a policy, builds its run key and
//! context, and calls it through the runtime's guard.
//!
//! Every caller — the CLI, replays, the server's workers — decides through
//! [`Host::decide`], so every decision gets the same key derivation,
//! validation and hashes.

use polis_core::canonical::Digest;
use polis_core::policy::RunControl;
use polis_core::registry::{Registry, RegistryError};
use polis_core::run::{PolicySpec, RunContext, RunKey};
use polis_runtime::{Guard, HostLimits, RunError, RunRecord, RunRequest};

use crate::contract::{PolicyInput, Rebalance, RebalanceParams};

/// One decision to make.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// The system.
    pub system_id: &'a str,
    /// The serving view.
    pub sv: &'a str,
    /// The decision bucket start.
    pub decision_bucket_ts: i64,
    /// The horizon.
    pub horizon_steps: u32,
    /// A request id to put in the context; derived from the key when absent.
    pub request_id: Option<&'a str>,
    /// The input.
    pub input: &'a PolicyInput,
    /// The params.
    pub params: &'a RebalanceParams,
    /// Cancels the decision from outside (a service's cancel call); a
    /// fresh control for callers that never cancel.
    pub control: Option<&'a RunControl>,
}

/// Why a decision failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    /// The policy version did not resolve.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The run failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

impl HostError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            HostError::Registry(e) => e.code(),
            HostError::Run(e) => e.code(),
        }
    }
}

/// Decides with the policies of one registry.
pub struct Host {
    registry: Registry<Rebalance>,
    guard: Guard<Rebalance>,
}

impl Host {
    /// A host over `registry` with the given limits.
    pub fn new(registry: Registry<Rebalance>, limits: HostLimits) -> Self {
        Host { registry, guard: Guard::new(limits) }
    }

    /// A host whose guard uses the given circuit-breaker settings.
    pub fn with_breaker(
        registry: Registry<Rebalance>,
        limits: HostLimits,
        breaker: polis_runtime::BreakerConfig,
    ) -> Self {
        Host { registry, guard: Guard::with_breaker(limits, breaker) }
    }

    /// The guard, for its per-plugin metrics and breakers.
    pub fn guard(&self) -> &Guard<Rebalance> {
        &self.guard
    }

    /// A host over the built-ins with default limits.
    pub fn builtin() -> Self {
        Host::new(crate::builtins::registry(), HostLimits::default())
    }

    /// The registry.
    pub fn registry(&self) -> &Registry<Rebalance> {
        &self.registry
    }

    /// The policy spec of a version run with `params`.
    pub fn spec(policy_version: &str, params: &RebalanceParams) -> PolicySpec {
        PolicySpec {
            policy_version: policy_version.to_owned(),
            params: serde_json::to_value(params).unwrap_or(serde_json::Value::Null),
        }
    }

    /// The run key of a decision by `policy_version`.
    pub fn run_key(policy_version: &str, decision: &Decision<'_>) -> RunKey {
        let spec = Host::spec(policy_version, decision.params);
        RunKey {
            system_id: decision.system_id.to_owned(),
            sv: decision.sv.to_owned(),
            decision_bucket_ts: decision.decision_bucket_ts,
            policy_version: policy_version.to_owned(),
            policy_spec_sha256: spec.digest().unwrap_or_else(|_| Digest::of_bytes(b"")),
            horizon_steps: decision.horizon_steps,
        }
    }

    /// Validates an input once, returning its digest, for callers that run
    /// several policies on it.
    pub fn check_input(&self, input: &PolicyInput, params: &RebalanceParams) -> Result<Digest, HostError> {
        Ok(self.guard.check_input(input, params)?)
    }

    /// Decides with `policy_version`: resolve (failing closed), key, guard.
    pub fn decide(&self, policy_version: &str, decision: &Decision<'_>) -> Result<RunRecord<Rebalance>, HostError> {
        let input_sha256 = self.check_input(decision.input, decision.params)?;
        self.decide_checked(policy_version, decision, input_sha256)
    }

    /// Like [`Host::decide`] for an input already checked by
    /// [`Host::check_input`].
    pub fn decide_checked(
        &self,
        policy_version: &str,
        decision: &Decision<'_>,
        input_sha256: Digest,
    ) -> Result<RunRecord<Rebalance>, HostError> {
        let entry = self.registry.resolve(policy_version)?;
        let key = Host::run_key(policy_version, decision);
        let context = RunContext::for_key(&key, decision.request_id.map(str::to_owned));
        let control = decision.control.cloned().unwrap_or_default();
        let request = RunRequest { key, context, input: decision.input, params: decision.params, control };
        Ok(self.guard.run_checked(entry, &request, input_sha256)?)
    }
}
