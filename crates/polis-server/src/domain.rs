//! The domain seam of the service.
//!
//! A [`Domain`] is one of polis's systems (rebalancing, strategies, packs,
//! behaviour, payments) as the service sees it: the contracts whose
//! plugins it runs, its routes and their OpenAPI fragment, its console
//! page, and the kinds of job its worker handler runs. The server's core
//! (state, auth, errors, the generic run path, plugin listings, the worker
//! loop, metrics, the console shell) iterates over the registered domains
//! and never names a domain's types; the list lives in
//! [`crate::domains::all`].
//!
//! [`ContractService`] is the object-safe face of one contract's host: its
//! registry, breakers and metrics for plugin listings, and the generic run
//! path (`POST /api/runs`, jobs of kind [`RUN_KIND`]) that any contract gets
//! with no code of its own. [`HostService`] implements it for every
//! contract.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use polis_core::canonical::{self, Digest};
use polis_core::contract::{Contract, ContractInfo};
use polis_core::policy::RunControl;
use polis_core::registry::PluginStatus;
use polis_runtime::{Decision, Host, PluginMetrics};
use polis_store::{JobResult, JobRow};
use serde::{Deserialize, Serialize};

use crate::Core;

/// A boxed future, for the object-safe async methods of [`Domain`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The job kind of the generic run path: one policy run of any contract on
/// an input stored content-addressed.
pub const RUN_KIND: &str = "run";

/// One of polis's systems, as the service serves it.
pub trait Domain: Send + Sync {
    /// A short lowercase name, used in paths and logs: `rebalance`.
    fn name(&self) -> &'static str;

    /// What people call it, for the console's navigation: `Rebalancing`.
    fn title(&self) -> &'static str;

    /// The contracts whose plugins this domain runs.
    fn contracts(&self) -> Vec<Arc<dyn ContractService>>;

    /// The domain's routes, with their state already given.
    fn router(&self) -> Router;

    /// The OpenAPI fragment of those routes: paths and components.
    fn openapi(&self) -> utoipa::openapi::OpenApi {
        utoipa::openapi::OpenApi::default()
    }

    /// Tightens the served OpenAPI document where the derive cannot say
    /// what the handlers check (the policy versions this server knows).
    fn refine_openapi(&self, _document: &mut serde_json::Value) {}

    /// The console page this domain adds to the navigation: its path
    /// (served by [`Domain::router`]) and link text.
    fn console_page(&self) -> Option<(&'static str, &'static str)> {
        None
    }

    /// The console page of one of this domain's jobs, for the front page's
    /// list of recent jobs. By default none.
    fn console_job_link(&self, _job: &JobRow) -> Option<String> {
        None
    }

    /// The job kinds [`Domain::run_job`] handles.
    fn job_kinds(&self) -> &'static [&'static str] {
        &[]
    }

    /// Runs one claimed job of one of [`Domain::job_kinds`]. The handler
    /// either returns a result for the worker to store, or stores its own
    /// rows (with the job's completion in one transaction) and says whether
    /// the lease was still its own.
    fn run_job(&self, job: JobRow, _ctx: JobContext) -> BoxFuture<'_, Result<JobDone, JobFailure>> {
        let kind = job.job.kind;
        Box::pin(async move {
            Err(JobFailure::new("job.unknown_kind", format!("domain `{}` runs no job of kind `{kind}`", self.name())))
        })
    }

    /// Called after this process changed a plugin's allow-list, before the
    /// change is answered: forget cached allow-list lookups.
    fn allow_list_changed(&self) {}

    /// Called once when the service starts, after migrations and after
    /// every contract's registry was mirrored into the store: seed default
    /// data.
    fn start(&self) -> BoxFuture<'_, Result<(), polis_store::StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// What a job handler is given besides its job.
#[derive(Clone)]
pub struct JobContext {
    /// The service's shared state.
    pub core: Core,
    /// Cancelled when the job is cancelled, its lease is lost or its time
    /// is up; pass it to every plugin call.
    pub control: RunControl,
    /// The worker's lease owner name.
    pub owner: String,
    /// How long the job may take.
    pub timeout: Duration,
}

/// How a job handler finished.
#[derive(Debug, Clone, PartialEq)]
pub enum JobDone {
    /// The result for the worker to store with the job.
    Result(JobResult),
    /// The handler stored the job's completion itself; `lease_kept` is
    /// false when the lease was lost and nothing was stored.
    Stored {
        /// Whether the store accepted the completion.
        lease_kept: bool,
        /// The plugin that ran, for metrics.
        plugin_id: Option<String>,
        /// Plugin time in seconds, for metrics.
        seconds: f64,
    },
}

