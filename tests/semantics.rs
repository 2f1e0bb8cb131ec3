//! One test (or a few) per documented rule: references, capacity and eviction
//! order, time, isolation, modes and callbacks, bad input.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls_session_cache::{
    CacheMode, Error, ManualClock, RemovalCause, Session, SessionCache, SessionStore,
};

const T0: u64 = 1_700_000_000;

fn sess(id: &[u8], time: u64, timeout: u64) -> Arc<Session<Vec<u8>>> {
    Arc::new(
        Session::new(id, b"ctx", vec![0xAB; 16])
            .unwrap()
            .with_time(time)
            .with_timeout(Duration::from_secs(timeout)),
    )
}

fn cache_with(clock: &ManualClock, capacity: usize) -> SessionCache<Vec<u8>> {
    SessionCache::builder()
        .capacity(capacity)
        .clock(clock.clone())
        .build()
}

fn ids_present(c: &SessionCache<Vec<u8>>, ids: &[&[u8]]) -> Vec<Vec<u8>> {
    ids.iter()
        .filter(|id| c.get(id, b"ctx").is_some())
        .map(|id| id.to_vec())
        .collect()
}

// ---------------------------------------------------------------- references

#[test]
fn add_new_takes_one_reference() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 10);
    let s = sess(b"a", T0, 300);
    assert!(c.add(&s));
    assert_eq!(Arc::strong_count(&s), 2);
    assert_eq!(c.len(), 1);
}

#[test]
fn add_identical_is_a_noop_returning_false() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 10);
    let s = sess(b"a", T0, 300);
    assert!(c.add(&s));
    assert!(!c.add(&s));
    assert!(!c.add(&s));
    assert_eq!(Arc::strong_count(&s), 2);
    assert_eq!(c.len(), 1);
}

#[test]
fn replace_releases_old_reference_at_once() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 10);
    let old = sess(b"a", T0, 300);
    let new = sess(b"a", T0, 300);
    assert!(c.add(&old));
    assert!(c.add(&new));
    assert_eq!(
        Arc::strong_count(&old),
        1,
        "replaced: released as add returns"
    );
    assert_eq!(Arc::strong_count(&new), 2);
    assert_eq!(c.len(), 1);
    assert!(Arc::ptr_eq(&c.get(b"a", b"ctx").unwrap(), &new));
    // A replace is not a removal: the old one stays resumable.
    assert!(old.is_resumable());
}

#[test]
fn remove_releases_and_flags_argument() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 10);
    let s = sess(b"a", T0, 300);
    c.add(&s);
    assert!(c.remove(&s));
    assert_eq!(Arc::strong_count(&s), 1);
    assert!(!s.is_resumable());
    assert!(!c.remove(&s));
    assert_eq!(c.len(), 0);
    assert_eq!(c.__slots(), 0, "dead slot unlinked");
    assert_eq!(c.__index_entries(), 0);
}

#[test]
fn remove_is_by_id_not_identity() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 10);
    let cached = sess(b"a", T0, 300);
    let other = sess(b"a", T0, 300);
    c.add(&cached);
    assert!(
        c.remove(&other),
        "a different object with the same id removes it"
    );
    assert_eq!(Arc::strong_count(&cached), 1);
    assert!(!other.is_resumable(), "the argument is flagged");
    assert!(cached.is_resumable(), "the removed one is not (as OpenSSL)");
    assert!(c.is_empty());
}

#[test]
fn remove_if_same_only_removes_that_object() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 10);
    let cached = sess(b"a", T0, 300);
    let other = sess(b"a", T0, 300);
    c.add(&cached);
    assert!(!c.remove_if_same(&other));
    assert!(other.is_resumable());
    assert_eq!(c.len(), 1);
    assert!(c.remove_if_same(&cached));
    assert_eq!(Arc::strong_count(&cached), 1);
    assert!(!cached.is_resumable());
    assert!(!c.remove_if_same(&cached));
}

