//! Runs policies under one guard, whatever tier they come from.
//!
//! [`Guard`] is the only way a host calls a policy. For every run it checks
//! the input against the contract, calls the policy (containing a panic as
//! a plugin failure), enforces the output caps, validates the output
//! against the contract's JSON Schema and then its semantic rules, and
//! hashes everything into a [`RunRecord`]. Nothing a policy returns reaches
//! a caller without passing all of that.
//!
//! The tiers plug in below the guard: a built-in policy is an
//! `Arc<dyn Policy<C>>` called on typed values; the sandboxed tiers
//! (WebAssembly, worker processes, remote endpoints) implement the same
//! `Policy<C>` trait over JSON, so the guard treats them all alike.
//!
//! Every call also feeds the plugin's [`health`]: a circuit breaker that
//! stops calling a plugin that keeps failing, and per-plugin metrics.
//!
//! [`Host`] is what callers use: for any contract it resolves a policy
//! version (failing closed), derives the run key, seed and context, and
//! calls through the guard. [`parity`] compares two policies case by case
//! and [`verify`] reports drift between stored and re-run hashes, so every
//! domain gets cross-tier parity and `--verify` from one place. The runtime
//! knows no domain.
//!
//! # Example
//!
//! ```text
//! let host = Host::<Rebalance>::new(registry, HostLimits::default())?;
//! let record = host.decide("rebal.greedy.v1", &Decision::new(&subject, &input, &params))?;
//! println!("{} moves, output {}", record.output.moves.len(), record.output_sha256);
//! ```
#![deny(missing_docs)]

pub mod conformance;
mod guard;
pub mod health;
pub mod host;
pub mod parity;
pub mod verify;

pub use guard::{CheckedInput, Guard, HostLimits, RunError, RunRecord, RunRequest, panic_message};
pub use health::{Breaker, BreakerConfig, BreakerState, PluginMetrics};
pub use host::{Decision, Host, HostError};
