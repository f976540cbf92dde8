//! `PluginContext`: the only way a behaviour plugin touches the world.
//!
//! A context is built for one plugin and one call from the plugin's
//! [`PluginGrants`], and hands out one typed *surface* per permission:
//! [`PluginContext::world`] (`world:read`), [`PluginContext::session`]
//! (`session:read`), [`PluginContext::session_mut`] (`session:write`),
//! [`PluginContext::npc`] / [`PluginContext::npc_mut`], [`PluginContext::behavior`]
//! (the extension API, needing the `behavior:*` permission of each kind),
//! [`PluginContext::generation`], [`PluginContext::log`],
//! [`PluginContext::events`], [`PluginContext::subscriptions`],
//! [`PluginContext::routes`] (a `kind: route` plugin's own routes) and
//! [`PluginContext::admin_routes`]. The surfaces have private fields, so
//! code holding a context reaches a capability only through its accessor,
//! and the accessor checks the permission: permissions are enforced by
//! construction, not by convention.
//!
//! A refused accessor returns [`ContextError::Denied`] carrying the seed's
//! message (`plugin `x` cannot use `session.set_flag`: permission
//! `session:write` not granted`); the refusal is counted in the plugin's
//! health and kept among its recent errors. Nothing crashes.
//!
//! Built-in Rust plugins receive the context value. The sandboxed tiers
//! reach the same surfaces through [`ContextHost`], the context behind
//! polis's `HostApi`: a wasm import or a JSON-RPC call names a capability
//! method (`session.set_flag`), which is dispatched to the same accessor,
//! so a method is checked twice (by the tier, then by the context) and
//! means the same thing in every tier.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use polis_core::canonical;
use polis_core::permission::{LOG_EMIT, PermissionDenied};
use polis_core::policy::{HostApi, HostCallError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::contract::PluginKind;
use crate::documents::{Npc, Session, World, npc_key};
use crate::extensions::PluginRoute;
use crate::extensions::{
    ConditionEntry, EffectEntry, ExtensionRegistry, RegistrationError, SimulationConfigEntry, check_name,
};
use crate::health::PluginHealth;
use crate::permissions::{self as perm, PluginGrants};

/// Longest session flag key.
pub const MAX_KEY_LEN: usize = 256;
/// Largest flag value, event payload or generation request, canonical JSON bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Most log lines kept per host; later ones are counted and dropped.
pub const MAX_LOG_LINES: usize = 10_000;
/// Longest log line kept.
pub const MAX_LOG_LINE: usize = 4096;
/// Most queued generation requests per host.
pub const MAX_GENERATION_REQUESTS: usize = 10_000;
/// Most emitted events kept per host.
pub const MAX_EVENTS: usize = 10_000;

/// The core events plugins receive and may not emit.
pub const CORE_EVENTS: &[&str] = &[
    "session:created",
    "session:updated",
    "npc:spawned",
    "location:changed",
    "interaction:executed",
    "npc:activity_started",
    "npc:activity_ended",
];

/// Relationship axes, each clamped to 0..100.
pub const RELATIONSHIP_AXES: &[&str] = &["affinity", "trust", "chemistry", "tension"];

/// Why a context refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The plugin lacks the permission.
    #[error(transparent)]
    Denied(#[from] PermissionDenied),
    /// This call has no such thing to look at (no session while loading).
    #[error("`{capability}` is not available: {why}")]
    Unavailable {
        /// The capability.
        capability: String,
        /// Why.
        why: String,
    },
    /// The request breaks a rule of the capability (a key outside the
    /// plugin's namespace, a limit).
    #[error("`{capability}` refused: {message}")]
    Refused {
        /// The capability.
        capability: String,
        /// Why.
        message: String,
    },
    /// A registration failed.
    #[error(transparent)]
    Registration(#[from] RegistrationError),
}

impl ContextError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ContextError::Denied(d) => d.code(),
            ContextError::Unavailable { .. } => "behavior.unavailable",
            ContextError::Refused { .. } => "behavior.refused",
            ContextError::Registration(r) => r.code(),
        }
    }

    fn refused(capability: &str, message: impl Into<String>) -> ContextError {
        ContextError::Refused { capability: capability.to_owned(), message: message.into() }
    }
}

/// One loaded plugin as the host keeps it: id, grants, health.
#[derive(Debug)]
pub struct PluginInfo {
    /// The plugin id.
    pub plugin_id: String,
    /// What it was granted.
    pub grants: PluginGrants,
    /// Its manifest's kind: only `route` plugins declare routes.
    pub kind: PluginKind,
    health: Mutex<PluginHealth>,
}

