//! `polis plugin`: look at, test and start one plugin directory, for any
//! contract this build knows.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use polis_process::LayerState;
use polis_runtime::conformance::Language;

use crate::Outcome;
use crate::contracts::{ContractCli, all, find};
use crate::plugin_dirs::TierArgs;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a plugin directory (manifest + artifact) and show its contract,
    /// identity, hashes, permissions, limits and, for process plugins,
    /// which sandbox layers are active on this kernel. Exits 1 when it does
    /// not load.
    Inspect {
        /// The plugin directory.
        dir: PathBuf,
        /// How the plugin is loaded and reached.
        #[command(flatten)]
        tiers: TierArgs,
    },
    /// Run the conformance suite of the plugin's contract on a plugin
    /// directory: the manifest loads, every fixture (for rebalancing a
    /// synthetic city, and Bay Wheels snapshots when the shared data is
    /// present) passes schema and semantic validation within the plugin's
    /// limits, each fixture run twice gives the same output hash, and
    /// outputs match `expected/<fixture>.sha256` where given. A
    /// `strategy.v1` plugin runs the strategy test matrix instead
    /// (determinism, params, warm-up boundary, missing features, stale
    /// events, events/s, `expected/replay.sha256`). Prints a report; exits
    /// 1 on any failure.
    Test {
        /// The plugin directory.
        dir: PathBuf,
        /// How the plugin is loaded and reached.
        #[command(flatten)]
        tiers: TierArgs,
    },
    /// Run the hostile suite of every tier against this machine (the
    /// kernel, the account and the settings polis runs under) and print
    /// each case, the containment expected and what happened: the process
    /// sandbox's layers, then attacks on the host (signals, ptrace,
    /// secrets, writes, sockets, forks, CPU, threads, files, stderr,
    /// replies) by a Python plugin, then fuel, memory, stack, size and
    /// import attacks by wasm modules, then address, deadline, size,
    /// redirect and TLS attacks by remote endpoints on loopback. Exits 1
    /// when any case is not contained. Takes about half a minute.
    Audit,
    /// Create a minisign key pair for signing plugins: PREFIX.pub (give it
    /// to `--trusted-key`) and PREFIX.key (keep it secret; written with
    /// mode 0600, unencrypted). Existing files are never overwritten.
    Keygen {
        /// Where to write the two files, without extension.
        #[arg(long, default_value = "polis-signing")]
        out: PathBuf,
    },
    /// Sign a plugin directory: writes `polis.sha256sums` (the SHA-256 of
    /// every file, sha256sum's format) and `polis.sha256sums.minisig` (its
    /// Ed25519 signature, minisign's format), so `minisign -Vm
    /// polis.sha256sums -p KEY.pub && sha256sum -c polis.sha256sums` checks
    /// it too. Sign after building: any file added or changed later breaks
    /// the signature. An encrypted key (`minisign -G`) takes its password
    /// from POLIS_SIGNING_KEY_PASSWORD.
    Sign {
        /// The plugin directory.
        dir: PathBuf,
        /// The minisign secret key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a plugin directory's signature against trusted public keys
    /// and its files against the signed list, naming every file added,
    /// removed or changed. Exits 1 when it does not verify.
    Verify {
        /// The plugin directory.
        dir: PathBuf,
        /// A trusted minisign public key file (repeatable).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
    },
    /// Create a working plugin (manifest, code, a test) in a new directory
    /// named after it.
    New {
        /// The plugin id, such as `research.my_algo.v1`.
        name: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: Lang,
        /// The contract (`polis contract list`).
        #[arg(long, default_value = "rebalance.v1")]
        contract: String,
        /// Where to create the directory.
        #[arg(long, default_value = ".")]
        into: PathBuf,
    },
}

/// Languages `polis plugin new` scaffolds.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Lang {
    /// Rust compiled to wasm32-unknown-unknown (wasm tier).
    Rust,
    /// Python 3 (process tier).
    Python,
    /// TypeScript compiled by `tsc` and run by Node.js (process tier).
    Typescript,
}

impl Lang {
    fn language(self) -> Language {
        match self {
            Lang::Rust => Language::Rust,
            Lang::Python => Language::Python,
            Lang::Typescript => Language::Typescript,
        }
    }
}

pub fn run(command: Command, json: bool) -> anyhow::Result<Outcome> {
    match command {
        Command::Inspect { dir, tiers } => inspect(dir, &tiers, json),
        Command::Test { dir, tiers } => conformance(dir, &tiers, json),
        Command::Audit => crate::audit::run(json),
        Command::Keygen { out } => keygen(&out),
        Command::Sign { dir, key } => sign(&dir, &key),
        Command::Verify { dir, keys } => verify(&dir, &keys, json),
        Command::New { name, lang, contract, into } => scaffold(&name, lang, &contract, &into),
    }
}

