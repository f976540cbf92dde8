//! Bike-share rebalancing as the service serves it (seed 000): the seed's
//! `/api/policy/config|run|moves|status|cancel` routes, GBFS ingest, the
//! lookup and ready caches of the run route, the worker handler of
//! decision jobs, and the console's run pages.
//!
//! A decision is a job of kind [`DECIDE_KIND`]; its run key, spec and
//! snapshot live in the store's rebalancing tables. The handler rebuilds
//! the input from the stored snapshot (checked against its hash), decides
//! through the rebalancing host, and stores the output and its moves with
//! the job's completion in one transaction.

pub mod console;
pub mod ingest;
pub mod lookup;
pub mod policy;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use polis_core::run::PolicySpec;
use polis_rebalance::contract::{DecisionSubject, RebalanceParams};
use polis_rebalance::gbfs::Feed;
use polis_rebalance::host::{Decision, Host};
use polis_rebalance::snapshot::SnapshotOptions;
use polis_store::rebalance::{DECIDE_KIND, DecisionCompletion, MoveRow};
use polis_store::{JobResult, JobRow, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};

use crate::domain::{BoxFuture, ContractService, Domain, HostService, JobContext, JobDone, JobFailure};
use crate::error::{AppError, ErrorBody};
use crate::extract::{AdminAccess, ApiJson, Auth, ReadAccess};
use crate::{Core, now_ms};

/// Settings of the rebalancing service.
#[derive(Clone)]
pub struct Settings {
    /// The policy `GET /api/policy/config` offers by default. By default
    /// `rebal.global.v1`.
    pub default_policy_version: String,
    /// Ready answers kept in memory. By default 10,000.
    pub ready_cache_entries: usize,
    /// How long an allow-list or snapshot lookup is reused before the
    /// store is asked again (see [`lookup`]). Changes this process makes
    /// are seen at once whatever the TTL; changes made by other processes
    /// sharing the store are seen at most this late. Zero disables the
    /// lookup caches. Checking it against the monotonic clock is the only
    /// clock read the caches make; it bounds how fresh a lookup is and never
    /// affects what a policy decides. By default 2 s.
    pub lookup_ttl: Duration,
    /// Entries per lookup table; a full table is emptied. By default
    /// 10,000.
    pub lookup_cache_entries: usize,
    /// The host to decide with; `None` builds one over the built-ins and
    /// the service's plugin directories.
    pub host: Option<Arc<Host>>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_policy_version: "rebal.global.v1".to_owned(),
            ready_cache_entries: 10_000,
            lookup_ttl: Duration::from_secs(2),
            lookup_cache_entries: 10_000,
            host: None,
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("default_policy_version", &self.default_policy_version)
            .field("lookup_ttl", &self.lookup_ttl)
            .finish_non_exhaustive()
    }
}

/// What the rebalancing routes share; each field is cheap to clone.
#[derive(Clone)]
pub struct RebalanceState {
    /// The service's shared state.
    pub core: Core,
    /// The rebalancing host and its registry.
    pub host: Arc<Host>,
    /// Encoded answers of ready runs, which never change.
    pub ready_cache: Arc<ReadyCache>,
    /// Allow-list and snapshot lookups, reused for a short TTL.
    pub lookups: Arc<lookup::Lookups>,
    /// Settings.
    pub settings: Arc<Settings>,
}

impl FromRef<RebalanceState> for Arc<Auth> {
    fn from_ref(state: &RebalanceState) -> Self {
        Arc::clone(&state.core.auth)
    }
}

impl RebalanceState {
    /// Whether `plugin_id` may run for `system_id`, from the lookup cache
    /// or the store.
    pub async fn plugin_enabled_for(&self, plugin_id: &str, system_id: &str) -> Result<bool, StoreError> {
        let ticket = match self.lookups.allowed(plugin_id, system_id) {
            Ok(enabled) => return Ok(enabled),
            Err(ticket) => ticket,
        };
        let enabled = self.core.store.plugin_enabled_for(plugin_id, system_id).await?;
        self.lookups.keep_allowed(plugin_id, system_id, enabled, ticket);
        Ok(enabled)
    }

    /// The snapshot a request names, from the lookup cache or the store.
    pub async fn snapshot(&self, key: lookup::SnapshotKey) -> Result<lookup::SnapshotAnswer, StoreError> {
        let ticket = match self.lookups.snapshot(&key) {
            Ok(answer) => return Ok(answer),
            Err(ticket) => ticket,
        };
        let store = &self.core.store;
        let record = match &key {
            lookup::SnapshotKey::Bucket { system_id, bucket_ts } => {
                store
                    .snapshot_for_bucket(
                        system_id,
                        *bucket_ts,
                        polis_rebalance::snapshot::BUCKET_SECONDS,
                        polis_rebalance::snapshot::DEGRADED_AFTER_S,
                    )
                    .await?
            }
            lookup::SnapshotKey::Sv { system_id, sv } => store.snapshot_by_sv(system_id, sv).await?,
        };
        let answer = record.map(|r| Arc::new(lookup::SnapshotIdentity::from(r)));
        self.lookups.keep_snapshot(key, answer.clone(), ticket);
        Ok(answer)
    }
}

