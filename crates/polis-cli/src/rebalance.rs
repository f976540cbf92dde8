//! `polis rebalance …`: snapshots, runs, the synthetic city and the demo.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use polis_core::run::{parse_time, rfc3339};
use polis_rebalance::Rebalance;
use polis_rebalance::contract::{DecisionSubject, Effort, PolicyOutput, RebalanceParams, Targets};
use polis_rebalance::gbfs::Feed;
use polis_rebalance::host::{Decision, Host};
use polis_rebalance::network::Network;
use polis_rebalance::snapshot::BuiltSnapshot;
use polis_rebalance::snapshot::{SnapshotBuilder, SnapshotOptions};
use polis_rebalance::synth::{self, CityOptions};
use polis_rebalance::urbanflow;
use polis_runtime::RunRecord;

use crate::Outcome;
use crate::input::{ContextFields, LoadedInput};
use crate::plugin_dirs::PluginDirs;
use crate::table::{Align, render, thousands};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a synthetic city in memory and print the moves of both
    /// built-in policies for its morning rush.
    ///
    /// Nothing is read or written: this is the quickest way to see polis
    /// decide. `polis rebalance synth` writes such a city to disk.
    Demo(DemoArgs),
    /// Print the `policy.input.v1` document built from GBFS data at a time.
    ///
    /// Stations come from the snapshot at or before `--at`; each station's
    /// neighbours are its `--k` nearest within `--radius-m` metres.
    Snapshot(SnapshotArgs),
    /// Run one policy on an input and print its moves.
    ///
    /// The input is a `policy.input.v1` file (`--input`, `-` for stdin) or
    /// is built from GBFS data (`--gbfs … --at …`). Output is a table, or
    /// the `policy.output.v1` document with `--json`.
    Run(RunArgs),
    /// Write a deterministic synthetic city as GBFS files.
    ///
    /// Writes `station_information.json` and `station_status.json` (the last
    /// snapshot), and the whole series as `stations.csv` plus
    /// `station_status.csv.gz`, the archive shape `--gbfs` reads.
    Synth(SynthArgs),
    /// Replay a window of GBFS data with several policies and compare
    /// their KPIs.
    ///
    /// Demand is the observed flow (`--demand flow`) or Poisson rentals
    /// and returns estimated from it (`--demand stochastic`, with
    /// `--replications`); every policy sees the same demand. At every
    /// decision bucket each policy is called through the registry on the
    /// simulated state and its validated moves are applied. `--out DIR`
    /// writes the KPIs, moves, time series and a record of every decision;
    /// `--verify DIR` re-runs those decisions and reports any drift.
    Replay(Box<crate::replay::ReplayArgs>),
}

/// Where GBFS data comes from and how to turn it into an input.
#[derive(Debug, Args)]
pub struct GbfsArgs {
    /// A GBFS feed directory (station_information.json +
    /// station_status.json) or an archive (a directory with stations.csv and
    /// station_status.csv[.gz], or the status file itself).
    #[arg(long, value_name = "DIR|CSV")]
    pub gbfs: PathBuf,
    /// Decision time, epoch seconds or RFC 3339; the latest snapshot at or
    /// before it is used. By default the last snapshot.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[command(flatten)]
    pub shape: ShapeArgs,
}

/// Neighbour graph, effort and band settings.
#[derive(Debug, Args)]
pub struct ShapeArgs {
    /// Neighbours per station.
    #[arg(long, default_value_t = 25)]
    pub k: usize,
    /// Neighbour radius in metres.
    #[arg(long = "radius-m", default_value_t = 1200.0)]
    pub radius_m: f64,
    /// Most bikes moved per decision.
    #[arg(long, default_value_t = 60)]
    pub budget: u32,
    /// Most distinct stations touched per decision.
    #[arg(long, default_value_t = 30)]
    pub max_stations: u32,
    /// Most moves per decision.
    #[arg(long, default_value_t = 20)]
    pub max_moves: u32,
    /// Band bottom as a fraction of capacity.
    #[arg(long, default_value_t = 0.2)]
    pub alpha: f64,
    /// Band top as a fraction of capacity.
    #[arg(long, default_value_t = 0.8)]
    pub beta: f64,
    /// Stations with fewer docks are left alone.
    #[arg(long, default_value_t = 5)]
    pub min_capacity: u32,
}

