//! Reading GBFS: a live feed directory or an archive of snapshots.
//!
//! Two shapes are accepted:
//!
//! - a **feed directory** with `station_information.json` and
//!   `station_status.json` (GBFS 1.x–3.x: flags as booleans or 0/1,
//!   `last_reported` as epoch seconds or RFC 3339, bikes as
//!   `num_bikes_available` or `num_vehicles_available`);
//! - an **archive**: `stations.csv` (station_id, short_name, name, lat, lon,
//!   capacity) beside `station_status.csv` or `station_status.csv.gz` with
//!   one row per station per snapshot, GBFS column names, and the
//!   snapshot's `last_updated` in `snapshot_ts` — the shape of the Bay
//!   Wheels week and of `polis rebalance synth`.
//!
//! A path to a directory holding an archive is read as the archive (it is
//! the richer of the two); a path to `station_status.csv[.gz]` is read as
//! the archive it belongs to. Files are size-capped and every error names
//! the file, and for CSV the line and column.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Largest JSON feed file read.
pub const MAX_JSON_BYTES: u64 = 64 << 20;
/// Largest archive read, after decompression.
pub const MAX_ARCHIVE_BYTES: u64 = 2 << 30;

/// A station's static facts.
#[derive(Debug, Clone, PartialEq)]
pub struct StationInfo {
    /// GBFS `station_id`.
    pub station_id: String,
    /// Human name, when known.
    pub name: String,
    /// Short code such as `SF-J26`, when known.
    pub short_name: String,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Docks, as published (0 when absent).
    pub capacity: u32,
}

/// A station's state in one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationStatus {
    /// Index into the feed's station list.
    pub station: usize,
    /// `num_bikes_available`.
    pub bikes: u32,
    /// `num_docks_available`.
    pub docks: u32,
    /// `is_installed`.
    pub is_installed: bool,
    /// `is_renting`.
    pub is_renting: bool,
    /// `is_returning`.
    pub is_returning: bool,
    /// `last_reported`, epoch seconds.
    pub last_reported: i64,
}

/// One published snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The status feed's `last_updated`, epoch seconds.
    pub ts: i64,
    /// One row per reporting station, sorted by station index.
    pub rows: Vec<StationStatus>,
}

/// A station list and one or more snapshots of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    /// The system's id, used in run keys.
    pub system_id: String,
    /// Station information, sorted by `station_id` in byte order.
    pub stations: Vec<StationInfo>,
    /// Watermark of the station information (its `last_updated`; for an
    /// archive, the last snapshot's time, since `stations.csv` is as of
    /// the end of the archive).
    pub info_last_updated: i64,
    /// Snapshots, oldest first.
    pub snapshots: Vec<Snapshot>,
    /// Status rows dropped because their station is not in the station
    /// information, per snapshot summed.
    pub unknown_station_rows: u64,
}

/// Why a feed could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GbfsError {
    /// A file could not be opened or read.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is larger than the limit.
    #[error("`{}` is larger than the {limit}-byte limit", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A file's content is malformed.
    #[error("`{}`{}: {message}", path.display(), location.as_deref().map(|l| format!(" at {l}")).unwrap_or_default())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where: a JSON path, or `line N, column C`.
        location: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The path is neither a feed directory nor an archive.
    #[error("`{}` is not a GBFS feed directory (station_information.json + station_status.json) nor an archive (stations.csv + station_status.csv[.gz])", .0.display())]
    NotAFeed(PathBuf),
    /// No snapshot at or before the requested time.
    #[error("no snapshot at or before {at} (the feed starts at {first})")]
    NoSnapshot {
        /// Requested time.
        at: i64,
        /// The first snapshot's time.
        first: i64,
    },
}

impl GbfsError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            GbfsError::Io { .. } => "gbfs.io",
            GbfsError::TooLarge { .. } => "gbfs.too_large",
            GbfsError::Malformed { .. } => "gbfs.malformed",
            GbfsError::NotAFeed(_) => "gbfs.not_a_feed",
            GbfsError::NoSnapshot { .. } => "gbfs.no_snapshot",
        }
    }
}