impl PluginInfo {
    /// A plugin with fresh counters.
    pub fn new(plugin_id: &str, grants: PluginGrants) -> PluginInfo {
        PluginInfo {
            plugin_id: plugin_id.to_owned(),
            grants,
            kind: PluginKind::Feature,
            health: Mutex::new(PluginHealth::default()),
        }
    }

    /// The same plugin of another kind.
    pub fn with_kind(self, kind: PluginKind) -> PluginInfo {
        PluginInfo { kind, ..self }
    }

    /// A copy of the counters now.
    pub fn health(&self) -> PluginHealth {
        self.health.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Updates the counters.
    pub fn record(&self, f: impl FnOnce(&mut PluginHealth)) {
        if let Ok(mut health) = self.health.lock() {
            f(&mut health);
        }
    }
}

/// A log line, tagged with the plugin that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Who wrote it; `polis` for the host's own lines about a plugin.
    pub plugin_id: String,
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The text.
    pub message: String,
}

/// A request a plugin queued for generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenerationRequest {
    /// `gen-<n>`, numbered from 1 in submission order.
    pub request_id: String,
    /// The plugin that submitted it.
    pub plugin_id: String,
    /// What to generate, such as `dialogue`.
    pub kind: String,
    /// Its parameters.
    pub params: Value,
}

/// An event a plugin published.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmittedEvent {
    /// The plugin.
    pub plugin_id: String,
    /// `plugin:<id>:<name>`.
    pub name: String,
    /// Its payload.
    pub data: Value,
}

/// What the host owns and every context shares: the log, the generation
/// queue and emitted events. Each is capped. (Session writes carry their
/// provenance in the data: a flag's key names its plugin, a relationship's
/// `meta.last_modified_by` does.)
#[derive(Debug, Default)]
pub struct Services {
    log: Mutex<(Vec<LogLine>, u64)>,
    generation: Mutex<Vec<GenerationRequest>>,
    events: Mutex<Vec<EmittedEvent>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic while holding it; the data is still
    // the last consistent write, since every update is one push.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Services {
    /// Empty services.
    pub fn new() -> Arc<Services> {
        Arc::new(Services::default())
    }

    /// Appends a log line, or counts it as dropped past [`MAX_LOG_LINES`].
    pub fn log(&self, plugin_id: &str, level: &str, message: &str) {
        let mut log = lock(&self.log);
        if log.0.len() >= MAX_LOG_LINES {
            log.1 += 1;
            return;
        }
        let mut message = message.to_owned();
        if message.len() > MAX_LOG_LINE {
            let mut end = MAX_LOG_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        log.0.push(LogLine { plugin_id: plugin_id.to_owned(), level: level.to_owned(), message });
    }

    /// The log lines kept, and how many were dropped.
    pub fn log_lines(&self) -> (Vec<LogLine>, u64) {
        lock(&self.log).clone()
    }

    /// The generation queue.
    pub fn generation_requests(&self) -> Vec<GenerationRequest> {
        lock(&self.generation).clone()
    }

    /// Events plugins emitted.
    pub fn emitted_events(&self) -> Vec<EmittedEvent> {
        lock(&self.events).clone()
    }
}

/// What one call is about: the world, the session, the NPC.
#[derive(Debug, Clone, Default)]
pub struct Scene {
    /// The world, when the call has one.
    pub world: Option<Arc<World>>,
    /// The session, when the call has one; writes go here.
    pub session: Option<Arc<Mutex<Session>>>,
}

impl Scene {
    /// A scene of a world and a session.
    pub fn new(world: Arc<World>, session: Arc<Mutex<Session>>) -> Scene {
        Scene { world: Some(world), session: Some(session) }
    }
}

/// The context one plugin gets for one call.
#[derive(Debug, Clone)]
pub struct PluginContext {
    info: Arc<PluginInfo>,
    scene: Scene,
    services: Arc<Services>,
    registrar: Option<Arc<Mutex<ExtensionRegistry>>>,
}

impl PluginContext {
    /// A context for a call (no registration).
    pub fn new(info: Arc<PluginInfo>, scene: Scene, services: Arc<Services>) -> PluginContext {
        PluginContext { info, scene, services, registrar: None }
    }

    /// A context for loading: the plugin may register extensions into
    /// `registry`, until the host locks it.
    pub fn loading(
        info: Arc<PluginInfo>,
        scene: Scene,
        services: Arc<Services>,
        registry: Arc<Mutex<ExtensionRegistry>>,
    ) -> PluginContext {
        PluginContext { info, scene, services, registrar: Some(registry) }
    }

