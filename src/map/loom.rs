//! Under loom: a `Vec` of shards, each a small table behind a reader-writer lock
//! built from one loom atomic, chosen by a fixed hash of the key (models must be
//! deterministic), with dashmap's interface. A table is a `Vec` of
//! `(hash, key, value)` searched by hash first, then by key, as hashbrown
//! compares a stored key only for a matching hash tag: `read_lazy` behaves as in
//! normal builds (its `before_compare` runs only when a stored key is compared).
//!
//! Why not loom's own `RwLock`: its `try_write` can report a false deadlock
//! (tokio-rs/loom#376: a thread that merely *tries* is marked blocked), and the
//! evictor tries its victim's shard write lock before falling back. This
//! lock's `try_write` is one compare-and-swap, so it never blocks in the model
//! either; `read`/`write` spin with a loom yield, as dashmap's lock spins before
//! it parks. The map itself sits in a loom `UnsafeCell`, so the model also checks
//! that every access happens under the right lock.

use crate::id::IdKey;
use crate::sync::{AtomicUsize, Ordering};
use loom::cell::UnsafeCell;
use std::borrow::Borrow;
use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, BuildHasherDefault, Hash};

type Table<K, V> = Vec<(u64, K, V)>;

fn hash_of(k: &(dyn IdKey + 'static)) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(k)
}

/// Removes and returns `k`'s entry if `pred` holds for it.
#[cfg(test)]
fn take_if<K: Borrow<dyn IdKey>, V>(
    t: &mut Table<K, V>,
    k: &(dyn IdKey + 'static),
    h: u64,
    pred: impl FnOnce(&K, &V) -> bool,
) -> Option<(K, V)> {
    let i = find(t, k, h, || {})?;
    if !pred(&t[i].1, &t[i].2) {
        return None;
    }
    let (_, k, v) = t.swap_remove(i);
    Some((k, v))
}

/// The index of `k` in `t` (hash first; `before_compare` before the first key
/// comparison).
fn find<K: Borrow<dyn IdKey>, V>(
    t: &Table<K, V>,
    k: &(dyn IdKey + 'static),
    h: u64,
    mut before_compare: impl FnMut(),
) -> Option<usize> {
    t.iter().position(|(hk, key, _)| {
        *hk == h && {
            before_compare();
            k == key.borrow()
        }
    })
}

/// `state`: 0 free, `n` readers, `WRITER` one writer.
const WRITER: usize = usize::MAX;

struct Shard<K, V> {
    state: AtomicUsize,
    table: UnsafeCell<Table<K, V>>,
}

// SAFETY: the table is reached only through `with` (a read lock held) and
// `with_mut` (the write lock held), as dashmap's shards: shared across threads
// exactly when the keys and values may be sent and shared.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Shard<K, V> {}
// SAFETY: owning a shard owns its table; moving it moves the keys and values.
unsafe impl<K: Send, V: Send> Send for Shard<K, V> {}

/// Releases a read lock on drop (also while unwinding).
struct ReadGuard<'a>(&'a AtomicUsize);
impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// Releases a write lock on drop (also while unwinding).
struct WriteGuard<'a>(&'a AtomicUsize);
impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

impl<K, V> Shard<K, V> {
    fn read(&self) -> ReadGuard<'_> {
        loop {
            let s = self.state.load(Ordering::Acquire);
            if s != WRITER
                && self
                    .state
                    .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return ReadGuard(&self.state);
            }
            loom::thread::yield_now();
        }
    }

    fn try_write(&self) -> Option<WriteGuard<'_>> {
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| WriteGuard(&self.state))
    }

    fn write(&self) -> WriteGuard<'_> {
        loop {
            if let Some(g) = self.try_write() {
                return g;
            }
            loom::thread::yield_now();
        }
    }

    /// `f` on the table; the caller holds a read or the write lock.
    fn with<R>(&self, _g: &ReadGuard<'_>, f: impl FnOnce(&Table<K, V>) -> R) -> R {
        // SAFETY: a read lock is held: no writer exists until it is dropped, and
        // the borrow does not outlive `f`.
        self.table.with(|t| f(unsafe { &*t }))
    }

    /// `f` on the table, mutably; the caller holds the write lock.
    fn with_mut<R>(&self, _g: &WriteGuard<'_>, f: impl FnOnce(&mut Table<K, V>) -> R) -> R {
        // SAFETY: the write lock is held: no other reader or writer exists until
        // it is dropped, and the borrow does not outlive `f`.
        self.table.with_mut(|t| f(unsafe { &mut *t }))
    }
}

