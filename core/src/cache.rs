//! Short-lived read caches for the hot paths (polling looks up its workspace and client on
//! every request). Entries live [`TTL`] at most, so a change made by another instance, the CLI
//! or the console is seen within that time; changes made in this process invalidate at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;

use crate::error::Error;
use crate::records::{Client, Workspace};
use crate::services::{clients, workspaces};

/// How long a cached record is trusted (SPEC §1: changes take effect within 5 seconds).
pub const TTL: Duration = Duration::from_secs(4);

/// A map whose entries expire.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
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

    pub fn insert(&self, key: K, value: V) {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // Bounded: expired entries go whenever the map grows large.
        if map.len() >= 10_000 {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
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
}

/// The records the protocol endpoints read on every request.
#[derive(Debug)]
pub struct Records {
    workspaces: TtlCache<String, Option<Arc<Workspace>>>,
    clients: TtlCache<String, Option<Arc<Client>>>,
}

impl Default for Records {
    fn default() -> Self {
        Self {
            workspaces: TtlCache::new(TTL),
            clients: TtlCache::new(TTL),
        }
    }
}

impl Records {
    /// The workspace with this slug, its settings parsed (absence is cached too, so unknown
    /// slugs cost no query).
    ///
    /// # Errors
    /// On a database failure, or a row with a setting out of range.
    pub async fn workspace(
        &self,
        db: &impl ConnectionTrait,
        slug: &str,
    ) -> Result<Option<Arc<Workspace>>, Error> {
        if let Some(hit) = self.workspaces.get(slug) {
            return Ok(hit);
        }
        let found = workspaces::find(db, slug)
            .await?
            .map(Workspace::parse)
            .transpose()?
            .map(Arc::new);
        self.workspaces.insert(slug.to_owned(), found.clone());
        Ok(found)
    }

    /// The client with this client_id, its grants and scopes parsed.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn client(
        &self,
        db: &impl ConnectionTrait,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, Error> {
        if let Some(hit) = self.clients.get(client_id) {
            return Ok(hit);
        }
        let found = clients::find(db, client_id)
            .await?
            .map(|c| Arc::new(Client::parse(c)));
        self.clients.insert(client_id.to_owned(), found.clone());
        Ok(found)
    }

    /// Call after changing a workspace in this process.
    pub(crate) fn forget_workspace(&self, slug: &str) {
        self.workspaces.remove(&slug.to_owned());
    }

    /// Call after changing or deleting a client in this process.
    pub(crate) fn forget_client(&self, client_id: &str) {
        self.clients.remove(&client_id.to_owned());
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
}
