//! What a replay writes, and `--verify`.
//!
//! The files are rendered here as text and written by the caller:
//!
//! - `kpis.csv`: one row per policy and metric: mean, 95 % interval,
//!   paired delta against `noop` with its interval, and that delta per 100
//!   bikes moved;
//! - `kpis.json`: the configuration and the same figures;
//! - `moves.csv`: every applied move;
//! - `timeseries.csv`: active, empty, full and constrained stations at
//!   every decision time, per policy and replication;
//! - `runs.jsonl`: one record per decision: run key and its hash, plugin,
//!   manifest hash, policy-spec hash, snapshot identity, input hash and
//!   output hash (or the error).
//!
//! Numbers are formatted with fixed precision and rows come in
//! configuration order, so the same configuration gives the same bytes.
//! [`verify`] runs the replay again and compares every decision's hashes
//! with the stored ones.

use std::fmt::Write as _;

use polis_core::canonical::Digest;
use polis_core::run::rfc3339;
use polis_runtime::verify::Trace;
use serde::{Deserialize, Serialize};

use super::kpi::{Estimate, METRICS};
use super::{Progress, Replay, ReplayConfig, ReplayError};
use crate::contract::RunKey;
use crate::gbfs::Feed;
use crate::host::Host;

/// Why a decision produced nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionError {
    /// Stable code, such as `run.invalid_output`.
    pub code: String,
    /// What went wrong, naming the plugin and field.
    pub message: String,
}

/// One decision, as stored in `runs.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRecord {
    /// The policy version.
    pub policy: String,
    /// The replication, from 0.
    pub replication: u32,
    /// The decision time (a bucket boundary), epoch seconds.
    pub decision_bucket_ts: i64,
    /// The run key.
    pub run_key: RunKey,
    /// Its digest.
    pub run_key_sha256: Digest,
    /// The policy-spec digest (also inside the key).
    pub policy_spec_sha256: Digest,
    /// The plugin that ran.
    pub plugin_id: Option<String>,
    /// Its manifest digest.
    pub manifest_sha256: Option<Digest>,
    /// `{sv}@{decision time}`.
    pub view_snapshot_id: String,
    /// `SHA-256(JCS({stations, neighbors_sha256}))` of the simulated view.
    pub view_snapshot_sha256: Digest,
    /// `SHA-256(JCS(input))`, when the input was valid.
    pub input_sha256: Option<Digest>,
    /// `SHA-256(JCS(output))`, when the output was valid.
    pub output_sha256: Option<Digest>,
    /// Moves applied.
    pub moves: u32,
    /// Bikes moved.
    pub bikes_moved: u64,
    /// Why the decision failed, if it did; it was then not applied.
    pub error: Option<DecisionError>,
}

/// One applied move.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveRow {
    /// The replication.
    pub replication: u32,
    /// The decision time.
    pub decision_bucket_ts: i64,
    /// The move's rank in its output.
    pub move_rank: u32,
    /// Donor.
    pub from_station_key: String,
    /// Receiver.
    pub to_station_key: String,
    /// Bikes.
    pub bikes: u32,
    /// Edge distance.
    pub dist_m: f64,
    /// Reason codes joined with `;`.
    pub reason_codes: String,
}

/// Station counts at one decision time, before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimePoint {
    /// The decision time.
    pub ts: i64,
    /// Stations with data.
    pub active: u32,
    /// Of which empty.
    pub empty: u32,
    /// Of which full.
    pub full: u32,
}

/// The files of `--out`, by name, in writing order.
pub fn files(replay: &Replay) -> Vec<(&'static str, String)> {
    vec![
        ("kpis.csv", kpis_csv(replay)),
        ("kpis.json", kpis_json(replay)),
        ("moves.csv", moves_csv(replay)),
        ("timeseries.csv", timeseries_csv(replay)),
        ("runs.jsonl", runs_jsonl(replay)),
    ]
}

fn number(value: f64) -> String {
    format!("{value:.3}")
}

fn optional(value: Option<f64>) -> String {
    value.map(number).unwrap_or_default()
}

/// `kpis.csv`.
pub fn kpis_csv(replay: &Replay) -> String {
    let mut text = String::from(
        "policy,replications,metric,mean,ci95_low,ci95_high,delta_vs_noop,delta_ci95_low,delta_ci95_high,delta_per_100_bikes_moved\n",
    );
    for policy in &replay.summary.policies {
        for m in &policy.metrics {
            let d = m.delta_vs_noop;
            let _ = writeln!(
                text,
                "{},{},{},{},{},{},{},{},{},{}",
                policy.policy,
                policy.replications,
                m.metric,
                number(m.value.mean),
                number(m.value.ci95_low),
                number(m.value.ci95_high),
                optional(d.map(|d| d.mean)),
                optional(d.map(|d| d.ci95_low)),
                optional(d.map(|d| d.ci95_high)),
                optional(m.delta_per_100_bikes_moved),
            );
        }
    }
    text
}

