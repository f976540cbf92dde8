//! Policy runs, their moves, and the job queue.
//!
//! `policy_runs` is the queue: a `pending` row is a job. Claiming sets it
//! `running` under a lease (owner and expiry); on PostgreSQL the candidate
//! row is locked with `FOR UPDATE SKIP LOCKED`, so concurrent workers never
//! claim the same row, and on SQLite the single `UPDATE … RETURNING`
//! statement runs under the database's one writer lock. Completing or
//! failing a run only succeeds for the current lease holder while the run
//! is still `running`, which is what makes a run key's result unique.

use std::fmt;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Backend, Store, StoreError, flag};

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RunStatus {
    /// Enqueued, waiting for a worker.
    Pending,
    /// Claimed by a worker under a lease.
    Running,
    /// Finished with a stored output.
    Ready,
    /// Finished without an output; the error is stored.
    Error,
    /// Cancelled before it finished.
    Cancelled,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 5] =
        [RunStatus::Pending, RunStatus::Running, RunStatus::Ready, RunStatus::Error, RunStatus::Cancelled];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Ready => "ready",
            RunStatus::Error => "error",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// True for `ready`, `error` and `cancelled`.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Ready | RunStatus::Error | RunStatus::Cancelled)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    /// The run id, derived from the key by the caller.
    pub run_id: String,
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
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// Its identity and key.
    pub run: NewRun,
    /// Its status.
    pub status: RunStatus,
    /// The plugin that ran it, once run.
    pub plugin_id: Option<String>,
    /// That plugin's manifest hash.
    pub manifest_sha256: Option<String>,
    /// The input hash.
    pub input_sha256: Option<String>,
    /// The output hash.
    pub output_sha256: Option<String>,
    /// The output as canonical JSON, when ready.
    pub output_json: Option<String>,
    /// The output's diagnostics as canonical JSON, when it had any.
    pub diagnostics_json: Option<String>,
    /// The error's stable code, when it failed.
    pub error_code: Option<String>,
    /// The error's message.
    pub error_message: Option<String>,
    /// How many times it was claimed.
    pub attempts: i64,
    /// The current lease holder.
    pub lease_owner: Option<String>,
    /// When the current lease expires, epoch ms.
    pub lease_expires_at_ms: Option<i64>,
    /// When it was enqueued, epoch ms.
    pub created_at_ms: i64,
    /// When it was last claimed, epoch ms.
    pub started_at_ms: Option<i64>,
    /// When it finished, epoch ms.
    pub finished_at_ms: Option<i64>,
    /// How long the plugin ran, microseconds.
    pub plugin_us: Option<i64>,
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

/// What a worker stores when a run succeeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The plugin that ran.
    pub plugin_id: String,
    /// Its manifest hash, hex.
    pub manifest_sha256: String,
    /// The input hash, hex.
    pub input_sha256: String,
    /// The output hash, hex.
    pub output_sha256: String,
    /// The output, canonical JSON.
    pub output_json: String,
    /// Its diagnostics, canonical JSON.
    pub diagnostics_json: Option<String>,
    /// Its moves.
    pub moves: Vec<MoveRow>,
    /// Plugin time, microseconds.
    pub plugin_us: i64,
}

/// Runs counted by status and policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCount {
    /// The status.
    pub status: RunStatus,
    /// The policy version.
    pub policy_version: String,
    /// How many.
    pub count: i64,
}

const RUN_COLUMNS: &str = "run_id, run_key_sha256, system_id, sv, decision_bucket_ts, policy_version, policy_spec_sha256, \
    horizon_steps, policy_spec_json, view_snapshot_id, view_snapshot_sha256, status, plugin_id, manifest_sha256, input_sha256, \
    output_sha256, output_json, diagnostics_json, error_code, error_message, attempts, lease_owner, lease_expires_at_ms, \
    created_at_ms, started_at_ms, finished_at_ms, plugin_us";

