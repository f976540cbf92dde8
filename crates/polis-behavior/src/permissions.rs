//! The seed's permissions, groups and capabilities, registered through
//! polis's [`PermissionCatalog`].
//!
//! Names are seed 003's verbatim. `log:emit` is one of them, but the
//! platform already declares it (every contract's plugins may log), so the
//! behaviour contract lists only the other twelve and the catalog holds all
//! thirteen. Groups expand exactly as the original's `PermissionGroup`
//! does; `docs/behavior.md` prints the table.
//!
//! `admin:routes` is the one permission a manifest alone cannot grant: the
//! server must also enable admin plugins ([`GrantSettings`]); otherwise it
//! is withheld with a warning, as the seed asks.

use std::collections::BTreeSet;

use polis_core::permission::{Capability, Grants, LOG_EMIT, PermissionCatalog, PermissionGroup, PermissionSpec};

/// `world:read`: read-only views of world meta, locations and NPCs.
pub const WORLD_READ: &str = "world:read";
/// `session:read`: read session flags and relationships.
pub const SESSION_READ: &str = "session:read";
/// `session:write`: write session flags under `plugin:<id>:…` and update relationships.
pub const SESSION_WRITE: &str = "session:write";
/// `npc:read`: read an NPC's definition and its state in the session.
pub const NPC_READ: &str = "npc:read";
/// `npc:write`: change an NPC's energy and mood in the session.
pub const NPC_WRITE: &str = "npc:write";
/// `behavior:extend_conditions`: register condition evaluators.
pub const EXTEND_CONDITIONS: &str = "behavior:extend_conditions";
/// `behavior:extend_effects`: register effect handlers.
pub const EXTEND_EFFECTS: &str = "behavior:extend_effects";
/// `behavior:configure_simulation`: register simulation config providers.
pub const CONFIGURE_SIMULATION: &str = "behavior:configure_simulation";
/// `generation:submit`: submit requests to the host's generation queue.
pub const GENERATION_SUBMIT: &str = "generation:submit";
/// `event:subscribe`: receive world and session events.
pub const EVENT_SUBSCRIBE: &str = "event:subscribe";
/// `event:emit`: publish events named `plugin:<id>:…`.
pub const EVENT_EMIT: &str = "event:emit";
/// `admin:routes`: declare routes that need the admin role; needs the server setting too.
pub const ADMIN_ROUTES: &str = "admin:routes";

/// The behaviour contract's own permissions (`log:emit` is the platform's).
pub const PERMISSIONS: &[PermissionSpec] = &[
    PermissionSpec { name: WORLD_READ, doc: "read world meta, locations and NPCs (read-only views)" },
    PermissionSpec { name: SESSION_READ, doc: "read session flags and relationships (read-only views)" },
    PermissionSpec {
        name: SESSION_WRITE,
        doc: "write session flags under `plugin:<id>:…` and update relationships, each write recorded with the plugin id",
    },
    PermissionSpec { name: NPC_READ, doc: "read an NPC's definition and its behaviour state in the session" },
    PermissionSpec { name: NPC_WRITE, doc: "change an NPC's energy and mood in the session, clamped to their ranges" },
    PermissionSpec {
        name: EXTEND_CONDITIONS,
        doc: "register condition evaluators, named `plugin:<id>:<name>`, while the plugin loads",
    },
    PermissionSpec {
        name: EXTEND_EFFECTS,
        doc: "register effect handlers, named `effect:plugin:<id>:<name>`, while the plugin loads",
    },
    PermissionSpec {
        name: CONFIGURE_SIMULATION,
        doc: "register simulation config providers with a priority; the world's own `simulationConfig` still wins",
    },
    PermissionSpec { name: GENERATION_SUBMIT, doc: "submit requests to the generation queue the host owns" },
    PermissionSpec {
        name: EVENT_SUBSCRIBE,
        doc: "subscribe to world and session events (`session:created`, `npc:activity_started`, …)",
    },
    PermissionSpec { name: EVENT_EMIT, doc: "publish events named `plugin:<id>:<name>`; core event names are refused" },
    PermissionSpec {
        name: ADMIN_ROUTES,
        doc: "declare routes that need the admin role; granted only when the server enables admin plugins",
    },
];