impl Feed {
    /// Opens a feed directory, an archive directory, or an archive's status
    /// file. The system id defaults to the directory's name.
    pub fn open(path: &Path) -> Result<Feed, GbfsError> {
        let (dir, status_file) = if path.is_file() {
            (path.parent().unwrap_or(Path::new(".")).to_path_buf(), Some(path.to_path_buf()))
        } else {
            (path.to_path_buf(), None)
        };
        let system_id = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "gbfs".to_owned());
        let archive_status = status_file.or_else(|| {
            ["station_status.csv.gz", "station_status.csv"].iter().map(|n| dir.join(n)).find(|p| p.is_file())
        });
        if let Some(status) = archive_status {
            return read_archive(&dir.join("stations.csv"), &status, system_id);
        }
        let info = dir.join("station_information.json");
        let status = dir.join("station_status.json");
        if info.is_file() && status.is_file() {
            return read_feed_dir(&info, &status, system_id);
        }
        Err(GbfsError::NotAFeed(path.to_path_buf()))
    }

    /// The latest snapshot at or before `at`, or the last one when `at` is
    /// `None`.
    pub fn snapshot_at(&self, at: Option<i64>) -> Result<&Snapshot, GbfsError> {
        let first = self.snapshots.first().map_or(0, |s| s.ts);
        let found = match at {
            None => self.snapshots.last(),
            Some(at) => {
                let after = self.snapshots.partition_point(|s| s.ts <= at);
                after.checked_sub(1).map(|i| &self.snapshots[i])
            }
        };
        found.ok_or(GbfsError::NoSnapshot { at: at.unwrap_or(0), first })
    }
}

fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, GbfsError> {
    let file = File::open(path).map_err(|source| GbfsError::Io { path: path.to_path_buf(), source })?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| GbfsError::Io { path: path.to_path_buf(), source })?;
    if bytes.len() as u64 > limit {
        return Err(GbfsError::TooLarge { path: path.to_path_buf(), limit });
    }
    Ok(bytes)
}

fn malformed(path: &Path, location: Option<String>, message: impl Into<String>) -> GbfsError {
    GbfsError::Malformed { path: path.to_path_buf(), location, message: message.into() }
}

// ---- feed directory -------------------------------------------------------

#[derive(Deserialize)]
struct Envelope<T> {
    last_updated: Timestamp,
    data: StationList<T>,
}

#[derive(Deserialize)]
struct StationList<T> {
    stations: Vec<T>,
}

#[derive(Deserialize)]
struct JsonInfo {
    station_id: String,
    #[serde(default)]
    name: Option<serde_json::Value>,
    #[serde(default)]
    short_name: Option<serde_json::Value>,
    lat: f64,
    lon: f64,
    #[serde(default)]
    capacity: Option<u32>,
}

#[derive(Deserialize)]
struct JsonStatus {
    station_id: String,
    #[serde(alias = "num_vehicles_available")]
    num_bikes_available: u32,
    #[serde(default)]
    num_docks_available: Option<u32>,
    is_installed: Flag,
    is_renting: Flag,
    is_returning: Flag,
    last_reported: Timestamp,
}

/// GBFS 1.x writes flags as 0/1, 2.x and later as booleans.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Int(u8),
}

impl Flag {
    fn get(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Int(i) => *i != 0,
        }
    }
}

/// GBFS 3.x writes times as RFC 3339, earlier versions as epoch seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Seconds(i64),
    Text(String),
}

impl Timestamp {
    fn seconds(&self) -> Result<i64, String> {
        match self {
            Timestamp::Seconds(s) => Ok(*s),
            Timestamp::Text(t) => polis_core::run::parse_time(t),
        }
    }
}

/// GBFS 3.x localises names as `[{"text": …, "language": …}]`.
fn text_of(value: Option<serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Array(items)) => {
            items.first().and_then(|i| i.get("text")).and_then(|t| t.as_str()).unwrap_or_default().to_owned()
        }
        _ => String::new(),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, GbfsError> {
    let bytes = read_capped(path, MAX_JSON_BYTES)?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let location = e.path().to_string();
        malformed(path, Some(location), e.into_inner().to_string())
    })
}

