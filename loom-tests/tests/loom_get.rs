//! Loom models of the lookup: `get` racing a replace (model 5), `get` of an expired
//! session racing its replace (model 6).
#![cfg(tls_session_cache_loom)]

use loom::thread;
use loom_tests::{assert_quiescent, cache, cached_tag, run_model, Drops, EXPIRED, NOW};
use std::sync::Arc;

/// Model 5: the cache holds the only reference to `a`; `get` races `add(b)` (a
/// replace). `get` returns `a` or `b`, never a released session; `a` is released
/// exactly once, and only after the reader dropped it (checked while holding it).
#[test]
fn model_05_get_replace() {
    run_model("05 get racing replace", 3, || {
        let drops = Drops::new(2);
        let cache = cache(10);
        {
            let a = drops.session(0, b"id", NOW);
            assert!(cache.add(&a));
        }
        let b = drops.session(1, b"id", NOW);
        let drops = Arc::new(drops);

        let t = {
            let (cache, drops) = (cache.clone(), drops.clone());
            thread::spawn(move || {
                let s = cache
                    .get(b"id", loom_tests::CTX)
                    .expect("a or b is always cached");
                let tag = s.payload().tag;
                assert_eq!(drops.of(tag), 0, "get returned a released session");
                assert!(Arc::strong_count(&s) >= 1);
                tag
            })
        };
        let added = cache.add(&b);
        let got = t.join().unwrap();

        assert!(added, "the replace returns true");
        assert!(got == 0 || got == 1, "got {got}");
        assert_eq!(drops.of(0), 1, "a released exactly once (after the reader)");
        assert_eq!(drops.of(1), 0);
        assert_eq!(Arc::strong_count(&b), 2, "b cached");
        let st = cache.stats();
        assert_eq!((st.hits, st.misses, st.timeouts), (1, 0, 0), "{st:?}");
        assert_quiescent(&cache, 1);
        assert_eq!(cached_tag(&cache, b"id"), Some(1));
        drop(cache);
        drop(b);
        assert_eq!(drops.all(), [1, 1]);
    });
}

/// Model 6: the cached `a` is expired; `get` of it races `add(b)` (a fresh
/// replacement). The replacement always survives: `get` either meets `a` expired
/// (a timeout; it removes `a` only if `a` is still the cached object) or finds `b`
/// (a hit).
#[test]
fn model_06_get_expired_replace() {
    run_model("06 get of expired racing replace", 3, || {
        let drops = Drops::new(2);
        let cache = cache(10);
        let a = drops.session(0, b"id", EXPIRED);
        let b = drops.session(1, b"id", NOW);
        assert!(cache.add(&a));

        let t = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(b"id", loom_tests::CTX).map(|s| s.payload().tag))
        };
        let added = cache.add(&b);
        let got = t.join().unwrap();

        assert!(added);
        let st = cache.stats();
        match got {
            None => {
                assert_eq!((st.hits, st.misses, st.timeouts), (0, 0, 1), "{st:?}");
                assert!(!a.is_resumable(), "an expired session met by get");
            }
            Some(1) => assert_eq!((st.hits, st.misses, st.timeouts), (1, 0, 0), "{st:?}"),
            Some(t) => panic!("get returned session {t}"),
        }
        assert_eq!(Arc::strong_count(&a), 1);
        assert_eq!(Arc::strong_count(&b), 2, "the replacement survives");
        assert_quiescent(&cache, 1);
        assert_eq!(cached_tag(&cache, b"id"), Some(1));
        assert_eq!(drops.all(), [0, 0]);
        drop(cache);
        drop((a, b));
        assert_eq!(drops.all(), [1, 1]);
    });
}
