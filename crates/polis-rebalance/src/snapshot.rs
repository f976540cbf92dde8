//! Building a `policy.input.v1` from a GBFS snapshot.
//!
//! - **Stations**: every station in the snapshot that the station
//!   information knows. Capacity is `max(capacity, bikes + docks)`, because
//!   published capacities lag reality (the Bay Wheels week has 8,834 rows
//!   where bikes plus free docks exceed the listed capacity).
//! - **Quality** (`bucket_quality`), from the GBFS flags and the age of
//!   `last_reported` at the decision time:
//!   `offline` when not installed, or neither renting nor returning;
//!   `stale` when the report is more than an hour old;
//!   `degraded` when renting or returning is off, or the report is more
//!   than 15 minutes old; `ok` otherwise.
//! - **Neighbours**: for each station, the `k` nearest other stations
//!   within `radius_m` by haversine distance, ranked by (distance, key);
//!   distances are rounded to 0.1 m.
//! - **Identity**: `sv` is `sv1-` plus 16 hex digits of the SHA-256 of the
//!   feed watermarks (system id and both `last_updated` values); the
//!   snapshot id is `{system_id}@{status last_updated}`, and the snapshot
//!   hash is `SHA-256(JCS({stations, neighbors}))`.
//! - **Decision bucket**: the time floored to [`BUCKET_SECONDS`].

use std::collections::BTreeMap;

use polis_core::canonical::{self, Digest};
use serde::Serialize;
use serde_json::json;

use crate::contract::{DEFAULT_EFFORT, Effort, Neighbor, PolicyInput, Station, Targets, default_targets};
use crate::gbfs::{Feed, Snapshot, StationInfo};

/// Decision buckets are five minutes long.
pub const BUCKET_SECONDS: i64 = 300;

/// A report older than this makes a station `degraded`.
pub const DEGRADED_AFTER_S: i64 = 15 * 60;

/// A report older than this makes a station `stale`.
pub const STALE_AFTER_S: i64 = 60 * 60;

/// Mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// How to build inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotOptions {
    /// Neighbours per station. By default 25.
    pub k: usize,
    /// Neighbour radius in metres. By default 1,200.
    pub radius_m: f64,
    /// Effort limits. By default [`DEFAULT_EFFORT`].
    pub effort: Effort,
    /// Fill band. By default [`default_targets`].
    pub targets: Targets,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions { k: 25, radius_m: 1200.0, effort: DEFAULT_EFFORT, targets: default_targets() }
    }
}

/// A built input with its identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuiltSnapshot {
    /// The system id.
    pub system_id: String,
    /// The serving view token.
    pub sv: String,
    /// The decision bucket start, epoch seconds.
    pub decision_bucket_ts: i64,
    /// `{system_id}@{snapshot ts}`.
    pub view_snapshot_id: String,
    /// `SHA-256(JCS({stations, neighbors}))`.
    pub view_snapshot_sha256: Digest,
    /// The snapshot's own time.
    pub snapshot_ts: i64,
    /// The input document.
    pub input: PolicyInput,
    /// Display names by station key, for people (not part of the input).
    #[serde(skip)]
    pub names: BTreeMap<String, String>,
}

impl BuiltSnapshot {
    /// The run subject of a decision on this snapshot, with horizon 0.
    pub fn subject(&self) -> crate::contract::DecisionSubject {
        crate::contract::DecisionSubject {
            system_id: self.system_id.clone(),
            sv: self.sv.clone(),
            decision_bucket_ts: self.decision_bucket_ts,
            horizon_steps: 0,
        }
    }
}

/// Builds inputs. For each station of a feed it keeps, once, the list of
/// all stations within the radius sorted by (distance, key); a snapshot's
/// neighbours are then the first `k` of that list that are present, which
/// is exactly the `k` nearest present stations.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    options: SnapshotOptions,
    cache: Option<NearCache>,
}

#[derive(Debug)]
struct NearCache {
    /// The stations the lists were computed for: id, latitude, longitude.
    stations: Vec<(String, f64, f64)>,
    /// For each station, `(distance, index)` of every other station within
    /// the radius, nearest first, ties by key.
    near: Vec<Vec<(f64, usize)>>,
}

impl SnapshotBuilder {
    /// A builder with these options.
    pub fn new(options: SnapshotOptions) -> Self {
        SnapshotBuilder { options, cache: None }
    }

    /// The options.
    pub fn options(&self) -> &SnapshotOptions {
        &self.options
    }

