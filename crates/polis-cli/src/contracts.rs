//! The contracts this build knows, and the commands that work for every
//! one of them: `polis plugins list`, `polis contract`, `polis manifest
//! validate` and `polis run`.
//!
//! [`all`] is the registration list. Each entry is a [`ContractCli`]: the
//! object-safe face of one contract's built-ins, plugins, conformance
//! fixtures and scaffolds. Adding a contract adds one line there.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use polis_core::contract::{Contract, ContractInfo, permission_catalog};
use polis_core::manifest::{FieldProblem, Manifest};
use polis_core::permission::{Grants, PermissionCatalog};
use polis_core::registry::{Activation, PluginStatus, Registry};
use polis_plugins::LoadReport;
use polis_runtime::conformance::{Conformance, FixtureResult, Scaffold};
use polis_runtime::{Decision, Host, HostLimits};
use polis_strategy::contract::Strategy;

use crate::Outcome;
use crate::plugin_dirs::PluginDirs;
use crate::table::{Align, render};

/// Every contract this build knows, in listing order.
pub fn all() -> Vec<Box<dyn ContractCli>> {
    vec![
        Box::new(Entry::<polis_rebalance::Rebalance>::new(polis_rebalance::builtins::registry)),
        Box::new(Entry::<polis_echo::Echo>::new(polis_echo::builtins::registry)),
        Box::new(StrategyCli),
    ]
}

/// The contract with this id, or an error listing the known ones.
pub fn find(id: &str) -> anyhow::Result<Box<dyn ContractCli>> {
    let known: Vec<String> = all().iter().map(|c| format!("`{}`", c.info().id)).collect();
    all()
        .into_iter()
        .find(|c| c.info().id == id)
        .with_context(|| format!("unknown contract `{id}`; known: {}", known.join(", ")))
}

/// One plugin directory loaded for inspection.
pub struct Inspected {
    /// What the loader reported.
    pub report: LoadReport,
    /// The permissions the plugin was granted.
    pub granted: Vec<String>,
    /// Its normalised manifest, when it registered.
    pub manifest: Option<Manifest>,
}

/// A conformance run.
pub struct Conformed {
    /// What the loader reported.
    pub report: LoadReport,
    /// Each fixture's result.
    pub fixtures: Vec<FixtureResult>,
    /// What the fixtures measured or found, one line each (a strategy's
    /// events/s), for the report.
    pub notes: Vec<String>,
}

/// What the generic commands need of one contract.
pub trait ContractCli {
    /// The contract.
    fn info(&self) -> ContractInfo;
    /// The built-ins plus every plugin under `dirs`, as listed rows; with
    /// `probe`, process workers start so a failing handshake shows.
    fn statuses(&self, dirs: &PluginDirs, probe: bool) -> anyhow::Result<Vec<PluginStatus>>;
    /// Loads one plugin directory; `None` when the contract does not claim
    /// it.
    fn inspect(&self, dir: &Path, tiers: &polis_plugins::Tiers) -> Option<Inspected>;
    /// Loads one plugin directory and runs the conformance fixtures.
    fn conformance(&self, dir: &Path, tiers: &polis_plugins::Tiers) -> Option<Conformed>;
    /// How new plugins of the contract start.
    fn scaffold(&self) -> Scaffold;
    /// Decides one input with a policy of the built-ins or `dirs`, and
    /// returns the run record as JSON.
    fn run(&self, dirs: &PluginDirs, policy: &str, document: &RunDocument) -> anyhow::Result<serde_json::Value>;
}

struct Entry<C: Contract> {
    builtins: fn() -> Registry<C>,
}

impl<C: Contract> Entry<C> {
    fn new(builtins: fn() -> Registry<C>) -> Self {
        Entry { builtins }
    }

    fn load_one(&self, dir: &Path, tiers: &polis_plugins::Tiers) -> Option<(Registry<C>, LoadReport)> {
        let mut registry = Registry::<C>::new();
        let report = polis_plugins::register_dir::<C>(dir, tiers, &mut registry)?;
        Some((registry, report))
    }
}

impl<C: Conformance> ContractCli for Entry<C> {
    fn info(&self) -> ContractInfo {
        ContractInfo::of::<C>()
    }

    fn statuses(&self, dirs: &PluginDirs, probe: bool) -> anyhow::Result<Vec<PluginStatus>> {
        Ok(dirs.load((self.builtins)(), false, probe)?.statuses())
    }

