//! What a behaviour plugin is, whatever its tier.
//!
//! [`BehaviorPlugin`] is the typed trait the host drives: `register` once
//! while loading, then `evaluate_condition`, `apply_effect` and `on_event`.
//! A built-in implements it in Rust and gets the [`PluginContext`] value.
//! [`EndpointPlugin`] implements it over any sandboxed tier's
//! `PluginEndpoint`, speaking JSON:
//!
//! | method               | request                                               | reply                      |
//! |----------------------|-------------------------------------------------------|----------------------------|
//! | `register`           | `{plugin_id, permissions}`                            | declarations (below)       |
//! | `evaluate_condition` | `{condition_id, name, params, npc_id, seed, context?}`| `{"result": bool}`         |
//! | `apply_effect`       | `{effect_id, name, params, npc_id, seed, context?}`   | `{"changes"?: {…}}`        |
//! | `on_event`           | `{event: {type, data}, context?}`                     | anything                   |
//! | `handle_route`       | [`RouteRequest`] with `context?`                      | [`RouteReply`]             |
//!
//! A remote plugin's methods are hyphenated (`POST {endpoint}/evaluate-condition`),
//! and its `on-event` is a webhook the host sends off the simulation's path
//! ([`BehaviorPlugin::webhook`], [`crate::webhooks`]).
//! Wasm and process plugins call the host back (imports, JSON-RPC) for what
//! they need; a remote plugin cannot, so its requests carry `context`, holding
//! only what its permissions allow (`world` with `world:read`, `session`
//! with `session:read`, `npc` with `npc:read`). Declarations and `changes`
//! are how any tier registers or writes without calling back; the host
//! applies them through the same context surfaces, so each still needs its
//! permission and namespace.

use std::collections::BTreeMap;
use std::sync::Arc;

use polis_core::manifest::{Manifest, TierKind};
use polis_core::policy::{CallEnv, PluginEndpoint, PolicyError, RunControl, decode_reply, no_host};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::context::{ContextError, ContextHost, PluginContext};
use crate::permissions as perm;
use crate::webhooks::WebhookSend;

/// One condition evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionCall {
    /// `plugin:<plugin id>:<name>`.
    pub condition_id: String,
    /// The name the plugin registered.
    pub name: String,
    /// The condition's params, as the activity or routine gives them.
    pub params: Map<String, Value>,
    /// The NPC being decided for.
    pub npc_id: Option<String>,
    /// A seed for anything random, derived by the caller.
    pub seed: u64,
}

/// One effect application.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectCall {
    /// `effect:plugin:<plugin id>:<name>`.
    pub effect_id: String,
    /// The name the plugin registered.
    pub name: String,
    /// The effect's default params with the call's merged over them.
    pub params: Map<String, Value>,
    /// The NPC the effect applies to.
    pub npc_id: Option<String>,
    /// A seed for anything random, derived by the caller.
    pub seed: u64,
}

/// A world or session event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its type, such as `npc:activity_started`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its payload.
    pub data: Value,
}

/// One request to a plugin's route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteRequest {
    /// The HTTP method.
    pub method: String,
    /// The path under the plugin's prefix, as requested.
    pub path: String,
    /// The declared pattern it matched.
    pub route: String,
    /// The pattern's `{name}` segments.
    pub params: BTreeMap<String, String>,
    /// The query string's pairs, in byte order of name (a repeated name
    /// keeps its last value).
    pub query: BTreeMap<String, String>,
    /// The JSON body, `null` when there is none.
    pub body: Value,
    /// The world, for a world-scoped request.
    pub world_id: Option<String>,
}

/// A plugin's answer to a route request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteReply {
    /// The HTTP status, 200 to 599. By default 200.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// The JSON body.
    #[serde(default)]
    pub body: Value,
}

fn ok_status() -> u16 {
    200
}

/// A behaviour plugin in any tier.
pub trait BehaviorPlugin: Send + Sync {
    /// The plugin's manifest.
    fn manifest(&self) -> &Manifest;

    /// Registers extensions through `ctx.behavior()` (and subscriptions,
    /// admin routes). Called once, before the registry locks.
    fn register(&self, ctx: &PluginContext) -> Result<(), PolicyError>;

