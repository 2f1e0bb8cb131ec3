//! Real TLS handshakes (rust-openssl, 127.0.0.1) through the OpenSSL adapter, and
//! the same scenarios against OpenSSL's internal cache (differential).
//!
//! Expiry is tested both ways: with our cache on a `ManualClock` (the cache's clock
//! decides; no sleeping), and in the differential test with a 1-second
//! `SSL_CTX_set_timeout` and a 2.1 s sleep (OpenSSL's times are whole seconds of
//! `time(NULL)`, which a `ManualClock` cannot move).
#![cfg(feature = "openssl")]

mod openssl_support;

use openssl::ssl::SslSessionCacheMode;
use openssl_support::{Client, Counters, Server, ServerConfig, Tls};
use std::sync::Arc;
use std::time::Duration;
use tls_session_cache::integrations::openssl::NativeSession;
use tls_session_cache::{Clock, ManualClock, SessionCache, SystemClock};

fn our_cache() -> Arc<SessionCache<NativeSession>> {
    Arc::new(SessionCache::new())
}

// ------------------------------------------------------------ scenarios
//
// Each returns the `reused` flag of every connection it made.

/// Full handshake, then two resumptions with the session the client got.
fn basic(s: &Server, c: &Client) -> Vec<bool> {
    let full = c.connect(s, None, false);
    let r1 = c.connect(s, Some(&full.session), false);
    let r2 = c.connect(s, Some(&full.session), false);
    vec![full.reused, r1.reused, r2.reused]
}

/// `SSL_CTX_remove_session` with the server's session, then an offer.
fn removed(s: &Server, c: &Client) -> Vec<bool> {
    let full = c.connect(s, None, false);
    let server_session = full.server.session.as_ref().expect("server session");
    s.remove_session(server_session);
    let r = c.connect(s, Some(&full.session), false);
    vec![full.reused, r.reused]
}

/// A session made under one sid_ctx is not resumed under another (and stays
/// cached: offered in its own context again, it resumes).
fn sid_ctx(s: &Server, c: &Client) -> Vec<bool> {
    let full = c.connect(s, None, false);
    s.set_conn_sid(Some(b"another context"));
    let other = c.connect(s, Some(&full.session), false);
    let other_full = other.session.clone();
    s.set_conn_sid(None);
    let back = c.connect(s, Some(&full.session), false);
    // And the other way round.
    let cross = c.connect(s, Some(&other_full), false);
    vec![full.reused, other.reused, back.reused, cross.reused]
}

/// A fatal alert on a connection removes its session.
fn fatal_alert(s: &Server, c: &Client) -> Vec<bool> {
    let full = c.connect(s, None, true);
    assert!(
        full.server.error.is_some(),
        "the server must have failed on the corrupt record"
    );
    assert!(
        !full.server.resumable_at_end,
        "the fatal alert removed the session (flagged not resumable) before SSL_free"
    );
    let r = c.connect(s, Some(&full.session), false);
    vec![full.reused, r.reused]
}

type Scenario = fn(&Server, &Client) -> Vec<bool>;

const SCENARIOS: [(&str, Scenario, &[bool]); 4] = [
    ("basic", basic, &[false, true, true]),
    ("removed", removed, &[false, false]),
    ("sid_ctx", sid_ctx, &[false, false, true, false]),
    ("fatal_alert", fatal_alert, &[false, false]),
];

// ------------------------------------------------------------ our cache alone

fn resumes(tls: Tls) {
    let cache = our_cache();
    let s = Server::start(ServerConfig::ours(Arc::clone(&cache)));
    let c = Client::new(tls);
    assert_eq!(basic(&s, &c), [false, true, true]);
    let st = cache.stats();
    assert_eq!((st.hits, st.misses, st.timeouts), (2, 0, 0));
    // TLS 1.2: one session; TLS 1.3: a session per ticket, and OpenSSL 3 sends two
    // tickets after a full handshake, one after a resumption.
    let expect_len = if tls == Tls::V12 { 1 } else { 4 };
    assert_eq!(cache.len(), expect_len);
    // The cached payload is the very SSL_SESSION the server used.
    let full = c.connect(&s, None, false);
    let server_session = full.server.session.unwrap();
    let hit = cache
        .get(server_session.id(), openssl_support::SID_CTX)
        .unwrap();
    assert_eq!(hit.payload().as_ptr(), server_session.as_ptr());
}

