//! `polis strategy …`: feature vectors from bars, catalog checks and
//! replays with digests (seed 001, see docs/strategy.md).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use polis_strategy::bars::{BarReader, read_bars};
use polis_strategy::catalog::{Catalog, EntryState};
use polis_strategy::contract::IntentRecord;
use polis_strategy::features::{FeatureSet, Streams};
use polis_strategy::live::{Live, Reloaded};
use polis_strategy::plugins::{LoadedStrategies, engine_for};
use polis_strategy::replay::{ReplayConfig, builtin, first_difference, intents_jsonl, replay_engine, replay_parallel};
use polis_strategy::svg::equity_svg;

use crate::Outcome;
use crate::plugin_dirs::PluginDirs;
use crate::table::{Align, render};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print one `feature_vector.v3` JSON document per bar.
    ///
    /// The CSV has a header; the time column is named date, datetime,
    /// timestamp or time (any case) or is the unnamed first column; open,
    /// high, low, close and volume in any case; an optional symbol column.
    /// A feature is absent until the bar where TA-Lib first gives it.
    Features(FeaturesArgs),
    /// Check a strategy catalog and print every entry's state and reasons.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Replay bars through a catalog's enabled strategies: intents, an
    /// evaluation table and a digest.
    ///
    /// Independent strategies run in parallel (an overlay with the
    /// strategies it consumes); the intents and digest are those of one
    /// sequential run.
    ///
    /// `--out DIR` writes `intents.jsonl`, `metrics.json`, `digest` and
    /// `equity.svg`; `--verify DIR` re-runs and reports the first intent
    /// that differs from the stored `intents.jsonl`.
    Replay(ReplayArgs),
    /// The live loop: bars or feature vectors as JSON lines on stdin (or a
    /// NATS subject), intents as canonical JSON lines on stdout (or a NATS
    /// subject).
    ///
    /// The catalog reloads atomically on SIGHUP or when the file changes
    /// (checked before every line and twice a second); a catalog that does
    /// not parse leaves the old one running and says why on stderr. A bad
    /// line is reported with where it came from and skipped. A failing
    /// strategy degrades alone. The loop ends at the end of stdin, or on
    /// SIGINT or SIGTERM, and prints each strategy's counters.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The strategy catalog.
    #[arg(long)]
    catalog: PathBuf,
    /// Strategy plugins a catalog entry may name (`strategy_type` = the
    /// manifest's `policy_version`, `version` = its `plugin_version`).
    #[command(flatten)]
    plugins: PluginDirs,
    /// The bar length of incoming bars.
    #[arg(long, default_value = "1d")]
    timeframe: String,
    /// Read from NATS instead of stdin: the server's URL, such as
    /// `nats://127.0.0.1:4222`. Each message is one or more JSON lines.
    #[arg(long, requires = "subject")]
    nats: Option<String>,
    /// The NATS subject to read bars or feature vectors from.
    #[arg(long, requires = "nats")]
    subject: Option<String>,
    /// Publish intents to this NATS subject (one canonical JSON message
    /// each) instead of writing them to stdout.
    #[arg(long, requires = "nats")]
    out_subject: Option<String>,
    /// Serve the seed's metrics (`strategy_events_total`, …) in
    /// Prometheus's format at `http://ADDR/metrics`, such as
    /// `127.0.0.1:9464`.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// The OHLCV CSV file.
    #[arg(long)]
    bars: PathBuf,
    /// The symbol of a file without a symbol column.
    #[arg(long, default_value = "BARS")]
    symbol: String,
    /// The bar length written into every vector.
    #[arg(long, default_value = "1d")]
    timeframe: String,
    /// Features to compute, comma-separated (such as `close,ema_50,rsi_7`);
    /// the 17 defaults when absent.
    #[arg(long, value_delimiter = ',')]
    features: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Print each entry's state (enabled, off, disabled) and reasons.
    Check {
        /// `strategies.toml` or `.json`.
        file: PathBuf,
        /// Strategy plugins entries may name; each such entry's params are
        /// checked by its plugin.
        #[command(flatten)]
        plugins: PluginDirs,
    },
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The OHLCV CSV file.
    #[arg(long)]
    bars: PathBuf,
    /// The strategy catalog.
    #[arg(long)]
    catalog: PathBuf,
    /// The symbol of a file without a symbol column.
    #[arg(long, default_value = "BARS")]
    symbol: String,
    /// The bar length.
    #[arg(long, default_value = "1d")]
    timeframe: String,
    /// Trading cost in basis points of the notional traded.
    #[arg(long, default_value_t = 0.0)]
    cost_bps: f64,
    /// Starting equity of each strategy.
    #[arg(long, default_value_t = 100_000.0)]
    capital: f64,
    /// Write intents.jsonl, metrics.json, digest and equity.svg here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Compare with the intents stored in this directory by `--out`.
    #[arg(long)]
    verify: Option<PathBuf>,
    /// Strategy plugins a catalog entry may name (`strategy_type` = the
    /// manifest's `policy_version`, `version` = its `plugin_version`).
    #[command(flatten)]
    plugins: PluginDirs,
}

