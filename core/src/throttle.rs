//! Failure budgets.
//!
//! [`Limit`]: at most `max` attempts per key in a fixed window, counted in the `throttle` table
//! so that every instance behind a load balancer shares them (sign-ins per account and per
//! address, wrong user codes per address). A key over its budget is refused until its window
//! ends; the window starts at the first failure after the previous one ended.
//!
//! [`UserCodeGuard`]: the guard of `/activate` against guessed user codes (RFC 8628 §5.1), a
//! per-address [`Limit`] plus a watch over all wrong codes this instance sees, which raises an
//! alarm and tightens every address's budget during a surge.
//!
//! [`DeviceCodeGuard`]: the guard of the token endpoint against guessed device codes (RFC 8628
//! §5.2), a per-address [`Limit`] whose exhaustion each instance remembers until the window ends.
//!
//! Every attempt is counted before it is decided ([`Limit::spend`]), so that concurrent
//! attempts cannot all pass a check made before any of them counted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, DbErr, EntityTrait as _, QueryFilter as _, QueryTrait as _,
    Set,
};

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

    /// Counts one more of `key` and returns the new count, in one statement (an upsert that
    /// increments and returns the row): concurrent attempts on any instance each get a count of
    /// their own, so a burst cannot all pass a check made before any of them counted.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn spend(&self, db: &impl ConnectionTrait, key: &str) -> Result<Spent, Error> {
        self.spend_within(db, key, self.max).await
    }

    /// Like [`Self::spend`], decided against a budget of `max` (at most the limit's own).
    async fn spend_within(
        &self,
        db: &impl ConnectionTrait,
        key: &str,
        max: u32,
    ) -> Result<Spent, Error> {
        // In scope here only: its `max`/`add` would shadow the integer ones elsewhere.
        use sea_orm::sea_query::ExprTrait as _;
        let now = crate::now();
        let current = |c: throttle::Column| Expr::col((throttle::Entity, c));
        let ended = current(throttle::Column::WindowStart).lte(now - self.window);
        let mut upsert = throttle::Entity::insert(throttle::ActiveModel {
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
        .into_query();
        upsert.returning_all();
        let row = throttle::Entity::find()
            .from_raw_sql(db.get_database_backend().build(&upsert))
            .one(db)
            .await?
            .ok_or_else(|| Error::Database(DbErr::RecordNotInserted))?;
        Ok(Spent {
            count: row.failures,
            max: i64::from(max.clamp(1, self.max)),
            wait: row.window_start + self.window - now,
        })
    }

    /// Gives back what [`Self::spend`] took for `key` (the attempt turned out not to be a
    /// failure).
    ///
    /// # Errors
    /// On a database failure.
    pub async fn refund(db: &impl ConnectionTrait, key: &str) -> Result<(), Error> {
        use sea_orm::sea_query::ExprTrait as _;
        throttle::Entity::update_many()
            .col_expr(
                throttle::Column::Failures,
                Expr::col(throttle::Column::Failures).sub(1),
            )
            .filter(throttle::Column::Key.eq(row_key(key)))
            .filter(throttle::Column::Failures.gt(0))
            .exec(db)
            .await?;
        Ok(())
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

/// A key's count right after [`Limit::spend`] added one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    count: i64,
    max: i64,
    /// Seconds until the key's window ends.
    wait: i64,
}

impl Spent {
    /// `Some(wait)` when this one is over the budget: it is refused, and `wait` is how long
    /// until the key's window ends (at least one second, for a `Retry-After` header).
    #[must_use]
    pub fn refused(&self) -> Option<Duration> {
        (self.count > self.max)
            .then(|| Duration::from_secs(u64::try_from(self.wait).unwrap_or(1).max(1)))
    }

    /// Whether this one used the last of the budget (the moment to audit, once per window).
    #[must_use]
    pub fn ran_out(&self) -> bool {
        self.count == self.max
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

    /// Counts a code entered from `address` before it is looked up; `Some(wait)` when that is
    /// over the address's budget (the tightened one during a surge) and the code must not be
    /// looked up. A code that turns out to exist is given back with [`Self::refund`].
    ///
    /// # Errors
    /// On a database failure.
    pub async fn spend(
        &self,
        db: &impl ConnectionTrait,
        address: &str,
    ) -> Result<Option<Duration>, Error> {
        let budget = if self.surging() {
            self.tightened
        } else {
            self.budget
        };
        Ok(self
            .per_address
            .spend_within(db, &Self::key(address), budget)
            .await?
            .refused())
    }

    /// Gives back the count of a code from `address` that exists (expired and used codes
    /// included: they are not guesses).
    ///
    /// # Errors
    /// On a database failure.
    pub async fn refund(db: &impl ConnectionTrait, address: &str) -> Result<(), Error> {
        Limit::refund(db, &Self::key(address)).await
    }

    /// Counts a wrong code in this instance's watch.
    pub fn wrong_code(&self) -> Surge {
        self.watch(Instant::now())
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

/// At most this many addresses are remembered as barred by one instance; past it, an address
/// over its budget is still refused, after its code is looked up.
const MAX_BARRED: usize = 10_000;

/// Unknown device codes polled at the token endpoint (RFC 8628 §5.2): each client address has a
/// budget per window, shared by every instance. An address found over it is remembered by this
/// instance until its window ends, so that its polls are refused before any code is looked up.
#[derive(Debug)]
pub struct DeviceCodeGuard {
    per_address: Limit,
    barred: Mutex<HashMap<String, Instant>>,
    /// Whether `barred` may hold an address: polls skip the lock while nobody is barred (the
    /// token endpoint's hot path).
    anyone_barred: AtomicBool,
}

impl DeviceCodeGuard {
    #[must_use]
    pub fn new(budget: u32, window: Duration) -> Self {
        Self {
            per_address: Limit::new(budget, window),
            barred: Mutex::default(),
            anyone_barred: AtomicBool::new(false),
        }
    }

    /// Whether any address may be barred here; when not, [`Self::barred_for`] is `None` for
    /// every address and need not be asked.
    #[must_use]
    pub fn anyone_barred(&self) -> bool {
        self.anyone_barred.load(Ordering::Acquire)
    }

    fn key(address: &str) -> String {
        format!("device_code:address:{address}")
    }

    /// `Some(wait)` while this instance knows `address` to be over its budget.
    #[must_use]
    pub fn barred_for(&self, address: &str) -> Option<Duration> {
        if !self.anyone_barred() {
            return None;
        }
        let mut barred = self.barred.lock().unwrap_or_else(PoisonError::into_inner);
        let wait = barred
            .get(address)
            .map(|until| until.saturating_duration_since(Instant::now()));
        if wait.is_some_and(|w| w.is_zero()) {
            barred.remove(address);
            self.anyone_barred
                .store(!barred.is_empty(), Ordering::Release);
        }
        wait.filter(|w| !w.is_zero())
            .map(|w| w.max(Duration::from_secs(1)))
    }

    /// Counts an unknown device code polled from `address`; `Some(wait)` when that is over the
    /// budget, and the address is then barred here until its window ends.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn unknown_code(
        &self,
        db: &impl ConnectionTrait,
        address: &str,
    ) -> Result<Option<Duration>, Error> {
        let wait = self
            .per_address
            .spend(db, &Self::key(address))
            .await?
            .refused();
        if let Some(wait) = wait {
            let now = Instant::now();
            let mut barred = self.barred.lock().unwrap_or_else(PoisonError::into_inner);
            if barred.len() >= MAX_BARRED {
                barred.retain(|_, until| *until > now);
            }
            if barred.len() < MAX_BARRED {
                barred.insert(address.to_owned(), now + wait);
                self.anyone_barred.store(true, Ordering::Release);
            }
        }
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ActiveModelTrait as _;

    use crate::db::temporary as database;

    #[tokio::test]
    async fn a_key_is_refused_past_max_until_its_window_ends() {
        let (_dir, db) = database().await;
        let limit = Limit::new(3, Duration::from_secs(60));
        for n in 1..=3 {
            let spent = limit.spend(&db, "a").await.unwrap();
            assert_eq!(spent.refused(), None);
            assert_eq!(spent.ran_out(), n == 3, "the third uses the last of it");
        }
        let spent = limit.spend(&db, "a").await.unwrap();
        let wait = spent.refused().unwrap();
        assert!((59..=60).contains(&wait.as_secs()), "{wait:?}");
        assert!(!spent.ran_out(), "only once per window");
        assert_eq!(
            limit.spend(&db, "b").await.unwrap().refused(),
            None,
            "keys are separate"
        );
        assert!(
            limit
                .spend_within(&db, "b", 1)
                .await
                .unwrap()
                .refused()
                .is_some(),
            "a smaller budget refuses sooner"
        );
        Limit::clear(&db, "a").await.unwrap();
        assert_eq!(limit.spend(&db, "a").await.unwrap().refused(), None);
    }

    #[tokio::test]
    async fn a_refund_gives_back_one() {
        let (_dir, db) = database().await;
        let limit = Limit::new(2, Duration::from_secs(60));
        limit.spend(&db, "a").await.unwrap();
        limit.spend(&db, "a").await.unwrap();
        Limit::refund(&db, "a").await.unwrap();
        assert_eq!(limit.spend(&db, "a").await.unwrap().refused(), None);
        assert!(limit.spend(&db, "a").await.unwrap().refused().is_some());
        Limit::refund(&db, "never spent").await.unwrap();
        assert!(
            throttle::Entity::find_by_id(row_key("never spent"))
                .one(&db)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn concurrent_spends_each_get_a_count_of_their_own() {
        let (_dir, db) = database().await;
        let limit = Limit::new(5, Duration::from_secs(60));
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let db = db.clone();
            burst.spawn(async move { limit.spend(&db, "burst").await.unwrap() });
        }
        let spent = burst.join_all().await;
        let mut counts: Vec<i64> = spent.iter().map(|s| s.count).collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=20).collect::<Vec<_>>());
        let allowed = spent.iter().filter(|s| s.refused().is_none()).count();
        assert_eq!(allowed, 5);
    }

    #[tokio::test]
    async fn a_spend_after_the_window_starts_a_new_one() {
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
        let spent = limit.spend(&db, "a").await.unwrap();
        assert_eq!((spent.count, spent.refused()), (1, None), "window over");
        let row = throttle::Entity::find_by_id(row_key("a"))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert!(row.window_start >= crate::now() - 1);
        limit.spend(&db, "a").await.unwrap();
        assert!(limit.spend(&db, "a").await.unwrap().refused().is_some());
        assert_eq!(purge(&db).await.unwrap(), 0, "a live window is kept");
    }

    #[tokio::test]
    async fn any_key_fits_and_none_is_stored_in_clear() {
        let (_dir, db) = database().await;
        let limit = Limit::new(1, Duration::from_secs(60));
        let long = format!("activate:account:{}", "x".repeat(20_000));
        limit.spend(&db, &long).await.unwrap();
        assert!(limit.spend(&db, &long).await.unwrap().refused().is_some());
        let rows = throttle::Entity::find().all(&db).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].key.len(), 64);
        assert!(!rows[0].key.contains("activate"));
    }

    #[tokio::test]
    async fn an_address_over_its_device_code_budget_is_barred_until_the_window_ends() {
        let (_dir, db) = database().await;
        let guard = DeviceCodeGuard::new(2, Duration::from_secs(60));
        assert_eq!(guard.unknown_code(&db, "a").await.unwrap(), None);
        assert_eq!(guard.unknown_code(&db, "a").await.unwrap(), None);
        assert_eq!(guard.barred_for("a"), None, "within the budget");
        let wait = guard.unknown_code(&db, "a").await.unwrap().unwrap();
        assert!((59..=60).contains(&wait.as_secs()), "{wait:?}");
        let barred = guard.barred_for("a").unwrap();
        assert!((58..=60).contains(&barred.as_secs()), "{barred:?}");
        assert_eq!(guard.barred_for("b"), None);
        let other = DeviceCodeGuard::new(2, Duration::from_secs(60));
        assert_eq!(
            other.barred_for("a"),
            None,
            "another instance learns by counting"
        );
        assert!(other.unknown_code(&db, "a").await.unwrap().is_some());
        assert!(other.barred_for("a").is_some());
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
