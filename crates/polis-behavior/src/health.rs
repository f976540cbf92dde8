//! Per-plugin counters and health, with the original's thresholds.
//!
//! A plugin is unhealthy when, past 10 samples of a kind, its failure rate
//! exceeds: requests 50 %, condition evaluations 30 %, effect applications
//! 30 %, event handler calls 50 %. Unlike the original, which re-checks only
//! when a failure is recorded, health here is a pure function of the
//! counters, computed when read, so two reads of the same counters agree.

use std::collections::VecDeque;

use serde::Serialize;

/// How many recent errors a plugin keeps.
pub const RECENT_ERRORS: usize = 10;

/// Samples of a kind needed before its rate can make a plugin unhealthy.
pub const MIN_SAMPLES: u64 = 10;

/// One kind of call: how many, how many failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Calls.
    pub total: u64,
    /// Failed calls.
    pub failures: u64,
}

impl Tally {
    fn record(&mut self, success: bool) {
        self.total += 1;
        if !success {
            self.failures += 1;
        }
    }

    /// Whether the failure rate exceeds `limit` past [`MIN_SAMPLES`].
    fn over(&self, limit_percent: u64) -> bool {
        self.total > MIN_SAMPLES && self.failures * 100 > self.total * limit_percent
    }
}

/// One recorded error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecentError {
    /// Its position among the plugin's errors, from 1 (no clock is read).
    pub seq: u64,
    /// What failed: `condition`, `effect`, `event_handler`, `request`, `load`, `permission`.
    pub kind: &'static str,
    /// The extension or capability involved.
    pub subject: String,
    /// The error.
    pub message: String,
}

/// Counters of one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PluginHealth {
    /// Route requests and other direct calls.
    pub requests: Tally,
    /// Condition evaluations.
    pub conditions: Tally,
    /// Effect applications.
    pub effects: Tally,
    /// Event handler calls.
    pub handlers: Tally,
    /// Time spent in event handlers, in microseconds.
    pub handler_time_us: u64,
    /// Webhook attempts after a delivery's first (a remote plugin's
    /// handlers).
    pub webhook_retries: u64,
    /// Webhooks dropped because the plugin's queue was full.
    pub webhooks_dropped: u64,
    /// Capability uses refused for a missing permission.
    pub permission_denials: u64,
    /// The last [`RECENT_ERRORS`] errors, oldest first.
    pub recent_errors: VecDeque<RecentError>,
    errors_seen: u64,
}

impl PluginHealth {
    /// Records a condition evaluation.
    pub fn condition(&mut self, success: bool) {
        self.conditions.record(success);
    }

    /// Records an effect application.
    pub fn effect(&mut self, success: bool) {
        self.effects.record(success);
    }

    /// Records an event handler call that took `micros`.
    pub fn handler(&mut self, success: bool, micros: u64) {
        self.handlers.record(success);
        self.handler_time_us = self.handler_time_us.saturating_add(micros);
    }

    /// Records a request.
    pub fn request(&mut self, success: bool) {
        self.requests.record(success);
    }

    /// Records a refused capability use.
    pub fn denial(&mut self, capability: &str, message: String) {
        self.permission_denials += 1;
        self.error("permission", capability, message);
    }

    /// Keeps an error among the last [`RECENT_ERRORS`].
    pub fn error(&mut self, kind: &'static str, subject: &str, message: String) {
        self.errors_seen += 1;
        self.recent_errors.push_back(RecentError { seq: self.errors_seen, kind, subject: subject.to_owned(), message });
        while self.recent_errors.len() > RECENT_ERRORS {
            self.recent_errors.pop_front();
        }
    }

    /// Whether the plugin is healthy by the original's thresholds.
    pub fn is_healthy(&self) -> bool {
        self.unhealthy_because().is_none()
    }

    /// The first threshold the plugin is over, if any.
    pub fn unhealthy_because(&self) -> Option<&'static str> {
        if self.requests.over(50) {
            Some("more than 50 % of requests failed")
        } else if self.conditions.over(30) {
            Some("more than 30 % of condition evaluations failed")
        } else if self.effects.over(30) {
            Some("more than 30 % of effect applications failed")
        } else if self.handlers.over(50) {
            Some("more than 50 % of event handler calls failed")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_samples_are_not_enough_to_be_unhealthy() {
        let mut health = PluginHealth::default();
        for _ in 0..10 {
            health.condition(false);
        }
        assert!(health.is_healthy());
        health.condition(false);
        assert_eq!(health.unhealthy_because(), Some("more than 30 % of condition evaluations failed"));
    }

    #[test]
    fn thresholds_are_strictly_greater_than_the_rate() {
        let mut health = PluginHealth::default();
        // 20 effects, 6 failed: exactly 30 %, still healthy.
        for i in 0..20 {
            health.effect(i >= 6);
        }
        assert!(health.is_healthy());
        health.effect(false);
        assert!(!health.is_healthy());
        let mut handlers = PluginHealth::default();
        for i in 0..20 {
            handlers.handler(i % 2 == 0, 5);
        }
        assert!(handlers.is_healthy(), "50 % is not over 50 %");
        assert_eq!(handlers.handler_time_us, 100);
    }

    #[test]
    fn only_the_last_ten_errors_are_kept() {
        let mut health = PluginHealth::default();
        for i in 0..15 {
            health.error("condition", "plugin:a:b", format!("boom {i}"));
        }
        assert_eq!(health.recent_errors.len(), 10);
        assert_eq!(health.recent_errors.front().map(|e| e.seq), Some(6));
        assert_eq!(health.recent_errors.back().map(|e| e.message.as_str()), Some("boom 14"));
    }
}
