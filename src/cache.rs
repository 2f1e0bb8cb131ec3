//! The public cache type: OpenSSL's session-cache policy (modes, callbacks,
//! statistics, time) over the mechanism in `raw.rs`.

use crate::builder::Builder;
use crate::clock::ClockSrc;
use crate::id::Id;
use crate::raw::{Added, Expect, Raw};
use crate::stats::{Counter, Counters};
use crate::sync::{AtomicU32, Epoch, Ordering};
use crate::{CacheMode, RemovalCause, Session, SessionStore, Stats};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A TLS server session cache with OpenSSL's semantics and no global lock.
///
/// See the [crate documentation](crate) for the overview and
/// `docs/SEMANTICS.md` for every rule and where it differs from OpenSSL.
///
/// ```
/// use std::sync::Arc;
/// use tls_session_cache::{Session, SessionCache};
///
/// let cache: SessionCache<Vec<u8>> = SessionCache::new();
/// let s = Arc::new(Session::new(b"session-1", b"ctx", vec![0u8; 48])?);
/// assert!(cache.add(&s));               // new id: stored, one reference taken
/// assert!(!cache.add(&s));              // the identical object: a no-op
/// assert_eq!(Arc::strong_count(&s), 2);
/// let hit = cache.get(b"session-1", b"ctx").unwrap();
/// assert!(Arc::ptr_eq(&hit, &s));
/// assert!(cache.get(b"session-1", b"other-ctx").is_none()); // never across contexts
/// drop(hit);
/// assert!(cache.remove(&s));
/// assert_eq!(Arc::strong_count(&s), 1); // released as remove returns
/// # Ok::<(), tls_session_cache::Error>(())
/// ```
pub struct SessionCache<P: Send + Sync + 'static> {
    raw: Raw<P>,
    mode: AtomicU32,
    timeout: Duration,
    clock: ClockSrc,
    store: Option<Arc<dyn SessionStore<P>>>,
    stats: Counters,
}

impl<P: Send + Sync + 'static> Default for SessionCache<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Send + Sync + 'static> SessionCache<P> {
    /// A cache with OpenSSL's defaults: capacity 20 480, timeout 300 s, mode
    /// `SERVER`, the system clock, no store.
    pub fn new() -> Self {
        Builder::default().build()
    }

    /// A builder for a configured cache.
    pub fn builder() -> Builder<P> {
        Builder::default()
    }

    pub(crate) fn from_builder(b: Builder<P>) -> Self {
        let shards = crate::sync::default_shards();
        #[cfg(not(tls_session_cache_loom))]
        let epoch = Epoch::new();
        #[cfg(tls_session_cache_loom)]
        let epoch = Epoch::new(b.collector);
        SessionCache {
            raw: Raw::new(
                b.shards.unwrap_or(shards),
                b.capacity,
                b.timeout.as_secs(),
                epoch,
            ),
            mode: AtomicU32::new(b.mode.bits()),
            timeout: b.timeout,
            clock: b.clock,
            store: b.store,
            stats: Counters::new(),
        }
    }

    #[inline]
    fn timeout_secs(&self) -> u64 {
        self.timeout.as_secs()
    }

    /// The current mode.
    #[inline]
    pub fn mode(&self) -> CacheMode {
        CacheMode::from_bits_retain(self.mode.load(Ordering::Relaxed))
    }

    /// Changes the mode (`SSL_CTX_set_session_cache_mode`); returns the previous one.
    pub fn set_mode(&self, mode: CacheMode) -> CacheMode {
        CacheMode::from_bits_retain(self.mode.swap(mode.bits(), Ordering::Relaxed))
    }

    /// The timeout of sessions that have none of their own.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The clock's current time (Unix seconds).
    #[inline]
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The number of sessions held (`SSL_CTX_sess_number`). Includes adds that
    /// have taken their place and are linking (inside that critical section);
    /// never exceeds
    /// [`capacity`](Self::capacity) unless the capacity was just lowered.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size limit; 0 means unlimited (`SSL_CTX_sess_get_cache_size`).
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    /// Sets the size limit (0 = unlimited) and returns the previous one
    /// (`SSL_CTX_sess_set_cache_size`). Nothing is evicted until the next add that
    /// returns true (a new id or a replacement), which evicts until the cache fits.
    pub fn set_capacity(&self, capacity: usize) -> usize {
        self.raw.set_capacity(capacity)
    }

