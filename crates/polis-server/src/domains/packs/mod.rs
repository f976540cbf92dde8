//! Policy packs as the service serves them (seed 002): the catalog
//! (`/policy_packs`), projects and their policy selection
//! (`/projects/{id}/policy`), the effective policy with each value's layer,
//! findings for a project, a protocol run or a step, the gate, answers to
//! clarifications, waivers, planning guidance and the audit trail; and the
//! console's packs and project pages ([`console`]).
//!
//! The rules are `polis-packs`'; this module reads the store, resolves the
//! layers, scans the project's repository (blocking work, off the async
//! runtime), and records what it decided. Every change is stored with an
//! audit event naming the token subject and the effective hash before and
//! after; every evaluation and gate decision is stored as an event with the
//! hash it was made under. Waivers are judged at the instant the request is
//! handled, read once, and returned with the answer (`evaluated_at`).

pub mod console;
mod routes;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use polis_packs::eval::{Answer, Answers, Waiver};
use polis_packs::{Catalog, EffectivePolicy, PackDocument, PackError, PackRef, PackStatus, ProjectLayer};
use polis_store::packs::{AnswerRow, NewEvent, PackRow, PolicyRow, ProjectRow};
use serde_json::Value;
use utoipa::OpenApi;

use crate::Core;
use crate::domain::{BoxFuture, ContractService, Domain};
use crate::error::AppError;
use crate::extract::Auth;

/// Settings of the policy-pack service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seed polis's five packs on start when a key and version is not
    /// stored yet. By default true.
    pub seed_builtin: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { seed_builtin: true }
    }
}

/// What the packs routes share.
#[derive(Clone)]
pub struct PacksState {
    /// The service's shared state.
    pub core: Core,
}

impl FromRef<PacksState> for Arc<Auth> {
    fn from_ref(state: &PacksState) -> Self {
        Arc::clone(&state.core.auth)
    }
}

/// The policy-pack domain.
pub struct PacksDomain {
    state: PacksState,
    settings: Settings,
}

/// The domain over `core`.
pub fn domain(core: &Core, settings: &Settings) -> Arc<dyn Domain> {
    Arc::new(PacksDomain { state: PacksState { core: core.clone() }, settings: settings.clone() })
}

impl Domain for PacksDomain {
    fn name(&self) -> &'static str {
        "packs"
    }

    fn title(&self) -> &'static str {
        "Policy packs"
    }

    fn contracts(&self) -> Vec<Arc<dyn ContractService>> {
        // Packs are data polis evaluates itself, not plugins.
        Vec::new()
    }

    fn router(&self) -> Router {
        routes::router().merge(console::router()).with_state(self.state.clone())
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        routes::PacksDoc::openapi()
    }

    fn console_page(&self) -> Option<(&'static str, &'static str)> {
        Some(("/console/packs", "Policy packs"))
    }

    fn start(&self) -> BoxFuture<'_, Result<(), polis_store::StoreError>> {
        Box::pin(async move {
            if !self.settings.seed_builtin {
                return Ok(());
            }
            let documents = polis_packs::builtin::all()
                .map_err(|e| polis_store::StoreError::Corrupt { field: "builtin packs", message: e.to_string() })?;
            for document in documents {
                let row = pack_row(&document, true, "polis").map_err(|e| polis_store::StoreError::Corrupt {
                    field: "builtin packs",
                    message: format!("{e:?}"),
                })?;
                self.state.core.store.seed_pack(&row, crate::now_ms()).await?;
            }
            Ok(())
        })
    }
}