use foreign_types_shared::ForeignTypeRef;

#[test]
fn tls12_session_ids_resume_through_our_cache() {
    resumes(Tls::V12);
}

#[test]
fn tls13_stateful_tickets_resume_through_our_cache() {
    resumes(Tls::V13);
}

#[test]
fn scenarios_through_our_cache() {
    for tls in [Tls::V12, Tls::V13] {
        let s = Server::start(ServerConfig::ours(our_cache()));
        let c = Client::new(tls);
        for (name, f, expect) in SCENARIOS {
            assert_eq!(f(&s, &c), expect, "{name} {tls:?}");
        }
    }
}

#[test]
fn removal_and_fatal_alert_reach_our_cache() {
    for tls in [Tls::V12, Tls::V13] {
        let cache = our_cache();
        let s = Server::start(ServerConfig::ours(Arc::clone(&cache)));
        let c = Client::new(tls);

        let full = c.connect(&s, None, false);
        let ss = full.server.session.unwrap();
        assert!(cache.get(ss.id(), openssl_support::SID_CTX).is_some());
        let before = cache.len();
        assert!(
            !s.remove_session(&ss),
            "nothing in OpenSSL's internal cache"
        );
        assert_eq!(cache.len(), before - 1, "{tls:?}");
        assert!(cache.get(ss.id(), openssl_support::SID_CTX).is_none());

        let full = c.connect(&s, None, true);
        let ss = full.server.session.unwrap();
        assert!(
            cache.get(ss.id(), openssl_support::SID_CTX).is_none(),
            "{tls:?}"
        );
        let misses = cache.stats().misses;
        assert!(!c.connect(&s, Some(&full.session), false).reused);
        assert_eq!(cache.stats().misses, misses + 1);
    }
}

/// The cache's clock decides expiry (OpenSSL re-checks with `time(NULL)`, which
/// only ever makes a session expire earlier, not later).
#[test]
fn expired_sessions_are_not_resumed_manual_clock() {
    for tls in [Tls::V12, Tls::V13] {
        let clock = ManualClock::new(SystemClock.now());
        let cache = Arc::new(SessionCache::builder().clock(clock.clone()).build());
        let s = Server::start(ServerConfig::ours(Arc::clone(&cache)).timeout(300));
        let c = Client::new(tls);
        let full = c.connect(&s, None, false);
        let ss = full.server.session.as_ref().unwrap();
        assert_eq!(ss.timeout(), 300);
        clock.advance(Duration::from_secs(299));
        let r = c.connect(&s, Some(&full.session), false);
        assert!(r.reused, "{tls:?}: still valid");
        let len = cache.len();
        clock.advance(Duration::from_secs(300));
        let r = c.connect(&s, Some(&full.session), false);
        assert!(!r.reused, "{tls:?}: expired");
        let st = cache.stats();
        assert_eq!((st.hits, st.timeouts), (1, 1), "{tls:?}");
        // The expired session was removed; the full handshake added new ones.
        let added = if tls == Tls::V12 { 1 } else { 2 };
        assert_eq!(cache.len(), len - 1 + added, "{tls:?}");
    }
}

/// Two contexts with different sid_ctx share one cache: each resumes only its own
/// sessions, and a cross-context offer counts neither hit nor miss.
#[test]
fn shared_cache_enforces_sid_ctx() {
    for tls in [Tls::V12, Tls::V13] {
        let cache = our_cache();
        let a = Server::start(ServerConfig::ours(Arc::clone(&cache)).sid_ctx(b"service A"));
        let b = Server::start(ServerConfig::ours(Arc::clone(&cache)).sid_ctx(b"service B"));
        let c = Client::new(tls);
        let full = c.connect(&a, None, false);
        let st = cache.stats();
        assert!(!c.connect(&b, Some(&full.session), false).reused, "{tls:?}");
        let after = cache.stats();
        assert_eq!(
            (after.hits, after.misses, after.timeouts, after.cb_hits),
            (st.hits, st.misses, st.timeouts, st.cb_hits),
            "a cross-context lookup counts nothing"
        );
        assert!(after.adds > st.adds, "B's full handshake stored its own");
        assert!(c.connect(&a, Some(&full.session), false).reused, "{tls:?}");
        assert_eq!(cache.stats().hits, st.hits + 1);
    }
}

