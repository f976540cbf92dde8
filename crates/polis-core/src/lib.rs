//! The vocabulary every polis crate shares: contracts, manifests, run keys,
//! canonical hashing and the policy registry.
//!
//! A *policy* is decision logic behind a versioned *contract*: it takes a
//! [`RunContext`] and the contract's input and returns the contract's
//! output. This crate defines those seams and nothing that does IO, so it
//! cannot fail for IO reasons and never sees a wire format beyond JSON.
//!
//! - [`canonical`]: RFC 8785 canonical JSON and SHA-256 digests, used for
//!   every hash polis records (manifests, specs, inputs, outputs, run keys).
//! - [`manifest`]: the one plugin manifest format (`policy.plugin.v1`),
//!   accepting seed manifests verbatim, with field-named validation errors.
//! - [`contract`]: the [`Contract`] trait a domain implements (types, JSON
//!   Schemas, semantic validation) and [`Violation`] reports.
//! - [`run`]: the run key, the run context with its derived seed, and the
//!   policy spec.
//! - [`policy`]: the [`Policy`] trait every tier implements.
//! - [`permission`]: permission names and groups, resolved into grants
//!   that never include an unknown name.
//! - [`registry`]: resolves a `policy_version` to a policy, failing closed.
//!
//! # Example
//!
//! ```
//! use polis_core::manifest::Manifest;
//!
//! let manifest = Manifest::from_json(br#"{
//!     "contract_version": "policy.plugin.v1",
//!     "plugin_id": "research.baseline.shift.v1",
//!     "plugin_version": "1.0.0",
//!     "policy_version": "rebal.research.shift.v1",
//!     "strategy": "research.shift.v1",
//!     "display_name": "Research Shift Baseline",
//!     "deterministic": true,
//!     "supports_horizon_steps": false,
//!     "max_horizon_steps": 0,
//!     "requires_neighbor_graph": true,
//!     "input_schema_version": "policy.input.v1",
//!     "output_schema_version": "policy.output.v1"
//! }"#).unwrap();
//! assert_eq!(manifest.policy_version, "rebal.research.shift.v1");
//! assert_eq!(manifest.digest().unwrap().to_hex().len(), 64);
//! ```
#![deny(missing_docs)]

pub mod canonical;
pub mod contract;
mod jcs;
pub mod manifest;
pub mod permission;
pub mod policy;
pub mod registry;
pub mod run;

pub use canonical::Digest;
pub use contract::{Contract, Violation, Violations};
pub use manifest::Manifest;
pub use policy::{Policy, PolicyError, RunControl};
pub use registry::{Registry, RegistryError};
pub use run::{PolicySpec, RunContext, RunKey};
