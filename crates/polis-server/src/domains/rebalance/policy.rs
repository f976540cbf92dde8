//! The seed's policy routes: `/api/policy/config`, `/run`, `/moves`,
//! `/status` and `/cancel`.
//!
//! `POST /api/policy/run` is idempotent by run key: the key is derived from
//! the request and the snapshot serving its bucket; a stored run answers
//! `ready` (with its result), `pending` (still queued or running) or
//! `error` (with the stored reason); an unknown key is enqueued and answers
//! `pending` with its run id.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use polis_rebalance::contract::{DecisionSubject, RebalanceParams, RunKey};
use polis_rebalance::snapshot::{BUCKET_SECONDS, DEGRADED_AFTER_S};
use polis_store::JobStatus;
use polis_store::rebalance::{DecisionRow, MoveRow, NewDecision};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::RebalanceState;
use super::lookup::{SnapshotKey, spec_text};
use crate::error::{AppError, ErrorBody, ErrorDetail};
use crate::extract::{ApiJson, ApiQuery, Identity, ReadAccess};
use crate::now_ms;
use crate::runs::answer_status;

/// Most moves per page.
pub const MAX_PAGE: i64 = 1000;

/// The routes of this area.
pub fn router() -> Router<RebalanceState> {
    Router::new()
        .route("/api/policy/config", get(config))
        .route("/api/policy/run", post(run))
        .route("/api/policy/moves", get(moves))
        .route("/api/policy/status", get(status))
        .route("/api/policy/cancel", post(cancel))
}

/// The spec a run uses when the request gives none.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DefaultSpec {
    /// The default policy version.
    pub policy_version: String,
    /// The default horizon.
    pub horizon_steps: u32,
    /// The default params.
    #[schema(value_type = Object)]
    pub params: RebalanceParams,
}

/// A system with stored snapshots.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SystemInfo {
    /// The system id.
    pub system_id: String,
    /// Stored snapshots.
    pub snapshots: i64,
    /// First snapshot, epoch seconds.
    pub first_ts: i64,
    /// Last snapshot, epoch seconds.
    pub last_ts: i64,
}

/// `GET /api/policy/config`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfigResponse {
    /// Policy versions of active plugins, sorted.
    pub available_policy_versions: Vec<String>,
    /// Their strategies, sorted and distinct.
    pub available_strategies: Vec<String>,
    /// The default spec.
    pub default_spec: DefaultSpec,
    /// The decision bucket length, seconds.
    pub bucket_seconds: i64,
    /// Systems with snapshots.
    pub systems: Vec<SystemInfo>,
}

/// Filters for `GET /api/policy/config`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConfigQuery {
    /// Only versions enabled for this system.
    pub system_id: Option<String>,
}

