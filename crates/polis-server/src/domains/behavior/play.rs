//! What the player does in a session besides letting time pass, and the
//! core events it raises.
//!
//! - `POST /api/sessions/{id}/location` moves the player to one of the
//!   world's locations: `flags.player.current_location` (the key the
//!   original's location rules test with `flag_equals`) and, when the
//!   location has a `meta.position`, `flags.player.position`, which the
//!   simulation tiers measure NPC distances from. A move to another
//!   location delivers `location:changed`.
//! - `POST /api/sessions/{id}/interactions` records that the player did
//!   something with an NPC: its relationship deltas are added to the NPC's
//!   relationship (each axis clamped to 0..100), and `interaction:executed`
//!   is delivered with the interaction and the relationship after it.
//!
//! Each writes the session only if no advance or other change moved it
//! since it was read (else 409 `behavior.session_moved`), counting a
//! version, as an advance does; the answer holds the session, an RFC 6902
//! patch of what changed, and the plugins that handled the event.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use polis_behavior::documents::npc_key;
use polis_behavior::{Event, Session, World};
use polis_store::SessionRow;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};

use super::BehaviorState;
use super::sessions::{
    SessionResponse, blocking, deliver, load_session, session_moved, session_patch, session_response,
};
use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, ReadAccess};
use crate::runs::canonical_text;

pub(super) fn router() -> Router<BehaviorState> {
    Router::new()
        .route("/api/sessions/{session_id}/location", post(move_player))
        .route("/api/sessions/{session_id}/interactions", post(interact))
}

#[derive(OpenApi)]
#[openapi(paths(move_player, interact), components(schemas(MoveRequest, InteractionRequest, PlayResponse)))]
pub(super) struct PlayDoc;

/// Where the player goes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// One of the world's location ids.
    pub location_id: String,
}

/// Something the player did with an NPC.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractionRequest {
    /// The NPC.
    pub npc_id: String,
    /// What was done (`talk`, `give_gift`, …): the game's own name.
    pub interaction_id: String,
    /// Added to the NPC's relationship by axis (`affinity`, `trust`,
    /// `chemistry`, `tension`).
    #[serde(default)]
    pub relationship_deltas: BTreeMap<String, f64>,
    /// Anything else the game wants plugins to see, passed on as is.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A session after a move or an interaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlayResponse {
    /// The session, with the plugins that handled the event in `handled_by`.
    #[serde(flatten)]
    pub session: SessionResponse,
    /// The event delivered, when there was one.
    #[schema(value_type = Option<Object>)]
    pub event: Option<Value>,
    /// RFC 6902 operations from the session before to after.
    #[schema(value_type = Vec<Object>)]
    pub patch: Value,
}

