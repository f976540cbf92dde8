//! The fuzz target's property, run as a test on every build: arbitrary and
//! mutated input documents never panic the parser, the validator or the
//! built-ins, and every output they produce validates. `fuzz/` holds the
//! same body as a libFuzzer target for long runs.

use polis_rebalance::builtins::Builtin;
use polis_rebalance::contract::{PolicyInput, RebalanceParams};
use polis_rebalance::network::Network;
use polis_rebalance::validate::check_output;
use proptest::prelude::*;

fn exercise(bytes: &[u8]) {
    let Ok(input) = serde_json::from_slice::<PolicyInput>(bytes) else {
        return;
    };
    let Ok(network) = Network::new(&input, &RebalanceParams::default()) else {
        return;
    };
    for which in Builtin::ALL {
        let output = which.decide(&network);
        assert!(check_output(&network, &output).is_ok(), "{which:?}: {:?}", check_output(&network, &output));
    }
}

const FIXTURE: &str = include_str!("fixtures/small_city.json");

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_documents_never_panic(edits in proptest::collection::vec((0..FIXTURE.len(), any::<u8>()), 1..6)) {
        let mut bytes = FIXTURE.as_bytes().to_vec();
        for (at, byte) in edits {
            bytes[at] = byte;
        }
        exercise(&bytes);
    }

    #[test]
    fn numeric_edits_never_panic(values in proptest::collection::vec(0u32..40, 8)) {
        // Rewrite every station's bikes and capacity: some valid, many not.
        let mut doc: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        for (i, v) in values.iter().enumerate() {
            doc["stations"][i]["bikes"] = serde_json::json!(v);
            doc["stations"][i]["capacity"] = serde_json::json!(v / 2 + 10);
        }
        exercise(&serde_json::to_vec(&doc).unwrap());
    }
}
