//! `polis plugin`: look at one plugin directory.

use std::path::PathBuf;

use clap::Subcommand;
use polis_core::permission::Grants;
use polis_process::LayerState;
use polis_rebalance::Rebalance;

use crate::Outcome;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a plugin directory (manifest + artifact) and show its identity,
    /// hashes, permissions, limits and, for process plugins, which sandbox
    /// layers are active on this kernel. Exits 1 when it does not load.
    Inspect {
        /// The plugin directory.
        dir: PathBuf,
    },
    /// Run the conformance suite on a plugin directory: the manifest loads,
    /// every fixture (a synthetic city, and Bay Wheels snapshots when the
    /// shared data is present) passes schema and semantic validation within
    /// the plugin's limits, each fixture run twice gives the same output
    /// hash, and outputs match `expected/<fixture>.sha256` where given.
    /// Prints a report; exits 1 on any failure.
    Test {
        /// The plugin directory.
        dir: PathBuf,
    },
    /// Create a working plugin (manifest, code, a test) in a new directory
    /// named after it.
    New {
        /// The plugin id, such as `research.my_algo.v1`.
        name: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: Lang,
        /// The contract.
        #[arg(long, default_value = "rebalance.v1")]
        contract: String,
        /// Where to create the directory.
        #[arg(long, default_value = ".")]
        into: PathBuf,
    },
}

/// Languages `polis plugin new` scaffolds.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Lang {
    /// Rust compiled to wasm32-unknown-unknown (wasm tier).
    Rust,
    /// Python 3 (process tier).
    Python,
    /// TypeScript compiled by `tsc` and run by Node.js (process tier).
    Typescript,
}

pub fn run(command: Command, json: bool) -> anyhow::Result<Outcome> {
    match command {
        Command::Inspect { dir } => inspect(dir, json),
        Command::Test { dir } => conformance(dir, json),
        Command::New { name, lang, contract, into } => scaffold(&name, lang, &contract, &into),
    }
}

fn inspect(dir: PathBuf, json: bool) -> anyhow::Result<Outcome> {
    let tiers = polis_plugins::Tiers::new()?;
    let mut registry = polis_core::registry::Registry::<Rebalance>::new();
    let Some(report) = polis_plugins::load_dir(&dir, &tiers, &mut registry) else {
        anyhow::bail!("`{}` is not a plugin of a contract this build knows", dir.display());
    };
    let entry = report.plugin_id.as_ref().and_then(|id| registry.entries().find(|e| &e.manifest.plugin_id == id));
    let granted: Vec<&str> = entry
        .map(|e| Grants::resolve(&e.manifest.permissions).granted().map(|p| p.name()).collect())
        .unwrap_or_default();
    if json {
        let body = serde_json::json!({
            "report": &report,
            "granted_permissions": granted,
            "manifest": entry.map(|e| &e.manifest),
        });
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        println!("plugin      {}", report.plugin_id.as_deref().unwrap_or("(unreadable manifest)"));
        println!("source      {}", report.source.display());
        if let Some(tier) = report.tier {
            println!("tier        {tier}");
        }
        if let Some(digest) = report.manifest_sha256 {
            println!("manifest    sha256:{}", digest.to_hex());
        }
        if let Some(digest) = report.artifact_sha256 {
            println!("artifact    sha256:{}", digest.to_hex());
        }
        if let Some(e) = entry {
            println!("policy      {} ({})", e.manifest.policy_version, e.manifest.strategy);
            println!("granted     {}", if granted.is_empty() { "(none)".to_owned() } else { granted.join(", ") });
        }
        if !report.unknown_permissions.is_empty() {
            println!("warning     unknown permissions not granted: {}", report.unknown_permissions.join(", "));
        }
        if let Some(sandbox) = &report.sandbox {
            for (layer, state) in sandbox.layers() {
                let text = match state {
                    LayerState::Active => "active".to_owned(),
                    LayerState::Disabled => "disabled by configuration".to_owned(),
                    LayerState::Unsupported { reason } => format!("unsupported: {reason}"),
                };
                println!("sandbox     {layer:<11} {text}");
            }
        }
        match &report.outcome {
            Ok(()) => println!("status      loads and registers"),
            Err(reason) => println!("status      disabled: {reason}"),
        }
    }
    Ok(if report.outcome.is_ok() { Outcome::Success } else { Outcome::Findings })
}

/// One conformance fixture.
struct Fixture {
    name: String,
    built: polis_rebalance::snapshot::BuiltSnapshot,
}

