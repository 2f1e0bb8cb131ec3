//! The lock-sharded map from session id to slot, behind one small interface.
//! Generic over the key (`slot::Link` in the cache: the session pointer, hashed
//! and compared as its id), looked up by anything with an id (`dyn IdKey`).
//!
//! Normal builds: dashmap 6 (`dashmap.rs`). Under `--cfg tls_session_cache_loom`:
//! a loom-visible stand-in (`loom.rs`), a `Vec` of `HashMap`s behind loom-modeled
//! reader-writer locks, picked by
//! a hash of the key, because dashmap's locks park real threads and cannot be
//! modeled. The cfg is switched once, here.
//!
//! Every method takes a closure and runs it under the shard lock, so no guard ever
//! escapes: callers cannot hold a shard lock across another call into the map
//! (the dashmap deadlock trap). Closures must not call back into the map.

#[cfg(not(tls_session_cache_loom))]
mod dashmap;
#[cfg(not(tls_session_cache_loom))]
pub(crate) use self::dashmap::{ShardMap, ShardW};

#[cfg(tls_session_cache_loom)]
mod loom;
#[cfg(tls_session_cache_loom)]
pub(crate) use self::loom::{ShardMap, ShardW};

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;
    use crate::id::Id;

    fn key(b: &[u8]) -> Id {
        Id::new(b).unwrap()
    }

    #[test]
    fn read_write_remove() {
        let m: ShardMap<Id, u32> = ShardMap::new(4);
        assert_eq!(m.read(&key(b"a"), |v| v.map(|(_, v)| *v)), None);
        let r = m.write(key(b"a"), |k, v| {
            assert!(v.is_none());
            assert_eq!(k.as_slice(), b"a");
            (Some(5), "inserted")
        });
        assert_eq!(r, "inserted");
        assert_eq!(m.read(&key(b"a"), |v| v.map(|(_, v)| *v)), Some(5));
        // Occupied: the returned value is ignored.
        m.write(key(b"a"), |_, v| {
            assert_eq!(v, Some(&5));
            (Some(9), ())
        });
        assert_eq!(m.read(&key(b"a"), |v| v.map(|(_, v)| *v)), Some(5));
        assert!(m.remove_if(&key(b"a"), |_, v| *v == 8).is_none());
        let (k, v) = m.remove_if(&key(b"a"), |_, v| *v == 5).unwrap();
        assert_eq!((k.as_slice(), v), (&b"a"[..], 5));
        assert_eq!(m.slots(), 0);
    }

    #[test]
    fn with_shard_or_never_waits_for_a_held_first_shard() {
        let m: ShardMap<Id, u32> = ShardMap::new(4);
        m.write(key(b"a"), |_, _| (Some(1), ()));
        let h = m.hash(&key(b"a"));
        let i = m.shard_of(h);
        let other = (i + 1) % m.shards();
        // The shard is read-locked by `read`: waiting for it would deadlock
        // here; the try gives up at once and the other shard (with its tag)
        // is taken, where `a` is not.
        let tried = m.read(&key(b"a"), |v| {
            assert_eq!(v.map(|(_, v)| *v), Some(1));
            m.with_shard_or((i, "first"), Some(|| (other, "other")), |j, t, sh| {
                (j, t, sh.take(h, |_, _| true).map(|(_, v)| v))
            })
        });
        assert_eq!(tried, (other, "other", None));
        assert_eq!(m.slots(), 1);
        // Free: the first shard and its tag; the predicate decides (the hash
        // only narrows the search).
        let take = |want: u32| {
            m.with_shard_or(
                (i, "first"),
                None::<fn() -> (usize, &'static str)>,
                |j, t, sh| (j, t, sh.take(h, |_, v| *v == want).map(|(_, v)| v)),
            )
        };
        assert_eq!(take(2), (i, "first", None));
        assert_eq!(m.with_shard(i, |sh| sh.take(h, |_, v| *v == 3)), None);
        assert_eq!(take(1), (i, "first", Some(1)));
        assert_eq!(m.slots(), 0);
        assert!(m.shards() >= 4 && m.shard_of(h) < m.shards());
    }

    #[test]
    fn read_lazy_calls_before_compare_once_before_comparing() {
        let m: ShardMap<Id, u32> = ShardMap::new(4);
        m.write(key(b"a"), |_, _| (Some(1), ()));
        let mut calls = 0;
        let got = m.read_lazy(
            &key(b"a"),
            || {
                calls += 1;
                "pinned"
            },
            |e, g| (e.map(|(_, v)| *v), g),
        );
        assert_eq!(got, (Some(1), Some("pinned")));
        assert_eq!(calls, 1, "one comparison, one call");
        // An absent id compares a stored key only on a hash-tag collision: at
        // most one call, and `f` sees whether it happened.
        let mut calls = 0;
        let (v, g) = m.read_lazy(&key(b"zz"), || calls += 1, |e, g| (e.is_some(), g));
        assert!(!v);
        assert!(calls <= 1);
        assert_eq!(g.is_some(), calls == 1);
    }

    /// `write` inserts with a hash computed once and rehashes on growth with
    /// its own closure: every key must stay findable by `read` (dashmap's hash)
    /// and removable through the tables' growth, and `slots` counts them all.
    #[test]
    fn keys_inserted_with_a_precomputed_hash_survive_growth() {
        let m: ShardMap<Id, u32> = ShardMap::new(2);
        for i in 0..5_000u32 {
            let k = key(&i.to_le_bytes());
            let h = m.hash(&k);
            m.write_hashed(h, k, |_, v| {
                assert!(v.is_none());
                (Some(i), ())
            });
        }
        assert_eq!(m.slots(), 5_000);
        for i in 0..5_000u32 {
            let k = key(&i.to_le_bytes());
            assert_eq!(m.read(&k, |e| e.map(|(_, v)| *v)), Some(i), "key {i}");
            // Occupied: `f` sees the stored value, nothing is inserted.
            m.write_hashed(m.hash(&k), k.clone(), |_, v| {
                assert_eq!(v, Some(&i));
                (Some(0), ())
            });
        }
        for i in (0..5_000u32).step_by(2) {
            assert!(m.remove_if(&key(&i.to_le_bytes()), |_, _| true).is_some());
        }
        assert_eq!(m.slots(), 2_500);
    }

    /// The same through `ShardW::insert` (the add path's), whose rehash closure
    /// must hash as lookups do.
    #[test]
    fn keys_inserted_into_a_locked_shard_survive_growth() {
        let m: ShardMap<Id, u32> = ShardMap::new(2);
        for i in 0..5_000u32 {
            let k = key(&i.to_le_bytes());
            let h = m.hash(&k);
            m.with_shard(m.shard_of(h), |sh| {
                assert!(sh.find(h, &k).is_none());
                sh.insert(h, k.clone(), i);
                assert_eq!(sh.find(h, &k).map(|(_, v)| *v), Some(i));
            });
        }
        assert_eq!(m.slots(), 5_000);
        for i in 0..5_000u32 {
            let k = key(&i.to_le_bytes());
            assert_eq!(m.read(&k, |e| e.map(|(_, v)| *v)), Some(i), "key {i}");
        }
    }

    /// `with_two_shards` hands each closure argument its own shard, holds
    /// both for the whole call, and takes them in index order whatever the
    /// argument order: two threads asking for (0, 1) and (1, 0) in a loop
    /// never deadlock (locking the first argument first deadlocked: checked).
    /// The threads are detached, so a deadlock fails the test at the timeout
    /// instead of hanging it.
    #[test]
    fn two_shards_in_crossed_orders() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        const ROUNDS: u32 = 20_000;
        let m: Arc<ShardMap<Id, u32>> = Arc::new(ShardMap::new(2));
        // A key of each shard, to tell the arguments apart.
        let of = |want: usize| {
            (0u32..)
                .map(|i| key(&i.to_le_bytes()))
                .find(|k| m.shard_of(m.hash(k)) == want)
                .unwrap()
        };
        let keys = Arc::new([of(0), of(1)]);
        let inside = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        for (a, b) in [(0usize, 1usize), (1, 0)] {
            let (m, keys, inside, done) =
                (m.clone(), keys.clone(), inside.clone(), done_tx.clone());
            std::thread::spawn(move || {
                // Counts one update of shard `i`'s key in `sh`.
                let bump = |sh: &mut ShardW<'_, Id, u32>, i: usize| {
                    let h = m.hash(&keys[i]);
                    match sh.take(h, |_, _| true) {
                        Some((k, v)) => {
                            assert_eq!(k.as_slice(), keys[i].as_slice());
                            sh.insert(h, k, v + 1);
                        }
                        None => sh.insert(h, keys[i].clone(), 1),
                    }
                };
                for r in 0..ROUNDS {
                    m.with_two_shards(a, b, |sa, sb| {
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "both held");
                        bump(sa, a);
                        bump(sb, b);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    });
                    if r % 1_000 == 0 {
                        std::thread::yield_now();
                    }
                }
                done.send(()).unwrap();
            });
        }
        for _ in 0..2 {
            done_rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("with_two_shards deadlocked (or a thread panicked)");
        }
        for (i, k) in keys.iter().enumerate() {
            let h = m.hash(k);
            let v = m.with_shard(i, |sh| sh.find(h, k).map(|(_, v)| *v));
            assert_eq!(v, Some(2 * ROUNDS), "shard {i} got every update of its key");
        }
    }

    #[test]
    fn drain_takes_all() {
        let mut m: ShardMap<Id, u32> = ShardMap::new(3);
        for i in 0..100u32 {
            m.write(key(&i.to_le_bytes()), |_, _| (Some(i), ()));
        }
        let mut all: Vec<u32> = m.drain().into_iter().map(|(_, v)| v).collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(m.slots(), 0);
    }
}
