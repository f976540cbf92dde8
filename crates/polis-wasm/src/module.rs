//! A loaded plugin module and its per-run sandbox.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use polis_core::canonical::Digest;
use polis_core::manifest::Manifest;
use polis_core::permission::{self, Grants, PermissionCatalog};
pub use polis_core::policy::RunControl;
use polis_core::policy::{CallEnv, HostApi, PluginEndpoint, PolicyError, no_host};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::Deserialize;
use wasmtime::{
    Caller, ExternType, Instance, InstancePre, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline, ValType,
};

use crate::abi::{self, exports};
use crate::error::WasmError;
use crate::runtime::{Shared, WasmLimits};

/// One line a plugin logged through `log:emit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The plugin that logged it.
    pub plugin_id: String,
    /// The text, lossily decoded as UTF-8 and cut to [`MAX_LOG_LINE`] bytes.
    pub message: String,
}

/// Where log lines go.
pub type LogSink = Arc<dyn Fn(&LogLine) + Send + Sync>;

/// Longest log line kept, in bytes; the rest is cut.
pub const MAX_LOG_LINE: usize = 4096;

/// Most log lines kept per run; later ones are dropped.
pub const MAX_LOG_LINES_PER_RUN: usize = 256;

/// Most host capability calls one run may make; the next one traps.
pub const MAX_HOST_CALLS_PER_RUN: usize = 10_000;

/// Largest request a plugin may pass to one host capability call.
pub const MAX_HOST_REQUEST_BYTES: usize = 1 << 20;

pub(crate) fn stderr_sink() -> LogSink {
    Arc::new(|line: &LogLine| eprintln!("[plugin {}] {}", line.plugin_id, line.message))
}

/// Why the epoch callback stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Interrupted {
    #[error("run was cancelled")]
    Cancelled,
    #[error("wall-clock deadline passed")]
    Timeout,
}

/// Most functions a module may define: compiling is the one cost a module
/// imposes before any limit of a run applies, and it grows with them.
pub const MAX_FUNCTIONS: u32 = 50_000;

/// Most elements a module's tables may start with (the limiter refuses to
/// grow them beyond it too).
pub const MAX_TABLE_ELEMENTS: u64 = 100_000;