pub(crate) struct ShardMap<K, V> {
    shards: Vec<Shard<K, V>>,
}

impl<K, V> ShardMap<K, V>
where
    K: Hash + Eq + Borrow<dyn IdKey>,
{
    pub(crate) fn new(shards: usize) -> Self {
        let shards = shards.clamp(2, 1 << 16).next_power_of_two();
        ShardMap {
            shards: (0..shards)
                .map(|_| Shard {
                    state: AtomicUsize::new(0),
                    table: UnsafeCell::new(Vec::new()),
                })
                .collect(),
        }
    }

    fn shard(&self, h: u64) -> &Shard<K, V> {
        &self.shards[self.shard_of(h)]
    }

    pub(crate) fn read<R>(
        &self,
        k: &(dyn IdKey + 'static),
        f: impl FnOnce(Option<(&K, &V)>) -> R,
    ) -> R {
        self.read_lazy(k, || (), |e, _| f(e))
    }

    pub(crate) fn read_lazy<G, R>(
        &self,
        k: &(dyn IdKey + 'static),
        before_compare: impl FnMut() -> G,
        f: impl FnOnce(Option<(&K, &V)>, Option<G>) -> R,
    ) -> R {
        self.read_lazy_hashed(hash_of(k), k, before_compare, f)
    }

    pub(crate) fn hash(&self, k: &(dyn IdKey + 'static)) -> u64 {
        hash_of(k)
    }

    pub(crate) fn read_lazy_hashed<G, R>(
        &self,
        h: u64,
        k: &(dyn IdKey + 'static),
        mut before_compare: impl FnMut() -> G,
        f: impl FnOnce(Option<(&K, &V)>, Option<G>) -> R,
    ) -> R {
        assert_eq!(h, hash_of(k), "a hash from `hash`");
        let s = self.shard(h);
        let g = s.read();
        s.with(&g, |t| {
            let mut got = None;
            let i = find(t, k, h, || {
                if got.is_none() {
                    got = Some(before_compare());
                }
            });
            f(i.map(|i| (&t[i].1, &t[i].2)), got)
        })
    }

    #[cfg(test)]
    pub(crate) fn write<R>(&self, k: K, f: impl FnOnce(&K, Option<&V>) -> (Option<V>, R)) -> R {
        self.write_hashed(hash_of(k.borrow()), k, f)
    }

    #[cfg(test)]
    pub(crate) fn write_hashed<R>(
        &self,
        h: u64,
        k: K,
        f: impl FnOnce(&K, Option<&V>) -> (Option<V>, R),
    ) -> R {
        assert_eq!(h, hash_of(k.borrow()), "a hash from `hash`");
        let s = self.shard(h);
        let g = s.write();
        s.with_mut(&g, |t| match find(t, k.borrow(), h, || {}) {
            Some(i) => f(&t[i].1, Some(&t[i].2)).1,
            None => {
                let (ins, r) = f(&k, None);
                if let Some(val) = ins {
                    t.push((h, k, val));
                }
                r
            }
        })
    }

    #[cfg(test)]
    pub(crate) fn remove_if(
        &self,
        k: &(dyn IdKey + 'static),
        pred: impl FnOnce(&K, &V) -> bool,
    ) -> Option<(K, V)> {
        let h = hash_of(k);
        let s = self.shard(h);
        let g = s.write();
        s.with_mut(&g, |t| take_if(t, k, h, pred))
    }

    pub(crate) fn shards(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn shard_of(&self, h: u64) -> usize {
        (h >> 7) as usize % self.shards.len()
    }

    pub(crate) fn with_shard<R>(&self, i: usize, f: impl FnOnce(&mut ShardW<'_, K, V>) -> R) -> R {
        let s = &self.shards[i];
        let g = s.write();
        s.with_mut(&g, |table| f(&mut ShardW { table }))
    }

    /// As dashmap's: both write-locked, waiting, the lower index first.
    pub(crate) fn with_two_shards<R>(
        &self,
        a: usize,
        b: usize,
        f: impl FnOnce(&mut ShardW<'_, K, V>, &mut ShardW<'_, K, V>) -> R,
    ) -> R {
        assert_ne!(a, b, "two different shards");
        let (sa, sb) = (&self.shards[a], &self.shards[b]);
        let (ga, gb) = if a < b {
            let ga = sa.write();
            (ga, sb.write())
        } else {
            let gb = sb.write();
            (sa.write(), gb)
        };
        sa.with_mut(&ga, |ta| {
            sb.with_mut(&gb, |tb| {
                f(&mut ShardW { table: ta }, &mut ShardW { table: tb })
            })
        })
    }

    pub(crate) fn try_with_shard<R>(
        &self,
        i: usize,
        f: impl FnOnce(&mut ShardW<'_, K, V>) -> R,
    ) -> Option<R> {
        let s = &self.shards[i];
        let g = s.try_write()?;
        Some(s.with_mut(&g, |table| f(&mut ShardW { table })))
    }

    pub(crate) fn with_shard_or<T, R>(
        &self,
        first: (usize, T),
        other: Option<impl FnOnce() -> (usize, T)>,
        f: impl FnOnce(usize, T, &mut ShardW<'_, K, V>) -> R,
    ) -> R {
        let ((j, t), g) = match (self.shards[first.0].try_write(), other) {
            (Some(g), _) => (first, g),
            (None, Some(other)) => {
                let next = other();
                let g = self.shards[next.0].write();
                (next, g)
            }
            (None, None) => {
                let g = self.shards[first.0].write();
                (first, g)
            }
        };
        let s = &self.shards[j];
        s.with_mut(&g, |table| f(j, t, &mut ShardW { table }))
    }

    pub(crate) fn slots(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let g = s.read();
                s.with(&g, |t| t.len())
            })
            .sum()
    }

    pub(crate) fn drain(&mut self) -> Vec<(K, V)> {
        let mut out = Vec::new();
        for s in &self.shards {
            let g = s.write();
            s.with_mut(&g, |t| out.extend(t.drain(..).map(|(_, k, v)| (k, v))));
        }
        out
    }
}

/// A write-locked shard, handed to `ShardMap::with_shard`'s closure.
pub(crate) struct ShardW<'a, K, V> {
    table: &'a mut Table<K, V>,
}

impl<K, V> ShardW<'_, K, V>
where
    K: Hash + Eq + Borrow<dyn IdKey>,
{
    /// The entry for `k` (whose hash is `h`), if any.
    pub(crate) fn find(&self, h: u64, k: &(dyn IdKey + 'static)) -> Option<(&K, &V)> {
        assert_eq!(h, hash_of(k), "a hash from `hash`");
        let i = find(self.table, k, h, || {})?;
        Some((&self.table[i].1, &self.table[i].2))
    }

    /// Inserts `(k, v)`; `k` must be absent and `h` must be its hash.
    pub(crate) fn insert(&mut self, h: u64, k: K, v: V) {
        assert_eq!(h, hash_of(k.borrow()), "a hash from `hash`");
        self.table.push((h, k, v));
    }

    /// Removes and returns an entry with this hash for which `is` holds.
    #[cfg(test)]
    pub(crate) fn take(&mut self, h: u64, mut is: impl FnMut(&K, &V) -> bool) -> Option<(K, V)> {
        let i = self
            .table
            .iter()
            .position(|(hk, k, v)| *hk == h && is(k, v))?;
        let (_, k, v) = self.table.swap_remove(i);
        Some((k, v))
    }

    /// As the normal build's `get`.
    pub(crate) fn get(&self, h: u64, mut is: impl FnMut(&K, &V) -> bool) -> Option<(&K, &V)> {
        self.table
            .iter()
            .find(|(hk, k, v)| *hk == h && is(k, v))
            .map(|(_, k, v)| (k, v))
    }

    /// As the normal build's `take_if`.
    pub(crate) fn take_if<E>(
        &mut self,
        h: u64,
        mut is: impl FnMut(&K, &V) -> bool,
        decide: impl FnOnce(&K, &V) -> Result<(), E>,
    ) -> Option<Result<(K, V), E>> {
        let i = self
            .table
            .iter()
            .position(|(hk, k, v)| *hk == h && is(k, v))?;
        let (_, k, v) = &self.table[i];
        if let Err(e) = decide(k, v) {
            return Some(Err(e));
        }
        let (_, k, v) = self.table.swap_remove(i);
        Some(Ok((k, v)))
    }
}
