//! Shared fixtures: a small world, its session, a manifest, and what each
//! capability is called with.

#![allow(dead_code, reason = "each test binary uses part of this module")]
#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers fail loudly")]

use std::sync::{Arc, Mutex};

use polis_behavior::extensions::ExtensionRegistry;
use polis_behavior::permissions::CAPABILITIES;
use polis_behavior::{GrantSettings, PluginContext, PluginGrants, PluginInfo, Scene, Services, Session, World};
use polis_core::manifest::Manifest;
use serde_json::{Value, json};

/// The plugin id every probe uses.
pub const PROBE: &str = "test.probe";

pub fn world() -> Arc<World> {
    Arc::new(
        World::from_json(
            json!({
                "id": "village",
                "name": "Village",
                "meta": {"behavior": {"simulationConfig": {"maxNpcsPerTick": 10}}},
                "locations": [{"id": "square", "name": "Square"}],
                "npcs": [{"id": "ann", "name": "Ann", "role": "baker"}, {"id": "bob", "name": "Bob", "role": "smith"}]
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap(),
    )
}

pub fn session(world: &World) -> Arc<Mutex<Session>> {
    let mut session = Session::new("s1", world);
    session.flags.insert("quest".into(), json!({"stage": 2}));
    session.relationships.insert("npc:ann".into(), json!({"affinity": 40, "trust": 10}));
    Arc::new(Mutex::new(session))
}

pub fn manifest(plugin_id: &str, permissions: &[&str], tier: &str, entry: &str) -> Manifest {
    let mut doc = json!({
        "contract_version": "policy.plugin.v1",
        "plugin_id": plugin_id,
        "plugin_version": "1.0.0",
        "policy_version": format!("behavior.{}", plugin_id.replace('.', "_")),
        "strategy": "probe",
        "display_name": "Probe",
        "deterministic": true,
        "contract": "behavior.v1",
        "permissions": permissions,
        "limits": {"timeout_ms": 5000}
    });
    if tier != "builtin" {
        doc["runtime"] = json!({"tier": tier, "entry": entry});
    }
    Manifest::from_value(doc).unwrap()
}

/// What a probe sends each capability: params that succeed when granted.
pub fn params_for(method: &str) -> Value {
    match method {
        "world.get" | "world.locations" | "world.npcs" => json!({}),
        "session.get_flag" => json!({"key": "quest.stage"}),
        "session.get_relationship" => json!({"npc_key": "npc:ann"}),
        "session.set_flag" => json!({"key": format!("plugin:{PROBE}:seen"), "value": 1}),
        "session.update_relationship" => json!({"npc_key": "npc:ann", "deltas": {"affinity": 5}}),
        "npc.get" => json!({"npc_id": "ann"}),
        "npc.update_state" => json!({"npc_id": "ann", "energy": -10}),
        "behavior.register_condition" => json!({"name": "c"}),
        "behavior.register_effect" => json!({"name": "e", "default_params": {"amount": 1}}),
        "behavior.register_simulation_config" => json!({"name": "s", "priority": 5, "config": {"tier": "fast"}}),
        "generation.submit" => json!({"kind": "dialogue", "params": {"npc": "ann"}}),
        "log.emit" => json!({"level": "info", "message": "hello"}),
        "event.subscribe" => json!({"pattern": "session:*"}),
        "event.emit" => json!({"name": format!("plugin:{PROBE}:ping"), "data": {}}),
        "admin.declare_route" => json!({"method": "GET", "path": "/stats"}),
        other => panic!("no params for `{other}`"),
    }
}

/// Every capability method with its permission.
pub fn capabilities() -> Vec<(&'static str, &'static str)> {
    CAPABILITIES.iter().map(|c| (c.method, c.permission)).collect()
}

/// Server settings under which every permission can be granted.
pub fn all_allowed() -> GrantSettings {
    GrantSettings { admin_plugins: true }
}

/// A loading context for `PROBE` on the fixture world and session.
pub struct Probe {
    pub info: Arc<PluginInfo>,
    pub ctx: PluginContext,
    pub services: Arc<Services>,
    pub registry: Arc<Mutex<ExtensionRegistry>>,
    pub session: Arc<Mutex<Session>>,
}

pub fn probe(permissions: &[&str]) -> Probe {
    let world = world();
    let session = session(&world);
    let info = Arc::new(PluginInfo::new(PROBE, PluginGrants::resolve(PROBE, permissions, all_allowed())));
    let services = Services::new();
    let registry = Arc::new(Mutex::new(ExtensionRegistry::new()));
    let ctx = PluginContext::loading(
        Arc::clone(&info),
        Scene::new(world, Arc::clone(&session)),
        Arc::clone(&services),
        Arc::clone(&registry),
    );
    Probe { info, ctx, services, registry, session }
}

/// The seed's denial message.
pub fn denial(capability: &str, permission: &str) -> String {
    format!("plugin `{PROBE}` cannot use `{capability}`: permission `{permission}` not granted")
}
