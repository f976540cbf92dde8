//! `polis serve`, `polis worker` and `polis ingest`: polis as a service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use polis_plugins::approval::ApprovalGate;
use polis_rebalance::gbfs::Feed;
use polis_rebalance::snapshot::SnapshotOptions;
use polis_server::extract::Auth;
use polis_server::plugins::{approval_gate, refresh_approvals};
use polis_server::worker::WorkerConfig;
use polis_server::{AppState, Core, ServiceConfig};
use polis_store::{Store, StoreConfig};
use tokio::sync::watch;

use crate::Outcome;
use crate::plugin_dirs::PluginDirs;

/// Where the store is.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// The database: `sqlite://FILE` (or a bare file path; created if
    /// missing) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "POLIS_DATABASE_URL", default_value = "sqlite://polis.db")]
    pub database_url: String,
}

/// How workers behave.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Worker tasks in this process.
    #[arg(long, env = "POLIS_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Seconds a claim lasts without a heartbeat; after that another worker
    /// may take the run over.
    #[arg(long, env = "POLIS_LEASE_SECONDS", default_value_t = 30.0)]
    pub lease_seconds: f64,
    /// Seconds a policy may run before the run fails with `run.timeout`.
    #[arg(long, env = "POLIS_TIMEOUT_SECONDS", default_value_t = 10.0)]
    pub timeout_seconds: f64,
    /// Fault injection for drills and tests: wait this many milliseconds
    /// after each claim, as a slow plugin would.
    #[arg(long, default_value_t = 0, hide = true)]
    pub hold_after_claim_ms: u64,
    /// Plugins the workers may run besides the built-ins.
    #[command(flatten)]
    pub plugins: PluginDirs,
    /// Do not seed polis's five policy packs into an empty store: for a
    /// store that will hold your own packs under the same keys and
    /// versions, as packs published from the original system do.
    #[arg(long, env = "POLIS_NO_BUILTIN_PACKS")]
    pub no_builtin_packs: bool,
    /// Run a plugin version only once an admin has approved it with the
    /// files it holds (`polis plugins approve ID`, or
    /// `POST /api/plugins/{id}/approve`); until then it is listed as
    /// `pending_approval` and its runs are refused. A version approved with
    /// other files is refused, naming both digests. Built-ins always run.
    #[arg(long, env = "POLIS_REQUIRE_APPROVAL")]
    pub require_approval: bool,
    /// The strategy catalog `GET /api/strategy/catalog` and the console's
    /// strategy page show (`strategies.toml` or `.json`).
    #[arg(long, env = "POLIS_STRATEGY_CATALOG")]
    pub strategy_catalog: Option<PathBuf>,
    /// Let behaviour plugins be granted `admin:routes` (the original's
    /// `enable_admin_plugins`); without it a manifest asking for it is
    /// warned about and the permission withheld.
    #[arg(long, env = "POLIS_ENABLE_ADMIN_PLUGINS")]
    pub enable_admin_plugins: bool,
}

impl WorkerArgs {
    /// The domains' settings: the built-ins and the plugin directories.
    fn domain_settings(
        &self,
        rebalance: polis_server::domains::rebalance::Settings,
        approvals: Option<&Arc<ApprovalGate>>,
    ) -> anyhow::Result<polis_server::domains::Settings> {
        self.plugins.check()?;
        let tiers = if self.plugins.plugin_dirs.is_empty() {
            None
        } else {
            let mut tiers = self.plugins.tiers.tiers()?;
            tiers.approval = approvals.cloned();
            Some(tiers)
        };
        Ok(polis_server::domains::Settings {
            plugin_dirs: self.plugins.plugin_dirs.clone(),
            // Built only when there are plugins to load: the wasm engine
            // and process sandboxes are not started for nothing.
            tiers,
            rebalance,
            packs: polis_server::domains::packs::Settings { seed_builtin: !self.no_builtin_packs },
            strategy: polis_server::domains::strategy::Settings {
                catalog: self
                    .strategy_catalog
                    .as_ref()
                    .map(|path| {
                        std::fs::read_to_string(path)
                            .map(|text| (path.display().to_string(), text))
                            .with_context(|| format!("cannot read `--strategy-catalog {}`", path.display()))
                    })
                    .transpose()?,
            },
            behavior: polis_server::domains::behavior::Settings { admin_plugins: self.enable_admin_plugins },
        })
    }

    /// The approval gate, holding the store's approvals, when approval is
    /// required.
    async fn approvals(&self, store: &polis_store::Store) -> anyhow::Result<Option<Arc<ApprovalGate>>> {
        if !self.require_approval {
            return Ok(None);
        }
        Ok(Some(approval_gate(store).await.context("cannot read the plugin approvals")?))
    }