/// Counts a module's functions and initial table elements before it is
/// compiled, so a module of 100,000 functions or a huge table is refused
/// by name instead of compiled or allocated. Malformed bytes are left to
/// the compiler, which names the problem.
fn check_shape(wasm: &[u8]) -> Result<(), (&'static str, String)> {
    let mut functions: u32 = 0;
    let mut table_elements: u64 = 0;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(wasmparser::Payload::FunctionSection(reader)) => functions = functions.saturating_add(reader.count()),
            Ok(wasmparser::Payload::TableSection(reader)) => {
                for table in reader.into_iter().flatten() {
                    table_elements = table_elements.saturating_add(table.ty.initial);
                }
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    if functions > MAX_FUNCTIONS {
        return Err(("functions", format!("{functions} functions, more than {MAX_FUNCTIONS}")));
    }
    if table_elements > MAX_TABLE_ELEMENTS {
        return Err(("table_elements", format!("tables of {table_elements} elements, more than {MAX_TABLE_ELEMENTS}")));
    }
    Ok(())
}

/// The memory and table limiter of one store.
struct Limiter {
    memory_bytes: usize,
    memory_refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired as u64 <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// What one store carries.
struct RunState {
    plugin_id: Arc<str>,
    limiter: Limiter,
    rng: ChaCha8Rng,
    log_sink: LogSink,
    logged: usize,
    control: RunControl,
    deadline: Instant,
    host: Arc<dyn HostApi>,
    host_calls: usize,
}

/// A compiled, checked plugin module, ready to run.
pub struct WasmModule {
    shared: Arc<Shared>,
    manifest: Manifest,
    plugin_id: Arc<str>,
    grants: Grants,
    limits: WasmLimits,
    pre: InstancePre<RunState>,
    artifact_digest: Digest,
    methods: BTreeSet<String>,
    /// With [`WasmModule::into_resident`], the one instance every call
    /// runs in (made on the first call); `None` for a fresh instance per
    /// call.
    resident: Option<std::sync::Mutex<Option<Resident>>>,
}

/// The instance a resident module keeps, with its store.
struct Resident {
    store: Store<RunState>,
    instance: Instance,
}

impl WasmModule {
    pub(crate) fn load(
        shared: Arc<Shared>,
        manifest: Manifest,
        wasm: &[u8],
        catalog: &PermissionCatalog,
        required_methods: &[&str],
    ) -> Result<WasmModule, WasmError> {
        let plugin_id: Arc<str> = Arc::from(manifest.plugin_id.as_str());
        let id = || manifest.plugin_id.clone();
        let grants = Grants::resolve(&manifest.permissions, catalog);
        check_shape(wasm).map_err(|(limit, detail)| WasmError::ModuleLimit { plugin_id: id(), limit, detail })?;
        let module = Module::new(&shared.engine, wasm)
            .map_err(|e| WasmError::Compile { plugin_id: id(), message: format!("{e:#}") })?;

        for import in module.imports() {
            let (module_name, name) = (import.module(), import.name());
            let permission = (module_name == abi::HOST_MODULE && matches!(import.ty(), ExternType::Func(_)))
                .then(|| abi::permission_for_import(name, catalog))
                .flatten();
            let Some(permission) = permission else {
                return Err(WasmError::UnknownImport {
                    plugin_id: id(),
                    module: module_name.to_owned(),
                    name: name.to_owned(),
                });
            };
            if !grants.allows(permission) {
                return Err(WasmError::PermissionDenied {
                    plugin_id: id(),
                    module: module_name.to_owned(),
                    name: name.to_owned(),
                    permission: permission.to_owned(),
                });
            }
        }
        let methods = check_exports(&module, &manifest.plugin_id, required_methods)?;

        let mut linker: Linker<RunState> = Linker::new(&shared.engine);
        link_host_functions(&mut linker, &grants, catalog)
            .map_err(|e| WasmError::Instantiate { plugin_id: id(), message: format!("{e:#}") })?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| WasmError::Instantiate { plugin_id: id(), message: format!("{e:#}") })?;

        let limits = shared.config.limits.tightened_by(&manifest);
        let loaded = WasmModule {
            shared: Arc::clone(&shared),
            manifest,
            plugin_id,
            grants,
            limits,
            pre,
            artifact_digest: Digest::of_bytes(wasm),
            methods,
            resident: None,
        };
        loaded.check_abi_version()?;
        Ok(loaded)
    }

    /// The methods the module exports (`polis_<method>`), sorted.
    pub fn methods(&self) -> impl Iterator<Item = &str> {
        self.methods.iter().map(String::as_str)
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the module bytes.
    pub fn artifact_digest(&self) -> Digest {
        self.artifact_digest
    }

    /// The permissions the plugin was granted.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The limits its runs get: the host's, tightened by the manifest.
    pub fn limits(&self) -> WasmLimits {
        self.limits
    }

    fn new_store(
        &self,
        seed: u64,
        control: &RunControl,
        host: &Arc<dyn HostApi>,
    ) -> Result<Store<RunState>, wasmtime::Error> {
        let state = RunState {
            plugin_id: Arc::clone(&self.plugin_id),
            limiter: Limiter {
                memory_bytes: usize::try_from(self.limits.memory_bytes).unwrap_or(usize::MAX),
                memory_refused: false,
            },
            rng: ChaCha8Rng::seed_from_u64(seed),
            log_sink: Arc::clone(&self.shared.config.log_sink),
            logged: 0,
            control: control.clone(),
            deadline: Instant::now() + self.limits.timeout,
            host: Arc::clone(host),
            host_calls: 0,
        };
        let mut store = Store::new(&self.shared.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_fuel(self.limits.fuel)?;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|context| {
            let state = context.data();
            if state.control.is_cancelled() {
                return Err(wasmtime::Error::new(Interrupted::Cancelled));
            }
            if Instant::now() >= state.deadline {
                return Err(wasmtime::Error::new(Interrupted::Timeout));
            }
            Ok(UpdateDeadline::Continue(1))
        });
        Ok(store)
    }

    fn check_abi_version(&self) -> Result<(), WasmError> {
        let instantiate = |e: wasmtime::Error| WasmError::Instantiate {
            plugin_id: self.manifest.plugin_id.clone(),
            message: format!("{e:#}"),
        };
        let mut store = self.new_store(0, &RunControl::new(), &no_host()).map_err(instantiate)?;
        let instance = self.pre.instantiate(&mut store).map_err(instantiate)?;
        let version = instance
            .get_typed_func::<(), i32>(&mut store, exports::ABI_VERSION)
            .and_then(|f| f.call(&mut store, ()))
            .map_err(instantiate)?;
        if version != abi::ABI_VERSION {
            return Err(WasmError::AbiVersion {
                plugin_id: self.manifest.plugin_id.clone(),
                found: i64::from(version),
                supported: abi::ABI_VERSION,
            });
        }
        Ok(())
    }

    /// Keeps one instance alive across calls instead of a fresh one per
    /// call, so the module's memory (a stateful plugin's instances, such as
    /// a strategy's) survives from one call to the next, as a process
    /// plugin's worker does. Calls are serialised on that instance.
    ///
    /// Each call still gets its own limits: fuel and the wall-clock
    /// deadline are reset, and the call's seed, cancellation and host are
    /// installed; memory is capped over the instance's life. A call that
    /// fails inside the module (a trap, a limit, a bad reply) drops the
    /// instance, since its memory may be half-updated: the next call starts
    /// a fresh one, and the plugin sees none of its earlier state. A guest
    /// error reply (`{"error"}`) keeps it. By default a module is not
    /// resident.
    pub fn into_resident(mut self) -> WasmModule {
        self.resident = Some(std::sync::Mutex::new(None));
        self
    }

    /// Whether calls share one kept instance ([`WasmModule::into_resident`]).
    pub fn is_resident(&self) -> bool {
        self.resident.is_some()
    }

    /// Runs one request to `polis_<method>` in a fresh instance (or the
    /// kept one, when resident) and returns the raw reply bytes (the ABI's
    /// `{"ok"}`/`{"error"}` envelope).
    ///
    /// `seed` seeds the `random` host function; `host` answers granted
    /// capability imports. Every failure is contained and reported as a
    /// [`PolicyError`]: limits as `LimitExceeded` (`fuel`, `timeout`,
    /// `memory`, `output_bytes`, `host_calls`), cancellation as
    /// `Cancelled`, a method the module does not export as `NoSuchMethod`,
    /// traps and ABI misuse as `Failed`.
    pub fn invoke(&self, method: &str, request: &[u8], env: &CallEnv<'_>) -> Result<Vec<u8>, PolicyError> {
        let export = abi::method_export(method);
        if !self.methods.contains(method) {
            return Err(PolicyError::NoSuchMethod(method.to_owned()));
        }
        if let Some(resident) = &self.resident {
            return self.invoke_resident(resident, &export, request, env);
        }
        let mut store = self.new_store(env.seed, env.control, env.host).map_err(|e| failed("store", &e))?;
        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|instance| self.call_instance(&mut store, &instance, &export, request));
        result.map_err(|e| self.classify(&store, &e))
    }

    fn invoke_resident(
        &self,
        resident: &std::sync::Mutex<Option<Resident>>,
        export: &str,
        request: &[u8],
        env: &CallEnv<'_>,
    ) -> Result<Vec<u8>, PolicyError> {
        // A poisoned lock means a call panicked in the host while holding
        // it; the instance it guards is dropped below like a trapped one.
        let mut kept = resident.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.is_none() {
            let mut store = self.new_store(env.seed, env.control, env.host).map_err(|e| failed("store", &e))?;
            let instance = self.pre.instantiate(&mut store).map_err(|e| self.classify(&store, &e))?;
            *kept = Some(Resident { store, instance });
        }
        let Some(Resident { store, instance }) = kept.as_mut() else {
            return Err(PolicyError::Failed("resident instance is missing".to_owned()));
        };
        let state = store.data_mut();
        state.rng = ChaCha8Rng::seed_from_u64(env.seed);
        state.control = env.control.clone();
        state.host = Arc::clone(env.host);
        state.deadline = Instant::now() + self.limits.timeout;
        state.logged = 0;
        state.host_calls = 0;
        state.limiter.memory_refused = false;
        let reset = store.set_fuel(self.limits.fuel).map(|()| store.set_epoch_deadline(1));
        let instance = *instance;
        let result = reset
            .and_then(|()| self.call_instance(store, &instance, export, request))
            .map_err(|e| self.classify(store, &e));
        if result.is_err() {
            *kept = None;
        }
        result
    }

    /// [`WasmModule::invoke`] of `run` with no host capabilities.
    pub fn call(&self, request: &[u8], seed: u64, control: &RunControl) -> Result<Vec<u8>, PolicyError> {
        self.invoke("run", request, &CallEnv { seed, control, host: &no_host() })
    }

    fn call_instance(
        &self,
        store: &mut Store<RunState>,
        instance: &Instance,
        export: &str,
        request: &[u8],
    ) -> Result<Vec<u8>, wasmtime::Error> {
        let memory = instance
            .get_memory(&mut *store, exports::MEMORY)
            .ok_or_else(|| wasmtime::Error::msg("export `memory` is missing"))?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut *store, exports::ALLOC)?;
        let run = instance.get_typed_func::<(i32, i32), i64>(&mut *store, export)?;

        let len = i32::try_from(request.len()).map_err(|_| wasmtime::Error::msg("request is larger than 2 GiB"))?;
        let ptr = alloc.call(&mut *store, len)?;
        if ptr == 0 && len > 0 {
            return Err(wasmtime::Error::msg(format!("`polis_alloc({len})` returned 0")));
        }
        memory
            .write(&mut *store, ptr as u32 as usize, request)
            .map_err(|_| wasmtime::Error::msg(format!("`polis_alloc({len})` returned an address outside memory")))?;
        let (out_ptr, out_len) = abi::unpack(run.call(&mut *store, (ptr, len))?);
        if u64::from(out_len) > self.limits.max_output_bytes {
            return Err(wasmtime::Error::new(OutputTooLarge { len: out_len, limit: self.limits.max_output_bytes }));
        }
        let (start, end) = (out_ptr as usize, out_ptr as usize + out_len as usize);
        let bytes = memory
            .data(&*store)
            .get(start..end)
            .ok_or_else(|| wasmtime::Error::msg(format!("reply {start}..{end} lies outside the plugin's memory")))?;
        Ok(bytes.to_vec())
    }

    fn classify(&self, store: &Store<RunState>, error: &wasmtime::Error) -> PolicyError {
        if let Some(interrupted) = error.downcast_ref::<Interrupted>() {
            return match interrupted {
                Interrupted::Cancelled => PolicyError::Cancelled,
                Interrupted::Timeout => PolicyError::LimitExceeded {
                    limit: "timeout",
                    detail: format!("still running after {} ms", self.limits.timeout.as_millis()),
                },
            };
        }
        if let Some(too_large) = error.downcast_ref::<OutputTooLarge>() {
            return PolicyError::LimitExceeded {
                limit: "output_bytes",
                detail: format!("reply of {} bytes exceeds the cap of {}", too_large.len, too_large.limit),
            };
        }
        if let Some(limit) = error.downcast_ref::<HostCallLimit>() {
            return PolicyError::LimitExceeded { limit: "host_calls", detail: limit.to_string() };
        }
        if let Some(Trap::StackOverflow) = error.downcast_ref::<Trap>() {
            return PolicyError::LimitExceeded {
                limit: "stack",
                detail: "the guest's call stack overflowed (recursion too deep)".to_owned(),
            };
        }
        if let Some(Trap::OutOfFuel) = error.downcast_ref::<Trap>() {
            return PolicyError::LimitExceeded {
                limit: "fuel",
                detail: format!("used all {} units of fuel", self.limits.fuel),
            };
        }
        if store.data().limiter.memory_refused {
            return PolicyError::LimitExceeded {
                limit: "memory",
                detail: format!(
                    "tried to grow memory beyond {} MiB and then failed: {}",
                    self.limits.memory_bytes >> 20,
                    one_line(error)
                ),
            };
        }
        failed("run", error)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("reply of {len} bytes exceeds the cap of {limit}")]
struct OutputTooLarge {
    len: u32,
    limit: u64,
}

/// A host capability call over its limits.
#[derive(Debug, thiserror::Error)]
enum HostCallLimit {
    #[error("more than {MAX_HOST_CALLS_PER_RUN} host calls in one run")]
    TooMany,
    #[error("a host call request of {0} bytes exceeds the cap of {MAX_HOST_REQUEST_BYTES}")]
    TooLarge(usize),
}

/// The ABI's reply envelope, with the output kept raw.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    ok: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    error: Option<GuestError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestError {
    kind: String,
    message: String,
}