#[test]
fn take_hands_the_session_out_once() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 10);
    let s = sess(b"ticket", T0, 300);
    c.add(&s);
    let t = c.take(b"ticket").unwrap();
    assert!(Arc::ptr_eq(&t, &s));
    assert!(c.take(b"ticket").is_none());
    drop(t);
    assert_eq!(Arc::strong_count(&s), 1);
    assert!(c.take(b"").is_none());
    assert!(c.take(&[1u8; 100]).is_none());
}

#[test]
fn get_returns_a_new_reference() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 10);
    let s = sess(b"a", T0, 300);
    c.add(&s);
    let g = c.get(b"a", b"ctx").unwrap();
    assert_eq!(Arc::strong_count(&s), 3);
    drop(g);
    assert_eq!(Arc::strong_count(&s), 2);
}

#[test]
fn drop_of_cache_releases_everything() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 0);
    let all: Vec<_> = (0..100u32)
        .map(|i| sess(&i.to_le_bytes(), T0, 300))
        .collect();
    for s in &all {
        assert!(c.add(s));
    }
    // Some churn, so that released nodes sit in epoch garbage too.
    for s in all.iter().take(50) {
        assert!(c.remove(s));
        assert!(c.add(s));
    }
    drop(c);
    for s in &all {
        assert_eq!(Arc::strong_count(s), 1);
    }
}

#[test]
fn payload_dropped_exactly_when_last_reference_goes() {
    struct Flag(Arc<Mutex<u32>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            *self.0.lock().unwrap() += 1;
        }
    }
    let drops = Arc::new(Mutex::new(0));
    let c: SessionCache<Flag> = SessionCache::new();
    let s = Arc::new(Session::new(b"x", b"", Flag(drops.clone())).unwrap());
    c.add(&s);
    drop(s);
    assert_eq!(*drops.lock().unwrap(), 0, "the cache still holds it");
    let again = c.get(b"x", b"").unwrap();
    assert!(c.remove(&again));
    assert_eq!(*drops.lock().unwrap(), 0, "the caller still holds it");
    drop(again);
    assert_eq!(*drops.lock().unwrap(), 1, "released exactly once");
}

// ---------------------------------------------------------------- capacity

#[test]
fn capacity_n_holds_n_and_evicts_soonest_expiry() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 2);
    let a = sess(b"a", T0, 100); // expires T0+100
    let b = sess(b"b", T0, 50); // expires T0+50: soonest
    let d = sess(b"d", T0, 200);
    assert!(c.add(&a));
    assert!(c.add(&b));
    assert_eq!(c.len(), 2);
    assert!(c.add(&d));
    assert_eq!(c.len(), 2);
    assert_eq!(Arc::strong_count(&b), 1, "b evicted and released");
    assert!(!b.is_resumable(), "evicted sessions are flagged");
    assert_eq!(c.stats().cache_full, 1);
    assert_eq!(
        ids_present(&c, &[b"a", b"b", b"d"]),
        vec![b"a".to_vec(), b"d".to_vec()]
    );
}

#[test]
fn equal_expiries_evict_oldest_insert() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 3);
    let s: Vec<_> = [b"p", b"q", b"r", b"s", b"t"]
        .iter()
        .map(|id| sess(*id, T0, 300))
        .collect();
    for x in &s {
        assert!(c.add(x));
    }
    assert_eq!(c.stats().cache_full, 2);
    assert_eq!(Arc::strong_count(&s[0]), 1);
    assert_eq!(Arc::strong_count(&s[1]), 1);
    assert_eq!(
        ids_present(&c, &[b"p", b"q", b"r", b"s", b"t"]),
        vec![b"r".to_vec(), b"s".to_vec(), b"t".to_vec()]
    );
}

#[test]
fn lookups_do_not_reorder() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 2);
    let a = sess(b"a", T0, 300);
    let b = sess(b"b", T0, 300);
    c.add(&a);
    c.add(&b);
    for _ in 0..5 {
        c.get(b"a", b"ctx").unwrap();
    }
    c.add(&sess(b"c", T0, 300));
    assert_eq!(Arc::strong_count(&a), 1, "not LRU: a still goes first");
}

