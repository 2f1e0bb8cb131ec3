//! Real rustls handshakes, in memory, resuming through `RustlsStore`.
//!
//! Each test drives `ClientConnection`s and `ServerConnection`s through in-memory
//! buffers (`write_tls` → `read_tls`) with a self-signed certificate from rcgen,
//! and checks what `handshake_kind()` reports on both sides.
#![cfg(feature = "rustls")]

mod tls_support;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{
    ClientConnection, HandshakeKind, ServerConfig, ServerConnection, SupportedProtocolVersion,
};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use tls_session_cache::{CacheMode, ManualClock, RustlsStore, SessionCache};
use tls_support::*;

const VERSIONS: [&SupportedProtocolVersion; 2] = [TLS12, TLS13];

fn store_with_clock(capacity: usize) -> (Arc<RustlsStore>, ManualClock) {
    let clock = ManualClock::new(1_700_000_000);
    let cache = SessionCache::builder()
        .capacity(capacity)
        .timeout(Duration::from_secs(300))
        .clock(clock.clone())
        .build();
    (RustlsStore::with_cache(cache), clock)
}

#[test]
fn tls12_session_id_resumption() {
    let store = RustlsStore::new(100);
    let server = server_config(TLS12, store.clone());
    let client = client_config(TLS12);
    assert_eq!(connect(&client, &server), HandshakeKind::Full);
    assert_eq!(store.cache().len(), 1, "one session id stored");
    for _ in 0..3 {
        assert_eq!(connect(&client, &server), HandshakeKind::Resumed);
    }
    // Session ids: resumption reads (`get`), it does not consume.
    assert_eq!(store.cache().len(), 1);
    let st = store.stats();
    assert_eq!((st.hits, st.misses, st.timeouts), (3, 0, 0));
}

#[test]
fn tls13_stateful_resumption() {
    let store = RustlsStore::new(100);
    let server = server_config(TLS13, store.clone());
    let client = client_config(TLS13);
    assert_eq!(connect(&client, &server), HandshakeKind::Full);
    // `send_tls13_tickets` = 2, each stored under a 32-byte key.
    assert_eq!(store.cache().len(), 2);
    for i in 1..=5 {
        assert_eq!(connect(&client, &server), HandshakeKind::Resumed);
        // Each resumption takes one ticket and is given two more.
        assert_eq!(store.cache().len(), 2 + i);
    }
    let st = store.stats();
    assert_eq!((st.hits, st.misses, st.timeouts), (5, 0, 0));
    // The cache's own counters do not see takes.
    assert_eq!(store.cache().stats().hits, 0);
}

#[test]
fn tls13_ticket_cannot_be_used_twice() {
    let store = RustlsStore::new(100);
    let server = server_config(TLS13, store.clone());
    let client = client_config(TLS13);
    assert_eq!(connect(&client, &server), HandshakeKind::Full);

    // Capture a ClientHello that offers a ticket...
    let mut c = ClientConnection::new(client.clone(), server_name()).unwrap();
    let mut hello = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut hello).unwrap();
    }
    // ...the first server that sees it resumes, and the handshake completes...
    let mut s1 = ServerConnection::new(server.clone()).unwrap();
    feed_server(&mut s1, &hello);
    assert_eq!(s1.handshake_kind(), Some(HandshakeKind::Resumed));
    loop {
        let a = server_to_client(&mut s1, &mut c);
        let b = client_to_server(&mut c, &mut s1);
        if !a && !b {
            break;
        }
    }
    assert_eq!(c.handshake_kind(), Some(HandshakeKind::Resumed));

    // ...and a replay of the same ClientHello finds the ticket gone: full handshake.
    let mut s2 = ServerConnection::new(server.clone()).unwrap();
    feed_server(&mut s2, &hello);
    assert_eq!(s2.handshake_kind(), Some(HandshakeKind::Full));
    let st = store.stats();
    assert_eq!((st.hits, st.misses), (1, 1));
}

#[test]
fn tls13_concurrent_replays_resume_exactly_once() {
    let store = RustlsStore::new(0);
    let server = server_config(TLS13, store.clone());
    let client = client_config(TLS13);
    assert_eq!(connect(&client, &server), HandshakeKind::Full);
    for round in 0..40 {
        let mut c = ClientConnection::new(client.clone(), server_name()).unwrap();
        let mut hello = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut hello).unwrap();
        }
        // Keep the client's ticket supply up: one resumption per round refills it.
        let barrier = Barrier::new(3);
        let resumed = std::thread::scope(|scope| {
            let hs: Vec<_> = (0..3)
                .map(|_| {
                    let (server, hello, barrier) = (&server, &hello, &barrier);
                    scope.spawn(move || {
                        let mut s = ServerConnection::new(server.clone()).unwrap();
                        barrier.wait();
                        feed_server(&mut s, hello);
                        (s.handshake_kind() == Some(HandshakeKind::Resumed)).then_some(s)
                    })
                })
                .collect();
            let mut winners: Vec<ServerConnection> =
                hs.into_iter().filter_map(|h| h.join().unwrap()).collect();
            assert_eq!(winners.len(), 1, "round {round}: exactly one resumes");
            winners.pop().unwrap()
        });
        // Finish the winner's handshake so the client receives fresh tickets.
        let mut s = resumed;
        loop {
            let a = server_to_client(&mut s, &mut c);
            let b = client_to_server(&mut c, &mut s);
            if !a && !b {
                break;
            }
        }
        assert_eq!(c.handshake_kind(), Some(HandshakeKind::Resumed));
    }
    assert_eq!(store.stats().hits, 40);
    assert_eq!(store.stats().misses, 80);
}