    /// The plugin's id.
    pub fn plugin_id(&self) -> &str {
        &self.info.plugin_id
    }

    /// Whether the plugin holds `permission`.
    pub fn allows(&self, permission: &str) -> bool {
        self.info.grants.allows(permission)
    }

    /// The granted permissions, in byte order.
    pub fn granted(&self) -> Vec<String> {
        self.info.grants.granted()
    }

    /// Logs a problem the host found with the plugin (as `polis`) and keeps
    /// it among the plugin's recent errors.
    pub fn report(&self, kind: &'static str, subject: &str, message: String) {
        self.services.log("polis", "warn", &format!("plugin `{}`: {message}", self.info.plugin_id));
        self.info.record(|h| h.error(kind, subject, message));
    }

    /// A copy of the session, for building a remote plugin's request.
    pub(crate) fn scene_session(&self) -> Option<Session> {
        self.scene.session.as_ref().map(|s| lock(s).clone())
    }

    /// Checks `permission` for `capability`; a refusal is logged, counted
    /// and returned.
    fn require(&self, permission: &str, capability: &str) -> Result<(), ContextError> {
        if self.allows(permission) {
            return Ok(());
        }
        let denied = PermissionDenied {
            plugin_id: self.info.plugin_id.clone(),
            capability: capability.to_owned(),
            permission: permission.to_owned(),
        };
        self.services.log("polis", "warn", &denied.to_string());
        self.info.record(|h| h.denial(capability, denied.to_string()));
        Err(ContextError::Denied(denied))
    }

    fn world_ref(&self, capability: &str) -> Result<&World, ContextError> {
        self.scene.world.as_deref().ok_or_else(|| ContextError::Unavailable {
            capability: capability.to_owned(),
            why: "this call has no world".to_owned(),
        })
    }

    fn session_ref(&self, capability: &str) -> Result<&Arc<Mutex<Session>>, ContextError> {
        self.scene.session.as_ref().ok_or_else(|| ContextError::Unavailable {
            capability: capability.to_owned(),
            why: "this call has no session".to_owned(),
        })
    }

    /// Read-only views of the world (`world:read`).
    pub fn world(&self) -> Result<WorldRead<'_>, ContextError> {
        self.require(perm::WORLD_READ, "world")?;
        Ok(WorldRead { world: self.world_ref("world")? })
    }

    /// Session flags and relationships, read-only (`session:read`).
    pub fn session(&self) -> Result<SessionRead<'_>, ContextError> {
        self.require(perm::SESSION_READ, "session")?;
        Ok(SessionRead { session: self.session_ref("session")? })
    }

    /// Session writes (`session:write`): flags under `plugin:<id>:…` and
    /// relationships.
    pub fn session_mut(&self) -> Result<SessionWrite<'_>, ContextError> {
        self.require(perm::SESSION_WRITE, "session.set_flag")?;
        Ok(SessionWrite { ctx: self, session: self.session_ref("session.set_flag")? })
    }

    /// NPC definitions and their session state (`npc:read`).
    pub fn npc(&self) -> Result<NpcRead<'_>, ContextError> {
        self.require(perm::NPC_READ, "npc")?;
        Ok(NpcRead { world: self.world_ref("npc")?, session: self.scene.session.as_ref() })
    }

    /// NPC state writes (`npc:write`).
    pub fn npc_mut(&self) -> Result<NpcWrite<'_>, ContextError> {
        self.require(perm::NPC_WRITE, "npc.update_state")?;
        Ok(NpcWrite { world: self.world_ref("npc.update_state")?, session: self.session_ref("npc.update_state")? })
    }

    /// The behaviour extension API. Each registration checks its own
    /// permission; the API itself is available to every plugin while it
    /// loads, so that a refused registration is reported as such.
    pub fn behavior(&self) -> BehaviorExtensionApi<'_> {
        BehaviorExtensionApi { ctx: self }
    }

    /// The generation queue (`generation:submit`).
    pub fn generation(&self) -> Result<GenerationApi<'_>, ContextError> {
        self.require(perm::GENERATION_SUBMIT, "generation.submit")?;
        Ok(GenerationApi { ctx: self })
    }

    /// A logger bound to the plugin id (`log:emit`).
    pub fn log(&self) -> Result<Logger<'_>, ContextError> {
        self.require(LOG_EMIT, "log.emit")?;
        Ok(Logger { ctx: self })
    }

    /// Publishing events (`event:emit`).
    pub fn events(&self) -> Result<EventEmitter<'_>, ContextError> {
        self.require(perm::EVENT_EMIT, "event.emit")?;
        Ok(EventEmitter { ctx: self })
    }

    /// Subscribing to events while loading (`event:subscribe`).
    pub fn subscriptions(&self) -> Result<Subscriptions<'_>, ContextError> {
        self.require(perm::EVENT_SUBSCRIBE, "event.subscribe")?;
        Ok(Subscriptions { ctx: self })
    }

    /// Declaring admin routes while loading (`admin:routes`, and the
    /// server setting).
    pub fn admin_routes(&self) -> Result<AdminRoutes<'_>, ContextError> {
        self.require(perm::ADMIN_ROUTES, "admin.declare_route")?;
        Ok(AdminRoutes { ctx: self })
    }

    /// Declaring the plugin's own routes while loading: a plugin whose
    /// manifest's `kind` is `route`. No permission is needed to serve a
    /// route, but its handler reaches the world only through this context,
    /// with the plugin's grants; the routes of a plugin holding
    /// `admin:routes` need the admin role.
    pub fn routes(&self) -> Result<Routes<'_>, ContextError> {
        if self.info.kind != PluginKind::Route {
            return Err(ContextError::Unavailable {
                capability: "routes.declare".to_owned(),
                why: format!(
                    "plugin `{}` is a `{}` plugin; only a manifest with `\"kind\": \"route\"` declares routes",
                    self.info.plugin_id,
                    serde_json::to_value(self.info.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ),
            });
        }
        Ok(Routes { ctx: self })
    }

    fn registry(&self, capability: &str) -> Result<MutexGuard<'_, ExtensionRegistry>, ContextError> {
        let registry = self.registrar.as_ref().ok_or_else(|| ContextError::Unavailable {
            capability: capability.to_owned(),
            why: "extensions are registered only while the plugin loads".to_owned(),
        })?;
        Ok(lock(registry))
    }
}

