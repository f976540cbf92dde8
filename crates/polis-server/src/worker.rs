//! Workers: claim a job of any kind the registered domains handle, under a
//! lease, run it through its domain with a timeout, and store the result —
//! or the error — if the lease is still theirs.
//!
//! A heartbeat extends the lease while the job runs. If the worker dies,
//! the lease expires and another worker claims the job; if the job is
//! cancelled or reclaimed meanwhile, the late result is dropped by the
//! store, so a job's key gets exactly one stored result. A plugin that
//! overruns the timeout, or whose job is cancelled, is stopped through its
//! [`RunControl`]: a wasm store traps at its next epoch, a worker process
//! is killed (and restarted for the next call). A built-in cannot be
//! interrupted, but finishes in milliseconds; its late result is dropped.
//!
//! Jobs of kind [`RUN_KIND`] (the generic run path) are run here, through
//! their contract's [`crate::domain::ContractService`]; every other kind
//! goes to the domain that registered it.

use std::time::Duration;

use polis_core::policy::RunControl;
use polis_store::{JobRow, JobStatus, StoreError};
use tokio::sync::watch;

use crate::domain::{JobContext, JobDone, JobFailure, RUN_KIND, RunPayload};
use crate::{AppState, now_ms};

/// How a worker behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The lease owner name; unique per worker. By default
    /// `{prefix}-{pid}-{n}` from [`WorkerConfig::named`].
    pub owner: String,
    /// How long a claim lasts without a heartbeat. By default 30 s.
    pub lease: Duration,
    /// How long to sleep when the queue is empty. By default 200 ms.
    pub poll: Duration,
    /// Longest a job may run. By default 10 s.
    pub timeout: Duration,
    /// Claims after which a job whose lease keeps expiring fails. By
    /// default 3.
    pub max_attempts: i64,
    /// Fault injection for tests and drills: sleep this long after each
    /// claim, before running, as a slow plugin would. By default zero.
    pub hold_after_claim: Duration,
}

impl WorkerConfig {
    /// Defaults with owner `{prefix}-{pid}-{n}`.
    pub fn named(prefix: &str, n: usize) -> Self {
        WorkerConfig {
            owner: format!("{prefix}-{}-{n}", std::process::id()),
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(200),
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            hold_after_claim: Duration::ZERO,
        }
    }
}

/// How one claimed job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The result was stored.
    Stored(JobStatus),
    /// The lease was lost (cancelled or reclaimed); nothing was stored.
    LeaseLost,
}

