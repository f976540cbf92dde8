//! Strategy replays as the service serves them (seed 001): a replay is a
//! job on the platform's queue, so any `polis worker` claims it; the
//! server's catalog with every entry's state and reasons; and the console's
//! strategy page ([`console`]).
//!
//! - `POST /api/strategy/replays` takes the bars (OHLCV CSV text, as
//!   `polis strategy replay --bars` reads it) and a catalog (TOML or JSON
//!   text). Both are checked before anything is stored: a bad row names its
//!   line and column, a catalog that does not parse or enables nothing is
//!   refused. The bars are stored content-addressed; the job's key is the
//!   bars' digest, the catalog and the settings, so asking twice never
//!   replays twice. It answers `pending` with the replay id, or the stored
//!   replay.
//! - `GET /api/strategy/replays/{id}`: `pending`, then `ready` with the
//!   digest, the evaluation of every strategy and its breaker at the last
//!   bar; `.../intents.jsonl` is the canonical intent stream whose SHA-256
//!   is the digest; `.../equity.svg` the equity plot.
//! - `GET /api/strategy/catalog`: the catalog given with
//!   `--strategy-catalog`, checked fail-closed.

pub mod console;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use polis_core::canonical::Digest;
use polis_store::{JobRow, JobStatus, NewJob, StoredInput};
use polis_strategy::catalog::{Catalog, EntryState};
use polis_strategy::contract::IntentRecord;
use polis_strategy::plugins::{LoadedStrategies, engine_for};
use polis_strategy::replay::{Evaluation, ReplayConfig, builtin, intents_jsonl, replay_parallel, replay_with};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};

use crate::Core;
use crate::domain::{BoxFuture, ContractService, Domain, JobContext, JobDone, JobFailure};
use crate::error::{AppError, ErrorBody, ErrorDetail};
use crate::extract::{ApiJson, Auth, Identity, ReadAccess};
use crate::runs::{answer_status, canonical_result, canonical_text, job_id_for};

/// The job kind of a replay.
pub const REPLAY_KIND: &str = "strategy.replay";

/// What a stored input of a replay is filed under.
const INPUT_CONTRACT: &str = "strategy.v1";

/// Largest replay request: 64 MiB of CSV is about a million bars.
const REPLAY_BODY_LIMIT: usize = 64 << 20;

/// Settings of the strategy service.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The catalog `GET /api/strategy/catalog` shows, already read:
    /// (file name, text). None: the route answers 404.
    pub catalog: Option<(String, String)>,
}

/// What the strategy routes share.
#[derive(Clone)]
pub struct StrategyState {
    /// The service's shared state.
    pub core: Core,
    /// The server's catalog, checked once at start.
    pub catalog: Option<Arc<Catalog>>,
    /// Strategy plugins from the plugin directories, which catalog entries
    /// may name.
    pub plugins: Arc<LoadedStrategies>,
}

impl FromRef<StrategyState> for Arc<Auth> {
    fn from_ref(state: &StrategyState) -> Self {
        Arc::clone(&state.core.auth)
    }
}

/// The strategy domain.
pub struct StrategyDomain {
    state: StrategyState,
}

/// The domain over `core`, with the strategy plugins under the plugin
/// directories (each that fails to load is logged, and an entry naming it
/// is disabled); a configured catalog that does not parse is an error
/// naming the file.
pub fn domain(
    core: &Core,
    plugins: &super::Plugins<'_>,
    settings: &Settings,
) -> Result<Arc<dyn Domain>, super::DomainError> {
    let loaded = match plugins.tiers {
        Some(tiers) if !plugins.dirs.is_empty() => {
            let roots: Vec<&std::path::Path> = plugins.dirs.iter().map(std::path::PathBuf::as_path).collect();
            let (loaded, reports) = LoadedStrategies::load(&roots, tiers);
            for report in reports {
                if let Err(reason) = report.outcome {
                    tracing::warn!(source = %report.source.display(), %reason, "strategy plugin disabled");
                }
            }
            loaded
        }
        _ => LoadedStrategies::none(),
    };
    let catalog = match &settings.catalog {
        Some((file, text)) => {
            Some(Arc::new(loaded.check(&Catalog::load(file, text).map_err(super::DomainError::Catalog)?)))
        }
        None => None,
    };
    Ok(Arc::new(StrategyDomain { state: StrategyState { core: core.clone(), catalog, plugins: Arc::new(loaded) } }))
}

