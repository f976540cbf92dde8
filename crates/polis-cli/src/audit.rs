//! `polis plugin audit`: the hostile suite of every tier, run against this
//! machine, as a table of case, expected containment and what happened.
//!
//! The tiers' own test suites hold the same cases with finer assertions;
//! this command exists so that an operator can see, on the kernel and
//! account polis will really run under, which sandbox layers are enforced
//! and that each attack is contained. Every case is followed by a normal
//! call to the same plugin, which must be served: a contained attack
//! leaves the host working.
//!
//! The process cases run the hostile Python fixture
//! (`crates/polis-process/tests/fixtures/hostile`, compiled in), the wasm
//! cases small modules written here in WAT, the remote cases endpoints this
//! command serves on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use polis_core::manifest::Manifest;
use polis_core::policy::PolicyError;
use polis_process::LayerState;
use polis_rebalance::contract::{DecisionSubject, Rebalance, RebalanceParams};
use polis_rebalance::host::{Decision, Host, HostError};
use polis_runtime::{HostLimits, RunError, RunRecord};
use serde::Serialize;
use serde_json::json;

use crate::Outcome;
use crate::table::{Align, render};

/// How often, and how long at most, the audit looks for the watchdog to
/// kill a worker that misbehaves after replying.
const WATCHDOG_LOOK: Duration = Duration::from_secs(2);
const WATCHDOG_PATIENCE: Duration = Duration::from_secs(12);

const HOSTILE_MANIFEST: &str = include_str!("../../polis-process/tests/fixtures/hostile/manifest.json");
const HOSTILE_PLUGIN: &str = include_str!("../../polis-process/tests/fixtures/hostile/plugin.py");
const PYTHON_SDK: &str = include_str!("../../../sdk/python/polis_plugin.py");
const SELF_SIGNED_CERT: &[u8] = include_bytes!("../../polis-remote/tests/fixtures/self-signed.crt.der");
const SELF_SIGNED_KEY: &[u8] = include_bytes!("../../polis-remote/tests/fixtures/self-signed.key.der");

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// `process`, `wasm` or `remote`.
    pub tier: &'static str,
    /// What the plugin tries.
    pub case: String,
    /// What polis should do.
    pub expected: String,
    /// What polis did.
    pub observed: String,
    /// Whether what happened is the expected containment, and the next
    /// call was served.
    pub contained: bool,
}