fn run_from_row(row: &AnyRow) -> Result<RunRow, StoreError> {
    let status: String = row.try_get("status")?;
    let status = RunStatus::parse(&status)
        .ok_or(StoreError::Corrupt { field: "status", message: format!("unknown status `{status}`") })?;
    Ok(RunRow {
        run: NewRun {
            run_id: row.try_get("run_id")?,
            run_key_sha256: row.try_get("run_key_sha256")?,
            system_id: row.try_get("system_id")?,
            sv: row.try_get("sv")?,
            decision_bucket_ts: row.try_get("decision_bucket_ts")?,
            policy_version: row.try_get("policy_version")?,
            policy_spec_sha256: row.try_get("policy_spec_sha256")?,
            horizon_steps: row.try_get("horizon_steps")?,
            policy_spec_json: row.try_get("policy_spec_json")?,
            view_snapshot_id: row.try_get("view_snapshot_id")?,
            view_snapshot_sha256: row.try_get("view_snapshot_sha256")?,
        },
        status,
        plugin_id: row.try_get("plugin_id")?,
        manifest_sha256: row.try_get("manifest_sha256")?,
        input_sha256: row.try_get("input_sha256")?,
        output_sha256: row.try_get("output_sha256")?,
        output_json: row.try_get("output_json")?,
        diagnostics_json: row.try_get("diagnostics_json")?,
        error_code: row.try_get("error_code")?,
        error_message: row.try_get("error_message")?,
        attempts: row.try_get("attempts")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at_ms: row.try_get("lease_expires_at_ms")?,
        created_at_ms: row.try_get("created_at_ms")?,
        started_at_ms: row.try_get("started_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
        plugin_us: row.try_get("plugin_us")?,
    })
}

impl Store {
    /// Enqueues a run unless its key is already stored, and returns the
    /// stored run with whether it was enqueued by this call. A cancelled
    /// run asked for again is enqueued again; other runs are returned as
    /// they are, so asking twice never computes twice.
    pub async fn enqueue(&self, run: &NewRun, now_ms: i64) -> Result<(RunRow, bool), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO policy_runs (run_id, run_key_sha256, system_id, sv, decision_bucket_ts, policy_version, policy_spec_sha256, \
             horizon_steps, policy_spec_json, view_snapshot_id, view_snapshot_sha256, status, attempts, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', 0, $12) ON CONFLICT DO NOTHING",
        )
        .bind(&run.run_id)
        .bind(&run.run_key_sha256)
        .bind(&run.system_id)
        .bind(&run.sv)
        .bind(run.decision_bucket_ts)
        .bind(&run.policy_version)
        .bind(&run.policy_spec_sha256)
        .bind(run.horizon_steps)
        .bind(&run.policy_spec_json)
        .bind(&run.view_snapshot_id)
        .bind(&run.view_snapshot_sha256)
        .bind(now_ms)
        .execute(self.pool())
        .await?
        .rows_affected()
            > 0;
        let mut requeued = false;
        if !inserted {
            requeued = sqlx::query(
                "UPDATE policy_runs SET status = 'pending', attempts = 0, lease_owner = NULL, lease_expires_at_ms = NULL, \
                 started_at_ms = NULL, finished_at_ms = NULL, error_code = NULL, error_message = NULL, created_at_ms = $2 \
                 WHERE run_key_sha256 = $1 AND status = 'cancelled'",
            )
            .bind(&run.run_key_sha256)
            .bind(now_ms)
            .execute(self.pool())
            .await?
            .rows_affected()
                > 0;
        }
        let row = self.run_by_key(&run.run_key_sha256).await?.ok_or(StoreError::Corrupt {
            field: "run_key_sha256",
            message: format!("run `{}` vanished after enqueue", run.run_id),
        })?;
        Ok((row, inserted || requeued))
    }

    /// The run with this key digest.
    pub async fn run_by_key(&self, run_key_sha256: &str) -> Result<Option<RunRow>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM policy_runs WHERE run_key_sha256 = $1");
        let row = sqlx::query(&sql).bind(run_key_sha256).fetch_optional(self.pool()).await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The run with this id.
    pub async fn run_by_id(&self, run_id: &str) -> Result<Option<RunRow>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM policy_runs WHERE run_id = $1");
        let row = sqlx::query(&sql).bind(run_id).fetch_optional(self.pool()).await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The most recently enqueued runs, newest first.
    pub async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM policy_runs ORDER BY created_at_ms DESC, run_id LIMIT $1");
        let rows = sqlx::query(&sql).bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(run_from_row).collect()
    }

    /// The most recent failed runs of a plugin, newest first.
    pub async fn recent_errors(&self, plugin_id: &str, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM policy_runs WHERE plugin_id = $1 AND status = 'error' \
             ORDER BY finished_at_ms DESC, run_id LIMIT $2"
        );
        let rows = sqlx::query(&sql).bind(plugin_id).bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Claims the oldest claimable run for `owner` until `now_ms +
    /// lease_ms`. Claimable: `pending`, or `running` with an expired lease.
    /// Runs whose lease expired `max_attempts` times are failed with
    /// `run.lease_exhausted` instead of being claimed again.
    pub async fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        max_attempts: i64,
    ) -> Result<Option<RunRow>, StoreError> {
        sqlx::query(
            "UPDATE policy_runs SET status = 'error', error_code = 'run.lease_exhausted', \
             error_message = 'the run was claimed ' || CAST(attempts AS TEXT) || ' times and no worker finished it', \
             finished_at_ms = $1, lease_owner = NULL, lease_expires_at_ms = NULL \
             WHERE status = 'running' AND lease_expires_at_ms < $1 AND attempts >= $2",
        )
        .bind(now_ms)
        .bind(max_attempts)
        .execute(self.pool())
        .await?;
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE policy_runs SET status = 'running', lease_owner = $1, lease_expires_at_ms = $2, attempts = attempts + 1, \
             started_at_ms = $3 \
             WHERE run_id = (SELECT run_id FROM policy_runs \
                 WHERE status = 'pending' OR (status = 'running' AND lease_expires_at_ms < $3) \
                 ORDER BY created_at_ms, run_id LIMIT 1 {lock}) \
             RETURNING {RUN_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(owner)
            .bind(now_ms.saturating_add(lease_ms))
            .bind(now_ms)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Extends `owner`'s lease on a running run; false when the lease is
    /// no longer theirs (expired and reclaimed, or the run was cancelled).
    pub async fn heartbeat(&self, run_id: &str, owner: &str, expires_at_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE policy_runs SET lease_expires_at_ms = $3 WHERE run_id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .bind(expires_at_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores a successful run and its moves, if `owner` still holds its
    /// lease; returns false, storing nothing, otherwise.
    pub async fn complete(
        &self,
        run_id: &str,
        owner: &str,
        completion: &Completion,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE policy_runs SET status = 'ready', plugin_id = $3, manifest_sha256 = $4, input_sha256 = $5, output_sha256 = $6, \
             output_json = $7, diagnostics_json = $8, plugin_us = $9, finished_at_ms = $10, lease_owner = NULL, \
             lease_expires_at_ms = NULL, error_code = NULL, error_message = NULL \
             WHERE run_id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .bind(&completion.plugin_id)
        .bind(&completion.manifest_sha256)
        .bind(&completion.input_sha256)
        .bind(&completion.output_sha256)
        .bind(&completion.output_json)
        .bind(&completion.diagnostics_json)
        .bind(completion.plugin_us)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM policy_moves WHERE run_id = $1").bind(run_id).execute(&mut *tx).await?;
        for m in &completion.moves {
            sqlx::query(
                "INSERT INTO policy_moves (run_id, move_rank, from_station_key, to_station_key, bikes_moved, dist_m, \
                 budget_exhausted, neighbor_exhausted, reason_codes_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(run_id)
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

    /// Stores a failed run, if `owner` still holds its lease.
    pub async fn fail(
        &self,
        run_id: &str,
        owner: &str,
        code: &str,
        message: &str,
        plugin_id: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE policy_runs SET status = 'error', error_code = $3, error_message = $4, plugin_id = $5, finished_at_ms = $6, \
             lease_owner = NULL, lease_expires_at_ms = NULL WHERE run_id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(run_id)
        .bind(owner)
        .bind(code)
        .bind(message)
        .bind(plugin_id)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Cancels a pending or running run; a running one's worker finds its
    /// lease gone and stores nothing. Returns the run as it now is, or
    /// `None` for an unknown id.
    pub async fn cancel(&self, run_id: &str, now_ms: i64) -> Result<Option<RunRow>, StoreError> {
        sqlx::query(
            "UPDATE policy_runs SET status = 'cancelled', finished_at_ms = $2, lease_owner = NULL, lease_expires_at_ms = NULL \
             WHERE run_id = $1 AND status IN ('pending', 'running')",
        )
        .bind(run_id)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        self.run_by_id(run_id).await
    }

    /// A page of a run's moves by rank, and the run's total move count.
    pub async fn moves(&self, run_id: &str, offset: i64, limit: i64) -> Result<(Vec<MoveRow>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT move_rank, from_station_key, to_station_key, bikes_moved, dist_m, budget_exhausted, neighbor_exhausted, \
             reason_codes_json FROM policy_moves WHERE run_id = $1 ORDER BY move_rank LIMIT $2 OFFSET $3",
        )
        .bind(run_id)
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
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM policy_moves WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok((moves, total))
    }

    /// Runs counted by status and policy version, sorted.
    pub async fn run_counts(&self) -> Result<Vec<RunCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT status, policy_version, COUNT(*) AS n FROM policy_runs GROUP BY status, policy_version \
             ORDER BY status, policy_version",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                Ok(RunCount {
                    status: RunStatus::parse(&status).ok_or(StoreError::Corrupt {
                        field: "status",
                        message: format!("unknown status `{status}`"),
                    })?,
                    policy_version: r.try_get("policy_version")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// Runs waiting for a worker.
    pub async fn queue_depth(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM policy_runs WHERE status = 'pending'")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?)
    }
}
