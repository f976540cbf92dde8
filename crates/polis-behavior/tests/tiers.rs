//! The same surfaces in the sandboxed tiers: every capability, granted and
//! not, in wasm (an ungranted import fails at load naming the permission),
//! in a Python worker process (an ungranted call gets a JSON-RPC error
//! naming it and the worker keeps serving) and in a remote plugin (its
//! request carries only what its permissions allow, and what it asks the
//! host to write needs the same permissions).

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::{PROBE, all_allowed, capabilities, denial, manifest, params_for, probe};
use polis_behavior::contract::REQUIRED_METHODS;
use polis_behavior::permissions::catalog;
use polis_behavior::{BehaviorHost, BehaviorPlugin, ContextHost, EndpointPlugin, HostConfig, Scene};
use polis_core::policy::{CallEnv, PluginEndpoint, RunControl};
use polis_process::{ProcessConfig, ProcessPlugin, ProcessSpec, SandboxConfig};
use polis_remote::{RemoteConfig, RemotePlugin};
use polis_wasm::{WasmConfig, WasmError, WasmRuntime};
use serde_json::{Value, json};

/// A module whose `register` calls capability `import` once with
/// `request` and answers the host's reply as its own.
fn calling_wat(import: &str, request: &Value) -> String {
    let body = request.to_string();
    format!(
        r#"(module
    (import "polis" "{import}" (func $cap (param i32 i32) (result i64)))
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 8192))
    (data (i32.const 16) "{data}")
    (func (export "polis_abi_version") (result i32) (i32.const 1))
    (func (export "polis_alloc") (param $len i32) (result i32) (local $p i32)
        (local.set $p (global.get $heap))
        (global.set $heap (i32.add (global.get $heap) (local.get $len)))
        (local.get $p))
    (func (export "polis_register") (param i32 i32) (result i64)
        (call $cap (i32.const 16) (i32.const {len}))))"#,
        data = body.replace('\\', "\\\\").replace('"', "\\\""),
        len = body.len(),
    )
}

fn env_call(
    endpoint: &dyn PluginEndpoint,
    method: &str,
    request: &Value,
    ctx: &polis_behavior::PluginContext,
) -> Result<Value, String> {
    let control = RunControl::new();
    let host = ContextHost::shared(ctx.clone());
    let env = CallEnv { seed: 7, control: &control, host: &host };
    let reply = endpoint.call(method, request.to_string().as_bytes(), &env).map_err(|e| e.to_string())?;
    serde_json::from_slice(&reply).map_err(|e| e.to_string())
}

#[test]
fn wasm_every_capability_links_only_when_granted_and_an_ungranted_import_fails_at_load_naming_it() {
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    for (method, permission) in capabilities() {
        let import = method.replace('.', "_");
        let wasm = wat::parse_str(calling_wat(&import, &params_for(method))).unwrap();
        let granted = runtime
            .load_with(manifest(PROBE, &[permission], "wasm", "probe.wasm"), &wasm, &catalog(), REQUIRED_METHODS)
            .unwrap_or_else(|e| panic!("`{method}` granted: {e}"));
        let p = probe(&[permission]);
        let reply = env_call(&granted, "register", &json!({}), &p.ctx).unwrap_or_else(|e| panic!("`{method}`: {e}"));
        assert_ne!(reply, Value::Null, "`{method}` answered");

        let error = runtime
            .load_with(manifest(PROBE, &[], "wasm", "probe.wasm"), &wasm, &catalog(), REQUIRED_METHODS)
            .err()
            .unwrap();
        assert!(
            matches!(&error, WasmError::PermissionDenied { permission: p, name, .. } if p == permission && *name == import),
            "`{method}`: {error}"
        );
        assert!(error.to_string().contains(&format!("needs permission `{permission}`")), "{error}");
    }
}

