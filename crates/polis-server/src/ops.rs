//! Operations: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, and the
//! admin ingest call.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use polis_rebalance::contract::RebalanceParams;
use polis_rebalance::gbfs::Feed;
use polis_rebalance::host::Host;
use polis_rebalance::snapshot::SnapshotOptions;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
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
    /// A GBFS feed directory or archive on the server's disk, as `polis
    /// ingest gbfs` takes.
    #[schema(min_length = 1)]
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
        (status = 403, body = ErrorBody), (status = 404, description = "no feed at `path`", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, description = "the feed at `path` is malformed", body = ErrorBody)),
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
        .map_err(|e| match e {
            // Nothing to ingest there: the feed the request names does not exist.
            polis_rebalance::gbfs::GbfsError::NotAFeed(_) => AppError::not_found(e.code(), "path", e.to_string()),
            e => AppError::unprocessable(e.code(), "path", e.to_string()),
        })?;
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
async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    Json(document(&state.host))
}

/// The OpenAPI document as served: utoipa's, then tightened where the
/// derive cannot say what the handlers check, so that a request the
/// document admits is one the server accepts (or answers 404 for data it
/// does not hold).
///
/// - `RunRequest.policy_version` lists the policy versions of the active
///   plugins of this server's registry.
/// - `RunRequest.params` is the JSON Schema of the params type itself
///   (schemars, the same schema the contract uses), not a bare object.
/// - `/api/policy/moves` and `/api/policy/status` take exactly one of
///   `run_id` and `run_key`. Separate query parameters cannot say "exactly
///   one", so both are properties of one exploded form-style object
///   parameter whose schema is `oneOf` the two; on the wire that is still
///   `?run_id=…` or `?run_key=…`.
pub fn document(host: &Host) -> Value {
    let Ok(mut doc) = serde_json::to_value(ApiDoc::openapi()) else {
        return Value::Null;
    };
    let versions: Vec<Value> =
        host.registry().entries().map(|e| Value::String(e.manifest.policy_version.clone())).collect();
    if let Some(property) = doc.pointer_mut("/components/schemas/RunRequest/properties/policy_version") {
        property["enum"] = Value::Array(versions);
    }
    let mut params = polis_core::contract::schema_value::<RebalanceParams>();
    if let Some(object) = params.as_object_mut() {
        object.remove("$schema");
        object.remove("title");
        if let Some(Value::Object(defs)) = object.remove("$defs")
            && let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas")
        {
            // Not reached for today's params, which have no sub-schemas;
            // kept so that a richer params type stays valid.
            for (name, schema) in defs {
                schemas.entry(name).or_insert(schema);
            }
        }
    }
    let params_text = params.to_string().replace("#/$defs/", "#/components/schemas/");
    if let (Ok(params), Some(property)) = (
        serde_json::from_str::<Value>(&params_text),
        doc.pointer_mut("/components/schemas/RunRequest/properties/params"),
    ) {
        *property = json!({"oneOf": [{"type": "null"}, params]});
    }
    for path in ["/api/policy/moves", "/api/policy/status"] {
        let pointer = format!("/paths/{}/get/parameters", path.replace('/', "~1"));
        if let Some(Value::Array(parameters)) = doc.pointer_mut(&pointer) {
            parameters.retain(|p| p["name"] != "run_id" && p["name"] != "run_key");
            parameters.insert(0, run_selector());
        }
    }
    doc
}

/// The `run_id` / `run_key` query parameters as one object parameter.
fn run_selector() -> Value {
    json!({
        "name": "selector",
        "in": "query",
        "required": true,
        "style": "form",
        "explode": true,
        "description": "exactly one of `run_id` (the run id) and `run_key` (the run key's SHA-256, hex), \
            as query parameters: `?run_id=…` or `?run_key=…`; neither or both is a 400",
        "schema": {
            "type": "object",
            "properties": {
                "run_id": {"type": "string", "minLength": 1, "description": "the run id"},
                "run_key": {"type": "string", "minLength": 1, "description": "the run key's SHA-256, hex"}
            },
            "oneOf": [{"required": ["run_id"]}, {"required": ["run_key"]}],
            "additionalProperties": false
        }
    })
}