/// Runs a strategy command.
pub fn run(command: Command, json: bool) -> anyhow::Result<Outcome> {
    match command {
        Command::Features(args) => features(&args),
        Command::Catalog(CatalogCommand::Check { file, plugins }) => catalog_check(&file, &plugins, json),
        Command::Replay(args) => replay_command(&args, json),
        Command::Run(args) => live(&args),
    }
}

fn features(args: &FeaturesArgs) -> anyhow::Result<Outcome> {
    let set = if args.features.is_empty() {
        FeatureSet::default_set()
    } else {
        FeatureSet::new(&args.features)
            .map_err(|errors| anyhow::anyhow!(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))?
    };
    let file = File::open(&args.bars).with_context(|| format!("cannot open `{}`", args.bars.display()))?;
    let reader =
        BarReader::new(BufReader::new(file), &args.symbol).with_context(|| format!("`{}`", args.bars.display()))?;
    let mut streams = Streams::new(set);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for bar in reader {
        let bar = bar.with_context(|| format!("`{}`", args.bars.display()))?;
        let vector = streams.push(&bar).to_vector(&args.timeframe);
        serde_json::to_writer(&mut out, &vector)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(Outcome::Success)
}

/// The catalog in `file`, its plugin entries checked by `plugins`.
fn load_catalog(file: &Path, plugins: &LoadedStrategies) -> anyhow::Result<Catalog> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    Ok(plugins.check(&Catalog::load(&file.display().to_string(), &text)?))
}

/// The strategy plugins under `--plugin-dir`; each that fails to load is
/// reported on stderr (and an entry naming it is disabled).
fn load_strategies(dirs: &PluginDirs) -> anyhow::Result<Arc<LoadedStrategies>> {
    if dirs.plugin_dirs.is_empty() {
        return Ok(Arc::new(LoadedStrategies::none()));
    }
    dirs.check()?;
    let tiers = dirs.tiers.tiers()?;
    let roots: Vec<&Path> = dirs.plugin_dirs.iter().map(PathBuf::as_path).collect();
    let (plugins, reports) = LoadedStrategies::load(&roots, &tiers);
    for report in &reports {
        if let Err(reason) = &report.outcome {
            eprintln!("warning: strategy plugin in `{}` disabled: {reason}", report.source.display());
        }
    }
    Ok(Arc::new(plugins))
}

fn catalog_check(file: &Path, plugins: &PluginDirs, json: bool) -> anyhow::Result<Outcome> {
    let plugins = load_strategies(plugins)?;
    let catalog = load_catalog(file, &plugins)?;
    let disabled = catalog.entries.iter().any(|e| e.state == EntryState::Disabled);
    if json {
        println!("{}", serde_json::to_string_pretty(&catalog)?);
    } else {
        let rows: Vec<Vec<String>> = catalog
            .entries
            .iter()
            .map(|e| {
                let state = match e.state {
                    EntryState::Enabled => "enabled",
                    EntryState::Off => "off",
                    EntryState::Disabled => "disabled",
                };
                let mut notes = e.reasons.clone();
                notes.extend(e.warnings.iter().map(|w| format!("warning: {w}")));
                vec![
                    e.entry.strategy_id.clone(),
                    format!("{}@{}", e.entry.strategy_type, e.entry.version),
                    state.to_owned(),
                    e.warmup_bars.to_string(),
                    e.entry.symbols.join(","),
                    notes.join("; "),
                ]
            })
            .collect();
        let headers = [
            ("strategy", Align::Left),
            ("family", Align::Left),
            ("state", Align::Left),
            ("warm-up", Align::Right),
            ("symbols", Align::Left),
            ("reasons", Align::Left),
        ];
        print!("{}", render(&headers, &rows, 200));
    }
    Ok(if disabled { Outcome::Findings } else { Outcome::Success })
}

