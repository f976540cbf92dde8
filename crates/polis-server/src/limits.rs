//! Request rate limits per token on the run routes (`POST /api/runs`,
//! `POST /api/policy/run`, `POST /api/strategy/replays`), so one token
//! cannot crowd the queue out for the others.
//!
//! A token bucket per token subject: `per_minute` requests may come at
//! once, then one every `60 / per_minute` seconds. A refused request is
//! answered 429 with `Retry-After` in whole seconds (rounded up). Buckets
//! are kept only for tokens the server accepts (unknown tokens are refused
//! before they reach the limiter), so the map stays as small as the
//! configuration. The clock decides only whether a request is admitted,
//! never what a policy decides.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::error::AppError;

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Rate limits per token subject.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: Option<u32>,
    buckets: Mutex<BTreeMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter admitting `per_minute` run requests a minute per token;
    /// `None` or 0 admits every request.
    pub fn new(per_minute: Option<u32>) -> Self {
        RateLimiter { per_minute: per_minute.filter(|n| *n > 0), buckets: Mutex::new(BTreeMap::new()) }
    }

    /// Admits one request of `subject` at `now`, or says how long to wait.
    pub fn admit(&self, subject: &str, now: Instant) -> Result<(), AppError> {
        let Some(per_minute) = self.per_minute else { return Ok(()) };
        let capacity = f64::from(per_minute);
        let rate = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(subject.to_owned()).or_insert(Bucket { tokens: capacity, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - bucket.tokens) / rate).ceil().max(1.0);
        Err(AppError::RateLimited {
            retry_after_secs: wait as u64,
            message: format!("this token may ask for {per_minute} runs a minute; try again in {wait} s"),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_beyond_the_limit_is_refused_with_the_wait_and_admitted_again_after_it() {
        let limiter = RateLimiter::new(Some(3));
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.admit("token:a", t0).unwrap();
        }
        let AppError::RateLimited { retry_after_secs, .. } = limiter.admit("token:a", t0).unwrap_err() else {
            panic!("not a rate limit")
        };
        assert_eq!(retry_after_secs, 20, "one request every 20 s at 3 a minute");
        // Another token has its own bucket.
        limiter.admit("token:b", t0).unwrap();
        assert!(limiter.admit("token:a", t0 + Duration::from_secs(19)).is_err());
        limiter.admit("token:a", t0 + Duration::from_secs(21)).unwrap();
        assert!(limiter.admit("token:a", t0 + Duration::from_secs(21)).is_err());
    }

    #[test]
    fn no_limit_admits_everything() {
        let limiter = RateLimiter::new(None);
        let t0 = Instant::now();
        for _ in 0..1_000 {
            limiter.admit("token:a", t0).unwrap();
        }
        assert!(RateLimiter::new(Some(0)).admit("x", t0).is_ok());
    }
}
