//! A world's `meta.behavior`, read once into types and checked.
//!
//! Field names are the original's (`activities`, `routines`,
//! `preferredActivities`, `energyDeltaPerHour`, …). Every problem is an
//! error naming its JSON path from the world's root
//! (`meta.behavior.activities.nap.effects.energyDeltaPerHour: invalid type…`),
//! and unknown keys are errors too, so a typo does not silently do nothing.
//! References are checked after parsing: a routine naming a missing
//! activity, an NPC naming a missing routine, a rule naming a missing tier.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::documents::World;
use crate::engine::conditions::Condition;
use crate::engine::scoring::Weights;
use crate::engine::tiers::SimulationConfig;

/// Why a world's behaviour config cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("world `{world_id}`: `{path}`: {message}")]
pub struct ConfigError {
    /// The world.
    pub world_id: String,
    /// The JSON path from the world's root.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        "behavior.config_invalid"
    }
}

/// `meta.behavior`, typed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BehaviorConfig {
    /// Categories by id; free-form, but an activity's category must be one
    /// of them when any are listed.
    #[serde(default)]
    pub activity_categories: BTreeMap<String, Value>,
    /// Activities by id.
    #[serde(default)]
    pub activities: BTreeMap<String, Activity>,
    /// Routine graphs by id.
    #[serde(default)]
    pub routines: BTreeMap<String, Routine>,
    /// `{weights}` over the original's defaults.
    #[serde(default)]
    pub scoring_config: ScoringConfig,
    /// Read separately, merged with plugin providers (see [`SimulationConfig`]).
    #[serde(default)]
    pub simulation_config: Option<Value>,
    /// Read by [`crate::PluginScope`].
    #[serde(default)]
    pub enabled_plugins: Option<Value>,
}

/// `scoringConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoringConfig {
    /// Factor weights over the defaults.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
}

/// One activity.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Activity {
    /// Its id; the key it is listed under when absent.
    #[serde(default)]
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Its category (`work`, `social`, `rest`, …).
    #[serde(default)]
    pub category: String,
    /// Who can do it, and when.
    #[serde(default)]
    pub requirements: Requirements,
    /// What doing it changes.
    #[serde(default)]
    pub effects: Effects,
    /// Seconds after it ends before it can be chosen again.
    #[serde(default)]
    pub cooldown_seconds: i64,
    /// Seconds before the NPC decides again once it starts.
    #[serde(default)]
    pub min_duration_seconds: i64,
    /// Free-form.
    #[serde(default)]
    pub meta: Map<String, Value>,
}

/// An activity's requirements.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requirements {
    /// Lowest energy.
    #[serde(default)]
    pub min_energy: Option<f64>,
    /// Highest energy.
    #[serde(default)]
    pub max_energy: Option<f64>,
    /// Mood tags the activity suits; scored by `moodCompatibility` (×1.5
    /// when one matches, ×0.5 when none does), not a hard filter.
    #[serde(default)]
    pub mood_tags: Vec<String>,
    /// NPC roles that may do it; any role when empty.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Relationship keys the activity involves; scored by
    /// `relationshipBonus` from their average affinity.
    #[serde(default)]
    pub required_npc_roles_or_ids: Vec<String>,
    /// Conditions that must all hold.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// An activity's effects.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Effects {
    /// Energy gained (or, negative, spent) per hour of the activity.
    #[serde(default)]
    pub energy_delta_per_hour: Option<f64>,
    /// Added to valence and arousal when the activity starts.
    #[serde(default)]
    pub mood_impact: Option<MoodImpact>,
    /// Added to relationships when it starts, by key (`npc:ann`, or `self`).
    #[serde(default)]
    pub relationship_changes: BTreeMap<String, BTreeMap<String, f64>>,
    /// Flags set when it starts, by dot path.
    #[serde(default)]
    pub flags_set: BTreeMap<String, Value>,
    /// Plugin effects applied when it starts, in order.
    #[serde(default)]
    pub custom_effects: Vec<CustomEffect>,
}

/// `moodImpact`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoodImpact {
    /// Added to valence.
    #[serde(default)]
    pub valence: f64,
    /// Added to arousal.
    #[serde(default)]
    pub arousal: f64,
}