    /// A snapshot of the statistics, with the current length and capacity.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.snapshot();
        s.len = self.len() as u64;
        s.capacity = self.capacity() as u64;
        s
    }

    /// Adds a session (`SSL_CTX_add_session`).
    ///
    /// - A new id: the session is stored (evicting first, soonest expiry first, if
    ///   the cache is full; never the session being added) and `true` is returned.
    /// - A different object with the same id is cached: it is replaced (and its
    ///   reference released; no remove callback) and `true` is returned.
    /// - The identical object is already cached: nothing changes (with
    ///   `UPDATE_TIME` its time is refreshed) and `false` is returned.
    ///
    /// On `true` the cache holds one new reference to `s`. With
    /// [`CacheMode::UPDATE_TIME`] the session's time is first set to now.
    pub fn add(&self, s: &Arc<Session<P>>) -> bool {
        let update_time = self.stamp(s);
        let added = self
            .raw
            .add(s, update_time, &mut |evicted| self.evicted(evicted));
        self.count_added(added)
    }

    /// `UPDATE_TIME`: sets `s`'s time to now. Returns whether it did.
    #[inline]
    fn stamp(&self, s: &Session<P>) -> bool {
        let update_time = self.mode().contains(CacheMode::UPDATE_TIME);
        if update_time {
            s.set_time(self.clock.now());
        }
        update_time
    }

    #[inline]
    fn count_added(&self, added: Added) -> bool {
        match added {
            Added::New => self.stats.bump(Counter::Adds),
            Added::Replaced => self.stats.bump(Counter::Replaces),
            Added::Same => return false,
        };
        true
    }

    /// A session unlinked to make room: counted, marked, passed to the store.
    fn evicted(&self, s: Arc<Session<P>>) {
        self.stats.bump(Counter::CacheFull);
        s.mark_not_resumable();
        self.removed_callback(&s, RemovalCause::Evicted);
    }

    fn removed_callback(&self, s: &Arc<Session<P>>, cause: RemovalCause) {
        if let Some(store) = &self.store {
            store.remove_session(s, cause);
        }
    }

    /// Removes whatever session is cached under `s`'s id (`SSL_CTX_remove_session`):
    /// by id, not identity, so a different object with the same id is removed too.
    /// Returns whether something was removed; of two concurrent removes of one id,
    /// exactly one returns true. Always marks `s` not resumable and fires the
    /// store's remove callback with `s`, even when nothing was cached (as OpenSSL).
    pub fn remove(&self, s: &Arc<Session<P>>) -> bool {
        // `_in_flight` drops last: after the callback (see `get_from_store`).
        let (removed, _in_flight) = self.raw.remove(s.key(), Expect::Any);
        if removed.is_some() {
            self.stats.bump(Counter::Removes);
        }
        s.mark_not_resumable();
        self.removed_callback(s, RemovalCause::Removed);
        removed.is_some()
    }

    /// Removes `s` only if this very object is cached under its id (identity
    /// compare-and-remove): never removes a session another thread has just put in
    /// its place. On success marks `s` not resumable and fires the remove callback.
    pub fn remove_if_same(&self, s: &Arc<Session<P>>) -> bool {
        let (removed, _in_flight) = self.raw.remove(s.key(), Expect::Same(Arc::as_ptr(s)));
        match removed {
            Some(taken) => {
                drop(taken);
                self.stats.bump(Counter::Removes);
                s.mark_not_resumable();
                self.removed_callback(s, RemovalCause::Removed);
                true
            }
            None => false,
        }
    }

    /// Atomically removes and returns the session cached under `id`, whatever its
    /// context or age: the single-use take of TLS 1.3 tickets (of two concurrent
    /// takes, exactly one gets it). Any id length is accepted (a miss). Marks the
    /// session not resumable and fires the remove callback. Counts `takes` (no
    /// hit or miss). See [`take_in`](Self::take_in) for a take limited to one
    /// session id context.
    pub fn take(&self, id: &[u8]) -> Option<Arc<Session<P>>> {
        let key = Id::new(id)?;
        let (removed, _in_flight) = self.raw.remove(&key, Expect::Any);
        self.taken(removed?)
    }

    /// [`take`](Self::take), but only a session made for `sid_ctx`: a session of
    /// another context stays cached and `None` is returned (counting nothing), so
    /// several stores sharing one cache under different contexts never consume
    /// each other's sessions. Decided under the id's shard lock: of two concurrent
    /// takes exactly one gets the session.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tls_session_cache::{Session, SessionCache};
    ///
    /// let cache: SessionCache<()> = SessionCache::new();
    /// cache.add(&Arc::new(Session::new(b"ticket", b"svc-a", ())?));
    /// assert!(cache.take_in(b"ticket", b"svc-b").is_none()); // not b's
    /// assert_eq!(cache.len(), 1);
    /// assert!(cache.take_in(b"ticket", b"svc-a").is_some());
    /// # Ok::<(), tls_session_cache::Error>(())
    /// ```
    pub fn take_in(&self, id: &[u8], sid_ctx: &[u8]) -> Option<Arc<Session<P>>> {
        let key = Id::new(id)?;
        let (removed, _in_flight) = self.raw.remove(&key, Expect::SidCtx(sid_ctx));
        self.taken(removed?)
    }

    fn taken(&self, s: Arc<Session<P>>) -> Option<Arc<Session<P>>> {
        self.stats.bump(Counter::Takes);
        s.mark_not_resumable();
        self.removed_callback(&s, RemovalCause::Taken);
        Some(s)
    }

    /// The resumption lookup a server handshake does (`ssl_get_prev_session`).
    ///
    /// Unless `NO_INTERNAL_LOOKUP`, looks `id` up (a miss counts `misses`); on a
    /// miss asks the store's get callback (a resumable answer counts `cb_hits` and
    /// is added unless `NO_INTERNAL_STORE`, or unless an explicit removal of its
    /// id may have raced the store's answer: see docs/SEMANTICS.md, "Under
    /// concurrency"). A session made for another `sid_ctx`
    /// is not returned and counts nothing. An expired one (`now > time + timeout`)
    /// is not returned, counts `timeouts`, is marked not resumable, fires the remove
    /// callback and is removed if it is still the cached object. Otherwise counts
    /// `hits` and returns a new reference.
    ///
    /// Ids of any length are accepted: one of 0 or more than 32 bytes is a miss.
    #[inline]
    pub fn get(&self, id: &[u8], sid_ctx: &[u8]) -> Option<Arc<Session<P>>> {
        let Some(key) = Id::new(id) else {
            self.stats.bump(Counter::Misses);
            return None;
        };
        let mode = self.mode();
        let found = if mode.contains(CacheMode::NO_INTERNAL_LOOKUP) {
            None
        } else {
            self.raw.get(&key)
        };
        // The hit path stays small: misses and expiries are out of line.
        let s = match found {
            Some(s) => s,
            None => self.get_missed(id, &key, mode)?,
        };
        if !s.sid_ctx_is(sid_ctx) {
            return None;
        }
        if s.expiry(self.timeout_secs()) < self.clock.now() {
            self.expired_at_lookup(&key, &s);
            return None;
        }
        self.stats.bump(Counter::Hits);
        Some(s)
    }

    /// `get` found nothing internally (or did not look): counts the miss if it
    /// looked, then asks the store.
    #[cold]
    #[inline(never)]
    fn get_missed(&self, id: &[u8], key: &Id, mode: CacheMode) -> Option<Arc<Session<P>>> {
        if !mode.contains(CacheMode::NO_INTERNAL_LOOKUP) {
            self.stats.bump(Counter::Misses);
        }
        self.get_from_store(id, key, mode)
    }

    /// A lookup met `s`, expired: counts `timeouts`, marks it not resumable,
    /// removes it if it is still the cached object, and fires the remove
    /// callback.
    #[cold]
    #[inline(never)]
    fn expired_at_lookup(&self, key: &Id, s: &Arc<Session<P>>) {
        self.stats.bump(Counter::Timeouts);
        s.mark_not_resumable();
        let (removed, _in_flight) = self.raw.remove(key, Expect::Same(Arc::as_ptr(s)));
        if removed.is_some() {
            self.stats.bump(Counter::Expired);
        }
        self.removed_callback(s, RemovalCause::Expired);
    }

    /// The store's answer to a lookup that missed internally. It is added
    /// (unless `NO_INTERNAL_STORE`) only if no removal (`remove`,
    /// `remove_if_same`, `take`, `take_in`, or an expired session met by a
    /// lookup) of its id can have been missed by
    /// the store's answer: none was recorded since the lookup began, and none
    /// of its shard was still in its remove callback then. OpenSSL re-adds it
    /// regardless, undoing such a removal (DESIGN.md, "Store answers and
    /// concurrent removals"). It is returned either way, as the store answered
    /// it.
    #[cold]
    fn get_from_store(&self, id: &[u8], key: &Id, mode: CacheMode) -> Option<Arc<Session<P>>> {
        let store = self.store.as_ref()?;
        // Before asking: see `Raw::add_unless_removed`.
        let add = !mode.contains(CacheMode::NO_INTERNAL_STORE);
        let mark = add.then(|| self.raw.removal_mark(key));
        let s = store.get_session(id)?;
        if !s.is_resumable() {
            return None;
        }
        self.stats.bump(Counter::CbHits);
        if let Some(mark) = mark {
            let update_time = self.stamp(&s);
            if let Some(added) =
                self.raw
                    .add_unless_removed(&s, update_time, mark, &mut |evicted| self.evicted(evicted))
            {
                self.count_added(added);
            } else {
                self.stats.bump(Counter::ReaddsRefused);
            }
        }
        Some(s)
    }

    /// Removes every session expired at `at_unix_secs` (`now > time + timeout`),
    /// soonest expiry first, each marked not resumable and passed to the remove
    /// callback (`SSL_CTX_flush_sessions`). `0` removes everything. Returns how many
    /// were removed. Never removes a session that has not expired at
    /// `at_unix_secs`, whatever runs concurrently; sessions added while it runs may
    /// or may not be removed; it removes at most as many sessions as the cache
    /// held when it started.
    pub fn flush(&self, at_unix_secs: u64) -> usize {
        self.raw.flush(at_unix_secs, &mut |s| {
            // Counted before the callback, so a panicking callback loses no count.
            self.stats.bump(Counter::Flushed);
            s.mark_not_resumable();
            self.removed_callback(&s, RemovalCause::Flushed);
        })
    }

    /// What a TLS stack calls after a full handshake made `s` (OpenSSL's
    /// `ssl_update_cache` on a server). Returns at once (false, no callback, not
    /// counted) if `s` is not resumable, as OpenSSL. Otherwise, if the mode has
    /// `SERVER`: adds `s` unless `NO_INTERNAL_STORE`, then fires the store's
    /// new-session callback. Every 256th call flushes expired sessions unless
    /// `NO_AUTO_CLEAR` (counted per thread group, so exactly every 256 calls when
    /// one thread calls it). Returns whether `s` was added internally.
    pub fn update_cache(&self, s: &Arc<Session<P>>) -> bool {
        let mode = self.mode();
        if !mode.contains(CacheMode::SERVER) || !s.is_resumable() {
            return false;
        }
        let mut stored = false;
        if !mode.contains(CacheMode::NO_INTERNAL_STORE) {
            stored = self.add(s);
        }
        if let Some(store) = &self.store {
            store.new_session(s);
        }
        // Counted whatever NO_AUTO_CLEAR says (OpenSSL counts every accepted
        // handshake and checks the mode only when deciding to flush).
        let handshakes = self.stats.bump(Counter::Handshakes);
        if !mode.contains(CacheMode::NO_AUTO_CLEAR) && handshakes % 256 == 0 {
            self.flush(self.clock.now());
        }
        stored
    }

    /// The number of map slots (one per linked session: there are no dead slots);
    /// for tests.
    #[doc(hidden)]
    pub fn __slots(&self) -> usize {
        self.raw.slots()
    }

    /// Eviction entries (one per linked session); for tests.
    #[doc(hidden)]
    pub fn __index_entries(&self) -> usize {
        self.raw.entries()
    }

    /// The number of eviction partitions; for tests and benchmarks.
    #[doc(hidden)]
    pub fn __partitions(&self) -> usize {
        self.raw.parts()
    }

    /// The map shard (and eviction partition) of `id`, `None` for an invalid
    /// id; for tests that need ids in one shard or in different ones.
    #[doc(hidden)]
    pub fn __shard_of(&self, id: &[u8]) -> Option<usize> {
        Id::new(id).map(|k| self.raw.shard_of(&k))
    }
}

impl<P: Send + Sync + 'static> fmt::Debug for SessionCache<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("timeout", &self.timeout)
            .field("partitions", &self.raw.parts())
            .field("mode", &self.mode())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
