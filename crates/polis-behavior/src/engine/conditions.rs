//! The condition DSL of activity requirements, routine nodes and priority
//! rules, after the original's `domain/behavior/conditions.py`.
//!
//! A condition is a JSON object with a `type`. The built-ins read the
//! NPC's state, the session's flags and relationships and the world time;
//! `custom` (with `evaluatorId`) and any type starting `plugin:` go to a
//! plugin through [`BehaviorHost::evaluate_condition`], which makes a
//! failing, timed-out, unknown or world-disabled plugin condition false.
//! An unknown type is false, as in the original, and the engine warns
//! about it once when the world loads.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::BehaviorHost;
use crate::context::Scene;
use crate::engine::rng::Rng;
use crate::engine::state::NpcState;

/// One parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `relationship_gt`: `relationships[npcIdOrRole][axis] > threshold`.
    RelationshipGt(RelationshipTest),
    /// `relationship_lt`: `relationships[npcIdOrRole][axis] < threshold`.
    RelationshipLt(RelationshipTest),
    /// `flag_equals`: the flag at dot path `key` equals `value`.
    FlagEquals {
        /// A dot path into the session's flags (`arc.stage`).
        key: String,
        /// The value it must equal (absent means `null`).
        value: Value,
    },
    /// `flag_exists`: the flag at dot path `key` exists.
    FlagExists {
        /// A dot path into the session's flags.
        key: String,
    },
    /// `mood_in`: the NPC has at least one of these mood tags.
    MoodIn {
        /// Tags such as `happy`, `tired`.
        tags: Vec<String>,
    },
    /// `energy_between`: `min <= energy <= max` (defaults 0 and 100).
    EnergyBetween {
        /// Lowest energy.
        min: f64,
        /// Highest energy.
        max: f64,
    },
    /// `random_chance`: a draw from the decision's seeded stream is below
    /// `probability` (default 0.5).
    RandomChance {
        /// Between 0 and 1.
        probability: f64,
    },
    /// `time_of_day_in`: the world time's period is one of `times`
    /// (`morning` 6–12 h, `afternoon` 12–18 h, `evening` 18–22 h, `night`).
    TimeOfDayIn {
        /// Periods.
        times: Vec<String>,
    },
    /// `custom` or `plugin:<id>:<name>`: a plugin's condition evaluator.
    Custom {
        /// `plugin:<id>:<name>`.
        evaluator_id: String,
        /// What the evaluator is called with.
        params: Map<String, Value>,
    },
    /// A type polis does not know: always false.
    Unknown {
        /// The type as written.
        type_name: String,
    },
}

/// The fields of `relationship_gt` and `relationship_lt`.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationshipTest {
    /// A relationship key (`npc:ann`), or `self` for the NPC deciding.
    pub target: String,
    /// `affinity`, `trust`, `chemistry` or `tension` (`metric` or `axis`;
    /// default `affinity`).
    pub axis: String,
    /// The threshold (default 0).
    pub threshold: f64,
}

/// The period of a time of day, by the original's boundaries.
pub fn period_of(world_seconds: i64) -> &'static str {
    match world_seconds.rem_euclid(86_400) / 3600 {
        6..=11 => "morning",
        12..=17 => "afternoon",
        18..=21 => "evening",
        _ => "night",
    }
}

fn number(object: &Map<String, Value>, key: &str, default: f64) -> Result<f64, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_f64().ok_or_else(|| format!("`{key}` must be a number")),
    }
}

fn text(object: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

fn texts(object: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| format!("`{key}` must be a list of strings")))
            .collect(),
        Some(_) => Err(format!("`{key}` must be a list of strings")),
    }
}

