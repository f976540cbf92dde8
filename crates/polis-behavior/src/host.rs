//! The behaviour host: loads plugins, locks their extensions, and calls
//! them with isolation, fallbacks and world scoping.
//!
//! - **Loading.** Plugins load in plugin-id order. Each gets its grants
//!   (unknown names warned about, `admin:routes` withheld without the
//!   setting) and a loading context to register through. A plugin whose
//!   `register` fails or panics is disabled with its reason and whatever it
//!   registered is withdrawn; a second plugin with the same id is refused.
//!   Then the registry locks.
//! - **Isolation.** Every call goes through the plugin's circuit breaker
//!   (polis's runtime `Breaker`) and contains panics. A failing, panicking
//!   or timed-out condition counts as false; a failing effect is skipped,
//!   its session writes undone, and other effects still apply; a failing
//!   event handler is logged. Every failure is counted in the plugin's
//!   [`PluginHealth`] with the original's thresholds.
//! - **Events.** A built-in, wasm or process handler is called in line with
//!   a deadline (the manifest's `limits.timeout_ms`, else
//!   [`HostConfig::handler_deadline_ms`]): the sandboxed tiers stop a call
//!   at it, and a handler that returns after it counts as failed. A remote
//!   plugin's handlers are webhooks ([`crate::webhooks`]): queued and sent
//!   off the simulation's path, with bounded retries and backoff.
//! - **Routes.** A `kind: route` plugin's declared routes are answered by
//!   [`BehaviorHost::call_route`] through the same breaker, counted as
//!   requests; whether the caller may reach a route (the admin role, the
//!   world's `enabledPlugins`) is the server's to check with
//!   [`BehaviorHost::route`].
//! - **World scoping.** An extension of a plugin the world does not enable
//!   (`meta.behavior.enabledPlugins`) is skipped: a condition is false, an
//!   effect is not applied, an event is not delivered.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polis_core::manifest::TierKind;
use polis_core::policy::PolicyError;
use polis_runtime::{Breaker, BreakerConfig, BreakerState};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::context::{CORE_EVENTS, PluginContext, PluginInfo, Scene, Services};
use crate::contract::PluginKind;
use crate::documents::PluginScope;
use crate::extensions::{ExtensionRegistry, PluginRoute, merged_params};
use crate::health::PluginHealth;
use crate::permissions::{self as perm, GrantSettings, PluginGrants};
use crate::plugin::{BehaviorPlugin, ConditionCall, EffectCall, Event, RouteReply, RouteRequest};
use crate::webhooks::{WebhookConfig, Webhooks};

/// How the host loads and guards plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostConfig {
    /// What the server allows beyond manifests.
    pub grants: GrantSettings,
    /// Each plugin's circuit breaker. By default the runtime's (5 failures
    /// in 60 s open it for 30 s).
    pub breaker: BreakerConfig,
    /// How remote plugins' event webhooks are sent.
    pub webhooks: WebhookConfig,
    /// The deadline of an in-line event handler whose manifest sets no
    /// `limits.timeout_ms`, in milliseconds. By default 500, the seed's
    /// remote timeout.
    pub handler_deadline_ms: u64,
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            grants: GrantSettings::default(),
            breaker: BreakerConfig::default(),
            webhooks: WebhookConfig::default(),
            handler_deadline_ms: 500,
        }
    }
}

struct Loaded {
    plugin: Arc<dyn BehaviorPlugin>,
    info: Arc<PluginInfo>,
    breaker: Arc<Mutex<Breaker>>,
    disabled: Option<String>,
    /// An in-line event handler's deadline.
    deadline: Duration,
    /// A remote plugin's webhook sender, started when it subscribed to
    /// something.
    webhooks: Option<Webhooks>,
}

/// The result of evaluating a condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionOutcome {
    /// Whether the condition holds.
    pub result: bool,
    /// When `result` is false by fallback rather than by the plugin: why.
    pub fallback: Option<String>,
}

/// The result of applying an effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectOutcome {
    /// Whether the effect applied.
    pub applied: bool,
    /// When it did not: why.
    pub skipped: Option<String>,
}

/// How a route request went.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteOutcome {
    /// The plugin answered.
    Answered(RouteReply),
    /// It failed, was refused by its breaker, or answered badly: why.
    Failed(String),
}