fn replay_command(args: &ReplayArgs, json: bool) -> anyhow::Result<Outcome> {
    let plugins = load_strategies(&args.plugins)?;
    let catalog = load_catalog(&args.catalog, &plugins)?;
    for e in catalog.entries.iter().filter(|e| e.state == EntryState::Disabled) {
        eprintln!("warning: `{}` is disabled: {}", e.entry.strategy_id, e.reasons.join("; "));
    }
    if catalog.enabled().next().is_none() {
        bail!("catalog `{}` has no enabled strategy", args.catalog.display());
    }
    let file = File::open(&args.bars).with_context(|| format!("cannot open `{}`", args.bars.display()))?;
    let bars = read_bars(BufReader::new(file), &args.symbol).with_context(|| format!("`{}`", args.bars.display()))?;
    let config = ReplayConfig {
        timeframe: args.timeframe.clone(),
        cost_bps: args.cost_bps,
        capital: args.capital,
        ..ReplayConfig::default()
    };
    let bar = crate::progress::bar(0, "bars × strategy groups");
    let advance = |done: u64, total: u64| {
        bar.set_length(total);
        bar.inc(done);
    };
    // Built-ins run in parallel groups; plugins in one engine, since a
    // sandboxed plugin's instances share one worker or module anyway.
    let result = if plugins.is_empty() {
        replay_parallel(&bars, &catalog, &config, &builtin, &advance)?
    } else {
        replay_engine(&bars, &mut engine_for(&catalog, config.breaker, &plugins), &config, &advance)?
    };
    bar.finish_and_clear();
    let metrics = serde_json::json!({
        "bars": result.bars,
        "digest": result.digest.to_hex(),
        "cost_bps": args.cost_bps,
        "capital": args.capital,
        "timeframe": args.timeframe,
        "strategies": result.evaluations,
    });
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
        let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
            let path = dir.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("cannot write `{}`", path.display()))
        };
        write("intents.jsonl", &intents_jsonl(&result.intents)?)?;
        write("metrics.json", format!("{}\n", serde_json::to_string_pretty(&metrics)?).as_bytes())?;
        write("digest", format!("{}\n", result.digest.to_hex()).as_bytes())?;
        let title = format!(
            "{} — equity by strategy",
            args.bars.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned())
        );
        write("equity.svg", equity_svg(&title, &result.equity, &result.intents).as_bytes())?;
    }
    let mut outcome = Outcome::Success;
    let mut verify_note = None;
    if let Some(dir) = &args.verify {
        let path = dir.join("intents.jsonl");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let stored: Vec<IntentRecord> = text
            .lines()
            .enumerate()
            .map(|(i, line)| serde_json::from_str(line).with_context(|| format!("`{}` line {}", path.display(), i + 1)))
            .collect::<anyhow::Result<_>>()?;
        verify_note = Some(match first_difference(&stored, &result.intents) {
            None => format!("verified: {} intents identical to `{}`", stored.len(), path.display()),
            Some((i, was, now)) => {
                outcome = Outcome::Findings;
                let show = |r: Option<&IntentRecord>| {
                    r.map_or_else(|| "(none)".to_owned(), |r| serde_json::to_string(r).unwrap_or_default())
                };
                format!("drift at intent {}:\n  stored: {}\n  replay: {}", i + 1, show(was), show(now))
            }
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&metrics)?);
    } else {
        let pct = |x: f64| format!("{:.2}%", x * 100.0);
        let rows: Vec<Vec<String>> = result
            .evaluations
            .iter()
            .map(|e| {
                vec![
                    e.strategy.clone(),
                    e.intents.to_string(),
                    pct(e.total_return),
                    format!("{:.2}", e.sharpe),
                    pct(e.max_drawdown),
                    pct(e.hit_rate),
                    format!("{:.2}", e.turnover),
                    pct(e.exposure),
                    e.counters.errors.to_string(),
                ]
            })
            .collect();
        let headers = [
            ("strategy", Align::Left),
            ("intents", Align::Right),
            ("return", Align::Right),
            ("sharpe", Align::Right),
            ("max dd", Align::Right),
            ("hit rate", Align::Right),
            ("turnover", Align::Right),
            ("exposure", Align::Right),
            ("errors", Align::Right),
        ];
        print!("{}", render(&headers, &rows, 60));
        println!("{} bars, {} intents, digest {}", result.bars, result.intents.len(), result.digest.to_hex());
        if let Some(dir) = &args.out {
            println!("wrote intents.jsonl, metrics.json, digest and equity.svg to `{}`", dir.display());
        }
    }
    if let Some(note) = verify_note {
        eprintln!("{note}");
    }
    Ok(outcome)
}

