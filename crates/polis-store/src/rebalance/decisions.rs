//! Rebalancing decisions: jobs of kind [`DECIDE_KIND`] with the seed's run
//! key, the policy spec and the snapshot each is bound to, and the moves of
//! each ready decision.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::jobs::{JOB_COLUMNS, JobResult, JobRow, NewJob, complete_in, enqueue_in, job_from_row};
use crate::{Store, StoreError, flag};

/// The job kind of one rebalancing decision.
pub const DECIDE_KIND: &str = "rebalance.decide";

/// A decision to enqueue: the seed's run key, its spec and its snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDecision {
    /// The job id, derived from the key by the caller.
    pub job_id: String,
    /// The run key's digest, hex; unique.
    pub run_key_sha256: String,
    /// Run key: system.
    pub system_id: String,
    /// Run key: serving view.
    pub sv: String,
    /// Run key: decision bucket start.
    pub decision_bucket_ts: i64,
    /// Run key: policy version.
    pub policy_version: String,
    /// Run key: policy spec hash, hex.
    pub policy_spec_sha256: String,
    /// Run key: horizon.
    pub horizon_steps: i64,
    /// The policy spec as canonical JSON.
    pub policy_spec_json: String,
    /// The snapshot the run is bound to.
    pub view_snapshot_id: String,
    /// That snapshot's hash, hex.
    pub view_snapshot_sha256: String,
    /// Who asked for it (a token's subject).
    pub submitted_by: Option<String>,
}

/// A stored decision: its job and its rebalancing fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRow {
    /// The job (status, plugin, hashes, the output as `result_json`).
    pub job: JobRow,
    /// The run key, spec and snapshot.
    pub decision: NewDecision,
    /// The output's diagnostics as canonical JSON, when it had any.
    pub diagnostics_json: Option<String>,
}

/// One stored move.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveRow {
    /// Position, from 1.
    pub move_rank: i64,
    /// Donor.
    pub from_station_key: String,
    /// Receiver.
    pub to_station_key: String,
    /// Bikes moved.
    pub bikes_moved: i64,
    /// Edge length, metres.
    pub dist_m: f64,
    /// The budget was spent after this move.
    pub budget_exhausted: bool,
    /// The donor had nothing more to give after this move.
    pub neighbor_exhausted: bool,
    /// Why, as a JSON array of strings.
    pub reason_codes_json: String,
}

/// What a worker stores when a decision succeeds.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionCompletion {
    /// The job's result: plugin, hashes, the output as canonical JSON.
    pub result: JobResult,
    /// The output's diagnostics, canonical JSON.
    pub diagnostics_json: Option<String>,
    /// Its moves.
    pub moves: Vec<MoveRow>,
}

const DECISION_COLUMNS: &str = "r.system_id, r.sv, r.decision_bucket_ts, r.policy_spec_sha256, r.horizon_steps, \
    r.policy_spec_json, r.view_snapshot_id, r.view_snapshot_sha256, r.diagnostics_json";

fn decision_from_row(row: &AnyRow) -> Result<DecisionRow, StoreError> {
    let job = job_from_row(row)?;
    let decision = NewDecision {
        job_id: job.job.job_id.clone(),
        run_key_sha256: job.job.key_sha256.clone(),
        system_id: row.try_get("system_id")?,
        sv: row.try_get("sv")?,
        decision_bucket_ts: row.try_get("decision_bucket_ts")?,
        policy_version: job.job.policy_version.clone().ok_or(StoreError::Corrupt {
            field: "policy_version",
            message: format!("decision `{}` has no policy version", job.job.job_id),
        })?,
        policy_spec_sha256: row.try_get("policy_spec_sha256")?,
        horizon_steps: row.try_get("horizon_steps")?,
        policy_spec_json: row.try_get("policy_spec_json")?,
        view_snapshot_id: row.try_get("view_snapshot_id")?,
        view_snapshot_sha256: row.try_get("view_snapshot_sha256")?,
        submitted_by: job.job.submitted_by.clone(),
    };
    Ok(DecisionRow { job, decision, diagnostics_json: row.try_get("diagnostics_json")? })
}

fn select_decisions(filter: &str) -> String {
    let jobs: Vec<String> = JOB_COLUMNS.split(", ").map(|c| format!("j.{}", c.trim())).collect();
    format!(
        "SELECT {}, {DECISION_COLUMNS} FROM jobs j JOIN rebalance_runs r ON r.job_id = j.job_id {filter}",
        jobs.join(", ")
    )
}

