//! `polis strategy …` end to end: features as JSON lines, a catalog check
//! that names every reason, a replay whose `--verify` passes and then
//! catches an edited intent, the live loop over stdin with a bad reload
//! that keeps the old catalog, and the live loop between two subjects of
//! a real NATS server with `/metrics` served.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::io::Write;
use std::process::{Command, Output, Stdio};

mod support;

fn polis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polis")).args(args).output().unwrap()
}

/// 300 daily bars in `dir/bars.csv`; returns the path.
fn bars_csv(dir: &std::path::Path) -> String {
    let path = dir.join("bars.csv");
    std::fs::write(&path, support::synthetic_bars_csv()).unwrap();
    path.display().to_string()
}

/// `polis strategy replay` of `csv` (symbol `T`) through `catalog` with
/// `--out out_dir`, which must succeed; returns the `intents.jsonl` it wrote.
fn replay_into(csv: &str, catalog: &std::path::Path, out_dir: &std::path::Path) -> String {
    let out = polis(&[
        "strategy",
        "replay",
        "--bars",
        csv,
        "--symbol",
        "T",
        "--catalog",
        catalog.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(out_dir.join("intents.jsonl")).unwrap()
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
    let expected = replay_into(&csv, &catalog, &dir.path().join("out"));
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
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn bars_published_on_nats_give_the_replays_intents_on_another_subject() {
    let Some(url) = support::nats_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let csv = bars_csv(dir.path());
    let catalog = dir.path().join("strategies.toml");
    std::fs::write(&catalog, CATALOG).unwrap();
    let expected = replay_into(&csv, &catalog, &dir.path().join("out"));
    let expected: Vec<&str> = expected.lines().collect();
    assert!(expected.len() > 5, "{}", expected.len());

    let unique = format!("{}.{}", std::process::id(), std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos());
    let (bars_subject, intents_subject) = (format!("polis.test.{unique}.bars"), format!("polis.test.{unique}.intents"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = runtime.block_on(async_nats::connect(url.as_str())).unwrap();
    let mut intents = runtime.block_on(client.subscribe(intents_subject.clone())).unwrap();
    runtime.block_on(client.flush()).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["strategy", "run", "--catalog", catalog.to_str().unwrap(), "--nats", &url])
        .args(["--subject", &bars_subject, "--out-subject", &intents_subject, "--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut metrics_url = None;
    loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0, "polis ended before its banner");
        if let Some(rest) = line.strip_prefix("metrics on ") {
            metrics_url = Some(rest.trim().to_owned());
        }
        if line.starts_with("running") {
            assert!(line.contains(&bars_subject), "{line}");
            break;
        }
    }
    let metrics_url = metrics_url.unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    for (i, row) in text.lines().skip(1).enumerate() {
        let f: Vec<&str> = row.split(',').collect();
        if i == 100 {
            runtime.block_on(client.publish(bars_subject.clone(), "not json".into())).unwrap();
        }
        let bar = format!(
            r#"{{"symbol":"T","ts":{},"open":{},"high":{},"low":{},"close":{},"volume":{}}}"#,
            f[0], f[1], f[2], f[3], f[4], f[5]
        );
        runtime.block_on(client.publish(bars_subject.clone(), bar.into())).unwrap();
    }
    runtime.block_on(client.flush()).unwrap();

    let mut received = Vec::new();
    let stalled = runtime.block_on(async {
        use futures_util::StreamExt;
        while received.len() < expected.len() {
            let next = tokio::time::timeout(std::time::Duration::from_secs(30), intents.next()).await;
            let Ok(Some(message)) = next else { return true };
            received.push(String::from_utf8(message.payload.to_vec()).unwrap());
        }
        false
    });
    if stalled {
        // Say what polis was doing: whether it still ran, and what it wrote.
        let running = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let status = child.wait().unwrap();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        panic!(
            "intents stopped arriving after {} of {}; polis {} ({status}); its stderr after the banner:\n{rest}",
            received.len(),
            expected.len(),
            if running { "was still running" } else { "had exited" }
        );
    }
    assert_eq!(received, expected);

    // Every bar was counted once the loop rendered its metrics again.
    let mut body = String::new();
    for _ in 0..50 {
        body = ureq::get(&metrics_url).call().unwrap().into_body().read_to_string().unwrap();
        if body.contains("strategy_events_total{strategy=\"legacy@1.0.0\"} 300\n") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(body.contains("strategy_events_total{strategy=\"legacy@1.0.0\"} 300\n"), "{body}");
    assert!(body.contains("strategy_eval_latency_ms_count{strategy=\"mr@1.0.0\"} "), "{body}");
    assert!(body.contains("strategy_plugin_enabled{strategy=\"mr@1.0.0\"} 1\n"), "{body}");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(out.status.success(), "{rest}");
    assert!(rest.contains("NATS message 101: not JSON"), "{rest}");
    assert!(rest.contains("legacy@1.0.0: 300 events"), "{rest}");
    assert!(out.stdout.is_empty(), "intents went to NATS, not stdout");
}

#[test]
fn a_plugin_that_throws_and_kills_its_worker_never_stops_the_live_loop() {
    let dir = tempfile::tempdir().unwrap();
    let csv = bars_csv(dir.path());
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let plugin = dir.path().join("plugins/crashy");
    std::fs::create_dir_all(&plugin).unwrap();
    for (from, name) in [
        ("crates/polis-cli/tests/fixtures/strategy-crashy", "manifest.json"),
        ("crates/polis-cli/tests/fixtures/strategy-crashy", "plugin.py"),
        ("sdk/python", "polis_plugin.py"),
        ("sdk/python", "polis_strategy.py"),
    ] {
        std::fs::copy(repo.join(from).join(name), plugin.join(name)).unwrap();
    }
    let alone = dir.path().join("alone.toml");
    std::fs::write(&alone, "[[strategies]]\nstrategy_id = \"legacy\"\nstrategy_type = \"legacy_macd_rsi\"\nversion = \"1.0.0\"\nsymbols = [\"T\"]\n").unwrap();
    let mixed = dir.path().join("mixed.toml");
    let text = std::fs::read_to_string(&alone).unwrap()
        + "\n[[strategies]]\nstrategy_id = \"crashy\"\nstrategy_type = \"strategy.crashy.v1\"\nversion = \"1.0.0\"\nsymbols = [\"T\"]\n";
    std::fs::write(&mixed, text).unwrap();
    let expected = replay_into(&csv, &alone, &dir.path().join("out"));

    let plugins = dir.path().join("plugins");
    let checked =
        polis(&["strategy", "catalog", "check", mixed.to_str().unwrap(), "--plugin-dir", plugins.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let mut child = Command::new(env!("CARGO_BIN_EXE_polis"))
        .args(["strategy", "run", "--catalog", mixed.to_str().unwrap(), "--plugin-dir", plugins.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    for row in text.lines().skip(1) {
        let f: Vec<&str> = row.split(',').collect();
        writeln!(
            stdin,
            r#"{{"symbol":"T","ts":{},"open":{},"high":{},"low":{},"close":{},"volume":{}}}"#,
            f[0], f[1], f[2], f[3], f[4], f[5]
        )
        .unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("running") && stderr.contains("2 enabled strategies"), "{stderr}");
    assert!(stderr.contains("legacy@1.0.0: 300 events"), "{stderr}");
    let crashy = stderr.lines().find(|l| l.starts_with("crashy@1.0.0:")).unwrap();
    assert!(!crashy.contains(" 0 errors"), "{crashy}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}
