//! Multiplicative activity scoring and the seeded weighted choice, after
//! the original's `domain/behavior/scoring.py`.
//!
//! A score starts at the node's base weight times `baseWeight`, is
//! multiplied by each factor in a fixed order (a factor whose weight is 0
//! is skipped), and is floored at [`SCORE_FLOOR`] so that every feasible
//! activity keeps a chance. The choice draws one float from the
//! decision's stream and walks the candidates in the routine node's order,
//! so equal scores are broken by that order and nothing depends on a map's
//! iteration order.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::engine::config::Activity;
use crate::engine::rng::Rng;
use crate::engine::state::NpcState;

/// No score is lower than this (the original's `max(0.001, score)`).
pub const SCORE_FLOOR: f64 = 0.001;

/// The factors, in the order they multiply, with the original's default
/// weights (`DEFAULT_SCORING_WEIGHTS`).
pub const FACTORS: [(&str, f64); 7] = [
    ("activityPreference", 1.0),
    ("categoryPreference", 0.8),
    ("traitModifier", 0.6),
    ("moodCompatibility", 0.7),
    ("relationshipBonus", 0.5),
    ("urgency", 1.2),
    ("inertia", 0.3),
];

/// The default of `baseWeight`, which scales every base weight.
pub const BASE_WEIGHT: f64 = 1.0;

/// Factor weights: the defaults with a world's `scoringConfig.weights` over them.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// `baseWeight`.
    pub base: f64,
    /// Each factor's weight, in [`FACTORS`] order.
    pub factors: [f64; 7],
}

impl Default for Weights {
    fn default() -> Self {
        Weights { base: BASE_WEIGHT, factors: FACTORS.map(|(_, w)| w) }
    }
}

impl Weights {
    /// The defaults with `overrides` over them; an unknown name or a
    /// non-finite weight is an error naming it.
    pub fn from_config(overrides: &BTreeMap<String, f64>) -> Result<Weights, String> {
        let mut weights = Weights::default();
        for (name, weight) in overrides {
            if !weight.is_finite() {
                return Err(format!("`{name}` must be a finite number"));
            }
            if name == "baseWeight" {
                weights.base = *weight;
            } else if let Some(i) = FACTORS.iter().position(|(f, _)| f == name) {
                weights.factors[i] = *weight;
            } else {
                let known: Vec<&str> = FACTORS.iter().map(|(f, _)| *f).collect();
                return Err(format!("unknown factor `{name}`; the factors are baseWeight, {}", known.join(", ")));
            }
        }
        Ok(weights)
    }
}

/// An NPC's merged preferences.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preferences {
    /// `activityWeights`: by activity id, default 0.5.
    pub activity_weights: BTreeMap<String, f64>,
    /// `categoryWeights`: by category, default 0.5.
    pub category_weights: BTreeMap<String, f64>,
    /// `traitModifiers`: `extraversion`, `conscientiousness`, `openness`, 0..100, default 50.
    pub trait_modifiers: BTreeMap<String, f64>,
}

