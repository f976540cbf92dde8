//! An NPC's behaviour state, `flags.npcs["npc:<id>"].state` in the session.
//!
//! The session document is the one source of truth, because plugins read
//! and write it (`npc.get`, `npc.update_state`) while the engine runs: the
//! engine reads an NPC's state before it works on the NPC, writes it back
//! after, and reads it again after a plugin effect. Reading clamps energy to
//! 0..100 and valence and arousal to −100..100, so a document or a plugin
//! cannot push a value out of range for longer than one read. Keys the
//! engine does not know are kept as they are.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::documents::{Session, npc_key};

/// Lowest and highest energy.
pub const ENERGY_RANGE: (f64, f64) = (0.0, 100.0);
/// Lowest and highest valence and arousal.
pub const MOOD_RANGE: (f64, f64) = (-100.0, 100.0);
/// Lowest and highest relationship value, on every axis.
pub const RELATIONSHIP_RANGE: (f64, f64) = (0.0, 100.0);
/// Energy of an NPC the session has no state for (as `npc.update_state`).
pub const DEFAULT_ENERGY: f64 = 100.0;
/// Entries kept in `lastActivities`, as the original.
pub const HISTORY: usize = 10;

/// An NPC's mood.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoodState {
    /// −100..100.
    #[serde(default)]
    pub valence: f64,
    /// −100..100.
    #[serde(default)]
    pub arousal: f64,
    /// Tags derived from valence and arousal (`happy`, `tired`, …).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Anything else a document or plugin put here.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One finished activity, for cooldowns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastActivity {
    /// The activity.
    pub activity_id: String,
    /// When it ended, world seconds.
    pub ended_at_seconds: i64,
}

/// `flags.npcs["npc:<id>"].state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NpcState {
    /// 0..100.
    #[serde(default = "default_energy")]
    pub energy: f64,
    /// The mood.
    #[serde(default)]
    pub mood_state: MoodState,
    /// What the NPC is doing.
    #[serde(default)]
    pub current_activity_id: Option<String>,
    /// When it started, world seconds.
    #[serde(default)]
    pub activity_started_at_seconds: Option<i64>,
    /// The last [`HISTORY`] finished activities, oldest first.
    #[serde(default)]
    pub last_activities: Vec<LastActivity>,
    /// When the NPC next chooses an activity, world seconds.
    #[serde(default)]
    pub next_decision_at_seconds: i64,
    /// When its simulation tier next ticks it, world seconds.
    #[serde(default)]
    pub next_tick_at_seconds: i64,
    /// When it was last simulated; time-based effects cover the time since.
    #[serde(default)]
    pub last_simulated_at_seconds: Option<i64>,
    /// Anything else a document or plugin put here (a position, say).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_energy() -> f64 {
    DEFAULT_ENERGY
}

impl Default for NpcState {
    fn default() -> Self {
        NpcState {
            energy: DEFAULT_ENERGY,
            mood_state: MoodState { tags: mood_tags(0.0, 0.0), ..MoodState::default() },
            current_activity_id: None,
            activity_started_at_seconds: None,
            last_activities: Vec::new(),
            next_decision_at_seconds: 0,
            next_tick_at_seconds: 0,
            last_simulated_at_seconds: None,
            extra: Map::new(),
        }
    }
}

/// Why a state could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session `flags.npcs.npc:{npc_id}.state` is invalid: {message}")]
pub struct StateError {
    /// The NPC.
    pub npc_id: String,
    /// What is wrong.
    pub message: String,
}

impl NpcState {
    /// Reads the NPC's state from the session (the default when absent),
    /// clamped.
    pub fn read(session: &Session, npc_id: &str) -> Result<NpcState, StateError> {
        let raw = session.flags.get("npcs").and_then(|n| n.get(npc_key(npc_id))).and_then(|n| n.get("state"));
        let mut state = match raw {
            None | Some(Value::Null) => NpcState::default(),
            Some(value) => NpcState::deserialize(value)
                .map_err(|e| StateError { npc_id: npc_id.to_owned(), message: e.to_string() })?,
        };
        state.clamp();
        Ok(state)
    }

    /// The NPC's `nextTickAtSeconds` (0 when absent or not an integer),
    /// without reading the rest of its state.
    pub fn next_tick_at(session: &Session, npc_id: &str) -> i64 {
        session
            .flags
            .get("npcs")
            .and_then(|n| n.get(npc_key(npc_id)))
            .and_then(|n| n.get("state"))
            .and_then(|s| s.get("nextTickAtSeconds"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// Writes the state back, keeping the NPC's other keys (`preferences`).
    pub fn write(&self, session: &mut Session, npc_id: &str) {
        let npcs = session.flags.entry("npcs".to_owned()).or_insert_with(|| json!({}));
        if !npcs.is_object() {
            *npcs = json!({});
        }
        let slot = &mut npcs[npc_key(npc_id)];
        if !slot.is_object() {
            *slot = json!({});
        }
        slot["state"] = serde_json::to_value(self).unwrap_or(Value::Null);
    }

    /// Clamps energy and mood into their ranges; a non-finite number
    /// becomes the range's default.
    pub fn clamp(&mut self) {
        self.energy = clamp(self.energy, ENERGY_RANGE, DEFAULT_ENERGY);
        self.mood_state.valence = clamp(self.mood_state.valence, MOOD_RANGE, 0.0);
        self.mood_state.arousal = clamp(self.mood_state.arousal, MOOD_RANGE, 0.0);
    }

    /// Recomputes mood tags from valence and arousal.
    pub fn retag(&mut self) {
        self.mood_state.tags = mood_tags(self.mood_state.valence, self.mood_state.arousal);
    }

    /// Records the current activity as finished at `now` (for cooldowns).
    pub fn finish(&mut self, now: i64) {
        if let Some(activity_id) = self.current_activity_id.take() {
            self.last_activities.push(LastActivity { activity_id, ended_at_seconds: now });
            let excess = self.last_activities.len().saturating_sub(HISTORY);
            self.last_activities.drain(..excess);
        }
        self.activity_started_at_seconds = None;
    }

    /// When `activity_id` last ended, if it is in the history.
    pub fn last_ended(&self, activity_id: &str) -> Option<i64> {
        self.last_activities.iter().rev().find(|a| a.activity_id == activity_id).map(|a| a.ended_at_seconds)
    }
}

/// `value` clamped into `range`; `fallback` when it is not finite.
pub fn clamp(value: f64, range: (f64, f64), fallback: f64) -> f64 {
    if value.is_finite() { value.clamp(range.0, range.1) } else { fallback }
}

/// The original's mood tags (`effects.py` `_calculate_mood_tags`).
pub fn mood_tags(valence: f64, arousal: f64) -> Vec<String> {
    let mut tags = Vec::new();
    if arousal > 30.0 {
        tags.push(if valence > 0.0 { "energetic" } else { "tense" });
    }
    if arousal < -30.0 {
        tags.push(if valence > 0.0 { "calm" } else { "tired" });
    }
    if valence > 50.0 {
        tags.push("happy");
    } else if valence < -50.0 {
        tags.push("sad");
    }
    if valence > 30.0 && arousal > 30.0 {
        tags.push("excited");
    } else if valence < -30.0 && arousal > 30.0 {
        tags.push("anxious");
    }
    if tags.is_empty() {
        tags.push("neutral");
    }
    tags.into_iter().map(str::to_owned).collect()
}
