//! Worlds and sessions as JSON documents, and the per-world plugin scope.
//!
//! Everything plugins configure lives in these documents (the seed forbids
//! new tables for plugin configuration): the world's
//! `meta.behavior.enabledPlugins`, the NPCs' `meta.behavior`, the session's
//! `flags` and `relationships`. Maps are `BTreeMap`s, so every document
//! serialises in one order.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest world or session document polis reads, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 8 << 20;

/// A world: its meta (where `behavior` lives), locations and NPCs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// The world's id.
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: String,
    /// Free-form configuration; `meta.behavior` is the behaviour engine's.
    #[serde(default)]
    pub meta: BTreeMap<String, Value>,
    /// The world's locations.
    #[serde(default)]
    pub locations: Vec<Location>,
    /// The world's NPCs.
    #[serde(default)]
    pub npcs: Vec<Npc>,
}

/// A place in a world.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// The location's id.
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: String,
    /// Free-form configuration.
    #[serde(default)]
    pub meta: BTreeMap<String, Value>,
}

/// A non-player character.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Npc {
    /// The NPC's id; its session key is `npc:<id>`.
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: String,
    /// Its role, such as `shopkeeper`.
    #[serde(default)]
    pub role: String,
    /// Free-form configuration; `meta.behavior {routineId, preferences}`.
    #[serde(default)]
    pub meta: BTreeMap<String, Value>,
}

/// A play session of one world: flags and relationships.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The session's id.
    pub id: String,
    /// The world it plays.
    pub world_id: String,
    /// Seconds of world time since the session started.
    #[serde(default)]
    pub world_time: i64,
    /// Flags; `flags.npcs["npc:<id>"].state` is an NPC's behaviour state,
    /// `flags["plugin:<id>:…"]` a plugin's own.
    #[serde(default)]
    pub flags: BTreeMap<String, Value>,
    /// Relationships by NPC key (`npc:<id>`): `{affinity, trust, chemistry, tension}`.
    #[serde(default)]
    pub relationships: BTreeMap<String, Value>,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} document is invalid at `{path}`: {message}")]
pub struct DocumentError {
    /// `world` or `session`.
    pub what: &'static str,
    /// The JSON path of the problem.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl DocumentError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        "behavior.document_invalid"
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, DocumentError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(DocumentError {
            what,
            path: String::new(),
            message: format!("{} bytes exceed the limit of {MAX_DOCUMENT_BYTES}", bytes.len()),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error_free(&mut de, what)?;
    de.end().map_err(|e| DocumentError { what, path: String::new(), message: e.to_string() })?;
    Ok(value)
}

/// Deserialises without a path-tracking dependency: serde_json's own error
/// carries line and column, which is the path a person can follow.
fn serde_path_to_error_free<'de, T: serde::de::DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
    what: &'static str,
) -> Result<T, DocumentError> {
    T::deserialize(de).map_err(|e| DocumentError {
        what,
        path: format!("line {} column {}", e.line(), e.column()),
        message: e.to_string(),
    })
}

impl World {
    /// Reads a world document, capped at [`MAX_DOCUMENT_BYTES`].
    pub fn from_json(bytes: &[u8]) -> Result<World, DocumentError> {
        parse(bytes, "world")
    }

    /// The NPC with this id.
    pub fn npc(&self, id: &str) -> Option<&Npc> {
        self.npcs.iter().find(|n| n.id == id)
    }

    /// `meta.behavior`, when it is an object.
    pub fn behavior_meta(&self) -> Option<&serde_json::Map<String, Value>> {
        self.meta.get("behavior").and_then(Value::as_object)
    }

    /// Which plugins may influence behaviour in this world.
    pub fn plugin_scope(&self) -> PluginScope {
        PluginScope::of(self.behavior_meta().and_then(|b| b.get("enabledPlugins")))
    }
}

impl Session {
    /// Reads a session document, capped at [`MAX_DOCUMENT_BYTES`].
    pub fn from_json(bytes: &[u8]) -> Result<Session, DocumentError> {
        parse(bytes, "session")
    }

    /// A new session of `world`.
    pub fn new(id: &str, world: &World) -> Session {
        Session { id: id.to_owned(), world_id: world.id.clone(), ..Session::default() }
    }