fn fixtures() -> Vec<Fixture> {
    use polis_rebalance::snapshot::{SnapshotBuilder, SnapshotOptions};
    use polis_rebalance::synth::{self, CityOptions};

    let mut fixtures = Vec::new();
    let city = synth::generate(CityOptions { stations: 60, days: 1, seed: 7 });
    let mut builder = SnapshotBuilder::new(SnapshotOptions::default());
    for (name, hours) in [("synth-0800", 8), ("synth-0930", 9), ("synth-1800", 18)] {
        let at = synth::START_TS + hours * 3600 + if name.ends_with("30") { 1800 } else { 0 };
        if let Ok(snapshot) = city.feed.snapshot_at(Some(at)) {
            fixtures.push(Fixture { name: name.to_owned(), built: builder.build(&city.feed, snapshot, Some(at)) });
        }
    }
    let week = std::env::var_os("POLIS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"))
        .join("baywheels-2023-03-06");
    if let Ok(feed) = polis_rebalance::gbfs::Feed::open(&week) {
        let first = feed.snapshots.first().map_or(0, |s| s.ts);
        for hour in [0, 6, 9, 12, 15, 18, 21] {
            let at = first + hour * 3600;
            if let Ok(snapshot) = feed.snapshot_at(Some(at)) {
                let built = builder.build(&feed, snapshot, Some(at));
                fixtures.push(Fixture { name: format!("baywheels-{}", built.decision_bucket_ts), built });
            }
        }
    }
    fixtures
}

#[derive(serde::Serialize)]
struct FixtureResult {
    fixture: String,
    output_sha256: Option<String>,
    problems: Vec<String>,
}

fn conformance(dir: PathBuf, json: bool) -> anyhow::Result<Outcome> {
    use polis_rebalance::host::{Decision, Host};

    let tiers = polis_plugins::Tiers::new()?;
    let mut registry = polis_core::registry::Registry::<Rebalance>::new();
    let Some(report) = polis_plugins::load_dir(&dir, &tiers, &mut registry) else {
        anyhow::bail!("`{}` is not a plugin of a contract this build knows", dir.display());
    };
    let mut results = Vec::new();
    let mut failed = false;
    if let Err(reason) = &report.outcome {
        failed = true;
        results.push(FixtureResult { fixture: "load".to_owned(), output_sha256: None, problems: vec![reason.clone()] });
    }
    let version = registry.versions().into_iter().next();
    let host = Host::new(registry, polis_runtime::HostLimits::default());
    let params = polis_rebalance::RebalanceParams::default();
    for fixture in version.as_ref().map(|_| fixtures()).unwrap_or_default() {
        let Some(version) = &version else { break };
        let built = &fixture.built;
        let decision = Decision {
            system_id: &built.system_id,
            sv: &built.sv,
            decision_bucket_ts: built.decision_bucket_ts,
            horizon_steps: 0,
            request_id: None,
            input: &built.input,
            params: &params,
            control: None,
        };
        let mut problems = Vec::new();
        let first = host.decide(version, &decision);
        let second = host.decide(version, &decision);
        let mut output_sha256 = None;
        match (first, second) {
            (Ok(a), Ok(b)) => {
                output_sha256 = Some(a.output_sha256.to_hex());
                if a.output_sha256 != b.output_sha256 {
                    problems.push(format!(
                        "nondeterministic: two runs gave outputs {} and {}",
                        a.output_sha256.to_hex(),
                        b.output_sha256.to_hex()
                    ));
                }
                let expected = dir.join("expected").join(format!("{}.sha256", fixture.name));
                if let Ok(text) = std::fs::read_to_string(&expected)
                    && text.trim() != a.output_sha256.to_hex()
                {
                    problems.push(format!(
                        "output {} differs from the expected {}",
                        a.output_sha256.to_hex(),
                        text.trim()
                    ));
                }
            }
            (Err(e), _) | (_, Err(e)) => problems.push(format!("{e} [{}]", e.code())),
        }
        failed |= !problems.is_empty();
        results.push(FixtureResult { fixture: fixture.name, output_sha256, problems });
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"plugin": report.plugin_id, "passed": !failed, "fixtures": &results})
            )?
        );
    } else {
        println!("conformance of {} ({})", report.plugin_id.as_deref().unwrap_or("?"), dir.display());
        for r in &results {
            if r.problems.is_empty() {
                println!("  ok    {:<22} {}", r.fixture, r.output_sha256.as_deref().map_or("", |h| &h[..16]));
            } else {
                for p in &r.problems {
                    println!("  FAIL  {:<22} {p}", r.fixture);
                }
            }
        }
        println!("{}", if failed { "FAILED" } else { "passed" });
    }
    Ok(if failed { Outcome::Findings } else { Outcome::Success })
}

/// The Python SDK, embedded so that scaffolds carry their own copy.
const PYTHON_SDK: &str = include_str!("../../../sdk/python/polis_plugin.py");
/// The TypeScript SDK, likewise.
const TYPESCRIPT_SDK: &str = include_str!("../../../sdk/typescript/polis_plugin.ts");

