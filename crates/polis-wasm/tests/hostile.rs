//! Hostile wasm plugins, written in WAT: every one is contained, reported
//! with an error naming the plugin, and the host serves the next call.

#![expect(
    clippy::panic,
    clippy::unwrap_used,
    reason = "test helpers fail loudly; clippy allows this in #[test] functions but not in the helpers they share"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use polis_core::manifest::Manifest;
use polis_core::policy::PolicyError;
use polis_core::registry::Registry;
use polis_rebalance::contract::{PolicyInput, Rebalance, RebalanceParams};
use polis_rebalance::host::{Decision, Host, HostError};
use polis_runtime::{HostLimits, RunError};
use polis_wasm::abi::pack;
use polis_wasm::{LogLine, RunControl, WasmConfig, WasmError, WasmLimits, WasmRuntime};
use serde_json::json;

const REPLY_AT: u32 = 0x1_0000;

fn manifest(plugin_id: &str, permissions: &[&str]) -> Manifest {
    let version = format!("rebal.{}", plugin_id.replace("hostile.", ""));
    Manifest::from_value(json!({
        "contract_version": "policy.plugin.v1",
        "plugin_id": plugin_id,
        "plugin_version": "1.0.0",
        "policy_version": version,
        "strategy": "test.v1",
        "display_name": plugin_id,
        "deterministic": true,
        "requires_neighbor_graph": true,
        "input_schema_version": "policy.input.v1",
        "output_schema_version": "policy.output.v1",
        "runtime": {"tier": "wasm", "entry": "plugin.wasm"},
        "permissions": permissions,
    }))
    .unwrap()
}

/// A module whose `polis_run` body is `run` (which must leave an i64), with
/// extra module fields `extra` and data `reply` at `REPLY_AT`.
fn module(extra: &str, run: &str, reply: &str) -> Vec<u8> {
    let escaped: String = reply.bytes().map(|b| format!("\\{b:02x}")).collect();
    wat::parse_str(format!(
        r#"(module
            {extra}
            (memory (export "memory") 2)
            (data (i32.const {REPLY_AT}) "{escaped}")
            (func (export "polis_abi_version") (result i32) (i32.const 1))
            (func (export "polis_alloc") (param i32) (result i32) (i32.const 1024))
            (func (export "polis_run") (param $ptr i32) (param $len i32) (result i64) {run}))"#
    ))
    .unwrap()
}

/// A module that replies `reply`.
fn replying(reply: &str) -> Vec<u8> {
    module("", &format!("(i64.const {})", pack(REPLY_AT, reply.len() as u32)), reply)
}

/// The tiny input plus station `c`, which no edge reaches.
fn input() -> PolicyInput {
    let mut input = polis_rebalance::synth::tiny_input();
    let mut c = input.stations[1].clone();
    c.station_key = "c".into();
    input.stations.push(c);
    input
}

const GOOD: &str = r#"{"ok":{"moves":[{"move_rank":1,"from_station_key":"a","to_station_key":"b","bikes_moved":2,"dist_m":250.0,"budget_exhausted":false,"neighbor_exhausted":true,"reason_codes":["test"]}],"summary":{"bikes_moved_total":2,"stations_touched":2,"no_op":false}}}"#;

struct Harness {
    host: Host,
}

impl Harness {
    fn new(config: WasmConfig, plugins: &[(Manifest, Vec<u8>)]) -> Harness {
        let runtime = WasmRuntime::new(config).unwrap();
        let mut registry = Registry::<Rebalance>::new();
        for (manifest, wasm) in plugins.iter().cloned().chain([(manifest("hostile.good.v1", &[]), replying(GOOD))]) {
            let module = runtime.load(manifest, &wasm).unwrap();
            let digest = module.artifact_digest();
            registry
                .register(Arc::new(polis_core::EndpointPolicy::<Rebalance>::new(Arc::new(module))), Some(digest))
                .unwrap();
        }
        Harness { host: Host::new(registry, HostLimits::default()).unwrap() }
    }