impl Preferences {
    /// Merges preference objects, later ones winning, nested objects merged
    /// one level deep (the original's `merge_preferences`), and reads the
    /// three maps the factors use. Non-numbers are ignored.
    pub fn merge(layers: &[Option<&Map<String, Value>>]) -> Preferences {
        let mut merged = Map::new();
        for layer in layers.iter().flatten() {
            for (key, value) in *layer {
                match (merged.get_mut(key), value) {
                    (Some(Value::Object(into)), Value::Object(from)) => {
                        into.extend(from.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                    _ => {
                        merged.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        let numbers = |key: &str| -> BTreeMap<String, f64> {
            merged
                .get(key)
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))).collect())
                .unwrap_or_default()
        };
        Preferences {
            activity_weights: numbers("activityWeights"),
            category_weights: numbers("categoryWeights"),
            trait_modifiers: numbers("traitModifiers"),
        }
    }
}

/// What a score depends on besides the activity.
pub struct ScoreInput<'a> {
    /// The NPC's preferences.
    pub preferences: &'a Preferences,
    /// Its state.
    pub state: &'a NpcState,
    /// Average affinity with each relationship key the activity names
    /// (default 50 for a missing one), computed by the caller.
    pub affinity: &'a dyn Fn(&str) -> f64,
}

/// The score of `activity` offered with `base_weight`.
pub fn score(activity: &Activity, base_weight: f64, weights: &Weights, input: &ScoreInput<'_>) -> f64 {
    let mut score = base_weight * weights.base;
    for (i, weight) in weights.factors.iter().enumerate() {
        if *weight == 0.0 {
            continue;
        }
        score *= factor(i, activity, *weight, input);
    }
    score.max(SCORE_FLOOR)
}

/// Factor `i` of [`FACTORS`] for `activity`.
fn factor(i: usize, activity: &Activity, weight: f64, input: &ScoreInput<'_>) -> f64 {
    let blend = |multiplier: f64| 1.0 + (multiplier - 1.0) * weight;
    match i {
        0 => input.preferences.activity_weights.get(&activity.id).copied().unwrap_or(0.5) * weight,
        1 => input.preferences.category_weights.get(&activity.category).copied().unwrap_or(0.5) * weight,
        2 => blend(trait_multiplier(activity, input.preferences)),
        3 => blend(mood_multiplier(activity, input.state)),
        4 => blend(relationship_multiplier(activity, input.affinity)),
        5 => blend(urgency_multiplier(activity, input.state)),
        _ => {
            if input.state.current_activity_id.as_deref() == Some(activity.id.as_str()) {
                1.0 + weight
            } else {
                1.0
            }
        }
    }
}

fn trait_multiplier(activity: &Activity, preferences: &Preferences) -> f64 {
    let level = |name: &str| preferences.trait_modifiers.get(name).copied().unwrap_or(50.0);
    match activity.category.as_str() {
        "social" => 0.5 + level("extraversion") / 100.0,
        "work" => 0.5 + level("conscientiousness") / 100.0,
        "leisure" | "quest" => 0.5 + level("openness") / 100.0,
        _ => 1.0,
    }
}

fn mood_multiplier(activity: &Activity, state: &NpcState) -> f64 {
    let wanted = &activity.requirements.mood_tags;
    if wanted.is_empty() {
        1.0
    } else if wanted.iter().any(|t| state.mood_state.tags.contains(t)) {
        1.5
    } else {
        0.5
    }
}

fn relationship_multiplier(activity: &Activity, affinity: &dyn Fn(&str) -> f64) -> f64 {
    let keys = &activity.requirements.required_npc_roles_or_ids;
    if keys.is_empty() {
        return 1.0;
    }
    let average = keys.iter().map(|k| affinity(k)).sum::<f64>() / keys.len() as f64;
    0.5 + average / 100.0
}

fn urgency_multiplier(activity: &Activity, state: &NpcState) -> f64 {
    let energy_delta = activity.effects.energy_delta_per_hour.unwrap_or(0.0);
    let mut multiplier = 1.0;
    if state.energy < 30.0 && energy_delta > 0.0 {
        multiplier *= 2.0;
    } else if state.energy > 80.0 && energy_delta < 0.0 {
        multiplier *= 1.5;
    }
    let valence_delta = activity.effects.mood_impact.as_ref().map_or(0.0, |m| m.valence);
    if state.mood_state.valence < -30.0 && valence_delta > 0.0 {
        multiplier *= 1.5;
    }
    multiplier
}

/// Whether `activity` is cooling down at `now`: it ended less than
/// `cooldownSeconds` ago. An activity the NPC never finished is not (the
/// original counted it as having ended at second 0).
pub fn cooling_down(activity: &Activity, state: &NpcState, now: i64) -> bool {
    activity.cooldown_seconds > 0
        && state.last_ended(&activity.id).is_some_and(|ended| now - ended < activity.cooldown_seconds)
}

/// Picks one of `scored` (in the node's order) with probability
/// proportional to its score, from one draw of `rng`. `None` when empty.
pub fn weighted_choice<'a, T>(scored: &'a [(T, f64)], rng: &mut Rng) -> Option<&'a T> {
    let total: f64 = scored.iter().map(|(_, s)| *s).sum();
    let target = rng.next_f64() * total;
    let mut cumulative = 0.0;
    for (item, score) in scored {
        cumulative += score;
        if target < cumulative {
            return Some(item);
        }
    }
    scored.last().map(|(item, _)| item)
}

/// The highest-scoring of `scored`, the first of equals (for the
/// simplified tier, which draws nothing).
pub fn best<T>(scored: &[(T, f64)]) -> Option<&T> {
    let mut best: Option<&(T, f64)> = None;
    for candidate in scored {
        if best.is_none_or(|b| candidate.1 > b.1) {
            best = Some(candidate);
        }
    }
    best.map(|(item, _)| item)
}