    fn configs(&self, prefix: &str) -> anyhow::Result<Vec<WorkerConfig>> {
        let lease = Duration::try_from_secs_f64(self.lease_seconds).context("invalid `--lease-seconds`")?;
        let timeout = Duration::try_from_secs_f64(self.timeout_seconds).context("invalid `--timeout-seconds`")?;
        Ok((0..self.workers)
            .map(|n| WorkerConfig {
                lease,
                timeout,
                hold_after_claim: Duration::from_millis(self.hold_after_claim_ms),
                ..WorkerConfig::named(prefix, n)
            })
            .collect())
    }
}

/// `polis serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Address to listen on.
    #[arg(long, env = "POLIS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bearer tokens granting read access, comma-separated. A token may be
    /// given as `sha256:` and the hex SHA-256 of the token (`printf %s
    /// "$TOKEN" | sha256sum`), so the settings file need not hold it.
    #[arg(long, env = "POLIS_READ_TOKENS", value_delimiter = ',')]
    read_token: Vec<String>,
    /// Bearer tokens granting admin access (ingest, plugin management,
    /// cancelling anyone's run), comma-separated; `sha256:HEX` as for
    /// `--read-token`.
    #[arg(long, env = "POLIS_ADMIN_TOKENS", value_delimiter = ',')]
    admin_token: Vec<String>,
    /// Run requests a minute each token may make on the run routes
    /// (`/api/runs`, `/api/policy/run`, `/api/strategy/replays`); more are
    /// answered 429 with `Retry-After`. By default no limit.
    #[arg(long, env = "POLIS_RUN_RATE_LIMIT")]
    run_rate_limit: Option<u32>,
    /// Accept requests without a token, as admin. For a laptop only.
    #[arg(long, env = "POLIS_INSECURE_LOCAL")]
    insecure_local: bool,
    /// Largest request body, bytes.
    #[arg(long, env = "POLIS_BODY_LIMIT", default_value_t = 64 * 1024)]
    body_limit: usize,
    /// Seconds an allow-list or snapshot lookup is reused before the store
    /// is asked again. Changes this process makes are seen at once; changes
    /// other processes make are seen at most this late. 0 turns the lookup
    /// caches off. Affects only freshness, never what a policy decides.
    #[arg(long, env = "POLIS_LOOKUP_TTL_SECONDS", default_value_t = 2.0)]
    lookup_ttl_seconds: f64,
    #[command(flatten)]
    workers: WorkerArgs,
}

/// `polis worker`.
#[derive(Debug, Args)]
pub struct WorkerCommand {
    #[command(flatten)]
    db: DbArgs,
    /// Serve Prometheus `/metrics` (this process's runs and plugin
    /// latencies, and the store's run counts and queue depth) and `/healthz`
    /// on this address, without a token. By default no listener.
    #[arg(long, env = "POLIS_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    workers: WorkerArgs,
}

/// `polis ingest …`.
#[derive(Debug, Subcommand)]
pub enum IngestCommand {
    /// Store every snapshot of a GBFS feed directory or archive, with its
    /// serving view `sv`, for the API and workers to use.
    Gbfs(IngestArgs),
}

/// `polis ingest gbfs`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// A GBFS feed directory, an archive directory, or an archive's
    /// `station_status.csv[.gz]`.
    #[arg(value_name = "DIR|CSV")]
    path: PathBuf,
    #[command(flatten)]
    db: DbArgs,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("POLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn open(db: &DbArgs) -> anyhow::Result<Store> {
    Store::connect(&db.database_url, &StoreConfig::default())
        .await
        .with_context(|| format!("cannot open the store at `{}`", db.database_url))
}

/// Turns true on Ctrl-C or SIGTERM.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    let _ = tx.send(true);
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        let _ = tx.send(true);
    });
    rx
}

