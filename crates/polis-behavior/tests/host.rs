//! The host: loading (grants, warnings, failed registration withdrawn,
//! duplicate ids), isolation of a faulty plugin over 10,000 ticks, world
//! scoping, events and simulation config.

#![expect(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::manifest;
use polis_behavior::builtins::Moody;
use polis_behavior::{
    BehaviorHost, BehaviorPlugin, ConditionCall, EffectCall, Event, HostConfig, PluginContext, Scene, World,
};
use polis_core::manifest::Manifest;
use polis_core::policy::PolicyError;
use polis_runtime::{BreakerConfig, BreakerState};
use serde_json::json;

/// Registers a condition, an effect and a subscription, then fails (or
/// panics) on every call.
struct Faulty {
    manifest: Manifest,
    panics: bool,
    calls: AtomicU64,
}

impl Faulty {
    fn new(panics: bool) -> Faulty {
        let permissions = ["group:behavior", "event:subscribe"];
        Faulty { manifest: manifest("test.faulty", &permissions, "builtin", ""), panics, calls: AtomicU64::new(0) }
    }

    fn fail<T>(&self) -> Result<T, PolicyError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.panics {
            panic!("faulty plugin panics");
        }
        Err(PolicyError::Failed("faulty plugin fails".into()))
    }
}

impl BehaviorPlugin for Faulty {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    fn register(&self, ctx: &PluginContext) -> Result<(), PolicyError> {
        ctx.behavior().register_condition_evaluator("never", None).unwrap();
        ctx.behavior().register_effect_handler("boom", None, Default::default()).unwrap();
        ctx.subscriptions().unwrap().subscribe("npc:*").unwrap();
        Ok(())
    }
    fn evaluate_condition(&self, _: &ConditionCall, _: &PluginContext) -> Result<bool, PolicyError> {
        self.fail()
    }
    fn apply_effect(&self, _: &EffectCall, ctx: &PluginContext) -> Result<(), PolicyError> {
        // Writes first, then fails: the write must be undone.
        let _ = ctx.session_mut().map(|s| s.set_flag("plugin:test.faulty:half", json!(1)));
        self.fail()
    }
    fn on_event(&self, _: &Event, _: &PluginContext) -> Result<(), PolicyError> {
        self.fail()
    }
}

fn scene(world: World) -> Scene {
    let world = Arc::new(world);
    let session = common::session(&world);
    Scene::new(world, session)
}

#[test]
fn a_faulty_plugin_degrades_to_fallbacks_while_a_healthy_one_keeps_working_for_10000_ticks() {
    let faulty = Arc::new(Faulty::new(false));
    let plugins: Vec<Arc<dyn BehaviorPlugin>> = vec![faulty.clone(), Arc::new(Moody::default())];
    // A breaker that never opens, so every tick reaches the faulty plugin.
    let config =
        HostConfig { breaker: BreakerConfig { error_budget: 0, ..BreakerConfig::default() }, ..HostConfig::default() };
    let host = BehaviorHost::load(plugins, config);
    let scene = scene((*common::world()).clone());
    let small = json!({"amount": 0.01}).as_object().cloned().unwrap();
    let mut cheered = 0;
    for tick in 0..10_000u64 {
        let never = host.evaluate_condition("plugin:test.faulty:never", &Default::default(), Some("ann"), tick, &scene);
        assert!(!never.result && never.fallback.is_some());
        let boom = host.apply_effect("effect:plugin:test.faulty:boom", &Default::default(), Some("ann"), tick, &scene);
        assert!(!boom.applied);
        if host.apply_effect("effect:plugin:polis.behavior.moody:cheer", &small, Some("ann"), tick, &scene).applied {
            cheered += 1;
        }
        if tick % 100 == 0 {
            host.deliver(&Event { event_type: "npc:activity_started".into(), data: json!({"npc": "ann"}) }, &scene);
        }
    }
    assert_eq!(cheered, 10_000, "the healthy plugin's effects all applied");
    let session = scene.session.as_ref().unwrap().lock().unwrap();
    let valence = session.flags["npcs"]["npc:ann"]["state"]["moodState"]["valence"].as_f64().unwrap();
    assert!((valence - 100.0).abs() < 1e-9, "10,000 × 0.01 reaches the clamp: {valence}");
    assert!(!session.flags.contains_key("plugin:test.faulty:half"), "the failed effect's write was undone");
    drop(session);
    let reports = host.reports();
    let (bad, good) = (&reports[1], &reports[0]);
    assert_eq!((bad.plugin_id.as_str(), good.plugin_id.as_str()), ("test.faulty", "polis.behavior.moody"));
    assert!(!bad.healthy);
    assert_eq!(bad.unhealthy_because, Some("more than 30 % of condition evaluations failed"));
    assert_eq!((bad.health.conditions.total, bad.health.conditions.failures), (10_000, 10_000));
    assert_eq!((bad.health.effects.total, bad.health.effects.failures), (10_000, 10_000));
    assert_eq!((bad.health.handlers.total, bad.health.handlers.failures), (100, 100));
    assert_eq!(bad.health.recent_errors.len(), 10);
    assert!(good.healthy && good.health.effects.failures == 0);
}

