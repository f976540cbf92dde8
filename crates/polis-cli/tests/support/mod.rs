//! What the CLI's integration tests share: scratch directories, a scratch
//! PostgreSQL schema, and the headless browser's whereabouts. Each of those
//! skips with a reason when its service is missing, except under CI, where
//! it fails.

#![allow(dead_code, clippy::unwrap_used, clippy::panic, reason = "test support; each test crate uses a part")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

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

/// The URL of a NATS server: `POLIS_NATS_URL`, or the one on
/// 127.0.0.1:4222, started with `nats-server` when it is installed and
/// down. `None` (skipped) without one outside CI; under CI a failure.
pub fn nats_url() -> Option<String> {
    let url = std::env::var("POLIS_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let reachable = |url: &str| {
        let addr = url.trim_start_matches("nats://");
        addr.parse::<std::net::SocketAddr>()
            .ok()
            .and_then(|a| std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(1)).ok())
            .is_some()
    };
    if reachable(&url) {
        return Some(url);
    }
    if url == "nats://127.0.0.1:4222"
        && std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", "4222"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
    {
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if reachable(&url) {
                return Some(url);
            }
        }
    }
    assert!(std::env::var_os("CI").is_none(), "CI requires a NATS server at {url} (or `nats-server` on PATH)");
    eprintln!("skipped: no NATS server at {url}");
    None
}

/// The admin token of a [`Server`].
pub const ADMIN: &str = "test-admin-secret";
/// The read token of a [`Server`].
pub const READ: &str = "test-read-secret";

/// A running `polis serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub base: String,
    agent: ureq::Agent,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `polis serve` on `database_url` with one worker, an admin
    /// and a read token, and `extra` arguments.
    pub fn start(database_url: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_polis"))
            .args(["serve", "--database-url", database_url, "--listen", "127.0.0.1:0"])
            .args(["--admin-token", ADMIN, "--read-token", READ, "--workers", "1"])
            .args(extra)
            .env("POLIS_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected: {line}")).to_owned();
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Server { child, base, agent }
    }

    /// One request with a token; the status and the body (JSON, or the
    /// text as a JSON string).
    pub fn call(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {token}");
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("POST", body) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.map_or_else(String::new, Value::to_string)),
            ("PUT", body) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.map_or_else(String::new, Value::to_string)),
            _ => panic!("method {method}"),
        };
        let mut response = response.unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A GET with the read token that must answer 200.
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, READ, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// A request with the admin token.
    pub fn admin(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        self.call(method, path, ADMIN, Some(body))
    }
}

/// 300 daily bars from 2020-01-01 of a deterministic zig-zag walk, as CSV
/// with an unnamed time column in epoch seconds (as backtesting.py writes
/// its files, with another time form).
pub fn synthetic_bars_csv() -> String {
    let mut text = String::from(",Open,High,Low,Close,Volume\n");
    let mut close: f64 = 100.0;
    for i in 0..300i64 {
        let open = close;
        close *= 1.0 + (((i * 37) % 23) as f64 - 11.0) / 400.0;
        let day = 1_577_836_800 + i * 86_400;
        text.push_str(&format!(
            "{day},{open:.2},{:.2},{:.2},{close:.2},{}\n",
            open.max(close) + 0.5,
            open.min(close) - 0.5,
            1000 + i
        ));
    }
    text
}