#[test]
fn a_wasm_plugin_writing_a_flag_reaches_the_session_through_the_same_namespace_rule() {
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let outside = json!({"key": "quest", "value": 1});
    let wasm = wat::parse_str(calling_wat("session_set_flag", &outside)).unwrap();
    let module = runtime
        .load_with(manifest(PROBE, &["session:write"], "wasm", "probe.wasm"), &wasm, &catalog(), REQUIRED_METHODS)
        .unwrap();
    let p = probe(&["session:write"]);
    // The host refuses; the guest passes the refusal on as its reply, which
    // is not a method result, so the call fails and nothing was written.
    assert!(env_call(&module, "register", &json!({}), &p.ctx).is_err());
    assert_eq!(p.session.lock().unwrap().flags["quest"], json!({"stage": 2}));
    let inside = json!({"key": "plugin:test.probe:x", "value": 2});
    let wasm = wat::parse_str(calling_wat("session_set_flag", &inside)).unwrap();
    let module = runtime
        .load_with(manifest(PROBE, &["session:write"], "wasm", "probe.wasm"), &wasm, &catalog(), REQUIRED_METHODS)
        .unwrap();
    assert_eq!(env_call(&module, "register", &json!({}), &p.ctx).unwrap(), json!({"ok": true}));
    assert_eq!(p.session.lock().unwrap().flags["plugin:test.probe:x"], json!(2));
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn python_plugin(permissions: &[&str]) -> ProcessPlugin {
    let python = polis_testdata::python();
    let mut sandbox = SandboxConfig::default();
    sandbox.read_paths.extend([python.prefix.clone(), python.exe.parent().unwrap().to_path_buf(), python.sdk.clone()]);
    let env = vec![("PYTHONPATH".to_owned(), python.sdk.display().to_string())];
    let spec = ProcessSpec { program: python.exe, args: vec!["plugin.py".into()], dir: fixture("probe"), env };
    let plugin = ProcessPlugin::new(
        manifest(PROBE, permissions, "process", "python3 plugin.py"),
        spec,
        ProcessConfig { sandbox, ..ProcessConfig::default() },
        catalog(),
    );
    plugin.start_worker().unwrap();
    plugin
}

#[test]
fn process_every_capability_is_answered_when_granted_and_refused_naming_the_permission_when_not() {
    let all: Vec<&str> = capabilities().into_iter().map(|(_, p)| p).collect();
    let granted = python_plugin(&all);
    let denied = python_plugin(&[]);
    let calls: Vec<Value> =
        capabilities().into_iter().map(|(m, _)| json!({"method": m, "params": params_for(m)})).collect();
    let p = probe(&all);
    let answers = env_call(&granted, "probe", &json!({"calls": calls}), &p.ctx).unwrap();
    for ((method, _), answer) in capabilities().into_iter().zip(answers.as_array().unwrap()) {
        assert!(answer.get("ok").is_some(), "`{method}` granted: {answer}");
    }
    assert_eq!(p.session.lock().unwrap().flags["plugin:test.probe:seen"], json!(1), "the write reached the session");

    let none = probe(&[]);
    let answers = env_call(&denied, "probe", &json!({"calls": calls}), &none.ctx).unwrap();
    for ((method, permission), answer) in capabilities().into_iter().zip(answers.as_array().unwrap()) {
        assert_eq!(answer["error"]["code"], json!(-32003), "`{method}`: {answer}");
        assert_eq!(answer["error"]["message"], json!(denial(method, permission)));
    }
    assert!(!none.session.lock().unwrap().flags.contains_key("plugin:test.probe:seen"), "the host was never asked");
    // The same worker keeps serving.
    let again =
        env_call(&denied, "probe", &json!({"calls": [{"method": "world.get", "params": {}}]}), &none.ctx).unwrap();
    assert_eq!(again[0]["error"]["code"], json!(-32003));
    assert_eq!(denied.stats().restarts, 0, "no restart was needed");
}

#[test]
fn a_python_condition_and_effect_run_through_the_host_with_fallbacks_and_scoping() {
    let plugin: Arc<dyn BehaviorPlugin> =
        Arc::new(EndpointPlugin::new(Arc::new(python_plugin(&["group:behavior", "npc:write"]))));
    let host = BehaviorHost::load(vec![plugin], HostConfig::default());
    assert_eq!(host.issues(), &[] as &[String]);
    let world = common::world();
    let scene = Scene::new(Arc::clone(&world), common::session(&world));
    let params = json!({"below": 50}).as_object().cloned().unwrap();
    let low = host.evaluate_condition("plugin:test.probe:low_energy", &params, Some("ann"), 1, &scene);
    assert_eq!((low.result, low.fallback), (false, None), "energy starts at 100");
    let tired = json!({"amount": -80}).as_object().cloned().unwrap();
    assert!(host.apply_effect("effect:plugin:test.probe:rest", &tired, Some("ann"), 1, &scene).applied);
    assert!(host.evaluate_condition("plugin:test.probe:low_energy", &params, Some("ann"), 1, &scene).result);
    // An effect on an NPC the world lacks is refused, undone and counted.
    let skipped = host.apply_effect("effect:plugin:test.probe:rest", &Default::default(), Some("zed"), 1, &scene);
    assert!(!skipped.applied && skipped.skipped.unwrap().contains("no NPC `zed`"));
    let report = &host.reports()[0];
    assert_eq!((report.health.effects.total, report.health.effects.failures), (2, 1));
}

/// A tiny HTTP server answering each path with a scripted JSON body and
/// keeping every request body it receives.
struct Remote {
    url: String,
    bodies: Arc<Mutex<Vec<(String, Value)>>>,
}

/// What a scripted server does with a request: answer it with a status and
/// a JSON body, or hold it unanswered.
enum Answer {
    Reply(u16, Value),
    Hold,
}

fn remote_server(answers: Vec<(&'static str, Value)>) -> Remote {
    scripted_server(move |path, _| {
        Answer::Reply(200, answers.iter().find(|(p, _)| path.ends_with(p)).map_or(json!({}), |(_, a)| a.clone()))
    })
}

/// Reads one HTTP request: its path and body.
fn read_request(stream: &std::net::TcpStream) -> (String, Vec<u8>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (path, body)
}

/// A server answering with `script(path, how many requests came before)`.
fn scripted_server(script: impl Fn(&str, usize) -> Answer + Send + 'static) -> Remote {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&bodies);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (path, body) = read_request(&stream);
            let before = {
                let mut bodies = kept.lock().unwrap();
                bodies.push((path.clone(), serde_json::from_slice(&body).unwrap_or(Value::Null)));
                bodies.len() - 1
            };
            match script(&path, before) {
                Answer::Reply(status, answer) => {
                    let text = answer.to_string();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                }
                Answer::Hold => held.push(stream),
            }
        }
    });
    Remote { url, bodies }
}