#[test]
fn a_panicking_plugin_is_contained_and_its_breaker_opens() {
    let faulty = Arc::new(Faulty::new(true));
    let host = BehaviorHost::load(vec![faulty.clone()], HostConfig::default());
    let scene = scene((*common::world()).clone());
    for tick in 0..8 {
        let outcome = host.evaluate_condition("plugin:test.faulty:never", &Default::default(), None, tick, &scene);
        assert!(!outcome.result);
    }
    assert_eq!(faulty.calls.load(Ordering::Relaxed), 5, "after 5 failures the breaker stops calling it");
    let report = &host.reports()[0];
    assert_eq!(report.breaker, BreakerState::Open);
    assert!(report.health.recent_errors.iter().any(|e| e.message.contains("panicked: faulty plugin panics")));
    assert!(report.health.recent_errors.back().unwrap().message.contains("circuit breaker open"));
}

#[test]
fn extensions_of_a_plugin_the_world_does_not_enable_are_skipped() {
    let host = BehaviorHost::load(vec![Arc::new(Moody::default())], HostConfig::default());
    let mut world = (*common::world()).clone();
    let cheer = "effect:plugin:polis.behavior.moody:cheer";
    for (enabled, applies) in [
        (None, true),
        (Some(json!([])), false),
        (Some(json!(["polis.behavior.moody"])), true),
        (Some(json!(["x"])), false),
        (Some(json!("oops")), true),
    ] {
        world.meta.insert("behavior".into(), enabled.clone().map_or(json!({}), |e| json!({"enabledPlugins": e})));
        let outcome = host.apply_effect(cheer, &Default::default(), Some("ann"), 0, &scene(world.clone()));
        assert_eq!(outcome.applied, applies, "{enabled:?}: {outcome:?}");
        if !applies {
            assert!(outcome.skipped.unwrap().contains("not enabled in this world"));
        }
    }
    assert!(world.plugin_scope().warning().is_some(), "a non-list is warned about");
}

#[test]
fn effect_defaults_merge_under_call_params() {
    let host = BehaviorHost::load(vec![Arc::new(Moody::default())], HostConfig::default());
    let scene = scene((*common::world()).clone());
    let cheer = "effect:plugin:polis.behavior.moody:cheer";
    host.apply_effect(cheer, &Default::default(), Some("ann"), 0, &scene);
    host.apply_effect(cheer, &json!({"amount": 5}).as_object().cloned().unwrap(), Some("ann"), 0, &scene);
    let session = scene.session.as_ref().unwrap().lock().unwrap();
    assert_eq!(session.flags["npcs"]["npc:ann"]["state"]["moodState"]["valence"], json!(20.0), "15 by default, then 5");
}

/// Registers something it may not, then fails its own load.
struct Greedy {
    manifest: Manifest,
    fail_after: bool,
}

impl BehaviorPlugin for Greedy {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    fn register(&self, ctx: &PluginContext) -> Result<(), PolicyError> {
        ctx.behavior().register_condition_evaluator("mine", None).map_err(|e| PolicyError::Rejected(e.to_string()))?;
        let _ = ctx.behavior().register_effect_handler("not_mine", None, Default::default());
        if self.fail_after {
            return Err(PolicyError::Failed("changed my mind".into()));
        }
        Ok(())
    }
    fn evaluate_condition(&self, _: &ConditionCall, _: &PluginContext) -> Result<bool, PolicyError> {
        Ok(true)
    }
    fn apply_effect(&self, _: &EffectCall, _: &PluginContext) -> Result<(), PolicyError> {
        Ok(())
    }
}

#[test]
fn loading_warns_about_unknown_names_withdraws_a_failed_plugin_and_refuses_a_second_copy() {
    let greedy = |id: &str, fail_after| -> Arc<dyn BehaviorPlugin> {
        let permissions = ["behavior:extend_conditions", "db:write", "admin:routes"];
        Arc::new(Greedy { manifest: manifest(id, &permissions, "builtin", ""), fail_after })
    };
    let host = BehaviorHost::load(
        vec![greedy("test.ok", false), greedy("test.bad", true), greedy("test.ok", false)],
        HostConfig::default(),
    );
    let issues = host.issues().join("\n");
    assert!(issues.contains("plugin `test.ok` asks for unknown permission `db:write`"), "{issues}");
    assert!(issues.contains("does not enable admin plugins"), "{issues}");
    assert!(
        issues.contains("plugin `test.bad` failed to load and is disabled: policy failed: changed my mind"),
        "{issues}"
    );
    assert!(issues.contains("plugin `test.ok` is loaded twice"), "{issues}");
    assert!(host.registry().condition("plugin:test.ok:mine").is_some());
    assert!(
        host.registry().condition("plugin:test.bad:mine").is_none(),
        "the failed plugin's registration is withdrawn"
    );
    assert!(host.registry().effect("effect:plugin:test.ok:not_mine").is_none(), "no permission, no effect");
    let reports = host.reports();
    let ok = reports.iter().find(|r| r.plugin_id == "test.ok").unwrap();
    assert_eq!(ok.permissions, ["behavior:extend_conditions"]);
    assert_eq!(ok.health.permission_denials, 1);
    let bad = reports.iter().find(|r| r.plugin_id == "test.bad").unwrap();
    assert!(!bad.healthy && bad.disabled.is_some());
    let world = common::world();
    let scene = Scene::new(Arc::clone(&world), Arc::new(Mutex::new(polis_behavior::Session::new("s", &world))));
    let outcome = host.evaluate_condition("plugin:test.bad:mine", &Default::default(), None, 0, &scene);
    assert!(!outcome.result);
}

