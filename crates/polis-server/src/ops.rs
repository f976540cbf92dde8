//! Operations: `/healthz`, `/readyz`, `/metrics` and `/openapi.json`, the
//! document that merges the core's paths with every domain's.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::AppState;
use crate::error::{AppError, ErrorBody};
use crate::extract::ReadAccess;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// The routes of a process that runs workers but no API (`polis worker
/// --metrics-listen`): `/metrics` for that process and `/healthz`. They need
/// no token: they expose counts and latencies, never runs or data, and the
/// operator chooses the address they listen on.
pub fn worker_metrics_router(store: polis_store::Store, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Router {
    Router::new().route("/healthz", get(healthz)).route(
        "/metrics",
        get(move || async move {
            match metrics.render(&store).await {
                Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
                Err(e) => AppError::from(e).into_response(),
            }
        }),
    )
}

/// A probe's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

#[utoipa::path(get, path = "/healthz", description = "Whether the process is up. Role: none.", responses((status = 200, description = "the process is up", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".to_owned() })
}

#[utoipa::path(get, path = "/readyz", description = "Whether the store answers. Role: none.",
    responses((status = 200, description = "the store answers", body = Health), (status = 503, body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    match state.core.store.ping().await {
        Ok(()) => Json(Health { status: "ok".to_owned() }).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store not ready");
            let body = ErrorBody {
                status: "error".to_owned(),
                error: crate::error::ErrorDetail::new("store.unavailable", None, "the store does not answer"),
            };
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

#[utoipa::path(get, path = "/metrics", description = "Prometheus metrics. Role: read.",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn metrics(_: ReadAccess, State(state): State<AppState>) -> Result<axum::response::Response, AppError> {
    let text = state.core.metrics.render(&state.core.store).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI 3.1 document of the core's routes.
#[derive(OpenApi)]
#[openapi(
    info(title = "polis", description = "Policy runs as a service: every domain's routes, the generic run path, plugin health and operations."),
    paths(
        crate::runs::submit, crate::runs::run_status, crate::runs::job, crate::runs::cancel,
        crate::plugins::list, crate::plugins::set_system, crate::plugins::approve,
        healthz, readyz, metrics
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", description = "This document. Role: none.", responses((status = 200, description = "this document")))]
async fn openapi(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    Ok(Json(document(&state)?))
}

/// The OpenAPI document as served: the core's paths merged with every
/// domain's fragment, then refined by each domain where the derive cannot
/// say what its handlers check.
pub fn document(state: &AppState) -> Result<Value, AppError> {
    let mut api = ApiDoc::openapi();
    for domain in state.domains.iter() {
        api.merge(domain.openapi());
    }
    let mut doc = serde_json::to_value(api).map_err(|e| AppError::internal("openapi.encode", e))?;
    for domain in state.domains.iter() {
        domain.refine_openapi(&mut doc);
    }
    Ok(doc)
}