/// Read-only views of a world.
#[derive(Debug, Clone, Copy)]
pub struct WorldRead<'a> {
    world: &'a World,
}

impl<'a> WorldRead<'a> {
    /// The world's id.
    pub fn id(&self) -> &'a str {
        &self.world.id
    }

    /// The world's meta.
    pub fn meta(&self) -> &'a BTreeMap<String, Value> {
        &self.world.meta
    }

    /// Its locations.
    pub fn locations(&self) -> &'a [crate::documents::Location] {
        &self.world.locations
    }

    /// Its NPCs.
    pub fn npcs(&self) -> &'a [Npc] {
        &self.world.npcs
    }

    /// `{id, name, meta}`, as `world.get` answers.
    pub fn summary(&self) -> Value {
        json!({"id": self.world.id, "name": self.world.name, "meta": self.world.meta})
    }
}

/// Read-only views of a session.
#[derive(Debug, Clone, Copy)]
pub struct SessionRead<'a> {
    session: &'a Arc<Mutex<Session>>,
}

impl SessionRead<'_> {
    /// The flag at a dot path (`stealth.attempts`), or the whole key when
    /// it holds no dot (`plugin:acme:seen`); `None` when absent.
    pub fn flag(&self, key: &str) -> Option<Value> {
        let session = lock(self.session);
        if let Some(value) = session.flags.get(key) {
            return Some(value.clone());
        }
        let mut parts = key.split('.');
        let mut value = session.flags.get(parts.next()?)?;
        for part in parts {
            value = value.get(part)?;
        }
        Some(value.clone())
    }

    /// The relationship with `npc_key` (`npc:<id>`).
    pub fn relationship(&self, npc_key: &str) -> Option<Value> {
        lock(self.session).relationships.get(npc_key).cloned()
    }

    /// The session's world time, in seconds.
    pub fn world_time(&self) -> i64 {
        lock(self.session).world_time
    }
}

/// Session writes, namespaced to the plugin.
#[derive(Debug, Clone, Copy)]
pub struct SessionWrite<'a> {
    ctx: &'a PluginContext,
    session: &'a Arc<Mutex<Session>>,
}

