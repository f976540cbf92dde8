//! NPC behaviour with capability-gated plugins as a service (seed 003).
//!
//! One [`BehaviorHost`] per process holds the behaviour plugins: the
//! built-in `polis.behavior.moody` and every `behavior.v1` plugin under the
//! plugin directories, in any tier, each granted what its manifest's
//! permissions allow (`admin:routes` only with `--enable-admin-plugins`).
//!
//! - [`sessions`]: worlds and sessions as JSON documents
//!   (`POST /api/worlds`, `POST /api/worlds/{id}/sessions`,
//!   `POST /api/sessions/{id}/advance`, `GET /api/sessions/{id}`), long
//!   advances as jobs on the platform's queue.
//! - [`play`]: the player's moves (`POST /api/sessions/{id}/location`,
//!   raising `location:changed`) and interactions with NPCs
//!   (`POST /api/sessions/{id}/interactions`, raising
//!   `interaction:executed`).
//! - [`routes`]: `GET /api/plugins/health` (admin) and the routes route
//!   plugins declare, under `/api/plugins/{plugin_id}/…` and, world-scoped,
//!   `/api/worlds/{world_id}/plugins/{plugin_id}/…`.
//! - [`console`]: the console page: plugins and their health, and one
//!   session's NPC timeline as a chart.
//!
//! The host uses the runtime's circuit breaker (5 failures in 60 s open it
//! for 30 s), so a plugin that keeps failing or timing out stops costing
//! its deadline on every call. While it is open a call is refused, which
//! the engine treats as a failed call (false, skipped): only a plugin that
//! fails intermittently can make a served advance differ from
//! `polis behavior simulate`, which never trips its breaker.

pub mod console;
pub mod play;
pub mod routes;
pub mod sessions;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use polis_behavior::contract::REQUIRED_METHODS;
use polis_behavior::{
    Behavior, BehaviorHost, BehaviorPlugin, EndpointPlugin, GrantSettings, HostConfig, REMOTE_TIMEOUT, builtins,
};
use polis_store::JobRow;
use utoipa::OpenApi;

use super::Plugins;
use crate::Core;
use crate::domain::{BoxFuture, ContractService, Domain, JobContext, JobDone, JobFailure};
use crate::extract::Auth;

/// The behaviour service's settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// Whether plugins may be granted `admin:routes` (the original's
    /// `enable_admin_plugins`); without it the permission is withheld with
    /// a warning.
    pub admin_plugins: bool,
}

/// What the behaviour routes share.
#[derive(Clone)]
pub struct BehaviorState {
    /// The service's shared state.
    pub core: Core,
    /// The loaded plugins.
    pub host: Arc<BehaviorHost>,
}

impl FromRef<BehaviorState> for Arc<Auth> {
    fn from_ref(state: &BehaviorState) -> Self {
        Arc::clone(&state.core.auth)
    }
}

/// The behaviour domain.
pub struct BehaviorDomain {
    state: BehaviorState,
}

/// The domain over `core`, with the behaviour plugins under `plugins`.
pub fn domain(core: &Core, plugins: &Plugins<'_>, settings: Settings) -> Arc<dyn Domain> {
    let config =
        HostConfig { grants: GrantSettings { admin_plugins: settings.admin_plugins }, ..HostConfig::default() };
    let host = BehaviorHost::load(load_plugins(plugins), config);
    for issue in host.issues() {
        tracing::warn!(domain = "behavior", "{issue}");
    }
    Arc::new(BehaviorDomain { state: BehaviorState { core: core.clone(), host: Arc::new(host) } })
}

/// The built-in plugins and every behaviour plugin under the directories;
/// one that fails to load is logged, naming its directory, and left out.
fn load_plugins(plugins: &Plugins<'_>) -> Vec<Arc<dyn BehaviorPlugin>> {
    let mut loaded: Vec<Arc<dyn BehaviorPlugin>> = vec![Arc::new(builtins::Moody::default())];
    let Some(tiers) = plugins.tiers else { return loaded };
    let mut tiers = tiers.clone();
    tiers.remote.timeout = tiers.remote.timeout.min(REMOTE_TIMEOUT);
    let roots: Vec<&Path> = plugins.dirs.iter().map(PathBuf::as_path).collect();
    let (endpoints, reports) = polis_plugins::load_endpoints::<Behavior>(&roots, &tiers, REQUIRED_METHODS);
    for report in &reports {
        if let Err(reason) = &report.outcome {
            tracing::warn!(domain = "behavior", source = %report.source.display(), "plugin disabled: {reason}");
        }
    }
    loaded.extend(endpoints.into_iter().map(|l| Arc::new(EndpointPlugin::new(l.endpoint)) as Arc<dyn BehaviorPlugin>));
    loaded
}

impl Domain for BehaviorDomain {
    fn name(&self) -> &'static str {
        "behavior"
    }

    fn title(&self) -> &'static str {
        "Behaviour"
    }

    fn contracts(&self) -> Vec<Arc<dyn ContractService>> {
        // Behaviour plugins answer several methods through the engine, not
        // one call on the generic run path; `/api/plugins/health` lists them.
        Vec::new()
    }

    fn router(&self) -> Router {
        sessions::router()
            .merge(play::router())
            .merge(routes::router())
            .merge(console::router())
            .with_state(self.state.clone())
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        let mut doc = sessions::SessionsDoc::openapi();
        doc.merge(play::PlayDoc::openapi());
        doc.merge(routes::RoutesDoc::openapi());
        doc
    }

    fn console_page(&self) -> Option<(&'static str, &'static str)> {
        Some(("/console/behavior", "Behaviour"))
    }

    fn console_job_link(&self, job: &JobRow) -> Option<String> {
        sessions::console_link(job)
    }

    fn job_kinds(&self) -> &'static [&'static str] {
        &[sessions::ADVANCE_KIND]
    }

    fn run_job(&self, job: JobRow, ctx: JobContext) -> BoxFuture<'_, Result<JobDone, JobFailure>> {
        Box::pin(sessions::run_advance(self.state.clone(), job, ctx))
    }
}