fn read_feed_dir(info_path: &Path, status_path: &Path, system_id: String) -> Result<Feed, GbfsError> {
    let info: Envelope<JsonInfo> = parse_json(info_path)?;
    let status: Envelope<JsonStatus> = parse_json(status_path)?;
    let info_last_updated =
        info.last_updated.seconds().map_err(|m| malformed(info_path, Some("last_updated".into()), m))?;
    let ts = status.last_updated.seconds().map_err(|m| malformed(status_path, Some("last_updated".into()), m))?;
    let mut stations: Vec<StationInfo> = info
        .data
        .stations
        .into_iter()
        .map(|s| StationInfo {
            station_id: s.station_id,
            name: text_of(s.name),
            short_name: text_of(s.short_name),
            lat: s.lat,
            lon: s.lon,
            capacity: s.capacity.unwrap_or(0),
        })
        .collect();
    check_stations(info_path, &mut stations)?;
    let mut rows = Vec::with_capacity(status.data.stations.len());
    let mut unknown = 0;
    for (i, s) in status.data.stations.into_iter().enumerate() {
        let Ok(station) = stations.binary_search_by(|info| info.station_id.as_str().cmp(&s.station_id)) else {
            unknown += 1;
            continue;
        };
        let last_reported = s
            .last_reported
            .seconds()
            .map_err(|m| malformed(status_path, Some(format!("data.stations[{i}].last_reported")), m))?;
        rows.push(StationStatus {
            station,
            bikes: s.num_bikes_available,
            docks: s.num_docks_available.unwrap_or(0),
            is_installed: s.is_installed.get(),
            is_renting: s.is_renting.get(),
            is_returning: s.is_returning.get(),
            last_reported,
        });
    }
    rows.sort_by_key(|r| r.station);
    rows.dedup_by_key(|r| r.station);
    Ok(Feed {
        system_id,
        stations,
        info_last_updated,
        snapshots: vec![Snapshot { ts, rows }],
        unknown_station_rows: unknown,
    })
}

/// Sorts stations by id and rejects duplicates and impossible coordinates.
fn check_stations(path: &Path, stations: &mut [StationInfo]) -> Result<(), GbfsError> {
    stations.sort_by(|a, b| a.station_id.cmp(&b.station_id));
    for pair in stations.windows(2) {
        if pair[0].station_id == pair[1].station_id {
            return Err(malformed(path, None, format!("station `{}` is listed twice", pair[0].station_id)));
        }
    }
    for s in stations.iter() {
        if !(s.lat.is_finite()
            && s.lon.is_finite()
            && (-90.0..=90.0).contains(&s.lat)
            && (-180.0..=180.0).contains(&s.lon))
        {
            return Err(malformed(
                path,
                None,
                format!("station `{}` has impossible coordinates ({}, {})", s.station_id, s.lat, s.lon),
            ));
        }
        if s.station_id.is_empty() {
            return Err(malformed(path, None, "a station has an empty `station_id`"));
        }
    }
    Ok(())
}

// ---- archive --------------------------------------------------------------

/// Reads the columns named `names` from a CSV header, failing with the
/// missing column's name.
fn columns<const N: usize>(path: &Path, header: &csv::ByteRecord, names: [&str; N]) -> Result<[usize; N], GbfsError> {
    let mut out = [0; N];
    for (slot, name) in out.iter_mut().zip(names) {
        *slot = header
            .iter()
            .position(|h| h == name.as_bytes())
            .ok_or_else(|| malformed(path, Some("line 1".into()), format!("missing column `{name}`")))?;
    }
    Ok(out)
}

fn field<T: std::str::FromStr>(
    path: &Path,
    record: &csv::ByteRecord,
    column: usize,
    name: &str,
) -> Result<T, GbfsError> {
    let line = record.position().map_or(0, |p| p.line());
    let raw = record.get(column).unwrap_or_default();
    std::str::from_utf8(raw).ok().and_then(|text| text.trim().parse().ok()).ok_or_else(|| {
        malformed(
            path,
            Some(format!("line {line}, column `{name}`")),
            format!("cannot read `{}`", String::from_utf8_lossy(raw)),
        )
    })
}