impl Domain for StrategyDomain {
    fn name(&self) -> &'static str {
        "strategy"
    }

    fn title(&self) -> &'static str {
        "Strategies"
    }

    fn contracts(&self) -> Vec<Arc<dyn ContractService>> {
        // Strategies answer four methods per event; they run in replays,
        // not through the one-call run path.
        Vec::new()
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/api/strategy/replays", post(submit).layer(axum::extract::DefaultBodyLimit::max(REPLAY_BODY_LIMIT)))
            .route("/api/strategy/replays/{id}", get(replay_status))
            .route("/api/strategy/replays/{id}/intents.jsonl", get(replay_intents))
            .route("/api/strategy/replays/{id}/equity.svg", get(replay_equity))
            .route("/api/strategy/catalog", get(catalog_route))
            .merge(console::router())
            .with_state(self.state.clone())
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        StrategyDoc::openapi()
    }

    fn console_page(&self) -> Option<(&'static str, &'static str)> {
        Some(("/console/strategy", "Strategies"))
    }

    fn console_job_link(&self, job: &JobRow) -> Option<String> {
        (job.job.kind == REPLAY_KIND).then(|| format!("/console/strategy?replay={}", job.job.job_id))
    }

    fn job_kinds(&self) -> &'static [&'static str] {
        &[REPLAY_KIND]
    }

    fn run_job(&self, job: JobRow, ctx: JobContext) -> BoxFuture<'_, Result<JobDone, JobFailure>> {
        Box::pin(run_replay(job, ctx, self.state.plugins.clone()))
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(submit, replay_status, replay_intents, replay_equity, catalog_route),
    components(schemas(ReplayRequest, ReplayResponse))
)]
struct StrategyDoc;

/// The body of `POST /api/strategy/replays`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// OHLCV bars as CSV text: a header row; the time column named date,
    /// datetime, timestamp or time (any case) or unnamed and first; open,
    /// high, low, close, volume in any case; an optional symbol column.
    pub bars_csv: String,
    /// The catalog's text, in `catalog_format`.
    pub catalog: String,
    /// `toml` (the default) or `json`.
    #[serde(default = "toml_format")]
    pub catalog_format: String,
    /// The symbol of bars without a symbol column. By default `BARS`.
    #[serde(default = "default_symbol")]
    pub symbol: String,
    /// The bar length, such as `1d` (the default).
    #[serde(default = "default_timeframe")]
    pub timeframe: String,
    /// Trading cost in basis points of the notional traded. By default 0.
    #[serde(default)]
    pub cost_bps: f64,
    /// Starting equity of each strategy. By default 100,000.
    #[serde(default = "default_capital")]
    pub capital: f64,
}

fn toml_format() -> String {
    "toml".into()
}
fn default_symbol() -> String {
    "BARS".into()
}
fn default_timeframe() -> String {
    "1d".into()
}
fn default_capital() -> f64 {
    100_000.0
}

/// What a replay job carries; the bars are stored apart, by digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayPayload {
    bars_sha256: String,
    catalog: String,
    catalog_format: String,
    symbol: String,
    timeframe: String,
    cost_bps: f64,
    capital: f64,
}

/// A stored replay's input: the bars' text.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredBars {
    bars_csv: String,
}

/// What a finished replay stores: everything its routes and the console
/// show.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReplayResult {
    bars: usize,
    digest: String,
    intents: Vec<IntentRecord>,
    evaluations: Vec<Value>,
    breakers: Vec<Breaker>,
    equity: std::collections::BTreeMap<String, Vec<(i64, f64)>>,
}

/// One strategy's breaker at the last bar.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Breaker {
    /// `strategy_id@version`.
    pub strategy: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Times it opened during the replay.
    pub opened: u64,
}

/// A replay as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplayResponse {
    /// `pending` (running too), `ready`, `error` or `cancelled`.
    pub status: String,
    /// The replay's id (its job's).
    pub replay_id: String,
    /// `pending`, `running`, `ready`, `error` or `cancelled`.
    pub job_status: String,
    /// SHA-256 of the canonical intent stream, when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Bars replayed, when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bars: Option<usize>,
    /// Intents emitted, when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intents: Option<usize>,
    /// Each strategy's evaluation (return, Sharpe, drawdown, hit rate,
    /// turnover, exposure, counters), in catalog order, when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub metrics: Option<Vec<Value>>,
    /// Each strategy's breaker at the last bar, when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakers: Option<Vec<Breaker>>,
    /// Why the replay failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

