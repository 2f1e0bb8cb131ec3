//! Loom model of the replace path with three threads (model 10).
#![cfg(tls_session_cache_loom)]

use loom::thread;
use loom_tests::{assert_quiescent, cache, cached_tag, run_model, Drops, CTX, NOW};
use std::sync::Arc;

/// Model 10: the cache holds the only reference to `a`; two threads replace it
/// (with `b` and with `c`) while a third looks the id up. Both replaces return
/// true, exactly one of `b`, `c` stays cached, `a` is released exactly once and
/// never handed out after its release. Three threads: preemption bound 1.
#[test]
fn model_10_replace_replace_get() {
    run_model("10 replace/replace/get, three threads", 1, || {
        let drops = Drops::new(3);
        let cache = cache(10);
        {
            let a = drops.session(0, b"id", NOW);
            assert!(cache.add(&a));
        }
        let b = drops.session(1, b"id", NOW);
        let c = drops.session(2, b"id", NOW);
        let drops = Arc::new(drops);

        let tb = {
            let (cache, b) = (cache.clone(), b.clone());
            thread::spawn(move || cache.add(&b))
        };
        let tc = {
            let (cache, c) = (cache.clone(), c.clone());
            thread::spawn(move || cache.add(&c))
        };
        let s = cache
            .get(b"id", CTX)
            .expect("one of a, b, c is always cached");
        let got = s.payload().tag;
        assert_eq!(drops.of(got), 0, "get returned a released session");
        drop(s);
        let (rb, rc) = (tb.join().unwrap(), tc.join().unwrap());

        assert!(rb && rc, "both replaces return true: {rb} {rc}");
        assert_eq!(drops.of(0), 1, "a released exactly once");
        let counts = (Arc::strong_count(&b), Arc::strong_count(&c));
        assert!(
            counts == (2, 1) || counts == (1, 2),
            "exactly one cached: {counts:?}"
        );
        assert_eq!(drops.all(), [1, 0, 0]);
        let st = cache.stats();
        assert_eq!((st.hits, st.misses, st.timeouts), (1, 0, 0), "{st:?}");
        assert_quiescent(&cache, 1);
        let winner = if counts.0 == 2 { 1 } else { 2 };
        assert_eq!(cached_tag(&cache, b"id"), Some(winner));
        drop(cache);
        drop((b, c));
        assert_eq!(drops.all(), [1, 1, 1]);
    });
}
