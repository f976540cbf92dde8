//! An activity's core effects, after the original's `effects.py`.
//!
//! Energy changes with time: `energyDeltaPerHour` times the hours the NPC
//! spent on the activity, clamped to 0..100. The rest applies once, when
//! the activity starts: `moodImpact` is added to valence and arousal
//! (clamped to −100..100, then the mood tags are recomputed),
//! `relationshipChanges` are added per axis (a new relationship starts at
//! 0 on all four axes; clamped to 0..100), and `flagsSet` sets flags by
//! dot path. (The original applied mood impact on every application;
//! applying it at the start makes an activity's mood effect independent of
//! how often its NPC happens to be simulated.) Plugin effects are applied
//! by the simulation through the host, after these.

use serde_json::{Map, Value, json};

use crate::documents::Session;
use crate::engine::conditions::relationship_key;
use crate::engine::config::Effects;
use crate::engine::state::{ENERGY_RANGE, MOOD_RANGE, NpcState, RELATIONSHIP_RANGE, clamp};

/// The relationship axes.
pub const AXES: [&str; 4] = ["affinity", "trust", "chemistry", "tension"];

/// Adds `per_hour` energy for `elapsed_seconds`.
pub fn apply_energy(state: &mut NpcState, per_hour: Option<f64>, elapsed_seconds: i64) {
    let Some(per_hour) = per_hour else { return };
    let hours = elapsed_seconds as f64 / 3600.0;
    state.energy = clamp(state.energy + per_hour * hours, ENERGY_RANGE, state.energy);
}

/// Applies the start-of-activity effects to `state` and `session`.
pub fn apply_start(effects: &Effects, npc_id: &str, state: &mut NpcState, session: &mut Session) {
    if let Some(mood) = &effects.mood_impact {
        let m = &mut state.mood_state;
        m.valence = clamp(m.valence + mood.valence, MOOD_RANGE, m.valence);
        m.arousal = clamp(m.arousal + mood.arousal, MOOD_RANGE, m.arousal);
        state.retag();
    }
    for (target, deltas) in &effects.relationship_changes {
        let entry = session
            .relationships
            .entry(relationship_key(target, npc_id))
            .or_insert_with(|| json!({"affinity": 0, "trust": 0, "chemistry": 0, "tension": 0}));
        if !entry.is_object() {
            *entry = json!({});
        }
        for axis in AXES {
            let delta = deltas.get(axis).copied().unwrap_or(0.0);
            if delta != 0.0 {
                let now = entry.get(axis).and_then(Value::as_f64).unwrap_or(0.0);
                entry[axis] = json!(clamp(now + delta, RELATIONSHIP_RANGE, now));
            }
        }
    }
    for (key, value) in &effects.flags_set {
        set_flag(&mut session.flags, key, value.clone());
    }
}

/// Sets the flag at dot path `key`, creating objects on the way and
/// replacing a non-object in the way.
pub fn set_flag(flags: &mut std::collections::BTreeMap<String, Value>, key: &str, value: Value) {
    let mut parts = key.split('.');
    let Some(first) = parts.next() else { return };
    let rest: Vec<&str> = parts.collect();
    let Some((last, middle)) = rest.split_last() else {
        flags.insert(first.to_owned(), value);
        return;
    };
    let mut current = flags.entry(first.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    for part in middle {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        current = &mut current[*part];
    }
    if !current.is_object() {
        *current = Value::Object(Map::new());
    }
    current[*last] = value;
}

/// Relationship keys named in `effects` must be NPC keys or `self`, so
/// that a relationship the engine writes can be read by plugins'
/// `session.get_relationship`. Returns the first that is not.
pub fn bad_relationship_key(effects: &Effects) -> Option<&str> {
    effects.relationship_changes.keys().map(String::as_str).find(|k| *k != "self" && !k.starts_with("npc:"))
}

/// Relationship axes named in `effects` that do not exist.
pub fn bad_axis(effects: &Effects) -> Option<&str> {
    effects.relationship_changes.values().flat_map(|d| d.keys()).map(String::as_str).find(|a| !AXES.contains(a))
}