fn flag(path: &Path, record: &csv::ByteRecord, column: usize, name: &str) -> Result<bool, GbfsError> {
    match record.get(column).unwrap_or_default() {
        b"1" | b"true" | b"True" | b"TRUE" => Ok(true),
        b"0" | b"false" | b"False" | b"FALSE" => Ok(false),
        other => {
            let line = record.position().map_or(0, |p| p.line());
            Err(malformed(
                path,
                Some(format!("line {line}, column `{name}`")),
                format!("`{}` is not a flag (0/1 or true/false)", String::from_utf8_lossy(other)),
            ))
        }
    }
}

fn read_archive(info_path: &Path, status_path: &Path, system_id: String) -> Result<Feed, GbfsError> {
    let bytes = read_capped(info_path, MAX_JSON_BYTES)?;
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
    let header = reader.byte_headers().map_err(|e| malformed(info_path, None, e.to_string()))?.clone();
    let [id, short, name, lat, lon, cap] =
        columns(info_path, &header, ["station_id", "short_name", "name", "lat", "lon", "capacity"])?;
    let mut stations = Vec::new();
    for record in reader.byte_records() {
        let record = record.map_err(|e| malformed(info_path, None, e.to_string()))?;
        let text = |c: usize| String::from_utf8_lossy(record.get(c).unwrap_or_default()).into_owned();
        stations.push(StationInfo {
            station_id: text(id),
            short_name: text(short),
            name: text(name),
            lat: field(info_path, &record, lat, "lat")?,
            lon: field(info_path, &record, lon, "lon")?,
            capacity: field(info_path, &record, cap, "capacity")?,
        });
    }
    check_stations(info_path, &mut stations)?;

    let bytes = read_capped(status_path, MAX_ARCHIVE_BYTES)?;
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
    let header = reader.byte_headers().map_err(|e| malformed(status_path, None, e.to_string()))?.clone();
    let [ts_c, id_c, bikes_c, docks_c, inst_c, rent_c, ret_c, rep_c] = columns(
        status_path,
        &header,
        [
            "snapshot_ts",
            "station_id",
            "num_bikes_available",
            "num_docks_available",
            "is_installed",
            "is_renting",
            "is_returning",
            "last_reported",
        ],
    )?;
    let mut rows: Vec<(i64, StationStatus)> = Vec::new();
    let mut unknown = 0;
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record).map_err(|e| malformed(status_path, None, e.to_string()))? {
        let station_id = record.get(id_c).unwrap_or_default();
        let Ok(station) = stations.binary_search_by(|s| s.station_id.as_bytes().cmp(station_id)) else {
            unknown += 1;
            continue;
        };
        rows.push((
            field(status_path, &record, ts_c, "snapshot_ts")?,
            StationStatus {
                station,
                bikes: field(status_path, &record, bikes_c, "num_bikes_available")?,
                docks: field(status_path, &record, docks_c, "num_docks_available")?,
                is_installed: flag(status_path, &record, inst_c, "is_installed")?,
                is_renting: flag(status_path, &record, rent_c, "is_renting")?,
                is_returning: flag(status_path, &record, ret_c, "is_returning")?,
                last_reported: field(status_path, &record, rep_c, "last_reported")?,
            },
        ));
    }
    rows.sort_by_key(|(ts, r)| (*ts, r.station));
    rows.dedup_by_key(|(ts, r)| (*ts, r.station));
    let mut snapshots: Vec<Snapshot> = Vec::new();
    for (ts, row) in rows {
        match snapshots.last_mut() {
            Some(last) if last.ts == ts => last.rows.push(row),
            _ => snapshots.push(Snapshot { ts, rows: vec![row] }),
        }
    }
    if snapshots.is_empty() {
        return Err(malformed(status_path, None, "the archive holds no snapshot"));
    }
    let info_last_updated = snapshots.last().map_or(0, |s| s.ts);
    Ok(Feed { system_id, stations, info_last_updated, snapshots, unknown_station_rows: unknown })
}