#[test]
fn replace_evicts_nothing_and_moves_order() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 2);
    let a1 = sess(b"a", T0, 300);
    let b = sess(b"b", T0, 300);
    c.add(&a1);
    c.add(&b);
    let a2 = sess(b"a", T0, 300);
    assert!(c.add(&a2));
    assert_eq!(c.stats().cache_full, 0);
    assert_eq!(c.len(), 2);
    // a2 is a newer insert than b: b goes first now.
    c.add(&sess(b"c", T0, 300));
    assert_eq!(Arc::strong_count(&b), 1);
    assert_eq!(Arc::strong_count(&a2), 2);
}

#[test]
fn replace_with_earlier_expiry_is_evicted_first() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 2);
    c.add(&sess(b"a", T0, 300));
    let b = sess(b"b", T0, 200);
    c.add(&b);
    let a2 = sess(b"a", T0, 100); // now the soonest
    c.add(&a2);
    c.add(&sess(b"c", T0, 300));
    assert_eq!(Arc::strong_count(&a2), 1, "a2 evicted");
    assert_eq!(Arc::strong_count(&b), 2);
}

#[test]
fn set_capacity_returns_previous_and_evicts_on_next_new_id() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 0);
    let s: Vec<_> = (0..5u8)
        .map(|i| sess(&[i + 1], T0 + u64::from(i), 300))
        .collect();
    for x in &s {
        c.add(x);
    }
    assert_eq!(c.set_capacity(2), 0);
    assert_eq!(c.capacity(), 2);
    assert_eq!(c.len(), 5, "nothing evicted yet");
    // The next add of a new id evicts until the cache fits.
    let n = sess(&[9], T0 + 10, 300);
    assert!(c.add(&n));
    assert_eq!(c.len(), 2);
    assert_eq!(c.stats().cache_full, 4);
    for x in &s[..4] {
        assert_eq!(Arc::strong_count(x), 1);
    }
    assert_eq!(Arc::strong_count(&s[4]), 2);
    assert_eq!(c.set_capacity(0), 2);
}

#[test]
fn replace_over_a_lowered_limit_evicts_others() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 0);
    let s: Vec<_> = (0..4u8)
        .map(|i| sess(&[i + 1], T0 + u64::from(i), 300))
        .collect();
    for x in &s {
        c.add(x);
    }
    c.set_capacity(2);
    // Replace the soonest-expiring id: the replacement is never the one evicted.
    let r = sess(&[1], T0, 300);
    assert!(c.add(&r));
    assert_eq!(c.len(), 2);
    assert_eq!(c.stats().cache_full, 2);
    assert_eq!(Arc::strong_count(&r), 2, "the replacement stays");
    assert_eq!(Arc::strong_count(&s[0]), 1, "replaced");
    assert_eq!(Arc::strong_count(&s[1]), 1, "evicted");
    assert_eq!(Arc::strong_count(&s[2]), 1, "evicted");
    assert_eq!(Arc::strong_count(&s[3]), 2);
    // A no-op add returns false and evicts nothing.
    c.set_capacity(1);
    assert!(!c.add(&r));
    assert_eq!(c.len(), 2);
}

#[test]
fn unlimited_capacity() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 0);
    for i in 0..5_000u32 {
        assert!(c.add(&sess(&i.to_le_bytes(), T0, 300)));
    }
    assert_eq!(c.len(), 5_000);
    assert_eq!(c.stats().cache_full, 0);
}

#[test]
fn capacity_one_keeps_the_newest() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 1);
    for i in 0..10u8 {
        assert!(c.add(&sess(&[i + 1], T0, 300)));
        assert_eq!(c.len(), 1);
    }
    assert_eq!(c.stats().cache_full, 9);
    assert!(c.get(&[10], b"ctx").is_some());
}

// ---------------------------------------------------------------- time

