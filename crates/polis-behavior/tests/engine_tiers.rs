//! The engine with plugins of every tier: one custom condition written as
//! a built-in, in Python (the example plugin, process tier) and in wasm
//! gives one timeline digest; and a plugin failing on every call, beside a
//! healthy one, over 10,000 ticks.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use polis_behavior::contract::REQUIRED_METHODS;
use polis_behavior::engine::{RunOptions, Simulation};
use polis_behavior::permissions::catalog;
use polis_behavior::{
    Behavior, BehaviorHost, BehaviorPlugin, ConditionCall, EffectCall, EndpointPlugin, HostConfig, PluginContext,
    Session, World, builtins,
};
use polis_core::PolicyError;
use polis_core::manifest::Manifest;
use polis_wasm::{WasmConfig, WasmRuntime};
use serde_json::{Value, json};

const TIRED: &str = "example.tired";

/// A world whose NPCs nap only when `plugin:example.tired:low_energy`
/// says they are tired, and otherwise work, walk or (by chance) chat.
fn world() -> World {
    let npcs: Vec<Value> =
        ["ann", "bob", "cy"].iter().map(|id| json!({"id": id, "meta": {"behavior": {"routineId": "day"}}})).collect();
    let low = json!({"type": "custom", "evaluatorId": "plugin:example.tired:low_energy", "params": {"below": 40}});
    World::from_json(
        json!({
            "id": "tiers",
            "meta": {"behavior": {
                "activities": {
                    "work": {"category": "work", "effects": {"energyDeltaPerHour": -15}, "minDurationSeconds": 3600},
                    "walk": {"category": "leisure", "effects": {"energyDeltaPerHour": -5, "moodImpact": {"valence": 3}}, "minDurationSeconds": 1800, "cooldownSeconds": 3600},
                    "chat": {"category": "social", "requirements": {"conditions": [{"type": "random_chance", "probability": 0.4}]}, "effects": {"energyDeltaPerHour": -2}, "minDurationSeconds": 1800},
                    "nap": {"category": "rest", "requirements": {"conditions": [low]}, "effects": {"energyDeltaPerHour": 25}, "minDurationSeconds": 3600}
                },
                "routines": {"day": {"nodes": [{"nodeType": "activity", "preferredActivities": [
                    {"activityId": "work", "weight": 2}, {"activityId": "walk"}, {"activityId": "chat"}, {"activityId": "nap", "weight": 4}
                ]}]}},
                "simulationConfig": {"tiers": [{"id": "all", "tickFrequencySeconds": 1, "detailLevel": "full"}], "priorityRules": [], "defaultTier": "all"}
            }},
            "npcs": npcs
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

fn digest(plugin: Arc<dyn BehaviorPlugin>) -> (String, u64) {
    let host = BehaviorHost::load(vec![plugin], HostConfig::default());
    assert_eq!(host.issues(), &[] as &[String]);
    let world = world();
    let session = Session::new("s", &world);
    let outcome = Simulation::new(world, session, &host)
        .unwrap()
        .run(RunOptions { ticks: 96, seed: 11, seconds_per_tick: 900 })
        .unwrap();
    let naps = outcome.timeline.npcs.values().flatten().filter(|e| e.activity_id.as_deref() == Some("nap")).count();
    assert!(naps > 0, "the custom condition let someone nap");
    let report = &host.reports()[0];
    assert_eq!(report.health.conditions.failures, 0, "{report:?}");
    (outcome.digest.to_hex(), report.health.conditions.total)
}

/// The Python plugin's condition, as a built-in.
struct LowEnergy {
    manifest: Manifest,
}

impl BehaviorPlugin for LowEnergy {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    fn register(&self, ctx: &PluginContext) -> Result<(), PolicyError> {
        ctx.behavior()
            .register_condition_evaluator("low_energy", None)
            .map(drop)
            .map_err(|e| PolicyError::Rejected(e.to_string()))
    }
    fn evaluate_condition(&self, call: &ConditionCall, ctx: &PluginContext) -> Result<bool, PolicyError> {
        let npc = ctx.npc().unwrap().get(call.npc_id.as_deref().unwrap()).unwrap();
        let energy = npc["state"]["energy"].as_f64().unwrap_or(100.0);
        Ok(energy < call.params.get("below").and_then(Value::as_f64).unwrap_or(50.0))
    }
    fn apply_effect(&self, _: &EffectCall, _: &PluginContext) -> Result<(), PolicyError> {
        Err(PolicyError::Rejected("no effects".into()))
    }
}

fn python() -> Arc<dyn BehaviorPlugin> {
    let mut tiers = polis_plugins::Tiers::new().unwrap();
    tiers.process.sandbox.read_paths.push(polis_testdata::python().prefix);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/behavior/plugins");
    let (loaded, _) = polis_plugins::load_endpoints::<Behavior>(&[root.as_path() as &Path], &tiers, REQUIRED_METHODS);
    let tired = loaded.into_iter().find(|l| l.endpoint.manifest().plugin_id == TIRED).unwrap();
    Arc::new(EndpointPlugin::new(tired.endpoint))
}

fn wasm() -> Arc<dyn BehaviorPlugin> {
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let wat = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tired-wasm/plugin.wat");
    let bytes = wat::parse_file(wat).unwrap();
    let manifest = common::manifest(TIRED, &["group:behavior"], "wasm", "plugin.wasm");
    let module = runtime.load_with(manifest, &bytes, &catalog(), REQUIRED_METHODS).unwrap();
    Arc::new(EndpointPlugin::new(Arc::new(module)))
}

#[test]
fn a_python_and_a_wasm_custom_condition_give_the_built_ins_digest() {
    let builtin = digest(Arc::new(LowEnergy { manifest: common::manifest(TIRED, &["group:behavior"], "builtin", "") }));
    assert!(builtin.1 > 10, "the condition was asked often: {}", builtin.1);
    assert_eq!(digest(python()), builtin, "process tier");
    assert_eq!(digest(wasm()), builtin, "wasm tier");
}

/// Fails every call, and panics on every event.
struct Faulty {
    manifest: Manifest,
}

impl BehaviorPlugin for Faulty {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    fn register(&self, ctx: &PluginContext) -> Result<(), PolicyError> {
        let rejected = |e: polis_behavior::ContextError| PolicyError::Rejected(e.to_string());
        ctx.behavior().register_condition_evaluator("broken", None).map_err(rejected)?;
        ctx.behavior().register_effect_handler("boom", None, Default::default()).map_err(rejected)?;
        ctx.subscriptions().map_err(rejected)?.subscribe("npc:*").map_err(rejected)?;
        Ok(())
    }
    fn evaluate_condition(&self, _: &ConditionCall, _: &PluginContext) -> Result<bool, PolicyError> {
        Err(PolicyError::Failed("the condition always throws".into()))
    }
    fn apply_effect(&self, _: &EffectCall, _: &PluginContext) -> Result<(), PolicyError> {
        Err(PolicyError::Failed("the effect always throws".into()))
    }
    fn on_event(&self, _: &polis_behavior::Event, _: &PluginContext) -> Result<(), PolicyError> {
        Err(PolicyError::Failed("the handler always throws".into()))
    }
}

#[test]
fn a_plugin_failing_every_call_beside_a_healthy_one_over_ten_thousand_ticks() {
    let faulty =
        Faulty { manifest: common::manifest("test.faulty", &["group:behavior", "event:subscribe"], "builtin", "") };
    let plugins: Vec<Arc<dyn BehaviorPlugin>> = vec![Arc::new(builtins::Moody::default()), Arc::new(faulty)];
    let host = BehaviorHost::load(plugins, HostConfig::default());
    let effects = json!([{"type": "effect:plugin:test.faulty:boom"}, {"type": "effect:plugin:polis.behavior.moody:cheer", "params": {"amount": 1}}]);
    let world = World::from_json(
        json!({
            "id": "faulty",
            "meta": {"behavior": {
                "activities": {
                    "a": {"effects": {"customEffects": effects}, "minDurationSeconds": 900, "cooldownSeconds": 900},
                    "b": {"effects": {"customEffects": effects}, "minDurationSeconds": 900, "cooldownSeconds": 900},
                    "c": {"effects": {"moodImpact": {"valence": -50}}}
                },
                "routines": {"r": {"nodes": [
                    {"nodeType": "decision", "decisionConditions": [{"type": "plugin:test.faulty:broken"}], "preferredActivities": [{"activityId": "c"}]},
                    {"nodeType": "activity", "preferredActivities": [{"activityId": "a"}, {"activityId": "b"}]}
                ]}},
                "simulationConfig": {"tiers": [{"id": "all", "detailLevel": "full"}], "priorityRules": [], "defaultTier": "all"}
            }},
            "npcs": [{"id": "ann", "meta": {"behavior": {"routineId": "r"}}}, {"id": "bob", "meta": {"behavior": {"routineId": "r"}}}]
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let session = Session::new("s", &world);
    let outcome = Simulation::new(world, session, &host)
        .unwrap()
        .run(RunOptions { ticks: 10_000, seed: 5, seconds_per_tick: 900 })
        .unwrap();
    let started = outcome.stats.started;
    assert!(started > 1000, "activities kept changing: {started}");
    assert!(
        outcome.timeline.npcs.values().flatten().all(|e| e.activity_id.as_deref() != Some("c")),
        "the failing condition was false"
    );
    assert_eq!((outcome.stats.effects_applied, outcome.stats.effects_skipped), (started, started));
    let reports = host.reports();
    let moody = reports.iter().find(|r| r.plugin_id == "polis.behavior.moody").unwrap();
    assert!(moody.healthy, "{moody:?}");
    assert_eq!((moody.health.effects.total, moody.health.effects.failures), (started, 0));
    let valence = outcome.session.flags["npcs"]["npc:ann"]["state"]["moodState"]["valence"].as_f64().unwrap();
    assert_eq!(valence, 100.0, "cheer applied every start, clamped at 100");
    let faulty = reports.iter().find(|r| r.plugin_id == "test.faulty").unwrap();
    assert!(!faulty.healthy);
    assert!(faulty.unhealthy_because.is_some(), "{faulty:?}");
    assert!(faulty.health.conditions.failures > 10_000 && faulty.health.effects.failures == started);
    assert!(faulty.health.handlers.failures > 0, "event handlers failed and were logged");
    assert_eq!(faulty.health.recent_errors.len(), 10);
}
