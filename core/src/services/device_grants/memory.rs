//! What this instance knows about device grants being polled, so that a pending poll (RFC 8628
//! §3.5 `authorization_pending`) is answered from memory, without touching the database.
//!
//! Each grant polled here (or started here) has an entry keyed by the HMAC of its device code:
//! when it was last polled, its interval, how often it was polled, and, while it is known to
//! be pending, a snapshot of what a pending poll needs (ids, creation and expiry). The snapshot
//! is only ever dropped, never trusted longer than the grant stays undecided: the store
//! ([`super::store`]) forgets it after every status change it commits, and after every change
//! it reads from another instance.
//!
//! A poll that finds no snapshot reads the grant and installs a snapshot only when nothing was
//! forgotten meanwhile (an epoch counter), so a read that raced a decision can never bring a
//! stale "pending" back.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::entities::device_grant;

/// What a pending poll needs to be answered without the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub grant: Uuid,
    pub workspace_id: Uuid,
    pub client_id: Uuid,
    pub expires_at: i64,
    /// The grant's interval as this instance knows it (grown by its `slow_down`s).
    pub interval: i64,
}

impl Pending {
    #[must_use]
    pub fn of(grant: &device_grant::Model) -> Self {
        Self {
            grant: grant.id,
            workspace_id: grant.workspace_id,
            client_id: grant.client_id,
            expires_at: grant.expires_at,
            interval: grant.interval,
        }
    }
}

/// What this instance knows of a polled device code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Pending, polled by its own client: the poll was recorded.
    Pending(Pending, Rate),
    /// Pending, but another client's or workspace's: nothing recorded.
    Foreign,
    /// Not known to be pending: read the database.
    Unknown,
}

/// Whether a poll respected the grant's interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Ok,
    TooFast,
}

#[derive(Debug)]
struct Entry {
    /// `Some` while the grant is known to be pending.
    pending: Option<Pending>,
    last: Instant,
    stats: Stats,
}

/// How a grant has been polled, as this instance saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub polls: i64,
    pub slow_downs: i64,
    /// The interval in force (grown by 5 s with every `slow_down`).
    pub interval: i64,
}

impl Stats {
    fn of(grant: &device_grant::Model) -> Self {
        Self {
            polls: grant.poll_count,
            slow_downs: grant.slow_downs,
            interval: grant.interval,
        }
    }
}

impl Entry {
    /// Records a poll now; too fast when it comes sooner than `interval` after the last one.
    fn poll(&mut self, interval: i64) -> Rate {
        let now = Instant::now();
        self.stats.interval = self.stats.interval.max(interval);
        let too_fast = now.duration_since(self.last)
            < Duration::from_secs(u64::try_from(self.stats.interval).unwrap_or(0));
        self.last = now;
        self.stats.polls += 1;
        if too_fast { Rate::TooFast } else { Rate::Ok }
    }
}

/// Hashes a map key that is already a keyed hash (the base64url HMAC of a device code): its
/// first eight bytes, mixed, are as good as SipHash over all of it, at a fraction of the cost.
/// Clients cannot aim at buckets: they never see the HMAC key, and only grants the server
/// created are ever inserted.
#[derive(Debug, Default, Clone, Copy)]
struct HmacKeyHasher(u64);