/// Contexts sharing one cache: with different sid_ctx they never resume each
/// other's sessions (either way); with the same sid_ctx they are one service for
/// OpenSSL and for the cache, and resume each other's sessions both ways, as
/// connections of one context do. With early data (anti-replay) on both, a
/// ticket is single use across the contexts too.
#[test]
fn shared_cache_cross_context_resumption() {
    for tls in [Tls::V12, Tls::V13] {
        let c = Client::new(tls);
        let cache = our_cache();
        let a = Server::start(ServerConfig::ours(Arc::clone(&cache)).sid_ctx(b"service A"));
        let b = Server::start(ServerConfig::ours(Arc::clone(&cache)).sid_ctx(b"service B"));
        let full_a = c.connect(&a, None, false);
        let full_b = c.connect(&b, None, false);
        assert!(
            !c.connect(&b, Some(&full_a.session), false).reused,
            "{tls:?}"
        );
        assert!(
            !c.connect(&a, Some(&full_b.session), false).reused,
            "{tls:?}"
        );
        assert!(
            c.connect(&a, Some(&full_a.session), false).reused,
            "{tls:?}"
        );
        assert!(
            c.connect(&b, Some(&full_b.session), false).reused,
            "{tls:?}"
        );
        assert_eq!(cache.stats().hits, 2, "{tls:?}");

        let cache = our_cache();
        let a = Server::start(ServerConfig::ours(Arc::clone(&cache)).sid_ctx(b"one service"));
        let b = Server::start(ServerConfig::ours(Arc::clone(&cache)).sid_ctx(b"one service"));
        let full_a = c.connect(&a, None, false);
        let full_b = c.connect(&b, None, false);
        assert!(
            c.connect(&b, Some(&full_a.session), false).reused,
            "{tls:?}"
        );
        assert!(
            c.connect(&a, Some(&full_b.session), false).reused,
            "{tls:?}"
        );
        assert_eq!(cache.stats().hits, 2, "{tls:?}");
    }
    let c = Client::new(Tls::V13);
    let cache = our_cache();
    let cfg = || {
        ServerConfig::ours(Arc::clone(&cache))
            .sid_ctx(b"one service")
            .early_data(16384)
    };
    let (a, b) = (Server::start(cfg()), Server::start(cfg()));
    let full_a = c.connect(&a, None, false);
    assert!(c.connect(&b, Some(&full_a.session), false).reused);
    assert!(
        !c.connect(&a, Some(&full_a.session), false).reused,
        "used once"
    );
    assert!(
        !c.connect(&b, Some(&full_a.session), false).reused,
        "used once"
    );
}

/// A context whose mode was set back to storing internally after `install` has
/// OpenSSL link its sessions into its own cache list; such a session must never
/// reach another context (`SSL_set_session(3)`: one session, one context's
/// cache). The adapter neither stores that context's sessions in the shared cache
/// nor hands it sessions from there.
#[test]
fn context_storing_internally_is_kept_out_of_the_shared_cache() {
    for tls in [Tls::V12, Tls::V13] {
        let c = Client::new(tls);
        let cache = our_cache();
        let a = Server::start(
            ServerConfig::ours(Arc::clone(&cache)).mode_after_install(SslSessionCacheMode::SERVER),
        );
        let b = Server::start(ServerConfig::ours(Arc::clone(&cache)));
        let full_a = c.connect(&a, None, false);
        assert_eq!(cache.len(), 0, "{tls:?}: not stored in the shared cache");
        assert!(
            c.connect(&a, Some(&full_a.session), false).reused,
            "{tls:?}: A resumes from its internal cache"
        );
        assert!(
            !c.connect(&b, Some(&full_a.session), false).reused,
            "{tls:?}"
        );
        let full_b = c.connect(&b, None, false);
        assert!(!cache.is_empty());
        let st = cache.stats();
        assert!(
            !c.connect(&a, Some(&full_b.session), false).reused,
            "{tls:?}: never handed to A"
        );
        assert_eq!(cache.stats().hits, st.hits, "{tls:?}: not even looked up");
        assert!(
            c.connect(&b, Some(&full_b.session), false).reused,
            "{tls:?}"
        );
    }
}

