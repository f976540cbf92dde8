//! Workers: claim a run under a lease, rebuild its input from the stored
//! snapshot, decide through the rebalancing host with a timeout, and store
//! the result — or the error — if the lease is still theirs.
//!
//! A heartbeat extends the lease while the policy runs. If the worker dies,
//! the lease expires and another worker claims the run; if the run is
//! cancelled or reclaimed meanwhile, the late result is dropped by the
//! store, so a run key gets exactly one stored result. A policy that
//! overruns the timeout, or whose run is cancelled, is stopped through its
//! [`RunControl`]: a wasm store traps at its next epoch, a worker process
//! is killed (and restarted for the next call). A built-in cannot be
//! interrupted, but finishes in milliseconds; its late result is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use polis_core::policy::RunControl;
use polis_core::run::PolicySpec;
use polis_rebalance::contract::RebalanceParams;
use polis_rebalance::host::{Decision, Host};
use polis_store::{Completion, MoveRow, RunRow, RunStatus, Store, StoreError};
use tokio::sync::{Notify, watch};

use crate::metrics::Metrics;
use crate::now_ms;

/// How a worker behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The lease owner name; unique per worker. By default
    /// `{hostname-ish}-{pid}-{n}` from [`WorkerConfig::named`].
    pub owner: String,
    /// How long a claim lasts without a heartbeat. By default 30 s.
    pub lease: Duration,
    /// How long to sleep when the queue is empty. By default 200 ms.
    pub poll: Duration,
    /// Longest a policy may run. By default 10 s.
    pub timeout: Duration,
    /// Claims after which a run whose lease keeps expiring fails. By
    /// default 3.
    pub max_attempts: i64,
    /// Fault injection for tests and drills: sleep this long after each
    /// claim, before deciding, as a slow plugin would. By default zero.
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

/// What a worker needs.
#[derive(Clone)]
pub struct WorkerContext {
    /// The store to claim from.
    pub store: Store,
    /// The host that decides.
    pub host: Arc<Host>,
    /// Where to record latencies.
    pub metrics: Arc<Metrics>,
    /// Woken when work is enqueued in this process.
    pub work_available: Arc<Notify>,
}

/// How one claimed run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The result was stored.
    Stored(RunStatus),
    /// The lease was lost (cancelled or reclaimed); nothing was stored.
    LeaseLost,
}

/// Runs a worker until `shutdown` turns true. Store errors are logged and
/// retried after the poll interval; they never end the loop.
pub async fn run(ctx: WorkerContext, config: WorkerConfig, mut shutdown: watch::Receiver<bool>) {
    tracing::info!(owner = %config.owner, "worker started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        match process_one(&ctx, &config).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => tracing::error!(owner = %config.owner, error = %e, "worker store error"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.poll) => {}
            _ = ctx.work_available.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!(owner = %config.owner, "worker stopped");
}

/// Claims and processes one run; `None` when the queue is empty.
pub async fn process_one(ctx: &WorkerContext, config: &WorkerConfig) -> Result<Option<Outcome>, StoreError> {
    let lease_ms = i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX);
    let Some(row) = ctx.store.claim(&config.owner, now_ms(), lease_ms, config.max_attempts).await? else {
        return Ok(None);
    };
    let run_key = row.run.run_key_sha256.clone();
    tracing::debug!(run_key = %run_key, run_id = %row.run.run_id, attempts = row.attempts, "run claimed");

    // Keep the lease alive while deciding, and watch for cancellation:
    // every `poll` the run's stored status is read, and a cancelled run
    // (or a lost lease) cancels the control the plugin runs under, so the
    // wasm store or worker process running it stops at once.
    let control = RunControl::new();
    let (stop_watch, mut watch_stopped) = watch::channel(false);
    let watcher = {
        let store = ctx.store.clone();
        let run_id = row.run.run_id.clone();
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
                if matches!(store.run_by_id(&run_id).await, Ok(Some(r)) if r.status == RunStatus::Cancelled) {
                    tracing::info!(run_id = %run_id, "run cancelled; stopping its plugin");
                    control.cancel();
                    break;
                }
                if tokio::time::Instant::now() < next_heartbeat {
                    continue;
                }
                next_heartbeat += every;
                match store.heartbeat(&run_id, &owner, now_ms().saturating_add(lease_ms)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        control.cancel();
                        break;
                    }
                    Err(e) => tracing::warn!(run_id = %run_id, error = %e, "heartbeat failed"),
                }
            }
        })
    };
    if !config.hold_after_claim.is_zero() {
        tokio::time::sleep(config.hold_after_claim).await;
    }
    let result = decide(ctx, config, &row, &control).await;
    let _ = stop_watch.send(true);
    let _ = watcher.await;

    let now = now_ms();
    let outcome = match result {
        Ok((completion, seconds)) => {
            let plugin_id = completion.plugin_id.clone();
            if ctx.store.complete(&row.run.run_id, &config.owner, &completion, now).await? {
                ctx.metrics.run_finished(&plugin_id, &row.run.policy_version, RunStatus::Ready, seconds);
                tracing::info!(run_key = %run_key, plugin_id = %plugin_id, moves = completion.moves.len(), "run ready");
                Outcome::Stored(RunStatus::Ready)
            } else {
                tracing::info!(run_key = %run_key, plugin_id = %plugin_id, "lease lost; result dropped");
                Outcome::LeaseLost
            }
        }
        Err(failure) => {
            let stored = ctx
                .store
                .fail(&row.run.run_id, &config.owner, failure.code, &failure.message, failure.plugin_id.as_deref(), now)
                .await?;
            if let Some(plugin_id) = &failure.plugin_id {
                ctx.metrics.run_finished(plugin_id, &row.run.policy_version, RunStatus::Error, failure.seconds);
            }
            tracing::warn!(run_key = %run_key, plugin_id = failure.plugin_id.as_deref().unwrap_or(""), code = failure.code,
                message = %failure.message, "run failed");
            if stored { Outcome::Stored(RunStatus::Error) } else { Outcome::LeaseLost }
        }
    };
    Ok(Some(outcome))
}

