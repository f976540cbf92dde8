//! The rebalancing console page, `/console/runs/{run_id}`: a decision's
//! summary, a map of its snapshot's stations and moves, and the moves as a
//! table.
//!
//! The map is an inline SVG drawn in local metres (an equirectangular
//! projection around the system's centre, so a kilometre is the same length
//! in every direction). By default (`?frame=moves`) each group of nearby
//! moves ([`clusters`]) gets its own panel, framed on those moves: a system
//! of several cities, as Bay Wheels (San Francisco, the East Bay and San
//! José), would otherwise squeeze every move into one of three blobs.
//! `?frame=system` draws every station in one panel. Stations are coloured
//! by fill, with a legend; each move is an arrow whose width grows with the
//! bikes it moves.
//!
//! A short inline script, and nothing loaded from the network, pans each
//! panel by dragging, zooms it with the wheel or the buttons, names the
//! station or move under the pointer, and keeps circles and arrows the same
//! size on screen at every zoom (it repeats [`layout`]'s arithmetic).
//! Without the script the page still shows the framed panels, a tooltip per
//! station and move, and the frame links.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::response::Html;
use polis_rebalance::contract::Station;
use polis_store::rebalance::{MoveRow, StationRow};
use serde::Deserialize;

use super::RebalanceState;
use crate::console::{escape, page};
use crate::error::AppError;
use crate::extract::ReadAccess;

/// Map size on screen, pixels.
const MAP_W: f64 = 900.0;
const MAP_H: f64 = 640.0;
/// Station radius on screen, pixels.
const STATION_R_PX: f64 = 4.0;
/// Outline of a station a move touches, pixels.
const TOUCHED_STROKE_PX: f64 = 1.5;
/// Screen pixels left between an arrow's ends and the station circles.
const ARROW_GAP_PX: f64 = 1.0;
/// Metres per degree of latitude (mean Earth radius 6,371 km).
const METRES_PER_DEGREE: f64 = 111_195.0;
/// The smallest frame side, metres, so a single short move keeps its
/// street context.
const MIN_FRAME_M: f64 = 800.0;
/// Padding around framed stations, as a share of the frame's larger side.
const FRAME_PAD: f64 = 0.08;

/// Which part of the system the map shows first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Frame {
    /// The stations the moves touch (the whole system when there are none).
    #[default]
    Moves,
    /// Every station with a position.
    System,
}

/// The run page's query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunPageQuery {
    #[serde(default)]
    frame: Frame,
}