/// The contract that claims the plugin in `dir`, by its manifest.
fn claiming(dir: &Path) -> anyhow::Result<Box<dyn ContractCli>> {
    let path = dir.join(polis_plugins::MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", path.display()))?;
    let manifest = polis_core::Manifest::from_json(&bytes).map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))?;
    let contracts = all();
    let infos: Vec<_> = contracts.iter().map(|c| c.info()).collect();
    let info = polis_core::ContractInfo::claiming(&infos, &manifest)
        .map_err(|p| anyhow::anyhow!("`{}`: {p}", path.display()))?;
    find(info.id)
}

fn inspect(dir: PathBuf, settings: &TierArgs, json: bool) -> anyhow::Result<Outcome> {
    // Inspecting one plugin starts its worker, so its status includes the
    // handshake.
    let mut tiers = settings.tiers()?;
    tiers.start_processes = true;
    let contract = claiming(&dir)?;
    let Some(inspected) = contract.inspect(&dir, &tiers) else {
        anyhow::bail!("`{}` is not a plugin of a contract this build knows", dir.display());
    };
    let report = &inspected.report;
    let granted = &inspected.granted;
    let entry = inspected.manifest.as_ref();
    if json {
        let body = serde_json::json!({
            "contract": contract.info().id,
            "report": report,
            "granted_permissions": granted,
            "manifest": entry,
        });
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        println!("plugin      {}", report.plugin_id.as_deref().unwrap_or("(unreadable manifest)"));
        println!("contract    {}", contract.info().id);
        println!("source      {}", report.source.display());
        if let Some(tier) = report.tier {
            println!("tier        {tier}");
        }
        if let Some(digest) = report.manifest_sha256 {
            println!("manifest    sha256:{}", digest.to_hex());
        }
        if let Some(digest) = report.artifact_sha256 {
            println!("artifact    sha256:{}", digest.to_hex());
        }
        if let Some(digest) = report.files_sha256 {
            println!("files       sha256:{}", digest.to_hex());
        }
        if let Some(key) = &report.signed_by {
            println!("signed by   {key}");
        }
        if let Some(e) = entry {
            println!("policy      {} ({})", e.policy_version, e.strategy);
            println!("granted     {}", if granted.is_empty() { "(none)".to_owned() } else { granted.join(", ") });
        }
        if !report.unknown_permissions.is_empty() {
            println!("warning     unknown permissions not granted: {}", report.unknown_permissions.join(", "));
        }
        if let Some(sandbox) = &report.sandbox {
            for (layer, state) in sandbox.layers() {
                let text = match state {
                    LayerState::Active => "active".to_owned(),
                    LayerState::Disabled => "disabled by configuration".to_owned(),
                    LayerState::Unsupported { reason } => format!("unsupported: {reason}"),
                };
                println!("sandbox     {layer:<11} {text}");
            }
        }
        match &report.outcome {
            Ok(()) => println!("status      loads and registers"),
            Err(reason) => println!("status      disabled: {reason}"),
        }
    }
    Ok(if report.outcome.is_ok() { Outcome::Success } else { Outcome::Findings })
}

fn conformance(dir: PathBuf, settings: &TierArgs, json: bool) -> anyhow::Result<Outcome> {
    let tiers = settings.tiers()?;
    let contract = claiming(&dir)?;
    let Some(conformed) = contract.conformance(&dir, &tiers) else {
        anyhow::bail!("`{}` is not a plugin of a contract this build knows", dir.display());
    };
    let report = &conformed.report;
    let mut results = Vec::new();
    if let Err(reason) = &report.outcome {
        results.push(polis_runtime::conformance::FixtureResult {
            fixture: "load".to_owned(),
            output_sha256: None,
            problems: vec![reason.clone()],
        });
    }
    results.extend(conformed.fixtures);
    let failed = results.iter().any(|r| !r.problems.is_empty());
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "plugin": report.plugin_id,
                "passed": !failed,
                "fixtures": &results,
                "notes": &conformed.notes,
            }))?
        );
    } else {
        println!("conformance of {} ({})", report.plugin_id.as_deref().unwrap_or("?"), dir.display());
        for r in &results {
            if r.problems.is_empty() {
                println!("  ok    {:<22} {}", r.fixture, r.output_sha256.as_deref().map_or("", |h| &h[..16]));
            } else {
                for p in &r.problems {
                    println!("  FAIL  {:<22} {p}", r.fixture);
                }
            }
        }
        for note in &conformed.notes {
            println!("  note  {note}");
        }
        println!("{}", if failed { "FAILED" } else { "passed" });
    }
    Ok(if failed { Outcome::Findings } else { Outcome::Success })
}

