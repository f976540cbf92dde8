//! Bike-share rebalancing for polis: the `rebalance.v1` contract, its
//! built-in policies, GBFS snapshots and a synthetic city.
//!
//! - [`contract`]: `policy.input.v1`, `policy.output.v1` and the params,
//!   exactly as seed 000 §5 defines them, and the [`Rebalance`] contract.
//! - [`network`]: validates an input and orders it canonically; bands
//!   `L = ceil(alpha·capacity)`, `U = floor(beta·capacity)` and
//!   eligibility live here.
//! - [`validate`]: the semantic rules every output must satisfy.
//! - [`greedy`] and [`global`]: `rebal.greedy.v1` and `rebal.global.v1`
//!   (min-cost flow, in [`flow`]).
//! - [`builtins`]: the built-ins behind the `Policy` trait and their
//!   registry; [`host`]: run keys, contexts and guarded calls for every
//!   caller.
//! - [`gbfs`], [`snapshot`] and [`synth`]: GBFS feeds and archives in, a
//!   `policy.input.v1` out, and a deterministic synthetic city.
//!
//! # Example
//!
//! ```
//! use polis_rebalance::contract::*;
//! use polis_rebalance::network::Network;
//! use polis_rebalance::builtins::Builtin;
//!
//! let station = |key: &str, bikes| Station {
//!     station_key: key.into(), capacity: 10, bikes, docks: 10 - bikes, bucket_quality: "ok".into(),
//! };
//! let input = PolicyInput {
//!     stations: vec![station("a", 10), station("b", 0)],
//!     neighbors: vec![Neighbor { from_station_key: "a".into(), to_station_key: "b".into(), dist_m: 250.0, rank: 1 }],
//!     effort: DEFAULT_EFFORT,
//!     targets: default_targets(),
//! };
//! let network = Network::new(&input, &RebalanceParams::default()).unwrap();
//! let output = Builtin::Global.decide(&network);
//! assert_eq!(output.summary.bikes_moved_total, 2); // a drains to U = 8, b fills to L = 2
//! ```
#![deny(missing_docs)]

pub mod builtins;
pub mod capped;
pub mod conformance;
pub mod contract;
mod diagnostics;
pub mod digest;
pub mod flow;
pub mod gbfs;
pub mod global;
pub mod greedy;
pub mod host;
pub mod network;
pub mod parity;
pub mod replay;
pub mod snapshot;
pub mod synth;
pub mod urbanflow;
pub mod validate;

pub use contract::{PolicyInput, PolicyOutput, Rebalance, RebalanceParams};