    /// Evaluates one of the plugin's conditions.
    fn evaluate_condition(&self, call: &ConditionCall, ctx: &PluginContext) -> Result<bool, PolicyError>;

    /// Applies one of the plugin's effects through `ctx`.
    fn apply_effect(&self, call: &EffectCall, ctx: &PluginContext) -> Result<(), PolicyError>;

    /// Handles an event the plugin subscribed to. By default nothing.
    fn on_event(&self, _event: &Event, _ctx: &PluginContext) -> Result<(), PolicyError> {
        Ok(())
    }

    /// For a plugin whose event handlers are webhooks (a remote plugin):
    /// the delivery of `event`, its request built now from `ctx`, for the
    /// host to send later off the simulation's path (and again to retry).
    /// `None`, the default, has the host call [`Self::on_event`] in line.
    fn webhook(&self, _event: &Event, _ctx: &PluginContext) -> Option<WebhookSend> {
        None
    }

    /// Answers a request to one of the routes it declared. By default it
    /// serves none.
    fn handle_route(&self, _request: &RouteRequest, _ctx: &PluginContext) -> Result<RouteReply, PolicyError> {
        Err(PolicyError::Failed("this plugin serves no routes".to_owned()))
    }
}

/// Extensions a sandboxed plugin declares in its `register` reply.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declarations {
    /// Condition evaluators.
    #[serde(default)]
    pub conditions: Vec<Declared>,
    /// Effect handlers.
    #[serde(default)]
    pub effects: Vec<Declared>,
    /// Simulation config providers.
    #[serde(default)]
    pub simulation_configs: Vec<Declared>,
    /// Event patterns.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// Admin routes.
    #[serde(default)]
    pub admin_routes: Vec<DeclaredRoute>,
    /// A `kind: route` plugin's routes.
    #[serde(default)]
    pub routes: Vec<DeclaredRoute>,
}

/// One declared extension.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declared {
    /// Its name within the plugin's namespace.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// An effect's default params.
    #[serde(default)]
    pub default_params: Map<String, Value>,
    /// A simulation config provider's priority. By default 100.
    #[serde(default)]
    pub priority: Option<i64>,
    /// A simulation config provider's config.
    #[serde(default)]
    pub config: Map<String, Value>,
}

/// One declared admin route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredRoute {
    /// The HTTP method.
    pub method: String,
    /// The path.
    pub path: String,
}

/// Writes a sandboxed effect returns instead of calling back.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    /// Flags to set, each key under `plugin:<id>:` (`session:write`).
    #[serde(default)]
    pub flags: BTreeMap<String, Value>,
    /// Relationship deltas by NPC key (`session:write`).
    #[serde(default)]
    pub relationships: BTreeMap<String, BTreeMap<String, f64>>,
    /// NPC state deltas by NPC id (`npc:write`).
    #[serde(default)]
    pub npcs: BTreeMap<String, NpcDelta>,
    /// Events to publish (`event:emit`).
    #[serde(default)]
    pub events: Vec<EventOut>,
    /// Generation requests (`generation:submit`).
    #[serde(default)]
    pub generation: Vec<GenerationOut>,
    /// Log lines (`log:emit`).
    #[serde(default)]
    pub log: Vec<LogOut>,
}

/// An NPC state change.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpcDelta {
    /// Added to energy.
    #[serde(default)]
    pub energy: Option<f64>,
    /// Added to mood.
    #[serde(default)]
    pub mood: Option<f64>,
}

/// An event to publish.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventOut {
    /// `plugin:<id>:<name>`.
    pub name: String,
    /// Its payload.
    #[serde(default)]
    pub data: Value,
}

/// A generation request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationOut {
    /// What to generate.
    pub kind: String,
    /// Its parameters.
    #[serde(default)]
    pub params: Value,
}

/// A log line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogOut {
    /// Its level.
    #[serde(default)]
    pub level: Option<String>,
    /// Its text.
    pub message: String,
}