#[utoipa::path(get, path = "/api/policy/config", params(ConfigQuery),
    description = "The policies a system may run and their params. Role: read.",
    responses((status = 200, body = ConfigResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn config(
    _: ReadAccess,
    State(state): State<RebalanceState>,
    ApiQuery(query): ApiQuery<ConfigQuery>,
) -> Result<Json<ConfigResponse>, AppError> {
    let mut versions = Vec::new();
    let mut strategies = Vec::new();
    let active: Vec<(String, String, String)> = state
        .host
        .registry()
        .entries()
        .map(|e| (e.manifest.plugin_id.clone(), e.manifest.policy_version.clone(), e.manifest.strategy.clone()))
        .collect();
    for (plugin_id, version, strategy) in active {
        if let Some(system) = &query.system_id
            && !state.plugin_enabled_for(&plugin_id, system).await?
        {
            continue;
        }
        versions.push(version);
        strategies.push(strategy);
    }
    strategies.sort();
    strategies.dedup();
    let systems = state
        .core
        .store
        .systems()
        .await?
        .into_iter()
        .map(|s| SystemInfo {
            system_id: s.system_id,
            snapshots: s.snapshots,
            first_ts: s.first_ts,
            last_ts: s.last_ts,
        })
        .collect();
    Ok(Json(ConfigResponse {
        available_policy_versions: versions,
        available_strategies: strategies,
        default_spec: DefaultSpec {
            policy_version: state.settings.default_policy_version.clone(),
            horizon_steps: 0,
            params: RebalanceParams::default(),
        },
        bucket_seconds: BUCKET_SECONDS,
        systems,
    }))
}

/// `POST /api/policy/run`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The system, such as `baywheels-2023-03-06`; neither empty nor `*`.
    #[schema(min_length = 1, pattern = r"^(?:[^*]|\*[\s\S])")]
    pub system_id: String,
    /// The decision time, epoch seconds; floored to the bucket start.
    #[schema(minimum = 0)]
    #[serde(deserialize_with = "crate::extract::integral::i64")]
    pub decision_bucket_ts: i64,
    /// The policy version, such as `rebal.global.v1`.
    pub policy_version: String,
    /// The serving view; by default the one serving the bucket.
    #[serde(default)]
    pub sv: Option<String>,
    /// The horizon; 0 by default.
    #[serde(default, deserialize_with = "crate::extract::integral::option_u32")]
    pub horizon_steps: Option<u32>,
    /// Host params; the defaults when absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub params: Option<RebalanceParams>,
}

/// A run key on the wire.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunKeyBody {
    /// The system.
    pub system_id: String,
    /// The serving view.
    pub sv: String,
    /// The bucket start.
    pub decision_bucket_ts: i64,
    /// The policy version.
    pub policy_version: String,
    /// The spec hash.
    pub policy_spec_sha256: String,
    /// The horizon.
    pub horizon_steps: i64,
}

/// What a run recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Provenance {
    /// The run key's hash.
    pub run_key_sha256: String,
    /// The plugin that ran.
    pub plugin_id: Option<String>,
    /// Its manifest hash.
    pub manifest_sha256: Option<String>,
    /// The snapshot.
    pub view_snapshot_id: String,
    /// Its hash.
    pub view_snapshot_sha256: String,
    /// The input hash.
    pub input_sha256: Option<String>,
    /// The output hash.
    pub output_sha256: Option<String>,
}

/// The answer of `/run` and `/status`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunResponse {
    /// `ready`, `pending`, `error` or `cancelled`.
    pub status: String,
    /// The run id.
    pub run_id: String,
    /// `pending`, `running`, `ready`, `error` or `cancelled`.
    pub run_status: String,
    /// The run key.
    pub run_key: RunKeyBody,
    /// Hashes and identities.
    pub provenance: Provenance,
    /// The `policy.output.v1` document, when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Why the run failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
    /// Times, epoch ms.
    pub timings: Timings,
}

/// When things happened.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Timings {
    /// Enqueued.
    pub created_at_ms: i64,
    /// Last claimed.
    pub started_at_ms: Option<i64>,
    /// Finished.
    pub finished_at_ms: Option<i64>,
    /// Plugin time, microseconds.
    pub plugin_us: Option<i64>,
    /// Claims so far.
    pub attempts: i64,
}

/// Renders a stored decision.
pub fn run_response(row: &DecisionRow) -> Result<RunResponse, AppError> {
    let job = &row.job;
    let result = match (&job.result_json, job.status) {
        (Some(text), JobStatus::Ready) => {
            Some(serde_json::from_str(text).map_err(|e| AppError::internal("store.corrupt", e))?)
        }
        _ => None,
    };
    let error = ErrorDetail::of_job(job)
        .map(|e| ErrorDetail { code: job.error_code.clone().unwrap_or_else(|| "run.failed".to_owned()), ..e });
    let r = &row.decision;
    Ok(RunResponse {
        status: answer_status(job.status).to_owned(),
        run_id: r.job_id.clone(),
        run_status: job.status.as_str().to_owned(),
        run_key: RunKeyBody {
            system_id: r.system_id.clone(),
            sv: r.sv.clone(),
            decision_bucket_ts: r.decision_bucket_ts,
            policy_version: r.policy_version.clone(),
            policy_spec_sha256: r.policy_spec_sha256.clone(),
            horizon_steps: r.horizon_steps,
        },
        provenance: Provenance {
            run_key_sha256: r.run_key_sha256.clone(),
            plugin_id: job.plugin_id.clone(),
            manifest_sha256: job.manifest_sha256.clone(),
            view_snapshot_id: r.view_snapshot_id.clone(),
            view_snapshot_sha256: r.view_snapshot_sha256.clone(),
            input_sha256: job.job.input_sha256.clone(),
            output_sha256: job.output_sha256.clone(),
        },
        result,
        error,
        timings: Timings {
            created_at_ms: job.created_at_ms,
            started_at_ms: job.started_at_ms,
            finished_at_ms: job.finished_at_ms,
            plugin_us: job.plugin_us,
            attempts: job.attempts,
        },
    })
}