impl SessionWrite<'_> {
    /// The prefix every key this plugin writes must start with.
    pub fn namespace(&self) -> String {
        format!("plugin:{}:", self.ctx.plugin_id())
    }

    /// Sets `flags[key]`. `key` must start with `plugin:<id>:`; anything
    /// else is refused (the original silently re-namespaced; refusing means
    /// a plugin never writes a key it did not name).
    pub fn set_flag(&self, key: &str, value: Value) -> Result<(), ContextError> {
        const CAP: &str = "session.set_flag";
        let namespace = self.namespace();
        if !key.starts_with(&namespace) || key.len() == namespace.len() {
            return Err(ContextError::refused(
                CAP,
                format!("plugin `{}` may only write keys under `{namespace}`, not `{key}`", self.ctx.plugin_id()),
            ));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(ContextError::refused(CAP, format!("the key is longer than {MAX_KEY_LEN} bytes")));
        }
        check_size(CAP, &value)?;
        lock(self.session).flags.insert(key.to_owned(), value.clone());
        Ok(())
    }

    /// Adds `deltas` to the relationship with `npc_key`, each axis clamped
    /// to 0..100 (a missing axis starts at 0), and records the plugin as
    /// `meta.last_modified_by`. Returns the new relationship.
    pub fn update_relationship(&self, npc_key: &str, deltas: &BTreeMap<String, f64>) -> Result<Value, ContextError> {
        const CAP: &str = "session.update_relationship";
        let mut session = lock(self.session);
        let entry = session.add_to_relationship(npc_key, deltas).map_err(|why| ContextError::refused(CAP, why))?;
        entry["meta"] = json!({"last_modified_by": self.ctx.plugin_id()});
        Ok(entry.clone())
    }
}

/// NPC definitions and their behaviour state.
#[derive(Debug, Clone, Copy)]
pub struct NpcRead<'a> {
    world: &'a World,
    session: Option<&'a Arc<Mutex<Session>>>,
}

impl NpcRead<'_> {
    /// `{id, name, role, meta, state}`: the NPC's definition and its
    /// `flags.npcs["npc:<id>"].state` in the session (`null` without one).
    pub fn get(&self, npc_id: &str) -> Result<Value, ContextError> {
        let npc = self
            .world
            .npc(npc_id)
            .ok_or_else(|| ContextError::refused("npc.get", format!("the world has no NPC `{npc_id}`")))?;
        let state = self.session.map_or(Value::Null, |s| npc_state(&lock(s), npc_id));
        Ok(json!({"id": npc.id, "name": npc.name, "role": npc.role, "meta": npc.meta, "state": state}))
    }
}

fn npc_state(session: &Session, npc_id: &str) -> Value {
    session
        .flags
        .get("npcs")
        .and_then(|n| n.get(npc_key(npc_id)))
        .and_then(|n| n.get("state"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// NPC state writes.
#[derive(Debug, Clone, Copy)]
pub struct NpcWrite<'a> {
    world: &'a World,
    session: &'a Arc<Mutex<Session>>,
}

impl NpcWrite<'_> {
    /// Adds to an NPC's `state.energy` (clamped to 0..100, starting at 100)
    /// and `state.moodState.valence` (clamped to -100..100, starting at 0).
    /// Returns the new state.
    pub fn update_state(&self, npc_id: &str, energy: Option<f64>, mood: Option<f64>) -> Result<Value, ContextError> {
        const CAP: &str = "npc.update_state";
        if self.world.npc(npc_id).is_none() {
            return Err(ContextError::refused(CAP, format!("the world has no NPC `{npc_id}`")));
        }
        if energy.is_some_and(|d| !d.is_finite()) || mood.is_some_and(|d| !d.is_finite()) {
            return Err(ContextError::refused(CAP, "deltas must be finite numbers"));
        }
        let mut session = lock(self.session);
        let npcs = session.flags.entry("npcs".to_owned()).or_insert_with(|| json!({}));
        if !npcs.is_object() {
            return Err(ContextError::refused(CAP, "`flags.npcs` is not an object"));
        }
        let slot = &mut npcs[npc_key(npc_id)];
        if !slot.is_object() {
            *slot = json!({});
        }
        let state = &mut slot["state"];
        if !state.is_object() {
            *state = json!({});
        }
        if let Some(delta) = energy {
            let now = state.get("energy").and_then(Value::as_f64).unwrap_or(100.0);
            state["energy"] = json!(clamp(now + delta, 0.0, 100.0));
        }
        if let Some(delta) = mood {
            if !state["moodState"].is_object() {
                state["moodState"] = json!({});
            }
            let now = state["moodState"].get("valence").and_then(Value::as_f64).unwrap_or(0.0);
            state["moodState"]["valence"] = json!(clamp(now + delta, -100.0, 100.0));
        }
        Ok(state.clone())
    }
}

fn clamp(v: f64, lo: f64, hi: f64) -> f64 {
    v.clamp(lo, hi)
}

fn check_size(capability: &str, value: &Value) -> Result<(), ContextError> {
    let bytes = canonical::to_canonical_vec(value).map_err(|e| ContextError::refused(capability, e.to_string()))?;
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(ContextError::refused(
            capability,
            format!("the value is {} bytes, over the limit of {MAX_VALUE_BYTES}", bytes.len()),
        ));
    }
    Ok(())
}

