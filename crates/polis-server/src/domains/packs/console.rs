//! The console's policy-pack pages.
//!
//! - `/console/packs`: every pack and version (the latest active marked)
//!   and every project;
//! - `/console/projects/{id}`: the project's selection as a form (pack,
//!   pinned version, mode, repo-local toggle, overrides as JSON), the
//!   effective policy with the layer of every value, the findings, and a
//!   form per clarification to answer it.
//!
//! The forms post to the same API routes a client uses (so the same roles
//! apply: changing anything needs an admin token) through a short inline
//! script, then reload the page; nothing is loaded from the network.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Html;
use axum::routing::get;
use polis_packs::view;
use serde_json::Value;

use super::{PacksState, catalog, status_text};
use crate::console::{escape, page};
use crate::error::AppError;
use crate::extract::ReadAccess;

pub(super) fn router() -> Router<PacksState> {
    Router::new().route("/console/packs", get(packs_page)).route("/console/projects/{id}", get(project_page))
}

async fn packs_page(_: ReadAccess, State(state): State<PacksState>) -> Result<Html<String>, AppError> {
    let (catalog, rows) = catalog(&state.core).await?;
    let mut body = String::from(
        "<h2>Packs</h2><table id=\"packs\"><tr><th>pack</th><th>version</th><th>status</th><th></th><th>name</th>\
         <th>description</th><th>published by</th></tr>",
    );
    for (key, versions) in catalog.list() {
        let latest = polis_packs::pack::select(key, versions, None).ok().map(|d| d.version.clone());
        for d in versions.iter().rev() {
            let by = rows.iter().find(|r| r.pack_key == d.key && r.version == d.version).map_or("", |r| &r.created_by);
            let status = status_text(d.status);
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td class=\"{status}\">{status}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(key),
                escape(&d.version),
                if latest.as_deref() == Some(d.version.as_str()) { "latest" } else { "" },
                escape(&d.name),
                escape(&d.description),
                escape(by),
            );
        }
    }
    body.push_str(
        "</table><h2>Projects</h2><table id=\"projects\"><tr><th>project</th><th>name</th><th>repository</th></tr>",
    );
    for p in state.core.store.projects().await? {
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/projects/{id}\">{id}</a></td><td>{}</td><td>{}</td></tr>",
            escape(&p.name),
            escape(&p.repo_path),
            id = escape(&p.project_id),
        );
    }
    body.push_str("</table>");
    Ok(page(&state.core.nav, "Policy packs", &body))
}

/// Posts a form's JSON to the API and reloads, or shows the API's error.
const SCRIPT: &str = r#"<script>
async function polisSend(method, url, body, status) {
  const out = document.getElementById(status);
  out.textContent = 'saving…';
  let response;
  try {
    response = await fetch(url, {method, headers: {'content-type': 'application/json'}, body: JSON.stringify(body),
                                 credentials: 'same-origin'});
  } catch (e) { out.textContent = String(e); return; }
  if (response.ok) { location.reload(); return; }
  const text = await response.text();
  try { const e = JSON.parse(text).error; out.textContent = e.code + ': ' + e.message; } catch (_) { out.textContent = text; }
}
function polisSelection(form, project) {
  let overrides = null;
  const text = form.overrides.value.trim();
  if (text) { try { overrides = JSON.parse(text); } catch (e) { document.getElementById('policy-status').textContent = 'overrides: ' + e; return false; } }
  polisSend('PUT', '/projects/' + encodeURIComponent(project) + '/policy', {
    pack_key: form.pack_key.value, pack_version: form.pack_version.value || null,
    enforcement_mode: form.enforcement_mode.value || null, repo_local: form.repo_local.checked,
    overrides, ops: JSON.parse(form.ops.value || '[]')}, 'policy-status');
  return false;
}
function polisAnswer(form, project, key) {
  let value = form.value.value;
  if (form.json.value === 'yes') { try { value = JSON.parse(value); } catch (_) {} }
  polisSend('POST', '/projects/' + encodeURIComponent(project) + '/clarifications/' + encodeURIComponent(key),
            {value, answered_by: form.answered_by.value}, 'answer-status-' + key);
  return false;
}
</script>"#;