/// Opens the ABI's reply envelope: the `ok` document's bytes, or the
/// guest's error (`rejected` becomes [`PolicyError::Rejected`]).
pub(crate) fn open_envelope(reply: &[u8]) -> Result<Vec<u8>, PolicyError> {
    let mut de = serde_json::Deserializer::from_slice(reply);
    let envelope = Envelope::deserialize(&mut de).and_then(|e| de.end().map(|()| e)).map_err(|e| {
        PolicyError::Failed(if e.is_syntax() || e.is_eof() {
            format!("reply is not valid JSON: {e}")
        } else {
            format!("reply is not the wasm ABI's `{{\"ok\"}}` or `{{\"error\"}}` envelope: {e}")
        })
    })?;
    match (envelope.ok, envelope.error) {
        (Some(ok), None) => Ok(ok.get().as_bytes().to_vec()),
        (None, Some(error)) if error.kind == "rejected" => Err(PolicyError::Rejected(error.message)),
        (None, Some(error)) => Err(PolicyError::Failed(format!("{} ({})", error.message, error.kind))),
        _ => Err(PolicyError::Failed("reply must hold exactly one of `ok` and `error`".to_owned())),
    }
}

impl PluginEndpoint for WasmModule {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn grants(&self) -> &Grants {
        &self.grants
    }

