//! The one way a device grant's status changes, and the one owner of what this instance
//! remembers of grants being polled (see `docs/device-grant-store.md`).
//!
//! Every status change goes through a [`GrantTransaction`]: it makes the conditional update,
//! appends a row to `device_grant_changes` in the same transaction, and after the commit tells
//! this instance's memory. Other instances follow that log by id ([`GrantStore::follow`]), so a
//! pending poll answered from memory never outlives a decision by more than one follow tick.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _, Set, UpdateMany,
};
use uuid::Uuid;

use super::cursor::Cursor;
use super::memory::{Known, Pending, PollMemory, Rate, Stats};
use crate::entities::device_grant::{self, Status};
use crate::entities::device_grant_change;
use crate::error::Error;

/// How often the server follows the change log: the longest a poll on this instance can still
/// answer `authorization_pending` after another instance committed a decision.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);
/// Seconds added to a grant's interval by each `slow_down` (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: i64 = 5;
/// How many changes below the newest a starting instance reads, so that a change whose
/// transaction was still open when it started is not skipped.
const STARTUP_LOOKBACK: i64 = 256;
/// The most change rows one follow reads; the rest come on the next tick.
const FOLLOW_BATCH: u64 = 5_000;
/// Change rows kept below the newest: far more than any instance reads in one tick.
const KEPT_CHANGES: i64 = 10_000;
/// Poll memory of grants nobody polled for this long is dropped.
const IDLE: Duration = Duration::from_secs(15 * 60);

/// What a poll found, from memory or from the grant's row.
#[derive(Debug)]
pub enum Sighting {
    /// No such code, or another client's or workspace's.
    Unknown,
    /// Undecided, polled no faster than its interval.
    Pending,
    /// Undecided, polled too fast: the interval grew (on this instance).
    TooFast {
        grant: Uuid,
        interval: i64,
        slow_downs: i64,
    },
    Expired,
    Denied,
    Consumed,
    /// Approved and within its lifetime: ready to be redeemed.
    Approved(Box<device_grant::Model>),
}

/// Device grants as this instance writes, polls and follows them.
#[derive(Debug, Default)]
pub struct GrantStore {
    memory: PollMemory,
    cursor: Mutex<Cursor>,
}