async fn project_page(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    let (project, selection, stored, effective) = super::routes::project_view(&state, &id).await?;
    let (catalog, _) = catalog(&state.core).await?;
    let jid = serde_json::to_string(&project.project_id).unwrap_or_default();
    let mut body = format!(
        "<p>Repository <code>{}</code>; created by {}.</p>{SCRIPT}",
        escape(&project.repo_path),
        escape(&project.created_by)
    );

    // The selection form.
    let _ = write!(
        body,
        "<h2>Policy</h2><form id=\"policy-form\" onsubmit='return polisSelection(this, {})'>",
        escape(&jid)
    );
    body.push_str("<label>pack <select name=\"pack_key\">");
    for (key, _) in catalog.list() {
        let selected = if key == selection.pack_key { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{k}\"{selected}>{k}</option>", k = escape(key));
    }
    let _ = write!(
        body,
        "</select></label> <label>version <input name=\"pack_version\" value=\"{}\" placeholder=\"latest active\" size=\"10\"></label> \
         <label>mode <select name=\"enforcement_mode\"><option value=\"\">from the policy</option>{}</select></label> \
         <label><input type=\"checkbox\" name=\"repo_local\"{}> read the repository's own file</label><br>\
         <label>overrides (RFC 7396 merge patch, JSON)<br><textarea name=\"overrides\" rows=\"6\" cols=\"90\">{}</textarea></label><br>\
         <label>operations (RFC 6902, JSON)<br><textarea name=\"ops\" rows=\"2\" cols=\"90\">{}</textarea></label><br>\
         <button type=\"submit\">Save</button> <span id=\"policy-status\"></span></form>",
        escape(selection.pack_version.as_deref().unwrap_or("")),
        ["warn", "block"]
            .iter()
            .map(|m| {
                let selected = if selection.enforcement_mode.map(|s| s.as_str()) == Some(m) { " selected" } else { "" };
                format!("<option value=\"{m}\"{selected}>{m}</option>")
            })
            .collect::<String>(),
        if selection.repo_local { " checked" } else { "" },
        escape(
            &selection
                .overrides
                .as_ref()
                .map(|o| serde_json::to_string_pretty(o).unwrap_or_default())
                .unwrap_or_default()
        ),
        escape(&Value::Array(selection.ops.clone()).to_string()),
    );
    if let Some(row) = &stored {
        let _ = write!(body, "<p>Set by {}.</p>", escape(&row.updated_by));
    }

    let effective = match effective {
        Ok(effective) => effective,
        Err(AppError::Client { code, message, .. }) => {
            let _ = write!(
                body,
                "<p id=\"effective-error\" class=\"disabled\">The effective policy cannot be resolved: {} ({})</p>",
                escape(&message),
                escape(code)
            );
            return Ok(page(&state.core.nav, &format!("Project {}", project.name), &body));
        }
        Err(other) => return Err(other),
    };

    // The effective policy with each value's layer.
    let _ = write!(
        body,
        "<h2>Effective policy</h2><p>pack <b>{}@{}</b> · mode <b id=\"mode\">{}</b> (from {:?}) · hash <code id=\"effective-hash\">{}</code></p>\
         <table id=\"effective\"><tr><th>value</th><th></th><th>layer</th></tr>",
        escape(&effective.pack_key),
        escape(&effective.pack_version),
        effective.mode.as_str(),
        effective.mode_source,
        escape(&effective.effective_hash),
    );
    for (pointer, layer) in &effective.provenance.0 {
        let value = effective.policy.pointer(pointer).map(Value::to_string).unwrap_or_default();
        let layer = format!("{layer:?}").to_lowercase();
        let _ = write!(
            body,
            "<tr class=\"layer-{layer}\"><td><code>{}</code></td><td>{}</td><td>{layer}</td></tr>",
            escape(pointer),
            escape(&value)
        );
    }
    body.push_str("</table>");

    // Findings.
    let findings = super::routes::console_findings(&state, &id).await?;
    let list = findings["findings"].as_array().cloned().unwrap_or_default();
    let _ = write!(
        body,
        "<h2>Findings</h2><p id=\"findings-summary\">{} findings{}</p><table id=\"findings\"><tr><th>severity</th><th>code</th>\
         <th>where</th><th>message</th><th>fix</th></tr>",
        list.len(),
        if findings["blocked"] == true { ", blocked" } else { "" }
    );
    for f in &list {
        let place = match (f["path"].as_str(), f["line"].as_u64()) {
            (Some(p), Some(l)) => format!("{p}:{l}"),
            (Some(p), None) => p.to_owned(),
            _ => f["metadata"]["key"].as_str().unwrap_or("").to_owned(),
        };
        let severity = f["severity"].as_str().unwrap_or("");
        let _ = write!(
            body,
            "<tr data-code=\"{code}\" data-key=\"{key}\"><td class=\"severity-{severity}\">{severity}</td><td>{code}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&place),
            escape(f["message"].as_str().unwrap_or("")),
            escape(f["suggested_fix"].as_str().unwrap_or("")),
            code = escape(f["code"].as_str().unwrap_or("")),
            key = escape(f["metadata"]["key"].as_str().unwrap_or("")),
        );
    }
    body.push_str("</table>");

    // Clarifications.
    let answers = state.core.store.answers(&id).await?;
    body.push_str("<h2>Clarifications</h2><table id=\"clarifications\"><tr><th>key</th><th>question</th><th>phase</th><th>answer</th></tr>");
    for c in view::clarifications(&effective.policy) {
        let answer = answers.iter().find(|a| a.key == c.key && a.scope == "project");
        let jkey = serde_json::to_string(&c.key).unwrap_or_default();
        let cell = match answer {
            Some(a) => format!("{} <small>by {}</small>", escape(&a.value_json), escape(&a.answered_by)),
            None => {
                let recommended = c
                    .recommended
                    .as_ref()
                    .map(|v| format!(" (recommended: {})", escape(&v.to_string())))
                    .unwrap_or_default();
                let input = match &c.options {
                    Some(options) => format!(
                        "<select name=\"value\">{}</select><input type=\"hidden\" name=\"json\" value=\"yes\">",
                        options
                            .iter()
                            .map(|o| format!("<option value=\"{v}\">{v}</option>", v = escape(&o.to_string())))
                            .collect::<String>()
                    ),
                    None => "<input name=\"value\" size=\"20\"><input type=\"hidden\" name=\"json\" value=\"no\">"
                        .to_owned(),
                };
                format!(
                    "<form class=\"answer\" data-key=\"{k}\" onsubmit='return polisAnswer(this, {p}, {jk})'>{input} \
                     <input name=\"answered_by\" placeholder=\"answered by\" size=\"12\" required> <button type=\"submit\">Answer</button>\
                     <span id=\"answer-status-{k}\"></span></form><small>unanswered{recommended}</small>",
                    k = escape(&c.key),
                    p = escape(&jid),
                    jk = escape(&jkey),
                )
            }
        };
        let _ = write!(
            body,
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{cell}</td></tr>",
            escape(&c.key),
            if c.blocking { " <b>blocking</b>" } else { "" },
            escape(&c.question),
            escape(&c.applies_to),
        );
    }
    body.push_str("</table>");
    Ok(page(&state.core.nav, &format!("Project {}", project.name), &body))
}
