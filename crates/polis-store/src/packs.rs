//! The policy-pack domain's tables (seed 002): published pack versions,
//! projects and their policy selection, the protocol runs and steps found
//! in a project's repository (with stable ids), answers to clarifications,
//! waivers, and events: findings evaluated, gate decisions and the audit
//! trail, each with the effective hash it was made under.
//!
//! The store keeps documents as canonical JSON text and knows nothing of
//! their rules: `polis-packs` validates them before they get here. Every
//! change is written with its audit event in one transaction, numbered by
//! a per-scope counter (`project:<id>` or `packs`) rather than by the
//! clock, so records of one scope have one order on every backend.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Store, StoreError, flag};

/// The scope that numbers the catalog's audit records.
pub const CATALOG_SCOPE: &str = "packs";

/// The scope that numbers a project's events and waivers.
pub fn project_scope(project_id: &str) -> String {
    format!("project:{project_id}")
}

/// One published pack version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackRow {
    /// The pack key.
    pub pack_key: String,
    /// The version.
    pub version: String,
    /// `active`, `deprecated` or `disabled`.
    pub status: String,
    /// The whole document, canonical JSON.
    pub body_json: String,
    /// SHA-256 of `body_json` as first published (before status changes), hex.
    pub body_sha256: String,
    /// Whether polis seeded it.
    pub builtin: bool,
    /// Who published it.
    pub created_by: String,
}

/// What publishing a pack version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// A new version was stored.
    Created,
    /// The same body was already stored; nothing changed.
    Unchanged,
    /// A different body is stored under this key and version.
    Conflict,
}

/// A project: a name and the local path of its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRow {
    /// The id, assigned in creation order: `1`, `2`, …
    pub project_id: String,
    /// Its name.
    pub name: String,
    /// The repository's local path.
    pub repo_path: String,
    /// Who created it.
    pub created_by: String,
    /// When, epoch milliseconds.
    pub created_at_ms: i64,
}

/// A project's policy selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    /// The pack key.
    pub pack_key: String,
    /// A pinned version; `None` follows the latest active one.
    pub pack_version: Option<String>,
    /// An RFC 7396 merge patch, JSON.
    pub overrides_json: Option<String>,
    /// RFC 6902 operations, a JSON array.
    pub ops_json: String,
    /// Whether the repository's own policy file is read.
    pub repo_local: bool,
    /// `warn` or `block`; `None` leaves it to the policy.
    pub enforcement_mode: Option<String>,
    /// Who set it.
    pub updated_by: String,
    /// When, epoch milliseconds.
    pub updated_at_ms: i64,
}

/// A protocol run a scan found, with its stable id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolRow {
    /// The id.
    pub protocol_id: String,
    /// The project it belongs to.
    pub project_id: String,
    /// The folder name under `.protocols/`.
    pub run_name: String,
}

/// A step a scan found, with its stable id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    /// The id.
    pub step_id: String,
    /// Its protocol run.
    pub protocol: ProtocolRow,
    /// The step file name, `NN-name.md`.
    pub step_name: String,
}

/// A recorded answer to a clarification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRow {
    /// `project`, or the protocol or step id it is scoped to.
    pub scope: String,
    /// The clarification's key.
    pub key: String,
    /// The answer, JSON.
    pub value_json: String,
    /// Who answered, as the request said.
    pub answered_by: String,
    /// The token subject that recorded it.
    pub recorded_by: String,
    /// When, epoch milliseconds.
    pub answered_at_ms: i64,
}

/// A granted waiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaiverRow {
    /// Its number within the project.
    pub seq: i64,
    /// The waiver document, JSON.
    pub waiver_json: String,
    /// The token subject that recorded it.
    pub recorded_by: String,
    /// When, epoch milliseconds.
    pub created_at_ms: i64,
}

