//! `polis`: the command line for the polis policy runtime.
//!
//! The binary is the definition of the CLI plus glue: it parses arguments,
//! calls a domain crate or the runtime, and renders results for people
//! (tables) or programs (`--json`). No decision logic lives here.

mod audit;
mod behavior;
mod contracts;
mod input;
mod packs;
mod payments;
mod plugin;
mod plugin_dirs;
mod progress;
mod rebalance;
mod replay;
mod service;
mod settings;
mod strategy;
mod table;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// polis runs decision policies as plugins: deterministically, under hard
/// limits, with every output validated and every run hashed so it replays
/// bit for bit.
///
/// Start with `polis rebalance demo`, which builds a synthetic city and
/// shows the moves both built-in rebalancing policies choose for it.
#[derive(Debug, Parser)]
#[command(name = "polis", version, about, long_about, propagate_version = true)]
struct Cli {
    /// Print results, and errors, as JSON on stdout.
    #[arg(long, global = true)]
    json: bool,

    /// Read settings from FILE (TOML; keys are the `POLIS_*` variables in
    /// lower case without the prefix, such as `database_url`). By default
    /// `polis.toml` in the working directory, when it exists. Flags win over
    /// the environment, the environment over the file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bike-share rebalancing: snapshots, policy runs, a synthetic city.
    #[command(subcommand)]
    Rebalance(rebalance::Command),
    /// Trading strategies: feature vectors, catalog checks, replays.
    #[command(subcommand)]
    Strategy(strategy::Command),
    /// Payment policies in SimCash's decision-tree DSL: validate them, and
    /// simulate SimCash scenario files with them.
    #[command(subcommand)]
    Payments(payments::Command),
    /// NPC behaviour: simulate a world's routines and activities with
    /// behaviour plugins, print timelines and their digest, verify runs.
    #[command(subcommand)]
    Behavior(behavior::Command),
    /// List the plugins polis knows, with their status.
    #[command(subcommand)]
    Plugins(contracts::PluginsCommand),
    /// Inspect contracts: print their JSON Schemas.
    #[command(subcommand)]
    Contract(contracts::ContractCommand),
    /// Check plugin manifests.
    #[command(subcommand)]
    Manifest(contracts::ManifestCommand),
    /// Work with one plugin directory: inspect what it is and how it is
    /// sandboxed, run its contract's conformance suite, or start a new one.
    #[command(subcommand)]
    Plugin(plugin::Command),
    /// Decide one `{"subject", "input", "params"}` document with a policy of
    /// any contract and print the run record (run key, hashes, output).
    Run(contracts::RunArgs),
    /// Store data for the service: `polis ingest gbfs DIR|CSV`.
    #[command(subcommand)]
    Ingest(service::IngestCommand),
    /// Run the HTTP API with in-process workers (SQLite by default).
    Serve(service::ServeArgs),
    /// Run workers only, claiming runs from a shared store (PostgreSQL
    /// to scale out over machines).
    Worker(service::WorkerCommand),
    /// Policy packs: list and validate packs, print a project's effective
    /// policy, evaluate a repository into findings, gate it.
    #[command(subcommand, alias = "packs")]
    Pack(packs::Command),
}

/// How a command finished when it did not fail outright.
pub enum Outcome {
    /// Everything is fine.
    Success,
    /// The command ran but found problems (an invalid manifest, say).
    Findings,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let command = match settings::apply(&args, Cli::command()) {
        Ok(command) => command,
        Err(error) => {
            report(&error, args.iter().any(|a| a == "--json"));
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&command.get_matches_from(&args)) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let json = cli.json;
    let result = match cli.command {
        Command::Rebalance(command) => rebalance::run(command, json),
        Command::Strategy(command) => strategy::run(command, json),
        Command::Payments(command) => payments::run(command, json),
        Command::Behavior(command) => behavior::run(command, json),
        Command::Plugins(command) => contracts::plugins(command, json),
        Command::Contract(command) => contracts::contract(command, json),
        Command::Manifest(command) => contracts::manifest(command, json),
        Command::Plugin(command) => plugin::run(command, json),
        Command::Run(args) => contracts::run(args),
        Command::Ingest(command) => service::ingest(command, json),
        Command::Serve(args) => service::serve(args),
        Command::Worker(args) => service::worker(args),
        Command::Pack(command) => packs::run(command, json),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Err(error) => {
            report(&error, json);
            ExitCode::from(2)
        }
    }
}

/// Prints an error for people, or as `{"error": {...}}` with `--json`.
fn report(error: &anyhow::Error, json: bool) {
    if json {
        let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
        let body = serde_json::json!({"error": {"message": error.to_string(), "causes": &chain[1..]}});
        println!("{body}");
    } else {
        eprintln!("error: {error}");
        for cause in error.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
    }
}
