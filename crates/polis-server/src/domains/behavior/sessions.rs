//! Worlds and sessions as JSON documents, and advancing a session.
//!
//! - `POST /api/worlds` (admin) stores a world document after checking its
//!   `meta.behavior` with the loaded plugins' simulation config; a world id
//!   holds one document for good (other content under it is a 409), so a
//!   session always plays the world it was created on. A world is admin's
//!   because `meta.behavior.enabledPlugins` decides which plugins touch it.
//! - `POST /api/worlds/{id}/sessions` starts a session (optionally with
//!   flags, relationships and a world time) and delivers `session:created`
//!   and one `npc:spawned` per NPC to subscribed plugins.
//! - `POST /api/sessions/{id}/advance` simulates N world seconds. Up to
//!   [`INLINE_TICKS`] ticks are answered at once with the changes: the
//!   timeline entries, the digest, and an RFC 6902 patch from the session
//!   before to after. A longer advance is a job of kind [`ADVANCE_KIND`] on
//!   the platform's queue, answered 202 with the job id; the job's result
//!   (`GET /api/jobs/{id}`) is the same response. Either way the session is
//!   written only if no other advance changed it since it was read, then
//!   `session:updated` is delivered.
//! - `GET /api/sessions/{id}` and `GET /api/sessions/{id}/timeline` read it
//!   back.
//!
//! An advance's ticks are numbered from 0 and its seed is the request's (0
//! by default), as in `polis behavior simulate`: advancing a stored
//! session by N seconds gives the timeline `simulate --session` gives.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use polis_behavior::documents::MAX_DOCUMENT_BYTES;
use polis_behavior::engine::{DEFAULT_SECONDS_PER_TICK, Outcome, RunOptions, Simulation};
use polis_behavior::{BehaviorHost, Event, Scene, Session, World};
use polis_core::canonical::Digest;
use polis_core::policy::RunControl;
use polis_store::{JobRow, JobStatus, NewJob, SessionRow, WorldPut, WorldRow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};

use super::BehaviorState;
use crate::domain::{JobContext, JobDone, JobFailure};
use crate::error::{AppError, ErrorBody, internal_failure};
use crate::extract::{AdminIdentity, ApiJson, ApiQuery, Identity, ReadAccess};
use crate::runs::{answer_status, canonical_result, canonical_string, canonical_text, job_id_for};

/// The job kind of a long advance.
pub const ADVANCE_KIND: &str = "behavior.advance";

/// Advances of at most this many ticks (a day at the default 15-minute
/// tick) are answered inline; longer ones become jobs.
pub const INLINE_TICKS: u64 = 96;

/// Most ticks one advance may have: a year at the default tick.
pub const MAX_ADVANCE_TICKS: u64 = 96 * 366;

/// Largest world or session request.
const BODY_LIMIT: usize = MAX_DOCUMENT_BYTES + (64 << 10);

/// Timeline entries one read returns at most.
const MAX_TIMELINE_PAGE: i64 = 10_000;

pub(super) fn router() -> Router<BehaviorState> {
    Router::new()
        .route("/api/worlds", post(create_world).get(list_worlds).layer(DefaultBodyLimit::max(BODY_LIMIT)))
        .route("/api/worlds/{world_id}", get(get_world))
        .route("/api/worlds/{world_id}/sessions", post(create_session).layer(DefaultBodyLimit::max(BODY_LIMIT)))
        .route("/api/sessions/{session_id}", get(get_session))
        .route("/api/sessions/{session_id}/advance", post(advance))
        .route("/api/sessions/{session_id}/timeline", get(timeline))
}

#[derive(OpenApi)]
#[openapi(
    paths(create_world, list_worlds, get_world, create_session, get_session, advance, timeline),
    components(schemas(
        WorldResponse,
        SessionCreate,
        SessionResponse,
        AdvanceRequest,
        AdvanceResponse,
        AdvanceAccepted,
        TimelinePage
    ))
)]
pub(super) struct SessionsDoc;

/// A stored world.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorldResponse {
    /// Its id.
    pub world_id: String,
    /// SHA-256 of its canonical JSON, hex.
    pub world_sha256: String,
    /// How many NPCs it has.
    pub npcs: usize,
    /// What the config check warned about (unknown keys, a malformed
    /// `enabledPlugins`), in order.
    pub warnings: Vec<String>,
    /// Who stored it.
    pub created_by: String,
    /// When, milliseconds since the epoch.
    pub created_at_ms: i64,
    /// The document (when reading one world).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub world: Option<Value>,
}

