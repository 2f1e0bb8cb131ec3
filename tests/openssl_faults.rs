//! Panics at the FFI boundary: a `SessionStore` or `Clock` that panics inside one
//! of the adapter's OpenSSL callbacks (new, get, remove session) must not unwind
//! into OpenSSL's C frames (which aborts the process). Real handshakes
//! (rust-openssl, 127.0.0.1): the handshake completes (full), nothing aborts, the
//! panic is counted, and once the fault is gone sessions resume normally.
#![cfg(feature = "openssl")]

mod openssl_support;

use openssl_support::{Client, Outcome, Server, ServerConfig, Tls, SID_CTX};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tls_session_cache::integrations::openssl::NativeSession;
use tls_session_cache::{
    CacheMode, Clock, RemovalCause, Session, SessionCache, SessionStore, SystemClock,
};

/// A store whose callbacks panic while armed.
#[derive(Default)]
struct Faults {
    new: AtomicBool,
    get: AtomicBool,
    remove: AtomicBool,
}

impl SessionStore<NativeSession> for Faults {
    fn new_session(&self, _: &Arc<Session<NativeSession>>) {
        if self.new.load(Ordering::SeqCst) {
            panic!("injected: new_session");
        }
    }
    fn get_session(&self, _: &[u8]) -> Option<Arc<Session<NativeSession>>> {
        if self.get.load(Ordering::SeqCst) {
            panic!("injected: get_session");
        }
        None
    }
    fn remove_session(&self, _: &Arc<Session<NativeSession>>, _: RemovalCause) {
        if self.remove.load(Ordering::SeqCst) {
            panic!("injected: remove_session");
        }
    }
}

/// The system clock, panicking while armed.
#[derive(Clone, Default)]
struct FaultyClock(Arc<AtomicBool>);

impl Clock for FaultyClock {
    fn now(&self) -> u64 {
        if self.0.load(Ordering::SeqCst) {
            panic!("injected: clock");
        }
        SystemClock.now()
    }
}

const BOTH: [Tls; 2] = [Tls::V12, Tls::V13];

fn with_store(
    tls: Tls,
) -> (
    Arc<Faults>,
    Arc<SessionCache<NativeSession>>,
    Server,
    Client,
) {
    let faults = Arc::new(Faults::default());
    let cache = Arc::new(SessionCache::builder().store(Arc::clone(&faults)).build());
    let s = Server::start(ServerConfig::ours(Arc::clone(&cache)));
    (faults, cache, s, Client::new(tls))
}

fn with_clock(
    tls: Tls,
    mode: CacheMode,
) -> (
    FaultyClock,
    Arc<SessionCache<NativeSession>>,
    Server,
    Client,
) {
    let clock = FaultyClock::default();
    let cache = Arc::new(
        SessionCache::builder()
            .mode(mode)
            .clock(clock.clone())
            .build(),
    );
    let s = Server::start(ServerConfig::ours(Arc::clone(&cache)));
    (clock, cache, s, Client::new(tls))
}

fn caught(s: &Server) -> u64 {
    s.ours.as_ref().unwrap().caught_panics()
}

/// Sessions made per full handshake: TLS 1.2 one, TLS 1.3 two tickets.
fn per_full(tls: Tls) -> u64 {
    if tls == Tls::V12 {
        1
    } else {
        2
    }
}

/// A full handshake that completed on the server (whatever a callback did).
fn full_handshake(s: &Server, c: &Client) -> Outcome {
    let full = c.connect(s, None, false);
    assert!(!full.reused, "{:?}", c.tls);
    assert!(
        full.server.error.is_none(),
        "{:?}: {:?}",
        c.tls,
        full.server.error
    );
    full
}

/// An offer of `full`'s session while the lookup panics: a miss (a full
/// handshake), no server error, the one panic caught.
fn panicking_lookup_is_a_miss(s: &Server, c: &Client, full: &Outcome) {
    let r = c.connect(s, Some(&full.session), false);
    assert!(!r.reused, "{:?}: a panicking lookup is a miss", c.tls);
    assert!(
        r.server.error.is_none(),
        "{:?}: {:?}",
        c.tls,
        r.server.error
    );
    assert_eq!(caught(s), 1, "{:?}", c.tls);
}

/// After the fault is gone: a new full handshake, then its session resumes.
fn resumes_again(s: &Server, c: &Client) {
    let full = full_handshake(s, c);
    let r = c.connect(s, Some(&full.session), false);
    assert!(r.reused, "{:?}", c.tls);
}