/// One plugin as `polis behavior plugins` and `/api/plugins/health` show it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    /// The plugin id.
    pub plugin_id: String,
    /// Its tier.
    pub tier: TierKind,
    /// Its manifest's kind.
    pub kind: PluginKind,
    /// What it was granted, in byte order.
    pub permissions: Vec<String>,
    /// What it asked for that polis does not know.
    pub unknown_permissions: Vec<String>,
    /// Warnings about its grants.
    pub warnings: Vec<String>,
    /// Why it is disabled, if it is.
    pub disabled: Option<String>,
    /// Condition ids it registered.
    pub conditions: Vec<String>,
    /// Effect ids it registered.
    pub effects: Vec<String>,
    /// Routes it declared, as `METHOD /path` (`(admin)` when they need the
    /// admin role).
    pub routes: Vec<String>,
    /// Whether it is healthy by the original's thresholds.
    pub healthy: bool,
    /// The threshold it is over, when unhealthy.
    pub unhealthy_because: Option<&'static str>,
    /// Its circuit breaker now.
    pub breaker: BreakerState,
    /// Its counters and recent errors.
    pub health: PluginHealth,
}

/// Hosts behaviour plugins of every tier.
pub struct BehaviorHost {
    plugins: BTreeMap<String, Loaded>,
    registry: ExtensionRegistry,
    services: Arc<Services>,
    issues: Vec<String>,
}

impl std::fmt::Debug for BehaviorHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BehaviorHost").field("plugins", &self.plugins.keys().collect::<Vec<_>>()).finish()
    }
}