    /// Builds the input for `snapshot` of `feed`, decided at time `at`
    /// (defaults to the snapshot's time). Fails only when the snapshot holds
    /// a value that has no canonical JSON form (a NaN coordinate makes a NaN
    /// distance), so its identity cannot be hashed.
    pub fn build(&mut self, feed: &Feed, snapshot: &Snapshot, at: Option<i64>) -> Result<BuiltSnapshot, SnapshotError> {
        let at = at.unwrap_or(snapshot.ts);
        let mut stations = Vec::with_capacity(snapshot.rows.len());
        let mut present = Vec::with_capacity(snapshot.rows.len());
        let mut names = BTreeMap::new();
        for row in &snapshot.rows {
            let info = &feed.stations[row.station];
            present.push(row.station);
            let capacity = info.capacity.max(row.bikes.saturating_add(row.docks));
            stations.push(Station {
                station_key: info.station_id.clone(),
                capacity,
                bikes: row.bikes,
                docks: row.docks,
                bucket_quality: quality(row.is_installed, row.is_renting, row.is_returning, at - row.last_reported)
                    .to_owned(),
            });
            let label = if info.short_name.is_empty() {
                info.name.clone()
            } else {
                format!("{} {}", info.short_name, info.name)
            };
            names.insert(info.station_id.clone(), label);
        }
        let neighbors = self.neighbors(&feed.stations, &present);
        let input = PolicyInput {
            stations,
            neighbors,
            effort: self.options.effort.clone(),
            targets: self.options.targets.clone(),
        };
        let view = json!({"stations": &input.stations, "neighbors": &input.neighbors});
        let not_canonical = |e: canonical::CanonicalError| SnapshotError::NotCanonical {
            system_id: feed.system_id.clone(),
            snapshot_ts: snapshot.ts,
            message: e.to_string(),
        };
        Ok(BuiltSnapshot {
            system_id: feed.system_id.clone(),
            sv: serving_view(&feed.system_id, feed.info_last_updated, snapshot.ts).map_err(not_canonical)?,
            decision_bucket_ts: at.div_euclid(BUCKET_SECONDS) * BUCKET_SECONDS,
            view_snapshot_id: format!("{}@{}", feed.system_id, snapshot.ts),
            view_snapshot_sha256: canonical::digest_of(&view).map_err(not_canonical)?,
            snapshot_ts: snapshot.ts,
            input,
            names,
        })
    }
}

impl SnapshotBuilder {
    fn neighbors(&mut self, stations: &[StationInfo], present: &[usize]) -> Vec<Neighbor> {
        let fresh = match &self.cache {
            Some(cache) => {
                cache.stations.len() != stations.len()
                    || cache
                        .stations
                        .iter()
                        .zip(stations)
                        .any(|(c, s)| c.0 != s.station_id || c.1 != s.lat || c.2 != s.lon)
            }
            None => true,
        };
        if fresh {
            let all: Vec<usize> = (0..stations.len()).collect();
            let near = all.iter().map(|&i| within_radius(stations, &all, i, self.options.radius_m)).collect();
            let ids = stations.iter().map(|s| (s.station_id.clone(), s.lat, s.lon)).collect();
            self.cache = Some(NearCache { stations: ids, near });
        }
        let Some(cache) = &self.cache else {
            return Vec::new();
        };
        let mut is_present = vec![false; stations.len()];
        for &i in present {
            is_present[i] = true;
        }
        let mut edges = Vec::with_capacity(present.len() * self.options.k);
        for &i in present {
            let nearest = cache.near[i].iter().filter(|(_, j)| is_present[*j]).take(self.options.k);
            push_edges(&mut edges, stations, i, nearest);
        }
        edges
    }
}

/// Every station of `candidates` within `radius_m` of station `i`, as
/// `(distance, index)` sorted by distance then index (= key order).
fn within_radius(stations: &[StationInfo], candidates: &[usize], i: usize, radius_m: f64) -> Vec<(f64, usize)> {
    let a = &stations[i];
    let mut near: Vec<(f64, usize)> = candidates
        .iter()
        .filter(|&&j| j != i)
        .filter_map(|&j| {
            let b = &stations[j];
            let d = haversine_m(a.lat, a.lon, b.lat, b.lon);
            (d <= radius_m).then_some((d, j))
        })
        .collect();
    near.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    near
}

