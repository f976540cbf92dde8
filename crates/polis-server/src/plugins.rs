//! Plugin health and the admin call that enables or disables a plugin for
//! a system.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use polis_runtime::{BreakerState, PluginMetrics};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{AppError, ErrorBody};
use crate::extract::{AdminAccess, ApiJson, ReadAccess};
use crate::{AppState, now_ms};

/// Recent errors listed per plugin.
const RECENT_ERRORS: i64 = 5;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/plugins", get(list))
        .route("/api/admin/plugins/{plugin_id}/systems/{system_id}", post(set_system))
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