/// An event to record: findings, a gate decision or an audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The project it concerns, if any (catalog changes concern none).
    pub project_id: Option<String>,
    /// `findings`, `gate` or `audit` (an audit body says what changed).
    pub kind: String,
    /// The project, protocol, step or pack it is about.
    pub subject: String,
    /// The token subject that caused it.
    pub actor: String,
    /// The effective hash before the change (audit) or used (findings, gate).
    pub hash_before: Option<String>,
    /// The effective hash after the change.
    pub hash_after: Option<String>,
    /// The event's body, JSON.
    pub body_json: String,
    /// When, epoch milliseconds.
    pub at_ms: i64,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Its number within its scope.
    pub seq: i64,
    /// What was recorded.
    pub event: NewEvent,
}

fn pack_from_row(row: &AnyRow) -> Result<PackRow, StoreError> {
    Ok(PackRow {
        pack_key: row.try_get("pack_key")?,
        version: row.try_get("version")?,
        status: row.try_get("status")?,
        body_json: row.try_get("body_json")?,
        body_sha256: row.try_get("body_sha256")?,
        builtin: flag(row.try_get("builtin")?),
        created_by: row.try_get("created_by")?,
    })
}

fn project_from_row(row: &AnyRow) -> Result<ProjectRow, StoreError> {
    Ok(ProjectRow {
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        repo_path: row.try_get("repo_path")?,
        created_by: row.try_get("created_by")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn event_from_row(row: &AnyRow) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        seq: row.try_get("seq")?,
        event: NewEvent {
            project_id: row.try_get("project_id")?,
            kind: row.try_get("kind")?,
            subject: row.try_get("subject")?,
            actor: row.try_get("actor")?,
            hash_before: row.try_get("hash_before")?,
            hash_after: row.try_get("hash_after")?,
            body_json: row.try_get("body_json")?,
            at_ms: row.try_get("at_ms")?,
        },
    })
}

/// The next number of `scope`, starting at 1. On PostgreSQL the counter's
/// row stays locked until the transaction ends, so concurrent writers of
/// one scope take turns.
async fn next_seq(tx: &mut Transaction<'_, Any>, scope: &str) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO pack_sequences (scope, value) VALUES ($1, 1) \
         ON CONFLICT (scope) DO UPDATE SET value = pack_sequences.value + 1 RETURNING value",
    )
    .bind(scope)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("value")?)
}

