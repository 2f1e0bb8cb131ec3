//! Statistics, kept in per-thread counters so they never become one contended
//! line and cost no locked instruction on the hot path.

use crate::sync::{AtomicU64, Ordering};

/// A snapshot of the cache's counters (OpenSSL's `SSL_CTX_sess_*` and more).
///
/// Each counter is exact once the cache is quiescent; a snapshot taken while other
/// threads work may combine counts from slightly different instants. Once
/// quiescent, `len == adds - removes - takes - cache_full - expired - flushed`
/// (every linked session was added once and unlinked at most once).
///
/// Removals by cause: explicit ([`removes`](Self::removes),
/// [`takes`](Self::takes)), capacity ([`cache_full`](Self::cache_full)) and expiry
/// ([`expired`](Self::expired) met by lookups, [`flushed`](Self::flushed) by
/// `flush`), the same causes the store's remove callback is told
/// ([`RemovalCause`](crate::RemovalCause)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Lookups that returned a session (`SSL_CTX_sess_hits`).
    pub hits: u64,
    /// Internal lookups that found nothing (`SSL_CTX_sess_misses`); lookups with an
    /// invalid id length count here too.
    pub misses: u64,
    /// Lookups that found an expired session (`SSL_CTX_sess_timeouts`).
    pub timeouts: u64,
    /// Sessions evicted to make room (`SSL_CTX_sess_cache_full`).
    pub cache_full: u64,
    /// Lookups answered by the store's get callback (`SSL_CTX_sess_cb_hits`).
    pub cb_hits: u64,
    /// Sessions held when the snapshot was taken (`SSL_CTX_sess_number`).
    pub len: u64,
    /// The size limit when the snapshot was taken (0 = unlimited).
    pub capacity: u64,
    /// Adds that linked a new id (the identical-object no-op and replaces are not
    /// counted here).
    pub adds: u64,
    /// Adds that replaced a different object cached under the same id.
    pub replaces: u64,
    /// Sessions removed by `remove` / `remove_if_same` (only those that were
    /// cached).
    pub removes: u64,
    /// Sessions removed by `take` (single use).
    pub takes: u64,
    /// Expired sessions a lookup met and removed.
    pub expired: u64,
    /// Sessions `flush` removed (including the auto-flush every 256 handshakes).
    pub flushed: u64,
    /// Store answers (counted in [`cb_hits`](Self::cb_hits)) not added to the
    /// cache because an explicit removal of their id may have raced them: one
    /// recorded in the id's shard (and hash bucket) since the lookup began, or
    /// one of that shard still in its remove callback then. Not in OpenSSL. A
    /// high rate means removals (explicit ones, or expired sessions met by
    /// lookups) often overlap store lookups in the same shard, or remove
    /// callbacks are slow: store answers are then rarely cached, and lookups
    /// keep going to the store.
    pub readds_refused: u64,
}

impl Stats {
    /// Sessions removed by the cache's own housekeeping: evicted for capacity
    /// plus removed at expiry (`cache_full + expired + flushed`).
    pub fn evictions(&self) -> u64 {
        self.cache_full
            .wrapping_add(self.expired)
            .wrapping_add(self.flushed)
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Counter {
    Hits = 0,
    Misses = 1,
    Timeouts = 2,
    CacheFull = 3,
    CbHits = 4,
    /// Calls of `update_cache` (drives the auto-flush every 256).
    Handshakes = 5,
    Adds = 6,
    Replaces = 7,
    Removes = 8,
    Takes = 9,
    Expired = 10,
    Flushed = 11,
    ReaddsRefused = 12,
}

const COUNTERS: usize = 13;

#[repr(align(128))]
struct Stripe([AtomicU64; COUNTERS]);

impl Stripe {
    fn new() -> Self {
        Stripe(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// Per-thread counters: stripe `i` is written only by the live thread whose
/// stripe index is `i` (a plain load and store, no locked instruction); threads
/// with larger indices (more live threads than stripes) and a thread being torn
/// down add to the shared stripe `overflow` with a read-modify-write.
pub(crate) struct Counters {
    stripes: Box<[Stripe]>,
    overflow: Stripe,
}

impl Counters {
    pub(crate) fn new() -> Self {
        #[cfg(not(tls_session_cache_loom))]
        // Four stripes per core: more live threads than that share `overflow`.
        let n = (crate::sync::cores() * 4).clamp(8, 256);
        #[cfg(tls_session_cache_loom)]
        let n = 0;
        Counters {
            stripes: (0..n).map(|_| Stripe::new()).collect(),
            overflow: Stripe::new(),
        }
    }

    /// Adds one; returns this thread's stripe's new value.
    #[inline]
    pub(crate) fn bump(&self, c: Counter) -> u64 {
        if crate::sync::EXCLUSIVE_STRIPES {
            if let Some(stripe) = crate::sync::thread_stripe().and_then(|i| self.stripes.get(i)) {
                let a = &stripe.0[c as usize];
                // The only writer of this stripe: no read-modify-write needed.
                let v = a.load(Ordering::Relaxed).wrapping_add(1);
                a.store(v, Ordering::Relaxed);
                return v;
            }
        }
        self.bump_shared(c)
    }

    #[cold]
    fn bump_shared(&self, c: Counter) -> u64 {
        self.overflow.0[c as usize].fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn sum(&self, c: Counter) -> u64 {
        self.stripes
            .iter()
            .chain(std::iter::once(&self.overflow))
            .map(|s| s.0[c as usize].load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            hits: self.sum(Counter::Hits),
            misses: self.sum(Counter::Misses),
            timeouts: self.sum(Counter::Timeouts),
            cache_full: self.sum(Counter::CacheFull),
            cb_hits: self.sum(Counter::CbHits),
            len: 0,
            capacity: 0,
            adds: self.sum(Counter::Adds),
            replaces: self.sum(Counter::Replaces),
            removes: self.sum(Counter::Removes),
            takes: self.sum(Counter::Takes),
            expired: self.sum(Counter::Expired),
            flushed: self.sum(Counter::Flushed),
            readds_refused: self.sum(Counter::ReaddsRefused),
        }
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_over_threads() {
        let c = std::sync::Arc::new(Counters::new());
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.bump(Counter::Hits);
                    }
                    c.bump(Counter::CbHits);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let s = c.snapshot();
        assert_eq!(s.hits, 4000);
        // More threads over time than stripes: indices are reused, counts exact.
        for _ in 0..600 {
            let c = c.clone();
            std::thread::spawn(move || c.bump(Counter::Misses))
                .join()
                .unwrap();
        }
        let s = c.snapshot();
        assert_eq!(s.misses, 600);
        assert_eq!(s.cb_hits, 4);
    }
}
