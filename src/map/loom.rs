//! Under loom: a `Vec` of shards, each a `HashMap` behind a reader-writer lock
//! built from one loom atomic, chosen by a fixed hash of the key (models must be
//! deterministic), with dashmap's interface.
//!
//! Why not loom's own `RwLock`: its `try_write` can report a false deadlock
//! (tokio-rs/loom#376: a thread that merely *tries* is marked blocked), and the
//! evictor tries a shard's write lock while it holds a partition mutex. This
//! lock's `try_write` is one compare-and-swap, so it never blocks in the model
//! either; `read`/`write` spin with a loom yield, as dashmap's lock spins before
//! it parks. The map itself sits in a loom `UnsafeCell`, so the model also checks
//! that every access happens under the right lock.

use crate::id::Id;
use crate::sync::{AtomicUsize, Ordering};
use loom::cell::UnsafeCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};

type Table<V> = HashMap<Id, V, BuildHasherDefault<DefaultHasher>>;

/// `state`: 0 free, `n` readers, `WRITER` one writer.
const WRITER: usize = usize::MAX;

struct Shard<V> {
    state: AtomicUsize,
    table: UnsafeCell<Table<V>>,
}

// SAFETY: the table is reached only through `with` (a read lock held) and
// `with_mut` (the write lock held), as dashmap's shards: shared across threads
// exactly when the keys and values may be sent and shared.
unsafe impl<V: Send + Sync> Sync for Shard<V> {}
// SAFETY: owning a shard owns its table; moving it moves the keys and values.
unsafe impl<V: Send> Send for Shard<V> {}

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

impl<V> Shard<V> {
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
    fn with<R>(&self, _g: &ReadGuard<'_>, f: impl FnOnce(&Table<V>) -> R) -> R {
        // SAFETY: a read lock is held: no writer exists until it is dropped, and
        // the borrow does not outlive `f`.
        self.table.with(|t| f(unsafe { &*t }))
    }

    /// `f` on the table, mutably; the caller holds the write lock.
    fn with_mut<R>(&self, _g: &WriteGuard<'_>, f: impl FnOnce(&mut Table<V>) -> R) -> R {
        // SAFETY: the write lock is held: no other reader or writer exists until
        // it is dropped, and the borrow does not outlive `f`.
        self.table.with_mut(|t| f(unsafe { &mut *t }))
    }
}

pub(crate) struct ShardMap<V> {
    shards: Vec<Shard<V>>,
}

impl<V> ShardMap<V> {
    pub(crate) fn new(shards: usize) -> Self {
        let shards = shards.clamp(2, 1 << 16).next_power_of_two();
        ShardMap {
            shards: (0..shards)
                .map(|_| Shard {
                    state: AtomicUsize::new(0),
                    table: UnsafeCell::new(Table::default()),
                })
                .collect(),
        }
    }

    fn hash(&self, k: &Id) -> u64 {
        BuildHasherDefault::<DefaultHasher>::default().hash_one(k)
    }

    fn shard(&self, k: &Id) -> &Shard<V> {
        let i = (self.hash(k) >> 7) as usize % self.shards.len();
        &self.shards[i]
    }

    pub(crate) fn read<R>(&self, k: &Id, f: impl FnOnce(Option<(&Id, &V)>) -> R) -> R {
        let s = self.shard(k);
        let g = s.read();
        s.with(&g, |t| f(t.get_key_value(k)))
    }

    pub(crate) fn write<R>(&self, k: Id, f: impl FnOnce(&Id, Option<&V>) -> (Option<V>, R)) -> R {
        let s = self.shard(&k);
        let g = s.write();
        s.with_mut(&g, |t| match t.get_key_value(&k) {
            Some((key, v)) => f(key, Some(v)).1,
            None => {
                let (ins, r) = f(&k, None);
                if let Some(val) = ins {
                    t.insert(k, val);
                }
                r
            }
        })
    }

    pub(crate) fn remove_if(&self, k: &Id, pred: impl FnOnce(&Id, &V) -> bool) -> Option<V> {
        let s = self.shard(k);
        let g = s.write();
        s.with_mut(&g, |t| {
            if t.get_key_value(k).is_some_and(|(k, v)| pred(k, v)) {
                t.remove(k)
            } else {
                None
            }
        })
    }

    pub(crate) fn try_remove_if(
        &self,
        k: Id,
        pred: impl FnOnce(&Id, &V) -> bool,
    ) -> Option<Option<V>> {
        let s = self.shard(&k);
        let g = s.try_write()?;
        Some(s.with_mut(&g, |t| {
            if t.get_key_value(&k).is_some_and(|(k, v)| pred(k, v)) {
                t.remove(&k)
            } else {
                None
            }
        }))
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

    pub(crate) fn drain(&mut self) -> Vec<V> {
        let mut out = Vec::new();
        for s in &self.shards {
            let g = s.write();
            s.with_mut(&g, |t| out.extend(t.drain().map(|(_, v)| v)));
        }
        out
    }
}