/// The seed's groups, with the original's expansions.
pub const GROUPS: &[PermissionGroup] = &[
    PermissionGroup {
        name: "group:readonly",
        members: &[WORLD_READ, SESSION_READ, NPC_READ, LOG_EMIT],
        doc: "look at the world, the session and NPCs, and log",
    },
    PermissionGroup {
        name: "group:gameplay",
        members: &[WORLD_READ, SESSION_READ, SESSION_WRITE, NPC_READ, NPC_WRITE, LOG_EMIT],
        doc: "gameplay mechanics that change session and NPC state",
    },
    PermissionGroup {
        name: "group:behavior",
        members: &[WORLD_READ, SESSION_READ, NPC_READ, EXTEND_CONDITIONS, EXTEND_EFFECTS, LOG_EMIT],
        doc: "behaviour extensions: custom conditions and effects",
    },
    PermissionGroup {
        name: "group:event_handler",
        members: &[EVENT_SUBSCRIBE, LOG_EMIT],
        doc: "react to events (metrics, webhooks, analytics)",
    },
    PermissionGroup {
        name: "group:admin",
        members: &[WORLD_READ, SESSION_READ, NPC_READ, ADMIN_ROUTES, LOG_EMIT],
        doc: "admin dashboards and diagnostics",
    },
];

/// Every host method a behaviour plugin may call, each behind one
/// permission. The wasm import is the method with `.` replaced by `_`.
pub const CAPABILITIES: &[Capability] = &[
    Capability { method: "world.get", permission: WORLD_READ, doc: "`{}` → the world's id, name and meta" },
    Capability { method: "world.locations", permission: WORLD_READ, doc: "`{}` → the world's locations" },
    Capability { method: "world.npcs", permission: WORLD_READ, doc: "`{}` → the world's NPCs" },
    Capability {
        method: "session.get_flag",
        permission: SESSION_READ,
        doc: "`{\"key\": k}` → `{\"value\": v}`; `k` is a dot path into `flags`, `null` when absent",
    },
    Capability {
        method: "session.get_relationship",
        permission: SESSION_READ,
        doc: "`{\"npc_key\": \"npc:<id>\"}` → `{\"value\": {affinity, trust, chemistry, tension}}` or `null`",
    },
    Capability {
        method: "session.set_flag",
        permission: SESSION_WRITE,
        doc: "`{\"key\": \"plugin:<id>:…\", \"value\": v}` → `{\"ok\": true}`; any other key is refused",
    },
    Capability {
        method: "session.update_relationship",
        permission: SESSION_WRITE,
        doc: "`{\"npc_key\", \"deltas\": {affinity?, trust?, chemistry?, tension?}}` → the new values, clamped to 0..100",
    },
    Capability {
        method: "npc.get",
        permission: NPC_READ,
        doc: "`{\"npc_id\"}` → the NPC's definition and its `state` in the session",
    },
    Capability {
        method: "npc.update_state",
        permission: NPC_WRITE,
        doc: "`{\"npc_id\", \"energy\"?: delta, \"mood\"?: delta}` → the new state; energy 0..100, mood -100..100",
    },
    Capability {
        method: "behavior.register_condition",
        permission: EXTEND_CONDITIONS,
        doc: "`{\"name\", \"description\"?}` → `{\"id\": \"plugin:<id>:<name>\"}`; only while loading",
    },
    Capability {
        method: "behavior.register_effect",
        permission: EXTEND_EFFECTS,
        doc: "`{\"name\", \"description\"?, \"default_params\"?}` → `{\"id\": \"effect:plugin:<id>:<name>\"}`; only while loading",
    },
    Capability {
        method: "behavior.register_simulation_config",
        permission: CONFIGURE_SIMULATION,
        doc: "`{\"name\", \"priority\"?, \"config\"}` → `{\"id\": \"plugin:<id>:<name>\"}`; only while loading",
    },
    Capability {
        method: "generation.submit",
        permission: GENERATION_SUBMIT,
        doc: "`{\"kind\", \"params\"}` → `{\"request_id\"}`: the host queues the request under the plugin's id",
    },
    Capability {
        method: "log.emit",
        permission: LOG_EMIT,
        doc: "`{\"level\", \"message\"}` → `{\"ok\": true}`: a log line tagged with the plugin id",
    },
    Capability {
        method: "event.subscribe",
        permission: EVENT_SUBSCRIBE,
        doc: "`{\"pattern\"}` (an event type, or a prefix ending in `*`) → `{\"ok\": true}`; only while loading",
    },
    Capability {
        method: "event.emit",
        permission: EVENT_EMIT,
        doc: "`{\"name\": \"plugin:<id>:…\", \"data\"?}` → `{\"ok\": true}`",
    },
    Capability {
        method: "admin.declare_route",
        permission: ADMIN_ROUTES,
        doc: "`{\"method\", \"path\"}` → `{\"ok\": true}`: an admin-only route; only while loading",
    },
];

/// The catalog of every permission, group and capability behaviour plugins
/// may ask for: the platform's plus the seed's.
pub fn catalog() -> PermissionCatalog {
    PermissionCatalog::with_domain(PERMISSIONS, GROUPS, CAPABILITIES)
}

/// Server settings that bound what a manifest can be granted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrantSettings {
    /// Whether plugins may be granted `admin:routes` (the original's
    /// `settings.enable_admin_plugins`). By default false: the permission
    /// is withheld with a warning.
    pub admin_plugins: bool,
}

