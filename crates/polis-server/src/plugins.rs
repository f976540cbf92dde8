//! Plugin health, the admin call that enables or disables a plugin for a
//! system, and the approval of plugin versions (when the service requires
//! it, [`polis_plugins::approval`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use polis_core::canonical::Digest;
use polis_plugins::approval::{Approval, ApprovalError, ApprovalGate, Standing};
use polis_runtime::{BreakerState, PluginMetrics};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{AppError, ErrorBody};
use crate::extract::{AdminAccess, AdminIdentity, ApiJson, ReadAccess};
use crate::{AppState, now_ms};

/// How often a process re-reads the approvals ([`refresh_approvals`]).
pub const APPROVAL_REFRESH: Duration = Duration::from_secs(2);

/// Recent errors listed per plugin.
const RECENT_ERRORS: i64 = 5;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/plugins", get(list))
        .route("/api/admin/plugins/{plugin_id}/systems/{system_id}", post(set_system))
        .route("/api/plugins/{plugin_id}/approve", post(approve))
}

/// A system allowlist row.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SystemRule {
    /// A system id, or `*` for every system.
    pub system_id: String,
    /// Whether the plugin runs for it.
    pub enabled: bool,
}

/// A recent failure.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecentError {
    /// The job that failed.
    pub run_id: String,
    /// The error code.
    pub code: Option<String>,
    /// The message.
    pub message: Option<String>,
    /// When, epoch ms.
    pub finished_at_ms: Option<i64>,
}

/// Where a plugin's circuit breaker stands in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerStateBody {
    /// Calls go through.
    Closed,
    /// Calls are refused (`run.circuit_open`) until the cooldown ends.
    Open,
    /// The cooldown ended; the next call is a trial.
    HalfOpen,
}

impl From<BreakerState> for BreakerStateBody {
    fn from(state: BreakerState) -> Self {
        match state {
            BreakerState::Closed => BreakerStateBody::Closed,
            BreakerState::Open => BreakerStateBody::Open,
            BreakerState::HalfOpen => BreakerStateBody::HalfOpen,
        }
    }
}

/// A plugin's circuit breaker and call counters, as the runtime's guard in
/// this process has seen them (each `polis worker` process keeps its own).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginRuntime {
    /// The breaker's state now; `closed` for a plugin not yet called here.
    pub breaker: BreakerStateBody,
    /// How many times the breaker has opened.
    pub breaker_opened: u64,
    /// While the breaker is open: milliseconds until it half-opens and
    /// lets a trial call through; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker_retry_after_ms: Option<u64>,
    /// Calls that reached the guard, including refused ones.
    pub calls: u64,
    /// Successful runs.
    pub successes: u64,
    /// Failed calls by error code, such as `run.timeout` or
    /// `run.circuit_open`.
    pub errors: BTreeMap<String, u64>,
    /// Mean time in the plugin per call, microseconds.
    pub latency_mean_us: u64,
    /// Slowest call, microseconds.
    pub latency_max_us: u64,
}

impl From<PluginMetrics> for PluginRuntime {
    fn from(m: PluginMetrics) -> Self {
        PluginRuntime {
            breaker: m.breaker.map_or(BreakerStateBody::Closed, BreakerStateBody::from),
            breaker_opened: m.breaker_opened,
            breaker_retry_after_ms: m.breaker_retry_after_ms,
            latency_mean_us: m.latency_total_us.checked_div(m.calls).unwrap_or(0),
            calls: m.calls,
            successes: m.successes,
            errors: m.errors,
            latency_max_us: m.latency_max_us,
        }
    }
}

/// One plugin's health.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginHealth {
    /// The plugin id.
    pub plugin_id: String,
    /// Its contract.
    pub contract: String,
    /// Its policy version.
    pub policy_version: String,
    /// Its strategy.
    pub strategy: String,
    /// Its tier.
    pub tier: String,
    /// `active` or `disabled`.
    pub activation: String,
    /// Why disabled.
    pub disabled_reason: Option<String>,
    /// Its manifest hash.
    pub manifest_sha256: Option<String>,
    /// Its artifact hash.
    pub artifact_sha256: Option<String>,
    /// Permissions its manifest asks for.
    pub permissions: Vec<String>,
    /// Its system allowlist.
    pub systems: Vec<SystemRule>,
    /// Its latest failed runs, from the store (so the same from any
    /// process), newest first.
    pub recent_errors: Vec<RecentError>,
    /// Its circuit breaker and call counters in this process.
    pub runtime: PluginRuntime,
    /// Whether it may run, when the service requires approval; absent
    /// otherwise and for built-ins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalStatus>,
}

/// A loaded plugin's standing under the approval workflow.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalStatus {
    /// `approved`, `pending_approval` (never approved: it does not run) or
    /// `artifact_changed` (this version was approved with other files: it
    /// does not run).
    pub state: String,
    /// The plugin version loaded.
    pub plugin_version: String,
    /// The digest of the file list loaded.
    pub files_sha256: String,
    /// The approval of this version, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved: Option<ApprovalBody>,
}

