//! The job queue: any domain's work (one policy run, a replay, a
//! simulation, an evaluation), each a row of `jobs` with a kind and a key.
//!
//! A `pending` row is a job. Claiming sets it `running` under a lease
//! (owner and expiry); on PostgreSQL the candidate row is locked with
//! `FOR UPDATE SKIP LOCKED`, so concurrent workers never claim the same
//! row, and on SQLite the single `UPDATE … RETURNING` statement runs under
//! the database's one writer lock. A worker claims only kinds it knows.
//! Completing or failing a job only succeeds for the current lease holder
//! while the job is still `running`, and `key_sha256` is unique, which is
//! what makes a key's result unique however many workers race for it.

use std::fmt;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Backend, Store, StoreError};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobStatus {
    /// Enqueued, waiting for a worker.
    Pending,
    /// Claimed by a worker under a lease.
    Running,
    /// Finished with a stored result.
    Ready,
    /// Finished without a result; the error is stored.
    Error,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Pending, JobStatus::Running, JobStatus::Ready, JobStatus::Error, JobStatus::Cancelled];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Ready => "ready",
            JobStatus::Error => "error",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// True for `ready`, `error` and `cancelled`.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Ready | JobStatus::Error | JobStatus::Cancelled)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewJob {
    /// The job id, derived from the key by the caller.
    pub job_id: String,
    /// Which handler runs it, such as `rebalance.decide` or `run`.
    pub kind: String,
    /// The contract its policy runs under, when it runs one.
    pub contract: Option<String>,
    /// The key's digest, hex; unique.
    pub key_sha256: String,
    /// The key as canonical JSON, when the domain does not keep it in its
    /// own table.
    pub key_json: Option<String>,
    /// What the handler needs, as JSON, when the domain does not keep it in
    /// its own table.
    pub payload_json: Option<String>,
    /// The policy version it runs, when it runs one.
    pub policy_version: Option<String>,
    /// The input's digest, when its input is stored in `inputs`.
    pub input_sha256: Option<String>,
    /// Who asked for it (a token's subject).
    pub submitted_by: Option<String>,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// Its identity, key and payload.
    pub job: NewJob,
    /// Its status.
    pub status: JobStatus,
    /// The plugin that ran it, once run.
    pub plugin_id: Option<String>,
    /// That plugin's manifest hash.
    pub manifest_sha256: Option<String>,
    /// The output hash.
    pub output_sha256: Option<String>,
    /// The result as canonical JSON, when ready.
    pub result_json: Option<String>,
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

/// What a worker stores when a job succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobResult {
    /// The plugin that ran, when one did.
    pub plugin_id: Option<String>,
    /// Its manifest hash, hex.
    pub manifest_sha256: Option<String>,
    /// The input hash, hex.
    pub input_sha256: Option<String>,
    /// The output hash, hex.
    pub output_sha256: Option<String>,
    /// The result, canonical JSON.
    pub result_json: String,
    /// Plugin time, microseconds.
    pub plugin_us: Option<i64>,
}

/// Jobs counted by kind, status and policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    /// The kind.
    pub kind: String,
    /// The status.
    pub status: JobStatus,
    /// The policy version, when the jobs run one.
    pub policy_version: Option<String>,
    /// How many.
    pub count: i64,
}

pub(crate) const JOB_COLUMNS: &str = "job_id, kind, contract, key_sha256, key_json, payload_json, policy_version, \
    status, plugin_id, manifest_sha256, input_sha256, output_sha256, result_json, error_code, error_message, attempts, \
    lease_owner, lease_expires_at_ms, created_at_ms, started_at_ms, finished_at_ms, plugin_us, submitted_by";

