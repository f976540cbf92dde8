//! Bad inputs get a clear error naming the field, never a panic.

use polis_rebalance::contract::{PolicyInput, RebalanceParams};
use polis_rebalance::network::Network;
use serde_json::{Value, json};

fn base() -> Value {
    json!({
        "stations": [
            {"station_key": "a", "capacity": 10, "bikes": 9, "docks": 1, "bucket_quality": "ok"},
            {"station_key": "b", "capacity": 10, "bikes": 0, "docks": 10, "bucket_quality": "ok"}
        ],
        "neighbors": [{"from_station_key": "a", "to_station_key": "b", "dist_m": 100.0, "rank": 1}],
        "effort": {"bike_move_budget_per_step": 10, "max_stations_touched": 4, "max_moves": 2},
        "targets": {"alpha": 0.2, "beta": 0.8, "min_capacity_for_policy": 5}
    })
}

/// Parses and validates a patched input, returning `(path, message)` of
/// every problem, parse errors included.
fn problems(patch: impl FnOnce(&mut Value)) -> Vec<(String, String)> {
    let mut doc = base();
    patch(&mut doc);
    let input: PolicyInput = match serde_path_to_error::deserialize(doc) {
        Ok(input) => input,
        Err(e) => return vec![(e.path().to_string(), e.into_inner().to_string())],
    };
    match Network::new(&input, &RebalanceParams::default()) {
        Ok(_) => Vec::new(),
        Err(v) => v.0.into_iter().map(|v| (v.path, v.message)).collect(),
    }
}

#[track_caller]
fn check(patch: impl FnOnce(&mut Value), path: &str, message_part: &str) {
    let found = problems(patch);
    assert!(
        found.iter().any(|(p, m)| p == path && m.contains(message_part)),
        "expected `{path}` with `{message_part}`, got {found:?}"
    );
}

#[test]
fn the_base_input_is_valid() {
    assert_eq!(problems(|_| {}), vec![]);
}

#[test]
fn malformed_json_is_an_error_not_a_panic() {
    assert!(serde_json::from_str::<PolicyInput>("{\"stations\": [").is_err());
}

#[test]
fn negative_capacity_names_the_field() {
    check(|d| d["stations"][1]["capacity"] = json!(-1), "stations[1].capacity", "-1");
}

#[test]
fn bikes_above_capacity_names_the_station() {
    check(|d| d["stations"][0]["bikes"] = json!(11), "stations[0].bikes", "capacity 10");
}

#[test]
fn edge_to_unknown_station_names_the_edge() {
    check(|d| d["neighbors"][0]["to_station_key"] = json!("zz"), "neighbors[0].to_station_key", "`zz`");
}

#[test]
fn negative_distance_names_the_edge() {
    check(|d| d["neighbors"][0]["dist_m"] = json!(-5.0), "neighbors[0].dist_m", "-5");
}

#[test]
fn nan_distance_is_rejected() {
    let mut input: PolicyInput = serde_json::from_value(base()).unwrap();
    input.neighbors[0].dist_m = f64::NAN;
    let problems = Network::new(&input, &RebalanceParams::default()).unwrap_err();
    assert_eq!(problems.0[0].path, "neighbors[0].dist_m");
    assert_eq!(problems.0[0].code, "input.bad_distance");
}

#[test]
fn infinite_distance_literal_is_a_parse_error() {
    let text = base().to_string().replace("100.0", "1e999");
    let error = serde_json::from_str::<PolicyInput>(&text).unwrap_err();
    assert!(error.to_string().contains("out of range"), "{error}");
}

#[test]
fn absurd_distance_names_the_edge() {
    check(|d| d["neighbors"][0]["dist_m"] = json!(1e300), "neighbors[0].dist_m", "within");
}

#[test]
fn duplicate_station_keys_are_rejected() {
    check(|d| d["stations"][1]["station_key"] = json!("a"), "stations[1].station_key", "also appears");
}

#[test]
fn duplicate_edges_are_rejected() {
    check(
        |d| {
            let edge = d["neighbors"][0].clone();
            d["neighbors"].as_array_mut().unwrap().push(edge);
        },
        "neighbors[1]",
        "also appears",
    );
}

#[test]
fn self_edges_are_rejected() {
    check(|d| d["neighbors"][0]["to_station_key"] = json!("a"), "neighbors[0]", "itself");
}

#[test]
fn band_fractions_must_be_ordered_fractions() {
    check(|d| d["targets"]["alpha"] = json!(1.5), "targets.alpha", "0..=1");
    check(|d| d["targets"]["alpha"] = json!(0.9), "targets.alpha", "above beta");
}

#[test]
fn unknown_fields_are_named() {
    let found = problems(|d| d["effort"]["max_move"] = json!(3));
    assert!(found[0].1.contains("max_move"), "{found:?}");
}

#[test]
fn zero_rank_is_rejected() {
    check(|d| d["neighbors"][0]["rank"] = json!(0), "neighbors[0].rank", "start at 1");
}