/// Runs every tier's cases and prints the table; exits 1 when any case was
/// not contained.
pub fn run(json: bool) -> anyhow::Result<Outcome> {
    let scratch = std::env::temp_dir().join(format!("polis-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).with_context(|| format!("cannot create `{}`", scratch.display()))?;
    let mut cases = Vec::new();
    let eprint = |tier: &str| eprintln!("auditing the {tier} tier…");
    eprint("process");
    process_cases(&scratch, &mut cases)?;
    eprint("wasm");
    wasm_cases(&mut cases)?;
    eprint("remote");
    remote_cases(&mut cases)?;
    let _ = std::fs::remove_dir_all(&scratch);
    let failed = cases.iter().filter(|c| !c.contained).count();
    if json {
        println!("{}", serde_json::to_string_pretty(&json!({"cases": cases, "not_contained": failed}))?);
    } else {
        let rows: Vec<Vec<String>> = cases
            .iter()
            .map(|c| {
                let verdict = if c.contained { "ok" } else { "NOT CONTAINED" };
                vec![c.tier.to_owned(), c.case.clone(), c.expected.clone(), c.observed.clone(), verdict.to_owned()]
            })
            .collect();
        let headers = [
            ("tier", Align::Left),
            ("case", Align::Left),
            ("expected", Align::Left),
            ("observed", Align::Left),
            ("verdict", Align::Left),
        ];
        print!("{}", render(&headers, &rows, 70));
        println!("{} cases, {} not contained", cases.len(), failed);
    }
    Ok(if failed == 0 { Outcome::Success } else { Outcome::Findings })
}

/// A host for the cases, its breakers off: every case is one failure of
/// the same plugin, and each must reach the plugin to show its own
/// containment.
fn audit_host(registry: polis_core::registry::Registry<Rebalance>) -> anyhow::Result<Host> {
    let breaker = polis_runtime::BreakerConfig { error_budget: 0, ..polis_runtime::BreakerConfig::default() };
    Ok(Host::with_breaker(registry, HostLimits::default(), breaker)?)
}

/// A decision of `version` on the tiny synthetic city, with the hostile
/// fixture's `mode` in its params.
fn decide(host: &Host, version: &str, mode: Option<&str>) -> Result<RunRecord<Rebalance>, HostError> {
    let input = polis_rebalance::synth::tiny_input();
    let mut params = RebalanceParams::default();
    params.allowed_bucket_quality.extend(mode.map(|m| format!("mode:{m}")));
    let subject = DecisionSubject {
        system_id: "audit".to_owned(),
        sv: "sv1".to_owned(),
        decision_bucket_ts: 1_678_090_200,
        horizon_steps: 0,
    };
    let decision =
        Decision { subject: &subject, input: &input, params: &params, request_id: None, control: None, host: None };
    host.decide(version, &decision)
}

/// What a call came to, in a table cell.
fn observed<T>(result: &Result<T, HostError>) -> String {
    match result {
        Ok(_) => "ran and returned an output".to_owned(),
        Err(HostError::Run(RunError::Policy { error, .. })) => {
            let text = error.to_string();
            format!("{}: {}", error.code(), text.chars().take(90).collect::<String>())
        }
        Err(other) => other.to_string().chars().take(100).collect(),
    }
}

/// The limit a call was stopped at, if it was.
fn limit_of<T>(result: &Result<T, HostError>) -> Option<&'static str> {
    match result {
        Err(HostError::Run(RunError::Policy { error: PolicyError::LimitExceeded { limit, .. }, .. })) => Some(limit),
        _ => None,
    }
}

/// Whether a case's outcome is the containment expected.
type Check<'a> = Box<dyn Fn(&Result<RunRecord<Rebalance>, HostError>) -> bool + 'a>;

fn failed<T>(result: &Result<T, HostError>) -> bool {
    matches!(result, Err(HostError::Run(RunError::Policy { .. } | RunError::InvalidOutput { .. })))
}

// --- The process tier ---

const HOSTILE: &str = "rebal.hostile_python.v1";

fn process_cases(scratch: &Path, cases: &mut Vec<Case>) -> anyhow::Result<()> {
    let root = scratch.join("plugins");
    let dir = root.join("hostile");
    std::fs::create_dir_all(&dir)?;
    for (name, text) in
        [("manifest.json", HOSTILE_MANIFEST), ("plugin.py", HOSTILE_PLUGIN), ("polis_plugin.py", PYTHON_SDK)]
    {
        std::fs::write(dir.join(name), text)?;
    }
    let mut tiers = polis_plugins::Tiers::new()?;
    // A short CPU budget, so the spinning cases end in a second; the
    // plugin's stderr (tracebacks of refused calls) is not the report.
    tiers.process.sandbox.cpu_ms_per_call = 1000;
    tiers.process.log_sink = Arc::new(|_: &str, _: &str| {});
    let mut registry = polis_rebalance::builtins::registry();
    let Some(report) = polis_plugins::register_dir::<Rebalance>(&dir, &tiers, &mut registry) else {
        anyhow::bail!("the hostile fixture is not a rebalancing plugin");
    };
    if let Some(sandbox) = &report.sandbox {
        for (layer, state) in sandbox.layers() {
            let (observed, contained) = match state {
                LayerState::Active => ("enforced".to_owned(), true),
                LayerState::Disabled => ("disabled by configuration".to_owned(), false),
                LayerState::Unsupported { reason } => (format!("not enforced: {reason}"), false),
            };
            cases.push(Case {
                tier: "process",
                case: format!("sandbox layer `{layer}`"),
                expected: "enforced by this kernel".to_owned(),
                observed,
                contained,
            });
        }
    }
    if let Err(reason) = &report.outcome {
        cases.push(Case {
            tier: "process",
            case: "load the hostile fixture".to_owned(),
            expected: "loads".to_owned(),
            observed: reason.clone(),
            contained: false,
        });
        return Ok(());
    }
    let host = audit_host(registry)?;
    let me = std::process::id();
    let secret = scratch.join("polis.db");
    std::fs::write(&secret, "SQLite format 3\0 the host's data")?;
    let written = scratch.join("written-by-plugin");
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let refused = |r: &Result<RunRecord<Rebalance>, HostError>| failed(r);
    let immediate: Vec<(String, String, &str, Check<'_>)> = vec![
        ("kill the parent (os.kill(getppid()))".into(), "kill_parent".into(), "fails; polis lives", Box::new(refused)),
        (format!("kill polis by pid ({me})"), format!("kill:{me}"), "fails: polis is not visible", Box::new(refused)),
        (
            "kill every process it can see (kill -1)".into(),
            "kill_all".into(),
            "nothing outside dies",
            Box::new(|_| true),
        ),
        (format!("ptrace-attach to polis ({me})"), format!("ptrace:{me}"), "refused", Box::new(refused)),
        ("read /etc/shadow".into(), "read:/etc/shadow".into(), "unreadable", Box::new(refused)),
        ("read /etc/passwd".into(), "read:/etc/passwd".into(), "unreadable", Box::new(refused)),
        ("read polis's environment".into(), format!("read:/proc/{me}/environ"), "unreadable", Box::new(refused)),
        (
            "read a database file of the host".into(),
            format!("read:{}", secret.display()),
            "unreadable",
            Box::new(refused),
        ),
        (
            "write a file outside the sandbox".into(),
            format!("write:{}", written.display()),
            "refused; nothing written",
            Box::new(|r| failed(r) && !written.exists()),
        ),
        (
            format!("connect to 127.0.0.1:{port}"),
            format!("connect:{port}"),
            "refused; nothing connects",
            Box::new(|r| failed(r) && listener.accept().is_err()),
        ),
        ("fork bomb".into(), "fork_bomb".into(), "fork fails", Box::new(refused)),
        (
            "spin in the call".into(),
            "spin".into(),
            "killed at the `cpu_time` budget",
            Box::new(|r| limit_of(r) == Some("cpu_time")),
        ),
        ("open 200 files".into(), "open_files:200".into(), "fails at the open-files limit", Box::new(refused)),
        (
            "flood stderr with 2 MiB".into(),
            format!("stderr_flood:{}", 2 << 20),
            "killed at the `stderr_bytes` limit",
            Box::new(|r| limit_of(r) == Some("stderr_bytes")),
        ),
        ("reply with 20 MB".into(), "big:20000000".into(), "refused at the reply cap", Box::new(refused)),
        ("crash mid-call".into(), "crash".into(), "failure; worker restarted", Box::new(refused)),
        (
            "hang after half a reply".into(),
            "hang_half".into(),
            "killed at the `timeout`",
            Box::new(|r| limit_of(r) == Some("timeout")),
        ),
    ];
    for (case, mode, expected, check) in immediate {
        let result = decide(&host, HOSTILE, Some(&mode));
        let mut contained = check(&result);
        let mut observed = observed(&result);
        served_next(&host, &mut contained, &mut observed);
        cases.push(Case { tier: "process", case, expected: expected.to_owned(), observed, contained });
    }
    // Attacks that return at once and are caught by the watchdog after.
    for (case, mode, expected, limit) in [
        ("leave 8 threads spinning after replying", "spin_threads:8", "killed at the `cpu_time` budget", "cpu_time"),
        ("leave 20 threads after replying", "threads:20", "killed at the `threads` limit", "threads"),
    ] {
        let first = decide(&host, HOSTILE, Some(mode));
        // On a loaded machine the watchdog can see the threads before the
        // reply is written: the call itself is then killed at the limit,
        // which contains the attack just as well.
        if limit_of(&first) == Some(limit) {
            let (mut contained, mut observed) = (true, format!("killed during the call: {}", observed(&first)));
            served_next(&host, &mut contained, &mut observed);
            cases.push(Case {
                tier: "process",
                case: case.to_owned(),
                expected: expected.to_owned(),
                observed,
                contained,
            });
            continue;
        }
        // The watchdog measures the worker between calls too, and needs a
        // few of its rounds to see the budget spent (1 s of CPU on these
        // cores) or the threads started, more on a loaded machine: look
        // every 2 s, up to WATCHDOG_PATIENCE. A normal call in between
        // leaves the threads running, so it changes nothing it measures.
        std::thread::sleep(WATCHDOG_LOOK);
        let mut next = decide(&host, HOSTILE, None);
        let mut waited = WATCHDOG_LOOK;
        while next.is_ok() && waited < WATCHDOG_PATIENCE {
            std::thread::sleep(WATCHDOG_LOOK);
            waited += WATCHDOG_LOOK;
            next = decide(&host, HOSTILE, None);
        }
        let (mut contained, mut observed) = match &next {
            Err(_) => (first.is_ok() && limit_of(&next) == Some(limit), format!("next call: {}", observed(&next))),
            Ok(_) => (false, format!("the worker was not killed within {} s", WATCHDOG_PATIENCE.as_secs())),
        };
        served_next(&host, &mut contained, &mut observed);
        cases.push(Case { tier: "process", case: case.to_owned(), expected: expected.to_owned(), observed, contained });
    }
    Ok(())
}

/// Requires the hostile plugin to serve a normal call after a case.
fn served_next(host: &Host, contained: &mut bool, observed: &mut String) {
    if let Err(error) = decide(host, HOSTILE, None) {
        *contained = false;
        observed.push_str(&format!("; the next call failed: {error}"));
    }
}

// --- The wasm tier ---

/// The manifest of audit plugin `name` in the given `runtime`, with no
/// permissions; `extra` members (limits) are added.
fn audit_manifest(name: &str, runtime: serde_json::Value, extra: serde_json::Value) -> anyhow::Result<Manifest> {
    let mut doc = json!({
        "contract_version": "policy.plugin.v1",
        "plugin_id": format!("audit.{name}.v1"),
        "plugin_version": "1.0.0",
        "policy_version": format!("rebal.audit_{name}.v1"),
        "strategy": "audit.v1",
        "display_name": name,
        "deterministic": true,
        "requires_neighbor_graph": true,
        "input_schema_version": "policy.input.v1",
        "output_schema_version": "policy.output.v1",
        "runtime": runtime,
    });
    if let (Some(doc), serde_json::Value::Object(extra)) = (doc.as_object_mut(), extra) {
        doc.extend(extra);
    }
    Ok(Manifest::from_value(doc)?)
}

fn wasm_manifest(name: &str) -> anyhow::Result<Manifest> {
    audit_manifest(name, json!({"tier": "wasm", "entry": "plugin.wasm"}), json!({}))
}

/// A module of ABI 1 whose `polis_run` body is `run`, with `extra` fields.
fn wat_module(extra: &str, memory_pages: u32, run: &str) -> anyhow::Result<Vec<u8>> {
    Ok(wat::parse_str(format!(
        r#"(module
            {extra}
            (memory (export "memory") {memory_pages})
            (func (export "polis_abi_version") (result i32) (i32.const 1))
            (func (export "polis_alloc") (param i32) (result i32) (i32.const 1024))
            (func (export "polis_run") (param $ptr i32) (param $len i32) (result i64) {run}))"#
    ))?)
}