fn remote_plugin(url: &str, permissions: &[&str]) -> Arc<dyn BehaviorPlugin> {
    let endpoint = RemotePlugin::new(
        manifest(PROBE, permissions, "remote", url),
        &RemoteConfig::allowing(&["127.0.0.1"]),
        &catalog(),
    )
    .unwrap();
    Arc::new(EndpointPlugin::new(Arc::new(endpoint)))
}

#[test]
fn remote_a_request_carries_only_what_the_permissions_allow() {
    let server = remote_server(vec![
        ("/register", json!({"conditions": [{"name": "c"}]})),
        ("/evaluate-condition", json!({"result": true})),
    ]);
    for (permission, field) in [("world:read", "world"), ("session:read", "session"), ("npc:read", "npc")] {
        for granted in [true, false] {
            let mut permissions = vec!["behavior:extend_conditions"];
            if granted {
                permissions.push(permission);
            }
            let host = BehaviorHost::load(vec![remote_plugin(&server.url, &permissions)], HostConfig::default());
            let world = common::world();
            let scene = Scene::new(Arc::clone(&world), common::session(&world));
            let outcome = host.evaluate_condition("plugin:test.probe:c", &Default::default(), Some("ann"), 3, &scene);
            assert!(outcome.result, "{outcome:?}");
            let bodies = server.bodies.lock().unwrap();
            let (path, body) = bodies.last().unwrap();
            assert_eq!(path, "/evaluate-condition");
            let context = body["context"].as_object().unwrap();
            assert_eq!(context.contains_key(field), granted, "{permission} granted={granted}: {body}");
            assert_eq!(context.len(), usize::from(granted), "nothing else is sent: {body}");
        }
    }
}

