//! `polis payments …`: SimCash-compatible payment policies.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use polis_payments::dsl::{self, Limits, Report};

use crate::Outcome;
use crate::service::DbArgs;

/// Payment policies in SimCash's decision-tree DSL, and SimCash scenarios.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate policy files before they run, printing every problem with
    /// its JSON path.
    ///
    /// Checks duplicate node ids (across trees), tree depth (at most 100),
    /// unknown fields and fields not available in a tree, unknown
    /// parameters, literal zero denominators, unreachable actions, actions
    /// a tree cannot take, action parameters and malformed nodes. Keys
    /// SimCash ignores are warnings. Exits 1 when any file has errors.
    Validate(ValidateArgs),
    /// Run a SimCash scenario file (YAML or JSON) and report what each
    /// bank's policy cost.
    ///
    /// Prints per-agent costs by component (integer cents, summed over the
    /// whole run), settlement rate, value-weighted delay and peak liquidity
    /// used; `--json` prints the same as a document. `--out DIR` also writes
    /// `events.jsonl` (every arrival, decision with its path through the
    /// tree, settlement and cost), `costs.csv` and `plot.svg`. Keys SimCash
    /// ignores are warned about on stderr (`--strict` refuses them).
    Simulate(SimulateArgs),
    /// Policies stored per agent in the store's `agent_policies` table,
    /// which a scenario reads with `policy: {type: FromDatabase}`.
    #[command(subcommand)]
    Policies(PoliciesCommand),
}

/// `polis payments policies …`.
#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Validate a policy and store it for an agent, replacing its last one.
    Put {
        /// The agent (`agents[].id` in a scenario).
        agent_id: String,
        /// The policy JSON file; `-` reads standard input.
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print an agent's stored policy JSON.
    Get {
        /// The agent.
        agent_id: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List stored policies: agent, digest, who stored it and when.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Arguments of `polis payments simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The scenario file, in SimCash's format.
    config: PathBuf,
    /// Look for `FromJson` `json_path` files here first (then the working
    /// directory, then the scenario's directory).
    #[arg(long, value_name = "DIR")]
    policy_root: Option<PathBuf>,
    /// Refuse keys SimCash would ignore instead of warning about them.
    #[arg(long)]
    strict: bool,
    /// Apply what SimCash's YAML path drops: each policy's `params`, each
    /// agent's `posted_collateral` and `collateral_haircut`. Results then
    /// differ from SimCash's on purpose.
    #[arg(long)]
    honour_all: bool,
    /// The store `FromDatabase` policies are read from (`sqlite://FILE` or
    /// `postgres://…`); without it they are refused. `FromUrl` policies are
    /// fetched over HTTP(S), at most 1 MiB within 10 seconds.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Run the scenario once per value of a policy parameter (set in every
    /// policy that declares it) or a scenario path (`agents[0].opening_balance`),
    /// in parallel: `NAME=START..END:STEP`, such as `urgency_threshold=1..10:1`.
    /// Prints a table; `--out DIR` writes `sweep.csv` and `sweep.svg`.
    #[arg(long, value_name = "NAME=A..B:STEP")]
    sweep: Option<String>,
    /// Write `events.jsonl`, `costs.csv` and `plot.svg` into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Arguments of `polis payments validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Policy JSON files; `-` reads standard input.
    #[arg(required = true, value_name = "FILE|-")]
    files: Vec<PathBuf>,
}

/// Runs a `polis payments` command.
pub fn run(command: Command, json: bool) -> anyhow::Result<Outcome> {
    match command {
        Command::Validate(args) => validate(&args, json),
        Command::Simulate(args) => simulate(&args, json),
        Command::Policies(command) => policies(command, json),
    }
}

/// How long and how much a `FromUrl` fetch may take.
const URL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `FromDatabase` through the store, `FromUrl` over HTTP, for one command.
struct Fetcher {
    runtime: tokio::runtime::Runtime,
    store: Option<polis_store::Store>,
}

impl Fetcher {
    fn new(database_url: Option<&str>) -> anyhow::Result<Fetcher> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let store = match database_url {
            Some(url) => Some(runtime.block_on(open_store(url))?),
            None => None,
        };
        Ok(Fetcher { runtime, store })
    }
}

impl polis_payments::sim::PolicyFetcher for Fetcher {
    fn stored(&self, agent_id: &str) -> Result<Option<String>, String> {
        let store = self.store.as_ref().ok_or("no store was given (`--database-url`)")?;
        let row = self.runtime.block_on(store.agent_policy(agent_id)).map_err(|e| e.to_string())?;
        Ok(row.map(|r| r.policy_json))
    }

