//! The console's strategy page, `/console/strategy`: the server's catalog
//! with every entry's state and reasons, the recent replays, and one
//! replay (`?replay=ID`, by default the newest ready one) with its
//! metrics, its breakers at the last bar and its equity plot.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use polis_store::JobStatus;
use polis_strategy::catalog::EntryState;
use serde::Deserialize;

use super::{REPLAY_KIND, StrategyState, stored_result};
use crate::console::{escape, page};
use crate::error::AppError;
use crate::extract::{ApiQuery, ReadAccess};
use crate::runs::answer_status;

/// Replays listed on the page.
const RECENT_REPLAYS: i64 = 20;

pub(super) fn router() -> Router<StrategyState> {
    Router::new().route("/console/strategy", get(strategy_page))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    replay: Option<String>,
}

async fn strategy_page(
    _: ReadAccess,
    State(state): State<StrategyState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Html<String>, AppError> {
    let mut body = String::from("<h2>Catalog</h2>");
    match &state.catalog {
        None => body.push_str("<p>No catalog: start the server with <code>--strategy-catalog FILE</code>.</p>"),
        Some(catalog) => {
            body.push_str(
                "<table id=\"catalog\"><tr><th>strategy</th><th>family</th><th>state</th><th>warm-up</th>\
                 <th>symbols</th><th>reasons</th></tr>",
            );
            for e in &catalog.entries {
                let state = match e.state {
                    EntryState::Enabled => "enabled",
                    EntryState::Off => "off",
                    EntryState::Disabled => "disabled",
                };
                let mut notes = e.reasons.clone();
                notes.extend(e.warnings.iter().map(|w| format!("warning: {w}")));
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}@{}</td><td class=\"{state}\">{state}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&e.entry.strategy_id),
                    escape(&e.entry.strategy_type),
                    escape(&e.entry.version),
                    e.warmup_bars,
                    escape(&e.entry.symbols.join(", ")),
                    escape(&notes.join("; ")),
                );
            }
            body.push_str("</table>");
        }
    }

    let recent = state.core.store.recent_jobs(Some(REPLAY_KIND), RECENT_REPLAYS).await?;
    body.push_str(
        "<h2>Replays</h2><table id=\"replays\"><tr><th>replay</th><th>status</th><th>digest</th><th>error</th></tr>",
    );
    for row in &recent {
        let digest = row.output_sha256.as_deref().unwrap_or("");
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/strategy?replay={id}\">{id}</a></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            answer_status(row.status),
            escape(digest),
            escape(row.error_message.as_deref().unwrap_or("")),
            id = escape(&row.job.job_id),
        );
    }
    body.push_str("</table>");

    let shown = match &query.replay {
        Some(id) => Some(super::replay_row(&state, id).await?),
        None => recent.into_iter().find(|r| r.status == JobStatus::Ready),
    };
    if let Some(row) = shown {
        let id = escape(&row.job.job_id);
        let _ = write!(body, "<h2 id=\"replay\">Replay {id}: {}</h2>", answer_status(row.status));
        if let Some(result) = stored_result(&row)? {
            let _ = write!(
                body,
                "<p>{} bars, {} intents, digest <code id=\"digest\">{}</code> \
                 (<a href=\"/api/strategy/replays/{id}/intents.jsonl\">intents.jsonl</a>).</p>",
                result.bars,
                result.intents.len(),
                escape(&result.digest),
            );
            body.push_str(
                "<table id=\"metrics\"><tr><th>strategy</th><th>intents</th><th>return</th><th>sharpe</th>\
                 <th>max dd</th><th>hit rate</th><th>turnover</th><th>exposure</th><th>errors</th></tr>",
            );
            for e in &result.evaluations {
                let num = |k: &str| e.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
                let pct = |k: &str| format!("{:.2}%", num(k) * 100.0);
                let errors = e.pointer("/counters/errors").and_then(serde_json::Value::as_u64).unwrap_or(0);
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{errors}</td></tr>",
                    escape(e.get("strategy").and_then(serde_json::Value::as_str).unwrap_or("")),
                    e.get("intents").and_then(serde_json::Value::as_u64).unwrap_or(0),
                    pct("total_return"),
                    num("sharpe"),
                    pct("max_drawdown"),
                    pct("hit_rate"),
                    num("turnover"),
                    pct("exposure"),
                );
            }
            body.push_str(
                "</table><h3>Breakers at the last bar</h3><table id=\"breakers\"><tr><th>strategy</th><th>state</th>\
                 <th>times opened</th></tr>",
            );
            for b in &result.breakers {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td class=\"{state}\">{state}</td><td>{}</td></tr>",
                    escape(&b.strategy),
                    b.opened,
                    state = escape(&b.state),
                );
            }
            let _ = write!(
                body,
                "</table><h3>Equity</h3><img id=\"equity\" alt=\"equity by strategy\" src=\"/api/strategy/replays/{id}/equity.svg\">"
            );
        } else if let Some(message) = &row.error_message {
            let _ = write!(body, "<p class=\"error\">{}</p>", escape(message));
        }
    }
    Ok(page(&state.core.nav, "Strategies", &body))
}
