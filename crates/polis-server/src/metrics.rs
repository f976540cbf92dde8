//! Prometheus metrics for `/metrics`.
//!
//! Counters and the plugin latency histogram are recorded in-process into
//! a recorder owned by the state (not a global one, so tests and several
//! servers in one process do not mix). Job counts by kind and status, run
//! counts by status and policy, and the queue depth are read from the store
//! at scrape time, so they are the same whichever process is scraped.

use std::collections::BTreeSet;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use polis_store::{JobStatus, Store, StoreError};

/// Latency buckets for plugin calls, seconds.
const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The answers of `POST /api/policy/run`, whose counters are registered
/// up front so that counting one is a single atomic add.
const ANSWERS: [&str; 5] = ["cached", "ready", "pending", "error", "cancelled"];

/// The service's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    answers: [metrics::Counter; ANSWERS.len()],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets(&LATENCY_BUCKETS) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let answers = metrics::with_local_recorder(&recorder, || {
            ANSWERS.map(|answer| metrics::counter!("polis_run_requests_total", "answer" => answer))
        });
        Metrics { recorder, answers }
    }

    /// Counts an answer of a run route (`POST /api/policy/run`,
    /// `POST /api/runs`): `cached`, `ready`, `pending`, `error` or
    /// `cancelled`.
    pub fn request(&self, answer: &'static str) {
        if let Some(i) = ANSWERS.iter().position(|a| *a == answer) {
            self.answers[i].increment(1);
            return;
        }
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!("polis_run_requests_total", "answer" => answer).increment(1);
        });
    }

    /// Records a finished job: its kind and outcome, and its plugin's
    /// latency when a plugin ran.
    pub fn job_finished(
        &self,
        kind: &str,
        policy_version: Option<&str>,
        plugin_id: Option<&str>,
        status: JobStatus,
        plugin_seconds: f64,
    ) {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!("polis_jobs_processed_total", "kind" => kind.to_owned(), "status" => status.as_str())
                .increment(1);
            if let Some(policy_version) = policy_version {
                metrics::counter!("polis_runs_processed_total", "policy_version" => policy_version.to_owned(), "status" => status.as_str())
                    .increment(1);
            }
            if let Some(plugin_id) = plugin_id {
                metrics::histogram!("polis_plugin_latency_seconds", "plugin_id" => plugin_id.to_owned())
                    .record(plugin_seconds);
            }
        });
    }

    /// Runs a closure against this state's recorder, so a domain records
    /// its own metrics (with its own names) beside the core's.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// Renders the Prometheus text format, reading job counts and the
    /// queue depth from `store` first.
    pub async fn render(&self, store: &Store) -> Result<String, StoreError> {
        let counts = store.job_counts().await?;
        let depth = store.queue_depth().await?;
        let kinds: BTreeSet<&str> = counts.iter().map(|c| c.kind.as_str()).collect();
        let policies: BTreeSet<&str> = counts.iter().filter_map(|c| c.policy_version.as_deref()).collect();
        metrics::with_local_recorder(&self.recorder, || {
            for kind in &kinds {
                for status in JobStatus::ALL {
                    let count: i64 =
                        counts.iter().filter(|c| c.status == status && c.kind == *kind).map(|c| c.count).sum();
                    metrics::gauge!("polis_jobs", "kind" => (*kind).to_owned(), "status" => status.as_str())
                        .set(count as f64);
                }
            }
            for policy in &policies {
                for status in JobStatus::ALL {
                    let count: i64 = counts
                        .iter()
                        .filter(|c| c.status == status && c.policy_version.as_deref() == Some(*policy))
                        .map(|c| c.count)
                        .sum();
                    metrics::gauge!("polis_runs", "policy_version" => (*policy).to_owned(), "status" => status.as_str())
                        .set(count as f64);
                }
            }
            metrics::gauge!("polis_queue_depth").set(depth as f64);
        });
        Ok(self.recorder.handle().render())
    }
}
