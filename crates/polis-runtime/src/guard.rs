//! The guard every policy call goes through.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::Instant;

use std::sync::Arc;

use polis_core::canonical::{self, Digest};
use polis_core::contract::{Contract, SchemaError, Violation, Violations};
use polis_core::policy::{Call, HostApi, PolicyError, RunControl};
use polis_core::registry::Entry;
use polis_core::run::RunKey;
use serde::Serialize;

use crate::health::{Breaker, BreakerConfig, PluginMetrics};

/// Ceilings the host applies to every run. A manifest may tighten them,
/// never loosen them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// Largest number of output items. By default 10,000.
    pub max_output_items: u64,
    /// Largest canonical output, in bytes. By default 16 MiB.
    pub max_output_bytes: u64,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits { max_output_items: 10_000, max_output_bytes: 16 << 20 }
    }
}

/// One call: who, on what, with which params.
pub struct RunRequest<'a, C: Contract> {
    /// The run key.
    pub key: RunKey<C::Subject>,
    /// Its digest, which seeds the run.
    pub key_sha256: Digest,
    /// The context the policy sees.
    pub context: C::Context,
    /// The input.
    pub input: &'a C::Input,
    /// The params.
    pub params: &'a C::Params,
    /// Cancels the run from outside; tiers that can interrupt a running
    /// plugin stop it when this is cancelled.
    pub control: RunControl,
    /// The host's capabilities for this run.
    pub host: Arc<dyn HostApi>,
}

/// An input the guard has checked: what the contract kept of it and the
/// digest of its canonical form. A host that runs several policies on one
/// input checks it once ([`Guard::check_input`]) and hands this to each run.
pub struct CheckedInput<C: Contract> {
    /// What [`Contract::check_input`] kept.
    pub checked: C::Checked,
    /// SHA-256 of the input's RFC 8785 form.
    pub digest: Digest,
}

/// What a successful run records: the seed's provenance fields and the
/// validated output.
#[derive(Debug, Clone, Serialize)]
#[serde(bound(serialize = ""))]
pub struct RunRecord<C: Contract> {
    /// The run key.
    pub run_key: RunKey<C::Subject>,
    /// Its digest.
    pub run_key_sha256: Digest,
    /// The plugin that ran.
    pub plugin_id: String,
    /// `SHA-256(JCS(manifest))` of that plugin.
    pub manifest_sha256: Digest,
    /// `SHA-256(JCS(input))`.
    pub input_sha256: Digest,
    /// `SHA-256(JCS(output))`.
    pub output_sha256: Digest,
    /// The validated output.
    pub output: C::Output,
}

/// Why a run produced no output. Every variant names the plugin where one
/// was involved; none of them harms the host.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// A digest the run must record could not be taken (a value JSON cannot
    /// represent); nothing was run.
    #[error("cannot hash the {what}: {message}")]
    NotCanonical {
        /// What could not be hashed: `input`, `run key`, `params`.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The input broke the contract; no policy was called.
    #[error("input is invalid: {0}")]
    InvalidInput(Violations),
    /// The context asks for more than the plugin supports.
    #[error("plugin `{plugin_id}` cannot run this context: {reason}")]
    Unsupported {
        /// The plugin.
        plugin_id: String,
        /// Why.
        reason: String,
    },
    /// The policy itself failed.
    #[error("plugin `{plugin_id}`: {error}")]
    Policy {
        /// The plugin.
        plugin_id: String,
        /// What it reported.
        error: PolicyError,
    },
    /// The policy panicked; the panic was contained.
    #[error("plugin `{plugin_id}` panicked: {message}")]
    Panicked {
        /// The plugin.
        plugin_id: String,
        /// The panic message.
        message: String,
    },
    /// The plugin's circuit breaker is open; it was not called.
    #[error("plugin `{plugin_id}` is failing and its circuit breaker is open; next trial in {retry_after_ms} ms")]
    CircuitOpen {
        /// The plugin.
        plugin_id: String,
        /// Milliseconds until the breaker half-opens.
        retry_after_ms: u64,
    },
    /// The output broke a cap, its schema or the contract's semantic rules.
    #[error("plugin `{plugin_id}` returned an invalid output: {violations}")]
    InvalidOutput {
        /// The plugin.
        plugin_id: String,
        /// What is wrong.
        violations: Violations,
    },
}

impl RunError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::NotCanonical { .. } => "run.not_canonical",
            RunError::InvalidInput(_) => "run.invalid_input",
            RunError::Unsupported { .. } => "run.unsupported",
            RunError::Policy { error, .. } => error.code(),
            RunError::Panicked { .. } => "run.panicked",
            RunError::CircuitOpen { .. } => "run.circuit_open",
            RunError::InvalidOutput { .. } => "run.invalid_output",
        }
    }
}

