//! Station information, neighbour graphs and station snapshots.
//!
//! A snapshot row holds one serving view of one system: its `sv` token,
//! snapshot identity and the input body without the neighbour graph. The
//! graph rarely changes between snapshots, so it is stored once per
//! distinct graph, keyed by its hash.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// A station's static facts, for maps and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct StationRow {
    /// The system.
    pub system_id: String,
    /// The station's key (GBFS `station_id`).
    pub station_key: String,
    /// Its display name.
    pub name: String,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Docks, as published.
    pub capacity: i64,
}

/// A snapshot to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSnapshot {
    /// The stored identity and body.
    pub record: SnapshotRecord,
    /// The neighbour graph as JSON text; its hash is `record.graph_sha256`.
    pub neighbors_json: String,
}

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// The system.
    pub system_id: String,
    /// The snapshot's own time, epoch seconds.
    pub snapshot_ts: i64,
    /// The serving view token.
    pub sv: String,
    /// The bucket the snapshot falls in, epoch seconds.
    pub decision_bucket_ts: i64,
    /// `{system_id}@{snapshot_ts}`.
    pub view_snapshot_id: String,
    /// The view's hash, hex.
    pub view_snapshot_sha256: String,
    /// The input without its neighbours, as JSON text.
    pub body_json: String,
    /// The hash of the neighbour graph, hex.
    pub graph_sha256: String,
}

/// What an ingest wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestCounts {
    /// Snapshots newly stored.
    pub inserted: u64,
    /// Snapshots already present (same system and time), left unchanged so
    /// that runs bound to them stay valid.
    pub skipped: u64,
    /// Station information rows written.
    pub stations: u64,
}

/// One system's stored snapshots at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemSummary {
    /// The system.
    pub system_id: String,
    /// Number of snapshots.
    pub snapshots: i64,
    /// The first snapshot's time.
    pub first_ts: i64,
    /// The last snapshot's time.
    pub last_ts: i64,
}

const SNAPSHOT_COLUMNS: &str =
    "system_id, snapshot_ts, sv, decision_bucket_ts, view_snapshot_id, view_snapshot_sha256, body_json, graph_sha256";

fn snapshot_from_row(row: &AnyRow) -> Result<SnapshotRecord, StoreError> {
    Ok(SnapshotRecord {
        system_id: row.try_get("system_id")?,
        snapshot_ts: row.try_get("snapshot_ts")?,
        sv: row.try_get("sv")?,
        decision_bucket_ts: row.try_get("decision_bucket_ts")?,
        view_snapshot_id: row.try_get("view_snapshot_id")?,
        view_snapshot_sha256: row.try_get("view_snapshot_sha256")?,
        body_json: row.try_get("body_json")?,
        graph_sha256: row.try_get("graph_sha256")?,
    })
}

impl Store {
    /// Stores station information and snapshots in one transaction.
    /// Station information is upserted; a snapshot already stored for the
    /// same system and time is kept as it was.
    pub async fn ingest(
        &self,
        stations: &[StationRow],
        snapshots: &[NewSnapshot],
        now_ms: i64,
    ) -> Result<IngestCounts, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut counts = IngestCounts::default();
        for s in stations {
            sqlx::query(
                "INSERT INTO station_info (system_id, station_key, name, lat, lon, capacity) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (system_id, station_key) DO UPDATE SET name = excluded.name, lat = excluded.lat, lon = excluded.lon, capacity = excluded.capacity",
            )
            .bind(&s.system_id)
            .bind(&s.station_key)
            .bind(&s.name)
            .bind(s.lat)
            .bind(s.lon)
            .bind(s.capacity)
            .execute(&mut *tx)
            .await?;
            counts.stations += 1;
        }
        let mut last_graph: Option<&str> = None;
        for snap in snapshots {
            let r = &snap.record;
            if last_graph != Some(r.graph_sha256.as_str()) {
                sqlx::query(
                    "INSERT INTO station_graphs (graph_sha256, neighbors_json) VALUES ($1, $2) ON CONFLICT (graph_sha256) DO NOTHING",
                )
                .bind(&r.graph_sha256)
                .bind(&snap.neighbors_json)
                .execute(&mut *tx)
                .await?;
                last_graph = Some(r.graph_sha256.as_str());
            }
            let done = sqlx::query(
                "INSERT INTO station_snapshots (system_id, snapshot_ts, sv, decision_bucket_ts, view_snapshot_id, view_snapshot_sha256, body_json, graph_sha256, ingested_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            )
            .bind(&r.system_id)
            .bind(r.snapshot_ts)
            .bind(&r.sv)
            .bind(r.decision_bucket_ts)
            .bind(&r.view_snapshot_id)
            .bind(&r.view_snapshot_sha256)
            .bind(&r.body_json)
            .bind(&r.graph_sha256)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                counts.inserted += 1;
            } else {
                counts.skipped += 1;
            }
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// The snapshot of `system_id` with serving view `sv`.
    pub async fn snapshot_by_sv(&self, system_id: &str, sv: &str) -> Result<Option<SnapshotRecord>, StoreError> {
        let sql = format!("SELECT {SNAPSHOT_COLUMNS} FROM station_snapshots WHERE system_id = $1 AND sv = $2");
        let row = sqlx::query(&sql).bind(system_id).bind(sv).fetch_optional(self.pool()).await?;
        row.as_ref().map(snapshot_from_row).transpose()
    }

    /// The snapshot serving the decision bucket `[bucket_ts, bucket_ts +
    /// bucket_seconds)`: the latest one taken before the bucket ends and no
    /// more than `max_age_s` before it starts.
    pub async fn snapshot_for_bucket(
        &self,
        system_id: &str,
        bucket_ts: i64,
        bucket_seconds: i64,
        max_age_s: i64,
    ) -> Result<Option<SnapshotRecord>, StoreError> {
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM station_snapshots WHERE system_id = $1 AND snapshot_ts < $2 AND snapshot_ts >= $3 \
             ORDER BY snapshot_ts DESC LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(system_id)
            .bind(bucket_ts.saturating_add(bucket_seconds))
            .bind(bucket_ts.saturating_sub(max_age_s))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(snapshot_from_row).transpose()
    }

    /// The neighbour graph stored under `graph_sha256`, as JSON text.
    pub async fn graph(&self, graph_sha256: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT neighbors_json FROM station_graphs WHERE graph_sha256 = $1")
            .bind(graph_sha256)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>("neighbors_json")).transpose()?)
    }

    /// The stations of a system, by key.
    pub async fn stations(&self, system_id: &str) -> Result<Vec<StationRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT system_id, station_key, name, lat, lon, capacity FROM station_info WHERE system_id = $1 ORDER BY station_key",
        )
        .bind(system_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StationRow {
                    system_id: r.try_get("system_id")?,
                    station_key: r.try_get("station_key")?,
                    name: r.try_get("name")?,
                    lat: r.try_get("lat")?,
                    lon: r.try_get("lon")?,
                    capacity: r.try_get("capacity")?,
                })
            })
            .collect()
    }

    /// Every system with snapshots, by id.
    pub async fn systems(&self) -> Result<Vec<SystemSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT system_id, COUNT(*) AS n, MIN(snapshot_ts) AS first_ts, MAX(snapshot_ts) AS last_ts \
             FROM station_snapshots GROUP BY system_id ORDER BY system_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SystemSummary {
                    system_id: r.try_get("system_id")?,
                    snapshots: r.try_get("n")?,
                    first_ts: r.try_get("first_ts")?,
                    last_ts: r.try_get("last_ts")?,
                })
            })
            .collect()
    }
}