    fn inspect(&self, dir: &Path, tiers: &polis_plugins::Tiers) -> Option<Inspected> {
        let (registry, report) = self.load_one(dir, tiers)?;
        let entry = report.plugin_id.as_ref().and_then(|id| registry.entries().find(|e| &e.manifest.plugin_id == id));
        let catalog = permission_catalog::<C>();
        let granted = entry
            .map(|e| Grants::resolve(&e.manifest.permissions, &catalog).granted().map(str::to_owned).collect())
            .unwrap_or_default();
        Some(Inspected { report, granted, manifest: entry.map(|e| e.manifest.clone()) })
    }

    fn conformance(&self, dir: &Path, tiers: &polis_plugins::Tiers) -> Option<Conformed> {
        let (registry, report) = self.load_one(dir, tiers)?;
        let version = registry.versions().into_iter().next();
        let fixtures = match (version, Host::new(registry, HostLimits::default())) {
            (Some(version), Ok(host)) => polis_runtime::conformance::check(&host, &version, dir),
            (_, Err(e)) => {
                vec![FixtureResult { fixture: "schema".to_owned(), output_sha256: None, problems: vec![e.to_string()] }]
            }
            (None, _) => Vec::new(),
        };
        Some(Conformed { report, fixtures, notes: Vec::new() })
    }

    fn scaffold(&self) -> Scaffold {
        C::scaffold()
    }

    fn run(&self, dirs: &PluginDirs, policy: &str, document: &RunDocument) -> anyhow::Result<serde_json::Value> {
        let subject: C::Subject = serde_path_to_error::deserialize(document.subject.clone())
            .context("`subject` does not match the contract")?;
        let input: C::Input =
            serde_path_to_error::deserialize(document.input.clone()).context("`input` does not match the contract")?;
        let params: C::Params = serde_path_to_error::deserialize(document.params.clone())
            .context("`params` does not match the contract")?;
        let host = Host::new(dirs.registry((self.builtins)(), true)?, HostLimits::default())?;
        let record = host.decide(policy, &Decision::new(&subject, &input, &params))?;
        Ok(serde_json::to_value(&record)?)
    }
}

/// `strategy.v1`: its plugins answer four methods over a stream of events,
/// so the commands drive them through `polis_strategy::plugins` instead of
/// a one-method registry: `polis plugin test` runs the strategy test
/// matrix, and `polis run` refuses, pointing at `polis strategy replay`.
struct StrategyCli;

impl StrategyCli {
    fn load_one(dir: &Path, tiers: &polis_plugins::Tiers) -> Option<(Registry<Strategy>, LoadReport)> {
        let mut registry = Registry::<Strategy>::new();
        let report = polis_plugins::register_dir::<Strategy>(dir, tiers, &mut registry)?;
        Some((registry, report))
    }
}

impl ContractCli for StrategyCli {
    fn info(&self) -> ContractInfo {
        ContractInfo::of::<Strategy>()
    }

    fn statuses(&self, dirs: &PluginDirs, probe: bool) -> anyhow::Result<Vec<PluginStatus>> {
        // Listing needs only the manifests, hashes and load outcomes, which
        // the one-method registry records as for any contract.
        Ok(dirs.load(Registry::<Strategy>::new(), false, probe)?.statuses())
    }

    fn inspect(&self, dir: &Path, tiers: &polis_plugins::Tiers) -> Option<Inspected> {
        let (registry, report) = StrategyCli::load_one(dir, tiers)?;
        let entry = report.plugin_id.as_ref().and_then(|id| registry.entries().find(|e| &e.manifest.plugin_id == id));
        let catalog = permission_catalog::<Strategy>();
        let granted = entry
            .map(|e| Grants::resolve(&e.manifest.permissions, &catalog).granted().map(str::to_owned).collect())
            .unwrap_or_default();
        Some(Inspected { report, granted, manifest: entry.map(|e| e.manifest.clone()) })
    }

    fn conformance(&self, dir: &Path, tiers: &polis_plugins::Tiers) -> Option<Conformed> {
        let (plugins, report) = polis_strategy::plugins::LoadedStrategies::load_plugin(dir, tiers)?;
        let checks =
            if report.outcome.is_ok() { polis_strategy::plugins::conformance(&plugins, dir) } else { Vec::new() };
        let notes = checks.iter().filter_map(|c| c.note.as_ref().map(|n| format!("{}: {n}", c.name))).collect();
        let fixtures = checks
            .into_iter()
            .map(|c| FixtureResult { fixture: c.name.to_owned(), output_sha256: c.digest, problems: c.problems })
            .collect();
        Some(Conformed { report, fixtures, notes })
    }

