//! The WebAssembly tier of polis: untrusted policies compiled to wasm, run
//! in wasmtime behind a small JSON-in/JSON-out ABI.
//!
//! - [`WasmRuntime`] owns one wasmtime engine, configured for determinism
//!   (NaN canonicalisation, deterministic relaxed SIMD, no threads, no WASI)
//!   and with a pooling instance allocator, plus the epoch ticker that
//!   enforces wall-clock deadlines.
//! - [`WasmRuntime::load`] compiles a module and checks it against the
//!   manifest: its imports must be host functions of permissions the
//!   manifest was granted, and its exported ABI version must be one this
//!   host speaks. The result is a [`WasmModule`] holding an `InstancePre`.
//! - [`WasmModule::invoke`] runs one request to one method in a *fresh
//!   instance* in its own store, under a fuel budget (deterministic CPU),
//!   an epoch deadline (wall time), a store limiter (memory), an
//!   output-size cap and a per-run [`RunControl`] for cancellation; the
//!   contract's capabilities are host functions linked only when granted.
//! - [`WasmModule`] implements `polis_core::PluginEndpoint`, so it knows no
//!   contract: `polis_core::EndpointPolicy` puts it behind `Policy<C>` and
//!   the runtime's guard validates it like a built-in.
//!
//! The ABI is described in [`abi`] and in `docs/tiers.md`.
//!
//! # Example
//!
//! ```no_run
//! # fn demo(manifest: polis_core::Manifest, bytes: &[u8]) -> Result<(), polis_wasm::WasmError> {
//! use polis_wasm::{RunControl, WasmConfig, WasmRuntime};
//!
//! let runtime = WasmRuntime::new(WasmConfig::default())?;
//! let module = runtime.load(manifest, bytes)?;
//! let reply = module.call(br#"{"input":{},"params":{}}"#, 42, &RunControl::new());
//! # let _ = reply;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod abi;
mod error;
mod module;
mod runtime;

pub use error::WasmError;
pub use module::{
    LogLine, LogSink, MAX_FUNCTIONS, MAX_HOST_CALLS_PER_RUN, MAX_HOST_REQUEST_BYTES, MAX_TABLE_ELEMENTS, RunControl,
    WasmModule,
};
pub use runtime::{WasmConfig, WasmLimits, WasmRuntime};
