//! Loads plugins from allowlisted directories into a registry, whatever
//! their tier.
//!
//! A plugin directory holds a `manifest.json` and its artifact: a `.wasm`
//! module (tier `wasm`, `runtime.entry` is the file name), or a program and
//! its script (tier `process`, `runtime.entry` is a command line such as
//! `python3 plugin.py`), or nothing but the manifest (tier `remote`,
//! `runtime.entry` is the endpoint's URL). [`load_root`] walks the immediate subdirectories of
//! an allowlisted root in byte order of their names; each plugin that fails
//! (an unreadable or invalid manifest, a missing artifact, an ungranted
//! import, a failed handshake) is recorded in the registry as disabled with
//! its reason, so `polis plugins list` shows why, and the others load.
//!
//! Only directories whose manifest the contract claims are loaded, with that
//! contract's permissions and capabilities. [`load_roots`] registers each
//! plugin as a policy of a one-method contract; [`load_endpoints`] hands a
//! domain whose plugins answer several methods the endpoints themselves,
//! and [`load_stateful_endpoints`] does so for plugins that keep state
//! between calls (a wasm module keeps one instance alive).
//! Either way the caller never learns which tier a plugin runs in.
//!
//! Reloading is atomic: [`load_roots`] builds a new registry from a base
//! (the built-ins) and returns it; the caller swaps it in whole.
//!
//! # Example
//!
//! ```no_run
//! # fn demo<C: polis_core::contract::Contract>(
//! #     builtins: polis_core::registry::Registry<C>,
//! # ) -> Result<(), polis_wasm::WasmError> {
//! use polis_plugins::{Tiers, load_roots};
//!
//! // `builtins`: any contract's registry of built-in policies.
//! let tiers = Tiers::new()?;
//! let (registry, reports) = load_roots::<C>(builtins, &["plugins".as_ref()], &tiers);
//! for report in &reports {
//!     println!("{}: {:?}", report.source.display(), report.outcome);
//! }
//! # let _ = registry;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod approval;
pub mod signing;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use polis_core::canonical::Digest;
use polis_core::contract::{Contract, permission_catalog};
use polis_core::manifest::{MAX_MANIFEST_BYTES, Manifest, TierKind};
use polis_core::permission::{Grants, PermissionCatalog};
use polis_core::policy::{EndpointPolicy, PluginEndpoint};
use polis_core::registry::Registry;
use polis_process::{ProcessConfig, ProcessPlugin, ProcessSpec, SandboxReport};
use polis_remote::{RemoteConfig, RemotePlugin};
use polis_wasm::{WasmConfig, WasmError, WasmRuntime};
use serde::Serialize;

/// Wasm modules larger than this are not read.
pub const MAX_WASM_BYTES: u64 = 64 << 20;

/// The manifest file name in a plugin directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The tiers plugins are loaded into.
#[derive(Clone)]
pub struct Tiers {
    /// The wasm engine.
    pub wasm: WasmRuntime,
    /// Process tier settings.
    pub process: ProcessConfig,
    /// Remote tier settings.
    pub remote: RemoteConfig,
    /// Start each process plugin's worker at load (`plugins list --probe`),
    /// so a plugin whose handshake fails is listed as disabled at once. By
    /// default false: loading checks manifests and artifacts statically and
    /// a worker starts on its plugin's first call, so choosing one plugin of
    /// a directory never waits for the others.
    pub start_processes: bool,
    /// When set, only plugins signed by one of these keys load
    /// ([`signing`]); an unsigned or tampered plugin is disabled with the
    /// reason. By default signatures are not required.
    pub trusted_keys: Option<Vec<signing::TrustedKey>>,
    /// When set, every plugin loaded asks this gate before each call and
    /// runs only once its version and files are approved ([`approval`]).
    pub approval: Option<Arc<approval::ApprovalGate>>,
}

impl Tiers {
    /// Default settings for every tier.
    pub fn new() -> Result<Tiers, WasmError> {
        Ok(Tiers {
            wasm: WasmRuntime::new(WasmConfig::default())?,
            process: ProcessConfig::default(),
            remote: RemoteConfig::default(),
            start_processes: false,
            trusted_keys: None,
            approval: None,
        })
    }
}