    fn scaffold(&self) -> Scaffold {
        Scaffold {
            policy_version_prefix: "strategy.",
            manifest_fields: serde_json::json!({}),
            python: &[
                ("plugin.py", include_str!("../scaffolds/strategy/plugin.py")),
                ("test_plugin.py", include_str!("../scaffolds/strategy/test_plugin.py")),
                ("polis_strategy.py", include_str!("../../../sdk/python/polis_strategy.py")),
            ],
            typescript: &[
                ("plugin.ts", include_str!("../scaffolds/strategy/plugin.ts")),
                ("strategy.ts", include_str!("../scaffolds/strategy/strategy.ts")),
                ("strategy.test.mjs", include_str!("../scaffolds/strategy/strategy.test.mjs")),
                ("tsconfig.json", include_str!("../scaffolds/strategy/tsconfig.json")),
                ("polis_strategy.ts", include_str!("../../../sdk/typescript/polis_strategy.ts")),
            ],
            rust: &[("src/lib.rs", include_str!("../scaffolds/strategy/lib.rs"))],
        }
    }

    fn run(&self, _dirs: &PluginDirs, policy: &str, _document: &RunDocument) -> anyhow::Result<serde_json::Value> {
        anyhow::bail!(
            "`{policy}` is a strategy.v1 plugin, which decides on a stream of feature vectors, not one input; replay it over bars with `polis strategy replay --plugin-dir DIR` (a catalog entry names it by its policy_version), or check it with `polis plugin test DIR`"
        )
    }
}

/// What `polis run` decides: a contract's subject, input and params.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunDocument {
    /// The run subject.
    pub subject: serde_json::Value,
    /// The input.
    pub input: serde_json::Value,
    /// The params.
    pub params: serde_json::Value,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List every plugin of every contract with its policy version, tier,
    /// manifest hash and status; disabled plugins show why. Loading checks
    /// manifests and artifacts; process workers start only with `--probe`.
    List {
        #[command(flatten)]
        plugins: PluginDirs,
        /// Start every process plugin's worker and run its `initialize`
        /// handshake, so a plugin that cannot start is listed as disabled.
        #[arg(long)]
        probe: bool,
    },
    /// Approve a plugin's loaded version and files on a running service
    /// started with `--require-approval`, so it runs. The approval is
    /// recorded with the token's identity, the time and the files' digest;
    /// a version approved before with other files is refused.
    Approve {
        /// The plugin id.
        plugin_id: String,
        /// The service's base URL.
        #[arg(long, env = "POLIS_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// An admin token.
        #[arg(long, env = "POLIS_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Approve only if the plugin holds exactly these files (the
        /// `files` digest `polis plugin inspect` or `GET /api/plugins`
        /// shows).
        #[arg(long)]
        files_sha256: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Print a contract's JSON Schemas (2020-12), generated from the Rust
    /// types polis validates with.
    Schema {
        /// The contract, such as `rebalance.v1`.
        contract: String,
        /// Print only one part.
        #[arg(long, value_enum)]
        part: Option<Part>,
    },
    /// List the contracts this build knows, with their permissions and the
    /// host methods (capabilities) their plugins may call.
    List,
}

/// A part of a contract.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Part {
    /// The run context a plugin sees.
    Context,
    /// The input document.
    Input,
    /// The output document.
    Output,
    /// The params.
    Params,
    /// The run subject (with the policy version and spec hash, the run key).
    Subject,
    /// The contract's own manifest fields.
    Manifest,
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Validate a `policy.plugin.v1` manifest file: every problem is
    /// reported with its field, and the contract it names (or claims it by
    /// its fields) must be known and accept its fields. Exits 1 when the
    /// manifest is invalid.
    Validate {
        /// The manifest (JSON).
        file: PathBuf,
    },
}

/// `polis run`: one decision of any contract.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The contract, such as `echo.v1`.
    #[arg(long)]
    contract: String,
    /// The policy version to run.
    #[arg(long)]
    policy: String,
    /// A JSON file (`-` for stdin) holding `{"subject", "input", "params"}`.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    #[command(flatten)]
    plugins: PluginDirs,
}