    fn url(&self, url: &str) -> Result<String, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(URL_TIMEOUT)).build().into();
        let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
        let cap = Limits::default().max_bytes as u64;
        response.body_mut().with_config().limit(cap).read_to_string().map_err(|e| e.to_string())
    }
}

async fn open_store(url: &str) -> anyhow::Result<polis_store::Store> {
    polis_store::Store::connect(url, &polis_store::StoreConfig::default())
        .await
        .with_context(|| format!("cannot open the store at `{url}`"))
}

fn policies(command: PoliciesCommand, json: bool) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match command {
        PoliciesCommand::Put { agent_id, file, db } => {
            let text = read_policy(&file)?;
            let checked = match dsl::compile(&text, &BTreeMap::new()) {
                Ok(checked) => checked,
                Err(report) => {
                    print_report(&file.display().to_string(), &report, None);
                    anyhow::bail!("`{}` is not a valid policy; nothing was stored", file.display());
                }
            };
            let policy = polis_store::AgentPolicy {
                agent_id: agent_id.clone(),
                policy_sha256: polis_core::canonical::Digest::of_bytes(text.as_bytes()).to_hex(),
                policy_json: text,
                updated_by: "cli".into(),
                updated_at_ms: now_ms(),
            };
            runtime.block_on(async {
                open_store(&db.database_url).await?.put_agent_policy(&policy).await.map_err(anyhow::Error::from)
            })?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"agent_id": agent_id, "policy_id": checked.policy.policy_id, "policy_sha256": policy.policy_sha256})
                );
            } else {
                println!(
                    "stored policy `{}` for `{agent_id}` (sha256 {})",
                    checked.policy.policy_id, policy.policy_sha256
                );
            }
            Ok(Outcome::Success)
        }
        PoliciesCommand::Get { agent_id, db } => {
            let row = runtime.block_on(async {
                open_store(&db.database_url).await?.agent_policy(&agent_id).await.map_err(anyhow::Error::from)
            })?;
            let row = row.with_context(|| format!("no policy is stored for agent `{agent_id}`"))?;
            println!("{}", row.policy_json);
            Ok(Outcome::Success)
        }
        PoliciesCommand::List { db } => {
            let rows = runtime.block_on(async {
                open_store(&db.database_url).await?.agent_policies().await.map_err(anyhow::Error::from)
            })?;
            if json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|r| serde_json::json!({"agent_id": r.agent_id, "policy_sha256": r.policy_sha256, "updated_by": r.updated_by, "updated_at_ms": r.updated_at_ms}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for r in &rows {
                    println!("{:<24} {} {} {}", r.agent_id, r.policy_sha256, r.updated_by, r.updated_at_ms);
                }
            }
            Ok(Outcome::Success)
        }
    }
}

/// The wall clock, for the record of who stored a policy when (it decides
/// nothing).
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn simulate(args: &SimulateArgs, json: bool) -> anyhow::Result<Outcome> {
    use polis_payments::sim::{self, Options, Resolver};
    let text = {
        let mut bytes = Vec::new();
        let file =
            std::fs::File::open(&args.config).with_context(|| format!("cannot open `{}`", args.config.display()))?;
        file.take(sim::config::MAX_SCENARIO_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read `{}`", args.config.display()))?;
        String::from_utf8(bytes).with_context(|| format!("`{}` is not UTF-8 text", args.config.display()))?
    };
    let resolver = Resolver {
        policy_root: args.policy_root.clone(),
        working_dir: std::env::current_dir().ok(),
        config_dir: args
            .config
            .parent()
            .map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() }),
    };
    let fetcher = std::sync::Arc::new(Fetcher::new(args.database_url.as_deref())?);
    let options = Options {
        strict: args.strict,
        // A sweep writes its table, not each run's event log.
        record_events: args.out.is_some() && args.sweep.is_none(),
        resolver,
        honour_all: args.honour_all,
        fetcher: Some(fetcher),
        sweep: Default::default(),
    };
    if let Some(spec) = &args.sweep {
        return sweep(args, &text, spec, &options, json);
    }
    let result = sim::simulate(&text, &options, &dsl::PolicyCache::new())
        .with_context(|| format!("cannot simulate `{}`", args.config.display()))?;
    for warning in &result.warnings {
        eprintln!("warning: {warning}");
    }
    let report = sim::Report::of(&result);
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
        let mut events = String::new();
        for event in &result.outcome.events {
            events.push_str(&serde_json::to_string(event)?);
            events.push('\n');
        }
        let write = |name: &str, body: &str| -> anyhow::Result<()> {
            let path = dir.join(name);
            std::fs::write(&path, body).with_context(|| format!("cannot write `{}`", path.display()))
        };
        write("events.jsonl", &events)?;
        write("costs.csv", &sim::costs_csv(&report))?;
        write("plot.svg", &sim::plot::svg(&result.outcome.ticks, &args.config.display().to_string()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(Outcome::Success);
    }
    println!(
        "{:<16} {:>12} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10} {:>9} {:>8} {:>12}",
        "agent",
        "total",
        "overdraft",
        "delay",
        "deadline",
        "eod",
        "split",
        "liquidity",
        "settled",
        "delay",
        "peak used"
    );
    for a in &report.agents {
        let c = &a.costs;
        println!(
            "{:<16} {:>12} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10} {:>8.1}% {:>8.2} {:>12}",
            a.id,
            a.total_cost,
            c.overdraft,
            c.delay,
            c.deadline_penalty,
            c.eod_penalty,
            c.split_friction,
            c.liquidity_opportunity + c.collateral,
            a.settlement_rate * 100.0,
            a.value_weighted_delay,
            a.peak_liquidity_used
        );
    }
    let s = &report.system;
    println!(
        "system: total cost {} cents; {} of {} payments settled ({:.1}%)",
        s.total_cost,
        s.settlements,
        s.arrivals,
        s.settlement_rate * 100.0
    );
    Ok(Outcome::Success)
}