pub(super) async fn run_page(
    _: ReadAccess,
    State(state): State<RebalanceState>,
    Path(run_id): Path<String>,
    query: Result<Query<RunPageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Html<String>, AppError> {
    let Query(query) = query.map_err(|e| {
        AppError::bad_request(
            "console.invalid_query",
            Some("frame".to_owned()),
            format!("{e} (frame is moves or system)"),
        )
    })?;
    let store = &state.core.store;
    let row = store
        .decision_by_id(&run_id)
        .await?
        .ok_or_else(|| AppError::not_found("run.not_found", "run_id", format!("no run with id `{run_id}`")))?;
    let (moves, total) = store.moves(&run_id, 0, super::policy::MAX_PAGE).await?;
    let stations = store.stations(&row.decision.system_id).await?;
    let states = match store.snapshot_by_sv(&row.decision.system_id, &row.decision.sv).await? {
        Some(snapshot) => super::ingest::stations_of(&snapshot).map_err(|e| AppError::internal(e.code(), e))?,
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
    body.push_str(&map_svg(&stations, &states, &moves, query.frame));
    body.push_str(&moves_table(&moves, &stations));
    Ok(page(&state.core.nav, &format!("run {run_id}"), &body))
}

fn moves_table(moves: &[MoveRow], stations: &[StationRow]) -> String {
    let names: BTreeMap<&str, &str> = stations.iter().map(|s| (s.station_key.as_str(), s.name.as_str())).collect();
    let label = |k: &str| escape(names.get(k).copied().unwrap_or(k));
    let mut out = String::from(
        "<h2>Moves</h2><table id=\"moves\"><tr><th>#</th><th>from</th><th>to</th><th>bikes</th>\
        <th>dist m</th><th>reasons</th></tr>",
    );
    for m in moves {
        // Reason codes are written by the service itself; an unreadable
        // list is shown as stored rather than hidden.
        let reasons = serde_json::from_str::<Vec<String>>(&m.reason_codes_json)
            .map_or_else(|_| m.reason_codes_json.clone(), |r| r.join(", "));
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td><td>{}</td></tr>",
            m.move_rank,
            label(&m.from_station_key),
            label(&m.to_station_key),
            m.bikes_moved,
            m.dist_m,
            escape(&reasons)
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

/// The colour of a station with no docks, whose fill is undefined.
const NO_DOCKS_COLOUR: &str = "#9a9a9a";

/// An arrow's width on screen, pixels: 0.3 per bike, at least 1.5 and at
/// most 6 (20 bikes or more).
pub fn arrow_width_px(bikes: i64) -> f64 {
    (0.3 * bikes as f64).clamp(1.5, 6.0)
}

/// A rectangle in map metres: `x`, `y` of its top-left corner, width and
/// height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewBox {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl ViewBox {
    /// The padded box around `points`, widened to `aspect` (width over
    /// height); `None` without points.
    pub fn around(points: impl IntoIterator<Item = (f64, f64)>, aspect: f64) -> Option<ViewBox> {
        let (mut x0, mut y0, mut x1, mut y1) = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
        for (x, y) in points {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            return None;
        }
        let pad = (FRAME_PAD * (x1 - x0).max(y1 - y0)).max(MIN_FRAME_M / 2.0);
        let (mut w, mut h) = (x1 - x0 + 2.0 * pad, y1 - y0 + 2.0 * pad);
        if w / h < aspect {
            w = h * aspect;
        } else {
            h = w / aspect;
        }
        Some(ViewBox { x: (x0 + x1 - w) / 2.0, y: (y0 + y1 - h) / 2.0, w, h })
    }

    /// Whether `(x, y)` lies inside.
    pub fn contains(&self, (x, y): (f64, f64)) -> bool {
        x >= self.x && x <= self.x + self.w && y >= self.y && y <= self.y + self.h
    }

    /// The box grown by `share` of its size on every side.
    fn grown(&self, share: f64) -> ViewBox {
        ViewBox {
            x: self.x - share * self.w,
            y: self.y - share * self.h,
            w: self.w * (1.0 + 2.0 * share),
            h: self.h * (1.0 + 2.0 * share),
        }
    }

    fn attribute(&self) -> String {
        format!("{:.1} {:.1} {:.1} {:.1}", self.x, self.y, self.w, self.h)
    }
}

/// Degrees to map metres around a centre: x grows east, y grows south (as
/// SVG's does).
#[derive(Debug, Clone, Copy)]
struct Projection {
    lat0: f64,
    lon0: f64,
    /// Metres per degree of longitude at `lat0`.
    lon_m: f64,
}

impl Projection {
    fn centred_on(rows: &[&StationRow]) -> Projection {
        let (mut lat_lo, mut lat_hi, mut lon_lo, mut lon_hi) = (90.0_f64, -90.0_f64, 180.0_f64, -180.0_f64);
        for p in rows {
            lat_lo = lat_lo.min(p.lat);
            lat_hi = lat_hi.max(p.lat);
            lon_lo = lon_lo.min(p.lon);
            lon_hi = lon_hi.max(p.lon);
        }
        let lat0 = (lat_lo + lat_hi) / 2.0;
        Projection { lat0, lon0: (lon_lo + lon_hi) / 2.0, lon_m: METRES_PER_DEGREE * lat0.to_radians().cos() }
    }

    fn xy(&self, p: &StationRow) -> (f64, f64) {
        ((p.lon - self.lon0) * self.lon_m, (self.lat0 - p.lat) * METRES_PER_DEGREE)
    }
}

/// An arrow's drawn ends: the centres' segment shortened at both ends by
/// the circle radius and a gap (`per_pixel` metres per pixel), or the
/// whole segment when it is too short to shorten.
pub fn layout(from: (f64, f64), to: (f64, f64), per_pixel: f64) -> ((f64, f64), (f64, f64)) {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let length = dx.hypot(dy);
    let cut = (STATION_R_PX + ARROW_GAP_PX) * per_pixel;
    let t = if length > 2.0 * cut { cut / length } else { 0.0 };
    ((from.0 + dx * t, from.1 + dy * t), (to.0 - dx * t, to.1 - dy * t))
}

/// A point in map metres.
type Point = (f64, f64);

/// A move's donor and receiver positions.
type Ends = (Point, Point);

/// Groups moves that lie near each other: two moves share a group when an
/// end of one is within [`CLUSTER_M`] of an end of the other (single
/// linkage). Groups come in the order of their first move; moves keep
/// their order inside a group.
pub fn clusters(ends: &[Ends]) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..ends.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let near = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).hypot(a.1 - b.1) <= CLUSTER_M;
    for i in 0..ends.len() {
        for j in 0..i {
            let ((a, b), (c, d)) = (ends[i], ends[j]);
            if near(a, c) || near(a, d) || near(b, c) || near(b, d) {
                let (ri, rj) = (root(&mut parent, i), root(&mut parent, j));
                // The smaller index is the root, so a group is named by its
                // first move.
                parent[ri.max(rj)] = ri.min(rj);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..ends.len() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    groups.into_values().collect()
}

/// Moves further apart than this (metres, between their nearest ends) are
/// drawn in separate panels: Bay Wheels' San Francisco, East Bay and San
/// José stations are 10–60 km apart, while its moves are under 3 km.
pub const CLUSTER_M: f64 = 5_000.0;

/// Panels drawn at most; with more groups the moves share one panel.
pub const MAX_PANELS: usize = 4;

/// One framed part of the map, at pixel position `(x, y)` in the map with
/// size `w × h`.
struct Panel {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    view: ViewBox,
    /// Indices into the drawn moves.
    moves: Vec<usize>,
}

/// The grid of panels: one per group of moves (or one for every move when
/// there are more than [`MAX_PANELS`] groups), or one of the whole system.
fn panels(whole: &[Point], ends: &[Ends], frame: Frame) -> Vec<Panel> {
    let groups = match frame {
        Frame::System => Vec::new(),
        Frame::Moves => {
            let groups = clusters(ends);
            if groups.len() > MAX_PANELS { vec![(0..ends.len()).collect()] } else { groups }
        }
    };
    if groups.is_empty() {
        let aspect = MAP_W / MAP_H;
        let view =
            ViewBox::around(whole.iter().copied(), aspect).unwrap_or(ViewBox { x: 0.0, y: 0.0, w: MAP_W, h: MAP_H });
        return vec![Panel { x: 0.0, y: 0.0, w: MAP_W, h: MAP_H, view, moves: (0..ends.len()).collect() }];
    }
    let columns = (groups.len() as f64).sqrt().ceil() as usize;
    let rows = groups.len().div_ceil(columns);
    let (w, h) = (
        (MAP_W - PANEL_GAP_PX * (columns - 1) as f64) / columns as f64,
        (MAP_H - PANEL_GAP_PX * (rows - 1) as f64) / rows as f64,
    );
    groups
        .into_iter()
        .enumerate()
        .map(|(i, moves)| {
            let points = moves.iter().flat_map(|&m| [ends[m].0, ends[m].1]);
            let view = ViewBox::around(points, w / h).unwrap_or(ViewBox { x: 0.0, y: 0.0, w, h });
            let (column, row) = (i % columns, i / columns);
            Panel { x: column as f64 * (w + PANEL_GAP_PX), y: row as f64 * (h + PANEL_GAP_PX), w, h, view, moves }
        })
        .collect()
}

/// Pixels between panels.
const PANEL_GAP_PX: f64 = 8.0;

/// The map: stations with a position in `stations` and a state in
/// `states`, coloured by fill, and an arrow per move between two such
/// stations, in one panel per group of nearby moves (or one panel of the
/// whole system); then the legend and the script. Stations without a
/// position are left out.
pub fn map_svg(stations: &[StationRow], states: &[Station], moves: &[MoveRow], frame: Frame) -> String {
    let by_key: BTreeMap<&str, &StationRow> = stations.iter().map(|s| (s.station_key.as_str(), s)).collect();
    let placed: Vec<(&Station, &StationRow)> =
        states.iter().filter_map(|s| by_key.get(s.station_key.as_str()).map(|p| (s, *p))).collect();
    if placed.is_empty() {
        return format!(
            "<svg id=\"map\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {MAP_W} {MAP_H}\" width=\"{MAP_W}\" \
             height=\"{MAP_H}\" role=\"img\" aria-label=\"station map\"><text x=\"20\" y=\"40\">no station positions \
             for this snapshot</text></svg>"
        );
    }
    let projection = Projection::centred_on(&placed.iter().map(|(_, p)| *p).collect::<Vec<_>>());
    let xy: BTreeMap<&str, (f64, f64)> =
        placed.iter().map(|(s, p)| (s.station_key.as_str(), projection.xy(p))).collect();
    let drawn: Vec<&MoveRow> = moves
        .iter()
        .filter(|m| xy.contains_key(m.from_station_key.as_str()) && xy.contains_key(m.to_station_key.as_str()))
        .collect();
    let ends: Vec<Ends> =
        drawn.iter().map(|m| (xy[m.from_station_key.as_str()], xy[m.to_station_key.as_str()])).collect();
    let touched: BTreeSet<&str> =
        drawn.iter().flat_map(|m| [m.from_station_key.as_str(), m.to_station_key.as_str()]).collect();
    let whole: Vec<(f64, f64)> = xy.values().copied().collect();
    let panels = panels(&whole, &ends, frame);

    let mut out = String::new();
    let selected = |f: Frame| if f == frame { " class=\"selected\"" } else { "" };
    let _ = write!(
        out,
        "<p id=\"map-controls\"><a href=\"?frame=moves\"{}>frame the moves</a> · \
         <a href=\"?frame=system\"{}>whole system</a> \
         <span class=\"zoom\" hidden><button type=\"button\" data-zoom=\"1.5\">zoom in</button>\
         <button type=\"button\" data-zoom=\"0.6667\">zoom out</button> drag to pan, wheel to zoom</span> \
         · <span id=\"map-info\">{} stations, {} moves in {} {}; point at one to name it</span></p>",
        selected(Frame::Moves),
        selected(Frame::System),
        placed.len(),
        drawn.len(),
        panels.len(),
        if panels.len() == 1 { "panel" } else { "panels" }
    );
    let _ = write!(
        out,
        "<svg id=\"map\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {MAP_W} {MAP_H}\" width=\"{MAP_W}\" \
         height=\"{MAP_H}\" data-frame=\"{}\" role=\"img\" aria-label=\"station map\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"8\" refY=\"5\" markerWidth=\"3.5\" markerHeight=\"3.5\" \
         orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#222\"/></marker></defs>",
        match frame {
            Frame::Moves => "moves",
            Frame::System => "system",
        }
    );
    for (i, panel) in panels.iter().enumerate() {
        let u = panel.view.w / panel.w;
        // Stations a little beyond the frame are drawn too, so a short pan
        // shows them.
        let reach = panel.view.grown(0.5);
        let _ = write!(
            out,
            "<svg class=\"panel\" data-panel=\"{i}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" viewBox=\"{}\">\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#fbfbf8\" class=\"backdrop\"/>",
            panel.x,
            panel.y,
            panel.w,
            panel.h,
            panel.view.attribute(),
            reach.x,
            reach.y,
            reach.w,
            reach.h,
        );
        for (s, p) in &placed {
            let (x, y) = xy[s.station_key.as_str()];
            if !reach.contains((x, y)) {
                continue;
            }
            station_circle(&mut out, s, p, (x, y), u, touched.contains(s.station_key.as_str()));
        }
        for &m in &panel.moves {
            move_arrow(&mut out, drawn[m], ends[m], u, &by_key);
        }
        out.push_str("</svg>");
        // The panel's frame, in map pixels: the script measures the panel
        // on screen by it (a nested svg's own box is its content's).
        let _ = write!(
            out,
            "<rect class=\"panel-frame\" data-panel=\"{i}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
             fill=\"none\" stroke=\"{}\" pointer-events=\"none\"/>",
            panel.x,
            panel.y,
            panel.w,
            panel.h,
            if panels.len() > 1 { "#bbb" } else { "none" },
        );
        if panels.len() > 1 {
            let bikes: i64 = panel.moves.iter().map(|&m| drawn[m].bikes_moved).sum();
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#444\" pointer-events=\"none\">{} moves, {} bikes</text>",
                panel.x + 6.0,
                panel.y + 16.0,
                panel.moves.len(),
                bikes
            );
        }
    }
    out.push_str("</svg>");
    out.push_str(&legend_svg());
    out.push_str(MAP_SCRIPT);
    out
}

fn station_circle(out: &mut String, s: &Station, p: &StationRow, (x, y): (f64, f64), u: f64, touched: bool) {
    let (colour, fill) = if s.capacity == 0 {
        (NO_DOCKS_COLOUR.to_owned(), "no docks".to_owned())
    } else {
        let ratio = f64::from(s.bikes) / f64::from(s.capacity);
        (fill_colour(ratio), format!("{:.0} % full", 100.0 * ratio))
    };
    let outline = if touched {
        format!(" stroke=\"#111\" stroke-width=\"{:.2}\" data-touched=\"\"", TOUCHED_STROKE_PX * u)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{:.2}\" fill=\"{colour}\"{outline} data-station=\"{}\">\
         <title>{} ({}): {} bikes, {} docks free, capacity {}, {fill}</title></circle>",
        STATION_R_PX * u,
        escape(&s.station_key),
        escape(&p.name),
        escape(&s.station_key),
        s.bikes,
        s.docks,
        s.capacity,
    );
}

fn move_arrow(
    out: &mut String,
    m: &MoveRow,
    (a, b): ((f64, f64), (f64, f64)),
    u: f64,
    by_key: &BTreeMap<&str, &StationRow>,
) {
    let name = |key: &str| by_key.get(key).map_or_else(|| escape(key), |p| escape(&p.name));
    let ((x1, y1), (x2, y2)) = layout(a, b, u);
    let width = arrow_width_px(m.bikes_moved);
    let _ = write!(
        out,
        "<line class=\"move\" x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"#222\" \
         stroke-opacity=\"0.8\" stroke-width=\"{:.2}\" stroke-linecap=\"round\" marker-end=\"url(#arrow)\" \
         data-from=\"{:.1},{:.1}\" data-to=\"{:.1},{:.1}\" data-w=\"{width}\"><title>move {}: {} bikes from {} to {}, \
         {:.0} m</title></line>",
        width * u,
        a.0,
        a.1,
        b.0,
        b.1,
        m.move_rank,
        m.bikes_moved,
        name(&m.from_station_key),
        name(&m.to_station_key),
        m.dist_m,
    );
}

/// The legend: the fill scale, the no-dock colour, the touched outline and
/// arrow widths for 2, 5, 10 and 20 bikes.
fn legend_svg() -> String {
    let mut out = String::from(
        "<svg id=\"legend\" xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"58\" viewBox=\"0 0 900 58\" \
         font-size=\"12\" role=\"img\" aria-label=\"map legend\"><defs><linearGradient id=\"fill-scale\">",
    );
    for step in 0..=10 {
        let ratio = f64::from(step) / 10.0;
        let _ = write!(out, "<stop offset=\"{ratio}\" stop-color=\"{}\"/>", fill_colour(ratio));
    }
    out.push_str(
        "</linearGradient></defs><text x=\"0\" y=\"14\">station fill</text>\
         <rect x=\"0\" y=\"20\" width=\"220\" height=\"12\" fill=\"url(#fill-scale)\"/>\
         <text x=\"0\" y=\"48\">empty</text><text x=\"110\" y=\"48\" text-anchor=\"middle\">half</text>\
         <text x=\"220\" y=\"48\" text-anchor=\"end\">full</text>",
    );
    let _ = write!(
        out,
        "<circle cx=\"262\" cy=\"26\" r=\"{STATION_R_PX}\" fill=\"{NO_DOCKS_COLOUR}\"/><text x=\"272\" y=\"30\">no docks</text>\
         <circle cx=\"350\" cy=\"26\" r=\"{STATION_R_PX}\" fill=\"#fff\" stroke=\"#111\" stroke-width=\"{TOUCHED_STROKE_PX}\"/>\
         <text x=\"360\" y=\"30\">touched by a move</text><text x=\"500\" y=\"14\">arrow: bikes moved</text>"
    );
    for (i, bikes) in [2, 5, 10, 20].into_iter().enumerate() {
        let x = 500.0 + 95.0 * i as f64;
        let _ = write!(
            out,
            "<line x1=\"{x}\" y1=\"26\" x2=\"{}\" y2=\"26\" stroke=\"#222\" stroke-width=\"{}\" marker-end=\"url(#legend-arrow)\"/>\
             <text x=\"{x}\" y=\"48\">{bikes}{}</text>",
            x + 50.0,
            arrow_width_px(bikes),
            if bikes == 20 { "+" } else { "" }
        );
    }
    out.push_str(
        "<defs><marker id=\"legend-arrow\" viewBox=\"0 0 10 10\" refX=\"8\" refY=\"5\" markerWidth=\"3.5\" \
         markerHeight=\"3.5\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#222\"/></marker></defs></svg>",
    );
    out
}

/// Per panel: pan, zoom and constant on-screen sizes; for the page: hover
/// names and the zoom buttons. The constants repeat the ones above.
const MAP_SCRIPT: &str = r##"<script>
(() => {
  const map = document.getElementById("map"), info = document.getElementById("map-info");
  if (!map) return;
  const R = 4, GAP = 1, TOUCHED = 1.5;
  const nums = (s, sep) => s.split(sep).map(Number);
  const panels = [...map.querySelectorAll("svg.panel")].map((svg) => {
    let box = nums(svg.getAttribute("viewBox"), " ");
    const frame = map.querySelector(`rect.panel-frame[data-panel="${svg.dataset.panel}"]`);
    const screen = () => frame.getBoundingClientRect();
    const perPixel = () => box[2] / screen().width;
    function layout() {
      const u = perPixel();
      for (const c of svg.querySelectorAll("circle[data-station]")) {
        c.setAttribute("r", R * u);
        if (c.hasAttribute("data-touched")) c.setAttribute("stroke-width", TOUCHED * u);
      }
      for (const l of svg.querySelectorAll("line.move")) {
        const [x1, y1] = nums(l.dataset.from, ","), [x2, y2] = nums(l.dataset.to, ",");
        const dx = x2 - x1, dy = y2 - y1, len = Math.hypot(dx, dy), cut = (R + GAP) * u;
        const t = len > 2 * cut ? cut / len : 0;
        l.setAttribute("x1", x1 + dx * t); l.setAttribute("y1", y1 + dy * t);
        l.setAttribute("x2", x2 - dx * t); l.setAttribute("y2", y2 - dy * t);
        l.setAttribute("stroke-width", Number(l.dataset.w) * u);
      }
    }
    function show(next) { box = next; svg.setAttribute("viewBox", box.join(" ")); layout(); }
    function zoom(factor, cx, cy) {
      if (cx === undefined) { cx = box[0] + box[2] / 2; cy = box[1] + box[3] / 2; }
      show([cx - (cx - box[0]) / factor, cy - (cy - box[1]) / factor, box[2] / factor, box[3] / factor]);
    }
    function at(e) {
      const r = screen();
      return [box[0] + (e.clientX - r.left) / r.width * box[2], box[1] + (e.clientY - r.top) / r.height * box[3]];
    }
    svg.addEventListener("wheel", (e) => { e.preventDefault(); const [x, y] = at(e); zoom(e.deltaY < 0 ? 1.25 : 0.8, x, y); },
      { passive: false });
    let drag = null;
    svg.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, box }; svg.setPointerCapture(e.pointerId); });
    svg.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const r = screen();
      const dx = (e.clientX - drag.x) / r.width * drag.box[2], dy = (e.clientY - drag.y) / r.height * drag.box[3];
      show([drag.box[0] - dx, drag.box[1] - dy, drag.box[2], drag.box[3]]);
    });
    svg.addEventListener("pointerup", () => { drag = null; });
    return { layout, zoom };
  });
  map.addEventListener("mouseover", (e) => {
    const item = e.target.closest("circle[data-station], line.move");
    if (item) info.textContent = item.querySelector("title").textContent;
  });
  for (const b of document.querySelectorAll("#map-controls button[data-zoom]")) {
    b.addEventListener("click", () => panels.forEach((p) => p.zoom(Number(b.dataset.zoom))));
  }
  document.querySelector("#map-controls .zoom").hidden = false;
  window.addEventListener("resize", () => panels.forEach((p) => p.layout()));
  panels.forEach((p) => p.layout());
})();
</script>"##;