impl ShapeArgs {
    pub(crate) fn options(&self) -> SnapshotOptions {
        SnapshotOptions {
            k: self.k,
            radius_m: self.radius_m,
            effort: Effort {
                bike_move_budget_per_step: self.budget,
                max_stations_touched: self.max_stations,
                max_moves: self.max_moves,
            },
            targets: Targets { alpha: self.alpha, beta: self.beta, min_capacity_for_policy: self.min_capacity },
        }
    }
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    gbfs: GbfsArgs,
    /// Print `{"context", "input", "snapshot"}` instead of the bare input;
    /// `polis rebalance run --input` accepts either.
    #[arg(long)]
    envelope: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The policy version to run, such as `rebal.global.v1`. By default the
    /// request's `policy_version` for an original-format request, else
    /// `rebal.global.v1`.
    #[arg(long)]
    policy: Option<String>,
    /// A `policy.input.v1` file, `{"context", "input", "params"}`, or a
    /// request in the original system's (UrbanFlow's) format
    /// `{policy_version, system_id, decision_bucket_ts, bucket_size_s, spec,
    /// stations}`; `-` reads stdin. A bare input runs with system `local`,
    /// sv `input-<hash>` and bucket 0.
    #[arg(long, value_name = "FILE", conflicts_with = "gbfs", required_unless_present = "gbfs")]
    input: Option<PathBuf>,
    /// Build the input from GBFS data instead.
    #[arg(long, value_name = "DIR|CSV")]
    gbfs: Option<PathBuf>,
    /// Decision time for `--gbfs`.
    #[arg(long, value_name = "TIME", requires = "gbfs")]
    at: Option<String>,
    /// How to print the result: a table, the `policy.output.v1` document
    /// (also `--json`), or the original system's output shape with
    /// `stations_touched` (needs an original-format request).
    #[arg(long, value_enum)]
    output_format: Option<OutputFormat>,
    #[command(flatten)]
    shape: ShapeArgs,
    #[command(flatten)]
    plugins: PluginDirs,
}

/// `rebalance run --output-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Moves as a table, then diagnostics and hashes.
    Table,
    /// The `policy.output.v1` document.
    Json,
    /// The original system's output: moves with their edge `rank`,
    /// `stations_touched` with `L_s`, `U_s`, bikes before and after.
    Urbanflow,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Number of stations.
    #[arg(long, default_value_t = 300)]
    stations: usize,
    /// Days simulated, from 2024-01-01T00:00Z, a snapshot every 5 minutes.
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// Random seed; the same seed writes byte-identical files.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of stations in the synthetic city.
    #[arg(long, default_value_t = 300)]
    stations: usize,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Time of day (UTC, HH:MM) of the decision.
    #[arg(long, default_value = "09:30")]
    time: String,
}

pub fn run(command: Command, json: bool) -> anyhow::Result<Outcome> {
    match command {
        Command::Demo(args) => demo(args, json),
        Command::Snapshot(args) => snapshot(args),
        Command::Run(args) => run_policy(args, json),
        Command::Synth(args) => synthesise(args, json),
        Command::Replay(args) => crate::replay::run(*args, json),
    }
}

/// Loads GBFS data and builds the input at a time.
fn from_gbfs(path: &std::path::Path, at: Option<&str>, shape: &ShapeArgs) -> anyhow::Result<LoadedInput> {
    let at = at.map(parse_time).transpose().map_err(anyhow::Error::msg).context("invalid `--at`")?;
    let feed = Feed::open(path)?;
    let snapshot = feed.snapshot_at(at)?;
    let built = SnapshotBuilder::new(shape.options()).build(&feed, snapshot, at)?;
    Ok(loaded_from(built))
}