#[test]
fn expired_session_forces_full_handshake() {
    for version in VERSIONS {
        let (store, clock) = store_with_clock(100);
        let server = server_config(version, store.clone());
        let client = client_config(version);
        assert_eq!(connect(&client, &server), HandshakeKind::Full);
        clock.advance(Duration::from_secs(300)); // expiry is strict: still valid
        assert_eq!(
            connect(&client, &server),
            HandshakeKind::Resumed,
            "{version:?}"
        );
        clock.advance(Duration::from_secs(301));
        assert_eq!(
            connect(&client, &server),
            HandshakeKind::Full,
            "{version:?}"
        );
        assert!(store.stats().timeouts >= 1, "{version:?}");
        // The new full handshake stored fresh sessions, valid at the new time.
        assert_eq!(
            connect(&client, &server),
            HandshakeKind::Resumed,
            "{version:?}"
        );
    }
}

#[test]
fn separate_stores_never_cross_resume() {
    for version in VERSIONS {
        let (store_a, store_b) = (RustlsStore::new(100), RustlsStore::new(100));
        let a = server_config(version, store_a.clone());
        let b = server_config(version, store_b.clone());
        // Same certificate, same server name: the client offers A's session to B.
        let client = client_config(version);
        assert_eq!(connect(&client, &a), HandshakeKind::Full);
        assert_eq!(connect(&client, &a), HandshakeKind::Resumed, "{version:?}");
        for _ in 0..3 {
            // The client's newest session always belongs to the other server.
            assert_eq!(connect(&client, &b), HandshakeKind::Full, "{version:?}");
            assert_eq!(connect(&client, &a), HandshakeKind::Full, "{version:?}");
        }
        assert_eq!(connect(&client, &a), HandshakeKind::Resumed, "{version:?}");
        assert_eq!(store_b.stats().hits, 0, "{version:?}");
        assert_eq!(store_a.stats().hits, 2, "{version:?}");
        assert_eq!(store_a.stats().misses + store_b.stats().misses, 6);
    }
}

/// Two `ServerConfig`s (as for two SNI names or client-auth policies) share one
/// cache through scoped stores: they never resume each other's sessions, a
/// config's TLS 1.3 ticket offered to the other is not consumed, and both count
/// against the one capacity. A config rebuilt with the same scope (a certificate
/// reload) resumes the old one's sessions.
#[test]
fn scoped_stores_share_one_cache_and_never_cross_resume() {
    for version in VERSIONS {
        let shared = Arc::new(SessionCache::builder().capacity(100).build());
        let store_a = RustlsStore::scoped(&shared, b"a.example").unwrap();
        let store_b = RustlsStore::scoped(&shared, b"b.example").unwrap();
        let a = server_config(version, store_a.clone());
        let b = server_config(version, store_b.clone());
        let client = client_config(version);
        assert_eq!(connect(&client, &a), HandshakeKind::Full);
        let after_a = shared.len();
        assert_eq!(after_a, if version == TLS13 { 2 } else { 1 });
        // The client offers A's session (or ticket) to B: a full handshake, and
        // A's sessions are all still cached (B's take did not consume a ticket).
        assert_eq!(connect(&client, &b), HandshakeKind::Full, "{version:?}");
        assert_eq!(shared.len(), 2 * after_a, "{version:?}");
        assert_eq!(shared.stats().takes, 0, "{version:?}");
        for _ in 0..3 {
            assert_eq!(connect(&client, &a), HandshakeKind::Full, "{version:?}");
            assert_eq!(connect(&client, &b), HandshakeKind::Full, "{version:?}");
        }
        assert_eq!(connect(&client, &b), HandshakeKind::Resumed, "{version:?}");
        // A reload: a new config for scope a over the same cache resumes A's.
        let a_reloaded =
            server_config(version, RustlsStore::scoped(&shared, b"a.example").unwrap());
        let client2 = client_config(version);
        assert_eq!(connect(&client2, &a), HandshakeKind::Full, "{version:?}");
        assert_eq!(
            connect(&client2, &a_reloaded),
            HandshakeKind::Resumed,
            "{version:?}"
        );
    }
    // One capacity for both: TLS 1.2 (one session each), capacity 3.
    let shared = Arc::new(SessionCache::builder().capacity(3).build());
    let a = server_config(TLS12, RustlsStore::scoped(&shared, b"a").unwrap());
    let b = server_config(TLS12, RustlsStore::scoped(&shared, b"b").unwrap());
    let clients: Vec<_> = (0..4).map(|_| client_config(TLS12)).collect();
    for (i, c) in clients.iter().enumerate() {
        let server = if i % 2 == 0 { &a } else { &b };
        assert_eq!(connect(c, server), HandshakeKind::Full);
    }
    assert_eq!(shared.len(), 3);
    assert_eq!(shared.stats().cache_full, 1);
    // The first client's session (A's) was evicted by B's handshake.
    assert_eq!(connect(&clients[0], &a), HandshakeKind::Full);
    assert_eq!(connect(&clients[3], &b), HandshakeKind::Resumed);
}

