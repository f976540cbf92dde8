//! Per-plugin health: a circuit breaker and call metrics.
//!
//! The breaker counts failed runs in a sliding window. When the failures
//! reach the error budget it *opens*: calls fail fast, without reaching the
//! plugin, until the cooldown has passed. Then it is *half-open*: the next
//! call goes through as a trial; success closes the breaker, failure opens
//! it again for another cooldown. [`Guard::reset_breaker`] re-enables a
//! plugin by configuration, whatever its state.
//!
//! Time is passed in, never read inside, so the state machine is tested
//! with made-up instants.
//!
//! [`Guard::reset_breaker`]: crate::Guard::reset_breaker

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures within [`BreakerConfig::window`] that open the breaker. By
    /// default 5. Zero disables the breaker.
    pub error_budget: u32,
    /// The sliding window failures are counted in. By default 60 s.
    pub window: Duration,
    /// How long an open breaker refuses calls before a trial. By default
    /// 30 s.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { error_budget: 5, window: Duration::from_secs(60), cooldown: Duration::from_secs(30) }
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cooldown ends.
    Open,
    /// The cooldown ended; the next call is a trial.
    HalfOpen,
}

/// One plugin's circuit breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    failures: VecDeque<Instant>,
    open_until: Option<Instant>,
    half_open: bool,
    opened: u64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker { config, failures: VecDeque::new(), open_until: None, half_open: false, opened: 0 }
    }

    /// While open at `now`, how long until the cooldown ends.
    pub fn retry_after(&self, now: Instant) -> Option<Duration> {
        self.open_until.filter(|&until| now < until).map(|until| until - now)
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
            None if self.half_open => BreakerState::HalfOpen,
            None => BreakerState::Closed,
        }
    }

    /// How many times it has opened.
    pub fn times_opened(&self) -> u64 {
        self.opened
    }

    /// Whether a call may go through at `now`; `Err` carries how long the
    /// breaker stays open.
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        match self.open_until {
            Some(until) if now < until => Err(until - now),
            Some(_) => {
                self.open_until = None;
                self.half_open = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records a call's outcome at `now`.
    pub fn record(&mut self, success: bool, now: Instant) {
        if self.config.error_budget == 0 {
            return;
        }
        if success {
            if self.half_open {
                self.half_open = false;
                self.failures.clear();
            }
            return;
        }
        if self.half_open {
            self.trip(now);
            return;
        }
        self.failures.push_back(now);
        while self.failures.front().is_some_and(|&t| now.saturating_duration_since(t) >= self.config.window) {
            self.failures.pop_front();
        }
        if self.failures.len() >= self.config.error_budget as usize {
            self.trip(now);
        }
    }

    fn trip(&mut self, now: Instant) {
        self.open_until = Some(now + self.config.cooldown);
        self.half_open = false;
        self.failures.clear();
        self.opened += 1;
    }

    /// Closes the breaker and forgets past failures.
    pub fn reset(&mut self) {
        *self = Breaker::new(self.config);
    }
}

/// Counters of one plugin, as the metrics endpoint and `polis plugin
/// inspect` show them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PluginMetrics {
    /// Calls that reached the guard, including refused ones.
    pub calls: u64,
    /// Successful runs.
    pub successes: u64,
    /// Failed runs by error code, such as `policy.limit_exceeded` or
    /// `run.circuit_open`.
    pub errors: BTreeMap<String, u64>,
    /// Total time in the plugin, in microseconds.
    pub latency_total_us: u64,
    /// Slowest run, in microseconds.
    pub latency_max_us: u64,
    /// How many times the breaker opened.
    pub breaker_opened: u64,
    /// The breaker's state when the metrics were read.
    pub breaker: Option<BreakerState>,
    /// While the breaker is open: how long until it half-opens and lets a
    /// trial call through, in milliseconds.
    pub breaker_retry_after_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig { error_budget: 3, window: Duration::from_secs(10), cooldown: Duration::from_secs(5) }
    }

    #[test]
    fn opens_after_the_error_budget_half_opens_after_cooldown_and_closes_on_success() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut breaker = Breaker::new(config());
        for s in 0..2 {
            assert!(breaker.admit(at(s)).is_ok());
            breaker.record(false, at(s));
        }
        assert_eq!(breaker.state(at(2)), BreakerState::Closed);
        breaker.record(false, at(2));
        assert_eq!(breaker.state(at(2)), BreakerState::Open);
        assert_eq!(breaker.admit(at(4)), Err(Duration::from_secs(3)));
        assert_eq!(breaker.state(at(7)), BreakerState::HalfOpen);
        assert!(breaker.admit(at(7)).is_ok());
        breaker.record(true, at(7));
        assert_eq!(breaker.state(at(7)), BreakerState::Closed);
        assert_eq!(breaker.times_opened(), 1);
    }

    #[test]
    fn a_failed_trial_reopens_for_another_cooldown() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut breaker = Breaker::new(config());
        for s in 0..3 {
            breaker.record(false, at(s));
        }
        assert!(breaker.admit(at(8)).is_ok());
        breaker.record(false, at(8));
        assert_eq!(breaker.state(at(9)), BreakerState::Open);
        assert_eq!(breaker.admit(at(9)), Err(Duration::from_secs(4)));
        assert_eq!(breaker.times_opened(), 2);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut breaker = Breaker::new(config());
        breaker.record(false, at(0));
        breaker.record(false, at(1));
        breaker.record(false, at(20));
        assert_eq!(breaker.state(at(20)), BreakerState::Closed);
    }

    #[test]
    fn reset_re_enables_an_open_breaker() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(config());
        for _ in 0..3 {
            breaker.record(false, t0);
        }
        assert_eq!(breaker.state(t0), BreakerState::Open);
        breaker.reset();
        assert_eq!(breaker.state(t0), BreakerState::Closed);
        assert!(breaker.admit(t0).is_ok());
    }

    #[test]
    fn a_zero_budget_never_opens() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(BreakerConfig { error_budget: 0, ..config() });
        for _ in 0..100 {
            breaker.record(false, t0);
        }
        assert_eq!(breaker.state(t0), BreakerState::Closed);
    }
}