impl Changes {
    /// Applies every change through `ctx`, stopping at the first refusal.
    pub fn apply(&self, ctx: &PluginContext) -> Result<(), ContextError> {
        if !self.flags.is_empty() || !self.relationships.is_empty() {
            let session = ctx.session_mut()?;
            for (key, value) in &self.flags {
                session.set_flag(key, value.clone())?;
            }
            for (npc_key, deltas) in &self.relationships {
                session.update_relationship(npc_key, deltas)?;
            }
        }
        if !self.npcs.is_empty() {
            let npcs = ctx.npc_mut()?;
            for (npc_id, delta) in &self.npcs {
                npcs.update_state(npc_id, delta.energy, delta.mood)?;
            }
        }
        if !self.events.is_empty() {
            let events = ctx.events()?;
            for event in &self.events {
                events.emit(&event.name, event.data.clone())?;
            }
        }
        if !self.generation.is_empty() {
            let generation = ctx.generation()?;
            for request in &self.generation {
                generation.submit(&request.kind, request.params.clone())?;
            }
        }
        if !self.log.is_empty() {
            let log = ctx.log()?;
            for line in &self.log {
                log.emit(line.level.as_deref().unwrap_or("info"), &line.message);
            }
        }
        Ok(())
    }
}

impl Declarations {
    /// Registers every declaration through `ctx`; returns the refusals,
    /// in order (each is also counted against the plugin).
    pub fn register(&self, ctx: &PluginContext) -> Vec<ContextError> {
        let api = ctx.behavior();
        let mut refused = Vec::new();
        let mut keep = |r: Result<(), ContextError>| {
            if let Err(e) = r {
                refused.push(e);
            }
        };
        for c in &self.conditions {
            keep(api.register_condition_evaluator(&c.name, c.description.as_deref()).map(drop));
        }
        for e in &self.effects {
            keep(api.register_effect_handler(&e.name, e.description.as_deref(), e.default_params.clone()).map(drop));
        }
        for s in &self.simulation_configs {
            keep(api.register_simulation_config(&s.name, s.priority.unwrap_or(100), s.config.clone()).map(drop));
        }
        for pattern in &self.subscriptions {
            keep(ctx.subscriptions().and_then(|s| s.subscribe(pattern)));
        }
        for route in &self.admin_routes {
            keep(ctx.admin_routes().and_then(|a| a.declare(&route.method, &route.path)));
        }
        for route in &self.routes {
            keep(ctx.routes().and_then(|r| r.declare(&route.method, &route.path)));
        }
        refused
    }
}

/// A sandboxed plugin (wasm, process, remote) behind [`BehaviorPlugin`].
pub struct EndpointPlugin {
    endpoint: Arc<dyn PluginEndpoint>,
}

impl EndpointPlugin {
    /// Wraps an endpoint.
    pub fn new(endpoint: Arc<dyn PluginEndpoint>) -> EndpointPlugin {
        EndpointPlugin { endpoint }
    }

    fn remote(&self) -> bool {
        self.endpoint.manifest().tier() == TierKind::Remote
    }

    /// The wire name of `method`: hyphenated for remote endpoints.
    fn method<'a>(&self, method: &'a str) -> std::borrow::Cow<'a, str> {
        if self.remote() { method.replace('_', "-").into() } else { method.into() }
    }

    fn call(&self, method: &str, request: &Value, seed: u64, ctx: &PluginContext) -> Result<Vec<u8>, PolicyError> {
        let bytes = serde_json::to_vec(request).map_err(|e| PolicyError::Failed(format!("request: {e}")))?;
        let control = RunControl::new();
        let host = ContextHost::shared(ctx.clone());
        let env = CallEnv { seed, control: &control, host: &host };
        self.endpoint.call(&self.method(method), &bytes, &env)
    }

    /// What a remote plugin may see, by its permissions.
    fn remote_context(&self, ctx: &PluginContext, npc_id: Option<&str>) -> Option<Value> {
        if !self.remote() {
            return None;
        }
        let mut context = Map::new();
        if ctx.allows(perm::WORLD_READ)
            && let Ok(world) = ctx.world()
        {
            let mut summary = world.summary();
            summary["locations"] = json!(world.locations());
            summary["npcs"] = json!(world.npcs());
            context.insert("world".into(), summary);
        }
        if ctx.allows(perm::SESSION_READ)
            && let Some(session) = ctx.scene_session()
        {
            context.insert(
                "session".into(),
                json!({"id": session.id, "world_time": session.world_time, "flags": session.flags, "relationships": session.relationships}),
            );
        }
        if ctx.allows(perm::NPC_READ)
            && let Some(npc_id) = npc_id
            && let Ok(npc) = ctx.npc().and_then(|n| n.get(npc_id))
        {
            context.insert("npc".into(), npc);
        }
        Some(Value::Object(context))
    }
}