struct Failure {
    code: &'static str,
    message: String,
    plugin_id: Option<String>,
    seconds: f64,
}

impl Failure {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), plugin_id: None, seconds: 0.0 }
    }
}

async fn decide(
    ctx: &WorkerContext,
    config: &WorkerConfig,
    row: &RunRow,
    control: &RunControl,
) -> Result<(Completion, f64), Failure> {
    let r = &row.run;
    let snapshot = ctx
        .store
        .snapshot_by_sv(&r.system_id, &r.sv)
        .await
        .map_err(|e| Failure::new(e.code(), e.to_string()))?
        .ok_or_else(|| {
            Failure::new("snapshot.not_found", format!("snapshot `{}` is no longer stored", r.view_snapshot_id))
        })?;
    let input =
        crate::ingest::load_input(&ctx.store, &snapshot).await.map_err(|e| Failure::new(e.code(), e.to_string()))?;
    let spec: PolicySpec =
        serde_json::from_str(&r.policy_spec_json).map_err(|e| Failure::new("run.bad_spec", e.to_string()))?;
    let params: RebalanceParams =
        serde_json::from_value(spec.params).map_err(|e| Failure::new("run.bad_spec", format!("params: {e}")))?;
    let plugin_id = ctx.host.registry().resolve(&r.policy_version).map(|e| e.manifest.plugin_id.clone()).ok();
    let host = Arc::clone(&ctx.host);
    let (system_id, sv, bucket, version) =
        (r.system_id.clone(), r.sv.clone(), r.decision_bucket_ts, r.policy_version.clone());
    let horizon = u32::try_from(r.horizon_steps).unwrap_or(u32::MAX);
    let started = Instant::now();
    let run_control = control.clone();
    let task = tokio::task::spawn_blocking(move || {
        let decision = Decision {
            system_id: &system_id,
            sv: &sv,
            decision_bucket_ts: bucket,
            horizon_steps: horizon,
            request_id: None,
            input: &input,
            params: &params,
            control: Some(&run_control),
        };
        host.decide(&version, &decision)
    });
    let joined = tokio::time::timeout(config.timeout, task).await;
    let seconds = started.elapsed().as_secs_f64();
    let with_plugin = |mut f: Failure| {
        f.plugin_id = plugin_id.clone();
        f.seconds = seconds;
        f
    };
    let record = match joined {
        Err(_) => {
            // Stop the plugin too: the wasm store or worker process ends
            // within a tick instead of running on in the background.
            control.cancel();
            return Err(with_plugin(Failure::new(
                "run.timeout",
                format!("the policy ran longer than {} ms", config.timeout.as_millis()),
            )));
        }
        Ok(Err(join)) => return Err(with_plugin(Failure::new("run.panicked", join.to_string()))),
        Ok(Ok(Err(e))) => return Err(with_plugin(Failure::new(e.code(), e.to_string()))),
        Ok(Ok(Ok(record))) => record,
    };
    if record.run_key_sha256.to_hex() != r.run_key_sha256 {
        return Err(with_plugin(Failure::new(
            "run.key_mismatch",
            format!("the host derived run key {} for a run stored as {}", record.run_key_sha256, r.run_key_sha256),
        )));
    }
    let canonical = |what: &str, value: &dyn erased::Canon| {
        value.text().map_err(|e| with_plugin(Failure::new("run.not_canonical", format!("{what}: {e}"))))
    };
    let output_json = canonical("output", &record.output)?;
    let diagnostics_json = match &record.output.diagnostics {
        Some(d) => Some(canonical("diagnostics", d)?),
        None => None,
    };
    let moves = record
        .output
        .moves
        .iter()
        .map(|m| {
            Ok(MoveRow {
                move_rank: i64::from(m.move_rank),
                from_station_key: m.from_station_key.clone(),
                to_station_key: m.to_station_key.clone(),
                bikes_moved: i64::from(m.bikes_moved),
                dist_m: m.dist_m,
                budget_exhausted: m.budget_exhausted,
                neighbor_exhausted: m.neighbor_exhausted,
                reason_codes_json: canonical("reason codes", &m.reason_codes)?,
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    Ok((
        Completion {
            plugin_id: record.plugin_id,
            manifest_sha256: record.manifest_sha256.to_hex(),
            input_sha256: record.input_sha256.to_hex(),
            output_sha256: record.output_sha256.to_hex(),
            output_json,
            diagnostics_json,
            moves,
            plugin_us: i64::try_from((seconds * 1e6) as u64).unwrap_or(i64::MAX),
        },
        seconds,
    ))
}

/// Canonical JSON text of values of different types behind one `dyn`.
mod erased {
    /// A value with a canonical JSON text.
    pub trait Canon {
        /// The RFC 8785 text.
        fn text(&self) -> Result<String, String>;
    }

    impl<T: serde::Serialize> Canon for T {
        fn text(&self) -> Result<String, String> {
            let bytes = polis_core::canonical::to_canonical_vec(self).map_err(|e| e.to_string())?;
            String::from_utf8(bytes).map_err(|e| e.to_string())
        }
    }
}
