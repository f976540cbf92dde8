//! The domain seam proved by a second contract: `echo.v1`'s permission and
//! capability (`echo:note`, host method `echo.note`) work in every tier
//! that can call back on the host, and are denied cleanly, naming the
//! permission, where not granted; the plugin loader loads only the
//! manifests the contract claims.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use polis_core::contract::permission_catalog;
use polis_core::manifest::Manifest;
use polis_core::policy::{EndpointPolicy, HostApi};
use polis_core::registry::Registry;
use polis_echo::{Echo, EchoInput, EchoParams, EchoSubject, NoteBook};
use polis_process::{ProcessConfig, ProcessPlugin, ProcessSpec, SandboxConfig};
use polis_runtime::{Decision, Host, HostLimits, RunRecord};
use polis_wasm::{WasmConfig, WasmError, WasmRuntime};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn manifest(permissions: &[&str], tier: &str, entry: &str) -> Manifest {
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("noting").join("manifest.json")).unwrap()).unwrap();
    doc["permissions"] = serde_json::json!(permissions);
    doc["runtime"] = serde_json::json!({"tier": tier, "entry": entry});
    Manifest::from_value(doc).unwrap()
}

fn decide(host: &Host<Echo>, values: Vec<i64>, book: &Arc<NoteBook>) -> RunRecord<Echo> {
    let subject = EchoSubject { label: "seam".into() };
    let input = EchoInput { values };
    let params = EchoParams { scale: 3 };
    let api: Arc<dyn HostApi> = book.clone();
    let decision = Decision { host: Some(api), ..Decision::new(&subject, &input, &params) };
    host.decide("echo.noting.v1", &decision).unwrap()
}

fn host_over(endpoint: Arc<dyn polis_core::PluginEndpoint>) -> Host<Echo> {
    let mut registry: Registry<Echo> = polis_echo::builtins::registry();
    registry.register(Arc::new(EndpointPolicy::<Echo>::new(endpoint)), None).unwrap();
    Host::new(registry, HostLimits::default()).unwrap()
}

/// Calls `echo_note` with `{"text":"hello"}` and answers the output of an
/// empty input, noting "hello".
const NOTING_WAT: &str = r#"(module
    (import "polis" "echo_note" (func $note (param i32 i32) (result i64)))
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 4096))
    (data (i32.const 16) "{\"text\":\"hello\"}")
    (data (i32.const 64) "{\"ok\":{\"values\":[],\"sum\":0,\"notes\":[\"hello\"]}}")
    (func (export "polis_abi_version") (result i32) (i32.const 1))
    (func (export "polis_alloc") (param $len i32) (result i32) (local $p i32)
        (local.set $p (global.get $heap))
        (global.set $heap (i32.add (global.get $heap) (local.get $len)))
        (local.get $p))
    (func (export "polis_run") (param i32 i32) (result i64)
        (drop (call $note (i32.const 16) (i32.const 16)))
        (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 46))))"#;

#[test]
fn a_wasm_plugin_granted_echo_note_calls_the_host() {
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let wasm = wat::parse_str(NOTING_WAT).unwrap();
    let module = runtime
        .load_with(manifest(&["echo:note"], "wasm", "noting.wasm"), &wasm, &permission_catalog::<Echo>(), &["run"])
        .unwrap();
    let host = host_over(Arc::new(module));
    let book = Arc::new(NoteBook::default());
    let record = decide(&host, vec![], &book);
    assert_eq!(record.output.notes, ["hello"]);
    assert_eq!(book.notes(), ["hello"], "the host took the note");
}

#[test]
fn a_wasm_plugin_importing_echo_note_without_the_permission_fails_at_load_naming_it() {
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let wasm = wat::parse_str(NOTING_WAT).unwrap();
    let error = runtime
        .load_with(manifest(&[], "wasm", "noting.wasm"), &wasm, &permission_catalog::<Echo>(), &["run"])
        .err()
        .unwrap();
    assert!(
        matches!(&error, WasmError::PermissionDenied { permission, name, .. } if permission == "echo:note" && name == "echo_note"),
        "{error}"
    );
    assert!(error.to_string().contains("needs permission `echo:note`"), "{error}");
    // Under a contract that offers no such capability, the import is simply unknown.
    let error = runtime.load(manifest(&["echo:note"], "wasm", "noting.wasm"), &wasm).err().unwrap();
    assert!(matches!(error, WasmError::UnknownImport { .. }), "{error}");
}

