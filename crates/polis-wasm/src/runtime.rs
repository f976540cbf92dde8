//! The engine: configuration, pooling allocator and epoch ticker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use polis_core::manifest::Manifest;
use polis_core::permission::PermissionCatalog;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::WasmError;
use crate::module::{LogSink, WasmModule};

/// Per-run limits of a wasm plugin. The host's values are ceilings: a
/// manifest's `limits` may tighten them, never loosen them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasmLimits {
    /// Fuel per run: roughly one unit per wasm instruction, so the same
    /// run always uses the same fuel on every machine. By default 2·10⁹.
    pub fuel: u64,
    /// Wall-clock budget per run, enforced by epoch interruption at
    /// [`WasmConfig::epoch_tick`] granularity. By default 2 s.
    pub timeout: Duration,
    /// Largest linear memory, in bytes. By default 128 MiB.
    pub memory_bytes: u64,
    /// Largest reply, in bytes, checked before the host reads it. By
    /// default 16 MiB.
    pub max_output_bytes: u64,
}

impl Default for WasmLimits {
    fn default() -> Self {
        WasmLimits {
            fuel: 2_000_000_000,
            timeout: Duration::from_secs(2),
            memory_bytes: 128 << 20,
            max_output_bytes: 16 << 20,
        }
    }
}

impl WasmLimits {
    /// These limits tightened by a manifest's `limits`.
    pub fn tightened_by(self, manifest: &Manifest) -> WasmLimits {
        let Some(limits) = &manifest.limits else {
            return self;
        };
        WasmLimits {
            fuel: self.fuel,
            timeout: limits.timeout_ms.map_or(self.timeout, |ms| self.timeout.min(Duration::from_millis(ms))),
            memory_bytes: limits
                .memory_mb
                .map_or(self.memory_bytes, |mb| self.memory_bytes.min(mb.saturating_mul(1 << 20))),
            max_output_bytes: limits.max_output_bytes.map_or(self.max_output_bytes, |b| self.max_output_bytes.min(b)),
        }
    }
}

/// How the wasm engine is set up.
#[derive(Clone)]
pub struct WasmConfig {
    /// Ceilings for every run. By default [`WasmLimits::default`].
    pub limits: WasmLimits,
    /// How often the epoch advances; wall-clock deadlines and cancellation
    /// are noticed at this granularity. By default 5 ms.
    pub epoch_tick: Duration,
    /// How many instances may be alive at once across all plugins of this
    /// runtime (the pooling allocator's slots). By default 64.
    pub max_concurrent_instances: u32,
    /// Where `log:emit` lines go. By default standard error, prefixed with
    /// the plugin id.
    pub log_sink: LogSink,
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            limits: WasmLimits::default(),
            epoch_tick: Duration::from_millis(5),
            max_concurrent_instances: 64,
            log_sink: crate::module::stderr_sink(),
        }
    }
}

/// Stops and joins the epoch thread when the last user is gone.
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) config: WasmConfig,
    _ticker: Ticker,
}

/// One wasmtime engine for many plugins. Cheap to share: modules keep the
/// engine (and its epoch ticker) alive.
#[derive(Clone)]
pub struct WasmRuntime {
    shared: Arc<Shared>,
}

impl WasmRuntime {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(config: WasmConfig) -> Result<WasmRuntime, WasmError> {
        let mut pool = PoolingAllocationConfig::default();
        let slots = config.max_concurrent_instances.max(1);
        pool.total_core_instances(slots)
            .total_memories(slots)
            .total_tables(slots)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .max_memory_size(usize::try_from(config.limits.memory_bytes).unwrap_or(usize::MAX));

        // Threads are off because wasmtime is built without its `threads`
        // feature; WASI is never linked.
        let mut wasm = Config::new();
        wasm.consume_fuel(true)
            .epoch_interruption(true)
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| WasmError::Engine(e.to_string()))?;

        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (engine, stop, tick) = (engine.clone(), Arc::clone(&stop), config.epoch_tick);
            std::thread::Builder::new()
                .name("polis-wasm-epoch".to_owned())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| WasmError::Engine(format!("epoch thread did not start: {e}")))?
        };
        Ok(WasmRuntime { shared: Arc::new(Shared { engine, config, _ticker: Ticker { stop, handle: Some(handle) } }) })
    }

    /// The host's ceilings.
    pub fn limits(&self) -> WasmLimits {
        self.shared.config.limits
    }

    /// Compiles `wasm` for the plugin `manifest` describes, with only the
    /// platform's permissions, and checks its imports, exports (`polis_run`
    /// among them) and ABI version.
    pub fn load(&self, manifest: Manifest, wasm: &[u8]) -> Result<WasmModule, WasmError> {
        self.load_with(manifest, wasm, &PermissionCatalog::platform(), &["run"])
    }

    /// Like [`WasmRuntime::load`] for a contract with its own permissions
    /// and capabilities (`catalog`), whose plugins must export every method
    /// in `required_methods`.
    pub fn load_with(
        &self,
        manifest: Manifest,
        wasm: &[u8],
        catalog: &PermissionCatalog,
        required_methods: &[&str],
    ) -> Result<WasmModule, WasmError> {
        WasmModule::load(Arc::clone(&self.shared), manifest, wasm, catalog, required_methods)
    }
}
