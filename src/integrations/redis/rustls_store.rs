//! [`RedisRustlsStore`]: rustls's `StoresServerSessions` over a local cache and a
//! [`RedisStore`].

use super::queue::Withdrawn;
use super::record::SecretCodec;
use super::{Lookup, RedisStore};
use crate::integrations::rustls::Secret;
use crate::stats::{Counter, Counters};
use crate::{Clock, RustlsStore, SessionCache, Stats};
use std::fmt;
use std::sync::Arc;

/// A [`RustlsStore`] with a [`RedisStore`] second tier, as rustls's
/// `StoresServerSessions`.
///
/// - `put` stores locally and in Redis (the cache's new-session callback);
/// - `get` (TLS 1.2 session ids) looks locally, then in Redis (the cache's get
///   callback; a hit is added locally and counts `cb_hits`);
/// - `take` (TLS 1.3 tickets) is decided by Redis: a `GETDEL` that returns the
///   ticket wins it (and any local copy is dropped); one that finds nothing means
///   the ticket was used elsewhere (or never shared), so the local copy is dropped
///   too and it is a miss. Only when Redis is unavailable does the local tier
///   decide alone (a ticket stays single-use per server, not fleet-wide, then).
///
/// The local tier's removals (evictions, expiries) are not sent to Redis: the
/// shared tier keeps its sessions until their TTL.
pub struct RedisRustlsStore {
    local: Arc<RustlsStore>,
    redis: Arc<RedisStore<Secret, SecretCodec>>,
    takes: Counters,
}

/// A [`Clock`] shared through an `Arc`.
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> u64 {
        self.0.now()
    }
}

impl RedisRustlsStore {
    /// A local cache of `capacity` sessions (0 = unlimited) with `redis`'s session
    /// timeout and clock, backed by `redis`.
    pub fn new(capacity: usize, redis: Arc<RedisStore<Secret, SecretCodec>>) -> Arc<Self> {
        let cache = SessionCache::builder()
            .capacity(capacity)
            .timeout(redis.config().session_timeout)
            .clock(SharedClock(Arc::clone(&redis.config().clock)))
            .store(Arc::clone(&redis))
            .build();
        Self::with_cache(cache, redis)
    }

    /// Over a cache configured by the caller, which must have `redis` as its store
    /// (`builder.store(Arc::clone(&redis))`) and the same timeout and clock.
    pub fn with_cache(
        cache: SessionCache<Secret>,
        redis: Arc<RedisStore<Secret, SecretCodec>>,
    ) -> Arc<Self> {
        Arc::new(RedisRustlsStore {
            local: RustlsStore::with_cache(cache),
            redis,
            takes: Counters::new(),
        })
    }

    /// The local tier.
    pub fn local(&self) -> &Arc<RustlsStore> {
        &self.local
    }

    /// The second tier.
    pub fn redis(&self) -> &Arc<RedisStore<Secret, SecretCodec>> {
        &self.redis
    }

    /// The local tier's statistics plus the takes decided by Redis (a won ticket
    /// counts a hit, a lost or absent one a miss). `cb_hits` counts TLS 1.2
    /// sessions found in Redis; [`redis`](Self::redis)`.stats()` has the rest.
    pub fn stats(&self) -> Stats {
        let mut s = self.local.stats();
        let t = self.takes.snapshot();
        s.hits += t.hits;
        s.misses += t.misses;
        s.timeouts += t.timeouts;
        s
    }
}

impl ::rustls::server::StoresServerSessions for RedisRustlsStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.local.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.local.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        // A ticket whose write is still queued never reached Redis, so no other
        // server can have it: taken out of the queue, the local tier decides.
        let withdrawn = self.redis.withdraw(key);
        if withdrawn == Withdrawn::Queued {
            return self.local.take(key);
        }
        let taken = self.redis.take(key);
        if withdrawn == Withdrawn::InFlight {
            // Its SET is being sent (or resent after a failed try): it may land
            // after this lookup, whatever the lookup answered (found, absent or
            // unavailable), and would be resumed again elsewhere. Delete it
            // behind it (the queue keeps order).
            self.redis.delete(key);
        }
        match taken {
            Lookup::Found(s) => {
                drop(self.local.cache().take(key));
                let cache = self.local.cache();
                if s.is_expired_at(cache.now(), cache.timeout()) {
                    self.takes.bump(Counter::Timeouts);
                    return None;
                }
                self.takes.bump(Counter::Hits);
                Some(s.payload().as_bytes().to_vec())
            }
            Lookup::Absent => {
                drop(self.local.cache().take(key));
                self.takes.bump(Counter::Misses);
                None
            }
            Lookup::Unavailable => self.local.take(key),
        }
    }

    fn can_cache(&self) -> bool {
        true
    }
}

impl fmt::Debug for RedisRustlsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRustlsStore")
            .field("local", &self.local)
            .field("redis", &self.redis)
            .finish()
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;
    use crate::RedisConfig;
    use rustls::server::StoresServerSessions;
    use std::time::{Duration, Instant};

    /// A ticket taken while its `SET` is being sent (here: resent forever, Redis
    /// unreachable) gets a `DEL` queued behind the `SET`, whatever the lookup
    /// answered (here `Unavailable`): else the `SET` lands later and another
    /// server can resume the ticket again.
    #[test]
    fn a_take_while_the_set_is_in_flight_queues_a_del() {
        let redis = RedisStore::new(
            RedisConfig::new("redis://127.0.0.1:1/")
                .encryption_key([1; 32])
                .drop_timeout(Duration::ZERO),
        )
        .unwrap();
        let store = RedisRustlsStore::new(0, Arc::clone(&redis));
        assert!(store.put(b"ticket".to_vec(), b"state".to_vec()));
        assert_eq!(redis.stats().queued, 1);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !redis.sending(b"ticket") {
            assert!(Instant::now() < deadline, "the writer never took the batch");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Redis unavailable: the local tier decides (it has the ticket)...
        assert_eq!(store.take(b"ticket").as_deref(), Some(&b"state"[..]));
        // ...and the SET being sent is deleted behind it.
        assert_eq!(redis.stats().queued, 2, "{:?}", redis.stats());
    }
}