/// A recorded approval.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalBody {
    /// The plugin.
    pub plugin_id: String,
    /// The version approved.
    pub plugin_version: String,
    /// The file list approved (`polis.sha256sums`'s digest).
    pub files_sha256: String,
    /// Who approved it: the token's subject.
    pub approved_by: String,
    /// When, epoch ms.
    pub approved_at_ms: i64,
}

impl From<&Approval> for ApprovalBody {
    fn from(a: &Approval) -> Self {
        ApprovalBody {
            plugin_id: a.plugin_id.clone(),
            plugin_version: a.plugin_version.clone(),
            files_sha256: a.files_sha256.to_hex(),
            approved_by: a.approved_by.clone(),
            approved_at_ms: a.approved_at_ms,
        }
    }
}

fn approval_status(gate: &ApprovalGate, plugin_id: &str) -> Option<ApprovalStatus> {
    let seen = gate.seen(plugin_id)?;
    let (state, approved) = match gate.standing(plugin_id)? {
        Standing::Approved { approval } => ("approved", Some(ApprovalBody::from(&approval))),
        Standing::PendingApproval => ("pending_approval", None),
        Standing::ArtifactChanged { approval, .. } => ("artifact_changed", Some(ApprovalBody::from(&approval))),
    };
    Some(ApprovalStatus {
        state: state.to_owned(),
        plugin_version: seen.plugin_version,
        files_sha256: seen.files_sha256.to_hex(),
        approved,
    })
}

/// `GET /api/plugins`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginsResponse {
    /// Every plugin, by id.
    pub plugins: Vec<PluginHealth>,
}

#[utoipa::path(get, path = "/api/plugins", description = "Every contract's plugins with their health. Role: read.",
    responses((status = 200, body = PluginsResponse), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(_: ReadAccess, State(state): State<AppState>) -> Result<Json<PluginsResponse>, AppError> {
    let contracts = state.contracts();
    let mut runtime: BTreeMap<String, PluginMetrics> = contracts.iter().flat_map(|c| c.metrics()).collect();
    let permissions_of: BTreeMap<String, Vec<String>> =
        contracts.iter().flat_map(|c| c.plugins()).map(|view| (view.status.plugin_id, view.permissions)).collect();
    let mut plugins = Vec::new();
    for p in state.core.store.plugins().await? {
        let permissions = permissions_of.get(&p.plugin_id).cloned().unwrap_or_default();
        let systems = state
            .core
            .store
            .plugin_systems(&p.plugin_id)
            .await?
            .into_iter()
            .map(|o| SystemRule { system_id: o.system_id, enabled: o.enabled })
            .collect();
        let recent_errors = state
            .core
            .store
            .recent_errors(&p.plugin_id, RECENT_ERRORS)
            .await?
            .into_iter()
            .map(|r| RecentError {
                run_id: r.job.job_id,
                code: r.error_code,
                message: r.error_message,
                finished_at_ms: r.finished_at_ms,
            })
            .collect();
        let health = runtime.remove(&p.plugin_id).unwrap_or_default();
        let approval = state.core.approvals.as_deref().and_then(|gate| approval_status(gate, &p.plugin_id));
        plugins.push(PluginHealth {
            plugin_id: p.plugin_id,
            contract: p.contract,
            policy_version: p.policy_version,
            strategy: p.strategy,
            tier: p.tier,
            activation: p.activation,
            disabled_reason: p.disabled_reason,
            manifest_sha256: p.manifest_sha256,
            artifact_sha256: p.artifact_sha256,
            permissions,
            systems,
            recent_errors,
            runtime: health.into(),
            approval,
        });
    }
    Ok(Json(PluginsResponse { plugins }))
}

/// The admin call's body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSystemRequest {
    /// Whether the plugin may run for the system.
    pub enabled: bool,
}

#[utoipa::path(post, path = "/api/admin/plugins/{plugin_id}/systems/{system_id}", request_body = SetSystemRequest,
    description = "Allows or disallows a plugin for a system. Role: admin.",
    params(("plugin_id" = String, Path, description = "the plugin"),
        ("system_id" = String, Path, description = "a system id, or `*` for the default")),
    responses((status = 200, body = SystemRule), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
async fn set_system(
    _: AdminAccess,
    State(state): State<AppState>,
    Path((plugin_id, system_id)): Path<(String, String)>,
    ApiJson(request): ApiJson<SetSystemRequest>,
) -> Result<Json<SystemRule>, AppError> {
    let known = state.core.store.set_plugin_system(&plugin_id, &system_id, request.enabled, now_ms()).await;
    // Forget cached allow-list answers before answering, so the next
    // request in this process sees the change (even if the write failed
    // half-way, re-reading is always safe).
    for domain in state.domains.iter() {
        domain.allow_list_changed();
    }
    if !known? {
        return Err(AppError::not_found("plugin.not_found", "plugin_id", format!("no plugin `{plugin_id}`")));
    }
    tracing::info!(plugin_id = %plugin_id, system_id = %system_id, enabled = request.enabled, "plugin allowlist changed");
    Ok(Json(SystemRule { system_id, enabled: request.enabled }))
}

/// The approve call's body.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The file list digest the admin looked at (`GET /api/plugins`,
    /// `polis plugin inspect`), with or without `sha256:`; when given, the
    /// approval is refused unless it is what is loaded.
    #[serde(default)]
    pub files_sha256: Option<String>,
}