impl GrantStore {
    /// Starts a transaction in which grants may be started or change status.
    ///
    /// # Errors
    /// On a database failure.
    pub(crate) async fn begin(
        &self,
        db: &DatabaseConnection,
    ) -> Result<GrantTransaction<'_>, Error> {
        Ok(GrantTransaction {
            store: self,
            txn: crate::db::begin_write(db).await?,
            changes: Vec::new(),
            started: Vec::new(),
        })
    }

    /// One poll of `hash` by the client `client_id` of workspace `workspace_id` at `now`. A
    /// grant known to be pending is answered from memory; otherwise its row is read (never
    /// written).
    ///
    /// # Errors
    /// On a database failure.
    pub(crate) async fn poll(
        &self,
        db: &impl ConnectionTrait,
        hash: &str,
        workspace_id: Uuid,
        client_id: Uuid,
        now: i64,
    ) -> Result<Sighting, Error> {
        match self.memory.poll_pending(hash, workspace_id, client_id) {
            Known::Pending(known, rate) => return Ok(self.pending(hash, &known, rate, now)),
            Known::Foreign => return Ok(Sighting::Unknown),
            Known::Unknown => {}
        }
        let epoch = self.memory.epoch();
        // `device_code_hash` is unique, so `.all()` returns at most one row. `.one()` would bind
        // `LIMIT ?`, which makes SQLite re-prepare the statement on every poll (a quarter of the
        // CPU of a pending poll, measured with perf).
        let Some(grant) = device_grant::Entity::find()
            .filter(device_grant::Column::DeviceCodeHash.eq(hash))
            .all(db)
            .await?
            .into_iter()
            .next()
            .filter(|g| g.workspace_id == workspace_id && g.client_id == client_id)
        else {
            return Ok(Sighting::Unknown);
        };
        let rate = self
            .memory
            .polled(&grant, grant.status == Status::Pending, epoch);
        Ok(match grant.status {
            Status::Consumed => Sighting::Consumed,
            Status::Denied => {
                self.memory.finished(hash);
                Sighting::Denied
            }
            Status::Pending => self.pending(hash, &Pending::of(&grant), rate, now),
            Status::Approved if grant.expires_at <= now => {
                self.memory.finished(hash);
                Sighting::Expired
            }
            Status::Approved => Sighting::Approved(Box::new(grant)),
        })
    }

    fn pending(&self, hash: &str, known: &Pending, rate: Rate, now: i64) -> Sighting {
        if known.expires_at <= now {
            self.memory.finished(hash);
            return Sighting::Expired;
        }
        if rate == Rate::Ok {
            return Sighting::Pending;
        }
        // Memory only: a device hammering the endpoint costs no database write (the count and
        // the grown interval are written at redemption).
        let (interval, slow_downs) = self
            .memory
            .slow_down(hash, SLOW_DOWN_STEP)
            .map_or((known.interval + SLOW_DOWN_STEP, 0), |s| {
                (s.interval, s.slow_downs)
            });
        Sighting::TooFast {
            grant: known.grant,
            interval,
            slow_downs,
        }
    }

    /// How the grant was polled on this instance, when it has seen it (these counts reach the
    /// grant's row only when it is redeemed).
    #[must_use]
    pub fn stats(&self, device_code_hash: &str) -> Option<Stats> {
        self.memory.stats(device_code_hash)
    }

    /// Reads the changes committed since the last call (by any instance, this one included)
    /// and forgets what this instance remembered as pending of those grants. Returns how many
    /// changes were new. When a change could have been missed (an id given up as rolled back,
    /// or the reader fell behind the pruning), every pending grant is read again on its next
    /// poll.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn follow(&self, db: &impl ConnectionTrait) -> Result<usize, Error> {
        let wanted = self.cursor().wanted();
        let (last, holes) = match wanted {
            Some(wanted) => wanted,
            None => {
                let newest = newest_change(db).await?.unwrap_or(0);
                let start = (newest - STARTUP_LOOKBACK).max(0);
                self.cursor().start_after(start);
                (start, Vec::new())
            }
        };
        let mut unseen = Condition::any().add(device_grant_change::Column::Id.gt(last));
        if !holes.is_empty() {
            unseen = unseen.add(device_grant_change::Column::Id.is_in(holes));
        }
        let changes: Vec<(i64, String)> = device_grant_change::Entity::find()
            .select_only()
            .column(device_grant_change::Column::Id)
            .column(device_grant_change::Column::DeviceCodeHash)
            .filter(unseen)
            .order_by_asc(device_grant_change::Column::Id)
            .limit(FOLLOW_BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let now = Instant::now();
        let (new, given_up) = {
            let mut cursor = self.cursor();
            let new: Vec<&str> = changes
                .iter()
                .filter(|(id, _)| cursor.observe(*id, now))
                .map(|(_, hash)| hash.as_str())
                .collect();
            (new, cursor.expire(now))
        };
        if !new.is_empty() {
            self.memory.forget_all(new.iter().copied());
        }
        if given_up > 0 {
            tracing::warn!(
                given_up,
                "device-grant changes never showed up; every pending grant is read again"
            );
            self.memory.forget_every_pending();
        }
        Ok(new.len())
    }

    fn cursor(&self) -> std::sync::MutexGuard<'_, Cursor> {
        self.cursor.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets grants nobody polls any more, and deletes change rows far below the newest
    /// (every instance read them long ago). Returns how many rows were deleted.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn purge(&self, db: &impl ConnectionTrait) -> Result<u64, Error> {
        self.memory.purge(IDLE);
        prune_changes(db, KEPT_CHANGES).await
    }
}

async fn newest_change(db: &impl ConnectionTrait) -> Result<Option<i64>, Error> {
    Ok(device_grant_change::Entity::find()
        .select_only()
        .column_as(device_grant_change::Column::Id.max(), "newest")
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten())
}

