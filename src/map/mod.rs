//! The lock-sharded map from session id to slot, behind one small interface.
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
pub(crate) use self::dashmap::ShardMap;

#[cfg(tls_session_cache_loom)]
mod loom;
#[cfg(tls_session_cache_loom)]
pub(crate) use self::loom::ShardMap;

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;
    use crate::id::Id;

    fn key(b: &[u8]) -> Id {
        Id::new(b).unwrap()
    }

    #[test]
    fn read_write_remove() {
        let m: ShardMap<u32> = ShardMap::new(4);
        assert_eq!(m.read(&key(b"a"), |v| v.map(|(_, v)| *v)), None);
        let r = m.write(key(b"a"), |k, v| {
            assert!(v.is_none());
            k.set_pos(5); // recorded in the key that is inserted
            (Some(7), "inserted")
        });
        assert_eq!(r, "inserted");
        assert_eq!(
            m.read(&key(b"a"), |v| v.map(|(k, v)| (k.pos(), *v))),
            Some((5, 7))
        );
        // Occupied: the returned value is ignored; the closure sees the map's key.
        m.write(key(b"a"), |k, v| {
            assert_eq!((k.pos(), v), (5, Some(&7)));
            (Some(9), ())
        });
        assert_eq!(m.read(&key(b"a"), |v| v.map(|(_, v)| *v)), Some(7));
        assert_eq!(m.remove_if(&key(b"a"), |_, v| *v == 8), None);
        assert_eq!(
            m.remove_if(&key(b"a"), |k, v| k.pos() == 5 && *v == 7),
            Some(7)
        );
        assert_eq!(m.slots(), 0);
    }

    #[test]
    fn try_remove_if_never_waits_for_a_held_shard() {
        let m: ShardMap<u32> = ShardMap::new(4);
        m.write(key(b"a"), |_, _| (Some(1), ()));
        // The shard is read-locked by `read`: a blocking remove would deadlock
        // here, the try gives up at once and changes nothing.
        let tried = m.read(&key(b"a"), |v| {
            assert_eq!(v.map(|(_, v)| *v), Some(1));
            m.try_remove_if(key(b"a"), |_, _| true)
        });
        assert_eq!(tried, None);
        assert_eq!(m.slots(), 1);
        // Free: the predicate decides.
        assert_eq!(m.try_remove_if(key(b"a"), |_, v| *v == 2), Some(None));
        assert_eq!(m.try_remove_if(key(b"b"), |_, _| true), Some(None));
        assert_eq!(m.try_remove_if(key(b"a"), |_, v| *v == 1), Some(Some(1)));
        assert_eq!(m.slots(), 0);
    }

    #[test]
    fn drain_takes_all() {
        let mut m: ShardMap<u32> = ShardMap::new(3);
        for i in 0..100u32 {
            m.write(key(&i.to_le_bytes()), |_, _| (Some(i), ()));
        }
        let mut all = m.drain();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(m.slots(), 0);
    }
}