fn wasm_cases(cases: &mut Vec<Case>) -> anyhow::Result<()> {
    let config = polis_wasm::WasmConfig {
        limits: polis_wasm::WasmLimits {
            // Fuel runs out well before the wall-clock deadline, so the
            // loop is stopped by the limit meant for it.
            fuel: 5_000_000,
            memory_bytes: 256 << 20,
            ..polis_wasm::WasmLimits::default()
        },
        ..polis_wasm::WasmConfig::default()
    };
    let runtime = polis_wasm::WasmRuntime::new(config)?;
    let output_at_zero = polis_wasm::abi::pack(0, 100_000_000);
    let good = r#"{"ok":{"moves":[],"summary":{"bikes_moved_total":0,"stations_touched":0,"no_op":true}}}"#;
    let escaped: String = good.bytes().map(|b| format!("\\{b:02x}")).collect();
    let good_module = wat_module(
        &format!(r#"(data (i32.const 65536) "{escaped}")"#),
        2,
        &format!("(i64.const {})", polis_wasm::abi::pack(65_536, good.len() as u32)),
    )?;
    let runs: Vec<(&str, &str, &str, Vec<u8>)> = vec![
        ("loop", "an infinite loop", "fuel", wat_module("", 2, "(loop $forever (br $forever)) (i64.const 0)")?),
        (
            "bomb",
            "a memory.grow storm",
            "memory",
            wat_module("", 2, "(loop $g (br_if $g (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable")?,
        ),
        (
            "deep",
            "unbounded recursion",
            "stack",
            wat_module(
                "(func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))",
                2,
                "(drop (call $down (i32.const 0))) (i64.const 0)",
            )?,
        ),
        ("huge", "a 100 MB output", "output_bytes", wat_module("", 1600, &format!("(i64.const {output_at_zero})"))?),
    ];
    let mut registry = polis_core::registry::Registry::<Rebalance>::new();
    let mut expectations = Vec::new();
    for (name, case, limit, wasm) in runs.into_iter().chain([("good", "", "", good_module)]) {
        let module = runtime.load(wasm_manifest(name)?, &wasm)?;
        let digest = module.artifact_digest();
        registry.register(Arc::new(polis_core::EndpointPolicy::<Rebalance>::new(Arc::new(module))), Some(digest))?;
        if !case.is_empty() {
            expectations.push((name, case, limit));
        }
    }
    let host = audit_host(registry)?;
    for (name, case, limit) in expectations {
        let result = decide(&host, &format!("rebal.audit_{name}.v1"), None);
        let mut contained = limit_of(&result) == Some(limit);
        let mut observed = observed(&result);
        if let Err(error) = decide(&host, "rebal.audit_good.v1", None) {
            contained = false;
            observed.push_str(&format!("; the next call failed: {error}"));
        }
        cases.push(Case {
            tier: "wasm",
            case: case.to_owned(),
            expected: format!("trapped at the `{limit}` limit"),
            observed,
            contained,
        });
    }
    let many: String = (0..100_000).map(|_| "(func)").collect();
    let imports = r#"(import "polis" "log" (func (param i32 i32))) (import "polis" "random_u64" (func (result i64)))"#;
    let refusals = [
        ("100,000 functions", wat_module(&many, 2, "(i64.const 0)")?, "wasm.module_limit"),
        (
            "a table of 1,000,000 elements",
            wat_module("(table 1000000 funcref)", 2, "(i64.const 0)")?,
            "wasm.module_limit",
        ),
        (
            "every host function imported, none granted",
            wat_module(imports, 2, "(i64.const 0)")?,
            "wasm.permission_denied",
        ),
        (
            "a WASI import",
            wat_module(
                r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
                2,
                "(i64.const 0)",
            )?,
            "wasm.unknown_import",
        ),
    ];
    for (case, wasm, code) in refusals {
        let loaded = runtime.load(wasm_manifest("refused")?, &wasm);
        let (observed, contained) = match loaded {
            Ok(_) => ("loaded".to_owned(), false),
            Err(e) => {
                (format!("{}: {}", e.code(), e.to_string().chars().take(90).collect::<String>()), e.code() == code)
            }
        };
        cases.push(Case {
            tier: "wasm",
            case: case.to_owned(),
            expected: format!("refused at load ({code})"),
            observed,
            contained,
        });
    }
    let oversized = vec![0u8; (polis_plugins::MAX_WASM_BYTES + 1) as usize];
    let dir = std::env::temp_dir().join(format!("polis-audit-wasm-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("plugin.wasm"), &oversized)?;
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&wasm_manifest("oversized")?)?)?;
    let mut registry = polis_core::registry::Registry::<Rebalance>::new();
    let tiers = polis_plugins::Tiers::new()?;
    let report = polis_plugins::register_dir::<Rebalance>(&dir, &tiers, &mut registry);
    let outcome = report.map(|r| r.outcome);
    let (observed, contained) = match &outcome {
        Some(Err(reason)) => (reason.chars().take(100).collect(), reason.contains("limit")),
        _ => ("loaded".to_owned(), false),
    };
    let _ = std::fs::remove_dir_all(&dir);
    cases.push(Case {
        tier: "wasm",
        case: format!("a module larger than {} MiB", polis_plugins::MAX_WASM_BYTES >> 20),
        expected: "not read past the cap".to_owned(),
        observed,
        contained,
    });
    Ok(())
}

// --- The remote tier ---

fn remote_manifest(name: &str, url: &str) -> anyhow::Result<Manifest> {
    let limits = json!({"limits": {"timeout_ms": 1000, "max_output_bytes": 1_000_000}});
    audit_manifest(name, json!({"tier": "remote", "entry": url}), limits)
}

const NO_OP: &str = r#"{"moves":[],"summary":{"bikes_moved_total":0,"stations_touched":0,"no_op":true}}"#;

/// Serves the remote cases on loopback: `/ok`, `/slow`, `/trickle`, `/big`
/// and `/redirect`. Returns the port.
fn endpoints() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    Ok(port)
}