/// What the live loop's main thread is sent.
enum Input {
    /// One input line (a bar or a feature vector) and where it came from,
    /// such as `stdin line 3`.
    Line(String, String),
    /// Time passed: check whether the catalog changed.
    Tick,
    /// SIGHUP: reload the catalog.
    Hangup,
    /// The input ended (end of stdin, or SIGINT/SIGTERM).
    End,
    /// The input failed.
    Failed(String),
}

/// Where intents go.
enum Sink {
    Stdout(std::io::Stdout),
    Nats { client: async_nats::Client, subject: String },
}

/// What tells the loop the catalog changed: its modification time and its
/// length. The time alone misses a rewrite within one tick of the
/// filesystem's coarse clock (a few milliseconds).
fn modified(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    std::fs::metadata(path).and_then(|m| Ok((m.modified()?, m.len()))).ok()
}

/// How often the loop looks at the catalog file when no input arrives.
const RELOAD_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// How often `/metrics` is re-rendered while lines arrive.
const METRICS_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

fn live(args: &RunArgs) -> anyhow::Result<Outcome> {
    use std::sync::mpsc;
    let name = args.catalog.display().to_string();
    // Stamped before it is read and before the banner, so a change made
    // as soon as the banner shows (or while reading) is seen.
    let mut stamp = modified(&args.catalog);
    let text = std::fs::read_to_string(&args.catalog).with_context(|| format!("cannot read `{name}`"))?;
    let plugins = load_strategies(&args.plugins)?;
    let mut live = Live::with_plugins(&name, &text, &args.timeframe, polis_runtime::BreakerConfig::default(), plugins)?;
    live.measure_latency(args.metrics_listen.is_some());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let (tx, rx) = mpsc::channel::<Input>();

    // Signals and the reload tick, on the runtime.
    {
        use tokio::signal::unix::{SignalKind, signal};
        let tx = tx.clone();
        let mut hup = runtime.block_on(async { signal(SignalKind::hangup()) })?;
        let mut term = runtime.block_on(async { signal(SignalKind::terminate()) })?;
        let mut int = runtime.block_on(async { signal(SignalKind::interrupt()) })?;
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_POLL);
            loop {
                let message = tokio::select! {
                    _ = tick.tick() => Input::Tick,
                    _ = hup.recv() => Input::Hangup,
                    _ = term.recv() => Input::End,
                    _ = int.recv() => Input::End,
                };
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
    }

    let metrics = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    if let Some(addr) = args.metrics_listen {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("cannot listen on {addr} for `/metrics`"))?;
        let bound = listener.local_addr()?;
        let shared = metrics.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let shared = shared.clone();
                async move {
                    let body = shared.lock().map(|m| m.clone()).unwrap_or_default();
                    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
                }
            }),
        );
        runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("`/metrics` stopped: {e}");
            }
        });
        eprintln!("metrics on http://{bound}/metrics");
    }

    let (source, mut sink) = match (&args.nats, &args.subject) {
        (Some(url), Some(subject)) => {
            let client = runtime
                .block_on(async_nats::connect(url.as_str()))
                .with_context(|| format!("cannot connect to NATS at `{url}`"))?;
            let mut subscriber = runtime
                .block_on(client.subscribe(subject.clone()))
                .with_context(|| format!("cannot subscribe to `{subject}` on `{url}`"))?;
            runtime.block_on(client.flush()).with_context(|| format!("NATS at `{url}`"))?;
            let tx = tx.clone();
            runtime.spawn(async move {
                use futures_util::StreamExt;
                let mut n = 0u64;
                while let Some(message) = subscriber.next().await {
                    n += 1;
                    let Ok(text) = String::from_utf8(message.payload.to_vec()) else {
                        let _ = tx.send(Input::Failed(format!("NATS message {n} is not UTF-8")));
                        continue;
                    };
                    // A message may carry several JSON lines.
                    for line in text.lines() {
                        if tx.send(Input::Line(line.to_owned(), format!("NATS message {n}"))).is_err() {
                            return;
                        }
                    }
                }
                let _ = tx.send(Input::End);
            });
            let sink = match &args.out_subject {
                Some(out) => Sink::Nats { client, subject: out.clone() },
                None => Sink::Stdout(std::io::stdout()),
            };
            (format!("NATS subject `{subject}` on `{url}`"), sink)
        }
        _ => {
            let tx = tx.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for (i, line) in std::io::stdin().lock().lines().enumerate() {
                    let message = match line {
                        Ok(line) => Input::Line(line, format!("stdin line {}", i + 1)),
                        Err(e) => Input::Failed(format!("cannot read stdin: {e}")),
                    };
                    if tx.send(message).is_err() {
                        return;
                    }
                }
                let _ = tx.send(Input::End);
            });
            ("stdin".to_owned(), Sink::Stdout(std::io::stdout()))
        }
    };
    drop(tx);
    let render = |live: &Live| {
        if let Ok(mut m) = metrics.lock() {
            *m = polis_strategy::metrics::render(live.catalog(), live.engine());
        }
    };
    render(&live);
    eprintln!(
        "running `{name}`: {} enabled strategies; reading JSON lines from {source}",
        live.catalog().enabled().count()
    );
    let mut rendered = std::time::Instant::now();
    let mut hangup = false;
    while let Ok(message) = rx.recv() {
        let (line, place) = match message {
            Input::Line(line, place) => (line, place),
            Input::Tick => (String::new(), String::new()),
            Input::Hangup => {
                hangup = true;
                (String::new(), String::new())
            }
            Input::End => break,
            Input::Failed(e) => {
                eprintln!("{e}");
                continue;
            }
        };
        let changed = modified(&args.catalog);
        if std::mem::take(&mut hangup) || changed != stamp {
            stamp = changed;
            match std::fs::read_to_string(&args.catalog)
                .map_err(|e| e.to_string())
                .and_then(|t| live.reload(&name, &t).map_err(|e| e.to_string()))
            {
                Ok(Reloaded::Swapped) => {
                    eprintln!("reloaded `{name}`: {} enabled", live.catalog().enabled().count());
                }
                Ok(Reloaded::Unchanged) => {}
                Err(e) => eprintln!("reload refused, the old catalog keeps running: {e}"),
            }
        }
        if !line.trim().is_empty() {
            match live.on_line(&line) {
                Ok(intents) => emit(&runtime, &mut sink, &intents)?,
                Err(e) => eprintln!("{place}: {e}"),
            }
        }
        if args.metrics_listen.is_some() && rendered.elapsed() >= METRICS_EVERY {
            render(&live);
            rendered = std::time::Instant::now();
        }
    }
    render(&live);
    if let Sink::Nats { client, .. } = &sink {
        runtime.block_on(client.flush()).context("cannot flush intents to NATS")?;
    }
    for (key, c) in live.engine().counters() {
        eprintln!(
            "{key}: {} events, {} intents, {} errors, breaker opened {} times",
            c.events, c.intents, c.errors, c.circuit_opened
        );
    }
    runtime.shutdown_background();
    Ok(Outcome::Success)
}

/// Writes intents as canonical JSON: a line each on stdout, or a message
/// each on NATS.
fn emit(runtime: &tokio::runtime::Runtime, sink: &mut Sink, intents: &[IntentRecord]) -> anyhow::Result<()> {
    if intents.is_empty() {
        return Ok(());
    }
    match sink {
        Sink::Stdout(stdout) => {
            let mut out = stdout.lock();
            for intent in intents {
                out.write_all(&polis_core::canonical::to_canonical_vec(intent)?)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Sink::Nats { client, subject } => {
            for intent in intents {
                let bytes = polis_core::canonical::to_canonical_vec(intent)?;
                runtime
                    .block_on(client.publish(subject.clone(), bytes.into()))
                    .with_context(|| format!("cannot publish to `{subject}`"))?;
            }
            runtime.block_on(client.flush()).with_context(|| format!("cannot flush `{subject}`"))?;
        }
    }
    Ok(())
}