impl BehaviorHost {
    /// Loads `plugins`, lets each register, and locks the registry.
    pub fn load(plugins: Vec<Arc<dyn BehaviorPlugin>>, config: HostConfig) -> BehaviorHost {
        let services = Services::new();
        let registry = Arc::new(Mutex::new(ExtensionRegistry::new()));
        let mut loaded: BTreeMap<String, Loaded> = BTreeMap::new();
        let mut issues = Vec::new();
        let mut plugins = plugins;
        plugins.sort_by(|a, b| a.manifest().plugin_id.cmp(&b.manifest().plugin_id));
        for plugin in plugins {
            let manifest = plugin.manifest();
            let plugin_id = manifest.plugin_id.clone();
            if loaded.contains_key(&plugin_id) {
                let issue = format!("plugin `{plugin_id}` is loaded twice; the second copy is refused");
                services.log("polis", "warn", &issue);
                issues.push(issue);
                continue;
            }
            let grants = PluginGrants::resolve(&plugin_id, &manifest.permissions, config.grants);
            for warning in grants.warnings() {
                services.log("polis", "warn", warning);
                issues.push(warning.clone());
            }
            let info = Arc::new(PluginInfo::new(&plugin_id, grants).with_kind(PluginKind::of(manifest)));
            let before = registry.lock().map(|r| r.clone()).unwrap_or_default();
            let ctx = PluginContext::loading(
                Arc::clone(&info),
                Scene::default(),
                Arc::clone(&services),
                Arc::clone(&registry),
            );
            let registered = match catch_unwind(AssertUnwindSafe(|| plugin.register(&ctx))) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(panic) => Err(format!("panicked: {}", polis_runtime::panic_message(&panic))),
            };
            let disabled = registered.err().map(|reason| {
                // Withdraw whatever the plugin registered before it failed.
                if let Ok(mut r) = registry.lock() {
                    *r = before;
                }
                let message = format!("plugin `{plugin_id}` failed to load and is disabled: {reason}");
                services.log("polis", "error", &message);
                info.record(|h| h.error("load", "register", reason.clone()));
                issues.push(message);
                reason
            });
            let breaker = Arc::new(Mutex::new(Breaker::new(config.breaker)));
            let deadline = Duration::from_millis(
                manifest.limits.as_ref().and_then(|l| l.timeout_ms).unwrap_or(config.handler_deadline_ms),
            );
            let subscribes = registry.lock().is_ok_and(|r| r.subscribes(&plugin_id));
            let webhooks = (disabled.is_none() && subscribes && manifest.tier() == TierKind::Remote)
                .then(|| {
                    Webhooks::start(Arc::clone(&info), Arc::clone(&breaker), Arc::clone(&services), config.webhooks)
                        .map_err(|error| {
                            let message = format!("plugin `{plugin_id}`: its webhook sender cannot start: {error}");
                            services.log("polis", "error", &message);
                            issues.push(message);
                        })
                        .ok()
                })
                .flatten();
            loaded.insert(plugin_id, Loaded { plugin, info, breaker, disabled, deadline, webhooks });
        }
        let mut registry = registry.lock().map(|r| r.clone()).unwrap_or_default();
        registry.lock();
        BehaviorHost { plugins: loaded, registry, services, issues }
    }

    /// The locked registry.
    pub fn registry(&self) -> &ExtensionRegistry {
        &self.registry
    }

    /// The log, generation queue and emitted events.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Warnings and failures from loading, in order.
    pub fn issues(&self) -> &[String] {
        &self.issues
    }

    /// A context for `plugin_id` on `scene`, for built-in callers (a route
    /// handler) that act for a plugin.
    pub fn context(&self, plugin_id: &str, scene: Scene) -> Option<PluginContext> {
        let loaded = self.plugins.get(plugin_id)?;
        Some(PluginContext::new(Arc::clone(&loaded.info), scene, Arc::clone(&self.services)))
    }

    fn scope(scene: &Scene) -> PluginScope {
        scene.world.as_ref().map_or(PluginScope::All, |w| w.plugin_scope())
    }

    /// Calls `f` on a plugin behind its breaker, containing panics.
    fn guarded<T>(
        &self,
        loaded: &Loaded,
        f: impl FnOnce(&dyn BehaviorPlugin) -> Result<T, PolicyError>,
    ) -> Result<T, String> {
        if let Some(reason) = &loaded.disabled {
            return Err(format!("plugin is disabled: {reason}"));
        }
        let started = Instant::now();
        if let Ok(mut breaker) = loaded.breaker.lock()
            && let Err(retry) = breaker.admit(started)
        {
            return Err(format!("circuit breaker open; next trial in {} ms", retry.as_millis()));
        }
        let result = match catch_unwind(AssertUnwindSafe(|| f(loaded.plugin.as_ref()))) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.to_string()),
            Err(panic) => Err(format!("panicked: {}", polis_runtime::panic_message(&panic))),
        };
        if let Ok(mut breaker) = loaded.breaker.lock() {
            breaker.record(result.is_ok(), Instant::now());
        }
        result
    }

    /// Evaluates custom condition `condition_id` (`plugin:<id>:<name>`)
    /// for `npc_id` on `scene`. An unknown id, a plugin the world does not
    /// enable, and any failure of the plugin make it false, with the reason.
    pub fn evaluate_condition(
        &self,
        condition_id: &str,
        params: &Map<String, Value>,
        npc_id: Option<&str>,
        seed: u64,
        scene: &Scene,
    ) -> ConditionOutcome {
        let fallback = |why: String| ConditionOutcome { result: false, fallback: Some(why) };
        let Some(entry) = self.registry.condition(condition_id) else {
            return fallback(format!("no condition `{condition_id}` is registered"));
        };
        if !Self::scope(scene).enables(&entry.plugin_id) {
            return fallback(format!("plugin `{}` is not enabled in this world", entry.plugin_id));
        }
        let Some(loaded) = self.plugins.get(&entry.plugin_id) else {
            return fallback(format!("plugin `{}` is not loaded", entry.plugin_id));
        };
        let call = ConditionCall {
            condition_id: entry.id.clone(),
            name: entry.name.clone(),
            params: params.clone(),
            npc_id: npc_id.map(str::to_owned),
            seed,
        };
        let ctx = PluginContext::new(Arc::clone(&loaded.info), scene.clone(), Arc::clone(&self.services));
        let result = self.guarded(loaded, |p| p.evaluate_condition(&call, &ctx));
        loaded.info.record(|h| h.condition(result.is_ok()));
        match result {
            Ok(result) => ConditionOutcome { result, fallback: None },
            Err(error) => {
                self.failed(loaded, "condition", condition_id, &error);
                fallback(format!("plugin `{}` failed, so the condition is false: {error}", entry.plugin_id))
            }
        }
    }

    /// Applies custom effect `effect_id` (`effect:plugin:<id>:<name>`) with
    /// `params` merged over its defaults. A failure undoes the effect's
    /// session writes and skips it.
    pub fn apply_effect(
        &self,
        effect_id: &str,
        params: &Map<String, Value>,
        npc_id: Option<&str>,
        seed: u64,
        scene: &Scene,
    ) -> EffectOutcome {
        let skipped = |why: String| EffectOutcome { applied: false, skipped: Some(why) };
        let Some(entry) = self.registry.effect(effect_id) else {
            return skipped(format!("no effect `{effect_id}` is registered"));
        };
        if !Self::scope(scene).enables(&entry.plugin_id) {
            return skipped(format!("plugin `{}` is not enabled in this world", entry.plugin_id));
        }
        let Some(loaded) = self.plugins.get(&entry.plugin_id) else {
            return skipped(format!("plugin `{}` is not loaded", entry.plugin_id));
        };
        let call = EffectCall {
            effect_id: entry.id.clone(),
            name: entry.name.clone(),
            params: merged_params(&entry.default_params, params),
            npc_id: npc_id.map(str::to_owned),
            seed,
        };
        let snapshot = scene.session.as_ref().and_then(|s| s.lock().ok().map(|s| s.clone()));
        let ctx = PluginContext::new(Arc::clone(&loaded.info), scene.clone(), Arc::clone(&self.services));
        let result = self.guarded(loaded, |p| p.apply_effect(&call, &ctx));
        loaded.info.record(|h| h.effect(result.is_ok()));
        match result {
            Ok(()) => EffectOutcome { applied: true, skipped: None },
            Err(error) => {
                if let (Some(session), Some(snapshot)) = (&scene.session, snapshot)
                    && let Ok(mut session) = session.lock()
                {
                    *session = snapshot;
                }
                self.failed(loaded, "effect", effect_id, &error);
                skipped(format!("plugin `{}` failed, so the effect is skipped: {error}", entry.plugin_id))
            }
        }
    }

    /// Delivers `event` to every enabled plugin holding `event:subscribe`
    /// that subscribed to its type, in plugin-id order: in line, with the
    /// plugin's deadline, or, for a remote plugin, queued as a webhook. A
    /// failing or late handler is logged and counted; the others still run.
    /// Returns the plugins that handled it or had it queued.
    pub fn deliver(&self, event: &Event, scene: &Scene) -> Vec<String> {
        let scope = Self::scope(scene);
        let mut handled = Vec::new();
        for (plugin_id, loaded) in &self.plugins {
            if !loaded.info.grants.allows(perm::EVENT_SUBSCRIBE)
                || !self.registry.subscribed(plugin_id, &event.event_type)
                || !scope.enables(plugin_id)
            {
                continue;
            }
            let ctx = PluginContext::new(Arc::clone(&loaded.info), scene.clone(), Arc::clone(&self.services));
            if let Some(webhooks) = &loaded.webhooks
                && let Some(send) = loaded.plugin.webhook(event, &ctx)
            {
                webhooks.send(&event.event_type, send);
                handled.push(plugin_id.clone());
                continue;
            }
            let started = Instant::now();
            let result = self.guarded(loaded, |p| p.on_event(event, &ctx));
            let took = started.elapsed();
            let result = result.and_then(|()| {
                if took > loaded.deadline {
                    Err(format!(
                        "it returned after {} ms, past its {} ms deadline",
                        took.as_millis(),
                        loaded.deadline.as_millis()
                    ))
                } else {
                    Ok(())
                }
            });
            let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            loaded.info.record(|h| h.handler(result.is_ok(), micros));
            match result {
                Ok(()) => handled.push(plugin_id.clone()),
                Err(error) => self.failed(loaded, "event_handler", &event.event_type, &error),
            }
        }
        handled
    }

    /// Waits up to `timeout` for the webhooks queued so far to be sent (or
    /// to fail); returns how many are still waiting. A command that exits
    /// after a run calls it so that its deliveries are not cut short.
    pub fn flush_webhooks(&self, timeout: Duration) -> usize {
        let until = Instant::now() + timeout;
        self.plugins
            .values()
            .filter_map(|l| l.webhooks.as_ref())
            .map(|w| w.flush(until.saturating_duration_since(Instant::now())))
            .sum()
    }

    /// The route of `plugin_id` that `method path` matches, with its path
    /// params; `None` when the plugin is not loaded, is disabled, or
    /// declared no such route.
    pub fn route(&self, plugin_id: &str, method: &str, path: &str) -> Option<(PluginRoute, BTreeMap<String, String>)> {
        let loaded = self.plugins.get(plugin_id)?;
        if loaded.disabled.is_some() {
            return None;
        }
        self.registry.route(plugin_id, method, path).map(|(r, p)| (r.clone(), p))
    }

    /// Answers `request` with `plugin_id`'s route handler on `scene`,
    /// through its breaker, counted as a request. A failure or a status
    /// outside 200 to 599 is an error naming the plugin.
    pub fn call_route(&self, plugin_id: &str, request: &RouteRequest, scene: &Scene) -> RouteOutcome {
        let Some(loaded) = self.plugins.get(plugin_id) else {
            return RouteOutcome::Failed(format!("plugin `{plugin_id}` is not loaded"));
        };
        let ctx = PluginContext::new(Arc::clone(&loaded.info), scene.clone(), Arc::clone(&self.services));
        let result = self.guarded(loaded, |p| p.handle_route(request, &ctx)).and_then(|reply| {
            if (200..=599).contains(&reply.status) {
                Ok(reply)
            } else {
                Err(format!("it answered status {}, not 200 to 599", reply.status))
            }
        });
        loaded.info.record(|h| h.request(result.is_ok()));
        match result {
            Ok(reply) => RouteOutcome::Answered(reply),
            Err(error) => {
                let subject = format!("{} {}", request.method, request.route);
                self.failed(loaded, "request", &subject, &error);
                RouteOutcome::Failed(format!("plugin `{plugin_id}` failed to answer {subject}: {error}"))
            }
        }
    }

    /// Whether `event_type` is a core event plugins may subscribe to.
    pub fn is_core_event(event_type: &str) -> bool {
        CORE_EVENTS.contains(&event_type)
    }

    /// The world's effective simulation config: providers of enabled
    /// plugins in ascending priority, then the world's own
    /// `meta.behavior.simulationConfig`.
    pub fn simulation_config(&self, world: &crate::documents::World) -> Map<String, Value> {
        let own = world.behavior_meta().and_then(|b| b.get("simulationConfig")).and_then(Value::as_object);
        self.registry.simulation_config(own, &world.plugin_scope())
    }

    fn failed(&self, loaded: &Loaded, kind: &'static str, subject: &str, error: &str) {
        self.services.log(
            "polis",
            "warn",
            &format!("plugin `{}`: {kind} `{subject}` failed: {error}", loaded.info.plugin_id),
        );
        loaded.info.record(|h| h.error(kind, subject, error.to_owned()));
    }

    /// Every plugin's grants, registrations, health and recent errors, by id.
    pub fn reports(&self) -> Vec<PluginReport> {
        let now = Instant::now();
        self.plugins
            .iter()
            .map(|(plugin_id, loaded)| {
                let health = loaded.info.health();
                let grants = &loaded.info.grants;
                PluginReport {
                    plugin_id: plugin_id.clone(),
                    tier: loaded.plugin.manifest().tier(),
                    kind: loaded.info.kind,
                    permissions: grants.granted(),
                    unknown_permissions: grants.unknown().to_vec(),
                    warnings: grants.warnings().to_vec(),
                    disabled: loaded.disabled.clone(),
                    conditions: self
                        .registry
                        .conditions()
                        .filter(|c| &c.plugin_id == plugin_id)
                        .map(|c| c.id.clone())
                        .collect(),
                    effects: self
                        .registry
                        .effects()
                        .filter(|e| &e.plugin_id == plugin_id)
                        .map(|e| e.id.clone())
                        .collect(),
                    routes: self
                        .registry
                        .routes()
                        .iter()
                        .filter(|r| &r.plugin_id == plugin_id)
                        .map(|r| format!("{} {}{}", r.method, r.path, if r.admin { " (admin)" } else { "" }))
                        .collect(),
                    healthy: health.is_healthy() && loaded.disabled.is_none(),
                    unhealthy_because: if loaded.disabled.is_some() {
                        Some("failed to load")
                    } else {
                        health.unhealthy_because()
                    },
                    breaker: loaded.breaker.lock().map_or(BreakerState::Closed, |b| b.state(now)),
                    health,
                }
            })
            .collect()
    }
}