pub fn plugins(command: PluginsCommand, json: bool) -> anyhow::Result<Outcome> {
    let (plugins, probe) = match command {
        PluginsCommand::List { plugins, probe } => (plugins, probe),
        PluginsCommand::Approve { plugin_id, server, token, files_sha256 } => {
            return approve(&plugin_id, &server, token.as_deref(), files_sha256, json);
        }
    };
    let mut statuses = Vec::new();
    for contract in all() {
        statuses.extend(contract.statuses(&plugins, probe)?);
    }
    // A manifest no contract could read is reported by every contract's
    // loader; list it once.
    let mut seen = std::collections::BTreeSet::new();
    statuses.retain(|s| s.manifest_sha256.is_some() || seen.insert(s.plugin_id.clone()));
    if json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
        return Ok(Outcome::Success);
    }
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|s| {
            let (status, reason) = match &s.activation {
                Activation::Active => ("active".to_owned(), String::new()),
                Activation::Disabled { reason } => ("disabled".to_owned(), reason.clone()),
            };
            vec![
                s.policy_version.clone(),
                s.plugin_id.clone(),
                s.contract.to_owned(),
                s.tier.to_string(),
                s.manifest_sha256.map(|d| d.to_hex()[..12].to_owned()).unwrap_or_default(),
                status,
                reason,
            ]
        })
        .collect();
    print!(
        "{}",
        render(
            &[
                ("policy_version", Align::Left),
                ("plugin_id", Align::Left),
                ("contract", Align::Left),
                ("tier", Align::Left),
                ("manifest", Align::Left),
                ("status", Align::Left),
                ("reason", Align::Left),
            ],
            &rows,
            80,
        )
    );
    Ok(Outcome::Success)
}

/// A contract's permissions, groups and capabilities as JSON.
fn catalog_json(contract: &str, catalog: &PermissionCatalog) -> serde_json::Value {
    serde_json::json!({
        "contract": contract,
        "permissions": catalog.permissions().iter().map(|p| serde_json::json!({"name": p.name, "doc": p.doc})).collect::<Vec<_>>(),
        "groups": catalog.groups().iter().map(|g| serde_json::json!({"name": g.name, "members": g.members, "doc": g.doc})).collect::<Vec<_>>(),
        "capabilities": catalog.capabilities().iter().map(|c| serde_json::json!({"method": c.method, "permission": c.permission, "wasm_import": c.wasm_import(), "doc": c.doc})).collect::<Vec<_>>(),
    })
}

/// Prints a contract's permissions, the groups with what each expands to,
/// and the host methods each permission unlocks (`--json`: one object).
pub fn print_catalog(contract: &str, catalog: &PermissionCatalog, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&catalog_json(contract, catalog))?);
        return Ok(());
    }
    let permissions: Vec<&str> = catalog.permissions().iter().map(|p| p.name).collect();
    println!("{contract}  permissions: {}", permissions.join(", "));
    for g in catalog.groups() {
        println!("    group `{}` = {}: {}", g.name, g.members.join(" + "), g.doc);
    }
    for c in catalog.capabilities() {
        println!(
            "    host method `{}` (wasm import `polis.{}`) needs `{}`: {}",
            c.method,
            c.wasm_import(),
            c.permission,
            c.doc
        );
    }
    Ok(())
}

pub fn contract(command: ContractCommand, json: bool) -> anyhow::Result<Outcome> {
    match command {
        ContractCommand::List => {
            let infos: Vec<ContractInfo> = all().iter().map(|c| c.info()).collect();
            if json {
                let list: Vec<_> = infos.iter().map(|info| catalog_json(info.id, &(info.permissions)())).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for info in &infos {
                    print_catalog(info.id, &(info.permissions)(), false)?;
                }
            }
            Ok(Outcome::Success)
        }
        ContractCommand::Schema { contract, part } => {
            let all = (find(&contract)?.info().schemas)();
            let document = match part {
                None => serde_json::to_value(&all)?,
                Some(Part::Context) => all.context,
                Some(Part::Input) => all.input,
                Some(Part::Output) => all.output,
                Some(Part::Params) => all.params,
                Some(Part::Subject) => all.subject,
                Some(Part::Manifest) => all.manifest_fields,
            };
            println!("{}", serde_json::to_string_pretty(&document)?);
            Ok(Outcome::Success)
        }
    }
}