#[test]
fn remote_writes_and_registrations_need_the_same_permissions() {
    // What an effect reply or a register reply asks for, and its permission.
    let cases: Vec<(&str, &str, Value)> = vec![
        ("session:write", "/apply-effect", json!({"changes": {"flags": {"plugin:test.probe:seen": 1}}})),
        ("session:write", "/apply-effect", json!({"changes": {"relationships": {"npc:ann": {"trust": 3}}}})),
        ("npc:write", "/apply-effect", json!({"changes": {"npcs": {"ann": {"energy": -5}}}})),
        ("event:emit", "/apply-effect", json!({"changes": {"events": [{"name": "plugin:test.probe:ping"}]}})),
        ("generation:submit", "/apply-effect", json!({"changes": {"generation": [{"kind": "dialogue"}]}})),
        ("log:emit", "/apply-effect", json!({"changes": {"log": [{"message": "hi"}]}})),
        ("behavior:extend_conditions", "/register", json!({"effects": [{"name": "e"}], "conditions": [{"name": "c"}]})),
        (
            "behavior:configure_simulation",
            "/register",
            json!({"effects": [{"name": "e"}], "simulation_configs": [{"name": "s", "config": {"tier": "x"}}]}),
        ),
        ("event:subscribe", "/register", json!({"effects": [{"name": "e"}], "subscriptions": ["session:*"]})),
        (
            "admin:routes",
            "/register",
            json!({"effects": [{"name": "e"}], "admin_routes": [{"method": "GET", "path": "/stats"}]}),
        ),
    ];
    for (permission, path, answer) in cases {
        for granted in [true, false] {
            let register = if path == "/register" { answer.clone() } else { json!({"effects": [{"name": "e"}]}) };
            let effect = if path == "/apply-effect" { answer.clone() } else { json!({}) };
            let server = remote_server(vec![("/register", register), ("/apply-effect", effect)]);
            let mut permissions = vec!["behavior:extend_effects"];
            if granted {
                permissions.push(permission);
            }
            let config = HostConfig { grants: all_allowed(), ..HostConfig::default() };
            let host = BehaviorHost::load(vec![remote_plugin(&server.url, &permissions)], config);
            let world = common::world();
            let scene = Scene::new(Arc::clone(&world), common::session(&world));
            let report = &host.reports()[0];
            if path == "/register" {
                assert_eq!(
                    report.health.permission_denials,
                    u64::from(!granted),
                    "{permission} granted={granted}: {report:?}"
                );
                continue;
            }
            let outcome = host.apply_effect("effect:plugin:test.probe:e", &Default::default(), Some("ann"), 1, &scene);
            assert_eq!(outcome.applied, granted, "{permission}: {outcome:?}");
            if !granted {
                assert!(outcome.skipped.unwrap().contains(&format!("permission `{permission}` not granted")));
            }
        }
    }
}

#[test]
fn a_remote_condition_that_times_out_counts_as_false_within_its_deadline() {
    // Answers `register`, then holds every other request unanswered.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            BufReader::new(stream.try_clone().unwrap()).read_line(&mut line).unwrap();
            if line.contains("/register") {
                let text = json!({"conditions": [{"name": "c"}]}).to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
            } else {
                held.push(stream);
            }
        }
    });
    let mut doc = serde_json::to_value(manifest(PROBE, &["behavior:extend_conditions"], "remote", &url)).unwrap();
    doc["limits"]["timeout_ms"] = json!(200);
    let manifest = polis_core::manifest::Manifest::from_value(doc).unwrap();
    let endpoint = RemotePlugin::new(manifest, &RemoteConfig::allowing(&["127.0.0.1"]), &catalog()).unwrap();
    let plugin: Arc<dyn BehaviorPlugin> = Arc::new(EndpointPlugin::new(Arc::new(endpoint)));
    let host = BehaviorHost::load(vec![plugin], HostConfig::default());
    assert!(host.registry().condition("plugin:test.probe:c").is_some(), "{:?}", host.issues());
    let world = common::world();
    let scene = Scene::new(Arc::clone(&world), common::session(&world));
    let started = std::time::Instant::now();
    let outcome = host.evaluate_condition("plugin:test.probe:c", &Default::default(), None, 0, &scene);
    let took = started.elapsed();
    assert!(!outcome.result);
    assert!(outcome.fallback.unwrap().contains("timeout"), "a timeout is named");
    assert!(took < std::time::Duration::from_secs(2), "bounded by the 200 ms deadline: {took:?}");
    assert_eq!(host.reports()[0].health.conditions.failures, 1);
}