/// With early data and OpenSSL's anti-replay (the default), a TLS 1.3 ticket
/// resumes once — through OpenSSL's internal cache and through ours, with the
/// same counters; TLS 1.2 session ids are not affected.
#[test]
fn early_data_tickets_are_single_use_differential() {
    for tls in [Tls::V12, Tls::V13] {
        let internal = Server::start(ServerConfig::internal().early_data(16384));
        let ours = Server::start(ServerConfig::ours(our_cache()).early_data(16384));
        let c = Client::new(tls);
        let a = basic(&internal, &c);
        let b = basic(&ours, &c);
        let expect = if tls == Tls::V12 {
            [false, true, true]
        } else {
            [false, true, false]
        };
        assert_eq!(a, expect, "{tls:?} internal");
        compare(&internal, &ours, &format!("early data {tls:?}"), a, b);
    }
}

/// Many clients offer one TLS 1.3 ticket at once to a server with early data:
/// exactly one resumes (the take is atomic), every round.
#[test]
fn early_data_concurrent_offers_of_one_ticket_resume_once() {
    const THREADS: usize = 6;
    const ROUNDS: u64 = 5;
    let cache = our_cache();
    let s = Server::start(ServerConfig::ours(Arc::clone(&cache)).early_data(16384));
    let c = Client::new(Tls::V13);
    for round in 0..ROUNDS {
        let full = c.connect_nowait(&s, None);
        assert!(!full.reused);
        let barrier = std::sync::Barrier::new(THREADS);
        let resumed: usize = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..THREADS)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        c.connect_nowait(&s, Some(&full.session)).reused
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| usize::from(t.join().unwrap()))
                .sum()
        });
        assert_eq!(resumed, 1, "round {round}");
    }
    assert_eq!(cache.stats().takes, ROUNDS);
    assert_eq!(s.ours.as_ref().unwrap().caught_panics(), 0);
}

/// TLS 1.3 with stateless tickets: resumption never asks the cache and, as in
/// OpenSSL's internal cache, the sessions are not stored.
#[test]
fn tls13_stateless_tickets_are_not_stored() {
    let internal = Server::start(ServerConfig::internal().stateless_tickets());
    let cache = our_cache();
    let ours = Server::start(ServerConfig::ours(Arc::clone(&cache)).stateless_tickets());
    let c = Client::new(Tls::V13);
    assert_eq!(basic(&internal, &c), [false, true, true]);
    assert_eq!(basic(&ours, &c), [false, true, true]);
    assert_eq!(internal.counters(), (0, 2, 0, 0));
    assert_eq!(ours.counters(), (0, 0, 0, 0));
}

#[test]
fn many_client_threads() {
    const THREADS: usize = 8;
    const RESUMES: usize = 6;
    let cache = our_cache();
    let s = Server::start(ServerConfig::ours(Arc::clone(&cache)));
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let s = &s;
            scope.spawn(move || {
                let c = Client::new(if t % 2 == 0 { Tls::V12 } else { Tls::V13 });
                let full = c.connect_nowait(s, None);
                assert!(!full.reused);
                for _ in 0..RESUMES {
                    let r = c.connect_nowait(s, Some(&full.session));
                    assert!(r.reused, "thread {t}");
                }
            });
        }
    });
    let st = cache.stats();
    assert_eq!(st.hits, (THREADS * RESUMES) as u64);
    assert_eq!(st.misses, 0);
    // TLS 1.2 threads: 1 session each; TLS 1.3: 2 tickets after the full
    // handshake, 1 after each resumption.
    assert_eq!(cache.len(), THREADS / 2 + THREADS / 2 * (2 + RESUMES));
}

// ------------------------------------------------------------ differential

