//! Normal builds: dashmap 6 with a keyed foldhash.

use crate::id::Id;
use dashmap::{mapref::entry::Entry, DashMap};

/// Keyed with a random seed per map (attacker-chosen ids cannot aim at a shard or
/// a bucket), and several times cheaper than std's SipHash for 33-byte keys.
type Hasher = foldhash::quality::RandomState;

pub(crate) struct ShardMap<V> {
    inner: DashMap<Id, V, Hasher>,
}

impl<V> ShardMap<V> {
    /// A map with `shards` shards (rounded up to a power of two, at least 2).
    pub(crate) fn new(shards: usize) -> Self {
        let shards = shards.clamp(2, 1 << 16).next_power_of_two();
        ShardMap {
            inner: DashMap::with_hasher_and_shard_amount(Hasher::default(), shards),
        }
    }

    /// Runs `f` on the value for `k` (if any) under the shard's read lock.
    #[inline]
    pub(crate) fn read<R>(&self, k: &Id, f: impl FnOnce(Option<(&Id, &V)>) -> R) -> R {
        match self.inner.get(k) {
            Some(r) => f(Some(r.pair())),
            None => f(None),
        }
    }

    /// Runs `f` on the value for `k` (if any) under the shard's write lock. When the
    /// key is absent and `f` returns `Some(v)`, `v` is inserted before the lock is
    /// released.
    #[inline]
    pub(crate) fn write<R>(&self, k: Id, f: impl FnOnce(&Id, Option<&V>) -> (Option<V>, R)) -> R {
        match self.inner.entry(k) {
            Entry::Occupied(o) => f(o.key(), Some(o.get())).1,
            Entry::Vacant(v) => {
                // The key `f` sees (and may record a position in) is the one
                // inserted.
                let (ins, r) = f(v.key(), None);
                if let Some(val) = ins {
                    v.insert(val);
                }
                r
            }
        }
    }

    /// Removes and returns the value for `k` if `pred` holds, under the write lock
    /// (`pred` runs under it).
    #[inline]
    pub(crate) fn remove_if(&self, k: &Id, pred: impl FnOnce(&Id, &V) -> bool) -> Option<V> {
        self.inner.remove_if(k, |k, v| pred(k, v)).map(|(_, v)| v)
    }

    /// As `remove_if`, but only if the shard's write lock is free right now:
    /// `None` if it is held (nothing was done and nothing waited). Never blocks,
    /// so a caller may hold a lock that ranks after the shard locks.
    #[inline]
    pub(crate) fn try_remove_if(
        &self,
        k: Id,
        pred: impl FnOnce(&Id, &V) -> bool,
    ) -> Option<Option<V>> {
        match self.inner.try_entry(k)? {
            Entry::Occupied(o) if pred(o.key(), o.get()) => Some(Some(o.remove())),
            _ => Some(None),
        }
    }

    /// Number of keys; for tests and `Debug`.
    pub(crate) fn slots(&self) -> usize {
        self.inner.len()
    }

    /// Takes every value out (exclusive access: no lock contention possible).
    pub(crate) fn drain(&mut self) -> Vec<V> {
        std::mem::take(&mut self.inner)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }
}
