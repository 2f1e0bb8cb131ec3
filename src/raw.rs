//! The mechanism: linking, unlinking, lookup and eviction (how), with no policy.
//!
//! `Raw` knows nothing of modes, callbacks or statistics: it links and unlinks
//! sessions under the rules of `docs/DESIGN.md` and hands every session it
//! unlinks back to its caller (the policy layer in `cache.rs`), which decides what
//! to do with it (mark it, count it, call the store) with no lock held.

use crate::id::{Id, IdKey};
use crate::map::{ShardMap, ShardW};
use crate::mutant;
use crate::order::{part_of_pos, Head, Key, Order, PartLock};
use crate::removals::{InFlight, RemovalLog, RemovalMark};
use crate::session::Session;
use crate::slot::{drop_exclusive, mutant_release_early, Link, Pos, Refs, Unlinked};
use crate::sync::{self, AtomicU64, AtomicUsize, Epoch, Ordering};
use std::sync::Arc;

/// What an add did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// A new id was linked (the count grew by one).
    New,
    /// A different object with the id was replaced.
    Replaced,
    /// The identical object was already linked: nothing changed.
    Same,
}

/// Which session under a key a removal may unlink.
#[derive(Clone, Copy)]
pub(crate) enum Expect<'a, P> {
    /// Whatever is linked.
    Any,
    /// Only this object (held by the caller).
    Same(*const Session<P>),
    /// Only a session made for this session id context.
    SidCtx(&'a [u8]),
}

/// What linking under an id already in the map did.
enum Linked<P> {
    Same,
    Replaced(Unlinked<P>),
}

/// What an eviction does with its victim's place under the capacity: the
/// eviction functions' const parameter `PLACE`, so that the add's path carries
/// no test for the others.
mod place {
    /// Gives it back: the count drops (a flush).
    pub(super) const FREE: u8 = 0;
    /// Passes it to the add that evicts: the count does not move, and no
    /// other add can take the room made.
    pub(super) const PASS: u8 = 1;
    /// Gives it back only while the cache is over its capacity, checked and
    /// counted in one step (a compare-and-swap on `count`) before the unlink,
    /// under the victim's shard lock: the shrink after a lowered capacity.
    /// Two shrinkers that both saw the cache over its limit then never take
    /// it below (loom model 20g); once it fits, nothing is unlinked (`Raced`).
    pub(super) const FREE_IF_OVER: u8 = 2;
}

/// What `Raw::link_new` did, for `Raw::finish` once its locks are released.
enum Done<P> {
    Same,
    /// The replaced session's reference, unlinked under the write lock.
    Replaced(Unlinked<P>),
    New {
        /// The session evicted to make room.
        evicted: Option<Arc<Session<P>>>,
        /// Only under the `order_after_pointer` mutant: the entry to file late.
        filed_late: Option<usize>,
    },
}

/// How an eviction picks its victim.
#[derive(Clone, Copy)]
enum Pick<P> {
    /// The first in the order (from the partition heads), unless it is `adding`.
    First { adding: Option<*const Session<P>> },
    /// The first in the order other than this session.
    Excluding(*const Session<P>),
}

/// What one eviction attempt did.
pub(crate) enum Evict<P> {
    /// This session was unlinked; the caller owns the cache's strong reference.
    Evicted(Arc<Session<P>>),
    /// Another thread changed the chosen victim first: try again.
    Raced,
    /// Nothing is linked (the count is made of places taken by links still
    /// in their critical section).
    Empty,
    /// The first session in the order is the one the caller is adding: it is
    /// linked already (another add of the same object won), so nothing is evicted.
    IsSelf,
    /// The first session in the order does not expire before the bound.
    NotBelow,
}

/// A value alone on its cache lines (128 bytes: two lines, for CPUs that
/// prefetch lines in pairs).
#[repr(align(128))]
struct LinePadded<T>(T);

pub(crate) struct Raw<P: Send + Sync + 'static> {
    map: ShardMap<Link<P>, Pos>,
    order: Order,
    /// Linked sessions plus the places of links in progress (each taken
    /// inside the critical section that links); never above
    /// `capacity` except after `set_capacity` lowered it.
    count: AtomicUsize,
    capacity: AtomicUsize,
    /// Written by every link; on its own cache line, so that the adds' reads
    /// of `count` and `capacity` (and of the map's and order's fields) do not
    /// miss after each other thread's link.
    seq: LinePadded<AtomicU64>,
    /// The timeout (seconds) of sessions without their own.
    timeout_secs: u64,
    epoch: Epoch,
    /// Per shard (same index): its recent explicit removals, for the re-add of
    /// a store's answer (`add_unless_removed`).
    removals: Box<[RemovalLog]>,
}