#[cfg(test)]
mod tests {
    use super::*;

    fn station(key: &str, lat: f64, lon: f64) -> StationRow {
        StationRow {
            system_id: "s".to_owned(),
            station_key: key.to_owned(),
            name: format!("{key} & Main"),
            lat,
            lon,
            capacity: 10,
        }
    }

    fn state(key: &str, bikes: u32, capacity: u32) -> Station {
        Station {
            station_key: key.to_owned(),
            capacity,
            bikes,
            docks: capacity - bikes,
            bucket_quality: "ok".to_owned(),
        }
    }

    fn one_move(from: &str, to: &str, bikes: i64) -> MoveRow {
        MoveRow {
            move_rank: 1,
            from_station_key: from.to_owned(),
            to_station_key: to.to_owned(),
            bikes_moved: bikes,
            dist_m: 500.0,
            budget_exhausted: false,
            neighbor_exhausted: false,
            reason_codes_json: "[]".to_owned(),
        }
    }

    /// Two stations in one city and a third 60 km away, as Bay Wheels'
    /// San Francisco and San José.
    fn two_cities() -> (Vec<StationRow>, Vec<Station>) {
        (
            vec![station("a", 37.7749, -122.4194), station("b", 37.7790, -122.4140), station("c", 37.3382, -121.8863)],
            vec![state("a", 9, 10), state("b", 0, 10), state("c", 0, 0)],
        )
    }

