//! A loaded plugin module and its per-run sandbox.

use std::sync::Arc;
use std::time::Instant;

use polis_core::canonical::Digest;
use polis_core::manifest::Manifest;
use polis_core::permission::{Grants, Permission};
use polis_core::policy::PolicyError;
pub use polis_core::policy::RunControl;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use wasmtime::{
    Caller, ExternType, InstancePre, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline, ValType,
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
        Ok(desired <= 100_000)
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
}

impl WasmModule {
    pub(crate) fn load(shared: Arc<Shared>, manifest: Manifest, wasm: &[u8]) -> Result<WasmModule, WasmError> {
        let plugin_id: Arc<str> = Arc::from(manifest.plugin_id.as_str());
        let id = || manifest.plugin_id.clone();
        let grants = Grants::resolve(&manifest.permissions);
        let module = Module::new(&shared.engine, wasm)
            .map_err(|e| WasmError::Compile { plugin_id: id(), message: format!("{e:#}") })?;

        for import in module.imports() {
            let (module_name, name) = (import.module(), import.name());
            let permission = (module_name == abi::HOST_MODULE && matches!(import.ty(), ExternType::Func(_)))
                .then(|| abi::permission_for_import(name))
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
                    permission: permission.name().to_owned(),
                });
            }
        }
        check_exports(&module, &manifest.plugin_id)?;

        let mut linker: Linker<RunState> = Linker::new(&shared.engine);
        link_host_functions(&mut linker, &grants)
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
        };
        loaded.check_abi_version()?;
        Ok(loaded)
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

    fn new_store(&self, seed: u64, control: &RunControl) -> Result<Store<RunState>, wasmtime::Error> {
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
        let mut store = self.new_store(0, &RunControl::new()).map_err(instantiate)?;
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

    /// Runs one request in a fresh instance and returns the reply bytes.
    ///
    /// `request` is the ABI's request document; `seed` seeds the `random`
    /// host function. Every failure is contained and reported as a
    /// [`PolicyError`]: limits as `LimitExceeded` (`fuel`, `timeout`,
    /// `memory`, `output_bytes`), cancellation as `Cancelled`, traps and
    /// ABI misuse as `Failed`.
    pub fn call(&self, request: &[u8], seed: u64, control: &RunControl) -> Result<Vec<u8>, PolicyError> {
        let mut store = self.new_store(seed, control).map_err(|e| failed("store", &e))?;
        let result = self.call_in(&mut store, request);
        result.map_err(|e| self.classify(&store, &e))
    }

    fn call_in(&self, store: &mut Store<RunState>, request: &[u8]) -> Result<Vec<u8>, wasmtime::Error> {
        let instance = self.pre.instantiate(&mut *store)?;
        let memory = instance
            .get_memory(&mut *store, exports::MEMORY)
            .ok_or_else(|| wasmtime::Error::msg("export `memory` is missing"))?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut *store, exports::ALLOC)?;
        let run = instance.get_typed_func::<(i32, i32), i64>(&mut *store, exports::RUN)?;

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

fn check_exports(module: &Module, plugin_id: &str) -> Result<(), WasmError> {
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
    for (name, params, results) in [
        (exports::ABI_VERSION, vec![], vec![i32_()]),
        (exports::ALLOC, vec![i32_()], vec![i32_()]),
        (exports::RUN, vec![i32_(), i32_()], vec![ValType::I64]),
    ] {
        let Some(ty) = module.get_export(name) else {
            return Err(bad(name, "is missing".to_owned()));
        };
        let ExternType::Func(func) = ty else {
            return Err(bad(name, "is not a function".to_owned()));
        };
        let same = |got: Vec<ValType>, want: &[ValType]| {
            got.len() == want.len() && got.iter().zip(want).all(|(a, b)| ValType::eq(a, b))
        };
        if !same(func.params().collect(), &params) || !same(func.results().collect(), &results) {
            return Err(bad(name, format!("has type {func}, expected ({}) -> ({})", show(&params), show(&results))));
        }
    }
    Ok(())
}

fn show(types: &[ValType]) -> String {
    types.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn link_host_functions(linker: &mut Linker<RunState>, grants: &Grants) -> wasmtime::Result<()> {
    if grants.allows(Permission::LogEmit) {
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
    if grants.allows(Permission::Random) {
        linker.func_wrap(abi::HOST_MODULE, "random_u64", |mut caller: Caller<'_, RunState>| {
            caller.data_mut().rng.next_u64() as i64
        })?;
    }
    Ok(())
}