/// A plugin loaded from a directory, ready to call.
#[derive(Clone)]
pub struct Loaded {
    /// Its manifest, as read.
    pub manifest: Manifest,
    /// SHA-256 of its artifact, when it has one.
    pub artifact_digest: Option<Digest>,
    /// The plugin, whatever its tier.
    pub endpoint: Arc<dyn PluginEndpoint>,
}

/// What happened to one plugin directory.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The plugin directory.
    pub source: PathBuf,
    /// The plugin id, when the manifest was readable.
    pub plugin_id: Option<String>,
    /// The tier the manifest asks for.
    pub tier: Option<TierKind>,
    /// `SHA-256(JCS(manifest))`.
    pub manifest_sha256: Option<Digest>,
    /// SHA-256 of the artifact (the module, or the script).
    pub artifact_sha256: Option<Digest>,
    /// SHA-256 of the list of every file the directory holds
    /// ([`signing::files_digest`]): what a signature and an approval cover.
    pub files_sha256: Option<Digest>,
    /// The key that signed the directory, when signatures are required.
    pub signed_by: Option<String>,
    /// Permission names the manifest asks for that polis does not know;
    /// they were not granted.
    pub unknown_permissions: Vec<String>,
    /// For process plugins, what each sandbox layer does.
    pub sandbox: Option<SandboxReport>,
    /// `Ok` when registered, else why not.
    pub outcome: Result<(), String>,
}

/// Builds a registry from `base` plus every plugin under `roots` whose
/// manifest contract `C` claims, each behind [`EndpointPolicy`].
pub fn load_roots<C: Contract>(base: Registry<C>, roots: &[&Path], tiers: &Tiers) -> (Registry<C>, Vec<LoadReport>) {
    let mut registry = base;
    let mut reports = Vec::new();
    for root in roots {
        reports.extend(load_root(root, tiers, &mut registry));
    }
    (registry, reports)
}

/// Loads every plugin directory directly under `root` whose manifest names
/// contract `C`. A root that cannot be read is reported as one failed entry.
pub fn load_root<C: Contract>(root: &Path, tiers: &Tiers, registry: &mut Registry<C>) -> Vec<LoadReport> {
    let (loaded, mut reports) = endpoints_under::<C>(root, tiers, &[C::METHOD], Instances::PerCall);
    let mut loaded = loaded.into_iter();
    for report in &mut reports {
        match &report.outcome {
            Ok(()) => {
                let Some(plugin) = loaded.next() else { continue };
                let policy = Arc::new(EndpointPolicy::<C>::new(plugin.endpoint));
                report.outcome = registry.register(policy, plugin.artifact_digest).map_err(|e| e.to_string());
            }
            Err(reason) => {
                let source = report.plugin_id.clone().unwrap_or_else(|| report.source.display().to_string());
                registry.record_load_failure(&source, report.tier.unwrap_or(TierKind::Builtin), reason.clone());
            }
        }
    }
    reports
}

/// Loads one plugin directory into `registry` behind [`EndpointPolicy`];
/// `None` when contract `C` does not claim its manifest.
pub fn register_dir<C: Contract>(dir: &Path, tiers: &Tiers, registry: &mut Registry<C>) -> Option<LoadReport> {
    let (loaded, mut report) = load_dir::<C>(dir, tiers, &permission_catalog::<C>(), &[C::METHOD])?;
    match (loaded, &report.outcome) {
        (Some(plugin), Ok(())) => {
            let policy = Arc::new(EndpointPolicy::<C>::new(plugin.endpoint));
            report.outcome = registry.register(policy, plugin.artifact_digest).map_err(|e| e.to_string());
        }
        (_, Err(reason)) => {
            let source = report.plugin_id.clone().unwrap_or_else(|| report.source.display().to_string());
            registry.record_load_failure(&source, report.tier.unwrap_or(TierKind::Builtin), reason.clone());
        }
        (None, Ok(())) => {}
    }
    Some(report)
}

