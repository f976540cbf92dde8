//! Why a wasm plugin could not be loaded.

/// A load-time failure. Every variant names the plugin; the host keeps
/// running and lists the plugin as disabled with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WasmError {
    /// The engine could not be configured.
    #[error("wasm engine could not start: {0}")]
    Engine(String),
    /// The module is larger than a host limit before it is compiled: more
    /// functions or table elements than polis compiles or allocates.
    #[error("plugin `{plugin_id}`: module exceeds its `{limit}` limit: {detail}")]
    ModuleLimit {
        /// The plugin.
        plugin_id: String,
        /// Which limit: `functions` or `table_elements`.
        limit: &'static str,
        /// By how much.
        detail: String,
    },
    /// The bytes are not a valid wasm module.
    #[error("plugin `{plugin_id}`: module does not compile: {message}")]
    Compile {
        /// The plugin.
        plugin_id: String,
        /// The compiler's message.
        message: String,
    },
    /// The module imports a host function whose permission it was not
    /// granted.
    #[error(
        "plugin `{plugin_id}`: imports `{module}.{name}`, which needs permission `{permission}` that was not granted"
    )]
    PermissionDenied {
        /// The plugin.
        plugin_id: String,
        /// Import module.
        module: String,
        /// Import name.
        name: String,
        /// The permission that would unlock it.
        permission: String,
    },
    /// The module imports something polis does not provide (WASI, another
    /// module, a memory).
    #[error("plugin `{plugin_id}`: imports `{module}.{name}`, which polis does not provide")]
    UnknownImport {
        /// The plugin.
        plugin_id: String,
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// A required export is missing or has the wrong type.
    #[error("plugin `{plugin_id}`: export `{name}` {problem}")]
    BadExport {
        /// The plugin.
        plugin_id: String,
        /// The export.
        name: String,
        /// What is wrong, such as `is missing`.
        problem: String,
    },
    /// The module speaks another ABI version.
    #[error("plugin `{plugin_id}`: ABI version {found} is not supported; this host speaks version {supported}")]
    AbiVersion {
        /// The plugin.
        plugin_id: String,
        /// What `polis_abi_version` returned.
        found: i64,
        /// What this host speaks.
        supported: i32,
    },
    /// Instantiating the module for the ABI check failed.
    #[error("plugin `{plugin_id}`: module does not instantiate: {message}")]
    Instantiate {
        /// The plugin.
        plugin_id: String,
        /// What went wrong.
        message: String,
    },
}

impl WasmError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WasmError::Engine(_) => "wasm.engine",
            WasmError::ModuleLimit { .. } => "wasm.module_limit",
            WasmError::Compile { .. } => "wasm.compile",
            WasmError::PermissionDenied { .. } => "wasm.permission_denied",
            WasmError::UnknownImport { .. } => "wasm.unknown_import",
            WasmError::BadExport { .. } => "wasm.bad_export",
            WasmError::AbiVersion { .. } => "wasm.abi_version",
            WasmError::Instantiate { .. } => "wasm.instantiate",
        }
    }
}