#[utoipa::path(post, path = "/api/plugins/{plugin_id}/approve", request_body = ApproveRequest,
    description = "Approves the loaded version of a plugin with the files it holds, so it runs; recorded with who and \
        when. A version approved before with other files is refused (409 `plugin.artifact_changed`, naming both \
        digests): a changed plugin needs a new plugin_version. Only on a service started with `--require-approval`. \
        Role: admin.",
    params(("plugin_id" = String, Path, description = "the plugin")),
    responses((status = 200, body = ApprovalBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody)),
    security(("bearer" = [])))]
async fn approve(
    AdminIdentity(identity): AdminIdentity,
    State(state): State<AppState>,
    Path(plugin_id): Path<String>,
    ApiJson(request): ApiJson<ApproveRequest>,
) -> Result<Json<ApprovalBody>, AppError> {
    let Some(gate) = state.core.approvals.as_deref() else {
        return Err(AppError::conflict(
            "plugin.approval_not_required",
            "plugin_id",
            "this service runs plugins without approval; start it with --require-approval to use the workflow",
        ));
    };
    let approval = gate
        .approval_for(&plugin_id, request.files_sha256.as_deref(), &identity.subject, now_ms())
        .map_err(|e| match e {
            ApprovalError::Unknown(_) => {
                AppError::not_found("plugin.not_found", "plugin_id", format!("no plugin `{plugin_id}` is loaded"))
            }
            ApprovalError::NotWhatWasLoaded { .. } => {
                AppError::conflict("plugin.files_mismatch", "files_sha256", e.to_string())
            }
            ApprovalError::ArtifactChanged { .. } => {
                AppError::conflict("plugin.artifact_changed", "plugin_id", e.to_string())
            }
        })?;
    let stored = state.core.store.approve_plugin(&record_of(&approval)).await?;
    // Another process may have approved the version first, with other
    // files: the stored row is the one that stands.
    if stored.files_sha256 != approval.files_sha256.to_hex() {
        let changed = ApprovalError::ArtifactChanged {
            plugin_id: plugin_id.clone(),
            plugin_version: stored.plugin_version,
            approved: stored.files_sha256,
            loaded: approval.files_sha256.to_hex(),
        };
        return Err(AppError::conflict("plugin.artifact_changed", "plugin_id", changed.to_string()));
    }
    let stored = approval_of(stored)?;
    gate.approve(stored.clone());
    tracing::info!(plugin_id = %plugin_id, version = %stored.plugin_version, files = %stored.files_sha256.to_hex(),
        by = %stored.approved_by, "plugin approved");
    Ok(Json(ApprovalBody::from(&stored)))
}

fn record_of(a: &Approval) -> polis_store::ApprovalRecord {
    polis_store::ApprovalRecord {
        plugin_id: a.plugin_id.clone(),
        plugin_version: a.plugin_version.clone(),
        files_sha256: a.files_sha256.to_hex(),
        approved_by: a.approved_by.clone(),
        approved_at_ms: a.approved_at_ms,
    }
}

fn approval_of(r: polis_store::ApprovalRecord) -> Result<Approval, polis_store::StoreError> {
    let files_sha256 = Digest::from_hex(&r.files_sha256).ok_or_else(|| polis_store::StoreError::Corrupt {
        field: "plugin_approvals.files_sha256",
        message: format!("`{}` is not a SHA-256 digest", r.files_sha256),
    })?;
    Ok(Approval {
        plugin_id: r.plugin_id,
        plugin_version: r.plugin_version,
        files_sha256,
        approved_by: r.approved_by,
        approved_at_ms: r.approved_at_ms,
    })
}

/// Every approval the store has.
async fn read_approvals(store: &polis_store::Store) -> Result<Vec<Approval>, polis_store::StoreError> {
    store.plugin_approvals().await?.into_iter().map(approval_of).collect()
}

/// A gate holding every approval the store has.
pub async fn approval_gate(store: &polis_store::Store) -> Result<Arc<ApprovalGate>, polis_store::StoreError> {
    Ok(ApprovalGate::new(read_approvals(store).await?))
}

/// Re-reads the approvals every [`APPROVAL_REFRESH`] until shutdown, so an approval
/// made through another process (a server in front of `polis worker`s)
/// reaches this one's gate.
pub async fn refresh_approvals(
    store: polis_store::Store,
    gate: Arc<ApprovalGate>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(APPROVAL_REFRESH) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        match read_approvals(&store).await {
            Ok(approvals) => gate.replace(approvals),
            Err(error) => tracing::warn!(%error, "cannot re-read plugin approvals; keeping the last ones"),
        }
    }
}
