//! GBFS in: feed directories, the CSV archive, and the synthetic city.

use std::path::{Path, PathBuf};

use polis_rebalance::gbfs::{Feed, GbfsError};
use polis_rebalance::snapshot::{SnapshotBuilder, SnapshotOptions};
use polis_rebalance::synth::{self, CityOptions, Zone};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gbfs_v2")
}

#[test]
fn feed_directory_builds_an_input_with_quality_capacity_and_neighbours() {
    let feed = Feed::open(&fixture_dir()).unwrap();
    assert_eq!(feed.unknown_station_rows, 1, "the status row of s-ghost has no station information");
    let snapshot = feed.snapshot_at(None).unwrap();
    let built = SnapshotBuilder::new(SnapshotOptions { k: 2, radius_m: 1000.0, ..Default::default() })
        .build(&feed, snapshot, None)
        .unwrap();
    let by_key = |k: &str| built.input.stations.iter().find(|s| s.station_key == k).unwrap().clone();
    assert_eq!(by_key("s-a").bucket_quality, "ok");
    assert_eq!(by_key("s-b").bucket_quality, "degraded", "not returning");
    assert_eq!(by_key("s-c").bucket_quality, "stale", "reported 3h20m before the decision");
    assert_eq!(by_key("s-d").bucket_quality, "offline", "not installed");
    assert_eq!(by_key("s-e").bucket_quality, "degraded", "reported 20 minutes before, as RFC 3339");
    assert_eq!(by_key("s-b").capacity, 11, "bikes + docks exceed the published capacity of 8");
    assert_eq!(by_key("s-d").capacity, 8, "no published capacity: bikes + docks");
    // s-d is 14 km away: nobody's neighbour. Each other station has its two
    // nearest within 1 km, ranked 1 and 2.
    assert!(built.input.neighbors.iter().all(|n| n.from_station_key != "s-d" && n.to_station_key != "s-d"));
    let from_a: Vec<(&str, u32)> = built
        .input
        .neighbors
        .iter()
        .filter(|n| n.from_station_key == "s-a")
        .map(|n| (n.to_station_key.as_str(), n.rank))
        .collect();
    assert_eq!(from_a, vec![("s-b", 1), ("s-e", 2)]);
    assert_eq!(built.decision_bucket_ts, 1_678_090_200);
    assert_eq!(built.view_snapshot_id, "gbfs_v2@1678090200");
    assert!(built.sv.starts_with("sv1-"));
}

#[test]
fn a_directory_without_feeds_is_named_in_the_error() {
    let error = Feed::open(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_err();
    assert!(matches!(error, GbfsError::NotAFeed(_)), "{error}");
}

#[test]
fn malformed_feed_names_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture_dir().join("station_information.json"), dir.path().join("station_information.json")).unwrap();
    std::fs::write(
        dir.path().join("station_status.json"),
        r#"{"last_updated": 1, "data": {"stations": [{"station_id": "s-a", "num_bikes_available": -2}]}}"#,
    )
    .unwrap();
    let error = Feed::open(dir.path()).unwrap_err().to_string();
    assert!(error.contains("station_status.json") && error.contains("data.stations[0].num_bikes_available"), "{error}");
}

#[test]
fn malformed_archive_row_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stations.csv"),
        "station_id,short_name,name,lat,lon,capacity\nx,X,Ex,37.7,-122.4,10\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("station_status.csv"),
        "snapshot_ts,station_id,num_bikes_available,num_docks_available,is_installed,is_renting,is_returning,last_reported\n\
         100,x,3,7,1,1,1,90\n100,x,three,7,1,1,1,90\n",
    )
    .unwrap();
    let error = Feed::open(dir.path()).unwrap_err().to_string();
    assert!(error.contains("line 3") && error.contains("num_bikes_available"), "{error}");
}