fn scaffold(name: &str, lang: Lang, contract: &str, into: &std::path::Path) -> anyhow::Result<Outcome> {
    use polis_core::contract::Contract;

    if contract != Rebalance::ID {
        anyhow::bail!("unknown contract `{contract}`; known: {}", Rebalance::ID);
    }
    polis_core::manifest::check_dotted_id(name)
        .map_err(|why| anyhow::anyhow!("malformed plugin id `{name}`: {why}"))?;
    let short = name.split('.').skip(1).collect::<Vec<_>>().join(".");
    let policy_version = format!("rebal.{short}");
    let dir = into.join(name.replace('.', "-"));
    if dir.exists() {
        anyhow::bail!("`{}` already exists", dir.display());
    }
    let (tier, entry) = match lang {
        Lang::Python => ("process", "python3 plugin.py".to_owned()),
        // One V8 thread: every extra thread's malloc arena reserves 64 MiB
        // of the address space the sandbox limits.
        Lang::Typescript => ("process", "node --v8-pool-size=0 dist/plugin.js".to_owned()),
        Lang::Rust => ("wasm", format!("{}.wasm", name.replace(['.', '-'], "_"))),
    };
    // The address-space limit: V8 reserves far more than it uses, and Node
    // does not start below about 768 MiB.
    let memory_mb = if matches!(lang, Lang::Typescript) { 1024 } else { 256 };
    let manifest = serde_json::json!({
        "contract_version": "policy.plugin.v1",
        "plugin_id": name,
        "plugin_version": "0.1.0",
        "policy_version": policy_version,
        "strategy": short,
        "display_name": name,
        "deterministic": true,
        "requires_neighbor_graph": true,
        "input_schema_version": Rebalance::INPUT_SCHEMA_VERSION,
        "output_schema_version": Rebalance::OUTPUT_SCHEMA_VERSION,
        "runtime": {"tier": tier, "entry": entry},
        "limits": {"timeout_ms": 2000, "memory_mb": memory_mb},
    });
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&manifest)? + "\n")?;
    match lang {
        Lang::Python => {
            std::fs::write(dir.join("polis_plugin.py"), PYTHON_SDK)?;
            std::fs::write(dir.join("plugin.py"), PYTHON_PLUGIN)?;
            std::fs::write(dir.join("test_plugin.py"), PYTHON_TEST)?;
        }
        Lang::Typescript => {
            std::fs::write(dir.join("polis_plugin.ts"), TYPESCRIPT_SDK)?;
            std::fs::write(dir.join("decide.ts"), TYPESCRIPT_DECIDE)?;
            std::fs::write(dir.join("plugin.ts"), TYPESCRIPT_PLUGIN)?;
            std::fs::write(dir.join("decide.test.mjs"), TYPESCRIPT_TEST)?;
            std::fs::write(dir.join("tsconfig.json"), TYPESCRIPT_CONFIG)?;
            std::fs::write(dir.join(".gitignore"), "node_modules/\ndist/\n")?;
            let package = serde_json::json!({
                "name": name.replace(['.', '_'], "-"),
                "version": "0.1.0",
                "private": true,
                "type": "module",
                "scripts": {"build": "tsc -p tsconfig.json", "test": "tsc -p tsconfig.json && node --test"},
                "devDependencies": {"@types/node": "20.19.25", "typescript": "5.6.3"},
            });
            std::fs::write(dir.join("package.json"), serde_json::to_string_pretty(&package)? + "\n")?;
        }
        Lang::Rust => {
            let guest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../polis-guest");
            let crate_name = name.replace(['.', '_'], "-");
            std::fs::create_dir_all(dir.join("src"))?;
            std::fs::write(
                dir.join("Cargo.toml"),
                format!(
                    "[package]\nname = \"{crate_name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]\npolis-guest = {{ path = \"{}\" }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\nserde_json = {{ version = \"1\", features = [\"float_roundtrip\"] }}\n\n[workspace]\n",
                    guest.display()
                ),
            )?;
            std::fs::write(dir.join("src/lib.rs"), RUST_PLUGIN)?;
        }
    }
    let build = match lang {
        Lang::Typescript => format!("cd {} && npm install && npm test; then ", dir.display()),
        Lang::Rust => "build it (see src/lib.rs); then ".to_owned(),
        Lang::Python => String::new(),
    };
    println!("created {} ({tier} tier); next: {build}polis plugin test {}", dir.display(), dir.display());
    Ok(Outcome::Success)
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

const TYPESCRIPT_CONFIG: &str = r#"{
  "compilerOptions": {
    "target": "es2022",
    "lib": ["es2022"],
    "module": "es2022",
    "moduleResolution": "bundler",
    "types": ["node"],
    "rootDir": ".",
    "outDir": "dist",
    "strict": true,
    "skipLibCheck": true
  },
  "files": ["plugin.ts", "decide.ts", "polis_plugin.ts"]
}
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