    fn decide(&self, version: &str) -> Result<polis_runtime::RunRecord<Rebalance>, HostError> {
        let (input, params) = (input(), RebalanceParams::default());
        let decision = Decision {
            subject: &polis_rebalance::contract::DecisionSubject {
                system_id: "test".to_owned(),
                sv: "sv1".to_owned(),
                decision_bucket_ts: 1_678_090_200,
                horizon_steps: 0,
            },
            input: &input,
            params: &params,
            request_id: None,
            control: None,
            host: None,
        };
        self.host.decide(version, &decision)
    }

    /// Runs the hostile version, then proves the host still serves the good
    /// plugin; returns the hostile run's error.
    fn contained(&self, version: &str) -> RunError {
        let error = match self.decide(version) {
            Ok(record) => panic!("{version} unexpectedly succeeded: {:?}", record.output),
            Err(HostError::Run(error)) => error,
            Err(other) => panic!("{version}: unexpected error {other}"),
        };
        let good = self.decide("rebal.good.v1").unwrap();
        assert_eq!(good.output.summary.bikes_moved_total, 2);
        error
    }
}

fn limits(error: &RunError) -> (&'static str, String) {
    match error {
        RunError::Policy { error: PolicyError::LimitExceeded { limit, detail }, .. } => (limit, detail.clone()),
        other => panic!("expected a limit error, got {other}"),
    }
}

#[test]
fn a_well_behaved_module_passes_the_guard_like_a_builtin() {
    let harness = Harness::new(WasmConfig::default(), &[]);
    let record = harness.decide("rebal.good.v1").unwrap();
    assert_eq!(record.plugin_id, "hostile.good.v1");
    assert_eq!(record.output.moves[0].to_station_key, "b");
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let config =
        WasmConfig { limits: WasmLimits { fuel: 5_000_000, ..WasmLimits::default() }, ..WasmConfig::default() };
    let looping = module("", "(loop $forever (br $forever)) (i64.const 0)", "");
    let harness = Harness::new(config, &[(manifest("hostile.loop.v1", &[]), looping)]);
    let error = harness.contained("rebal.loop.v1");
    assert_eq!(limits(&error).0, "fuel");
    assert!(error.to_string().contains("plugin `hostile.loop.v1`"), "{error}");
}

#[test]
fn an_infinite_loop_with_unlimited_fuel_hits_the_wall_clock_deadline() {
    let config = WasmConfig {
        limits: WasmLimits { fuel: u64::MAX, timeout: Duration::from_millis(50), ..WasmLimits::default() },
        ..WasmConfig::default()
    };
    let looping = module("", "(loop $forever (br $forever)) (i64.const 0)", "");
    let harness = Harness::new(config, &[(manifest("hostile.spin.v1", &[]), looping)]);
    let error = harness.contained("rebal.spin.v1");
    assert_eq!(limits(&error).0, "timeout");
}

#[test]
fn a_memory_bomb_is_stopped_at_the_memory_limit() {
    let bomb =
        module("", "(loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable", "");
    let harness = Harness::new(WasmConfig::default(), &[(manifest("hostile.bomb.v1", &[]), bomb)]);
    let error = harness.contained("rebal.bomb.v1");
    let (limit, detail) = limits(&error);
    assert_eq!(limit, "memory");
    assert!(detail.contains("128 MiB"), "{detail}");
}

#[test]
fn a_100_mb_output_is_refused_before_it_is_read() {
    // 1600 pages is 104.9 MB: the module really holds 100 MB to return.
    let config =
        WasmConfig { limits: WasmLimits { memory_bytes: 256 << 20, ..WasmLimits::default() }, ..WasmConfig::default() };
    let huge = wat::parse_str(format!(
        r#"(module
            (memory (export "memory") 1600)
            (func (export "polis_abi_version") (result i32) (i32.const 1))
            (func (export "polis_alloc") (param i32) (result i32) (i32.const 1024))
            (func (export "polis_run") (param i32 i32) (result i64) (i64.const {})))"#,
        pack(0, 100_000_000)
    ))
    .unwrap();
    let harness = Harness::new(config, &[(manifest("hostile.huge.v1", &[]), huge)]);
    let error = harness.contained("rebal.huge.v1");
    let (limit, detail) = limits(&error);
    assert_eq!(limit, "output_bytes");
    assert!(detail.contains("100000000 bytes"), "{detail}");
}