/// Loads every plugin under `roots` whose manifest contract `C` claims and
/// returns the endpoints that loaded, in directory order, with a report per
/// directory. Wasm plugins must export every method in `required_methods`.
pub fn load_endpoints<C: Contract>(
    roots: &[&Path],
    tiers: &Tiers,
    required_methods: &[&str],
) -> (Vec<Loaded>, Vec<LoadReport>) {
    endpoints_of::<C>(roots, tiers, required_methods, Instances::PerCall)
}

/// As [`load_endpoints`], for plugins whose state lives inside them from
/// one call to the next (a strategy's instances, keyed by an id in each
/// request). A process plugin keeps its worker anyway; a wasm plugin keeps
/// one module instance for all its calls
/// ([`polis_wasm::WasmModule::into_resident`]) instead of a fresh one per
/// call; a remote plugin's state is its server's.
pub fn load_stateful_endpoints<C: Contract>(
    roots: &[&Path],
    tiers: &Tiers,
    required_methods: &[&str],
) -> (Vec<Loaded>, Vec<LoadReport>) {
    endpoints_of::<C>(roots, tiers, required_methods, Instances::Resident)
}

/// How a wasm plugin's calls map to module instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Instances {
    /// A fresh instance per call.
    PerCall,
    /// One instance kept for every call.
    Resident,
}

fn endpoints_of<C: Contract>(
    roots: &[&Path],
    tiers: &Tiers,
    required_methods: &[&str],
    instances: Instances,
) -> (Vec<Loaded>, Vec<LoadReport>) {
    let mut loaded = Vec::new();
    let mut reports = Vec::new();
    for root in roots {
        let (more, more_reports) = endpoints_under::<C>(root, tiers, required_methods, instances);
        loaded.extend(more);
        reports.extend(more_reports);
    }
    (loaded, reports)
}

/// The plugins under one root: those that loaded, and a report per
/// directory claimed by `C` (an `Ok` report for each loaded plugin, in the
/// same order).
fn endpoints_under<C: Contract>(
    root: &Path,
    tiers: &Tiers,
    required_methods: &[&str],
    instances: Instances,
) -> (Vec<Loaded>, Vec<LoadReport>) {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) => {
            let reason = format!("plugin root `{}` cannot be read: {e}", root.display());
            return (Vec::new(), vec![failed(root.to_path_buf(), reason)]);
        }
    };
    let mut dirs: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.join(MANIFEST_FILE).is_file()).collect();
    dirs.sort();
    let catalog = permission_catalog::<C>();
    let mut loaded = Vec::new();
    let mut reports = Vec::new();
    for dir in dirs {
        if let Some((plugin, report)) = load_dir_with::<C>(&dir, tiers, &catalog, required_methods, instances) {
            loaded.extend(plugin);
            reports.push(report);
        }
    }
    (loaded, reports)
}

fn failed(source: PathBuf, reason: String) -> LoadReport {
    LoadReport {
        source,
        plugin_id: None,
        tier: None,
        manifest_sha256: None,
        artifact_sha256: None,
        files_sha256: None,
        signed_by: None,
        unknown_permissions: Vec::new(),
        sandbox: None,
        outcome: Err(reason),
    }
}

/// As [`load_dir`] with the catalog of `C`, for a plugin that keeps state
/// between calls ([`load_stateful_endpoints`]).
pub fn load_stateful_dir<C: Contract>(
    dir: &Path,
    tiers: &Tiers,
    required_methods: &[&str],
) -> Option<(Option<Loaded>, LoadReport)> {
    load_dir_with::<C>(dir, tiers, &permission_catalog::<C>(), required_methods, Instances::Resident)
}

/// Loads one plugin directory for contract `C`. Returns `None` when its
/// manifest names another contract; a manifest that cannot be read is
/// reported, since no contract can claim it.
pub fn load_dir<C: Contract>(
    dir: &Path,
    tiers: &Tiers,
    catalog: &PermissionCatalog,
    required_methods: &[&str],
) -> Option<(Option<Loaded>, LoadReport)> {
    load_dir_with::<C>(dir, tiers, catalog, required_methods, Instances::PerCall)
}