#[test]
fn eviction_at_capacity_is_visible_through_handshakes() {
    // TLS 1.2: one session per full handshake; capacity 2 keeps the last two.
    let (store, _clock) = store_with_clock(2);
    let server = server_config(TLS12, store.clone());
    let clients: Vec<_> = (0..3).map(|_| client_config(TLS12)).collect();
    for c in &clients {
        assert_eq!(connect(c, &server), HandshakeKind::Full);
    }
    assert_eq!(store.cache().len(), 2);
    assert_eq!(store.stats().cache_full, 1);
    assert_eq!(connect(&clients[2], &server), HandshakeKind::Resumed);
    assert_eq!(connect(&clients[1], &server), HandshakeKind::Resumed);
    assert_eq!(
        connect(&clients[0], &server),
        HandshakeKind::Full,
        "evicted"
    );

    // TLS 1.3: two tickets per full handshake; capacity 2 holds one client's.
    let (store, _clock) = store_with_clock(2);
    let server = server_config(TLS13, store.clone());
    let clients: Vec<_> = (0..2).map(|_| client_config(TLS13)).collect();
    for c in &clients {
        assert_eq!(connect(c, &server), HandshakeKind::Full);
    }
    assert_eq!(store.stats().cache_full, 2);
    assert_eq!(
        connect(&clients[0], &server),
        HandshakeKind::Full,
        "evicted"
    );
    // clients[0]'s new tickets evicted clients[1]'s.
    assert_eq!(
        connect(&clients[1], &server),
        HandshakeKind::Full,
        "evicted"
    );
    assert_eq!(connect(&clients[1], &server), HandshakeKind::Resumed);
}

#[test]
fn no_internal_store_issues_nothing_to_resume() {
    for version in VERSIONS {
        let cache = SessionCache::builder()
            .mode(CacheMode::SERVER | CacheMode::NO_INTERNAL_STORE)
            .build();
        let store = RustlsStore::with_cache(cache);
        let server = server_config(version, store.clone());
        let client = client_config(version);
        assert_eq!(connect(&client, &server), HandshakeKind::Full);
        assert_eq!(
            connect(&client, &server),
            HandshakeKind::Full,
            "{version:?}"
        );
        assert!(store.cache().is_empty());
    }
}

#[test]
fn many_client_threads_at_once() {
    const THREADS: usize = 8;
    const RESUMPTIONS: usize = 15;
    for version in VERSIONS {
        let store = RustlsStore::new(20_480);
        let server = server_config(version, store.clone());
        let barrier = Barrier::new(THREADS);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                let (server, barrier) = (&server, &barrier);
                scope.spawn(move || {
                    let client = client_config(version);
                    barrier.wait();
                    assert_eq!(connect(&client, server), HandshakeKind::Full);
                    for _ in 0..RESUMPTIONS {
                        assert_eq!(connect(&client, server), HandshakeKind::Resumed);
                    }
                });
            }
        });
        let st = store.stats();
        assert_eq!(st.hits, (THREADS * RESUMPTIONS) as u64, "{version:?}");
        assert_eq!((st.misses, st.timeouts, st.cache_full), (0, 0, 0));
        let expect_len = if version == TLS12 {
            THREADS
        } else {
            THREADS * (2 + RESUMPTIONS)
        };
        assert_eq!(store.cache().len(), expect_len, "{version:?}");
    }
}

#[test]
fn store_is_a_drop_in_for_server_config() {
    let p = pki();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(p.key.clone()));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![p.cert.clone()], key)
        .unwrap();
    config.session_storage = RustlsStore::new(20_480);
    let server = Arc::new(config);
    let client = client_config(TLS13);
    assert_eq!(connect(&client, &server), HandshakeKind::Full);
    assert_eq!(connect(&client, &server), HandshakeKind::Resumed);
    // Debug of the whole config (which includes the store) shows no secrets.
    let d = format!("{:?}", server.session_storage);
    assert!(d.contains("RustlsStore"), "{d}");
}