/// Calls policies of contract `C` and vouches for what comes back.
pub struct Guard<C: Contract> {
    limits: HostLimits,
    output_schema: jsonschema::Validator,
    breaker: BreakerConfig,
    health: Mutex<BTreeMap<String, (Breaker, PluginMetrics)>>,
    _contract: std::marker::PhantomData<fn() -> C>,
}

impl<C: Contract> Guard<C> {
    /// Builds a guard with the default circuit breaker, compiling the
    /// contract's output schema once.
    pub fn new(limits: HostLimits) -> Result<Self, SchemaError> {
        Guard::with_breaker(limits, BreakerConfig::default())
    }

    /// Builds a guard whose per-plugin circuit breakers use `breaker`. A
    /// contract whose output schema does not compile cannot be guarded, so
    /// that is an error rather than a guard that skips the schema check.
    pub fn with_breaker(limits: HostLimits, breaker: BreakerConfig) -> Result<Self, SchemaError> {
        let schema = polis_core::contract::schema_value::<C::Output>();
        let output_schema = polis_core::contract::compile_schema(&schema, C::ID, "output")?;
        Ok(Guard {
            limits,
            output_schema,
            breaker,
            health: Mutex::new(BTreeMap::new()),
            _contract: std::marker::PhantomData,
        })
    }

    /// The metrics of one plugin, with its breaker state now.
    pub fn metrics(&self, plugin_id: &str) -> Option<PluginMetrics> {
        self.all_metrics().remove(plugin_id)
    }

    /// The metrics of every plugin called so far, by plugin id.
    pub fn all_metrics(&self) -> BTreeMap<String, PluginMetrics> {
        let now = Instant::now();
        let Ok(health) = self.health.lock() else {
            return BTreeMap::new();
        };
        health
            .iter()
            .map(|(id, (breaker, metrics))| {
                let mut metrics = metrics.clone();
                metrics.breaker = Some(breaker.state(now));
                metrics.breaker_opened = breaker.times_opened();
                metrics.breaker_retry_after_ms =
                    breaker.retry_after(now).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                (id.clone(), metrics)
            })
            .collect()
    }

    /// Closes a plugin's breaker (re-enabling it by configuration).
    pub fn reset_breaker(&self, plugin_id: &str) {
        if let Ok(mut health) = self.health.lock()
            && let Some((breaker, _)) = health.get_mut(plugin_id)
        {
            breaker.reset();
        }
    }

    fn with_health<T>(&self, plugin_id: &str, f: impl FnOnce(&mut Breaker, &mut PluginMetrics) -> T) -> Option<T> {
        let mut health = self.health.lock().ok()?;
        let (breaker, metrics) = health
            .entry(plugin_id.to_owned())
            .or_insert_with(|| (Breaker::new(self.breaker), PluginMetrics::default()));
        Some(f(breaker, metrics))
    }

    /// The host limits.
    pub fn limits(&self) -> HostLimits {
        self.limits
    }

    /// Validates the input against the contract and hashes it. Hosts that
    /// call many policies on one input call this once and then
    /// [`Guard::run_checked`].
    pub fn check_input(&self, input: &C::Input, params: &C::Params) -> Result<CheckedInput<C>, RunError> {
        let checked = C::check_input(input, params).map_err(RunError::InvalidInput)?;
        let digest = C::input_digest(input).map_err(|e| {
            RunError::InvalidInput(Violations(vec![Violation::new("input.not_canonical", "", e.to_string())]))
        })?;
        Ok(CheckedInput { checked, digest })
    }

    /// Whether the plugin behind `entry` may run this subject and input, by
    /// its contract's rules ([`Contract::admit`]).
    pub fn admit(&self, entry: &Entry<C>, request: &RunRequest<'_, C>) -> Result<(), RunError> {
        C::admit(&entry.fields, &request.key.subject, request.input, request.params)
            .map_err(|reason| RunError::Unsupported { plugin_id: entry.manifest.plugin_id.clone(), reason })
    }

    /// Runs `entry` on the request: validates the input, calls the policy,
    /// and validates and hashes its output.
    pub fn run(&self, entry: &Entry<C>, request: &RunRequest<'_, C>) -> Result<RunRecord<C>, RunError> {
        let checked = self.check_input(request.input, request.params)?;
        self.run_checked(entry, request, &checked)
    }