fn load_dir_with<C: Contract>(
    dir: &Path,
    tiers: &Tiers,
    catalog: &PermissionCatalog,
    required_methods: &[&str],
    instances: Instances,
) -> Option<(Option<Loaded>, LoadReport)> {
    let manifest = match read_manifest(dir) {
        Ok(manifest) => manifest,
        Err(reason) => return Some((None, failed(dir.to_path_buf(), reason))),
    };
    if !C::claims(&manifest) {
        return None;
    }
    let mut report = LoadReport {
        source: dir.to_path_buf(),
        plugin_id: Some(manifest.plugin_id.clone()),
        tier: Some(manifest.tier()),
        manifest_sha256: None,
        artifact_sha256: None,
        files_sha256: None,
        signed_by: None,
        unknown_permissions: Grants::resolve(&manifest.permissions, catalog).unknown().to_vec(),
        sandbox: None,
        outcome: Ok(()),
    };
    // What the directory holds, and whose signature vouches for it, are
    // settled before any of it is compiled or started.
    if let Err(reason) = check_files(dir, tiers, &mut report) {
        report.outcome = Err(format!("plugin `{}`: {reason}", manifest.plugin_id));
        return Some((None, report));
    }
    // Check the contract's own fields before starting anything, and hash
    // the manifest as the registry will: normalised.
    let normalised = C::manifest_fields(&manifest)
        .map_err(|problems| {
            let list = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            format!("`{}`: manifest is invalid for `{}`: {list}", dir.join(MANIFEST_FILE).display(), C::ID)
        })
        .and_then(|fields| manifest.clone().with_fields(&fields).map_err(|p| p.to_string()));
    let endpoint = match normalised {
        Ok(normalised) => {
            report.manifest_sha256 = normalised.digest().ok();
            match manifest.tier() {
                TierKind::Wasm => load_wasm(dir, &manifest, tiers, catalog, required_methods, instances, &mut report),
                TierKind::Process => load_process(dir, &manifest, tiers, catalog, &mut report),
                TierKind::Builtin => Err("a built-in plugin cannot be loaded from a directory".to_owned()),
                TierKind::Remote => load_remote(&manifest, tiers, catalog),
            }
            .map_err(|reason| format!("plugin `{}`: {reason}", manifest.plugin_id))
        }
        Err(reason) => Err(reason),
    };
    match endpoint {
        Ok(endpoint) => {
            let endpoint = match (&tiers.approval, report.files_sha256) {
                (Some(gate), Some(files_sha256)) => {
                    let seen = approval::Seen { plugin_version: manifest.plugin_version.clone(), files_sha256 };
                    Arc::new(approval::Gated::new(endpoint, Arc::clone(gate), seen)) as Arc<dyn PluginEndpoint>
                }
                _ => endpoint,
            };
            let loaded = Loaded { manifest, artifact_digest: report.artifact_sha256, endpoint };
            Some((Some(loaded), report))
        }
        Err(reason) => {
            report.outcome = Err(reason);
            Some((None, report))
        }
    }
}

/// Digests the directory's files and, when signatures are required,
/// verifies them against the trusted keys.
fn check_files(dir: &Path, tiers: &Tiers, report: &mut LoadReport) -> Result<(), String> {
    // Verifying lists the files itself; its digest is the files'.
    let files_sha256 = match &tiers.trusted_keys {
        Some(keys) => {
            let verified = signing::verify(dir, keys).map_err(|e| format!("signature required: {e}"))?;
            report.signed_by = Some(verified.key_id);
            verified.files_sha256
        }
        None => signing::files_digest(dir).map_err(|e| e.to_string())?,
    };
    report.files_sha256 = Some(files_sha256);
    Ok(())
}

fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = read_capped(&path, MAX_MANIFEST_BYTES as u64)?;
    Manifest::from_json(&bytes).map_err(|e| format!("`{}`: {e}", path.display()))
}

fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("`{}` cannot be read: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes).map_err(|e| format!("`{}` cannot be read: {e}", path.display()))?;
    if bytes.len() as u64 > cap {
        return Err(format!("`{}` is larger than the {cap}-byte limit", path.display()));
    }
    Ok(bytes)
}