/// A pack document as a store row: canonical JSON and its digest.
pub(crate) fn pack_row(document: &PackDocument, builtin: bool, by: &str) -> Result<PackRow, AppError> {
    let body = polis_core::canonical::to_canonical_vec(document)
        .map_err(|e| AppError::internal("pack.not_canonical", e))
        .and_then(|b| String::from_utf8(b).map_err(|e| AppError::internal("pack.not_canonical", e)))?;
    Ok(PackRow {
        pack_key: document.key.clone(),
        version: document.version.clone(),
        status: status_text(document.status).to_owned(),
        body_sha256: polis_core::canonical::Digest::of_bytes(body.as_bytes()).to_hex(),
        body_json: body,
        builtin,
        created_by: by.to_owned(),
    })
}

/// The stored catalog. Stored documents were validated when published;
/// one that no longer validates is an internal error, never skipped.
pub(crate) async fn catalog(core: &Core) -> Result<(Catalog, Vec<PackRow>), AppError> {
    let rows = core.store.pack_versions().await?;
    let mut catalog = Catalog::default();
    for row in &rows {
        let subject = format!("stored pack `{}@{}`", row.pack_key, row.version);
        let document = PackDocument::from_json(&subject, row.body_json.as_bytes())
            .map_err(|e| AppError::internal("pack.corrupt", e))?;
        catalog.insert(document).map_err(|e| AppError::internal("pack.corrupt", e))?;
    }
    Ok((catalog, rows))
}

/// A project's selection as the API shows it; the default pack, following
/// its latest active version, with the repository's file read, when none
/// was set.
pub(crate) fn selection(row: Option<&PolicyRow>) -> Result<Selection, AppError> {
    let Some(row) = row else { return Ok(Selection::default()) };
    let corrupt =
        |field: &'static str, e: serde_json::Error| AppError::internal("store.corrupt", format!("{field}: {e}"));
    Ok(Selection {
        pack_key: row.pack_key.clone(),
        pack_version: row.pack_version.clone(),
        overrides: row
            .overrides_json
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt("overrides_json", e))?,
        ops: serde_json::from_str(&row.ops_json).map_err(|e| corrupt("ops_json", e))?,
        repo_local: row.repo_local,
        enforcement_mode: row
            .enforcement_mode
            .as_deref()
            .map(|m| m.parse::<polis_packs::Mode>())
            .transpose()
            .map_err(|e| AppError::internal("store.corrupt", format!("enforcement_mode: {e}")))?,
    })
}

/// A project's policy selection: the body of `PUT /projects/{id}/policy`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// The pack key. By default `default`.
    #[serde(default = "default_key")]
    pub pack_key: String,
    /// A pinned version; absent or null follows the latest active version.
    #[serde(default)]
    pub pack_version: Option<String>,
    /// An RFC 7396 merge patch of `defaults`, `requirements`,
    /// `clarifications`, `enforcement` and `constraints`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub overrides: Option<Value>,
    /// RFC 6902 operations applied after the merge patch.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub ops: Vec<Value>,
    /// Whether the repository's `.polis/policy.*` file is the last layer.
    /// By default true.
    #[serde(default = "yes")]
    pub repo_local: bool,
    /// `warn` or `block`; the first source of truth for the mode. Absent
    /// or null leaves it to the policy's `enforcement.mode`, else `warn`.
    #[serde(default)]
    #[schema(value_type = Option<ModeSchema>)]
    pub enforcement_mode: Option<polis_packs::Mode>,
}

/// An enforcement mode, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code, reason = "documents the request body only")]
pub enum ModeSchema {
    /// Every finding is a warning.
    Warn,
    /// Block codes and blocking clarifications block.
    Block,
}

fn default_key() -> String {
    polis_packs::builtin::DEFAULT_KEY.to_owned()
}

fn yes() -> bool {
    true
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            pack_key: default_key(),
            pack_version: None,
            overrides: None,
            ops: Vec::new(),
            repo_local: true,
            enforcement_mode: None,
        }
    }
}