impl Condition {
    /// Parses one condition object; the message names the bad field.
    pub fn parse(object: &Map<String, Value>) -> Result<Condition, String> {
        let type_name = text(object, "type")?.ok_or("a condition needs a `type`")?;
        let relationship = || -> Result<RelationshipTest, String> {
            Ok(RelationshipTest {
                target: text(object, "npcIdOrRole")?.unwrap_or_default(),
                axis: match text(object, "axis")? {
                    Some(axis) => axis,
                    None => text(object, "metric")?.unwrap_or_else(|| "affinity".to_owned()),
                },
                threshold: number(object, "threshold", 0.0)?,
            })
        };
        Ok(match type_name.as_str() {
            "relationship_gt" => Condition::RelationshipGt(relationship()?),
            "relationship_lt" => Condition::RelationshipLt(relationship()?),
            "flag_equals" => Condition::FlagEquals {
                key: text(object, "key")?.unwrap_or_default(),
                value: object.get("value").cloned().unwrap_or(Value::Null),
            },
            "flag_exists" => Condition::FlagExists { key: text(object, "key")?.unwrap_or_default() },
            "mood_in" => Condition::MoodIn { tags: texts(object, "moodTags")? },
            "energy_between" => {
                Condition::EnergyBetween { min: number(object, "min", 0.0)?, max: number(object, "max", 100.0)? }
            }
            "random_chance" => Condition::RandomChance { probability: number(object, "probability", 0.5)? },
            "time_of_day_in" => Condition::TimeOfDayIn { times: texts(object, "times")? },
            "custom" => Condition::Custom {
                evaluator_id: text(object, "evaluatorId")?.ok_or("a `custom` condition needs an `evaluatorId`")?,
                params: params(object)?,
            },
            plugin if plugin.starts_with("plugin:") => {
                Condition::Custom { evaluator_id: plugin.to_owned(), params: params(object)? }
            }
            _ => Condition::Unknown { type_name },
        })
    }

    /// The unknown type this condition has, if it has one.
    pub fn unknown_type(&self) -> Option<&str> {
        match self {
            Condition::Unknown { type_name } => Some(type_name),
            _ => None,
        }
    }
}

fn params(object: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    match object.get("params") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(p)) => Ok(p.clone()),
        Some(_) => Err("`params` must be an object".to_owned()),
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = Map::deserialize(deserializer)?;
        Condition::parse(&object).map_err(<D::Error as serde::de::Error>::custom)
    }
}

/// What a condition is evaluated against.
pub struct Eval<'a> {
    /// The NPC deciding.
    pub npc_id: &'a str,
    /// Its state now.
    pub state: &'a NpcState,
    /// The world time, in seconds.
    pub world_time: i64,
    /// The host that answers plugin conditions.
    pub host: &'a BehaviorHost,
    /// The world and session plugins see.
    pub scene: &'a Scene,
    /// The decision's stream, for `random_chance` and plugin seeds.
    pub rng: &'a mut Rng,
}

impl Eval<'_> {
    /// Whether `condition` holds. Unknown types are false.
    pub fn holds(&mut self, condition: &Condition) -> bool {
        match condition {
            Condition::RelationshipGt(t) => self.relationship(t) > t.threshold,
            Condition::RelationshipLt(t) => self.relationship(t) < t.threshold,
            Condition::FlagEquals { key, value } => self.flag(key).is_some_and(|v| json_equal(&v, value)),
            Condition::FlagExists { key } => self.flag(key).is_some(),
            Condition::MoodIn { tags } => tags.iter().any(|t| self.state.mood_state.tags.contains(t)),
            Condition::EnergyBetween { min, max } => *min <= self.state.energy && self.state.energy <= *max,
            Condition::RandomChance { probability } => self.rng.next_f64() < *probability,
            Condition::TimeOfDayIn { times } => times.iter().any(|t| t == period_of(self.world_time)),
            Condition::Custom { evaluator_id, params } => {
                let seed = self.rng.next_seed();
                self.host.evaluate_condition(evaluator_id, params, Some(self.npc_id), seed, self.scene).result
            }
            Condition::Unknown { .. } => false,
        }
    }

    /// Whether every condition holds (an empty list holds), in order,
    /// stopping at the first that does not.
    pub fn all(&mut self, conditions: &[Condition]) -> bool {
        conditions.iter().all(|c| self.holds(c))
    }

    fn relationship(&self, test: &RelationshipTest) -> f64 {
        let key = relationship_key(&test.target, self.npc_id);
        self.session(|s| s.relationships.get(&key).and_then(|r| r.get(&test.axis)).and_then(Value::as_f64))
            .unwrap_or(0.0)
    }

    fn flag(&self, key: &str) -> Option<Value> {
        self.session(|s| {
            let mut parts = key.split('.');
            let mut current = s.flags.get(parts.next()?)?;
            for part in parts {
                current = current.as_object()?.get(part)?;
            }
            Some(current.clone())
        })
    }

    fn session<T>(&self, f: impl FnOnce(&crate::Session) -> Option<T>) -> Option<T> {
        let session = self.scene.session.as_ref()?;
        let guard = session.lock().ok()?;
        f(&guard)
    }
}

/// The relationship key a condition or effect names: `self` is the NPC
/// deciding (`npc:<id>`), anything else is used as written.
pub fn relationship_key(target: &str, npc_id: &str) -> String {
    if target == "self" { crate::documents::npc_key(npc_id) } else { target.to_owned() }
}

/// JSON equality with numbers compared by value, so `2` equals `2.0` as
/// it does in Python.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}
