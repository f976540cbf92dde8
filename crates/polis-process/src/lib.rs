//! The process tier of polis: policies in any language, run as persistent,
//! sandboxed worker processes that speak JSON-RPC 2.0 over stdio.
//!
//! - [`ProcessPlugin::start`] spawns a worker inside the [`sandbox`]
//!   (rlimits, user + network namespaces, Landlock, seccomp), sends
//!   `initialize` with the protocol versions this host speaks
//!   ([`PROTOCOL_VERSIONS`]), and checks the manifest the plugin returns.
//! - [`ProcessPlugin::request`] sends one request to a method (`run`, or a
//!   contract's own such as `on_event`) and waits for one newline-terminated
//!   reply under a deadline. Meanwhile the plugin may call the host's
//!   capabilities over the same stream; a call whose permission the plugin
//!   lacks gets an error naming the permission, and the host keeps serving.
//!   A worker that crashes is restarted on the next call; one that times
//!   out, writes a reply above the cap or garbage is killed. stderr lines
//!   become log lines tagged with the plugin id.
//! - [`ProcessPlugin`] implements `polis_core::PluginEndpoint`, so it knows
//!   no contract; `polis_core::EndpointPolicy` puts it behind `Policy<C>`
//!   and the runtime's guard validates it like a built-in.
//!
//! The protocol and the Python SDK are described in `docs/tiers.md`.
//!
//! # Example
//!
//! ```no_run
//! # fn demo(manifest: polis_core::Manifest) -> Result<(), polis_process::ProcessError> {
//! use polis_process::{ProcessConfig, ProcessPlugin, ProcessSpec};
//!
//! let spec = ProcessSpec {
//!     program: "/usr/bin/python3".into(),
//!     args: vec!["plugin.py".into()],
//!     dir: "examples/plugins/greedy-python".into(),
//!     env: vec![],
//! };
//! let plugin = ProcessPlugin::start(manifest, spec, ProcessConfig::default())?;
//! for (layer, state) in plugin.sandbox_report().layers() {
//!     println!("{layer}: {state:?}");
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod limits;
pub mod sandbox;
mod worker;

pub use sandbox::{LayerState, SandboxConfig, SandboxReport, WorkerIdentity, resolve_program};
pub use worker::{
    CODE_FAILED, CODE_HOST_LIMIT, CODE_HOST_REFUSED, CODE_METHOD_NOT_FOUND, CODE_PERMISSION_DENIED, CODE_REJECTED,
    LogSink, MAX_HOST_CALLS_PER_REQUEST, PROTOCOL_VERSIONS, ProcessConfig, ProcessError, ProcessPlugin, ProcessSpec,
    WorkerStats,
};