#[test]
fn expiry_is_strict_and_counts_a_timeout() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 10);
    let s = sess(b"a", T0, 10);
    c.add(&s);
    clock.set(T0 + 10);
    assert!(
        c.get(b"a", b"ctx").is_some(),
        "now == time + timeout: still valid"
    );
    clock.set(T0 + 11);
    assert!(c.get(b"a", b"ctx").is_none());
    let st = c.stats();
    assert_eq!(
        (st.hits, st.misses, st.timeouts, st.cache_full, st.cb_hits),
        (1, 0, 1, 0, 0)
    );
    assert_eq!((st.adds, st.expired, st.len), (1, 1, 0));
    assert_eq!(c.len(), 0, "an expired session is removed");
    assert_eq!(Arc::strong_count(&s), 1);
    assert!(!s.is_resumable());
    assert!(c.get(b"a", b"ctx").is_none());
    assert_eq!(c.stats().misses, 1);
}

#[test]
fn cache_timeout_applies_to_sessions_without_their_own() {
    let clock = ManualClock::new(T0);
    let c: SessionCache<()> = SessionCache::builder()
        .timeout(Duration::from_secs(60))
        .clock(clock.clone())
        .build();
    let s = Arc::new(Session::new(b"a", b"", ()).unwrap().with_time(T0));
    c.add(&s);
    clock.set(T0 + 60);
    assert!(c.get(b"a", b"").is_some());
    clock.set(T0 + 61);
    assert!(c.get(b"a", b"").is_none());
}

#[test]
fn flush_removes_expired_in_order() {
    #[derive(Default)]
    struct Log(Mutex<Vec<Vec<u8>>>);
    impl SessionStore<Vec<u8>> for Log {
        fn remove_session(&self, s: &Arc<Session<Vec<u8>>>, cause: RemovalCause) {
            assert_eq!(cause, RemovalCause::Flushed);
            self.0.lock().unwrap().push(s.id().to_vec());
        }
    }
    let log = Arc::new(Log::default());
    let clock = ManualClock::new(T0);
    let c: SessionCache<Vec<u8>> = SessionCache::builder()
        .capacity(0)
        .clock(clock.clone())
        .store(log.clone())
        .build();
    let x = sess(b"x", T0, 30);
    let y = sess(b"y", T0, 10);
    let z = sess(b"z", T0, 20);
    let w = sess(b"w", T0, 1000);
    for s in [&x, &y, &z, &w] {
        c.add(s);
    }
    assert_eq!(c.flush(T0 + 20), 1, "only y: z expires after T0+20");
    assert_eq!(c.flush(T0 + 31), 2);
    assert_eq!(
        *log.0.lock().unwrap(),
        vec![b"y".to_vec(), b"z".to_vec(), b"x".to_vec()]
    );
    for s in [&x, &y, &z] {
        assert_eq!(Arc::strong_count(s), 1);
        assert!(!s.is_resumable());
    }
    assert_eq!(c.len(), 1);
    assert_eq!(c.flush(0), 1, "0 removes everything");
    assert!(c.is_empty());
    assert_eq!(c.stats().timeouts, 0, "flush counts no timeouts");
}

#[test]
fn update_time_stamps_adds() {
    let clock = ManualClock::new(T0 + 500);
    let c: SessionCache<Vec<u8>> = SessionCache::builder()
        .mode(CacheMode::SERVER | CacheMode::UPDATE_TIME)
        .clock(clock.clone())
        .build();
    let s = sess(b"a", T0, 10);
    c.add(&s);
    assert_eq!(s.time(), T0 + 500);
    clock.set(T0 + 505);
    assert!(!c.add(&s), "identical: still false");
    assert_eq!(s.time(), T0 + 505, "refreshed");
    clock.set(T0 + 515);
    assert!(c.get(b"a", b"ctx").is_some());
}