/// Checks a manifest's common fields and the fields of the contract that
/// claims it, reporting every problem of both in one pass; the normalised
/// manifest and the contract id.
pub fn check_manifest(bytes: &[u8]) -> Result<(Manifest, &'static str), (&'static str, Vec<FieldProblem>)> {
    let manifest = Manifest::parse(bytes).map_err(|e| (e.code(), e.problems()))?;
    let mut problems = match manifest.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.problems(),
    };
    let infos: Vec<ContractInfo> = all().iter().map(|c| c.info()).collect();
    let info = match ContractInfo::claiming(&infos, &manifest) {
        Ok(info) => info,
        Err(problem) => {
            problems.push(problem);
            return Err(("manifest.unknown_contract", problems));
        }
    };
    let fields = match (info.check_manifest)(&manifest) {
        Ok(fields) if problems.is_empty() => fields,
        Ok(_) => return Err(("manifest.invalid", problems)),
        Err(more) => {
            problems.extend(more);
            return Err(("manifest.invalid", problems));
        }
    };
    let fields: serde_json::Map<String, serde_json::Value> = match fields {
        serde_json::Value::Object(object) => object,
        _ => serde_json::Map::new(),
    };
    let mut normalised = manifest;
    normalised.extensions = fields.into_iter().collect();
    Ok((normalised, info.id))
}

pub fn manifest(command: ManifestCommand, json: bool) -> anyhow::Result<Outcome> {
    let ManifestCommand::Validate { file } = command;
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read `{}`", file.display()))?;
    match check_manifest(&bytes) {
        Ok((m, contract)) => {
            let digest = m.digest()?.to_hex();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "plugin_id": m.plugin_id, "policy_version": m.policy_version, "contract": contract, "tier": m.tier(), "manifest_sha256": digest})
                );
            } else {
                println!("{}: valid", file.display());
                println!("  plugin {} ({}), policy version {}", m.plugin_id, m.plugin_version, m.policy_version);
                println!("  contract {contract}, tier {}, manifest sha256 {digest}", m.tier());
            }
            Ok(Outcome::Success)
        }
        Err((code, problems)) => {
            if json {
                println!("{}", serde_json::json!({"valid": false, "code": code, "problems": problems}));
            } else {
                println!("{}: invalid", file.display());
                for p in &problems {
                    if p.field.is_empty() {
                        println!("  {}", p.message);
                    } else {
                        println!("  `{}`: {}", p.field, p.message);
                    }
                }
            }
            Ok(Outcome::Findings)
        }
    }
}

/// `polis run`: decides `{"subject", "input", "params"}` with a policy of
/// any contract and prints the run record (key, hashes, output) as JSON.
pub fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    let contract = find(&args.contract)?;
    let bytes = crate::input::read_capped(&args.input)?;
    let document: RunDocument = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
        .with_context(|| {
            format!("`{}` is not a `{{\"subject\", \"input\", \"params\"}}` document", args.input.display())
        })?;
    let record = contract.run(&args.plugins, &args.policy, &document)?;
    println!("{}", serde_json::to_string_pretty(&record)?);
    Ok(Outcome::Success)
}

/// `polis plugins approve`: the approve route, called over HTTP.
fn approve(
    plugin_id: &str,
    server: &str,
    token: Option<&str>,
    files_sha256: Option<String>,
    json: bool,
) -> anyhow::Result<Outcome> {
    let url = format!("{}/api/plugins/{plugin_id}/approve", server.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent.post(&url).header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let body = serde_json::json!({ "files_sha256": files_sha256 }).to_string();
    let mut response = request.send(body.as_bytes()).map_err(|e| anyhow::anyhow!("cannot reach `{url}`: {e}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().map_err(|e| anyhow::anyhow!("`{url}`: {e}"))?;
    let reply: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("`{url}` answered HTTP {status}, not JSON: {e}"))?;
    if status != 200 {
        let message = reply["error"]["message"].as_str().unwrap_or(&text);
        anyhow::bail!("`{url}` refused the approval (HTTP {status}): {message}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else {
        println!(
            "approved    {plugin_id} {} files sha256:{} by {} at {} ms",
            reply["plugin_version"].as_str().unwrap_or_default(),
            reply["files_sha256"].as_str().unwrap_or_default(),
            reply["approved_by"].as_str().unwrap_or_default(),
            reply["approved_at_ms"]
        );
    }
    Ok(Outcome::Success)
}
