//! What `polis plugin test` checks an echo plugin on, and how `polis
//! plugin new --contract echo.v1` starts one.

use polis_runtime::conformance::{Conformance, Scaffold};
use polis_runtime::parity::Case;

use crate::{Echo, EchoInput, EchoParams, EchoSubject};

impl Conformance for Echo {
    /// An empty list, a short one, and one with negatives and a zero scale.
    fn fixtures() -> Vec<Case<Echo>> {
        let case = |label: &str, values: Vec<i64>, scale: i64| Case {
            label: label.to_owned(),
            subject: EchoSubject { label: label.to_owned() },
            input: EchoInput { values },
            params: EchoParams { scale },
        };
        vec![
            case("empty", vec![], 3),
            case("short", vec![1, 2, 3], 2),
            case("signed", vec![-5, 0, 7, i64::from(i32::MAX)], 0),
        ]
    }

    fn scaffold() -> Scaffold {
        Scaffold {
            policy_version_prefix: "echo.",
            manifest_fields: serde_json::json!({}),
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

const PYTHON_PLUGIN: &str = r#""""A polis echo.v1 policy (process tier). Edit `decide`."""

import polis_plugin


def decide(request):
    """Returns the input's values times the scale, and their sum."""
    scale = request["params"]["scale"]
    values = [v * scale for v in request["input"]["values"]]
    return {"values": values, "sum": sum(values), "notes": []}


if __name__ == "__main__":
    polis_plugin.serve(decide)
"#;

const PYTHON_TEST: &str = r#""""Run with `python3 -m unittest` here; `polis plugin test .` runs the conformance suite."""

import unittest

from plugin import decide


class DecideTest(unittest.TestCase):
    def test_values_are_scaled_and_summed(self):
        out = decide({"input": {"values": [1, 2]}, "params": {"scale": 3}})
        self.assertEqual(out["values"], [3, 6])
        self.assertEqual(out["sum"], 9)


if __name__ == "__main__":
    unittest.main()
"#;

const TYPESCRIPT_DECIDE: &str = r#"// A polis echo.v1 policy (process tier). Edit `decide`.

export interface EchoInput {
  values: number[];
}

export interface EchoParams {
  scale: number;
}

export interface EchoOutput {
  values: number[];
  sum: number;
  notes: string[];
}

/** Returns the input's values times the scale, and their sum. */
export function decide(input: EchoInput, params: EchoParams): EchoOutput {
  const values = input.values.map((v) => v * params.scale);
  return { values, sum: values.reduce((a, b) => a + b, 0), notes: [] };
}
"#;

const TYPESCRIPT_PLUGIN: &str = r#"// The worker polis starts (`node dist/plugin.js`, in this directory): it
// answers JSON-RPC 2.0 on stdin and stdout with `decide`.

import { decide } from "./decide.js";
import { serve } from "./polis_plugin.js";

void serve(decide as never);
"#;

const TYPESCRIPT_TEST: &str = r#"// Run with `npm test` here; `polis plugin test .` runs the conformance suite.

import assert from "node:assert/strict";
import { test } from "node:test";

import { decide } from "./dist/decide.js";

test("values are scaled and summed", () => {
  const output = decide({ values: [1, 2] }, { scale: 3 });
  assert.deepEqual(output.values, [3, 6]);
  assert.equal(output.sum, 9);
});
"#;

const RUST_PLUGIN: &str = r##"//! A polis echo.v1 policy (wasm tier). Edit `decide`; build with
//! `cargo build --release --target wasm32-unknown-unknown` and copy the
//! `.wasm` next to manifest.json under the name its `runtime.entry` gives.

use polis_guest::{Error, Request};
use serde_json::{Value, json};

/// Returns the input's values times the scale, and their sum.
pub fn decide(request: Request<Value, Value>) -> Result<Value, Error> {
    let scale = request.params["scale"].as_i64().unwrap_or(0);
    let values: Vec<i64> = request.input["values"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).map(|v| v * scale).collect())
        .unwrap_or_default();
    let sum: i64 = values.iter().sum();
    Ok(json!({"values": values, "sum": sum, "notes": []}))
}

polis_guest::export_policy!(decide);

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_scaled_and_summed() {
        let reply = polis_guest::handle(br#"{"input":{"values":[1,2]},"params":{"scale":3}}"#, super::decide);
        assert!(String::from_utf8_lossy(&reply).contains(r#""sum":9"#));
    }
}
"##;