#[test]
fn invalid_json_is_reported_as_such() {
    let harness =
        Harness::new(WasmConfig::default(), &[(manifest("hostile.garbage.v1", &[]), replying("{\"ok\": [tru"))]);
    let error = harness.contained("rebal.garbage.v1");
    assert_eq!(error.code(), "policy.failed");
    assert!(
        error.to_string().contains("plugin `hostile.garbage.v1`: policy failed: reply is not valid JSON"),
        "{error}"
    );
}

#[test]
fn a_schema_violating_output_names_the_field() {
    let harness = Harness::new(
        WasmConfig::default(),
        &[(manifest("hostile.schema.v1", &[]), replying(r#"{"ok":{"moves":"all of them","summary":{}}}"#))],
    );
    let error = harness.contained("rebal.schema.v1");
    assert!(error.to_string().contains("does not match `policy.output.v1` at `moves`"), "{error}");
}

#[test]
fn a_move_along_a_non_neighbour_edge_fails_semantic_validation() {
    let reply = GOOD.replace(r#""to_station_key":"b""#, r#""to_station_key":"c""#);
    let harness = Harness::new(WasmConfig::default(), &[(manifest("hostile.jump.v1", &[]), replying(&reply))]);
    match harness.contained("rebal.jump.v1") {
        RunError::InvalidOutput { plugin_id, violations } => {
            assert_eq!(plugin_id, "hostile.jump.v1");
            assert_eq!(violations.first_code(), "output.not_neighbor");
        }
        other => panic!("expected an invalid output, got {other}"),
    }
}

#[test]
fn importing_an_ungranted_host_function_fails_at_load_naming_the_permission() {
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let logging = module(r#"(import "polis" "log" (func $log (param i32 i32)))"#, "(i64.const 0)", "");
    let error = runtime.load(manifest("hostile.sneaky.v1", &[]), &logging).err().unwrap();
    assert_eq!(error.code(), "wasm.permission_denied");
    assert_eq!(
        error.to_string(),
        "plugin `hostile.sneaky.v1`: imports `polis.log`, which needs permission `log:emit` that was not granted"
    );
    // Granting the permission makes the same module load.
    assert!(runtime.load(manifest("hostile.sneaky.v1", &["log:emit"]), &logging).is_ok());
}

#[test]
fn unknown_imports_such_as_wasi_fail_at_load() {
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let wasi = module(
        r#"(import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))"#,
        "(i64.const 0)",
        "",
    );
    let error = runtime.load(manifest("hostile.wasi.v1", &["sandbox:basic"]), &wasi).err().unwrap();
    assert_eq!(error.code(), "wasm.unknown_import");
    assert!(error.to_string().contains("`wasi_snapshot_preview1.clock_time_get`"), "{error}");
}

#[test]
fn a_module_of_another_abi_version_or_without_exports_is_refused() {
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let v2 = wat::parse_str(
        r#"(module
            (memory (export "memory") 1)
            (func (export "polis_abi_version") (result i32) (i32.const 2))
            (func (export "polis_alloc") (param i32) (result i32) (i32.const 1024))
            (func (export "polis_run") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    let error = runtime.load(manifest("hostile.future.v1", &[]), &v2).err().unwrap();
    assert_eq!(error, WasmError::AbiVersion { plugin_id: "hostile.future.v1".into(), found: 2, supported: 1 });

    let bare = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
    let error = runtime.load(manifest("hostile.bare.v1", &[]), &bare).err().unwrap();
    assert_eq!(error.to_string(), "plugin `hostile.bare.v1`: export `polis_abi_version` is missing");

    let error = runtime.load(manifest("hostile.junk.v1", &[]), b"not wasm").err().unwrap();
    assert_eq!(error.code(), "wasm.compile");
}

#[test]
fn cancelling_one_run_leaves_other_runs_of_the_same_module_alone() {
    // Loops forever when the request is longer than 8 bytes.
    let wasm = module(
        "",
        &format!(
            "(if (i32.gt_u (local.get $len) (i32.const 8)) (then (loop $forever (br $forever)))) (i64.const {})",
            pack(REPLY_AT, 2)
        ),
        "{}",
    );
    let config = WasmConfig {
        limits: WasmLimits { fuel: u64::MAX, timeout: Duration::from_secs(600), ..WasmLimits::default() },
        ..WasmConfig::default()
    };
    let runtime = WasmRuntime::new(config).unwrap();
    let module = Arc::new(runtime.load(manifest("hostile.cancel.v1", &[]), &wasm).unwrap());
    let control = RunControl::new();
    let spinning = {
        let (module, control) = (Arc::clone(&module), control.clone());
        std::thread::spawn(move || module.call(b"a long request", 1, &control))
    };
    assert_eq!(module.call(b"short", 1, &RunControl::new()).unwrap(), b"{}");
    control.cancel();
    assert_eq!(spinning.join().unwrap(), Err(PolicyError::Cancelled));
    assert_eq!(module.call(b"short", 1, &RunControl::new()).unwrap(), b"{}");
}

#[test]
fn granted_log_lines_reach_the_sink_tagged_with_the_plugin_id() {
    let lines = Arc::new(Mutex::new(Vec::<LogLine>::new()));
    let sink = {
        let lines = Arc::clone(&lines);
        Arc::new(move |line: &LogLine| lines.lock().unwrap().push(line.clone()))
    };
    let config = WasmConfig { log_sink: sink, ..WasmConfig::default() };
    let runtime = WasmRuntime::new(config).unwrap();
    let wasm = module(
        r#"(import "polis" "log" (func $log (param i32 i32)))"#,
        &format!("(call $log (i32.const {REPLY_AT}) (i32.const 5)) (i64.const {})", pack(REPLY_AT, 2)),
        "hello",
    );
    let module = runtime.load(manifest("hostile.chatty.v1", &["log:emit"]), &wasm).unwrap();
    module.call(b"{}", 0, &RunControl::new()).unwrap();
    let lines = lines.lock().unwrap();
    assert_eq!(*lines, [LogLine { plugin_id: "hostile.chatty.v1".into(), message: "hello".into() }]);
}

#[test]
fn random_numbers_come_from_the_run_seed() {
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    // Stores one draw at REPLY_AT and returns those 8 bytes.
    let wasm = module(
        r#"(import "polis" "random_u64" (func $random (result i64)))"#,
        &format!("(i64.store (i32.const {REPLY_AT}) (call $random)) (i64.const {})", pack(REPLY_AT, 8)),
        "",
    );
    let module = runtime.load(manifest("hostile.dice.v1", &["random"]), &wasm).unwrap();
    let draw = |seed| module.call(b"{}", seed, &RunControl::new()).unwrap();
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

#[test]
fn a_trap_is_a_failure_and_the_next_call_is_served() {
    let harness =
        Harness::new(WasmConfig::default(), &[(manifest("hostile.trap.v1", &[]), module("", "unreachable", ""))]);
    let error = harness.contained("rebal.trap.v1");
    assert!(error.to_string().contains("plugin `hostile.trap.v1`: policy failed: wasm trap"), "{error}");
}

#[test]
fn repeated_failures_open_the_breaker_and_the_metrics_show_it() {
    use polis_runtime::{BreakerConfig, BreakerState};

    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let mut registry = Registry::<Rebalance>::new();
    let trap = runtime.load(manifest("hostile.flaky.v1", &[]), &module("", "unreachable", "")).unwrap();
    registry.register(Arc::new(polis_core::EndpointPolicy::<Rebalance>::new(Arc::new(trap))), None).unwrap();
    let breaker =
        BreakerConfig { error_budget: 2, window: Duration::from_secs(3600), cooldown: Duration::from_secs(3600) };
    let harness = Harness { host: Host::with_breaker(registry, HostLimits::default(), breaker).unwrap() };

    for _ in 0..2 {
        assert_eq!(harness.decide("rebal.flaky.v1").err().map(|e| e.code()), Some("policy.failed"));
    }
    let refused = harness.decide("rebal.flaky.v1").err().unwrap();
    assert_eq!(refused.code(), "run.circuit_open");
    assert!(refused.to_string().starts_with("plugin `hostile.flaky.v1` is failing and its circuit breaker is open"));

    let metrics = harness.host.guard().metrics("hostile.flaky.v1").unwrap();
    assert_eq!(metrics.calls, 3);
    assert_eq!(metrics.successes, 0);
    assert_eq!(metrics.errors.get("policy.failed"), Some(&2));
    assert_eq!(metrics.errors.get("run.circuit_open"), Some(&1));
    assert_eq!(metrics.breaker, Some(BreakerState::Open));
    assert_eq!(metrics.breaker_opened, 1);

    // Re-enabled by configuration, the plugin is called again (and fails).
    harness.host.guard().reset_breaker("hostile.flaky.v1");
    assert_eq!(harness.decide("rebal.flaky.v1").err().map(|e| e.code()), Some("policy.failed"));
    assert_eq!(harness.host.guard().metrics("hostile.flaky.v1").unwrap().breaker, Some(BreakerState::Closed));
}

#[test]
fn deep_recursion_in_the_guest_traps_at_the_stack_limit() {
    let recursive = module(
        "(func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))",
        "(drop (call $down (i32.const 0))) (i64.const 0)",
        "",
    );
    let harness = Harness::new(WasmConfig::default(), &[(manifest("hostile.deep.v1", &[]), recursive)]);
    let error = harness.contained("rebal.deep.v1");
    let (limit, detail) = limits(&error);
    assert_eq!(limit, "stack", "{detail}");
}

#[test]
fn a_module_of_100000_functions_or_a_huge_table_is_refused_before_it_is_compiled() {
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let many: String = (0..100_000).map(|_| "(func)").collect();
    let error = runtime.load(manifest("hostile.many.v1", &[]), &module(&many, "(i64.const 0)", "")).err().unwrap();
    assert_eq!(error.code(), "wasm.module_limit");
    assert!(error.to_string().contains("`functions` limit: 100003 functions"), "{error}");
    let table = module("(table 1000000 funcref)", "(i64.const 0)", "");
    let error = runtime.load(manifest("hostile.table.v1", &[]), &table).err().unwrap();
    assert_eq!(error.code(), "wasm.module_limit");
    assert!(error.to_string().contains("`table_elements` limit: tables of 1000000 elements"), "{error}");
    // A table within the limit loads.
    assert!(
        runtime.load(manifest("hostile.table.v1", &[]), &module("(table 10 funcref)", "(i64.const 0)", "")).is_ok()
    );
}

#[test]
fn importing_every_host_function_without_grants_is_refused_until_each_is_granted() {
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let greedy = module(
        r#"(import "polis" "log" (func $log (param i32 i32)))
           (import "polis" "random_u64" (func $random (result i64)))"#,
        "(i64.const 0)",
        "",
    );
    let refused = |permissions: &[&str]| {
        runtime.load(manifest("hostile.greedy.v1", permissions), &greedy).err().map(|e| (e.code(), e.to_string()))
    };
    let (code, message) = refused(&[]).unwrap();
    assert_eq!(code, "wasm.permission_denied");
    assert!(message.contains("`polis.log`") && message.contains("`log:emit`"), "{message}");
    let (code, message) = refused(&["log:emit"]).unwrap();
    assert_eq!(code, "wasm.permission_denied");
    assert!(message.contains("`polis.random_u64`") && message.contains("`random`"), "{message}");
    assert_eq!(refused(&["log:emit", "random"]), None, "granting both loads the module");
}