    /// The map alone, without controls, legend and script.
    fn map_only(page: &str) -> &str {
        let start = page.find("<svg id=\"map\"").unwrap();
        &page[start..start + page[start..].rfind("</svg><svg id=\"legend\"").unwrap()]
    }

    /// The view boxes of the map's panels.
    fn panel_boxes(page: &str) -> Vec<ViewBox> {
        map_only(page)
            .split("<svg class=\"panel\"")
            .skip(1)
            .map(|panel| {
                let from = panel.find("viewBox=\"").unwrap() + 9;
                let v: Vec<f64> = panel[from..from + panel[from..].find('"').unwrap()]
                    .split(' ')
                    .map(|n| n.parse().unwrap())
                    .collect();
                ViewBox { x: v[0], y: v[1], w: v[2], h: v[3] }
            })
            .collect()
    }

    fn xy_of(stations: &[StationRow]) -> Vec<(f64, f64)> {
        let projection = Projection::centred_on(&stations.iter().collect::<Vec<_>>());
        stations.iter().map(|s| projection.xy(s)).collect()
    }

    #[test]
    fn the_default_frame_holds_the_moves_and_leaves_the_other_city_out() {
        let (stations, states) = two_cities();
        let svg = map_svg(&stations, &states, &[one_move("a", "b", 6)], Frame::Moves);
        let views = panel_boxes(&svg);
        assert_eq!(views.len(), 1, "one group of moves, one panel");
        let view = views[0];
        let xy = xy_of(&stations);
        assert!(view.contains(xy[0]) && view.contains(xy[1]));
        assert!(!view.contains(xy[2]), "San José is outside a San Francisco move's frame");
        assert!(view.w < 5_000.0, "a frame of a 500 m move is a few kilometres wide, not {} m", view.w);
        assert_eq!(map_only(&svg).matches("<circle cx").count(), 2, "stations far beyond the frame are left out");
    }

