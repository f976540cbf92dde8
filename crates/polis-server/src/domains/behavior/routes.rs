//! Plugins' health, and the routes route plugins declare.
//!
//! - `GET /api/plugins/health` (admin): every loaded behaviour plugin with
//!   its tier, kind, grants, registrations, routes, breaker, counters,
//!   health by the original's thresholds and last 10 errors, and what
//!   loading warned about.
//! - `/api/plugins/{plugin_id}/{path}`: a route the plugin declared while
//!   loading (`kind: route`), answered by its `handle_route` with a context
//!   holding no world. `/api/worlds/{world_id}/plugins/{plugin_id}/{path}`
//!   is the same with the stored world in the context, and answers 404
//!   when the world's `meta.behavior.enabledPlugins` does not enable the
//!   plugin: to that world the plugin does not exist. A route declared
//!   through `admin:routes`, and every route of a plugin holding it, needs
//!   the admin role. A plugin that fails to answer is a 502 naming it; the
//!   failure counts against its health and breaker.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::routing::{any, get};
use axum::{Json, Router};
use polis_behavior::{PluginReport, RouteOutcome, RouteRequest, Scene, World};
use serde::Serialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::BehaviorState;
use crate::error::{AppError, ErrorBody};
use crate::extract::{AdminIdentity, Identity, Role};

pub(super) fn router() -> Router<BehaviorState> {
    Router::new()
        .route("/api/plugins/health", get(health))
        .route("/api/plugins/{plugin_id}/{*path}", any(plugin_route))
        .route("/api/worlds/{world_id}/plugins/{plugin_id}/{*path}", any(world_plugin_route))
}

#[derive(OpenApi)]
#[openapi(paths(health, plugin_route, world_plugin_route), components(schemas(PluginsHealth)))]
pub(super) struct RoutesDoc;

/// The behaviour plugins as this process hosts them.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginsHealth {
    /// Every loaded plugin, by id.
    #[schema(value_type = Vec<Object>)]
    pub plugins: Vec<PluginReport>,
    /// What loading warned about or refused, in order.
    pub issues: Vec<String>,
    /// How many plugins are unhealthy.
    pub unhealthy: usize,
}

#[utoipa::path(get, path = "/api/plugins/health",
    description = "Every loaded behaviour plugin: tier, kind, granted and unknown permissions, conditions, effects and \
        routes it registered, its circuit breaker, its counters (requests, condition and effect failures, handler \
        time), whether it is healthy by the original's thresholds (past 10 samples: requests 50 %, conditions 30 %, \
        effects 30 %, handlers 50 %) and its last 10 errors. Role: admin.",
    responses((status = 200, body = PluginsHealth), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn health(_: AdminIdentity, State(state): State<BehaviorState>) -> Json<PluginsHealth> {
    let plugins = state.host.reports();
    let unhealthy = plugins.iter().filter(|p| !p.healthy).count();
    Json(PluginsHealth { plugins, issues: state.host.issues().to_vec(), unhealthy })
}

#[utoipa::path(get, path = "/api/plugins/{plugin_id}/{path}",
    params(("plugin_id" = String, Path, description = "the route plugin"), ("path" = String, Path, description = "the declared route")),
    description = "A route a `kind: route` behaviour plugin declared (any method it declared), answered by the plugin \
        with the status and JSON body it returns. 404 when the plugin declares no such route; the admin role when \
        the route needs it; 502 when the plugin fails. Role: read.",
    responses((status = 200, description = "the plugin's answer"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("bearer" = [])))]
async fn plugin_route(
    identity: Identity,
    State(state): State<BehaviorState>,
    method: Method,
    Path((plugin_id, path)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AppError> {
    serve(&state, &identity, None, &plugin_id, method, &path, query, &body).await
}

#[utoipa::path(get, path = "/api/worlds/{world_id}/plugins/{plugin_id}/{path}",
    params(("world_id" = String, Path, description = "the world"), ("plugin_id" = String, Path, description = "the route plugin"),
        ("path" = String, Path, description = "the declared route")),
    description = "A route plugin's route in one world: the plugin's context holds the stored world. 404 when the world \
        is not stored or does not enable the plugin (`meta.behavior.enabledPlugins`). Otherwise as \
        `/api/plugins/{plugin_id}/{path}`. Role: read.",
    responses((status = 200, description = "the plugin's answer"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("bearer" = [])))]
async fn world_plugin_route(
    identity: Identity,
    State(state): State<BehaviorState>,
    method: Method,
    Path((world_id, plugin_id, path)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let row =
        state.core.store.world(&world_id).await?.ok_or_else(|| {
            AppError::not_found("behavior.world_not_found", "world_id", format!("no world `{world_id}`"))
        })?;
    let world: World = serde_json::from_str(&row.world_json)
        .map_err(|e| AppError::internal("behavior.stored_document_invalid", format!("world: {e}")))?;
    if !world.plugin_scope().enables(&plugin_id) {
        return Err(AppError::not_found(
            "behavior.plugin_not_enabled",
            "plugin_id",
            format!("plugin `{plugin_id}` is not enabled in world `{world_id}`"),
        ));
    }
    serve(&state, &identity, Some(world), &plugin_id, method, &path, query, &body).await
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    state: &BehaviorState,
    identity: &Identity,
    world: Option<World>,
    plugin_id: &str,
    method: Method,
    path: &str,
    query: Option<String>,
    body: &[u8],
) -> Result<(StatusCode, Json<Value>), AppError> {
    let path = format!("/{path}");
    let (route, params) = state.host.route(plugin_id, method.as_str(), &path).ok_or_else(|| {
        AppError::not_found(
            "behavior.route_not_found",
            "path",
            format!("plugin `{plugin_id}` serves no route `{method} {path}`"),
        )
    })?;
    if route.admin && identity.role != Role::Admin {
        return Err(AppError::forbidden(format!(
            "`{method} {}` of plugin `{plugin_id}` is an admin route (the plugin holds `admin:routes`)",
            route.path
        )));
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|e| AppError::bad_request("request.invalid_json", None, format!("the body is not JSON: {e}")))?
    };
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let request = RouteRequest {
        method: method.to_string(),
        path,
        route: route.path.clone(),
        params,
        query,
        body,
        world_id: world.as_ref().map(|w| w.id.clone()),
    };
    let scene = Scene { world: world.map(Arc::new), session: None };
    let host = Arc::clone(&state.host);
    let plugin = plugin_id.to_owned();
    let outcome = tokio::task::spawn_blocking(move || host.call_route(&plugin, &request, &scene))
        .await
        .map_err(|e| AppError::internal("behavior.panicked", e))?;
    match outcome {
        RouteOutcome::Answered(reply) => {
            let status = StatusCode::from_u16(reply.status).map_err(|e| AppError::internal("behavior.status", e))?;
            Ok((status, Json(reply.body)))
        }
        RouteOutcome::Failed(message) => Err(AppError::Client {
            status: StatusCode::BAD_GATEWAY,
            code: "behavior.route_failed",
            field: Some("plugin_id".to_owned()),
            message,
        }),
    }
}
