//! What the CLI's integration tests share: scratch directories, a scratch
//! PostgreSQL schema, and the headless browser's whereabouts. Each of those
//! skips with a reason when its service is missing, except under CI, where
//! it fails.

#![allow(dead_code, clippy::unwrap_used, clippy::panic, reason = "test support; each test crate uses a part")]

use std::path::{Path, PathBuf};

/// A new empty directory under the system's temporary directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "polis-test-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A URL of a fresh PostgreSQL schema, or `None` (skipped) without a
/// server outside CI.
pub fn postgres_url(prefix: &str) -> Option<String> {
    let base = polis_store::scratch::postgres_base_url();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    match runtime.block_on(polis_store::scratch::postgres_schema(&base, prefix)) {
        Ok(url) => Some(url),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI requires PostgreSQL at {base}: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no PostgreSQL at {base}: {e}");
            None
        }
    }
}

/// Where the Playwright scripts and their `node_modules` live.
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Whether Chromium and playwright-core are installed; outside CI a
/// missing one skips the test, under CI it fails.
pub fn browser_ready() -> bool {
    let chromium = std::env::var("POLIS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let ready = Path::new(&chromium).exists() && browser_dir().join("node_modules/playwright-core").is_dir();
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI requires chromium and tests/browser/node_modules (scripts/test installs them)"
        );
        eprintln!("skipped: chromium or playwright-core missing (scripts/test installs them)");
    }
    ready
}
