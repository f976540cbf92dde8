//! Locates the real-world data polis tests and benchmarks read in place.
//!
//! The data (a week of Bay Wheels GBFS, policy packs, payment policies)
//! lives outside the repository, in `../shared/data` next to the checkout,
//! and is never copied in. `POLIS_DATA_DIR` overrides the location.
//!
//! A fresh clone without the data still passes its tests: data-driven
//! tests say they were skipped. Under CI (`CI` set) the data is required
//! and a missing file fails the test, so a green CI always means the real
//! data was exercised.
//!
//! # Example
//!
//! ```
//! if let Some(week) = polis_testdata::find("baywheels-2023-03-06") {
//!     assert!(week.join("stations.csv").is_file());
//! }
//! ```
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

/// The data directory: `POLIS_DATA_DIR`, or `../shared/data` beside the
/// workspace.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("POLIS_DATA_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

/// The path of `relative` inside the data directory, if it exists.
pub fn find(relative: &str) -> Option<PathBuf> {
    let path = data_dir().join(relative);
    path.exists().then_some(path)
}

/// Like [`find`], for tests: when the data is missing, prints why the test
/// is skipped and returns `None`, except under CI, where it panics so that
/// a missing data set cannot pass silently.
#[expect(clippy::panic, reason = "a test-support helper: failing loudly under CI is its job")]
pub fn require(relative: &str) -> Option<PathBuf> {
    if let Some(path) = find(relative) {
        return Some(path);
    }
    let where_ = data_dir().join(relative);
    if std::env::var_os("CI").is_some() {
        panic!("CI requires the shared data at `{}` (set POLIS_DATA_DIR to move it)", where_.display());
    }
    eprintln!("skipped: shared data not found at `{}`", where_.display());
    None
}

/// The bytes of an example plugin built for `wasm32-unknown-unknown` in
/// release (`file` such as `polis_example_greedy.wasm`), from the target
/// directory (`CARGO_TARGET_DIR` or the workspace's `target`).
/// `scripts/test` builds the examples before testing; a missing module
/// panics with the command that builds it.
#[expect(clippy::panic, reason = "a test-support helper: a missing build step must fail loudly")]
pub fn example_wasm(file: &str) -> Vec<u8> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
    let path = target.join("wasm32-unknown-unknown/release").join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        let package = file.trim_end_matches(".wasm").replace('_', "-");
        panic!(
            "cannot read `{}` ({e}); build it with `cargo build -p {package} --release --target wasm32-unknown-unknown` (scripts/test does)",
            path.display()
        )
    })
}

/// Where the machine's Python lives, for tests that start Python process
/// plugins: the real interpreter (not a version manager's shim, which
/// would need to fork inside the sandbox), its installation prefix, and
/// the repository's Python SDK (`sdk/python`), which a test grants
/// read access to and puts on `PYTHONPATH` instead of copying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Python {
    /// The interpreter.
    pub exe: PathBuf,
    /// Its installation prefix (`sys.base_prefix`).
    pub prefix: PathBuf,
    /// `sdk/python` of this repository.
    pub sdk: PathBuf,
}

/// The machine's Python, for process-tier tests: the same interpreter
/// `polis_process::resolve_program` picks for `python3` (the process tier's
/// tests check that they agree). `PATH` is searched in order; each
/// `python3` is asked for its real executable (through any pyenv shim),
/// and when the tests run as root, whose workers drop to `nobody`, an
/// interpreter that others cannot reach (pyenv's under `/root`) is passed
/// over for the next.
#[expect(clippy::panic, reason = "a test-support helper: a missing interpreter must fail loudly")]
pub fn python() -> Python {
    let as_root = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata("/proc/self").unwrap_or_else(|e| panic!("/proc/self: {e}")),
    ) == 0;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sdk = PathBuf::from(format!("{}/../../sdk/python", env!("CARGO_MANIFEST_DIR")))
        .canonicalize()
        .unwrap_or_else(|e| panic!("sdk/python: {e}"));
    for candidate in std::env::split_paths(&path).map(|d| d.join("python3")).filter(|p| p.is_file()) {
        let Ok(out) = std::process::Command::new(&candidate)
            .args(["-c", "import sys; print(sys.executable); print(sys.base_prefix)"])
            .output()
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let Some(exe) = lines.next().and_then(|p| PathBuf::from(p).canonicalize().ok()) else { continue };
        let prefix = PathBuf::from(lines.next().unwrap_or_default());
        if !as_root || reachable_by_others(&exe) {
            return Python { exe, prefix, sdk };
        }
    }
    panic!("python3 must be installed where an unprivileged worker can run it (scripts/test checks)")
}

/// Whether every directory above `path` is searchable, and `path` readable
/// and executable, by users other than the owner and group.
fn reachable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.mode()).unwrap_or(0);
    path.ancestors().skip(1).all(|dir| mode(dir) & 0o001 != 0) && mode(path) & 0o005 == 0o005
}
