//! The console's payments page, `/console/payments`: the policies stored
//! in `agent_policies`, the recent simulation jobs with their totals, and
//! one of them in full (`?job=ID`: each agent's costs by component, its
//! counts and where its policy came from) or one whole simulation
//! (`?simulation=sim-…`: every sweep point, and the sweep's cost plot).

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use polis_payments::sim::Report;
use polis_payments::sim::sweep::{self, Point};
use polis_store::JobRow;
use serde::Deserialize;

use super::{PaymentsState, PointPayload, SIMULATE_KIND, load_simulation, status_of};
use crate::console::{escape, page};
use crate::error::AppError;
use crate::extract::{ApiQuery, ReadAccess};
use crate::runs::answer_status;

/// Simulation jobs listed on the page.
const RECENT_JOBS: i64 = 50;

pub(super) fn router() -> Router<PaymentsState> {
    Router::new().route("/console/payments", get(payments_page))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    job: Option<String>,
    simulation: Option<String>,
}

/// The report a finished job stored.
fn report_of(job: &JobRow) -> Result<Option<Report>, AppError> {
    job.result_json
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| AppError::internal("payments.report_unreadable", format!("job `{}`: {e}", job.job.job_id)))
}

fn point_of(job: &JobRow) -> Option<PointPayload> {
    serde_json::from_str(job.job.payload_json.as_deref()?).ok()
}

/// A point's name and value as `name=value`, or `—` for a single run.
fn point_label(point: Option<&PointPayload>) -> String {
    match point.and_then(|p| p.name.as_deref().zip(p.value)) {
        Some((name, value)) => format!("{name}={value}"),
        None => "—".to_owned(),
    }
}

async fn payments_page(
    _: ReadAccess,
    State(state): State<PaymentsState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Html<String>, AppError> {
    let store = &state.core.store;
    let mut body = String::from("<h2>Stored policies</h2>");
    let policies = store.agent_policies().await?;
    if policies.is_empty() {
        body.push_str(
            "<p>None yet: <code>POST /api/payments/policies</code> or <code>polis payments policies put</code>.</p>",
        );
    } else {
        body.push_str("<table id=\"policies\"><tr><th>agent</th><th>sha256</th><th>stored by</th></tr>");
        for p in &policies {
            let _ = write!(
                body,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                escape(&p.agent_id),
                escape(&p.policy_sha256[..p.policy_sha256.len().min(16)]),
                escape(&p.updated_by),
            );
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Recent simulations</h2>");
    let jobs = store.recent_jobs(Some(SIMULATE_KIND), RECENT_JOBS).await?;
    if jobs.is_empty() {
        body.push_str("<p>None yet: <code>POST /api/payments/simulations</code> with a SimCash scenario.</p>");
    } else {
        body.push_str(
            "<table id=\"simulations\"><tr><th>job</th><th>scenario</th><th>point</th><th>status</th>\
             <th>total cost (cents)</th><th>settlement rate</th></tr>",
        );
        for job in &jobs {
            let point = point_of(job);
            let report = report_of(job)?;
            let _ = write!(
                body,
                "<tr><td><a href=\"/console/payments?job={id}\">{id}</a></td><td><code>{}</code></td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(point.as_ref().map_or("", |p| &p.scenario_sha256[..p.scenario_sha256.len().min(12)])),
                escape(&point_label(point.as_ref())),
                answer_status(job.status),
                report.as_ref().map_or(String::new(), |r| r.system.total_cost.to_string()),
                report.as_ref().map_or(String::new(), |r| format!("{:.4}", r.system.settlement_rate)),
                id = escape(&job.job.job_id),
            );
        }
        body.push_str("</table>");
    }
    if let Some(job_id) = &query.job {
        let job = store.job_by_id(job_id).await?.filter(|j| j.job.kind == SIMULATE_KIND).ok_or_else(|| {
            AppError::not_found("payments.job_not_found", "job", format!("no payments simulation job `{job_id}`"))
        })?;
        let _ = write!(
            body,
            "<h2>Job {}</h2><p>Point {}, {}.</p>",
            escape(job_id),
            escape(&point_label(point_of(&job).as_ref())),
            answer_status(job.status)
        );
        match report_of(&job)? {
            Some(report) => body.push_str(&agents_table(&report)),
            None => {
                if let Some(message) = &job.error_message {
                    let _ = write!(body, "<p class=\"disabled\">{}</p>", escape(message));
                }
            }
        }
    }
    if let Some(id) = &query.simulation {
        let record = load_simulation(&state, id).await?;
        let status = status_of(&state, id, &record).await?;
        let _ =
            write!(body, "<h2>Simulation {}</h2><p>{} points, {}.</p>", escape(id), status.points.len(), status.status);
        let mut points = Vec::new();
        body.push_str(
            "<table id=\"points\"><tr><th>value</th><th>status</th><th>total cost (cents)</th><th>settlement rate</th></tr>",
        );
        for p in &status.points {
            let report: Option<Report> =
                p.report.clone().map(serde_json::from_value).transpose().map_err(|e| {
                    AppError::internal("payments.report_unreadable", format!("job `{}`: {e}", p.job_id))
                })?;
            let _ = write!(
                body,
                "<tr><td><a href=\"/console/payments?job={id}\">{}</a></td><td>{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td></tr>",
                p.value.map_or("—".to_owned(), |v| v.to_string()),
                escape(&p.status),
                report.as_ref().map_or(String::new(), |r| r.system.total_cost.to_string()),
                report.as_ref().map_or(String::new(), |r| format!("{:.4}", r.system.settlement_rate)),
                id = escape(&p.job_id),
            );
            if let (Some(value), Some(report)) = (p.value, report) {
                points.push(Point { value, report });
            }
        }
        body.push_str("</table>");
        if let (Some(name), true) = (&status.sweep, points.len() >= 2) {
            let _ = write!(body, "<div id=\"sweep-plot\">{}</div>", sweep::svg(&points, name));
        }
    }
    Ok(page(&state.core.nav, "Payments", &body))
}

/// Each agent's costs by component, counts and policy, then the system.
fn agents_table(report: &Report) -> String {
    let mut out = String::from("<table id=\"agents\"><tr><th>agent</th><th>policy</th><th>total</th>");
    for (name, _) in polis_payments::sim::Costs::default().by_component() {
        let _ = write!(out, "<th>{}</th>", name.replace('_', " "));
    }
    out.push_str("<th>arrived</th><th>settled</th><th>rate</th></tr>");
    for a in &report.agents {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{} <code>{}</code></td><td class=\"num\">{}</td>",
            escape(&a.id),
            escape(&a.policy.kind),
            escape(&a.policy.policy_id),
            a.total_cost,
        );
        for (_, cents) in a.costs.by_component() {
            let _ = write!(out, "<td class=\"num\">{cents}</td>");
        }
        let _ = write!(
            out,
            "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.4}</td></tr>",
            a.arrived_count, a.settled_count, a.settlement_rate,
        );
    }
    let s = &report.system;
    let _ = write!(
        out,
        "</table><p id=\"system\">System: {} cents; {} of {} payments settled ({:.4}), {} of {} cents of value.</p>",
        s.total_cost, s.settlements, s.arrivals, s.settlement_rate, s.settled_value, s.arrived_value
    );
    out
}