fn with_context(mut request: Value, context: Option<Value>) -> Value {
    if let Some(context) = context {
        request["context"] = context;
    }
    request
}

impl BehaviorPlugin for EndpointPlugin {
    fn manifest(&self) -> &Manifest {
        self.endpoint.manifest()
    }

    fn register(&self, ctx: &PluginContext) -> Result<(), PolicyError> {
        let granted: Vec<String> = ctx.granted();
        let request = json!({"plugin_id": ctx.plugin_id(), "permissions": granted});
        let reply = self.call("register", &request, 0, ctx)?;
        let declarations: Declarations = if reply.iter().all(u8::is_ascii_whitespace) || reply == b"null" {
            Declarations::default()
        } else {
            decode_reply(&reply, "behavior register reply")?
        };
        for refusal in declarations.register(ctx) {
            ctx.report("load", "register", refusal.to_string());
        }
        Ok(())
    }

    fn evaluate_condition(&self, call: &ConditionCall, ctx: &PluginContext) -> Result<bool, PolicyError> {
        let request = with_context(
            json!({"condition_id": call.condition_id, "name": call.name, "params": call.params, "npc_id": call.npc_id, "seed": call.seed}),
            self.remote_context(ctx, call.npc_id.as_deref()),
        );
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Reply {
            result: bool,
        }
        let reply: Reply =
            decode_reply(&self.call("evaluate_condition", &request, call.seed, ctx)?, "condition reply")?;
        Ok(reply.result)
    }

    fn apply_effect(&self, call: &EffectCall, ctx: &PluginContext) -> Result<(), PolicyError> {
        let request = with_context(
            json!({"effect_id": call.effect_id, "name": call.name, "params": call.params, "npc_id": call.npc_id, "seed": call.seed}),
            self.remote_context(ctx, call.npc_id.as_deref()),
        );
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct Reply {
            #[serde(default)]
            changes: Changes,
        }
        let reply: Reply = decode_reply(&self.call("apply_effect", &request, call.seed, ctx)?, "effect reply")?;
        reply.changes.apply(ctx).map_err(|e| PolicyError::Rejected(e.to_string()))
    }

    fn on_event(&self, event: &Event, ctx: &PluginContext) -> Result<(), PolicyError> {
        let request = with_context(json!({"event": event}), self.remote_context(ctx, None));
        self.call("on_event", &request, 0, ctx).map(drop)
    }

    fn webhook(&self, event: &Event, ctx: &PluginContext) -> Option<WebhookSend> {
        if !self.remote() {
            return None;
        }
        let request = with_context(json!({"event": event}), self.remote_context(ctx, None));
        let bytes = serde_json::to_vec(&request);
        let endpoint = Arc::clone(&self.endpoint);
        let method = self.method("on_event").into_owned();
        Some(Box::new(move || {
            let bytes = bytes.as_ref().map_err(|e| PolicyError::Failed(format!("request: {e}")))?;
            // A remote plugin cannot call back, so it gets no host.
            let control = RunControl::new();
            let host = no_host();
            endpoint.call(&method, bytes, &CallEnv { seed: 0, control: &control, host: &host }).map(drop)
        }))
    }

    fn handle_route(&self, request: &RouteRequest, ctx: &PluginContext) -> Result<RouteReply, PolicyError> {
        let value = serde_json::to_value(request).map_err(|e| PolicyError::Failed(format!("request: {e}")))?;
        let request = with_context(value, self.remote_context(ctx, None));
        decode_reply(&self.call("handle_route", &request, 0, ctx)?, "route reply")
    }
}
