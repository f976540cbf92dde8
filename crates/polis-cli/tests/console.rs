//! The console in a real headless browser: `polis serve` on a synthetic
//! city, one run computed, then Debian's Chromium driven by Playwright
//! (`tests/browser/console.mjs`) opens the run's page, checks the map and
//! saves a screenshot.
//!
//! `scripts/test` installs Chromium and the npm package; without them the
//! test says it was skipped, except under CI, where it fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failing unwrap is a failing test"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn browser_ready() -> bool {
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

fn post(addr: &str, path: &str, body: &str) -> Value {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[test]
fn the_console_shows_a_runs_map_in_headless_chromium() {
    if !browser_ready() {
        return;
    }
    let polis = env!("CARGO_BIN_EXE_polis");
    let dir = std::env::temp_dir().join(format!("polis-console-{}", std::process::id()));
    let city = dir.join("city");
    std::fs::create_dir_all(&dir).unwrap();
    let status =
        Command::new(polis).args(["rebalance", "synth", "--stations", "120", "--out"]).arg(&city).output().unwrap();
    assert!(status.status.success());
    let db = format!("sqlite://{}", dir.join("polis.db").display());
    let status =
        Command::new(polis).args(["ingest", "gbfs"]).arg(&city).args(["--database-url", &db]).output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let mut server = Command::new(polis)
        .args(["serve", "--insecure-local", "--listen", "127.0.0.1:0", "--database-url", &db])
        .env("POLIS_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on http://").unwrap().to_owned();

    let body = r#"{"system_id":"city","decision_bucket_ts":1704101400,"policy_version":"rebal.global.v1"}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let answer = post(&addr, "/api/policy/run", body);
        if answer["status"] == "ready" {
            break answer;
        }
        assert!(Instant::now() < deadline, "{answer}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let moves = answer["result"]["moves"].as_array().unwrap().len();
    assert!(moves > 0);

    let screenshot = dir.join("console.png");
    let url = format!("http://{addr}/console/runs/{}", answer["run_id"].as_str().unwrap());
    let out =
        Command::new("node").current_dir(browser_dir()).arg("console.mjs").arg(&url).arg(&screenshot).output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "browser failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["status"], 200, "{seen}");
    assert_eq!(seen["stations"], 120, "one circle per station: {seen}");
    assert_eq!(seen["arrows"].as_u64(), Some(moves as u64), "one arrow per move: {seen}");
    assert_eq!(seen["move_rows"].as_u64(), Some(moves as u64), "{seen}");
    assert!(seen["map_width"].as_f64().unwrap() > 100.0, "{seen}");
    assert_eq!(seen["external_requests"], serde_json::json!([]), "the console needs no network");
    let png = std::fs::read(&screenshot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
    assert!(png.len() > 10_000, "the screenshot has content");
    eprintln!("screenshot: {}", screenshot.display());
}
