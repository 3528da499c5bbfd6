//! Failure budgets.
//!
//! [`Limit`]: at most `max` failures per key in a fixed window, counted in the `throttle` table
//! so that every instance behind a load balancer shares them (sign-ins per account and per
//! address, wrong user codes per address). A key over its budget is refused until its window
//! ends; the window starts at the first failure after the previous one ended.
//!
//! [`UserCodeGuard`]: the guard of `/activate` against guessed user codes (RFC 8628 §5.1), a
//! per-address [`Limit`] plus a watch over all wrong codes this instance sees, which raises an
//! alarm and tightens every address's budget during a surge.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _, Set};

use crate::entities::throttle;
use crate::error::Error;

/// Rows whose window began longer ago than this are deleted by [`purge`] (no configurable
/// window is longer).
pub const MAX_WINDOW: i64 = 86_400;

/// The row of a key: its SHA-256, so that any key (one holding a username typed into a form
/// can be long) fits the primary key, and the table shows no username or address.
fn row_key(key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A budget of failures per key and window, shared by every instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    max: u32,
    window: i64,
}

impl Limit {
    /// `max` (at least 1) failures per `window` (whole seconds, at least 1).
    #[must_use]
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window: i64::try_from(window.as_secs())
                .unwrap_or(MAX_WINDOW)
                .clamp(1, MAX_WINDOW),
        }
    }

    /// `Some(wait)` when `key` has used up its failures; `wait` is how long until its window
    /// ends (at least one second, for a `Retry-After` header).
    ///
    /// # Errors
    /// On a database failure.
    pub async fn blocked_for(
        &self,
        db: &impl ConnectionTrait,
        key: &str,
    ) -> Result<Option<Duration>, Error> {
        self.blocked_with_max(db, key, self.max).await
    }

    /// The longest wait of the `keys` that used up their failures (a sign-in is refused while
    /// its account or its address is).
    ///
    /// # Errors
    /// On a database failure.
    pub async fn blocked_for_any(
        &self,
        db: &impl ConnectionTrait,
        keys: &[&str],
    ) -> Result<Option<Duration>, Error> {
        let mut longest = None;
        for key in keys {
            longest = longest.max(self.blocked_for(db, key).await?);
        }
        Ok(longest)
    }

    /// Counts a failure of each of `keys`; `true` when one of them is now out of budget (the
    /// moment to audit, once).
    ///
    /// # Errors
    /// On a database failure.
    pub async fn fail_all(&self, db: &impl ConnectionTrait, keys: &[&str]) -> Result<bool, Error> {
        for key in keys {
            self.fail(db, key).await?;
        }
        Ok(self.blocked_for_any(db, keys).await?.is_some())
    }

    /// Like [`Self::blocked_for`] with a budget of `max` (at most the limit's own).
    async fn blocked_with_max(
        &self,
        db: &impl ConnectionTrait,
        key: &str,
        max: u32,
    ) -> Result<Option<Duration>, Error> {
        let row = throttle::Entity::find_by_id(row_key(key)).one(db).await?;
        Ok(row.and_then(|r| self.wait(&r, max.clamp(1, self.max), crate::now())))
    }

    fn wait(&self, row: &throttle::Model, max: u32, now: i64) -> Option<Duration> {
        let ends = row.window_start + self.window;
        (row.failures >= i64::from(max) && ends > now)
            .then(|| Duration::from_secs(u64::try_from(ends - now).unwrap_or(1).max(1)))
    }

    /// Counts one failure of `key`: one statement, so concurrent failures on several
    /// instances all count.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn fail(&self, db: &impl ConnectionTrait, key: &str) -> Result<(), Error> {
        // In scope here only: its `max`/`add` would shadow the integer ones elsewhere.
        use sea_orm::sea_query::ExprTrait as _;
        let now = crate::now();
        let current = |c: throttle::Column| Expr::col((throttle::Entity, c));
        let ended = current(throttle::Column::WindowStart).lte(now - self.window);
        throttle::Entity::insert(throttle::ActiveModel {
            key: Set(row_key(key)),
            window_start: Set(now),
            failures: Set(1),
        })
        .on_conflict(
            OnConflict::column(throttle::Column::Key)
                .value(
                    throttle::Column::Failures,
                    Expr::case(ended.clone(), 1)
                        .finally(current(throttle::Column::Failures).add(1)),
                )
                .value(
                    throttle::Column::WindowStart,
                    Expr::case(ended, now).finally(current(throttle::Column::WindowStart)),
                )
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
        Ok(())
    }

    /// Counts one request of `key` against a rate limit and says how long to wait when it is
    /// over (this request included: a refused request counts too, but never extends the
    /// window).
    ///
    /// # Errors
    /// On a database failure.
    pub async fn hit(
        &self,
        db: &impl ConnectionTrait,
        key: &str,
    ) -> Result<Option<Duration>, Error> {
        self.fail(db, key).await?;
        let row = throttle::Entity::find_by_id(row_key(key)).one(db).await?;
        Ok(row.and_then(|r| self.wait(&r, self.max.saturating_add(1), crate::now())))
    }

    /// Forgets the failures of `key` (after a success).
    ///
    /// # Errors
    /// On a database failure.
    pub async fn clear(db: &impl ConnectionTrait, key: &str) -> Result<(), Error> {
        throttle::Entity::delete_by_id(row_key(key))
            .exec(db)
            .await?;
        Ok(())
    }
}