fn serve(stream: TcpStream) {
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut stream = stream;
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let _ = match path.as_str() {
        "/slow" => {
            std::thread::sleep(Duration::from_secs(3));
            write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{NO_OP}", NO_OP.len())
        }
        "/trickle" => (|| {
            write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", NO_OP.len())?;
            for byte in NO_OP.bytes() {
                stream.write_all(&[byte])?;
                stream.flush()?;
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(())
        })(),
        "/big" => (|| {
            write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")?;
            let chunk = vec![b' '; 1 << 20];
            for _ in 0..100 {
                stream.write_all(&chunk)?;
            }
            Ok(())
        })(),
        "/redirect" => {
            write!(stream, "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/\r\nContent-Length: 0\r\n\r\n")
        }
        _ => write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{NO_OP}", NO_OP.len()),
    };
}

/// A TLS endpoint presenting a self-signed certificate for `localhost`.
fn self_signed_endpoint() -> anyhow::Result<u16> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let key = PrivateKeyDer::try_from(SELF_SIGNED_KEY.to_vec()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(SELF_SIGNED_CERT.to_vec())], key)?;
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let Ok(connection) = rustls::ServerConnection::new(Arc::clone(&config)) else { continue };
            let mut tls = rustls::StreamOwned::new(connection, tcp);
            let mut buffer = [0u8; 4096];
            let _ = tls.read(&mut buffer);
        }
    });
    Ok(port)
}