#[test]
fn the_bay_wheels_archive_reads_as_875_snapshots() {
    let Some(week) = polis_testdata::require("baywheels-2023-03-06") else {
        return;
    };
    let feed = Feed::open(&week.join("station_status.csv.gz")).unwrap();
    assert_eq!(feed.snapshots.len(), 875);
    assert_eq!(feed.stations.len(), 514);
    assert_eq!(feed.snapshots[0].ts, 1_678_061_592);
    // Picking by time: the latest snapshot at or before, and nothing before the first.
    assert_eq!(feed.snapshot_at(Some(1_678_061_592 + 10)).unwrap().ts, 1_678_061_592);
    assert!(matches!(feed.snapshot_at(Some(1_678_061_591)), Err(GbfsError::NoSnapshot { .. })));
}

#[test]
fn the_synthetic_city_is_byte_identical_for_the_same_seed() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let options = CityOptions { stations: 80, days: 1, seed: 11 };
    synth::write(&synth::generate(options), a.path()).unwrap();
    synth::write(&synth::generate(options), b.path()).unwrap();
    for file in ["station_information.json", "station_status.json", "stations.csv", "station_status.csv.gz"] {
        assert_eq!(std::fs::read(a.path().join(file)).unwrap(), std::fs::read(b.path().join(file)).unwrap(), "{file}");
    }
    let other = tempfile::tempdir().unwrap();
    synth::write(&synth::generate(CityOptions { seed: 12, ..options }), other.path()).unwrap();
    assert_ne!(
        std::fs::read(a.path().join("stations.csv")).unwrap(),
        std::fs::read(other.path().join("stations.csv")).unwrap()
    );
}

#[test]
fn the_synthetic_city_reads_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let city = synth::generate(CityOptions { stations: 50, days: 1, seed: 5 });
    synth::write(&city, dir.path()).unwrap();
    let archive = Feed::open(dir.path()).unwrap();
    assert_eq!(archive.snapshots, city.feed.snapshots);
    assert_eq!(archive.stations.len(), city.feed.stations.len());
}

#[test]
fn the_synthetic_morning_empties_homes_and_fills_offices() {
    let city = synth::generate(CityOptions { stations: 300, days: 1, seed: 7 });
    let fill_at = |ts: i64, zone: Zone| {
        let snapshot = city.feed.snapshot_at(Some(ts)).unwrap();
        let rows: Vec<f64> = snapshot
            .rows
            .iter()
            .filter(|r| city.zones[r.station] == zone)
            .map(|r| f64::from(r.bikes) / f64::from(city.feed.stations[r.station].capacity))
            .collect();
        rows.iter().sum::<f64>() / rows.len() as f64
    };
    let (six, ten) = (synth::START_TS + 6 * 3600, synth::START_TS + 10 * 3600);
    let (homes_early, homes_late) = (fill_at(six, Zone::Residential), fill_at(ten, Zone::Residential));
    let (offices_early, offices_late) = (fill_at(six, Zone::Business), fill_at(ten, Zone::Business));
    assert!(homes_late < homes_early - 0.3, "homes {homes_early:.2} → {homes_late:.2}");
    assert!(offices_late > offices_early + 0.3, "offices {offices_early:.2} → {offices_late:.2}");
    assert!(homes_late < 0.25 && offices_late > 0.75, "homes {homes_late:.2}, offices {offices_late:.2} at 10:00");
}

/// The input digest reuses the hashed neighbour graph while it repeats;
/// on real snapshots (the graph repeats, the stations change, then the
/// graph changes with K) it must still be `SHA-256(JCS(input))`.
#[test]
fn the_input_digest_is_the_canonical_hash_on_real_snapshots() {
    let Some(week) = polis_testdata::require("baywheels-2023-03-06") else {
        return;
    };
    let feed = Feed::open(&week).unwrap();
    for k in [25, 10] {
        let mut builder = SnapshotBuilder::new(SnapshotOptions { k, ..Default::default() });
        for snapshot in feed.snapshots.iter().step_by(97) {
            let input = builder.build(&feed, snapshot, None).unwrap().input;
            assert_eq!(
                polis_rebalance::digest::input_digest(&input).unwrap(),
                polis_core::canonical::digest_of(&input).unwrap(),
                "K={k}, snapshot {}",
                snapshot.ts
            );
        }
    }
}