    fn call(&self, method: &str, request: &[u8], env: &CallEnv<'_>) -> Result<Vec<u8>, PolicyError> {
        open_envelope(&self.invoke(method, request, env)?)
    }
}

fn one_line(error: &wasmtime::Error) -> String {
    let text = format!("{error:#}");
    text.lines().next().unwrap_or_default().to_owned()
}

fn failed(stage: &str, error: &wasmtime::Error) -> PolicyError {
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return PolicyError::Failed(format!("wasm trap during {stage}: {trap}"));
    }
    PolicyError::Failed(format!("wasm {stage} failed: {}", one_line(error)))
}

/// Checks the ABI's exports and returns the methods the module answers:
/// every `polis_<method>` export other than the ABI's own, each of type
/// `(i32, i32) -> i64`. Every method in `required` must be among them.
fn check_exports(module: &Module, plugin_id: &str, required: &[&str]) -> Result<BTreeSet<String>, WasmError> {
    let bad = |name: &str, problem: String| WasmError::BadExport {
        plugin_id: plugin_id.to_owned(),
        name: name.to_owned(),
        problem,
    };
    match module.get_export(exports::MEMORY) {
        Some(ExternType::Memory(_)) => {}
        Some(_) => return Err(bad(exports::MEMORY, "is not a memory".to_owned())),
        None => return Err(bad(exports::MEMORY, "is missing".to_owned())),
    }
    let i32_ = || ValType::I32;
    let same = |got: Vec<ValType>, want: &[ValType]| {
        got.len() == want.len() && got.iter().zip(want).all(|(a, b)| ValType::eq(a, b))
    };
    for (name, params, results) in
        [(exports::ABI_VERSION, vec![], vec![i32_()]), (exports::ALLOC, vec![i32_()], vec![i32_()])]
    {
        let Some(ty) = module.get_export(name) else {
            return Err(bad(name, "is missing".to_owned()));
        };
        let ExternType::Func(func) = ty else {
            return Err(bad(name, "is not a function".to_owned()));
        };
        if !same(func.params().collect(), &params) || !same(func.results().collect(), &results) {
            return Err(bad(name, format!("has type {func}, expected ({}) -> ({})", show(&params), show(&results))));
        }
    }
    let method_params = [i32_(), i32_()];
    let method_results = [ValType::I64];
    let mut methods = BTreeSet::new();
    for export in module.exports() {
        let name = export.name();
        let Some(method) = name.strip_prefix(abi::METHOD_PREFIX) else { continue };
        if name == exports::ABI_VERSION || name == exports::ALLOC {
            continue;
        }
        let ExternType::Func(func) = export.ty() else {
            return Err(bad(name, "is not a function".to_owned()));
        };
        if !same(func.params().collect(), &method_params) || !same(func.results().collect(), &method_results) {
            return Err(bad(
                name,
                format!("has type {func}, expected ({}) -> ({})", show(&method_params), show(&method_results)),
            ));
        }
        methods.insert(method.to_owned());
    }
    for method in required {
        if !methods.contains(*method) {
            return Err(bad(&abi::method_export(method), "is missing".to_owned()));
        }
    }
    Ok(methods)
}

