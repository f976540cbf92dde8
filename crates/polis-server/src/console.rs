//! The web console: server-rendered pages with no scripts and no external
//! resources.
//!
//! - `/console`: plugin health and the most recent runs;
//! - `/console/runs/{run_id}`: a run's summary, its moves as a table, and
//!   an inline SVG map of the stations of its snapshot, coloured by fill
//!   ratio, with an arrow per move.
//!
//! The pages need read access like the API: a bearer token, a
//! `polis_token` cookie, or `--insecure-local`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{Html, Redirect};
use axum::routing::get;
use polis_rebalance::contract::Station;
use polis_store::{MoveRow, RunRow, StationRow};

use crate::AppState;
use crate::error::AppError;
use crate::extract::ReadAccess;

/// Runs listed on the front page.
const RECENT_RUNS: i64 = 50;
/// Map size in SVG user units.
const MAP_W: f64 = 900.0;
const MAP_H: f64 = 640.0;
const MARGIN: f64 = 20.0;

/// The routes of this area.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(index))
        .route("/console/runs/{run_id}", get(run_page))
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
.active,.breaker-closed{color:#176f2c}.disabled,.breaker-open{color:#a11}.breaker-half-open{color:#a60}a{color:#1450a3}#map{border:1px solid #ccc;background:#fbfbf8}";

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · polis</title><style>{STYLE}</style></head>\
         <body><p><a href=\"/console\">polis console</a></p><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    ))
}

async fn index(_: ReadAccess, State(state): State<AppState>) -> Result<Html<String>, AppError> {
    let mut body = String::from(
        "<h2>Plugins</h2><table id=\"plugins\"><tr><th>plugin</th><th>policy version</th><th>tier</th>\
        <th>activation</th><th>systems</th><th>breaker</th><th>calls</th><th>errors by code</th><th>recent errors</th></tr>",
    );
    let mut runtime = state.host.guard().all_metrics();
    for p in state.store.plugins().await? {
        let systems: Vec<String> = state
            .store
            .plugin_systems(&p.plugin_id)
            .await?
            .into_iter()
            .map(|o| format!("{}{}", if o.enabled { "" } else { "not " }, o.system_id))
            .collect();
        let errors = state.store.recent_errors(&p.plugin_id, 5).await?.len();
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
        "</table><h2>Recent runs</h2><table id=\"runs\"><tr><th>run</th><th>status</th><th>system</th>\
        <th>bucket</th><th>policy</th><th>attempts</th></tr>",
    );
    for r in state.store.recent_runs(RECENT_RUNS).await? {
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/runs/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            r.status,
            escape(&r.run.system_id),
            polis_core::run::rfc3339(r.run.decision_bucket_ts),
            escape(&r.run.policy_version),
            r.attempts,
            id = escape(&r.run.run_id),
        );
    }
    body.push_str("</table>");
    Ok(page("polis console", &body))
}

