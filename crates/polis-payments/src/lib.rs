//! Payment policies for an RTGS simulator, compatible with SimCash.
//!
//! Bank payment policies are JSON decision trees in SimCash's DSL
//! (aerugo/SimCash, `simulator/src/policy/tree/`). This crate parses them,
//! validates them before anything runs (every problem reported with its
//! JSON path) and compiles them to an evaluator that reads only the context
//! fields a policy uses.
//!
//! - [`dsl`]: parsing, validation, compilation and the content-hash cache.
//! - [`sim`]: SimCash scenario files and an RTGS simulator with its semantics.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! let policy = r#"{"version": "1.0", "payment_tree":
//!     {"type": "action", "node_id": "A1", "action": "Hold", "parameters":
//!      {"reason": {"value": "AwaitingInflows"}, "max": {"param": "nope"}}}}"#;
//! let report = polis_payments::dsl::check(policy);
//! assert!(report.is_ok());
//! assert_eq!(report.warnings[0].path, "$.payment_tree.parameters.max");
//!
//! let bad = r#"{"version": "1.0", "strategic_collateral_tree":
//!     {"type": "action", "node_id": "A1", "action": "Release"}}"#;
//! let report = polis_payments::dsl::check(bad);
//! assert_eq!(report.errors[0].path, "$.strategic_collateral_tree.action");
//! assert!(polis_payments::dsl::compile(bad, &BTreeMap::new()).is_err());
//! ```
#![deny(missing_docs)]

pub mod dsl;
pub mod sim;
