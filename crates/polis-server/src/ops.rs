//! Operations: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, and the
//! admin ingest call.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use polis_rebalance::gbfs::Feed;
use polis_rebalance::snapshot::SnapshotOptions;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::{AppError, ErrorBody};
use crate::extract::{AdminAccess, ApiJson, ReadAccess};
use crate::{AppState, now_ms};

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/api/ingest/gbfs", post(ingest))
}

/// A probe's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "the process is up", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".to_owned() })
}

#[utoipa::path(get, path = "/readyz",
    responses((status = 200, description = "the store answers", body = Health), (status = 503, body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    match state.store.ping().await {
        Ok(()) => Json(Health { status: "ok".to_owned() }).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store not ready");
            let body = ErrorBody {
                status: "error".to_owned(),
                error: crate::error::ErrorDetail {
                    code: "store.unavailable".to_owned(),
                    field: None,
                    message: "the store does not answer".to_owned(),
                },
            };
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn metrics(_: ReadAccess, State(state): State<AppState>) -> Result<axum::response::Response, AppError> {
    let text = state.metrics.render(&state.store).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// `POST /api/ingest/gbfs`: a feed on the server's disk.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// A GBFS feed directory or archive, as `polis ingest gbfs` takes.
    pub path: String,
}

/// What an ingest stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IngestResponse {
    /// The system id.
    pub system_id: String,
    /// Snapshots stored.
    pub inserted: u64,
    /// Snapshots already present.
    pub skipped: u64,
    /// Station rows written.
    pub stations: u64,
}

#[utoipa::path(post, path = "/api/ingest/gbfs", request_body = IngestRequest,
    responses((status = 200, body = IngestResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn ingest(
    _: AdminAccess,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<IngestRequest>,
) -> Result<Json<IngestResponse>, AppError> {
    let path = PathBuf::from(&request.path);
    let feed = tokio::task::spawn_blocking(move || Feed::open(&path))
        .await
        .map_err(|e| AppError::internal("ingest.join", e))?
        .map_err(|e| AppError::unprocessable(e.code(), "path", e.to_string()))?;
    let ingested = crate::ingest::ingest_feed(&state.store, &feed, SnapshotOptions::default(), now_ms()).await;
    // Batches are committed one by one, so even a failed ingest may have
    // stored snapshots: forget cached snapshot lookups either way, so this
    // process sees them at once.
    state.lookups.invalidate_snapshots();
    let counts = ingested.map_err(|e| AppError::internal(e.code(), e))?;
    tracing::info!(system_id = %feed.system_id, inserted = counts.inserted, skipped = counts.skipped, "ingested");
    Ok(Json(IngestResponse {
        system_id: feed.system_id,
        inserted: counts.inserted,
        skipped: counts.skipped,
        stations: counts.stations,
    }))
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

/// The OpenAPI 3.1 document of the service.
#[derive(OpenApi)]
#[openapi(
    info(title = "polis", description = "Policy runs as a service: the seed's /api/policy routes, plugin health and operations."),
    paths(
        crate::policy::config, crate::policy::run, crate::policy::moves, crate::policy::status, crate::policy::cancel,
        crate::plugins::list, crate::plugins::set_system,
        healthz, readyz, metrics, ingest
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "this document")))]
async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