impl<P: Send + Sync + 'static> Raw<P> {
    /// A cache over `shards` map shards (rounded up to a power of two, at least
    /// 2), each with its own eviction partition.
    pub(crate) fn new(shards: usize, capacity: usize, timeout_secs: u64, epoch: Epoch) -> Self {
        let map = ShardMap::new(shards);
        // One partition per shard, same index: see `Order`'s access rule.
        let order = Order::new(map.shards());
        debug_assert_eq!(order.parts(), map.shards());
        let removals = (0..map.shards()).map(|_| RemovalLog::new()).collect();
        Raw {
            map,
            order,
            count: AtomicUsize::new(0),
            capacity: AtomicUsize::new(capacity),
            seq: LinePadded(AtomicU64::new(1)),
            timeout_secs,
            epoch,
            removals,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    pub(crate) fn set_capacity(&self, capacity: usize) -> usize {
        self.capacity.swap(capacity, Ordering::AcqRel)
    }

    pub(crate) fn slots(&self) -> usize {
        self.map.slots()
    }

    /// Entries in the order (for tests: equals `len()` when quiescent).
    pub(crate) fn entries(&self) -> usize {
        (0..self.map.shards())
            .map(|i| {
                self.map.with_shard(i, |_| {
                    // SAFETY: shard `i` is write-locked for this call.
                    unsafe { self.order.exclusive(i) }.len()
                })
            })
            .sum()
    }

    pub(crate) fn parts(&self) -> usize {
        self.order.parts()
    }

    /// The shard (and partition) of `key`.
    pub(crate) fn shard_of(&self, key: &Id) -> usize {
        self.map.shard_of(self.map.hash(key))
    }

    #[inline]
    fn next_seq(&self) -> u64 {
        self.seq.0.fetch_add(1, Ordering::Relaxed)
    }

    /// A new strong reference to the session linked under `key`.
    #[inline]
    pub(crate) fn get(&self, key: &Id) -> Option<Arc<Session<P>>> {
        let guard = self.epoch.pin();
        self.map.read(key, |e| {
            let (link, _) = e?;
            loop {
                if let Some(s) = link.load(&guard).upgrade() {
                    return Some(s);
                }
                // A replace (under this same read lock) released the session we
                // loaded; the link already holds its successor. Let it finish.
                sync::backoff();
            }
        })
    }

    /// Links `s`, or replaces the session with its id, or does nothing if `s`
    /// itself is linked (with `refile_same`, its entry then moves to its
    /// current expiry if that changed). Every entry is filed at the expiry read
    /// from the session with its partition held, never one computed before: an
    /// `UPDATE_TIME` add stamps the time outside any lock, and another add may
    /// stamp it again before this one files (loom models 20c, 20f). Sessions
    /// evicted to make room are passed to `on_evict`, with no lock held.
    pub(crate) fn add(
        &self,
        s: &Arc<Session<P>>,
        refile_same: bool,
        on_evict: &mut dyn FnMut(Arc<Session<P>>),
    ) -> Added {
        let key = s.key();
        let sp = Arc::as_ptr(s);
        // The identical object or a replace: the shard read lock only. The map
        // reads a stored key's session id to compare it, and a concurrent
        // replace may be swapping that key's pointer: we pin before the first
        // comparison (the old allocation then waits for our guard). A new id
        // usually meets no key to compare, and then pins nothing.
        // Hashed once: for the lookup here and the insert below.
        let hash = self.map.hash(key);
        let fast = self.map.read_lazy_hashed(
            hash,
            key,
            || self.epoch.pin(),
            |e, guard| {
                e.map(|(link, pos)| {
                    let linked = self.link_existing(link, pos, s, hash, refile_same);
                    (linked, guard)
                })
            },
        );
        match fast {
            None => {}
            Some((Linked::Same, _)) => return Added::Same,
            Some((Linked::Replaced(old), guard)) => {
                let guard = guard.unwrap_or_else(|| self.epoch.pin());
                let old = old.release_replaced(&guard);
                drop(guard);
                drop(old);
                self.shrink_after_replace(sp, on_evict);
                return Added::Replaced;
            }
        }

        // The id's shard, and so its entry's partition.
        let part = self.map.shard_of(hash);
        // A new id (absent at the probe). Under its shard's write lock: look
        // again, then take a place (a free one, or the first session in the
        // order: evicted from this shard, or from another one taken only if
        // its write lock is free right now) and link, in one critical section:
        // an add never evicts for an id that another add links meanwhile
        // (DESIGN.md, "Linking a new id"). If the eviction would have to wait,
        // the waiting path below runs instead.
        if let Some(done) = self.map.with_shard(part, |sh| {
            self.link_new(sh, part, hash, s, refile_same, None)
        }) {
            return self.finish(done, s, hash, on_evict);
        }

        self.add_waiting(s, hash, part, refile_same, None, on_evict)
            .expect("an add without a removal mark is never refused")
    }

    /// `add` for a new id whose first critical section could not take a place
    /// without waiting (the victim's shard and the runner-up's were busy, the
    /// order kept moving, nothing could be taken, or the cache is over a
    /// lowered capacity). Over a lowered capacity it first evicts down to the
    /// capacity, holding no lock: those evictions stand whatever the add turns
    /// out to be (a replace too must leave the cache within its limit). The
    /// place itself is taken in the critical section that links, as on the
    /// first try, now holding the id's shard and the victim's together, both
    /// taken waiting, in index order (`ShardMap::with_two_shards`): so an add
    /// never evicts for an id that another add links meanwhile (loom model
    /// 20g). With `mark` (the re-add of a store's answer,
    /// `add_unless_removed`), that critical section first asks the removal
    /// log, and a refused link (`None`) evicts nothing for its place.
    #[cold]
    #[inline(never)]
    fn add_waiting(
        &self,
        s: &Arc<Session<P>>,
        hash: u64,
        part: usize,
        refile_same: bool,
        mark: Option<&RemovalMark>,
        on_evict: &mut dyn FnMut(Arc<Session<P>>),
    ) -> Option<Added> {
        let sp = Arc::as_ptr(s);
        let checked = !mutant::STORE_READD_UNCHECKED && !mutant::STORE_READD_FALLBACK_UNCHECKED;
        loop {
            let cap = self.capacity.load(Ordering::Acquire);
            let c = self.count.load(Ordering::Acquire);
            if cap != 0 && c > cap {
                // The capacity was lowered: give places back until it fits.
                match self.evict::<{ place::FREE_IF_OVER }>(Pick::First { adding: Some(sp) }, None)
                {
                    Evict::Evicted(v) => on_evict(v),
                    Evict::IsSelf => {
                        // A concurrent add of this very object linked it first,
                        // and it is the next victim: this add is the no-op
                        // (never evict what we add), and with `refile_same` it
                        // re-files it, as when found at once: the linker filed
                        // the expiry it computed before this add stamped the
                        // time.
                        if refile_same {
                            self.refile_if_linked(s, hash);
                        }
                        return Some(Added::Same);
                    }
                    Evict::Raced => {}
                    // Everything counted is a place still being linked by
                    // another thread: let it finish.
                    Evict::Empty | Evict::NotBelow => sync::backoff(),
                }
                continue;
            }
            // The shard of the first session in the order, to hold with ours
            // (if it is another one and the cache is full; `link_new` scans
            // again under the locks).
            let victim = if cap != 0 && c == cap {
                self.order.min_part().map(|(_, v)| v).filter(|&v| v != part)
            } else {
                None
            };
            let link =
                |sh: &mut ShardW<'_, Link<P>, Pos>,
                 held: Option<(usize, &mut ShardW<'_, Link<P>, Pos>)>| {
                    if mark.is_some_and(|m| checked && self.removals[part].refuses(m, sh)) {
                        return Some(None);
                    }
                    self.link_new(sh, part, hash, s, refile_same, held)
                        .map(Some)
                };
            let done = match victim {
                Some(v) => self
                    .map
                    .with_two_shards(part, v, |sh, vsh| link(sh, Some((v, vsh)))),
                None => self.map.with_shard(part, |sh| link(sh, None)),
            };
            match done {
                Some(Some(done)) => return Some(self.finish(done, s, hash, on_evict)),
                Some(None) => return None,
                // The order moved meanwhile, or everything counted is a place
                // still being linked by another thread, or the capacity was
                // lowered: look again.
                None => sync::backoff(),
            }
        }
    }

    /// The link of a new id in one critical section: shard `part` (the id's)
    /// is write-locked (`sh`) for the whole call, and with `held` the caller
    /// also holds shard `held.0`'s write lock (its best guess at the victim's).
    /// It takes a place (a free one, or a victim's) and links; `None`: nothing
    /// was done (the cache is over a lowered capacity, nothing can be taken,
    /// or the eviction would have to wait for a shard), and `add_waiting` must
    /// run.
    #[inline(always)]
    fn link_new(
        &self,
        sh: &mut ShardW<'_, Link<P>, Pos>,
        part: usize,
        hash: u64,
        s: &Arc<Session<P>>,
        refile_same: bool,
        mut held: Option<(usize, &mut ShardW<'_, Link<P>, Pos>)>,
    ) -> Option<Done<P>> {
        let sp = Arc::as_ptr(s);
        if let Some((link, pos)) = sh.find(hash, s.key()) {
            // Linked since the probe (by a concurrent add): no place is needed.
            return Some(match self.link_existing(link, pos, s, hash, refile_same) {
                Linked::Same => Done::Same,
                Linked::Replaced(old) => Done::Replaced(old),
            });
        }
        // `s` is linked nowhere (a session is linked only under its id, absent
        // from this shard, which we hold): no eviction below can pick it.
        // A lost compare-and-swap (another add took or gave back a place) and a
        // raced scan (another thread changed the victim's partition) are retried
        // here, holding this shard: only busy victim shards (or a lowered
        // capacity, or a persistently moving order) send the add to
        // `add_waiting`.
        let mut rescans = 0;
        let adding = Some(sp);
        let evicted = loop {
            let cap = self.capacity.load(Ordering::Acquire);
            let c = self.count.load(Ordering::Acquire);
            if cap == 0 || c < cap {
                if self.take_place(c) {
                    break None;
                }
                continue;
            }
            if c > cap {
                return None;
            }
            // Full: unlink the first session in the order, whose place passes
            // to this add; if its shard is busy, the runner-up partition's.
            let (seen, first) = self.order.min_part()?;
            let ev = match self.evict_passing(first, seen, part, sh, &mut held, adding) {
                Some(ev) => ev,
                None => {
                    let (k, j) = self.order.runner_up(first)?;
                    self.evict_passing(j, k, part, sh, &mut held, adding)?
                }
            };
            match ev {
                Evict::Evicted(v) => break Some(v),
                // Another evictor changed that partition since the scan: scan
                // again (each rescan follows another thread's change).
                Evict::Raced if rescans < 3 => rescans += 1,
                // Nothing to take (the count is made of places in flight), or
                // the order keeps moving: nothing was done; `add_waiting`
                // waits.
                Evict::Raced | Evict::Empty | Evict::NotBelow | Evict::IsSelf => return None,
            }
        };
        // The place is ours: taken, or passed on by the victim's unlink.
        // SAFETY: shard `part` is write-locked until this call returns, and the
        // key holding `refs`' pointer is inserted with the position right here.
        let (pos, filed_late) = unsafe { self.file_new(part, s, Refs::new(s), hash) };
        // SAFETY: `s` is held by the caller for the whole call; once inserted,
        // the link owns the strong reference `file_new` published.
        sh.insert(hash, unsafe { Link::to(sp) }, pos);
        Some(Done::New {
            evicted,
            filed_late,
        })
    }

    /// For `link_new` (shard `part` write-locked: `sh`): evicts partition
    /// `j`'s minimum (`k` as the scan read it), passing its place to the add,
    /// under its shard's write lock: `sh` if `j` is `part`, the one `held`
    /// names if the caller holds it, else another one only if free right now
    /// (never waiting while `sh` is held): `None` if busy.
    #[inline(always)]
    fn evict_passing(
        &self,
        j: usize,
        k: Key,
        part: usize,
        sh: &mut ShardW<'_, Link<P>, Pos>,
        held: &mut Option<(usize, &mut ShardW<'_, Link<P>, Pos>)>,
        adding: Option<*const Session<P>>,
    ) -> Option<Evict<P>> {
        if j == part {
            return Some(self.evict_locked::<{ place::PASS }>(j, k, sh, adding, None));
        }
        if let Some((v, vsh)) = held {
            if *v == j {
                return Some(self.evict_locked::<{ place::PASS }>(j, k, vsh, adding, None));
            }
        }
        self.map.try_with_shard(j, |vsh| {
            self.evict_locked::<{ place::PASS }>(j, k, vsh, adding, None)
        })
    }

    /// What remains of an add once `link_new`'s locks are released: the
    /// replaced session's release, the callback of the session evicted to
    /// make room, the shrink after a replace.
    #[inline(always)]
    fn finish(
        &self,
        done: Done<P>,
        s: &Arc<Session<P>>,
        hash: u64,
        on_evict: &mut dyn FnMut(Arc<Session<P>>),
    ) -> Added {
        let (added, evicted) = match done {
            Done::Same => (Added::Same, None),
            Done::Replaced(old) => {
                // Replaced under the write lock: no reader can still hold the
                // old pointer (readers load and upgrade under the read lock).
                drop(old.release_removed());
                (Added::Replaced, None)
            }
            Done::New {
                evicted,
                filed_late,
            } => {
                if let Some(part) = filed_late {
                    self.file_late(s, part, hash);
                }
                (Added::New, evicted)
            }
        };
        // The session evicted to make room: its callback now, with no lock
        // held.
        if let Some(v) = evicted {
            on_evict(v);
        }
        if added == Added::Replaced {
            self.shrink_after_replace(Arc::as_ptr(s), on_evict);
        }
        added
    }

    /// Files a new id's entry in partition `part` and publishes `refs`: the key
    /// the caller inserts (holding this very pointer, with the position
    /// returned) owns the reference from then on. The second value is `Some`
    /// only under the `order_after_pointer` mutant (see `file_late`).
    ///
    /// # Safety
    /// The caller holds shard `part`'s write lock and inserts that key before
    /// releasing it.
    unsafe fn file_new(
        &self,
        part: usize,
        s: &Session<P>,
        refs: Refs<P>,
        hash: u64,
    ) -> (Pos, Option<usize>) {
        if mutant::ORDER_AFTER_POINTER {
            // MUTANT (test-only cfg): publish the pointer now, file the entry
            // after the write lock is released.
            refs.publish();
            return (
                Pos::new((part as u64) << 32 | u64::from(u32::MAX)),
                Some(part),
            );
        }
        // SAFETY: per the contract, the write lock of shard `part` is held
        // while the returned lock lives (it dies in this statement).
        let expiry = s.expiry(self.timeout_secs);
        let pos = unsafe { self.order.exclusive(part) }.insert(hash, expiry, self.next_seq());
        // The inserted key is this very pointer: it owns the reference from now
        // on; the position is published with it.
        refs.publish();
        (Pos::new(pos), None)
    }

    /// MUTANT (test-only cfg `order_after_pointer`): the second step files the
    /// entry whether or not the id is still linked (round one's orphaned
    /// entries).
    fn file_late(&self, s: &Arc<Session<P>>, part: usize, hash: u64) {
        let sp = Arc::as_ptr(s);
        let _pin = self.epoch.pin();
        self.map.read(s.key(), |e| {
            // SAFETY: under the read lock of the id's shard, `part`.
            let mut l = unsafe { self.order.lock(part) };
            let pos = l.insert(hash, s.expiry(self.timeout_secs), self.next_seq());
            if let Some((_, p)) = e.filter(|(link, _)| link.holds(sp)) {
                p.set(pos);
            }
        });
    }

    /// Gives one place back if the cache is over its capacity, in one step
    /// (`place::FREE_IF_OVER`); false once it fits.
    fn free_if_over(&self) -> bool {
        let mut c = self.count.load(Ordering::Acquire);
        loop {
            let cap = self.capacity.load(Ordering::Acquire);
            if cap == 0 || c <= cap {
                return false;
            }
            match self
                .count
                .compare_exchange(c, c - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
    }

    /// One place under the capacity, if the count is still `c`.
    #[inline]
    fn take_place(&self, c: usize) -> bool {
        if mutant::CAPACITY_CHECK_THEN_ACT {
            // MUTANT (test-only cfg): the check and the increment are two steps.
            sync::backoff();
            self.count.fetch_add(1, Ordering::AcqRel);
            return true;
        }
        self.count
            .compare_exchange(c, c + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// `s` (whose id's map hash is `hash`) under an id already in the map
    /// (shard read or write lock held by the caller).
    fn link_existing(
        &self,
        link: &Link<P>,
        pos: &Pos,
        s: &Arc<Session<P>>,
        hash: u64,
        refile_same: bool,
    ) -> Linked<P> {
        let sp = Arc::as_ptr(s);
        let seen = link.raw();
        if seen == sp {
            if refile_same {
                self.refile(link, pos, s, hash);
            }
            return Linked::Same;
        }
        let refs = Refs::new(s);
        let mut part = if mutant::READ_LOCK_AS_EXCLUSIVE {
            // MUTANT (test-only cfg): no mutex under the read lock.
            // SAFETY: none (the planted bug; loom's cell reports the overlap).
            unsafe { self.order.exclusive(part_of_pos(pos.get())) }
        } else {
            // SAFETY: the caller holds the id's shard lock (read or write), and
            // an entry's partition is its id's shard.
            unsafe { self.order.lock_pos(pos.get()) }
        };
        if !mutant::SLOT_LOAD_STORE && link.holds(sp) {
            // Another add linked this very object since we looked, with the
            // expiry it computed before this add stamped the time.
            drop(part);
            drop(refs);
            if refile_same {
                self.refile(link, pos, s, hash);
            }
            return Linked::Same;
        }
        let old_pos = pos.get();
        let new_pos = part.insert(hash, s.expiry(self.timeout_secs), self.next_seq());
        part.remove(old_pos);
        pos.set(new_pos);
        let old = link.replace(refs, seen);
        drop(part);
        Linked::Replaced(old)
    }

    /// The identical object was added again with a new time: move its entry if its
    /// expiry changed (keeping its insertion seq). The expiry is read from the
    /// session with the partition held, not taken from the caller: two re-adds
    /// may stamp the time in one order and re-file in the other, and the last
    /// re-file must carry the last stamp (loom model 20c).
    fn refile(&self, link: &Link<P>, pos: &Pos, s: &Arc<Session<P>>, hash: u64) {
        // SAFETY: as in `link_existing` (same caller, same lock).
        let mut part = unsafe { self.order.lock_pos(pos.get()) };
        if !link.holds(Arc::as_ptr(s)) {
            return; // replaced meanwhile
        }
        let expiry = s.expiry(self.timeout_secs);
        let old_pos = pos.get();
        let (old_expiry, seq) = part.key_at(old_pos);
        if old_expiry == expiry {
            return;
        }
        let new_pos = part.insert(hash, expiry, seq);
        part.remove(old_pos);
        pos.set(new_pos);
    }

    /// `refile` for `s` if it is still the session linked under its id.
    #[cold]
    fn refile_if_linked(&self, s: &Arc<Session<P>>, hash: u64) {
        self.map.read_lazy_hashed(
            hash,
            s.key(),
            || self.epoch.pin(),
            |e, _guard| {
                if let Some((link, pos)) = e.filter(|(link, _)| link.holds(Arc::as_ptr(s))) {
                    self.refile(link, pos, s, hash);
                }
            },
        );
    }

    /// A replace returns true, so (as OpenSSL) the cache must fit its limit
    /// counting the added session: only possible to break after the limit was
    /// lowered. Evicts, soonest expiry first, never the session just linked.
    fn shrink_after_replace(
        &self,
        linked: *const Session<P>,
        on_evict: &mut dyn FnMut(Arc<Session<P>>),
    ) {
        loop {
            let cap = self.capacity.load(Ordering::Acquire);
            if cap == 0 || self.count.load(Ordering::Acquire) <= cap {
                return;
            }
            match self.evict_one_excluding(linked) {
                Evict::Evicted(s) => on_evict(s),
                Evict::Raced => {}
                Evict::Empty | Evict::NotBelow | Evict::IsSelf => return,
            }
        }
    }

    /// Unlinks the first session in the order other than `linked` (the session a
    /// replace just linked). The rare shrink after a lowered capacity: every
    /// shard's write lock is taken once.
    fn evict_one_excluding(&self, linked: *const Session<P>) -> Evict<P> {
        self.evict::<{ place::FREE_IF_OVER }>(Pick::Excluding(linked), None)
    }

    /// Unlinks the victim `pick` names (with `below`, only if it expires before
    /// that time: `below > expiry`); `place` says what becomes of its place
    /// under the capacity.
    fn evict<const PLACE: u8>(&self, pick: Pick<P>, below: Option<u64>) -> Evict<P> {
        match pick {
            Pick::First { adding } => {
                let Some((seen, first)) = self.order.min_part() else {
                    return Evict::Empty;
                };
                // Single-threaded the try always succeeds (exact order). If the
                // shard is busy (another evictor taking that very minimum, or
                // any other holder, a reader too), an eviction for an add takes
                // the runner-up partition instead of queueing behind it: under
                // concurrency its victim may then be the second smallest (see
                // DESIGN.md, "Exact and approximate"). A flush (`below`) waits:
                // the runner-up's head says nothing about the first's, and a
                // flush that met an unexpired runner-up would stop with expired
                // sessions left (loom model 19).
                let other = below.is_none().then_some(|| {
                    self.order
                        .runner_up(first)
                        .map_or((first, seen), |(k, p)| (p, k))
                });
                self.map
                    .with_shard_or((first, seen), other, |part, seen, sh| {
                        self.evict_locked::<PLACE>(part, seen, sh, adding, below)
                    })
            }
            Pick::Excluding(ex) => {
                let best = (0..self.map.shards())
                    .filter_map(|i| {
                        self.map.with_shard(i, |sh| {
                            // SAFETY: shard `i` is write-locked for this call.
                            unsafe { self.order.exclusive(i) }.min_excluding(|h| {
                                sh.get(h.hash, |_, p| p.get() == h.pos)
                                    .is_some_and(|(link, _)| link.holds(ex))
                            })
                        })
                    })
                    .min_by_key(|h| h.key);
                let Some(head) = best else {
                    return Evict::Empty;
                };
                let part = part_of_pos(head.pos);
                self.map.with_shard(part, |sh| {
                    // SAFETY: shard `part` is write-locked for this call.
                    let mut l = unsafe { self.order.exclusive(part) };
                    // The entry must still be the one read (same `seq`: unique
                    // per link, so not `ex`'s either).
                    if !l.still(head.pos, &head) {
                        return Evict::Raced;
                    }
                    self.unlink_head::<PLACE>(&mut l, sh, &head, None, below)
                })
            }
        }
    }

    /// Unlinks partition `part`'s minimum, whose shard is write-locked (`sh`),
    /// unless it is above `seen` (the minimum the caller's scan read there:
    /// `Raced`) or is `adding`.
    fn evict_locked<const PLACE: u8>(
        &self,
        part: usize,
        seen: Key,
        sh: &mut ShardW<'_, Link<P>, Pos>,
        adding: Option<*const Session<P>>,
        below: Option<u64>,
    ) -> Evict<P> {
        // SAFETY: the caller holds shard `part`'s write lock while the returned
        // lock lives (until this call returns).
        let mut l = unsafe { self.order.exclusive(part) };
        let Some(head) = l.min() else {
            return Evict::Raced;
        };
        if mutant::RELEASE_BEFORE_UNLINK {
            // MUTANT (test-only cfg): drops the cache's reference before
            // knowing the unlink is its own.
            if let Some((link, _)) = sh.get(head.hash, |_, p| p.get() == head.pos) {
                // SAFETY: none (the planted bug).
                unsafe { mutant_release_early(link.raw()) };
            }
        }
        // Another thread changed this partition since the scan (most likely
        // another evictor took the minimum seen, and the next one may now be in
        // another partition): scan again, its cell is current now. A smaller
        // minimum than seen is still the one to take.
        if head.key > seen {
            return Evict::Raced;
        }
        self.unlink_head::<PLACE>(&mut l, sh, &head, adding, below)
    }

    /// Unlinks the session of `head`, an entry present in partition `l`, whose
    /// shard is write-locked (`sh`), unless it is `adding` (`IsSelf`). The entry
    /// present means its session is linked, under the key whose value is the
    /// entry's position: the key is found by the entry's hash and that position
    /// alone (the victim's id is not read), and the cache's strong reference
    /// keeps the session alive while the lock is held.
    fn unlink_head<const PLACE: u8>(
        &self,
        l: &mut PartLock<'_>,
        sh: &mut ShardW<'_, Link<P>, Pos>,
        head: &Head,
        adding: Option<*const Session<P>>,
        below: Option<u64>,
    ) -> Evict<P> {
        if below.is_some_and(|t| head.key.0 >= t) {
            return Evict::NotBelow;
        }
        let found = sh.take_if(
            head.hash,
            |_, pos| pos.get() == head.pos,
            |link, _| {
                if Some(link.raw()) == adding {
                    return Err(Evict::IsSelf);
                }
                if let Some(t) = below {
                    // SAFETY: `sh` is this key's shard, write-locked for the
                    // borrow.
                    let s = unsafe { link.linked_under_write_lock() };
                    // Whether a flush may still remove it: its time may have
                    // moved on since it was filed (an identical re-add sets the
                    // time before re-filing).
                    if s.expiry(self.timeout_secs) >= t {
                        return Err(Evict::Raced);
                    }
                }
                if PLACE == place::FREE_IF_OVER && !self.free_if_over() {
                    return Err(Evict::Raced);
                }
                Ok(())
            },
        );
        let (link, _) = match found {
            Some(Ok(entry)) => entry,
            Some(Err(not_taken)) => return not_taken,
            None => {
                debug_assert!(false, "an entry present is linked under its id");
                return Evict::Raced;
            }
        };
        l.remove(head.pos);
        if PLACE == place::FREE {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
        Evict::Evicted(link.into_unlinked().release_removed())
    }

    /// Removes the entry at `pos` of `link` and its place in the count. The
    /// caller holds the write lock of the id's shard (`remove`'s `with_shard`
    /// closure).
    fn unfile(&self, link: &Link<P>, pos: &Pos) {
        let pos = pos.get();
        // SAFETY: the caller holds the write lock of the id's shard, whose index
        // is its entry's partition.
        let mut part = unsafe { self.order.exclusive(part_of_pos(pos)) };
        if mutant::ORDER_AFTER_POINTER && !part.files(pos, self.map.hash(link)) {
            // MUTANT (test-only cfg): the entry is not filed yet.
        } else {
            part.remove(pos);
        }
        drop(part);
        self.count.fetch_sub(1, Ordering::AcqRel);
    }

    /// Unlinks the session under `key` if it passes `expect`, and returns the
    /// cache's strong reference to it.
    pub(crate) fn remove(
        &self,
        key: &Id,
        expect: Expect<'_, P>,
    ) -> (Option<Arc<Session<P>>>, InFlight<'_>) {
        let hash = self.map.hash(key);
        let shard = self.map.shard_of(hash);
        let (taken, in_flight) = self.map.with_shard(shard, |sh| {
            // Recorded whether or not the id is cached, and in flight until the
            // caller drops the guard, after the removal's callback: a lookup
            // whose store answer is on its way must not re-add it
            // (`add_unless_removed`).
            let in_flight = self.removals[shard].record(hash, sh);
            let taken = sh.take_if(
                hash,
                |k, _| k.id() == key,
                |link, pos| {
                    let pass = match expect {
                        Expect::Any => true,
                        // `p` is held by the caller: no ABA.
                        Expect::Same(p) => link.holds(p),
                        Expect::SidCtx(ctx) => {
                            // SAFETY: under the id's shard write lock (this
                            // closure). (No epoch pin is needed for that borrow.)
                            let linked = unsafe { link.linked_under_write_lock() };
                            linked.sid_ctx_is(ctx)
                        }
                    };
                    if !pass {
                        return Err(());
                    }
                    self.unfile(link, pos);
                    Ok(())
                },
            );
            (taken.and_then(Result::ok), in_flight)
        });
        let taken = taken.map(|(link, _)| link.into_unlinked().release_removed());
        (taken, in_flight)
    }

    /// Where `key`'s shard's removal log stands now (no lock taken): taken by a
    /// lookup before it asks the external store, for `add_unless_removed`.
    pub(crate) fn removal_mark(&self, key: &Id) -> RemovalMark {
        let hash = self.map.hash(key);
        let shard = self.map.shard_of(hash);
        self.removals[shard].mark(hash, shard)
    }

    /// `add` of a session the external store answered for a lookup that took
    /// `mark` before asking: `None` (nothing done) if an explicit removal of its
    /// id may have run since (DESIGN.md, "Store answers and concurrent
    /// removals"). Decided under the id's shard write lock, in the critical
    /// section that links it, so a removal either precedes the check (and is
    /// seen) or follows the link (and removes it).
    pub(crate) fn add_unless_removed(
        &self,
        s: &Arc<Session<P>>,
        refile_same: bool,
        mark: RemovalMark,
        on_evict: &mut dyn FnMut(Arc<Session<P>>),
    ) -> Option<Added> {
        let hash = self.map.hash(s.key());
        if hash != mark.hash {
            // The store answered a session of another id than was asked: no
            // mark covers it; a plain add, as OpenSSL's.
            return Some(self.add(s, refile_same, on_evict));
        }
        let shard = mark.shard;
        let done = self.map.with_shard(shard, |sh| {
            if mutant::STORE_READD_UNCHECKED || !self.removals[shard].refuses(&mark, sh) {
                Some(self.link_new(sh, shard, hash, s, refile_same, None))
            } else {
                None
            }
        })?;
        match done {
            Some(done) => Some(self.finish(done, s, hash, on_evict)),
            // The place could not be taken without waiting: checking the log
            // again when linking.
            None => self.add_waiting(s, hash, shard, refile_same, Some(&mark), on_evict),
        }
    }

    /// Unlinks, in order, every session expired at `t` (`t > expiry`; `t == 0`:
    /// every session), passing each to `on_remove` with no lock held. Removes at
    /// most as many sessions as were linked when it started.
    pub(crate) fn flush(&self, t: u64, on_remove: &mut dyn FnMut(Arc<Session<P>>)) -> usize {
        let mut budget = self.len();
        let mut removed = 0;
        while budget > 0 {
            match self.evict::<{ place::FREE }>(Pick::First { adding: None }, (t != 0).then_some(t))
            {
                Evict::Evicted(s) => {
                    budget -= 1;
                    removed += 1;
                    on_remove(s);
                }
                Evict::Raced => budget -= 1,
                Evict::Empty | Evict::NotBelow | Evict::IsSelf => break,
            }
        }
        removed
    }
}

impl<P: Send + Sync + 'static> Drop for Raw<P> {
    fn drop(&mut self) {
        // Exclusive access: release every reference still held, now.
        for (link, _) in self.map.drain() {
            drop(drop_exclusive(link));
        }
    }
}