/// A session to start.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionCreate {
    /// Its id; derived from the world, the caller and the time when absent.
    #[serde(default)]
    pub session_id: Option<String>,
    /// World seconds to start at (0, midnight of day 1, by default).
    #[serde(default)]
    pub world_time: i64,
    /// Starting flags (NPC state under `npcs["npc:<id>"].state`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub flags: BTreeMap<String, Value>,
    /// Starting relationships by NPC key.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub relationships: BTreeMap<String, Value>,
}

/// A stored session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Its id.
    pub session_id: String,
    /// The world it plays.
    pub world_id: String,
    /// Advances applied so far.
    pub version: i64,
    /// The session document.
    #[schema(value_type = Object)]
    pub session: Value,
    /// Who created it.
    pub created_by: String,
    /// When, milliseconds since the epoch.
    pub created_at_ms: i64,
    /// When it last changed.
    pub updated_at_ms: i64,
    /// Plugins that handled the events of its creation (when created).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handled_by: Option<Vec<String>>,
}

/// How far to advance a session.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceRequest {
    /// World seconds to simulate: a positive multiple of `seconds_per_tick`.
    pub seconds: i64,
    /// The run seed (0 by default).
    #[serde(default)]
    pub seed: u64,
    /// World seconds per tick (900 by default).
    #[serde(default = "default_seconds_per_tick")]
    pub seconds_per_tick: i64,
}

fn default_seconds_per_tick() -> i64 {
    DEFAULT_SECONDS_PER_TICK
}

/// What an advance changed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdvanceResponse {
    /// The session.
    pub session_id: String,
    /// Its world.
    pub world_id: String,
    /// The session's version after the advance.
    pub version: i64,
    /// Ticks simulated.
    pub ticks: u64,
    /// The run seed.
    pub seed: u64,
    /// World seconds per tick.
    pub seconds_per_tick: i64,
    /// World time before.
    pub world_time_before: i64,
    /// World time after the last tick.
    pub world_time_after: i64,
    /// The advance's timeline digest (as `polis behavior simulate` prints).
    pub digest: String,
    /// Its timeline entries, by time then world NPC order, each with its
    /// `npcId`.
    #[schema(value_type = Vec<Object>)]
    pub timeline: Vec<Value>,
    /// RFC 6902 operations from the session before to after.
    #[schema(value_type = Vec<Object>)]
    pub patch: Value,
    /// Counts of what the run did.
    #[schema(value_type = Object)]
    pub stats: Value,
    /// Warnings about the world.
    pub warnings: Vec<String>,
}

/// A long advance, queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdvanceAccepted {
    /// The job: `GET /api/jobs/{job_id}` holds the result once ready.
    pub job_id: String,
    /// `pending`, `ready`, `error` or `cancelled`.
    pub status: String,
    /// The session.
    pub session_id: String,
    /// The version the advance starts from.
    pub from_version: i64,
    /// Ticks it simulates.
    pub ticks: u64,
}

/// A page of a session's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelinePage {
    /// The session.
    pub session_id: String,
    /// Entries with `seq` and `version`, in order.
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<Value>,
    /// The `from` of the next page, when there may be more.
    pub next: Option<i64>,
}

fn check_id(field: &str, id: &str) -> Result<(), AppError> {
    let ok = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "behavior.bad_id",
            field.to_owned(),
            format!("`{id}` is not 1 to 128 of letters, digits, `_`, `.`, `-`, `:`"),
        ))
    }
}

fn no_world(world_id: &str) -> AppError {
    AppError::not_found("behavior.world_not_found", "world_id", format!("no world `{world_id}`"))
}

fn no_session(session_id: &str) -> AppError {
    AppError::not_found("behavior.session_not_found", "session_id", format!("no session `{session_id}`"))
}

/// Runs blocking plugin work off the async runtime.
pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| AppError::internal("behavior.panicked", e))
}

fn decode<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, AppError> {
    serde_json::from_str(text)
        .map_err(|e| AppError::internal("behavior.stored_document_invalid", format!("{what}: {e}")))
}