#[test]
fn clock_faults_do_not_panic() {
    let clock = ManualClock::new(u64::MAX - 5);
    let c = cache_with(&clock, 2);
    let far = sess(b"a", u64::MAX - 1, u64::MAX);
    c.add(&far);
    assert!(c.get(b"a", b"ctx").is_some());
    clock.set(0); // backwards
    let future = sess(b"b", u64::MAX, 0);
    c.add(&future);
    assert!(c.get(b"b", b"ctx").is_some(), "dated in the future: valid");
    let zero = Arc::new(
        Session::new(b"c", b"ctx", vec![])
            .unwrap()
            .with_time(0)
            .with_timeout(Duration::ZERO),
    );
    c.add(&zero);
    assert!(c.get(b"c", b"ctx").is_some(), "now == time: valid");
    clock.set(1);
    assert!(c.get(b"c", b"ctx").is_none());
    let max = Arc::new(
        Session::new(b"d", b"ctx", vec![])
            .unwrap()
            .with_timeout(Duration::MAX),
    );
    c.add(&max);
    clock.set(u64::MAX);
    assert!(c.get(b"d", b"ctx").is_some(), "Duration::MAX never expires");
    assert_eq!(c.flush(u64::MAX), 0);
}

// ---------------------------------------------------------------- isolation

#[test]
fn other_sid_ctx_is_a_miss_that_counts_nothing() {
    let clock = ManualClock::new(T0);
    let c = cache_with(&clock, 10);
    let s = sess(b"a", T0, 300);
    c.add(&s);
    assert!(c.get(b"a", b"other").is_none());
    assert!(c.get(b"a", b"").is_none());
    let st = c.stats();
    assert_eq!(
        (st.hits, st.misses, st.timeouts, st.cb_hits, st.removes),
        (0, 0, 0, 0, 0)
    );
    assert_eq!((st.adds, st.len, st.capacity), (1, 1, 10));
    assert_eq!(c.len(), 1, "not removed");
    assert!(c.get(b"a", b"ctx").is_some());
}

// ---------------------------------------------------------------- modes and callbacks

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    external: Mutex<Vec<Arc<Session<Vec<u8>>>>>,
}

impl SessionStore<Vec<u8>> for Recorder {
    fn new_session(&self, s: &Arc<Session<Vec<u8>>>) {
        self.events
            .lock()
            .unwrap()
            .push(format!("new {}", String::from_utf8_lossy(s.id())));
    }
    fn get_session(&self, id: &[u8]) -> Option<Arc<Session<Vec<u8>>>> {
        self.events
            .lock()
            .unwrap()
            .push(format!("get {}", String::from_utf8_lossy(id)));
        self.external
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.id() == id)
            .cloned()
    }
    fn remove_session(&self, s: &Arc<Session<Vec<u8>>>, cause: RemovalCause) {
        self.events.lock().unwrap().push(format!(
            "remove {} {cause:?}",
            String::from_utf8_lossy(s.id())
        ));
    }
}

