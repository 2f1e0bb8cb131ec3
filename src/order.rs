//! The eviction order: one partition per map shard, of entries in `(expiry, seq)`
//! order, each publishing its minimum in two atomics. A partition is reached
//! with its shard's write lock alone (`Order::exclusive`) or with the shard's
//! read lock plus the partition's own mutex (`Order::lock`).
//!
//! A partition keeps its entries in a slab (reused, never shrunk below its peak)
//! threaded into one doubly linked FIFO list (`u32` links) **per expiry second**,
//! the lists found through a small `BTreeMap` from expiry to the list's ends: a
//! new link takes a fresh `seq` with exclusive access to the partition, so it is always the
//! newest of its expiry and is appended in O(1) after an O(log E) lookup (E:
//! distinct expiries in the partition: one per second of session creation time
//! spread, whatever order sessions are added in). Only an entry re-filed with
//! its old `seq` (an identical re-add under `UPDATE_TIME`) can fall behind its
//! list's tail; it goes to a `BTreeMap` keyed by `(expiry, seq)` instead. The
//! partition's minimum is the smaller of the first list's head and that map's
//! first entry; it is republished in the partition's `HeadCell` whenever a
//! `PartLock` is dropped, so the evictor can find the partition holding the global
//! minimum without taking any lock.
//!
//! Lock order: a shard lock of the map may be held when a partition mutex is taken,
//! never the reverse.

use crate::sync::{lock, AtomicU64, CellMut, ExclCell, Mutex, MutexGuard, Ordering};
use std::collections::BTreeMap;

/// No entry (list end, empty list, free-list end).
const NIL: u32 = u32::MAX;
/// The `prev` of an entry filed in the sorted map rather than a list.
const SORTED: u32 = u32::MAX - 1;
/// The `prev` of a free slab entry.
const FREE: u32 = u32::MAX - 2;

/// `(expiry, seq)`: soonest expiry first, then oldest insert.
pub type Key = (u64, u64);

/// A partition's view of one linked session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// The map hash of the session's id: the evictor finds the session's map
    /// entry with it (and the position), without reading the session.
    pub(crate) hash: u64,
    pub(crate) key: Key,
    /// The entry's position (`(partition << 32) | index`).
    pub(crate) pos: u64,
}

struct Entry {
    /// The map hash of the session's id (see `Head::hash`).
    hash: u64,
    expiry: u64,
    seq: u64,
    prev: u32,
    next: u32,
}

impl Entry {
    fn key(&self) -> Key {
        (self.expiry, self.seq)
    }
}

/// The first and last entry of one expiry's list.
#[derive(Clone, Copy)]
struct Ends {
    head: u32,
    tail: u32,
}

struct Inner {
    slab: Vec<Entry>,
    free: u32,
    /// One list per expiry, each in `seq` order: every expiry's list but the
    /// greatest one's (`hot`).
    lists: BTreeMap<u64, Ends>,
    /// The list of the greatest expiry, kept out of `lists`: appends with the
    /// newest expiry (nearly all of them, sessions sharing one timeout) and
    /// removals at its ends touch no map. `None` only when `lists` is empty
    /// too; else every key of `lists` is below its expiry.
    hot: Option<(u64, Ends)>,
    /// Entries that could not be appended to their expiry's list.
    sorted: BTreeMap<Key, u32>,
    /// The smallest entry (`NIL` when empty), kept up to date by every insert
    /// and removal: the evictor and every republish read it in O(1).
    min: u32,
    len: usize,
}

impl Inner {
    fn new() -> Self {
        Inner {
            slab: Vec::new(),
            free: NIL,
            lists: BTreeMap::new(),
            hot: None,
            sorted: BTreeMap::new(),
            min: NIL,
            len: 0,
        }
    }