impl Hasher for HmacKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(8) ^ u64::from_le_bytes(word);
    }

    fn finish(&self) -> u64 {
        // Fibonacci hashing spreads the bits over the whole word.
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

type Entries = HashMap<String, Entry, BuildHasherDefault<HmacKeyHasher>>;

/// Per-instance memory of the grants being polled. With several instances behind a load
/// balancer a device could poll each one at the interval: the bound is N× the interval rate.
/// Poll counts, `slow_down`s and the grown interval are written to the grant when it is
/// redeemed.
#[derive(Debug, Default)]
pub struct PollMemory {
    entries: Mutex<Entries>,
    /// Bumped by every forget: a snapshot read before a bump is not installed after it.
    epoch: AtomicU64,
}

impl PollMemory {
    fn with<T>(&self, f: impl FnOnce(&mut Entries) -> T) -> T {
        f(&mut self.entries.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A grant was just started here; the authorization response counts as its first "poll".
    pub fn started(&self, grant: &device_grant::Model) {
        self.with(|m| {
            m.insert(
                grant.device_code_hash.clone(),
                Entry {
                    pending: Some(Pending::of(grant)),
                    last: Instant::now(),
                    stats: Stats::of(grant),
                },
            );
        });
    }

    /// Records a poll of a grant known to be pending by the client `client_id` of workspace
    /// `workspace_id`, and says whether it came too fast. [`Known::Unknown`] when this instance
    /// does not know the grant to be pending: read it, then [`Self::polled`].
    pub fn poll_pending(&self, hash: &str, workspace_id: Uuid, client_id: Uuid) -> Known {
        self.with(|m| {
            let Some((entry, pending)) = m.get_mut(hash).and_then(|e| e.pending.map(|p| (e, p)))
            else {
                return Known::Unknown;
            };
            if pending.workspace_id != workspace_id || pending.client_id != client_id {
                return Known::Foreign;
            }
            let rate = entry.poll(pending.interval);
            Known::Pending(pending, rate)
        })
    }

    /// The current epoch, to be taken before reading a grant from the database.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Records a poll of a grant read from the database at `epoch`, and says whether it came
    /// too fast. A pending grant's snapshot is kept for the next polls unless a decision was
    /// forgotten since `epoch`. A grant started on another instance is measured from its
    /// creation second, rounded in the device's favour.
    pub fn polled(&self, grant: &device_grant::Model, pending: bool, epoch: u64) -> Rate {
        self.with(|m| {
            let entry = m.entry(grant.device_code_hash.clone()).or_insert_with(|| {
                let age = u64::try_from(crate::now() - grant.created_at).unwrap_or(0);
                let now = Instant::now();
                Entry {
                    pending: None,
                    last: now.checked_sub(Duration::from_secs(age)).unwrap_or(now),
                    stats: Stats::of(grant),
                }
            });
            let rate = entry.poll(grant.interval);
            // Read under the map's lock, which every forget takes after bumping the epoch.
            if pending && self.epoch.load(Ordering::Acquire) == epoch {
                entry.pending = Some(Pending {
                    interval: entry.stats.interval,
                    ..Pending::of(grant)
                });
            }
            rate
        })
    }

    /// Answers a too-fast poll with `slow_down`: the grant's interval grows by `step` seconds
    /// from now on (RFC 8628 §3.5). Returns the new interval and the count of `slow_down`s.
    /// Memory only, like every poll: a device hammering the endpoint costs no database write.
    pub fn slow_down(&self, hash: &str, step: i64) -> Option<Stats> {
        self.with(|m| {
            let e = m.get_mut(hash)?;
            e.stats.interval += step;
            e.stats.slow_downs += 1;
            if let Some(p) = e.pending.as_mut() {
                p.interval = e.stats.interval;
            }
            Some(e.stats)
        })
    }

    /// How the grant was polled here, when this instance has seen it.
    #[must_use]
    pub fn stats(&self, hash: &str) -> Option<Stats> {
        self.with(|m| m.get(hash).map(|e| e.stats))
    }

    /// The grant may no longer be pending: its next poll reads the database.
    pub fn forget(&self, hash: &str) {
        self.forget_all(std::iter::once(hash));
    }

    pub fn forget_all<'a>(&self, hashes: impl IntoIterator<Item = &'a str>) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.with(|m| {
            for hash in hashes {
                if let Some(e) = m.get_mut(hash) {
                    e.pending = None;
                }
            }
        });
    }

    /// The grant has ended (redeemed, denied or expired): nothing more to remember.
    pub fn finished(&self, hash: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.with(|m| {
            m.remove(hash);
        });
    }

    /// Forgets grants past their expiry or not polled for `max_age`, so abandoned requests do
    /// not accumulate.
    pub fn purge(&self, max_age: Duration) {
        let now = Instant::now();
        let unix = crate::now();
        self.with(|m| {
            m.retain(|_, e| {
                now.duration_since(e.last) < max_age
                    && e.pending.is_none_or(|p| p.expires_at > unix)
            });
        });
    }

    /// Every pending snapshot may be stale (a change was missed): the next poll of each grant
    /// reads the database.
    pub fn forget_every_pending(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.with(|m| {
            for e in m.values_mut() {
                e.pending = None;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(hash: &str, interval: i64) -> device_grant::Model {
        let now = crate::now();
        device_grant::Model {
            id: Uuid::now_v7(),
            workspace_id: Uuid::now_v7(),
            client_id: Uuid::now_v7(),
            device_code_hash: hash.into(),
            user_code_hash: None,
            scopes: String::new(),
            status: device_grant::Status::Pending,
            interval,
            created_at: now,
            expires_at: now + 600,
            user_id: None,
            auth_time: None,
            decided_at: None,
            consumed_at: None,
            created_ip: None,
            user_agent: None,
            approved_ip: None,
            poll_count: 0,
            slow_downs: 0,
        }
    }

    /// A poll by the grant's own client.
    fn poll(tracker: &PollMemory, g: &device_grant::Model) -> Option<(Pending, Rate)> {
        match tracker.poll_pending(&g.device_code_hash, g.workspace_id, g.client_id) {
            Known::Pending(p, rate) => Some((p, rate)),
            Known::Foreign => panic!("the grant's own client is not foreign"),
            Known::Unknown => None,
        }
    }

    #[test]
    fn a_started_grant_is_answered_from_memory_until_forgotten() {
        let tracker = PollMemory::default();
        let g = grant("h1", 0);
        tracker.started(&g);
        let (pending, rate) = poll(&tracker, &g).expect("known pending");
        assert_eq!((pending.grant, rate), (g.id, Rate::Ok));
        tracker.forget("h1");
        assert!(poll(&tracker, &g).is_none());
        assert_eq!(
            tracker.stats("h1").map(|s| s.polls),
            Some(1),
            "the poll count survives a forget"
        );
    }

    #[test]
    fn another_clients_poll_is_foreign_and_not_counted() {
        let tracker = PollMemory::default();
        let g = grant("h0", 0);
        tracker.started(&g);
        let other = Uuid::now_v7();
        assert_eq!(
            tracker.poll_pending("h0", g.workspace_id, other),
            Known::Foreign
        );
        assert_eq!(
            tracker.poll_pending("h0", other, g.client_id),
            Known::Foreign
        );
        assert_eq!(tracker.stats("h0").map(|s| s.polls), Some(0));
    }

    #[test]
    fn a_read_that_raced_a_decision_installs_no_snapshot() {
        let tracker = PollMemory::default();
        let g = grant("h2", 0);
        let before = tracker.epoch();
        tracker.forget("h2"); // a decision lands while the poll reads the database
        tracker.polled(&g, true, before);
        assert!(poll(&tracker, &g).is_none());
        // The next read, after the decision, installs it again if it is still pending.
        let now = tracker.epoch();
        tracker.polled(&g, true, now);
        assert!(poll(&tracker, &g).is_some());
    }

    #[test]
    fn polls_sooner_than_the_interval_are_too_fast_and_slow_down_sticks() {
        let tracker = PollMemory::default();
        let g = grant("h3", 5);
        tracker.started(&g);
        assert_eq!(poll(&tracker, &g).map(|p| p.1), Some(Rate::TooFast));
        let stats = tracker.slow_down("h3", 5).expect("known");
        assert_eq!((stats.interval, stats.slow_downs, stats.polls), (10, 1, 1));
        let (pending, _) = poll(&tracker, &g).expect("still pending");
        assert_eq!(pending.interval, 10);
    }

    #[test]
    fn forgetting_every_pending_grant_keeps_their_counts() {
        let tracker = PollMemory::default();
        let g = grant("h4", 0);
        tracker.started(&g);
        poll(&tracker, &g).expect("known pending");
        let epoch = tracker.epoch();
        tracker.forget_every_pending();
        assert!(poll(&tracker, &g).is_none());
        assert_ne!(tracker.epoch(), epoch, "a read racing it installs nothing");
        assert_eq!(tracker.stats("h4").map(|s| s.polls), Some(1));
    }

    #[test]
    fn purge_drops_expired_and_idle_grants() {
        let tracker = PollMemory::default();
        let mut expired = grant("h5", 0);
        expired.expires_at = crate::now() - 1;
        tracker.started(&expired);
        let live = grant("h6", 0);
        tracker.started(&live);
        tracker.purge(Duration::from_secs(60));
        assert!(poll(&tracker, &expired).is_none());
        assert!(poll(&tracker, &live).is_some());
        tracker.purge(Duration::ZERO);
        assert_eq!(tracker.stats("h6"), None);
        assert!(poll(&tracker, &live).is_none());
    }
}
