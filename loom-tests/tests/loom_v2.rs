//! Loom models of the three races round one's core lost (issue 11), each with
//! sessions of *different* expiries so that pairing a session with another's order
//! is visible: replace racing flush (model 11), a replace that lowers the expiry
//! racing a remove (model 12), two adds of one object racing an eviction (model 13).
#![cfg(tls_session_cache_loom)]

use loom::thread;
use loom_tests::{
    assert_quiescent, cache, cached_tag, run_model, Drops, CTX, EXPIRED, NOW, TIMEOUT,
};
use std::sync::Arc;

/// Model 11: `s1` (expired at `NOW`) is cached; one thread replaces it with the
/// long-lived `s2` (same id), the other runs `flush(NOW)`. Round one could flush
/// `s2` (the replace's pointer paired with `s1`'s order). Here: either the flush
/// removed `s1` and the add linked `s2` as a new id, or the replace came first and
/// the flush removed nothing. `s2` is cached, resumable, in both.
#[test]
fn model_11_replace_flush_different_expiries() {
    run_model("11 replace racing flush (different expiries)", 3, || {
        let drops = Drops::new(2);
        let cache = cache(10);
        let s1 = drops.session(0, b"id", EXPIRED);
        let s2 = drops.session(1, b"id", NOW);
        assert!(cache.add(&s1));

        let t = {
            let cache = cache.clone();
            thread::spawn(move || cache.flush(NOW))
        };
        let added = cache.add(&s2);
        let flushed = t.join().unwrap();

        assert!(added);
        assert!(flushed <= 1, "flushed {flushed}");
        assert!(s2.is_resumable(), "the long-lived session was flushed");
        assert_eq!(
            s1.is_resumable(),
            flushed == 0,
            "s1 flushed iff flush removed one"
        );
        assert_eq!(Arc::strong_count(&s1), 1);
        assert_eq!(Arc::strong_count(&s2), 2);
        assert_quiescent(&cache, 1);
        assert_eq!(cached_tag(&cache, b"id"), Some(1));
        drop(cache);
        drop((s1, s2));
        assert_eq!(drops.all(), [1, 1]);
    });
}

/// Model 12: `s1` is cached; one thread replaces it with `s2`, whose expiry is
/// *lower* (round one then re-filed the slot), the other removes the id. Round one
/// could leave an index entry for a slot that no longer exists. Here: add then
/// remove (empty), or remove then add (`s2` cached as a new id); the eviction order
/// holds exactly one entry per cached session in both.
#[test]
fn model_12_lowering_replace_remove() {
    run_model("12 replace lowering the expiry racing remove", 3, || {
        let drops = Drops::new(3);
        let cache = cache(10);
        let s1 = drops.session(0, b"id", NOW);
        let s2 = drops.session(1, b"id", NOW - TIMEOUT / 2);
        let probe = drops.session(2, b"id", NOW);
        assert!(cache.add(&s1));

        let t = {
            let (cache, s2) = (cache.clone(), s2.clone());
            thread::spawn(move || cache.add(&s2))
        };
        let removed = cache.remove(&probe);
        let added = t.join().unwrap();

        assert!(added && removed);
        assert_eq!(Arc::strong_count(&s1), 1, "s1 released exactly once");
        match cached_tag(&cache, b"id") {
            Some(1) => {
                // remove (took s1), then add (s2 as a new id)
                assert_eq!(Arc::strong_count(&s2), 2);
                assert_quiescent(&cache, 1);
            }
            None => {
                // add (replaced s1), then remove (took s2)
                assert_eq!(Arc::strong_count(&s2), 1);
                assert_quiescent(&cache, 0);
            }
            other => panic!("cached {other:?}"),
        }
        drop(cache);
        drop((s1, s2, probe));
        assert_eq!(drops.all(), [1, 1, 1]);
    });
}