/// The run id of a run key: `run-` and 24 hex digits of its digest.
pub fn run_id_for(run_key_sha256: &str) -> String {
    format!("run-{}", &run_key_sha256[..24.min(run_key_sha256.len())])
}

#[utoipa::path(post, path = "/api/policy/run", request_body = RunRequest,
    description = "Asks for a rebalancing decision; rate-limited per token. Role: read.",
    responses((status = 200, description = "ready, pending or error", body = RunResponse),
        (status = 429, description = "this token asked too often; see `Retry-After`", body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn run(
    identity: Identity,
    State(state): State<RebalanceState>,
    ApiJson(request): ApiJson<RunRequest>,
) -> Result<axum::response::Response, AppError> {
    use axum::response::IntoResponse;

    state.core.run_rate.admit(&identity.subject, std::time::Instant::now())?;
    if request.system_id.is_empty() || request.system_id == "*" {
        return Err(AppError::unprocessable("request.invalid_field", "system_id", "`system_id` must name a system"));
    }
    if request.decision_bucket_ts < 0 {
        return Err(AppError::unprocessable(
            "request.invalid_field",
            "decision_bucket_ts",
            format!("`decision_bucket_ts` must be epoch seconds >= 0, got {}", request.decision_bucket_ts),
        ));
    }
    let plugin_id =
        state.host.registry().resolve(&request.policy_version).map(|e| e.manifest.plugin_id.clone()).map_err(|e| {
            AppError::unprocessable(
                if matches!(e, polis_core::RegistryError::Disabled { .. }) {
                    "policy.disabled"
                } else {
                    "policy.unknown"
                },
                "policy_version",
                e.to_string(),
            )
        })?;
    if !state.plugin_enabled_for(&plugin_id, &request.system_id).await? {
        return Err(AppError::unprocessable(
            "policy.not_enabled",
            "system_id",
            format!("plugin `{plugin_id}` is not enabled for system `{}`", request.system_id),
        ));
    }
    let bucket = request.decision_bucket_ts - request.decision_bucket_ts.rem_euclid(BUCKET_SECONDS);
    let snapshot = match &request.sv {
        Some(sv) => state
            .snapshot(SnapshotKey::Sv { system_id: request.system_id.clone(), sv: sv.clone() })
            .await?
            .ok_or_else(|| {
                AppError::not_found(
                    "snapshot.not_found",
                    "sv",
                    format!("system `{}` has no snapshot with sv `{sv}`", request.system_id),
                )
            })?,
        None => state
            .snapshot(SnapshotKey::Bucket { system_id: request.system_id.clone(), bucket_ts: bucket })
            .await?
            .ok_or_else(|| {
                AppError::not_found(
                    "snapshot.not_found",
                    "decision_bucket_ts",
                    format!(
                        "system `{}` has no snapshot for the bucket starting {} (nor in the {} minutes before it)",
                        request.system_id,
                        polis_core::run::rfc3339(bucket),
                        DEGRADED_AFTER_S / 60
                    ),
                )
            })?,
    };
    // The spec of a request without params is canonicalised once per
    // policy version; any other is canonicalised here.
    let spec = match &request.params {
        None => state.lookups.default_spec(&request.policy_version),
        Some(params) => spec_text(&request.policy_version, params),
    }
    .ok_or_else(|| AppError::unprocessable("request.invalid_field", "params", "params do not canonicalise"))?;
    let key = RunKey {
        subject: DecisionSubject {
            system_id: request.system_id.clone(),
            sv: snapshot.sv.clone(),
            decision_bucket_ts: bucket,
            horizon_steps: request.horizon_steps.unwrap_or(0),
        },
        policy_version: request.policy_version.clone(),
        policy_spec_sha256: spec.sha256,
    };
    let key_sha = key
        .digest()
        .map_err(|e| AppError::unprocessable("request.not_canonical", "system_id", format!("run key: {e}")))?
        .to_hex();
    if let Some(cached) = state.ready_cache.get(&key_sha) {
        state.core.metrics.request("cached");
        return Ok(cached.into_response());
    }
    let new_run = NewDecision {
        job_id: run_id_for(&key_sha),
        run_key_sha256: key_sha.clone(),
        system_id: key.subject.system_id.clone(),
        sv: key.subject.sv.clone(),
        decision_bucket_ts: key.subject.decision_bucket_ts,
        policy_version: key.policy_version.clone(),
        policy_spec_sha256: key.policy_spec_sha256.to_hex(),
        horizon_steps: i64::from(key.subject.horizon_steps),
        policy_spec_json: spec.json.to_string(),
        view_snapshot_id: snapshot.view_snapshot_id.clone(),
        view_snapshot_sha256: snapshot.view_snapshot_sha256.clone(),
        submitted_by: Some(identity.subject.clone()),
    };
    let store = &state.core.store;
    let row = match store.decision_by_key(&key_sha).await? {
        Some(row) if row.job.status != JobStatus::Cancelled => row,
        _ => {
            let (row, enqueued) = store.enqueue_decision(&new_run, now_ms()).await?;
            if enqueued {
                tracing::info!(run_key = %key_sha, run_id = %row.decision.job_id, plugin_id = %plugin_id, "run enqueued");
                state.core.work_available.notify_waiters();
            }
            row
        }
    };
    let response = run_response(&row)?;
    if row.job.status == JobStatus::Ready {
        let body = serde_json::to_vec(&response).map_err(|e| AppError::internal("encode", e))?;
        let cached = state.ready_cache.insert(key_sha, body);
        state.core.metrics.request("ready");
        return Ok(cached.into_response());
    }
    state.core.metrics.request(answer_status(row.job.status));
    Ok(Json(response).into_response())
}

/// Names a run by id or by run key hash.
#[derive(Debug, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunSelector {
    /// The run id.
    pub run_id: Option<String>,
    /// The run key's SHA-256, hex.
    pub run_key: Option<String>,
}

async fn find_run(state: &RebalanceState, selector: &RunSelector) -> Result<DecisionRow, AppError> {
    let found = match (&selector.run_id, &selector.run_key) {
        (Some(id), None) => state
            .core
            .store
            .decision_by_id(id)
            .await?
            .ok_or_else(|| AppError::not_found("run.not_found", "run_id", format!("no run with id `{id}`")))?,
        (None, Some(key)) => state
            .core
            .store
            .decision_by_key(key)
            .await?
            .ok_or_else(|| AppError::not_found("run.not_found", "run_key", format!("no run with key `{key}`")))?,
        (Some(_), Some(_)) => {
            return Err(AppError::bad_request(
                "request.invalid_field",
                Some("run_key".to_owned()),
                "give `run_id` or `run_key`, not both",
            ));
        }
        (None, None) => {
            return Err(AppError::bad_request(
                "request.missing_field",
                Some("run_id".to_owned()),
                "give `run_id` or `run_key`",
            ));
        }
    };
    Ok(found)
}

#[utoipa::path(get, path = "/api/policy/status", params(RunSelector),
    description = "A run as it now is. Role: read.",
    responses((status = 200, body = RunResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn status(
    _: ReadAccess,
    State(state): State<RebalanceState>,
    ApiQuery(selector): ApiQuery<RunSelector>,
) -> Result<Json<RunResponse>, AppError> {
    let row = find_run(&state, &selector).await?;
    Ok(Json(run_response(&row)?))
}

/// A page request.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MovesQuery {
    /// The run id.
    pub run_id: Option<String>,
    /// The run key's SHA-256, hex.
    pub run_key: Option<String>,
    /// Moves to skip; 0 by default.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Moves per page, 1 to 1,000; 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// One move on the wire: the seed's move plus nothing else.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MoveBody {
    /// Position, from 1.
    pub move_rank: i64,
    /// Donor.
    pub from_station_key: String,
    /// Receiver.
    pub to_station_key: String,
    /// Bikes.
    pub bikes_moved: i64,
    /// Metres.
    pub dist_m: f64,
    /// Budget spent after this move.
    pub budget_exhausted: bool,
    /// Donor done after this move.
    pub neighbor_exhausted: bool,
    /// Why.
    pub reason_codes: Vec<String>,
}

/// `GET /api/policy/moves`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MovesResponse {
    /// The run id.
    pub run_id: String,
    /// The answer status, as for `/run`.
    pub status: String,
    /// All moves of the run.
    pub total: i64,
    /// This page's offset.
    pub offset: i64,
    /// This page's limit.
    pub limit: i64,
    /// The page.
    pub moves: Vec<MoveBody>,
}

fn move_body(m: MoveRow) -> Result<MoveBody, AppError> {
    Ok(MoveBody {
        move_rank: m.move_rank,
        from_station_key: m.from_station_key,
        to_station_key: m.to_station_key,
        bikes_moved: m.bikes_moved,
        dist_m: m.dist_m,
        budget_exhausted: m.budget_exhausted,
        neighbor_exhausted: m.neighbor_exhausted,
        reason_codes: serde_json::from_str(&m.reason_codes_json).map_err(|e| AppError::internal("store.corrupt", e))?,
    })
}

#[utoipa::path(get, path = "/api/policy/moves", params(MovesQuery),
    description = "A ready run's moves. Role: read.",
    responses((status = 200, body = MovesResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn moves(
    _: ReadAccess,
    State(state): State<RebalanceState>,
    ApiQuery(query): ApiQuery<MovesQuery>,
) -> Result<Json<MovesResponse>, AppError> {
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(AppError::bad_request("request.invalid_field", Some("offset".to_owned()), "`offset` must be >= 0"));
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::bad_request(
            "request.invalid_field",
            Some("limit".to_owned()),
            format!("`limit` must be between 1 and {MAX_PAGE}"),
        ));
    }
    let row = find_run(&state, &RunSelector { run_id: query.run_id, run_key: query.run_key }).await?;
    let (page, total) = state.core.store.moves(&row.decision.job_id, offset, limit).await?;
    Ok(Json(MovesResponse {
        run_id: row.decision.job_id.clone(),
        status: answer_status(row.job.status).to_owned(),
        total,
        offset,
        limit,
        moves: page.into_iter().map(move_body).collect::<Result<_, _>>()?,
    }))
}

/// `POST /api/policy/cancel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// The run to cancel.
    pub run_id: String,
}

