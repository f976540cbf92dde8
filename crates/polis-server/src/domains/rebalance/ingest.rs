//! Storing GBFS snapshots, and reading them back as policy inputs.
//!
//! Each snapshot of a feed is built into a `policy.input.v1` by the
//! rebalancing domain's [`SnapshotBuilder`] (which also derives `sv` from
//! the feed watermarks) and stored as its identity, its body (stations,
//! effort, targets) and a reference to its neighbour graph, stored once per
//! distinct graph. [`load_input`] reverses this and checks the result
//! against the stored snapshot hash, so a worker never decides on data that
//! differs from what was ingested.

use polis_core::canonical::{self, Digest};
use polis_rebalance::contract::{Neighbor, PolicyInput, Station};
use polis_rebalance::gbfs::Feed;
use polis_rebalance::snapshot::SnapshotError;
use polis_rebalance::snapshot::{SnapshotBuilder, SnapshotOptions};
use polis_store::rebalance::{IngestCounts, NewSnapshot, SnapshotRecord, StationRow};
use polis_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// Snapshots written per transaction.
const BATCH: usize = 100;

/// Why ingest or loading failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A snapshot could not be built into an input.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A document would not canonicalise (a non-finite number).
    #[error("cannot canonicalise {what}: {message}")]
    Canonical {
        /// Which document.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// A stored snapshot does not decode or does not match its hash.
    #[error("stored snapshot `{view_snapshot_id}` is corrupt: {message}")]
    Corrupt {
        /// The snapshot.
        view_snapshot_id: String,
        /// What is wrong.
        message: String,
    },
}

impl IngestError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::Store(e) => e.code(),
            IngestError::Snapshot(e) => e.code(),
            IngestError::Canonical { .. } => "ingest.not_canonical",
            IngestError::Corrupt { .. } => "snapshot.corrupt",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Body {
    stations: Vec<Station>,
    effort: polis_rebalance::contract::Effort,
    targets: polis_rebalance::contract::Targets,
}

fn canonical_text<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<String, IngestError> {
    let bytes =
        canonical::to_canonical_vec(value).map_err(|e| IngestError::Canonical { what, message: e.to_string() })?;
    String::from_utf8(bytes).map_err(|e| IngestError::Canonical { what, message: e.to_string() })
}

/// Stores every snapshot of `feed`, built with `options`, and its station
/// information. Snapshots already stored are left as they were.
pub async fn ingest_feed(
    store: &Store,
    feed: &Feed,
    options: SnapshotOptions,
    now_ms: i64,
) -> Result<IngestCounts, IngestError> {
    let mut builder = SnapshotBuilder::new(options);
    let mut stations: Vec<StationRow> = feed
        .stations
        .iter()
        .map(|s| StationRow {
            system_id: feed.system_id.clone(),
            station_key: s.station_id.clone(),
            name: if s.short_name.is_empty() { s.name.clone() } else { format!("{} {}", s.short_name, s.name) },
            lat: s.lat,
            lon: s.lon,
            capacity: i64::from(s.capacity),
        })
        .collect();
    let mut total = IngestCounts::default();
    let mut last_graph: Option<(Vec<Neighbor>, String, String)> = None;
    for chunk in feed.snapshots.chunks(BATCH) {
        let mut batch = Vec::with_capacity(chunk.len());
        for snapshot in chunk {
            let built = builder.build(feed, snapshot, None)?;
            let (neighbors_json, graph_sha256) = match &last_graph {
                Some((neighbors, json, sha)) if *neighbors == built.input.neighbors => (json.clone(), sha.clone()),
                _ => {
                    let json = canonical_text("neighbours", &built.input.neighbors)?;
                    let sha = Digest::of_bytes(json.as_bytes()).to_hex();
                    last_graph = Some((built.input.neighbors.clone(), json.clone(), sha.clone()));
                    (json, sha)
                }
            };
            let body =
                Body { stations: built.input.stations, effort: built.input.effort, targets: built.input.targets };
            batch.push(NewSnapshot {
                record: SnapshotRecord {
                    system_id: built.system_id,
                    snapshot_ts: built.snapshot_ts,
                    sv: built.sv,
                    decision_bucket_ts: built.decision_bucket_ts,
                    view_snapshot_id: built.view_snapshot_id,
                    view_snapshot_sha256: built.view_snapshot_sha256.to_hex(),
                    body_json: canonical_text("snapshot body", &body)?,
                    graph_sha256,
                },
                neighbors_json,
            });
        }
        let counts = store.ingest(&std::mem::take(&mut stations), &batch, now_ms).await?;
        total.inserted += counts.inserted;
        total.skipped += counts.skipped;
        total.stations += counts.stations;
    }
    if feed.snapshots.is_empty() {
        total.stations = store.ingest(&stations, &[], now_ms).await?.stations;
    }
    Ok(total)
}

/// Rebuilds the `policy.input.v1` of a stored snapshot and checks it
/// against the snapshot's hash.
pub async fn load_input(store: &Store, snapshot: &SnapshotRecord) -> Result<PolicyInput, IngestError> {
    let corrupt =
        |message: String| IngestError::Corrupt { view_snapshot_id: snapshot.view_snapshot_id.clone(), message };
    let body = body_of(snapshot)?;
    let graph = store
        .graph(&snapshot.graph_sha256)
        .await?
        .ok_or_else(|| corrupt(format!("neighbour graph `{}` is missing", snapshot.graph_sha256)))?;
    let neighbors: Vec<Neighbor> = serde_json::from_str(&graph).map_err(|e| corrupt(format!("neighbours: {e}")))?;
    let view = serde_json::json!({"stations": &body.stations, "neighbors": &neighbors});
    let digest = canonical::digest_of(&view).map_err(|e| corrupt(e.to_string()))?;
    if digest.to_hex() != snapshot.view_snapshot_sha256 {
        return Err(corrupt(format!(
            "its content hashes to {digest}, not the recorded {}",
            snapshot.view_snapshot_sha256
        )));
    }
    Ok(PolicyInput { stations: body.stations, neighbors, effort: body.effort, targets: body.targets })
}

/// The station states of a stored snapshot (for display: unlike
/// [`load_input`] this skips the graph and the hash check).
pub fn stations_of(snapshot: &SnapshotRecord) -> Result<Vec<Station>, IngestError> {
    Ok(body_of(snapshot)?.stations)
}

fn body_of(snapshot: &SnapshotRecord) -> Result<Body, IngestError> {
    serde_json::from_str(&snapshot.body_json).map_err(|e| IngestError::Corrupt {
        view_snapshot_id: snapshot.view_snapshot_id.clone(),
        message: format!("body: {e}"),
    })
}
