//! Helpers shared by the plugin-tier tests: GOOG daily from backtesting.py,
//! plugin roots built in temporary directories, and the catalogs that name
//! the built-in and a plugin the same way.

#![allow(dead_code, reason = "each test file uses a different part")]
#![expect(clippy::expect_used, clippy::panic, reason = "test helpers fail loudly")]

use std::path::{Path, PathBuf};
use std::process::Command;

use polis_strategy::bars::{Bar, read_bars};
use polis_strategy::catalog::Catalog;

/// GOOG daily, or `None` (skipped) when backtesting.py is not installed
/// outside CI.
pub fn goog() -> Option<Vec<Bar>> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import backtesting, os; print(os.path.join(os.path.dirname(backtesting.__file__), 'test', 'GOOG.csv'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let Some(out) = out else {
        assert!(std::env::var_os("CI").is_none(), "CI needs `pip install backtesting` (scripts/test does it)");
        eprintln!("skipped: python3 cannot import backtesting");
        return None;
    };
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Some(read_bars(std::fs::File::open(path).expect("GOOG.csv opens"), "GOOG").expect("GOOG.csv reads"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh, empty directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("polis-strategy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Copies the files `names` of `from` into `to`.
pub fn copy(from: &Path, to: &Path, names: &[&str]) {
    std::fs::create_dir_all(to).expect("plugin directory");
    for name in names {
        std::fs::copy(from.join(name), to.join(name)).unwrap_or_else(|e| panic!("copy `{name}`: {e}"));
    }
}

/// A plugin root holding the Python mean_reversion fixture with its own
/// copy of the SDK (the sandbox lets it read only its directory).
pub fn python_root(name: &str) -> PathBuf {
    let root = scratch(name);
    let dir = root.join("mean_reversion_py");
    copy(&repo().join("crates/polis-strategy/tests/fixtures/mean_reversion_py"), &dir, &["manifest.json", "plugin.py"]);
    copy(&repo().join("sdk/python"), &dir, &["polis_plugin.py", "polis_strategy.py"]);
    root
}

/// The built-in mean_reversion on GOOG with the parity test's params.
pub const BUILTIN: &str = "[[strategies]]\nstrategy_id = \"mr\"\nstrategy_type = \"mean_reversion\"\nversion = \"1.0.0\"\nparams = { entry_z = 1.8, exit_z = 0.4 }\nsymbols = [\"GOOG\"]\n";

/// The same entry naming a plugin by the naming rule.
pub fn plugin_catalog(policy_version: &str, version: &str) -> Catalog {
    let text = BUILTIN
        .replace("\"mean_reversion\"", &format!("\"{policy_version}\""))
        .replace("\"1.0.0\"", &format!("\"{version}\""));
    Catalog::load("plugin.toml", &text).expect("catalog parses")
}

/// The TypeScript example's `node_modules` (typescript, @types/node), which
/// `scripts/test` installs; `None` (skipped) without them outside CI.
pub fn node_modules() -> Option<PathBuf> {
    let dir = repo().join("examples/plugins/noop-typescript/node_modules");
    if dir.join(".bin/tsc").exists() {
        return Some(dir);
    }
    assert!(std::env::var_os("CI").is_none(), "CI needs examples/plugins/noop-typescript/node_modules (scripts/test)");
    eprintln!("skipped: examples/plugins/noop-typescript/node_modules is not installed");
    None
}

/// A plugin root holding the TypeScript mean_reversion fixture compiled
/// by `tsc` with the SDK beside it, or `None` without TypeScript.
pub fn typescript_root(name: &str) -> Option<PathBuf> {
    let node_modules = node_modules()?;
    let root = scratch(name);
    let dir = root.join("mean_reversion_ts");
    copy(
        &repo().join("crates/polis-strategy/tests/fixtures/mean_reversion_ts"),
        &dir,
        &["manifest.json", "plugin.ts", "tsconfig.json"],
    );
    copy(&repo().join("sdk/typescript"), &dir, &["polis_plugin.ts", "polis_strategy.ts"]);
    std::os::unix::fs::symlink(&node_modules, dir.join("node_modules")).expect("node_modules link");
    let out = Command::new(node_modules.join(".bin/tsc"))
        .args(["-p", "tsconfig.json"])
        .current_dir(&dir)
        .output()
        .expect("tsc runs");
    assert!(
        out.status.success(),
        "tsc: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(root)
}

/// A plugin root holding the wasm mean_reversion
/// (examples/plugins/mean-reversion-rust, built by `scripts/test`).
pub fn wasm_root(name: &str) -> PathBuf {
    let root = scratch(name);
    let dir = root.join("mean_reversion_wasm");
    copy(&repo().join("examples/plugins/mean-reversion-rust"), &dir, &["manifest.json"]);
    let module = polis_testdata::example_wasm("polis_example_mean_reversion.wasm");
    std::fs::write(dir.join("polis_example_mean_reversion.wasm"), module).expect("module written");
    root
}