/// Registers behaviour extensions, each under the plugin's namespace and
/// behind its permission, recording the plugin as their provenance.
#[derive(Debug, Clone, Copy)]
pub struct BehaviorExtensionApi<'a> {
    ctx: &'a PluginContext,
}

impl BehaviorExtensionApi<'_> {
    /// Registers condition `name` as `plugin:<id>:<name>`
    /// (`behavior:extend_conditions`). The evaluator is the plugin's own
    /// `evaluate_condition` for that name.
    pub fn register_condition_evaluator(&self, name: &str, description: Option<&str>) -> Result<String, ContextError> {
        const CAP: &str = "behavior.register_condition";
        self.ctx.require(perm::EXTEND_CONDITIONS, CAP)?;
        check_name(name)?;
        let entry = ConditionEntry {
            id: format!("plugin:{}:{name}", self.ctx.plugin_id()),
            plugin_id: self.ctx.plugin_id().to_owned(),
            name: name.to_owned(),
            description: description.map(str::to_owned),
        };
        Ok(self.ctx.registry(CAP)?.add_condition(entry)?)
    }

    /// Registers effect `name` as `effect:plugin:<id>:<name>`
    /// (`behavior:extend_effects`); a call's params are merged over
    /// `default_params`.
    pub fn register_effect_handler(
        &self,
        name: &str,
        description: Option<&str>,
        default_params: Map<String, Value>,
    ) -> Result<String, ContextError> {
        const CAP: &str = "behavior.register_effect";
        self.ctx.require(perm::EXTEND_EFFECTS, CAP)?;
        check_name(name)?;
        check_size(CAP, &Value::Object(default_params.clone()))?;
        let entry = EffectEntry {
            id: format!("effect:plugin:{}:{name}", self.ctx.plugin_id()),
            plugin_id: self.ctx.plugin_id().to_owned(),
            name: name.to_owned(),
            description: description.map(str::to_owned),
            default_params,
        };
        Ok(self.ctx.registry(CAP)?.add_effect(entry)?)
    }

    /// Registers a simulation config provider `plugin:<id>:<name>` with a
    /// priority (`behavior:configure_simulation`).
    pub fn register_simulation_config(
        &self,
        name: &str,
        priority: i64,
        config: Map<String, Value>,
    ) -> Result<String, ContextError> {
        const CAP: &str = "behavior.register_simulation_config";
        self.ctx.require(perm::CONFIGURE_SIMULATION, CAP)?;
        check_name(name)?;
        check_size(CAP, &Value::Object(config.clone()))?;
        let entry = SimulationConfigEntry {
            id: format!("plugin:{}:{name}", self.ctx.plugin_id()),
            plugin_id: self.ctx.plugin_id().to_owned(),
            name: name.to_owned(),
            priority,
            config,
        };
        Ok(self.ctx.registry(CAP)?.add_simulation_config(entry)?)
    }
}

/// Submits generation requests to the host's queue.
#[derive(Debug, Clone, Copy)]
pub struct GenerationApi<'a> {
    ctx: &'a PluginContext,
}

impl GenerationApi<'_> {
    /// Queues a request; returns its id (`gen-<n>`).
    pub fn submit(&self, kind: &str, params: Value) -> Result<String, ContextError> {
        const CAP: &str = "generation.submit";
        check_name(kind).map_err(|e| ContextError::refused(CAP, e.to_string()))?;
        check_size(CAP, &params)?;
        let mut queue = lock(&self.ctx.services.generation);
        if queue.len() >= MAX_GENERATION_REQUESTS {
            return Err(ContextError::refused(CAP, format!("the queue holds {MAX_GENERATION_REQUESTS} requests")));
        }
        let request_id = format!("gen-{}", queue.len() + 1);
        queue.push(GenerationRequest {
            request_id: request_id.clone(),
            plugin_id: self.ctx.plugin_id().to_owned(),
            kind: kind.to_owned(),
            params,
        });
        Ok(request_id)
    }
}

/// A logger bound to the plugin id.
#[derive(Debug, Clone, Copy)]
pub struct Logger<'a> {
    ctx: &'a PluginContext,
}

impl Logger<'_> {
    /// Writes a line at `level` (`debug`, `info`, `warn`, `error`; anything
    /// else is written as `info`).
    pub fn emit(&self, level: &str, message: &str) {
        let level = if ["debug", "info", "warn", "error"].contains(&level) { level } else { "info" };
        self.ctx.services.log(self.ctx.plugin_id(), level, message);
    }
}

