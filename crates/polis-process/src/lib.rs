//! The process tier of polis: policies in any language, run as persistent,
//! sandboxed worker processes that speak JSON-RPC 2.0 over stdio.
//!
//! - [`ProcessPlugin::start`] spawns a worker inside the [`sandbox`]
//!   (rlimits, user + network namespaces, Landlock, seccomp), sends
//!   `initialize` with the protocol versions this host speaks
//!   ([`PROTOCOL_VERSIONS`]), and checks the manifest the plugin returns.
//! - [`ProcessPlugin::call`] sends `run` and waits for one newline-terminated
//!   reply under a deadline. A worker that crashes is restarted on the next
//!   call; one that times out, writes a reply above the cap or garbage is
//!   killed. stderr lines become log lines tagged with the plugin id.
//! - [`ProcessPolicy`] puts a plugin behind `polis_core::Policy<C>`, so the
//!   runtime's guard validates it like a built-in.
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

mod policy;
pub mod sandbox;
mod worker;

pub use policy::ProcessPolicy;
pub use sandbox::{LayerState, SandboxConfig, SandboxReport};
pub use worker::{
    CODE_FAILED, CODE_REJECTED, LogSink, PROTOCOL_VERSIONS, ProcessConfig, ProcessError, ProcessPlugin, ProcessSpec,
    WorkerStats,
};