    fn alloc(slab: &mut Vec<Entry>, free: &mut u32, e: Entry) -> u32 {
        if *free != NIL {
            let i = *free;
            *free = slab[i as usize].next;
            slab[i as usize] = e;
            i
        } else {
            let i = u32::try_from(slab.len()).expect("fewer than 2^32 - 3 entries per partition");
            assert!(i < FREE, "fewer than 2^32 - 3 entries per partition");
            if slab.len() == slab.capacity() {
                // Grow by a quarter, not double: at most 25% of the slab unused
                // (12.5% on average), still amortized O(1) per insert.
                slab.reserve_exact((slab.len() / 4).max(16));
            }
            slab.push(e);
            i
        }
    }

    /// The lists in expiry order.
    fn all_lists(&self) -> impl Iterator<Item = &Ends> {
        self.lists.values().chain(self.hot.as_ref().map(|(_, e)| e))
    }

    /// The ends of `expiry`'s list, if it has one.
    fn ends_mut(&mut self, expiry: u64) -> Option<&mut Ends> {
        match &mut self.hot {
            Some((e, ends)) if *e == expiry => Some(ends),
            _ => self.lists.get_mut(&expiry),
        }
    }

    /// The smallest of `a` and `b` (either may be `NIL`).
    fn smaller(&self, a: u32, b: u32) -> u32 {
        if a == NIL {
            b
        } else if b == NIL || self.slab[a as usize].key() <= self.slab[b as usize].key() {
            a
        } else {
            b
        }
    }

    /// The minimum computed from the lists and the sorted map.
    fn compute_min(&self) -> u32 {
        let l = self.all_lists().next().map_or(NIL, |e| e.head);
        let s = self.sorted.first_key_value().map_or(NIL, |(_, &i)| i);
        self.smaller(l, s)
    }

    fn min(&self) -> Option<u32> {
        (self.min != NIL).then_some(self.min)
    }

    fn head_of(&self, part: usize, i: u32) -> Head {
        let e = &self.slab[i as usize];
        Head {
            hash: e.hash,
            key: e.key(),
            pos: ((part as u64) << 32) | u64::from(i),
        }
    }
}

/// One partition, on its own cache lines: the order of the sessions of one map
/// shard (same index). Its `Inner` may be accessed only with the shard's write
/// lock held (exclusive by itself: `Order::exclusive`), or with the shard's read
/// lock held *and* this mutex (`Order::lock`): readers of one shard exclude each
/// other here, and all of them exclude the write-lock holder there.
#[repr(align(128))]
pub(crate) struct Part {
    mutex: Mutex<()>,
    inner: ExclCell<Inner>,
}

// SAFETY: `inner` is only reached through `Order::lock` and `Order::exclusive`,
// whose contracts (a shard lock plus the mutex, or the shard write lock) give
// one thread at a time exclusive access; `Inner` is `Send`.
unsafe impl Sync for Part {}

/// A partition's published minimum. The cells of all partitions are packed
/// together (16 bytes each: 64 partitions in 16 cache lines) so that the
/// evictor's scan reads few lines whatever the partition count.
struct HeadCell {
    expiry: AtomicU64,
    seq: AtomicU64,
}

/// Partitions per summary group.
const GROUP: usize = 8;

/// All partitions.
pub(crate) struct Order {
    parts: Box<[Part]>,
    heads: Box<[HeadCell]>,
    /// The minimum of each group of `GROUP` heads, republished by whoever changes
    /// a head of the group: the evictor scans the groups, then one group's heads
    /// (64 partitions: 8 + 8 cells instead of 64).
    groups: Box<[HeadCell]>,
    /// Per group: bumped (read-modify-write, so totally ordered) by every
    /// republisher of the group's summary; see `PartLock::republish`.
    group_vers: Box<[AtomicU64]>,
}

impl HeadCell {
    fn empty() -> Self {
        HeadCell {
            expiry: AtomicU64::new(u64::MAX),
            seq: AtomicU64::new(u64::MAX),
        }
    }

    #[inline]
    fn read(&self) -> Key {
        let e = self.expiry.load(Ordering::Acquire);
        (e, self.seq.load(Ordering::Relaxed))
    }

