//! What `polis plugin test` checks a rebalancing plugin on, and how
//! `polis plugin new --contract rebalance.v1` starts one.

use std::path::PathBuf;

use polis_runtime::conformance::{Conformance, Scaffold};
use polis_runtime::parity::Case;

use crate::contract::{INPUT_SCHEMA_VERSION, OUTPUT_SCHEMA_VERSION, Rebalance, RebalanceParams};
use crate::snapshot::{BuiltSnapshot, SnapshotBuilder, SnapshotOptions};
use crate::synth::{self, CityOptions};

impl Conformance for Rebalance {
    /// Three decision times of a 60-station synthetic city, and seven of
    /// the Bay Wheels week when the shared data is present (in
    /// `POLIS_DATA_DIR`, else `../shared/data`).
    fn fixtures() -> Vec<Case<Rebalance>> {
        let mut fixtures = Vec::new();
        let city = synth::generate(CityOptions { stations: 60, days: 1, seed: 7 });
        let mut builder = SnapshotBuilder::new(SnapshotOptions::default());
        for (name, hours) in [("synth-0800", 8), ("synth-0930", 9), ("synth-1800", 18)] {
            let at = synth::START_TS + hours * 3600 + if name.ends_with("30") { 1800 } else { 0 };
            if let Ok(snapshot) = city.feed.snapshot_at(Some(at))
                && let Ok(built) = builder.build(&city.feed, snapshot, Some(at))
            {
                fixtures.push(case(name.to_owned(), built));
            }
        }
        let week = std::env::var_os("POLIS_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("../shared/data"))
            .join("baywheels-2023-03-06");
        if let Ok(feed) = crate::gbfs::Feed::open(&week) {
            let first = feed.snapshots.first().map_or(0, |s| s.ts);
            for hour in [0, 6, 9, 12, 15, 18, 21] {
                let at = first + hour * 3600;
                if let Ok(snapshot) = feed.snapshot_at(Some(at))
                    && let Ok(built) = builder.build(&feed, snapshot, Some(at))
                {
                    fixtures.push(case(format!("baywheels-{}", built.decision_bucket_ts), built));
                }
            }
        }
        fixtures
    }

    fn scaffold() -> Scaffold {
        Scaffold {
            policy_version_prefix: "rebal.",
            manifest_fields: serde_json::json!({
                "requires_neighbor_graph": true,
                "input_schema_version": INPUT_SCHEMA_VERSION,
                "output_schema_version": OUTPUT_SCHEMA_VERSION,
            }),
            python: &[("plugin.py", PYTHON_PLUGIN), ("test_plugin.py", PYTHON_TEST)],
            typescript: &[
                ("decide.ts", TYPESCRIPT_DECIDE),
                ("plugin.ts", TYPESCRIPT_PLUGIN),
                ("decide.test.mjs", TYPESCRIPT_TEST),
            ],
            rust: &[("src/lib.rs", RUST_PLUGIN)],
        }
    }
}

/// A decision on a built snapshot with default params.
pub fn case(label: String, built: BuiltSnapshot) -> Case<Rebalance> {
    Case { label, subject: built.subject(), input: built.input, params: RebalanceParams::default() }
}

const PYTHON_PLUGIN: &str = r#""""A polis rebalancing policy (process tier). Edit `decide`."""

import polis_plugin


def decide(request):
    """Returns policy.output.v1 for request["input"] (policy.input.v1)."""
    stations = request["input"]["stations"]
    return {
        "moves": [],
        "summary": {"bikes_moved_total": 0, "stations_touched": 0, "no_op": True},
        "diagnostics": {"stations_seen": len(stations)},
    }


if __name__ == "__main__":
    polis_plugin.serve(decide)
"#;

const PYTHON_TEST: &str = r#""""Run with `python3 -m unittest` here; `polis plugin test .` runs the conformance suite."""

import unittest

from plugin import decide


class DecideTest(unittest.TestCase):
    def test_an_empty_city_needs_no_moves(self):
        request = {
            "input": {
                "stations": [],
                "neighbors": [],
                "effort": {"bike_move_budget_per_step": 60, "max_stations_touched": 30, "max_moves": 20},
                "targets": {"alpha": 0.2, "beta": 0.8, "min_capacity_for_policy": 5},
            },
            "params": {"allowed_bucket_quality": ["ok", "degraded"]},
        }
        self.assertTrue(decide(request)["summary"]["no_op"])


if __name__ == "__main__":
    unittest.main()
"#;

const TYPESCRIPT_DECIDE: &str = r#"// A polis rebalancing policy (process tier). Edit `decide`.

import { noOp, type PolicyInput, type PolicyOutput, type RebalanceParams } from "./polis_plugin.js";

/** Returns policy.output.v1 for a policy.input.v1. */
export function decide(input: PolicyInput, _params: RebalanceParams): PolicyOutput {
  return noOp({ stations_seen: input.stations.length });
}
"#;

const TYPESCRIPT_PLUGIN: &str = r#"// The worker polis starts (`node dist/plugin.js`, in this directory): it
// answers JSON-RPC 2.0 on stdin and stdout with `decide`.

import { decide } from "./decide.js";
import { serve } from "./polis_plugin.js";

void serve(decide);
"#;

const TYPESCRIPT_TEST: &str = r#"// Run with `npm test` here; `polis plugin test .` runs the conformance suite.

import assert from "node:assert/strict";
import { test } from "node:test";

import { decide } from "./dist/decide.js";

test("an empty city needs no moves", () => {
  const input = {
    stations: [],
    neighbors: [],
    effort: { bike_move_budget_per_step: 60, max_stations_touched: 30, max_moves: 20 },
    targets: { alpha: 0.2, beta: 0.8, min_capacity_for_policy: 5 },
  };
  const output = decide(input, { allowed_bucket_quality: ["ok", "degraded"] });
  assert.equal(output.summary.no_op, true);
  assert.deepEqual(output.moves, []);
});
"#;

const RUST_PLUGIN: &str = r##"//! A polis rebalancing policy (wasm tier). Edit `decide`; build with
//! `cargo build --release --target wasm32-unknown-unknown` and copy the
//! `.wasm` next to manifest.json under the name its `runtime.entry` gives.

use polis_guest::{Error, Request};
use serde_json::{Value, json};

/// Returns policy.output.v1 for a policy.input.v1.
pub fn decide(request: Request<Value, Value>) -> Result<Value, Error> {
    let stations = request.input["stations"].as_array().map_or(0, Vec::len);
    Ok(json!({
        "moves": [],
        "summary": {"bikes_moved_total": 0, "stations_touched": 0, "no_op": true},
        "diagnostics": {"stations_seen": stations},
    }))
}

polis_guest::export_policy!(decide);

#[cfg(test)]
mod tests {
    #[test]
    fn an_empty_city_needs_no_moves() {
        let reply = polis_guest::handle(br#"{"input":{"stations":[]},"params":{}}"#, super::decide);
        assert!(String::from_utf8_lossy(&reply).contains(r#""no_op":true"#));
    }
}
"##;
