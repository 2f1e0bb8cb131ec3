//! No `SSL_SESSION` reference leaks through the adapter: every session libssl
//! creates in this process is counted (an ex_data index whose new and free
//! callbacks count), and after handshakes that store, resume, replace, evict,
//! expire and remove sessions, and resume single-use early-data tickets, exactly
//! the sessions our cache holds are alive;
//! once the cache and contexts are gone, none is.
//!
//! Its own test binary with a single test: the counters are process-wide.
#![cfg(feature = "openssl")]

mod openssl_support;

use openssl_support::{Client, Server, ServerConfig, Tls};
use openssl_sys as ffi;
use std::ffi::{c_int, c_long, c_void};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tls_session_cache::integrations::openssl::NativeSession;
use tls_session_cache::{Clock, ManualClock, SessionCache, SystemClock};

/// `CRYPTO_EX_INDEX_SSL_SESSION` (crypto.h).
const CRYPTO_EX_INDEX_SSL_SESSION: c_int = 2;

static CREATED: AtomicI64 = AtomicI64::new(0);
static FREED: AtomicI64 = AtomicI64::new(0);

/// Counts a created `SSL_SESSION` (`CRYPTO_EX_new`).
///
/// # Safety
/// Called by libcrypto only; it touches none of its arguments.
unsafe extern "C" fn on_new(
    _parent: *mut c_void,
    _ptr: *mut c_void,
    _ad: *mut ffi::CRYPTO_EX_DATA,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    CREATED.fetch_add(1, Ordering::SeqCst);
}

/// Counts a destroyed `SSL_SESSION` (`CRYPTO_EX_free`).
///
/// # Safety
/// Called by libcrypto only; it touches none of its arguments.
unsafe extern "C" fn on_free(
    _parent: *mut c_void,
    _ptr: *mut c_void,
    _ad: *mut ffi::CRYPTO_EX_DATA,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    FREED.fetch_add(1, Ordering::SeqCst);
}

fn live() -> i64 {
    CREATED.load(Ordering::SeqCst) - FREED.load(Ordering::SeqCst)
}

/// Waits (bounded) until `live() == want`; returns the last value.
fn settle(want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while live() != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    live()
}

#[test]
fn no_session_reference_leaks() {
    openssl::init();
    // SAFETY: libssl is initialised; both callbacks have the `CRYPTO_EX_new` /
    // `CRYPTO_EX_free` signature and never unwind.
    let idx = unsafe {
        ffi::CRYPTO_get_ex_new_index(
            CRYPTO_EX_INDEX_SSL_SESSION,
            0,
            std::ptr::null_mut(),
            Some(on_new),
            None,
            Some(on_free),
        )
    };
    assert!(idx >= 0);

    let clock = ManualClock::new(SystemClock.now());
    // A small capacity, so adds evict.
    let cache: Arc<SessionCache<NativeSession>> = Arc::new(
        SessionCache::builder()
            .capacity(3)
            .clock(clock.clone())
            .build(),
    );
    {
        let s = Server::start(ServerConfig::ours(Arc::clone(&cache)).timeout(300));
        for tls in [Tls::V12, Tls::V13] {
            let c = Client::new(tls);
            for _ in 0..3 {
                let full = c.connect(&s, None, false);
                for _ in 0..3 {
                    assert!(c.connect(&s, Some(&full.session), false).reused);
                }
                // Removal through SSL_CTX_remove_session.
                let again = c.connect(&s, Some(&full.session), false);
                s.remove_session(again.server.session.as_ref().unwrap());
                // A fatal alert.
                let _ = c.connect(&s, None, true);
                // Expiry met by a lookup.
                let fresh = c.connect(&s, None, false);
                let t = clock.now();
                clock.advance(Duration::from_secs(310));
                assert!(!c.connect(&s, Some(&fresh.session), false).reused);
                clock.set(t);
            }
            drop(c);
        }
        // Early data (anti-replay) on a second context sharing the cache: the
        // single-use ticket passes through OpenSSL's internal cache for the replay
        // check and must not stay there.
        let e = Server::start(
            ServerConfig::ours(Arc::clone(&cache))
                .timeout(300)
                .early_data(16384),
        );
        let c = Client::new(Tls::V13);
        for _ in 0..3 {
            let full = c.connect(&e, None, false);
            assert!(c.connect(&e, Some(&full.session), false).reused);
            assert!(!c.connect(&e, Some(&full.session), false).reused);
        }
        assert_eq!(cache.stats().takes, 3);
        drop(c);
        assert!(cache.stats().cache_full > 0, "evictions happened");
        assert!(cache.stats().timeouts > 0, "expiries happened");
        // Every outcome is dropped: alive are exactly the sessions cached.
        let want = cache.len() as i64;
        assert_eq!(settle(want), want, "live SSL_SESSIONs vs cached");
        drop(s);
        drop(e);
    }
    // The server's accept thread holds the context until it notices the stop.
    drop(cache);
    assert_eq!(
        settle(0),
        0,
        "live SSL_SESSIONs after everything was dropped"
    );
    assert!(CREATED.load(Ordering::SeqCst) > 20);
}