    /// The key as one `u128` (expiry high, seq low: the same order as the pair).
    #[inline]
    fn read_u128(&self) -> u128 {
        let (e, s) = self.read();
        (u128::from(e) << 64) | u128::from(s)
    }

    #[inline]
    /// Publishes `(e, s)`; returns whether it changed. Skips the stores (and the
    /// cache-line transfer) when nothing changed.
    fn write(&self, (e, s): Key) -> bool {
        if self.seq.load(Ordering::Relaxed) != s || self.expiry.load(Ordering::Relaxed) != e {
            self.seq.store(s, Ordering::Relaxed);
            self.expiry.store(e, Ordering::Release);
            true
        } else {
            false
        }
    }
}

/// A cell's minimum and its index.
type Ranked = Option<(Key, usize)>;

/// The smallest non-empty cell of `cells`, with its index. (An empty cell reads
/// `EMPTY`, which is never below the best so far; a live entry's `seq` is never
/// `u64::MAX`.)
#[inline]
fn smallest(cells: &[HeadCell]) -> Ranked {
    // A full group (every partition count from 8 up): a fixed-size loop the
    // compiler unrolls: 919 -> 868 instructions per evicting add (callgrind
    // with BENCH_FIXED_TIME on `longrun --workloads churn`, docs/BENCHMARKS.md).
    if let Ok(group) = <&[HeadCell; GROUP]>::try_from(cells) {
        return smallest_of(group);
    }
    smallest_of(cells)
}

#[inline(always)]
fn smallest_of<'a>(cells: impl IntoIterator<Item = &'a HeadCell>) -> Ranked {
    let (mut best, mut best_i) = (u128::MAX, usize::MAX);
    for (i, h) in cells.into_iter().enumerate() {
        let k = h.read_u128();
        if k < best {
            best = k;
            best_i = i;
        }
    }
    (best_i != usize::MAX).then_some((((best >> 64) as u64, best as u64), best_i))
}

/// As `smallest`, skipping the cell at `skip`. Each key is compared as one
/// `u128` (`expiry` high, `seq` low: the same order as the pair): callgrind
/// counted 1 013 instructions per evicting add with it, 1 111 with the pair
/// compared field by field (docs/BENCHMARKS.md).
#[inline]
fn smallest_except(cells: &[HeadCell], skip: usize) -> Ranked {
    const NONE: u128 = u128::MAX;
    let (mut best, mut best_i) = (NONE, usize::MAX);
    for (i, h) in cells.iter().enumerate() {
        let k = if i == skip { NONE } else { h.read_u128() };
        if k < best {
            best = k;
            best_i = i;
        }
    }
    (best_i != usize::MAX).then_some((((best >> 64) as u64, best as u64), best_i))
}

/// The published key of an empty partition (or group).
const EMPTY: Key = (u64::MAX, u64::MAX);

impl Order {
    /// `parts` partitions, rounded up to a power of two, 1 to 2^16.
    pub(crate) fn new(parts: usize) -> Self {
        let parts = parts.clamp(1, 1 << 16).next_power_of_two();
        Order {
            parts: (0..parts)
                .map(|_| Part {
                    mutex: Mutex::new(()),
                    inner: ExclCell::new(Inner::new()),
                })
                .collect(),
            heads: (0..parts).map(|_| HeadCell::empty()).collect(),
            groups: (0..parts.div_ceil(GROUP))
                .map(|_| HeadCell::empty())
                .collect(),
            group_vers: (0..parts.div_ceil(GROUP))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    pub(crate) fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Partition `part` under its mutex.
    ///
    /// # Safety
    /// The caller holds the read (or write) lock of map shard `part`, for as long
    /// as the returned lock lives: so no holder of that shard's write lock is
    /// using `exclusive` meanwhile, and every other reader-side user waits here.
    #[inline]
    pub(crate) unsafe fn lock(&self, part: usize) -> PartLock<'_> {
        let m = lock(&self.parts[part].mutex);
        // SAFETY: the mutex excludes the other reader-side users of the
        // partition, the caller's shard lock excludes `exclusive` users.
        unsafe { self.wrap(part, Some(m)) }
    }

    /// Partition `part`, with no mutex taken.
    ///
    /// # Safety
    /// The caller holds the **write** lock of map shard `part` for as long as the
    /// returned lock lives: no other thread holds that shard's lock in either
    /// mode, so no other `lock` or `exclusive` user of the partition exists.
    #[inline]
    pub(crate) unsafe fn exclusive(&self, part: usize) -> PartLock<'_> {
        // SAFETY: per the contract.
        unsafe { self.wrap(part, None) }
    }