/// Checks `world` (and `session`'s NPC states) with the host's simulation
/// config; the warnings on success.
fn check(host: &BehaviorHost, world: &World, session: &Session) -> Result<Vec<String>, AppError> {
    let simulation = Simulation::new(world.clone(), session.clone(), host)
        .map_err(|e| AppError::unprocessable(e.code(), "meta.behavior", e.to_string()))?;
    let mut warnings = simulation.config().warnings.clone();
    if let Some(warning) = world.plugin_scope().warning() {
        warnings.push(warning.to_owned());
    }
    Ok(warnings)
}

fn world_response(row: &WorldRow, warnings: Vec<String>, with_document: bool) -> Result<WorldResponse, AppError> {
    let world: World = decode(&row.world_json, "world")?;
    Ok(WorldResponse {
        world_id: row.world_id.clone(),
        world_sha256: row.world_sha256.clone(),
        npcs: world.npcs.len(),
        warnings,
        created_by: row.created_by.clone(),
        created_at_ms: row.created_at_ms,
        world: with_document
            .then(|| serde_json::to_value(&world))
            .transpose()
            .map_err(|e| AppError::internal("encode", e))?,
    })
}

#[utoipa::path(post, path = "/api/worlds", request_body(content = Object, description = "a world document: \
        `{id, name?, meta: {behavior: {activities, routines, scoringConfig, simulationConfig, enabledPlugins}}, \
        locations, npcs}`"),
    description = "Checks a world's behaviour config with the loaded plugins' simulation config and stores it under \
        its id. The same document again is a 200; other content under a stored id is a 409. Role: admin.",
    responses((status = 201, body = WorldResponse), (status = 200, body = WorldResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_world(
    AdminIdentity(identity): AdminIdentity,
    State(state): State<BehaviorState>,
    ApiJson(world): ApiJson<World>,
) -> Result<(StatusCode, Json<WorldResponse>), AppError> {
    check_id("id", &world.id)?;
    let host = Arc::clone(&state.host);
    let checked = world.clone();
    let warnings = blocking(move || check(&host, &checked, &Session::new("check", &checked))).await??;
    let world_json = canonical_text(&world)?;
    let row = WorldRow {
        world_id: world.id.clone(),
        world_sha256: Digest::of_bytes(world_json.as_bytes()).to_hex(),
        world_json,
        created_by: identity.subject,
        created_at_ms: crate::now_ms(),
    };
    let status = match state.core.store.put_world(&row).await? {
        WorldPut::Created => StatusCode::CREATED,
        WorldPut::Unchanged => StatusCode::OK,
        WorldPut::Conflict => {
            return Err(AppError::conflict(
                "behavior.world_exists",
                "id",
                format!("world `{}` is stored with other content; give the new one another id", world.id),
            ));
        }
    };
    let stored = state.core.store.world(&world.id).await?.ok_or_else(|| no_world(&world.id))?;
    Ok((status, Json(world_response(&stored, warnings, false)?)))
}

#[utoipa::path(get, path = "/api/worlds",
    description = "Every stored world, by id. Role: read.",
    responses((status = 200, body = [WorldResponse]), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_worlds(_: ReadAccess, State(state): State<BehaviorState>) -> Result<Json<Vec<WorldResponse>>, AppError> {
    let rows = state.core.store.worlds().await?;
    Ok(Json(rows.iter().map(|r| world_response(r, Vec::new(), false)).collect::<Result<_, _>>()?))
}

#[utoipa::path(get, path = "/api/worlds/{world_id}", params(("world_id" = String, Path, description = "the world")),
    description = "A stored world with its document. Role: read.",
    responses((status = 200, body = WorldResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_world(
    _: ReadAccess,
    State(state): State<BehaviorState>,
    Path(world_id): Path<String>,
) -> Result<Json<WorldResponse>, AppError> {
    let row = state.core.store.world(&world_id).await?.ok_or_else(|| no_world(&world_id))?;
    Ok(Json(world_response(&row, Vec::new(), true)?))
}

/// The world a stored session plays, and the session.
pub(super) async fn load_session(
    state: &BehaviorState,
    session_id: &str,
) -> Result<(SessionRow, World, Session), AppError> {
    let row = state.core.store.session(session_id).await?.ok_or_else(|| no_session(session_id))?;
    let world_row = state.core.store.world(&row.world_id).await?.ok_or_else(|| no_world(&row.world_id))?;
    let world: World = decode(&world_row.world_json, "world")?;
    let session: Session = decode(&row.session_json, "session")?;
    Ok((row, world, session))
}

pub(super) fn session_response(row: &SessionRow, handled_by: Option<Vec<String>>) -> Result<SessionResponse, AppError> {
    Ok(SessionResponse {
        session_id: row.session_id.clone(),
        world_id: row.world_id.clone(),
        version: row.version,
        session: decode(&row.session_json, "session")?,
        created_by: row.created_by.clone(),
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
        handled_by,
    })
}

/// A session id nobody gave: `ses_` and 16 hex digits of SHA-256 over the
/// world, the caller, the time and a process counter. It names the session
/// and decides nothing.
fn new_session_id(world_id: &str, subject: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let text = format!("{world_id}/{subject}/{}/{}/{n}", crate::now_ms(), std::process::id());
    format!("ses_{}", &Digest::of_bytes(text.as_bytes()).to_hex()[..16])
}

/// Delivers `events` to the subscribed plugins on the session's scene;
/// the plugins that handled any, in id order.
pub(super) fn deliver(host: &BehaviorHost, world: World, session: Session, events: Vec<Event>) -> Vec<String> {
    let scene = Scene::new(Arc::new(world), Arc::new(std::sync::Mutex::new(session)));
    let mut handled: Vec<String> = events.iter().flat_map(|e| host.deliver(e, &scene)).collect();
    handled.sort();
    handled.dedup();
    handled
}

#[utoipa::path(post, path = "/api/worlds/{world_id}/sessions", params(("world_id" = String, Path, description = "the world")),
    request_body = SessionCreate,
    description = "Starts a session of a stored world, checks every NPC's starting state, and delivers \
        `session:created` and one `npc:spawned` per NPC to subscribed plugins. Role: read.",
    responses((status = 201, body = SessionResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_session(
    identity: Identity,
    State(state): State<BehaviorState>,
    Path(world_id): Path<String>,
    ApiJson(create): ApiJson<SessionCreate>,
) -> Result<(StatusCode, Json<SessionResponse>), AppError> {
    let world_row = state.core.store.world(&world_id).await?.ok_or_else(|| no_world(&world_id))?;
    let world: World = decode(&world_row.world_json, "world")?;
    let session_id = create.session_id.clone().unwrap_or_else(|| new_session_id(&world_id, &identity.subject));
    check_id("session_id", &session_id)?;
    let session = Session {
        id: session_id.clone(),
        world_id: world_id.clone(),
        world_time: create.world_time,
        flags: create.flags,
        relationships: create.relationships,
    };
    let host = Arc::clone(&state.host);
    let (checked_world, checked_session) = (world.clone(), session.clone());
    blocking(move || check(&host, &checked_world, &checked_session)).await??;
    let now = crate::now_ms();
    let row = SessionRow {
        session_id: session_id.clone(),
        world_id: world_id.clone(),
        session_json: canonical_text(&session)?,
        version: 0,
        created_by: identity.subject,
        created_at_ms: now,
        updated_at_ms: now,
    };
    if !state.core.store.insert_session(&row).await? {
        return Err(AppError::conflict(
            "behavior.session_exists",
            "session_id",
            format!("session `{session_id}` exists"),
        ));
    }
    let mut events = vec![Event {
        event_type: "session:created".into(),
        data: json!({"sessionId": session_id, "worldId": world_id}),
    }];
    events.extend(world.npcs.iter().map(|npc| Event {
        event_type: "npc:spawned".into(),
        data: json!({"sessionId": session_id, "worldId": world_id, "npcId": npc.id}),
    }));
    let host = Arc::clone(&state.host);
    let handled = blocking(move || deliver(&host, world, session, events)).await?;
    Ok((StatusCode::CREATED, Json(session_response(&row, Some(handled))?)))
}

#[utoipa::path(get, path = "/api/sessions/{session_id}", params(("session_id" = String, Path, description = "the session")),
    description = "A session: its document (flags, relationships, NPC state, world time) and version. Role: read.",
    responses((status = 200, body = SessionResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_session(
    _: ReadAccess,
    State(state): State<BehaviorState>,
    Path(session_id): Path<String>,
) -> Result<Json<SessionResponse>, AppError> {
    let row = state.core.store.session(&session_id).await?.ok_or_else(|| no_session(&session_id))?;
    Ok(Json(session_response(&row, None)?))
}

/// The ticks `request` asks for, or why it is refused.
fn ticks_of(request: &AdvanceRequest) -> Result<u64, AppError> {
    let bad =
        |field: &str, message: String| AppError::bad_request("behavior.advance_invalid", field.to_owned(), message);
    if request.seconds_per_tick < 1 {
        return Err(bad("seconds_per_tick", "must be at least 1".into()));
    }
    if request.seconds < 1 || request.seconds % request.seconds_per_tick != 0 {
        return Err(bad(
            "seconds",
            format!(
                "must be a positive multiple of seconds_per_tick ({}), not {}",
                request.seconds_per_tick, request.seconds
            ),
        ));
    }
    let ticks = u64::try_from(request.seconds / request.seconds_per_tick).unwrap_or(u64::MAX);
    if ticks > MAX_ADVANCE_TICKS {
        return Err(bad("seconds", format!("{ticks} ticks; one advance has at most {MAX_ADVANCE_TICKS}")));
    }
    Ok(ticks)
}

/// What a long advance's job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvancePayload {
    session_id: String,
    from_version: i64,
    request: AdvanceRequest,
}

/// Simulates `request` on a session read at `from_version` and writes the
/// result if the session is still there. Blocking work runs off the async
/// runtime; `control` stops it between ticks.
async fn run(
    state: &BehaviorState,
    row: SessionRow,
    world: World,
    session: Session,
    request: AdvanceRequest,
    control: RunControl,
) -> Result<AdvanceResponse, AdvanceError> {
    let ticks = u64::try_from(request.seconds / request.seconds_per_tick).unwrap_or(u64::MAX);
    let options = RunOptions { ticks, seed: request.seed, seconds_per_tick: request.seconds_per_tick };
    let host = Arc::clone(&state.host);
    let (simulated_world, before) = (world.clone(), session.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        Simulation::new(simulated_world, before, &host).and_then(|s| s.run_until(options, &control))
    })
    .await
    .map_err(|e| AdvanceError::Internal(format!("the simulation panicked: {e}")))?
    .map_err(|e| AdvanceError::Engine(e.code(), e.to_string()))?;
    let response = changes(&row, &world, &session, options, &outcome)?;
    let mut entries = Vec::with_capacity(response.timeline.len());
    for entry in &response.timeline {
        entries.push(canonical(entry)?);
    }
    let session_json = canonical(&outcome.session)?;
    let written = state
        .core
        .store
        .advance_session(&row.session_id, row.version, &session_json, &entries, crate::now_ms())
        .await
        .map_err(|e| AdvanceError::Internal(e.to_string()))?;
    if !written {
        return Err(AdvanceError::Moved(row.session_id.clone(), row.version));
    }
    let event = Event {
        event_type: "session:updated".into(),
        data: json!({"sessionId": row.session_id, "worldId": row.world_id, "version": response.version,
            "worldTime": response.world_time_after}),
    };
    let host = Arc::clone(&state.host);
    let after = outcome.session;
    let _ = tokio::task::spawn_blocking(move || deliver(&host, world, after, vec![event])).await;
    Ok(response)
}

/// `value` as RFC 8785 text.
fn canonical<T: Serialize>(value: &T) -> Result<String, AdvanceError> {
    canonical_string(value).map_err(AdvanceError::Internal)
}

/// Why an advance did not apply.
#[derive(Debug)]
enum AdvanceError {
    /// The engine refused the world, the state or the options.
    Engine(&'static str, String),
    /// Another advance changed the session since it was read.
    Moved(String, i64),
    /// Something of polis's failed.
    Internal(String),
}

impl AdvanceError {
    fn into_app(self) -> AppError {
        match self {
            AdvanceError::Engine(code, message) => AppError::unprocessable(code, "session", message),
            AdvanceError::Moved(id, version) => session_moved(&id, version),
            AdvanceError::Internal(message) => AppError::internal("behavior.advance_failed", message),
        }
    }

    fn into_failure(self) -> JobFailure {
        match self {
            AdvanceError::Engine(code, message) => JobFailure::new(code, message),
            AdvanceError::Moved(id, version) => JobFailure::new(
                "behavior.session_moved",
                format!("session `{id}` changed since version {version}; the advance was not applied"),
            ),
            AdvanceError::Internal(message) => internal_failure("behavior.advance_failed", message),
        }
    }
}

/// The 409 for a change to `session_id` that found it moved on from
/// `version`, the version it read.
pub(super) fn session_moved(session_id: &str, version: i64) -> AppError {
    AppError::conflict(
        "behavior.session_moved",
        "session_id",
        format!("session `{session_id}` changed since version {version} was read; read it and try again"),
    )
}

/// RFC 6902 operations from `before` to `after`.
pub(super) fn session_patch(before: &Session, after: &Session) -> Result<Value, serde_json::Error> {
    serde_json::to_value(json_patch::diff(&serde_json::to_value(before)?, &serde_json::to_value(after)?))
}

/// The response for an advance of `row` from `before` that gave `outcome`.
fn changes(
    row: &SessionRow,
    world: &World,
    before: &Session,
    options: RunOptions,
    outcome: &Outcome,
) -> Result<AdvanceResponse, AdvanceError> {
    let encode = |e: serde_json::Error| AdvanceError::Internal(format!("encode: {e}"));
    let mut entries: Vec<(i64, usize, Value)> = Vec::new();
    for (index, npc) in world.npcs.iter().enumerate() {
        for entry in outcome.timeline.npcs.get(&npc.id).into_iter().flatten() {
            let mut value = serde_json::to_value(entry).map_err(encode)?;
            value["npcId"] = json!(npc.id);
            entries.push((entry.at_seconds, index, value));
        }
    }
    entries.sort_by_key(|(at, index, _)| (*at, *index));
    Ok(AdvanceResponse {
        session_id: row.session_id.clone(),
        world_id: row.world_id.clone(),
        version: row.version + 1,
        ticks: options.ticks,
        seed: options.seed,
        seconds_per_tick: options.seconds_per_tick,
        world_time_before: before.world_time,
        world_time_after: outcome.session.world_time,
        digest: outcome.digest.to_hex(),
        timeline: entries.into_iter().map(|(_, _, v)| v).collect(),
        patch: session_patch(before, &outcome.session).map_err(encode)?,
        stats: serde_json::to_value(&outcome.stats).map_err(encode)?,
        warnings: outcome.warnings.clone(),
    })
}

#[utoipa::path(post, path = "/api/sessions/{session_id}/advance", params(("session_id" = String, Path, description = "the session")),
    request_body = AdvanceRequest,
    description = "Simulates `seconds` of world time. Up to 96 ticks are answered at once with the changes (timeline \
        entries, digest, an RFC 6902 patch of the session); a longer advance is queued as a `behavior.advance` job and \
        answered 202 (its result, at `GET /api/jobs/{job_id}`, is the same response). The session is written only if \
        no other advance changed it meanwhile (else 409). Role: read; rate-limited per token.",
    responses((status = 200, body = AdvanceResponse), (status = 202, body = AdvanceAccepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, description = "this token asked too often; see `Retry-After`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn advance(
    identity: Identity,
    State(state): State<BehaviorState>,
    Path(session_id): Path<String>,
    ApiJson(request): ApiJson<AdvanceRequest>,
) -> Result<Response, AppError> {
    state.core.run_rate.admit(&identity.subject, std::time::Instant::now())?;
    let ticks = ticks_of(&request)?;
    let (row, world, session) = load_session(&state, &session_id).await?;
    if ticks <= INLINE_TICKS {
        let response =
            run(&state, row, world, session, request, RunControl::new()).await.map_err(AdvanceError::into_app)?;
        return Ok(Json(response).into_response());
    }
    let payload = AdvancePayload { session_id: session_id.clone(), from_version: row.version, request };
    let key = canonical_text(&json!({"kind": ADVANCE_KIND, "advance": payload}))?;
    let key_sha256 = Digest::of_bytes(key.as_bytes()).to_hex();
    let job_id = job_id_for(&key_sha256);
    let store = &state.core.store;
    let existing = store.job_by_id(&job_id).await?.filter(|j| j.status != JobStatus::Cancelled);
    let status = match existing {
        Some(job) => job.status,
        None => {
            let job = NewJob {
                job_id: job_id.clone(),
                kind: ADVANCE_KIND.into(),
                contract: None,
                key_sha256,
                key_json: Some(key),
                payload_json: Some(canonical_text(&payload)?),
                policy_version: None,
                input_sha256: None,
                submitted_by: Some(identity.subject.clone()),
            };
            store.enqueue_job(&job, crate::now_ms()).await?;
            tracing::info!(session = %session_id, ticks, job = %job_id, "behaviour advance enqueued");
            state.core.work_available.notify_waiters();
            JobStatus::Pending
        }
    };
    let accepted = AdvanceAccepted {
        job_id,
        status: answer_status(status).to_owned(),
        session_id,
        from_version: payload.from_version,
        ticks,
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// Runs a claimed long advance. A session that moved on since the job was
/// queued fails the job (`behavior.session_moved`): the advance asked for
/// is from a version that no longer exists.
pub(super) async fn run_advance(state: BehaviorState, job: JobRow, ctx: JobContext) -> Result<JobDone, JobFailure> {
    let bad = |e: String| JobFailure::new("job.bad_payload", e);
    let payload: AdvancePayload = job
        .job
        .payload_json
        .as_deref()
        .ok_or_else(|| bad("the advance job has no payload".into()))
        .and_then(|t| serde_json::from_str(t).map_err(|e| bad(format!("payload: {e}"))))?;
    let (row, world, session) = load_session(&state, &payload.session_id).await.map_err(|e| match e {
        AppError::Client { code, message, .. } => JobFailure::new(code, message),
        other => internal_failure("behavior.session_unreadable", format!("{other:?}")),
    })?;
    if row.version != payload.from_version {
        return Err(AdvanceError::Moved(row.session_id, payload.from_version).into_failure());
    }
    let started = std::time::Instant::now();
    let response = run(&state, row, world, session, payload.request, ctx.control.clone())
        .await
        .map_err(AdvanceError::into_failure)?;
    let result_json = canonical_result(&response, "behavior.not_canonical")?;
    Ok(JobDone::Result(polis_store::JobResult {
        plugin_id: None,
        manifest_sha256: None,
        input_sha256: None,
        output_sha256: Some(response.digest.clone()),
        result_json,
        plugin_us: Some(i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX)),
    }))
}

/// The console page of an advance job: its session's timeline.
pub(super) fn console_link(job: &JobRow) -> Option<String> {
    if job.job.kind != ADVANCE_KIND {
        return None;
    }
    let payload: AdvancePayload = serde_json::from_str(job.job.payload_json.as_deref()?).ok()?;
    Some(format!("/console/behavior?session={}", payload.session_id))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineQuery {
    #[serde(default)]
    from: i64,
    #[serde(default)]
    limit: Option<i64>,
}

/// A session's timeline entries from `from`, at most `limit`, each with
/// its `seq` and `version`.
pub(super) async fn timeline_page(
    state: &BehaviorState,
    session_id: &str,
    from: i64,
    limit: i64,
) -> Result<TimelinePage, AppError> {
    let rows = state.core.store.session_timeline(session_id, from.max(0), limit).await?;
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit;
    let next = if full { rows.last().map(|r| r.seq + 1) } else { None };
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let mut entry: Value = decode(&row.entry_json, "timeline entry")?;
        entry["seq"] = json!(row.seq);
        entry["version"] = json!(row.version);
        entries.push(entry);
    }
    Ok(TimelinePage { session_id: session_id.to_owned(), entries, next })
}

#[utoipa::path(get, path = "/api/sessions/{session_id}/timeline",
    params(("session_id" = String, Path, description = "the session"),
        ("from" = Option<i64>, Query, description = "the first `seq` (0 by default)"),
        ("limit" = Option<i64>, Query, description = "at most this many entries (1,000 by default, 10,000 at most)")),
    description = "Every activity change of a session's NPCs over all its advances, in order. Role: read.",
    responses((status = 200, body = TimelinePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn timeline(
    _: ReadAccess,
    State(state): State<BehaviorState>,
    Path(session_id): Path<String>,
    ApiQuery(query): ApiQuery<TimelineQuery>,
) -> Result<Json<TimelinePage>, AppError> {
    let limit = query.limit.unwrap_or(1000);
    if !(1..=MAX_TIMELINE_PAGE).contains(&limit) {
        return Err(AppError::bad_request(
            "behavior.bad_limit",
            "limit".to_owned(),
            format!("1 to {MAX_TIMELINE_PAGE}"),
        ));
    }
    state.core.store.session(&session_id).await?.ok_or_else(|| no_session(&session_id))?;
    Ok(Json(timeline_page(&state, &session_id, query.from, limit).await?))
}
