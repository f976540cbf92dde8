//! NPC behaviour's documents (seed 003): worlds, sessions and each
//! session's activity timeline. The store keeps canonical JSON text and
//! digests; reading and simulating the documents is the behaviour crate's
//! job.

use sqlx::Row;

use crate::{Store, StoreError};

/// A stored world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldRow {
    /// Its id (`id` in the document).
    pub world_id: String,
    /// The document as canonical JSON.
    pub world_json: String,
    /// SHA-256 of `world_json`, hex.
    pub world_sha256: String,
    /// Who stored it (a token subject).
    pub created_by: String,
    /// When, in milliseconds since the epoch.
    pub created_at_ms: i64,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Its id.
    pub session_id: String,
    /// The world it plays.
    pub world_id: String,
    /// The document as canonical JSON.
    pub session_json: String,
    /// Advances applied so far.
    pub version: i64,
    /// Who created it.
    pub created_by: String,
    /// When, in milliseconds since the epoch.
    pub created_at_ms: i64,
    /// When it last changed.
    pub updated_at_ms: i64,
}

/// One timeline entry of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    /// Its position in the session's timeline, from 0.
    pub seq: i64,
    /// The session version the advance that wrote it produced.
    pub version: i64,
    /// The entry as JSON.
    pub entry_json: String,
}

/// What storing a world did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorldPut {
    /// It was new.
    Created,
    /// The same content was already stored under its id.
    Unchanged,
    /// Other content is stored under its id; nothing changed.
    Conflict,
}

impl Store {
    /// Stores `world` unless its id is taken.
    pub async fn put_world(&self, world: &WorldRow) -> Result<WorldPut, StoreError> {
        let done = sqlx::query(
            "INSERT INTO behavior_worlds (world_id, world_json, world_sha256, created_by, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&world.world_id)
        .bind(&world.world_json)
        .bind(&world.world_sha256)
        .bind(&world.created_by)
        .bind(world.created_at_ms)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 1 {
            return Ok(WorldPut::Created);
        }
        let stored = self.world(&world.world_id).await?.map(|w| w.world_sha256);
        Ok(if stored.as_deref() == Some(world.world_sha256.as_str()) {
            WorldPut::Unchanged
        } else {
            WorldPut::Conflict
        })
    }

    /// The world with this id.
    pub async fn world(&self, world_id: &str) -> Result<Option<WorldRow>, StoreError> {
        let row = sqlx::query(
            "SELECT world_id, world_json, world_sha256, created_by, created_at_ms FROM behavior_worlds \
             WHERE world_id = $1",
        )
        .bind(world_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(world_of).transpose()
    }

    /// Every world, by id.
    pub async fn worlds(&self) -> Result<Vec<WorldRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT world_id, world_json, world_sha256, created_by, created_at_ms FROM behavior_worlds \
             ORDER BY world_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(world_of).collect()
    }

    /// Stores a new session; false when its id is taken (nothing changes).
    pub async fn insert_session(&self, session: &SessionRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO behavior_sessions (session_id, world_id, session_json, version, created_by, \
             created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&session.session_id)
        .bind(&session.world_id)
        .bind(&session.session_json)
        .bind(session.version)
        .bind(&session.created_by)
        .bind(session.created_at_ms)
        .bind(session.updated_at_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The session with this id.
    pub async fn session(&self, session_id: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(&format!("{SESSION_COLUMNS} WHERE session_id = $1"))
            .bind(session_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(session_of).transpose()
    }

    /// Up to `limit` sessions, most recently changed first (ties by id).
    pub async fn recent_sessions(&self, limit: i64) -> Result<Vec<SessionRow>, StoreError> {
        let rows = sqlx::query(&format!("{SESSION_COLUMNS} ORDER BY updated_at_ms DESC, session_id LIMIT $1"))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(session_of).collect()
    }

    /// Applies an advance: replaces the session's document and appends its
    /// timeline entries, in one transaction, only if the session is still
    /// at version `from_version`. Returns false (and changes nothing) when
    /// another advance got there first.
    pub async fn advance_session(
        &self,
        session_id: &str,
        from_version: i64,
        session_json: &str,
        entries: &[String],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE behavior_sessions SET session_json = $1, version = version + 1, updated_at_ms = $2 \
             WHERE session_id = $3 AND version = $4",
        )
        .bind(session_json)
        .bind(now_ms)
        .bind(session_id)
        .bind(from_version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let row = sqlx::query("SELECT COUNT(*) AS n FROM behavior_timeline WHERE session_id = $1")
            .bind(session_id)
            .fetch_one(&mut *tx)
            .await?;
        let start: i64 = row.try_get("n")?;
        for (i, entry) in entries.iter().enumerate() {
            let offset = i64::try_from(i).unwrap_or(i64::MAX);
            sqlx::query("INSERT INTO behavior_timeline (session_id, seq, version, entry_json) VALUES ($1, $2, $3, $4)")
                .bind(session_id)
                .bind(start + offset)
                .bind(from_version + 1)
                .bind(entry)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A session's timeline entries from `from_seq`, at most `limit`, in
    /// order.
    pub async fn session_timeline(
        &self,
        session_id: &str,
        from_seq: i64,
        limit: i64,
    ) -> Result<Vec<TimelineRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, version, entry_json FROM behavior_timeline WHERE session_id = $1 AND seq >= $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(session_id)
        .bind(from_seq)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TimelineRow {
                    seq: row.try_get("seq")?,
                    version: row.try_get("version")?,
                    entry_json: row.try_get("entry_json")?,
                })
            })
            .collect()
    }
}

const SESSION_COLUMNS: &str = "SELECT session_id, world_id, session_json, version, created_by, created_at_ms, \
     updated_at_ms FROM behavior_sessions";

fn world_of(row: &sqlx::any::AnyRow) -> Result<WorldRow, StoreError> {
    Ok(WorldRow {
        world_id: row.try_get("world_id")?,
        world_json: row.try_get("world_json")?,
        world_sha256: row.try_get("world_sha256")?,
        created_by: row.try_get("created_by")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn session_of(row: &sqlx::any::AnyRow) -> Result<SessionRow, StoreError> {
    Ok(SessionRow {
        session_id: row.try_get("session_id")?,
        world_id: row.try_get("world_id")?,
        session_json: row.try_get("session_json")?,
        version: row.try_get("version")?,
        created_by: row.try_get("created_by")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}
