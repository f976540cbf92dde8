//! `polis rebalance replay`: parse, drive the domain's replay with a
//! progress bar, render the KPI table, write or verify the output files.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use polis_core::run::{parse_time, rfc3339};
use polis_rebalance::gbfs::Feed;
use polis_rebalance::host::Host;
use polis_rebalance::replay::kpi::Estimate;
use polis_rebalance::replay::{
    self, DEFAULT_JUMP_THRESHOLD, DemandModel, Progress, Replay, ReplayConfig, chart, output,
};
use polis_runtime::HostLimits;
use serde::{Deserialize, Serialize};

use crate::Outcome;
use crate::plugin_dirs::PluginDirs;
use crate::rebalance::ShapeArgs;
use crate::table::{Align, render, thousands};

/// The file beside the outputs that lets `--verify` run the replay again.
const CONFIG_FILE: &str = "replay.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemandArg {
    /// Replay the observed changes of every station.
    Flow,
    /// Poisson rentals and returns per 15-minute slot, N replications.
    Stochastic,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// GBFS data: an archive directory (stations.csv +
    /// station_status.csv[.gz]) or its status file. With `--verify`, by
    /// default the data the replay was made from.
    #[arg(long, value_name = "DIR|CSV", required_unless_present = "verify")]
    data: Option<PathBuf>,
    /// Window start, epoch seconds or RFC 3339. By default the first
    /// snapshot.
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Window end (exclusive). By default the last snapshot.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Decision bucket length in seconds.
    #[arg(long = "bucket-s", default_value_t = 300)]
    bucket_s: i64,
    /// Policies to compare, comma-separated: `noop`, `rebal.greedy.v1`,
    /// `rebal.global.v1` or any registered policy version.
    #[arg(long, value_delimiter = ',', default_value = "noop,rebal.greedy.v1,rebal.global.v1")]
    policies: Vec<String>,
    /// Seed of the stochastic demand.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Demand model.
    #[arg(long, value_enum, default_value_t = DemandArg::Flow)]
    demand: DemandArg,
    /// Replications of the stochastic model.
    #[arg(long, default_value_t = 10)]
    replications: u32,
    /// Observed changes of at least this many bikes between two
    /// observations are operator rebalancing and are left out; 0 keeps all.
    #[arg(long, default_value_t = DEFAULT_JUMP_THRESHOLD)]
    jump_threshold: u32,
    /// Apply moves after a travel lag of distance / speed (km/h) instead
    /// of instantly.
    #[arg(long = "speed-kmh", value_name = "KMH")]
    speed_kmh: Option<f64>,
    #[command(flatten)]
    shape: ShapeArgs,
    /// Write kpis.csv, kpis.json, kpis.svg (the comparison as a chart),
    /// report.html (the table and the chart, for a browser), moves.csv,
    /// timeseries.csv, runs.jsonl and replay.json to this directory
    /// (created if missing).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Re-run every decision of the replay stored in DIR and report any
    /// hash that drifted.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    verify: Option<PathBuf>,
    #[command(flatten)]
    plugins: PluginDirs,
}

/// `replay.json`: where the data came from and the configuration.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    data: PathBuf,
    config: ReplayConfig,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn advance(&self, decisions: u64) {
        self.0.inc(decisions);
    }
}

fn bar(total: u64) -> Bar {
    Bar(crate::progress::bar(total, "decisions"))
}

fn host(plugins: &PluginDirs) -> anyhow::Result<Host> {
    Ok(Host::new(replay::with_noop(plugins.rebalance(true)?), HostLimits::default())?)
}

pub fn run(args: ReplayArgs, json: bool) -> anyhow::Result<Outcome> {
    if let Some(dir) = &args.verify {
        return verify(dir, args.data.as_deref(), &args.plugins, json);
    }
    let data = args.data.clone().context("give `--data DIR|CSV`")?;
    let feed = Feed::open(&data)?;
    let config = config_of(&args, &feed)?;
    let host = host(&args.plugins)?;
    let progress = bar(replay::decision_count(&feed, &host, &config)?);
    let result = replay::run(&feed, &host, &config, &progress)?;
    progress.0.finish_and_clear();
    if let Some(out) = &args.out {
        write(out, &data, &feed.system_id, &result)?;
    }
    if json {
        print!("{}", output::kpis_json(&result));
    } else {
        print!("{}", report(&feed.system_id, &result));
        if let Some(out) = &args.out {
            println!(
                "wrote kpis.csv, kpis.json, kpis.svg, report.html, moves.csv, timeseries.csv, runs.jsonl and {CONFIG_FILE} to {}",
                out.display()
            );
        }
    }
    Ok(Outcome::Success)
}

