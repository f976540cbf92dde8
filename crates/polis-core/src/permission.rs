//! Permissions and capabilities: what a sandboxed plugin may do besides
//! computing.
//!
//! A *permission* is a name (`log:emit`, `session:write`) that the platform
//! or a domain declares, with a sentence saying what it allows. A manifest
//! *asks* for permissions by name or by group (`sandbox:basic`,
//! `group:gameplay`); [`Grants::resolve`] turns the request into the set the
//! plugin gets, against a [`PermissionCatalog`] of every name this build
//! knows. Unknown names are reported back so the caller can warn about them,
//! and are never granted.
//!
//! A *capability* is one host method tied to one permission. It exists for a
//! plugin only when that permission was granted: the wasm tier links the
//! import only then (a module importing it without the grant fails at load,
//! naming the permission), the process tier answers the JSON-RPC method only
//! then (otherwise an error naming the permission), and a domain adds the
//! matching field to a remote plugin's request only then.

use std::collections::BTreeSet;
use std::fmt;

/// One permission a plugin can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermissionSpec {
    /// The name a manifest spells, such as `log:emit`.
    pub name: &'static str,
    /// What it allows, in one sentence.
    pub doc: &'static str,
}

/// A name that stands for several permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermissionGroup {
    /// The group's name, such as `sandbox:basic`.
    pub name: &'static str,
    /// The permissions it expands to.
    pub members: &'static [&'static str],
    /// What it is for.
    pub doc: &'static str,
}

/// A host method a plugin may call, and the permission it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// The method name as the process tier's JSON-RPC sees it, such as
    /// `session.set_flag`. The wasm import is the same name with `.`
    /// replaced by `_` in the import module `polis`.
    pub method: &'static str,
    /// The permission that unlocks it.
    pub permission: &'static str,
    /// What it does.
    pub doc: &'static str,
}

impl Capability {
    /// The wasm import name: the method with `.` replaced by `_`.
    pub fn wasm_import(&self) -> String {
        self.method.replace('.', "_")
    }
}

/// `log:emit`: write log lines, tagged with the plugin id.
pub const LOG_EMIT: &str = "log:emit";
/// `random`: draw numbers from a generator seeded by the run key.
pub const RANDOM: &str = "random";
/// `context:read`: receive the run context in every request.
pub const CONTEXT_READ: &str = "context:read";

/// The permissions every contract has, because the platform provides them.
pub const PLATFORM_PERMISSIONS: &[PermissionSpec] = &[
    PermissionSpec { name: LOG_EMIT, doc: "write log lines, tagged with the plugin id, capped per run" },
    PermissionSpec {
        name: RANDOM,
        doc: "draw numbers from a generator seeded by the run key, so a rerun draws the same numbers",
    },
    PermissionSpec {
        name: CONTEXT_READ,
        doc: "receive the run context (identity of the run, decision time, request id, seed) in every request",
    },
];

/// The groups every contract has.
pub const PLATFORM_GROUPS: &[PermissionGroup] = &[PermissionGroup {
    name: "sandbox:basic",
    members: &[LOG_EMIT, RANDOM, CONTEXT_READ],
    doc: "everything a pure decision policy may reasonably want",
}];

/// Every permission and group names one contract's plugins may ask for: the
/// platform's plus the contract's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionCatalog {
    permissions: Vec<PermissionSpec>,
    groups: Vec<PermissionGroup>,
    capabilities: Vec<Capability>,
}

impl PermissionCatalog {
    /// The platform's permissions and groups only.
    pub fn platform() -> Self {
        PermissionCatalog {
            permissions: PLATFORM_PERMISSIONS.to_vec(),
            groups: PLATFORM_GROUPS.to_vec(),
            capabilities: Vec::new(),
        }
    }

    /// The platform's, plus a domain's permissions, groups and capabilities.
    pub fn with_domain(
        permissions: &[PermissionSpec],
        groups: &[PermissionGroup],
        capabilities: &[Capability],
    ) -> Self {
        let mut catalog = PermissionCatalog::platform();
        catalog.permissions.extend_from_slice(permissions);
        catalog.groups.extend_from_slice(groups);
        catalog.capabilities.extend_from_slice(capabilities);
        catalog
    }

    /// Every permission, platform first, in declaration order.
    pub fn permissions(&self) -> &[PermissionSpec] {
        &self.permissions
    }

    /// Every group.
    pub fn groups(&self) -> &[PermissionGroup] {
        &self.groups
    }

    /// Every host method the domain offers.
    pub fn capabilities(&self) -> &[Capability] {
        &self.capabilities
    }

    /// Whether `name` is a permission of this catalog.
    pub fn knows(&self, name: &str) -> bool {
        self.permissions.iter().any(|p| p.name == name)
    }

    /// The capability with this JSON-RPC method name.
    pub fn capability(&self, method: &str) -> Option<&Capability> {
        self.capabilities.iter().find(|c| c.method == method)
    }

