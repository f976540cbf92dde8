//! The extension registry: every condition, effect, simulation config
//! provider, event subscription and admin route a plugin registered, with
//! its provenance.
//!
//! Plugins never touch it directly: they register through
//! [`crate::BehaviorExtensionApi`], which checks the permission and builds
//! the namespaced id. Ids are unique (a duplicate is rejected naming the
//! plugin that holds it), and the registry is locked once every plugin has
//! loaded, so nothing registers at run time.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::documents::PluginScope;

/// Most extensions of each kind one plugin may register.
pub const MAX_PER_PLUGIN: usize = 256;

/// Longest extension name.
pub const MAX_NAME_LEN: usize = 64;

/// A registered condition evaluator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionEntry {
    /// `plugin:<plugin id>:<name>`.
    pub id: String,
    /// The plugin that registered it.
    pub plugin_id: String,
    /// The name the plugin gave.
    pub name: String,
    /// What it checks.
    pub description: Option<String>,
}

/// A registered effect handler.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectEntry {
    /// `effect:plugin:<plugin id>:<name>`.
    pub id: String,
    /// The plugin that registered it.
    pub plugin_id: String,
    /// The name the plugin gave.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Params a call's own params are merged over.
    pub default_params: Map<String, Value>,
}

/// A registered simulation config provider.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulationConfigEntry {
    /// `plugin:<plugin id>:<name>`.
    pub id: String,
    /// The plugin that registered it.
    pub plugin_id: String,
    /// The name the plugin gave.
    pub name: String,
    /// Providers merge in ascending priority, so a higher one overrides a
    /// lower one; ties break by id in byte order. By default 100.
    pub priority: i64,
    /// The config it contributes.
    pub config: Map<String, Value>,
}

/// A route a plugin declared, served under `/api/plugins/{plugin_id}` and,
/// world-scoped, `/api/worlds/{world_id}/plugins/{plugin_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginRoute {
    /// The plugin.
    pub plugin_id: String,
    /// The HTTP method.
    pub method: String,
    /// The path under the plugin's prefix; a segment `{name}` matches any
    /// one segment and is passed to the plugin as a param.
    pub path: String,
    /// Whether it was declared through `admin:routes` and so needs the
    /// admin role.
    pub admin: bool,
}

impl PluginRoute {
    /// The params of `path` if it matches this route's pattern.
    pub fn matches(&self, method: &str, path: &str) -> Option<BTreeMap<String, String>> {
        if self.method != method {
            return None;
        }
        let pattern: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let given: Vec<&str> = path.trim_matches('/').split('/').collect();
        if pattern.len() != given.len() {
            return None;
        }
        let mut params = BTreeMap::new();
        for (want, got) in pattern.iter().zip(&given) {
            match want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(name) if !got.is_empty() => {
                    params.insert(name.to_owned(), (*got).to_owned());
                }
                _ if want == got => {}
                _ => return None,
            }
        }
        Some(params)
    }
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// Registration happens only while plugins load.
    #[error("the extension registry is locked; `{id}` can only be registered while plugin `{plugin_id}` loads")]
    Locked {
        /// The id asked for.
        id: String,
        /// The plugin.
        plugin_id: String,
    },
    /// The id is taken.
    #[error("`{id}` is already registered by plugin `{holder}`")]
    Duplicate {
        /// The id.
        id: String,
        /// Who registered it first.
        holder: String,
    },
    /// The name is not a short identifier.
    #[error("extension name `{name}` is invalid: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// Why.
        reason: String,
    },
    /// The plugin registered too many of one kind.
    #[error("plugin `{plugin_id}` registered more than {MAX_PER_PLUGIN} {kind}")]
    TooMany {
        /// The plugin.
        plugin_id: String,
        /// `conditions`, `effects`, …
        kind: &'static str,
    },
}

impl RegistrationError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RegistrationError::Locked { .. } => "behavior.registry_locked",
            RegistrationError::Duplicate { .. } => "behavior.duplicate_extension",
            RegistrationError::BadName { .. } => "behavior.bad_extension_name",
            RegistrationError::TooMany { .. } => "behavior.too_many_extensions",
        }
    }
}

/// Every extension, by id.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExtensionRegistry {
    conditions: BTreeMap<String, ConditionEntry>,
    effects: BTreeMap<String, EffectEntry>,
    simulation_configs: BTreeMap<String, SimulationConfigEntry>,
    subscriptions: BTreeMap<String, Vec<String>>,
    routes: Vec<PluginRoute>,
    locked: bool,
}