fn config_of(args: &ReplayArgs, feed: &Feed) -> anyhow::Result<ReplayConfig> {
    let time = |text: &Option<String>, flag: &str| -> anyhow::Result<Option<i64>> {
        text.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("invalid `{flag}`"))
    };
    let first = feed.snapshots.first().map_or(0, |s| s.ts);
    let last = feed.snapshots.last().map_or(0, |s| s.ts);
    let mut config =
        ReplayConfig::new(time(&args.from, "--from")?.unwrap_or(first), time(&args.to, "--to")?.unwrap_or(last));
    config.bucket_s = args.bucket_s;
    config.policies = args.policies.iter().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect();
    config.seed = args.seed;
    config.demand = match args.demand {
        DemandArg::Flow => DemandModel::Flow,
        DemandArg::Stochastic => DemandModel::Stochastic { replications: args.replications },
    };
    config.jump_threshold = args.jump_threshold;
    config.speed_kmh = args.speed_kmh;
    let options = args.shape.options();
    config.k = options.k;
    config.radius_m = options.radius_m;
    config.effort = options.effort;
    config.targets = options.targets;
    Ok(config)
}

fn write(out: &Path, data: &Path, system_id: &str, replay: &Replay) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let chart = chart::kpis_svg(system_id, replay);
    let page = report_page(system_id, replay, &chart);
    let mut files = output::files(replay);
    files.extend([("kpis.svg", chart), ("report.html", page)]);
    for (name, text) in files {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    let stored = Stored { data: data.to_path_buf(), config: replay.config.clone() };
    let path = out.join(CONFIG_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(&stored)? + "\n")
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

fn verify(dir: &Path, data: Option<&Path>, plugins: &PluginDirs, json: bool) -> anyhow::Result<Outcome> {
    let read = |name: &str| -> anyhow::Result<String> {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read `{}`", path.display()))
    };
    let stored: Stored = serde_json::from_str(&read(CONFIG_FILE)?)
        .with_context(|| format!("invalid `{CONFIG_FILE}` in `{}`", dir.display()))?;
    let records = output::parse_runs(&read("runs.jsonl")?)?;
    let data = data.map_or(stored.data.clone(), Path::to_path_buf);
    let feed = Feed::open(&data)?;
    let host = host(plugins)?;
    let progress = bar(replay::decision_count(&feed, &host, &stored.config)?);
    let report = output::verify(&feed, &host, &stored.config, &records, &progress)?;
    progress.0.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "re-ran {} decisions of {}: {} drifted",
            thousands(report.checked as u64),
            dir.display(),
            report.drifts.len()
        );
        if !report.drifts.is_empty() {
            let rows: Vec<Vec<String>> = report
                .drifts
                .iter()
                .map(|d| {
                    vec![
                        d.key.policy.clone(),
                        d.key.replication.to_string(),
                        rfc3339(d.key.decision_bucket_ts),
                        d.field.to_owned(),
                        d.expected.clone(),
                        d.actual.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                render(
                    &[
                        ("policy", Align::Left),
                        ("rep", Align::Right),
                        ("bucket", Align::Left),
                        ("field", Align::Left),
                        ("expected", Align::Left),
                        ("actual", Align::Left),
                    ],
                    &rows,
                    64,
                )
            );
        }
    }
    Ok(if report.drifts.is_empty() { Outcome::Success } else { Outcome::Findings })
}

/// The KPI comparison for people: a header and one row per policy.
pub fn report(system_id: &str, replay: &Replay) -> String {
    let config = &replay.config;
    let replications = config.demand.replications();
    let model = match config.demand {
        DemandModel::Flow => "flow replay".to_owned(),
        DemandModel::Stochastic { replications } => {
            format!("stochastic, {replications} replications, seed {}", config.seed)
        }
    };
    let lag = config.speed_kmh.map_or_else(|| "instant moves".to_owned(), |s| format!("moves at {s} km/h"));
    let jumps = replay.jumps_removed;
    let mut text = format!(
        "{system_id} {} to {}: {model}, {lag}, {}-second buckets, jump threshold {} ({} observed jumps removed)\n",
        rfc3339(config.from),
        rfc3339(config.to),
        config.bucket_s,
        config.jump_threshold,
        thousands(jumps),
    );
    let show = |e: Estimate| -> String {
        if replications > 1 { format!("{} ± {}", round(e.mean), round(e.half_width())) } else { round(e.mean) }
    };
    let rows: Vec<Vec<String>> = replay
        .summary
        .policies
        .iter()
        .map(|p| {
            let value = |name: &str| p.get(name).map_or_else(String::new, |m| show(m.value));
            let delta = |name: &str| p.get(name).and_then(|m| m.delta_vs_noop).map_or_else(|| "-".to_owned(), show);
            let per_100 = p
                .get("constrained_station_minutes")
                .and_then(|m| m.delta_per_100_bikes_moved)
                .map_or_else(|| "-".to_owned(), round);
            let km = p.get("weighted_distance_m").map_or(0.0, |m| m.value.mean / 1000.0);
            let per_bike = p.get("mean_distance_per_bike_m").map_or(0.0, |m| m.value.mean);
            vec![
                p.policy.clone(),
                value("empty_station_minutes"),
                value("full_station_minutes"),
                value("constrained_station_minutes"),
                delta("constrained_station_minutes"),
                per_100,
                value("failed_rentals"),
                value("failed_returns"),
                value("bikes_moved"),
                value("stations_touched"),
                format!("{km:.1}"),
                format!("{per_bike:.0}"),
                value("errors"),
            ]
        })
        .collect();
    text.push_str(&render(
        &[
            ("policy", Align::Left),
            ("empty min", Align::Right),
            ("full min", Align::Right),
            ("constrained min", Align::Right),
            ("Δ vs noop", Align::Right),
            ("Δ/100 bikes", Align::Right),
            ("failed rentals", Align::Right),
            ("failed returns", Align::Right),
            ("bikes moved", Align::Right),
            ("stations", Align::Right),
            ("bike-km", Align::Right),
            ("m/bike", Align::Right),
            ("errors", Align::Right),
        ],
        &rows,
        40,
    ));
    text
}

/// `report.html`: the replay page, the KPI table and chart with links to
/// the data files; it loads nothing.
fn report_page(system_id: &str, replay: &Replay, chart: &str) -> String {
    use chart::escape;
    let links: Vec<String> =
        ["kpis.csv", "kpis.json", "kpis.svg", "moves.csv", "timeseries.csv", "runs.jsonl", CONFIG_FILE]
            .iter()
            .map(|f| format!("<a href=\"{f}\">{f}</a>"))
            .collect();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>replay of {s} · polis</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:24px;color:#222}}pre{{font-size:12px}}</style></head>\
         <body><h1>Replay of {s}</h1><figure id=\"kpis\">{chart}</figure><h2>Figures</h2><pre id=\"table\">{table}</pre>\
         <p>Files: {links}. Check it again with <code>polis rebalance replay --verify DIR</code>.</p></body></html>\n",
        s = escape(system_id),
        table = escape(&report(system_id, replay)),
        links = links.join(" · "),
    )
}