    #[test]
    fn moves_in_two_cities_get_a_panel_each() {
        let (stations, states) = two_cities();
        let mut far = one_move("c", "a", 2);
        far.move_rank = 2;
        let svg = map_svg(&stations, &states, &[one_move("a", "b", 6), far], Frame::Moves);
        // c → a spans both cities, so it joins a → b: one group.
        assert_eq!(panel_boxes(&svg).len(), 1);
        let ends = [((0.0, 0.0), (500.0, 0.0)), ((60_000.0, 0.0), (60_400.0, 0.0)), ((900.0, 0.0), (1_500.0, 0.0))];
        assert_eq!(clusters(&ends), vec![vec![0, 2], vec![1]], "groups by nearness, in first-move order");
    }

    #[test]
    fn the_system_frame_holds_every_station() {
        let (stations, states) = two_cities();
        let svg = map_svg(&stations, &states, &[one_move("a", "b", 6)], Frame::System);
        let views = panel_boxes(&svg);
        assert_eq!(views.len(), 1);
        let view = views[0];
        assert!(xy_of(&stations).into_iter().all(|p| view.contains(p)));
        assert_eq!(map_only(&svg).matches("<circle cx").count(), 3);
        assert!(svg.contains("data-frame=\"system\""));
    }

    #[test]
    fn without_moves_the_frame_is_the_system() {
        let (stations, states) = two_cities();
        let moves = map_svg(&stations, &states, &[], Frame::Moves);
        let system = map_svg(&stations, &states, &[], Frame::System);
        assert_eq!(panel_boxes(&moves), panel_boxes(&system));
    }

