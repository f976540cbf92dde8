//! The generic run path, which every registered contract gets with no code
//! of its own, and the status of any job.
//!
//! - `POST /api/runs` takes `{contract, policy_version, subject, input,
//!   params}`, checks it against the contract (every error names its
//!   field), stores the input content-addressed, and enqueues a job of kind
//!   [`RUN_KIND`] keyed by the run key, so asking twice never computes
//!   twice. It answers like the seed's run route: `ready` with the output,
//!   `pending` with the job id, or `error`.
//! - `GET /api/runs/{job_id}` and `GET /api/jobs/{job_id}`: a job of any
//!   kind, as it now is.
//! - `POST /api/jobs/{job_id}/cancel`: cancels a pending or running job.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use polis_store::{JobRow, JobStatus, NewJob, StoredInput};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{RUN_KIND, RunSubmission};
use crate::error::{AppError, ErrorBody, ErrorDetail};
use crate::extract::{ApiJson, Identity, ReadAccess};
use crate::{AppState, now_ms};

/// The routes of this area; `input_limit` bounds a submitted run's body.
pub fn router(input_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/api/runs", post(submit).layer(axum::extract::DefaultBodyLimit::max(input_limit)))
        .route("/api/runs/{job_id}", get(run_status))
        .route("/api/jobs/{job_id}", get(job))
        .route("/api/jobs/{job_id}/cancel", post(cancel))
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobResponse {
    /// `ready`, `pending`, `error` or `cancelled` (running jobs are
    /// `pending`).
    pub status: String,
    /// The job id.
    pub job_id: String,
    /// Its kind, such as `run` or `rebalance.decide`.
    pub kind: String,
    /// `pending`, `running`, `ready`, `error` or `cancelled`.
    pub job_status: String,
    /// The contract its policy runs under, when it runs one.
    pub contract: Option<String>,
    /// The policy version, when it runs one.
    pub policy_version: Option<String>,
    /// The key's SHA-256, hex.
    pub key_sha256: String,
    /// The key, when stored with the job.
    #[schema(value_type = Option<Object>)]
    pub key: Option<serde_json::Value>,
    /// The plugin that ran.
    pub plugin_id: Option<String>,
    /// Its manifest hash.
    pub manifest_sha256: Option<String>,
    /// The input hash.
    pub input_sha256: Option<String>,
    /// The output hash.
    pub output_sha256: Option<String>,
    /// The result, when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Why the job failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
    /// Enqueued, epoch ms.
    pub created_at_ms: i64,
    /// Last claimed, epoch ms.
    pub started_at_ms: Option<i64>,
    /// Finished, epoch ms.
    pub finished_at_ms: Option<i64>,
    /// Plugin time, microseconds.
    pub plugin_us: Option<i64>,
    /// Claims so far.
    pub attempts: i64,
}

/// The public answer status of a stored job: running jobs are `pending`.
pub fn answer_status(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending | JobStatus::Running => "pending",
        JobStatus::Ready => "ready",
        JobStatus::Error => "error",
        JobStatus::Cancelled => "cancelled",
    }
}

/// Renders a stored job.
pub fn job_response(row: &JobRow) -> Result<JobResponse, AppError> {
    let parse = |text: &Option<String>| -> Result<Option<serde_json::Value>, AppError> {
        text.as_deref().map(serde_json::from_str).transpose().map_err(|e| AppError::internal("store.corrupt", e))
    };
    let result = if row.status == JobStatus::Ready { parse(&row.result_json)? } else { None };
    let error = ErrorDetail::of_job(row);
    Ok(JobResponse {
        status: answer_status(row.status).to_owned(),
        job_id: row.job.job_id.clone(),
        kind: row.job.kind.clone(),
        job_status: row.status.as_str().to_owned(),
        contract: row.job.contract.clone(),
        policy_version: row.job.policy_version.clone(),
        key_sha256: row.job.key_sha256.clone(),
        key: parse(&row.job.key_json)?,
        plugin_id: row.plugin_id.clone(),
        manifest_sha256: row.manifest_sha256.clone(),
        input_sha256: row.job.input_sha256.clone(),
        output_sha256: row.output_sha256.clone(),
        result,
        error,
        created_at_ms: row.created_at_ms,
        started_at_ms: row.started_at_ms,
        finished_at_ms: row.finished_at_ms,
        plugin_us: row.plugin_us,
        attempts: row.attempts,
    })
}

/// The job id of a key: `job-` and 24 hex digits of its digest.
pub fn job_id_for(key_sha256: &str) -> String {
    format!("job-{}", &key_sha256[..24.min(key_sha256.len())])
}

