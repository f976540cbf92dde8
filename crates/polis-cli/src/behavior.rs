//! `polis behavior …`: simulate a world's NPCs with behaviour plugins,
//! list the permissions a manifest may ask for, and show what loaded
//! plugins were granted and registered (seed 003, see docs/behavior.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use polis_behavior::contract::REQUIRED_METHODS;
use polis_behavior::engine::{DEFAULT_SECONDS_PER_TICK, Outcome as Run, RunOptions, Simulation, Timeline};
use polis_behavior::{
    Behavior, BehaviorHost, BehaviorPlugin, EndpointPlugin, HostConfig, REMOTE_TIMEOUT, Session, World, builtins,
};
use polis_core::canonical;
use polis_runtime::BreakerConfig;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Outcome;
use crate::plugin_dirs::PluginDirs;

/// NPC behaviour: worlds, routines, activities and plugins.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a world's NPCs for N ticks and print each NPC's activity
    /// timeline and the timeline's digest.
    ///
    /// A tick is `--seconds-per-tick` world seconds (900 by default, so 96
    /// ticks are one day), starting at the session's world time (0, that
    /// is midnight of day 1, without `--session`). The built-in plugin
    /// `polis.behavior.moody` is always loaded; `--plugin-dir` adds more.
    /// `--out DIR` writes `timeline.jsonl`, `digest`, and the inputs needed
    /// to verify (`world.json`, `session.json`, `run.json`); `--verify DIR`
    /// re-runs those inputs with the plugins given now and reports drift,
    /// exiting 1 when there is any.
    Simulate(SimulateArgs),
    /// List the permissions a behaviour manifest may ask for, the groups
    /// and what each expands to, and the host methods each unlocks (a wasm
    /// plugin's imports, a process plugin's JSON-RPC calls back).
    ///
    /// A name not listed here is warned about at load and never granted;
    /// `admin:routes` also needs `polis serve --enable-admin-plugins`.
    Permissions,
    /// Load the behaviour plugins under `--plugin-dir` (and the built-in
    /// `polis.behavior.moody`) and show each one's tier, kind, grants,
    /// warnings, and what it registered: conditions, effects, routes.
    ///
    /// A plugin that fails to load is shown disabled with the reason; the
    /// command exits 1 when any is.
    Plugins(PluginsArgs),
}

/// Arguments of `polis behavior plugins`.
#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// Grant `admin:routes` to manifests asking for it, as
    /// `polis serve --enable-admin-plugins` does.
    #[arg(long)]
    enable_admin_plugins: bool,
    /// Behaviour plugins to load.
    #[command(flatten)]
    plugins: PluginDirs,
}

/// Arguments of `polis behavior simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The world document (JSON, with `meta.behavior`).
    #[arg(long, value_name = "FILE", required_unless_present = "verify", conflicts_with = "verify")]
    world: Option<PathBuf>,
    /// A session document to start from; a new session at world time 0
    /// when absent.
    #[arg(long, value_name = "FILE", conflicts_with = "verify")]
    session: Option<PathBuf>,
    /// Ticks to simulate.
    #[arg(long, required_unless_present = "verify", conflicts_with = "verify")]
    ticks: Option<u64>,
    /// The run seed; every random draw and plugin seed derives from it.
    #[arg(long, default_value_t = 0, conflicts_with = "verify")]
    seed: u64,
    /// World seconds per tick.
    #[arg(long, default_value_t = DEFAULT_SECONDS_PER_TICK, conflicts_with = "verify")]
    seconds_per_tick: i64,
    /// Write timeline.jsonl, digest, world.json, session.json and run.json here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Re-run the inputs stored in DIR by `--out` and compare.
    #[arg(long, value_name = "DIR")]
    verify: Option<PathBuf>,
    /// Behaviour plugins to load.
    #[command(flatten)]
    plugins: PluginDirs,
}

/// `run.json`: what a run was, so that `--verify` can repeat it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RunRecord {
    /// Ticks, seed, seconds per tick.
    options: RunOptions,
    /// SHA-256 of the world's canonical JSON.
    world_digest: String,
    /// SHA-256 of the starting session's canonical JSON.
    session_digest: String,
    /// The plugins loaded, `id@version (tier)`, in id order.
    plugins: Vec<String>,
    /// The timeline digest.
    digest: String,
}