fn python_plugin(permissions: &[&str]) -> ProcessPlugin {
    let python = polis_testdata::python();
    let mut sandbox = SandboxConfig::default();
    sandbox.read_paths.extend([python.prefix.clone(), python.exe.parent().unwrap().to_path_buf(), python.sdk.clone()]);
    let env = vec![("PYTHONPATH".to_owned(), python.sdk.display().to_string())];
    let spec = ProcessSpec { program: python.exe, args: vec!["plugin.py".into()], dir: fixture("noting"), env };
    let plugin = ProcessPlugin::new(
        manifest(permissions, "process", "python3 plugin.py"),
        spec,
        ProcessConfig { sandbox, ..ProcessConfig::default() },
        permission_catalog::<Echo>(),
    );
    plugin.start_worker().unwrap();
    plugin
}

#[test]
fn a_process_plugin_granted_echo_note_calls_the_host_and_unknown_methods_are_refused() {
    let host = host_over(Arc::new(python_plugin(&["echo:note"])));
    let book = Arc::new(NoteBook::default());
    let record = decide(&host, vec![1, 2], &book);
    assert_eq!(record.output.values, [3, 6]);
    assert_eq!(
        record.output.notes,
        ["saw 2 values (#1) | unknown -32601: the host has no method `echo.forget`"],
        "the granted call is answered, the unknown one refused"
    );
    assert_eq!(book.notes(), ["saw 2 values"]);
    let again = decide(&host, vec![5], &book);
    assert!(again.output.notes[0].starts_with("saw 1 values (#2)"), "{:?}", again.output.notes);
}

#[test]
fn a_process_plugin_calling_echo_note_without_the_permission_gets_an_error_naming_it_and_the_host_keeps_serving() {
    let host = host_over(Arc::new(python_plugin(&[])));
    let book = Arc::new(NoteBook::default());
    let first = decide(&host, vec![1], &book);
    assert!(
        first.output.notes[0].starts_with(
            "refused -32003: plugin `test.echo_noting.v1` cannot use `echo.note`: permission `echo:note` not granted"
        ),
        "{:?}",
        first.output.notes
    );
    assert!(book.notes().is_empty(), "the host was never asked");
    let second = decide(&host, vec![2, 3], &book);
    assert_eq!(second.output.values, [6, 9], "the same worker serves the next call");
}

/// Copies the fixture plugin and the Python SDK into a fresh plugin root,
/// beside a directory whose manifest is another contract's.
fn plugin_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let echo = root.path().join("noting");
    std::fs::create_dir_all(&echo).unwrap();
    for file in ["manifest.json", "plugin.py"] {
        std::fs::copy(fixture("noting").join(file), echo.join(file)).unwrap();
    }
    std::fs::copy(polis_testdata::python().sdk.join("polis_plugin.py"), echo.join("polis_plugin.py")).unwrap();
    let other = root.path().join("rebalancing");
    std::fs::create_dir_all(&other).unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(echo.join("manifest.json")).unwrap()).unwrap();
    doc["contract"] = serde_json::json!("rebalance.v1");
    doc["plugin_id"] = serde_json::json!("test.not_echo.v1");
    std::fs::write(other.join("manifest.json"), doc.to_string()).unwrap();
    root
}

#[test]
fn the_loader_loads_only_the_manifests_the_contract_claims_with_its_capabilities() {
    let root = plugin_root();
    let mut tiers = polis_plugins::Tiers::new().unwrap();
    let python = polis_testdata::python();
    tiers.process.sandbox.read_paths.push(python.prefix);
    let (registry, reports) = polis_plugins::load_roots(polis_echo::builtins::registry(), &[root.path()], &tiers);
    assert_eq!(reports.len(), 1, "the rebalancing manifest is not the echo contract's: {reports:?}");
    assert_eq!(reports[0].outcome, Ok(()));
    assert_eq!(registry.versions(), ["echo.noting.v1", "echo.scale.v1"]);
    let host = Host::new(registry, HostLimits::default()).unwrap();
    let book = Arc::new(NoteBook::default());
    let record = decide(&host, vec![4], &book);
    assert_eq!((record.output.sum, book.notes().len()), (12, 1));
}

#[test]
fn an_unknown_permission_is_reported_and_never_granted() {
    let root = plugin_root();
    let path: &Path = &root.path().join("noting/manifest.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    doc["permissions"] = serde_json::json!(["echo:note", "net:connect"]);
    std::fs::write(path, doc.to_string()).unwrap();
    let tiers = polis_plugins::Tiers::new().unwrap();
    let (_, reports) = polis_plugins::load_roots(polis_echo::builtins::registry(), &[root.path()], &tiers);
    assert_eq!(reports[0].unknown_permissions, ["net:connect"]);
}