/// Model 13: capacity 1. Two threads add the same object `s`; a third adds `t`
/// (another id), which must evict whatever is cached. Linearizable outcomes only:
/// of the two adds of `s` exactly one returns true unless the eviction of `s` fell
/// between them (then both return true and `s` is linked again, not resumable —
/// what OpenSSL does for add, evict, add). A non-resumable `s` is cached only then.
#[test]
fn model_13_add_add_same_object_eviction() {
    run_model("13 add/add of one object racing an eviction", 1, || {
        let drops = Drops::new(2);
        let cache = cache(1);
        let s = drops.session(0, b"s", NOW);
        let t = drops.session(1, b"t", NOW);

        let h1 = {
            let (cache, s) = (cache.clone(), s.clone());
            thread::spawn(move || cache.add(&s))
        };
        let h2 = {
            let (cache, t) = (cache.clone(), t.clone());
            thread::spawn(move || cache.add(&t))
        };
        let r2 = cache.add(&s);
        let r1 = h1.join().unwrap();
        let rt = h2.join().unwrap();

        assert!(rt, "a new id is always added");
        assert!(r1 || r2, "one add of s links it");
        assert_quiescent(&cache, 1);
        let evictions = cache.stats().cache_full;
        let s_cached = Arc::strong_count(&s) == 2; // the test and the cache
        let state = format!(
            "r1 {r1} r2 {r2} evictions {evictions} s cached {s_cached} resumable {}",
            s.is_resumable()
        );
        if r1 && r2 {
            // add, evict (by t's add), add again.
            assert!(!s.is_resumable(), "{state}");
            assert!(s_cached, "the second add linked s: {state}");
            assert_eq!(
                evictions, 2,
                "s evicted, then t evicted by the re-link: {state}"
            );
        }
        if s_cached && !s.is_resumable() {
            assert!(
                r1 && r2,
                "a non-resumable s is cached only after add, evict, add"
            );
        }
        match cached_tag(&cache, b"t") {
            Some(1) => assert!(!s_cached),
            None => assert!(s_cached),
            other => panic!("cached {other:?}"),
        }
        drop(cache);
        drop((s, t));
        assert_eq!(drops.all(), [1, 1]);
    });
}

/// Model 14: `a0` is cached; two threads replace it at once (`a1` with a later,
/// `a2` with an earlier expiry), both under the shard read lock. The pointer and
/// the entry change together under the partition mutex: `a0` is released exactly
/// once, exactly one of `a1`/`a2` stays, with exactly one entry.
#[test]
fn model_14_replace_replace() {
    run_model("14 replace/replace (different expiries)", 3, || {
        let drops = Drops::new(3);
        let cache = cache(10);
        let a0 = drops.session(0, b"id", NOW);
        let a1 = drops.session(1, b"id", NOW + 5);
        let a2 = drops.session(2, b"id", NOW - 5);
        assert!(cache.add(&a0));

        let t = {
            let (cache, a1) = (cache.clone(), a1.clone());
            thread::spawn(move || cache.add(&a1))
        };
        let r2 = cache.add(&a2);
        let r1 = t.join().unwrap();

        assert!(r1 && r2, "both are replaces");
        assert_eq!(
            Arc::strong_count(&a0),
            1,
            "a0 released once, by one replacer"
        );
        let (n1, n2) = (Arc::strong_count(&a1), Arc::strong_count(&a2));
        assert!(
            (n1, n2) == (2, 1) || (n1, n2) == (1, 2),
            "counts a1={n1} a2={n2}"
        );
        assert_quiescent(&cache, 1);
        assert_eq!(cached_tag(&cache, b"id"), Some(if n1 == 2 { 1 } else { 2 }));
        // The one entry carries the winner's order: flushing just after the
        // earlier expiry removes a2 only.
        let removed = cache.flush(NOW - 5 + TIMEOUT + 1);
        assert_eq!(removed, usize::from(n2 == 2));
        drop(cache);
        drop((a0, a1, a2));
        assert_eq!(drops.all(), [1, 1, 1]);
    });
}

/// Model 15: capacity 1, empty: two threads add new ids at once, racing for the
/// last free place (not through an eviction: the count's compare-and-swap). `len()`
/// never exceeds 1, seen from both threads; the loser of the place evicts the
/// winner's session; exactly one stays.
#[test]
fn model_15_last_free_place() {
    run_model("15 two new ids race for the last free place", 3, || {
        let drops = Drops::new(2);
        let cache = cache(1);
        let a = drops.session(0, b"a", NOW);
        let b = drops.session(1, b"b", NOW);

        let t = {
            let (cache, a) = (cache.clone(), a.clone());
            thread::spawn(move || {
                let r = cache.add(&a);
                assert!(cache.len() <= 1, "len {} above capacity 1", cache.len());
                r
            })
        };
        let rb = cache.add(&b);
        assert!(cache.len() <= 1, "len {} above capacity 1", cache.len());
        let ra = t.join().unwrap();

        assert!(ra && rb);
        assert_quiescent(&cache, 1);
        assert_eq!(cache.stats().cache_full, 1);
        let (na, nb) = (Arc::strong_count(&a), Arc::strong_count(&b));
        assert!(
            (na, nb) == (2, 1) || (na, nb) == (1, 2),
            "counts a={na} b={nb}"
        );
        drop(cache);
        drop((a, b));
        assert_eq!(drops.all(), [1, 1]);
    });
}