/// Deletes counters whose window began more than [`MAX_WINDOW`] ago.
///
/// # Errors
/// On a database failure.
pub async fn purge(db: &impl ConnectionTrait) -> Result<u64, Error> {
    let done = throttle::Entity::delete_many()
        .filter(throttle::Column::WindowStart.lt(crate::now() - MAX_WINDOW))
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// How many times the per-address budget of wrong user codes, failed across the instance within
/// the window, makes a surge.
pub const SURGE_FACTOR: usize = 10;
/// The per-address budget during a surge: a third of the configured one, never below this.
pub const SURGE_MIN_BUDGET: u32 = 3;

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
    /// The newest failures this instance saw, at most the surge threshold.
    times: VecDeque<Instant>,
    surging: bool,
}

/// Wrong user codes at `/activate`: each client address has a budget of failures per window,
/// shared by every instance; and each instance watches all the failures it sees. When they
/// reach [`SURGE_FACTOR`] × the budget within the window (a distributed guess at the code
/// space), it reports a surge once and tightens every address's budget until the count falls
/// back under half the threshold. An address that has not failed can always enter a code:
/// nobody is locked out by others.
#[derive(Debug)]
pub struct UserCodeGuard {
    per_address: Limit,
    budget: u32,
    tightened: u32,
    threshold: usize,
    window: Duration,
    recent: Mutex<Recent>,
    failures_total: AtomicU64,
    surges_total: AtomicU64,
}

impl UserCodeGuard {
    #[must_use]
    pub fn new(budget: u32, window: Duration) -> Self {
        let budget = budget.max(1);
        Self {
            per_address: Limit::new(budget, window),
            budget,
            tightened: (budget / 3).max(SURGE_MIN_BUDGET).min(budget),
            threshold: usize::try_from(budget)
                .unwrap_or(usize::MAX)
                .saturating_mul(SURGE_FACTOR),
            window,
            recent: Mutex::default(),
            failures_total: AtomicU64::new(0),
            surges_total: AtomicU64::new(0),
        }
    }

    fn key(address: &str) -> String {
        format!("user_code:address:{address}")
    }

    /// `Some(wait)` when `address` has used up its budget (the tightened one during a surge).
    ///
    /// # Errors
    /// On a database failure.
    pub async fn blocked_for(
        &self,
        db: &impl ConnectionTrait,
        address: &str,
    ) -> Result<Option<Duration>, Error> {
        let budget = if self.surging() {
            self.tightened
        } else {
            self.budget
        };
        self.per_address
            .blocked_with_max(db, &Self::key(address), budget)
            .await
    }

