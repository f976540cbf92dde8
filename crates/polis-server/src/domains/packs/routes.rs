//! The routes of seed 002, with the role each needs: reading needs any
//! token; publishing, deprecating, creating projects, setting a project's
//! policy, answering and waiving need an admin token; asking the gate
//! needs any token (like asking for a run) and is recorded.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use polis_packs::eval::{self, Answer, Evaluation, Waiver};
use polis_packs::scan::RepoFacts;
use polis_packs::{EffectivePolicy, Finding, PackDocument, Scope, view};
use polis_store::packs::{AnswerRow, NewEvent, PolicyRow, ProjectRow, ProtocolRow, Published, StepRow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{
    PacksState, Selection, answers_for, audit, catalog, pack_error, pack_row, resolve, selection, status_text,
};
use crate::error::{AppError, ErrorBody};
use crate::extract::{AdminIdentity, ApiJson, ApiQuery, Identity, ReadAccess};

/// Largest pack document accepted by `POST /policy_packs`: the pack cap
/// (256,000 bytes of compact JSON) plus room for pretty-printing.
const PACK_BODY_LIMIT: usize = 1 << 20;

pub(super) fn router() -> Router<PacksState> {
    Router::new()
        .route(
            "/policy_packs",
            get(list_packs).post(publish_pack).layer(axum::extract::DefaultBodyLimit::max(PACK_BODY_LIMIT)),
        )
        .route("/policy_packs/{key}", get(get_pack))
        .route("/policy_packs/{key}/deprecate", post(deprecate_pack))
        .route("/projects", get(list_projects).post(create_project))
        .route("/projects/{id}", get(get_project))
        .route("/projects/{id}/policy", get(get_policy).put(put_policy))
        .route("/projects/{id}/policy/effective", get(get_effective))
        .route("/projects/{id}/policy/findings", get(project_findings))
        .route("/projects/{id}/policy/guidance", get(get_guidance))
        .route("/projects/{id}/policy/audit", get(get_audit))
        .route("/projects/{id}/clarifications", get(list_clarifications))
        .route("/projects/{id}/clarifications/{key}", post(answer_clarification))
        .route("/projects/{id}/waivers", get(list_waivers).post(add_waiver))
        .route("/projects/{id}/protocols", get(list_protocols))
        .route("/protocols/{id}/policy/findings", get(protocol_findings))
        .route("/protocols/{id}/gate", post(gate))
        .route("/steps/{id}/policy/findings", get(step_findings))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_packs,
        get_pack,
        publish_pack,
        deprecate_pack,
        list_projects,
        create_project,
        get_project,
        get_policy,
        put_policy,
        get_effective,
        project_findings,
        protocol_findings,
        step_findings,
        gate,
        list_clarifications,
        answer_clarification,
        list_waivers,
        add_waiver,
        list_protocols,
        get_guidance,
        get_audit
    ),
    components(schemas(
        PackDocumentBody,
        Selection,
        NewProject,
        AnswerRequest,
        GateRequest,
        DeprecateRequest,
        WaiverBody
    ))
)]
pub(super) struct PacksDoc;

fn ok<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, Json(body)).into_response()
}

/// Runs blocking work (repository reads) off the async runtime.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| AppError::internal("packs.task", e))
}