/// The rebalancing domain.
pub struct RebalanceDomain {
    state: RebalanceState,
}

impl RebalanceDomain {
    /// The domain over `core`, deciding with `host`.
    pub fn new(core: &Core, host: Arc<Host>, settings: Settings) -> Self {
        let state = RebalanceState {
            core: core.clone(),
            host,
            ready_cache: Arc::new(ReadyCache::new(settings.ready_cache_entries)),
            lookups: Arc::new(lookup::Lookups::new(settings.lookup_ttl, settings.lookup_cache_entries)),
            settings: Arc::new(settings),
        };
        RebalanceDomain { state }
    }

    /// The domain's shared state.
    pub fn state(&self) -> &RebalanceState {
        &self.state
    }
}

/// The domain from the service's settings: its host over the built-ins and
/// every rebalancing plugin in the plugin directories, unless one is given.
pub fn domain(
    core: &Core,
    plugins: &super::Plugins<'_>,
    settings: &Settings,
) -> Result<Arc<dyn Domain>, super::DomainError> {
    let host = match &settings.host {
        Some(host) => Arc::clone(host),
        None => {
            let registry = plugins.load(polis_rebalance::builtins::registry());
            Arc::new(Host::new(registry, polis_runtime::HostLimits::default())?)
        }
    };
    Ok(Arc::new(RebalanceDomain::new(core, host, settings.clone())))
}

#[derive(OpenApi)]
#[openapi(paths(policy::config, policy::run, policy::moves, policy::status, policy::cancel, ingest_route))]
struct RebalanceDoc;

impl Domain for RebalanceDomain {
    fn name(&self) -> &'static str {
        "rebalance"
    }

    fn title(&self) -> &'static str {
        "Rebalancing"
    }

    fn contracts(&self) -> Vec<Arc<dyn ContractService>> {
        vec![Arc::new(HostService::new(Arc::clone(&self.state.host)))]
    }

    fn router(&self) -> Router {
        policy::router()
            .route("/api/ingest/gbfs", post(ingest_route))
            .route("/console/rebalance", get(index_page))
            .route("/console/runs/{run_id}", get(console::run_page))
            .with_state(self.state.clone())
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        RebalanceDoc::openapi()
    }

    fn refine_openapi(&self, doc: &mut Value) {
        refine(&self.state.host, doc);
    }

    fn console_page(&self) -> Option<(&'static str, &'static str)> {
        Some(("/console/rebalance", "Rebalancing"))
    }

    fn console_job_link(&self, job: &JobRow) -> Option<String> {
        Some(format!("/console/runs/{}", job.job.job_id))
    }

    fn job_kinds(&self) -> &'static [&'static str] {
        &[DECIDE_KIND]
    }

    fn run_job(&self, job: JobRow, ctx: JobContext) -> BoxFuture<'_, Result<JobDone, JobFailure>> {
        Box::pin(async move {
            let (completion, plugin_id, seconds) = decide(&self.state, &job, &ctx).await?;
            let kept = self
                .state
                .core
                .store
                .complete_decision(&job.job.job_id, &ctx.owner, &completion, now_ms())
                .await
                .map_err(|e| crate::error::internal_failure(e.code(), e))?;
            Ok(JobDone::Stored { lease_kept: kept, plugin_id: Some(plugin_id), seconds })
        })
    }

    fn allow_list_changed(&self) {
        self.state.lookups.invalidate_allow();
    }
}

