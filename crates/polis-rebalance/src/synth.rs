//! A deterministic synthetic city with commute-shaped demand.
//!
//! `polis rebalance synth` writes the same shapes as a real GBFS system, so
//! everything that reads Bay Wheels reads a synthetic city too. The city:
//!
//! - stations on a jittered grid 350 m apart around (45.0° N, 9.0° E);
//!   those near the centre are mostly *business*, the rest mostly
//!   *residential*, and one in ten is *mixed*; offices have 25–45 docks,
//!   homes 15–30 and mixed squares 15–35;
//! - a snapshot every five minutes from midnight UTC on 2024-01-01;
//! - trips as Poisson arrivals per station and step. Weekday mornings
//!   (07:00–10:00) residential stations send riders to business stations;
//!   evenings (16:00–19:00) the reverse; other hours are quiet and
//!   undirected. A rider who finds no bike makes no trip; a rider who
//!   finds a full station tries two others, then returns to the start, so
//!   bikes are never created or lost;
//! - each day one station in a hundred goes offline for two hours.
//!
//! The result: residential stations run empty and business stations fill
//! up by mid-morning, which is the problem rebalancing solves. Everything
//! derives from one ChaCha8 stream seeded with `seed`, so the same
//! arguments give byte-identical files.

use std::io::Write;
use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde_json::json;

use crate::gbfs::{Feed, Snapshot, StationInfo, StationStatus};

/// The synthetic city starts at 2024-01-01T00:00:00Z.
pub const START_TS: i64 = 1_704_067_200;
/// Snapshot spacing.
pub const STEP_S: i64 = 300;
const CENTRE: (f64, f64) = (45.0, 9.0);
const SPACING_M: f64 = 350.0;
const METRES_PER_DEGREE: f64 = 111_195.0;

/// What kind of neighbourhood a station serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Homes: riders leave in the morning and come back in the evening.
    Residential,
    /// Offices: riders arrive in the morning and leave in the evening.
    Business,
    /// Both.
    Mixed,
}

/// Parameters of a synthetic city.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CityOptions {
    /// Number of stations.
    pub stations: usize,
    /// Number of days simulated.
    pub days: u32,
    /// Seed of the single random stream.
    pub seed: u64,
}

/// A generated city: a feed with every snapshot, and each station's zone.
#[derive(Debug, Clone)]
pub struct City {
    /// The feed, as `Feed::open` would read it back.
    pub feed: Feed,
    /// Zone of each station, in feed order.
    pub zones: Vec<Zone>,
}

struct Sim {
    rng: ChaCha8Rng,
}

impl Sim {
    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }

    fn poisson(&mut self, lambda: f64) -> u32 {
        // Knuth's method; lambda is small here.
        let limit = (-lambda).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.unit();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}

/// Departures per five minutes from a station of `zone` at `hour` (0–24).
fn departure_rate(zone: Zone, hour: f64) -> f64 {
    let morning = (7.0..10.0).contains(&hour);
    let evening = (16.0..19.0).contains(&hour);
    let night = !(6.0..23.0).contains(&hour);
    match zone {
        _ if night => 0.02,
        Zone::Residential if morning => 0.7,
        Zone::Business if evening => 0.9,
        Zone::Mixed if morning || evening => 0.3,
        _ => 0.08,
    }
}

/// The zone a rider leaving at `hour` heads for.
fn destination_zone(sim: &mut Sim, hour: f64) -> Zone {
    let r = sim.unit();
    if (7.0..10.0).contains(&hour) {
        if r < 0.85 { Zone::Business } else { Zone::Mixed }
    } else if (16.0..19.0).contains(&hour) {
        if r < 0.85 { Zone::Residential } else { Zone::Mixed }
    } else if r < 0.5 {
        Zone::Residential
    } else if r < 0.8 {
        Zone::Business
    } else {
        Zone::Mixed
    }
}