    /// # Safety
    /// Access to partition `part` is exclusive while the result lives.
    #[inline]
    unsafe fn wrap<'a>(&'a self, part: usize, mutex: Option<MutexGuard<'a, ()>>) -> PartLock<'a> {
        PartLock {
            order: self,
            index: part,
            moved: false,
            // SAFETY: exclusive per the contract.
            inner: unsafe { self.parts[part].inner.get_mut() },
            _mutex: mutex,
        }
    }

    /// Partition of an entry position under its mutex.
    ///
    /// # Safety
    /// As `lock`, for the shard with the position's partition index.
    #[inline]
    pub(crate) unsafe fn lock_pos(&self, pos: u64) -> PartLock<'_> {
        // SAFETY: per the contract.
        unsafe { self.lock(part_of_pos(pos)) }
    }

    /// The partition whose published minimum is the smallest, and that minimum,
    /// read without any lock: a hint (the caller re-reads the minimum with
    /// access to the partition). `None` if every partition looks empty.
    /// Single-threaded (or quiescent) it is the partition holding the global
    /// minimum.
    pub(crate) fn min_part(&self) -> Option<(Key, usize)> {
        if self.groups.len() == 1 {
            // Up to `GROUP` partitions: no summaries, one pass over the cells.
            return smallest(&self.heads);
        }
        // The group summaries are hints that a racing republish can leave stale
        // (even "empty" while a partition has entries). If they lead nowhere,
        // scan every partition's own cell: each is written only with exclusive
        // access to its partition, so it is never stale once that access ends,
        // and a full cache always finds a victim (no livelock on a stale
        // summary).
        let from_groups = smallest(&self.groups).and_then(|(_, g)| {
            let base = g * GROUP;
            let cells = &self.heads[base..(base + GROUP).min(self.heads.len())];
            smallest(cells).map(|(k, b)| (k, base + b))
        });
        from_groups.or_else(|| smallest(&self.heads))
    }

    /// The runner-up to `min_part`'s pick `first` (when `first`'s shard is busy,
    /// most likely with another evictor taking that very minimum): the smallest
    /// published minimum of the other partitions of `first`'s group (with up to
    /// `GROUP` partitions, of all the others). A hint, as `min_part`.
    pub(crate) fn runner_up(&self, first: usize) -> Option<(Key, usize)> {
        let base = first / GROUP * GROUP;
        let cells = &self.heads[base..(base + GROUP).min(self.heads.len())];
        smallest_except(cells, first - base).map(|(k, i)| (k, base + i))
    }
}

/// The partition of an entry position.
#[inline]
pub(crate) fn part_of_pos(pos: u64) -> usize {
    (pos >> 32) as usize
}

/// A locked partition. Dropping it republishes the partition's minimum.
pub(crate) struct PartLock<'a> {
    /// Where the partition's minimum is published (on drop, if `moved`).
    order: &'a Order,
    index: usize,
    /// Whether the partition's minimum may have changed under this lock (an
    /// insert below it, or a removal of it): only then is it republished.
    moved: bool,
    /// Dropped before `_mutex` (declaration order): the access ends first.
    inner: CellMut<'a, Inner>,
    /// Held when the caller has only the shard's read lock.
    _mutex: Option<MutexGuard<'a, ()>>,
}