#[utoipa::path(post, path = "/api/runs", request_body = RunSubmission,
    description = "Runs a policy of any contract as a job; rate-limited per token. Role: read.",
    responses((status = 200, description = "ready, pending or error", body = JobResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 429, description = "this token asked too often; see `Retry-After`", body = ErrorBody),
        (status = 422, description = "the contract refused the subject, input or params", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn submit(
    identity: Identity,
    State(state): State<AppState>,
    ApiJson(submission): ApiJson<RunSubmission>,
) -> Result<Json<JobResponse>, AppError> {
    state.core.run_rate.admit(&identity.subject, std::time::Instant::now())?;
    let Some(contract) = state.contract(&submission.contract) else {
        let known: Vec<String> = state.contracts().iter().map(|c| format!("`{}`", c.info().id)).collect();
        return Err(AppError::unprocessable(
            "contract.unknown",
            "contract",
            format!("unknown contract `{}`; this service runs {}", submission.contract, known.join(", ")),
        ));
    };
    let prepared = tokio::task::spawn_blocking(move || contract.prepare(&submission))
        .await
        .map_err(|e| AppError::internal("run.join", e))?
        .map_err(|e| AppError::unprocessable(e.code, &e.field, e.message))?;
    let store = &state.core.store;
    let now = now_ms();
    let key_sha256 = prepared.key_sha256.to_hex();
    let existing = store.job_by_key(&key_sha256).await?;
    let row = match existing {
        Some(row) if row.status != JobStatus::Cancelled => row,
        _ => {
            store
                .put_input(
                    &StoredInput {
                        input_sha256: prepared.payload.input_sha256.clone(),
                        contract: prepared.payload.contract.clone(),
                        body_json: prepared.input_json.clone(),
                    },
                    now,
                )
                .await?;
            let payload = serde_json::to_string(&prepared.payload).map_err(|e| AppError::internal("encode", e))?;
            let job = NewJob {
                job_id: job_id_for(&key_sha256),
                kind: RUN_KIND.to_owned(),
                contract: Some(prepared.payload.contract.clone()),
                key_sha256: key_sha256.clone(),
                key_json: Some(prepared.key_json.clone()),
                payload_json: Some(payload),
                policy_version: Some(prepared.payload.policy_version.clone()),
                input_sha256: Some(prepared.payload.input_sha256.clone()),
                submitted_by: Some(identity.subject.clone()),
            };
            let (row, enqueued) = store.enqueue_job(&job, now).await?;
            if enqueued {
                tracing::info!(job_id = %row.job.job_id, contract = %prepared.payload.contract, "run enqueued");
                state.core.work_available.notify_waiters();
            }
            row
        }
    };
    state.core.metrics.request(answer_status(row.status));
    Ok(Json(job_response(&row)?))
}

#[utoipa::path(get, path = "/api/runs/{job_id}", params(("job_id" = String, Path, description = "the run's job")),
    description = "A run as it now is. Role: read.",
    responses((status = 200, body = JobResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn run_status(
    access: ReadAccess,
    state: State<AppState>,
    job_id: Path<String>,
) -> Result<Json<JobResponse>, AppError> {
    job(access, state, job_id).await
}

#[utoipa::path(get, path = "/api/jobs/{job_id}", params(("job_id" = String, Path, description = "the job")),
    description = "A job of any kind as it now is. Role: read.",
    responses((status = 200, body = JobResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn job(
    _: ReadAccess,
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Json<JobResponse>, AppError> {
    let row = state.core.store.job_by_id(&job_id).await?.ok_or_else(|| no_job(&job_id))?;
    Ok(Json(job_response(&row)?))
}

fn no_job(job_id: &str) -> AppError {
    AppError::not_found("job.not_found", "job_id", format!("no job with id `{job_id}`"))
}

#[utoipa::path(post, path = "/api/jobs/{job_id}/cancel", params(("job_id" = String, Path, description = "the job")),
    description = "Cancels a pending or running job. Role: admin, or the read token that submitted it.",
    responses((status = 200, description = "the job as it now is", body = JobResponse), (status = 401, body = ErrorBody),
        (status = 403, description = "neither an admin nor the submitter", body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn cancel(
    identity: Identity,
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Json<JobResponse>, AppError> {
    let stored = state.core.store.job_by_id(&job_id).await?.ok_or_else(|| no_job(&job_id))?;
    identity.may_act_on(stored.job.submitted_by.as_deref())?;
    let row = state.core.store.cancel_job(&job_id, now_ms()).await?.ok_or_else(|| no_job(&job_id))?;
    if row.status == JobStatus::Cancelled {
        tracing::info!(job_id = %job_id, "job cancelled");
    }
    Ok(Json(job_response(&row)?))
}

/// `value` as RFC 8785 text, for job keys, payloads and stored inputs.
pub(crate) fn canonical_text<T: Serialize + ?Sized>(value: &T) -> Result<String, AppError> {
    canonical_string(value).map_err(|e| AppError::internal("encode", e))
}

/// `value` as RFC 8785 text, for a job's stored result; a failure fails the
/// job with `code`.
pub(crate) fn canonical_result<T: Serialize + ?Sized>(
    value: &T,
    code: &str,
) -> Result<String, crate::domain::JobFailure> {
    canonical_string(value).map_err(|e| crate::domain::JobFailure::new(code, e))
}

/// `value` as RFC 8785 text, or why not.
pub(crate) fn canonical_string<T: Serialize + ?Sized>(value: &T) -> Result<String, String> {
    let bytes = polis_core::canonical::to_canonical_vec(value).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}