fn push_edges<'a>(
    edges: &mut Vec<Neighbor>,
    stations: &[StationInfo],
    i: usize,
    nearest: impl Iterator<Item = &'a (f64, usize)>,
) {
    for (rank, &(d, j)) in nearest.enumerate() {
        edges.push(Neighbor {
            from_station_key: stations[i].station_id.clone(),
            to_station_key: stations[j].station_id.clone(),
            dist_m: (d * 10.0).round() / 10.0,
            rank: rank as u32 + 1,
        });
    }
}

/// The `bucket_quality` rules; see the module docs.
pub fn quality(installed: bool, renting: bool, returning: bool, age_s: i64) -> &'static str {
    if !installed || (!renting && !returning) {
        "offline"
    } else if age_s > STALE_AFTER_S {
        "stale"
    } else if !renting || !returning || age_s > DEGRADED_AFTER_S {
        "degraded"
    } else {
        "ok"
    }
}

/// The serving view token for a feed's watermarks.
pub fn serving_view(
    system_id: &str,
    info_last_updated: i64,
    status_last_updated: i64,
) -> Result<String, canonical::CanonicalError> {
    let watermarks = json!({
        "system_id": system_id,
        "station_information_last_updated": info_last_updated,
        "station_status_last_updated": status_last_updated,
    });
    Ok(format!("sv1-{}", &canonical::digest_of(&watermarks)?.to_hex()[..16]))
}

/// Why a snapshot could not be built into an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The snapshot's identity cannot be hashed.
    #[error("snapshot of `{system_id}` at {snapshot_ts} cannot be hashed: {message}")]
    NotCanonical {
        /// The system.
        system_id: String,
        /// The snapshot's time.
        snapshot_ts: i64,
        /// Why.
        message: String,
    },
}

impl SnapshotError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SnapshotError::NotCanonical { .. } => "snapshot.not_canonical",
        }
    }
}

/// Great-circle distance in metres.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// The `k` nearest stations within `radius_m` of each of `present`
/// (indices into `stations`, which are sorted by id), ranked by (distance,
/// key), as directed edges.
pub fn neighbor_graph(stations: &[StationInfo], present: &[usize], k: usize, radius_m: f64) -> Vec<Neighbor> {
    let mut edges = Vec::with_capacity(present.len() * k.min(present.len()));
    for &i in present {
        let near = within_radius(stations, present, i, radius_m);
        push_edges(&mut edges, stations, i, near.iter().take(k));
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_follows_flags_then_staleness() {
        assert_eq!(quality(true, true, true, 60), "ok");
        assert_eq!(quality(true, true, true, DEGRADED_AFTER_S + 1), "degraded");
        assert_eq!(quality(true, true, false, 0), "degraded");
        assert_eq!(quality(true, true, true, STALE_AFTER_S + 1), "stale");
        assert_eq!(quality(true, false, false, 0), "offline");
        assert_eq!(quality(false, true, true, 0), "offline");
    }

    #[test]
    fn cached_neighbours_equal_a_fresh_computation_when_stations_come_and_go() {
        let city = crate::synth::generate(crate::synth::CityOptions { stations: 60, days: 1, seed: 3 });
        let mut feed = city.feed;
        // Drop a different station from each of a few snapshots.
        for (n, snapshot) in feed.snapshots.iter_mut().take(5).enumerate() {
            snapshot.rows.remove(n * 7);
        }
        let mut builder = SnapshotBuilder::new(SnapshotOptions { k: 5, radius_m: 900.0, ..SnapshotOptions::default() });
        for snapshot in feed.snapshots.iter().take(6) {
            let present: Vec<usize> = snapshot.rows.iter().map(|r| r.station).collect();
            let built = builder.build(&feed, snapshot, None).unwrap();
            assert_eq!(built.input.neighbors, neighbor_graph(&feed.stations, &present, 5, 900.0));
        }
    }

    #[test]
    fn haversine_matches_a_known_distance() {
        // One degree of latitude is about 111.2 km.
        let d = haversine_m(37.0, -122.0, 38.0, -122.0);
        assert!((d - 111_195.0).abs() < 10.0, "{d}");
    }

    #[test]
    fn serving_view_changes_with_either_watermark() {
        let a = serving_view("x", 1, 2).unwrap();
        assert_eq!(a, serving_view("x", 1, 2).unwrap());
        assert_ne!(a, serving_view("x", 1, 3).unwrap());
        assert_ne!(a, serving_view("x", 0, 2).unwrap());
        assert!(a.starts_with("sv1-") && a.len() == 20);
    }
}