    #[test]
    fn frames_keep_the_panels_aspect_ratio() {
        let aspect = MAP_W / MAP_H;
        let thin = ViewBox::around([(0.0, 0.0), (10_000.0, 0.0)], aspect).unwrap();
        let tall = ViewBox::around([(0.0, 0.0), (0.0, 10_000.0)], aspect).unwrap();
        for v in [thin, tall] {
            assert!((v.w / v.h - aspect).abs() < 1e-9, "{v:?}");
        }
        assert!(tall.h > 10_000.0 && thin.w > 10_000.0, "padded: {thin:?} {tall:?}");
    }

    #[test]
    fn arrows_grow_with_bikes_within_bounds() {
        assert_eq!(arrow_width_px(1), 1.5);
        assert!(arrow_width_px(6) < arrow_width_px(12));
        assert_eq!(arrow_width_px(20), 6.0);
        assert_eq!(arrow_width_px(80), 6.0);
    }

    #[test]
    fn arrows_stop_short_of_the_circles_unless_too_short() {
        let ((x1, _), (x2, _)) = layout((0.0, 0.0), (100.0, 0.0), 1.0);
        assert_eq!((x1, x2), (5.0, 95.0));
        let ((x1, _), (x2, _)) = layout((0.0, 0.0), (8.0, 0.0), 1.0);
        assert_eq!((x1, x2), (0.0, 8.0));
    }

    #[test]
    fn stations_are_named_and_filled_and_docks_free_stations_are_grey() {
        let (stations, states) = two_cities();
        let svg = map_svg(&stations, &states, &[one_move("a", "b", 6)], Frame::System);
        assert!(
            svg.contains("<title>a &amp; Main (a): 9 bikes, 1 docks free, capacity 10, 90 % full</title>"),
            "{svg}"
        );
        assert!(svg.contains(&format!("fill=\"{NO_DOCKS_COLOUR}\"")));
        assert!(svg.contains("<title>move 1: 6 bikes from a &amp; Main to b &amp; Main, 500 m</title>"));
        assert_eq!(map_only(&svg).matches("data-touched").count(), 2);
        assert!(svg.contains("id=\"legend\"") && svg.contains("<script>"));
    }

    #[test]
    fn a_move_to_a_station_without_position_is_not_drawn() {
        let (stations, states) = two_cities();
        let svg = map_svg(&stations, &states, &[one_move("a", "nowhere", 3)], Frame::Moves);
        assert_eq!(svg.matches("<line class=\"move\"").count(), 0);
    }
}
