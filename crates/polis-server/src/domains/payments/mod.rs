//! Payment policies and SimCash simulations as a service (seed 004).
//!
//! - `POST /api/payments/policies` validates a policy and stores it for an
//!   agent in `agent_policies`; `GET` lists them and reads one.
//! - `POST /api/payments/simulations` takes a scenario (SimCash's YAML or
//!   JSON text) and an optional sweep, and enqueues one job per sweep point
//!   on the platform's queue, so `polis worker`s on PostgreSQL share a sweep;
//!   `GET /api/payments/simulations/{id}` shows every point as it now is.
//!
//! - `/console/payments` ([`console`]) shows the stored policies, the
//!   recent simulation jobs, one job's costs per agent, and a sweep's plot.
//!
//! A scenario read here may use `FromDatabase` (rows are read before the
//! run); `FromUrl` and `json_path` are refused: a request must not make the
//! service fetch an address or read a file of its choosing.

pub mod console;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use polis_core::canonical::Digest;
use polis_payments::dsl;
use polis_payments::sim::{self, Options, PolicyFetcher, Report};
use polis_store::{AgentPolicy, JobRow, JobStatus, NewJob, StoredInput};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};

use crate::Core;
use crate::domain::{BoxFuture, ContractService, Domain, JobContext, JobDone, JobFailure};
use crate::error::{AppError, ErrorBody};
use crate::extract::{AdminIdentity, ApiJson, Auth, Identity, ReadAccess};
use crate::runs::{answer_status, canonical_result, canonical_text, job_id_for};

/// The job kind of one simulation (one sweep point).
pub const SIMULATE_KIND: &str = "payments.simulate";

/// What stored scenarios and simulation requests are filed under.
const SCENARIO_CONTRACT: &str = "payments.scenario";
const SIMULATION_CONTRACT: &str = "payments.simulation";

/// Largest request: a scenario file is capped at this size anyway.
const BODY_LIMIT: usize = sim::config::MAX_SCENARIO_BYTES + (64 << 10);

/// What the payments routes share.
#[derive(Clone)]
pub struct PaymentsState {
    /// The service's shared state.
    pub core: Core,
}

impl FromRef<PaymentsState> for Arc<Auth> {
    fn from_ref(state: &PaymentsState) -> Self {
        Arc::clone(&state.core.auth)
    }
}

/// The payments domain.
pub struct PaymentsDomain {
    state: PaymentsState,
}

/// The domain over `core`.
pub fn domain(core: &Core) -> Arc<dyn Domain> {
    Arc::new(PaymentsDomain { state: PaymentsState { core: core.clone() } })
}

impl Domain for PaymentsDomain {
    fn name(&self) -> &'static str {
        "payments"
    }

    fn title(&self) -> &'static str {
        "Payments"
    }

    fn contracts(&self) -> Vec<Arc<dyn ContractService>> {
        // Payment policies are decision trees run by the simulator, not
        // plugins on the one-call run path.
        Vec::new()
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/api/payments/policies", post(put_policy).get(list_policies))
            .route("/api/payments/policies/{agent_id}", get(get_policy))
            .route("/api/payments/simulations", post(submit).layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT)))
            .route("/api/payments/simulations/{id}", get(simulation_status))
            .merge(console::router())
            .with_state(self.state.clone())
    }

    fn console_page(&self) -> Option<(&'static str, &'static str)> {
        Some(("/console/payments", "Payments"))
    }

    fn console_job_link(&self, job: &JobRow) -> Option<String> {
        (job.job.kind == SIMULATE_KIND).then(|| format!("/console/payments?job={}", job.job.job_id))
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        PaymentsDoc::openapi()
    }

    fn job_kinds(&self) -> &'static [&'static str] {
        &[SIMULATE_KIND]
    }

    fn run_job(&self, job: JobRow, ctx: JobContext) -> BoxFuture<'_, Result<JobDone, JobFailure>> {
        Box::pin(run_simulation(job, ctx))
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(put_policy, list_policies, get_policy, submit, simulation_status),
    components(schemas(
        PolicyPut,
        StoredPolicy,
        PolicySummary,
        SimulationRequest,
        SimulationResponse,
        SimulationPoint
    ))
)]
struct PaymentsDoc;