impl PartLock<'_> {
    /// Files a linked session (by its id's map hash); returns its position for
    /// the map's value.
    pub(crate) fn insert(&mut self, hash: u64, expiry: u64, seq: u64) -> u64 {
        let inner = &mut *self.inner;
        // The tail of its expiry's list, if it has one: the newest expiry's list
        // (nearly always) needs no map lookup.
        let tail = match inner.hot {
            Some((e, ends)) if e == expiry => Some(ends.tail),
            Some((e, _)) if e > expiry => inner.lists.get(&expiry).map(|ends| ends.tail),
            _ => None,
        };
        let prev = match tail {
            // The common case: the newest of its expiry, appended.
            Some(t) if inner.slab[t as usize].seq < seq => t,
            // A re-file with an old seq: behind its list's tail.
            Some(_) => SORTED,
            // The first of its expiry: a new list.
            None => NIL,
        };
        let i = Inner::alloc(
            &mut inner.slab,
            &mut inner.free,
            Entry {
                hash,
                expiry,
                seq,
                prev,
                next: NIL,
            },
        );
        match prev {
            SORTED => {
                inner.sorted.insert((expiry, seq), i);
            }
            NIL => {
                let ends = Ends { head: i, tail: i };
                if inner.hot.is_none_or(|(e, _)| e < expiry) {
                    // A new greatest expiry: the old hot list joins the map.
                    if let Some((e, old)) = inner.hot.replace((expiry, ends)) {
                        inner.lists.insert(e, old);
                    }
                } else {
                    inner.lists.insert(expiry, ends);
                }
            }
            t => {
                inner.slab[t as usize].next = i;
                if let Some(ends) = inner.ends_mut(expiry) {
                    ends.tail = i;
                }
            }
        }
        // Appended to a list: behind that list's head, so not the minimum.
        if matches!(prev, SORTED | NIL) {
            let min = inner.smaller(inner.min, i);
            if min != inner.min {
                inner.min = min;
                self.moved = true;
            }
        }
        inner.len += 1;
        ((self.index as u64) << 32) | u64::from(i)
    }

    /// Removes the entry at `pos` (which must be in this partition and live).
    pub(crate) fn remove(&mut self, pos: u64) {
        debug_assert_eq!((pos >> 32) as usize, self.index);
        let inner = &mut *self.inner;
        let i = pos as u32;
        let (prev, next, key) = {
            let e = &inner.slab[i as usize];
            debug_assert_ne!(e.prev, FREE, "removing a free entry");
            (e.prev, e.next, e.key())
        };
        if prev == SORTED {
            inner.sorted.remove(&key);
        } else {
            if prev != NIL {
                inner.slab[prev as usize].next = next;
            }
            if next != NIL {
                inner.slab[next as usize].prev = prev;
            }
            if prev == NIL && next == NIL {
                // Its expiry's list empties.
                if inner.hot.is_some_and(|(e, _)| e == key.0) {
                    inner.hot = inner.lists.pop_last();
                } else {
                    inner.lists.remove(&key.0);
                }
            } else if prev == NIL || next == NIL {
                // The head or the tail of its expiry's list.
                if let Some(ends) = inner.ends_mut(key.0) {
                    if prev == NIL {
                        ends.head = next;
                    }
                    if next == NIL {
                        ends.tail = prev;
                    }
                }
            }
        }
        let free = inner.free;
        let e = &mut inner.slab[i as usize];
        e.hash = 0;
        e.prev = FREE;
        e.next = free;
        inner.free = i;
        inner.len -= 1;
        if inner.min == i {
            self.moved = true;
            inner.min = if prev == NIL && next != NIL && inner.sorted.is_empty() {
                // The evictor's case: the head of the first list, whose next
                // entry (same expiry) is now the smallest.
                next
            } else {
                inner.compute_min()
            };
        }
    }

    /// Whether the entry at `pos` is live and files the id with map hash `hash`
    /// (for a mutant).
    pub(crate) fn files(&self, pos: u64, hash: u64) -> bool {
        (pos >> 32) as usize == self.index
            && self
                .inner
                .slab
                .get(pos as u32 as usize)
                .is_some_and(|e| e.hash == hash && e.prev != FREE)
    }

    /// The `(expiry, seq)` of the live entry at `pos`.
    pub(crate) fn key_at(&self, pos: u64) -> Key {
        self.inner.slab[pos as u32 as usize].key()
    }

    /// Whether the entry at `pos` is live and is the one `head` was read from
    /// (its `seq`: unique per link, never reused).
    pub(crate) fn still(&self, pos: u64, head: &Head) -> bool {
        pos == head.pos
            && self
                .inner
                .slab
                .get(pos as u32 as usize)
                .is_some_and(|e| e.prev != FREE && e.seq == head.key.1)
    }

    /// Entries in the partition.
    pub(crate) fn len(&self) -> usize {
        self.inner.len
    }

    /// The partition's minimum.
    pub(crate) fn min(&self) -> Option<Head> {
        self.inner.min().map(|i| self.inner.head_of(self.index, i))
    }

    /// The partition's smallest entry for which `exclude` is false (asked in
    /// key order, from the smallest, until one is not excluded).
    pub(crate) fn min_excluding(&self, mut exclude: impl FnMut(&Head) -> bool) -> Option<Head> {
        let inner = &*self.inner;
        // The second smallest is the first list's second entry, the second
        // list's head or one of the sorted map's first two.
        let mut cands = [NIL; 6];
        for (k, ends) in inner.all_lists().take(2).enumerate() {
            cands[2 * k] = ends.head;
            cands[2 * k + 1] = inner.slab[ends.head as usize].next;
        }
        let mut it = inner.sorted.values();
        cands[4] = it.next().copied().unwrap_or(NIL);
        cands[5] = it.next().copied().unwrap_or(NIL);
        let mut heads = cands.map(|i| (i != NIL).then(|| inner.head_of(self.index, i)));
        heads.sort_unstable_by_key(|h| h.map_or(EMPTY, |h| h.key));
        heads.into_iter().flatten().find(|h| !exclude(h))
    }
}

