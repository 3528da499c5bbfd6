//! Short-lived read caches for the hot paths (polling looks up its workspace and client on
//! every request). Entries live [`TTL`] at most, so a change made by another instance, the CLI
//! or the console is seen within that time; changes made in this process invalidate at once.
//! While the database is unavailable, a record read within [`LAST_KNOWN_FOR`] stands in for
//! the one that cannot be read, so that what needs nothing else from the database (a pending
//! poll answered from memory) keeps being answered, and for [`PROBE_EVERY`] after a lookup found
//! the database unavailable it stands in without waiting for the database again: a request
//! then waits for the database once, for its own work, not once more per record it reads.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;

use crate::error::Error;
use crate::records::{Client, Workspace};
use crate::services::{clients, workspaces};
use crate::types::{ClientId, Slug};

/// How long a cached record is trusted (SPEC §1: changes take effect within 5 seconds).
pub const TTL: Duration = Duration::from_secs(4);
/// How old a cached record may be to stand in while the database is unavailable: what it lets
/// through without the database is a pending poll's answer, never a token or a change.
pub const LAST_KNOWN_FOR: Duration = Duration::from_secs(10 * 60);
/// How long after a lookup found the database unavailable the last known records are used
/// without asking it again.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// A map whose entries expire and which never holds more than its capacity: anyone on the
/// network can make the protocol endpoints look up names that do not exist, and each answer
/// is cached, so an unbounded map would grow with every request.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