/// Generates a city.
pub fn generate(options: CityOptions) -> City {
    let mut sim = Sim { rng: ChaCha8Rng::seed_from_u64(options.seed) };
    let n = options.stations.max(2);
    let side = (n as f64).sqrt().ceil() as usize;
    let half = (side as f64 - 1.0) / 2.0;
    let mut stations = Vec::with_capacity(n);
    let mut zones = Vec::with_capacity(n);
    for i in 0..n {
        let (row, col) = ((i / side) as f64, (i % side) as f64);
        let north = (row - half) * SPACING_M + (sim.unit() - 0.5) * 160.0;
        let east = (col - half) * SPACING_M + (sim.unit() - 0.5) * 160.0;
        let radius = ((row - half).powi(2) + (col - half).powi(2)).sqrt() / (half.max(1.0) * 1.414);
        let zone = if sim.unit() < 0.1 {
            Zone::Mixed
        } else if radius < 0.4 {
            if sim.unit() < 0.85 { Zone::Business } else { Zone::Residential }
        } else if sim.unit() < 0.9 {
            Zone::Residential
        } else {
            Zone::Business
        };
        let lat = CENTRE.0 + north / METRES_PER_DEGREE;
        let lon = CENTRE.1 + east / (METRES_PER_DEGREE * CENTRE.0.to_radians().cos());
        // Offices get the big stations: their docks must absorb the morning.
        let capacity = match zone {
            Zone::Business => 25 + sim.below(21) as u32,
            Zone::Residential => 15 + sim.below(16) as u32,
            Zone::Mixed => 15 + sim.below(21) as u32,
        };
        stations.push(StationInfo {
            station_id: format!("syn-{i:05}"),
            name: format!(
                "{} {}",
                match zone {
                    Zone::Residential => "Homes",
                    Zone::Business => "Offices",
                    Zone::Mixed => "Square",
                },
                i
            ),
            short_name: format!("S{i}"),
            lat: (lat * 1e6).round() / 1e6,
            lon: (lon * 1e6).round() / 1e6,
            capacity,
        });
        zones.push(zone);
    }
    let by_zone = |z: Zone| -> Vec<usize> { (0..n).filter(|&i| zones[i] == z).collect() };
    let pools = [by_zone(Zone::Residential), by_zone(Zone::Business), by_zone(Zone::Mixed)];
    let pool = |z: Zone| match z {
        Zone::Residential => 0,
        Zone::Business => 1,
        Zone::Mixed => 2,
    };
    let mut bikes: Vec<u32> = stations
        .iter()
        .zip(&zones)
        .map(|(s, z)| {
            let fill = match z {
                Zone::Residential => 0.7,
                Zone::Business => 0.2,
                Zone::Mixed => 0.5,
            };
            (f64::from(s.capacity) * fill).round() as u32
        })
        .collect();

    let steps = i64::from(options.days.max(1)) * 86_400 / STEP_S;
    let mut snapshots = Vec::with_capacity(steps as usize);
    let mut outage: Vec<(usize, i64, i64)> = Vec::new();
    for step in 0..steps {
        let ts = START_TS + step * STEP_S;
        let seconds_of_day = (ts - START_TS).rem_euclid(86_400);
        let hour = seconds_of_day as f64 / 3600.0;
        if seconds_of_day == 0 {
            for _ in 0..n.div_ceil(100) {
                let station = sim.below(n);
                let start = ts + (sim.below(20) as i64 + 2) * 3600;
                outage.push((station, start, start + 2 * 3600));
            }
        }
        let offline = |i: usize| outage.iter().any(|&(s, a, b)| s == i && (a..b).contains(&ts));
        for origin in 0..n {
            if offline(origin) {
                continue;
            }
            let trips = sim.poisson(departure_rate(zones[origin], hour));
            for _ in 0..trips {
                if bikes[origin] == 0 {
                    break;
                }
                let zone = destination_zone(&mut sim, hour);
                let candidates = &pools[pool(zone)];
                if candidates.is_empty() {
                    continue;
                }
                bikes[origin] -= 1;
                let mut placed = false;
                for _ in 0..3 {
                    let dest = candidates[sim.below(candidates.len())];
                    if dest != origin && !offline(dest) && bikes[dest] < stations[dest].capacity {
                        bikes[dest] += 1;
                        placed = true;
                        break;
                    }
                }
                if !placed {
                    bikes[origin] += 1;
                }
            }
        }
        let rows = (0..n)
            .map(|i| {
                let off = offline(i);
                StationStatus {
                    station: i,
                    bikes: bikes[i],
                    docks: stations[i].capacity - bikes[i],
                    is_installed: true,
                    is_renting: !off,
                    is_returning: !off,
                    last_reported: ts - sim.below(120) as i64,
                }
            })
            .collect();
        snapshots.push(Snapshot { ts, rows });
    }
    let info_last_updated = snapshots.last().map_or(START_TS, |s| s.ts);
    City {
        feed: Feed {
            system_id: "synthetic".to_owned(),
            stations,
            info_last_updated,
            snapshots,
            unknown_station_rows: 0,
        },
        zones,
    }
}