fn stored_result(row: &JobRow) -> Result<Option<ReplayResult>, AppError> {
    if row.status != JobStatus::Ready {
        return Ok(None);
    }
    let text = row
        .result_json
        .as_deref()
        .ok_or_else(|| AppError::internal("store.corrupt", "ready replay without a result"))?;
    serde_json::from_str(text).map(Some).map_err(|e| AppError::internal("store.corrupt", e))
}

fn response(row: &JobRow) -> Result<ReplayResponse, AppError> {
    let result = stored_result(row)?;
    let error = ErrorDetail::of_job(row);
    Ok(ReplayResponse {
        status: answer_status(row.status).to_owned(),
        replay_id: row.job.job_id.clone(),
        job_status: row.status.as_str().to_owned(),
        digest: result.as_ref().map(|r| r.digest.clone()),
        bars: result.as_ref().map(|r| r.bars),
        intents: result.as_ref().map(|r| r.intents.len()),
        metrics: result.as_ref().map(|r| r.evaluations.clone()),
        breakers: result.map(|r| r.breakers),
        error,
    })
}

/// Checks a request completely: the bars parse (line and column named),
/// the catalog parses and enables a strategy, the timeframe and numbers
/// make sense.
fn check(request: &ReplayRequest, plugins: &LoadedStrategies) -> Result<Catalog, AppError> {
    let file = match request.catalog_format.as_str() {
        "toml" => "catalog.toml",
        "json" => "catalog.json",
        other => {
            return Err(AppError::unprocessable(
                "request.invalid_field",
                "catalog_format",
                format!("`{other}` is neither `toml` nor `json`"),
            ));
        }
    };
    let catalog = Catalog::load(file, &request.catalog)
        .map_err(|e| AppError::unprocessable("strategy.catalog_invalid", "catalog", e.to_string()))?;
    let catalog = plugins.check(&catalog);
    if catalog.enabled().next().is_none() {
        let reasons: Vec<String> = catalog
            .entries
            .iter()
            .filter(|e| e.state == EntryState::Disabled)
            .map(|e| format!("`{}`: {}", e.entry.strategy_id, e.reasons.join("; ")))
            .collect();
        return Err(AppError::unprocessable(
            "strategy.nothing_enabled",
            "catalog",
            format!(
                "the catalog enables no strategy{}",
                if reasons.is_empty() { String::new() } else { format!(": {}", reasons.join(", ")) }
            ),
        ));
    }
    if polis_strategy::replay::periods_per_year(&request.timeframe).is_none() {
        return Err(AppError::unprocessable(
            "request.invalid_field",
            "timeframe",
            format!("`{}` is not a number and a unit (s, m, h, d, w), such as `1d`", request.timeframe),
        ));
    }
    if !(request.cost_bps.is_finite() && request.cost_bps >= 0.0) {
        return Err(AppError::unprocessable("request.invalid_field", "cost_bps", "must be finite and not negative"));
    }
    if !(request.capital.is_finite() && request.capital > 0.0) {
        return Err(AppError::unprocessable("request.invalid_field", "capital", "must be finite and positive"));
    }
    let bars = polis_strategy::bars::read_bars(request.bars_csv.as_bytes(), &request.symbol)
        .map_err(|e| AppError::unprocessable("strategy.bars_invalid", "bars_csv", e.to_string()))?;
    if bars.is_empty() {
        return Err(AppError::unprocessable("strategy.bars_invalid", "bars_csv", "no bars after the header"));
    }
    Ok(catalog)
}

