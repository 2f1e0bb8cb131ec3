//! The public cache type: OpenSSL's session-cache operations.

use crate::builder::Builder;
use crate::clock::Clock;
use crate::expiry::Index;
use crate::map::ShardMap;
use crate::session::{Session, SessionId};
use crate::slot::{drop_exclusive, raw, release_unlinked, upgrade, Slot, Unpublished};
use crate::stats::{Counter, Counters};
use crate::sync::{self, AtomicU32, AtomicU64, AtomicUsize, Epoch, Guard, Ordering};
use crate::{CacheMode, SessionStore, Stats};
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
    map: ShardMap<Slot<P>>,
    index: Index,
    /// Live slots plus reservations of adds in flight; never above `capacity`
    /// except after `set_capacity` lowered it.
    count: AtomicUsize,
    capacity: AtomicUsize,
    seq: AtomicU64,
    mode: AtomicU32,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn SessionStore<P>>>,
    stats: Counters,
    epoch: Epoch,
}

/// What the read-locked fast path of `add` found.
enum Fast<P> {
    /// No live entry: take the new-id path.
    Absent,
    /// The identical object is cached.
    Same,
    /// A different object was replaced; we own the slot's references to it.
    Replaced(*mut Session<P>),
}

/// What the write-locked path of `add` did.
enum Linked<P> {
    New,
    Same,
    Replaced(*mut Session<P>),
}