/// Deletes the change rows more than `kept` below the newest.
async fn prune_changes(db: &impl ConnectionTrait, kept: i64) -> Result<u64, Error> {
    let Some(newest) = newest_change(db).await? else {
        return Ok(0);
    };
    Ok(device_grant_change::Entity::delete_many()
        .filter(device_grant_change::Column::Id.lte(newest - kept))
        .exec(db)
        .await?
        .rows_affected)
}

/// A database transaction in which device grants change status. Each change is one
/// conditional update; [`Self::commit`] appends them to the change log, commits, and only then
/// tells this instance's memory. Dropped without a commit, it rolls back and changes nothing.
pub(crate) struct GrantTransaction<'a> {
    store: &'a GrantStore,
    txn: DatabaseTransaction,
    /// Device-code hashes and the status each moved to.
    changes: Vec<(String, Status)>,
    /// Grants inserted, which this instance knows once they are committed.
    started: Vec<device_grant::Model>,
}

/// What a user decided about a pending grant.
pub(crate) struct Verdict {
    /// `Approved` or `Denied`.
    pub status: Status,
    /// The user's workspace: a grant of another one is left alone.
    pub workspace_id: Uuid,
    pub user_id: Uuid,
    pub auth_time: i64,
    pub ip: Option<String>,
}

