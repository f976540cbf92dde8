//! `polis strategy …` end to end: features as JSON lines, a catalog check
//! that names every reason, a replay whose `--verify` passes and then
//! catches an edited intent, and the live loop over stdin with a bad
//! reload that keeps the old catalog.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn polis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polis")).args(args).output().unwrap()
}

/// 300 daily bars, unnamed time column as backtesting.py writes them.
fn bars_csv(dir: &std::path::Path) -> String {
    let mut text = String::from(",Open,High,Low,Close,Volume\n");
    let mut close: f64 = 100.0;
    for i in 0..300i64 {
        let open = close;
        close *= 1.0 + (((i * 37) % 23) as f64 - 11.0) / 400.0;
        let day = time_of(i);
        text.push_str(&format!(
            "{day},{open:.2},{:.2},{:.2},{close:.2},{}\n",
            open.max(close) + 0.5,
            open.min(close) - 0.5,
            1000 + i
        ));
    }
    let path = dir.join("bars.csv");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn time_of(i: i64) -> String {
    // Consecutive days from 2020-01-01 as epoch seconds, a form the reader accepts.
    (1_577_836_800 + i * 86_400).to_string()
}

const CATALOG: &str = "[[strategies]]\nstrategy_id = \"legacy\"\nstrategy_type = \"legacy_macd_rsi\"\nversion = \"1.0.0\"\nsymbols = [\"T\"]\n\n[[strategies]]\nstrategy_id = \"mr\"\nstrategy_type = \"mean_reversion\"\nversion = \"1.0.0\"\nparams = { entry_z = 1.5, exit_z = 0.3 }\nsymbols = [\"T\"]\n";

#[test]
fn features_prints_one_feature_vector_per_bar() {
    let dir = tempfile::tempdir().unwrap();
    let csv = bars_csv(dir.path());
    let out = polis(&["strategy", "features", "--bars", &csv, "--symbol", "T"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 300);
    assert_eq!(lines[0]["event_ts"], "2020-01-01T00:00:00Z");
    assert_eq!(lines[0]["schema_version"], "feature_vector.v3");
    assert_eq!(lines[0]["values"].as_object().unwrap().len(), 2);
    assert_eq!(lines[299]["values"].as_object().unwrap().len(), 17);
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "date,open,high,low,close,volume\n2020-01-01,1,2,1,oops,5\n").unwrap();
    let out = polis(&["strategy", "features", "--bars", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2, column `close`: `oops` is not a number"));
}

#[test]
fn catalog_check_shows_every_entry_with_its_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strategies.toml");
    let text = format!(
        "{CATALOG}\n[[strategies]]\nstrategy_id = \"bad\"\nstrategy_type = \"mean_reversion\"\nversion = \"9.0.0\"\nsymbols = [\"T\"]\n"
    );
    std::fs::write(&path, text).unwrap();
    let out = polis(&["strategy", "catalog", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "disabled entries are findings");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("has no version `9.0.0`"), "{table}");
    assert_eq!(table.matches("enabled").count(), 2, "{table}");
    let out = polis(&["--json", "strategy", "catalog", "check", path.to_str().unwrap()]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["entries"][0]["state"], "disabled");
}

#[test]
fn replay_writes_its_outputs_and_verify_catches_a_changed_intent() {
    let dir = tempfile::tempdir().unwrap();
    let csv = bars_csv(dir.path());
    let catalog = dir.path().join("strategies.toml");
    std::fs::write(&catalog, CATALOG).unwrap();
    let out_dir = dir.path().join("out");
    let args = [
        "strategy",
        "replay",
        "--bars",
        &csv,
        "--symbol",
        "T",
        "--catalog",
        catalog.to_str().unwrap(),
        "--cost-bps",
        "5",
    ];
    let mut first = args.to_vec();
    first.extend(["--out", out_dir.to_str().unwrap()]);
    let out = polis(&first);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("legacy@1.0.0") && stdout.contains("sharpe"), "{stdout}");
    for file in ["intents.jsonl", "metrics.json", "digest", "equity.svg"] {
        assert!(out_dir.join(file).is_file(), "{file}");
    }
    let digest = std::fs::read_to_string(out_dir.join("digest")).unwrap();
    assert!(stdout.contains(digest.trim()));
    let mut verify = args.to_vec();
    verify.extend(["--verify", out_dir.to_str().unwrap()]);
    let out = polis(&verify);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("identical"));
    let intents = std::fs::read_to_string(out_dir.join("intents.jsonl")).unwrap();
    assert!(intents.contains("\"direction\":\"long\""));
    let edited = intents.replacen("\"direction\":\"long\"", "\"direction\":\"short\"", 1);
    std::fs::write(out_dir.join("intents.jsonl"), edited).unwrap();
    let out = polis(&verify);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("drift at intent "));
}

#[test]
fn the_live_loop_turns_stdin_bars_into_the_replays_intents() {
    let dir = tempfile::tempdir().unwrap();
    let csv = bars_csv(dir.path());
    let catalog = dir.path().join("strategies.toml");
    std::fs::write(&catalog, CATALOG).unwrap();
    let out_dir = dir.path().join("out");
    let replayed = polis(&[
        "strategy",
        "replay",
        "--bars",
        &csv,
        "--symbol",
        "T",
        "--catalog",
        catalog.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(replayed.status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["strategy", "run", "--catalog", catalog.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Wait until the loop has read the good catalog before spoiling it.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut banner).unwrap();
    assert!(banner.starts_with("running"), "{banner}");
    let text = std::fs::read_to_string(&csv).unwrap();
    for (i, row) in text.lines().skip(1).enumerate() {
        let f: Vec<&str> = row.split(',').collect();
        if i == 150 {
            // A bad catalog arrives mid-stream: the old one keeps running.
            std::fs::write(&catalog, "[[strategies]]\nstrategy_id = ").unwrap();
            writeln!(stdin, "not json").unwrap();
        }
        writeln!(
            stdin,
            r#"{{"symbol":"T","ts":{},"open":{},"high":{},"low":{},"close":{},"volume":{}}}"#,
            f[0], f[1], f[2], f[3], f[4], f[5]
        )
        .unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let stderr = rest;
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("reload refused, the old catalog keeps running"), "{stderr}");
    assert!(stderr.contains("stdin line 151: not JSON"), "{stderr}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), std::fs::read_to_string(out_dir.join("intents.jsonl")).unwrap());
}