#[test]
fn panicking_store_get_is_a_miss() {
    for tls in BOTH {
        let (faults, cache, s, c) = with_store(tls);
        let full = c.connect(&s, None, false);
        // Empty the cache so that the offer reaches the store's get callback.
        cache.flush(0);
        faults.get.store(true, Ordering::SeqCst);
        panicking_lookup_is_a_miss(&s, &c, &full);
        faults.get.store(false, Ordering::SeqCst);
        resumes_again(&s, &c);
        assert_eq!(caught(&s), 1, "{tls:?}");
    }
}

/// The store's `new_session` runs after the session was added (as OpenSSL's
/// `ssl_update_cache` calls the new-session callback after its internal add): the
/// panic loses the store's copy only, the session stays cached and resumes.
#[test]
fn panicking_store_new_keeps_the_handshake() {
    for tls in BOTH {
        let (faults, cache, s, c) = with_store(tls);
        faults.new.store(true, Ordering::SeqCst);
        let full = full_handshake(&s, &c);
        assert_eq!(caught(&s), per_full(tls), "{tls:?}");
        assert_eq!(cache.len() as u64, per_full(tls), "{tls:?}");
        faults.new.store(false, Ordering::SeqCst);
        let r = c.connect(&s, Some(&full.session), false);
        assert!(r.reused, "{tls:?}");
        resumes_again(&s, &c);
        assert_eq!(caught(&s), per_full(tls), "{tls:?}");
    }
}

/// With `UPDATE_TIME` the clock is read before the session is added: a panicking
/// clock in the new-session callback leaves the session out of the cache.
#[test]
fn panicking_clock_in_new_session_stores_nothing() {
    for tls in BOTH {
        let (clock, cache, s, c) = with_clock(tls, CacheMode::SERVER | CacheMode::UPDATE_TIME);
        clock.0.store(true, Ordering::SeqCst);
        let full = full_handshake(&s, &c);
        assert_eq!(caught(&s), per_full(tls), "{tls:?}");
        assert_eq!(cache.len(), 0, "{tls:?}: the session is not stored");
        clock.0.store(false, Ordering::SeqCst);
        let r = c.connect(&s, Some(&full.session), false);
        assert!(!r.reused, "{tls:?}: nothing to resume");
        resumes_again(&s, &c);
        assert_eq!(caught(&s), per_full(tls), "{tls:?}");
    }
}

/// A panicking clock during the lookup: a miss that changes nothing, so the same
/// session resumes once the clock works again.
#[test]
fn panicking_clock_in_get_is_a_miss() {
    for tls in BOTH {
        let (clock, cache, s, c) = with_clock(tls, CacheMode::SERVER);
        let full = c.connect(&s, None, false);
        let len = cache.len();
        clock.0.store(true, Ordering::SeqCst);
        panicking_lookup_is_a_miss(&s, &c, &full);
        clock.0.store(false, Ordering::SeqCst);
        // The failed lookup removed nothing (the full handshake added its own).
        assert_eq!(cache.len() as u64, len as u64 + per_full(tls), "{tls:?}");
        let r = c.connect(&s, Some(&full.session), false);
        assert!(r.reused, "{tls:?}: the same session resumes");
        assert_eq!(caught(&s), 1, "{tls:?}");
    }
}

/// The remove callback from `SSL_CTX_remove_session` (called here from Rust,
/// through OpenSSL) and from a fatal alert on a server connection: the panic is
/// ignored, the session is gone from the cache (the cache removes before it calls
/// the store), and later handshakes resume.
#[test]
fn panicking_store_remove_is_ignored() {
    for tls in BOTH {
        let (faults, cache, s, c) = with_store(tls);
        let full = c.connect(&s, None, false);
        let ss = full.server.session.clone().unwrap();
        assert!(cache.get(ss.id(), SID_CTX).is_some());
        faults.remove.store(true, Ordering::SeqCst);
        assert!(
            !s.remove_session(&ss),
            "nothing in OpenSSL's internal cache"
        );
        assert_eq!(caught(&s), 1, "{tls:?}");
        assert!(cache.get(ss.id(), SID_CTX).is_none(), "{tls:?}: removed");
        assert!(!c.connect(&s, Some(&full.session), false).reused);

        // A fatal alert on a server thread removes its session through OpenSSL.
        let before = caught(&s);
        let bad = c.connect(&s, None, true);
        assert!(bad.server.error.is_some());
        assert!(caught(&s) > before, "{tls:?}: the remove callback panicked");
        let bs = bad.server.session.unwrap();
        assert!(cache.get(bs.id(), SID_CTX).is_none(), "{tls:?}: removed");

        faults.remove.store(false, Ordering::SeqCst);
        let n = caught(&s);
        resumes_again(&s, &c);
        assert_eq!(caught(&s), n, "{tls:?}");
    }
}