/// Checks an extension name: 1 to 64 of `[A-Za-z0-9_.-]`.
pub fn check_name(name: &str) -> Result<(), RegistrationError> {
    let bad = |reason: &str| Err(RegistrationError::BadName { name: name.to_owned(), reason: reason.to_owned() });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad(&format!("it is longer than {MAX_NAME_LEN} bytes"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return bad("only letters, digits, `_`, `-` and `.` are allowed");
    }
    Ok(())
}

impl ExtensionRegistry {
    /// An empty, unlocked registry.
    pub fn new() -> ExtensionRegistry {
        ExtensionRegistry::default()
    }

    /// Stops all further registration.
    pub fn lock(&mut self) {
        self.locked = true;
    }

    /// Whether [`ExtensionRegistry::lock`] was called.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    fn admit<T>(
        &self,
        map: &BTreeMap<String, T>,
        id: &str,
        plugin_id: &str,
        holder: impl Fn(&T) -> &str,
        kind: &'static str,
    ) -> Result<(), RegistrationError> {
        if self.locked {
            return Err(RegistrationError::Locked { id: id.to_owned(), plugin_id: plugin_id.to_owned() });
        }
        if let Some(existing) = map.get(id) {
            return Err(RegistrationError::Duplicate { id: id.to_owned(), holder: holder(existing).to_owned() });
        }
        if map.values().filter(|e| holder(e) == plugin_id).count() >= MAX_PER_PLUGIN {
            return Err(RegistrationError::TooMany { plugin_id: plugin_id.to_owned(), kind });
        }
        Ok(())
    }

    /// Adds a condition evaluator.
    pub fn add_condition(&mut self, entry: ConditionEntry) -> Result<String, RegistrationError> {
        self.admit(&self.conditions, &entry.id, &entry.plugin_id, |e| &e.plugin_id, "conditions")?;
        let id = entry.id.clone();
        self.conditions.insert(id.clone(), entry);
        Ok(id)
    }

    /// Adds an effect handler.
    pub fn add_effect(&mut self, entry: EffectEntry) -> Result<String, RegistrationError> {
        self.admit(&self.effects, &entry.id, &entry.plugin_id, |e| &e.plugin_id, "effects")?;
        let id = entry.id.clone();
        self.effects.insert(id.clone(), entry);
        Ok(id)
    }

    /// Adds a simulation config provider.
    pub fn add_simulation_config(&mut self, entry: SimulationConfigEntry) -> Result<String, RegistrationError> {
        self.admit(&self.simulation_configs, &entry.id, &entry.plugin_id, |e| &e.plugin_id, "simulation configs")?;
        let id = entry.id.clone();
        self.simulation_configs.insert(id.clone(), entry);
        Ok(id)
    }

    /// Subscribes a plugin to events matching `pattern`.
    pub fn add_subscription(&mut self, plugin_id: &str, pattern: &str) -> Result<(), RegistrationError> {
        if self.locked {
            return Err(RegistrationError::Locked { id: pattern.to_owned(), plugin_id: plugin_id.to_owned() });
        }
        let patterns = self.subscriptions.entry(plugin_id.to_owned()).or_default();
        if patterns.len() >= MAX_PER_PLUGIN {
            return Err(RegistrationError::TooMany { plugin_id: plugin_id.to_owned(), kind: "subscriptions" });
        }
        if !patterns.iter().any(|p| p == pattern) {
            patterns.push(pattern.to_owned());
        }
        Ok(())
    }

    /// Declares a route.
    pub fn add_route(&mut self, route: PluginRoute) -> Result<(), RegistrationError> {
        let id = format!("{} {}", route.method, route.path);
        if self.locked {
            return Err(RegistrationError::Locked { id, plugin_id: route.plugin_id });
        }
        if let Some(existing) = self
            .routes
            .iter()
            .find(|r| r.plugin_id == route.plugin_id && r.method == route.method && r.path == route.path)
        {
            return Err(RegistrationError::Duplicate { id, holder: existing.plugin_id.clone() });
        }
        self.routes.push(route);
        Ok(())
    }

    /// The condition with this id.
    pub fn condition(&self, id: &str) -> Option<&ConditionEntry> {
        self.conditions.get(id)
    }

    /// The effect with this id.
    pub fn effect(&self, id: &str) -> Option<&EffectEntry> {
        self.effects.get(id)
    }

    /// Every condition, by id.
    pub fn conditions(&self) -> impl Iterator<Item = &ConditionEntry> {
        self.conditions.values()
    }

    /// Every effect, by id.
    pub fn effects(&self) -> impl Iterator<Item = &EffectEntry> {
        self.effects.values()
    }

    /// Every simulation config provider, by id.
    pub fn simulation_configs(&self) -> impl Iterator<Item = &SimulationConfigEntry> {
        self.simulation_configs.values()
    }

    /// Every route, in declaration order.
    pub fn routes(&self) -> &[PluginRoute] {
        &self.routes
    }

    /// The first route of `plugin_id` that `method path` matches, in
    /// declaration order, with the path's params.
    pub fn route(&self, plugin_id: &str, method: &str, path: &str) -> Option<(&PluginRoute, BTreeMap<String, String>)> {
        self.routes.iter().filter(|r| r.plugin_id == plugin_id).find_map(|r| r.matches(method, path).map(|p| (r, p)))
    }

    /// Whether `plugin_id` subscribed to any event.
    pub fn subscribes(&self, plugin_id: &str) -> bool {
        self.subscriptions.get(plugin_id).is_some_and(|patterns| !patterns.is_empty())
    }

    /// Whether `plugin_id` subscribed to events of type `event_type`: a
    /// pattern is an exact type, or a prefix ending in `*`.
    pub fn subscribed(&self, plugin_id: &str, event_type: &str) -> bool {
        self.subscriptions.get(plugin_id).is_some_and(|patterns| {
            patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => p == event_type,
            })
        })
    }

    /// The effective simulation config of a world: the providers of
    /// plugins the world enables, merged key by key in ascending priority
    /// (ties by id), then the world's own `simulationConfig` over them, so
    /// a plugin suggests defaults and never overrides what the world says.
    pub fn simulation_config(
        &self,
        world_config: Option<&Map<String, Value>>,
        scope: &PluginScope,
    ) -> Map<String, Value> {
        let mut providers: Vec<&SimulationConfigEntry> =
            self.simulation_configs.values().filter(|p| scope.enables(&p.plugin_id)).collect();
        providers.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        let mut merged = Map::new();
        for provider in providers {
            merged.extend(provider.config.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(own) = world_config {
            merged.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        merged
    }
}

/// An effect's params: its defaults with the call's own merged over them.
pub fn merged_params(defaults: &Map<String, Value>, call: &Map<String, Value>) -> Map<String, Value> {
    let mut merged = defaults.clone();
    merged.extend(call.iter().map(|(k, v)| (k.clone(), v.clone())));
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn condition(plugin: &str, name: &str) -> ConditionEntry {
        ConditionEntry {
            id: format!("plugin:{plugin}:{name}"),
            plugin_id: plugin.into(),
            name: name.into(),
            description: None,
        }
    }

    fn provider(plugin: &str, name: &str, priority: i64, config: Value) -> SimulationConfigEntry {
        SimulationConfigEntry {
            id: format!("plugin:{plugin}:{name}"),
            plugin_id: plugin.into(),
            name: name.into(),
            priority,
            config: config.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn a_duplicate_id_is_rejected_naming_its_holder() {
        let mut registry = ExtensionRegistry::new();
        registry.add_condition(condition("a", "x")).unwrap();
        let error = registry.add_condition(condition("a", "x")).unwrap_err();
        assert_eq!(error, RegistrationError::Duplicate { id: "plugin:a:x".into(), holder: "a".into() });
    }

    #[test]
    fn nothing_registers_after_the_lock() {
        let mut registry = ExtensionRegistry::new();
        registry.lock();
        assert!(matches!(registry.add_condition(condition("a", "x")), Err(RegistrationError::Locked { .. })));
        assert!(matches!(registry.add_subscription("a", "session:*"), Err(RegistrationError::Locked { .. })));
        assert_eq!(registry.conditions().count(), 0);
    }

    #[test]
    fn names_are_short_identifiers() {
        assert!(check_name("has_disguise").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a:b").is_err(), "a name cannot forge another namespace");
        assert!(check_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn providers_merge_in_ascending_priority_and_the_world_wins() {
        let mut registry = ExtensionRegistry::new();
        registry
            .add_simulation_config(provider("b", "fast", 50, json!({"maxNpcsPerTick": 5, "tier": "fast"})))
            .unwrap();
        registry.add_simulation_config(provider("a", "base", 10, json!({"maxNpcsPerTick": 1, "x": 1}))).unwrap();
        registry.add_simulation_config(provider("c", "tie", 50, json!({"tier": "tie"}))).unwrap();
        let merged = registry.simulation_config(None, &PluginScope::All);
        assert_eq!(Value::Object(merged), json!({"maxNpcsPerTick": 5, "tier": "tie", "x": 1}));
        let world = json!({"maxNpcsPerTick": 99}).as_object().cloned().unwrap();
        let merged = registry.simulation_config(Some(&world), &PluginScope::Only(vec!["a".into()]));
        assert_eq!(Value::Object(merged), json!({"maxNpcsPerTick": 99, "x": 1}));
    }

    #[test]
    fn call_params_override_default_params() {
        let defaults = json!({"amount": 1, "target": "mood"}).as_object().cloned().unwrap();
        let call = json!({"amount": 5}).as_object().cloned().unwrap();
        assert_eq!(Value::Object(merged_params(&defaults, &call)), json!({"amount": 5, "target": "mood"}));
    }

    #[test]
    fn subscriptions_match_exact_types_and_prefixes() {
        let mut registry = ExtensionRegistry::new();
        registry.add_subscription("a", "session:*").unwrap();
        registry.add_subscription("a", "npc:spawned").unwrap();
        assert!(registry.subscribed("a", "session:updated"));
        assert!(registry.subscribed("a", "npc:spawned"));
        assert!(!registry.subscribed("a", "npc:activity_started"));
        assert!(!registry.subscribed("b", "session:updated"));
    }
}
