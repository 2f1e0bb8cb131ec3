//! Recent explicit removals, per map shard: what lets a lookup that went to the
//! external store re-add its answer only if no `remove`/`take` of that id could
//! have been missed by the store's answer (DESIGN.md, "Store answers and
//! concurrent removals").
//!
//! OpenSSL runs its external get callback outside its lock and adds the answer
//! afterwards, so a `SSL_CTX_remove_session` of that id in between is undone:
//! the session comes back. Here every explicit removal is recorded in its id's
//! shard log, under that shard's write lock, whether or not the id was cached,
//! and stays *in flight* until its remove callback has returned. A lookup takes
//! a [`RemovalMark`] before asking the store; its re-add checks the log under
//! the same write lock, in the critical section that links, and is refused if
//! - a removal was in flight when the mark was taken (the store may not have
//!   been told yet), or
//! - a removal recorded since the mark maps to the id's bucket (one of
//!   [`BUCKETS`] per shard, by hash: another id sharing the bucket refuses too).
//!
//! A refusal is always allowed: the session is still returned, just not cached.

use crate::map::ShardW;
use crate::sync::{AtomicU64, Ordering};

/// Hash buckets per shard log: a removal refuses the re-adds of the ids of its
/// bucket only. (Loom models: 4, so that each iteration creates few atomics.)
pub(crate) const BUCKETS: usize = if cfg!(tls_session_cache_loom) { 4 } else { 64 };

/// Where a shard's log stood when a lookup began: taken with no lock held.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RemovalMark {
    /// The looked-up id's map hash.
    pub(crate) hash: u64,
    /// Its shard.
    pub(crate) shard: usize,
    /// The shard's removal count then.
    pub(crate) seen: u64,
    /// Whether a removal of that shard was in flight then (recorded, its
    /// callback not yet returned).
    pub(crate) in_flight: bool,
}

/// One shard's log. `count` and `last` are written only by the holder of the
/// shard's write lock; `in_flight` is also lowered after the lock is released,
/// when a removal's callback returns. `count` and `in_flight` are read with no
/// lock, for a [`RemovalMark`].
#[repr(align(64))]
pub(crate) struct RemovalLog {
    /// Removals recorded so far.
    count: AtomicU64,
    /// Removals recorded whose callbacks have not returned yet.
    in_flight: AtomicU64,
    /// Per bucket: the `count` right after the last removal of an id of that
    /// bucket (0: none yet).
    last: [AtomicU64; BUCKETS],
}

#[inline]
fn bucket(hash: u64) -> usize {
    // The low bits: the shard is chosen by the high ones.
    (hash as usize) % BUCKETS
}

impl RemovalLog {
    pub(crate) fn new() -> Self {
        RemovalLog {
            count: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            last: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// A mark for the id hashed `hash` in this log's shard `shard` (no lock).
    #[inline]
    pub(crate) fn mark(&self, hash: u64, shard: usize) -> RemovalMark {
        // `count` first: a removal counted in `seen` raised `in_flight` before
        // it stored the count (Release; Acquire here), so it is in `in_flight`
        // unless its callback has returned.
        let order = if crate::mutant::MARK_RELAXED {
            Ordering::Relaxed
        } else {
            Ordering::Acquire
        };
        let seen = self.count.load(order);
        let in_flight = self.in_flight.load(order) != 0;
        RemovalMark {
            hash,
            shard,
            seen,
            in_flight,
        }
    }

    /// Records a removal of the id hashed `hash`, in flight until the returned
    /// guard drops (after the removal's callback). `_write_locked` is the
    /// shard's write-locked table (only `with_shard`-style calls hand one out):
    /// the witness that this caller is the log's only writer. That it is this
    /// log's shard is the caller's job.
    #[inline]
    pub(crate) fn record<K, V>(
        &self,
        hash: u64,
        _write_locked: &mut ShardW<'_, K, V>,
    ) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let k = self.count.load(Ordering::Relaxed) + 1;
        self.last[bucket(hash)].store(k, Ordering::Relaxed);
        // Release: a mark that reads `k` also sees the `in_flight` raised above.
        self.count.store(k, Ordering::Release);
        InFlight { log: self }
    }

    /// Whether the re-add of the id `mark` was taken for must be refused: a
    /// removal was in flight at the mark, or one of its bucket was recorded
    /// since. `_write_locked`: the shard's write-locked table (no record runs
    /// meanwhile).
    #[inline]
    pub(crate) fn refuses<K, V>(
        &self,
        mark: &RemovalMark,
        _write_locked: &mut ShardW<'_, K, V>,
    ) -> bool {
        (mark.in_flight && !crate::mutant::STORE_READD_IGNORES_IN_FLIGHT)
            || self.last[bucket(mark.hash)].load(Ordering::Relaxed) > mark.seen
    }
}

/// A recorded removal whose callback has not returned yet; dropping it (also
/// on a panic in the callback) ends it.
#[must_use = "a removal stays in flight until this guard drops"]
pub(crate) struct InFlight<'a> {
    log: &'a RemovalLog,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        // Release: a mark that reads the lowered count was taken after the
        // callback returned.
        self.log.in_flight.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::map::ShardMap;

    /// Runs `f` with a write-locked shard of a scratch map: the witness the
    /// log's writers and checkers take.
    fn locked<R>(f: impl FnOnce(&mut ShardW<'_, Id, u8>) -> R) -> R {
        let map: ShardMap<Id, u8> = ShardMap::new(2);
        map.with_shard(0, f)
    }

    fn record(log: &RemovalLog, hash: u64) {
        locked(|w| drop(log.record(hash, w)));
    }

    fn refuses(log: &RemovalLog, m: &RemovalMark) -> bool {
        locked(|w| log.refuses(m, w))
    }

    #[test]
    fn a_removal_since_the_mark_refuses_and_one_before_it_does_not() {
        let log = RemovalLog::new();
        record(&log, 7);
        let m7 = log.mark(7, 0);
        let m9 = log.mark(9, 0);
        assert!(!refuses(&log, &m7), "removed before the mark");
        record(&log, 9);
        assert!(refuses(&log, &m9));
        assert!(!refuses(&log, &m7), "another bucket");
        // Another id of the same bucket refuses too (the log keeps buckets).
        let m = log.mark(7 + BUCKETS as u64, 0);
        record(&log, 7);
        assert!(refuses(&log, &m));
    }

    #[test]
    fn a_removal_in_flight_at_the_mark_refuses_until_its_callback_returns() {
        let log = RemovalLog::new();
        let map: ShardMap<Id, u8> = ShardMap::new(2);
        let flying = map.with_shard(0, |w| log.record(7, w));
        // Recorded before the mark, but its callback has not returned: the
        // store may still hold the session.
        let m = log.mark(9, 0);
        assert!(m.in_flight);
        assert!(refuses(&log, &m));
        drop(flying);
        let m = log.mark(9, 0);
        assert!(!m.in_flight);
        assert!(!refuses(&log, &m));
    }

    #[test]
    fn many_removals_of_other_buckets_do_not_refuse() {
        let log = RemovalLog::new();
        let m = log.mark(5, 0);
        for h in (0..1000u64).filter(|h| bucket(*h) != bucket(5)) {
            record(&log, h);
        }
        assert!(!refuses(&log, &m));
    }
}