    /// The capability with this wasm import name.
    pub fn capability_for_import(&self, import: &str) -> Option<&Capability> {
        self.capabilities.iter().find(|c| c.wasm_import() == import)
    }
}

/// The permissions a plugin was granted, and the names it asked for that
/// this build does not know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    granted: BTreeSet<String>,
    unknown: Vec<String>,
}

impl Grants {
    /// Resolves requested names and groups against `catalog`. Unknown names
    /// are kept in [`Grants::unknown`] and never granted; a group member the
    /// catalog does not know is not granted either.
    pub fn resolve<S: AsRef<str>>(requested: &[S], catalog: &PermissionCatalog) -> Grants {
        let mut grants = Grants::default();
        for name in requested {
            let name = name.as_ref();
            if catalog.knows(name) {
                grants.granted.insert(name.to_owned());
            } else if let Some(group) = catalog.groups.iter().find(|g| g.name == name) {
                grants.granted.extend(group.members.iter().filter(|m| catalog.knows(m)).map(|m| (*m).to_owned()));
            } else if !grants.unknown.iter().any(|u| u == name) {
                grants.unknown.push(name.to_owned());
            }
        }
        grants
    }

    /// Whether `permission` was granted.
    pub fn allows(&self, permission: &str) -> bool {
        self.granted.contains(permission)
    }

    /// The granted permissions, in byte order.
    pub fn granted(&self) -> impl Iterator<Item = &str> + '_ {
        self.granted.iter().map(String::as_str)
    }

    /// Requested names polis does not know, in request order, each once.
    pub fn unknown(&self) -> &[String] {
        &self.unknown
    }
}

/// Why a plugin may not use a capability, in the words of seed 003:
/// `plugin `x` cannot use `session.set_flag`: permission `session:write` not granted`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{plugin_id}` cannot use `{capability}`: permission `{permission}` not granted")]
pub struct PermissionDenied {
    /// The plugin.
    pub plugin_id: String,
    /// The capability (host method) it asked for.
    pub capability: String,
    /// The permission it lacks.
    pub permission: String,
}

impl PermissionDenied {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        "permission.denied"
    }
}

impl fmt::Display for PermissionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &[PermissionSpec] = &[PermissionSpec { name: "session:write", doc: "write session flags" }];
    const GROUPS: &[PermissionGroup] =
        &[PermissionGroup { name: "group:gameplay", members: &["session:write", "log:emit", "nope"], doc: "play" }];

    #[test]
    fn known_names_are_granted_and_unknown_ones_reported_never_granted() {
        let grants = Grants::resolve(&["log:emit", "net:connect", "net:connect"], &PermissionCatalog::platform());
        assert!(grants.allows(LOG_EMIT));
        assert!(!grants.allows(RANDOM));
        assert!(!grants.allows("net:connect"));
        assert_eq!(grants.unknown(), ["net:connect"]);
        assert_eq!(grants.granted().collect::<Vec<_>>(), [LOG_EMIT]);
    }

    #[test]
    fn a_group_grants_only_its_known_members() {
        let grants = Grants::resolve(&["sandbox:basic"], &PermissionCatalog::platform());
        assert_eq!(grants.granted().count(), 3);
        let catalog = PermissionCatalog::with_domain(DOMAIN, GROUPS, &[]);
        let grants = Grants::resolve(&["group:gameplay"], &catalog);
        assert_eq!(grants.granted().collect::<Vec<_>>(), ["log:emit", "session:write"]);
        assert!(grants.unknown().is_empty());
    }

    #[test]
    fn a_domain_permission_is_unknown_to_another_catalog() {
        let grants = Grants::resolve(&["session:write"], &PermissionCatalog::platform());
        assert!(!grants.allows("session:write"));
        assert_eq!(grants.unknown(), ["session:write"]);
    }

    #[test]
    fn nothing_requested_nothing_granted() {
        let grants = Grants::resolve::<&str>(&[], &PermissionCatalog::platform());
        assert!(PLATFORM_PERMISSIONS.iter().all(|p| !grants.allows(p.name)));
    }

    #[test]
    fn capabilities_are_found_by_method_and_by_wasm_import() {
        let caps =
            [Capability { method: "session.set_flag", permission: "session:write", doc: "set a namespaced flag" }];
        let catalog = PermissionCatalog::with_domain(DOMAIN, &[], &caps);
        assert_eq!(catalog.capability("session.set_flag").map(|c| c.permission), Some("session:write"));
        assert_eq!(catalog.capability_for_import("session_set_flag").map(|c| c.method), Some("session.set_flag"));
        assert!(catalog.capability("session.delete").is_none());
    }

    #[test]
    fn denial_names_plugin_capability_and_permission() {
        let denied = PermissionDenied {
            plugin_id: "acme.mood.v1".into(),
            capability: "session.set_flag".into(),
            permission: "session:write".into(),
        };
        assert_eq!(
            denied.to_string(),
            "plugin `acme.mood.v1` cannot use `session.set_flag`: permission `session:write` not granted"
        );
    }
}
