//! polis as a service: the seed's policy-run HTTP API over a
//! [`polis_store::Store`], the workers that compute runs, and ingest.
//!
//! - [`app`] builds the axum router: one router per area ([`policy`],
//!   [`plugins`], [`ops`]) over an [`AppState`] of `Arc`s, with a body size
//!   limit and request tracing.
//! - [`worker`] claims runs from the store under a lease, decides them
//!   through the rebalancing host, and stores the result; `polis serve`
//!   runs workers in-process, `polis worker` runs them alone.
//! - [`ingest`] turns GBFS feeds into stored snapshots and back.
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
//! let state = AppState::new(store, auth, ServiceConfig::default()).await.unwrap();
//! let request = axum::http::Request::get("/healthz").body(axum::body::Body::empty()).unwrap();
//! let response = polis_server::app(state).oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # });
//! ```
#![deny(missing_docs)]

pub mod console;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod lookup;
pub mod metrics;
pub mod ops;
pub mod plugins;
pub mod policy;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use polis_rebalance::host::Host;
use polis_store::{PluginRecord, Store, StoreError};
use tokio::sync::Notify;

use crate::extract::Auth;
use crate::lookup::Lookups;
use crate::metrics::Metrics;

/// Settings of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Largest request body, bytes. By default 64 KiB.
    pub body_limit: usize,
    /// The policy `GET /api/policy/config` offers by default. By default
    /// `rebal.global.v1`.
    pub default_policy_version: String,
    /// Ready answers kept in memory. By default 10,000.
    pub ready_cache_entries: usize,
    /// How long an allow-list or snapshot lookup is reused before the
    /// store is asked again (see [`lookup`]). Changes this process makes
    /// are seen at once whatever the TTL; changes made by other processes
    /// sharing the store are seen at most this late. Zero disables the
    /// lookup caches. Checking it against the monotonic clock is the only
    /// clock read the caches make; it bounds how fresh a lookup is and never
    /// affects what a policy decides. By default 2 s.
    pub lookup_ttl: Duration,
    /// Entries per lookup table; a full table is emptied. By default
    /// 10,000.
    pub lookup_cache_entries: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            body_limit: 64 << 10,
            default_policy_version: "rebal.global.v1".to_owned(),
            ready_cache_entries: 10_000,
            lookup_ttl: Duration::from_secs(2),
            lookup_cache_entries: 10_000,
        }
    }
}

/// Everything handlers share; each field is cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The rebalancing host and its registry.
    pub host: Arc<Host>,
    /// Accepted tokens.
    pub auth: Arc<Auth>,
    /// Settings.
    pub config: Arc<ServiceConfig>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Encoded answers of ready runs, which never change.
    pub ready_cache: Arc<ReadyCache>,
    /// Allow-list and snapshot lookups, reused for a short TTL.
    pub lookups: Arc<Lookups>,
    /// Wakes in-process workers when a run is enqueued.
    pub work_available: Arc<Notify>,
}

impl AppState {
    /// State over the built-in rebalancing policies, with the plugin cache
    /// synchronised to the registry.
    pub async fn new(store: Store, auth: Auth, config: ServiceConfig) -> Result<AppState, StoreError> {
        AppState::with_host(store, Arc::new(Host::builtin()), auth, config).await
    }

    /// State over `host` (its registry, limits and breakers), with the
    /// plugin cache synchronised to its registry.
    pub async fn with_host(
        store: Store,
        host: Arc<Host>,
        auth: Auth,
        config: ServiceConfig,
    ) -> Result<AppState, StoreError> {
        sync_registry(&store, &host).await?;
        Ok(AppState {
            store,
            host,
            auth: Arc::new(auth),
            ready_cache: Arc::new(ReadyCache::new(config.ready_cache_entries)),
            lookups: Arc::new(Lookups::new(config.lookup_ttl, config.lookup_cache_entries)),
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            work_available: Arc::new(Notify::new()),
        })
    }

    /// Whether `plugin_id` may run for `system_id`, from the lookup cache
    /// or the store.
    pub async fn plugin_enabled_for(&self, plugin_id: &str, system_id: &str) -> Result<bool, StoreError> {
        let ticket = match self.lookups.allowed(plugin_id, system_id) {
            Ok(enabled) => return Ok(enabled),
            Err(ticket) => ticket,
        };
        let enabled = self.store.plugin_enabled_for(plugin_id, system_id).await?;
        self.lookups.keep_allowed(plugin_id, system_id, enabled, ticket);
        Ok(enabled)
    }

    /// The snapshot a request names, from the lookup cache or the store.
    pub async fn snapshot(&self, key: lookup::SnapshotKey) -> Result<lookup::SnapshotAnswer, StoreError> {
        let ticket = match self.lookups.snapshot(&key) {
            Ok(answer) => return Ok(answer),
            Err(ticket) => ticket,
        };
        let record = match &key {
            lookup::SnapshotKey::Bucket { system_id, bucket_ts } => {
                self.store
                    .snapshot_for_bucket(
                        system_id,
                        *bucket_ts,
                        polis_rebalance::snapshot::BUCKET_SECONDS,
                        polis_rebalance::snapshot::DEGRADED_AFTER_S,
                    )
                    .await?
            }
            lookup::SnapshotKey::Sv { system_id, sv } => self.store.snapshot_by_sv(system_id, sv).await?,
        };
        let answer = record.map(|r| Arc::new(lookup::SnapshotIdentity::from(r)));
        self.lookups.keep_snapshot(key, answer.clone(), ticket);
        Ok(answer)
    }
}

/// Mirrors the host's registry into the store's plugin table.
pub async fn sync_registry(store: &Store, host: &Host) -> Result<(), StoreError> {
    let records: Vec<PluginRecord> = host
        .registry()
        .statuses()
        .into_iter()
        .map(|s| {
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

/// The whole API: every area's router, a body limit and request tracing.
pub fn app(state: AppState) -> Router {
    let limit = state.config.body_limit;
    Router::new()
        .merge(policy::router())
        .merge(plugins::router())
        .merge(ops::router())
        .merge(console::router())
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Wall-clock time, epoch milliseconds. Used for queue bookkeeping only,
/// never for anything hashed.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A JSON body already encoded.
#[derive(Debug, Clone)]
pub struct CachedJson(pub Bytes);

impl IntoResponse for CachedJson {
    fn into_response(self) -> Response {
        ([(axum::http::header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

/// Encoded answers of ready runs by run key hash. A ready run never
/// changes, so entries never go stale; when full the cache is emptied,
/// which costs only re-reading the store.
#[derive(Debug)]
pub struct ReadyCache {
    capacity: usize,
    entries: Mutex<HashMap<String, Bytes>>,
}

impl ReadyCache {
    /// A cache of at most `capacity` answers (0 disables it).
    pub fn new(capacity: usize) -> Self {
        ReadyCache { capacity, entries: Mutex::new(HashMap::new()) }
    }

    /// The answer for a run key hash.
    pub fn get(&self, run_key_sha256: &str) -> Option<CachedJson> {
        let entries = self.entries.lock().ok()?;
        entries.get(run_key_sha256).cloned().map(CachedJson)
    }

    /// Keeps an answer and returns it.
    pub fn insert(&self, run_key_sha256: String, body: Vec<u8>) -> CachedJson {
        let body = Bytes::from(body);
        if self.capacity > 0
            && let Ok(mut entries) = self.entries.lock()
        {
            if entries.len() >= self.capacity {
                entries.clear();
            }
            entries.insert(run_key_sha256, body.clone());
        }
        CachedJson(body)
    }
}
