//! Policy packs (seed 002): versioned rule packs a project picks, tightens
//! with overrides and lets its repository extend; the effective policy with
//! the layer of every value and a hash; and the findings, enforcement and
//! gate that say what a repository's protocol runs are missing and whether
//! that blocks.
//!
//! - [`pack`]: [`PackDocument`] (validated against [`schema`] and
//!   [`check`]), [`Catalog`] and [`pack::select`] ("latest active" by the
//!   order of [`version`]); [`builtin`] holds polis's five packs.
//! - [`effective`]: [`resolve`] merges pack → project ([`ProjectLayer`]:
//!   RFC 7396 merge patch, RFC 6902 operations, mode) → repo-local
//!   ([`local`]) into an [`EffectivePolicy`], with [`merge::Provenance`].
//! - [`scan`] reads a repository's `.protocols/` and check scripts once;
//!   [`eval::evaluate`] turns those facts into [`Finding`]s, applies the
//!   mode, answers and waivers, and [`eval::gate`] decides; [`sarif`]
//!   writes the findings as a SARIF 2.1.0 log for GitHub code scanning.
//!
//! The crate reads files only in [`local`] and [`scan`], reads no clock
//! (waivers are judged at a time the caller passes) and no environment
//! variable (a policy may only name one).
//!
//! # Example
//!
//! ```
//! use polis_packs::{Catalog, PackRef, ProjectLayer, resolve};
//!
//! let catalog = Catalog::builtin().unwrap();
//! let pack = catalog.resolve(&"team-standard".parse::<PackRef>().unwrap()).unwrap();
//! let project = ProjectLayer {
//!     overrides: Some(serde_json::json!({"enforcement": {"mode": "block"}})),
//!     ..ProjectLayer::default()
//! };
//! let effective = resolve(pack, &project, None).unwrap();
//! assert_eq!(effective.mode, polis_packs::Mode::Block);
//! assert_eq!(effective.provenance.0["/enforcement/mode"], polis_packs::merge::Layer::Project);
//! assert!(effective.effective_hash.starts_with("sha256:"));
//! ```
#![deny(missing_docs)]

pub mod builtin;
pub mod check;
pub mod effective;
pub mod error;
pub mod eval;
pub mod finding;
pub mod guidance;
pub mod local;
pub mod merge;
pub mod pack;
pub mod sarif;
pub mod scan;
pub mod schema;
pub mod version;
pub mod view;

pub use effective::{EffectivePolicy, Mode, ProjectLayer, resolve};
pub use error::PackError;
pub use finding::{Finding, Scope, Severity};
pub use pack::{Catalog, PackDocument, PackRef, PackStatus};
