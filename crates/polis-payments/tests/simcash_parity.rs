//! polis against SimCash's own numbers: each fixture in `fixtures/simcash/`
//! holds what SimCash (aerugo/SimCash b97854b1, its Python layer over its
//! pyo3 extension) gave on a scenario file, with the command that produced
//! it. Costs per agent to the cent by component, counts and values, and the
//! payments completed per tick must all match.
#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers fail loudly on bad fixtures")]

use std::collections::BTreeMap;

use polis_payments::dsl::PolicyCache;
use polis_payments::sim::{self, Options, Report, Simulation};
use serde_json::{Value as Json, json};

fn fixture(name: &str) -> Json {
    let path = format!("{}/tests/fixtures/simcash/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn run(text: &str) -> Simulation {
    sim::simulate(text, &Options::default(), &PolicyCache::new()).unwrap_or_else(|e| panic!("{e}"))
}

/// An agent's numbers in the fixtures' shape.
fn numbers(report: &Report) -> BTreeMap<String, Json> {
    report
        .agents
        .iter()
        .map(|a| {
            let c = &a.costs;
            let n = json!({
                "total_cost": a.total_cost, "overdraft": c.overdraft, "delay": c.delay,
                "deadline_penalty": c.deadline_penalty, "eod_penalty": c.eod_penalty,
                "split_friction": c.split_friction, "collateral": c.collateral,
                "liquidity_opportunity": c.liquidity_opportunity,
                "arrived_count": a.arrived_count, "arrived_value": a.arrived_value,
                "settled_count": a.settled_count, "settled_value": a.settled_value,
            });
            (a.id.clone(), n)
        })
        .collect()
}

/// Every agent whose numbers differ, with both sides.
fn differences(ours: &BTreeMap<String, Json>, theirs: &Json) -> Vec<String> {
    let theirs = theirs.as_object().unwrap();
    let mut out = Vec::new();
    for (id, expected) in theirs {
        match ours.get(id) {
            Some(got) if got == expected => {}
            Some(got) => out.push(format!("{id}: polis {got} SimCash {expected}")),
            None => out.push(format!("{id}: missing in polis")),
        }
    }
    out
}

fn assert_matches(name: &str) {
    let fx = fixture(name);
    let scenario = fx["scenario"].as_str().unwrap();
    // polis's own scenarios live beside the fixtures; SimCash's are shared data.
    let path = if scenario.starts_with("fixtures/") {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(scenario)
    } else {
        let Some(path) = polis_testdata::require(scenario) else { return };
        path
    };
    let sim = run(&std::fs::read_to_string(path).unwrap());
    let report = Report::of(&sim);
    let diffs = differences(&numbers(&report), &fx["agents"]);
    assert!(diffs.is_empty(), "{name}: {} agents differ from SimCash:\n{}", diffs.len(), diffs.join("\n"));
    let completed: Vec<u64> = sim.outcome.ticks.iter().map(|t| t.completed).collect();
    let expected: Vec<u64> = serde_json::from_value(fx["settlements_per_tick"].clone()).unwrap();
    assert_eq!(completed, expected, "{name}: payments completed per tick");
}

#[test]
fn castro_exp1_2period_matches_simcash() {
    assert_matches("castro_exp1_2period");
}

#[test]
fn bis_liquidity_delay_tradeoff_matches_simcash() {
    assert_matches("bis_liquidity_delay_tradeoff");
}

#[test]
fn test_minimal_eod_matches_simcash_payment_for_payment() {
    assert_matches("test_minimal_eod");
}

#[test]
fn test_minimal_eod_matches_simcash_on_thirty_seeds() {
    let fx = fixture("test_minimal_eod_seeds");
    let Some(path) = polis_testdata::require(fx["scenario"].as_str().unwrap()) else { return };
    let text = std::fs::read_to_string(path).unwrap();
    let mut failures = Vec::new();
    for (seed, expected) in fx["seeds"].as_object().unwrap() {
        let seeded = text.replace("rng_seed: 42", &format!("rng_seed: {seed}"));
        assert_ne!(seeded, text, "the scenario's seed line changed");
        let diffs = differences(&numbers(&Report::of(&run(&seeded))), expected);
        failures.extend(diffs.into_iter().map(|d| format!("seed {seed}: {d}")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Arrival bands and the events SimCash's examples do not use: counterparty
/// weight, deadline window, scheduled settlements, compounding rate changes.
#[test]
fn bands_and_scenario_events_match_simcash() {
    assert_matches("bands_and_events");
}

/// The 100-bank Fifo day: ~100,000 payments, queue 2 and LSM cycles. Slow
/// in a debug build; `cargo test --release` runs it in well under a second.
#[test]
fn scale_100x100k_fifo_matches_simcash() {
    assert_matches("scale_100x100k_fifo");
}

/// The 100-bank day with holding policies (Fifo, Deadline, LiquidityAware):
/// held payments are re-decided every tick. SimCash took 1 h 15 min here.
#[test]
fn scale_100x100k_policies_matches_simcash() {
    assert_matches("scale_100x100k_policies");
}
