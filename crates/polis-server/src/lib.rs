//! polis as a service: the HTTP API over a [`polis_store::Store`], the
//! workers that compute jobs, the console, and the domain seam every one of
//! polis's systems plugs into.
//!
//! - [`Core`] is what every part shares (store, auth, settings, metrics);
//!   [`AppState`] adds the registered [`domain::Domain`]s.
//! - [`app`] builds the axum router: the core's routers (the generic run
//!   path in [`runs`], plugin health in [`plugins`], operations in [`ops`],
//!   the console shell in [`console`]) merged with one router per domain,
//!   with a body size limit and request tracing.
//! - [`worker`] claims jobs of every kind the registered domains handle,
//!   under a lease, and runs them through their domain; `polis serve` runs
//!   workers in-process, `polis worker` runs them alone.
//! - [`domains`] is the registration list: each domain's module lives
//!   there ([`domains::rebalance`], …) and nothing else names one.
//! - [`error::AppError`] is the one error type; every client error names
//!   the field at fault and server errors are logged, never leaked.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use polis_server::{AppState, ServiceConfig, extract::Auth};
//! use tower::ServiceExt;
//!
//! let store = polis_store::Store::connect("sqlite::memory:", &Default::default()).await.unwrap();
//! let auth = Auth { insecure_local: true, ..Auth::default() };
//! let state = AppState::with_builtins(store, auth, ServiceConfig::default()).await.unwrap();
//! let request = axum::http::Request::get("/healthz").body(axum::body::Body::empty()).unwrap();
//! let response = polis_server::app(state).oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # });
//! ```
#![deny(missing_docs)]

pub mod console;
pub mod domain;
pub mod domains;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod plugins;
pub mod runs;
pub mod worker;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::FromRef;
use polis_store::{PluginRecord, Store, StoreError};
use tokio::sync::Notify;

use crate::domain::{ContractService, Domain};
use crate::extract::Auth;
use crate::metrics::Metrics;

/// Settings of the service's core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Largest request body, bytes. By default 64 KiB.
    pub body_limit: usize,
    /// Largest body of a run submitted with its input (`POST /api/runs`),
    /// bytes. By default 16 MiB.
    pub input_limit: usize,
    /// Run requests a minute each token may make ([`limits`]); `None`, the
    /// default, sets no limit.
    pub run_rate_per_minute: Option<u32>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { body_limit: 64 << 10, input_limit: 16 << 20, run_rate_per_minute: None }
    }
}

/// What every part of the service shares; each field is cheap to clone.
#[derive(Clone)]
pub struct Core {
    /// The database.
    pub store: Store,
    /// Accepted tokens.
    pub auth: Arc<Auth>,
    /// Settings.
    pub config: Arc<ServiceConfig>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Wakes in-process workers when a job is enqueued.
    pub work_available: Arc<Notify>,
    /// The console's navigation, one link per domain page.
    pub nav: console::Nav,
    /// Run requests admitted per token.
    pub run_rate: Arc<limits::RateLimiter>,
    /// When the service requires approval (`--require-approval`), the gate
    /// every loaded plugin asks before each call; the approve route adds
    /// to it. `None`: plugins run once loaded.
    pub approvals: Option<Arc<polis_plugins::approval::ApprovalGate>>,
}

impl Core {
    /// The shared state over `store`.
    pub fn new(store: Store, auth: Auth, config: ServiceConfig) -> Core {
        let run_rate = Arc::new(limits::RateLimiter::new(config.run_rate_per_minute));
        Core {
            store,
            auth: Arc::new(auth),
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            work_available: Arc::new(Notify::new()),
            nav: console::Nav::default(),
            run_rate,
            approvals: None,
        }
    }
}

impl FromRef<Core> for Arc<Auth> {
    fn from_ref(core: &Core) -> Self {
        Arc::clone(&core.auth)
    }
}