impl Store {
    /// Enqueues a decision unless its run key is already stored, and
    /// returns the stored decision with whether this call enqueued it. A
    /// cancelled decision asked for again is enqueued again.
    pub async fn enqueue_decision(
        &self,
        decision: &NewDecision,
        now_ms: i64,
    ) -> Result<(DecisionRow, bool), StoreError> {
        let job = NewJob {
            job_id: decision.job_id.clone(),
            kind: DECIDE_KIND.to_owned(),
            contract: Some("rebalance.v1".to_owned()),
            key_sha256: decision.run_key_sha256.clone(),
            key_json: None,
            payload_json: None,
            policy_version: Some(decision.policy_version.clone()),
            input_sha256: None,
            submitted_by: decision.submitted_by.clone(),
        };
        let mut tx = self.pool().begin().await?;
        let enqueued = enqueue_in(&mut tx, &job, now_ms).await?;
        // The job may have been stored earlier under its own id: the
        // decision row goes with whichever job holds the key.
        let job_id: String = sqlx::query("SELECT job_id FROM jobs WHERE key_sha256 = $1")
            .bind(&decision.run_key_sha256)
            .fetch_one(&mut *tx)
            .await?
            .try_get("job_id")?;
        sqlx::query(
            "INSERT INTO rebalance_runs (job_id, system_id, sv, decision_bucket_ts, policy_spec_sha256, horizon_steps, \
             policy_spec_json, view_snapshot_id, view_snapshot_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(&job_id)
        .bind(&decision.system_id)
        .bind(&decision.sv)
        .bind(decision.decision_bucket_ts)
        .bind(&decision.policy_spec_sha256)
        .bind(decision.horizon_steps)
        .bind(&decision.policy_spec_json)
        .bind(&decision.view_snapshot_id)
        .bind(&decision.view_snapshot_sha256)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let row = self.decision_by_key(&decision.run_key_sha256).await?.ok_or(StoreError::Corrupt {
            field: "run_key_sha256",
            message: format!("decision `{}` vanished after enqueue", decision.job_id),
        })?;
        Ok((row, enqueued))
    }

    /// The decision with this run key digest.
    pub async fn decision_by_key(&self, run_key_sha256: &str) -> Result<Option<DecisionRow>, StoreError> {
        let sql = select_decisions("WHERE j.key_sha256 = $1");
        let row = sqlx::query(&sql).bind(run_key_sha256).fetch_optional(self.pool()).await?;
        row.as_ref().map(decision_from_row).transpose()
    }

    /// The decision with this job id.
    pub async fn decision_by_id(&self, job_id: &str) -> Result<Option<DecisionRow>, StoreError> {
        let sql = select_decisions("WHERE j.job_id = $1");
        let row = sqlx::query(&sql).bind(job_id).fetch_optional(self.pool()).await?;
        row.as_ref().map(decision_from_row).transpose()
    }

    /// The most recently enqueued decisions, newest first.
    pub async fn recent_decisions(&self, limit: i64) -> Result<Vec<DecisionRow>, StoreError> {
        let sql = select_decisions("ORDER BY j.created_at_ms DESC, j.job_id LIMIT $1");
        let rows = sqlx::query(&sql).bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(decision_from_row).collect()
    }

    /// Stores a successful decision, its diagnostics and its moves, if
    /// `owner` still holds its lease; returns false, storing nothing,
    /// otherwise.
    pub async fn complete_decision(
        &self,
        job_id: &str,
        owner: &str,
        completion: &DecisionCompletion,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        if !complete_in(&mut tx, job_id, owner, &completion.result, now_ms).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE rebalance_runs SET diagnostics_json = $2 WHERE job_id = $1")
            .bind(job_id)
            .bind(&completion.diagnostics_json)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM rebalance_moves WHERE job_id = $1").bind(job_id).execute(&mut *tx).await?;
        for m in &completion.moves {
            sqlx::query(
                "INSERT INTO rebalance_moves (job_id, move_rank, from_station_key, to_station_key, bikes_moved, dist_m, \
                 budget_exhausted, neighbor_exhausted, reason_codes_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(job_id)
            .bind(m.move_rank)
            .bind(&m.from_station_key)
            .bind(&m.to_station_key)
            .bind(m.bikes_moved)
            .bind(m.dist_m)
            .bind(i64::from(m.budget_exhausted))
            .bind(i64::from(m.neighbor_exhausted))
            .bind(&m.reason_codes_json)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A page of a decision's moves by rank, and its total move count.
    pub async fn moves(&self, job_id: &str, offset: i64, limit: i64) -> Result<(Vec<MoveRow>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT move_rank, from_station_key, to_station_key, bikes_moved, dist_m, budget_exhausted, neighbor_exhausted, \
             reason_codes_json FROM rebalance_moves WHERE job_id = $1 ORDER BY move_rank LIMIT $2 OFFSET $3",
        )
        .bind(job_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let moves = rows
            .iter()
            .map(|r| {
                Ok(MoveRow {
                    move_rank: r.try_get("move_rank")?,
                    from_station_key: r.try_get("from_station_key")?,
                    to_station_key: r.try_get("to_station_key")?,
                    bikes_moved: r.try_get("bikes_moved")?,
                    dist_m: r.try_get("dist_m")?,
                    budget_exhausted: flag(r.try_get("budget_exhausted")?),
                    neighbor_exhausted: flag(r.try_get("neighbor_exhausted")?),
                    reason_codes_json: r.try_get("reason_codes_json")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM rebalance_moves WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok((moves, total))
    }
}