impl Recorder {
    fn take_events(&self) -> Vec<String> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

fn recorded(mode: CacheMode, clock: &ManualClock) -> (Arc<Recorder>, SessionCache<Vec<u8>>) {
    let r = Arc::new(Recorder::default());
    let c = SessionCache::builder()
        .mode(mode)
        .capacity(2)
        .clock(clock.clone())
        .store(r.clone())
        .build();
    (r, c)
}

#[test]
fn callbacks_fire_as_openssl() {
    let clock = ManualClock::new(T0);
    let (r, c) = recorded(CacheMode::SERVER, &clock);
    let a = sess(b"a", T0, 300);
    assert!(c.update_cache(&a));
    assert_eq!(r.take_events(), vec!["new a"]);
    // A replace fires nothing.
    c.add(&sess(b"a", T0, 300));
    assert!(r.take_events().is_empty());
    // remove fires even when nothing was cached.
    let ghost = sess(b"ghost", T0, 300);
    assert!(!c.remove(&ghost));
    assert_eq!(r.take_events(), vec!["remove ghost Removed"]);
    // An eviction fires it.
    c.add(&sess(b"b", T0 + 1, 300));
    c.add(&sess(b"c", T0 + 2, 300));
    assert_eq!(r.take_events(), vec!["remove a Evicted"]);
    // An internal miss asks the store.
    assert!(c.get(b"zz", b"ctx").is_none());
    assert_eq!(r.take_events(), vec!["get zz"]);
    // A hit does not.
    assert!(c.get(b"b", b"ctx").is_some());
    assert!(r.take_events().is_empty());
    // Expired: remove callback.
    clock.set(T0 + 400);
    assert!(c.get(b"b", b"ctx").is_none());
    assert_eq!(r.take_events(), vec!["remove b Expired"]);
}

/// Every removal path reports its own cause to the store and counts in its own
/// statistic; `len` is the adds minus every kind of removal.
#[test]
fn removal_causes_and_counters() {
    let clock = ManualClock::new(T0);
    let (r, c) = recorded(CacheMode::SERVER, &clock);
    let s0 = c.stats();
    assert_eq!((s0.len, s0.capacity), (0, 2));
    let a = sess(b"a", T0, 300);
    let b = sess(b"b", T0 + 1, 300);
    assert!(c.add(&a));
    assert!(!c.add(&a)); // the no-op counts nothing
    assert!(c.add(&sess(b"a", T0, 300))); // a replace
    assert!(c.add(&b));
    assert!(c.add(&sess(b"c", T0 + 2, 300))); // evicts the replaced a
    assert_eq!(r.take_events(), vec!["remove a Evicted"]);
    // take: Taken.
    assert!(c.take(b"b").is_some());
    assert_eq!(r.take_events(), vec!["remove b Taken"]);
    // remove_if_same of the cached object, then remove: Removed.
    let d = sess(b"d", T0 + 3, 300);
    c.add(&d);
    assert!(c.remove_if_same(&d));
    assert!(!c.remove_if_same(&d)); // nothing cached: no callback, not counted
    assert_eq!(r.take_events(), vec!["remove d Removed"]);
    let e = sess(b"e", T0, 300);
    c.add(&e);
    assert!(c.remove(&e));
    assert_eq!(r.take_events(), vec!["remove e Removed"]);
    // An expired session met by get: Expired.
    let f = sess(b"f", T0 - 400, 300);
    c.add(&f);
    assert!(c.get(b"f", b"ctx").is_none());
    assert_eq!(r.take_events(), vec!["remove f Expired"]);
    // flush: Flushed (expired at its time, or everything for 0).
    c.add(&sess(b"g", T0 - 400, 300));
    assert_eq!(c.flush(T0), 1);
    assert_eq!(c.flush(0), 1); // c
    assert_eq!(
        r.take_events(),
        vec!["remove g Flushed", "remove c Flushed"]
    );
    let st = c.stats();
    assert_eq!(
        (st.adds, st.replaces, st.removes, st.takes),
        (7, 1, 2, 1),
        "{st:?}"
    );
    assert_eq!((st.cache_full, st.expired, st.flushed), (1, 1, 2), "{st:?}");
    assert_eq!(st.evictions(), 4);
    assert_eq!(st.len, 0);
    assert_eq!(st.adds - st.removes - st.takes - st.evictions(), st.len);
}

#[test]
fn external_get_counts_cb_hit_and_stores() {
    let clock = ManualClock::new(T0);
    let (r, c) = recorded(CacheMode::SERVER, &clock);
    let e = sess(b"e", T0, 300);
    r.external.lock().unwrap().push(e.clone());
    let got = c.get(b"e", b"ctx").unwrap();
    assert!(Arc::ptr_eq(&got, &e));
    let st = c.stats();
    assert_eq!((st.misses, st.cb_hits, st.hits), (1, 1, 1));
    assert_eq!(c.len(), 1, "stored internally");
    r.take_events();
    assert!(c.get(b"e", b"ctx").is_some());
    assert!(r.take_events().is_empty(), "now an internal hit");
    // Non-resumable answers are ignored.
    let n = sess(b"n", T0, 300);
    n.mark_not_resumable();
    r.external.lock().unwrap().push(n);
    assert!(c.get(b"n", b"ctx").is_none());
    assert_eq!(c.stats().cb_hits, 1);
}

#[test]
fn no_internal_modes() {
    let clock = ManualClock::new(T0);
    let (r, c) = recorded(CacheMode::SERVER | CacheMode::NO_INTERNAL, &clock);
    let a = sess(b"a", T0, 300);
    assert!(!c.update_cache(&a), "NO_INTERNAL_STORE: not stored");
    assert_eq!(c.len(), 0);
    assert_eq!(r.take_events(), vec!["new a"]);
    r.external.lock().unwrap().push(a.clone());
    assert!(c.get(b"a", b"ctx").is_some());
    assert_eq!(c.len(), 0, "NO_INTERNAL_STORE: external hit not stored");
    let st = c.stats();
    assert_eq!(
        (st.misses, st.cb_hits),
        (0, 1),
        "NO_INTERNAL_LOOKUP counts no miss"
    );
    // Direct add works whatever the mode.
    assert!(c.add(&a));
    assert_eq!(c.len(), 1);
    // ...but the lookup still skips the internal cache.
    r.take_events();
    c.get(b"a", b"ctx");
    assert_eq!(r.take_events(), vec!["get a"]);
}

#[test]
fn mode_without_server_stores_nothing_after_handshakes() {
    let clock = ManualClock::new(T0);
    for mode in [CacheMode::OFF, CacheMode::CLIENT] {
        let (r, c) = recorded(mode, &clock);
        assert!(!c.update_cache(&sess(b"a", T0, 300)));
        assert!(c.is_empty());
        assert!(r.take_events().is_empty());
    }
    let (_, c) = recorded(CacheMode::BOTH, &clock);
    assert!(c.update_cache(&sess(b"a", T0, 300)));
    assert_eq!(c.set_mode(CacheMode::OFF), CacheMode::BOTH);
    assert_eq!(c.mode(), CacheMode::OFF);
}

#[test]
fn auto_flush_every_256_handshakes_unless_no_auto_clear() {
    for (mode, expect_flushed) in [
        (CacheMode::SERVER, true),
        (CacheMode::SERVER | CacheMode::NO_AUTO_CLEAR, false),
    ] {
        let clock = ManualClock::new(T0);
        let c: SessionCache<Vec<u8>> = SessionCache::builder()
            .capacity(0)
            .mode(mode)
            .clock(clock.clone())
            .build();
        let old = sess(b"old", T0, 10);
        c.add(&old);
        clock.set(T0 + 100);
        for i in 0..255u32 {
            c.update_cache(&sess(&i.to_le_bytes(), T0 + 100, 300));
        }
        assert_eq!(Arc::strong_count(&old), 2, "not yet: 255 calls");
        c.update_cache(&sess(b"256th", T0 + 100, 300));
        assert_eq!(Arc::strong_count(&old) == 1, expect_flushed, "{mode:?}");
    }
}

#[test]
fn update_cache_skips_non_resumable() {
    let clock = ManualClock::new(T0);
    let (r, c) = recorded(CacheMode::SERVER, &clock);
    let s = sess(b"a", T0, 300);
    s.mark_not_resumable();
    assert!(!c.update_cache(&s));
    assert!(c.is_empty());
    // OpenSSL's ssl_update_cache returns at once for a non-resumable session: no
    // new-session callback, and the handshake is not counted toward auto-flush.
    assert!(r.take_events().is_empty());
    let expired = sess(b"old", T0 - 1_000, 300);
    assert!(c.add(&expired));
    for _ in 0..256 {
        assert!(!c.update_cache(&s));
    }
    assert_eq!(
        c.len(),
        1,
        "256 refused calls did not trigger the auto-flush"
    );
    let fresh = sess(b"fresh", T0, 300);
    for _ in 0..255 {
        c.update_cache(&fresh);
    }
    r.take_events();
    c.update_cache(&fresh);
    assert_eq!(
        c.len(),
        1,
        "the 256th accepted call flushed the expired session"
    );
    assert!(!expired.is_resumable());
}

#[test]
fn callbacks_may_reenter_the_cache() {
    // The store points back at its cache weakly: no reference cycle.
    struct Reenter(std::sync::OnceLock<std::sync::Weak<SessionCache<Vec<u8>>>>);
    impl SessionStore<Vec<u8>> for Reenter {
        fn remove_session(&self, s: &Arc<Session<Vec<u8>>>, _: RemovalCause) {
            let Some(c) = self.0.get().and_then(std::sync::Weak::upgrade) else {
                return;
            };
            let _ = c.get(s.id(), s.sid_ctx());
            let _ = c.len();
            // Only once: a callback that refills a full cache on every eviction
            // would keep the add that triggered it evicting forever.
            if s.id() != b"from-callback" {
                c.add(&sess(b"from-callback", 1, 1));
            }
        }
    }
    let r = Arc::new(Reenter(std::sync::OnceLock::new()));
    let c = Arc::new(
        SessionCache::builder()
            .capacity(1)
            .clock(ManualClock::new(T0))
            .store(r.clone())
            .build(),
    );
    let _ = r.0.set(Arc::downgrade(&c));
    c.add(&sess(b"a", T0, 300));
    // Adding b evicts a; a's remove callback runs once b is linked (a callback
    // never runs while its add holds a place) and adds from-callback, which
    // evicts b; b's callback replaces from-callback by a new object with that id.
    c.add(&sess(b"b", T0, 300));
    assert_eq!(c.len(), 1);
    assert_eq!(c.__slots(), 1);
    assert_eq!(c.stats().cache_full, 2);
    assert!(c.get(b"a", b"ctx").is_none());
    assert!(c.get(b"b", b"ctx").is_none());
    assert_eq!(c.stats().timeouts, 0);
    // Nothing under b's id: remove returns false; its callback (always fired)
    // replaces from-callback once more.
    assert!(!c.remove(&sess(b"b", T0, 300)));
    assert_eq!(c.len(), 1);
    assert_eq!(c.__slots(), 1);
    assert_eq!(c.__index_entries(), 1);
    let weak = Arc::downgrade(&c);
    drop(c);
    drop(r);
    assert!(weak.upgrade().is_none(), "the cache was freed: no cycle");
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_lengths_are_typed_errors() {
    assert_eq!(
        Session::new(b"", b"", ()).unwrap_err(),
        Error::InvalidIdLength { len: 0 }
    );
    let e = Session::new(&[0; 33], b"", ()).unwrap_err();
    assert!(e.to_string().contains("1 to 32"), "{e}");
    let e = Session::new(b"a", &[0; 33], ()).unwrap_err();
    assert!(e.to_string().contains("0 to 32"), "{e}");
}

#[test]
fn lookups_with_any_id_length_miss() {
    let c: SessionCache<()> = SessionCache::new();
    for len in [0usize, 1, 32, 33, 64, 1000, 100_000] {
        assert!(c.get(&vec![7u8; len], b"").is_none());
        assert!(c.get(&vec![7u8; len], &[1u8; 100]).is_none());
        assert!(c.take(&vec![7u8; len]).is_none());
    }
    assert_eq!(c.stats().misses, 14);
}

#[test]
fn debug_prints_no_payload() {
    let c: SessionCache<Vec<u8>> = SessionCache::new();
    let s = Arc::new(Session::new(b"id", b"", b"TOPSECRET".to_vec()).unwrap());
    c.add(&s);
    let d = format!("{c:?} {s:?} {:?}", SessionCache::<Vec<u8>>::builder());
    assert!(!d.contains("TOPSECRET"));
    assert!(!d.contains("84, 79, 80"), "{d}");
    assert!(d.contains("len: 1"), "{d}");
}

#[test]
fn defaults_are_openssls() {
    let c: SessionCache<()> = SessionCache::new();
    assert_eq!(c.capacity(), 20_480);
    assert_eq!(c.timeout(), Duration::from_secs(300));
    assert_eq!(c.mode(), CacheMode::SERVER);
    assert!(c.is_empty());
}

#[test]
fn send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SessionCache<Vec<u8>>>();
    check::<Session<Vec<u8>>>();
    check::<ManualClock>();
}