    /// Adds `deltas` (by axis: `affinity`, `trust`, `chemistry`,
    /// `tension`) to the relationship under `npc_key` (`npc:<id>`), each
    /// clamped to 0..100 from 0 when absent; returns the relationship, or
    /// why the change is refused (then nothing changed).
    pub fn add_to_relationship(&mut self, npc_key: &str, deltas: &BTreeMap<String, f64>) -> Result<&mut Value, String> {
        use crate::context::{MAX_KEY_LEN, RELATIONSHIP_AXES};
        if !npc_key.starts_with("npc:") || npc_key.len() > MAX_KEY_LEN {
            return Err(format!("`{npc_key}` is not an NPC key (`npc:<id>`)"));
        }
        if let Some(axis) = deltas.keys().find(|k| !RELATIONSHIP_AXES.contains(&k.as_str())) {
            return Err(format!("unknown relationship axis `{axis}`; the axes are {}", RELATIONSHIP_AXES.join(", ")));
        }
        if let Some((axis, _)) = deltas.iter().find(|(_, d)| !d.is_finite()) {
            return Err(format!("the delta of `{axis}` is not a finite number"));
        }
        let entry = self.relationships.entry(npc_key.to_owned()).or_insert_with(|| Value::Object(Default::default()));
        if !entry.is_object() {
            *entry = Value::Object(Default::default());
        }
        for (axis, delta) in deltas {
            let now = entry.get(axis).and_then(Value::as_f64).unwrap_or(0.0);
            entry[axis.as_str()] = serde_json::json!((now + delta).clamp(0.0, 100.0));
        }
        Ok(entry)
    }
}

/// Which plugins a world enables, from `meta.behavior.enabledPlugins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginScope {
    /// The key is absent: every plugin is enabled.
    All,
    /// The key is not a list: every plugin is enabled, and the operator is
    /// warned, as the original does.
    AllWithWarning(String),
    /// A list: only these plugin ids (`[]` enables none).
    Only(Vec<String>),
}

impl PluginScope {
    /// The scope `enabledPlugins` describes.
    pub fn of(enabled: Option<&Value>) -> PluginScope {
        match enabled {
            None | Some(Value::Null) => PluginScope::All,
            Some(Value::Array(items)) => {
                PluginScope::Only(items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            }
            Some(other) => PluginScope::AllWithWarning(format!(
                "`meta.behavior.enabledPlugins` is {}, not a list; every plugin is enabled",
                kind_of(other)
            )),
        }
    }

    /// Whether `plugin_id` is enabled.
    pub fn enables(&self, plugin_id: &str) -> bool {
        match self {
            PluginScope::All | PluginScope::AllWithWarning(_) => true,
            PluginScope::Only(ids) => ids.iter().any(|id| id == plugin_id),
        }
    }

    /// The warning to give, if any.
    pub fn warning(&self) -> Option<&str> {
        match self {
            PluginScope::AllWithWarning(w) => Some(w),
            _ => None,
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The session key of an NPC: `npc:<id>`.
pub fn npc_key(npc_id: &str) -> String {
    format!("npc:{npc_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enabled_plugins_absent_means_all_empty_means_none_and_a_non_list_warns_and_means_all() {
        assert_eq!(PluginScope::of(None), PluginScope::All);
        let none = PluginScope::of(Some(&json!([])));
        assert!(!none.enables("acme.mood"));
        let some = PluginScope::of(Some(&json!(["acme.mood"])));
        assert!(some.enables("acme.mood") && !some.enables("acme.other"));
        let odd = PluginScope::of(Some(&json!("acme.mood")));
        assert!(odd.enables("anything"));
        assert!(odd.warning().unwrap().contains("a string, not a list"), "{odd:?}");
    }

    #[test]
    fn a_world_reads_its_scope_from_meta_behavior() {
        let world =
            World::from_json(br#"{"id":"w","meta":{"behavior":{"enabledPlugins":["a"]}},"npcs":[{"id":"ann"}]}"#)
                .unwrap();
        assert_eq!(world.plugin_scope(), PluginScope::Only(vec!["a".into()]));
        assert_eq!(world.npc("ann").map(|n| n.id.as_str()), Some("ann"));
    }

    #[test]
    fn a_bad_document_names_where() {
        let error = World::from_json(br#"{"id":"w","npcs":[{"name":"no id"}]}"#).unwrap_err();
        assert!(error.message.contains("missing field `id`"), "{error}");
        assert!(error.path.starts_with("line 1"), "{error}");
        let error = Session::from_json(br#"{"id":"s","world_id":"w","flagz":{}}"#).unwrap_err();
        assert!(error.message.contains("flagz"), "{error}");
    }
}