    /// Like [`Guard::run`] for an input already checked by
    /// [`Guard::check_input`] (the same input and params as the request's).
    /// The plugin's circuit breaker is consulted first and told the
    /// outcome; its metrics count the call.
    pub fn run_checked(
        &self,
        entry: &Entry<C>,
        request: &RunRequest<'_, C>,
        checked: &CheckedInput<C>,
    ) -> Result<RunRecord<C>, RunError> {
        let plugin_id = entry.manifest.plugin_id.as_str();
        let started = Instant::now();
        let admitted = self.with_health(plugin_id, |breaker, metrics| {
            metrics.calls += 1;
            breaker.admit(started)
        });
        if let Some(Err(retry_after)) = admitted {
            let error = RunError::CircuitOpen {
                plugin_id: plugin_id.to_owned(),
                retry_after_ms: u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
            };
            self.with_health(plugin_id, |_, metrics| *metrics.errors.entry(error.code().to_owned()).or_default() += 1);
            return Err(error);
        }
        let result = self.run_admitted(entry, request, checked);
        let finished = Instant::now();
        let micros = u64::try_from(finished.saturating_duration_since(started).as_micros()).unwrap_or(u64::MAX);
        self.with_health(plugin_id, |breaker, metrics| {
            metrics.latency_total_us = metrics.latency_total_us.saturating_add(micros);
            metrics.latency_max_us = metrics.latency_max_us.max(micros);
            match &result {
                Ok(_) => {
                    metrics.successes += 1;
                    breaker.record(true, finished);
                }
                Err(error) => {
                    *metrics.errors.entry(error.code().to_owned()).or_default() += 1;
                    // Only the plugin's own faults count against it.
                    let plugin_fault = !matches!(
                        error,
                        RunError::InvalidInput(_)
                            | RunError::NotCanonical { .. }
                            | RunError::Unsupported { .. }
                            | RunError::Policy { error: PolicyError::Cancelled | PolicyError::NotApproved(_), .. }
                    );
                    if plugin_fault {
                        breaker.record(false, finished);
                    }
                }
            }
        });
        result
    }

    fn run_admitted(
        &self,
        entry: &Entry<C>,
        request: &RunRequest<'_, C>,
        checked: &CheckedInput<C>,
    ) -> Result<RunRecord<C>, RunError> {
        self.admit(entry, request)?;
        let plugin_id = entry.manifest.plugin_id.clone();
        let policy = &entry.policy;
        let call = Call {
            context: &request.context,
            input: request.input,
            params: request.params,
            checked: &checked.checked,
            seed: polis_core::run::seed_of(&request.key_sha256),
            control: &request.control,
            host: &request.host,
        };
        let called = catch_unwind(AssertUnwindSafe(|| policy.run(&call)));
        let output = match called {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => return Err(RunError::Policy { plugin_id, error }),
            Err(panic) => {
                return Err(RunError::Panicked { plugin_id, message: panic_message(&panic) });
            }
        };
        let invalid = |violations: Vec<Violation>| RunError::InvalidOutput {
            plugin_id: plugin_id.clone(),
            violations: Violations(violations),
        };

        let (max_items, max_bytes) = self.caps(entry);
        let items = C::output_items(&output);
        if items as u64 > max_items {
            return Err(invalid(vec![Violation::new(
                "output.too_many_items",
                "",
                format!("{items} items exceed the cap of {max_items}"),
            )]));
        }
        let bytes = canonical::to_canonical_vec(&output)
            .map_err(|e| invalid(vec![Violation::new("output.not_canonical", "", e.to_string())]))?;
        if bytes.len() as u64 > max_bytes {
            return Err(invalid(vec![Violation::new(
                "output.too_large",
                "",
                format!("{} bytes exceed the cap of {max_bytes}", bytes.len()),
            )]));
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(vec![Violation::new("output.not_json", "", e.to_string())]))?;
        let schema_errors: Vec<Violation> = self
            .output_schema
            .iter_errors(&value)
            .take(20)
            .map(|e| Violation::new("output.schema", e.instance_path().to_string(), e.to_string()))
            .collect();
        if !schema_errors.is_empty() {
            return Err(invalid(schema_errors));
        }
        C::validate_output(request.input, request.params, &checked.checked, &output)
            .map_err(|violations| RunError::InvalidOutput { plugin_id: plugin_id.clone(), violations })?;

        Ok(RunRecord {
            run_key: request.key.clone(),
            run_key_sha256: request.key_sha256,
            plugin_id,
            manifest_sha256: entry.manifest_digest,
            input_sha256: checked.digest,
            output_sha256: Digest::of_bytes(&bytes),
            output,
        })
    }

    /// The effective caps: the host's, tightened by the manifest's.
    fn caps(&self, entry: &Entry<C>) -> (u64, u64) {
        let limits = entry.manifest.limits.clone().unwrap_or_default();
        (
            limits.max_output_items.map_or(self.limits.max_output_items, |m| m.min(self.limits.max_output_items)),
            limits.max_output_bytes.map_or(self.limits.max_output_bytes, |m| m.min(self.limits.max_output_bytes)),
        )
    }
}

/// The text of a caught panic: its `&str` or `String` payload, else a
/// placeholder. Every host that contains a plugin's panic reports it so.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