#[utoipa::path(post, path = "/api/policy/cancel", request_body = CancelRequest,
    description = "Cancels a pending or running run. Role: admin, or the read token that submitted it.",
    responses((status = 200, description = "the run as it now is", body = RunResponse), (status = 400, body = ErrorBody),
        (status = 403, description = "neither an admin nor the submitter", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn cancel(
    identity: Identity,
    State(state): State<RebalanceState>,
    ApiJson(request): ApiJson<CancelRequest>,
) -> Result<Json<RunResponse>, AppError> {
    let store = &state.core.store;
    let not_found = || AppError::not_found("run.not_found", "run_id", format!("no run with id `{}`", request.run_id));
    // Only rebalancing decisions are cancelled here; other jobs have
    // their own routes.
    let stored = store.decision_by_id(&request.run_id).await?.ok_or_else(not_found)?;
    identity.may_act_on(stored.job.job.submitted_by.as_deref())?;
    store.cancel_job(&request.run_id, now_ms()).await?;
    let row = store.decision_by_id(&request.run_id).await?.ok_or_else(not_found)?;
    if row.job.status == JobStatus::Cancelled {
        tracing::info!(run_key = %row.decision.run_key_sha256, run_id = %row.decision.job_id, "run cancelled");
    }
    Ok(Json(run_response(&row)?))
}
