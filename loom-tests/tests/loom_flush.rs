//! Loom model of `flush` racing an add and a lookup (model 9).
#![cfg(tls_session_cache_loom)]

use loom::thread;
use loom_tests::{assert_quiescent, cache, cached_tag, run_model, Drops, CTX, EXPIRED, NOW};
use std::sync::Arc;

/// Model 9: the cached `a` is expired at `NOW`. One thread runs `flush(NOW)`; the
/// other adds a fresh `b` (a new id) and then looks `a` up. `a` is removed exactly
/// once (by the flush or as a timeout of the lookup), `b` is never flushed, and
/// the lookup never returns `a`.
#[test]
fn model_09_flush_add_get() {
    run_model("09 flush racing add and get", 3, || {
        let drops = Drops::new(2);
        let cache = cache(10);
        let a = drops.session(0, b"a", EXPIRED);
        let b = drops.session(1, b"b", NOW);
        assert!(cache.add(&a));

        let t = {
            let cache = cache.clone();
            thread::spawn(move || cache.flush(NOW))
        };
        let added = cache.add(&b);
        let got = cache.get(b"a", CTX).map(|s| s.payload().tag);
        let flushed = t.join().unwrap();

        assert!(added);
        assert_eq!(got, None, "an expired session is never returned");
        let st = cache.stats();
        assert!(flushed <= 1, "flushed {flushed}");
        // `timeouts` counts a lookup that met `a` expired, whoever then removed it.
        assert!(flushed == 1 || st.timeouts == 1, "a not removed: {st:?}");
        assert_eq!(st.misses, 1 - st.timeouts, "{st:?}");
        assert_eq!(st.hits, 0);
        assert!(!a.is_resumable());
        assert_eq!(Arc::strong_count(&a), 1);
        assert_eq!(Arc::strong_count(&b), 2, "b is not expired: never flushed");
        assert_quiescent(&cache, 1);
        assert_eq!(cached_tag(&cache, b"b"), Some(1));
        assert_eq!(drops.all(), [0, 0]);
        drop(cache);
        drop((a, b));
        assert_eq!(drops.all(), [1, 1]);
    });
}

/// Model 9a: `flush(NOW)` races the add of a fresh `b`: the expired `a` is flushed,
/// `b` never is.
#[test]
fn model_09a_flush_add() {
    run_model("09a flush racing add", 3, || {
        let drops = Drops::new(2);
        let cache = cache(10);
        let a = drops.session(0, b"a", EXPIRED);
        let b = drops.session(1, b"b", NOW);
        assert!(cache.add(&a));

        let t = {
            let cache = cache.clone();
            thread::spawn(move || cache.flush(NOW))
        };
        let added = cache.add(&b);
        let flushed = t.join().unwrap();

        assert!(added);
        assert_eq!(flushed, 1, "the expired a is flushed, b never");
        assert!(!a.is_resumable());
        assert_eq!(Arc::strong_count(&a), 1);
        assert_eq!(Arc::strong_count(&b), 2);
        assert_quiescent(&cache, 1);
        assert_eq!(cached_tag(&cache, b"b"), Some(1));
        assert_eq!(drops.all(), [0, 0]);
        drop(cache);
        drop((a, b));
        assert_eq!(drops.all(), [1, 1]);
    });
}

/// Model 9b: `flush(NOW)` races a `get` of the expired `a`: `a` is removed exactly
/// once (by the flush, or by the lookup as a timeout), never returned.
#[test]
fn model_09b_flush_get() {
    run_model("09b flush racing get", 3, || {
        let drops = Drops::new(1);
        let cache = cache(10);
        let a = drops.session(0, b"a", EXPIRED);
        assert!(cache.add(&a));

        let t = {
            let cache = cache.clone();
            thread::spawn(move || cache.flush(NOW))
        };
        let got = cache.get(b"a", CTX).map(|s| s.payload().tag);
        let flushed = t.join().unwrap();

        assert_eq!(got, None, "an expired session is never returned");
        let st = cache.stats();
        // `timeouts` counts a lookup that met `a` expired, whoever then removed it;
        // if the flush did not remove `a`, the lookup did.
        assert!(flushed <= 1, "flushed {flushed}");
        assert!(flushed == 1 || st.timeouts == 1, "a not removed: {st:?}");
        assert_eq!(st.misses + st.timeouts, 1, "{st:?}");
        assert!(!a.is_resumable());
        assert_eq!(Arc::strong_count(&a), 1);
        assert_quiescent(&cache, 0);
        assert_eq!(drops.all(), [0]);
        drop(cache);
        drop(a);
        assert_eq!(drops.all(), [1]);
    });
}

/// Model 19: flush racing a lookup in the expired session's shard. The cached
/// `a` (expired at `NOW`) and `b` (fresh) sit in different shards; one thread
/// runs `flush(NOW)` while the other looks up an absent id of `a`'s shard (a
/// reader holding that shard's read lock). The flush must still remove `a`: a
/// busy shard may send an *eviction* to the runner-up partition, but a flush
/// that took the runner-up found its head unexpired and stopped, leaving `a`
/// behind (found by a review; failed at iteration 2 before the fix).
#[test]
fn model_19_flush_racing_a_reader_of_the_expired_shard() {
    run_model(
        "19 flush racing a reader of the expired session's shard",
        3,
        || {
            let drops = Drops::new(2);
            let cache = cache(10);
            let a = drops.session(0, b"a", EXPIRED);
            let b = drops.session(1, b"b", NOW);
            // The scenario needs `a` and the looked-up id in one shard, `b` in the
            // other.
            let shard = |id: &[u8]| cache.__shard_of(id).unwrap();
            assert_eq!(shard(b"a"), shard(b"y"), "a and y share a shard");
            assert_ne!(shard(b"a"), shard(b"b"), "b in the other shard");
            assert!(cache.add(&a));
            assert!(cache.add(&b));

            let t = {
                let cache = cache.clone();
                thread::spawn(move || cache.flush(NOW))
            };
            let got = cache.get(b"y", CTX);
            let flushed = t.join().unwrap();

            assert!(got.is_none());
            assert_eq!(flushed, 1, "the expired a is flushed, b never");
            assert_eq!(cached_tag(&cache, b"a"), None, "a flushed");
            assert_eq!(cached_tag(&cache, b"b"), Some(1));
            assert_eq!(Arc::strong_count(&a), 1);
            assert_eq!(Arc::strong_count(&b), 2);
            assert_quiescent(&cache, 1);
            drop(cache);
            drop((a, b));
            assert_eq!(drops.all(), [1, 1]);
        },
    );
}
