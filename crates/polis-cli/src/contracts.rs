//! `polis plugins`, `polis contract` and `polis manifest`: what polis
//! knows about plugins and contracts.

use crate::plugin_dirs::PluginDirs;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use polis_core::contract::{Contract, schemas};
use polis_core::manifest::Manifest;
use polis_core::registry::Activation;
use polis_rebalance::Rebalance;

use crate::Outcome;
use crate::table::{Align, render};

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List every plugin with its policy version, tier, manifest hash and
    /// status; disabled plugins show why.
    List {
        #[command(flatten)]
        plugins: PluginDirs,
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
    /// List the contracts this build knows.
    List,
}

/// A part of a contract.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Part {
    /// The run context.
    Context,
    /// The input document.
    Input,
    /// The output document.
    Output,
    /// The params.
    Params,
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Validate a `policy.plugin.v1` manifest file: every problem is
    /// reported with its field, and the contract it names must be known.
    /// Exits 1 when the manifest is invalid.
    Validate {
        /// The manifest (JSON).
        file: PathBuf,
    },
}

/// A contract this build knows: `(id, input version, output version)`.
pub const CONTRACTS: &[(&str, &str, &str)] =
    &[(Rebalance::ID, Rebalance::INPUT_SCHEMA_VERSION, Rebalance::OUTPUT_SCHEMA_VERSION)];

pub fn plugins(command: PluginsCommand, json: bool) -> anyhow::Result<Outcome> {
    match command {
        PluginsCommand::List { plugins } => {
            // Failed loads are rows of the listing, not warnings.
            let statuses = plugins.registry(false)?.statuses();
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
    }
}

pub fn contract(command: ContractCommand, json: bool) -> anyhow::Result<Outcome> {
    match command {
        ContractCommand::List => {
            if json {
                let list: Vec<_> = CONTRACTS
                    .iter()
                    .map(|(id, i, o)| serde_json::json!({"contract": id, "input_schema_version": i, "output_schema_version": o}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for (id, input, output) in CONTRACTS {
                    println!("{id}  input {input}  output {output}");
                }
            }
            Ok(Outcome::Success)
        }
        ContractCommand::Schema { contract, part } => {
            let all = match contract.as_str() {
                Rebalance::ID => schemas::<Rebalance>(),
                other => {
                    let known: Vec<&str> = CONTRACTS.iter().map(|c| c.0).collect();
                    anyhow::bail!("unknown contract `{other}`; known: {}", known.join(", "))
                }
            };
            let document = match part {
                None => serde_json::to_value(&all)?,
                Some(Part::Context) => all.context,
                Some(Part::Input) => all.input,
                Some(Part::Output) => all.output,
                Some(Part::Params) => all.params,
            };
            println!("{}", serde_json::to_string_pretty(&document)?);
            Ok(Outcome::Success)
        }
    }
}

pub fn manifest(command: ManifestCommand, json: bool) -> anyhow::Result<Outcome> {
    let ManifestCommand::Validate { file } = command;
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let result = Manifest::from_json(&bytes).map_err(|e| (e.code(), e.problems())).and_then(|m| {
        match CONTRACTS.iter().find(|(_, i, o)| *i == m.input_schema_version && *o == m.output_schema_version) {
            Some((id, _, _)) => Ok((m, *id)),
            None => Err((
                "manifest.unknown_contract",
                vec![polis_core::manifest::FieldProblem {
                    field: "input_schema_version".to_owned(),
                    message: format!(
                        "no known contract takes `{}` and returns `{}`",
                        m.input_schema_version, m.output_schema_version
                    ),
                }],
            )),
        }
    });
    match result {
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
