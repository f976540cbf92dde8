//! Permissions: what a sandboxed plugin may do besides computing.
//!
//! The model follows seed 003 §16.2. A manifest *asks* for permissions by
//! name (`log:emit`) or by group (`sandbox:basic`); [`Grants::resolve`]
//! turns the request into the set of capabilities the plugin gets. Unknown
//! names are reported back so the caller can warn about them, and are never
//! granted. A capability that was not granted simply does not exist for the
//! plugin: the wasm tier links no host function for it, so a module that
//! imports one fails at load with a message naming the permission, and the
//! host is never harmed.

use std::collections::BTreeSet;
use std::fmt;

/// One capability a plugin can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// `log:emit`: write log lines, tagged with the plugin id.
    LogEmit,
    /// `random`: draw numbers from a generator seeded by the run key, so a
    /// rerun draws the same numbers.
    Random,
    /// `context:read`: read the run context (system, serving view, bucket
    /// time, request id, seed). Read-only.
    ContextRead,
}

impl Permission {
    /// Every permission, in listing order.
    pub const ALL: [Permission; 3] = [Permission::LogEmit, Permission::Random, Permission::ContextRead];

    /// The permission's name as a manifest spells it.
    pub fn name(self) -> &'static str {
        match self {
            Permission::LogEmit => "log:emit",
            Permission::Random => "random",
            Permission::ContextRead => "context:read",
        }
    }

    /// Looks a permission up by name.
    pub fn from_name(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Named groups of permissions a manifest may ask for in one word.
pub const GROUPS: &[(&str, &[Permission])] = &[
    // Everything a pure decision policy may reasonably want.
    ("sandbox:basic", &[Permission::LogEmit, Permission::Random, Permission::ContextRead]),
];

/// The permissions a plugin was granted, and the names it asked for that
/// polis does not know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    granted: BTreeSet<Permission>,
    unknown: Vec<String>,
}

impl Grants {
    /// Resolves requested names and groups. Unknown names are kept in
    /// [`Grants::unknown`] and never granted.
    pub fn resolve<S: AsRef<str>>(requested: &[S]) -> Grants {
        let mut grants = Grants::default();
        for name in requested {
            let name = name.as_ref();
            if let Some(permission) = Permission::from_name(name) {
                grants.granted.insert(permission);
            } else if let Some((_, members)) = GROUPS.iter().find(|(group, _)| *group == name) {
                grants.granted.extend(members.iter().copied());
            } else if !grants.unknown.iter().any(|u| u == name) {
                grants.unknown.push(name.to_owned());
            }
        }
        grants
    }

    /// Whether `permission` was granted.
    pub fn allows(&self, permission: Permission) -> bool {
        self.granted.contains(&permission)
    }

    /// The granted permissions, in order.
    pub fn granted(&self) -> impl Iterator<Item = Permission> + '_ {
        self.granted.iter().copied()
    }

    /// Requested names polis does not know, in request order, each once.
    pub fn unknown(&self) -> &[String] {
        &self.unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_are_granted_and_unknown_ones_reported_never_granted() {
        let grants = Grants::resolve(&["log:emit", "net:connect", "net:connect"]);
        assert!(grants.allows(Permission::LogEmit));
        assert!(!grants.allows(Permission::Random));
        assert_eq!(grants.unknown(), ["net:connect"]);
        assert_eq!(grants.granted().collect::<Vec<_>>(), [Permission::LogEmit]);
    }

    #[test]
    fn a_group_grants_its_members() {
        let grants = Grants::resolve(&["sandbox:basic"]);
        assert_eq!(grants.granted().count(), 3);
        assert!(grants.unknown().is_empty());
    }

    #[test]
    fn nothing_requested_nothing_granted() {
        let grants = Grants::resolve::<&str>(&[]);
        assert!(Permission::ALL.iter().all(|p| !grants.allows(*p)));
    }
}
