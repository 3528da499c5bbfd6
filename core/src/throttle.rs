//! An in-memory failure limiter: after `max` failures of one key within `window`, the key is
//! refused until the oldest of them leaves the window.
//!
//! The counts live in this process only. With N instances behind a load balancer an attacker
//! gets at most N × `max` attempts per key and window; that bound is what the instance-local
//! design trades for a sign-in path that writes nothing to the database.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Above this many keys, keys without a failure in the window are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// Failure counts per key in a sliding window.
#[derive(Debug)]
pub struct FailureLimiter {
    max: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl FailureLimiter {
    #[must_use]
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` when `key` has used up its failures; `wait` is how long until it may try
    /// again (at least one second, for a `Retry-After` header).
    #[must_use]
    pub fn blocked_for(&self, key: &str) -> Option<Duration> {
        self.blocked_at(key, Instant::now())
    }

    fn blocked_at(&self, key: &str, now: Instant) -> Option<Duration> {
        let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let times = map.get_mut(key)?;
        self.expire(times, now);
        if times.len() < self.max {
            return None;
        }
        let oldest = *times.front()?;
        let wait = self.window.saturating_sub(now.duration_since(oldest));
        Some(wait.max(Duration::from_secs(1)))
    }

    /// Counts one failure of `key`.
    pub fn fail(&self, key: &str) {
        self.fail_at(key, Instant::now());
    }

    fn fail_at(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= PRUNE_ABOVE && !map.contains_key(key) {
            let window = self.window;
            map.retain(|_, t| {
                t.back()
                    .is_some_and(|last| now.duration_since(*last) < window)
            });
        }
        let times = map.entry(key.to_owned()).or_default();
        self.expire(times, now);
        times.push_back(now);
        // Only the newest `max` matter for the decision.
        while times.len() > self.max {
            times.pop_front();
        }
    }

    /// Forgets the failures of `key` (after a success).
    pub fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    fn expire(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_until_the_oldest_leaves_the_window() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limiter.blocked_at("a", t0 + Duration::from_secs(i)), None);
            limiter.fail_at("a", t0 + Duration::from_secs(i));
        }
        assert_eq!(
            limiter.blocked_at("a", t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        assert_eq!(limiter.blocked_at("b", t0), None, "keys are separate");
        assert_eq!(limiter.blocked_at("a", t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn clearing_forgets_failures() {
        let limiter = FailureLimiter::new(1, Duration::from_secs(60));
        limiter.fail("a");
        assert!(limiter.blocked_for("a").is_some());
        limiter.clear("a");
        assert!(limiter.blocked_for("a").is_none());
    }
}