/// One plugin effect of an activity.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomEffect {
    /// `effect:plugin:<id>:<name>`.
    #[serde(rename = "type")]
    pub effect_type: String,
    /// Merged over the effect's default params.
    #[serde(default)]
    pub params: Map<String, Value>,
}

/// A routine graph.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Routine {
    /// Its id; the key it is listed under when absent.
    #[serde(default)]
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: String,
    /// Nodes, in the order they are tried.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Edges, kept for editors; the engine picks nodes by order alone, as
    /// the original does.
    #[serde(default)]
    pub edges: Vec<Value>,
    /// Preferences every NPC on this routine starts from.
    #[serde(default)]
    pub default_preferences: Map<String, Value>,
}

/// The kinds of routine node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeType {
    /// Active during `timeRangeSeconds`.
    #[default]
    TimeSlot,
    /// Active while `decisionConditions` all hold.
    Decision,
    /// Always active.
    Activity,
}

/// A routine node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// Its id.
    #[serde(default)]
    pub id: String,
    /// Its kind.
    pub node_type: NodeType,
    /// A display label.
    #[serde(default)]
    pub label: Option<String>,
    /// For time slots: seconds of the day, `start <= t < end`; when `start
    /// > end` the slot wraps midnight.
    #[serde(default)]
    pub time_range_seconds: Option<TimeRange>,
    /// For decisions: conditions that must all hold.
    #[serde(default)]
    pub decision_conditions: Vec<Condition>,
    /// The activities it offers, with base weights.
    #[serde(default)]
    pub preferred_activities: Vec<Preferred>,
}

/// `timeRangeSeconds`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// Start, seconds of the day.
    #[serde(default)]
    pub start: i64,
    /// End, seconds of the day (exclusive).
    #[serde(default = "day")]
    pub end: i64,
}

fn day() -> i64 {
    86_400
}

/// One activity a node offers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preferred {
    /// The activity.
    pub activity_id: String,
    /// Its base weight (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Conditions that must all hold for it to be offered.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

fn one() -> f64 {
    1.0
}

/// Everything the engine needs from a world, checked.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// `meta.behavior`.
    pub behavior: BehaviorConfig,
    /// The scoring weights: defaults, then `scoringConfig.weights`.
    pub weights: Weights,
    /// The simulation config: defaults, plugin providers, the world's own.
    pub simulation: SimulationConfig,
    /// Unknown condition types, and other things that work but are odd.
    pub warnings: Vec<String>,
}