pub(crate) fn job_from_row(row: &AnyRow) -> Result<JobRow, StoreError> {
    let status: String = row.try_get("status")?;
    let status = JobStatus::parse(&status)
        .ok_or(StoreError::Corrupt { field: "status", message: format!("unknown status `{status}`") })?;
    Ok(JobRow {
        job: NewJob {
            job_id: row.try_get("job_id")?,
            kind: row.try_get("kind")?,
            contract: row.try_get("contract")?,
            key_sha256: row.try_get("key_sha256")?,
            key_json: row.try_get("key_json")?,
            payload_json: row.try_get("payload_json")?,
            policy_version: row.try_get("policy_version")?,
            input_sha256: row.try_get("input_sha256")?,
            submitted_by: row.try_get("submitted_by")?,
        },
        status,
        plugin_id: row.try_get("plugin_id")?,
        manifest_sha256: row.try_get("manifest_sha256")?,
        output_sha256: row.try_get("output_sha256")?,
        result_json: row.try_get("result_json")?,
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
    /// Enqueues a job unless its key is already stored, and returns the
    /// stored job with whether it was enqueued by this call. A cancelled
    /// job asked for again is enqueued again; other jobs are returned as
    /// they are, so asking twice never computes twice.
    pub async fn enqueue_job(&self, job: &NewJob, now_ms: i64) -> Result<(JobRow, bool), StoreError> {
        let mut tx = self.pool().begin().await?;
        let enqueued = enqueue_in(&mut tx, job, now_ms).await?;
        tx.commit().await?;
        let row = self.job_by_key(&job.key_sha256).await?.ok_or(StoreError::Corrupt {
            field: "key_sha256",
            message: format!("job `{}` vanished after enqueue", job.job_id),
        })?;
        Ok((row, enqueued))
    }

    /// The job with this key digest.
    pub async fn job_by_key(&self, key_sha256: &str) -> Result<Option<JobRow>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE key_sha256 = $1");
        let row = sqlx::query(&sql).bind(key_sha256).fetch_optional(self.pool()).await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// The job with this id.
    pub async fn job_by_id(&self, job_id: &str) -> Result<Option<JobRow>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1");
        let row = sqlx::query(&sql).bind(job_id).fetch_optional(self.pool()).await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// The most recently enqueued jobs of one kind (or of every kind),
    /// newest first.
    pub async fn recent_jobs(&self, kind: Option<&str>, limit: i64) -> Result<Vec<JobRow>, StoreError> {
        let rows = match kind {
            Some(kind) => {
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE kind = $1 ORDER BY created_at_ms DESC, job_id LIMIT $2"
                );
                sqlx::query(&sql).bind(kind).bind(limit).fetch_all(self.pool()).await?
            }
            None => {
                let sql = format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at_ms DESC, job_id LIMIT $1");
                sqlx::query(&sql).bind(limit).fetch_all(self.pool()).await?
            }
        };
        rows.iter().map(job_from_row).collect()
    }

    /// The most recent failed jobs of a plugin, newest first.
    pub async fn recent_errors(&self, plugin_id: &str, limit: i64) -> Result<Vec<JobRow>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE plugin_id = $1 AND status = 'error' \
             ORDER BY finished_at_ms DESC, job_id LIMIT $2"
        );
        let rows = sqlx::query(&sql).bind(plugin_id).bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Claims the oldest claimable job of one of `kinds` for `owner` until
    /// `now_ms + lease_ms`. Claimable: `pending`, or `running` with an
    /// expired lease. Jobs whose lease expired `max_attempts` times are
    /// failed with `job.lease_exhausted` instead of being claimed again.
    pub async fn claim_job(
        &self,
        owner: &str,
        kinds: &[&str],
        now_ms: i64,
        lease_ms: i64,
        max_attempts: i64,
    ) -> Result<Option<JobRow>, StoreError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE jobs SET status = 'error', error_code = 'job.lease_exhausted', \
             error_message = 'the job was claimed ' || CAST(attempts AS TEXT) || ' times and no worker finished it', \
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
        // Kinds are bound as parameters $4, $5, …: never spliced into SQL.
        let placeholders: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_expires_at_ms = $2, attempts = attempts + 1, \
             started_at_ms = $3 \
             WHERE job_id = (SELECT job_id FROM jobs \
                 WHERE (status = 'pending' OR (status = 'running' AND lease_expires_at_ms < $3)) \
                 AND kind IN ({}) \
                 ORDER BY created_at_ms, job_id LIMIT 1 {lock}) \
             RETURNING {JOB_COLUMNS}",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(owner).bind(now_ms.saturating_add(lease_ms)).bind(now_ms);
        for kind in kinds {
            query = query.bind(*kind);
        }
        let row = query.fetch_optional(self.pool()).await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Extends `owner`'s lease on a running job; false when the lease is
    /// no longer theirs (expired and reclaimed, or the job was cancelled).
    pub async fn heartbeat(&self, job_id: &str, owner: &str, expires_at_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires_at_ms = $3 WHERE job_id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(job_id)
        .bind(owner)
        .bind(expires_at_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores a successful job's result, if `owner` still holds its lease;
    /// returns false, storing nothing, otherwise.
    pub async fn complete_job(
        &self,
        job_id: &str,
        owner: &str,
        result: &JobResult,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        if !complete_in(&mut tx, job_id, owner, result, now_ms).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Stores a failed job, if `owner` still holds its lease.
    pub async fn fail_job(
        &self,
        job_id: &str,
        owner: &str,
        code: &str,
        message: &str,
        plugin_id: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'error', error_code = $3, error_message = $4, plugin_id = $5, finished_at_ms = $6, \
             lease_owner = NULL, lease_expires_at_ms = NULL WHERE job_id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(job_id)
        .bind(owner)
        .bind(code)
        .bind(message)
        .bind(plugin_id)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Cancels a pending or running job; a running one's worker finds its
    /// lease gone and stores nothing. Returns the job as it now is, or
    /// `None` for an unknown id.
    pub async fn cancel_job(&self, job_id: &str, now_ms: i64) -> Result<Option<JobRow>, StoreError> {
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at_ms = $2, lease_owner = NULL, lease_expires_at_ms = NULL \
             WHERE job_id = $1 AND status IN ('pending', 'running')",
        )
        .bind(job_id)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        self.job_by_id(job_id).await
    }

    /// Jobs counted by kind, status and policy version, sorted.
    pub async fn job_counts(&self) -> Result<Vec<JobCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, status, policy_version, COUNT(*) AS n FROM jobs GROUP BY kind, status, policy_version \
             ORDER BY kind, status, policy_version",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                Ok(JobCount {
                    kind: r.try_get("kind")?,
                    status: JobStatus::parse(&status).ok_or(StoreError::Corrupt {
                        field: "status",
                        message: format!("unknown status `{status}`"),
                    })?,
                    policy_version: r.try_get("policy_version")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// Jobs waiting for a worker.
    pub async fn queue_depth(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE status = 'pending'")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?)
    }
}

/// Inserts a job, or re-enqueues a cancelled one with the same key, inside
/// a transaction; true when this call enqueued it.
pub(crate) async fn enqueue_in(tx: &mut Transaction<'_, Any>, job: &NewJob, now_ms: i64) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO jobs (job_id, kind, contract, key_sha256, key_json, payload_json, policy_version, input_sha256, \
         submitted_by, status, attempts, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10) ON CONFLICT DO NOTHING",
    )
    .bind(&job.job_id)
    .bind(&job.kind)
    .bind(&job.contract)
    .bind(&job.key_sha256)
    .bind(&job.key_json)
    .bind(&job.payload_json)
    .bind(&job.policy_version)
    .bind(&job.input_sha256)
    .bind(&job.submitted_by)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        > 0;
    if inserted {
        return Ok(true);
    }
    let requeued = sqlx::query(
        "UPDATE jobs SET status = 'pending', attempts = 0, lease_owner = NULL, lease_expires_at_ms = NULL, \
         started_at_ms = NULL, finished_at_ms = NULL, error_code = NULL, error_message = NULL, created_at_ms = $2, \
         submitted_by = $3 WHERE key_sha256 = $1 AND status = 'cancelled'",
    )
    .bind(&job.key_sha256)
    .bind(now_ms)
    .bind(&job.submitted_by)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        > 0;
    Ok(requeued)
}

/// Marks a job ready with its result inside a transaction, if `owner`
/// still holds its lease; a domain module stores its own rows in the same
/// transaction.
pub(crate) async fn complete_in(
    tx: &mut Transaction<'_, Any>,
    job_id: &str,
    owner: &str,
    result: &JobResult,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE jobs SET status = 'ready', plugin_id = $3, manifest_sha256 = $4, input_sha256 = COALESCE($5, input_sha256), \
         output_sha256 = $6, result_json = $7, plugin_us = $8, finished_at_ms = $9, lease_owner = NULL, \
         lease_expires_at_ms = NULL, error_code = NULL, error_message = NULL \
         WHERE job_id = $1 AND lease_owner = $2 AND status = 'running'",
    )
    .bind(job_id)
    .bind(owner)
    .bind(&result.plugin_id)
    .bind(&result.manifest_sha256)
    .bind(&result.input_sha256)
    .bind(&result.output_sha256)
    .bind(&result.result_json)
    .bind(result.plugin_us)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(updated > 0)
}
