//! Golden outputs of both built-ins on a hand-written city whose answer can
//! be checked by hand (see the comments), plus the contract's schemas.
//!
//! Bands for capacity 20: L = 4, U = 16. Donors: A (4 spare), B (2 spare);
//! F is `stale` and G has 4 docks, so both are ineligible. Receivers: C
//! (needs 4), D (3), H (4, `degraded` is allowed). E is inside its band.
//! Budget 9 bikes, 6 stations, 4 moves.
//!
//! Greedy takes edges shortest first: B→H 2 (200 m), A→C 4 (300 m); A is
//! then empty of excess and B too, so it stops with 6 bikes.
//! Global delivers the same 6 bikes (all the excess there is), at the same
//! 2·200 + 4·300 = 1,600 bike-metres, so both agree here.

#![expect(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use polis_core::contract::schemas;
use polis_rebalance::Rebalance;
use polis_rebalance::builtins::Builtin;
use polis_rebalance::contract::{PolicyInput, RebalanceParams};
use polis_rebalance::network::Network;

fn fixture() -> PolicyInput {
    serde_json::from_str(include_str!("fixtures/small_city.json")).unwrap()
}

/// A and B each have 2 spare bikes, C and D each need 2. A reaches C
/// (100 m) and D (150 m); B reaches only C (120 m). Greedy sends A's bikes
/// to the nearest, C, which strands B: 2 bikes. The flow sends A→D and
/// B→C: all 4 bikes, 540 bike-metres.
fn greedy_trap() -> PolicyInput {
    serde_json::from_str(include_str!("fixtures/greedy_trap.json")).unwrap()
}

#[test]
fn greedy_is_myopic_on_the_trap() {
    let input = greedy_trap();
    let network = Network::new(&input, &RebalanceParams::default()).unwrap();
    insta::assert_json_snapshot!(Builtin::Greedy.decide(&network));
}

#[test]
fn global_delivers_everything_on_the_trap() {
    let input = greedy_trap();
    let network = Network::new(&input, &RebalanceParams::default()).unwrap();
    let output = Builtin::Global.decide(&network);
    assert_eq!(output.summary.bikes_moved_total, 4);
    insta::assert_json_snapshot!(output);
}

#[test]
fn greedy_output_on_the_small_city() {
    let input = fixture();
    let network = Network::new(&input, &RebalanceParams::default()).unwrap();
    insta::assert_json_snapshot!(Builtin::Greedy.decide(&network));
}

#[test]
fn global_output_on_the_small_city() {
    let input = fixture();
    let network = Network::new(&input, &RebalanceParams::default()).unwrap();
    insta::assert_json_snapshot!(Builtin::Global.decide(&network));
}

#[test]
fn rebalance_contract_schemas() {
    insta::assert_json_snapshot!(schemas::<Rebalance>());
}
