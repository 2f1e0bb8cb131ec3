//! Panic safety: a `SessionStore` whose callback panics leaves the cache
//! consistent — no stuck lock, no leaked place under the capacity or reference,
//! correct `len()`, and later operations work. One test per callback.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tls_session_cache::{
    CacheMode, ManualClock, RemovalCause, Session, SessionCache, SessionStore,
};

const T0: u64 = 1_700_000_000;

#[derive(Default)]
struct Panicky {
    on_new: AtomicBool,
    on_get: AtomicBool,
    on_remove: AtomicBool,
}

impl SessionStore<Vec<u8>> for Panicky {
    fn new_session(&self, _: &Arc<Session<Vec<u8>>>) {
        if self.on_new.load(Ordering::SeqCst) {
            panic!("new_session callback panicked");
        }
    }
    fn get_session(&self, _: &[u8]) -> Option<Arc<Session<Vec<u8>>>> {
        if self.on_get.load(Ordering::SeqCst) {
            panic!("get_session callback panicked");
        }
        None
    }
    fn remove_session(&self, _: &Arc<Session<Vec<u8>>>, _: RemovalCause) {
        if self.on_remove.load(Ordering::SeqCst) {
            panic!("remove_session callback panicked");
        }
    }
}

fn sess(id: &[u8], time: u64) -> Arc<Session<Vec<u8>>> {
    Arc::new(
        Session::new(id, b"", vec![1; 8])
            .unwrap()
            .with_time(time)
            .with_timeout(Duration::from_secs(100)),
    )
}

fn setup(capacity: usize) -> (Arc<Panicky>, ManualClock, SessionCache<Vec<u8>>) {
    let p = Arc::new(Panicky::default());
    let clock = ManualClock::new(T0);
    let c = SessionCache::builder()
        .capacity(capacity)
        .mode(CacheMode::SERVER)
        .clock(clock.clone())
        .store(p.clone())
        .build();
    (p, clock, c)
}

/// After a panic: every operation still works and the bookkeeping is exact.
fn check_healthy(c: &SessionCache<Vec<u8>>, expected_len: usize) {
    assert_eq!(c.len(), expected_len);
    assert_eq!(c.__slots(), expected_len, "no dead slot left behind");
    assert_eq!(c.__index_entries(), expected_len, "no stale index entry");
    let probe = sess(b"probe", c.now());
    assert!(c.add(&probe));
    assert!(c.get(b"probe", b"").is_some());
    assert!(c.remove(&probe));
    assert_eq!(Arc::strong_count(&probe), 1);
    assert_eq!(c.len(), expected_len);
}

#[test]
fn panicking_new_session_callback() {
    let (p, _clock, c) = setup(4);
    let s = sess(b"a", T0);
    p.on_new.store(true, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| c.update_cache(&s)));
    assert!(r.is_err());
    p.on_new.store(false, Ordering::SeqCst);
    // OpenSSL order: stored internally before the new-session callback.
    assert_eq!(Arc::strong_count(&s), 2);
    check_healthy(&c, 1);
    drop(c);
    assert_eq!(Arc::strong_count(&s), 1);
}

#[test]
fn panicking_get_session_callback() {
    let (p, _clock, c) = setup(4);
    let s = sess(b"a", T0);
    c.add(&s);
    p.on_get.store(true, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| c.get(b"missing", b"")));
    assert!(r.is_err());
    // A hit does not consult the store.
    assert!(c.get(b"a", b"").is_some());
    p.on_get.store(false, Ordering::SeqCst);
    check_healthy(&c, 1);
    drop(c);
    assert_eq!(Arc::strong_count(&s), 1);
}

#[test]
fn panicking_remove_session_callback_on_remove() {
    let (p, _clock, c) = setup(4);
    let s = sess(b"a", T0);
    c.add(&s);
    p.on_remove.store(true, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| c.remove(&s)));
    assert!(r.is_err());
    p.on_remove.store(false, Ordering::SeqCst);
    assert_eq!(
        Arc::strong_count(&s),
        1,
        "removed and released before the callback"
    );
    check_healthy(&c, 0);
}

#[test]
fn panicking_remove_session_callback_on_eviction() {
    let (p, _clock, c) = setup(2);
    let a = sess(b"a", T0);
    let b = sess(b"b", T0 + 1);
    let d = sess(b"d", T0 + 2);
    c.add(&a);
    c.add(&b);
    p.on_remove.store(true, Ordering::SeqCst);
    // The eviction made room and the add linked d; then the evicted session's
    // callback (run after the link, with no place held) panicked.
    let r = catch_unwind(AssertUnwindSafe(|| c.add(&d)));
    assert!(r.is_err());
    p.on_remove.store(false, Ordering::SeqCst);
    assert_eq!(Arc::strong_count(&a), 1, "evicted and released");
    assert!(!a.is_resumable());
    assert_eq!(
        Arc::strong_count(&d),
        2,
        "d was linked before the callback ran"
    );
    assert_eq!(c.stats().cache_full, 1);
    assert_eq!((c.len(), c.__slots(), c.__index_entries()), (2, 2, 2));
    // No place leaked: the cache is exactly full; one more add evicts once.
    assert!(!c.add(&d));
    let e = sess(b"e", T0 + 3);
    assert!(c.add(&e));
    assert_eq!(c.len(), 2);
    assert_eq!(c.stats().cache_full, 2);
    assert_eq!(Arc::strong_count(&b), 1, "b (soonest expiry) evicted");
    assert!(c.remove(&e));
    check_healthy(&c, 1);
}

#[test]
fn panicking_remove_session_callback_on_expiry_and_flush() {
    let (p, clock, c) = setup(0);
    let a = sess(b"a", T0);
    let b = sess(b"b", T0);
    let d = sess(b"d", T0 + 50);
    for s in [&a, &b, &d] {
        c.add(s);
    }
    clock.set(T0 + 120);
    p.on_remove.store(true, Ordering::SeqCst);
    assert!(catch_unwind(AssertUnwindSafe(|| c.get(b"a", b""))).is_err());
    assert_eq!(Arc::strong_count(&a), 1);
    assert_eq!(c.stats().timeouts, 1);
    assert!(catch_unwind(AssertUnwindSafe(|| c.flush(T0 + 200))).is_err());
    p.on_remove.store(false, Ordering::SeqCst);
    // The flush stopped after its first removal (b, the soonest expiry).
    assert_eq!(Arc::strong_count(&b), 1);
    check_healthy(&c, 1);
    assert_eq!(c.flush(T0 + 200), 1);
    assert_eq!(Arc::strong_count(&d), 1);
    check_healthy(&c, 0);
}

#[test]
fn panicking_callbacks_from_many_threads() {
    let (p, _clock, c) = setup(8);
    p.on_remove.store(true, Ordering::SeqCst);
    let all: Vec<_> = (0..64u32)
        .map(|i| sess(&i.to_le_bytes(), T0 + u64::from(i)))
        .collect();
    std::thread::scope(|scope| {
        for chunk in all.chunks(16) {
            let c = &c;
            scope.spawn(move || {
                for s in chunk {
                    let _ = catch_unwind(AssertUnwindSafe(|| c.add(s)));
                    let _ = catch_unwind(AssertUnwindSafe(|| c.remove(s)));
                }
            });
        }
    });
    p.on_remove.store(false, Ordering::SeqCst);
    assert!(c.len() <= 8);
    let len = c.len();
    check_healthy(&c, len);
    drop(c);
    for s in &all {
        assert_eq!(Arc::strong_count(s), 1);
    }
}