/// The Python SDK, embedded so that scaffolds carry their own copy.
const PYTHON_SDK: &str = include_str!("../../../sdk/python/polis_plugin.py");
/// The TypeScript SDK, likewise.
const TYPESCRIPT_SDK: &str = include_str!("../../../sdk/typescript/polis_plugin.ts");
/// The Rust guest SDK's source, likewise: a Rust scaffold builds from its
/// own copy, so an installed `polis` needs no checkout of polis.
const GUEST_LIB: &str = include_str!("../../polis-guest/src/lib.rs");

fn keygen(out: &Path) -> anyhow::Result<Outcome> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (public, secret) = polis_plugins::signing::generate_keypair()?;
    let (public_path, secret_path) = (out.with_extension("pub"), out.with_extension("key"));
    for path in [&public_path, &secret_path] {
        if path.exists() {
            anyhow::bail!("`{}` exists; polis never overwrites a key", path.display());
        }
    }
    let write = |path: &Path, text: &str, mode: u32| -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("cannot create `{}`", path.display()))?;
        file.write_all(text.as_bytes()).with_context(|| format!("cannot write `{}`", path.display()))
    };
    write(&secret_path, &secret, 0o600)?;
    write(&public_path, &public, 0o644)?;
    let key = polis_plugins::signing::TrustedKey::parse(&public_path.display().to_string(), &public)?;
    println!("key id      {}", key.id);
    println!("public key  {}  (give to --trusted-key)", public_path.display());
    println!("secret key  {}  (keep secret)", secret_path.display());
    Ok(Outcome::Success)
}

fn sign(dir: &Path, key: &Path) -> anyhow::Result<Outcome> {
    let manifest_path = dir.join(polis_plugins::MANIFEST_FILE);
    let bytes = std::fs::read(&manifest_path).with_context(|| format!("cannot read `{}`", manifest_path.display()))?;
    let manifest =
        polis_core::Manifest::from_json(&bytes).map_err(|e| anyhow::anyhow!("`{}`: {e}", manifest_path.display()))?;
    let secret = std::fs::read_to_string(key).with_context(|| format!("cannot read `{}`", key.display()))?;
    let password = std::env::var("POLIS_SIGNING_KEY_PASSWORD").ok();
    let label = format!("{} {}", manifest.plugin_id, manifest.plugin_version);
    let signed = polis_plugins::signing::sign(dir, &key.display().to_string(), &secret, password, &label)?;
    println!("signed      {label}: {} files with key {}", signed.files, signed.key_id);
    println!("files       sha256:{}", signed.files_sha256.to_hex());
    println!(
        "wrote       {}, {}",
        dir.join(polis_plugins::signing::SUMS_FILE).display(),
        dir.join(polis_plugins::signing::SIGNATURE_FILE).display()
    );
    Ok(Outcome::Success)
}

fn verify(dir: &Path, keys: &[PathBuf], json: bool) -> anyhow::Result<Outcome> {
    let trusted = keys.iter().map(|k| polis_plugins::signing::TrustedKey::read(k)).collect::<Result<Vec<_>, _>>()?;
    let verified = polis_plugins::signing::verify(dir, &trusted);
    if json {
        let body = match &verified {
            Ok(v) => serde_json::json!({
                "verified": true, "key_id": v.key_id, "comment": v.comment,
                "files_sha256": v.files_sha256.to_hex(),
            }),
            Err(e) => serde_json::json!({"verified": false, "error": e.to_string()}),
        };
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        match &verified {
            Ok(v) => {
                println!("verified    signed by key {}", v.key_id);
                println!("comment     {}", v.comment);
                println!("files       sha256:{}", v.files_sha256.to_hex());
            }
            Err(e) => println!("refused     {e}"),
        }
    }
    Ok(if verified.is_ok() { Outcome::Success } else { Outcome::Findings })
}

