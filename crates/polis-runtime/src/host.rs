//! The host every caller decides through, for any contract: resolve a
//! policy version (failing closed), derive the run key, seed and context,
//! call through the guard, and return the run record.
//!
//! The CLI, replays, parity checks and the service's workers all decide
//! through [`Host::decide`], so every decision of every domain gets the same
//! key derivation, validation and hashes.

use std::sync::Arc;

use polis_core::contract::{Contract, SchemaError};
use polis_core::policy::{HostApi, RunControl, no_host};
use polis_core::registry::{Registry, RegistryError};
use polis_core::run::{PolicySpec, RunKey};

use crate::guard::{CheckedInput, Guard, HostLimits, RunError, RunRecord, RunRequest};
use crate::health::BreakerConfig;

/// One decision to make.
pub struct Decision<'a, C: Contract> {
    /// What the run decides on besides its input.
    pub subject: &'a C::Subject,
    /// The input.
    pub input: &'a C::Input,
    /// The params.
    pub params: &'a C::Params,
    /// A request id to put in the context; the contract derives one from
    /// the key when absent.
    pub request_id: Option<&'a str>,
    /// Cancels the decision from outside (a service's cancel call); `None`
    /// for callers that never cancel.
    pub control: Option<&'a RunControl>,
    /// The host's capabilities for this run; `None` offers none.
    pub host: Option<Arc<dyn HostApi>>,
}

impl<'a, C: Contract> Decision<'a, C> {
    /// A decision with no request id, no cancellation and no capabilities.
    pub fn new(subject: &'a C::Subject, input: &'a C::Input, params: &'a C::Params) -> Self {
        Decision { subject, input, params, request_id: None, control: None, host: None }
    }
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

/// Decides with the policies of one registry of contract `C`.
pub struct Host<C: Contract> {
    registry: Registry<C>,
    guard: Guard<C>,
}

impl<C: Contract> Host<C> {
    /// A host over `registry` with the given limits and the default
    /// breaker.
    pub fn new(registry: Registry<C>, limits: HostLimits) -> Result<Self, SchemaError> {
        Ok(Host { registry, guard: Guard::new(limits)? })
    }

    /// A host whose guard uses the given circuit-breaker settings.
    pub fn with_breaker(
        registry: Registry<C>,
        limits: HostLimits,
        breaker: BreakerConfig,
    ) -> Result<Self, SchemaError> {
        Ok(Host { registry, guard: Guard::with_breaker(limits, breaker)? })
    }

    /// The guard, for its per-plugin metrics and breakers.
    pub fn guard(&self) -> &Guard<C> {
        &self.guard
    }

    /// The registry.
    pub fn registry(&self) -> &Registry<C> {
        &self.registry
    }

    /// The policy spec of a version run with `params`.
    pub fn spec(policy_version: &str, params: &C::Params) -> Result<PolicySpec, RunError> {
        PolicySpec::new(policy_version, params)
            .map_err(|e| RunError::NotCanonical { what: "params", message: e.to_string() })
    }

    /// The run key of a decision by `policy_version`.
    pub fn run_key(
        policy_version: &str,
        subject: &C::Subject,
        params: &C::Params,
    ) -> Result<RunKey<C::Subject>, RunError> {
        let spec = Host::<C>::spec(policy_version, params)?;
        let policy_spec_sha256 =
            spec.digest().map_err(|e| RunError::NotCanonical { what: "policy spec", message: e.to_string() })?;
        Ok(RunKey { subject: subject.clone(), policy_version: policy_version.to_owned(), policy_spec_sha256 })
    }

    /// Validates and hashes an input once, for callers that run several
    /// policies on it.
    pub fn check_input(&self, input: &C::Input, params: &C::Params) -> Result<CheckedInput<C>, HostError> {
        Ok(self.guard.check_input(input, params)?)
    }

    /// Decides with `policy_version`: resolve (failing closed), key, guard.
    pub fn decide(&self, policy_version: &str, decision: &Decision<'_, C>) -> Result<RunRecord<C>, HostError> {
        let checked = self.check_input(decision.input, decision.params)?;
        self.decide_checked(policy_version, decision, &checked)
    }

    /// Like [`Host::decide`] for the decision's input and params already
    /// checked by [`Host::check_input`].
    pub fn decide_checked(
        &self,
        policy_version: &str,
        decision: &Decision<'_, C>,
        checked: &CheckedInput<C>,
    ) -> Result<RunRecord<C>, HostError> {
        let entry = self.registry.resolve(policy_version)?;
        let key = Host::<C>::run_key(policy_version, decision.subject, decision.params)?;
        let key_sha256 =
            key.digest().map_err(|e| RunError::NotCanonical { what: "run key", message: e.to_string() })?;
        let context = C::context(&key, &key_sha256, decision.request_id);
        let request = RunRequest {
            key,
            key_sha256,
            context,
            input: decision.input,
            params: decision.params,
            control: decision.control.cloned().unwrap_or_default(),
            host: decision.host.clone().unwrap_or_else(no_host),
        };
        Ok(self.guard.run_checked(entry, &request, checked)?)
    }
}
