//! The vocabulary every polis crate shares: contracts, manifests, run keys,
//! canonical hashing, permissions and the policy registry.
//!
//! A *policy* is decision logic behind a versioned *contract*: it takes a
//! context and the contract's input and returns the contract's output. This
//! crate defines those seams and nothing that does IO, so it cannot fail for
//! IO reasons and never sees a wire format beyond JSON. It knows no domain:
//! each domain implements [`Contract`] in its own crate.
//!
//! - [`canonical`]: RFC 8785 canonical JSON and SHA-256 digests, used for
//!   every hash polis records (manifests, specs, inputs, outputs, run keys).
//! - [`manifest`]: the one plugin manifest format (`policy.plugin.v1`): the
//!   fields every plugin has, with field-named validation errors; a
//!   contract's own fields are kept aside for the contract to check.
//! - [`contract`]: the [`Contract`] trait a domain implements (types, JSON
//!   Schemas, run subject and context, manifest fields, permissions,
//!   semantic validation), [`Violation`] reports, and [`ContractInfo`], the
//!   object-safe description binaries list contracts by.
//! - [`run`]: the run key (a contract's subject plus the policy version and
//!   spec hash), seeds derived from it, and the policy spec.
//! - [`policy`]: the [`Policy`] trait built-ins implement, the
//!   [`PluginEndpoint`] trait every sandboxed tier implements, and the
//!   [`HostApi`] plugins call back on.
//! - [`permission`]: open permission names, groups and capabilities,
//!   resolved into grants that never include an unknown name.
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
//! // The seed's domain fields wait for the rebalancing contract to check them.
//! assert!(manifest.extensions.contains_key("max_horizon_steps"));
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
pub use contract::{Contract, ContractInfo, Violation, Violations};
pub use manifest::Manifest;
pub use policy::{Call, CallEnv, EndpointPolicy, HostApi, NoHost, PluginEndpoint, Policy, PolicyError, RunControl};
pub use registry::{Registry, RegistryError};
pub use run::{PolicySpec, RunKey};
