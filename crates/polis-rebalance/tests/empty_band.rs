//! A band that holds no integer (`L = U + 1`): alpha 0.45 and beta 0.55 on
//! capacity 7 give L = 4 and U = 3, so a donor that gives its one spare bike
//! drops to U and "needs" one, and a receiver that takes one rises to L and
//! "has" one to spare. The rule: a station that received never gives, and
//! one that gave never receives, so a bike never travels on.

use polis_rebalance::builtins::Builtin;
use polis_rebalance::contract::*;
use polis_rebalance::greedy::{self, Stop};
use polis_rebalance::network::Network;
use polis_rebalance::validate::check_output;

/// A (4 bikes, one spare) → B (3, needs one) at 100 m; B → C (2, needs two)
/// at 50 m; D (5, two spare) → C at 300 m; D → A at 80 m.
fn empty_band_city() -> PolicyInput {
    let station = |key: &str, bikes: u32| Station {
        station_key: key.into(),
        capacity: 7,
        bikes,
        docks: 7 - bikes,
        bucket_quality: "ok".into(),
    };
    let edge = |from: &str, to: &str, dist_m: f64| Neighbor {
        from_station_key: from.into(),
        to_station_key: to.into(),
        dist_m,
        rank: 1,
    };
    PolicyInput {
        stations: vec![station("A", 4), station("B", 3), station("C", 2), station("D", 5)],
        neighbors: vec![edge("A", "B", 100.0), edge("B", "C", 50.0), edge("D", "A", 80.0), edge("D", "C", 300.0)],
        effort: Effort { bike_move_budget_per_step: 20, max_stations_touched: 10, max_moves: 10 },
        targets: Targets { alpha: 0.45, beta: 0.55, min_capacity_for_policy: 6 },
    }
}

fn keys(network: &Network, plan: &greedy::Plan) -> Vec<(String, String, u32)> {
    plan.moves.iter().map(|&(f, t, b)| (network.key(f).to_owned(), network.key(t).to_owned(), b)).collect()
}

#[test]
fn the_band_holds_no_integer() {
    let input = empty_band_city();
    let network = Network::new(&input, &RebalanceParams::default()).unwrap();
    let a = &network.stations()[network.index_of("A").unwrap()];
    assert_eq!((a.low, a.high), (4, 3));
}

#[test]
fn greedy_never_passes_a_received_bike_on_and_never_refills_a_donor() {
    let input = empty_band_city();
    let network = Network::new(&input, &RebalanceParams::default()).unwrap();
    let plan = greedy::plan(&network);
    // A → B first (the shortest live edge). Then B → C (50 m) would pass
    // B's new bike on and D → A (80 m) would refill a donor; neither is a
    // candidate, so D → C follows, and nothing is left.
    assert_eq!(keys(&network, &plan), [("A".into(), "B".into(), 1), ("D".into(), "C".into(), 2)]);
    assert_eq!(plan.stop, Stop::NoCandidates);
    check_output(&network, &Builtin::Greedy.decide(&network)).unwrap();
}

#[test]
fn the_validator_rejects_a_bike_passed_on_and_a_donor_refilled() {
    let input = empty_band_city();
    let network = Network::new(&input, &RebalanceParams::default()).unwrap();
    let mut output = Builtin::Greedy.decide(&network);
    let template = output.moves[0].clone();
    let mv = |rank: u32, from: &str, to: &str, dist_m: f64| Move {
        move_rank: rank,
        from_station_key: from.into(),
        to_station_key: to.into(),
        bikes_moved: 1,
        dist_m,
        ..template.clone()
    };
    output.moves = vec![mv(1, "A", "B", 100.0), mv(2, "B", "C", 50.0), mv(3, "D", "A", 80.0)];
    let codes: Vec<(&str, String)> =
        check_output(&network, &output).unwrap_err().0.into_iter().map(|v| (v.code, v.path)).collect();
    assert!(codes.contains(&("output.receiver_gives", "moves[1].from_station_key".into())), "{codes:?}");
    assert!(codes.contains(&("output.donor_receives", "moves[2].to_station_key".into())), "{codes:?}");
}

#[test]
fn global_respects_the_rule_too() {
    let input = empty_band_city();
    let network = Network::new(&input, &RebalanceParams::default()).unwrap();
    let output = Builtin::Global.decide(&network);
    check_output(&network, &output).unwrap();
    assert_eq!(output.summary.bikes_moved_total, 3, "{output:?}");
}