/// A policy to store for an agent: exactly one of `policy` (the JSON
/// document) and `policy_json` (the same as a string).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPut {
    /// The agent (`agents[].id` in a scenario).
    pub agent_id: String,
    /// The policy document.
    #[serde(default)]
    pub policy: Option<Value>,
    /// The policy as JSON text.
    #[serde(default)]
    pub policy_json: Option<String>,
}

/// A stored policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredPolicy {
    /// The agent.
    pub agent_id: String,
    /// The policy's `policy_id`.
    pub policy_id: String,
    /// SHA-256 of the stored text, hex.
    pub policy_sha256: String,
    /// The stored text (only when reading one policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_json: Option<String>,
    /// Who stored it.
    pub updated_by: String,
    /// When, milliseconds since the epoch.
    pub updated_at_ms: i64,
}

/// One row of the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicySummary {
    /// The agent.
    pub agent_id: String,
    /// SHA-256 of the stored text, hex.
    pub policy_sha256: String,
    /// Who stored it.
    pub updated_by: String,
    /// When, milliseconds since the epoch.
    pub updated_at_ms: i64,
}

#[utoipa::path(post, path = "/api/payments/policies", request_body = PolicyPut,
    description = "Validates a payment policy (SimCash's decision-tree DSL) and stores it for an agent in \
        `agent_policies`, replacing its last one; a scenario reads it with `policy: {type: FromDatabase}`. \
        An invalid policy is a 422 listing every problem with its JSON path, and nothing is stored. Role: admin.",
    responses((status = 201, body = StoredPolicy), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_policy(
    AdminIdentity(identity): AdminIdentity,
    State(state): State<PaymentsState>,
    ApiJson(put): ApiJson<PolicyPut>,
) -> Result<(StatusCode, Json<StoredPolicy>), AppError> {
    if put.agent_id.is_empty() || put.agent_id.len() > 256 {
        return Err(AppError::bad_request("payments.agent_id", "agent_id".to_string(), "must be 1 to 256 bytes"));
    }
    let text = match (put.policy, put.policy_json) {
        (Some(doc), None) => serde_json::to_string(&doc).map_err(|e| AppError::internal("encode", e))?,
        (None, Some(text)) => text,
        _ => {
            return Err(AppError::bad_request(
                "payments.policy_source",
                "policy".to_string(),
                "give exactly one of `policy` and `policy_json`",
            ));
        }
    };
    let checked = dsl::compile(&text, &BTreeMap::new()).map_err(|report| {
        let lines: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        AppError::unprocessable(
            "payments.policy_invalid",
            "policy",
            format!("not a valid policy: {}", lines.join("; ")),
        )
    })?;
    let row = AgentPolicy {
        agent_id: put.agent_id,
        policy_sha256: Digest::of_bytes(text.as_bytes()).to_hex(),
        policy_json: text,
        updated_by: identity.subject,
        updated_at_ms: crate::now_ms(),
    };
    state.core.store.put_agent_policy(&row).await?;
    Ok((StatusCode::CREATED, Json(stored(&row, checked.policy.policy_id.clone(), false))))
}

fn stored(row: &AgentPolicy, policy_id: String, with_text: bool) -> StoredPolicy {
    StoredPolicy {
        agent_id: row.agent_id.clone(),
        policy_id,
        policy_sha256: row.policy_sha256.clone(),
        policy_json: with_text.then(|| row.policy_json.clone()),
        updated_by: row.updated_by.clone(),
        updated_at_ms: row.updated_at_ms,
    }
}

#[utoipa::path(get, path = "/api/payments/policies",
    description = "Every stored payment policy, by agent id. Role: read.",
    responses((status = 200, body = [PolicySummary]), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_policies(
    _: ReadAccess,
    State(state): State<PaymentsState>,
) -> Result<Json<Vec<PolicySummary>>, AppError> {
    let rows = state.core.store.agent_policies().await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| PolicySummary {
                agent_id: r.agent_id,
                policy_sha256: r.policy_sha256,
                updated_by: r.updated_by,
                updated_at_ms: r.updated_at_ms,
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/payments/policies/{agent_id}", params(("agent_id" = String, Path, description = "the agent")),
    description = "An agent's stored policy with its text. Role: read.",
    responses((status = 200, body = StoredPolicy), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_policy(
    _: ReadAccess,
    State(state): State<PaymentsState>,
    Path(agent_id): Path<String>,
) -> Result<Json<StoredPolicy>, AppError> {
    let row = state.core.store.agent_policy(&agent_id).await?.ok_or_else(|| {
        AppError::not_found("payments.policy_not_found", "agent_id", format!("no policy is stored for `{agent_id}`"))
    })?;
    // Stored policies were validated when put; one this version of polis
    // no longer accepts is reported, not shown with an empty id.
    let policy_id =
        dsl::compile(&row.policy_json, &BTreeMap::new()).map(|c| c.policy.policy_id.clone()).map_err(|r| {
            AppError::internal("payments.stored_policy_invalid", format!("{agent_id}: {} problems", r.errors.len()))
        })?;
    Ok(Json(stored(&row, policy_id, true)))
}

/// A simulation to run.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulationRequest {
    /// The scenario: SimCash's YAML or JSON, as text.
    pub scenario: String,
    /// `NAME=START..END:STEP`: one job per value (see `polis payments
    /// simulate --sweep`).
    #[serde(default)]
    pub sweep: Option<String>,
    /// Apply what SimCash's YAML path drops (diverges from SimCash).
    #[serde(default)]
    pub honour_all: bool,
}

/// What the service stores for a simulation: its scenario by digest.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct SimulationRecord {
    scenario_sha256: String,
    sweep: Option<String>,
    honour_all: bool,
}

/// One job's payload: the scenario and, in a sweep, the point.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct PointPayload {
    scenario_sha256: String,
    name: Option<String>,
    value: Option<f64>,
    honour_all: bool,
}

/// A simulation as it now is.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimulationResponse {
    /// Its id (derived from the request, so the same request is the same
    /// simulation).
    pub simulation_id: String,
    /// `pending` until every point is ready; `error` if one failed.
    pub status: String,
    /// The swept name, if a sweep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<String>,
    /// One entry per job, in value order.
    pub points: Vec<SimulationPoint>,
}

/// One job of a simulation.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimulationPoint {
    /// The job.
    pub job_id: String,
    /// The swept value, if a sweep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// `pending`, `ready`, `error` or `cancelled`.
    pub status: String,
    /// The report (`polis payments simulate --json`), once ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub report: Option<Value>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The jobs of a simulation, derived from its record.
fn jobs_of(record: &SimulationRecord) -> Result<Vec<(PointPayload, String)>, AppError> {
    let points: Vec<(Option<String>, Option<f64>)> = match &record.sweep {
        None => vec![(None, None)],
        Some(spec) => {
            let spec = sim::sweep::parse(spec).map_err(|e| AppError::unprocessable("payments.sweep", "sweep", e))?;
            spec.values.iter().map(|&v| (Some(spec.name.clone()), Some(v))).collect()
        }
    };
    points
        .into_iter()
        .map(|(name, value)| {
            let payload = PointPayload {
                scenario_sha256: record.scenario_sha256.clone(),
                name,
                value,
                honour_all: record.honour_all,
            };
            let key = canonical_text(&json!({"kind": SIMULATE_KIND, "point": payload}))?;
            Ok((payload, Digest::of_bytes(key.as_bytes()).to_hex()))
        })
        .collect()
}

#[utoipa::path(post, path = "/api/payments/simulations", request_body = SimulationRequest,
    description = "Checks a SimCash scenario (and sweep) and enqueues one simulation job per point on the platform's \
        queue, so `polis worker`s share a sweep. The same request is the same simulation. `FromDatabase` policies are \
        read from `agent_policies`; `FromUrl` and `json_path` are refused. Role: read; rate-limited per token.",
    responses((status = 202, body = SimulationResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, description = "this token asked too often; see `Retry-After`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn submit(
    identity: Identity,
    State(state): State<PaymentsState>,
    ApiJson(request): ApiJson<SimulationRequest>,
) -> Result<(StatusCode, Json<SimulationResponse>), AppError> {
    state.core.run_rate.admit(&identity.subject, std::time::Instant::now())?;
    let loaded = sim::config::parse(&request.scenario, false)
        .map_err(|e| AppError::unprocessable("payments.scenario_invalid", "scenario", e.to_string()))?;
    for (i, agent) in loaded.scenario.agents.iter().enumerate() {
        let kind = agent.policy.as_ref().and_then(|p| p.get("type")).and_then(Value::as_str).unwrap_or("Fifo");
        let path_given = agent.policy.as_ref().is_some_and(|p| p.get("json_path").is_some());
        if kind == "FromUrl" || path_given {
            return Err(AppError::unprocessable(
                "payments.source_refused",
                "scenario",
                format!(
                    "agents[{i}].policy: the service reads policies from the scenario or agent_policies only (not `FromUrl` or `json_path`)"
                ),
            ));
        }
    }
    let store = &state.core.store;
    let now = crate::now_ms();
    let scenario_sha256 = Digest::of_bytes(request.scenario.as_bytes()).to_hex();
    let record = SimulationRecord {
        scenario_sha256: scenario_sha256.clone(),
        sweep: request.sweep.clone(),
        honour_all: request.honour_all,
    };
    let jobs = jobs_of(&record)?;
    let record_text = canonical_text(&record)?;
    let simulation_sha256 = Digest::of_bytes(record_text.as_bytes()).to_hex();
    store
        .put_input(
            &StoredInput {
                input_sha256: scenario_sha256.clone(),
                contract: SCENARIO_CONTRACT.into(),
                body_json: canonical_text(&json!({"scenario": request.scenario}))?,
            },
            now,
        )
        .await?;
    store
        .put_input(
            &StoredInput {
                input_sha256: simulation_sha256.clone(),
                contract: SIMULATION_CONTRACT.into(),
                body_json: record_text,
            },
            now,
        )
        .await?;
    let mut enqueued_any = false;
    for (payload, key_sha256) in &jobs {
        if matches!(store.job_by_key(key_sha256).await?, Some(row) if row.status != JobStatus::Cancelled) {
            continue;
        }
        let job = NewJob {
            job_id: job_id_for(key_sha256),
            kind: SIMULATE_KIND.into(),
            contract: None,
            key_sha256: key_sha256.clone(),
            key_json: None,
            payload_json: Some(canonical_text(payload)?),
            policy_version: None,
            input_sha256: Some(scenario_sha256.clone()),
            submitted_by: Some(identity.subject.clone()),
        };
        enqueued_any |= store.enqueue_job(&job, now).await?.1;
    }
    if enqueued_any {
        tracing::info!(simulation = %simulation_sha256, jobs = jobs.len(), "payments simulation enqueued");
        state.core.work_available.notify_waiters();
    }
    let id = format!("sim-{simulation_sha256}");
    Ok((StatusCode::ACCEPTED, Json(status_of(&state, &id, &record).await?)))
}

async fn status_of(state: &PaymentsState, id: &str, record: &SimulationRecord) -> Result<SimulationResponse, AppError> {
    let mut points = Vec::new();
    for (payload, key_sha256) in jobs_of(record)? {
        let job_id = job_id_for(&key_sha256);
        let row = state.core.store.job_by_id(&job_id).await?;
        let (status, report, error) = match &row {
            None => ("pending".to_string(), None, None),
            Some(row) => (
                answer_status(row.status).to_string(),
                row.result_json
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| AppError::internal("decode", e))?,
                row.error_message.clone(),
            ),
        };
        points.push(SimulationPoint { job_id, value: payload.value, status, report, error });
    }
    let status = if points.iter().any(|p| p.status == "error") {
        "error"
    } else if points.iter().all(|p| p.status == "ready") {
        "ready"
    } else {
        "pending"
    };
    let sweep = record.sweep.as_ref().and_then(|s| sim::sweep::parse(s).ok()).map(|s| s.name);
    Ok(SimulationResponse { simulation_id: id.to_string(), status: status.into(), sweep, points })
}

#[utoipa::path(get, path = "/api/payments/simulations/{id}", params(("id" = String, Path, description = "the simulation")),
    description = "A simulation as it now is: each point pending, then ready with its report (costs per agent by \
        component, counts, settlement rate, policy sources). Role: read.",
    responses((status = 200, body = SimulationResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn simulation_status(
    _: ReadAccess,
    State(state): State<PaymentsState>,
    Path(id): Path<String>,
) -> Result<Json<SimulationResponse>, AppError> {
    let record = load_simulation(&state, &id).await?;
    Ok(Json(status_of(&state, &id, &record).await?))
}

/// The stored record of simulation `id` (`sim-` and its digest).
async fn load_simulation(state: &PaymentsState, id: &str) -> Result<SimulationRecord, AppError> {
    let missing =
        || AppError::not_found("payments.simulation_not_found", "id", format!("no payments simulation `{id}`"));
    let digest = id
        .strip_prefix("sim-")
        .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(missing)?;
    let input =
        state.core.store.input(digest).await?.filter(|i| i.contract == SIMULATION_CONTRACT).ok_or_else(missing)?;
    serde_json::from_str(&input.body_json).map_err(|e| AppError::internal("decode", e))
}

/// `FromDatabase` rows read before the run; nothing else can be fetched.
struct Prefetched(BTreeMap<String, String>);

impl PolicyFetcher for Prefetched {
    fn stored(&self, agent_id: &str) -> Result<Option<String>, String> {
        Ok(self.0.get(agent_id).cloned())
    }
    fn url(&self, _url: &str) -> Result<String, String> {
        Err("the service does not fetch policies from URLs".into())
    }
}

/// Runs one claimed simulation job: the scenario, its `FromDatabase` rows
/// read first, then the simulation off the async runtime.
async fn run_simulation(job: JobRow, ctx: JobContext) -> Result<JobDone, JobFailure> {
    let bad = |e: String| JobFailure::new("job.bad_payload", e);
    let payload: PointPayload = job
        .job
        .payload_json
        .as_deref()
        .ok_or_else(|| bad("the simulation job has no payload".into()))
        .and_then(|t| serde_json::from_str(t).map_err(|e| bad(format!("payload: {e}"))))?;
    let store = &ctx.core.store;
    let input = store
        .input(&payload.scenario_sha256)
        .await
        .map_err(|e| crate::error::internal_failure(e.code(), e))?
        .ok_or_else(|| {
        JobFailure::new("input.not_found", format!("scenario `{}` is no longer stored", payload.scenario_sha256))
    })?;
    let scenario: String = serde_json::from_str::<Value>(&input.body_json)
        .ok()
        .and_then(|v| v["scenario"].as_str().map(str::to_owned))
        .ok_or_else(|| bad("the stored scenario is not readable".into()))?;
    let loaded = sim::config::parse(&scenario, false)
        .map_err(|e| JobFailure::new("payments.scenario_invalid", e.to_string()))?;
    let mut rows = BTreeMap::new();
    for agent in &loaded.scenario.agents {
        let Some(policy) = &agent.policy else { continue };
        if policy.get("type").and_then(Value::as_str) != Some("FromDatabase") {
            continue;
        }
        let id = policy.get("agent_id").and_then(Value::as_str).unwrap_or(&agent.id).to_string();
        if let Some(row) = store.agent_policy(&id).await.map_err(|e| crate::error::internal_failure(e.code(), e))? {
            rows.insert(id, row.policy_json);
        }
    }
    let started = std::time::Instant::now();
    let task = tokio::task::spawn_blocking(move || {
        let options =
            Options { honour_all: payload.honour_all, fetcher: Some(Arc::new(Prefetched(rows))), ..Options::default() };
        let cache = dsl::PolicyCache::new();
        let failed = |e: sim::SimulateError| JobFailure::new("payments.simulation_failed", e.to_string());
        match (&payload.name, payload.value) {
            (Some(name), Some(value)) => sim::sweep::Plan::new(&scenario, name)
                .and_then(|plan| plan.run_point(&scenario, value, &options, &cache))
                .map(|point| point.report)
                .map_err(failed),
            _ => sim::simulate(&scenario, &options, &cache).map(|s| Report::of(&s)).map_err(failed),
        }
    })
    .await;
    let report = task.map_err(|e| JobFailure::new("payments.panicked", e.to_string()))??;
    let result_json = canonical_result(&report, "payments.not_canonical")?;
    Ok(JobDone::Result(polis_store::JobResult {
        plugin_id: None,
        manifest_sha256: None,
        input_sha256: Some(payload.scenario_sha256),
        output_sha256: Some(Digest::of_bytes(result_json.as_bytes()).to_hex()),
        result_json,
        plugin_us: Some(i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX)),
    }))
}