/// Runs a `polis behavior` command.
pub fn run(command: Command, json: bool) -> anyhow::Result<Outcome> {
    match command {
        Command::Simulate(args) => simulate(&args, json),
        Command::Permissions => {
            crate::contracts::print_catalog("behavior.v1", &polis_behavior::permissions::catalog(), json)?;
            Ok(Outcome::Success)
        }
        Command::Plugins(args) => list_plugins(&args, json),
    }
}

fn list_plugins(args: &PluginsArgs, json: bool) -> anyhow::Result<Outcome> {
    let grants = polis_behavior::GrantSettings { admin_plugins: args.enable_admin_plugins };
    let host = BehaviorHost::load(plugins(&args.plugins)?, HostConfig { grants, ..HostConfig::default() });
    let reports = host.reports();
    let any_disabled = reports.iter().any(|r| r.disabled.is_some());
    if json {
        println!("{}", serde_json::to_string_pretty(&json!({"plugins": reports, "issues": host.issues()}))?);
    } else {
        for r in &reports {
            println!("{}  {}  {}", r.plugin_id, r.tier, r.kind.as_str());
            if let Some(reason) = &r.disabled {
                println!("    disabled: {reason}");
            }
            println!(
                "    granted: {}",
                if r.permissions.is_empty() { "nothing".into() } else { r.permissions.join(", ") }
            );
            for warning in &r.warnings {
                println!("    warning: {warning}");
            }
            for (what, ids) in [("condition", &r.conditions), ("effect", &r.effects), ("route", &r.routes)] {
                for id in ids {
                    println!("    {what} {id}");
                }
            }
        }
    }
    Ok(if any_disabled { Outcome::Findings } else { Outcome::Success })
}

fn read_world(path: &Path) -> anyhow::Result<World> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    World::from_json(&bytes).with_context(|| format!("`{}`", path.display()))
}

fn read_session(path: &Path) -> anyhow::Result<Session> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    Session::from_json(&bytes).with_context(|| format!("`{}`", path.display()))
}

/// The built-ins and the plugins under `--plugin-dir`; a plugin that fails
/// to load is reported on stderr and left out.
fn plugins(dirs: &PluginDirs) -> anyhow::Result<Vec<Arc<dyn BehaviorPlugin>>> {
    let mut plugins: Vec<Arc<dyn BehaviorPlugin>> = vec![Arc::new(builtins::Moody::default())];
    if dirs.plugin_dirs.is_empty() {
        return Ok(plugins);
    }
    dirs.check()?;
    let mut tiers = dirs.tiers.tiers()?;
    tiers.remote.timeout = tiers.remote.timeout.min(REMOTE_TIMEOUT);
    let roots: Vec<&Path> = dirs.plugin_dirs.iter().map(PathBuf::as_path).collect();
    let (loaded, reports) = polis_plugins::load_endpoints::<Behavior>(&roots, &tiers, REQUIRED_METHODS);
    for report in &reports {
        if let Err(reason) = &report.outcome {
            eprintln!("warning: plugin in `{}` disabled: {reason}", report.source.display());
        }
    }
    plugins.extend(loaded.into_iter().map(|l| Arc::new(EndpointPlugin::new(l.endpoint)) as Arc<dyn BehaviorPlugin>));
    Ok(plugins)
}

fn describe(plugins: &[Arc<dyn BehaviorPlugin>]) -> Vec<String> {
    let mut names: Vec<String> = plugins
        .iter()
        .map(|p| {
            let m = p.manifest();
            format!("{}@{} ({})", m.plugin_id, m.plugin_version, serde_json::to_value(m.tier()).unwrap_or_default())
        })
        .map(|s| s.replace('"', ""))
        .collect();
    names.sort();
    names
}