/// Why a job failed; stored with the job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFailure {
    /// A stable code.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// The plugin at fault, when one was.
    pub plugin_id: Option<String>,
    /// Plugin time in seconds.
    pub seconds: f64,
}

impl JobFailure {
    /// A failure with no plugin.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        JobFailure { code: code.into(), message: message.into(), plugin_id: None, seconds: 0.0 }
    }
}

/// One plugin as a contract's host sees it in this process.
#[derive(Debug, Clone)]
pub struct PluginView {
    /// The registry's row.
    pub status: PluginStatus,
    /// The permissions its manifest asks for.
    pub permissions: Vec<String>,
}

/// The object-safe face of one contract's host.
pub trait ContractService: Send + Sync {
    /// The contract's description.
    fn info(&self) -> ContractInfo;

    /// Every plugin of the contract, active then disabled.
    fn plugins(&self) -> Vec<PluginView>;

    /// Per-plugin breaker state and counters in this process.
    fn metrics(&self) -> BTreeMap<String, PluginMetrics>;

    /// The active policy versions, sorted.
    fn policy_versions(&self) -> Vec<String>;

    /// Checks a run submitted through the generic run path and prepares
    /// it: decodes subject, input and params against the contract, derives
    /// the run key and the input's canonical form and digest. Errors name
    /// the field at fault.
    fn prepare(&self, submission: &RunSubmission) -> Result<PreparedRun, SubmissionError>;

    /// Decides a prepared run (as the generic worker does, from the stored
    /// input): the record's output and hashes, or why not. The host must
    /// derive the run key the job was stored under, `key_sha256`. Blocking.
    fn decide(
        &self,
        payload: &RunPayload,
        key_sha256: &str,
        input_json: &str,
        control: &RunControl,
    ) -> Result<JobResult, JobFailure>;
}

/// A run submitted to `POST /api/runs`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSubmission {
    /// The contract, such as `rebalance.v1`.
    pub contract: String,
    /// The policy version.
    pub policy_version: String,
    /// The contract's run subject (for rebalancing: `system_id`, `sv`,
    /// `decision_bucket_ts`, `horizon_steps`).
    #[schema(value_type = Object)]
    pub subject: serde_json::Value,
    /// The contract's input document.
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// The contract's params.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
}

/// What the generic run job carries; the input is stored apart, by digest.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunPayload {
    /// The contract.
    pub contract: String,
    /// The policy version.
    pub policy_version: String,
    /// The run subject, as given.
    pub subject: serde_json::Value,
    /// The params, as given.
    pub params: serde_json::Value,
    /// The input's digest, hex.
    pub input_sha256: String,
}

/// A checked submission, ready to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRun {
    /// The job's payload.
    pub payload: RunPayload,
    /// The run key as canonical JSON.
    pub key_json: String,
    /// Its digest.
    pub key_sha256: Digest,
    /// The input as canonical JSON.
    pub input_json: String,
}

/// Why a submission was refused, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct SubmissionError {
    /// A stable code.
    pub code: &'static str,
    /// The field at fault, such as `input.stations[3].capacity`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// [`ContractService`] for the host of contract `C`.
pub struct HostService<C: Contract> {
    host: Arc<Host<C>>,
}

impl<C: Contract> HostService<C> {
    /// Serves `host`.
    pub fn new(host: Arc<Host<C>>) -> Self {
        HostService { host }
    }

    /// The host.
    pub fn host(&self) -> &Arc<Host<C>> {
        &self.host
    }
}

fn decode<T: serde::de::DeserializeOwned>(value: &serde_json::Value, part: &str) -> Result<T, SubmissionError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        SubmissionError {
            code: "request.invalid_field",
            field: if path == "." { part.to_owned() } else { format!("{part}.{path}") },
            message: e.into_inner().to_string(),
        }
    })
}

impl<C: Contract> ContractService for HostService<C> {
    fn info(&self) -> ContractInfo {
        ContractInfo::of::<C>()
    }

    fn plugins(&self) -> Vec<PluginView> {
        let registry = self.host.registry();
        registry
            .statuses()
            .into_iter()
            .map(|status| {
                let permissions = registry
                    .entries()
                    .find(|e| e.manifest.plugin_id == status.plugin_id)
                    .map(|e| e.manifest.permissions.clone())
                    .unwrap_or_default();
                PluginView { status, permissions }
            })
            .collect()
    }