fn compare(internal: &Server, ours: &Server, what: &str, a: Vec<bool>, b: Vec<bool>) {
    let (ci, co): (Counters, Counters) = (internal.counters(), ours.counters());
    assert_eq!(a, b, "{what}: outcomes (internal, ours)");
    assert_eq!(
        ci, co,
        "{what}: (sessions, hits, misses, timeouts) (internal, ours)"
    );
}

/// The same scenarios against OpenSSL's internal cache and ours: same outcomes,
/// same `SSL_CTX_sess_number/hits/misses/timeouts` as our `len()`/`stats()`.
#[test]
fn differential_against_openssl_internal_cache() {
    for tls in [Tls::V12, Tls::V13] {
        let internal = Server::start(ServerConfig::internal());
        let ours = Server::start(ServerConfig::ours(our_cache()));
        let c = Client::new(tls);
        for (name, f, expect) in SCENARIOS {
            let a = f(&internal, &c);
            let b = f(&ours, &c);
            assert_eq!(a, expect, "{name} {tls:?} internal");
            compare(&internal, &ours, &format!("{name} {tls:?}"), a, b);
        }
    }
}

fn unix_now() -> (u64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (d.as_secs(), d.subsec_millis())
}

/// Sleeps until `secs` (Unix) has just begun.
fn sleep_until_second(secs: u64) {
    loop {
        let (now, ms) = unix_now();
        if now >= secs {
            return;
        }
        let left = (secs - now) * 1000 - u64::from(ms);
        std::thread::sleep(Duration::from_millis(left.max(1) + 10));
    }
}

/// Expiry on both with real time: a 1-second session timeout.
///
/// OpenSSL's times are whole seconds. A session made during second `t0` has
/// expired for the server from `t0 + 2` on; a TLS 1.3 client stops offering its
/// ticket from `t0 + 3` on (it subtracts a second of rounding from the age). So the
/// full handshakes run within one second `t0` and the offers within `t0 + 2`;
/// if the machine is too slow for that, the round is retried.
#[test]
fn differential_expiry_real_time() {
    let clients = [Client::new(Tls::V12), Client::new(Tls::V13)];
    for attempt in 1..=5 {
        let internal = Server::start(ServerConfig::internal().timeout(1));
        let ours = Server::start(ServerConfig::ours(our_cache()).timeout(1));
        let (now, _) = unix_now();
        sleep_until_second(now + 1);
        let t0 = unix_now().0;
        let fulls: Vec<_> = clients
            .iter()
            .map(|c| {
                (
                    c.connect(&internal, None, false),
                    c.connect(&ours, None, false),
                )
            })
            .collect();
        if unix_now().0 != t0 {
            eprintln!("attempt {attempt}: full handshakes spanned a second boundary; retrying");
            continue;
        }
        sleep_until_second(t0 + 2);
        let outcomes: Vec<_> = clients
            .iter()
            .zip(&fulls)
            .map(|(c, (fi, fo))| {
                (
                    c.connect(&internal, Some(&fi.session), false).reused,
                    c.connect(&ours, Some(&fo.session), false).reused,
                )
            })
            .collect();
        if unix_now().0 != t0 + 2 {
            eprintln!("attempt {attempt}: offers spanned a second boundary; retrying");
            continue;
        }
        assert_eq!(outcomes, [(false, false), (false, false)]);
        let (ci, co) = (internal.counters(), ours.counters());
        // hits, misses, timeouts agree: 2 timeouts (one per version), no hit, no miss.
        assert_eq!((ci.1, ci.2, ci.3), (0, 0, 2));
        assert_eq!((co.1, co.2, co.3), (ci.1, ci.2, ci.3));
        // Sessions: TLS 1.2 full (1) + TLS 1.3 full (2) + the two new full
        // handshakes (1 + 2). OpenSSL removes the expired TLS 1.2 session but keeps
        // the expired TLS 1.3 one it met (no removal on the ticket path) until a
        // flush; we remove every expired session a lookup meets.
        assert_eq!(ci.0, 5);
        assert_eq!(co.0, 4);
        return;
    }
    panic!("no attempt fitted its time window: machine too slow");
}