/// Writes a city as GBFS: `station_information.json` and
/// `station_status.json` (the last snapshot, as a live feed would show),
/// plus the whole series as `stations.csv` and `station_status.csv.gz`.
pub fn write(city: &City, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let feed = &city.feed;
    let last = feed.snapshots.last().map_or(START_TS, |s| s.ts);
    let info = json!({
        "last_updated": feed.info_last_updated,
        "ttl": 60,
        "version": "2.3",
        "data": {"stations": feed.stations.iter().map(|s| json!({
            "station_id": s.station_id, "name": s.name, "short_name": s.short_name,
            "lat": s.lat, "lon": s.lon, "capacity": s.capacity,
        })).collect::<Vec<_>>()}
    });
    std::fs::write(dir.join("station_information.json"), serde_json::to_vec_pretty(&info)?)?;
    if let Some(snapshot) = feed.snapshots.last() {
        let status = json!({
            "last_updated": last,
            "ttl": 60,
            "version": "2.3",
            "data": {"stations": snapshot.rows.iter().map(|r| json!({
                "station_id": feed.stations[r.station].station_id,
                "num_bikes_available": r.bikes, "num_docks_available": r.docks,
                "is_installed": r.is_installed, "is_renting": r.is_renting, "is_returning": r.is_returning,
                "last_reported": r.last_reported,
            })).collect::<Vec<_>>()}
        });
        std::fs::write(dir.join("station_status.json"), serde_json::to_vec_pretty(&status)?)?;
    }
    let mut csv = String::from("station_id,short_name,name,lat,lon,capacity\n");
    for s in &feed.stations {
        csv.push_str(&format!("{},{},{},{},{},{}\n", s.station_id, s.short_name, s.name, s.lat, s.lon, s.capacity));
    }
    std::fs::write(dir.join("stations.csv"), csv)?;
    let file = std::fs::File::create(dir.join("station_status.csv.gz"))?;
    // mtime 0 and no file name keep the gzip header byte-identical.
    let mut gz = flate2::GzBuilder::new().mtime(0).write(std::io::BufWriter::new(file), flate2::Compression::default());
    writeln!(
        gz,
        "snapshot_ts,station_id,num_bikes_available,num_ebikes_available,num_bikes_disabled,num_docks_available,num_docks_disabled,is_installed,is_renting,is_returning,last_reported"
    )?;
    for snapshot in &feed.snapshots {
        for r in &snapshot.rows {
            writeln!(
                gz,
                "{},{},{},0,0,{},0,{},{},{},{}",
                snapshot.ts,
                feed.stations[r.station].station_id,
                r.bikes,
                r.docks,
                u8::from(r.is_installed),
                u8::from(r.is_renting),
                u8::from(r.is_returning),
                r.last_reported
            )?;
        }
    }
    gz.finish()?.flush()?;
    Ok(())
}

/// The smallest input with a decision to make: station `a` is full (10 of
/// 10 bikes) and has one edge, 250 m, to station `b`, which is empty. Any
/// sensible policy moves bikes `a → b`; tests of the tiers use it to show a
/// plugin was really called.
pub fn tiny_input() -> crate::contract::PolicyInput {
    use crate::contract::{DEFAULT_EFFORT, Neighbor, PolicyInput, Station, default_targets};
    let station = |key: &str, bikes| Station {
        station_key: key.into(),
        capacity: 10,
        bikes,
        docks: 10 - bikes,
        bucket_quality: "ok".into(),
    };
    PolicyInput {
        stations: vec![station("a", 10), station("b", 0)],
        neighbors: vec![Neighbor { from_station_key: "a".into(), to_station_key: "b".into(), dist_m: 250.0, rank: 1 }],
        effort: DEFAULT_EFFORT,
        targets: default_targets(),
    }
}