/// Resolves `relative` inside `dir`, refusing anything that escapes it.
fn inside(dir: &Path, relative: &str) -> Result<PathBuf, String> {
    let dir = dir.canonicalize().map_err(|e| format!("`{}` cannot be resolved: {e}", dir.display()))?;
    let path = dir.join(relative).canonicalize().map_err(|e| format!("artifact `{relative}` cannot be found: {e}"))?;
    if !path.starts_with(&dir) {
        return Err(format!("artifact `{relative}` lies outside the plugin directory"));
    }
    Ok(path)
}

fn entry(manifest: &Manifest) -> Result<&str, String> {
    manifest
        .runtime
        .as_ref()
        .and_then(|r| r.entry.as_deref())
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| "`runtime.entry` is missing".to_owned())
}

fn load_wasm(
    dir: &Path,
    manifest: &Manifest,
    tiers: &Tiers,
    catalog: &PermissionCatalog,
    required_methods: &[&str],
    instances: Instances,
    report: &mut LoadReport,
) -> Result<Arc<dyn PluginEndpoint>, String> {
    let path = inside(dir, entry(manifest)?)?;
    let bytes = read_capped(&path, MAX_WASM_BYTES)?;
    report.artifact_sha256 = Some(Digest::of_bytes(&bytes));
    let module =
        tiers.wasm.load_with(manifest.clone(), &bytes, catalog, required_methods).map_err(|e| e.to_string())?;
    Ok(match instances {
        Instances::PerCall => Arc::new(module),
        Instances::Resident => Arc::new(module.into_resident()),
    })
}

fn load_process(
    dir: &Path,
    manifest: &Manifest,
    tiers: &Tiers,
    catalog: &PermissionCatalog,
    report: &mut LoadReport,
) -> Result<Arc<dyn PluginEndpoint>, String> {
    let mut words = entry(manifest)?.split_whitespace();
    let program = words.next().ok_or_else(|| "`runtime.entry` is empty".to_owned())?;
    let args: Vec<String> = words.map(str::to_owned).collect();
    let program = resolve_program(dir, program, &tiers.process.sandbox)?;
    // The artifact is the first argument that is a file in the directory
    // (the script), else the program itself.
    let artifact = args.iter().find_map(|a| inside(dir, a).ok().filter(|p| p.is_file())).unwrap_or(program.clone());
    report.artifact_sha256 = Some(Digest::of_bytes(&read_capped(&artifact, MAX_WASM_BYTES)?));
    let mut config = tiers.process.clone();
    let dir = dir.canonicalize().map_err(|e| format!("`{}` cannot be resolved: {e}", dir.display()))?;
    // An interpreter outside the plugin's directory is readable with its
    // libraries, which live beside its bin directory. A program inside the
    // directory adds nothing: its parent is the plugin's own directory, and
    // the grandparent (the plugin root) would expose every other plugin.
    if !program.starts_with(&dir)
        && let Some(bin) = program.parent()
    {
        config.sandbox.read_paths.push(bin.to_path_buf());
        if let Some(prefix) = bin.parent().filter(|p| p.parent().is_some()) {
            config.sandbox.read_paths.push(prefix.to_path_buf());
        }
    }
    let spec = ProcessSpec { program, args, dir, env: Vec::new() };
    let plugin = ProcessPlugin::new(manifest.clone(), spec, config, catalog.clone());
    report.sandbox = Some(plugin.sandbox_report().clone());
    if tiers.start_processes {
        plugin.start_worker().map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(plugin))
}

/// A remote plugin has no artifact: its code lives behind the URL, so only
/// the manifest hash identifies it.
fn load_remote(
    manifest: &Manifest,
    tiers: &Tiers,
    catalog: &PermissionCatalog,
) -> Result<Arc<dyn PluginEndpoint>, String> {
    let plugin = RemotePlugin::new(manifest.clone(), &tiers.remote, catalog).map_err(|e| e.to_string())?;
    Ok(Arc::new(plugin))
}

/// A program named with a `/` is relative to the plugin directory (and
/// must stay inside it); otherwise the process tier resolves it on `PATH`
/// to an interpreter the worker's account can run
/// ([`polis_process::resolve_program`]).
fn resolve_program(dir: &Path, program: &str, sandbox: &polis_process::SandboxConfig) -> Result<PathBuf, String> {
    if program.contains('/') {
        return inside(dir, program);
    }
    polis_process::resolve_program(dir, program, sandbox)
}