/// How long `simulate` waits at the end for webhooks still queued.
const WEBHOOK_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// Loads the plugins and runs the simulation. The breaker never trips
/// (`error_budget: 0`), because when a sometimes-failing plugin trips it
/// depends on wall time, and a run must replay exactly; a plugin failing
/// every call is false or skipped either way.
fn execute(
    world: World,
    session: Session,
    options: RunOptions,
    dirs: &PluginDirs,
    file: &Path,
) -> anyhow::Result<Executed> {
    let plugins = plugins(dirs)?;
    let names = describe(&plugins);
    let config =
        HostConfig { breaker: BreakerConfig { error_budget: 0, ..BreakerConfig::default() }, ..HostConfig::default() };
    let host = BehaviorHost::load(plugins, config);
    for issue in host.issues() {
        eprintln!("warning: {issue}");
    }
    let simulation = Simulation::new(world, session, &host).with_context(|| format!("`{}`", file.display()))?;
    for warning in &simulation.config().warnings {
        eprintln!("warning: {warning}");
    }
    let run = simulation.run(options).with_context(|| format!("`{}`", file.display()))?;
    // Remote plugins' webhooks are sent off the run's path; give them a
    // bounded while to arrive so that the health below counts them.
    let waiting = host.flush_webhooks(WEBHOOK_FLUSH);
    if waiting > 0 {
        eprintln!(
            "warning: {waiting} webhook deliveries were still waiting after {} s and are abandoned",
            WEBHOOK_FLUSH.as_secs()
        );
    }
    let reports = serde_json::to_value(host.reports())?;
    Ok(Executed { run, plugins: names, reports })
}

struct Executed {
    run: Run,
    plugins: Vec<String>,
    reports: serde_json::Value,
}

fn simulate(args: &SimulateArgs, json: bool) -> anyhow::Result<Outcome> {
    if let Some(dir) = &args.verify {
        return verify(dir, &args.plugins, args.out.as_deref(), json);
    }
    let (Some(world_path), Some(ticks)) = (&args.world, args.ticks) else {
        bail!("`--world` and `--ticks` are needed unless `--verify` is given");
    };
    let world = read_world(world_path)?;
    let session = match &args.session {
        Some(path) => read_session(path)?,
        None => Session::new("simulation", &world),
    };
    if session.world_id != world.id {
        bail!("the session plays world `{}`, not `{}`", session.world_id, world.id);
    }
    let options = RunOptions { ticks, seed: args.seed, seconds_per_tick: args.seconds_per_tick };
    let inputs = (world.clone(), session.clone());
    let executed = execute(world, session, options, &args.plugins, world_path)?;
    if let Some(dir) = &args.out {
        write_out(dir, &inputs.0, &inputs.1, options, &executed)?;
    }
    print(&inputs.0, options, &executed, json);
    Ok(Outcome::Success)
}

fn write_out(dir: &Path, world: &World, session: &Session, options: RunOptions, run: &Executed) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let record = RunRecord {
        options,
        world_digest: canonical::digest_of(world)?.to_hex(),
        session_digest: canonical::digest_of(session)?.to_hex(),
        plugins: run.plugins.clone(),
        digest: run.run.digest.to_hex(),
    };
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write `{}`", path.display()))
    };
    write("timeline.jsonl", run.run.timeline.jsonl().as_bytes())?;
    write("digest", format!("{}\n", run.run.digest.to_hex()).as_bytes())?;
    write("world.json", &serde_json::to_vec_pretty(world)?)?;
    write("session.json", &serde_json::to_vec_pretty(session)?)?;
    write("run.json", &serde_json::to_vec_pretty(&record)?)?;
    Ok(())
}

fn read_in<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> anyhow::Result<T> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("`{}`", path.display()))
}