/// What a plugin was granted, after the server's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginGrants {
    grants: Grants,
    withheld: BTreeSet<String>,
    warnings: Vec<String>,
}

impl PluginGrants {
    /// Resolves a manifest's requested names (permissions and groups)
    /// against [`catalog`] and `settings`. Unknown names are warned about
    /// and never granted; `admin:routes` without the setting is withheld.
    pub fn resolve<S: AsRef<str>>(plugin_id: &str, requested: &[S], settings: GrantSettings) -> PluginGrants {
        let grants = Grants::resolve(requested, &catalog());
        let mut warnings: Vec<String> = grants
            .unknown()
            .iter()
            .map(|name| format!("plugin `{plugin_id}` asks for unknown permission `{name}`; it is not granted"))
            .collect();
        let mut withheld = BTreeSet::new();
        if grants.allows(ADMIN_ROUTES) && !settings.admin_plugins {
            withheld.insert(ADMIN_ROUTES.to_owned());
            warnings.push(format!(
                "plugin `{plugin_id}` asks for `{ADMIN_ROUTES}`, but the server does not enable admin plugins; it is not granted"
            ));
        }
        PluginGrants { grants, withheld, warnings }
    }

    /// Whether `permission` was granted.
    pub fn allows(&self, permission: &str) -> bool {
        self.grants.allows(permission) && !self.withheld.contains(permission)
    }

    /// The granted permissions, in byte order.
    pub fn granted(&self) -> Vec<String> {
        self.grants.granted().filter(|p| !self.withheld.contains(*p)).map(str::to_owned).collect()
    }

    /// Requested names this build does not know.
    pub fn unknown(&self) -> &[String] {
        self.grants.unknown()
    }

    /// What the operator should be told, in order.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// The permission a host method needs, when it is one of [`CAPABILITIES`].
pub fn permission_of(method: &str) -> Option<&'static str> {
    CAPABILITIES.iter().find(|c| c.method == method).map(|c| c.permission)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_knows_all_thirteen_seed_permissions() {
        let catalog = catalog();
        for name in [
            "world:read",
            "session:read",
            "session:write",
            "npc:read",
            "npc:write",
            "behavior:extend_conditions",
            "behavior:extend_effects",
            "behavior:configure_simulation",
            "generation:submit",
            "log:emit",
            "event:subscribe",
            "event:emit",
            "admin:routes",
        ] {
            assert!(catalog.knows(name), "{name}");
        }
    }

    #[test]
    fn groups_expand_as_the_original_does() {
        let expand =
            |group: &str| PluginGrants::resolve("p", &[group], GrantSettings { admin_plugins: true }).granted();
        assert_eq!(expand("group:readonly"), ["log:emit", "npc:read", "session:read", "world:read"]);
        assert_eq!(
            expand("group:gameplay"),
            ["log:emit", "npc:read", "npc:write", "session:read", "session:write", "world:read"]
        );
        assert_eq!(
            expand("group:behavior"),
            [
                "behavior:extend_conditions",
                "behavior:extend_effects",
                "log:emit",
                "npc:read",
                "session:read",
                "world:read"
            ]
        );
        assert_eq!(expand("group:event_handler"), ["event:subscribe", "log:emit"]);
        assert_eq!(expand("group:admin"), ["admin:routes", "log:emit", "npc:read", "session:read", "world:read"]);
    }

    #[test]
    fn unknown_names_are_warned_about_and_never_granted() {
        let grants =
            PluginGrants::resolve("acme.x", &["world:read", "db:write", "group:nope"], GrantSettings::default());
        assert_eq!(grants.granted(), ["world:read"]);
        assert_eq!(grants.unknown(), ["db:write", "group:nope"]);
        assert_eq!(grants.warnings().len(), 2);
        assert!(grants.warnings()[0].contains("`db:write`"), "{:?}", grants.warnings());
    }

    #[test]
    fn admin_routes_needs_the_server_setting_too() {
        let off = PluginGrants::resolve("acme.admin", &["group:admin"], GrantSettings::default());
        assert!(!off.allows(ADMIN_ROUTES));
        assert!(off.allows(WORLD_READ));
        assert!(off.warnings()[0].contains("does not enable admin plugins"), "{:?}", off.warnings());
        let on = PluginGrants::resolve("acme.admin", &["admin:routes"], GrantSettings { admin_plugins: true });
        assert!(on.allows(ADMIN_ROUTES));
        assert!(on.warnings().is_empty());
    }

    #[test]
    fn every_capability_names_a_catalogued_permission() {
        let catalog = catalog();
        for capability in CAPABILITIES {
            assert!(catalog.knows(capability.permission), "{}", capability.method);
        }
        assert_eq!(permission_of("session.set_flag"), Some(SESSION_WRITE));
    }
}
