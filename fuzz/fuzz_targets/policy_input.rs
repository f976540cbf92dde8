//! Untrusted `policy.input.v1` bytes: parsing, validation and both
//! built-ins must never panic, and whatever they output must validate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use polis_rebalance::builtins::Builtin;
use polis_rebalance::contract::{PolicyInput, RebalanceParams};
use polis_rebalance::network::Network;
use polis_rebalance::validate::check_output;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<PolicyInput>(data) else { return };
    let Ok(network) = Network::new(&input, &RebalanceParams::default()) else { return };
    if network.edges().len() > 5_000 {
        return;
    }
    for which in Builtin::ALL {
        let output = which.decide(&network);
        assert!(check_output(&network, &output).is_ok(), "{which:?} produced an invalid output");
    }
});