    fn metrics(&self) -> BTreeMap<String, PluginMetrics> {
        self.host.guard().all_metrics()
    }

    fn policy_versions(&self) -> Vec<String> {
        self.host.registry().versions()
    }

    fn prepare(&self, submission: &RunSubmission) -> Result<PreparedRun, SubmissionError> {
        let subject: C::Subject = decode(&submission.subject, "subject")?;
        let input: C::Input = decode(&submission.input, "input")?;
        let params: C::Params = decode(&submission.params, "params")?;
        self.host.registry().resolve(&submission.policy_version).map_err(|e| SubmissionError {
            code: e.code(),
            field: "policy_version".to_owned(),
            message: e.to_string(),
        })?;
        let input_sha256 = self
            .host
            .check_input(&input, &params)
            .map_err(|e| SubmissionError { code: e.code(), field: "input".to_owned(), message: e.to_string() })?
            .digest;
        let key = Host::<C>::run_key(&submission.policy_version, &subject, &params).map_err(|e| SubmissionError {
            code: e.code(),
            field: "params".to_owned(),
            message: e.to_string(),
        })?;
        let not_canonical = |what: &str, e: canonical::CanonicalError| SubmissionError {
            code: "request.not_canonical",
            field: what.to_owned(),
            message: e.to_string(),
        };
        let key_bytes = canonical::to_canonical_vec(&key).map_err(|e| not_canonical("subject", e))?;
        let input_bytes = canonical::to_canonical_vec(&input).map_err(|e| not_canonical("input", e))?;
        let text = |bytes: Vec<u8>, what: &str| {
            String::from_utf8(bytes).map_err(|e| SubmissionError {
                code: "request.not_canonical",
                field: what.to_owned(),
                message: e.to_string(),
            })
        };
        Ok(PreparedRun {
            payload: RunPayload {
                contract: C::ID.to_owned(),
                policy_version: submission.policy_version.clone(),
                subject: submission.subject.clone(),
                params: submission.params.clone(),
                input_sha256: input_sha256.to_hex(),
            },
            key_sha256: Digest::of_bytes(&key_bytes),
            key_json: text(key_bytes, "subject")?,
            input_json: text(input_bytes, "input")?,
        })
    }

    fn decide(
        &self,
        payload: &RunPayload,
        key_sha256: &str,
        input_json: &str,
        control: &RunControl,
    ) -> Result<JobResult, JobFailure> {
        let bad = |what: &str, e: String| JobFailure::new("job.bad_payload", format!("{what}: {e}"));
        let subject: C::Subject =
            serde_json::from_value(payload.subject.clone()).map_err(|e| bad("subject", e.to_string()))?;
        let params: C::Params =
            serde_json::from_value(payload.params.clone()).map_err(|e| bad("params", e.to_string()))?;
        let input: C::Input = serde_json::from_str(input_json).map_err(|e| bad("input", e.to_string()))?;
        let plugin_id =
            self.host.registry().resolve(&payload.policy_version).ok().map(|e| e.manifest.plugin_id.clone());
        let started = std::time::Instant::now();
        let decision = Decision { control: Some(control), ..Decision::new(&subject, &input, &params) };
        let record = self.host.decide(&payload.policy_version, &decision).map_err(|e| JobFailure {
            code: e.code().to_owned(),
            message: e.to_string(),
            plugin_id: plugin_id.clone(),
            seconds: started.elapsed().as_secs_f64(),
        })?;
        if record.run_key_sha256.to_hex() != key_sha256 {
            return Err(JobFailure {
                code: "run.key_mismatch".to_owned(),
                message: format!("the host derived run key {} for a job stored as {key_sha256}", record.run_key_sha256),
                plugin_id,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        let output = canonical::to_canonical_vec(&record.output)
            .map_err(|e| JobFailure::new("run.not_canonical", e.to_string()))
            .and_then(|b| String::from_utf8(b).map_err(|e| JobFailure::new("run.not_canonical", e.to_string())))?;
        Ok(JobResult {
            plugin_id: Some(record.plugin_id),
            manifest_sha256: Some(record.manifest_sha256.to_hex()),
            input_sha256: Some(record.input_sha256.to_hex()),
            output_sha256: Some(record.output_sha256.to_hex()),
            result_json: output,
            plugin_us: Some(i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX)),
        })
    }
}
