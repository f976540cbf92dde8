//! Strategy replays over HTTP against the real `polis serve`, on SQLite and
//! on PostgreSQL: a replay is a job the server's worker claims, pending
//! then ready with the digest `polis strategy replay` prints for the same
//! bars and catalog; its `intents.jsonl` hashes to that digest; asking
//! again answers the same replay; bad bars are refused naming line and
//! column; the server's catalog shows a disabled entry's reason; the
//! console page shows the catalog, metrics, breakers and the equity plot.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test code: a failing unwrap is a failing test")]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{READ, Server, postgres_url, scratch_dir, synthetic_bars_csv};

const CATALOG: &str = "[[strategies]]\nstrategy_id = \"legacy\"\nstrategy_type = \"legacy_macd_rsi\"\nversion = \"1.0.0\"\nsymbols = [\"T\"]\n\n[[strategies]]\nstrategy_id = \"mr\"\nstrategy_type = \"mean_reversion\"\nversion = \"1.0.0\"\nparams = { entry_z = 1.5, exit_z = 0.3 }\nsymbols = [\"T\"]\n\n[[strategies]]\nstrategy_id = \"ghost\"\nstrategy_type = \"no_such_family\"\nversion = \"1.0.0\"\nsymbols = [\"T\"]\n";

/// The digest the CLI prints for the same bars and catalog.
fn cli_digest(dir: &std::path::Path) -> String {
    let bars = dir.join("bars.csv");
    let catalog = dir.join("strategies.toml");
    let out = dir.join("out");
    let done = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["strategy", "replay", "--bars", bars.to_str().unwrap(), "--symbol", "T"])
        .args(["--catalog", catalog.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    std::fs::read_to_string(out.join("digest")).unwrap().trim().to_owned()
}

fn get_text(server: &Server, path: &str) -> (u16, String) {
    let (status, body) = server.call("GET", path, READ, None);
    (status, body.as_str().map_or_else(|| body.to_string(), str::to_owned))
}

fn replays_are_jobs_whose_digest_is_the_clis(database_url: &str) {
    let dir = scratch_dir("strategy-service");
    std::fs::write(dir.join("bars.csv"), synthetic_bars_csv()).unwrap();
    std::fs::write(dir.join("strategies.toml"), CATALOG).unwrap();
    let expected = cli_digest(&dir);
    let catalog_path = dir.join("strategies.toml");
    let server = Server::start(database_url, &["--strategy-catalog", catalog_path.to_str().unwrap()]);

    let request = json!({"bars_csv": synthetic_bars_csv(), "catalog": CATALOG, "symbol": "T"});
    let (status, first) = server.call("POST", "/api/strategy/replays", READ, Some(&request));
    assert_eq!(status, 200, "{first}");
    let id = first["replay_id"].as_str().unwrap().to_owned();
    assert!(["pending", "ready"].contains(&first["status"].as_str().unwrap()), "{first}");

    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let body = server.get(&format!("/api/strategy/replays/{id}"));
        if body["status"] == "ready" {
            break body;
        }
        assert_eq!(body["status"], "pending", "{body}");
        assert!(Instant::now() < deadline, "the replay never finished: {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ready["digest"], expected.as_str(), "{ready}");
    assert_eq!(ready["bars"], 300);
    let metrics = ready["metrics"].as_array().unwrap();
    let strategies: Vec<&str> = metrics.iter().map(|m| m["strategy"].as_str().unwrap()).collect();
    assert_eq!(strategies, ["legacy@1.0.0", "mr@1.0.0"]);
    let breakers: Vec<(&str, &str)> = ready["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["strategy"].as_str().unwrap(), b["state"].as_str().unwrap()))
        .collect();
    assert_eq!(breakers, [("legacy@1.0.0", "closed"), ("mr@1.0.0", "closed")]);

    let (status, jsonl) = get_text(&server, &format!("/api/strategy/replays/{id}/intents.jsonl"));
    assert_eq!(status, 200);
    assert_eq!(jsonl.lines().count() as u64, ready["intents"].as_u64().unwrap());
    assert_eq!(polis_core::canonical::Digest::of_bytes(jsonl.as_bytes()).to_hex(), expected);
    assert_eq!(jsonl, std::fs::read_to_string(dir.join("out/intents.jsonl")).unwrap());
    let (status, svg) = get_text(&server, &format!("/api/strategy/replays/{id}/equity.svg"));
    assert_eq!(status, 200);
    assert!(svg.starts_with("<svg") && svg.contains("mr@1.0.0"), "{}", &svg[..svg.len().min(200)]);

    // Asking again answers the stored replay.
    let (status, again) = server.call("POST", "/api/strategy/replays", READ, Some(&request));
    assert_eq!(status, 200);
    assert_eq!(again["replay_id"], id.as_str());
    assert_eq!(again["digest"], expected.as_str());

    // Bad input is refused before anything is stored, naming the field.
    let mut bad_bars = synthetic_bars_csv();
    bad_bars.push_str("1603843200,1,2,1,oops,5\n");
    let (status, body) = server.call(
        "POST",
        "/api/strategy/replays",
        READ,
        Some(&json!({"bars_csv": bad_bars, "catalog": CATALOG, "symbol": "T"})),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "bars_csv");
    assert!(body["error"]["message"].as_str().unwrap().contains("line 302, column `Close`"), "{body}");
    let only_ghost = "[[strategies]]\nstrategy_id = \"ghost\"\nstrategy_type = \"no_such_family\"\nversion = \"1.0.0\"\nsymbols = [\"T\"]\n";
    let (status, body) = server.call(
        "POST",
        "/api/strategy/replays",
        READ,
        Some(&json!({"bars_csv": synthetic_bars_csv(), "catalog": only_ghost})),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "strategy.nothing_enabled");
    assert!(body["error"]["message"].as_str().unwrap().contains("`ghost`"), "{body}");
    let (status, body) = server.call(
        "POST",
        "/api/strategy/replays",
        READ,
        Some(&json!({"bars_csv": synthetic_bars_csv(), "catalog": CATALOG, "timeframe": "daily"})),
    );
    assert_eq!((status, &body["error"]["field"]), (422, &json!("timeframe")), "{body}");
    let (status, _) = server.call("GET", &format!("/api/strategy/replays/{id}"), "not-a-token", None);
    assert_eq!(status, 401);
    let (status, body) = server.call("GET", "/api/strategy/replays/job-nope", READ, None);
    assert_eq!((status, &body["error"]["code"]), (404, &json!("strategy.replay_not_found")), "{body}");

    let catalog = server.get("/api/strategy/catalog");
    let ghost = catalog["entries"].as_array().unwrap().iter().find(|e| e["strategy_id"] == "ghost").unwrap();
    assert_eq!(ghost["state"], "disabled");
    assert!(ghost["reasons"][0].as_str().unwrap().contains("no_such_family"), "{ghost}");

    let (status, html) = get_text(&server, "/console/strategy");
    assert_eq!(status, 200);
    for needle in
        ["id=\"catalog\"", "class=\"disabled\"", "id=\"metrics\"", "id=\"breakers\"", "id=\"equity\"", &expected]
    {
        assert!(html.contains(needle), "{needle} missing from the console page");
    }
    let (status, html) = get_text(&server, "/console");
    assert_eq!(status, 200);
    assert!(html.contains(&format!("/console/strategy?replay={id}")), "the front page links the replay");
}

#[test]
fn replays_on_sqlite_are_jobs_whose_digest_is_the_clis() {
    let dir = scratch_dir("strategy-sqlite");
    replays_are_jobs_whose_digest_is_the_clis(&format!("sqlite://{}", dir.join("polis.db").display()));
}

#[test]
fn replays_on_postgres_are_jobs_whose_digest_is_the_clis() {
    let Some(url) = postgres_url("strategy") else { return };
    replays_are_jobs_whose_digest_is_the_clis(&url);
}

#[test]
fn a_server_whose_catalog_does_not_parse_does_not_start_and_names_the_file() {
    let dir = scratch_dir("strategy-bad-catalog");
    let path = dir.join("broken.toml");
    std::fs::write(&path, "[[strategies]]\nstrategy_id = ").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["serve", "--database-url", &format!("sqlite://{}", dir.join("p.db").display())])
        .args(["--listen", "127.0.0.1:0", "--strategy-catalog", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.toml"), "{stderr}");
}