fn show(types: &[ValType]) -> String {
    types.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn link_host_functions(
    linker: &mut Linker<RunState>,
    grants: &Grants,
    catalog: &PermissionCatalog,
) -> wasmtime::Result<()> {
    if grants.allows(permission::LOG_EMIT) {
        linker.func_wrap(abi::HOST_MODULE, "log", |mut caller: Caller<'_, RunState>, ptr: i32, len: i32| {
            let Some(memory) = caller.get_export(exports::MEMORY).and_then(|e| e.into_memory()) else {
                return Ok(());
            };
            let (start, len) = (ptr as u32 as usize, (len as u32 as usize).min(MAX_LOG_LINE));
            let text = memory
                .data(&caller)
                .get(start..start.saturating_add(len))
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
            let state = caller.data_mut();
            if state.logged >= MAX_LOG_LINES_PER_RUN {
                return Ok(());
            }
            state.logged += 1;
            let message = text.unwrap_or_else(|| format!("(log call with an out-of-bounds range at {start})"));
            (state.log_sink)(&LogLine { plugin_id: state.plugin_id.to_string(), message });
            Ok(())
        })?;
    }
    if grants.allows(permission::RANDOM) {
        linker.func_wrap(abi::HOST_MODULE, "random_u64", |mut caller: Caller<'_, RunState>| {
            caller.data_mut().rng.next_u64() as i64
        })?;
    }
    for capability in catalog.capabilities().iter().filter(|c| grants.allows(c.permission)) {
        let method: Arc<str> = Arc::from(capability.method);
        linker.func_wrap(
            abi::HOST_MODULE,
            &capability.wasm_import(),
            move |mut caller: Caller<'_, RunState>, ptr: i32, len: i32| -> wasmtime::Result<i64> {
                host_call(&mut caller, &method, ptr, len)
            },
        )?;
    }
    Ok(())
}

