//! Key figures of a run, and their means, 95 % intervals and deltas
//! against `noop` over replications.

use serde::Serialize;

use super::sim::RunResult;
use super::{NOOP_VERSION, ReplayConfig};

/// What one run of one policy achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Kpis {
    /// Station-seconds with no bike, over active stations.
    pub empty_station_s: u64,
    /// Station-seconds with no free usable dock, over active stations.
    pub full_station_s: u64,
    /// Riders who found no bike.
    pub failed_rentals: u64,
    /// Riders who found no dock.
    pub failed_returns: u64,
    /// Bikes moved by applied moves.
    pub bikes_moved: u64,
    /// Distinct stations touched by applied moves over the window.
    pub stations_touched: u64,
    /// Σ bikes · `dist_m` over applied moves.
    pub weighted_distance_m: f64,
    /// Applied moves.
    pub moves: u64,
    /// Decisions made.
    pub decisions: u64,
    /// Decisions that failed (invalid input or output, policy error); none
    /// of them was applied.
    pub errors: u64,
    /// Observed changes left out as operator rebalancing (flow replay).
    pub jumps_removed: u64,
}

/// The figures reported, in report order.
pub const METRICS: [&str; 12] = [
    "empty_station_minutes",
    "full_station_minutes",
    "constrained_station_minutes",
    "failed_rentals",
    "failed_returns",
    "bikes_moved",
    "stations_touched",
    "weighted_distance_m",
    "mean_distance_per_bike_m",
    "moves",
    "decisions",
    "errors",
];

impl Kpis {
    /// The value of metric `i` of [`METRICS`].
    pub fn metric(&self, i: usize) -> f64 {
        let minutes = |s: u64| s as f64 / 60.0;
        match i {
            0 => minutes(self.empty_station_s),
            1 => minutes(self.full_station_s),
            2 => minutes(self.empty_station_s + self.full_station_s),
            3 => self.failed_rentals as f64,
            4 => self.failed_returns as f64,
            5 => self.bikes_moved as f64,
            6 => self.stations_touched as f64,
            7 => self.weighted_distance_m,
            8 if self.bikes_moved > 0 => self.weighted_distance_m / self.bikes_moved as f64,
            9 => self.moves as f64,
            10 => self.decisions as f64,
            11 => self.errors as f64,
            _ => 0.0,
        }
    }
}

/// A mean with its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The mean over replications.
    pub mean: f64,
    /// Lower end of the 95 % interval (the mean when there is one run).
    pub ci95_low: f64,
    /// Upper end.
    pub ci95_high: f64,
}

impl Estimate {
    /// Mean and Student-t 95 % interval of `values`.
    pub fn of(values: &[f64]) -> Estimate {
        let n = values.len();
        if n == 0 {
            return Estimate { mean: 0.0, ci95_low: 0.0, ci95_high: 0.0 };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Estimate { mean, ci95_low: mean, ci95_high: mean };
        }
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t975(n - 1) * (variance / n as f64).sqrt();
        Estimate { mean, ci95_low: mean - half, ci95_high: mean + half }
    }

    /// Half the interval's width.
    pub fn half_width(&self) -> f64 {
        (self.ci95_high - self.ci95_low) / 2.0
    }
}

/// The 97.5 % quantile of Student's t with `df` degrees of freedom.
fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    TABLE.get(df.wrapping_sub(1)).copied().unwrap_or(1.96)
}

/// One metric of one policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSummary {
    /// The metric's name, from [`METRICS`].
    pub metric: &'static str,
    /// Over replications.
    pub value: Estimate,
    /// The paired difference to `noop` (same replication, same demand),
    /// when `noop` ran.
    pub delta_vs_noop: Option<Estimate>,
    /// `delta_vs_noop` per 100 bikes moved, when bikes were moved.
    pub delta_per_100_bikes_moved: Option<f64>,
}

/// One policy's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySummary {
    /// The policy version.
    pub policy: String,
    /// Replications run.
    pub replications: u32,
    /// Every metric of [`METRICS`], in order.
    pub metrics: Vec<MetricSummary>,
}

impl PolicySummary {
    /// The summary of the metric named `name`.
    pub fn get(&self, name: &str) -> Option<&MetricSummary> {
        self.metrics.iter().find(|m| m.metric == name)
    }
}

/// Every policy's figures, in configuration order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Per policy.
    pub policies: Vec<PolicySummary>,
}

impl Summary {
    /// Summarises runs (any order) for the policies of `config`.
    pub fn new(config: &ReplayConfig, runs: &[RunResult]) -> Summary {
        let runs_of = |policy: &str| -> Vec<&Kpis> {
            let mut of: Vec<&RunResult> = runs.iter().filter(|r| r.policy == policy).collect();
            of.sort_by_key(|r| r.replication);
            of.iter().map(|r| &r.kpis).collect()
        };
        let noop = runs_of(NOOP_VERSION);
        let policies = config
            .policies
            .iter()
            .map(|policy| {
                let own = runs_of(policy);
                let bikes = Estimate::of(&own.iter().map(|k| k.bikes_moved as f64).collect::<Vec<_>>()).mean;
                let metrics = METRICS
                    .iter()
                    .enumerate()
                    .map(|(i, &metric)| {
                        let values: Vec<f64> = own.iter().map(|k| k.metric(i)).collect();
                        let delta_vs_noop = (!noop.is_empty() && noop.len() == own.len()).then(|| {
                            let deltas: Vec<f64> =
                                own.iter().zip(&noop).map(|(k, z)| k.metric(i) - z.metric(i)).collect();
                            Estimate::of(&deltas)
                        });
                        let delta_per_100_bikes_moved =
                            delta_vs_noop.filter(|_| bikes > 0.0).map(|d| d.mean / bikes * 100.0);
                        MetricSummary { metric, value: Estimate::of(&values), delta_vs_noop, delta_per_100_bikes_moved }
                    })
                    .collect();
                PolicySummary { policy: policy.clone(), replications: own.len() as u32, metrics }
            })
            .collect();
        Summary { policies }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_has_a_degenerate_interval() {
        let e = Estimate::of(&[4.0]);
        assert_eq!((e.mean, e.ci95_low, e.ci95_high), (4.0, 4.0, 4.0));
    }

    #[test]
    fn interval_uses_student_t() {
        // Two values 0 and 2: mean 1, sd √2, se 1, t(1) = 12.706.
        let e = Estimate::of(&[0.0, 2.0]);
        assert_eq!(e.mean, 1.0);
        assert!((e.half_width() - 12.706).abs() < 1e-9, "{e:?}");
    }

    #[test]
    fn constrained_is_empty_plus_full_in_minutes() {
        let k = Kpis { empty_station_s: 120, full_station_s: 60, ..Kpis::default() };
        assert_eq!(k.metric(2), 3.0);
        assert_eq!(k.metric(8), 0.0, "no bikes moved gives a zero mean distance");
    }
}
