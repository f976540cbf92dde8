//! The example village and its two Python plugins, loaded from
//! `examples/behavior/plugins` by polis's plugin loader as a user would.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use polis_behavior::contract::REQUIRED_METHODS;
use polis_behavior::{Behavior, BehaviorHost, BehaviorPlugin, EndpointPlugin, HostConfig, Scene, Session, World};
use serde_json::json;

fn example(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/behavior").join(path)
}

fn host() -> BehaviorHost {
    let mut tiers = polis_plugins::Tiers::new().unwrap();
    tiers.process.sandbox.read_paths.push(polis_testdata::python().prefix);
    let root = example("plugins");
    let (loaded, reports) =
        polis_plugins::load_endpoints::<Behavior>(&[root.as_path() as &Path], &tiers, REQUIRED_METHODS);
    assert!(reports.iter().all(|r| r.outcome.is_ok()), "{reports:?}");
    let mut plugins: Vec<Arc<dyn BehaviorPlugin>> = vec![Arc::new(polis_behavior::builtins::Moody::default())];
    plugins.extend(loaded.into_iter().map(|l| Arc::new(EndpointPlugin::new(l.endpoint)) as Arc<dyn BehaviorPlugin>));
    BehaviorHost::load(plugins, HostConfig::default())
}

fn scene() -> Scene {
    let world = World::from_json(&std::fs::read(example("village.world.json")).unwrap()).unwrap();
    let session = Session::from_json(&std::fs::read(example("evening.session.json")).unwrap()).unwrap();
    assert_eq!((world.npcs.len(), session.world_id.as_str()), (12, "village"));
    Scene::new(Arc::new(world), Arc::new(Mutex::new(session)))
}

#[test]
fn the_example_plugins_load_register_and_decide_on_the_example_village() {
    let host = host();
    assert_eq!(host.issues(), &[] as &[String]);
    let scene = scene();
    let low = "plugin:example.tired:low_energy";
    assert!(host.evaluate_condition(low, &Default::default(), Some("ann"), 0, &scene).result, "ann's energy is 30");
    assert!(!host.evaluate_condition(low, &Default::default(), Some("bob"), 0, &scene).result, "bob's energy is 80");
    let rest = json!({"amount": 12}).as_object().cloned().unwrap();
    assert!(host.apply_effect("effect:plugin:example.tired:rest", &rest, Some("ann"), 0, &scene).applied);
    let session = scene.session.as_ref().unwrap().lock().unwrap().clone();
    assert_eq!(session.flags["npcs"]["npc:ann"]["state"]["energy"], json!(42.0));
}

#[test]
fn the_nosy_example_is_refused_session_write_and_its_effect_skipped() {
    let host = host();
    let scene = scene();
    let outcome = host.apply_effect("effect:plugin:example.nosy:gossip", &Default::default(), Some("ann"), 0, &scene);
    assert!(!outcome.applied);
    let skipped = outcome.skipped.unwrap();
    assert!(
        skipped.contains("plugin `example.nosy` cannot use `session.set_flag`: permission `session:write` not granted"),
        "{skipped}"
    );
    let session = scene.session.as_ref().unwrap().lock().unwrap();
    assert!(!session.flags.contains_key("plugin:example.nosy:heard"));
    drop(session);
    let nosy = host.reports().into_iter().find(|r| r.plugin_id == "example.nosy").unwrap();
    assert_eq!((nosy.health.effects.failures, nosy.health.recent_errors.len()), (1, 1));
    assert!(matches!(nosy.health.recent_errors[0].message.as_str(), m if m.contains("session:write")));
}
