//! Recent explicit removals, per map shard: what lets a lookup that went to the
//! external store re-add its answer only if no `remove`/`take` of that id ran
//! since the lookup began (DESIGN.md, "Store answers and concurrent removals").
//!
//! OpenSSL runs its external get callback outside its lock and adds the answer
//! afterwards, so a `SSL_CTX_remove_session` of that id in between is undone:
//! the session comes back. Here every explicit removal records its id's hash in
//! its shard's log, under that shard's write lock, whether or not the id was
//! cached; the re-add checks the log under the same lock, in the critical
//! section that links. A log keeps the last [`DEPTH`] removals of its shard: a
//! lookup that saw more than that many go by refuses its re-add (it cannot tell),
//! which is always allowed (the session is still returned, just not cached).

use crate::sync::{AtomicU64, Ordering};

/// Removals remembered per shard.
pub(crate) const DEPTH: u64 = 8;

/// Where a shard's log stood when a lookup began: taken with no lock held.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RemovalMark {
    /// The looked-up id's map hash.
    pub(crate) hash: u64,
    /// Its shard.
    pub(crate) shard: usize,
    /// The shard's removal count then.
    pub(crate) seen: u64,
}

/// One shard's log. Written only under the shard's write lock; `count` is
/// also read with no lock, for a [`RemovalMark`]. Aligned so that two shards'
/// logs never share a cache line.
#[repr(align(64))]
pub(crate) struct RemovalLog {
    /// Removals recorded so far; the `k`-th (from 0) is in `hashes[k % DEPTH]`.
    count: AtomicU64,
    hashes: [AtomicU64; DEPTH as usize],
}

impl RemovalLog {
    pub(crate) fn new() -> Self {
        RemovalLog {
            count: AtomicU64::new(0),
            hashes: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The log's position now (no lock needed). A stale (smaller) value only
    /// makes a later check more cautious.
    #[inline]
    pub(crate) fn position(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Records a removal of the id hashed `hash`.
    ///
    /// # Safety
    /// The caller holds this log's shard's write lock (the only writer).
    #[inline]
    pub(crate) unsafe fn record(&self, hash: u64) {
        let k = self.count.load(Ordering::Relaxed);
        self.hashes[(k % DEPTH) as usize].store(hash, Ordering::Relaxed);
        // Release: a mark that sees `k + 1` sees this removal's hash.
        self.count.store(k + 1, Ordering::Release);
    }

    /// Whether an id hashed `hash` may have been removed since `seen`: one of
    /// the removals since has that hash, or too many went by to tell.
    ///
    /// # Safety
    /// The caller holds this log's shard's lock (read or write: no record runs
    /// meanwhile).
    #[inline]
    pub(crate) unsafe fn removed_since(&self, seen: u64, hash: u64) -> bool {
        let now = self.count.load(Ordering::Acquire);
        let since = now.wrapping_sub(seen);
        if since > DEPTH {
            return true;
        }
        (seen..now).any(|k| self.hashes[(k % DEPTH) as usize].load(Ordering::Relaxed) == hash)
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_removal_since_the_mark_is_seen_and_one_before_it_is_not() {
        let log = RemovalLog::new();
        // SAFETY (all blocks): single-threaded test, nothing else touches `log`.
        unsafe { log.record(7) };
        let seen = log.position();
        assert!(
            !unsafe { log.removed_since(seen, 7) },
            "removed before the mark"
        );
        unsafe { log.record(9) };
        assert!(unsafe { log.removed_since(seen, 9) });
        assert!(!unsafe { log.removed_since(seen, 7) });
    }

    #[test]
    fn more_removals_than_the_log_holds_refuse_any_hash() {
        let log = RemovalLog::new();
        let seen = log.position();
        for h in 0..DEPTH {
            unsafe { log.record(100 + h) };
        }
        assert!(
            !unsafe { log.removed_since(seen, 7) },
            "exactly DEPTH: still known"
        );
        assert!(unsafe { log.removed_since(seen, 100) });
        unsafe { log.record(200) };
        assert!(
            unsafe { log.removed_since(seen, 7) },
            "DEPTH + 1: cannot tell"
        );
        // A later mark knows again.
        let seen = log.position();
        assert!(!unsafe { log.removed_since(seen, 7) });
    }
}