async fn run_page(
    _: ReadAccess,
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Html<String>, AppError> {
    let row = state
        .store
        .run_by_id(&run_id)
        .await?
        .ok_or_else(|| AppError::not_found("run.not_found", "run_id", format!("no run with id `{run_id}`")))?;
    let (moves, total) = state.store.moves(&run_id, 0, crate::policy::MAX_PAGE).await?;
    let stations = state.store.stations(&row.run.system_id).await?;
    let snapshot = state.store.snapshot_by_sv(&row.run.system_id, &row.run.sv).await?;
    let states: Vec<Station> = match &snapshot {
        Some(s) => serde_json::from_str::<serde_json::Value>(&s.body_json)
            .ok()
            .and_then(|v| serde_json::from_value(v["stations"].clone()).ok())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut body = String::new();
    let _ = write!(
        body,
        "<p id=\"summary\">{} · {} · bucket {} · status <b>{}</b> · {} moves · snapshot {}</p>",
        escape(&row.run.system_id),
        escape(&row.run.policy_version),
        polis_core::run::rfc3339(row.run.decision_bucket_ts),
        row.status,
        total,
        escape(&row.run.view_snapshot_id)
    );
    if let Some(message) = &row.error_message {
        let _ = write!(
            body,
            "<p class=\"disabled\">{}: {}</p>",
            escape(row.error_code.as_deref().unwrap_or("error")),
            escape(message)
        );
    }
    body.push_str(&map_svg(&stations, &states, &moves));
    body.push_str(&moves_table(&row, &moves, &stations));
    Ok(page(&format!("run {run_id}"), &body))
}

fn moves_table(_row: &RunRow, moves: &[MoveRow], stations: &[StationRow]) -> String {
    let names: BTreeMap<&str, &str> = stations.iter().map(|s| (s.station_key.as_str(), s.name.as_str())).collect();
    let label = |k: &str| escape(names.get(k).copied().unwrap_or(k));
    let mut out = String::from(
        "<h2>Moves</h2><table id=\"moves\"><tr><th>#</th><th>from</th><th>to</th><th>bikes</th>\
        <th>dist m</th><th>reasons</th></tr>",
    );
    for m in moves {
        let reasons: Vec<String> = serde_json::from_str(&m.reason_codes_json).unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td><td>{}</td></tr>",
            m.move_rank,
            label(&m.from_station_key),
            label(&m.to_station_key),
            m.bikes_moved,
            m.dist_m,
            escape(&reasons.join(", "))
        );
    }
    out.push_str("</table>");
    out
}

/// The colour of a fill ratio: red when empty, green in the middle, blue
/// when full.
pub fn fill_colour(ratio: f64) -> String {
    let ratio = if ratio.is_finite() { ratio.clamp(0.0, 1.0) } else { 0.0 };
    format!("hsl({:.0},70%,45%)", ratio * 220.0)
}

/// An SVG map of `stations` (positions) coloured by `states` (fill), with
/// an arrow per move. Stations without a position are left out.
pub fn map_svg(stations: &[StationRow], states: &[Station], moves: &[MoveRow]) -> String {
    let by_key: BTreeMap<&str, &StationRow> = stations.iter().map(|s| (s.station_key.as_str(), s)).collect();
    let placed: Vec<(&Station, &StationRow)> =
        states.iter().filter_map(|s| by_key.get(s.station_key.as_str()).map(|p| (s, *p))).collect();
    let mut out = format!(
        "<svg id=\"map\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {MAP_W} {MAP_H}\" width=\"{MAP_W}\" height=\"{MAP_H}\" \
         role=\"img\" aria-label=\"station map\"><defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" \
         markerWidth=\"6\" markerHeight=\"6\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\" fill=\"#333\"/></marker></defs>"
    );
    if placed.is_empty() {
        out.push_str("<text x=\"20\" y=\"40\">no station positions for this snapshot</text></svg>");
        return out;
    }
    let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (_, p) in &placed {
        min_lat = min_lat.min(p.lat);
        max_lat = max_lat.max(p.lat);
        min_lon = min_lon.min(p.lon);
        max_lon = max_lon.max(p.lon);
    }
    // Equirectangular projection around the mean latitude, fitted to the
    // box with the aspect ratio kept.
    let k = ((min_lat + max_lat) / 2.0).to_radians().cos();
    let span_x = ((max_lon - min_lon) * k).max(1e-9);
    let span_y = (max_lat - min_lat).max(1e-9);
    let scale = ((MAP_W - 2.0 * MARGIN) / span_x).min((MAP_H - 2.0 * MARGIN) / span_y);
    let project = |lat: f64, lon: f64| (MARGIN + (lon - min_lon) * k * scale, MAP_H - MARGIN - (lat - min_lat) * scale);
    out.push_str("<g id=\"stations\">");
    for (s, p) in &placed {
        let (x, y) = project(p.lat, p.lon);
        let ratio = if s.capacity == 0 { 0.0 } else { f64::from(s.bikes) / f64::from(s.capacity) };
        let _ = write!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{}\" data-station=\"{}\"><title>{}: {}/{} bikes</title></circle>",
            fill_colour(ratio),
            escape(&s.station_key),
            escape(&p.name),
            s.bikes,
            s.capacity
        );
    }
    out.push_str("</g><g id=\"moves-layer\">");
    for m in moves {
        let (Some(a), Some(b)) = (by_key.get(m.from_station_key.as_str()), by_key.get(m.to_station_key.as_str()))
        else {
            continue;
        };
        let (x1, y1) = project(a.lat, a.lon);
        let (x2, y2) = project(b.lat, b.lon);
        let _ = write!(
            out,
            "<line class=\"move\" x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"#333\" stroke-width=\"{:.1}\" \
             marker-end=\"url(#arrow)\"><title>#{} {} bikes</title></line>",
            1.0 + (m.bikes_moved as f64).sqrt(),
            m.move_rank,
            m.bikes_moved
        );
    }
    out.push_str("</g></svg>");
    out
}