/// Resolves a project's effective policy under `selection`, reading the
/// repository's own file when the selection says so. Blocking (it reads
/// the repository).
pub(crate) fn resolve(
    catalog: &Catalog,
    project: &ProjectRow,
    selection: &Selection,
) -> Result<EffectivePolicy, PackError> {
    let reference = PackRef { key: selection.pack_key.clone(), version: selection.pack_version.clone() };
    let pack = catalog.resolve(&reference)?;
    let layer = ProjectLayer {
        overrides: selection.overrides.clone(),
        ops: selection.ops.clone(),
        enforcement_mode: selection.enforcement_mode,
    };
    let repo_local =
        if selection.repo_local { polis_packs::local::load(&PathBuf::from(&project.repo_path))? } else { None };
    polis_packs::resolve(pack, &layer, repo_local.as_ref())
}

/// A pack error as a client error: 404 for an unknown pack or version, 422
/// for everything the request or the repository got wrong, naming the
/// subject (pack, layer or file) and, for rule violations, every path.
pub(crate) fn pack_error(e: PackError, field: &str) -> AppError {
    match &e {
        PackError::UnknownPack { .. } | PackError::UnknownVersion { .. } => {
            AppError::not_found("pack.unknown", field, e.to_string())
        }
        PackError::Conflict { .. } => AppError::Client {
            status: axum::http::StatusCode::CONFLICT,
            code: "pack.conflict",
            field: Some(field.to_owned()),
            message: e.to_string(),
        },
        PackError::Hash(_) => AppError::internal("pack.hash", e),
        PackError::Invalid { .. } => AppError::unprocessable("pack.invalid", field, e.to_string()),
        PackError::TooLarge { .. } => AppError::unprocessable("pack.too_large", field, e.to_string()),
        PackError::Parse { .. } => AppError::unprocessable("pack.parse", field, e.to_string()),
        PackError::Io { .. } => AppError::unprocessable("pack.unreadable", field, e.to_string()),
        PackError::NoActiveVersion { .. } => AppError::unprocessable("pack.no_active_version", field, e.to_string()),
        PackError::Disabled { .. } => AppError::unprocessable("pack.disabled", field, e.to_string()),
        PackError::Rejected { .. } => AppError::unprocessable("pack.rejected", field, e.to_string()),
    }
}

/// The answers that apply at a scope: the project's, overridden by those
/// of the protocol run, overridden by those of the step.
pub(crate) fn answers_for(rows: &[AnswerRow], scopes: &[&str]) -> Result<Answers, AppError> {
    let mut answers = Answers::new();
    for scope in scopes {
        for row in rows.iter().filter(|r| r.scope == *scope) {
            let value = serde_json::from_str(&row.value_json)
                .map_err(|e| AppError::internal("store.corrupt", format!("answer `{}`: {e}", row.key)))?;
            answers.insert(row.key.clone(), Answer { value, answered_by: row.answered_by.clone() });
        }
    }
    Ok(answers)
}

/// The project's waivers.
pub(crate) async fn waivers(core: &Core, project_id: &str) -> Result<Vec<Waiver>, AppError> {
    core.store
        .waivers(project_id)
        .await?
        .iter()
        .map(|w| {
            serde_json::from_str(&w.waiver_json)
                .map_err(|e| AppError::internal("store.corrupt", format!("waiver {}: {e}", w.seq)))
        })
        .collect()
}

/// An audit event for `project_id` (or the catalog).
pub(crate) fn audit(
    project_id: Option<&str>,
    subject: &str,
    actor: &str,
    before: Option<String>,
    after: Option<String>,
    body: Value,
) -> NewEvent {
    NewEvent {
        project_id: project_id.map(str::to_owned),
        kind: "audit".to_owned(),
        subject: subject.to_owned(),
        actor: actor.to_owned(),
        hash_before: before,
        hash_after: after,
        body_json: body.to_string(),
        at_ms: crate::now_ms(),
    }
}

/// A status as stored and shown.
pub(crate) fn status_text(status: PackStatus) -> &'static str {
    match status {
        PackStatus::Active => "active",
        PackStatus::Deprecated => "deprecated",
        PackStatus::Disabled => "disabled",
    }
}
