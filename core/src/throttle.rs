//! In-memory failure limiters: after `max` failures of one key within `window`, the key is
//! refused until the oldest of them leaves the window ([`FailureLimiter`], for sign-ins); and
//! the guard of `/activate` against guessed user codes ([`UserCodeGuard`]).
//!
//! The counts live in this process only. With N instances behind a load balancer an attacker
//! gets at most N × `max` attempts per key and window; that bound is what the instance-local
//! design trades for a sign-in path that writes nothing to the database.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
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
        self.blocked_with_max(key, self.max, now)
    }

    /// Like [`Self::blocked_for`] with a budget of `max` (at most the limiter's own) failures.
    fn blocked_with_max(&self, key: &str, max: usize, now: Instant) -> Option<Duration> {
        let max = max.clamp(1, self.max);
        let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let times = map.get_mut(key)?;
        self.expire(times, now);
        if times.len() < max {
            return None;
        }
        // Under the budget again once all but `max - 1` of them have left the window.
        let deciding = *times.get(times.len() - max)?;
        let wait = self.window.saturating_sub(now.duration_since(deciding));
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

/// How many times the per-address budget of wrong user codes, failed across the instance within
/// the window, makes a surge.
pub const SURGE_FACTOR: usize = 10;
/// The per-address budget during a surge: a third of the configured one, never below this.
pub const SURGE_MIN_BUDGET: usize = 3;

/// Whether a wrong user code started a surge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surge {
    /// No surge, or one already under way.
    No,
    /// This failure made the instance-wide count reach the surge threshold: raise the alarm.
    Started { failures: usize },
}

#[derive(Debug, Default)]
struct Recent {
    /// The newest failures across the instance, at most the surge threshold.
    times: VecDeque<Instant>,
    surging: bool,
}

/// Wrong user codes at `/activate` (RFC 8628 §5.1): each client address has a budget of
/// failures per window; and the instance watches all failures together. When they reach
/// [`SURGE_FACTOR`] × the budget within the window (a distributed guess at the code space), it
/// reports a surge once and tightens every address's budget until the count falls back under
/// half the threshold. An address that has not failed can always enter a code: nobody is
/// locked out by others.
#[derive(Debug)]
pub struct UserCodeGuard {
    per_address: FailureLimiter,
    budget: usize,
    tightened: usize,
    threshold: usize,
    window: Duration,
    recent: Mutex<Recent>,
    failures_total: AtomicU64,
    surges_total: AtomicU64,
}

impl UserCodeGuard {
    #[must_use]
    pub fn new(budget: usize, window: Duration) -> Self {
        let budget = budget.max(1);
        Self {
            per_address: FailureLimiter::new(budget, window),
            budget,
            tightened: (budget / 3).max(SURGE_MIN_BUDGET).min(budget),
            threshold: budget.saturating_mul(SURGE_FACTOR),
            window,
            recent: Mutex::default(),
            failures_total: AtomicU64::new(0),
            surges_total: AtomicU64::new(0),
        }
    }

    /// `Some(wait)` when `address` has used up its budget (the tightened one during a surge).
    #[must_use]
    pub fn blocked_for(&self, address: &str) -> Option<Duration> {
        let now = Instant::now();
        let budget = if self.surging_at(now) {
            self.tightened
        } else {
            self.budget
        };
        self.per_address.blocked_with_max(address, budget, now)
    }

    /// Counts a wrong user code from `address`.
    pub fn fail(&self, address: &str) -> Surge {
        let now = Instant::now();
        self.per_address.fail_at(address, now);
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        self.expire(&mut recent, now);
        recent.times.push_back(now);
        while recent.times.len() > self.threshold {
            recent.times.pop_front();
        }
        if !recent.surging && recent.times.len() >= self.threshold {
            recent.surging = true;
            self.surges_total.fetch_add(1, Ordering::Relaxed);
            return Surge::Started {
                failures: recent.times.len(),
            };
        }
        Surge::No
    }

    /// Whether a surge is under way.
    #[must_use]
    pub fn surging(&self) -> bool {
        self.surging_at(Instant::now())
    }

    fn surging_at(&self, now: Instant) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        self.expire(&mut recent, now);
        recent.surging
    }

    /// Drops failures older than the window; a surge ends under half the threshold.
    fn expire(&self, recent: &mut Recent, now: Instant) {
        while recent
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            recent.times.pop_front();
        }
        if recent.times.len() < self.threshold / 2 {
            recent.surging = false;
        }
    }

    /// Wrong user codes counted since start.
    #[must_use]
    pub fn failures_total(&self) -> u64 {
        self.failures_total.load(Ordering::Relaxed)
    }

    /// Surges reported since start.
    #[must_use]
    pub fn surges_total(&self) -> u64 {
        self.surges_total.load(Ordering::Relaxed)
    }

    /// The per-address budget outside a surge, and during one.
    #[must_use]
    pub fn budgets(&self) -> (usize, usize) {
        (self.budget, self.tightened)
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

    #[test]
    fn a_smaller_budget_blocks_sooner_and_frees_sooner() {
        let limiter = FailureLimiter::new(5, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..4 {
            limiter.fail_at("a", t0 + Duration::from_secs(i * 10));
        }
        let at = t0 + Duration::from_secs(35);
        assert_eq!(limiter.blocked_with_max("a", 5, at), None);
        // Budget 3: blocked until the second failure (t0 + 10 s) leaves the window.
        assert_eq!(
            limiter.blocked_with_max("a", 3, at),
            Some(Duration::from_secs(35))
        );
    }

    #[test]
    fn a_surge_tightens_every_budget_once_and_ends() {
        let guard = UserCodeGuard::new(10, Duration::from_secs(300));
        assert_eq!(guard.budgets(), (10, 3));
        let mut started = 0;
        for i in 0..100 {
            if let Surge::Started { failures } = guard.fail(&format!("10.0.0.{}", i % 50)) {
                assert_eq!(failures, 100);
                started += 1;
            }
        }
        assert_eq!(
            (started, guard.surges_total(), guard.failures_total()),
            (1, 1, 100)
        );
        assert!(guard.surging());
        // Each address failed twice: the tightened budget of 3 leaves it one more try.
        assert!(guard.blocked_for("10.0.0.1").is_none());
        guard.fail("10.0.0.1");
        assert!(guard.blocked_for("10.0.0.1").is_some());
        assert!(
            guard.blocked_for("192.0.2.1").is_none(),
            "nobody is locked out by others"
        );
        assert_eq!(guard.fail("10.0.0.2"), Surge::No, "one alarm per surge");
    }

    #[test]
    fn a_surge_ends_when_the_failures_leave_the_window() {
        let guard = UserCodeGuard::new(1, Duration::from_millis(50));
        for i in 0..SURGE_FACTOR {
            guard.fail(&format!("10.0.0.{i}"));
        }
        assert!(guard.surging());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!guard.surging());
    }
}