impl Drop for PartLock<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.moved {
            self.republish();
        }
        // Else the minimum is the entry it was when this lock was taken, with
        // the key it had: the published cell is current.
    }
}

impl PartLock<'_> {
    /// Publishes the partition's minimum (and with more than `GROUP`
    /// partitions, its group's). Out of line: a lock that did not move the
    /// minimum (nearly every insert) drops with one test, no call.
    #[inline(never)]
    fn republish(&mut self) {
        let key = self.min().map_or(EMPTY, |h| h.key);
        // Seq first, expiry last (Release): a reader that sees the new expiry
        // sees at least this seq. Torn reads only make the hint approximate.
        let o = self.order;
        if !o.heads[self.index].write(key) {
            return; // the partition's minimum did not change: nor did the group's
        }
        if o.groups.len() == 1 {
            return; // one group: nobody reads its summary (see `min_part`)
        }
        let g = self.index / GROUP;
        let base = g * GROUP;
        let (group, ver) = (&o.groups[g], &o.group_vers[g]);
        let siblings = &o.heads[base..(base + GROUP).min(o.heads.len())];
        // Grouped (more than `GROUP` partitions): the group's summary is written
        // by whichever holder of a sibling's mutex changed a head, so two of them
        // can race (T1 reads T2's old head, T2 publishes, T1's summary lands
        // last, or the two-word stores interleave) and nothing would repair it
        // until the group's next change: the evictor would pick a wrong minimum
        // even once quiescent (loom model 18). So every republisher bumps the
        // group's version (a read-modify-write: all bumps are totally ordered,
        // and each one acquires every head stored before an earlier bump), then
        // reads the cells, writes the summary, and checks with another
        // read-modify-write that nobody bumped meanwhile (else starts over).
        // Whoever bumps after a stale summary was written re-reads the cells
        // and writes after it: once quiescent the summary is exact.
        loop {
            let v = ver.fetch_add(1, Ordering::AcqRel);
            let m = smallest(siblings).map_or(EMPTY, |(k, _)| k);
            group.write(m);
            // A read-modify-write, not a load: it reads the latest bump (a load
            // may return an older one and let a stale summary stand).
            let now = v.wrapping_add(1);
            if ver
                .compare_exchange(now, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                break;
            }
        }
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;

    /// A stand-in id hash.
    fn p(n: usize) -> u64 {
        n as u64 * 8
    }

    /// Partition `i` under its mutex.
    fn lk(o: &Order, i: usize) -> PartLock<'_> {
        // SAFETY: these tests have no map and no `exclusive` user: the mutex
        // alone serializes every access.
        unsafe { o.lock(i) }
    }

    #[test]
    fn list_and_sorted_keep_the_minimum() {
        let o: Order = Order::new(1);
        let mut l = lk(&o, 0);
        let a = l.insert(p(1), 100, 1);
        let b = l.insert(p(2), 100, 2);
        let c = l.insert(p(3), 50, 3); // an earlier expiry: its own list
        let d = l.insert(p(4), 200, 4);
        assert_eq!(l.min().unwrap().hash, p(3));
        assert_eq!(l.min_excluding(|h| h.hash == p(3)).unwrap().hash, p(1));
        l.remove(c);
        assert_eq!(l.min().unwrap().hash, p(1));
        l.remove(a);
        assert_eq!(l.min().unwrap().hash, p(2));
        assert_eq!(l.min_excluding(|h| h.hash == p(2)).unwrap().hash, p(4));
        l.remove(d);
        l.remove(b);
        assert!(l.min().is_none());
        // Freed entries are reused.
        let e = l.insert(p(5), 1, 5);
        assert!(l.files(e, p(5)));
        assert!((e as u32) < 4);
        assert_eq!(l.len(), 1);
        drop(l);
        assert_eq!(o.min_part(), Some(((1, 5), 0)));
    }

    #[test]
    fn an_old_seq_behind_its_lists_tail_goes_to_the_sorted_map() {
        let o: Order = Order::new(1);
        let mut l = lk(&o, 0);
        let a = l.insert(p(1), 100, 5);
        // A re-file keeps its old seq: behind the tail of expiry 100's list.
        let b = l.insert(p(2), 100, 3);
        assert_eq!(l.min().unwrap().hash, p(2));
        assert_eq!(l.min_excluding(|h| h.hash == p(2)).unwrap().hash, p(1));
        l.remove(b);
        assert_eq!(l.min().unwrap().hash, p(1));
        l.remove(a);
        assert!(l.min().is_none());
        assert!(l.inner.lists.is_empty() && l.inner.sorted.is_empty() && l.inner.hot.is_none());
    }

    /// Random inserts (fresh and old seqs, few and many expiries) and removals (of
    /// the minimum or of any entry)
    /// against a sorted set: the minimum, the minimum excluding any entry and the
    /// length agree after every step, and nothing is left behind.
    #[test]
    fn random_operations_match_a_sorted_set() {
        use std::collections::BTreeMap as Model;
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for spread in [1u64, 3, 50] {
            let o: Order = Order::new(1);
            let mut model: Model<Key, (u64, usize)> = Model::new();
            let mut seq = 1_000u64;
            for step in 0..4_000usize {
                let r = next();
                if r % 3 != 0 || model.is_empty() {
                    let expiry = 1_000 + (next() % spread);
                    // Mostly fresh seqs; sometimes an old one (a re-file).
                    let s = if r % 7 == 0 { next() % seq } else { seq };
                    seq += 1;
                    if model.keys().any(|k| k.1 == s) {
                        continue;
                    }
                    let pos = lk(&o, 0).insert(p(step + 1), expiry, s);
                    model.insert((expiry, s), (pos, step + 1));
                } else {
                    // Half the removals take the minimum (as the evictor does),
                    // half any entry.
                    let k = if next() % 2 == 0 {
                        *model.keys().next().unwrap()
                    } else {
                        *model.keys().nth((next() as usize) % model.len()).unwrap()
                    };
                    let (pos, _) = model.remove(&k).unwrap();
                    lk(&o, 0).remove(pos);
                }
                let l = lk(&o, 0);
                let want = model.iter().next().map(|(k, v)| (p(v.1), *k));
                assert_eq!(l.min().map(|h| (h.hash, h.key)), want, "step {step}");
                if let Some((_, ex)) = want {
                    let want2 = model.iter().nth(1).map(|(k, v)| (p(v.1), *k));
                    let ex_ptr = p(model[&ex].1);
                    assert_eq!(
                        l.min_excluding(|h| h.hash == ex_ptr)
                            .map(|h| (h.hash, h.key)),
                        want2,
                        "step {step}"
                    );
                }
                assert_eq!(l.inner.len, model.len());
                drop(l);
                // The published minimum is the exact one once the lock is
                // released.
                let published = o.heads[0].read();
                assert_eq!(published, want.map_or(EMPTY, |(_, k)| k), "step {step}");
            }
            let keys: Vec<_> = model.values().map(|v| v.0).collect();
            for pos in keys {
                lk(&o, 0).remove(pos);
            }
            let l = lk(&o, 0);
            assert!(l.inner.lists.is_empty() && l.inner.sorted.is_empty() && l.min().is_none());
            assert!(l.inner.hot.is_none() && l.inner.min == NIL);
        }
    }

    #[test]
    fn a_stale_empty_group_summary_cannot_hide_a_victim() {
        let o: Order = Order::new(16);
        lk(&o, 9).insert(p(1), 10, 1);
        // What a racing republish can leave behind: every summary "empty".
        for g in o.groups.iter() {
            g.write((u64::MAX, u64::MAX));
        }
        let (key, part) = o.min_part().expect("the full scan finds partition 9");
        assert_eq!((key, part), ((10, 1), 9));
        let l = lk(&o, part);
        assert_eq!(l.min().map(|h| h.hash), Some(p(1)));
    }

    #[test]
    fn heads_are_published_and_compared() {
        let o: Order = Order::new(4);
        assert_eq!(o.min_part(), None);
        lk(&o, 2).insert(p(1), 10, 5);
        lk(&o, 1).insert(p(2), 10, 3);
        let first = lk(&o, 3).insert(p(3), 9, 9);
        assert_eq!(o.min_part(), Some(((9, 9), 3)));
        let mut l = lk(&o, 3);
        l.insert(p(4), 100, 10);
        l.remove(first);
        drop(l);
        assert_eq!(o.min_part(), Some(((10, 3), 1)));
    }
}