fn remote_cases(cases: &mut Vec<Case>) -> anyhow::Result<()> {
    let catalog = polis_core::contract::permission_catalog::<Rebalance>();
    let default = polis_remote::RemoteConfig::default();
    let loopback = polis_remote::RemoteConfig::allowing(&["127.0.0.1", "localhost"]);
    let port = endpoints()?;
    let tls_port = self_signed_endpoint()?;
    let witness = TcpListener::bind("127.0.0.1:0")?;
    witness.set_nonblocking(true)?;
    let witness_port = witness.local_addr()?.port();

    for (case, url) in [
        ("an entry on loopback (127.0.0.1)", "http://127.0.0.1:9/decide"),
        ("an entry on the cloud metadata address", "http://169.254.169.254/latest/meta-data"),
    ] {
        let loaded = polis_remote::RemotePlugin::new(remote_manifest("inward", url)?, &default, &catalog);
        let (observed, contained) = match loaded {
            Ok(_) => ("loaded".to_owned(), false),
            Err(e) => (
                e.to_string().chars().take(100).collect(),
                matches!(e, polis_remote::RemoteError::PrivateAddress { .. }),
            ),
        };
        cases.push(Case {
            tier: "remote",
            case: case.to_owned(),
            expected: "refused at load unless allowlisted".to_owned(),
            observed,
            contained,
        });
    }

    let mut registry = polis_rebalance::builtins::registry();
    let plugins = [
        ("named", format!("http://localhost:{witness_port}/"), &default),
        ("slow", format!("http://127.0.0.1:{port}/slow"), &loopback),
        ("trickle", format!("http://127.0.0.1:{port}/trickle"), &loopback),
        ("big", format!("http://127.0.0.1:{port}/big"), &loopback),
        ("redirect", format!("http://127.0.0.1:{port}/redirect"), &loopback),
        ("selfsigned", format!("https://localhost:{tls_port}/"), &loopback),
        ("ok", format!("http://127.0.0.1:{port}/ok"), &loopback),
    ];
    for (name, url, config) in plugins {
        let plugin = polis_remote::RemotePlugin::new(remote_manifest(name, &url)?, config, &catalog)?;
        registry.register(Arc::new(polis_core::EndpointPolicy::<Rebalance>::new(Arc::new(plugin))), None)?;
    }
    let host = audit_host(registry)?;
    let cases_of: [(&str, &str, &str, Check<'_>); 6] = [
        (
            "named",
            "a name resolving to loopback (localhost)",
            "refused before connecting",
            Box::new(|r| failed(r) && witness.accept().is_err()),
        ),
        (
            "slow",
            "an endpoint slower than the deadline",
            "cut at the `timeout`",
            Box::new(|r| limit_of(r) == Some("timeout")),
        ),
        (
            "trickle",
            "a reply trickling one byte a second",
            "cut at the `timeout`",
            Box::new(|r| limit_of(r) == Some("timeout")),
        ),
        ("big", "a 100 MB reply", "cut at the `output_bytes` cap", Box::new(|r| limit_of(r) == Some("output_bytes"))),
        ("redirect", "a redirect to another host", "refused", Box::new(failed)),
        (
            "selfsigned",
            "https with an untrusted certificate",
            "refused by TLS verification",
            Box::new(|r| failed(r) && observed(r).to_lowercase().contains("certificate")),
        ),
    ];
    for (name, case, expected, check) in cases_of {
        let result = decide(&host, &format!("rebal.audit_{name}.v1"), None);
        let mut contained = check(&result);
        let mut observed = observed(&result);
        if let Err(error) = decide(&host, "rebal.audit_ok.v1", None) {
            contained = false;
            observed.push_str(&format!("; the next call failed: {error}"));
        }
        cases.push(Case { tier: "remote", case: case.to_owned(), expected: expected.to_owned(), observed, contained });
    }
    Ok(())
}