/// Publishes the plugin's own events.
#[derive(Debug, Clone, Copy)]
pub struct EventEmitter<'a> {
    ctx: &'a PluginContext,
}

impl EventEmitter<'_> {
    /// Publishes `name`, which must be `plugin:<id>:<event>`.
    pub fn emit(&self, name: &str, data: Value) -> Result<(), ContextError> {
        const CAP: &str = "event.emit";
        let namespace = format!("plugin:{}:", self.ctx.plugin_id());
        let Some(event) = name.strip_prefix(&namespace) else {
            let why = if CORE_EVENTS.contains(&name) { " (a core event)" } else { "" };
            return Err(ContextError::refused(
                CAP,
                format!(
                    "plugin `{}` may only emit events named `{namespace}…`, not `{name}`{why}",
                    self.ctx.plugin_id()
                ),
            ));
        };
        check_name(event).map_err(|e| ContextError::refused(CAP, e.to_string()))?;
        check_size(CAP, &data)?;
        let mut events = lock(&self.ctx.services.events);
        if events.len() >= MAX_EVENTS {
            return Err(ContextError::refused(CAP, format!("more than {MAX_EVENTS} events")));
        }
        events.push(EmittedEvent { plugin_id: self.ctx.plugin_id().to_owned(), name: name.to_owned(), data });
        Ok(())
    }
}

/// Subscribes the plugin to events while it loads.
#[derive(Debug, Clone, Copy)]
pub struct Subscriptions<'a> {
    ctx: &'a PluginContext,
}

impl Subscriptions<'_> {
    /// Subscribes to `pattern`: an event type, or a prefix ending in `*`.
    pub fn subscribe(&self, pattern: &str) -> Result<(), ContextError> {
        const CAP: &str = "event.subscribe";
        if pattern.is_empty() || pattern.len() > MAX_KEY_LEN {
            return Err(ContextError::refused(CAP, "a pattern is 1 to 256 bytes"));
        }
        Ok(self.ctx.registry(CAP)?.add_subscription(self.ctx.plugin_id(), pattern)?)
    }
}

/// Declares admin-only routes while the plugin loads.
#[derive(Debug, Clone, Copy)]
pub struct AdminRoutes<'a> {
    ctx: &'a PluginContext,
}

impl AdminRoutes<'_> {
    /// Declares `method path` (under `/api/plugins/{plugin_id}`) as needing the admin role.
    pub fn declare(&self, method: &str, path: &str) -> Result<(), ContextError> {
        declare_route(self.ctx, "admin.declare_route", method, path, true)
    }
}

/// Declares a route plugin's routes while it loads.
#[derive(Debug, Clone, Copy)]
pub struct Routes<'a> {
    ctx: &'a PluginContext,
}

impl Routes<'_> {
    /// Declares `method path` under `/api/plugins/{plugin_id}`; a segment
    /// `{name}` matches any one segment.
    pub fn declare(&self, method: &str, path: &str) -> Result<(), ContextError> {
        let admin = self.ctx.allows(perm::ADMIN_ROUTES);
        declare_route(self.ctx, "routes.declare", method, path, admin)
    }
}

fn declare_route(
    ctx: &PluginContext,
    capability: &str,
    method: &str,
    path: &str,
    admin: bool,
) -> Result<(), ContextError> {
    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method) {
        return Err(ContextError::refused(capability, format!("`{method}` is not an HTTP method polis serves")));
    }
    let plain = path.starts_with('/')
        && path.len() <= MAX_KEY_LEN
        && !path.contains("..")
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.{}".contains(&b));
    if !plain {
        return Err(ContextError::refused(capability, format!("`{path}` is not a plain absolute path")));
    }
    let route =
        PluginRoute { plugin_id: ctx.plugin_id().to_owned(), method: method.to_owned(), path: path.to_owned(), admin };
    Ok(ctx.registry(capability)?.add_route(route)?)
}

/// A [`PluginContext`] behind polis's `HostApi`, so that wasm imports and
/// JSON-RPC calls reach the same surfaces as a built-in does.
#[derive(Debug, Clone)]
pub struct ContextHost {
    ctx: PluginContext,
}

impl ContextHost {
    /// Wraps a context.
    pub fn shared(ctx: PluginContext) -> Arc<dyn HostApi> {
        Arc::new(ContextHost { ctx })
    }