/// A remote plugin subscribing to every NPC event, each call bounded by
/// `timeout_ms`.
fn webhook_plugin(url: &str, timeout_ms: u64) -> Arc<dyn BehaviorPlugin> {
    let mut doc = serde_json::to_value(manifest(PROBE, &["event:subscribe"], "remote", url)).unwrap();
    doc["limits"]["timeout_ms"] = json!(timeout_ms);
    let manifest = polis_core::manifest::Manifest::from_value(doc).unwrap();
    let endpoint = RemotePlugin::new(manifest, &RemoteConfig::allowing(&["127.0.0.1"]), &catalog()).unwrap();
    Arc::new(EndpointPlugin::new(Arc::new(endpoint)))
}

/// Three NPCs switching between two short activities, so that every tick
/// starts and ends some.
fn busy_world() -> polis_behavior::World {
    let npcs: Vec<Value> =
        ["ann", "bob", "cy"].iter().map(|id| json!({"id": id, "meta": {"behavior": {"routineId": "day"}}})).collect();
    let doc = json!({
        "id": "busy",
        "meta": {"behavior": {
            "activities": {
                "sweep": {"category": "work", "effects": {"energyDeltaPerHour": -5}, "minDurationSeconds": 900, "cooldownSeconds": 900},
                "sing": {"category": "leisure", "effects": {"energyDeltaPerHour": 5}, "minDurationSeconds": 900, "cooldownSeconds": 900}
            },
            "routines": {"day": {"nodes": [{"nodeType": "activity", "preferredActivities": [{"activityId": "sweep"}, {"activityId": "sing"}]}]}},
            "simulationConfig": {"tiers": [{"id": "all", "tickFrequencySeconds": 1, "detailLevel": "full"}], "priorityRules": [], "defaultTier": "all"}
        }},
        "npcs": npcs
    });
    polis_behavior::World::from_json(doc.to_string().as_bytes()).unwrap()
}

fn run_busy(host: &BehaviorHost) -> (String, std::time::Duration) {
    use polis_behavior::engine::{RunOptions, Simulation};
    let world = busy_world();
    let session = polis_behavior::Session::new("s", &world);
    let simulation = Simulation::new(world, session, host).unwrap();
    let started = std::time::Instant::now();
    let run = simulation.run(RunOptions { ticks: 96, seed: 5, seconds_per_tick: 900 }).unwrap();
    (run.digest.to_hex(), started.elapsed())
}

/// A server that answers one request (`register`) with `answer` and then
/// goes away, so that later connections are refused.
fn one_shot_server(answer: Value) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&stream);
        let text = answer.to_string();
        let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}", text.len());
    });
    url
}