/// Re-runs a stored run and compares: the stored timeline, the stored
/// digest and the recorded plugins must all match the new run.
fn verify(dir: &Path, dirs: &PluginDirs, out: Option<&Path>, json: bool) -> anyhow::Result<Outcome> {
    let record: RunRecord = read_in(dir, "run.json")?;
    let world = read_world(&dir.join("world.json"))?;
    let session = read_session(&dir.join("session.json"))?;
    let timeline_path = dir.join("timeline.jsonl");
    let stored_text = std::fs::read_to_string(&timeline_path)
        .with_context(|| format!("cannot read `{}`", timeline_path.display()))?;
    let stored =
        Timeline::from_jsonl(&stored_text).map_err(|e| anyhow::anyhow!("`{}`: {e}", timeline_path.display()))?;
    let stored_digest = std::fs::read_to_string(dir.join("digest")).unwrap_or_default().trim().to_owned();
    let executed = execute(world.clone(), session.clone(), record.options, dirs, &dir.join("world.json"))?;
    if let Some(out) = out {
        write_out(out, &world, &session, record.options, &executed)?;
    }
    let digest = executed.run.digest.to_hex();
    let mut drift = Vec::new();
    if executed.plugins != record.plugins {
        drift.push(format!("plugins differ: recorded {:?}, loaded {:?}", record.plugins, executed.plugins));
    }
    if let Some(difference) = stored.first_difference(&executed.run.timeline) {
        drift.push(format!("timeline.jsonl: {difference}"));
    }
    if stored.digest().to_hex() != record.digest {
        drift.push(format!(
            "timeline.jsonl hashes to {}, run.json records {}",
            stored.digest().to_hex(),
            record.digest
        ));
    }
    if stored_digest != record.digest {
        drift.push(format!("digest file says `{stored_digest}`, run.json records {}", record.digest));
    }
    if digest != record.digest {
        drift.push(format!("the re-run's digest is {digest}, run.json records {}", record.digest));
    }
    if json {
        println!("{}", json!({"digest": digest, "recorded": record.digest, "drift": drift}));
    } else if drift.is_empty() {
        println!("verified `{}`: no drift (digest {digest})", dir.display());
    } else {
        println!("drift in `{}`:", dir.display());
        for line in &drift {
            println!("  {line}");
        }
    }
    Ok(if drift.is_empty() { Outcome::Success } else { Outcome::Findings })
}

/// `d1 06:15` for a world time in seconds.
fn clock(seconds: i64) -> String {
    let day = seconds.div_euclid(86_400) + 1;
    let of_day = seconds.rem_euclid(86_400);
    format!("d{day} {:02}:{:02}", of_day / 3600, of_day % 3600 / 60)
}

fn print(world: &World, options: RunOptions, executed: &Executed, json: bool) {
    let run = &executed.run;
    if json {
        let body = json!({
            "digest": run.digest.to_hex(),
            "npcs": run.timeline.npcs,
            "options": options,
            "stats": run.stats,
            "warnings": run.warnings,
            "plugins": executed.reports,
        });
        println!("{body}");
        return;
    }
    println!(
        "world `{}` ({}): {} NPCs, {} ticks of {} s, seed {}",
        world.id,
        world.name,
        world.npcs.len(),
        options.ticks,
        options.seconds_per_tick,
        options.seed
    );
    for npc in &world.npcs {
        println!();
        println!("{} ({})", npc.id, if npc.role.is_empty() { "no role" } else { &npc.role });
        for entry in run.timeline.npcs.get(&npc.id).map_or(&[][..], Vec::as_slice) {
            println!(
                "  {}  {:<14} {:<6} {:<13} energy {:>5.1}  mood {:>6.1}",
                clock(entry.at_seconds),
                entry.activity_id.as_deref().unwrap_or("(idle)"),
                entry.tier,
                entry.detail.as_str(),
                entry.energy,
                entry.valence
            );
        }
    }
    println!();
    let s = &run.stats;
    println!(
        "{} simulations, {} decisions, {} activities started; plugin effects: {} applied, {} skipped",
        s.simulated, s.decisions, s.started, s.effects_applied, s.effects_skipped
    );
    for reason in &s.skip_reasons {
        println!("  skipped: {reason}");
    }
    if let Some(reports) = executed.reports.as_array() {
        for r in reports {
            let health = &r["health"];
            println!(
                "plugin {} ({}): {}; conditions {} ({} failed), effects {} ({} failed)",
                r["plugin_id"].as_str().unwrap_or_default(),
                r["tier"].as_str().unwrap_or_default(),
                if r["healthy"] == json!(true) {
                    "healthy".to_owned()
                } else {
                    format!("unhealthy: {}", r["unhealthy_because"].as_str().unwrap_or("?"))
                },
                health["conditions"]["total"],
                health["conditions"]["failures"],
                health["effects"]["total"],
                health["effects"]["failures"],
            );
        }
    }
    println!("digest {}", run.digest.to_hex());
}
