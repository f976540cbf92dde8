//! The web console's shell: server-rendered pages that load nothing from
//! the network (no external styles, fonts, tiles or scripts; a page that
//! needs a script, as the rebalancing run map's pan and zoom, carries it
//! inline), a navigation bar with one link per domain page, and the front
//! page.
//!
//! - `/console`: plugin health across every contract and the most recent
//!   jobs of every kind;
//! - each domain adds its own pages under `/console/…` (rebalancing: a
//!   run's moves and map), rendered with [`page`] so they share the shell.
//!
//! The pages need read access like the API: a bearer token, a
//! `polis_token` cookie, or `--insecure-local`.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::response::{Html, Redirect};
use axum::routing::get;

use crate::AppState;
use crate::error::AppError;
use crate::extract::ReadAccess;

/// Jobs listed on the front page.
const RECENT_JOBS: i64 = 50;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new().route("/", get(|| async { Redirect::to("/console") })).route("/console", get(index))
}

/// The console's navigation: the front page, then each domain's page in
/// registration order. Set once when the service starts.
#[derive(Debug, Clone, Default)]
pub struct Nav(Arc<OnceLock<Vec<(&'static str, &'static str)>>>);

impl Nav {
    /// Sets the links (path, text); later calls change nothing.
    pub fn set(&self, links: Vec<(&'static str, &'static str)>) {
        let _ = self.0.set(links);
    }

    fn html(&self) -> String {
        let mut out = String::from("<nav><a href=\"/console\">polis console</a>");
        for (path, title) in self.0.get().map(Vec::as_slice).unwrap_or_default() {
            let _ = write!(out, " · <a href=\"{}\">{}</a>", escape(path), escape(title));
        }
        out.push_str("</nav>");
        out
    }
}

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 24px}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}.num{text-align:right}\
.active,.breaker-closed{color:#176f2c}.disabled,.breaker-open{color:#a11}.breaker-half-open{color:#a60}a{color:#1450a3}\
#map{border:1px solid #ccc;background:#fbfbf8;touch-action:none;cursor:grab}#legend{display:block;margin:6px 0 18px}\
.selected{font-weight:bold;color:#222;text-decoration:none}#map-controls button{margin-left:6px}";

/// A console page: the shell with its navigation, `title` and `body`
/// (HTML the caller escaped).
pub fn page(nav: &Nav, title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · polis</title><style>{STYLE}</style></head>\
         <body>{nav}<h1>{t}</h1>{body}</body></html>",
        t = escape(title),
        nav = nav.html(),
    ))
}

async fn index(_: ReadAccess, State(state): State<AppState>) -> Result<Html<String>, AppError> {
    let mut body = String::from(
        "<h2>Plugins</h2><table id=\"plugins\"><tr><th>plugin</th><th>policy version</th><th>tier</th>\
        <th>activation</th><th>systems</th><th>breaker</th><th>calls</th><th>errors by code</th><th>recent errors</th></tr>",
    );
    let mut runtime: std::collections::BTreeMap<_, _> = state.contracts().iter().flat_map(|c| c.metrics()).collect();
    let store = &state.core.store;
    for p in store.plugins().await? {
        let systems: Vec<String> = store
            .plugin_systems(&p.plugin_id)
            .await?
            .into_iter()
            .map(|o| format!("{}{}", if o.enabled { "" } else { "not " }, o.system_id))
            .collect();
        let errors = store.recent_errors(&p.plugin_id, 5).await?.len();
        let health = crate::plugins::PluginRuntime::from(runtime.remove(&p.plugin_id).unwrap_or_default());
        let breaker = match health.breaker {
            crate::plugins::BreakerStateBody::Closed => "closed",
            crate::plugins::BreakerStateBody::Open => "open",
            crate::plugins::BreakerStateBody::HalfOpen => "half-open",
        };
        let by_code: Vec<String> = health.errors.iter().map(|(code, n)| format!("{code} {n}")).collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}{}</td><td>{}</td><td class=\"breaker-{breaker}\">{breaker}{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(&p.plugin_id),
            escape(&p.policy_version),
            escape(&p.tier),
            escape(&p.activation),
            escape(&p.activation),
            p.disabled_reason.as_deref().map(|r| format!(": {}", escape(r))).unwrap_or_default(),
            escape(&systems.join(", ")),
            match (health.breaker_opened, health.breaker_retry_after_ms) {
                (0, _) => String::new(),
                (n, Some(ms)) => format!(" (opened {n}×; trial call in {} s)", ms.div_ceil(1000)),
                (n, None) => format!(" (opened {n}×)"),
            },
            health.calls,
            escape(&by_code.join(", ")),
            errors
        );
    }
    body.push_str(
        "</table><h2>Recent jobs</h2><table id=\"runs\"><tr><th>job</th><th>kind</th><th>status</th>\
        <th>policy</th><th>plugin</th><th>attempts</th></tr>",
    );
    for r in store.recent_jobs(None, RECENT_JOBS).await? {
        let link = state.domain_for_kind(&r.job.kind).and_then(|d| d.console_job_link(&r)).map_or_else(
            || escape(&r.job.job_id),
            |href| format!("<a href=\"{}\">{}</a>", escape(&href), escape(&r.job.job_id)),
        );
        let _ = write!(
            body,
            "<tr><td>{link}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(&r.job.kind),
            r.status,
            escape(r.job.policy_version.as_deref().unwrap_or("")),
            escape(r.plugin_id.as_deref().unwrap_or("")),
            r.attempts,
        );
    }
    body.push_str("</table>");
    Ok(page(&state.core.nav, "polis console", &body))
}