/// The core plus the registered domains.
#[derive(Clone)]
pub struct AppState {
    /// What every part shares.
    pub core: Core,
    /// The registered domains, in registration order.
    pub domains: Arc<[Arc<dyn Domain>]>,
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.core.auth)
    }
}

impl AppState {
    /// Starts the service over `core` and `domains`: every contract's
    /// registry is mirrored into the store, then each domain's own start-up
    /// runs (seeding defaults).
    pub async fn start(core: Core, domains: Vec<Arc<dyn Domain>>) -> Result<AppState, StoreError> {
        let state = AppState { core, domains: domains.into() };
        state.core.nav.set(state.domains.iter().filter_map(|d| d.console_page()).collect());
        for contract in state.contracts() {
            sync_registry(&state.core.store, contract.as_ref()).await?;
        }
        for domain in state.domains.iter() {
            domain.start().await?;
        }
        Ok(state)
    }

    /// The service with every domain's built-in policies and no plugin
    /// directories.
    pub async fn with_builtins(
        store: Store,
        auth: Auth,
        config: ServiceConfig,
    ) -> Result<AppState, domains::DomainError> {
        let core = Core::new(store, auth, config);
        let domains = domains::all(&core, &domains::Settings::default())?;
        Ok(AppState::start(core, domains).await?)
    }

    /// Every contract of every domain.
    pub fn contracts(&self) -> Vec<Arc<dyn ContractService>> {
        self.domains.iter().flat_map(|d| d.contracts()).collect()
    }

    /// The contract with this id.
    pub fn contract(&self, id: &str) -> Option<Arc<dyn ContractService>> {
        self.contracts().into_iter().find(|c| c.info().id == id)
    }

    /// The domain that handles jobs of `kind`.
    pub fn domain_for_kind(&self, kind: &str) -> Option<&Arc<dyn Domain>> {
        self.domains.iter().find(|d| d.job_kinds().contains(&kind))
    }

    /// Every job kind a worker of this service claims: the generic run
    /// path's and each domain's.
    pub fn job_kinds(&self) -> Vec<&'static str> {
        let mut kinds = vec![domain::RUN_KIND];
        kinds.extend(self.domains.iter().flat_map(|d| d.job_kinds().iter().copied()));
        kinds
    }
}

/// Mirrors a contract's registry into the store's plugin table.
pub async fn sync_registry(store: &Store, contract: &dyn ContractService) -> Result<(), StoreError> {
    let records: Vec<PluginRecord> = contract
        .plugins()
        .into_iter()
        .map(|view| {
            let s = view.status;
            let (activation, reason) = match s.activation {
                polis_core::registry::Activation::Active => ("active".to_owned(), None),
                polis_core::registry::Activation::Disabled { reason } => ("disabled".to_owned(), Some(reason)),
            };
            PluginRecord {
                plugin_id: s.plugin_id,
                contract: s.contract.to_owned(),
                policy_version: s.policy_version,
                strategy: s.strategy,
                tier: s.tier.to_string(),
                manifest_sha256: s.manifest_sha256.map(|d| d.to_hex()),
                artifact_sha256: s.artifact_sha256.map(|d| d.to_hex()),
                activation,
                disabled_reason: reason,
            }
        })
        .collect();
    store.sync_plugins(&records, now_ms()).await
}

/// The whole API: the core's routers and every domain's, a body limit and
/// request tracing.
pub fn app(state: AppState) -> Router {
    let limit = state.core.config.body_limit;
    let mut router = Router::new()
        .merge(runs::router(state.core.config.input_limit))
        .merge(plugins::router())
        .merge(ops::router())
        .merge(console::router())
        .with_state(state.clone());
    for domain in state.domains.iter() {
        router = router.merge(domain.router());
    }
    router.layer(axum::extract::DefaultBodyLimit::max(limit)).layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Wall-clock time, epoch milliseconds. Used for queue bookkeeping only,
/// never for anything hashed.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
