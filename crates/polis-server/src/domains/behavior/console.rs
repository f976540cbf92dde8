//! The console's behaviour page, `/console/behavior`: the loaded plugins
//! and their health, the recent sessions, and one session (`?session=ID`,
//! by default the most recently changed) with its NPC timeline drawn as a
//! chart: a row per NPC, a bar per activity from when it started to the
//! NPC's next change. The error messages themselves are in
//! `/api/plugins/health`, which is the admin's.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use polis_behavior::World;
use serde::Deserialize;
use serde_json::Value;

use super::BehaviorState;
use super::sessions::{load_session, timeline_page};
use crate::console::{escape, page};
use crate::error::AppError;
use crate::extract::{ApiQuery, ReadAccess};

/// Sessions listed on the page.
const RECENT_SESSIONS: i64 = 20;

/// Timeline entries the chart draws at most.
const CHART_ENTRIES: i64 = 10_000;

/// Bar colours, picked by activity in order of first appearance.
const PALETTE: &[&str] =
    &["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

pub(super) fn router() -> Router<BehaviorState> {
    Router::new().route("/console/behavior", get(behavior_page))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    session: Option<String>,
}

async fn behavior_page(
    _: ReadAccess,
    State(state): State<BehaviorState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Html<String>, AppError> {
    let mut body = String::from(
        "<h2>Plugins</h2><table id=\"behavior-plugins\"><tr><th>plugin</th><th>tier</th><th>kind</th><th>permissions</th>\
         <th>conditions</th><th>effects</th><th>routes</th><th>health</th><th>condition failures</th>\
         <th>effect failures</th><th>handler failures</th><th>denials</th></tr>",
    );
    for p in state.host.reports() {
        let health = match (&p.disabled, p.unhealthy_because) {
            (Some(reason), _) => format!("<span class=\"disabled\">disabled: {}</span>", escape(reason)),
            (None, Some(why)) => format!("<span class=\"disabled\">unhealthy: {}</span>", escape(why)),
            (None, None) => "<span class=\"active\">healthy</span>".to_owned(),
        };
        let tally = |t: polis_behavior::health::Tally| format!("{} of {}", t.failures, t.total);
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{health}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&p.plugin_id),
            p.tier,
            p.kind.as_str(),
            escape(&p.permissions.join(", ")),
            escape(&p.conditions.join(", ")),
            escape(&p.effects.join(", ")),
            escape(&p.routes.join(", ")),
            tally(p.health.conditions),
            tally(p.health.effects),
            tally(p.health.handlers),
            p.health.permission_denials,
        );
    }
    body.push_str("</table><h2>Sessions</h2>");
    let recent = state.core.store.recent_sessions(RECENT_SESSIONS).await?;
    if recent.is_empty() {
        body.push_str(
            "<p>No session yet: <code>POST /api/worlds</code>, then <code>POST /api/worlds/{id}/sessions</code>.</p>",
        );
    } else {
        body.push_str("<table id=\"sessions\"><tr><th>session</th><th>world</th><th>advances</th></tr>");
        for s in &recent {
            let _ = write!(
                body,
                "<tr><td><a href=\"/console/behavior?session={id}\">{id}</a></td><td>{}</td><td class=\"num\">{}</td></tr>",
                escape(&s.world_id),
                s.version,
                id = escape(&s.session_id),
            );
        }
        body.push_str("</table>");
    }
    let chosen = query.session.or_else(|| recent.first().map(|s| s.session_id.clone()));
    if let Some(session_id) = chosen {
        let (row, world, session) = load_session(&state, &session_id).await?;
        let page = timeline_page(&state, &session_id, 0, CHART_ENTRIES).await?;
        let _ = write!(
            body,
            "<h2>Session {}</h2><p>World <code>{}</code>, {} advances, world time {}; {} timeline entries{}.</p>",
            escape(&row.session_id),
            escape(&row.world_id),
            row.version,
            clock(session.world_time),
            page.entries.len(),
            if page.next.is_some() { format!(" (the first {CHART_ENTRIES} drawn)") } else { String::new() },
        );
        body.push_str(&chart(&world, &page.entries, session.world_time));
    }
    Ok(page(&state.core.nav, "Behaviour", &body))
}

/// `day D HH:MM` of a world time in seconds.
fn clock(seconds: i64) -> String {
    let day = seconds.div_euclid(86_400) + 1;
    let of_day = seconds.rem_euclid(86_400);
    format!("day {day} {:02}:{:02}", of_day / 3600, of_day % 3600 / 60)
}

/// The NPC timeline chart: one row per NPC in world order, one bar per
/// activity, from its start to the NPC's next entry (or `end`); idle time
/// is left blank. Colours follow first appearance, so the same timeline
/// draws the same picture.
fn chart(world: &World, entries: &[Value], end: i64) -> String {
    const LEFT: i64 = 120;
    const WIDTH: i64 = 900;
    const ROW: i64 = 22;
    let start = entries.iter().filter_map(|e| e["atSeconds"].as_i64()).min().unwrap_or(0);
    let span = (end - start).max(1);
    let x = |t: i64| LEFT + (t - start).clamp(0, span) * WIDTH / span;
    let mut colours: Vec<String> = Vec::new();
    let mut colour = |activity: &str| {
        let index = colours.iter().position(|a| a == activity).unwrap_or_else(|| {
            colours.push(activity.to_owned());
            colours.len() - 1
        });
        PALETTE[index % PALETTE.len()]
    };
    let height = ROW * i64::try_from(world.npcs.len()).unwrap_or(0) + 30;
    let mut svg = format!(
        "<svg id=\"npc-timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" \
         font-size=\"11\" role=\"img\" aria-label=\"NPC activity timeline\">",
        LEFT + WIDTH + 10
    );
    for (row, npc) in world.npcs.iter().enumerate() {
        let y = ROW * i64::try_from(row).unwrap_or(0);
        let _ = write!(svg, "<text x=\"4\" y=\"{}\">{}</text>", y + 15, escape(&npc.id));
        let mine: Vec<&Value> = entries.iter().filter(|e| e["npcId"].as_str() == Some(npc.id.as_str())).collect();
        for (i, entry) in mine.iter().enumerate() {
            let Some(activity) = entry["activityId"].as_str() else { continue };
            let from = entry["atSeconds"].as_i64().unwrap_or(start);
            let to = mine.get(i + 1).and_then(|n| n["atSeconds"].as_i64()).unwrap_or(end);
            let _ = write!(
                svg,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{} {}: {}</title></rect>",
                x(from),
                y + 3,
                (x(to) - x(from)).max(1),
                ROW - 6,
                colour(activity),
                escape(&npc.id),
                clock(from),
                escape(activity),
            );
        }
    }
    let axis = ROW * i64::try_from(world.npcs.len()).unwrap_or(0) + 18;
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"{axis}\">{}</text><text x=\"{}\" y=\"{axis}\" text-anchor=\"end\">{}</text></svg>",
        clock(start),
        LEFT + WIDTH,
        clock(end)
    );
    svg.push_str("<p id=\"legend\">");
    for (i, activity) in colours.iter().enumerate() {
        let _ =
            write!(svg, "<span style=\"color:{}\">■</span> {} &nbsp; ", PALETTE[i % PALETTE.len()], escape(activity));
    }
    svg.push_str("</p>");
    svg
}
