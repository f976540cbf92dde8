//! Simulation tiers: which NPCs are simulated, how often and in how much
//! detail, after the original's `domain/game/behavior/simulation.py`.
//!
//! A tier has a tick frequency and a detail level. Each NPC's tier is the
//! tier of the highest-priority rule that matches it (ties: the first
//! listed), or `defaultTier`. A rule matches when its `condition` holds
//! and, if it has `maxDistance`, the NPC is that close to the player
//! (`npc.meta.position` and the session's `flags.player.position`, or,
//! before the session has one, the world's `meta.player.position`, all
//! `{x, y}`). At most `maxNpcsPerTick` NPCs are simulated in a tick: those
//! due longest first, then in world order, so a capped tick postpones
//! NPCs rather than starving the ones listed last as the original's
//! `break` did.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::engine::conditions::Condition;

/// How much of the engine a tier runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetailLevel {
    /// Requirements, plugin conditions, scoring, the seeded weighted draw,
    /// and every effect including plugin effects.
    Full,
    /// Requirements and scoring, but the best-scoring activity is taken
    /// (no draw) and plugin effects are not applied.
    Simplified,
    /// The routine only: the active node's first offer that needs no
    /// condition (neither the offer nor the activity has any), whose role
    /// and energy requirements the NPC meets, and that is not cooling
    /// down; only its energy per hour applies.
    ScheduleOnly,
}

impl DetailLevel {
    /// The name as written in a world.
    pub fn as_str(self) -> &'static str {
        match self {
            DetailLevel::Full => "full",
            DetailLevel::Simplified => "simplified",
            DetailLevel::ScheduleOnly => "schedule_only",
        }
    }
}

/// One tier.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tier {
    /// Its id.
    pub id: String,
    /// World seconds between two simulations of an NPC in this tier.
    #[serde(default = "one_second")]
    pub tick_frequency_seconds: i64,
    /// How much is simulated.
    pub detail_level: DetailLevel,
}

fn one_second() -> i64 {
    1
}

/// One priority rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriorityRule {
    /// What must hold.
    #[serde(default)]
    pub condition: Option<Condition>,
    /// How close to the player the NPC must be.
    #[serde(default)]
    pub max_distance: Option<f64>,
    /// The tier it assigns.
    pub tier: String,
    /// Higher wins.
    #[serde(default)]
    pub priority: f64,
}

/// `simulationConfig`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulationConfig {
    /// The config's version (1).
    #[serde(default = "version")]
    pub version: u32,
    /// The tiers.
    pub tiers: Vec<Tier>,
    /// The rules.
    #[serde(default)]
    pub priority_rules: Vec<PriorityRule>,
    /// The tier of an NPC no rule matches.
    pub default_tier: String,
    /// Most NPCs simulated per tick: 50 when absent (the original's
    /// default), no limit when `null`.
    #[serde(default)]
    pub max_npcs_per_tick: Option<usize>,
}

fn version() -> u32 {
    1
}

/// The original's default: `high_priority` (1 s, full) for NPCs while the
/// flag `current_scene_npcs` exists, else `background` (3600 s,
/// schedule only); at most 50 NPCs a tick.
pub fn default_config() -> Map<String, Value> {
    let value = json!({
        "version": 1,
        "tiers": [
            {"id": "high_priority", "tickFrequencySeconds": 1, "detailLevel": "full"},
            {"id": "medium_priority", "tickFrequencySeconds": 60, "detailLevel": "simplified"},
            {"id": "background", "tickFrequencySeconds": 3600, "detailLevel": "schedule_only"}
        ],
        "priorityRules": [
            {"condition": {"type": "flag_exists", "key": "current_scene_npcs"}, "tier": "high_priority", "priority": 100}
        ],
        "defaultTier": "background",
        "maxNpcsPerTick": 50
    });
    value.as_object().cloned().unwrap_or_default()
}

impl SimulationConfig {
    /// Reads `merged` (providers and the world's own, from the host) over
    /// [`default_config`], key by key. Errors carry the path and message.
    pub fn read(merged: &Map<String, Value>) -> Result<SimulationConfig, (String, String)> {
        let mut config = default_config();
        config.extend(merged.iter().map(|(k, v)| (k.clone(), v.clone())));
        let config: SimulationConfig = serde_path_to_error::deserialize(Value::Object(config))
            .map_err(|e| (format!("meta.behavior.simulationConfig.{}", e.path()), e.into_inner().to_string()))?;
        let at = "meta.behavior.simulationConfig";
        if config.tiers.is_empty() {
            return Err((format!("{at}.tiers"), "at least one tier is needed".into()));
        }
        let known = |id: &str| config.tiers.iter().any(|t| t.id == id);
        if !known(&config.default_tier) {
            return Err((format!("{at}.defaultTier"), format!("no tier `{}` in `tiers`", config.default_tier)));
        }
        for (i, rule) in config.priority_rules.iter().enumerate() {
            if !known(&rule.tier) {
                return Err((format!("{at}.priorityRules[{i}].tier"), format!("no tier `{}` in `tiers`", rule.tier)));
            }
            if rule.condition.is_none() && rule.max_distance.is_none() {
                return Err((format!("{at}.priorityRules[{i}]"), "a rule needs `condition` or `maxDistance`".into()));
            }
        }
        for (i, tier) in config.tiers.iter().enumerate() {
            if tier.tick_frequency_seconds < 1 {
                return Err((format!("{at}.tiers[{i}].tickFrequencySeconds"), "must be at least 1".into()));
            }
        }
        if config.max_npcs_per_tick == Some(0) {
            return Err((format!("{at}.maxNpcsPerTick"), "must be at least 1 (`null` for no limit)".into()));
        }
        Ok(config)
    }

    /// The tier with this id (ids were checked when reading).
    pub fn tier(&self, id: &str) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.id == id)
    }
}

/// A point in the world, `{x, y}`.
pub fn position(value: Option<&Value>) -> Option<(f64, f64)> {
    let value = value?;
    Some((value.get("x")?.as_f64()?, value.get("y")?.as_f64()?))
}

/// The distance between two points.
pub fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).hypot(a.1 - b.1)
}