/// A built snapshot as a loaded input, with default params.
fn loaded_from(built: BuiltSnapshot) -> LoadedInput {
    LoadedInput {
        context: ContextFields {
            system_id: built.system_id,
            sv: built.sv,
            decision_bucket_ts: built.decision_bucket_ts,
            horizon_steps: 0,
            request_id: None,
            now_iso: None,
            seed: None,
        },
        input: built.input,
        params: RebalanceParams::default(),
        names: built.names,
        snapshot: Some((built.view_snapshot_id, built.view_snapshot_sha256.to_hex())),
        original: None,
    }
}

fn snapshot(args: SnapshotArgs) -> anyhow::Result<Outcome> {
    let loaded = from_gbfs(&args.gbfs.gbfs, args.gbfs.at.as_deref(), &args.gbfs.shape)?;
    let document = if args.envelope {
        let (id, sha) = loaded.snapshot.clone().unwrap_or_default();
        serde_json::json!({
            "context": {
                "system_id": loaded.context.system_id,
                "sv": loaded.context.sv,
                "decision_bucket_ts": loaded.context.decision_bucket_ts,
                "horizon_steps": 0,
            },
            "input": loaded.input,
            "params": loaded.params,
            "snapshot": {"view_snapshot_id": id, "view_snapshot_sha256": sha},
        })
    } else {
        serde_json::to_value(&loaded.input)?
    };
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(Outcome::Success)
}

/// Runs one policy on a loaded input through the host.
pub fn decide(host: &Host, policy: &str, loaded: &LoadedInput) -> anyhow::Result<RunRecord<Rebalance>> {
    let subject = DecisionSubject {
        system_id: loaded.context.system_id.clone(),
        sv: loaded.context.sv.clone(),
        decision_bucket_ts: loaded.context.decision_bucket_ts,
        horizon_steps: loaded.context.horizon_steps,
    };
    let decision = Decision {
        request_id: loaded.context.request_id.as_deref(),
        ..Decision::new(&subject, &loaded.input, &loaded.params)
    };
    Ok(host.decide(policy, &decision)?)
}

fn run_policy(args: RunArgs, json: bool) -> anyhow::Result<Outcome> {
    let loaded = match (&args.input, &args.gbfs) {
        (Some(path), _) => crate::input::load(path)?,
        (None, Some(gbfs)) => from_gbfs(gbfs, args.at.as_deref(), &args.shape)?,
        (None, None) => anyhow::bail!("give `--input FILE` or `--gbfs DIR|CSV`"),
    };
    let format = args.output_format.unwrap_or(if json { OutputFormat::Json } else { OutputFormat::Table });
    let original = match format {
        OutputFormat::Urbanflow => Some(loaded.original.as_ref().context(
            "`--output-format urbanflow` needs a request in the original's format (with `spec`) as `--input`",
        )?),
        OutputFormat::Table | OutputFormat::Json => None,
    };
    let policy = match (&args.policy, &loaded.original) {
        (Some(policy), _) => policy.clone(),
        (None, Some(original)) => original.policy_version.clone(),
        (None, None) => "rebal.global.v1".to_owned(),
    };
    let host = Host::new(args.plugins.rebalance(true)?, polis_runtime::HostLimits::default())?;
    let record = decide(&host, &policy, &loaded)?;
    match (format, original) {
        (OutputFormat::Urbanflow, Some(original)) => {
            let network = Network::new(&loaded.input, &loaded.params)?;
            let output = urbanflow::Output::new(original, &policy, &loaded.input, &network, &record.output)?;
            println!("{}", serde_json::to_string_pretty(&output)?);
        }
        (OutputFormat::Json, _) => println!("{}", serde_json::to_string_pretty(&record.output)?),
        _ => print!("{}", describe(&record, &loaded)),
    }
    Ok(Outcome::Success)
}

