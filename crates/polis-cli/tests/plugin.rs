//! `polis plugin test`, `polis plugin inspect` and `polis plugins list
//! --plugin-dir`, run as a user would.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly; clippy allows this in #[test] functions but not in the helpers they share"
)]

use std::path::PathBuf;
use std::process::Command;

fn here(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn polis(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_polis")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn plugin_test_passes_the_python_greedy_example() {
    let dir = here("../../examples/plugins/greedy-python");
    let (code, out) = polis(&["plugin", "test", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok    synth-0800"), "{out}");
    assert!(out.trim_end().ends_with("passed"), "{out}");
}

/// A copy of fixture `name` in a scratch directory with the Python SDK
/// beside it, as `polis plugin new` lays a plugin out; the repository keeps
/// one SDK file.
fn with_python_sdk(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("polis-fixture-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(here("tests/fixtures").join(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::copy(here("../../sdk/python/polis_plugin.py"), dir.join("polis_plugin.py")).unwrap();
    dir
}

#[test]
fn plugin_test_catches_a_nondeterministic_plugin() {
    let dir = with_python_sdk("nondeterministic");
    let (code, out) = polis(&["plugin", "test", dir.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  synth-0800"), "{out}");
    assert!(out.contains("nondeterministic: two runs gave outputs"), "{out}");
}

#[test]
fn plugin_inspect_shows_hashes_and_sandbox_layers() {
    let dir = here("../../examples/plugins/greedy-python");
    let (code, out) = polis(&["plugin", "inspect", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("plugin      example.greedy_python.v1"), "{out}");
    assert!(out.contains("artifact    sha256:"), "{out}");
    for layer in ["rlimits", "namespaces", "landlock", "seccomp"] {
        assert!(out.contains(&format!("sandbox     {layer:<11} active")), "{layer}: {out}");
    }
}

#[test]
fn plugins_list_shows_bad_plugins_disabled_with_their_reason() {
    let root = here("tests/fixtures/root");
    let (code, out) = polis(&["--json", "plugins", "list", "--plugin-dir", root.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = rows.as_array().unwrap();
    let find = |needle: &str| {
        rows.iter()
            .find(|r| r["plugin_id"].as_str().unwrap_or_default().contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {out}"))
    };
    assert_eq!(find("polis.rebal.greedy.v1")["status"], "active");
    let bad = find("bad");
    assert_eq!(bad["status"], "disabled");
    assert!(bad["reason"].as_str().unwrap().contains("missing field"), "{bad}");
    let missing = find("test.missing_artifact.v1");
    assert_eq!(missing["status"], "disabled");
    assert!(missing["reason"].as_str().unwrap().contains("artifact `absent.wasm` cannot be found"), "{missing}");
    // A remote plugin loads without its endpoint: only calls connect.
    assert_eq!(find("test.remote.v1")["status"], "active");
}

#[test]
fn a_remote_plugin_aimed_at_loopback_is_disabled_unless_its_host_is_allowlisted() {
    let root = std::env::temp_dir().join(format!("polis-remote-loopback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("inward");
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = std::fs::read_to_string(here("tests/fixtures/root/remote/manifest.json")).unwrap();
    let manifest = fixture.replace("https://policy.example.org/decide", "http://127.0.0.1:5432/decide");
    std::fs::write(dir.join("manifest.json"), manifest).unwrap();
    let status = |extra: &[&str]| {
        let mut args = vec!["--json", "plugins", "list", "--plugin-dir", root.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, out) = polis(&args);
        assert_eq!(code, 0, "{out}");
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
        let row = rows.as_array().unwrap().iter().find(|r| r["plugin_id"] == "test.remote.v1").cloned();
        row.unwrap_or_else(|| panic!("{out}"))
    };
    let refused = status(&[]);
    assert_eq!(refused["status"], "disabled", "{refused}");
    let reason = refused["reason"].as_str().unwrap();
    assert!(reason.contains("test.remote.v1") && reason.contains("127.0.0.1 is a loopback"), "{reason}");
    assert_eq!(status(&["--remote-allow-host", "127.0.0.1"])["status"], "active");
    std::fs::remove_dir_all(&root).unwrap();
}

/// `polis plugin new --lang python --contract CONTRACT`, then the
/// scaffold's own unit test and the contract's conformance suite.
fn python_scaffold_passes(contract: &str, name: &str) {
    let into = std::env::temp_dir().join(format!("polis-new-{contract}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&into);
    std::fs::create_dir_all(&into).unwrap();
    let (code, out) =
        polis(&["plugin", "new", "--lang", "python", "--contract", contract, "--into", into.to_str().unwrap(), name]);
    assert_eq!(code, 0, "{out}");
    let dir = into.join(name.replace('.', "-"));
    let unit = Command::new("python3").args(["-m", "unittest", "-q"]).current_dir(&dir).output().unwrap();
    assert!(unit.status.success(), "{}", String::from_utf8_lossy(&unit.stderr));
    let (code, out) = polis(&["plugin", "test", dir.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&into);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("passed"), "{out}");
}

#[test]
fn plugin_new_python_creates_a_plugin_that_passes_its_own_test_and_conformance() {
    python_scaffold_passes("rebalance.v1", "research.fresh_idea.v1");
}

#[test]
fn plugin_new_python_for_another_contract_passes_that_contracts_conformance() {
    python_scaffold_passes("echo.v1", "research.echo_idea.v1");
}

#[test]
fn plugin_new_refuses_an_unknown_contract_naming_the_known_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["plugin", "new", "--lang", "python", "--contract", "nope.v1", "research.x.v1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown contract `nope.v1`") && stderr.contains("`echo.v1`"), "{stderr}");
}

/// The TypeScript example, built by `scripts/test` (npm install, tsc).
/// Without its `dist/` the tests skip, except under CI.
fn typescript_example() -> Option<PathBuf> {
    let dir = here("../../examples/plugins/noop-typescript");
    if dir.join("dist").is_dir() && dir.join("node_modules").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "examples/plugins/noop-typescript is not built: run `npm install && npm run build` there (scripts/test does)"
    );
    eprintln!("skipping: examples/plugins/noop-typescript is not built (npm install && npm run build)");
    None
}

#[test]
fn plugin_test_passes_the_typescript_noop_example() {
    let Some(dir) = typescript_example() else {
        return;
    };
    let (code, out) = polis(&["plugin", "test", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("research.baseline.shift.v1"), "{out}");
    assert!(out.trim_end().ends_with("passed"), "{out}");
}

#[test]
fn plugin_new_typescript_creates_a_plugin_that_builds_passes_its_own_test_and_conformance() {
    // The example's node_modules (typescript, @types/node) stand in for an
    // `npm install`, so the test needs no network.
    let Some(example) = typescript_example() else {
        return;
    };
    let into = std::env::temp_dir().join(format!("polis-new-ts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&into);
    std::fs::create_dir_all(&into).unwrap();
    let (code, out) =
        polis(&["plugin", "new", "--lang", "typescript", "--into", into.to_str().unwrap(), "research.ts_idea.v1"]);
    assert_eq!(code, 0, "{out}");
    let dir = into.join("research-ts_idea-v1");
    std::os::unix::fs::symlink(example.join("node_modules"), dir.join("node_modules")).unwrap();
    let npm = Command::new("npm").args(["test", "--silent"]).current_dir(&dir).output().unwrap();
    assert!(npm.status.success(), "{}{}", String::from_utf8_lossy(&npm.stdout), String::from_utf8_lossy(&npm.stderr));
    let (code, out) = polis(&["plugin", "test", dir.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&into);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_replay_runs_plugins_from_a_plugin_dir_beside_the_builtins() {
    let city = std::env::temp_dir().join(format!("polis-replay-plugins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&city);
    let city_arg = city.to_str().unwrap();
    let (code, out) = polis(&["rebalance", "synth", "--stations", "40", "--days", "1", "--out", city_arg]);
    assert_eq!(code, 0, "{out}");
    let examples = here("../../examples/plugins");
    let (code, out) = polis(&[
        "--json",
        "rebalance",
        "replay",
        "--data",
        city_arg,
        "--from",
        "2024-01-01T06:00:00Z",
        "--to",
        "2024-01-01T09:00:00Z",
        "--policies",
        "rebal.greedy.v1,rebal.greedy_python.v1",
        "--plugin-dir",
        examples.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir_all(&city);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let text = report.to_string();
    // The Python port decides exactly like the built-in, bucket for bucket,
    // so the two policies' KPIs are the same numbers.
    let kpis = |policy: &str| {
        let rows = report["policies"].as_array().unwrap_or_else(|| panic!("no policies: {text}"));
        let row = rows.iter().find(|r| r["policy"] == policy).unwrap_or_else(|| panic!("{policy}: {text}"));
        row["metrics"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v["mean"].clone())).collect::<Vec<_>>()
    };
    assert_eq!(kpis("rebal.greedy.v1"), kpis("rebal.greedy_python.v1"));
    let moved = kpis("rebal.greedy.v1").into_iter().find(|(k, _)| k == "bikes_moved").unwrap().1;
    assert!(moved.as_f64().unwrap() > 0.0, "{text}");
}

#[test]
fn plugin_new_rust_creates_a_plugin_that_builds_to_wasm_passes_its_own_test_and_conformance() {
    let into = std::env::temp_dir().join(format!("polis-new-rs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&into);
    std::fs::create_dir_all(&into).unwrap();
    let (code, out) =
        polis(&["plugin", "new", "--lang", "rust", "--into", into.to_str().unwrap(), "research.rusty_idea.v1"]);
    assert_eq!(code, 0, "{out}");
    let dir = into.join("research-rusty_idea-v1");
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(cargo_toml.contains(r#"polis-guest = { path = "polis-guest" }"#), "the SDK is vendored: {cargo_toml}");
    assert!(dir.join("polis-guest/src/lib.rs").is_file());
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
    let (code, out) = polis(&["plugin", "test", dir.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&into);
    assert_eq!(code, 0, "{out}");
}

/// A root holding the Python greedy example beside a plugin that never
/// answers `initialize`.
fn root_with_a_silent_plugin() -> PathBuf {
    let root = std::env::temp_dir().join(format!("polis-lazy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(here("../../examples/plugins/greedy-python"), root.join("greedy-python")).unwrap();
    std::os::unix::fs::symlink(here("tests/fixtures/lazy/silent"), root.join("silent")).unwrap();
    root
}

#[test]
fn choosing_one_plugin_of_a_directory_starts_only_its_worker() {
    let root = root_with_a_silent_plugin();
    let input = here("../polis-rebalance/tests/fixtures/small_city.json");
    let out = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["rebalance", "run", "--json", "--plugin-dir", root.to_str().unwrap()])
        .args(["--policy", "rebal.greedy_python.v1", "--input", input.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Starting the silent plugin would have disabled it after its handshake
    // timed out, with a warning; it was never started.
    assert!(!stderr.contains("silent"), "{stderr}");
    let builtin = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["rebalance", "run", "--json", "--policy", "rebal.greedy.v1", "--input", input.to_str().unwrap()])
        .output()
        .unwrap();
    let moves = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap()["moves"].clone();
    assert_eq!(moves(&out.stdout), moves(&builtin.stdout));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn plugins_list_starts_workers_only_with_probe() {
    let root = here("tests/fixtures/probe");
    let status = |args: &[&str]| {
        let mut all = vec!["--json", "plugins", "list", "--plugin-dir", root.to_str().unwrap()];
        all.extend_from_slice(args);
        let (code, out) = polis(&all);
        assert_eq!(code, 0, "{out}");
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
        rows.as_array().unwrap().iter().find(|r| r["plugin_id"] == "test.dies.v1").cloned().unwrap()
    };
    assert_eq!(status(&[])["status"], "active", "loading is static");
    let probed = status(&["--probe"]);
    assert_eq!(probed["status"], "disabled", "{probed}");
    assert!(probed["reason"].as_str().unwrap().contains("initialize failed"), "{probed}");
}

/// A copy of the Python greedy example under `root/greedy`.
fn greedy_copy(root: &std::path::Path) -> PathBuf {
    let dir = root.join("greedy");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(here("../../examples/plugins/greedy-python")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

#[test]
fn a_signed_plugin_verifies_and_loads_with_its_key_and_a_tampered_one_is_refused_naming_the_file() {
    let root = std::env::temp_dir().join(format!("polis-signing-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let plugins = root.join("plugins");
    let dir = greedy_copy(&plugins);
    let key = root.join("ops");
    let (code, out) = polis(&["plugin", "keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let (public, secret) = (key.with_extension("pub"), key.with_extension("key"));
    assert!(std::fs::read_to_string(&public).unwrap().starts_with("untrusted comment:"));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    let (code, again) = polis(&["plugin", "keygen", "--out", key.to_str().unwrap()]);
    assert_ne!(code, 0, "a key was overwritten: {again}");

    let list = |extra: &[&str]| {
        let mut args = vec!["--json", "plugins", "list", "--plugin-dir", plugins.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, out) = polis(&args);
        assert_eq!(code, 0, "{out}");
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
        rows.as_array().unwrap().iter().find(|r| r["plugin_id"] == "example.greedy_python.v1").cloned().unwrap()
    };
    let trusted = ["--trusted-key", public.to_str().unwrap()];
    let unsigned = list(&trusted);
    assert_eq!(unsigned["status"], "disabled");
    assert!(unsigned["reason"].as_str().unwrap().contains("is not signed"), "{unsigned}");

    let (code, out) = polis(&["plugin", "sign", dir.to_str().unwrap(), "--key", secret.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("example.greedy_python.v1 1.0.0: 3 files with key"), "{out}");
    let (code, out) = polis(&["plugin", "verify", dir.to_str().unwrap(), "--key", public.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("verified    signed by key"), "{out}");
    assert_eq!(list(&trusted)["status"], "active");
    // Signatures are required only when keys are given.
    assert_eq!(list(&[])["status"], "active");

    let script = dir.join("plugin.py");
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("\nimport os  # added after signing\n");
    std::fs::write(&script, text).unwrap();
    let (code, out) = polis(&["plugin", "verify", dir.to_str().unwrap(), "--key", public.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("files differ from the signed list: changed plugin.py"), "{out}");
    let tampered = list(&trusted);
    assert_eq!(tampered["status"], "disabled");
    assert!(tampered["reason"].as_str().unwrap().contains("changed plugin.py"), "{tampered}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn plugin_audit_contains_every_hostile_case_of_every_tier_on_this_machine() {
    let (code, out) = polis(&["--json", "plugin", "audit"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let cases = report["cases"].as_array().unwrap();
    let escaped: Vec<&serde_json::Value> = cases.iter().filter(|c| c["contained"] != true).collect();
    assert!(escaped.is_empty(), "not contained: {escaped:#?}");
    assert_eq!((code, report["not_contained"].as_u64()), (0, Some(0)));
    for tier in ["process", "wasm", "remote"] {
        let count = cases.iter().filter(|c| c["tier"] == tier).count();
        assert!(count >= 6, "{tier}: only {count} cases");
    }
    let names: Vec<&str> = cases.iter().map(|c| c["case"].as_str().unwrap()).collect();
    for expected in ["read /etc/shadow", "fork bomb", "unbounded recursion", "a name resolving to loopback (localhost)"]
    {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("sandbox layer `seccomp`")), "{names:?}");
}