/// Decodes a JSON object body. serde would also take an array for a
/// struct whose fields all have defaults; these bodies are objects.
fn object_body<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, AppError> {
    if !body.is_object() {
        return Err(AppError::bad_request(
            "request.invalid_field",
            Some("body".to_owned()),
            "the body must be a JSON object",
        ));
    }
    crate::extract::decode_json(body.to_string().as_bytes())
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(crate::now_ms()) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

// ---------------------------------------------------------------- packs

fn version_summary(d: &PackDocument) -> Value {
    json!({"version": d.version, "name": d.name, "description": d.description, "status": status_text(d.status)})
}

#[utoipa::path(get, path = "/policy_packs", description = "Every pack with its versions and the latest active one. Role: read.",
    responses((status = 200, description = "`[{key, latest_active, versions: [{version, name, description, status}]}]`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_packs(_: ReadAccess, State(state): State<PacksState>) -> Result<Response, AppError> {
    let (catalog, _) = catalog(&state.core).await?;
    let packs: Vec<Value> = catalog
        .list()
        .map(|(key, versions)| {
            let latest = polis_packs::pack::select(key, versions, None).ok().map(|d| d.version.clone());
            json!({"key": key, "latest_active": latest, "versions": versions.iter().map(version_summary).collect::<Vec<_>>()})
        })
        .collect();
    Ok(ok(StatusCode::OK, packs))
}

#[utoipa::path(get, path = "/policy_packs/{key}", description = "One pack: every version's whole document, oldest first, and the latest active version. Role: read.",
    params(("key" = String, Path, description = "The pack key")),
    responses((status = 200, description = "`{key, latest_active, versions: [document]}`"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_pack(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(key): Path<String>,
) -> Result<Response, AppError> {
    let (catalog, _) = catalog(&state.core).await?;
    let (_, versions) = catalog
        .list()
        .find(|(k, _)| *k == key)
        .ok_or_else(|| AppError::not_found("pack.unknown", "key", format!("no policy pack `{key}`")))?;
    let latest = polis_packs::pack::select(&key, versions, None).ok().map(|d| d.version.clone());
    Ok(ok(StatusCode::OK, json!({"key": key, "latest_active": latest, "versions": versions})))
}

#[utoipa::path(post, path = "/policy_packs", description = "Publishes a pack version. The same body again is a no-op (200); a different body under a published key and version is a conflict (409). Role: admin.",
    request_body = PackDocumentBody,
    responses((status = 201, description = "published"), (status = 200, description = "already published with this body"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn publish_pack(
    AdminIdentity(who): AdminIdentity,
    State(state): State<PacksState>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let document = PackDocument::from_json("the pack document", &body).map_err(|e| pack_error(e, "body"))?;
    let row = pack_row(&document, false, &who.subject)?;
    let event = audit(
        None,
        &document.id(),
        &who.subject,
        None,
        Some(format!("sha256:{}", row.body_sha256)),
        json!({"action": "pack.publish", "pack": document.id()}),
    );
    match state.core.store.publish_pack(&row, &event).await? {
        Published::Created => Ok(ok(StatusCode::CREATED, json!({"status": "created", "pack": document.id()}))),
        Published::Unchanged => Ok(ok(StatusCode::OK, json!({"status": "unchanged", "pack": document.id()}))),
        Published::Conflict => Err(pack_error(
            polis_packs::PackError::Conflict { key: document.key, version: document.version },
            "version",
        )),
    }
}

/// A pack document, as `POST /policy_packs` takes it (for the OpenAPI
/// document; the handler checks it with `polis_packs`' own schema, which
/// says more: caps, `meta` matching, the secrets rule).
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "documents the request body only")]
struct PackDocumentBody {
    /// The stable key, such as `team-standard`.
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    key: String,
    /// The version, such as `1.0`.
    #[schema(pattern = "^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$")]
    version: String,
    /// A display name.
    name: Option<String>,
    /// What the pack is for.
    description: Option<String>,
    /// `active` (the default), `deprecated` or `disabled`.
    #[schema(nullable = false)]
    status: Option<StatusSchema>,
    /// The policy body: `meta` (with the same key and version),
    /// `defaults`, `requirements`, `clarifications`, `enforcement`,
    /// `constraints`.
    #[schema(value_type = Object)]
    pack: serde_json::Value,
}

/// A pack status, for the OpenAPI document.
#[derive(ToSchema, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "documents the request body only")]
enum StatusSchema {
    Active,
    Deprecated,
    Disabled,
}

/// The body of `POST /policy_packs/{key}/deprecate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeprecateRequest {
    /// The version to deprecate; absent deprecates every active version.
    #[serde(default)]
    version: Option<String>,
}

#[utoipa::path(post, path = "/policy_packs/{key}/deprecate", description = "Deprecates one version (or every active version) of a pack: pinned selections keep working, \"latest active\" skips it. Role: admin.",
    params(("key" = String, Path, description = "The pack key")), request_body = DeprecateRequest,
    responses((status = 200, description = "`{key, deprecated: [version]}`"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn deprecate_pack(
    AdminIdentity(who): AdminIdentity,
    State(state): State<PacksState>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, AppError> {
    let request: DeprecateRequest = object_body(body)?;
    let (mut catalog, _) = catalog(&state.core).await?;
    let before: Vec<PackDocument> =
        catalog.list().filter(|(k, _)| *k == key).flat_map(|(_, versions)| versions.to_vec()).collect();
    catalog.deprecate(&key, request.version.as_deref()).map_err(|e| pack_error(e, "key"))?;
    let changed: Vec<PackDocument> = catalog
        .list()
        .filter(|(k, _)| *k == key)
        .flat_map(|(_, versions)| versions.to_vec())
        .filter(|d| before.iter().any(|b| b.version == d.version && b.status != d.status))
        .collect();
    let rows = changed.iter().map(|d| pack_row(d, false, &who.subject)).collect::<Result<Vec<_>, _>>()?;
    let versions: Vec<&str> = changed.iter().map(|d| d.version.as_str()).collect();
    if !rows.is_empty() {
        let event =
            audit(None, &key, &who.subject, None, None, json!({"action": "pack.deprecate", "versions": versions}));
        state.core.store.update_packs(&rows, &event).await?;
    }
    Ok(ok(StatusCode::OK, json!({"key": key, "deprecated": versions})))
}

// ------------------------------------------------------------- projects

/// The body of `POST /projects`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewProject {
    /// A display name.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: String,
    /// The absolute local path of the project's repository, a directory
    /// the server can read.
    #[schema(min_length = 1, pattern = "^/")]
    repo_path: String,
}

fn project_json(p: &ProjectRow) -> Value {
    json!({"project_id": p.project_id, "name": p.name, "repo_path": p.repo_path, "created_by": p.created_by,
           "created_at_ms": p.created_at_ms})
}

async fn project(state: &PacksState, id: &str) -> Result<ProjectRow, AppError> {
    state
        .core
        .store
        .project(id)
        .await?
        .ok_or_else(|| AppError::not_found("project.unknown", "id", format!("no project `{id}`")))
}

#[utoipa::path(get, path = "/projects", description = "Every project, in creation order. Role: read.",
    responses((status = 200, description = "`[{project_id, name, repo_path, created_by, created_at_ms}]`"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_projects(_: ReadAccess, State(state): State<PacksState>) -> Result<Response, AppError> {
    let projects: Vec<Value> = state.core.store.projects().await?.iter().map(project_json).collect();
    Ok(ok(StatusCode::OK, projects))
}

#[utoipa::path(post, path = "/projects", description = "Creates a project over a local repository. Role: admin.", request_body = NewProject,
    responses((status = 201, description = "the project"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_project(
    AdminIdentity(who): AdminIdentity,
    State(state): State<PacksState>,
    ApiJson(request): ApiJson<NewProject>,
) -> Result<Response, AppError> {
    if request.name.trim().is_empty() || request.name.chars().count() > 200 {
        return Err(AppError::unprocessable(
            "request.invalid_field",
            "name",
            "`name` must be 1 to 200 characters, not all blank",
        ));
    }
    let path = std::path::PathBuf::from(&request.repo_path);
    if !path.is_absolute() {
        return Err(AppError::unprocessable(
            "request.invalid_field",
            "repo_path",
            "`repo_path` must be an absolute path",
        ));
    }
    let is_dir = blocking(move || path.is_dir()).await?;
    if !is_dir {
        return Err(AppError::unprocessable(
            "request.invalid_field",
            "repo_path",
            format!("`{}` is not a directory the server can read", request.repo_path),
        ));
    }
    let event = audit(None, "", &who.subject, None, None, json!({"action": "project.create", "name": request.name}));
    let row = state.core.store.create_project(&request.name, &request.repo_path, &event).await?;
    Ok(ok(StatusCode::CREATED, project_json(&row)))
}

#[utoipa::path(get, path = "/projects/{id}", description = "One project. Role: read.",
    params(("id" = String, Path, description = "The project id")),
    responses((status = 200, description = "the project"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_project(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    Ok(ok(StatusCode::OK, project_json(&project(&state, &id).await?)))
}

/// A project and its effective policy.
struct Resolved {
    project: ProjectRow,
    effective: EffectivePolicy,
}

async fn resolved(state: &PacksState, id: &str) -> Result<Resolved, AppError> {
    let project = project(state, id).await?;
    let stored = state.core.store.project_policy(id).await?;
    let selection = selection(stored.as_ref())?;
    let effective = effective_under(state, &project, &selection).await?;
    Ok(Resolved { project, effective })
}

async fn effective_under(
    state: &PacksState,
    project: &ProjectRow,
    selection: &Selection,
) -> Result<EffectivePolicy, AppError> {
    let (catalog, _) = catalog(&state.core).await?;
    let (project, selection) = (project.clone(), selection.clone());
    blocking(move || resolve(&catalog, &project, &selection)).await?.map_err(|e| pack_error(e, "policy"))
}

#[utoipa::path(get, path = "/projects/{id}/policy", description = "The project's selection: pack key and version (null: latest active), overrides, operations, the repo-local toggle and the enforcement mode, with the version it resolves to now. Role: read.",
    params(("id" = String, Path, description = "The project id")),
    responses((status = 200, description = "the selection"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_policy(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let project = project(&state, &id).await?;
    let stored = state.core.store.project_policy(&id).await?;
    let selection = selection(stored.as_ref())?;
    let (catalog, _) = catalog(&state.core).await?;
    let reference = polis_packs::PackRef { key: selection.pack_key.clone(), version: selection.pack_version.clone() };
    let resolved_version = catalog.resolve(&reference).ok().map(|d| d.version.clone());
    let mut body = serde_json::to_value(&selection).map_err(|e| AppError::internal("packs.encode", e))?;
    body["project_id"] = json!(project.project_id);
    body["resolved_version"] = json!(resolved_version);
    body["updated_by"] = json!(stored.as_ref().map(|s| s.updated_by.clone()));
    body["updated_at_ms"] = json!(stored.as_ref().map(|s| s.updated_at_ms));
    Ok(ok(StatusCode::OK, body))
}

#[utoipa::path(put, path = "/projects/{id}/policy", description = "Sets the project's selection. The whole effective policy is resolved first (pack, overrides, operations and the repository's own file when enabled); if any layer is invalid nothing is stored. Role: admin.",
    params(("id" = String, Path, description = "The project id")), request_body = Selection,
    responses((status = 200, description = "`{selection, effective_hash}`"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_policy(
    AdminIdentity(who): AdminIdentity,
    State(state): State<PacksState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, AppError> {
    let new: Selection = object_body(body)?;
    let project = project(&state, &id).await?;
    let stored = state.core.store.project_policy(&id).await?;
    let before = effective_under(&state, &project, &selection(stored.as_ref())?).await.ok().map(|e| e.effective_hash);
    let effective = effective_under(&state, &project, &new).await?;
    let text = |v: &Value| v.to_string();
    let row = PolicyRow {
        pack_key: new.pack_key.clone(),
        pack_version: new.pack_version.clone(),
        overrides_json: new.overrides.as_ref().map(text),
        ops_json: Value::Array(new.ops.clone()).to_string(),
        repo_local: new.repo_local,
        enforcement_mode: new.enforcement_mode.map(|m| m.as_str().to_owned()),
        updated_by: who.subject.clone(),
        updated_at_ms: crate::now_ms(),
    };
    let event = audit(
        Some(&id),
        &id,
        &who.subject,
        before,
        Some(effective.effective_hash.clone()),
        json!({"action": "policy.set", "selection": new}),
    );
    state.core.store.set_project_policy(&id, &row, &event).await?;
    Ok(ok(StatusCode::OK, json!({"project_id": id, "selection": new, "effective_hash": effective.effective_hash})))
}

#[utoipa::path(get, path = "/projects/{id}/policy/effective", description = "The merged policy (pack, then project overrides and operations, then the repository's own file), its `sha256:` hash over RFC 8785 JSON, the mode and its source, and for every leaf the layer that set it. Role: read.",
    params(("id" = String, Path, description = "The project id")),
    responses((status = 200, description = "the effective policy"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_effective(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let resolved = resolved(&state, &id).await?;
    Ok(ok(StatusCode::OK, &resolved.effective))
}

// ------------------------------------------------------------- findings

/// What an evaluation is about.
enum Target {
    Project,
    Protocol(ProtocolRow),
    Step(StepRow),
}

impl Target {
    fn kind(&self) -> &'static str {
        match self {
            Target::Project => "project",
            Target::Protocol(_) => "protocol",
            Target::Step(_) => "step",
        }
    }
}

/// The protocol run and step a finding is about, by name.
fn finding_place(f: &Finding) -> (Option<&str>, Option<String>) {
    let run = f.metadata.get("run").and_then(Value::as_str);
    let step = match f.scope {
        Scope::Step => f.metadata.get("step").and_then(Value::as_str).map(str::to_owned).or_else(|| {
            f.metadata.get("path").and_then(Value::as_str).and_then(|p| p.rsplit('/').next()).map(str::to_owned)
        }),
        _ => None,
    };
    (run, step)
}

/// An evaluation with the ids of the runs and steps its findings name.
struct Evaluated {
    project: ProjectRow,
    effective: EffectivePolicy,
    evaluation: Evaluation,
    protocols: Vec<ProtocolRow>,
    steps: Vec<StepRow>,
    at: OffsetDateTime,
}

async fn evaluate(
    state: &PacksState,
    project_id: &str,
    target: &Target,
    phase: Option<&str>,
) -> Result<Evaluated, AppError> {
    let resolved = resolved(state, project_id).await?;
    let effective = resolved.effective;
    let repo = std::path::PathBuf::from(&resolved.project.repo_path);
    let files = view::protocol_files(&effective.policy);
    let checks = view::required_checks(&effective.policy);
    let facts: RepoFacts = blocking(move || polis_packs::scan::scan(&repo, &files, &checks))
        .await?
        .map_err(|e| pack_error(e, "repo_path"))?;
    let runs: Vec<(String, Vec<String>)> =
        facts.runs.iter().map(|r| (r.name.clone(), r.steps.keys().cloned().collect())).collect();
    let (protocols, steps) = state.core.store.register_runs(project_id, &runs).await?;

    let rows = state.core.store.answers(project_id).await?;
    let scopes: Vec<&str> = match target {
        Target::Project => vec!["project"],
        Target::Protocol(p) => vec!["project", &p.protocol_id],
        Target::Step(s) => vec!["project", &s.protocol.protocol_id, &s.step_id],
    };
    let answers = answers_for(&rows, &scopes)?;
    let waivers = super::waivers(&state.core, project_id).await?;
    let at = now();
    let context = eval::Context { answers: &answers, waivers: &waivers, now: at, phase };
    let mut evaluation = eval::evaluate(&effective, &facts, &context).map_err(|e| pack_error(e, "phase"))?;
    // A protocol's findings are its own and the project's; a step's are
    // its own and the project's.
    evaluation.findings.retain(|f| {
        let (run, step) = finding_place(f);
        match target {
            Target::Project => true,
            Target::Protocol(p) => run.is_none_or(|r| r == p.run_name),
            Target::Step(s) => {
                f.scope == Scope::Project
                    || (run == Some(s.protocol.run_name.as_str()) && step.as_deref() == Some(s.step_name.as_str()))
            }
        }
    });
    evaluation.blocked = evaluation.findings.iter().any(|f| f.severity == polis_packs::Severity::Block);
    Ok(Evaluated { project: resolved.project, effective, evaluation, protocols, steps, at })
}

impl Evaluated {
    /// The findings with the ids of their protocol run and step.
    fn findings_json(&self, findings: &[Finding]) -> Vec<Value> {
        findings
            .iter()
            .map(|f| {
                let mut value = serde_json::to_value(f).unwrap_or(Value::Null);
                let (run, step) = finding_place(f);
                if let Some(p) = run.and_then(|r| self.protocols.iter().find(|p| p.run_name == r)) {
                    value["protocol_id"] = json!(p.protocol_id);
                    if let Some(s) = step.and_then(|name| {
                        self.steps.iter().find(|s| s.protocol.protocol_id == p.protocol_id && s.step_name == name)
                    }) {
                        value["step_id"] = json!(s.step_id);
                    }
                }
                value
            })
            .collect()
    }
}

/// `?phase=` of the findings routes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct PhaseQuery {
    /// Enforce blocking clarifications of this phase and those before it
    /// (onboarding, planning, execution, qa); by default every phase.
    #[serde(default)]
    phase: Option<String>,
}

async fn findings(
    state: &PacksState,
    project_id: &str,
    target: Target,
    subject: &str,
    phase: Option<&str>,
) -> Result<Response, AppError> {
    let evaluated = evaluate(state, project_id, &target, phase).await?;
    let findings = evaluated.findings_json(&evaluated.evaluation.findings);
    let body = json!({
        "project_id": evaluated.project.project_id, "subject": {"kind": target.kind(), "id": subject},
        "effective_hash": evaluated.evaluation.effective_hash, "mode": evaluated.evaluation.mode,
        "blocked": evaluated.evaluation.blocked, "evaluated_at": rfc3339(evaluated.at), "findings": findings,
    });
    state
        .core
        .store
        .record_pack_event(&NewEvent {
            project_id: Some(project_id.to_owned()),
            kind: "findings".to_owned(),
            subject: subject.to_owned(),
            actor: "polis".to_owned(),
            hash_before: Some(evaluated.effective.effective_hash.clone()),
            hash_after: None,
            body_json: body.to_string(),
            at_ms: crate::now_ms(),
        })
        .await?;
    Ok(ok(StatusCode::OK, body))
}

#[utoipa::path(get, path = "/projects/{id}/policy/findings", description = "Scans the project's repository and evaluates every protocol run and step; protocol runs and steps get stable ids. Findings are sorted by (scope, code, path, line, key) and stored as an event with the effective hash. Role: read.",
    params(("id" = String, Path, description = "The project id"), PhaseQuery),
    responses((status = 200, description = "`{effective_hash, mode, blocked, evaluated_at, findings}`"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn project_findings(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PhaseQuery>,
) -> Result<Response, AppError> {
    findings(&state, &id, Target::Project, &id, query.phase.as_deref()).await
}

async fn protocol_row(state: &PacksState, id: &str) -> Result<ProtocolRow, AppError> {
    state.core.store.protocol(id).await?.ok_or_else(|| {
        AppError::not_found(
            "protocol.unknown",
            "id",
            format!("no protocol run `{id}` (ids are given when a project's findings are read)"),
        )
    })
}

#[utoipa::path(get, path = "/protocols/{id}/policy/findings", description = "The findings of one protocol run and of its project (checks, clarifications), with the answers scoped to it. Role: read.",
    params(("id" = String, Path, description = "The protocol run id"), PhaseQuery),
    responses((status = 200, description = "the findings"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn protocol_findings(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PhaseQuery>,
) -> Result<Response, AppError> {
    let protocol = protocol_row(&state, &id).await?;
    let project_id = protocol.project_id.clone();
    findings(&state, &project_id, Target::Protocol(protocol), &id, query.phase.as_deref()).await
}

#[utoipa::path(get, path = "/steps/{id}/policy/findings", description = "The findings of one step and of its project. Role: read.",
    params(("id" = String, Path, description = "The step id"), PhaseQuery),
    responses((status = 200, description = "the findings"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn step_findings(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PhaseQuery>,
) -> Result<Response, AppError> {
    let step = state.core.store.step(&id).await?.ok_or_else(|| {
        AppError::not_found(
            "step.unknown",
            "id",
            format!("no step `{id}` (ids are given when a project's findings are read)"),
        )
    })?;
    let project_id = step.protocol.project_id.clone();
    findings(&state, &project_id, Target::Step(step), &id, query.phase.as_deref()).await
}

#[utoipa::path(get, path = "/projects/{id}/protocols", description = "The project's protocol runs and steps with their ids, from the last scan. Role: read.",
    params(("id" = String, Path, description = "The project id")),
    responses((status = 200, description = "`[{protocol_id, run_name, steps: [{step_id, step_name}]}]`"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_protocols(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    project(&state, &id).await?;
    let (protocols, steps) = state.core.store.project_runs(&id).await?;
    let body: Vec<Value> = protocols
        .iter()
        .map(|p| {
            let steps: Vec<Value> = steps
                .iter()
                .filter(|s| s.protocol.protocol_id == p.protocol_id)
                .map(|s| json!({"step_id": s.step_id, "step_name": s.step_name}))
                .collect();
            json!({"protocol_id": p.protocol_id, "run_name": p.run_name, "steps": steps})
        })
        .collect();
    Ok(ok(StatusCode::OK, body))
}

/// The body of `POST /protocols/{id}/gate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct GateRequest {
    /// The phase to gate (onboarding, planning, execution, qa); by default
    /// every phase.
    #[serde(default)]
    phase: Option<String>,
}

#[utoipa::path(post, path = "/protocols/{id}/gate", description = "Whether the protocol run may pass a phase's gate: allowed, or blocked with the blocking findings. The decision is recorded with the effective hash. Role: read.",
    params(("id" = String, Path, description = "The protocol run id")), request_body = GateRequest,
    responses((status = 200, description = "`{allowed, phase, effective_hash, blocking, evaluated_at}`"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn gate(
    who: Identity,
    State(state): State<PacksState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, AppError> {
    let request: GateRequest = object_body(body)?;
    let protocol = protocol_row(&state, &id).await?;
    let project_id = protocol.project_id.clone();
    let evaluated = evaluate(&state, &project_id, &Target::Protocol(protocol), request.phase.as_deref()).await?;
    let decision = eval::gate(&evaluated.evaluation, request.phase.as_deref());
    let body = json!({
        "protocol_id": id, "allowed": decision.allowed, "phase": decision.phase, "mode": evaluated.evaluation.mode,
        "effective_hash": decision.effective_hash, "evaluated_at": rfc3339(evaluated.at),
        "blocking": evaluated.findings_json(&decision.blocking),
    });
    state
        .core
        .store
        .record_pack_event(&NewEvent {
            project_id: Some(project_id),
            kind: "gate".to_owned(),
            subject: id,
            actor: who.subject,
            hash_before: Some(decision.effective_hash.clone()),
            hash_after: None,
            body_json: body.to_string(),
            at_ms: crate::now_ms(),
        })
        .await?;
    Ok(ok(StatusCode::OK, body))
}

// ------------------------------------------------------ clarifications

#[utoipa::path(get, path = "/projects/{id}/clarifications", description = "Every clarification the effective policy asks, with its recorded answers (by scope: `project`, a protocol id or a step id); the recommended value is shown, never assumed. Role: read.",
    params(("id" = String, Path, description = "The project id")),
    responses((status = 200, description = "`{effective_hash, clarifications: [...]}`"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_clarifications(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let resolved = resolved(&state, &id).await?;
    let rows = state.core.store.answers(&id).await?;
    let clarifications: Vec<Value> = view::clarifications(&resolved.effective.policy)
        .into_iter()
        .map(|c| {
            let answers: Vec<Value> = rows
                .iter()
                .filter(|r| r.key == c.key)
                .map(|r| {
                    json!({"scope": r.scope, "value": serde_json::from_str::<Value>(&r.value_json).unwrap_or(Value::Null),
                           "answered_by": r.answered_by, "recorded_by": r.recorded_by, "answered_at_ms": r.answered_at_ms})
                })
                .collect();
            json!({"key": c.key, "question": c.question, "options": c.options, "recommended": c.recommended,
                   "blocking": c.blocking, "applies_to": c.applies_to,
                   "answered": answers.iter().any(|a| a["scope"] == "project"), "answers": answers})
        })
        .collect();
    Ok(ok(
        StatusCode::OK,
        json!({"project_id": id, "effective_hash": resolved.effective.effective_hash, "clarifications": clarifications}),
    ))
}

/// The body of `POST /projects/{id}/clarifications/{key}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AnswerRequest {
    /// The answer; one of the clarification's options when it has them (a
    /// list answer: each element one).
    #[schema(value_type = Object)]
    value: Value,
    /// Who answered.
    answered_by: String,
    /// Scope the answer to one protocol run (its id).
    #[serde(default)]
    protocol_id: Option<String>,
    /// Scope the answer to one step (its id).
    #[serde(default)]
    step_id: Option<String>,
}

#[utoipa::path(post, path = "/projects/{id}/clarifications/{key}", description = "Records an answer, validated against the clarification's options, scoped to the project or to one protocol run or step. Role: admin.",
    params(("id" = String, Path, description = "The project id"), ("key" = String, Path, description = "The clarification key")),
    request_body = AnswerRequest,
    responses((status = 200, description = "`{key, scope, value, answered_by}`"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn answer_clarification(
    AdminIdentity(who): AdminIdentity,
    State(state): State<PacksState>,
    Path((id, key)): Path<(String, String)>,
    ApiJson(request): ApiJson<AnswerRequest>,
) -> Result<Response, AppError> {
    let resolved = resolved(&state, &id).await?;
    let clarification =
        view::clarifications(&resolved.effective.policy).into_iter().find(|c| c.key == key).ok_or_else(|| {
            AppError::not_found(
                "clarification.unknown",
                "key",
                format!("the project's policy asks no clarification `{key}`"),
            )
        })?;
    let answer = Answer { value: request.value.clone(), answered_by: request.answered_by.clone() };
    eval::check_answer(&clarification, &answer)
        .map_err(|m| AppError::unprocessable("clarification.invalid_answer", "value", m))?;
    let scope = match (&request.protocol_id, &request.step_id) {
        (Some(_), Some(_)) => {
            return Err(AppError::unprocessable(
                "request.invalid_field",
                "step_id",
                "give `protocol_id` or `step_id`, not both",
            ));
        }
        (Some(p), None) => {
            let row = protocol_row(&state, p).await?;
            if row.project_id != id {
                return Err(AppError::unprocessable(
                    "request.invalid_field",
                    "protocol_id",
                    format!("protocol run `{p}` is not of project `{id}`"),
                ));
            }
            p.clone()
        }
        (None, Some(s)) => {
            let row = state
                .core
                .store
                .step(s)
                .await?
                .ok_or_else(|| AppError::not_found("step.unknown", "step_id", format!("no step `{s}`")))?;
            if row.protocol.project_id != id {
                return Err(AppError::unprocessable(
                    "request.invalid_field",
                    "step_id",
                    format!("step `{s}` is not of project `{id}`"),
                ));
            }
            s.clone()
        }
        (None, None) => "project".to_owned(),
    };
    let row = AnswerRow {
        scope: scope.clone(),
        key: key.clone(),
        value_json: request.value.to_string(),
        answered_by: request.answered_by.clone(),
        recorded_by: who.subject.clone(),
        answered_at_ms: crate::now_ms(),
    };
    let hash = Some(resolved.effective.effective_hash.clone());
    let event = audit(
        Some(&id),
        &id,
        &who.subject,
        hash.clone(),
        hash,
        json!({"action": "clarification.answer", "key": key, "scope": scope, "value": request.value, "answered_by": request.answered_by}),
    );
    state.core.store.set_answer(&id, &row, &event).await?;
    Ok(ok(
        StatusCode::OK,
        json!({"key": key, "scope": scope, "value": request.value, "answered_by": request.answered_by}),
    ))
}

// --------------------------------------------------------------- waivers

/// A waiver, the body of `POST /projects/{id}/waivers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WaiverBody {
    /// The finding code it waives.
    code: String,
    /// Limit it to findings at this path.
    #[serde(default)]
    path: Option<String>,
    /// Why.
    reason: String,
    /// Who granted it.
    granted_by: String,
    /// RFC 3339; the waiver applies strictly before this instant.
    expires_at: String,
}

#[utoipa::path(get, path = "/projects/{id}/waivers", description = "The project's waivers in the order granted, each saying whether it applies now. Role: read.",
    params(("id" = String, Path, description = "The project id")),
    responses((status = 200, description = "`[{seq, code, path, reason, granted_by, expires_at, active}]`"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_waivers(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    project(&state, &id).await?;
    let at = now();
    let mut body = Vec::new();
    for row in state.core.store.waivers(&id).await? {
        let waiver: Waiver = serde_json::from_str(&row.waiver_json)
            .map_err(|e| AppError::internal("store.corrupt", format!("waiver {}: {e}", row.seq)))?;
        let active = waiver.expiry().map(|e| at < e).unwrap_or(false);
        let mut value = serde_json::to_value(&waiver).map_err(|e| AppError::internal("packs.encode", e))?;
        value["seq"] = json!(row.seq);
        value["active"] = json!(active);
        value["recorded_by"] = json!(row.recorded_by);
        body.push(value);
    }
    Ok(ok(StatusCode::OK, json!({"project_id": id, "evaluated_at": rfc3339(at), "waivers": body})))
}

#[utoipa::path(post, path = "/projects/{id}/waivers", description = "Grants a waiver: a blocking finding with this code (and path) is a warning until `expires_at`. Role: admin.",
    params(("id" = String, Path, description = "The project id")), request_body = WaiverBody,
    responses((status = 201, description = "`{seq}`"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn add_waiver(
    AdminIdentity(who): AdminIdentity,
    State(state): State<PacksState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WaiverBody>,
) -> Result<Response, AppError> {
    let resolved = resolved(&state, &id).await?;
    let waiver = Waiver {
        code: body.code,
        path: body.path,
        reason: body.reason,
        granted_by: body.granted_by,
        expires_at: body.expires_at,
    };
    waiver.expiry().map_err(|e| pack_error(e, "body"))?;
    let text = serde_json::to_string(&waiver).map_err(|e| AppError::internal("packs.encode", e))?;
    let hash = Some(resolved.effective.effective_hash.clone());
    let event =
        audit(Some(&id), &id, &who.subject, hash.clone(), hash, json!({"action": "waiver.grant", "waiver": waiver}));
    let seq = state.core.store.add_waiver(&id, &text, &event).await?;
    Ok(ok(StatusCode::CREATED, json!({"project_id": id, "seq": seq})))
}

// ------------------------------------------------------ guidance, audit

/// `?format=` of the guidance route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct GuidanceQuery {
    /// `json` (the default) or `markdown`.
    #[serde(default)]
    format: Option<String>,
}

#[utoipa::path(get, path = "/projects/{id}/policy/guidance", description = "The effective policy rendered for a planner (protocol files, step sections, checks, QA policy, model defaults, unanswered clarifications), as JSON or Markdown, carrying the effective hash. Role: read.",
    params(("id" = String, Path, description = "The project id"), GuidanceQuery),
    responses((status = 200, description = "the guidance"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_guidance(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<GuidanceQuery>,
) -> Result<Response, AppError> {
    let resolved = resolved(&state, &id).await?;
    let rows = state.core.store.answers(&id).await?;
    let guidance = polis_packs::guidance::guidance(&resolved.effective, &answers_for(&rows, &["project"])?);
    match query.format.as_deref() {
        None | Some("json") => Ok(ok(StatusCode::OK, guidance)),
        Some("markdown") => {
            Ok(([(axum::http::header::CONTENT_TYPE, "text/markdown; charset=utf-8")], guidance.to_markdown())
                .into_response())
        }
        Some(other) => Err(AppError::bad_request(
            "request.invalid_query",
            Some("format".to_owned()),
            format!("unknown format `{other}`: expected json or markdown"),
        )),
    }
}

#[utoipa::path(get, path = "/projects/{id}/policy/audit", description = "Every change to the project's selection, answers and waivers (and the project's creation), oldest first: who (the token's subject), when, and the effective hash before and after. Role: read.",
    params(("id" = String, Path, description = "The project id")),
    responses((status = 200, description = "`[{seq, action, actor, at_ms, hash_before, hash_after, detail}]`"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_audit(
    _: ReadAccess,
    State(state): State<PacksState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    project(&state, &id).await?;
    let records: Vec<Value> = state
        .core
        .store
        .pack_events(Some(&id), "audit")
        .await?
        .into_iter()
        .map(|row| {
            let detail: Value = serde_json::from_str(&row.event.body_json).unwrap_or(Value::Null);
            json!({"seq": row.seq, "action": detail.get("action").cloned().unwrap_or(Value::Null), "actor": row.event.actor,
                   "at_ms": row.event.at_ms, "hash_before": row.event.hash_before, "hash_after": row.event.hash_after,
                   "detail": detail})
        })
        .collect();
    Ok(ok(StatusCode::OK, records))
}

/// The selection a project has, for the console.
pub(super) async fn project_view(
    state: &PacksState,
    id: &str,
) -> Result<(ProjectRow, Selection, Option<PolicyRow>, Result<EffectivePolicy, AppError>), AppError> {
    let project = project(state, id).await?;
    let stored = state.core.store.project_policy(id).await?;
    let selection = selection(stored.as_ref())?;
    let effective = effective_under(state, &project, &selection).await;
    Ok((project, selection, stored, effective))
}

/// A project's findings for the console page (a view, not recorded as an
/// event; the findings routes record theirs).
pub(super) async fn console_findings(state: &PacksState, id: &str) -> Result<Value, AppError> {
    let evaluated = evaluate(state, id, &Target::Project, None).await?;
    Ok(json!({"blocked": evaluated.evaluation.blocked, "mode": evaluated.evaluation.mode,
              "findings": evaluated.findings_json(&evaluated.evaluation.findings)}))
}