    /// Answers one capability method with JSON params.
    pub fn answer(&self, method: &str, params: &Value) -> Result<Value, ContextError> {
        let ctx = &self.ctx;
        if let Some(permission) = perm::permission_of(method) {
            ctx.require(permission, method)?;
        }
        let str_param = |name: &str| -> Result<&str, ContextError> {
            params
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| ContextError::refused(method, format!("`{name}` must be a string")))
        };
        match method {
            "world.get" => Ok(ctx.world()?.summary()),
            "world.locations" => Ok(json!(ctx.world()?.locations())),
            "world.npcs" => Ok(json!(ctx.world()?.npcs())),
            "session.get_flag" => Ok(json!({"value": ctx.session()?.flag(str_param("key")?)})),
            "session.get_relationship" => Ok(json!({"value": ctx.session()?.relationship(str_param("npc_key")?)})),
            "session.set_flag" => {
                let value = params.get("value").cloned().unwrap_or(Value::Null);
                ctx.session_mut()?.set_flag(str_param("key")?, value)?;
                Ok(json!({"ok": true}))
            }
            "session.update_relationship" => {
                let deltas: BTreeMap<String, f64> =
                    serde_json::from_value(params.get("deltas").cloned().unwrap_or(json!({})))
                        .map_err(|e| ContextError::refused(method, format!("`deltas`: {e}")))?;
                Ok(json!({"value": ctx.session_mut()?.update_relationship(str_param("npc_key")?, &deltas)?}))
            }
            "npc.get" => Ok(ctx.npc()?.get(str_param("npc_id")?)?),
            "npc.update_state" => {
                let number = |name: &str| params.get(name).and_then(Value::as_f64);
                Ok(
                    json!({"state": ctx.npc_mut()?.update_state(str_param("npc_id")?, number("energy"), number("mood"))?}),
                )
            }
            "behavior.register_condition" => {
                let description = params.get("description").and_then(Value::as_str);
                Ok(json!({"id": ctx.behavior().register_condition_evaluator(str_param("name")?, description)?}))
            }
            "behavior.register_effect" => {
                let description = params.get("description").and_then(Value::as_str);
                let defaults = object_param(method, params, "default_params")?;
                Ok(json!({"id": ctx.behavior().register_effect_handler(str_param("name")?, description, defaults)?}))
            }
            "behavior.register_simulation_config" => {
                let priority = params.get("priority").and_then(Value::as_i64).unwrap_or(100);
                let config = object_param(method, params, "config")?;
                Ok(json!({"id": ctx.behavior().register_simulation_config(str_param("name")?, priority, config)?}))
            }
            "generation.submit" => {
                let request = params.get("params").cloned().unwrap_or(json!({}));
                Ok(json!({"request_id": ctx.generation()?.submit(str_param("kind")?, request)?}))
            }
            "log.emit" => {
                let level = params.get("level").and_then(Value::as_str).unwrap_or("info");
                ctx.log()?.emit(level, str_param("message")?);
                Ok(json!({"ok": true}))
            }
            "event.subscribe" => {
                ctx.subscriptions()?.subscribe(str_param("pattern")?)?;
                Ok(json!({"ok": true}))
            }
            "event.emit" => {
                ctx.events()?.emit(str_param("name")?, params.get("data").cloned().unwrap_or(Value::Null))?;
                Ok(json!({"ok": true}))
            }
            "admin.declare_route" => {
                ctx.admin_routes()?.declare(str_param("method")?, str_param("path")?)?;
                Ok(json!({"ok": true}))
            }
            other => {
                Err(ContextError::Unavailable { capability: other.to_owned(), why: "no such host method".to_owned() })
            }
        }
    }
}

fn object_param(method: &str, params: &Value, name: &str) -> Result<Map<String, Value>, ContextError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(ContextError::refused(method, format!("`{name}` must be an object"))),
    }
}

impl HostApi for ContextHost {
    fn call(&self, method: &str, params: &[u8]) -> Result<Vec<u8>, HostCallError> {
        if perm::permission_of(method).is_none() {
            return Err(HostCallError::UnknownMethod(method.to_owned()));
        }
        #[derive(Deserialize)]
        #[serde(transparent)]
        struct Params(Value);
        let params: Params = serde_json::from_slice(params)
            .map_err(|e| HostCallError::BadParams { method: method.to_owned(), message: e.to_string() })?;
        let params = if params.0.is_null() { json!({}) } else { params.0 };
        match self.answer(method, &params) {
            Ok(value) => serde_json::to_vec(&value)
                .map_err(|e| HostCallError::Refused { method: method.to_owned(), message: e.to_string() }),
            Err(ContextError::Denied(denied)) => Err(HostCallError::PermissionDenied(denied)),
            Err(other) => Err(HostCallError::Refused { method: method.to_owned(), message: other.to_string() }),
        }
    }
}
