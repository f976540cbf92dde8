//! The semantic validator catches each broken rule with its code and path.

#![expect(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use polis_rebalance::builtins::Builtin;
use polis_rebalance::contract::{Move, PolicyInput, PolicyOutput, RebalanceParams};
use polis_rebalance::network::Network;
use polis_rebalance::validate::check_output;

fn fixture() -> PolicyInput {
    serde_json::from_str(include_str!("fixtures/small_city.json")).unwrap()
}

/// Greedy's valid output on the fixture, patched, then validated: the codes
/// and paths of the violations.
fn violations(patch: impl FnOnce(&mut PolicyOutput)) -> Vec<(&'static str, String)> {
    let input = fixture();
    let network = Network::new(&input, &RebalanceParams::default()).unwrap();
    let mut output = Builtin::Greedy.decide(&network);
    patch(&mut output);
    match check_output(&network, &output) {
        Ok(()) => Vec::new(),
        Err(v) => v.0.into_iter().map(|v| (v.code, v.path)).collect(),
    }
}

#[track_caller]
fn check(patch: impl FnOnce(&mut PolicyOutput), code: &str, path: &str) {
    let found = violations(patch);
    assert!(found.iter().any(|(c, p)| *c == code && p == path), "expected {code} at {path}, got {found:?}");
}

fn mv(rank: u32, from: &str, to: &str, bikes: u32, dist_m: f64) -> Move {
    Move {
        move_rank: rank,
        from_station_key: from.into(),
        to_station_key: to.into(),
        bikes_moved: bikes,
        dist_m,
        budget_exhausted: false,
        neighbor_exhausted: false,
        reason_codes: vec![],
    }
}

#[test]
fn greedy_output_is_valid_as_is() {
    assert_eq!(violations(|_| {}), vec![]);
}

#[test]
fn a_move_off_the_neighbour_graph_is_rejected() {
    check(|o| o.moves[0].to_station_key = "D".into(), "output.not_neighbor", "moves[0]");
}

#[test]
fn a_move_to_an_unknown_station_is_rejected() {
    check(|o| o.moves[0].to_station_key = "nowhere".into(), "output.unknown_station", "moves[0]");
}

#[test]
fn an_empty_move_is_rejected() {
    check(|o| o.moves[0].bikes_moved = 0, "output.empty_move", "moves[0].bikes_moved");
}

#[test]
fn ranks_must_run_from_one() {
    check(|o| o.moves[1].move_rank = 7, "output.move_rank", "moves[1].move_rank");
}

#[test]
fn a_wrong_distance_is_rejected() {
    check(|o| o.moves[0].dist_m += 1.0, "output.wrong_distance", "moves[0].dist_m");
}

#[test]
fn draining_a_donor_below_its_band_top_is_rejected() {
    // A holds 20 with U = 16; moving 5 to C would leave 15.
    check(
        |o| {
            o.moves = vec![mv(1, "A", "C", 5, 300.0)];
            o.summary.bikes_moved_total = 5;
            o.summary.stations_touched = 2;
        },
        "output.donor_below_band",
        "moves[0].bikes_moved",
    );
}

#[test]
fn filling_a_receiver_above_its_band_bottom_is_rejected() {
    // D holds 1 with L = 4; 4 more would make 5.
    check(|o| o.moves = vec![mv(1, "A", "D", 4, 500.0)], "output.receiver_above_band", "moves[0].bikes_moved");
}

#[test]
fn ineligible_stations_cannot_take_part() {
    check(|o| o.moves = vec![mv(1, "A", "G", 1, 100.0)], "output.ineligible_station", "moves[0].to_station_key");
}

#[test]
fn the_bike_budget_binds() {
    let mut input = fixture();
    input.effort.bike_move_budget_per_step = 3;
    let network = Network::new(&input, &RebalanceParams::default()).unwrap();
    let mut output = Builtin::Greedy.decide(&Network::new(&fixture(), &RebalanceParams::default()).unwrap());
    output.moves.truncate(2);
    let codes: Vec<&str> = check_output(&network, &output).unwrap_err().0.iter().map(|v| v.code).collect();
    assert!(codes.contains(&"output.over_budget"), "{codes:?}");
}

#[test]
fn the_move_and_station_caps_bind() {
    let mut input = fixture();
    input.effort.max_moves = 1;
    input.effort.max_stations_touched = 2;
    let network = Network::new(&input, &RebalanceParams::default()).unwrap();
    let output = Builtin::Greedy.decide(&Network::new(&fixture(), &RebalanceParams::default()).unwrap());
    let codes: Vec<&str> = check_output(&network, &output).unwrap_err().0.iter().map(|v| v.code).collect();
    assert!(codes.contains(&"output.too_many_moves") && codes.contains(&"output.too_many_stations"), "{codes:?}");
}

#[test]
fn flags_must_tell_the_truth() {
    check(
        |o| o.moves[0].neighbor_exhausted = !o.moves[0].neighbor_exhausted,
        "output.neighbor_flag",
        "moves[0].neighbor_exhausted",
    );
    check(|o| o.moves[0].budget_exhausted = true, "output.budget_flag", "moves[0].budget_exhausted");
}

#[test]
fn the_summary_must_agree_with_the_moves() {
    check(|o| o.summary.bikes_moved_total += 1, "output.summary", "summary.bikes_moved_total");
    check(|o| o.summary.stations_touched = 1, "output.summary", "summary.stations_touched");
    check(|o| o.summary.no_op = true, "output.summary", "summary.no_op");
}

#[test]
fn the_empty_output_is_valid() {
    assert_eq!(violations(|o| *o = PolicyOutput::no_op(None)), vec![]);
}