#[test]
fn simulation_config_providers_merge_by_priority_under_the_worlds_own() {
    struct Presets {
        manifest: Manifest,
        priority: i64,
        tier: &'static str,
    }
    impl BehaviorPlugin for Presets {
        fn manifest(&self) -> &Manifest {
            &self.manifest
        }
        fn register(&self, ctx: &PluginContext) -> Result<(), PolicyError> {
            let config = json!({"tier": self.tier, "maxNpcsPerTick": self.priority}).as_object().cloned().unwrap();
            ctx.behavior()
                .register_simulation_config("preset", self.priority, config)
                .map(drop)
                .map_err(|e| PolicyError::Rejected(e.to_string()))
        }
        fn evaluate_condition(&self, _: &ConditionCall, _: &PluginContext) -> Result<bool, PolicyError> {
            Ok(false)
        }
        fn apply_effect(&self, _: &EffectCall, _: &PluginContext) -> Result<(), PolicyError> {
            Ok(())
        }
    }
    let preset = |id: &str, priority, tier| -> Arc<dyn BehaviorPlugin> {
        Arc::new(Presets { manifest: manifest(id, &["behavior:configure_simulation"], "builtin", ""), priority, tier })
    };
    let host =
        BehaviorHost::load(vec![preset("test.b", 50, "fast"), preset("test.a", 10, "slow")], HostConfig::default());
    let mut world = (*common::world()).clone();
    world.meta.insert("behavior".into(), json!({}));
    assert_eq!(
        serde_json::Value::Object(host.simulation_config(&world)),
        json!({"tier": "fast", "maxNpcsPerTick": 50})
    );
    world
        .meta
        .insert("behavior".into(), json!({"simulationConfig": {"maxNpcsPerTick": 3}, "enabledPlugins": ["test.a"]}));
    assert_eq!(serde_json::Value::Object(host.simulation_config(&world)), json!({"tier": "slow", "maxNpcsPerTick": 3}));
}

/// Handles every event it subscribed to by sleeping `sleep_ms`.
struct Slow {
    manifest: Manifest,
    sleep_ms: u64,
}

impl BehaviorPlugin for Slow {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn register(&self, ctx: &PluginContext) -> Result<(), PolicyError> {
        ctx.subscriptions().and_then(|s| s.subscribe("npc:*")).map_err(|e| PolicyError::Failed(e.to_string()))
    }

    fn evaluate_condition(&self, _: &ConditionCall, _: &PluginContext) -> Result<bool, PolicyError> {
        Ok(false)
    }

    fn apply_effect(&self, _: &EffectCall, _: &PluginContext) -> Result<(), PolicyError> {
        Ok(())
    }

    fn on_event(&self, _: &Event, _: &PluginContext) -> Result<(), PolicyError> {
        std::thread::sleep(std::time::Duration::from_millis(self.sleep_ms));
        Ok(())
    }
}

#[test]
fn an_in_line_handler_past_its_deadline_counts_as_failed_naming_the_deadline() {
    let slow = |plugin_id: &str, timeout_ms: u64, sleep_ms: u64| {
        let mut doc = serde_json::to_value(manifest(plugin_id, &["event:subscribe"], "builtin", "")).unwrap();
        doc["limits"]["timeout_ms"] = json!(timeout_ms);
        Arc::new(Slow { manifest: Manifest::from_value(doc).unwrap(), sleep_ms }) as Arc<dyn BehaviorPlugin>
    };
    let host = BehaviorHost::load(vec![slow("test.late", 5, 60), slow("test.prompt", 5_000, 0)], HostConfig::default());
    let scene = scene((*common::world()).clone());
    let event = Event { event_type: "npc:spawned".into(), data: json!({"npcId": "ann"}) };
    assert_eq!(host.deliver(&event, &scene), ["test.prompt"], "the late handler did not count as handled");
    let reports = host.reports();
    let (late, prompt) = (&reports[0], &reports[1]);
    assert_eq!((late.health.handlers.total, late.health.handlers.failures), (1, 1));
    let error = &late.health.recent_errors[0];
    assert_eq!((error.kind, error.subject.as_str()), ("event_handler", "npc:spawned"));
    assert!(error.message.contains("past its 5 ms deadline"), "{error:?}");
    assert_eq!((prompt.health.handlers.total, prompt.health.handlers.failures), (1, 0));
}
