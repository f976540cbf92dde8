//! The behaviour engine's costs: one condition evaluation per tier (a
//! built-in condition, and `low_energy` as a built-in plugin, in wasm and
//! in a Python worker), and 1,000 NPCs over one simulated day in the full
//! tier.
//!
//! `cargo bench -p polis-behavior --bench engine`

#![expect(clippy::unwrap_used, reason = "a bench fails loudly")]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use criterion::{Criterion, criterion_group, criterion_main};
use polis_behavior::contract::REQUIRED_METHODS;
use polis_behavior::engine::conditions::{Condition, Eval};
use polis_behavior::engine::rng::Rng;
use polis_behavior::engine::state::NpcState;
use polis_behavior::engine::{RunOptions, Simulation};
use polis_behavior::permissions::catalog;
use polis_behavior::{
    Behavior, BehaviorHost, BehaviorPlugin, ConditionCall, EffectCall, EndpointPlugin, HostConfig, PluginContext,
    Scene, Session, World,
};
use polis_core::PolicyError;
use polis_core::manifest::Manifest;
use serde_json::{Value, json};

fn manifest(tier: &str) -> Manifest {
    let mut doc = json!({
        "contract_version": "policy.plugin.v1", "plugin_id": "example.tired", "plugin_version": "1.0.0",
        "policy_version": "behavior.example_tired", "strategy": "tired", "display_name": "Tired",
        "deterministic": true, "contract": "behavior.v1", "permissions": ["group:behavior"]
    });
    if tier != "builtin" {
        doc["runtime"] = json!({"tier": tier, "entry": "plugin.wasm"});
    }
    Manifest::from_value(doc).unwrap()
}

struct LowEnergy(Manifest);

impl BehaviorPlugin for LowEnergy {
    fn manifest(&self) -> &Manifest {
        &self.0
    }
    fn register(&self, ctx: &PluginContext) -> Result<(), PolicyError> {
        ctx.behavior()
            .register_condition_evaluator("low_energy", None)
            .map(drop)
            .map_err(|e| PolicyError::Rejected(e.to_string()))
    }
    fn evaluate_condition(&self, call: &ConditionCall, ctx: &PluginContext) -> Result<bool, PolicyError> {
        let npc = ctx.npc().unwrap().get(call.npc_id.as_deref().unwrap()).unwrap();
        Ok(npc["state"]["energy"].as_f64().unwrap_or(100.0)
            < call.params.get("below").and_then(Value::as_f64).unwrap_or(50.0))
    }
    fn apply_effect(&self, _: &EffectCall, _: &PluginContext) -> Result<(), PolicyError> {
        Ok(())
    }
}

fn wasm() -> Arc<dyn BehaviorPlugin> {
    let runtime = polis_wasm::WasmRuntime::new(polis_wasm::WasmConfig::default()).unwrap();
    let wat = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tired-wasm/plugin.wat");
    let module =
        runtime.load_with(manifest("wasm"), &wat::parse_file(wat).unwrap(), &catalog(), REQUIRED_METHODS).unwrap();
    Arc::new(EndpointPlugin::new(Arc::new(module)))
}

fn python() -> Arc<dyn BehaviorPlugin> {
    let mut tiers = polis_plugins::Tiers::new().unwrap();
    tiers.process.sandbox.read_paths.push(polis_testdata::python().prefix);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/behavior/plugins");
    let (loaded, _) = polis_plugins::load_endpoints::<Behavior>(&[root.as_path() as &Path], &tiers, REQUIRED_METHODS);
    let tired = loaded.into_iter().find(|l| l.endpoint.manifest().plugin_id == "example.tired").unwrap();
    Arc::new(EndpointPlugin::new(tired.endpoint))
}