#[utoipa::path(post, path = "/api/sessions/{session_id}/location",
    params(("session_id" = String, Path, description = "the session")), request_body = MoveRequest,
    description = "Moves the player to one of the world's locations (`flags.player.current_location`, and \
        `flags.player.position` from the location's `meta.position`) and, when that is another location, delivers \
        `location:changed {sessionId, worldId, from, to}`. Role: read.",
    responses((status = 200, body = PlayResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn move_player(
    _: ReadAccess,
    State(state): State<BehaviorState>,
    Path(session_id): Path<String>,
    ApiJson(request): ApiJson<MoveRequest>,
) -> Result<axum::Json<PlayResponse>, AppError> {
    let (row, world, before) = load_session(&state, &session_id).await?;
    let Some(location) = world.locations.iter().find(|l| l.id == request.location_id) else {
        let known: Vec<&str> = world.locations.iter().map(|l| l.id.as_str()).collect();
        return Err(AppError::unprocessable(
            "behavior.unknown_location",
            "location_id",
            format!("world `{}` has no location `{}`; it has: {}", world.id, request.location_id, known.join(", ")),
        ));
    };
    let mut after = before.clone();
    let player = after.flags.entry("player".to_owned()).or_insert_with(|| json!({}));
    if !player.is_object() {
        *player = json!({});
    }
    let from = player.get("current_location").cloned().unwrap_or(Value::Null);
    player["current_location"] = json!(location.id);
    if let Some(position) = location.meta.get("position") {
        player["position"] = position.clone();
    }
    let event = (from != json!(location.id)).then(|| Event {
        event_type: "location:changed".into(),
        data: json!({"sessionId": row.session_id, "worldId": row.world_id, "from": from, "to": location.id}),
    });
    write(&state, row, world, &before, after, event).await
}

#[utoipa::path(post, path = "/api/sessions/{session_id}/interactions",
    params(("session_id" = String, Path, description = "the session")), request_body = InteractionRequest,
    description = "Records an interaction of the player with an NPC: adds `relationship_deltas` to the NPC's \
        relationship (each axis clamped to 0..100) and delivers `interaction:executed {sessionId, worldId, npcId, \
        interactionId, relationshipDeltas, relationship, data}`. Role: read.",
    responses((status = 200, body = PlayResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn interact(
    _: ReadAccess,
    State(state): State<BehaviorState>,
    Path(session_id): Path<String>,
    ApiJson(request): ApiJson<InteractionRequest>,
) -> Result<axum::Json<PlayResponse>, AppError> {
    if request.interaction_id.is_empty() || request.interaction_id.len() > 128 {
        return Err(AppError::unprocessable(
            "behavior.bad_interaction",
            "interaction_id",
            "an interaction id is 1 to 128 bytes".to_owned(),
        ));
    }
    let (row, world, before) = load_session(&state, &session_id).await?;
    if world.npc(&request.npc_id).is_none() {
        return Err(AppError::unprocessable(
            "behavior.unknown_npc",
            "npc_id",
            format!("world `{}` has no NPC `{}`", world.id, request.npc_id),
        ));
    }
    let mut after = before.clone();
    let key = npc_key(&request.npc_id);
    let relationship = after
        .add_to_relationship(&key, &request.relationship_deltas)
        .map_err(|why| AppError::unprocessable("behavior.bad_interaction", "relationship_deltas", why))?;
    relationship["meta"] = json!({"last_modified_by": format!("interaction:{}", request.interaction_id)});
    let relationship = relationship.clone();
    let event = Event {
        event_type: "interaction:executed".into(),
        data: json!({"sessionId": row.session_id, "worldId": row.world_id, "npcId": request.npc_id,
            "interactionId": request.interaction_id, "relationshipDeltas": request.relationship_deltas,
            "relationship": relationship, "data": request.data}),
    };
    write(&state, row, world, &before, after, Some(event)).await
}

/// Writes `after` over `row` if it has not moved, then delivers `event`.
async fn write(
    state: &BehaviorState,
    row: SessionRow,
    world: World,
    before: &Session,
    after: Session,
    event: Option<Event>,
) -> Result<axum::Json<PlayResponse>, AppError> {
    let session_json = canonical_text(&after)?;
    let now = crate::now_ms();
    if !state.core.store.advance_session(&row.session_id, row.version, &session_json, &[], now).await? {
        return Err(session_moved(&row.session_id, row.version));
    }
    let encode = |e: serde_json::Error| AppError::internal("behavior.encode", e.to_string());
    let patch = session_patch(before, &after).map_err(encode)?;
    let event_value = event.as_ref().map(serde_json::to_value).transpose().map_err(encode)?;
    let written = SessionRow { session_json, version: row.version + 1, updated_at_ms: now, ..row };
    let handled = match event {
        Some(event) => {
            let host = Arc::clone(&state.host);
            blocking(move || deliver(&host, world, after, vec![event])).await?
        }
        None => Vec::new(),
    };
    Ok(axum::Json(PlayResponse { session: session_response(&written, Some(handled))?, event: event_value, patch }))
}
