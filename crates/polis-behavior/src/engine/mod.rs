//! The behaviour engine: NPCs follow routines, choose activities by
//! scoring, and change their state and the session's, with plugins
//! extending conditions and effects through the [`BehaviorHost`](crate::BehaviorHost).
//!
//! Modelled on the original system's Python (Sakenfor/pixsim7,
//! `backend/main/domain/behavior/{conditions,scoring}.py` and
//! `domain/game/behavior/{routine_resolver,effects,simulation}.py`);
//! `docs/behavior.md` lists where polis follows it and where it differs.
//!
//! - [`config`]: a world's `meta.behavior`, typed and checked.
//! - [`conditions`]: the condition DSL and its evaluation.
//! - [`state`]: an NPC's `flags.npcs["npc:<id>"].state`, clamped.
//! - [`routine`]: the active node of a routine graph.
//! - [`scoring`]: factors, weights, the floor, the seeded choice.
//! - [`effects`]: energy, mood, relationships and flags.
//! - [`tiers`]: simulation tiers and priority rules.
//! - [`rng`]: the seeded streams.
//! - [`sim`]: the tick loop.
//! - [`timeline`]: the timeline, its digest and `timeline.jsonl`.
//!
//! Nothing here reads a clock or iterates a hash map: the same world,
//! session, seed and plugins give the same timeline and digest.

pub mod conditions;
pub mod config;
pub mod effects;
pub mod rng;
pub mod routine;
pub mod scoring;
pub mod sim;
pub mod state;
pub mod tiers;
pub mod timeline;

pub use config::{ConfigError, WorldConfig};
pub use sim::{DEFAULT_SECONDS_PER_TICK, EngineError, Outcome, RunOptions, Simulation, Stats};
pub use timeline::{Entry, Timeline};