fn scaffold(name: &str, lang: Lang, contract: &str, into: &Path) -> anyhow::Result<Outcome> {
    let cli = find(contract)?;
    let scaffold = cli.scaffold();
    polis_core::manifest::check_dotted_id(name)
        .map_err(|why| anyhow::anyhow!("malformed plugin id `{name}`: {why}"))?;
    let short = name.split('.').skip(1).collect::<Vec<_>>().join(".");
    let policy_version = format!("{}{short}", scaffold.policy_version_prefix);
    let dir = into.join(name.replace('.', "-"));
    if dir.exists() {
        anyhow::bail!("`{}` already exists", dir.display());
    }
    let (tier, entry) = match lang {
        Lang::Python => ("process", "python3 plugin.py".to_owned()),
        // One V8 thread: every extra thread's malloc arena reserves 64 MiB
        // of the address space the sandbox limits.
        Lang::Typescript => ("process", "node --v8-pool-size=0 dist/plugin.js".to_owned()),
        Lang::Rust => ("wasm", format!("{}.wasm", name.replace(['.', '-'], "_"))),
    };
    // The address-space limit: V8 reserves far more than it uses, and Node
    // does not start below about 768 MiB.
    let memory_mb = if matches!(lang, Lang::Typescript) { 1024 } else { 256 };
    let mut manifest = serde_json::json!({
        "contract_version": "policy.plugin.v1",
        "plugin_id": name,
        "plugin_version": "0.1.0",
        "policy_version": policy_version,
        "strategy": short,
        "display_name": name,
        "deterministic": true,
        "contract": contract,
        "runtime": {"tier": tier, "entry": entry},
        "limits": {"timeout_ms": 2000, "memory_mb": memory_mb},
    });
    if let (Some(object), serde_json::Value::Object(fields)) =
        (manifest.as_object_mut(), scaffold.manifest_fields.clone())
    {
        object.extend(fields);
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&manifest)? + "\n")?;
    for (path, text) in scaffold.files(lang.language()) {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    match lang {
        Lang::Python => std::fs::write(dir.join("polis_plugin.py"), PYTHON_SDK)?,
        Lang::Typescript => {
            std::fs::write(dir.join("polis_plugin.ts"), TYPESCRIPT_SDK)?;
            // A contract whose plugin has other files brings its own.
            if !dir.join("tsconfig.json").exists() {
                std::fs::write(dir.join("tsconfig.json"), TYPESCRIPT_CONFIG)?;
            }
            std::fs::write(dir.join(".gitignore"), "node_modules/\ndist/\n")?;
            let package = serde_json::json!({
                "name": name.replace(['.', '_'], "-"),
                "version": "0.1.0",
                "private": true,
                "type": "module",
                "scripts": {"build": "tsc -p tsconfig.json", "test": "tsc -p tsconfig.json && node --test"},
                "devDependencies": {"@types/node": "20.19.25", "typescript": "5.6.3"},
            });
            std::fs::write(dir.join("package.json"), serde_json::to_string_pretty(&package)? + "\n")?;
        }
        Lang::Rust => {
            let crate_name = name.replace(['.', '_'], "-");
            std::fs::create_dir_all(dir.join("polis-guest/src"))?;
            std::fs::write(dir.join("polis-guest/src/lib.rs"), GUEST_LIB)?;
            std::fs::write(dir.join("polis-guest/Cargo.toml"), GUEST_MANIFEST)?;
            std::fs::write(
                dir.join("Cargo.toml"),
                format!(
                    "[package]\nname = \"{crate_name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]\npolis-guest = {{ path = \"polis-guest\" }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\nserde_json = {{ version = \"1\", features = [\"float_roundtrip\"] }}\n\n[workspace]\n"
                ),
            )?;
        }
    }
    let build = match lang {
        Lang::Typescript => format!("cd {} && npm install && npm test; then ", dir.display()),
        Lang::Rust => "build it (see src/lib.rs); then ".to_owned(),
        Lang::Python => String::new(),
    };
    println!(
        "created {} ({tier} tier, contract {contract}); next: {build}polis plugin test {}",
        dir.display(),
        dir.display()
    );
    Ok(Outcome::Success)
}

/// The vendored guest SDK's manifest: the workspace's, made standalone.
const GUEST_MANIFEST: &str = r#"[package]
name = "polis-guest"
description = "Write polis policies in Rust for wasm32-unknown-unknown: one typed function, the ABI hidden"
version = "0.1.0"
edition = "2024"
license = "Apache-2.0"
publish = false

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = { version = "1", features = ["float_roundtrip"] }

[lints.rust]
unsafe_code = "deny"
"#;

const TYPESCRIPT_CONFIG: &str = r#"{
  "compilerOptions": {
    "target": "es2022",
    "lib": ["es2022"],
    "module": "es2022",
    "moduleResolution": "bundler",
    "types": ["node"],
    "rootDir": ".",
    "outDir": "dist",
    "strict": true,
    "skipLibCheck": true
  },
  "files": ["plugin.ts", "decide.ts", "polis_plugin.ts"]
}
"#;
