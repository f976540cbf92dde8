//! The behaviour engine's rules, one at a time, then whole runs: a golden
//! timeline, determinism, clamps under any effects.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::{Arc, Mutex};

use polis_behavior::engine::conditions::{Condition, Eval, period_of};
use polis_behavior::engine::config::{Activity, TimeRange};
use polis_behavior::engine::rng::Rng;
use polis_behavior::engine::routine::covers;
use polis_behavior::engine::scoring::{self, Preferences, SCORE_FLOOR, ScoreInput, Weights};
use polis_behavior::engine::state::{LastActivity, NpcState};
use polis_behavior::engine::{RunOptions, Simulation};
use polis_behavior::{BehaviorHost, HostConfig, Scene, Session, World};
use proptest::prelude::*;
use serde_json::{Value, json};

fn world(behavior: Value) -> World {
    World::from_json(
        json!({
            "id": "w",
            "meta": {"behavior": behavior},
            "npcs": [
                {"id": "ann", "role": "baker", "meta": {"behavior": {"routineId": "day"}}},
                {"id": "bob", "role": "smith", "meta": {"behavior": {"routineId": "day"}}}
            ]
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

fn host() -> BehaviorHost {
    BehaviorHost::load(Vec::new(), HostConfig::default())
}

/// Evaluates `condition` for ann with `state`, on a session holding
/// `flags` and `relationships`, at `world_time`.
fn check(condition: Value, state: &NpcState, session: Value, world_time: i64) -> bool {
    let world = Arc::new(world(json!({})));
    let mut s = Session::new("s", &world);
    s.flags = serde_json::from_value(session["flags"].clone()).unwrap_or_default();
    s.relationships = serde_json::from_value(session["relationships"].clone()).unwrap_or_default();
    let scene = Scene::new(world, Arc::new(Mutex::new(s)));
    let host = host();
    let mut rng = Rng::new(42);
    let condition = Condition::parse(condition.as_object().unwrap()).unwrap();
    Eval { npc_id: "ann", state, world_time, host: &host, scene: &scene, rng: &mut rng }.holds(&condition)
}

fn state(energy: f64, tags: &[&str]) -> NpcState {
    let mut state = NpcState { energy, ..NpcState::default() };
    state.mood_state.tags = tags.iter().map(|t| (*t).to_owned()).collect();
    state
}

#[test]
fn each_built_in_condition_reads_what_the_original_reads() {
    let s = state(40.0, &["happy"]);
    let session = json!({
        "flags": {"arc": {"stage": 2}, "open": true},
        "relationships": {"npc:ann": {"affinity": 60, "trust": 10}, "npc:bob": {"affinity": 5}}
    });
    let cases = [
        (json!({"type": "relationship_gt", "npcIdOrRole": "npc:ann", "metric": "affinity", "threshold": 50}), true),
        (json!({"type": "relationship_gt", "npcIdOrRole": "npc:ann", "axis": "trust", "threshold": 10}), false),
        (json!({"type": "relationship_gt", "npcIdOrRole": "self", "threshold": 59}), true),
        (json!({"type": "relationship_lt", "npcIdOrRole": "npc:bob", "threshold": 10}), true),
        (json!({"type": "relationship_lt", "npcIdOrRole": "npc:nobody", "threshold": 0}), false),
        (json!({"type": "flag_equals", "key": "arc.stage", "value": 2.0}), true),
        (json!({"type": "flag_equals", "key": "arc.stage", "value": 3}), false),
        (json!({"type": "flag_equals", "key": "open.deeper", "value": null}), false),
        (json!({"type": "flag_exists", "key": "arc"}), true),
        (json!({"type": "flag_exists", "key": "arc.stage.deeper"}), false),
        (json!({"type": "mood_in", "moodTags": ["sad", "happy"]}), true),
        (json!({"type": "mood_in", "moodTags": ["sad"]}), false),
        (json!({"type": "energy_between", "min": 40, "max": 41}), true),
        (json!({"type": "energy_between", "min": 41}), false),
        (json!({"type": "random_chance", "probability": 1.0}), true),
        (json!({"type": "random_chance", "probability": 0.0}), false),
        (json!({"type": "custom", "evaluatorId": "plugin:nobody:x"}), false),
        (json!({"type": "plugin:nobody:x"}), false),
        (json!({"type": "location_type_in", "locationTypes": ["inn"]}), false),
    ];
    for (condition, expected) in cases {
        assert_eq!(check(condition.clone(), &s, session.clone(), 0), expected, "{condition}");
    }
}

#[test]
fn time_of_day_uses_the_original_periods_and_wraps_days() {
    let s = NpcState::default();
    let night = json!({"type": "time_of_day_in", "times": ["night"]});
    for (hour, period) in [(0, "night"), (6, "morning"), (12, "afternoon"), (18, "evening"), (22, "night")] {
        assert_eq!(period_of(hour * 3600), period);
        assert_eq!(period_of(hour * 3600 + 86_400 * 3), period, "day 4");
    }
    assert!(check(night.clone(), &s, json!({}), 23 * 3600));
    assert!(!check(night, &s, json!({}), 7 * 3600));
}

#[test]
fn random_chance_is_seeded() {
    let draws = |seed| {
        let mut rng = Rng::new(seed);
        (0..64).map(|_| rng.next_f64() < 0.5).collect::<Vec<_>>()
    };
    assert_eq!(draws(9), draws(9));
    assert_ne!(draws(9), draws(10));
}

#[test]
fn a_bad_condition_names_its_field() {
    let error = Condition::parse(json!({"type": "energy_between", "min": "low"}).as_object().unwrap()).unwrap_err();
    assert_eq!(error, "`min` must be a number");
    let error = Condition::parse(json!({"type": "custom"}).as_object().unwrap()).unwrap_err();
    assert!(error.contains("evaluatorId"), "{error}");
}

#[test]
fn reading_a_state_clamps_energy_and_mood() {
    let world = world(json!({}));
    let mut session = Session::new("s", &world);
    session.flags.insert(
        "npcs".into(),
        json!({"npc:ann": {"state": {"energy": 150, "moodState": {"valence": -300, "arousal": 101}, "custom": 1}}}),
    );
    let state = NpcState::read(&session, "ann").unwrap();
    assert_eq!((state.energy, state.mood_state.valence, state.mood_state.arousal), (100.0, -100.0, 100.0));
    state.write(&mut session, "ann");
    assert_eq!(session.flags["npcs"]["npc:ann"]["state"]["custom"], json!(1), "unknown keys are kept");
    assert_eq!(NpcState::read(&session, "bob").unwrap().energy, 100.0, "a new NPC starts rested");
}

#[test]
fn time_slots_may_wrap_midnight() {
    let night = TimeRange { start: 22 * 3600, end: 6 * 3600 };
    assert!(covers(night, 23 * 3600) && covers(night, 0) && covers(night, 6 * 3600 - 1));
    assert!(!covers(night, 6 * 3600) && !covers(night, 12 * 3600) && !covers(night, 22 * 3600 - 1));
    let day = TimeRange { start: 6 * 3600, end: 22 * 3600 };
    assert!(covers(day, 6 * 3600) && !covers(day, 22 * 3600));
}

fn activity(id: &str, category: &str) -> Activity {
    Activity { id: id.to_owned(), category: category.to_owned(), ..Activity::default() }
}

#[test]
fn scores_multiply_the_default_weights_and_never_fall_below_the_floor() {
    let preferences = Preferences::default();
    let s = NpcState::default();
    let affinity = |_: &str| 50.0;
    let input = ScoreInput { preferences: &preferences, state: &s, affinity: &affinity };
    let weights = Weights::default();
    // Neutral: activity 0.5 × 1.0, category 0.5 × 0.8, every other factor 1.
    let neutral = scoring::score(&activity("a", "rest"), 1.0, &weights, &input);
    assert!((neutral - 0.2).abs() < 1e-12, "{neutral}");
    // Base weight 0 is floored, so the activity keeps a chance.
    assert_eq!(scoring::score(&activity("a", "rest"), 0.0, &weights, &input), SCORE_FLOOR);
    // Inertia: the current activity gets 1 + 0.3.
    let doing = NpcState { current_activity_id: Some("a".into()), ..NpcState::default() };
    let input = ScoreInput { preferences: &preferences, state: &doing, affinity: &affinity };
    let kept = scoring::score(&activity("a", "rest"), 1.0, &weights, &input);
    assert!((kept - 0.26).abs() < 1e-12, "{kept}");
    // A weight of 0 skips its factor.
    let overrides = [("activityPreference".to_owned(), 0.0)].into_iter().collect();
    let skipped = scoring::score(&activity("a", "rest"), 1.0, &Weights::from_config(&overrides).unwrap(), &input);
    assert!((skipped - 0.52).abs() < 1e-12, "{skipped}");
    let unknown = [("charm".to_owned(), 1.0)].into_iter().collect();
    assert!(Weights::from_config(&unknown).unwrap_err().contains("unknown factor `charm`"));
}

#[test]
fn an_activity_cools_down_after_it_ends_and_never_before_it_ran() {
    let nap = Activity { cooldown_seconds: 3600, ..activity("nap", "rest") };
    let fresh = NpcState::default();
    assert!(!scoring::cooling_down(&nap, &fresh, 10), "never done, so not cooling down");
    let rested = NpcState {
        last_activities: vec![LastActivity { activity_id: "nap".into(), ended_at_seconds: 1000 }],
        ..NpcState::default()
    };
    assert!(scoring::cooling_down(&nap, &rested, 4599));
    assert!(!scoring::cooling_down(&nap, &rested, 4600));
}

#[test]
fn the_weighted_choice_follows_scores_and_breaks_ties_by_order() {
    let scored = [("a", 1.0), ("b", 3.0)];
    let mut rng = Rng::new(5);
    let picks: Vec<&str> = (0..4000).map(|_| *scoring::weighted_choice(&scored, &mut rng).unwrap()).collect();
    let b = picks.iter().filter(|p| **p == "b").count();
    assert!((2800..3200).contains(&b), "about three quarters: {b}");
    assert_eq!(scoring::best(&[("a", 2.0), ("b", 2.0), ("c", 1.0)]), Some(&"a"));
    assert_eq!(scoring::weighted_choice::<&str>(&[], &mut rng), None);
}

/// A small world: a night slot wrapping midnight, a morning of work or a
/// walk, and an evening at the inn whose chat builds affinity.
fn small_world() -> World {
    world(json!({
        "activities": {
            "sleep": {"category": "rest", "effects": {"energyDeltaPerHour": 10}, "minDurationSeconds": 7200},
            "work": {"category": "work", "requirements": {"minEnergy": 30}, "effects": {"energyDeltaPerHour": -12}, "minDurationSeconds": 3600},
            "bake": {"category": "work", "requirements": {"roles": ["baker"]}, "effects": {"energyDeltaPerHour": -8, "flagsSet": {"bread.fresh": true}}, "minDurationSeconds": 3600},
            "walk": {"category": "leisure", "effects": {"energyDeltaPerHour": -3, "moodImpact": {"valence": 10}}, "minDurationSeconds": 1800, "cooldownSeconds": 7200},
            "chat": {"category": "social", "effects": {"moodImpact": {"valence": 5, "arousal": 40}, "relationshipChanges": {"self": {"affinity": 3}}}, "minDurationSeconds": 1800}
        },
        "routines": {"day": {"nodes": [
            {"nodeType": "time_slot", "timeRangeSeconds": {"start": 79200, "end": 21600}, "preferredActivities": [{"activityId": "sleep"}]},
            {"nodeType": "time_slot", "timeRangeSeconds": {"start": 21600, "end": 64800}, "preferredActivities": [
                {"activityId": "work", "weight": 2}, {"activityId": "bake", "weight": 2}, {"activityId": "walk"}]},
            {"nodeType": "activity", "preferredActivities": [{"activityId": "chat"}, {"activityId": "walk"}]}
        ]}},
        "simulationConfig": {"tiers": [{"id": "all", "tickFrequencySeconds": 1, "detailLevel": "full"}], "priorityRules": [], "defaultTier": "all"}
    }))
}

fn run(world: World, seed: u64, ticks: u64) -> polis_behavior::engine::Outcome {
    let host = host();
    let session = Session::new("s", &world);
    Simulation::new(world, session, &host).unwrap().run(RunOptions { ticks, seed, seconds_per_tick: 1800 }).unwrap()
}

#[test]
fn a_small_day_matches_its_golden_timeline() {
    let outcome = run(small_world(), 1, 48);
    insta::assert_snapshot!("small_day_timeline", outcome.timeline.jsonl());
    insta::assert_snapshot!("small_day_digest", outcome.digest.to_hex());
    assert_eq!(outcome.session.flags["bread"], json!({"fresh": true}), "ann baked");
    let affinity = outcome.session.relationships["npc:bob"]["affinity"].as_f64().unwrap();
    assert!(affinity > 0.0, "bob chatted in the evening: {affinity}");
}

#[test]
fn the_same_seed_gives_the_same_digest_and_another_seed_may_not() {
    let a = run(small_world(), 7, 200);
    let b = run(small_world(), 7, 200);
    assert_eq!(a.timeline, b.timeline);
    assert_eq!(a.digest, b.digest);
    let others: Vec<_> = (8..16).map(|seed| run(small_world(), seed, 200).digest).collect();
    assert!(others.iter().any(|d| *d != a.digest), "the seed matters");
}

#[test]
fn a_bad_world_is_refused_naming_the_field() {
    let host = host();
    let cases = [
        (
            json!({"activities": {"a": {"effects": {"energyDeltaPerHour": "lots"}}}}),
            "meta.behavior.activities.a.effects.energyDeltaPerHour",
        ),
        (json!({"activities": {"a": {"cooldown": 5}}}), "meta.behavior.activities.a.cooldown"),
        (
            json!({"routines": {"day": {"nodes": [{"nodeType": "time_slot", "preferredActivities": []}]}}}),
            "meta.behavior.routines.day.nodes[0]",
        ),
        (
            json!({"routines": {"day": {"nodes": [{"nodeType": "activity", "preferredActivities": [{"activityId": "nope"}]}]}}}),
            "meta.behavior.routines.day.nodes[0].preferredActivities[0].activityId",
        ),
        (json!({"routines": {}}), "npcs[0].meta.behavior.routineId"),
        (
            json!({"routines": {"day": {}}, "simulationConfig": {"defaultTier": "fast"}}),
            "meta.behavior.simulationConfig.defaultTier",
        ),
        (
            json!({"routines": {"day": {}}, "scoringConfig": {"weights": {"charm": 1}}}),
            "meta.behavior.scoringConfig.weights",
        ),
    ];
    for (behavior, path) in cases {
        let error = Simulation::new(world(behavior.clone()), Session::default(), &host).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&format!("`{path}`")), "{behavior}: {text}");
    }
}

#[test]
fn schedule_only_npcs_follow_the_first_offer_and_a_cap_postpones_the_rest() {
    let mut w = small_world();
    let behavior = w.meta.get_mut("behavior").unwrap();
    behavior["simulationConfig"] = json!({
        "tiers": [{"id": "bg", "tickFrequencySeconds": 1, "detailLevel": "schedule_only"}],
        "priorityRules": [], "defaultTier": "bg", "maxNpcsPerTick": 1
    });
    let outcome = run(w, 3, 20);
    let ann = &outcome.timeline.npcs["ann"];
    let bob = &outcome.timeline.npcs["bob"];
    assert_eq!(ann[0].activity_id.as_deref(), Some("sleep"));
    assert_eq!(bob[0].tick, 1, "one NPC per tick, so bob waits a tick");
    let worked = ann.iter().filter_map(|e| e.activity_id.as_deref()).any(|a| a == "work");
    assert!(worked, "the morning slot's first offer: {ann:?}");
    assert_eq!(outcome.stats.effects_applied, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn state_stays_within_its_clamps_under_any_effects(
        energy in -50.0f64..50.0,
        valence in -150.0f64..150.0,
        affinity in -150.0f64..150.0,
        seed in 0u64..1000,
    ) {
        let mut w = small_world();
        let behavior = w.meta.get_mut("behavior").unwrap();
        behavior["activities"]["chat"]["effects"] = json!({
            "energyDeltaPerHour": energy,
            "moodImpact": {"valence": valence, "arousal": -valence},
            "relationshipChanges": {"self": {"affinity": affinity, "tension": -affinity}}
        });
        behavior["activities"]["work"]["effects"]["energyDeltaPerHour"] = json!(energy * 3.0);
        let a = run(w.clone(), seed, 60);
        for npc in ["ann", "bob"] {
            let state = &a.session.flags["npcs"][format!("npc:{npc}")]["state"];
            let e = state["energy"].as_f64().unwrap();
            prop_assert!((0.0..=100.0).contains(&e), "energy {e}");
            for axis in ["valence", "arousal"] {
                let m = state["moodState"][axis].as_f64().unwrap();
                prop_assert!((-100.0..=100.0).contains(&m), "{axis} {m}");
            }
            for entry in &a.timeline.npcs[npc] {
                prop_assert!((0.0..=100.0).contains(&entry.energy));
            }
        }
        for relationship in a.session.relationships.values() {
            for axis in ["affinity", "trust", "chemistry", "tension"] {
                let v = relationship[axis].as_f64().unwrap_or(0.0);
                prop_assert!((0.0..=100.0).contains(&v), "{axis} {v}");
            }
        }
        let b = run(w, seed, 60);
        prop_assert_eq!(a.digest, b.digest);
    }
}