impl WorldConfig {
    /// Reads and checks `world.meta.behavior`; `simulation` is the
    /// host's merge of providers and the world's own `simulationConfig`.
    pub fn read(world: &World, simulation: &Map<String, Value>) -> Result<WorldConfig, ConfigError> {
        let error = |path: String, message: String| ConfigError { world_id: world.id.clone(), path, message };
        let raw = world.meta.get("behavior").cloned().unwrap_or(Value::Object(Map::new()));
        let mut behavior: BehaviorConfig = serde_path_to_error::deserialize(raw).map_err(|e| {
            let inner = e.path().to_string();
            let path = if inner == "." { "meta.behavior".to_owned() } else { format!("meta.behavior.{inner}") };
            error(path, e.into_inner().to_string())
        })?;
        let weights = Weights::from_config(&behavior.scoring_config.weights)
            .map_err(|m| error("meta.behavior.scoringConfig.weights".to_owned(), m))?;
        let simulation = SimulationConfig::read(simulation).map_err(|(p, m)| error(p, m))?;
        let mut warnings = Vec::new();
        for (id, activity) in &mut behavior.activities {
            let at = format!("meta.behavior.activities.{id}");
            if activity.id.is_empty() {
                activity.id.clone_from(id);
            } else if &activity.id != id {
                return Err(error(format!("{at}.id"), format!("`{}` differs from its key `{id}`", activity.id)));
            }
            if !behavior.activity_categories.is_empty()
                && !activity.category.is_empty()
                && !behavior.activity_categories.contains_key(&activity.category)
            {
                return Err(error(
                    format!("{at}.category"),
                    format!("no category `{}` in `meta.behavior.activityCategories`", activity.category),
                ));
            }
            for (i, effect) in activity.effects.custom_effects.iter().enumerate() {
                if !effect.effect_type.starts_with("effect:plugin:") {
                    return Err(error(
                        format!("{at}.effects.customEffects[{i}].type"),
                        format!("`{}` is not a plugin effect (`effect:plugin:<id>:<name>`)", effect.effect_type),
                    ));
                }
            }
            if let Some(key) = crate::engine::effects::bad_relationship_key(&activity.effects) {
                return Err(error(
                    format!("{at}.effects.relationshipChanges.{key}"),
                    "a relationship key is `npc:<id>` or `self`".to_owned(),
                ));
            }
            if let Some(axis) = crate::engine::effects::bad_axis(&activity.effects) {
                return Err(error(
                    format!("{at}.effects.relationshipChanges"),
                    format!("unknown axis `{axis}`; the axes are affinity, trust, chemistry, tension"),
                ));
            }
            warn_unknown(&mut warnings, &format!("{at}.requirements.conditions"), &activity.requirements.conditions);
        }
        for (id, routine) in &mut behavior.routines {
            if routine.id.is_empty() {
                routine.id.clone_from(id);
            }
            for (n, node) in routine.nodes.iter().enumerate() {
                let at = format!("meta.behavior.routines.{id}.nodes[{n}]");
                if node.node_type == NodeType::TimeSlot {
                    let range = node
                        .time_range_seconds
                        .ok_or_else(|| error(at.clone(), "a `time_slot` node needs `timeRangeSeconds`".to_owned()))?;
                    for (name, t) in [("start", range.start), ("end", range.end)] {
                        if !(0..=86_400).contains(&t) {
                            return Err(error(
                                format!("{at}.timeRangeSeconds.{name}"),
                                format!("{t} is not a second of the day (0..=86400)"),
                            ));
                        }
                    }
                }
                warn_unknown(&mut warnings, &format!("{at}.decisionConditions"), &node.decision_conditions);
                for (p, preferred) in node.preferred_activities.iter().enumerate() {
                    if !behavior.activities.contains_key(&preferred.activity_id) {
                        return Err(error(
                            format!("{at}.preferredActivities[{p}].activityId"),
                            format!("no activity `{}` in `meta.behavior.activities`", preferred.activity_id),
                        ));
                    }
                    if !(preferred.weight.is_finite() && preferred.weight >= 0.0) {
                        return Err(error(
                            format!("{at}.preferredActivities[{p}].weight"),
                            "must be a finite number of at least 0".to_owned(),
                        ));
                    }
                    warn_unknown(
                        &mut warnings,
                        &format!("{at}.preferredActivities[{p}].conditions"),
                        &preferred.conditions,
                    );
                }
            }
        }
        for (i, npc) in world.npcs.iter().enumerate() {
            if let Some(routine) = routine_id(npc)
                .map_err(|m| error(format!("npcs[{i}].meta.behavior.routineId"), m))?
                .filter(|r| !behavior.routines.contains_key(*r))
            {
                return Err(error(
                    format!("npcs[{i}].meta.behavior.routineId"),
                    format!("NPC `{}` names routine `{routine}`, which `meta.behavior.routines` lacks", npc.id),
                ));
            }
        }
        if let Some(scope) = world.plugin_scope().warning() {
            warnings.push(scope.to_owned());
        }
        Ok(WorldConfig { behavior, weights, simulation, warnings })
    }
}

/// An NPC's `meta.behavior.routineId`, if it has one.
pub fn routine_id(npc: &crate::Npc) -> Result<Option<&str>, String> {
    match npc.meta.get("behavior").and_then(|b| b.get("routineId")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => Ok(Some(id)),
        Some(_) => Err("must be a string".to_owned()),
    }
}

fn warn_unknown(warnings: &mut Vec<String>, at: &str, conditions: &[Condition]) {
    for (i, condition) in conditions.iter().enumerate() {
        if let Some(type_name) = condition.unknown_type() {
            warnings.push(format!("`{at}[{i}]`: unknown condition type `{type_name}` is always false"));
        }
    }
}