/// Rounds to a whole number with thousands separators.
fn round(value: f64) -> String {
    let rounded = value.round();
    let sign = if rounded < 0.0 { "-" } else { "" };
    format!("{sign}{}", thousands(rounded.abs() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-day window of the real week with a fixed seed: the table
    /// every change to the simulator, the demand models or the built-in
    /// policies must explain.
    #[test]
    fn golden_kpi_table_for_one_bay_wheels_day() {
        let Some(dir) = polis_testdata::require("baywheels-2023-03-06") else {
            return;
        };
        let feed = Feed::open(&dir).unwrap();
        let host = host(&PluginDirs::default()).unwrap();
        let mut config = ReplayConfig::new(1_678_147_200, 1_678_233_600);
        let flow = replay::run(&feed, &host, &config, &()).unwrap();
        config.demand = DemandModel::Stochastic { replications: 3 };
        config.seed = 2023;
        let stochastic = replay::run(&feed, &host, &config, &()).unwrap();
        let text = format!("{}\n{}", report("baywheels", &flow), report("baywheels", &stochastic));
        insta::assert_snapshot!(text);
    }

    #[test]
    fn negative_figures_keep_their_sign_and_separators() {
        assert_eq!(round(-12_345.4), "-12,345");
        assert_eq!(round(0.4), "0");
        assert_eq!(round(999.5), "1,000");
    }
}
