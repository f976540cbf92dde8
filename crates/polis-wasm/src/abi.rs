//! The polis wasm ABI, version 1.
//!
//! A plugin module exports:
//!
//! | export | type | meaning |
//! |---|---|---|
//! | `memory` | memory | its linear memory |
//! | `polis_abi_version` | `() -> i32` | must return [`ABI_VERSION`] |
//! | `polis_alloc` | `(len: i32) -> i32` | reserves `len` bytes, returns their address (0 on failure) |
//! | `polis_run` | `(ptr: i32, len: i32) -> i64` | decides; returns `(out_ptr << 32) \| out_len` |
//! | `polis_<method>` | `(ptr: i32, len: i32) -> i64` | any other method a contract calls (`polis_on_event`), like `polis_run` |
//!
//! The host writes the request, a UTF-8 JSON document
//! `{"input": …, "params": …}` (plus `"context": …` when the plugin holds
//! `context:read`), into memory it got from `polis_alloc`, calls
//! `polis_run`, and reads the reply at `out_ptr..out_ptr + out_len`:
//! either `{"ok": <output>}` or
//! `{"error": {"kind": "rejected" | "failed", "message": "…"}}`.
//! Every run gets a fresh instance, so a plugin never frees anything and
//! cannot carry state from one run to the next.
//!
//! Host functions live in the import module [`HOST_MODULE`]; each belongs
//! to one permission and is linked only when that permission is granted:
//!
//! | import | type | permission |
//! |---|---|---|
//! | `log` | `(ptr: i32, len: i32) -> ()` | `log:emit` |
//! | `random_u64` | `() -> i64` | `random` |
//! | a contract's capability, such as `session_set_flag` | `(ptr: i32, len: i32) -> i64` | the capability's |
//!
//! A capability import takes a JSON request in guest memory and returns,
//! packed like `polis_run`, a reply the host wrote into memory it got from
//! `polis_alloc`: `{"ok": result}` or `{"error": {"code", "message"}}`.
//!
//! The run context reaches the plugin inside the request, and only with
//! `context:read`.

use polis_core::permission::{self, PermissionCatalog};

/// The ABI version this host speaks.
pub const ABI_VERSION: i32 = 1;

/// The import module that holds every host function.
pub const HOST_MODULE: &str = "polis";

/// Export names the host requires.
pub mod exports {
    /// The guest's linear memory.
    pub const MEMORY: &str = "memory";
    /// `() -> i32`, the ABI version.
    pub const ABI_VERSION: &str = "polis_abi_version";
    /// `(len: i32) -> i32`, an allocation for the request.
    pub const ALLOC: &str = "polis_alloc";
    /// `(ptr: i32, len: i32) -> i64`, the decision.
    pub const RUN: &str = "polis_run";
}

/// Exports named with this prefix are methods: `polis_run` answers `run`.
pub const METHOD_PREFIX: &str = "polis_";

/// The export that answers `method`: `polis_` plus the method with `.` and
/// `-` as `_`.
pub fn method_export(method: &str) -> String {
    format!("{METHOD_PREFIX}{}", method.replace(['.', '-'], "_"))
}

/// The permission a host function import needs, or `None` when polis has
/// no host function of that name for this catalog.
pub fn permission_for_import<'a>(name: &str, catalog: &'a PermissionCatalog) -> Option<&'a str> {
    match name {
        "log" => Some(permission::LOG_EMIT),
        "random_u64" => Some(permission::RANDOM),
        _ => catalog.capability_for_import(name).map(|c| c.permission),
    }
}

/// Splits `polis_run`'s packed result into `(ptr, len)`.
pub fn unpack(result: i64) -> (u32, u32) {
    let bits = result as u64;
    ((bits >> 32) as u32, bits as u32)
}

/// Packs `(ptr, len)` the way `polis_run` returns them.
pub fn pack(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_round_trip_at_the_edges() {
        for (ptr, len) in [(0, 0), (1, 2), (u32::MAX, u32::MAX), (0x8000_0000, 7)] {
            assert_eq!(unpack(pack(ptr, len)), (ptr, len));
        }
    }

    #[test]
    fn only_known_host_functions_map_to_permissions() {
        use polis_core::permission::{Capability, PermissionSpec};
        let platform = PermissionCatalog::platform();
        assert_eq!(permission_for_import("log", &platform), Some("log:emit"));
        assert_eq!(permission_for_import("random_u64", &platform), Some("random"));
        assert_eq!(permission_for_import("fd_write", &platform), None);
        assert_eq!(permission_for_import("session_set_flag", &platform), None);
        let domain = PermissionCatalog::with_domain(
            &[PermissionSpec { name: "session:write", doc: "" }],
            &[],
            &[Capability { method: "session.set_flag", permission: "session:write", doc: "" }],
        );
        assert_eq!(permission_for_import("session_set_flag", &domain), Some("session:write"));
    }

    #[test]
    fn methods_map_to_exports() {
        assert_eq!(method_export("run"), "polis_run");
        assert_eq!(method_export("on_event"), "polis_on_event");
        assert_eq!(method_export("evaluate-condition"), "polis_evaluate_condition");
    }
}