/// A candidate for eviction or flushing.
struct Victim<P> {
    order: (u64, u64),
    key: SessionId,
    ptr: *mut Session<P>,
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
        #[cfg(not(tls_session_cache_loom))]
        let (shards, parts, epoch) = {
            let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
            (
                b.shards.unwrap_or(cores * 4),
                cores.next_power_of_two().clamp(4, 32),
                Epoch::new(),
            )
        };
        #[cfg(tls_session_cache_loom)]
        let (shards, parts, epoch) = (b.shards.unwrap_or(2), 2, Epoch::new(b.collector));
        SessionCache {
            map: ShardMap::new(shards),
            index: Index::new(parts),
            count: AtomicUsize::new(0),
            capacity: AtomicUsize::new(b.capacity),
            seq: AtomicU64::new(1),
            mode: AtomicU32::new(b.mode.bits()),
            timeout: b.timeout,
            clock: b.clock,
            store: b.store,
            stats: Counters::new(),
            epoch,
        }
    }

    fn timeout_secs(&self) -> u64 {
        self.timeout.as_secs()
    }

    /// The current mode.
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
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The number of sessions held (`SSL_CTX_sess_number`). Includes adds that
    /// have reserved their place and are being linked; never exceeds
    /// [`capacity`](Self::capacity) unless the capacity was just lowered.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size limit; 0 means unlimited (`SSL_CTX_sess_get_cache_size`).
    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Sets the size limit (0 = unlimited) and returns the previous one
    /// (`SSL_CTX_sess_set_cache_size`). Nothing is evicted until the next add that
    /// returns true (a new id or a replacement), which evicts until the cache fits.
    pub fn set_capacity(&self, capacity: usize) -> usize {
        self.capacity.swap(capacity, Ordering::AcqRel)
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        self.stats.snapshot()
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
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
        let update_time = self.mode().contains(CacheMode::UPDATE_TIME);
        if update_time {
            s.set_time(self.clock.now());
        }
        let key = s.key();
        let expiry = s.expiry(self.timeout_secs());
        let sp = raw(s);
        // The references the slot will own; given back on every exit (unwinding
        // included) unless published.
        let mut refs: Option<Unpublished<P>> = None;

        {
            let guard = self.epoch.pin();
            let fast = self.map.read(&key, |slot| {
                let Some(slot) = slot else {
                    return Fast::Absent;
                };
                loop {
                    let cur = slot.ptr.load(Ordering::Acquire);
                    if cur.is_null() {
                        return Fast::Absent;
                    }
                    if cur == sp {
                        if update_time {
                            self.refresh_expiry(slot, &key, expiry);
                        }
                        return Fast::Same;
                    }
                    let new = refs.get_or_insert_with(|| Unpublished::new(s)).ptr();
                    if self.swap_ptr(slot, cur, new) {
                        if let Some(r) = refs.take() {
                            r.publish();
                        }
                        let order = (expiry, self.next_seq());
                        slot.set_order(order);
                        if expiry < slot.filed_expiry.load(Ordering::Relaxed) {
                            self.index.file(slot, &key, order);
                        }
                        return Fast::Replaced(cur);
                    }
                }
            });
            match fast {
                Fast::Absent => {}
                Fast::Same => return false,
                Fast::Replaced(old) => {
                    // SAFETY: our CAS unlinked `old` under `guard`.
                    let old = unsafe { release_unlinked(old, &guard) };
                    drop(guard);
                    drop(old);
                    self.shrink_after_replace(&key);
                    return true;
                }
            }
        }

        // New id (or a dead slot): make room first, then link under the write lock.
        let mut refs = Some(refs.unwrap_or_else(|| Unpublished::new(s)));
        self.reserve();
        let guard = self.epoch.pin();
        let mut link = |slot: &Slot<P>| -> Option<*mut Session<P>> {
            let r = refs.take().expect("the references are published once");
            let old = slot.ptr.load(Ordering::Acquire);
            #[cfg(tls_session_cache_mutant = "release_before_unlink")]
            if !old.is_null() {
                // MUTANT (test-only cfg): release the cache's reference, then unlink.
                // SAFETY: none: deliberately wrong; compiled only in mutant test builds.
                unsafe { crate::slot::mutant_release_early(old) };
            }
            // Under the write lock nobody else can change the slot.
            slot.ptr.store(r.ptr(), Ordering::Release);
            r.publish();
            let order = (expiry, self.next_seq());
            slot.set_order(order);
            if old.is_null() || expiry < slot.filed_expiry.load(Ordering::Relaxed) {
                self.index.file(slot, &key, order);
            }
            (!old.is_null()).then_some(old)
        };
        let linked = self.map.write(key, |slot| match slot {
            None => {
                // Only a brand-new slot needs its index partition (one more hash).
                let slot = Slot::new(self.index.part_of(self.map.hash(&key)));
                link(&slot);
                (Some(slot), Linked::New)
            }
            Some(slot) => {
                let cur = slot.ptr.load(Ordering::Acquire);
                if cur == sp {
                    if update_time {
                        self.refresh_expiry(slot, &key, expiry);
                    }
                    (None, Linked::Same)
                } else {
                    match link(slot) {
                        None => (None, Linked::New),
                        Some(old) => (None, Linked::Replaced(old)),
                    }
                }
            }
        });
        drop(refs);
        match linked {
            Linked::New => true,
            Linked::Same => {
                self.count.fetch_sub(1, Ordering::AcqRel);
                false
            }
            Linked::Replaced(old) => {
                self.count.fetch_sub(1, Ordering::AcqRel);
                // SAFETY: our store (under the write lock) unlinked `old` while
                // `guard` was pinned.
                let old = unsafe { release_unlinked(old, &guard) };
                drop(guard);
                drop(old);
                self.shrink_after_replace(&key);
                true
            }
        }
    }

    /// A replace returns true, so (as OpenSSL) the cache must fit its limit
    /// counting the added session: only possible to break after the limit was
    /// lowered. Evicts, soonest expiry first, never the id just replaced.
    fn shrink_after_replace(&self, key: &SessionId) {
        loop {
            let cap = self.capacity.load(Ordering::Acquire);
            if cap == 0 || self.count.load(Ordering::Acquire) <= cap {
                return;
            }
            if !self.evict_one(Some(key)) {
                return;
            }
        }
    }

    /// Replaces `cur` by `new` in `slot` (compare-and-swap); true on success.
    fn swap_ptr(&self, slot: &Slot<P>, cur: *mut Session<P>, new: *mut Session<P>) -> bool {
        #[cfg(tls_session_cache_mutant = "release_before_unlink")]
        {
            // MUTANT (test-only cfg): release the cache's reference, then unlink.
            // SAFETY: none: deliberately wrong; compiled only in mutant test builds.
            unsafe { crate::slot::mutant_release_early(cur) };
        }
        #[cfg(not(tls_session_cache_mutant = "slot_load_store"))]
        {
            slot.ptr
                .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        }
        #[cfg(tls_session_cache_mutant = "slot_load_store")]
        {
            // MUTANT (test-only cfg): check-then-store instead of CAS.
            let _ = cur;
            sync::backoff();
            slot.ptr.store(new, Ordering::Release);
            true
        }
    }

    /// The identical object was added again under `UPDATE_TIME`: its time (already
    /// stamped) moves its expiry; re-file it if the expiry went down.
    fn refresh_expiry(&self, slot: &Slot<P>, key: &SessionId, expiry: u64) {
        slot.expiry.store(expiry, Ordering::Relaxed);
        if expiry < slot.filed_expiry.load(Ordering::Relaxed) {
            self.index
                .file(slot, key, (expiry, slot.seq.load(Ordering::Relaxed)));
        }
    }

    /// Takes one place under the capacity, evicting as needed.
    fn reserve(&self) {
        loop {
            let cap = self.capacity.load(Ordering::Acquire);
            let c = self.count.load(Ordering::Acquire);
            if cap == 0 || c < cap {
                #[cfg(not(tls_session_cache_mutant = "capacity_check_then_act"))]
                {
                    if self
                        .count
                        .compare_exchange(c, c + 1, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return;
                    }
                    continue;
                }
                #[cfg(tls_session_cache_mutant = "capacity_check_then_act")]
                {
                    // MUTANT (test-only cfg): the check and the increment are two steps.
                    sync::backoff();
                    self.count.fetch_add(1, Ordering::AcqRel);
                    return;
                }
            }
            if !self.evict_one(None) {
                // Everything counted is a reservation still being linked by another
                // thread: let it finish.
                sync::backoff();
            }
        }
    }

    /// Evicts the session that expires soonest. Returns false if nothing could be
    /// evicted (the count is made of reservations in flight).
    fn evict_one(&self, exclude: Option<&SessionId>) -> bool {
        let guard = self.epoch.pin();
        let Some(v) = self.pick_min(&guard, exclude) else {
            return false;
        };
        if let Some(s) = self.unlink_victim(&v, &guard) {
            drop(guard);
            self.stats.bump(Counter::CacheFull);
            s.mark_not_resumable();
            self.removed_callback(&s);
            drop(s);
        }
        // A lost race (someone else removed or replaced it) also made progress.
        true
    }

    /// The live session with the smallest `(expiry, seq)` over all partitions
    /// (exact when no other thread is changing the cache). The pointer stays valid
    /// for identity comparison while `_guard` is pinned.
    fn pick_min(&self, _guard: &Guard, exclude: Option<&SessionId>) -> Option<Victim<P>> {
        let mut best: Option<Victim<P>> = None;
        for part in 0..self.index.parts() {
            let mut after = None;
            while let Some((order, key)) = self.index.next(part, after) {
                if exclude == Some(&key) {
                    after = Some(order);
                    continue;
                }
                let found = self.map.read(&key, |slot| {
                    let Some(slot) = slot else {
                        self.index.drop_entry(part, order, &key);
                        return None;
                    };
                    let cur = slot.ptr.load(Ordering::Acquire);
                    if cur.is_null() {
                        self.index.unfile(slot);
                        self.index.drop_entry(part, order, &key);
                        return None;
                    }
                    let now = slot.order();
                    if now == order {
                        return Some(cur);
                    }
                    // Stale (a replace moved the session later, or the slot was
                    // re-filed meanwhile): file the slot where it is now.
                    self.index.drop_entry(part, order, &key);
                    self.index.file(slot, &key, now);
                    None
                });
                if let Some(ptr) = found {
                    if best.as_ref().is_none_or(|b| order < b.order) {
                        best = Some(Victim { order, key, ptr });
                    }
                    break;
                }
            }
        }
        best
    }

    /// Unlinks exactly `v.ptr` if it is still in its slot.
    fn unlink_victim(&self, v: &Victim<P>, guard: &Guard) -> Option<Arc<Session<P>>> {
        let won = self.map.read(&v.key, |slot| {
            let slot = slot?;
            #[cfg(tls_session_cache_mutant = "release_before_unlink")]
            {
                // MUTANT (test-only cfg): release the cache's reference, then unlink.
                // SAFETY: none: deliberately wrong; compiled only in mutant test builds.
                unsafe { crate::slot::mutant_release_early(v.ptr) };
            }
            slot.ptr
                .compare_exchange(
                    v.ptr,
                    std::ptr::null_mut(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .ok()?;
            self.count.fetch_sub(1, Ordering::AcqRel);
            self.index.unfile(slot);
            Some(())
        });
        won?;
        self.unlink_dead(&v.key);
        // SAFETY: our CAS unlinked `v.ptr` while `guard` (pinned by the caller
        // before `v.ptr` was loaded) was pinned.
        Some(unsafe { release_unlinked(v.ptr, guard) })
    }

    /// Removes the slot for `key` from the map if it is (still) dead.
    fn unlink_dead(&self, key: &SessionId) {
        self.map
            .remove_if(key, |slot| slot.ptr.load(Ordering::Acquire).is_null());
    }

    /// Takes the live session for `key` out of the cache; with `expect`, only if it
    /// is that object. Returns the cache's reference to it.
    fn take_key(
        &self,
        key: &SessionId,
        expect: Option<*mut Session<P>>,
    ) -> Option<Arc<Session<P>>> {
        let guard = self.epoch.pin();
        let taken = self.map.read(key, |slot| {
            let slot = slot?;
            loop {
                let cur = slot.ptr.load(Ordering::Acquire);
                if cur.is_null() || expect.is_some_and(|p| cur != p) {
                    return None;
                }
                #[cfg(tls_session_cache_mutant = "release_before_unlink")]
                {
                    // MUTANT (test-only cfg): release the cache's reference, then unlink.
                    // SAFETY: none: deliberately wrong; compiled only in mutant test builds.
                    unsafe { crate::slot::mutant_release_early(cur) };
                }
                if slot
                    .ptr
                    .compare_exchange(
                        cur,
                        std::ptr::null_mut(),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok()
                {
                    self.count.fetch_sub(1, Ordering::AcqRel);
                    self.index.unfile(slot);
                    return Some(cur);
                }
            }
        })?;
        self.unlink_dead(key);
        // SAFETY: our CAS unlinked `taken` while `guard` was pinned.
        let s = unsafe { release_unlinked(taken, &guard) };
        drop(guard);
        Some(s)
    }

    fn removed_callback(&self, s: &Arc<Session<P>>) {
        if let Some(store) = &self.store {
            store.remove_session(s);
        }
    }

    /// Removes whatever session is cached under `s`'s id (`SSL_CTX_remove_session`):
    /// by id, not identity, so a different object with the same id is removed too.
    /// Returns whether something was removed; of two concurrent removes of one id,
    /// exactly one returns true. Always marks `s` not resumable and fires the
    /// store's remove callback with `s`, even when nothing was cached (as OpenSSL).
    pub fn remove(&self, s: &Arc<Session<P>>) -> bool {
        let removed = self.take_key(&s.key(), None);
        s.mark_not_resumable();
        self.removed_callback(s);
        removed.is_some()
    }

    /// Removes `s` only if this very object is cached under its id (identity
    /// compare-and-remove): never removes a session another thread has just put in
    /// its place. On success marks `s` not resumable and fires the remove callback.
    pub fn remove_if_same(&self, s: &Arc<Session<P>>) -> bool {
        match self.take_key(&s.key(), Some(raw(s))) {
            Some(taken) => {
                drop(taken);
                s.mark_not_resumable();
                self.removed_callback(s);
                true
            }
            None => false,
        }
    }

    /// Atomically removes and returns the session cached under `id`, whatever its
    /// context or age: the single-use take of TLS 1.3 tickets (of two concurrent
    /// takes, exactly one gets it). Any id length is accepted (a miss). Marks the
    /// session not resumable and fires the remove callback. Counts nothing.
    pub fn take(&self, id: &[u8]) -> Option<Arc<Session<P>>> {
        let key = valid_key(id)?;
        let s = self.take_key(&key, None)?;
        s.mark_not_resumable();
        self.removed_callback(&s);
        Some(s)
    }

    /// The internal lookup: a new reference to the live session under `key`.
    fn lookup(&self, key: &SessionId) -> Option<Arc<Session<P>>> {
        let guard = self.epoch.pin();
        self.map.read(key, |slot| {
            let slot = slot?;
            let mut cur = slot.ptr.load(Ordering::Acquire);
            loop {
                if cur.is_null() {
                    return None;
                }
                // SAFETY: `cur` was loaded from the slot while `guard` is pinned.
                if let Some(s) = unsafe { upgrade(cur, &guard) } {
                    return Some(s);
                }
                // The session was unlinked and released after our load: read the
                // slot's newest value (a read-modify-write never reads a stale one).
                cur = match slot
                    .ptr
                    .compare_exchange(cur, cur, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(same) => {
                        // Cannot happen (a linked session always has the cache's
                        // strong reference); yield rather than spin if it did.
                        sync::backoff();
                        same
                    }
                    Err(newer) => newer,
                };
            }
        })
    }

    /// The resumption lookup a server handshake does (`ssl_get_prev_session`).
    ///
    /// Unless `NO_INTERNAL_LOOKUP`, looks `id` up (a miss counts `misses`); on a
    /// miss asks the store's get callback (a resumable answer counts `cb_hits` and
    /// is added unless `NO_INTERNAL_STORE`). A session made for another `sid_ctx`
    /// is not returned and counts nothing. An expired one (`now > time + timeout`)
    /// is not returned, counts `timeouts`, is marked not resumable, fires the remove
    /// callback and is removed if it is still the cached object. Otherwise counts
    /// `hits` and returns a new reference.
    ///
    /// Ids of any length are accepted: one of 0 or more than 32 bytes is a miss.
    pub fn get(&self, id: &[u8], sid_ctx: &[u8]) -> Option<Arc<Session<P>>> {
        let Some(key) = valid_key(id) else {
            self.stats.bump(Counter::Misses);
            return None;
        };
        let mode = self.mode();
        let mut found = None;
        if !mode.contains(CacheMode::NO_INTERNAL_LOOKUP) {
            found = self.lookup(&key);
            if found.is_none() {
                self.stats.bump(Counter::Misses);
            }
        }
        if found.is_none() {
            if let Some(store) = &self.store {
                if let Some(s) = store.get_session(id) {
                    if !s.is_resumable() {
                        return None;
                    }
                    self.stats.bump(Counter::CbHits);
                    if !mode.contains(CacheMode::NO_INTERNAL_STORE) {
                        self.add(&s);
                    }
                    found = Some(s);
                }
            }
        }
        let s = found?;
        if s.sid_ctx() != sid_ctx {
            return None;
        }
        if s.expiry(self.timeout_secs()) < self.clock.now() {
            self.stats.bump(Counter::Timeouts);
            s.mark_not_resumable();
            drop(self.take_key(&s.key(), Some(raw(&s))));
            self.removed_callback(&s);
            return None;
        }
        self.stats.bump(Counter::Hits);
        Some(s)
    }

    /// Removes every session expired at `at_unix_secs` (`now > time + timeout`),
    /// soonest expiry first, each marked not resumable and passed to the remove
    /// callback (`SSL_CTX_flush_sessions`). `0` removes everything. Returns how many
    /// were removed. Sessions added while it runs may or may not be removed; it
    /// removes at most as many sessions as the cache held when it started.
    pub fn flush(&self, at_unix_secs: u64) -> usize {
        let mut budget = self.len();
        let mut removed = 0;
        while budget > 0 {
            let guard = self.epoch.pin();
            let Some(v) = self.pick_min(&guard, None) else {
                break;
            };
            if at_unix_secs != 0 && v.order.0 >= at_unix_secs {
                break;
            }
            budget -= 1;
            if let Some(s) = self.unlink_victim(&v, &guard) {
                drop(guard);
                removed += 1;
                s.mark_not_resumable();
                self.removed_callback(&s);
            }
        }
        removed
    }

    /// What a TLS stack calls after a full handshake made `s` (OpenSSL's
    /// `ssl_update_cache` on a server). If the mode has `SERVER`: adds `s` unless
    /// `NO_INTERNAL_STORE` (and unless it is not resumable), then fires the store's
    /// new-session callback. Every 256th call flushes expired sessions unless
    /// `NO_AUTO_CLEAR` (counted per thread group, so exactly every 256 calls when
    /// one thread calls it). Returns whether `s` was added internally.
    pub fn update_cache(&self, s: &Arc<Session<P>>) -> bool {
        let mode = self.mode();
        if !mode.contains(CacheMode::SERVER) {
            return false;
        }
        let mut stored = false;
        if !mode.contains(CacheMode::NO_INTERNAL_STORE) && s.is_resumable() {
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

    /// The number of map slots (live and dead); for tests.
    #[doc(hidden)]
    pub fn __slots(&self) -> usize {
        self.map.slots()
    }

    /// Index entries; for tests.
    #[doc(hidden)]
    pub fn __index_entries(&self) -> usize {
        self.index.len()
    }
}

fn valid_key(id: &[u8]) -> Option<SessionId> {
    if id.is_empty() {
        return None;
    }
    SessionId::new(id)
}

impl<P: Send + Sync + 'static> Drop for SessionCache<P> {
    fn drop(&mut self) {
        // Exclusive access: release every reference still held, now.
        for slot in self.map.drain() {
            drop(drop_exclusive(slot));
        }
    }
}

impl<P: Send + Sync + 'static> fmt::Debug for SessionCache<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("timeout", &self.timeout)
            .field("mode", &self.mode())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
