//! The console in a real headless browser: `polis serve` on a synthetic
//! city and on the Bay Wheels week, one run computed on each, then Debian's
//! Chromium driven by Playwright (`tests/browser/console.mjs`) opens the
//! run's page, checks the map (framing, arrows, legend, hover, wheel zoom,
//! the whole-system toggle) and saves a screenshot.
//!
//! `scripts/test` installs Chromium and the npm package; without them the
//! test says it was skipped, except under CI, where it fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failing unwrap is a failing test"
)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{browser_dir, browser_ready};

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

/// `polis serve` on `db`, the decision `body` asked for until ready, and
/// the browser script's findings on its run page; also the number of moves.
fn open_run_page(db: &str, body: &str, dir: &Path) -> (Value, usize) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["serve", "--insecure-local", "--listen", "127.0.0.1:0", "--database-url", db])
        .env("POLIS_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on http://").unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    let answer = loop {
        let answer = post(&addr, "/api/policy/run", body);
        if answer["status"] == "ready" {
            break answer;
        }
        assert!(Instant::now() < deadline, "{answer}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let moves = answer["result"]["moves"].as_array().unwrap().len();
    let screenshot = dir.join("console.png");
    let url = format!("http://{addr}/console/runs/{}", answer["run_id"].as_str().unwrap());
    let out =
        Command::new("node").current_dir(browser_dir()).arg("console.mjs").arg(&url).arg(&screenshot).output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "browser failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["status"], 200, "{seen}");
    assert_eq!(seen["external_requests"], serde_json::json!([]), "the console needs no network: {seen}");
    assert_eq!(seen["script_errors"], serde_json::json!([]), "{seen}");
    let png = std::fs::read(&screenshot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
    assert!(png.len() > 10_000, "the screenshot has content");
    eprintln!("screenshot: {}", screenshot.display());
    (seen, moves)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("polis-console-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ingest(feed: &Path, db: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["ingest", "gbfs"])
        .arg(feed)
        .args(["--database-url", db])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_console_shows_a_runs_map_in_headless_chromium() {
    if !browser_ready() {
        return;
    }
    let dir = temp_dir("synth");
    let city = dir.join("city");
    let status = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["rebalance", "synth", "--stations", "120", "--out"])
        .arg(&city)
        .output()
        .unwrap();
    assert!(status.status.success());
    let db = format!("sqlite://{}", dir.join("polis.db").display());
    ingest(&city, &db);
    let body = r#"{"system_id":"city","decision_bucket_ts":1704101400,"policy_version":"rebal.global.v1"}"#;
    let (seen, moves) = open_run_page(&db, body, &dir);
    assert!(moves > 0);
    assert_eq!(seen["arrows"].as_u64(), Some(moves as u64), "one arrow per move: {seen}");
    assert_eq!(seen["move_rows"].as_u64(), Some(moves as u64), "{seen}");
    assert!(seen["map_width"].as_f64().unwrap() > 100.0, "{seen}");
    assert_eq!(seen["legend"], 1, "{seen}");
    assert_eq!(seen["system_panels"], 1, "{seen}");
    assert_eq!(seen["system_stations"], 120, "the whole system shows one circle per station: {seen}");
    assert_eq!(seen["system_arrows"].as_u64(), Some(moves as u64), "{seen}");
}

/// Bay Wheels spans three cities, so a map of the whole system squeezes a
/// morning's San Francisco moves into a blob: the run page frames them.
#[test]
fn a_bay_wheels_run_map_frames_every_move_and_pans_zooms_and_names() {
    if !browser_ready() {
        return;
    }
    let Some(week) = polis_testdata::require("baywheels-2023-03-06") else {
        return;
    };
    let dir = temp_dir("baywheels");
    let db = format!("sqlite://{}", dir.join("polis.db").display());
    ingest(&week, &db);
    // Monday 2023-03-06 08:30 Pacific.
    let body =
        r#"{"system_id":"baywheels-2023-03-06","decision_bucket_ts":1678120200,"policy_version":"rebal.global.v1"}"#;
    let (seen, moves) = open_run_page(&db, body, &dir);
    assert!(moves > 0, "a Monday morning needs moves");
    assert_eq!(seen["arrows"].as_u64(), Some(moves as u64), "one arrow per move: {seen}");
    assert_eq!(seen["arrows_outside"], serde_json::json!([]), "every arrow inside the viewport: {seen}");
    assert!(
        seen["longest_arrow_px"].as_f64().unwrap() > 40.0,
        "framed moves are arrows people can see, not dots: {seen}"
    );
    assert!(seen["panels"].as_u64().unwrap() >= 2, "a morning's moves in several cities get a panel each: {seen}");
    let hover = &seen["hover"];
    assert!(hover["expected"].is_string(), "{seen}");
    assert_eq!(hover["shown"], hover["expected"], "pointing at a station names it: {seen}");
    let (framed, zoomed) = (seen["framed_width"].as_f64().unwrap(), seen["zoomed_width"].as_f64().unwrap());
    assert!(zoomed < framed * 0.9, "the wheel zooms in: {seen}");
    let radius = seen["station_radius_px_after_zoom"].as_f64().unwrap();
    assert!((radius - 4.0).abs() < 0.5, "stations keep their size on screen: {seen}");
    assert_eq!(seen["system_panels"], 1, "{seen}");
    assert!(seen["system_stations"].as_u64().unwrap() > 400, "{seen}");
    assert!(seen["url_after_toggle"].as_str().unwrap().ends_with("?frame=system"), "{seen}");
}