/// One capability call from the guest: reads its request, asks the host,
/// and writes `{"ok": result}` or `{"error": {"code", "message"}}` into
/// memory the guest allocates, returning it packed like `polis_run`.
fn host_call(caller: &mut Caller<'_, RunState>, method: &str, ptr: i32, len: i32) -> wasmtime::Result<i64> {
    let state = caller.data_mut();
    state.host_calls += 1;
    if state.host_calls > MAX_HOST_CALLS_PER_RUN {
        return Err(wasmtime::Error::new(HostCallLimit::TooMany));
    }
    let len = len as u32 as usize;
    if len > MAX_HOST_REQUEST_BYTES {
        return Err(wasmtime::Error::new(HostCallLimit::TooLarge(len)));
    }
    let memory = caller
        .get_export(exports::MEMORY)
        .and_then(|e| e.into_memory())
        .ok_or_else(|| wasmtime::Error::msg("export `memory` is missing"))?;
    let start = ptr as u32 as usize;
    let request = memory
        .data(&*caller)
        .get(start..start.saturating_add(len))
        .ok_or_else(|| wasmtime::Error::msg(format!("host call `{method}` passed a request outside memory")))?
        .to_vec();
    let host = Arc::clone(&caller.data().host);
    let reply = match host.call(method, &request) {
        Ok(result) => {
            let mut reply = Vec::with_capacity(result.len() + 7);
            reply.extend_from_slice(b"{\"ok\":");
            reply.extend_from_slice(&result);
            reply.push(b'}');
            reply
        }
        Err(error) => {
            serde_json::to_vec(&serde_json::json!({"error": {"code": error.code(), "message": error.to_string()}}))
                .map_err(|e| wasmtime::Error::msg(format!("host error does not encode: {e}")))?
        }
    };
    let alloc = caller
        .get_export(exports::ALLOC)
        .and_then(|e| e.into_func())
        .ok_or_else(|| wasmtime::Error::msg("export `polis_alloc` is missing"))?
        .typed::<i32, i32>(&*caller)?;
    let out_len = i32::try_from(reply.len()).map_err(|_| wasmtime::Error::msg("host reply is larger than 2 GiB"))?;
    let out = alloc.call(&mut *caller, out_len)?;
    memory
        .write(&mut *caller, out as u32 as usize, &reply)
        .map_err(|_| wasmtime::Error::msg("`polis_alloc` returned an address outside memory"))?;
    Ok(abi::pack(out as u32, reply.len() as u32))
}