fn sweep(
    args: &SimulateArgs,
    text: &str,
    spec: &str,
    options: &polis_payments::sim::Options,
    json: bool,
) -> anyhow::Result<Outcome> {
    use polis_payments::sim::sweep;
    let spec = sweep::parse(spec).map_err(|e| anyhow::anyhow!("--sweep {e}"))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bar = crate::progress::bar(spec.values.len() as u64, "runs");
    let points = sweep::run(text, &spec, options, &dsl::PolicyCache::new(), threads, &|| bar.inc(1))
        .with_context(|| format!("cannot sweep `{}`", args.config.display()))?;
    bar.finish_and_clear();
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
        for (name, body) in [("sweep.csv", sweep::csv(&points)), ("sweep.svg", sweep::svg(&points, &spec.name))] {
            let path = dir.join(name);
            std::fs::write(&path, body).with_context(|| format!("cannot write `{}`", path.display()))?;
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"name": spec.name, "points": points}))?);
        return Ok(Outcome::Success);
    }
    println!("{:>14} {:>14} {:>10}", spec.name, "total cost", "settled");
    for p in &points {
        println!(
            "{:>14} {:>14} {:>9.1}%",
            p.value,
            p.report.system.total_cost,
            p.report.system.settlement_rate * 100.0
        );
    }
    Ok(Outcome::Success)
}

fn validate(args: &ValidateArgs, json: bool) -> anyhow::Result<Outcome> {
    let mut all_ok = true;
    let mut results = Vec::new();
    for file in &args.files {
        let text = read_policy(file)?;
        let name = file.display().to_string();
        let (report, compiled) = match dsl::compile(&text, &BTreeMap::new()) {
            Ok(checked) => {
                let report = Report { errors: Vec::new(), warnings: checked.warnings.clone() };
                (report, Some(checked))
            }
            Err(report) => (report, None),
        };
        all_ok &= report.is_ok();
        if json {
            results.push(serde_json::json!({
                "file": name,
                "valid": report.is_ok(),
                "policy_id": compiled.as_ref().map(|c| c.policy.policy_id.clone()),
                "digest": compiled.as_ref().map(|c| c.digest.to_hex()),
                "errors": report.errors,
                "warnings": report.warnings,
            }));
        } else {
            print_report(&name, &report, compiled.as_ref());
        }
    }
    if json {
        let body = if results.len() == 1 { results.remove(0) } else { serde_json::Value::Array(results) };
        println!("{}", serde_json::to_string_pretty(&body)?);
    }
    Ok(if all_ok { Outcome::Success } else { Outcome::Findings })
}

fn print_report(name: &str, report: &Report, compiled: Option<&dsl::Checked>) {
    match compiled {
        Some(c) => println!("{name}: valid (policy `{}`, sha256 {})", c.policy.policy_id, c.digest.to_hex()),
        None => println!("{name}: {} error(s)", report.errors.len()),
    }
    for e in &report.errors {
        println!("  error   {e}");
    }
    for w in &report.warnings {
        println!("  warning {w}");
    }
}

/// Reads a policy file or stdin, one byte past the DSL's size limit so that
/// validation, not the reader, reports an oversized policy.
fn read_policy(path: &Path) -> anyhow::Result<String> {
    let cap = Limits::default().max_bytes as u64 + 1;
    let mut bytes = Vec::new();
    let reader: Box<dyn std::io::Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?)
    };
    reader.take(cap).read_to_end(&mut bytes).with_context(|| format!("cannot read `{}`", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("`{}` is not UTF-8 text", path.display()))
}
