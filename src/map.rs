//! The lock-sharded map from session id to slot, behind one small interface.
//!
//! Normal builds: dashmap 6. Under `--cfg tls_session_cache_loom`: a loom-visible
//! stand-in, a `Vec` of `loom::sync::RwLock<HashMap>` picked by a hash of the key,
//! because dashmap's locks park real threads and cannot be modeled.
//!
//! Every method takes a closure and runs it under the shard lock, so no guard ever
//! escapes: callers cannot hold a shard lock across another call into the map
//! (the dashmap deadlock trap). Closures must not call back into the map.

use crate::session::SessionId;

#[cfg(not(tls_session_cache_loom))]
use dashmap::{mapref::entry::Entry, DashMap};

/// Keyed with a random seed per map (attacker-chosen ids cannot aim at a shard or
/// a bucket), and several times cheaper than std's SipHash for 33-byte keys.
#[cfg(not(tls_session_cache_loom))]
type Hasher = foldhash::quality::RandomState;

pub(crate) struct ShardMap<V> {
    #[cfg(not(tls_session_cache_loom))]
    inner: DashMap<SessionId, V, Hasher>,
    #[cfg(tls_session_cache_loom)]
    shards: Vec<crate::sync::RwLock<LoomShard<V>>>,
}

#[cfg(tls_session_cache_loom)]
type LoomShard<V> = std::collections::HashMap<
    SessionId,
    V,
    std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
>;

impl<V> ShardMap<V> {
    /// A map with `shards` shards (rounded up to a power of two, at least 2).
    pub(crate) fn new(shards: usize) -> Self {
        let shards = shards.clamp(2, 1 << 16).next_power_of_two();
        #[cfg(not(tls_session_cache_loom))]
        {
            ShardMap {
                inner: DashMap::with_hasher_and_shard_amount(Hasher::default(), shards),
            }
        }
        #[cfg(tls_session_cache_loom)]
        {
            ShardMap {
                shards: (0..shards)
                    .map(|_| crate::sync::RwLock::new(LoomShard::default()))
                    .collect(),
            }
        }
    }

    /// A hash of the key, keyed per map in normal builds (attacker-chosen ids cannot
    /// aim at one shard), fixed under loom (models must be deterministic).
    pub(crate) fn hash(&self, k: &SessionId) -> u64 {
        #[cfg(not(tls_session_cache_loom))]
        {
            self.inner.hash_usize(k) as u64
        }
        #[cfg(tls_session_cache_loom)]
        {
            use std::hash::BuildHasher;
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .hash_one(k)
        }
    }

    #[cfg(tls_session_cache_loom)]
    fn shard(&self, k: &SessionId) -> &crate::sync::RwLock<LoomShard<V>> {
        let i = (self.hash(k) >> 7) as usize % self.shards.len();
        &self.shards[i]
    }

    /// Runs `f` on the value for `k` (if any) under the shard's read lock.
    #[inline]
    pub(crate) fn read<R>(&self, k: &SessionId, f: impl FnOnce(Option<&V>) -> R) -> R {
        #[cfg(not(tls_session_cache_loom))]
        {
            match self.inner.get(k) {
                Some(r) => f(Some(r.value())),
                None => f(None),
            }
        }
        #[cfg(tls_session_cache_loom)]
        {
            let g = self.shard(k).read().unwrap_or_else(|e| e.into_inner());
            f(g.get(k))
        }
    }

    /// Runs `f` on the value for `k` (if any) under the shard's write lock. When the
    /// key is absent and `f` returns `Some(v)`, `v` is inserted before the lock is
    /// released.
    pub(crate) fn write<R>(&self, k: SessionId, f: impl FnOnce(Option<&V>) -> (Option<V>, R)) -> R {
        #[cfg(not(tls_session_cache_loom))]
        {
            match self.inner.entry(k) {
                Entry::Occupied(o) => f(Some(o.get())).1,
                Entry::Vacant(v) => {
                    let (ins, r) = f(None);
                    if let Some(val) = ins {
                        v.insert(val);
                    }
                    r
                }
            }
        }
        #[cfg(tls_session_cache_loom)]
        {
            let mut g = self.shard(&k).write().unwrap_or_else(|e| e.into_inner());
            match g.get(&k) {
                Some(v) => f(Some(v)).1,
                None => {
                    let (ins, r) = f(None);
                    if let Some(val) = ins {
                        g.insert(k, val);
                    }
                    r
                }
            }
        }
    }

    /// Removes and returns the value for `k` if `pred` holds, under the write lock.
    pub(crate) fn remove_if(&self, k: &SessionId, pred: impl FnOnce(&V) -> bool) -> Option<V> {
        #[cfg(not(tls_session_cache_loom))]
        {
            self.inner.remove_if(k, |_, v| pred(v)).map(|(_, v)| v)
        }
        #[cfg(tls_session_cache_loom)]
        {
            let mut g = self.shard(k).write().unwrap_or_else(|e| e.into_inner());
            if g.get(k).is_some_and(pred) {
                g.remove(k)
            } else {
                None
            }
        }
    }

    /// Number of keys (live and dead slots); for tests and `Debug`.
    pub(crate) fn slots(&self) -> usize {
        #[cfg(not(tls_session_cache_loom))]
        {
            self.inner.len()
        }
        #[cfg(tls_session_cache_loom)]
        {
            self.shards
                .iter()
                .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
                .sum()
        }
    }

    /// Takes every value out (exclusive access: no lock contention possible).
    pub(crate) fn drain(&mut self) -> Vec<V> {
        #[cfg(not(tls_session_cache_loom))]
        {
            std::mem::take(&mut self.inner)
                .into_iter()
                .map(|(_, v)| v)
                .collect()
        }
        #[cfg(tls_session_cache_loom)]
        {
            let mut out = Vec::new();
            for s in &self.shards {
                let mut g = s.write().unwrap_or_else(|e| e.into_inner());
                out.extend(g.drain().map(|(_, v)| v));
            }
            out
        }
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;

    fn key(b: &[u8]) -> SessionId {
        SessionId::new(b).unwrap()
    }

    #[test]
    fn read_write_remove() {
        let m: ShardMap<u32> = ShardMap::new(4);
        assert_eq!(m.read(&key(b"a"), |v| v.copied()), None);
        let r = m.write(key(b"a"), |v| {
            assert!(v.is_none());
            (Some(7), "inserted")
        });
        assert_eq!(r, "inserted");
        assert_eq!(m.read(&key(b"a"), |v| v.copied()), Some(7));
        // Occupied: the returned value is ignored.
        m.write(key(b"a"), |v| {
            assert_eq!(v, Some(&7));
            (Some(9), ())
        });
        assert_eq!(m.read(&key(b"a"), |v| v.copied()), Some(7));
        assert_eq!(m.remove_if(&key(b"a"), |v| *v == 8), None);
        assert_eq!(m.remove_if(&key(b"a"), |v| *v == 7), Some(7));
        assert_eq!(m.slots(), 0);
    }

    #[test]
    fn drain_takes_all() {
        let mut m: ShardMap<u32> = ShardMap::new(3);
        for i in 0..100u32 {
            m.write(key(&i.to_le_bytes()), |_| (Some(i), ()));
        }
        let mut all = m.drain();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(m.slots(), 0);
    }
}
