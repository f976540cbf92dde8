//! `polis plugin test` and `polis plugin new --contract strategy.v1` for
//! strategy plugins, run as a user would: the matrix passes the Python
//! mean_reversion fixture and every scaffold, and fails a plugin that
//! accepts any param or whose replay digest drifted.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly; clippy allows this in #[test] functions but not in the helpers they share"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn here(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn polis(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_polis")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("polis-strategy-plugin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Python mean_reversion fixture of polis-strategy with its SDK beside
/// it, in a scratch directory.
fn python_fixture(name: &str) -> PathBuf {
    let dir = scratch(name);
    let fixture = here("../polis-strategy/tests/fixtures/mean_reversion_py");
    for (from, file) in [(&fixture, "manifest.json"), (&fixture, "plugin.py")]
        .into_iter()
        .chain([(&here("../../sdk/python"), "polis_plugin.py"), (&here("../../sdk/python"), "polis_strategy.py")])
    {
        std::fs::copy(from.join(file), dir.join(file)).unwrap();
    }
    dir
}

fn passes(dir: &Path) -> String {
    let (code, out) = polis(&["plugin", "test", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    for check in ["deterministic", "params", "warmup_boundary", "missing_features", "stale_events", "performance"] {
        assert!(out.contains(&format!("ok    {check}")), "{check}: {out}");
    }
    assert!(out.contains("events/s"), "{out}");
    assert!(out.trim_end().ends_with("passed"), "{out}");
    out
}

#[test]
fn plugin_test_runs_the_strategy_matrix_on_the_python_fixture_and_freezes_its_digest() {
    let dir = python_fixture("py");
    let out = passes(&dir);
    assert!(out.contains("features [bb_zscore], warm-up 20 bars"), "{out}");
    let (_, json) = polis(&["--json", "plugin", "test", dir.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let fixtures = report["fixtures"].as_array().unwrap();
    let digest = fixtures.iter().find(|f| f["fixture"] == "deterministic").unwrap()["output_sha256"].clone();
    let digest = digest.as_str().unwrap().to_owned();
    // Freezing the digest makes replay parity a check; a drifted one fails.
    std::fs::create_dir_all(dir.join("expected")).unwrap();
    std::fs::write(dir.join("expected/replay.sha256"), format!("{digest}\n")).unwrap();
    let out = passes(&dir);
    assert!(out.contains("ok    replay_parity"), "{out}");
    std::fs::write(dir.join("expected/replay.sha256"), "0".repeat(64)).unwrap();
    let (code, out) = polis(&["plugin", "test", dir.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("FAIL  replay_parity          digest {digest} differs from")), "{out}");
}

#[test]
fn plugin_test_fails_a_strategy_that_accepts_an_unknown_param() {
    let dir = python_fixture("lax");
    let plugin = std::fs::read_to_string(dir.join("plugin.py")).unwrap();
    std::fs::write(dir.join("plugin.py"), plugin.replace("if key not in known:", "if False:")).unwrap();
    let (code, out) = polis(&["plugin", "test", dir.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  params                 accepted the unknown param `polis_conformance_unknown_param`"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("FAILED"), "{out}");
}

#[test]
fn polis_run_points_strategy_plugins_at_replay() {
    let dir = scratch("run");
    let input = dir.join("input.json");
    std::fs::write(&input, r#"{"subject": {}, "input": {}, "params": {}}"#).unwrap();
    let (code, out) =
        polis(&["run", "--contract", "strategy.v1", "--policy", "strategy.x.v1", "--input", input.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("polis strategy replay --plugin-dir"), "{out}");
}

fn new_plugin(lang: &str, name: &str) -> PathBuf {
    let into = scratch(&format!("new-{lang}"));
    let (code, out) =
        polis(&["plugin", "new", "--contract", "strategy.v1", "--lang", lang, "--into", into.to_str().unwrap(), name]);
    assert_eq!(code, 0, "{out}");
    let dir = into.join(name.replace('.', "-"));
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"contract\": \"strategy.v1\""), "{manifest}");
    assert!(
        manifest.contains(&format!("\"policy_version\": \"strategy.{}\"", &name["research.".len()..])),
        "{manifest}"
    );
    dir
}

#[test]
fn plugin_new_python_strategy_passes_its_own_tests_and_the_matrix() {
    let dir = new_plugin("python", "research.rsi_idea.v1");
    let unit = Command::new("python3").args(["-m", "unittest", "-q"]).current_dir(&dir).output().unwrap();
    assert!(unit.status.success(), "{}", String::from_utf8_lossy(&unit.stderr));
    let out = passes(&dir);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    assert!(out.contains("features [rsi_14], warm-up 15 bars"), "{out}");
}

#[test]
fn plugin_new_typescript_strategy_builds_passes_its_own_tests_and_the_matrix() {
    let node_modules = here("../../examples/plugins/noop-typescript/node_modules");
    if !node_modules.join(".bin/tsc").exists() {
        assert!(std::env::var_os("CI").is_none(), "CI needs examples/plugins/noop-typescript built (scripts/test)");
        eprintln!("skipping: examples/plugins/noop-typescript/node_modules is not installed");
        return;
    }
    let dir = new_plugin("typescript", "research.rsi_ts.v1");
    // The example's node_modules stand in for `npm install`: no network.
    std::os::unix::fs::symlink(&node_modules, dir.join("node_modules")).unwrap();
    let npm = Command::new("npm").args(["test", "--silent"]).current_dir(&dir).output().unwrap();
    assert!(npm.status.success(), "{}{}", String::from_utf8_lossy(&npm.stdout), String::from_utf8_lossy(&npm.stderr));
    passes(&dir);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn plugin_new_rust_strategy_builds_to_wasm_passes_its_own_tests_and_the_matrix() {
    let dir = new_plugin("rust", "research.rsi_rs.v1");
    // Offline: the workspace's own build has the dependencies in cargo's
    // cache, and the scaffold needs nothing else.
    let cargo = |args: &[&str]| {
        let out = Command::new(env!("CARGO"))
            .args(args)
            .args(["--offline", "--quiet"])
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "cargo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    cargo(&["test"]);
    cargo(&["build", "--release", "--target", "wasm32-unknown-unknown"]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let entry = manifest["runtime"]["entry"].as_str().unwrap();
    std::fs::copy(dir.join("target/wasm32-unknown-unknown/release").join(entry), dir.join(entry)).unwrap();
    passes(&dir);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}