/// `kpis.json`.
pub fn kpis_json(replay: &Replay) -> String {
    // Round through the CSV precision so the JSON carries the same figures.
    let round =
        |e: Estimate| serde_json::json!({"mean": round3(e.mean), "ci95": [round3(e.ci95_low), round3(e.ci95_high)]});
    let policies: Vec<serde_json::Value> = replay
        .summary
        .policies
        .iter()
        .map(|p| {
            let metrics: serde_json::Map<String, serde_json::Value> = p
                .metrics
                .iter()
                .map(|m| {
                    let mut v = round(m.value);
                    v["delta_vs_noop"] = m.delta_vs_noop.map_or(serde_json::Value::Null, round);
                    v["delta_per_100_bikes_moved"] =
                        m.delta_per_100_bikes_moved.map_or(serde_json::Value::Null, |x| round3(x).into());
                    (m.metric.to_owned(), v)
                })
                .collect();
            serde_json::json!({"policy": p.policy, "replications": p.replications, "metrics": metrics})
        })
        .collect();
    let document = serde_json::json!({
        "config": replay.config,
        "window": {"from": rfc3339(replay.config.from), "to": rfc3339(replay.config.to)},
        "jumps_removed": replay.jumps_removed,
        "metrics": METRICS,
        "policies": policies,
    });
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// `moves.csv`.
pub fn moves_csv(replay: &Replay) -> String {
    let mut text = String::from(
        "policy,replication,decision_bucket_ts,time,move_rank,from_station_key,to_station_key,bikes,dist_m,reason_codes\n",
    );
    for run in &replay.runs {
        for m in &run.moves {
            let _ = writeln!(
                text,
                "{},{},{},{},{},{},{},{},{:.1},{}",
                run.policy,
                m.replication,
                m.decision_bucket_ts,
                rfc3339(m.decision_bucket_ts),
                m.move_rank,
                m.from_station_key,
                m.to_station_key,
                m.bikes,
                m.dist_m,
                m.reason_codes
            );
        }
    }
    text
}

/// `timeseries.csv`.
pub fn timeseries_csv(replay: &Replay) -> String {
    let mut text = String::from("policy,replication,decision_bucket_ts,time,active,empty,full,constrained\n");
    for run in &replay.runs {
        for p in &run.timeseries {
            let _ = writeln!(
                text,
                "{},{},{},{},{},{},{},{}",
                run.policy,
                run.replication,
                p.ts,
                rfc3339(p.ts),
                p.active,
                p.empty,
                p.full,
                p.empty + p.full
            );
        }
    }
    text
}

/// `runs.jsonl`.
pub fn runs_jsonl(replay: &Replay) -> String {
    let mut text = String::new();
    for run in &replay.runs {
        for record in &run.records {
            text.push_str(&serde_json::to_string(record).unwrap_or_default());
            text.push('\n');
        }
    }
    text
}

/// Reads `runs.jsonl`.
pub fn parse_runs(text: &str) -> Result<Vec<DecisionRecord>, ReplayError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| ReplayError::Record { line: i + 1, message: e.to_string() })
        })
        .collect()
}

/// Names one decision of a replay: drifts are listed in (policy,
/// replication, time) order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DecisionRef {
    /// The policy.
    pub policy: String,
    /// The replication.
    pub replication: u32,
    /// The decision time.
    pub decision_bucket_ts: i64,
}

/// What `--verify` found.
pub type VerifyReport = polis_runtime::verify::VerifyReport<DecisionRef>;

fn trace(record: &DecisionRecord) -> Trace<DecisionRef> {
    Trace {
        key: DecisionRef {
            policy: record.policy.clone(),
            replication: record.replication,
            decision_bucket_ts: record.decision_bucket_ts,
        },
        run_key_sha256: record.run_key_sha256,
        input_sha256: record.input_sha256,
        output_sha256: record.output_sha256,
        error_code: record.error.as_ref().map(|e| e.code.clone()),
    }
}

/// Runs the replay of `config` again and compares every decision with
/// `stored` (the records of `runs.jsonl`).
pub fn verify(
    feed: &Feed,
    host: &Host,
    config: &ReplayConfig,
    stored: &[DecisionRecord],
    progress: &dyn Progress,
) -> Result<VerifyReport, ReplayError> {
    let replay = super::run(feed, host, config, progress)?;
    let fresh: Vec<Trace<DecisionRef>> = replay.runs.iter().flat_map(|r| &r.records).map(trace).collect();
    let old: Vec<Trace<DecisionRef>> = stored.iter().map(trace).collect();
    Ok(polis_runtime::verify::compare(&old, &fresh))
}
