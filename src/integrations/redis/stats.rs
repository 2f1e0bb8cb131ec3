//! [`RedisStats`]: the second tier's counters.

use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Times the breaker opened (or reopened after a failed probe).
    pub breaker_trips: u64,
    /// Connections made.
    pub connects: u64,
    /// Writes and deletes accepted into the write queue.
    pub queued: u64,
    /// Writes and deletes dropped because the queue was full.
    pub dropped: u64,
    /// Writes and deletes in the queue or being sent now (a gauge).
    pub queue_depth: u64,
    /// Pipelines the background writer sent successfully.
    pub batches: u64,
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
    pub(super) breaker_trips: AtomicU64,
    pub(super) connects: AtomicU64,
    pub(super) queued: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) queue_depth: AtomicU64,
    pub(super) batches: AtomicU64,
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl AtomicStats {
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
            breaker_trips: r(&self.breaker_trips),
            connects: r(&self.connects),
            queued: r(&self.queued),
            dropped: r(&self.dropped),
            queue_depth: r(&self.queue_depth),
            batches: r(&self.batches),
        }
    }
}