#[test]
fn a_remote_webhook_that_is_down_does_not_slow_the_simulation_beyond_its_deadline() {
    let subscribe = json!({"subscriptions": ["npc:*"]});
    let (quiet_digest, _) = run_busy(&BehaviorHost::load(Vec::new(), HostConfig::default()));
    // Down two ways: a server that takes every event and never answers, and
    // one that has gone away once the plugin loaded (connections refused).
    let answer = subscribe.clone();
    let hanging =
        scripted_server(
            move |path, _| {
                if path.ends_with("/register") { Answer::Reply(200, answer.clone()) } else { Answer::Hold }
            },
        );
    for (url, down) in [(hanging.url.clone(), "hanging"), (one_shot_server(subscribe), "gone")] {
        let deadline_ms = 200;
        let host = BehaviorHost::load(vec![webhook_plugin(&url, deadline_ms)], HostConfig::default());
        assert!(host.registry().subscribed(PROBE, "npc:activity_started"), "{down}: {:?}", host.issues());
        let (digest, took) = run_busy(&host);
        assert_eq!(digest, quiet_digest, "{down}: what a webhook does never changes the run");
        assert_eq!(host.flush_webhooks(std::time::Duration::from_secs(30)), 0, "{down}: every delivery ends");
        let report = &host.reports()[0];
        let events = report.health.handlers.total;
        assert!(events >= 100, "{down}: the run raised {events} NPC events");
        assert_eq!(report.health.handlers.failures, events, "{down}: each delivery failed: {report:?}");
        assert!(!report.healthy, "{down}: {report:?}");
        assert!(report.health.recent_errors.iter().all(|e| e.kind == "event_handler"), "{report:?}");
        // Called in line, each event would have waited for its webhook; for
        // the hanging one, a deadline each. The run took less than a tenth
        // of that.
        let in_line = std::time::Duration::from_millis(deadline_ms * events);
        assert!(took < in_line / 10, "{down}: the run took {took:?}; in line it would take {in_line:?}");
    }
    let sent = hanging.bodies.lock().unwrap().iter().filter(|(p, _)| p.ends_with("/on-event")).count();
    assert!((1..100).contains(&sent), "once the breaker opened, later deliveries were not attempted: {sent}");
}

#[test]
fn a_failing_webhook_is_retried_with_backoff_and_counted_once() {
    let server = scripted_server(|path, before| {
        if path.ends_with("/register") {
            Answer::Reply(200, json!({"subscriptions": ["session:*"]}))
        } else if before < 3 {
            // The first two deliveries (after `register`) fail.
            Answer::Reply(503, json!({"error": "warming up"}))
        } else {
            Answer::Reply(200, json!({}))
        }
    });
    let config = HostConfig {
        webhooks: polis_behavior::WebhookConfig { attempts: 3, backoff_ms: 10, queue: 8 },
        ..HostConfig::default()
    };
    let host = BehaviorHost::load(vec![webhook_plugin(&server.url, 2000)], config);
    let world = common::world();
    let scene = Scene::new(Arc::clone(&world), common::session(&world));
    let event = polis_behavior::Event { event_type: "session:updated".into(), data: json!({"version": 2}) };
    assert_eq!(host.deliver(&event, &scene), [PROBE], "queued");
    assert_eq!(host.flush_webhooks(std::time::Duration::from_secs(20)), 0);
    let bodies = server.bodies.lock().unwrap();
    let sent: Vec<&Value> = bodies.iter().filter(|(p, _)| p == "/on-event").map(|(_, b)| b).collect();
    assert_eq!(sent.len(), 3, "two failures, then delivered");
    assert!(sent.iter().all(|b| b["event"] == json!({"type": "session:updated", "data": {"version": 2}})), "{sent:?}");
    assert_eq!(sent[0]["context"], json!({}), "no read permission, so no context");
    let health = &host.reports()[0].health;
    assert_eq!((health.handlers.total, health.handlers.failures, health.webhook_retries), (1, 0, 2), "{health:?}");
}

#[test]
fn a_full_webhook_queue_drops_the_event_and_counts_it() {
    let server = scripted_server(|path, _| {
        if path.ends_with("/register") {
            Answer::Reply(200, json!({"subscriptions": ["session:*"]}))
        } else {
            Answer::Hold
        }
    });
    let config = HostConfig {
        webhooks: polis_behavior::WebhookConfig { attempts: 1, backoff_ms: 0, queue: 1 },
        ..HostConfig::default()
    };
    let host = BehaviorHost::load(vec![webhook_plugin(&server.url, 300)], config);
    let world = common::world();
    let scene = Scene::new(Arc::clone(&world), common::session(&world));
    let event = polis_behavior::Event { event_type: "session:updated".into(), data: json!({}) };
    for _ in 0..5 {
        host.deliver(&event, &scene);
    }
    assert_eq!(host.flush_webhooks(std::time::Duration::from_secs(10)), 0);
    let health = &host.reports()[0].health;
    assert_eq!(health.handlers.total, 5, "{health:?}");
    assert!(health.webhooks_dropped >= 3, "one sending, one waiting, the rest dropped: {health:?}");
    assert!(
        health.recent_errors.iter().any(|e| e.message.contains("webhook dropped: its queue of 1 is full")),
        "{health:?}"
    );
}

