//! Loom models of `add`: two adds of one id (models 1 and 2) and two adds of new
//! ids into a full cache (model 8).
#![cfg(tls_session_cache_loom)]

use loom::thread;
use loom_tests::{assert_quiescent, cache, cached_tag, run_model, Drops, NOW};
use std::sync::Arc;

/// Model 1: two threads add different objects with the same id. Both return true,
/// exactly one stays cached, the other's count is back to its owner's; nothing
/// leaks and nothing is released twice.
#[test]
fn model_01_add_add_different_objects() {
    run_model("01 add/add different objects, one id", 3, || {
        let drops = Drops::new(2);
        let cache = cache(10);
        let a = drops.session(0, b"id", NOW);
        let b = drops.session(1, b"id", NOW);

        let t = {
            let (cache, a) = (cache.clone(), a.clone());
            thread::spawn(move || cache.add(&a))
        };
        let rb = cache.add(&b);
        let ra = t.join().unwrap();

        assert!(ra, "add(a) must return true (new id or replace)");
        assert!(rb, "add(b) must return true (new id or replace)");
        let (na, nb) = (Arc::strong_count(&a), Arc::strong_count(&b));
        assert!(
            (na, nb) == (2, 1) || (na, nb) == (1, 2),
            "exactly one cached reference: counts a={na} b={nb}"
        );
        assert_eq!(drops.all(), [0, 0], "released while the owner holds it");
        assert_quiescent(&cache, 1);
        let winner = if na == 2 { 0 } else { 1 };
        assert_eq!(cached_tag(&cache, b"id"), Some(winner));

        drop(cache);
        assert_eq!((Arc::strong_count(&a), Arc::strong_count(&b)), (1, 1));
        assert_eq!(drops.all(), [0, 0]);
        drop((a, b));
        assert_eq!(drops.all(), [1, 1], "each released exactly once");
    });
}

/// Model 2: two threads add the identical object. Exactly one returns true; the
/// count is the owner's plus the cache's one.
#[test]
fn model_02_add_add_identical_object() {
    run_model("02 add/add identical object", 3, || {
        let drops = Drops::new(1);
        let cache = cache(10);
        let a = drops.session(0, b"id", NOW);

        let t = {
            let (cache, a) = (cache.clone(), a.clone());
            thread::spawn(move || cache.add(&a))
        };
        let r_main = cache.add(&a);
        let r_thread = t.join().unwrap();

        assert!(
            r_main ^ r_thread,
            "exactly one add returns true: {r_main} {r_thread}"
        );
        assert_eq!(Arc::strong_count(&a), 2, "owner's + the cache's one");
        assert_eq!(drops.all(), [0]);
        assert_quiescent(&cache, 1);
        assert_eq!(cached_tag(&cache, b"id"), Some(0));

        drop(cache);
        assert_eq!(Arc::strong_count(&a), 1);
        drop(a);
        assert_eq!(drops.all(), [1]);
    });
}

/// Model 8 body: the cache holds `full` sessions (ids `old0..`, expiring first) and
/// is full; two threads add a new id each. Both adds return true, `len()` never
/// exceeds the capacity (checked by each thread right after its add and at the
/// end), each eviction is counted once, the evicted sessions are exactly the old
/// ones, each released once and marked not resumable.
fn full_cache(full: usize) {
    let drops = Drops::new(full + 2);
    let cache = cache(full);
    let old: Vec<_> = (0..full)
        .map(|i| drops.session(i, format!("old{i}").as_bytes(), NOW - 10 + i as u64))
        .collect();
    for s in &old {
        assert!(cache.add(s));
    }
    assert_eq!(cache.len(), full);
    let b = drops.session(full, b"new-b", NOW);
    let c = drops.session(full + 1, b"new-c", NOW);

    let t = {
        let (cache, b) = (cache.clone(), b.clone());
        thread::spawn(move || {
            let r = cache.add(&b);
            let len = cache.len();
            assert!(len <= full, "len() {len} above capacity {full}");
            r
        })
    };
    let rc = cache.add(&c);
    let len = cache.len();
    assert!(len <= full, "len() {len} above capacity {full}");
    let rb = t.join().unwrap();

    assert!(rb && rc, "both adds of new ids return true");
    assert_eq!(
        cache.stats().cache_full,
        2,
        "two evictions, each counted once"
    );
    for (i, s) in old.iter().enumerate() {
        assert_eq!(
            Arc::strong_count(s),
            1,
            "old{i} evicted: owner's count only"
        );
        assert!(!s.is_resumable(), "old{i} evicted: not resumable");
    }
    let counts = (Arc::strong_count(&b), Arc::strong_count(&c));
    if full == 1 {
        // One of the two new sessions evicted the other.
        assert!(
            counts == (2, 1) || counts == (1, 2),
            "counts b, c: {counts:?}"
        );
        let evicted = if counts.0 == 1 { &b } else { &c };
        assert!(!evicted.is_resumable(), "evicted: not resumable");
    } else {
        assert_eq!(counts, (2, 2), "both new sessions cached");
    }
    assert!(drops.all().iter().all(|&d| d == 0), "released while held");
    let live = full.min(2);
    assert_quiescent(&cache, live);
    assert_eq!(cache.stats().hits + cache.stats().misses, 0);
    let cached = [cached_tag(&cache, b"new-b"), cached_tag(&cache, b"new-c")];
    if full >= 2 {
        assert_eq!(cached, [Some(full), Some(full + 1)]);
    } else {
        assert_eq!(cached.iter().flatten().count(), 1);
    }

    drop(cache);
    drop((old, b, c));
    assert!(drops.all().iter().all(|&d| d == 1), "{:?}", drops.all());
}

/// Model 8, capacity 1.
#[test]
fn model_08a_full_cache_capacity_1() {
    run_model("08a two new ids into a full cache, capacity 1", 2, || {
        full_cache(1)
    });
}

/// Model 8, capacity 2.
#[test]
fn model_08b_full_cache_capacity_2() {
    run_model("08b two new ids into a full cache, capacity 2", 2, || {
        full_cache(2)
    });
}
