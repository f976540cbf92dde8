//! The rebalancing console page: `/console/runs/{run_id}`, a decision's
//! summary, its moves as a table, and an inline SVG map of the stations of
//! its snapshot, coloured by fill ratio, with an arrow per move.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::response::Html;
use polis_rebalance::contract::Station;
use polis_store::rebalance::{DecisionRow, MoveRow, StationRow};

use super::RebalanceState;
use crate::console::{escape, page};
use crate::error::AppError;
use crate::extract::ReadAccess;

/// Map size in SVG user units.
const MAP_W: f64 = 900.0;
const MAP_H: f64 = 640.0;
const MARGIN: f64 = 20.0;

pub(super) async fn run_page(
    _: ReadAccess,
    State(state): State<RebalanceState>,
    Path(run_id): Path<String>,
) -> Result<Html<String>, AppError> {
    let store = &state.core.store;
    let row = store
        .decision_by_id(&run_id)
        .await?
        .ok_or_else(|| AppError::not_found("run.not_found", "run_id", format!("no run with id `{run_id}`")))?;
    let (moves, total) = store.moves(&run_id, 0, super::policy::MAX_PAGE).await?;
    let stations = store.stations(&row.decision.system_id).await?;
    let snapshot = store.snapshot_by_sv(&row.decision.system_id, &row.decision.sv).await?;
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
        escape(&row.decision.system_id),
        escape(&row.decision.policy_version),
        polis_core::run::rfc3339(row.decision.decision_bucket_ts),
        row.job.status,
        total,
        escape(&row.decision.view_snapshot_id)
    );
    if let Some(message) = &row.job.error_message {
        let _ = write!(
            body,
            "<p class=\"disabled\">{}: {}</p>",
            escape(row.job.error_code.as_deref().unwrap_or("error")),
            escape(message)
        );
    }
    body.push_str(&map_svg(&stations, &states, &moves));
    body.push_str(&moves_table(&row, &moves, &stations));
    Ok(page(&state.core.nav, &format!("run {run_id}"), &body))
}

fn moves_table(_row: &DecisionRow, moves: &[MoveRow], stations: &[StationRow]) -> String {
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
