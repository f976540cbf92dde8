//! Persistence for polis: the job queue every domain's work goes through,
//! inputs stored content-addressed, the plugin registry cache, and each
//! domain's own tables in its own module.
//!
//! This is the only crate that speaks SQL. One set of migrations and one
//! set of runtime-checked queries serve both backends:
//!
//! - **SQLite** in a local file (`sqlite://polis.db` or a bare path), the
//!   embedded default, opened in WAL mode with a busy timeout so the API and
//!   in-process workers share it;
//! - **PostgreSQL** (`postgres://…`), for scale-out: any number of worker
//!   processes on any number of machines claim runs with
//!   `FOR UPDATE SKIP LOCKED`.
//!
//! The main type is [`Store`]. The core is domain-neutral:
//!
//! - [`jobs`]: a job is any domain's work, with a kind and a key. Jobs move
//!   through [`JobStatus`]: `pending` (enqueued) → `running` (claimed under
//!   a lease) → `ready` or `error`; `cancelled` from either of the first
//!   two. A lease that expires makes a `running` job claimable again, and
//!   completing a job succeeds only for the lease holder, so each key has
//!   exactly one stored result however many workers race for it.
//! - [`inputs`]: any contract's input, stored once under its digest.
//! - plugins: the registry cache, each plugin's allow-list of scopes
//!   (systems, worlds, projects), and the approvals of plugin versions.
//!
//! Each domain's tables live in a module named after it ([`rebalance`],
//! [`packs`], [`payments`], [`behavior`]), with its own migration; a domain's job is a row of `jobs`
//! plus, where it needs them, rows of its own tables written in the same
//! transaction.
//!
//! Callers pass the current time (`now_ms`) in, so that lease expiry is
//! testable without sleeping.
//!
//! # Example
//!
//! ```
//! # tokio_test_shim::block_on(async {
//! use polis_store::{Store, StoreConfig};
//!
//! let store = Store::connect("sqlite::memory:", &StoreConfig::default()).await.unwrap();
//! assert_eq!(store.backend(), polis_store::Backend::Sqlite);
//! assert_eq!(store.queue_depth().await.unwrap(), 0);
//! # });
//! # mod tokio_test_shim {
//! #     pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #         tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! #     }
//! # }
//! ```
#![deny(missing_docs)]

pub mod behavior;
pub mod inputs;
pub mod jobs;
pub mod packs;
pub mod payments;
mod plugins;
pub mod rebalance;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use behavior::{SessionRow, TimelineRow, WorldPut, WorldRow};
pub use inputs::StoredInput;
pub use jobs::{JobCount, JobResult, JobRow, JobStatus, NewJob};
pub use payments::AgentPolicy;
pub use plugins::{ApprovalRecord, PluginRecord, SystemOverride};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (or memory), WAL mode.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// How to open a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Most pooled connections. By default 8.
    pub max_connections: u32,
    /// How long to wait for a connection, and on SQLite for a lock. By
    /// default 10 seconds.
    pub busy_timeout: Duration,
    /// Apply pending migrations on connect. By default true.
    pub migrate: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { max_connections: 8, busy_timeout: Duration::from_secs(10), migrate: true }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one polis understands.
    #[error("unsupported database url `{0}`: use `sqlite://FILE`, a file path, or `postgres://…`")]
    BadUrl(String),
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not decode.
    #[error("stored `{field}` is corrupt: {message}")]
    Corrupt {
        /// The column.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl StoreError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::BadUrl(_) => "store.bad_url",
            StoreError::Database(_) => "store.database",
            StoreError::Migrate(_) => "store.migrate",
            StoreError::Corrupt { .. } => "store.corrupt",
        }
    }
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// Normalises a database URL: bare paths become SQLite files created on
/// first use.
pub fn normalise_url(url: &str) -> Result<(Backend, String), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest.starts_with(":memory:") || rest.contains("mode=") {
            return Ok((Backend::Sqlite, url.to_owned()));
        }
        let sep = if rest.contains('?') { '&' } else { '?' };
        return Ok((Backend::Sqlite, format!("{url}{sep}mode=rwc")));
    }
    if url.contains("://") || url.is_empty() {
        return Err(StoreError::BadUrl(url.to_owned()));
    }
    Ok((Backend::Sqlite, format!("sqlite://{url}?mode=rwc")))
}

impl Store {
    /// Opens the database at `url` and, unless told otherwise, migrates it.
    pub async fn connect(url: &str, config: &StoreConfig) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalise_url(url)?;
        let options = AnyConnectOptions::from_str(&url)?;
        let busy_ms = config.busy_timeout.as_millis();
        // An in-memory SQLite database exists per connection, so a pool of
        // them would be many databases; one connection keeps it one.
        let max = if url.starts_with("sqlite::memory:") { 1 } else { config.max_connections };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(config.busy_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        let busy = format!("PRAGMA busy_timeout = {busy_ms}");
                        conn.execute(busy.as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let store = Store { pool, backend };
        if config.migrate {
            MIGRATOR.run(&store.pool).await?;
        }
        Ok(store)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks the database answers, for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to return.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Reads a 0/1 flag column.
pub(crate) fn flag(value: i64) -> bool {
    value != 0
}

/// Fresh, isolated PostgreSQL schemas, for test suites and for trying
/// polis out against a shared server without touching other data.
pub mod scratch {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use sqlx::Connection;

    use crate::StoreError;

    /// The PostgreSQL server test suites use: `POLIS_TEST_DATABASE_URL`,
    /// or `postgres://postgres@127.0.0.1:5432/test`.
    pub fn postgres_base_url() -> String {
        std::env::var("POLIS_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// Creates an empty schema named `{prefix}_{pid}_{n}_{nanos}` on the
    /// server at `base_url` and returns a URL whose connections use it as
    /// their search path.
    pub async fn postgres_schema(base_url: &str, prefix: &str) -> Result<String, StoreError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        sqlx::any::install_default_drivers();
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let schema = format!(
            "{}_{}_{}_{}",
            prefix.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>().to_ascii_lowercase(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let mut conn = sqlx::AnyConnection::connect(base_url).await?;
        let create = format!("CREATE SCHEMA {schema}");
        sqlx::query(&create).execute(&mut conn).await?;
        conn.close().await?;
        let sep = if base_url.contains('?') { '&' } else { '?' };
        Ok(format!("{base_url}{sep}options=-c%20search_path%3D{schema}"))
    }
}