/// A loom scenario of the order's own race, driven by `loom-tests` (model 18;
/// the order is private, and the crate's own tests cannot be built under the
/// loom cfg). Sixteen partitions (two groups of eight): the holders of two
/// sibling partitions' mutexes change their heads at once — one removes its
/// minimum, the other files a smaller one — and each republishes the group's
/// summary. Returns the group summary and the minimum of the group's cells once
/// both are done: they must be equal. Without the re-read loop in
/// `PartLock::drop` the summary computed from the other's old head can land
/// last and stay (found by a review).
#[cfg(tls_session_cache_loom)]
#[doc(hidden)]
pub fn __loom_group_summary_race() -> (Key, Key) {
    use std::sync::Arc;
    let p = |n: usize| n as u64 * 8;
    let o = Arc::new(Order::new(16));
    // SAFETY (each `lock`): no map and no `exclusive` user here: the mutexes
    // alone serialize every access to a partition.
    let a = unsafe { o.lock(0) }.insert(p(1), 50, 1);
    unsafe { o.lock(1) }.insert(p(2), 60, 2);
    let t = {
        let o = o.clone();
        loom::thread::spawn(move || unsafe { o.lock(0) }.remove(a))
    };
    unsafe { o.lock(1) }.insert(p(3), 10, 3);
    t.join().unwrap();
    let want = o.heads[..GROUP].iter().map(HeadCell::read).min().unwrap();
    (o.groups[0].read(), want)
}