#[utoipa::path(post, path = "/api/strategy/replays", request_body = ReplayRequest,
    description = "Replays bars through a catalog's enabled strategies as a job any worker claims; asking again for \
        the same bars, catalog and settings answers the stored replay; rate-limited per token. Role: read.",
    responses((status = 200, description = "pending, or the stored replay", body = ReplayResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, description = "bad bars (line and column named), catalog or setting", body = ErrorBody),
        (status = 429, description = "this token asked too often; see `Retry-After`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn submit(
    identity: Identity,
    State(state): State<StrategyState>,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> Result<Json<ReplayResponse>, AppError> {
    state.core.run_rate.admit(&identity.subject, std::time::Instant::now())?;
    let checked = request.clone();
    let plugins = state.plugins.clone();
    tokio::task::spawn_blocking(move || check(&checked, &plugins))
        .await
        .map_err(|e| AppError::internal("strategy.join", e))??;
    let bars = canonical_text(&StoredBars { bars_csv: request.bars_csv })?;
    let bars_sha256 = Digest::of_bytes(bars.as_bytes()).to_hex();
    let payload = ReplayPayload {
        bars_sha256: bars_sha256.clone(),
        catalog: request.catalog,
        catalog_format: request.catalog_format,
        symbol: request.symbol,
        timeframe: request.timeframe,
        cost_bps: request.cost_bps,
        capital: request.capital,
    };
    let key = canonical_text(&json!({"kind": REPLAY_KIND, "replay": payload}))?;
    let key_sha256 = Digest::of_bytes(key.as_bytes()).to_hex();
    let store = &state.core.store;
    let now = crate::now_ms();
    let row = match store.job_by_key(&key_sha256).await? {
        Some(row) if row.status != JobStatus::Cancelled => row,
        _ => {
            store
                .put_input(
                    &StoredInput {
                        input_sha256: bars_sha256.clone(),
                        contract: INPUT_CONTRACT.to_owned(),
                        body_json: bars,
                    },
                    now,
                )
                .await?;
            let job = NewJob {
                job_id: job_id_for(&key_sha256),
                kind: REPLAY_KIND.to_owned(),
                contract: None,
                key_sha256: key_sha256.clone(),
                key_json: None,
                payload_json: Some(canonical_text(&payload)?),
                policy_version: None,
                input_sha256: Some(bars_sha256),
                submitted_by: Some(identity.subject.clone()),
            };
            let (row, enqueued) = store.enqueue_job(&job, now).await?;
            if enqueued {
                tracing::info!(job_id = %row.job.job_id, "strategy replay enqueued");
                state.core.work_available.notify_waiters();
            }
            row
        }
    };
    Ok(Json(response(&row)?))
}

async fn replay_row(state: &StrategyState, id: &str) -> Result<JobRow, AppError> {
    let missing = || AppError::not_found("strategy.replay_not_found", "id", format!("no strategy replay `{id}`"));
    let row = state.core.store.job_by_id(id).await?.ok_or_else(missing)?;
    if row.job.kind != REPLAY_KIND {
        return Err(missing());
    }
    Ok(row)
}

async fn ready_result(state: &StrategyState, id: &str) -> Result<ReplayResult, AppError> {
    let row = replay_row(state, id).await?;
    stored_result(&row)?.ok_or_else(|| {
        AppError::not_found(
            "strategy.replay_not_ready",
            "id",
            format!("replay `{id}` is {}, not ready", answer_status(row.status)),
        )
    })
}

#[utoipa::path(get, path = "/api/strategy/replays/{id}", params(("id" = String, Path, description = "the replay")),
    description = "A replay as it now is: pending, then ready with its digest, metrics and breakers. Role: read.",
    responses((status = 200, body = ReplayResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn replay_status(
    _: ReadAccess,
    State(state): State<StrategyState>,
    Path(id): Path<String>,
) -> Result<Json<ReplayResponse>, AppError> {
    Ok(Json(response(&replay_row(&state, &id).await?)?))
}

#[utoipa::path(get, path = "/api/strategy/replays/{id}/intents.jsonl", params(("id" = String, Path, description = "the replay")),
    description = "The replay's intents, one RFC 8785 canonical JSON record a line: their SHA-256 is the digest. Role: read.",
    responses((status = 200, description = "JSON lines", content_type = "application/x-ndjson"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn replay_intents(
    _: ReadAccess,
    State(state): State<StrategyState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let result = ready_result(&state, &id).await?;
    let bytes = intents_jsonl(&result.intents).map_err(|e| AppError::internal("encode", e))?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], bytes).into_response())
}

#[utoipa::path(get, path = "/api/strategy/replays/{id}/equity.svg", params(("id" = String, Path, description = "the replay")),
    description = "Each strategy's equity curve with its intents marked. Role: read.",
    responses((status = 200, description = "SVG", content_type = "image/svg+xml"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn replay_equity(
    _: ReadAccess,
    State(state): State<StrategyState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let result = ready_result(&state, &id).await?;
    let svg = polis_strategy::svg::equity_svg(&format!("replay {id}"), &result.equity, &result.intents);
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

#[utoipa::path(get, path = "/api/strategy/catalog",
    description = "The server's catalog (`--strategy-catalog`): every entry's state (enabled, off, disabled), reasons, \
        warnings, features and warm-up. Role: read.",
    responses((status = 200, description = "`{file, entries: [..]}`"), (status = 401, body = ErrorBody),
        (status = 404, description = "no catalog configured", body = ErrorBody)),
    security(("bearer" = [])))]
async fn catalog_route(_: ReadAccess, State(state): State<StrategyState>) -> Result<Response, AppError> {
    let catalog = state.catalog.as_ref().ok_or_else(|| {
        AppError::not_found(
            "strategy.no_catalog",
            "catalog",
            "this server has no strategy catalog (start it with `--strategy-catalog FILE`)",
        )
    })?;
    Ok(Json(catalog.as_ref()).into_response())
}

/// Runs one claimed replay job: reads the bars, replays (blocking, off the
/// async runtime) and returns the result for the worker to store.
async fn run_replay(job: JobRow, ctx: JobContext, plugins: Arc<LoadedStrategies>) -> Result<JobDone, JobFailure> {
    let bad = |e: String| JobFailure::new("job.bad_payload", e);
    let payload: ReplayPayload = job
        .job
        .payload_json
        .as_deref()
        .ok_or_else(|| bad("the replay job has no payload".into()))
        .and_then(|t| serde_json::from_str(t).map_err(|e| bad(format!("payload: {e}"))))?;
    let input = ctx
        .core
        .store
        .input(&payload.bars_sha256)
        .await
        .map_err(|e| crate::error::internal_failure(e.code(), e))?
        .ok_or_else(|| {
            JobFailure::new("input.not_found", format!("bars `{}` are no longer stored", payload.bars_sha256))
        })?;
    let started = std::time::Instant::now();
    let task = tokio::task::spawn_blocking(move || replay_stored(&payload, &input.body_json, &plugins)).await;
    let result = task.map_err(|e| JobFailure::new("strategy.panicked", e.to_string()))??;
    Ok(JobDone::Result(polis_store::JobResult {
        plugin_id: None,
        manifest_sha256: None,
        input_sha256: Some(job.job.input_sha256.clone().unwrap_or_default()),
        output_sha256: Some(result.digest.clone()),
        result_json: canonical_result(&result, "strategy.not_canonical")?,
        plugin_us: Some(i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX)),
    }))
}

fn replay_stored(
    payload: &ReplayPayload,
    stored: &str,
    plugins: &LoadedStrategies,
) -> Result<ReplayResult, JobFailure> {
    let fail = |code: &str, e: String| JobFailure::new(code, e);
    let bars: StoredBars = serde_json::from_str(stored).map_err(|e| fail("store.corrupt", e.to_string()))?;
    let file = if payload.catalog_format == "json" { "catalog.json" } else { "catalog.toml" };
    let catalog = plugins
        .check(&Catalog::load(file, &payload.catalog).map_err(|e| fail("strategy.catalog_invalid", e.to_string()))?);
    let bars = polis_strategy::bars::read_bars(bars.bars_csv.as_bytes(), &payload.symbol)
        .map_err(|e| fail("strategy.bars_invalid", e.to_string()))?;
    let config = ReplayConfig {
        timeframe: payload.timeframe.clone(),
        cost_bps: payload.cost_bps,
        capital: payload.capital,
        ..ReplayConfig::default()
    };
    // Built-ins in parallel groups; plugins in one engine (their instances
    // share one worker or module).
    let replay = if plugins.is_empty() {
        replay_parallel(&bars, &catalog, &config, &builtin, &|_, _| {})
    } else {
        replay_with(&bars, &mut engine_for(&catalog, config.breaker, plugins), &config)
    }
    .map_err(|e| fail("strategy.replay_failed", e.to_string()))?;
    let opened = |key: &str| {
        replay.evaluations.iter().find(|e| e.strategy == key).map_or(0, |e: &Evaluation| e.counters.circuit_opened)
    };
    let breakers = replay
        .breakers
        .iter()
        .map(|(key, state)| Breaker {
            strategy: key.clone(),
            state: serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            opened: opened(key),
        })
        .collect();
    let evaluations = replay
        .evaluations
        .iter()
        .map(|e| serde_json::to_value(e).map_err(|e| fail("strategy.not_canonical", e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok(ReplayResult {
        bars: replay.bars,
        digest: replay.digest.to_hex(),
        intents: replay.intents,
        evaluations,
        breakers,
        equity: replay.equity,
    })
}