/// `polis serve`: the API and in-process workers.
pub fn serve(args: ServeArgs) -> anyhow::Result<Outcome> {
    init_logs();
    runtime()?.block_on(async move {
        let store = open(&args.db).await?;
        let auth =
            Auth { read_tokens: args.read_token, admin_tokens: args.admin_token, insecure_local: args.insecure_local };
        auth.check().map_err(|e| anyhow::anyhow!("`--read-token`/`--admin-token`: {e}"))?;
        if auth.read_tokens.is_empty() && auth.admin_tokens.is_empty() && !auth.insecure_local {
            tracing::warn!(
                "no tokens configured and --insecure-local not set: every API call will be refused with 401"
            );
        }
        let lookup_ttl =
            Duration::try_from_secs_f64(args.lookup_ttl_seconds).context("invalid `--lookup-ttl-seconds`")?;
        let config = ServiceConfig {
            body_limit: args.body_limit,
            run_rate_per_minute: args.run_rate_limit,
            ..ServiceConfig::default()
        };
        let rebalance = polis_server::domains::rebalance::Settings { lookup_ttl, ..Default::default() };
        let approvals = args.workers.approvals(&store).await?;
        let settings = args.workers.domain_settings(rebalance, approvals.as_ref())?;
        let mut core = Core::new(store.clone(), auth, config);
        core.approvals.clone_from(&approvals);
        let domains = polis_server::domains::all(&core, &settings).context("cannot load the domains")?;
        let state = AppState::start(core, domains).await.context("cannot prepare the service")?;
        let shutdown = shutdown_signal();
        let mut tasks = Vec::new();
        if let Some(gate) = approvals {
            tasks.push(tokio::spawn(refresh_approvals(store.clone(), gate, shutdown.clone())));
        }
        for config in args.workers.configs("serve")? {
            tasks.push(tokio::spawn(polis_server::worker::run(state.clone(), config, shutdown.clone())));
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener.local_addr()?;
        tracing::info!(addr = %local, workers = tasks.len(), "polis serve listening");
        // Scripts starting the server read this line to learn the port.
        println!("listening on http://{local}");
        let mut stop = shutdown.clone();
        axum::serve(listener, polis_server::app(state))
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .context("server failed")?;
        for task in tasks {
            let _ = task.await;
        }
        store.close().await;
        Ok(Outcome::Success)
    })
}

/// `polis worker`: workers only.
pub fn worker(args: WorkerCommand) -> anyhow::Result<Outcome> {
    init_logs();
    runtime()?.block_on(async move {
        let store = open(&args.db).await?;
        let approvals = args.workers.approvals(&store).await?;
        let settings = args.workers.domain_settings(Default::default(), approvals.as_ref())?;
        // A worker serves no API, so it accepts no tokens.
        let mut core = Core::new(store.clone(), Auth::default(), ServiceConfig::default());
        core.approvals.clone_from(&approvals);
        let domains = polis_server::domains::all(&core, &settings).context("cannot load the domains")?;
        let state = AppState::start(core, domains).await.context("cannot sync the plugin registries")?;
        let metrics = state.core.metrics.clone();
        let shutdown = shutdown_signal();
        let configs = args.workers.configs("worker")?;
        let listener = match args.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for metrics"))?,
            ),
            None => None,
        };
        tracing::info!(workers = configs.len(), "polis worker started");
        println!("worker started");
        let mut tasks: Vec<_> = configs
            .into_iter()
            .map(|c| tokio::spawn(polis_server::worker::run(state.clone(), c, shutdown.clone())))
            .collect();
        if let Some(gate) = approvals {
            // Approvals are made through the API's process; a worker learns
            // of them from the store.
            tasks.push(tokio::spawn(refresh_approvals(store.clone(), gate, shutdown.clone())));
        }
        if let Some(listener) = listener {
            let local = listener.local_addr()?;
            tracing::info!(addr = %local, "worker metrics listening");
            // Scripts read this line to learn the port.
            println!("metrics listening on http://{local}");
            let app = polis_server::ops::worker_metrics_router(store.clone(), metrics);
            let mut stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "worker metrics server failed");
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        store.close().await;
        Ok(Outcome::Success)
    })
}

/// `polis ingest …`.
pub fn ingest(command: IngestCommand, json: bool) -> anyhow::Result<Outcome> {
    let IngestCommand::Gbfs(args) = command;
    let feed = Feed::open(&args.path)?;
    runtime()?.block_on(async move {
        let store = open(&args.db).await?;
        let counts = polis_server::domains::rebalance::ingest::ingest_feed(
            &store,
            &feed,
            SnapshotOptions::default(),
            polis_server::now_ms(),
        )
            .await
            .context("ingest failed")?;
        store.close().await;
        if json {
            println!(
                "{}",
                serde_json::json!({"system_id": feed.system_id, "inserted": counts.inserted, "skipped": counts.skipped, "stations": counts.stations})
            );
        } else {
            println!(
                "{}: stored {} snapshots ({} already present), {} stations, in {}",
                feed.system_id, counts.inserted, counts.skipped, counts.stations, args.db.database_url
            );
        }
        Ok(Outcome::Success)
    })
}