fn scene() -> Scene {
    let world = World::from_json(br#"{"id":"w","npcs":[{"id":"ann"}]}"#).unwrap();
    let session = Session::new("s", &world);
    Scene::new(Arc::new(world), Arc::new(Mutex::new(session)))
}

fn conditions(c: &mut Criterion) {
    let mut group = c.benchmark_group("condition");
    let scene = scene();
    let host = BehaviorHost::load(Vec::new(), HostConfig::default());
    let state = NpcState::default();
    let energy =
        Condition::parse(json!({"type": "energy_between", "min": 20, "max": 80}).as_object().unwrap()).unwrap();
    let mut rng = Rng::new(1);
    group.bench_function("builtin energy_between", |b| {
        b.iter(|| {
            Eval { npc_id: "ann", state: &state, world_time: 0, host: &host, scene: &scene, rng: &mut rng }
                .holds(&energy)
        });
    });
    let params = json!({"below": 40}).as_object().cloned().unwrap();
    let tiers: [(&str, Arc<dyn BehaviorPlugin>); 3] = [
        ("plugin, builtin tier", Arc::new(LowEnergy(manifest("builtin")))),
        ("plugin, wasm tier", wasm()),
        ("plugin, process tier (Python)", python()),
    ];
    for (name, plugin) in tiers {
        let host = BehaviorHost::load(vec![plugin], HostConfig::default());
        group.bench_function(name, |b| {
            b.iter(|| {
                host.evaluate_condition("plugin:example.tired:low_energy", &params, Some("ann"), 7, &scene).result
            });
        });
    }
    group.finish();
}

/// 1,000 NPCs on a three-slot routine with requirements, cooldowns and
/// a `random_chance`, every NPC in the full tier, 96 ticks of 15 minutes.
fn thousand_npcs() -> World {
    let npcs: Vec<Value> = (0..1000)
        .map(|i| json!({"id": format!("npc{i:04}"), "role": if i % 3 == 0 { "smith" } else { "farmer" }, "meta": {"behavior": {"routineId": "day"}}}))
        .collect();
    World::from_json(
        json!({
            "id": "big",
            "meta": {"behavior": {
                "activities": {
                    "sleep": {"category": "rest", "effects": {"energyDeltaPerHour": 12}, "minDurationSeconds": 7200},
                    "forge": {"category": "work", "requirements": {"roles": ["smith"], "minEnergy": 20}, "effects": {"energyDeltaPerHour": -10}, "minDurationSeconds": 3600},
                    "farm": {"category": "work", "requirements": {"roles": ["farmer"], "minEnergy": 20}, "effects": {"energyDeltaPerHour": -9}, "minDurationSeconds": 3600},
                    "walk": {"category": "leisure", "effects": {"energyDeltaPerHour": -3, "moodImpact": {"valence": 4}}, "minDurationSeconds": 1800, "cooldownSeconds": 7200},
                    "chat": {"category": "social", "requirements": {"conditions": [{"type": "random_chance", "probability": 0.5}]}, "effects": {"moodImpact": {"valence": 5, "arousal": 5}, "relationshipChanges": {"self": {"affinity": 1}}}, "minDurationSeconds": 1800, "cooldownSeconds": 3600}
                },
                "routines": {"day": {"nodes": [
                    {"nodeType": "time_slot", "timeRangeSeconds": {"start": 79200, "end": 21600}, "preferredActivities": [{"activityId": "sleep"}]},
                    {"nodeType": "time_slot", "timeRangeSeconds": {"start": 21600, "end": 64800}, "preferredActivities": [{"activityId": "forge", "weight": 2}, {"activityId": "farm", "weight": 2}, {"activityId": "walk"}]},
                    {"nodeType": "activity", "preferredActivities": [{"activityId": "chat", "weight": 2}, {"activityId": "walk"}, {"activityId": "sleep"}]}
                ]}},
                "simulationConfig": {"tiers": [{"id": "all", "tickFrequencySeconds": 900, "detailLevel": "full"}], "priorityRules": [], "defaultTier": "all", "maxNpcsPerTick": null}
            }},
            "npcs": npcs
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

fn day(c: &mut Criterion) {
    let mut group = c.benchmark_group("day");
    group.sample_size(10);
    let world = thousand_npcs();
    let host = BehaviorHost::load(Vec::new(), HostConfig::default());
    group.bench_function("1000 NPCs x 96 ticks, full tier", |b| {
        b.iter(|| {
            let session = Session::new("s", &world);
            let sim = Simulation::new(world.clone(), session, &host).unwrap();
            sim.run(RunOptions { ticks: 96, seed: 1, seconds_per_tick: 900 }).unwrap().digest
        });
    });
    group.finish();
}

criterion_group!(benches, conditions, day);
criterion_main!(benches);