/// Model 16: `s1` (context `CTX`) is cached; one thread replaces it with `s2` of
/// another context, the other runs `take_in(id, CTX)` (a scoped store's take: the
/// context is read under the id's shard write lock). Linearizable outcomes only:
/// the take got `s1` (then the add linked `s2` as a new id), or the replace came
/// first and the take found another context's session and left it. Never is `s2`
/// taken, and `s2` is cached in both.
#[test]
fn model_16_take_in_replace_other_context() {
    run_model("16 take_in racing a replace by another context", 3, || {
        let drops = Drops::new(2);
        let cache = cache(10);
        let s1 = drops.session(0, b"id", NOW);
        let s2 = drops.session_in(1, b"id", b"other", NOW);
        assert!(cache.add(&s1));

        let t = {
            let (cache, s2) = (cache.clone(), s2.clone());
            thread::spawn(move || cache.add(&s2))
        };
        let taken = cache.take_in(b"id", CTX).map(|s| s.payload().tag);
        let added = t.join().unwrap();

        assert!(added);
        assert!(matches!(taken, None | Some(0)), "took {taken:?}");
        assert!(s2.is_resumable());
        assert_eq!(s1.is_resumable(), taken.is_none(), "s1 flagged iff taken");
        assert_eq!(Arc::strong_count(&s1), 1, "s1 released exactly once");
        assert_eq!(Arc::strong_count(&s2), 2);
        assert_quiescent(&cache, 1);
        let st = cache.stats();
        assert_eq!(st.takes, u64::from(taken.is_some()));
        assert_eq!(
            (st.adds, st.replaces),
            if taken.is_some() { (2, 0) } else { (1, 1) }
        );
        let got = cache.get(b"id", b"other").map(|s| s.payload().tag);
        assert_eq!(got, Some(1));
        drop(cache);
        drop((s1, s2));
        assert_eq!(drops.all(), [1, 1]);
    });
}

/// Model 17: capacity 2, `x` then `y` cached with one expiry (`x` first: the
/// next victim). One thread removes `x` and adds the same `x` again (a new
/// entry: `y` is now first); the other adds `z`, which must evict. The evictor
/// reads its victim under the partition mutex and, if the victim's shard is busy
/// (the remover holds it), lets the mutex go and comes back: it must then find
/// that `x`'s entry is no longer the one it read (its `seq`), not merely that the
/// slot still holds `x`. Every linearization ends with `x` and `z` cached and `y`
/// evicted; evicting the re-added `x` instead would keep `y`.
#[test]
fn model_17_evictor_returns_after_remove_and_readd() {
    run_model(
        "17 eviction racing remove and re-add of its victim",
        2,
        || {
            let drops = Drops::new(3);
            let cache = cache(2);
            let x = drops.session(0, b"x", NOW);
            let y = drops.session(1, b"y", NOW);
            let z = drops.session(2, b"z", NOW);
            assert!(cache.add(&x));
            assert!(cache.add(&y));

            let t = {
                let (cache, x) = (cache.clone(), x.clone());
                thread::spawn(move || {
                    let removed = cache.remove(&x);
                    (removed, cache.add(&x))
                })
            };
            let rz = cache.add(&z);
            let (_removed, rx) = t.join().unwrap();

            assert!(rz && rx, "z and the re-added x are both linked");
            assert_quiescent(&cache, 2);
            assert!(
                !y.is_resumable(),
                "y (first in the order after the re-add) evicted"
            );
            assert_eq!(Arc::strong_count(&y), 1, "y released by its eviction");
            assert_eq!(cached_tag(&cache, b"z"), Some(2));
            assert_eq!(
                cached_tag(&cache, b"x"),
                Some(0),
                "the re-added x was evicted"
            );
            assert_eq!(cached_tag(&cache, b"y"), None);
            drop(cache);
            drop((x, y, z));
            assert_eq!(drops.all(), [1, 1, 1]);
        },
    );
}

/// Model 18: with more than eight eviction partitions, a group of eight
/// publishes a summary of its partitions' minima for the evictor. Two holders
/// of sibling partitions' mutexes change their heads at once; once both are
/// done the summary must equal the minimum of the group's cells, or the evictor
/// picks a wrong victim even when quiescent (found by a review; the scenario is
/// `order::__loom_group_summary_race`).
#[test]
fn model_18_group_summary_race() {
    run_model(
        "18 two sibling partitions republish their group's summary",
        3,
        || {
            let (summary, cells) = tls_session_cache::__loom_group_summary_race();
            assert_eq!(summary, cells, "stale group summary");
        },
    );
}