/// The Python fixture's `low_energy` and `rest`, written as a built-in.
struct LowEnergy {
    manifest: polis_core::manifest::Manifest,
}

impl BehaviorPlugin for LowEnergy {
    fn manifest(&self) -> &polis_core::manifest::Manifest {
        &self.manifest
    }
    fn register(&self, ctx: &polis_behavior::PluginContext) -> Result<(), polis_core::PolicyError> {
        let rejected = |e: polis_behavior::ContextError| polis_core::PolicyError::Rejected(e.to_string());
        ctx.behavior().register_condition_evaluator("low_energy", None).map_err(rejected)?;
        let defaults = json!({"amount": 5}).as_object().cloned().unwrap();
        ctx.behavior().register_effect_handler("rest", None, defaults).map_err(rejected)?;
        Ok(())
    }
    fn evaluate_condition(
        &self,
        call: &polis_behavior::ConditionCall,
        ctx: &polis_behavior::PluginContext,
    ) -> Result<bool, polis_core::PolicyError> {
        let npc = ctx.npc().unwrap().get(call.npc_id.as_deref().unwrap()).unwrap();
        let energy = npc["state"]["energy"].as_f64().unwrap_or(100.0);
        Ok(energy < call.params.get("below").and_then(Value::as_f64).unwrap_or(50.0))
    }
    fn apply_effect(
        &self,
        call: &polis_behavior::EffectCall,
        ctx: &polis_behavior::PluginContext,
    ) -> Result<(), polis_core::PolicyError> {
        let amount = call.params["amount"].as_f64();
        ctx.npc_mut().unwrap().update_state(call.npc_id.as_deref().unwrap(), amount, None).unwrap();
        Ok(())
    }
}

/// Drives a host through a fixed script: drain or rest each NPC by turns,
/// checking the condition; returns the outcomes and the session's digest.
fn script(plugin: Arc<dyn BehaviorPlugin>) -> (Vec<bool>, String) {
    let host = BehaviorHost::load(vec![plugin], HostConfig::default());
    let world = common::world();
    let scene = Scene::new(Arc::clone(&world), common::session(&world));
    let mut outcomes = Vec::new();
    for step in 0..120i64 {
        let npc = if step % 3 == 0 { "bob" } else { "ann" };
        let amount = json!({"amount": ((step * 37) % 23) - 12}).as_object().cloned().unwrap();
        assert!(host.apply_effect("effect:plugin:test.probe:rest", &amount, Some(npc), 0, &scene).applied);
        let below = json!({"below": 40 + step % 20}).as_object().cloned().unwrap();
        outcomes.push(host.evaluate_condition("plugin:test.probe:low_energy", &below, Some(npc), 0, &scene).result);
    }
    let session = scene.session.as_ref().unwrap().lock().unwrap().clone();
    (outcomes, polis_core::canonical::digest_of(&session).unwrap().to_string())
}

#[test]
fn a_python_plugin_and_its_builtin_twin_give_the_same_outcomes_and_session_digest() {
    let permissions = ["group:behavior", "npc:write"];
    let builtin = script(Arc::new(LowEnergy { manifest: manifest(PROBE, &permissions, "builtin", "") }));
    let python = script(Arc::new(EndpointPlugin::new(Arc::new(python_plugin(&permissions)))));
    assert!(builtin.0.iter().any(|b| *b) && builtin.0.iter().any(|b| !*b), "the script exercises both answers");
    assert_eq!(python, builtin);
}
