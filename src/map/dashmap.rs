//! Normal builds: dashmap 6 with a keyed foldhash.

use crate::id::IdKey;
use dashmap::{DashMap, SharedValue};
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

/// Keyed with a random seed per map (attacker-chosen ids cannot aim at a shard or
/// a bucket), and several times cheaper than std's SipHash for 33-byte keys.
type Hasher = foldhash::quality::RandomState;

pub(crate) struct ShardMap<K, V> {
    inner: DashMap<K, V, Hasher>,
}

impl<K, V> ShardMap<K, V>
where
    K: Hash + Eq + Borrow<dyn IdKey>,
{
    /// A map with `shards` shards (rounded up to a power of two, at least 2).
    pub(crate) fn new(shards: usize) -> Self {
        let shards = shards.clamp(2, 1 << 16).next_power_of_two();
        ShardMap {
            inner: DashMap::with_hasher_and_shard_amount(Hasher::default(), shards),
        }
    }

    /// Runs `f` on the entry for `k` (if any) under the shard's read lock.
    #[inline]
    pub(crate) fn read<R>(
        &self,
        k: &(dyn IdKey + 'static),
        f: impl FnOnce(Option<(&K, &V)>) -> R,
    ) -> R {
        self.read_lazy(k, || (), |e, _| f(e))
    }

    /// As `read`, but calls `before_compare` once, just before the map first
    /// compares `k` with a key it holds (a bucket whose hash tag matches), and
    /// hands its result to `f`: a caller that must be pinned to read a stored key
    /// pins only then. An absent id (the usual case for an add) costs no pin.
    /// The pin then happens under the shard's read lock: crossbeam may run
    /// deferred functions during a pin (every 128th), including other crates'
    /// garbage on the global collector; ours only drop `Weak`s, but a foreign
    /// deferred function that called back into this cache's same shard for a
    /// write would wait for this read lock.
    #[inline]
    pub(crate) fn read_lazy<G, R>(
        &self,
        k: &(dyn IdKey + 'static),
        before_compare: impl FnMut() -> G,
        f: impl FnOnce(Option<(&K, &V)>, Option<G>) -> R,
    ) -> R {
        self.read_lazy_hashed(self.hash(k), k, before_compare, f)
    }

    /// `k`'s hash, for the `_hashed` methods: an add looks its id up, then
    /// inserts it, and hashes it once.
    #[inline]
    pub(crate) fn hash(&self, k: &(dyn IdKey + 'static)) -> u64 {
        // Exactly as `DashMap::get` computes it.
        self.inner.hash_usize(&k) as u64
    }

    /// `read_lazy` with `k`'s hash computed by `hash`.
    #[inline]
    pub(crate) fn read_lazy_hashed<G, R>(
        &self,
        hash: u64,
        k: &(dyn IdKey + 'static),
        mut before_compare: impl FnMut() -> G,
        f: impl FnOnce(Option<(&K, &V)>, Option<G>) -> R,
    ) -> R {
        let shard = self.inner.shards()[self.inner.determine_shard(hash as usize)].read();
        let mut g = None;
        let found = shard.find(hash, |(key, _)| {
            if g.is_none() {
                g = Some(before_compare());
            }
            k == key.borrow()
        });
        match found {
            Some(bucket) => {
                // SAFETY: the bucket was just found in this shard's table, whose
                // read lock we hold until `f` returns: no writer can move or free it.
                let (key, v) = unsafe { bucket.as_ref() };
                f(Some((key, v.get())), g)
            }
            None => f(None, g),
        }
    }

    /// Runs `f` on the entry for `k` (if any) under the shard's write lock. When
    /// the key is absent and `f` returns `Some(v)`, `(k, v)` is inserted before the
    /// lock is released; `f` sees the key that is inserted (or the one in the map).
    #[cfg(test)]
    pub(crate) fn write<R>(&self, k: K, f: impl FnOnce(&K, Option<&V>) -> (Option<V>, R)) -> R {
        self.write_hashed(self.hash(k.borrow()), k, f)
    }

    /// `write` with `k`'s hash computed by `hash` (the caller's duty: it must be
    /// `hash(k)`, or the entry would be filed where no lookup finds it).
    #[cfg(test)]
    #[inline]
    pub(crate) fn write_hashed<R>(
        &self,
        hash: u64,
        k: K,
        f: impl FnOnce(&K, Option<&V>) -> (Option<V>, R),
    ) -> R {
        debug_assert_eq!(hash, self.hash(k.borrow()));
        let mut shard = self.inner.shards()[self.inner.determine_shard(hash as usize)].write();
        let found = shard.find(hash, |(key, _)| k.borrow() == key.borrow());
        match found {
            Some(bucket) => {
                // SAFETY: found in this shard's table under its write lock, held
                // until `f` returns; nothing is inserted or removed meanwhile.
                let (key, v) = unsafe { bucket.as_ref() };
                f(key, Some(v.get())).1
            }
            None => {
                let (ins, r) = f(&k, None);
                if let Some(val) = ins {
                    // Rehashing (when the table grows) hashes each key as
                    // dashmap does.
                    shard.insert(hash, (k, SharedValue::new(val)), |(key, _)| {
                        self.inner.hash_usize(key) as u64
                    });
                }
                r
            }
        }
    }

    /// Removes and returns the entry for `k` if `pred` holds, under the write lock
    /// (`pred` runs under it).
    #[inline]
    #[cfg(test)]
    pub(crate) fn remove_if(
        &self,
        k: &(dyn IdKey + 'static),
        pred: impl FnOnce(&K, &V) -> bool,
    ) -> Option<(K, V)> {
        self.inner.remove_if(k, |k, v| pred(k, v))
    }

    /// The number of shards (a power of two).
    #[inline]
    pub(crate) fn shards(&self) -> usize {
        self.inner.shards().len()
    }

    /// The shard a key with this hash lives in.
    #[inline]
    pub(crate) fn shard_of(&self, hash: u64) -> usize {
        self.inner.determine_shard(hash as usize)
    }

    /// Runs `f` with shard `i` write-locked (waiting for it); `f` gets the
    /// shard, to `take` an entry out.
    #[inline]
    pub(crate) fn with_shard<R>(&self, i: usize, f: impl FnOnce(&mut ShardW<'_, K, V>) -> R) -> R {
        f(&mut ShardW {
            table: &mut self.inner.shards()[i].write(),
            hasher: self.inner.hasher(),
        })
    }

    /// Runs `f(a, b)` with shards `a` and `b` (two different ones) both
    /// write-locked, waiting for each, the lower index first. The one place a
    /// thread waits for a shard lock while holding another: every such wait is
    /// for a higher index than the lock held, and `try_with_shard` never waits,
    /// so no cycle of waiters can form.
    pub(crate) fn with_two_shards<R>(
        &self,
        a: usize,
        b: usize,
        f: impl FnOnce(&mut ShardW<'_, K, V>, &mut ShardW<'_, K, V>) -> R,
    ) -> R {
        assert_ne!(a, b, "two different shards");
        let shards = self.inner.shards();
        let mut lo = shards[a.min(b)].write();
        let mut hi = shards[a.max(b)].write();
        let (ga, gb) = if a < b {
            (&mut lo, &mut hi)
        } else {
            (&mut hi, &mut lo)
        };
        let hasher = self.inner.hasher();
        f(
            &mut ShardW { table: ga, hasher },
            &mut ShardW { table: gb, hasher },
        )
    }

    /// Runs `f` with shard `i` write-locked if that lock is free right now
    /// (never waiting: `None` if it is held). A caller may hold another shard's
    /// write lock while it tries: it never waits while holding one, so no cycle
    /// of waiters can form.
    #[inline]
    pub(crate) fn try_with_shard<R>(
        &self,
        i: usize,
        f: impl FnOnce(&mut ShardW<'_, K, V>) -> R,
    ) -> Option<R> {
        let mut guard = self.inner.shards()[i].try_write()?;
        Some(f(&mut ShardW {
            table: &mut guard,
            hasher: self.inner.hasher(),
        }))
    }

    /// Runs `f(j, t, shard)` with shard `j` write-locked: `(j, t) = first` if
    /// that shard's lock is free right now (never waiting for it), else
    /// `(j, t) = other()`, waiting for that one; with no `other`, waits for
    /// `first`. `t` travels with the shard it was picked for. One call site for
    /// `f`, so it inlines as a plain critical section.
    #[inline]
    pub(crate) fn with_shard_or<T, R>(
        &self,
        first: (usize, T),
        other: Option<impl FnOnce() -> (usize, T)>,
        f: impl FnOnce(usize, T, &mut ShardW<'_, K, V>) -> R,
    ) -> R {
        let shards = self.inner.shards();
        let ((j, t), mut guard) = match (shards[first.0].try_write(), other) {
            (Some(g), _) => (first, g),
            (None, Some(other)) => {
                let next = other();
                let g = shards[next.0].write();
                (next, g)
            }
            (None, None) => {
                let g = shards[first.0].write();
                (first, g)
            }
        };
        f(
            j,
            t,
            &mut ShardW {
                table: &mut guard,
                hasher: self.inner.hasher(),
            },
        )
    }

    /// Number of keys; for tests and `Debug`.
    pub(crate) fn slots(&self) -> usize {
        self.inner.len()
    }

    /// Takes every entry out (exclusive access: no lock contention possible).
    pub(crate) fn drain(&mut self) -> Vec<(K, V)> {
        std::mem::take(&mut self.inner).into_iter().collect()
    }
}

/// A write-locked shard, handed to `ShardMap::with_shard`'s closure.
pub(crate) struct ShardW<'a, K, V> {
    table: &'a mut hashbrown_dm::raw::RawTable<(K, SharedValue<V>)>,
    hasher: &'a Hasher,
}

impl<K, V> ShardW<'_, K, V>
where
    K: Hash + Eq + Borrow<dyn IdKey>,
{
    /// The entry for `k` (whose hash is `hash`), if any.
    #[inline]
    pub(crate) fn find(&self, hash: u64, k: &(dyn IdKey + 'static)) -> Option<(&K, &V)> {
        let bucket = self.table.find(hash, |(key, _)| k == key.borrow())?;
        // SAFETY: found in this table, held (under its write lock) for as long
        // as `self` is borrowed, which the result's borrow extends.
        let (key, v) = unsafe { bucket.as_ref() };
        Some((key, v.get()))
    }

    /// Inserts `(k, v)`; `k` must be absent and `hash` must be its hash.
    #[inline]
    pub(crate) fn insert(&mut self, hash: u64, k: K, v: V) {
        // Exactly as `ShardMap::hash` and dashmap (`hash_usize`: truncated to
        // `usize` on 32-bit targets).
        let hasher = self.hasher;
        let hash_of = move |key: &K| hasher.hash_one(key) as usize as u64;
        debug_assert_eq!(hash, hash_of(&k));
        // Rehashing (when the table grows) hashes each key the same way.
        self.table
            .insert(hash, (k, SharedValue::new(v)), |(key, _)| hash_of(key));
    }

    /// Removes and returns an entry for which `is` holds, among those `hash`
    /// leads to (it only narrows the search: `is` must identify the entry).
    #[cfg(test)]
    #[inline]
    pub(crate) fn take(&mut self, hash: u64, mut is: impl FnMut(&K, &V) -> bool) -> Option<(K, V)> {
        self.table
            .remove_entry(hash, |(k, v)| is(k, v.get()))
            .map(|(k, v)| (k, v.into_inner()))
    }

    /// The entry for which `is` holds among those `hash` leads to, if any.
    #[inline]
    pub(crate) fn get(&self, hash: u64, mut is: impl FnMut(&K, &V) -> bool) -> Option<(&K, &V)> {
        let bucket = self.table.find(hash, |(k, v)| is(k, v.get()))?;
        // SAFETY: found in this table, held (under its write lock) for as long
        // as `self` is borrowed, which the result's borrow extends.
        let (k, v) = unsafe { bucket.as_ref() };
        Some((k, v.get()))
    }

    /// Finds the entry for which `is` holds among those `hash` leads to (`None`
    /// if there is none) and shows it to `decide`: on `Ok` the entry is removed
    /// and returned, on `Err` it stays and the error is returned.
    #[inline]
    pub(crate) fn take_if<E>(
        &mut self,
        hash: u64,
        mut is: impl FnMut(&K, &V) -> bool,
        decide: impl FnOnce(&K, &V) -> Result<(), E>,
    ) -> Option<Result<(K, V), E>> {
        let bucket = self.table.find(hash, |(k, v)| is(k, v.get()))?;
        // SAFETY: just found in this table, which we hold mutably (under its
        // write lock): nothing moves or frees it before `decide` returns.
        let (k, v) = unsafe { bucket.as_ref() };
        if let Err(e) = decide(k, v.get()) {
            return Some(Err(e));
        }
        // SAFETY: the bucket is still full and in this table (found above;
        // nothing ran on the table since but `decide`, which cannot reach it).
        let ((k, v), _) = unsafe { self.table.remove(bucket) };
        Some(Ok((k, v.into_inner())))
    }
}