/// Decides one claimed decision job: rebuilds its input from the stored
/// snapshot and decides through the host under the job's control.
async fn decide(
    state: &RebalanceState,
    job: &JobRow,
    ctx: &JobContext,
) -> Result<(DecisionCompletion, String, f64), JobFailure> {
    let store = &state.core.store;
    let row = store
        .decision_by_id(&job.job.job_id)
        .await
        .map_err(|e| crate::error::internal_failure(e.code(), e))?
        .ok_or_else(|| JobFailure::new("run.not_found", format!("decision `{}` is not stored", job.job.job_id)))?;
    let r = &row.decision;
    let snapshot = store
        .snapshot_by_sv(&r.system_id, &r.sv)
        .await
        .map_err(|e| crate::error::internal_failure(e.code(), e))?
        .ok_or_else(|| {
            JobFailure::new("snapshot.not_found", format!("snapshot `{}` is no longer stored", r.view_snapshot_id))
        })?;
    let input = ingest::load_input(store, &snapshot).await.map_err(|e| crate::error::internal_failure(e.code(), e))?;
    let spec: PolicySpec =
        serde_json::from_str(&r.policy_spec_json).map_err(|e| JobFailure::new("run.bad_spec", e.to_string()))?;
    let params: RebalanceParams =
        serde_json::from_value(spec.params).map_err(|e| JobFailure::new("run.bad_spec", format!("params: {e}")))?;
    let plugin_id = state.host.registry().resolve(&r.policy_version).map(|e| e.manifest.plugin_id.clone()).ok();
    let subject = DecisionSubject {
        system_id: r.system_id.clone(),
        sv: r.sv.clone(),
        decision_bucket_ts: r.decision_bucket_ts,
        horizon_steps: u32::try_from(r.horizon_steps).unwrap_or(u32::MAX),
    };
    let host = Arc::clone(&state.host);
    let version = r.policy_version.clone();
    let control = ctx.control.clone();
    let started = Instant::now();
    let task = tokio::task::spawn_blocking(move || {
        let decision = Decision { control: Some(&control), ..Decision::new(&subject, &input, &params) };
        host.decide(&version, &decision)
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let with_plugin = |mut f: JobFailure| {
        f.plugin_id = plugin_id.clone();
        f.seconds = seconds;
        f
    };
    let record = match task {
        Err(join) => return Err(with_plugin(JobFailure::new("run.panicked", join.to_string()))),
        Ok(Err(e)) => return Err(with_plugin(JobFailure::new(e.code(), e.to_string()))),
        Ok(Ok(record)) => record,
    };
    if record.run_key_sha256.to_hex() != r.run_key_sha256 {
        return Err(with_plugin(JobFailure::new(
            "run.key_mismatch",
            format!("the host derived run key {} for a run stored as {}", record.run_key_sha256, r.run_key_sha256),
        )));
    }
    let canonical = |what: &str, value: &dyn erased::Canon| {
        value.text().map_err(|e| with_plugin(JobFailure::new("run.not_canonical", format!("{what}: {e}"))))
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
        .collect::<Result<Vec<_>, JobFailure>>()?;
    let completion = DecisionCompletion {
        result: JobResult {
            plugin_id: Some(record.plugin_id.clone()),
            manifest_sha256: Some(record.manifest_sha256.to_hex()),
            input_sha256: Some(record.input_sha256.to_hex()),
            output_sha256: Some(record.output_sha256.to_hex()),
            result_json: output_json,
            plugin_us: Some(i64::try_from((seconds * 1e6) as u64).unwrap_or(i64::MAX)),
        },
        diagnostics_json,
        moves,
    };
    Ok((completion, record.plugin_id, seconds))
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

/// `/console/rebalance`: the most recent decisions.
async fn index_page(_: ReadAccess, State(state): State<RebalanceState>) -> Result<Html<String>, AppError> {
    use std::fmt::Write as _;

    use crate::console::{escape, page};
    let mut body = String::from(
        "<h2>Recent runs</h2><table id=\"runs\"><tr><th>run</th><th>status</th><th>system</th>\
        <th>bucket</th><th>policy</th><th>attempts</th></tr>",
    );
    for r in state.core.store.recent_decisions(50).await? {
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/runs/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            r.job.status,
            escape(&r.decision.system_id),
            polis_core::run::rfc3339(r.decision.decision_bucket_ts),
            escape(&r.decision.policy_version),
            r.job.attempts,
            id = escape(&r.decision.job_id),
        );
    }
    body.push_str("</table>");
    Ok(page(&state.core.nav, "Rebalancing", &body))
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
    description = "Stores GBFS snapshots. Role: admin.",
    responses((status = 200, body = IngestResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "no feed at `path`", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, description = "the feed at `path` is malformed", body = ErrorBody)),
    security(("bearer" = [])))]
async fn ingest_route(
    _: AdminAccess,
    State(state): State<RebalanceState>,
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
    let ingested = ingest::ingest_feed(&state.core.store, &feed, SnapshotOptions::default(), now_ms()).await;
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

/// Tightens the served document where the derive cannot say what the
/// rebalancing handlers check, so that a request the document admits is
/// one the server accepts (or answers 404 for data it does not hold).
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
pub fn refine(host: &Host, doc: &mut Value) {
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

/// A JSON body already encoded.
#[derive(Debug, Clone)]
pub struct CachedJson(pub Bytes);

impl IntoResponse for CachedJson {
    fn into_response(self) -> Response {
        ([(axum::http::header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

/// Encoded answers of ready runs by run key hash. A ready run never
/// changes, so entries never go stale; when full the cache is emptied,
/// which costs only re-reading the store.
#[derive(Debug)]
pub struct ReadyCache {
    capacity: usize,
    entries: Mutex<HashMap<String, Bytes>>,
}

impl ReadyCache {
    /// A cache of at most `capacity` answers (0 disables it).
    pub fn new(capacity: usize) -> Self {
        ReadyCache { capacity, entries: Mutex::new(HashMap::new()) }
    }

    /// The answer for a run key hash.
    pub fn get(&self, run_key_sha256: &str) -> Option<CachedJson> {
        let entries = self.entries.lock().ok()?;
        entries.get(run_key_sha256).cloned().map(CachedJson)
    }

    /// Keeps an answer and returns it.
    pub fn insert(&self, run_key_sha256: String, body: Vec<u8>) -> CachedJson {
        let body = Bytes::from(body);
        if self.capacity > 0
            && let Ok(mut entries) = self.entries.lock()
        {
            if entries.len() >= self.capacity {
                entries.clear();
            }
            entries.insert(run_key_sha256, body.clone());
        }
        CachedJson(body)
    }
}