async fn insert_event(tx: &mut Transaction<'_, Any>, event: &NewEvent) -> Result<i64, StoreError> {
    let scope = match &event.project_id {
        Some(project) => project_scope(project),
        None => CATALOG_SCOPE.to_owned(),
    };
    let seq = next_seq(tx, &scope).await?;
    sqlx::query(
        "INSERT INTO pack_events (scope, seq, project_id, kind, subject, actor, hash_before, hash_after, body_json, \
         at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&scope)
    .bind(seq)
    .bind(&event.project_id)
    .bind(&event.kind)
    .bind(&event.subject)
    .bind(&event.actor)
    .bind(&event.hash_before)
    .bind(&event.hash_after)
    .bind(&event.body_json)
    .bind(event.at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(seq)
}

/// Stores a pack version unless its key and version are stored; says
/// whether it did.
async fn insert_pack(conn: &mut sqlx::AnyConnection, pack: &PackRow, at_ms: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO pack_versions (pack_key, version, status, body_json, body_sha256, builtin, created_by, \
         created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT DO NOTHING",
    )
    .bind(&pack.pack_key)
    .bind(&pack.version)
    .bind(&pack.status)
    .bind(&pack.body_json)
    .bind(&pack.body_sha256)
    .bind(i64::from(pack.builtin))
    .bind(&pack.created_by)
    .bind(at_ms)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A stable id for a name under a parent: a prefix and the first 16 hex
/// digits of SHA-256 over `parent/name`, so a rescan, another process or
/// another database derives the same id.
pub fn derived_id(prefix: &str, parent: &str, name: &str) -> String {
    let hex = polis_core::canonical::Digest::of_bytes(format!("{parent}/{name}").as_bytes()).to_hex();
    format!("{prefix}{}", &hex[..16])
}

impl Store {
    /// Stores a built-in pack version unless that key and version exist:
    /// seeding never overwrites what was published or deprecated since.
    pub async fn seed_pack(&self, pack: &PackRow, now_ms: i64) -> Result<bool, StoreError> {
        let mut conn = self.pool().acquire().await?;
        insert_pack(&mut conn, pack, now_ms).await
    }

    /// Publishes a pack version with its audit event: new, the same body
    /// again (a no-op), or a conflict with a different stored body.
    pub async fn publish_pack(&self, pack: &PackRow, audit: &NewEvent) -> Result<Published, StoreError> {
        let mut tx = self.pool().begin().await?;
        if !insert_pack(&mut tx, pack, audit.at_ms).await? {
            let row = sqlx::query("SELECT body_sha256 FROM pack_versions WHERE pack_key = $1 AND version = $2")
                .bind(&pack.pack_key)
                .bind(&pack.version)
                .fetch_one(&mut *tx)
                .await?;
            let stored: String = row.try_get("body_sha256")?;
            return Ok(if stored == pack.body_sha256 { Published::Unchanged } else { Published::Conflict });
        }
        insert_event(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Published::Created)
    }

    /// Every stored pack version, by key then as stored (callers order
    /// versions by their own rule).
    pub async fn pack_versions(&self) -> Result<Vec<PackRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT pack_key, version, status, body_json, body_sha256, builtin, created_by FROM pack_versions \
             ORDER BY pack_key, version",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(pack_from_row).collect()
    }

    /// Replaces the stored documents of changed pack versions (a status
    /// change), with one audit event, in one transaction.
    pub async fn update_packs(&self, packs: &[PackRow], audit: &NewEvent) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for pack in packs {
            sqlx::query(
                "UPDATE pack_versions SET status = $1, body_json = $2, updated_at_ms = $3 \
                 WHERE pack_key = $4 AND version = $5",
            )
            .bind(&pack.status)
            .bind(&pack.body_json)
            .bind(audit.at_ms)
            .bind(&pack.pack_key)
            .bind(&pack.version)
            .execute(&mut *tx)
            .await?;
        }
        insert_event(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates a project, numbered in creation order, with its audit event
    /// (whose `project_id` and `subject` are filled in here).
    pub async fn create_project(
        &self,
        name: &str,
        repo_path: &str,
        audit: &NewEvent,
    ) -> Result<ProjectRow, StoreError> {
        let mut tx = self.pool().begin().await?;
        let project_id = next_seq(&mut tx, "projects").await?.to_string();
        sqlx::query(
            "INSERT INTO projects (project_id, name, repo_path, created_by, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&project_id)
        .bind(name)
        .bind(repo_path)
        .bind(&audit.actor)
        .bind(audit.at_ms)
        .execute(&mut *tx)
        .await?;
        let audit = NewEvent { project_id: Some(project_id.clone()), subject: project_id.clone(), ..audit.clone() };
        insert_event(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(ProjectRow {
            project_id,
            name: name.to_owned(),
            repo_path: repo_path.to_owned(),
            created_by: audit.actor.clone(),
            created_at_ms: audit.at_ms,
        })
    }

    /// Every project, in creation order.
    pub async fn projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT project_id, name, repo_path, created_by, created_at_ms FROM projects ORDER BY created_at_ms, \
             project_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(project_from_row).collect()
    }

    /// One project.
    pub async fn project(&self, project_id: &str) -> Result<Option<ProjectRow>, StoreError> {
        let row = sqlx::query(
            "SELECT project_id, name, repo_path, created_by, created_at_ms FROM projects WHERE project_id = $1",
        )
        .bind(project_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(project_from_row).transpose()
    }

    /// A project's policy selection, if one was set.
    pub async fn project_policy(&self, project_id: &str) -> Result<Option<PolicyRow>, StoreError> {
        let row = sqlx::query(
            "SELECT pack_key, pack_version, overrides_json, ops_json, repo_local, enforcement_mode, updated_by, \
             updated_at_ms FROM project_policies WHERE project_id = $1",
        )
        .bind(project_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(PolicyRow {
                pack_key: row.try_get("pack_key")?,
                pack_version: row.try_get("pack_version")?,
                overrides_json: row.try_get("overrides_json")?,
                ops_json: row.try_get("ops_json")?,
                repo_local: flag(row.try_get("repo_local")?),
                enforcement_mode: row.try_get("enforcement_mode")?,
                updated_by: row.try_get("updated_by")?,
                updated_at_ms: row.try_get("updated_at_ms")?,
            })
        })
        .transpose()
    }

    /// Sets a project's policy selection, with its audit event.
    pub async fn set_project_policy(
        &self,
        project_id: &str,
        policy: &PolicyRow,
        audit: &NewEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO project_policies (project_id, pack_key, pack_version, overrides_json, ops_json, repo_local, \
             enforcement_mode, updated_by, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (project_id) DO UPDATE SET pack_key = excluded.pack_key, pack_version = excluded.pack_version, \
             overrides_json = excluded.overrides_json, ops_json = excluded.ops_json, repo_local = excluded.repo_local, \
             enforcement_mode = excluded.enforcement_mode, updated_by = excluded.updated_by, \
             updated_at_ms = excluded.updated_at_ms",
        )
        .bind(project_id)
        .bind(&policy.pack_key)
        .bind(&policy.pack_version)
        .bind(&policy.overrides_json)
        .bind(&policy.ops_json)
        .bind(i64::from(policy.repo_local))
        .bind(&policy.enforcement_mode)
        .bind(&policy.updated_by)
        .bind(policy.updated_at_ms)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives every protocol run and step of a scan its stable id (see
    /// [`derived_id`]), keeping ids already given, and returns the
    /// project's protocols and steps as stored, by name.
    pub async fn register_runs(
        &self,
        project_id: &str,
        runs: &[(String, Vec<String>)],
    ) -> Result<(Vec<ProtocolRow>, Vec<StepRow>), StoreError> {
        let mut tx = self.pool().begin().await?;
        for (run, steps) in runs {
            let protocol_id = derived_id("pr_", project_id, run);
            sqlx::query(
                "INSERT INTO pack_protocols (protocol_id, project_id, run_name) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&protocol_id)
            .bind(project_id)
            .bind(run)
            .execute(&mut *tx)
            .await?;
            for step in steps {
                sqlx::query(
                    "INSERT INTO pack_steps (step_id, protocol_id, step_name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(derived_id("st_", &protocol_id, step))
                .bind(&protocol_id)
                .bind(step)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.project_runs(project_id).await
    }

    /// A project's protocol runs and steps as stored, by name.
    pub async fn project_runs(&self, project_id: &str) -> Result<(Vec<ProtocolRow>, Vec<StepRow>), StoreError> {
        let protocols = sqlx::query(
            "SELECT protocol_id, project_id, run_name FROM pack_protocols WHERE project_id = $1 ORDER BY run_name",
        )
        .bind(project_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(protocol_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        let steps = sqlx::query(&format!("{STEP_SELECT} WHERE p.project_id = $1 ORDER BY p.run_name, s.step_name"))
            .bind(project_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(step_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((protocols, steps))
    }

    /// One protocol run by id.
    pub async fn protocol(&self, protocol_id: &str) -> Result<Option<ProtocolRow>, StoreError> {
        let row = sqlx::query("SELECT protocol_id, project_id, run_name FROM pack_protocols WHERE protocol_id = $1")
            .bind(protocol_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(protocol_from_row).transpose()
    }

    /// One step by id.
    pub async fn step(&self, step_id: &str) -> Result<Option<StepRow>, StoreError> {
        let row = sqlx::query(&format!("{STEP_SELECT} WHERE s.step_id = $1"))
            .bind(step_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(step_from_row).transpose()
    }

    /// A project's answers, by scope then key.
    pub async fn answers(&self, project_id: &str) -> Result<Vec<AnswerRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT scope, clarification_key, value_json, answered_by, recorded_by, answered_at_ms FROM pack_answers \
             WHERE project_id = $1 ORDER BY scope, clarification_key",
        )
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AnswerRow {
                    scope: row.try_get("scope")?,
                    key: row.try_get("clarification_key")?,
                    value_json: row.try_get("value_json")?,
                    answered_by: row.try_get("answered_by")?,
                    recorded_by: row.try_get("recorded_by")?,
                    answered_at_ms: row.try_get("answered_at_ms")?,
                })
            })
            .collect()
    }

    /// Records (or replaces) an answer, with its audit event.
    pub async fn set_answer(&self, project_id: &str, answer: &AnswerRow, audit: &NewEvent) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO pack_answers (project_id, scope, clarification_key, value_json, answered_by, recorded_by, \
             answered_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (project_id, scope, clarification_key) \
             DO UPDATE SET value_json = excluded.value_json, answered_by = excluded.answered_by, \
             recorded_by = excluded.recorded_by, answered_at_ms = excluded.answered_at_ms",
        )
        .bind(project_id)
        .bind(&answer.scope)
        .bind(&answer.key)
        .bind(&answer.value_json)
        .bind(&answer.answered_by)
        .bind(&answer.recorded_by)
        .bind(answer.answered_at_ms)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A project's waivers, in the order they were granted.
    pub async fn waivers(&self, project_id: &str) -> Result<Vec<WaiverRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT waiver_seq, waiver_json, recorded_by, created_at_ms FROM pack_waivers WHERE project_id = $1 \
             ORDER BY waiver_seq",
        )
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WaiverRow {
                    seq: row.try_get("waiver_seq")?,
                    waiver_json: row.try_get("waiver_json")?,
                    recorded_by: row.try_get("recorded_by")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect()
    }

    /// Grants a waiver, with its audit event; returns its number.
    pub async fn add_waiver(&self, project_id: &str, waiver_json: &str, audit: &NewEvent) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let seq = next_seq(&mut tx, &format!("waivers:{project_id}")).await?;
        sqlx::query(
            "INSERT INTO pack_waivers (project_id, waiver_seq, waiver_json, recorded_by, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(project_id)
        .bind(seq)
        .bind(waiver_json)
        .bind(&audit.actor)
        .bind(audit.at_ms)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Records an event (findings or a gate decision); returns its number.
    pub async fn record_pack_event(&self, event: &NewEvent) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let seq = insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// A project's events of one kind (`audit`, `gate`, `findings`),
    /// oldest first; `project_id` `None` reads the catalog's.
    pub async fn pack_events(&self, project_id: Option<&str>, kind: &str) -> Result<Vec<EventRow>, StoreError> {
        let scope = project_id.map_or_else(|| CATALOG_SCOPE.to_owned(), project_scope);
        let rows = sqlx::query(
            "SELECT seq, project_id, kind, subject, actor, hash_before, hash_after, body_json, at_ms FROM pack_events \
             WHERE scope = $1 AND kind = $2 ORDER BY seq",
        )
        .bind(scope)
        .bind(kind)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(event_from_row).collect()
    }
}

const STEP_SELECT: &str = "SELECT s.step_id, s.step_name, p.protocol_id, p.project_id, p.run_name FROM pack_steps s \
    JOIN pack_protocols p ON p.protocol_id = s.protocol_id";

fn protocol_from_row(row: &AnyRow) -> Result<ProtocolRow, StoreError> {
    Ok(ProtocolRow {
        protocol_id: row.try_get("protocol_id")?,
        project_id: row.try_get("project_id")?,
        run_name: row.try_get("run_name")?,
    })
}

fn step_from_row(row: &AnyRow) -> Result<StepRow, StoreError> {
    Ok(StepRow {
        step_id: row.try_get("step_id")?,
        protocol: protocol_from_row(row)?,
        step_name: row.try_get("step_name")?,
    })
}