/// The capacity of [`TtlCache::new`]: far above the records an instance reads within a TTL.
const DEFAULT_CAPACITY: usize = 10_000;

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self::bounded(ttl, DEFAULT_CAPACITY)
    }

    /// A cache of at most `capacity` entries (at least one).
    #[must_use]
    pub fn bounded(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    #[must_use]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// The entry cached less than `age` ago, even when it is past the cache's TTL.
    #[must_use]
    pub fn get_within<Q>(&self, key: &Q, age: Duration) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(key)
            .filter(|(at, _)| at.elapsed() < age)
            .map(|(_, v)| v.clone())
    }

    /// Caches `value`; when full, expired entries go first, then the oldest live one.
    pub fn insert(&self, key: K, value: V) {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.capacity && !map.contains_key(&key) {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= self.capacity {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(key, (Instant::now(), value));
    }

    pub fn remove(&self, key: &K) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// How many entries are held, expired ones included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The records the protocol endpoints read on every request, and the names known not to
/// exist. Absences are kept apart, in a smaller cache: a flood of made-up names then only
/// evicts other made-up names, never a record in use.
#[derive(Debug)]
pub struct Records {
    workspaces: TtlCache<String, Arc<Workspace>>,
    absent_workspaces: TtlCache<String, ()>,
    clients: TtlCache<String, Arc<Client>>,
    absent_clients: TtlCache<String, ()>,
    /// When a lookup last found the database unavailable, until one finds it back.
    unavailable_at: Mutex<Option<Instant>>,
}

/// How many names known not to exist each instance remembers, per kind.
const ABSENT_CAPACITY: usize = 1_024;

impl Default for Records {
    fn default() -> Self {
        Self {
            workspaces: TtlCache::new(TTL),
            absent_workspaces: TtlCache::bounded(TTL, ABSENT_CAPACITY),
            clients: TtlCache::new(TTL),
            absent_clients: TtlCache::bounded(TTL, ABSENT_CAPACITY),
            unavailable_at: Mutex::new(None),
        }
    }
}

impl Records {
    /// The workspace with this slug, its settings parsed (absence is cached too, so unknown
    /// slugs cost no query; a name that cannot be a slug costs neither a query nor an entry).
    ///
    /// # Errors
    /// On a database failure, or a row with a setting out of range.
    pub async fn workspace(
        &self,
        db: &impl ConnectionTrait,
        slug: &str,
    ) -> Result<Option<Arc<Workspace>>, Error> {
        if Slug::parse(slug).is_err() {
            return Ok(None);
        }
        if let Some(hit) = self.workspaces.get(slug) {
            return Ok(Some(hit));
        }
        if self.absent_workspaces.get(slug).is_some() {
            return Ok(None);
        }
        if let Some(last) = self.while_unavailable(&self.workspaces, slug) {
            return Ok(Some(last));
        }
        let found = match workspaces::find(db, slug).await {
            Ok(found) => found.map(Workspace::parse).transpose()?.map(Arc::new),
            Err(e) => return self.last_known(&self.workspaces, slug, e).map(Some),
        };
        self.available();
        remember(
            &self.workspaces,
            &self.absent_workspaces,
            slug,
            found.as_ref(),
        );
        Ok(found)
    }

    /// The client with this client_id, its grants and scopes parsed (absence is cached too; a
    /// name that cannot be a client_id costs neither a query nor an entry).
    ///
    /// # Errors
    /// On a database failure.
    pub async fn client(
        &self,
        db: &impl ConnectionTrait,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, Error> {
        if ClientId::parse(client_id).is_err() {
            return Ok(None);
        }
        if let Some(hit) = self.clients.get(client_id) {
            return Ok(Some(hit));
        }
        if self.absent_clients.get(client_id).is_some() {
            return Ok(None);
        }
        if let Some(last) = self.while_unavailable(&self.clients, client_id) {
            return Ok(Some(last));
        }
        let found = match clients::find(db, client_id).await {
            Ok(found) => found.map(|c| Arc::new(Client::parse(c))),
            Err(e) => return self.last_known(&self.clients, client_id, e).map(Some),
        };
        self.available();
        remember(
            &self.clients,
            &self.absent_clients,
            client_id,
            found.as_ref(),
        );
        Ok(found)
    }

    /// Call after changing a workspace in this process.
    pub(crate) fn forget_workspace(&self, slug: &str) {
        let slug = slug.to_owned();
        self.workspaces.remove(&slug);
        self.absent_workspaces.remove(&slug);
    }

    /// Call after changing or deleting a client in this process.
    pub(crate) fn forget_client(&self, client_id: &str) {
        let client_id = client_id.to_owned();
        self.clients.remove(&client_id);
        self.absent_clients.remove(&client_id);
    }
}

impl Records {
    fn unavailable_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.unavailable_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The last known record for `name`, when a lookup found the database unavailable less
    /// than [`PROBE_EVERY`] ago (then it is not asked again).
    fn while_unavailable<V: Clone>(&self, cache: &TtlCache<String, V>, name: &str) -> Option<V> {
        let away = self
            .unavailable_at()
            .is_some_and(|at| at.elapsed() < PROBE_EVERY);
        away.then(|| cache.get_within(name, LAST_KNOWN_FOR))
            .flatten()
    }

    /// The record last read for `name` when `err` says the database is unavailable (and the
    /// record is recent enough), else `err`. Only records stand in: a name last found absent
    /// is not assumed absent still.
    fn last_known<V: Clone>(
        &self,
        cache: &TtlCache<String, V>,
        name: &str,
        err: Error,
    ) -> Result<V, Error> {
        match err {
            Error::Unavailable(_) => {
                *self.unavailable_at() = Some(Instant::now());
                cache.get_within(name, LAST_KNOWN_FOR).ok_or(err)
            }
            other => Err(other),
        }
    }

    /// A lookup reached the database.
    fn available(&self) {
        *self.unavailable_at() = None;
    }
}

/// Caches what a lookup of `name` found, or that it found nothing.
fn remember<V: Clone>(
    found_cache: &TtlCache<String, V>,
    absent_cache: &TtlCache<String, ()>,
    name: &str,
    found: Option<&V>,
) {
    match found {
        Some(record) => found_cache.insert(name.to_owned(), record.clone()),
        None => absent_cache.insert(name.to_owned(), ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_removed() {
        let cache = TtlCache::new(Duration::from_millis(50));
        cache.insert("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        cache.remove(&"a");
        assert_eq!(cache.get(&"a"), None);
        cache.insert("b", 2);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&"b"), None);
    }

    #[test]
    fn a_full_cache_evicts_and_never_exceeds_its_capacity() {
        let cache = TtlCache::bounded(Duration::from_secs(60), 3);
        for i in 0..100 {
            cache.insert(i, i);
            assert!(cache.len() <= 3, "{} entries after {i}", cache.len());
        }
        // The newest stay, the oldest went.
        assert_eq!(cache.get(&99), Some(99));
        assert_eq!(cache.get(&0), None);
        // Replacing a held key evicts nothing.
        cache.insert(99, 0);
        assert_eq!(cache.get(&98), Some(98));
    }

    #[test]
    fn a_recent_record_stands_in_only_while_the_database_is_unavailable() {
        let records = Records::default();
        let cache = TtlCache::new(Duration::ZERO);
        cache.insert("tv".to_owned(), 1);
        assert_eq!(cache.get("tv"), None, "past its TTL");
        assert_eq!(records.while_unavailable(&cache, "tv"), None, "not yet");
        let unavailable = || {
            Error::from(sea_orm::DbErr::ConnectionAcquire(
                sea_orm::ConnAcquireErr::Timeout,
            ))
        };
        assert_eq!(records.last_known(&cache, "tv", unavailable()).unwrap(), 1);
        assert_eq!(
            records.while_unavailable(&cache, "tv"),
            Some(1),
            "the next lookup does not wait for the database again"
        );
        assert!(matches!(
            records.last_known(&cache, "radio", unavailable()),
            Err(Error::Unavailable(_))
        ));
        assert_eq!(records.while_unavailable(&cache, "radio"), None);
        records.available();
        assert_eq!(records.while_unavailable(&cache, "tv"), None, "back");
        let broken = Error::from(sea_orm::DbErr::Custom("bad row".into()));
        assert!(matches!(
            records.last_known(&cache, "tv", broken),
            Err(Error::Database(_))
        ));
        assert_eq!(cache.get_within("tv", Duration::ZERO), None, "too old");
    }

    #[tokio::test]
    async fn unknown_names_are_remembered_within_a_bound_and_malformed_ones_not_at_all() {
        let (_dir, db) = crate::db::temporary().await;
        let records = Records::default();
        for i in 0..ABSENT_CAPACITY + 200 {
            let name = format!("unknown-{i}");
            assert!(records.client(&db, &name).await.unwrap().is_none());
            assert!(records.workspace(&db, &name).await.unwrap().is_none());
        }
        assert_eq!(records.absent_clients.len(), ABSENT_CAPACITY);
        assert_eq!(records.absent_workspaces.len(), ABSENT_CAPACITY);

        let records = Records::default();
        let long = "x".repeat(129);
        for malformed in ["", "has space", "a/b", "ü", long.as_str()] {
            assert!(records.client(&db, malformed).await.unwrap().is_none());
            assert!(records.workspace(&db, malformed).await.unwrap().is_none());
        }
        assert!(records.absent_clients.is_empty());
        assert!(records.absent_workspaces.is_empty());
        assert!(records.clients.is_empty() && records.workspaces.is_empty());
    }
}