/// A readable account of one run: header, moves table, provenance.
pub fn describe(record: &RunRecord<Rebalance>, loaded: &LoadedInput) -> String {
    let out: &PolicyOutput = &record.output;
    let key = &record.run_key;
    let label = |k: &str| loaded.names.get(k).map_or_else(|| k.to_owned(), |n| n.clone());
    let weighted: f64 = out.moves.iter().map(|m| f64::from(m.bikes_moved) * m.dist_m).sum();
    let mut text = format!(
        "{} on {} at {} ({} stations): {} moves, {} bikes, {} stations touched, {} bike-metres\n",
        key.policy_version,
        key.subject.system_id,
        rfc3339(key.subject.decision_bucket_ts),
        loaded.input.stations.len(),
        out.moves.len(),
        out.summary.bikes_moved_total,
        out.summary.stations_touched,
        thousands(weighted.round() as u64),
    );
    if out.moves.is_empty() {
        text.push_str("no moves: nothing to rebalance within the limits\n");
    } else {
        let rows: Vec<Vec<String>> = out
            .moves
            .iter()
            .map(|m| {
                let mut flags = Vec::new();
                if m.budget_exhausted {
                    flags.push("budget spent");
                }
                if m.neighbor_exhausted {
                    flags.push("donor done");
                }
                vec![
                    m.move_rank.to_string(),
                    label(&m.from_station_key),
                    label(&m.to_station_key),
                    m.bikes_moved.to_string(),
                    format!("{:.1}", m.dist_m),
                    flags.join(", "),
                ]
            })
            .collect();
        text.push_str(&render(
            &[
                ("#", Align::Right),
                ("from", Align::Left),
                ("to", Align::Left),
                ("bikes", Align::Right),
                ("dist_m", Align::Right),
                ("notes", Align::Left),
            ],
            &rows,
            34,
        ));
    }
    if let Some(diagnostics) = &out.diagnostics {
        let shown: Vec<String> = diagnostics.iter().map(|(k, v)| format!("{k}={v}")).collect();
        text.push_str(&format!("diagnostics: {}\n", shown.join(" ")));
    }
    text.push_str(&format!(
        "run key {}  manifest {}  input {}  output {}\n",
        short(&record.run_key_sha256.to_hex()),
        short(&record.manifest_sha256.to_hex()),
        short(&record.input_sha256.to_hex()),
        short(&record.output_sha256.to_hex()),
    ));
    text
}

fn short(hex: &str) -> &str {
    &hex[..12.min(hex.len())]
}

fn synthesise(args: SynthArgs, json: bool) -> anyhow::Result<Outcome> {
    let city = synth::generate(CityOptions { stations: args.stations, days: args.days, seed: args.seed });
    synth::write(&city, &args.out).with_context(|| format!("cannot write the city to `{}`", args.out.display()))?;
    let snapshots = city.feed.snapshots.len();
    if json {
        println!(
            "{}",
            serde_json::json!({"out": args.out, "stations": city.feed.stations.len(), "snapshots": snapshots})
        );
    } else {
        println!(
            "wrote a synthetic city of {} stations, {} snapshots ({} to {}) to {}",
            city.feed.stations.len(),
            snapshots,
            rfc3339(synth::START_TS),
            rfc3339(city.feed.snapshots.last().map_or(synth::START_TS, |s| s.ts)),
            args.out.display()
        );
        println!("try: polis rebalance run --gbfs {} --at 2024-01-01T09:30:00Z", args.out.display());
    }
    Ok(Outcome::Success)
}

fn demo(args: DemoArgs, json: bool) -> anyhow::Result<Outcome> {
    let (hours, minutes) = args
        .time
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
        .filter(|(h, m)| (0..24).contains(h) && (0..60).contains(m))
        .context("`--time` must be HH:MM")?;
    let city = synth::generate(CityOptions { stations: args.stations, days: 1, seed: args.seed });
    let at = synth::START_TS + hours * 3600 + minutes * 60;
    let snapshot = city.feed.snapshot_at(Some(at))?;
    let built = SnapshotBuilder::new(SnapshotOptions::default()).build(&city.feed, snapshot, Some(at))?;
    let loaded = loaded_from(built);
    let host = polis_rebalance::host::builtin()?;
    let mut outputs = serde_json::Map::new();
    for policy in ["rebal.greedy.v1", "rebal.global.v1"] {
        let record = decide(&host, policy, &loaded)?;
        if json {
            outputs.insert(policy.to_owned(), serde_json::to_value(&record.output)?);
        } else {
            println!("{}", describe(&record, &loaded));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&outputs)?);
    }
    Ok(Outcome::Success)
}