impl GrantTransaction<'_> {
    /// For the other writes of the same unit of work (audit, consent, tokens).
    pub(crate) fn txn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Inserts a new (pending) grant; once committed, this instance knows it and counts the
    /// authorization response as its first poll. Returns the database error untouched, so the
    /// caller can tell a drawn code's collision (and must then drop this transaction: on
    /// PostgreSQL a failed statement ends it).
    ///
    /// # Errors
    /// On a database failure.
    pub(crate) async fn insert(
        &mut self,
        grant: device_grant::ActiveModel,
    ) -> Result<device_grant::Model, DbErr> {
        let grant = grant.insert(&self.txn).await?;
        self.started.push(grant.clone());
        Ok(grant)
    }

    /// Records a user's decision (`Approved` or `Denied`) on a grant still pending and within
    /// its lifetime in the user's workspace; `None` when it is not (nothing changed).
    ///
    /// # Errors
    /// On a database failure.
    pub(crate) async fn decide(
        &mut self,
        grant_id: Uuid,
        verdict: Verdict,
        now: i64,
    ) -> Result<Option<device_grant::Model>, Error> {
        let update = device_grant::Entity::update_many()
            .col_expr(device_grant::Column::UserId, Expr::value(verdict.user_id))
            .col_expr(
                device_grant::Column::AuthTime,
                Expr::value(verdict.auth_time),
            )
            .col_expr(device_grant::Column::DecidedAt, Expr::value(now))
            .col_expr(device_grant::Column::ApprovedIp, Expr::value(verdict.ip))
            .filter(device_grant::Column::WorkspaceId.eq(verdict.workspace_id))
            .filter(device_grant::Column::ExpiresAt.gt(now));
        if !self
            .flip(grant_id, &[Status::Pending], verdict.status, update)
            .await?
        {
            return Ok(None);
        }
        let grant = device_grant::Entity::find_by_id(grant_id)
            .one(&self.txn)
            .await?
            .ok_or_else(|| Error::internal("decided grant vanished"))?;
        self.changed(&grant.device_code_hash, verdict.status);
        Ok(Some(grant))
    }

    /// Cuts off a pending or approved grant: it becomes denied (its decision time is kept when
    /// it had one). `false` when it was neither (nothing changed).
    ///
    /// # Errors
    /// On a database failure.
    pub(crate) async fn revoke(
        &mut self,
        grant: &device_grant::Model,
        now: i64,
    ) -> Result<bool, Error> {
        let update = device_grant::Entity::update_many()
            .col_expr(
                device_grant::Column::DecidedAt,
                Func::coalesce([Expr::col(device_grant::Column::DecidedAt), Expr::value(now)])
                    .into(),
            )
            .filter(device_grant::Column::WorkspaceId.eq(grant.workspace_id));
        let live = [Status::Pending, Status::Approved];
        if !self.flip(grant.id, &live, Status::Denied, update).await? {
            return Ok(false);
        }
        self.changed(&grant.device_code_hash, Status::Denied);
        Ok(true)
    }

    /// Redeems an approved grant within its lifetime (approved → consumed), writing how this
    /// instance saw it polled. `None` when another poll redeemed it first.
    ///
    /// # Errors
    /// On a database failure.
    pub(crate) async fn redeem(
        &mut self,
        grant: &device_grant::Model,
        now: i64,
    ) -> Result<Option<Stats>, Error> {
        let seen = self
            .store
            .memory
            .stats(&grant.device_code_hash)
            .unwrap_or_default();
        let written = Stats {
            polls: seen.polls,
            slow_downs: seen.slow_downs.max(grant.slow_downs),
            interval: seen.interval.max(grant.interval),
        };
        let update = device_grant::Entity::update_many()
            .col_expr(device_grant::Column::ConsumedAt, Expr::value(now))
            .col_expr(device_grant::Column::PollCount, Expr::value(written.polls))
            .col_expr(
                device_grant::Column::SlowDowns,
                Expr::value(written.slow_downs),
            )
            .col_expr(
                device_grant::Column::Interval,
                Expr::value(written.interval),
            )
            .filter(device_grant::Column::ExpiresAt.gt(now));
        if !self
            .flip(grant.id, &[Status::Approved], Status::Consumed, update)
            .await?
        {
            return Ok(None);
        }
        self.changed(&grant.device_code_hash, Status::Consumed);
        Ok(Some(written))
    }

    /// Moves grant `id` from one of `from` to `to`, with the other columns `update` sets and
    /// the conditions it adds: one conditional update, `true` when it changed that grant.
    async fn flip(
        &self,
        id: Uuid,
        from: &[Status],
        to: Status,
        update: UpdateMany<device_grant::Entity>,
    ) -> Result<bool, Error> {
        let changed = update
            .col_expr(device_grant::Column::Status, Expr::value(to))
            .filter(device_grant::Column::Id.eq(id))
            .filter(device_grant::Column::Status.is_in(from.iter().copied()))
            .exec(&self.txn)
            .await?;
        Ok(changed.rows_affected == 1)
    }

    fn changed(&mut self, hash: &str, status: Status) {
        self.changes.push((hash.to_owned(), status));
    }

    /// Appends the changes to the log (last, so their ids are taken as late as possible before
    /// the commit), commits, then updates this instance's memory.
    ///
    /// # Errors
    /// On a database failure (then nothing changed).
    pub(crate) async fn commit(self) -> Result<(), Error> {
        if !self.changes.is_empty() {
            device_grant_change::Entity::insert_many(self.changes.iter().map(|(hash, status)| {
                device_grant_change::ActiveModel {
                    device_code_hash: Set(hash.clone()),
                    status: Set(*status),
                    ..Default::default()
                }
            }))
            .exec_without_returning(&self.txn)
            .await?;
        }
        self.txn.commit().await?;
        for grant in &self.started {
            self.store.memory.started(grant);
        }
        for (hash, status) in &self.changes {
            match status {
                Status::Consumed => self.store.memory.finished(hash),
                _ => self.store.memory.forget(hash),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{PaginatorTrait as _, TransactionTrait as _};

    use super::*;
    use crate::services::device_grants::test_db::database;

    async fn start(
        store: &GrantStore,
        db: &DatabaseConnection,
        grant: device_grant::ActiveModel,
    ) -> device_grant::Model {
        let mut txn = store.begin(db).await.unwrap();
        let grant = txn.insert(grant).await.unwrap();
        txn.commit().await.unwrap();
        grant
    }

    fn pending(hash: &str) -> device_grant::ActiveModel {
        let now = crate::now();
        device_grant::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(Uuid::now_v7()),
            client_id: Set(Uuid::now_v7()),
            device_code_hash: Set(hash.into()),
            user_code_hash: Set(None),
            scopes: Set(String::new()),
            status: Set(Status::Pending),
            interval: Set(0),
            created_at: Set(now),
            expires_at: Set(now + 600),
            user_id: Set(None),
            auth_time: Set(None),
            decided_at: Set(None),
            consumed_at: Set(None),
            created_ip: Set(None),
            user_agent: Set(None),
            approved_ip: Set(None),
            poll_count: Set(0),
            slow_downs: Set(0),
        }
    }

    async fn poll(
        store: &GrantStore,
        db: &DatabaseConnection,
        g: &device_grant::Model,
    ) -> Sighting {
        store
            .poll(
                db,
                &g.device_code_hash,
                g.workspace_id,
                g.client_id,
                crate::now(),
            )
            .await
            .unwrap()
    }

    fn approval(g: &device_grant::Model) -> Verdict {
        Verdict {
            status: Status::Approved,
            workspace_id: g.workspace_id,
            user_id: Uuid::now_v7(),
            auth_time: crate::now(),
            ip: None,
        }
    }

    /// Appends a denial of `hash` to the change log, with the next id; returns it.
    async fn log(db: &impl ConnectionTrait, hash: &str) -> i64 {
        device_grant_change::Entity::insert(device_grant_change::ActiveModel {
            device_code_hash: Set(hash.into()),
            status: Set(Status::Denied),
            ..Default::default()
        })
        .exec(db)
        .await
        .unwrap()
        .last_insert_id
    }

    /// Appends a denial of `hash` with the id `id`, as a transaction holding it would.
    async fn log_as(db: &impl ConnectionTrait, id: i64, hash: &str) {
        device_grant_change::Entity::insert(device_grant_change::ActiveModel {
            id: Set(id),
            device_code_hash: Set(hash.into()),
            status: Set(Status::Denied),
        })
        .exec_without_returning(db)
        .await
        .unwrap();
    }

    async fn deny(db: &impl ConnectionTrait, g: &device_grant::Model) {
        device_grant::Entity::update_many()
            .col_expr(device_grant::Column::Status, Expr::value(Status::Denied))
            .filter(device_grant::Column::Id.eq(g.id))
            .exec(db)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_decision_committed_by_one_instance_reaches_the_other_by_the_log() {
        let test = database().await;
        let db = &test.db;
        let (here, there) = (GrantStore::default(), GrantStore::default());
        there.follow(db).await.unwrap();
        let g = start(&here, db, pending("h1")).await;
        assert!(matches!(poll(&there, db, &g).await, Sighting::Pending));

        let mut txn = here.begin(db).await.unwrap();
        txn.decide(g.id, approval(&g), crate::now()).await.unwrap();
        txn.commit().await.unwrap();
        assert!(
            matches!(poll(&here, db, &g).await, Sighting::Approved(_)),
            "the deciding instance knows at once"
        );
        assert!(
            matches!(poll(&there, db, &g).await, Sighting::Pending),
            "the other one answers from memory until it follows the log"
        );
        assert_eq!(there.follow(db).await.unwrap(), 1);
        assert!(matches!(poll(&there, db, &g).await, Sighting::Approved(_)));
        assert_eq!(there.follow(db).await.unwrap(), 0, "each change once");
    }

    #[tokio::test]
    async fn a_change_committed_below_the_cursor_is_still_seen() {
        let test = database().await;
        let db = &test.db;
        let (here, there) = (GrantStore::default(), GrantStore::default());
        there.follow(db).await.unwrap();
        let g = start(&here, db, pending("h2")).await;
        assert!(matches!(poll(&there, db, &g).await, Sighting::Pending));
        // Id 2 commits first (as PostgreSQL allows); the change holding id 1 comes later.
        log_as(db, 2, "elsewhere").await;
        assert_eq!(there.follow(db).await.unwrap(), 1);
        deny(db, &g).await;
        log_as(db, 1, "h2").await;
        assert_eq!(there.follow(db).await.unwrap(), 1);
        assert!(matches!(poll(&there, db, &g).await, Sighting::Denied));
    }

    #[tokio::test]
    async fn a_transaction_dropped_without_commit_changes_nothing() {
        let test = database().await;
        let db = &test.db;
        let store = GrantStore::default();
        store.follow(db).await.unwrap();
        let g = start(&store, db, pending("h3")).await;
        {
            let mut txn = store.begin(db).await.unwrap();
            assert!(txn.revoke(&g, crate::now()).await.unwrap());
        }
        assert!(matches!(poll(&store, db, &g).await, Sighting::Pending));
        assert_eq!(store.follow(db).await.unwrap(), 0);
        assert_eq!(
            device_grant_change::Entity::find().count(db).await.unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn redemption_happens_once_and_writes_the_poll_counts() {
        let test = database().await;
        let db = &test.db;
        let store = GrantStore::default();
        let g = start(&store, db, pending("h4")).await;
        poll(&store, db, &g).await;
        let mut txn = store.begin(db).await.unwrap();
        let approved = txn.decide(g.id, approval(&g), crate::now()).await.unwrap();
        txn.commit().await.unwrap();
        let approved = approved.unwrap();
        let mut txn = store.begin(db).await.unwrap();
        let written = txn.redeem(&approved, crate::now()).await.unwrap();
        assert_eq!(written.map(|s| s.polls), Some(1));
        assert_eq!(txn.redeem(&approved, crate::now()).await.unwrap(), None);
        txn.commit().await.unwrap();
        assert!(matches!(poll(&store, db, &g).await, Sighting::Consumed));
        let statuses: Vec<Status> = device_grant_change::Entity::find()
            .order_by_asc(device_grant_change::Column::Id)
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.status)
            .collect();
        assert_eq!(statuses, [Status::Approved, Status::Consumed]);
    }

    #[tokio::test]
    async fn pruning_keeps_the_newest_changes() {
        let test = database().await;
        let db = &test.db;
        assert_eq!(prune_changes(db, 2).await.unwrap(), 0);
        for _ in 1..=5 {
            log(db, "h").await;
        }
        assert_eq!(prune_changes(db, 2).await.unwrap(), 3);
        let left: Vec<i64> = device_grant_change::Entity::find()
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(left, [4, 5]);
        // A reader that started after the pruned rows sees only what comes next.
        let store = GrantStore::default();
        store.follow(db).await.unwrap();
        assert_eq!(log(db, "h").await, 6);
        assert_eq!(store.follow(db).await.unwrap(), 1);
        // Ids keep going up even when every row was pruned (SQLite's AUTOINCREMENT).
        assert_eq!(prune_changes(db, 0).await.unwrap(), 3);
        assert_eq!(log(db, "h").await, 7);
    }

    /// PostgreSQL hands out ids as rows are inserted: a transaction may commit its change
    /// after one that took a later id. (SQLite serialises writers: there it cannot happen.)
    #[tokio::test]
    async fn a_change_committed_after_a_later_one_is_still_seen() {
        let test = database().await;
        if !test.is_postgres() {
            return;
        }
        let db = &test.db;
        let (here, there) = (GrantStore::default(), GrantStore::default());
        there.follow(db).await.unwrap();
        let slow = start(&here, db, pending("slow")).await;
        let fast = start(&here, db, pending("fast")).await;
        for g in [&slow, &fast] {
            assert!(matches!(poll(&there, db, g).await, Sighting::Pending));
        }
        let slow_txn = db.begin().await.unwrap();
        deny(&slow_txn, &slow).await;
        let slow_id = log(&slow_txn, "slow").await;
        let fast_txn = db.begin().await.unwrap();
        deny(&fast_txn, &fast).await;
        let fast_id = log(&fast_txn, "fast").await;
        fast_txn.commit().await.unwrap();
        assert!(slow_id < fast_id);

        assert_eq!(there.follow(db).await.unwrap(), 1);
        assert!(matches!(poll(&there, db, &fast).await, Sighting::Denied));
        assert!(matches!(poll(&there, db, &slow).await, Sighting::Pending));
        slow_txn.commit().await.unwrap();
        assert_eq!(there.follow(db).await.unwrap(), 1, "the earlier id, late");
        assert!(matches!(poll(&there, db, &slow).await, Sighting::Denied));
    }
}