    /// Counts a wrong user code from `address`.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn fail(&self, db: &impl ConnectionTrait, address: &str) -> Result<Surge, Error> {
        self.per_address.fail(db, &Self::key(address)).await?;
        Ok(self.watch(Instant::now()))
    }

    /// Counts a failure in the instance-wide watch.
    fn watch(&self, now: Instant) -> Surge {
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
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        self.expire(&mut recent, Instant::now());
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

    /// Wrong user codes this instance counted since start.
    #[must_use]
    pub fn failures_total(&self) -> u64 {
        self.failures_total.load(Ordering::Relaxed)
    }

    /// Surges this instance reported since start.
    #[must_use]
    pub fn surges_total(&self) -> u64 {
        self.surges_total.load(Ordering::Relaxed)
    }

    /// The per-address budget outside a surge, and during one.
    #[must_use]
    pub fn budgets(&self) -> (u32, u32) {
        (self.budget, self.tightened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ActiveModelTrait as _;

    use crate::db::temporary as database;

    #[tokio::test]
    async fn a_key_is_refused_after_max_failures_until_its_window_ends() {
        let (_dir, db) = database().await;
        let limit = Limit::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(limit.blocked_for(&db, "a").await.unwrap(), None);
            limit.fail(&db, "a").await.unwrap();
        }
        let wait = limit.blocked_for(&db, "a").await.unwrap().unwrap();
        assert!((59..=60).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(
            limit.blocked_for(&db, "b").await.unwrap(),
            None,
            "keys are separate"
        );
        assert!(
            limit.blocked_with_max(&db, "a", 2).await.unwrap().is_some(),
            "a smaller budget blocks too"
        );
        Limit::clear(&db, "a").await.unwrap();
        assert_eq!(limit.blocked_for(&db, "a").await.unwrap(), None);
        assert!(!limit.fail_all(&db, &["a", "b"]).await.unwrap());
        assert!(!limit.fail_all(&db, &["a", "b"]).await.unwrap());
        assert!(
            limit.fail_all(&db, &["a", "b"]).await.unwrap(),
            "both reached 3"
        );
        assert!(
            limit
                .blocked_for_any(&db, &["a", "b"])
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            limit
                .blocked_for_any(&db, &["c", "b"])
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            limit
                .blocked_for_any(&db, &["c", "d"])
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_failure_after_the_window_starts_a_new_one() {
        let (_dir, db) = database().await;
        let limit = Limit::new(2, Duration::from_secs(60));
        throttle::ActiveModel {
            key: Set(row_key("a")),
            window_start: Set(crate::now() - 61),
            failures: Set(5),
        }
        .insert(&db)
        .await
        .unwrap();
        assert_eq!(
            limit.blocked_for(&db, "a").await.unwrap(),
            None,
            "window over"
        );
        limit.fail(&db, "a").await.unwrap();
        let row = throttle::Entity::find_by_id(row_key("a"))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.failures, 1);
        assert!(row.window_start >= crate::now() - 1);
        limit.fail(&db, "a").await.unwrap();
        assert!(limit.blocked_for(&db, "a").await.unwrap().is_some());
        assert_eq!(purge(&db).await.unwrap(), 0, "a live window is kept");
    }

    #[tokio::test]
    async fn any_key_fits_and_none_is_stored_in_clear() {
        let (_dir, db) = database().await;
        let limit = Limit::new(1, Duration::from_secs(60));
        let long = format!("activate:account:{}", "x".repeat(20_000));
        limit.fail(&db, &long).await.unwrap();
        assert!(limit.blocked_for(&db, &long).await.unwrap().is_some());
        let rows = throttle::Entity::find().all(&db).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].key.len(), 64);
        assert!(!rows[0].key.contains("activate"));
    }

    #[tokio::test]
    async fn a_rate_limit_lets_max_requests_through_per_window() {
        let (_dir, db) = database().await;
        let limit = Limit::new(2, Duration::from_secs(60));
        assert_eq!(limit.hit(&db, "k").await.unwrap(), None);
        assert_eq!(limit.hit(&db, "k").await.unwrap(), None);
        let wait = limit
            .hit(&db, "k")
            .await
            .unwrap()
            .expect("the third is refused");
        assert!((59..=60).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(limit.hit(&db, "other").await.unwrap(), None);
    }

    #[test]
    fn a_surge_is_reported_once_and_tightens_the_budget() {
        let guard = UserCodeGuard::new(10, Duration::from_secs(300));
        assert_eq!(guard.budgets(), (10, 3));
        let now = Instant::now();
        let started: Vec<Surge> = (0..100)
            .map(|_| guard.watch(now))
            .filter(|s| *s != Surge::No)
            .collect();
        assert_eq!(started, [Surge::Started { failures: 100 }]);
        assert_eq!((guard.surges_total(), guard.failures_total()), (1, 100));
        assert!(guard.surging());
        assert_eq!(guard.watch(now), Surge::No, "one alarm per surge");
    }

    #[test]
    fn a_surge_ends_when_the_failures_leave_the_window() {
        let guard = UserCodeGuard::new(1, Duration::from_millis(50));
        for _ in 0..SURGE_FACTOR {
            guard.watch(Instant::now());
        }
        assert!(guard.surging());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!guard.surging());
    }
}
