//! [`RedisStats`]: the second tier's counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in microseconds, of the lookup-latency buckets of
/// [`RedisStats::lookup_us_buckets`]; its last element counts the lookups slower
/// than the last bound.
pub const LOOKUP_BUCKETS_US: [u64; 8] = [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000];

/// The second tier's counters (a snapshot; exact once quiescent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RedisStats {
    /// Lookups (`GET` or `GETDEL`) that returned a valid session.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Values found but refused: expired, another sid_ctx or id, undecodable, or
    /// failing decryption (wrong key, tampering). Each is a miss to the caller.
    pub rejected: u64,
    /// Sessions written (`SET` acknowledged by Redis, sent by the writer).
    pub writes: u64,
    /// Deletes acknowledged by Redis (`DEL`, sent by the writer).
    pub deletes: u64,
    /// Calls that failed other than by timing out (connection refused or reset,
    /// protocol or server errors).
    pub errors: u64,
    /// Calls that failed by timing out (connect, read or write).
    pub timeouts: u64,
    /// Calls not made because the circuit breaker was open.
    pub skipped: u64,
    /// Lookups (`fetch`, `take`, the cache's get callback) answered as a miss
    /// without asking Redis, because this store's `DEL` of that id was still
    /// queued or being sent: Redis may still hold the session, and a removed
    /// session must not be answered (the `SessionStore` contract).
    pub pending_delete_misses: u64,
    /// Times the breaker opened (or reopened after a failed probe).
    pub breaker_trips: u64,
    /// Connections made.
    pub connects: u64,
    /// Writes and deletes accepted into the write queue.
    pub queued: u64,
    /// Writes and deletes dropped because the queue was full (a write also when
    /// a delete that found the queue full took its place).
    pub dropped: u64,
    /// Writes and deletes in the queue or being sent now (a gauge).
    pub queue_depth: u64,
    /// Pipelines the background writer sent successfully.
    pub batches: u64,
    /// Lookups (`fetch`, `take`, also those the open breaker skipped and the
    /// pending-delete misses) by how long
    /// the caller waited: element `i` counts those that took more than
    /// `LOOKUP_BUCKETS_US[i - 1]` and at most [`LOOKUP_BUCKETS_US`]`[i]`
    /// microseconds; the last element those slower than 25 ms. Not cumulative.
    pub lookup_us_buckets: [u64; 9],
    /// The sum of those lookups' durations, in microseconds.
    pub lookup_us_sum: u64,
}

impl RedisStats {
    /// The number of timed lookups (the sum of
    /// [`lookup_us_buckets`](Self::lookup_us_buckets)).
    pub fn lookups(&self) -> u64 {
        self.lookup_us_buckets.iter().sum()
    }

    /// Both snapshots' counters added (e.g. a fleet's servers in one table).
    #[must_use]
    pub fn plus(&self, o: &RedisStats) -> RedisStats {
        let mut buckets = self.lookup_us_buckets;
        for (b, x) in buckets.iter_mut().zip(o.lookup_us_buckets) {
            *b += x;
        }
        RedisStats {
            hits: self.hits + o.hits,
            misses: self.misses + o.misses,
            rejected: self.rejected + o.rejected,
            writes: self.writes + o.writes,
            deletes: self.deletes + o.deletes,
            errors: self.errors + o.errors,
            timeouts: self.timeouts + o.timeouts,
            skipped: self.skipped + o.skipped,
            pending_delete_misses: self.pending_delete_misses + o.pending_delete_misses,
            breaker_trips: self.breaker_trips + o.breaker_trips,
            connects: self.connects + o.connects,
            queued: self.queued + o.queued,
            dropped: self.dropped + o.dropped,
            queue_depth: self.queue_depth + o.queue_depth,
            batches: self.batches + o.batches,
            lookup_us_buckets: buckets,
            lookup_us_sum: self.lookup_us_sum + o.lookup_us_sum,
        }
    }
}

#[derive(Default)]
pub(super) struct AtomicStats {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) writes: AtomicU64,
    pub(super) deletes: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) pending_delete_misses: AtomicU64,
    pub(super) breaker_trips: AtomicU64,
    pub(super) connects: AtomicU64,
    pub(super) queued: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) queue_depth: AtomicU64,
    pub(super) batches: AtomicU64,
    pub(super) lookup_us_buckets: [AtomicU64; 9],
    pub(super) lookup_us_sum: AtomicU64,
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl AtomicStats {
    /// Counts one lookup that kept its caller waiting `d`.
    pub(super) fn record_lookup(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LOOKUP_BUCKETS_US.partition_point(|&b| b < us);
        bump(&self.lookup_us_buckets[i]);
        self.lookup_us_sum.fetch_add(us, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> RedisStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisStats {
            hits: r(&self.hits),
            misses: r(&self.misses),
            rejected: r(&self.rejected),
            writes: r(&self.writes),
            deletes: r(&self.deletes),
            errors: r(&self.errors),
            timeouts: r(&self.timeouts),
            skipped: r(&self.skipped),
            pending_delete_misses: r(&self.pending_delete_misses),
            breaker_trips: r(&self.breaker_trips),
            connects: r(&self.connects),
            queued: r(&self.queued),
            dropped: r(&self.dropped),
            queue_depth: r(&self.queue_depth),
            batches: r(&self.batches),
            lookup_us_buckets: std::array::from_fn(|i| r(&self.lookup_us_buckets[i])),
            lookup_us_sum: r(&self.lookup_us_sum),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_land_in_their_bucket() {
        let s = AtomicStats::default();
        for us in [0, 100, 101, 999, 1_000, 4_000, 25_000, 25_001, 1_000_000] {
            s.record_lookup(Duration::from_micros(us));
        }
        let snap = s.snapshot();
        // <=100: 0, 100 | <=250: 101 | <=1000: 999, 1000 | <=5000: 4000 |
        // <=25000: 25000 | slower: 25001, 1 s
        assert_eq!(snap.lookup_us_buckets, [2, 1, 0, 2, 0, 1, 0, 1, 2]);
        assert_eq!(snap.lookups(), 9);
        assert_eq!(
            snap.lookup_us_sum,
            100 + 101 + 999 + 1_000 + 4_000 + 25_000 + 25_001 + 1_000_000
        );
        let twice = snap.plus(&snap);
        assert_eq!(twice.lookups(), 18);
        assert_eq!(twice.lookup_us_sum, 2 * snap.lookup_us_sum);
    }
}