/// Runs a worker until `shutdown` turns true. Store errors are logged and
/// retried after the poll interval; they never end the loop.
pub async fn run(state: AppState, config: WorkerConfig, mut shutdown: watch::Receiver<bool>) {
    tracing::info!(owner = %config.owner, kinds = ?state.job_kinds(), "worker started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        match process_one(&state, &config).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => tracing::error!(owner = %config.owner, error = %e, "worker store error"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.poll) => {}
            _ = state.core.work_available.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!(owner = %config.owner, "worker stopped");
}

/// Claims and processes one job; `None` when the queue is empty.
pub async fn process_one(state: &AppState, config: &WorkerConfig) -> Result<Option<Outcome>, StoreError> {
    let lease_ms = i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX);
    let store = &state.core.store;
    let kinds = state.job_kinds();
    let Some(row) = store.claim_job(&config.owner, &kinds, now_ms(), lease_ms, config.max_attempts).await? else {
        return Ok(None);
    };
    let (job_id, kind) = (row.job.job_id.clone(), row.job.kind.clone());
    tracing::debug!(job_id = %job_id, kind = %kind, attempts = row.attempts, "job claimed");

    // Keep the lease alive while running, and watch for cancellation:
    // every `poll` the job's stored status is read, and a cancelled job
    // (or a lost lease) cancels the control its plugins run under, so the
    // wasm store or worker process running one stops at once.
    let control = RunControl::new();
    let (stop_watch, mut watch_stopped) = watch::channel(false);
    let watcher = {
        let store = store.clone();
        let job_id = job_id.clone();
        let owner = config.owner.clone();
        let control = control.clone();
        let (every, poll) = (config.lease / 3, config.poll);
        tokio::spawn(async move {
            let mut next_heartbeat = tokio::time::Instant::now() + every;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = watch_stopped.changed() => break,
                }
                if matches!(store.job_by_id(&job_id).await, Ok(Some(r)) if r.status == JobStatus::Cancelled) {
                    tracing::info!(job_id = %job_id, "job cancelled; stopping its plugin");
                    control.cancel();
                    break;
                }
                if tokio::time::Instant::now() < next_heartbeat {
                    continue;
                }
                next_heartbeat += every;
                match store.heartbeat(&job_id, &owner, now_ms().saturating_add(lease_ms)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        control.cancel();
                        break;
                    }
                    Err(e) => tracing::warn!(job_id = %job_id, error = %e, "heartbeat failed"),
                }
            }
        })
    };
    if !config.hold_after_claim.is_zero() {
        tokio::time::sleep(config.hold_after_claim).await;
    }
    let ctx = JobContext {
        core: state.core.clone(),
        control: control.clone(),
        owner: config.owner.clone(),
        timeout: config.timeout,
    };
    let policy_version = row.job.policy_version.clone();
    let handled = tokio::time::timeout(config.timeout, run_job(state, row, ctx)).await;
    let result = match handled {
        Ok(result) => result,
        Err(_) => {
            // Stop the plugin too: the wasm store or worker process ends
            // within a tick instead of running on in the background.
            control.cancel();
            Err(JobFailure::new("run.timeout", format!("the job ran longer than {} ms", config.timeout.as_millis())))
        }
    };
    let _ = stop_watch.send(true);
    let _ = watcher.await;

    let metrics = &state.core.metrics;
    let now = now_ms();
    let outcome = match result {
        Ok(JobDone::Result(result)) => {
            let plugin_id = result.plugin_id.clone();
            let seconds = result.plugin_us.map_or(0.0, |us| us as f64 / 1e6);
            if store.complete_job(&job_id, &config.owner, &result, now).await? {
                metrics.job_finished(&kind, policy_version.as_deref(), plugin_id.as_deref(), JobStatus::Ready, seconds);
                tracing::info!(job_id = %job_id, kind = %kind, plugin_id = plugin_id.as_deref().unwrap_or(""), "job ready");
                Outcome::Stored(JobStatus::Ready)
            } else {
                tracing::info!(job_id = %job_id, kind = %kind, "lease lost; result dropped");
                Outcome::LeaseLost
            }
        }
        Ok(JobDone::Stored { lease_kept, plugin_id, seconds }) => {
            if lease_kept {
                metrics.job_finished(&kind, policy_version.as_deref(), plugin_id.as_deref(), JobStatus::Ready, seconds);
                tracing::info!(job_id = %job_id, kind = %kind, plugin_id = plugin_id.as_deref().unwrap_or(""), "job ready");
                Outcome::Stored(JobStatus::Ready)
            } else {
                tracing::info!(job_id = %job_id, kind = %kind, "lease lost; result dropped");
                Outcome::LeaseLost
            }
        }
        Err(failure) => {
            let stored = store
                .fail_job(&job_id, &config.owner, &failure.code, &failure.message, failure.plugin_id.as_deref(), now)
                .await?;
            metrics.job_finished(
                &kind,
                policy_version.as_deref(),
                failure.plugin_id.as_deref(),
                JobStatus::Error,
                failure.seconds,
            );
            tracing::warn!(job_id = %job_id, kind = %kind, plugin_id = failure.plugin_id.as_deref().unwrap_or(""),
                code = %failure.code, message = %failure.message, "job failed");
            if stored { Outcome::Stored(JobStatus::Error) } else { Outcome::LeaseLost }
        }
    };
    Ok(Some(outcome))
}

/// Runs one claimed job: the generic run path here, any other kind in its
/// domain.
async fn run_job(state: &AppState, row: JobRow, ctx: JobContext) -> Result<JobDone, JobFailure> {
    if row.job.kind != RUN_KIND {
        let Some(domain) = state.domain_for_kind(&row.job.kind) else {
            return Err(JobFailure::new("job.unknown_kind", format!("no domain runs jobs of kind `{}`", row.job.kind)));
        };
        return domain.run_job(row, ctx).await;
    }
    let payload: RunPayload = row
        .job
        .payload_json
        .as_deref()
        .ok_or_else(|| JobFailure::new("job.bad_payload", "the run job has no payload"))
        .and_then(|text| {
            serde_json::from_str(text).map_err(|e| JobFailure::new("job.bad_payload", format!("payload: {e}")))
        })?;
    let Some(contract) = state.contract(&payload.contract) else {
        return Err(JobFailure::new(
            "contract.unknown",
            format!("this service runs no contract `{}`", payload.contract),
        ));
    };
    let input = state
        .core
        .store
        .input(&payload.input_sha256)
        .await
        .map_err(|e| crate::error::internal_failure(e.code(), e))?
        .ok_or_else(|| {
            JobFailure::new("input.not_found", format!("input `{}` is no longer stored", payload.input_sha256))
        })?;
    let key_sha256 = row.job.key_sha256.clone();
    let control = ctx.control.clone();
    let task =
        tokio::task::spawn_blocking(move || contract.decide(&payload, &key_sha256, &input.body_json, &control)).await;
    match task {
        Ok(result) => result.map(JobDone::Result),
        Err(join) => Err(JobFailure::new("run.panicked", join.to_string())),
    }
}
