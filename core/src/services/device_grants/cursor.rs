//! How far this instance has read the log of device-grant changes, including the ids below
//! that point it has not seen yet ("holes").
//!
//! Ids come from an auto-increment key. SQLite serialises writers, so its ids commit in order;
//! PostgreSQL hands sequence values out when rows are inserted, so a transaction holding id 5
//! may commit after one holding id 6 (or roll back and never commit). Reading "id > last" alone
//! would skip such a 5 forever; instead every id jumped over is a hole that is asked for again
//! on each read until it shows up or [`HOLE_PATIENCE`] has passed on this instance's monotonic
//! clock, after which it is taken for rolled back and given up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long an id jumped over is asked for again. The change row is the last statement of its
/// transaction, so only a commit slower than this (or a rollback) outlasts it.
pub const HOLE_PATIENCE: Duration = Duration::from_secs(60);
/// The most holes followed at once; beyond that the oldest are given up at once (it only
/// happens when the reader fell far behind, e.g. past pruned rows).
pub const MAX_HOLES: usize = 512;

/// The position of one reader in the change log.
#[derive(Debug, Default)]
pub struct Cursor {
    /// The highest id seen; `None` before the first read.
    last: Option<i64>,
    /// Ids below `last` not seen yet, with when to stop asking for them.
    holes: BTreeMap<i64, Instant>,
    /// Holes dropped since the last [`Self::expire`] because there were too many.
    overflowed: usize,
}

impl Cursor {
    /// Starts reading after `id` (when the reader first looks at the log).
    pub fn start_after(&mut self, id: i64) {
        if self.last.is_none() {
            self.last = Some(id);
        }
    }

    /// What to read next: ids above the first value, and the holes; `None` before
    /// [`Self::start_after`].
    #[must_use]
    pub fn wanted(&self) -> Option<(i64, Vec<i64>)> {
        self.last
            .map(|last| (last, self.holes.keys().copied().collect()))
    }

    /// Takes in one id read from the log (in ascending order within a read); `true` when it is
    /// new to this reader. Ids jumped over become holes.
    pub fn observe(&mut self, id: i64, now: Instant) -> bool {
        let Some(last) = self.last else {
            self.last = Some(id);
            return true;
        };
        if id <= last {
            return self.holes.remove(&id).is_some();
        }
        let span = usize::try_from(id - last - 1).unwrap_or(usize::MAX);
        let first = if span > MAX_HOLES {
            self.overflowed += span - MAX_HOLES;
            id - i64::try_from(MAX_HOLES).unwrap_or(i64::MAX)
        } else {
            last + 1
        };
        let deadline = now + HOLE_PATIENCE;
        self.holes.extend((first..id).map(|hole| (hole, deadline)));
        while self.holes.len() > MAX_HOLES {
            self.holes.pop_first();
            self.overflowed += 1;
        }
        self.last = Some(id);
        true
    }

    /// Gives up the holes whose patience ran out at `now` (and those dropped for being too
    /// many); returns how many. A given-up change may still commit, unseen.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.holes.len();
        self.holes.retain(|_, deadline| *deadline > now);
        before - self.holes.len() + std::mem::take(&mut self.overflowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(cursor: &mut Cursor, ids: &[i64], now: Instant) -> Vec<i64> {
        ids.iter()
            .copied()
            .filter(|id| cursor.observe(*id, now))
            .collect()
    }

    #[test]
    fn ids_are_new_once_and_the_cursor_moves_up() {
        let mut cursor = Cursor::default();
        assert_eq!(cursor.wanted(), None);
        cursor.start_after(3);
        let now = Instant::now();
        assert_eq!(read(&mut cursor, &[4, 5], now), [4, 5]);
        assert_eq!(read(&mut cursor, &[4, 5], now), Vec::<i64>::new());
        assert_eq!(cursor.wanted(), Some((5, vec![])));
    }

    #[test]
    fn an_id_committed_out_of_order_is_not_skipped() {
        let mut cursor = Cursor::default();
        cursor.start_after(4);
        let now = Instant::now();
        // The transaction holding 5 commits after the one holding 6.
        assert_eq!(read(&mut cursor, &[6], now), [6]);
        assert_eq!(cursor.wanted(), Some((6, vec![5])));
        assert_eq!(cursor.expire(now + Duration::from_secs(1)), 0);
        assert_eq!(read(&mut cursor, &[5, 7], now), [5, 7]);
        assert_eq!(cursor.wanted(), Some((7, vec![])));
    }

    #[test]
    fn a_rolled_back_id_is_given_up_after_the_patience() {
        let mut cursor = Cursor::default();
        cursor.start_after(0);
        let now = Instant::now();
        read(&mut cursor, &[1, 3], now);
        assert_eq!(cursor.wanted(), Some((3, vec![2])));
        assert_eq!(
            cursor.expire(now + HOLE_PATIENCE - Duration::from_millis(1)),
            0
        );
        assert_eq!(cursor.expire(now + HOLE_PATIENCE), 1);
        assert_eq!(cursor.wanted(), Some((3, vec![])));
        assert_eq!(
            read(&mut cursor, &[2], now + HOLE_PATIENCE),
            Vec::<i64>::new(),
            "a given-up id is not taken in later"
        );
    }

    #[test]
    fn holes_are_bounded_and_the_excess_counts_as_given_up() {
        let mut cursor = Cursor::default();
        cursor.start_after(0);
        let now = Instant::now();
        let far = i64::try_from(MAX_HOLES).unwrap() + 101;
        assert_eq!(read(&mut cursor, &[far], now), [far]);
        let (last, holes) = cursor.wanted().unwrap();
        assert_eq!((last, holes.len()), (far, MAX_HOLES));
        assert_eq!(holes.first(), Some(&101), "the highest holes are kept");
        assert_eq!(cursor.expire(now), 100);
        assert_eq!(cursor.expire(now), 0);
    }
}
