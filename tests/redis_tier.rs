//! The Redis second tier against a real `redis-server` (each test starts its own
//! on a free 127.0.0.1 port and kills it by pid when done).
#![cfg(feature = "redis")]

mod redis_support;

use redis_support::tls::{
    client_config, client_hello, connect, server_config, server_sees, TLS12, TLS13,
};
use redis_support::RedisServer;
use rustls::server::StoresServerSessions;
use rustls::HandshakeKind;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use tls_session_cache::integrations::redis::Lookup;
use tls_session_cache::integrations::rustls::Secret;
use tls_session_cache::{
    Clock, KeyRing, ManualClock, RedisConfig, RedisRustlsStore, RedisStore, Session, SessionCache,
    SystemClock,
};

/// Generous timeouts: the test machine is shared and busy. Encrypted (a ring of
/// one key) like every production store.
fn config(url: &str) -> RedisConfig {
    plain_config(url).encryption_key([0x11; 32])
}

/// The explicitly insecure plaintext mode.
fn plain_config(url: &str) -> RedisConfig {
    RedisConfig::new(url)
        .timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(200))
        .key_prefix("test:")
        .insecure_plaintext()
}

fn store(cfg: RedisConfig) -> Arc<RedisStore> {
    RedisStore::new(cfg).unwrap()
}

fn session(id: &[u8], payload: &[u8], timeout: u64) -> Arc<Session<Secret>> {
    Arc::new(
        Session::new(id, b"", Secret::new(payload.to_vec()))
            .unwrap()
            .with_time(SystemClock.now())
            .with_timeout(Duration::from_secs(timeout)),
    )
}

/// A local cache of 100 sessions with `st` as its second tier.
fn cache_over(st: &Arc<RedisStore>) -> SessionCache<Secret> {
    SessionCache::builder()
        .capacity(100)
        .store(Arc::clone(st))
        .build()
}

/// Waits for the stores' queued writes to reach Redis (writes leave the
/// handshake through a queue; a test that reads Redis right after waits for it).
fn settle<S: std::ops::Deref<Target = RedisStore>>(stores: &[&S]) {
    for st in stores {
        assert!(st.flush(Duration::from_secs(10)), "queue did not drain");
    }
}

fn raw_get(server: &RedisServer, key: &[u8]) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query(&mut server.conn())
        .unwrap()
}

/// Holds every write on the server for up to `ms` (`CLIENT PAUSE … WRITE`:
/// reads still answer).
fn pause_writes(server: &RedisServer, ms: u64) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("WRITE")
        .query(&mut server.conn())
        .unwrap();
}

fn unpause(server: &RedisServer) {
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query(&mut server.conn())
        .unwrap();
}

fn info_clients(server: &RedisServer) -> String {
    redis::cmd("INFO")
        .arg("clients")
        .query(&mut server.conn())
        .unwrap()
}

fn ttl(server: &RedisServer, key: &[u8]) -> i64 {
    redis::cmd("TTL")
        .arg(key)
        .query(&mut server.conn())
        .unwrap()
}

#[test]
fn sessions_resume_across_two_servers_tls12_and_tls13() {
    let redis = RedisServer::start();
    for version in [TLS12, TLS13] {
        let a = RedisRustlsStore::new(100, store(config(&redis.url())));
        let b = RedisRustlsStore::new(100, store(config(&redis.url())));
        let (sa, sb) = (
            server_config(version, a.clone()),
            server_config(version, b.clone()),
        );
        let client = client_config(version);
        assert_eq!(connect(&client, &sa), HandshakeKind::Full, "{version:?}");
        settle(&[a.redis()]);
        assert!(a.redis().stats().writes >= 1);
        assert!(b.local().cache().is_empty());
        // The client's next connection lands on B: resumed through Redis.
        for i in 0..4 {
            let server = if i % 2 == 0 { &sb } else { &sa };
            assert_eq!(
                connect(&client, server),
                HandshakeKind::Resumed,
                "{version:?} #{i}"
            );
            settle(&[a.redis(), b.redis()]);
        }
        let (ra, rb) = (a.redis().stats(), b.redis().stats());
        assert_eq!(ra.errors + ra.timeouts + rb.errors + rb.timeouts, 0);
        assert!(rb.hits >= 1, "{rb:?}");
        if version == TLS12 {
            // Session ids: found in Redis by the cache's get callback.
            assert_eq!(b.stats().cb_hits, 1);
            assert_eq!(b.local().cache().len(), 1, "added to B's local tier");
        } else {
            // Tickets: each resumption took one from Redis (GETDEL).
            assert_eq!(rb.hits + ra.hits, 4);
            assert_eq!(a.stats().hits + b.stats().hits, 4);
        }
        redis.cli(&["FLUSHALL"]);
    }
}

#[test]
fn ttl_follows_the_remaining_lifetime() {
    let redis = RedisServer::start();
    let st = store(config(&redis.url()));
    let now = SystemClock.now();

    let fresh = session(b"fresh", b"p", 100);
    assert!(st.store(&fresh));
    settle(&[&st]);
    let t = ttl(&redis, &st.key(b"fresh"));
    assert!((98..=100).contains(&t), "ttl {t}");

    // Made 90 s ago with a 100 s lifetime: about 10 s left.
    let old = Arc::new(
        Session::new(b"old", b"", Secret::new(b"p".to_vec()))
            .unwrap()
            .with_time(now - 90)
            .with_timeout(Duration::from_secs(100)),
    );
    assert!(st.store(&old));
    settle(&[&st]);
    let t = ttl(&redis, &st.key(b"old"));
    assert!((8..=10).contains(&t), "ttl {t}");

    // Without its own timeout: the configured session timeout.
    let st60 = store(config(&redis.url()).session_timeout(Duration::from_secs(60)));
    let plain = Arc::new(Session::new(b"plain", b"", Secret::new(b"p".to_vec())).unwrap());
    assert!(st60.store(&plain));
    settle(&[&st60]);
    let t = ttl(&redis, &st60.key(b"plain"));
    assert!((58..=60).contains(&t), "ttl {t}");

    // Already expired: not written.
    let dead = Arc::new(
        Session::new(b"dead", b"", Secret::new(b"p".to_vec()))
            .unwrap()
            .with_time(now - 200)
            .with_timeout(Duration::from_secs(100)),
    );
    assert!(!st.store(&dead));
    assert_eq!(raw_get(&redis, &st.key(b"dead")), None);

    // A reader whose clock is past the expiry refuses the value (a miss).
    let clock = ManualClock::new(now + 101);
    let late = store(config(&redis.url()).clock(clock.clone()));
    assert!(matches!(late.fetch(b"fresh"), Lookup::Absent));
    assert_eq!(late.stats().rejected, 1);
    clock.set(now + 50);
    assert!(matches!(late.fetch(b"fresh"), Lookup::Found(_)));

    // A one-second session is gone from Redis by itself.
    let short = session(b"short", b"p", 1);
    assert!(st.store(&short));
    settle(&[&st]);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(raw_get(&redis, &st.key(b"short")), None);
    assert!(matches!(st.fetch(b"short"), Lookup::Absent));
}

#[test]
fn removal_on_a_is_seen_by_b() {
    let redis = RedisServer::start();
    let mk = || -> (SessionCache<Secret>, Arc<RedisStore>) {
        let st = store(config(&redis.url()));
        let cache = SessionCache::builder()
            .capacity(100)
            .store(Arc::clone(&st))
            .build();
        (cache, st)
    };
    let (a, a_redis) = mk();
    let (b, b_redis) = mk();
    let s1 = session(b"one", b"payload 1", 300);
    let s2 = session(b"two", b"payload 2", 300);
    a.update_cache(&s1);
    a.update_cache(&s2);
    settle(&[&a_redis]);
    // B sees A's session (get callback: cb_hits, added locally).
    let got = b.get(b"one", b"").expect("B finds A's session");
    assert_eq!(got.payload().as_bytes(), b"payload 1");
    assert_eq!(b.stats().cb_hits, 1);
    assert_eq!(b.len(), 1);
    // A removes the other: B never gets it.
    assert!(a.remove(&s2));
    // The DEL is queued: flush makes it visible fleet-wide.
    settle(&[&a_redis]);
    assert_eq!(raw_get(&redis, &b_redis.key(b"two")), None);
    assert!(b.get(b"two", b"").is_none());
    assert_eq!(b.stats().cb_hits, 1);
    assert_eq!(b_redis.stats().misses, 1);

    // Another sid_ctx: B's store is told to only accept its own.
    let strict = store(config(&redis.url()).sid_ctx(b"svc-b"));
    assert!(matches!(strict.fetch(b"one"), Lookup::Absent));
    assert_eq!(strict.stats().rejected, 1);
    // ...and the cache itself checks the caller's sid_ctx too.
    let (c, _) = mk();
    assert!(c.get(b"one", b"another ctx").is_none());
}

/// The store contract (`SessionStore`): once `remove_session` returned, the
/// store must not answer that session. `RedisStore` queues the `DEL`; while it
/// is queued or being sent, Redis still holds the session, and before
/// 2026-12-02 a lookup fetched it from there and the cache linked it again (the
/// removal undone on the server that made it). Writes are held on the server
/// (`CLIENT PAUSE WRITE`: reads still answer), so the `DEL` stays pending.
#[test]
fn a_removed_session_is_not_fetched_back_while_its_del_is_pending() {
    let redis = RedisServer::start();
    let st = store(config(&redis.url()).writer_timeout(Duration::from_secs(30)));
    let cache = cache_over(&st);
    let (gone, kept) = (session(b"gone", b"g", 300), session(b"kept", b"k", 300));
    cache.update_cache(&gone);
    cache.update_cache(&kept);
    settle(&[&st]);
    pause_writes(&redis, 20_000);
    assert!(cache.remove(&gone));
    assert!(
        cache.take(b"kept").is_some(),
        "a local take deletes nothing"
    );
    // Redis still holds both: the DEL cannot land while writes are paused.
    assert!(raw_get(&redis, &st.key(b"gone")).is_some());
    let before = st.stats();
    assert!(
        cache.get(b"gone", b"").is_none(),
        "a removed session came back from Redis"
    );
    assert!(matches!(st.fetch(b"gone"), Lookup::Absent));
    assert!(matches!(st.take(b"gone"), Lookup::Absent));
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().cb_hits, 0);
    let during = st.stats();
    assert_eq!(
        during.pending_delete_misses - before.pending_delete_misses,
        3
    );
    // Another id is still answered while the DEL waits.
    assert!(cache.get(b"kept", b"").is_some());
    assert_eq!(cache.stats().cb_hits, 1);

    unpause(&redis);
    settle(&[&st]);
    assert_eq!(raw_get(&redis, &st.key(b"gone")), None);
    // Sent: the store asks Redis again (and finds nothing).
    assert!(matches!(st.fetch(b"gone"), Lookup::Absent));
    let after = st.stats();
    assert_eq!(after.pending_delete_misses, during.pending_delete_misses);
    assert_eq!(after.misses - during.misses, 1);
    assert!(after.deletes >= 1);
}

/// A full queue drops writes, but not a `DEL` while a `SET` is queued: the `DEL`
/// displaces the oldest queued `SET` (counted in `dropped`). A lost `SET` costs
/// another server one full handshake; a lost `DEL` lets the fleet resume a
/// session this server removed. Before 2026-12-02 the `DEL` was the one dropped.
#[test]
fn a_full_queue_drops_a_set_to_keep_a_del() {
    let redis = RedisServer::start();
    let st = store(
        config(&redis.url())
            .queue_capacity(4)
            .writer_timeout(Duration::from_secs(30)),
    );
    let cache = cache_over(&st);
    let gone = session(b"gone", b"g", 300);
    cache.update_cache(&gone);
    settle(&[&st]);
    pause_writes(&redis, 20_000);
    let before = st.stats();
    let n = 12u64;
    // The writer takes `new-0` alone as its batch and is then held by the
    // pause (Redis counts it in `blocked_clients`); from then on only the
    // queue changes, so the counts below are exact whatever the scheduling.
    cache.update_cache(&session(b"new-0", b"n", 300));
    let t0 = Instant::now();
    while !info_clients(&redis).contains("blocked_clients:1") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the writer never sent its batch"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 1..n {
        cache.update_cache(&session(format!("new-{i}").as_bytes(), b"n", 300));
    }
    let full = st.stats();
    assert!(full.dropped > before.dropped, "the queue filled: {full:?}");
    let queued_sets = full.queued - before.queued;

    assert!(cache.remove(&gone));
    let after = st.stats();
    assert_eq!(
        after.queued - full.queued,
        1,
        "the DEL was queued: {after:?}"
    );
    assert_eq!(
        after.dropped - full.dropped,
        1,
        "a SET made room: {after:?}"
    );
    assert!(
        matches!(st.fetch(b"gone"), Lookup::Absent),
        "the DEL is pending"
    );

    unpause(&redis);
    settle(&[&st]);
    assert_eq!(
        raw_get(&redis, &st.key(b"gone")),
        None,
        "the DEL reached Redis"
    );
    let landed = (0..n)
        .filter(|i| raw_get(&redis, &st.key(format!("new-{i}").as_bytes())).is_some())
        .count() as u64;
    assert_eq!(
        landed,
        queued_sets - 1,
        "every queued SET but the displaced one"
    );
}

/// A server busy with a long script (`-BUSY`) refuses every command, the `DEL`
/// included: the batch must be sent again, not dropped as a refusal (a review
/// of the pending-`DEL` check: before, the `DEL` was dropped, Redis kept the
/// removed session, and lookups fetched it back once the script ended).
#[test]
fn a_del_refused_as_busy_is_sent_again() {
    let redis = RedisServer::start();
    let st = store(config(&redis.url()).writer_timeout(Duration::from_secs(30)));
    let cache = cache_over(&st);
    let gone = session(b"gone", b"g", 300);
    cache.update_cache(&gone);
    settle(&[&st]);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("busy-reply-threshold")
        .arg(100)
        .query(&mut redis.conn())
        .unwrap();
    // Busy for 1.5 s: other clients get -BUSY after the first 100 ms.
    let mut busy_conn = redis.conn();
    let busy = std::thread::spawn(move || {
        let script = "local t0 = redis.call('TIME') \
            local s0 = tonumber(t0[1]) * 1000000 + tonumber(t0[2]) \
            while true do \
              local t = redis.call('TIME') \
              if tonumber(t[1]) * 1000000 + tonumber(t[2]) - s0 > 1500000 then break end \
            end return 1";
        redis::cmd("EVAL")
            .arg(script)
            .arg(0)
            .query::<i64>(&mut busy_conn)
    });
    std::thread::sleep(Duration::from_millis(400));
    let errors = st.stats().errors;
    assert!(cache.remove(&gone));
    assert_eq!(busy.join().unwrap().unwrap(), 1, "the script ran through");
    settle(&[&st]);
    assert!(
        st.stats().errors > errors,
        "the DEL met -BUSY: {:?}",
        st.stats()
    );
    assert_eq!(
        raw_get(&redis, &st.key(b"gone")),
        None,
        "the DEL refused as BUSY was dropped"
    );
    assert!(matches!(st.fetch(b"gone"), Lookup::Absent));
}

/// The system clock, except that the store's writer thread panics the first
/// time it reads it once armed (the writer reads the clock only in the middle
/// of sending a batch).
#[derive(Clone, Default)]
struct PanicOnceInWriter(Arc<std::sync::atomic::AtomicBool>);

impl Clock for PanicOnceInWriter {
    fn now(&self) -> u64 {
        let writer = std::thread::current().name() == Some("tls-session-cache-redis-writer");
        if writer && self.0.swap(false, std::sync::atomic::Ordering::SeqCst) {
            panic!("test: the writer panics once, mid-batch");
        }
        SystemClock.now()
    }
}

/// A batch lost with a writer that panicked (restarted, counted in `errors`)
/// ends there: its `DEL`s are no longer pending (a dropped `DEL`, as
/// documented), so lookups of the id go to Redis again instead of missing for
/// ever. A review: nothing exercised that path.
#[test]
fn a_del_lost_with_a_panicking_writer_is_no_longer_pending() {
    let redis = RedisServer::start();
    let clock = PanicOnceInWriter::default();
    let st = store(config(&redis.url()).clock(clock.clone()));
    let cache = cache_over(&st);
    let gone = session(b"gone", b"g", 300);
    cache.update_cache(&gone);
    settle(&[&st]);
    let errors = st.stats().errors;
    clock.0.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(cache.remove(&gone));
    let t0 = Instant::now();
    while st.stats().errors == errors {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the writer never panicked"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    settle(&[&st]);
    let before = st.stats().pending_delete_misses;
    // The DEL was lost with the batch: Redis still holds the session, and the
    // store answers it (its TTL, or a later remove, ends it).
    assert!(raw_get(&redis, &st.key(b"gone")).is_some());
    assert!(matches!(st.fetch(b"gone"), Lookup::Found(_)));
    assert_eq!(st.stats().pending_delete_misses, before);
    // The restarted writer works: a new DEL lands.
    assert!(st.delete(b"gone"));
    settle(&[&st]);
    assert_eq!(raw_get(&redis, &st.key(b"gone")), None);
}

/// Only an explicit removal reaches Redis: the local tier's evictions, expiries,
/// flushes and takes leave the shared copy alone (they are told apart by
/// `RemovalCause`, not guessed).
#[test]
fn only_explicit_removals_delete_from_redis() {
    let redis = RedisServer::start();
    let st = store(config(&redis.url()));
    let clock = ManualClock::new(SystemClock.now());
    let cache: SessionCache<Secret> = SessionCache::builder()
        .capacity(2)
        .clock(clock.clone())
        .store(Arc::clone(&st))
        .build();
    let mk = |id: &[u8]| {
        Arc::new(
            Session::new(id, b"", Secret::new(id.to_vec()))
                .unwrap()
                .with_time(clock.now()),
        )
    };
    let in_redis = |id: &[u8]| {
        settle(&[&st]);
        raw_get(&redis, &st.key(id)).is_some()
    };
    let (a, b, c, d) = (mk(b"a"), mk(b"b"), mk(b"c"), mk(b"d"));
    for s in [&a, &b, &c] {
        cache.update_cache(s); // c evicts a locally
    }
    assert_eq!(cache.stats().cache_full, 1);
    assert!(in_redis(b"a"), "an eviction does not delete");
    assert!(cache.take(b"b").is_some());
    assert!(in_redis(b"b"), "a local take does not delete");
    assert_eq!(cache.flush(0), 1);
    assert!(in_redis(b"c"), "a flush does not delete");
    cache.update_cache(&d);
    clock.advance(Duration::from_secs(301));
    assert!(cache.get(b"d", b"").is_none());
    assert_eq!(cache.stats().expired, 1);
    assert!(in_redis(b"d"), "an expiry does not delete");
    // Explicit: deleted (a session fresh on Redis's side: the TTL has not run).
    clock.set(SystemClock.now());
    let e = mk(b"e");
    cache.update_cache(&e);
    assert!(in_redis(b"e"));
    assert!(cache.remove(&e));
    assert!(!in_redis(b"e"), "an explicit remove deletes");
    assert!(st.stats().deletes >= 1);
}

#[test]
fn a_raced_ticket_is_taken_exactly_once() {
    let redis = RedisServer::start();
    let a = RedisRustlsStore::new(0, store(config(&redis.url())));
    let b = RedisRustlsStore::new(0, store(config(&redis.url())));
    let keys: Vec<Vec<u8>> = (0..300u32)
        .map(|i| {
            let mut k = vec![0x11; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            k
        })
        .collect();
    for k in &keys {
        // Half the tickets were issued by A, half by B.
        let issuer = if k[0] % 2 == 0 { &a } else { &b };
        assert!(issuer.put(k.clone(), k.clone()));
    }
    settle(&[a.redis(), b.redis()]);
    let barrier = Barrier::new(4);
    let wins: Vec<Vec<bool>> = std::thread::scope(|scope| {
        let hs: Vec<_> = [&a, &b, &a, &b]
            .into_iter()
            .map(|st| {
                let (keys, barrier) = (&keys, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    keys.iter()
                        .map(|k| st.take(k).is_some_and(|v| &v == k))
                        .collect()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, _) in keys.iter().enumerate() {
        let n = wins.iter().filter(|w| w[i]).count();
        assert_eq!(n, 1, "ticket {i} taken {n} times");
    }
    let total = a.redis().stats().hits + b.redis().stats().hits;
    assert_eq!(total, keys.len() as u64);
    assert_eq!(redis.cli(&["DBSIZE"]).trim(), "0");
    assert!(a.local().cache().is_empty() && b.local().cache().is_empty());

    // With real handshakes: one ClientHello offering a ticket issued by A, sent to
    // A and B at once: exactly one resumes.
    let (sa, sb) = (
        server_config(TLS13, a.clone()),
        server_config(TLS13, b.clone()),
    );
    let client = client_config(TLS13);
    for _ in 0..10 {
        assert_eq!(connect(&client, &sa), HandshakeKind::Full);
        settle(&[a.redis()]);
        let (_c, hello) = client_hello(&client);
        let barrier = Barrier::new(2);
        let kinds: Vec<_> = std::thread::scope(|scope| {
            [&sa, &sb]
                .map(|s| {
                    let (hello, barrier) = (&hello, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        server_sees(s, hello)
                    })
                })
                .map(|h| h.join().unwrap())
                .to_vec()
        });
        let resumed = kinds
            .iter()
            .filter(|k| **k == Some(HandshakeKind::Resumed))
            .count();
        assert_eq!(resumed, 1, "{kinds:?}");
        redis.cli(&["FLUSHALL"]);
    }
}

#[test]
fn redis_killed_mid_run_then_back() {
    let mut redis = RedisServer::start();
    let cfg = || {
        config(&redis.url())
            .timeout(Duration::from_millis(100))
            .breaker(2, Duration::from_millis(100), Duration::from_millis(400))
    };
    let a = RedisRustlsStore::new(1000, store(cfg()));
    let b = RedisRustlsStore::new(1000, store(cfg()));
    for version in [TLS12, TLS13] {
        let (sa, sb) = (
            server_config(version, a.clone()),
            server_config(version, b.clone()),
        );
        let pair = || {
            let client = client_config(version);
            let first = connect(&client, &sa);
            // Healthy: the ticket reaches Redis before the next connection (down:
            // the bounded wait just passes).
            a.redis().flush(Duration::from_millis(300));
            (first, connect(&client, &sb), client)
        };
        // Sharing works.
        let (f, s, _) = pair();
        assert_eq!((f, s), (HandshakeKind::Full, HandshakeKind::Resumed));

        redis.kill();
        let before = (a.redis().stats(), b.redis().stats());
        let t0 = Instant::now();
        for _ in 0..10 {
            // Every handshake completes: the second one full (nothing shared)...
            let (f, s, client) = pair();
            assert_eq!((f, s), (HandshakeKind::Full, HandshakeKind::Full));
            // ...while the local tier keeps resuming on the server that made it.
            let again = connect(&client, &sb);
            assert_eq!(again, HandshakeKind::Resumed);
        }
        let down = t0.elapsed();
        let after = (a.redis().stats(), b.redis().stats());
        let failed = |s: &tls_session_cache::RedisStats| s.errors + s.timeouts + s.skipped;
        assert!(failed(&after.0) > failed(&before.0), "{:?}", after.0);
        assert!(failed(&after.1) > failed(&before.1), "{:?}", after.1);
        assert!(after.0.breaker_trips + after.1.breaker_trips >= 1);
        assert!(down < Duration::from_secs(10), "{down:?}");

        // Back (empty): sharing resumes by itself once the breaker probes.
        redis.restart();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (f, s, _) = pair();
            assert_eq!(f, HandshakeKind::Full);
            if s == HandshakeKind::Resumed {
                break;
            }
            assert!(Instant::now() < deadline, "sharing did not come back");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!a.redis().breaker_open() && !b.redis().breaker_open());
    }
}

#[test]
fn slowed_redis_keeps_every_lookup_within_the_timeout() {
    let redis = RedisServer::start();
    let timeout = Duration::from_millis(50);
    let st = store(
        config(&redis.url())
            .timeout(timeout)
            .connect_timeout(timeout)
            .breaker(3, Duration::from_millis(300), Duration::from_secs(1)),
    );
    let cache: SessionCache<Secret> = SessionCache::builder().store(Arc::clone(&st)).build();
    let local = session(b"local", b"x", 300);
    cache.update_cache(&local);
    let shared = session(b"shared", b"y", 300);
    assert!(st.store(&shared));
    settle(&[&st]);
    // Warm the pool with a few connections.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| assert!(matches!(st.fetch(b"shared"), Lookup::Found(_))));
        }
    });

    // Redis stops answering for 1.5 s.
    let sleeper = {
        let mut conn = redis.conn();
        std::thread::spawn(move || {
            let _: () = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg("1.5")
                .query(&mut conn)
                .unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let slowest = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut slowest = Duration::ZERO;
                    for i in 0..40 {
                        let t = Instant::now();
                        // Remote lookups miss...
                        let id = format!("missing-{i}");
                        assert!(!matches!(st.fetch(id.as_bytes()), Lookup::Found(_)));
                        slowest = slowest.max(t.elapsed());
                        // ...local ones are not held up at all.
                        let t = Instant::now();
                        assert!(cache.get(b"local", b"").is_some());
                        assert!(
                            t.elapsed() < Duration::from_millis(200),
                            "{:?}",
                            t.elapsed()
                        );
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    slowest
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).max().unwrap()
    });
    // At worst a connect plus a read timeout (plus scheduling slack on a busy
    // machine); no call waits for the sleeping server (1.5 s).
    assert!(
        slowest < Duration::from_millis(300),
        "slowest lookup {slowest:?}"
    );
    let s = st.stats();
    assert!(s.timeouts >= 1 && s.skipped >= 1, "{s:?}");
    eprintln!("slowest lookup while Redis slept: {slowest:?}; {s:?}");
    sleeper.join().unwrap();

    // Awake again: found after the back-off.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !matches!(st.fetch(b"shared"), Lookup::Found(_)) {
        assert!(Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn encrypted_values_hold_no_plaintext_and_a_wrong_key_misses() {
    let redis = RedisServer::start();
    let marker = b"MARKER-plaintext-session-state-0123456789";
    let k1 = [0x42; 32];
    let w = store(config(&redis.url()).encryption_key(k1));
    let s = session(b"sealed", marker, 300);
    assert!(w.store(&s));
    settle(&[&w]);
    let raw = raw_get(&redis, &w.key(b"sealed")).unwrap();
    assert!(
        !raw.windows(marker.len()).any(|x| x == marker),
        "plaintext in Redis"
    );
    assert!(
        !raw.windows(6).any(|x| x == b"sealed"),
        "id in clear inside the value"
    );

    let same = store(config(&redis.url()).encryption_key(k1));
    match same.fetch(b"sealed") {
        Lookup::Found(got) => assert_eq!(got.payload().as_bytes(), marker),
        other => panic!("{other:?}"),
    }
    // Another key: another MAC key, so another Redis key: a plain miss.
    let wrong = store(config(&redis.url()).encryption_key([0x43; 32]));
    assert!(matches!(wrong.fetch(b"sealed"), Lookup::Absent));
    let none = store(plain_config(&redis.url()));
    assert!(matches!(none.fetch(b"sealed"), Lookup::Absent));
    assert_eq!((wrong.stats().misses, none.stats().misses), (1, 1));
    // The sealed value copied to where they look: it does not open (rejected).
    let _: () = redis::cmd("SET")
        .arg(wrong.key(b"sealed"))
        .arg(&raw)
        .query(&mut redis.conn())
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(none.key(b"sealed"))
        .arg(&raw)
        .query(&mut redis.conn())
        .unwrap();
    assert!(matches!(wrong.fetch(b"sealed"), Lookup::Absent));
    assert!(matches!(none.fetch(b"sealed"), Lookup::Absent));
    assert_eq!((wrong.stats().rejected, none.stats().rejected), (1, 1));
    // A plaintext value planted where an encrypting reader looks is refused.
    assert!(none.store(&session(b"planted", b"x", 300)));
    settle(&[&none]);
    let plain = raw_get(&redis, &none.key(b"planted")).unwrap();
    let _: () = redis::cmd("SET")
        .arg(same.key(b"planted"))
        .arg(&plain)
        .query(&mut redis.conn())
        .unwrap();
    assert!(matches!(same.fetch(b"planted"), Lookup::Absent));
    assert_eq!(same.stats().rejected, 1);

    // Real handshakes: same key shares, a wrong key gives full handshakes.
    for version in [TLS12, TLS13] {
        let a = RedisRustlsStore::new(100, store(config(&redis.url()).encryption_key(k1)));
        let b = RedisRustlsStore::new(100, store(config(&redis.url()).encryption_key(k1)));
        let c = RedisRustlsStore::new(100, store(config(&redis.url()).encryption_key([9; 32])));
        let (sa, sb, sc) = (
            server_config(version, a.clone()),
            server_config(version, b.clone()),
            server_config(version, c.clone()),
        );
        let client = client_config(version);
        assert_eq!(connect(&client, &sa), HandshakeKind::Full);
        settle(&[a.redis()]);
        assert_eq!(connect(&client, &sc), HandshakeKind::Full, "{version:?}");
        let sc_stats = c.redis().stats();
        assert!(sc_stats.misses >= 1 && sc_stats.hits == 0, "{sc_stats:?}");
        let client = client_config(version);
        assert_eq!(connect(&client, &sa), HandshakeKind::Full);
        settle(&[a.redis()]);
        assert_eq!(connect(&client, &sb), HandshakeKind::Resumed, "{version:?}");
    }
}

/// A paused Redis (`kill -STOP`) holds up no handshake-side write: `update_cache`
/// queues (or drops, counted, once the bounded queue is full) and returns; lookups
/// give up at their deadline; once Redis goes on, every queued write lands.
#[test]
fn a_paused_redis_holds_up_no_write_and_lookups_keep_their_deadline() {
    let redis = RedisServer::start();
    let deadline = Duration::from_millis(50);
    let st = store(
        config(&redis.url())
            .timeout(deadline)
            .connect_timeout(deadline)
            .queue_capacity(8)
            .writer_timeout(Duration::from_secs(60)),
    );
    let cache: SessionCache<Secret> = SessionCache::builder().store(Arc::clone(&st)).build();
    // Warm: the writer and the lookup pool hold a connection each.
    cache.update_cache(&session(b"warm", b"w", 300));
    settle(&[&st]);
    assert!(matches!(st.fetch(b"warm"), Lookup::Found(_)));

    redis.pause();
    let before = st.stats();
    let n = 40u64;
    let t0 = Instant::now();
    for i in 0..n {
        cache.update_cache(&session(format!("paused-{i}").as_bytes(), b"p", 300));
    }
    let writes_took = t0.elapsed();
    let during = st.stats();
    let queued = during.queued - before.queued;
    let dropped = during.dropped - before.dropped;
    assert_eq!(queued + dropped, n, "{during:?}");
    assert!(queued >= 1 && dropped >= 1, "{during:?}");
    assert!(during.queue_depth >= 1, "{during:?}");
    // Sanity bound only: the writes did not wait for the paused server.
    assert!(writes_took < Duration::from_secs(10), "{writes_took:?}");
    // The local tier has them all.
    assert_eq!(cache.len(), 41);

    // Lookups: Unavailable, each within its deadline (times a generous factor
    // for a busy machine), never waiting for the paused server.
    for _ in 0..5 {
        let t = Instant::now();
        assert!(matches!(st.fetch(b"warm"), Lookup::Unavailable));
        assert!(t.elapsed() < deadline * 20, "{:?}", t.elapsed());
    }
    let s = st.stats();
    assert!(s.timeouts >= 1, "{s:?}");

    redis.resume();
    assert!(st.flush(Duration::from_secs(30)), "queue did not drain");
    let landed = (0..n)
        .filter(|i| raw_get(&redis, &st.key(format!("paused-{i}").as_bytes())).is_some())
        .count() as u64;
    assert_eq!(
        landed, queued,
        "every queued write landed, no dropped one did"
    );
    let after = st.stats();
    assert_eq!(after.queue_depth, 0);
    assert_eq!(after.writes - before.writes, queued, "{after:?}");
}

/// Once the breaker is open, no handshake's lookup pays for probing the stalled
/// server: every lookup is skipped, also after each back-off has passed (before,
/// the first lookup after a back-off was the probe and waited its whole
/// deadline). The background writer probes; once Redis answers again the breaker
/// closes with no lookup's help.
#[test]
fn an_open_breaker_skips_every_lookup_and_probes_in_the_background() {
    let redis = RedisServer::start();
    let deadline = Duration::from_millis(50);
    let backoff = Duration::from_millis(100);
    let st = store(
        config(&redis.url())
            .timeout(deadline)
            .connect_timeout(deadline)
            .breaker(1, backoff, backoff),
    );
    let kept = session(b"kept", b"k", 300);
    assert!(st.store(&kept));
    settle(&[&st]);
    assert!(matches!(st.fetch(b"kept"), Lookup::Found(_)));

    redis.pause();
    // The first lookup waits its deadline and opens the breaker.
    assert!(matches!(st.fetch(b"kept"), Lookup::Unavailable));
    assert!(st.breaker_open());
    let before = st.stats();
    // Lookups for 8 back-off periods: all skipped, none admitted as a probe.
    let n = 40u64;
    for _ in 0..n {
        assert!(matches!(st.fetch(b"kept"), Lookup::Unavailable));
        std::thread::sleep(backoff / 5);
    }
    let during = st.stats();
    assert_eq!(during.skipped - before.skipped, n, "{during:?}");
    assert_eq!(during.lookups() - before.lookups(), n);

    redis.resume();
    // No lookup is made: the writer's probe closes the breaker.
    let limit = Instant::now() + Duration::from_secs(20);
    while st.breaker_open() {
        assert!(
            Instant::now() < limit,
            "the breaker never closed: {:?}",
            st.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(st.stats().lookups(), during.lookups());
    assert!(matches!(st.fetch(b"kept"), Lookup::Found(_)));
}

/// A TLS 1.3 ticket taken while its `SET` is still queued never reached Redis: the
/// write is taken out of the queue and the local tier decides (it resumes), and
/// the ticket never lands in Redis afterwards (no second use elsewhere).
#[test]
fn a_ticket_taken_before_its_write_was_sent_never_reaches_redis() {
    let redis = RedisServer::start();
    let a = RedisRustlsStore::new(
        100,
        store(config(&redis.url()).writer_timeout(Duration::from_secs(60))),
    );
    // Warm the writer's connection.
    assert!(a.put(b"warm".to_vec(), b"w".to_vec()));
    settle(&[a.redis()]);
    redis.pause();
    // The first write goes in flight (the writer blocks on the paused server),
    // the second stays queued.
    assert!(a.put(b"first".to_vec(), b"1".to_vec()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.redis().stats().queue_depth != 1 || a.redis().stats().queued < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(a.put(b"second".to_vec(), b"2".to_vec()));
    assert_eq!(a.take(b"second"), Some(b"2".to_vec()), "resumed locally");
    assert_eq!(a.take(b"second"), None, "once");
    redis.resume();
    settle(&[a.redis()]);
    assert!(raw_get(&redis, &a.redis().key(b"first")).is_some());
    assert_eq!(raw_get(&redis, &a.redis().key(b"second")), None);
}

/// A host name is resolved when the store is built (and then by the writer in
/// the background), never on a lookup or write.
#[test]
fn a_host_name_works_and_is_resolved_off_the_handshake() {
    let redis = RedisServer::start();
    let st = store(config(&format!("redis://localhost:{}/", redis.port)));
    assert!(st.store(&session(b"named", b"n", 300)));
    settle(&[&st]);
    assert!(matches!(st.fetch(b"named"), Lookup::Found(_)));
    // A name that does not resolve: the store builds, lookups are Unavailable
    // (counted), nothing panics.
    let bad = store(config("redis://no-such-host.invalid:6379/"));
    assert!(matches!(bad.fetch(b"x"), Lookup::Unavailable));
    assert_eq!(bad.stats().errors, 1);
}

/// Redis < 6.2 has no `GETDEL`: played by a server with the command renamed away.
/// The store detects it (`COMMAND INFO GETDEL`, asked by the writer when it
/// connects) and takes with an atomic script (`EVAL`: `GET`, then `DEL`): raced takes are still won
/// exactly once and nothing trips the breaker.
#[test]
fn without_getdel_takes_fall_back_to_a_script() {
    let redis = RedisServer::start_with(&["--rename-command", "GETDEL", ""]);
    assert!(redis.cli(&["GETDEL", "x"]).contains("unknown command"));
    let a = RedisRustlsStore::new(0, store(config(&redis.url())));
    let b = RedisRustlsStore::new(0, store(config(&redis.url())));
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.redis().getdel_supported().is_none() {
        assert!(Instant::now() < deadline, "never detected");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(a.redis().getdel_supported(), Some(false));
    let keys: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_be_bytes().to_vec()).collect();
    for k in &keys {
        assert!(a.put(k.clone(), k.clone()));
    }
    settle(&[a.redis()]);
    let barrier = Barrier::new(2);
    let wins: Vec<Vec<bool>> = std::thread::scope(|scope| {
        [&a, &b]
            .map(|st| {
                let (keys, barrier) = (&keys, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    keys.iter()
                        .map(|k| st.take(k).is_some_and(|v| &v == k))
                        .collect::<Vec<bool>>()
                })
            })
            .map(|h| h.join().unwrap())
            .to_vec()
    });
    for (i, (wa, wb)) in wins[0].iter().zip(&wins[1]).enumerate() {
        assert!(wa ^ wb, "ticket {i}: {wa} {wb}");
    }
    assert_eq!(redis.cli(&["DBSIZE"]).trim(), "0");
    // b learnt it from its first "unknown command" answer (or its writer).
    assert_eq!(b.redis().getdel_supported(), Some(false));
    for st in [a.redis(), b.redis()] {
        let s = st.stats();
        assert_eq!(s.errors + s.timeouts + s.skipped, 0, "{s:?}");
        assert!(!st.breaker_open());
    }
    // A server that has it: detected as such.
    let modern = RedisServer::start();
    let m = store(config(&modern.url()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.getdel_supported().is_none() {
        assert!(Instant::now() < deadline, "never detected");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(m.getdel_supported(), Some(true));
}

/// Every key and value in Redis, raw.
fn dump(server: &RedisServer) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut c = server.conn();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.into_iter()
        .map(|k| {
            let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut c).unwrap();
            (k, v)
        })
        .collect()
}

fn hex(b: &[u8]) -> Vec<u8> {
    b.iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Records the ids rustls stores.
#[derive(Debug)]
struct Recorder {
    inner: Arc<RedisRustlsStore>,
    ids: Mutex<Vec<Vec<u8>>>,
}

impl StoresServerSessions for Recorder {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.ids.lock().unwrap().push(key.clone());
        self.inner.put(key, value)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.take(key)
    }
    fn can_cache(&self) -> bool {
        true
    }
}

/// Someone who reads Redis (keys and values) learns neither a session id (raw or
/// in hex, upper or lower case) nor any payload or sid_ctx byte string; with real
/// handshakes too (TLS 1.2 ids, TLS 1.3 tickets).
#[test]
fn redis_holds_no_session_id_and_no_plaintext() {
    let redis = RedisServer::start();
    let st = store(config(&redis.url()).sid_ctx(b"CTX-MARKER"));
    let ids: Vec<Vec<u8>> = (0..20u8).map(|i| vec![0xa0 + i; 32]).collect();
    let marker = b"PAYLOAD-MARKER-0123456789";
    for id in &ids {
        let s = Arc::new(
            Session::new(id, b"CTX-MARKER", Secret::new(marker.to_vec()))
                .unwrap()
                .with_time(SystemClock.now()),
        );
        assert!(st.store(&s));
    }
    settle(&[&st]);
    let mut all = dump(&redis);
    assert_eq!(all.len(), ids.len());
    // Real handshakes add their own ids and tickets.
    for version in [TLS12, TLS13] {
        let a = RedisRustlsStore::new(100, store(config(&redis.url())));
        let rec = Arc::new(Recorder {
            inner: a.clone(),
            ids: Mutex::new(Vec::new()),
        });
        let (sa, client) = (server_config(version, rec.clone()), client_config(version));
        assert_eq!(connect(&client, &sa), HandshakeKind::Full);
        settle(&[a.redis()]);
        let local_ids = rec.ids.lock().unwrap().clone();
        assert!(!local_ids.is_empty());
        let now = dump(&redis);
        for id in &local_ids {
            for (k, v) in &now {
                assert!(!contains(k, id) && !contains(v, id), "handshake id leaked");
                assert!(!contains(k, &hex(id)) && !contains(v, &hex(id)));
            }
        }
        all = now;
    }
    for (k, v) in &all {
        for id in &ids {
            let upper: Vec<u8> = hex(id).to_ascii_uppercase();
            for needle in [&id[..], &hex(id)[..], &upper[..]] {
                assert!(!contains(k, needle), "id in a key");
                assert!(!contains(v, needle), "id in a value");
            }
        }
        assert!(!contains(v, marker) && !contains(v, b"CTX-MARKER"));
        assert!(k.starts_with(b"test:00:"), "{}", String::from_utf8_lossy(k));
    }
    // ...and yet the store finds each session.
    for id in &ids {
        assert!(matches!(st.fetch(id), Lookup::Found(_)));
    }
}

/// Two services (namespaces) sharing Redis and even the key ring cannot resume
/// each other's sessions: different keys, and a value copied across does not open
/// (the namespace is in the AEAD's associated data). The same for two sid_ctx
/// values in one namespace. Also through real handshakes.
#[test]
fn two_namespaces_with_one_key_cannot_resume_each_others_sessions() {
    let redis = RedisServer::start();
    let svc = |prefix: &str| store(config(&redis.url()).key_prefix(prefix));
    let (a, b) = (svc("svc-a:"), svc("svc-b:"));
    assert!(a.store(&session(b"shared-id", b"a's secret", 300)));
    settle(&[&a]);
    assert!(matches!(b.fetch(b"shared-id"), Lookup::Absent));
    assert_eq!(b.stats().misses, 1);
    // Copy A's value to where B looks: refused.
    let raw = raw_get(&redis, &a.key(b"shared-id")).unwrap();
    let _: () = redis::cmd("SET")
        .arg(b.key(b"shared-id"))
        .arg(&raw)
        .query(&mut redis.conn())
        .unwrap();
    assert!(matches!(b.fetch(b"shared-id"), Lookup::Absent));
    assert_eq!(b.stats().rejected, 1);
    assert!(matches!(a.fetch(b"shared-id"), Lookup::Found(_)));

    // One namespace, two sid_ctx: the value does not open for the other.
    let ctx = |c: &[u8]| store(config(&redis.url()).key_prefix("svc-c:").sid_ctx(c));
    let (c1, c2) = (ctx(b"one"), ctx(b"two"));
    let s = Arc::new(
        Session::new(b"ctx-id", b"one", Secret::new(b"x".to_vec()))
            .unwrap()
            .with_time(SystemClock.now()),
    );
    assert!(c1.store(&s));
    assert!(!c2.store(&s), "another context's session is not written");
    settle(&[&c1]);
    assert!(matches!(c2.fetch(b"ctx-id"), Lookup::Absent));
    assert_eq!(c2.stats().rejected, 1);
    assert!(matches!(c1.fetch(b"ctx-id"), Lookup::Found(_)));

    // Real handshakes: a client of service A never resumes on service B.
    for version in [TLS12, TLS13] {
        let ra = RedisRustlsStore::new(100, svc("hs-a:"));
        let rb = RedisRustlsStore::new(100, svc("hs-b:"));
        let ra2 = RedisRustlsStore::new(100, svc("hs-a:"));
        let (sa, sb, sa2) = (
            server_config(version, ra.clone()),
            server_config(version, rb.clone()),
            server_config(version, ra2.clone()),
        );
        let client = client_config(version);
        assert_eq!(connect(&client, &sa), HandshakeKind::Full);
        settle(&[ra.redis()]);
        assert_eq!(connect(&client, &sb), HandshakeKind::Full, "{version:?}");
        let client = client_config(version);
        assert_eq!(connect(&client, &sa), HandshakeKind::Full);
        settle(&[ra.redis()]);
        assert_eq!(
            connect(&client, &sa2),
            HandshakeKind::Resumed,
            "{version:?}"
        );
    }
}

/// Key rotation without a miss storm: sessions written under key 1 still resume
/// once key 2 is current (key 1 kept for reading), in both rollout orders; once
/// key 1 is dropped from the ring they miss.
#[test]
fn rotation_keeps_old_sessions_and_dropping_the_old_key_misses_them() {
    let redis = RedisServer::start();
    let (k1, k2) = ([0x01; 32], [0x02; 32]);
    let with = |ring: KeyRing| store(config(&redis.url()).key_ring(ring));
    let old = with(KeyRing::new(1, &k1));
    // Step 1 of the rollout: key 2 known (older) everywhere, key 1 still current.
    let step1 = with(KeyRing::new(1, &k1).with_older(2, &k2).unwrap());
    // Step 2: key 2 current, key 1 older.
    let step2 = with(KeyRing::new(2, &k2).with_older(1, &k1).unwrap());
    // Step 3: key 1 dropped.
    let step3 = with(KeyRing::new(2, &k2));

    assert!(old.store(&session(b"before", b"old session", 300)));
    settle(&[&old]);
    assert!(step2.store(&session(b"after", b"new session", 300)));
    settle(&[&step2]);
    assert!(raw_get(&redis, &old.key(b"before")).is_some());
    assert!(String::from_utf8_lossy(&step2.key(b"after")).starts_with("test:02:"));

    // Old sessions resume under the rotated ring; new ones on servers still at
    // step 1 (mid-rollout, both directions work).
    match step2.fetch(b"before") {
        Lookup::Found(s) => assert_eq!(s.payload().as_bytes(), b"old session"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(step1.fetch(b"after"), Lookup::Found(_)));
    assert!(matches!(step1.fetch(b"before"), Lookup::Found(_)));
    assert_eq!(step2.stats().rejected + step1.stats().rejected, 0);
    // A server not yet at step 1 cannot read key 2's sessions (why step 1 comes
    // first).
    assert!(matches!(old.fetch(b"after"), Lookup::Absent));
    // Key 1 dropped: its sessions miss; key 2's still resume.
    assert!(matches!(step3.fetch(b"before"), Lookup::Absent));
    assert!(matches!(step3.fetch(b"after"), Lookup::Found(_)));
    // A take under the rotated ring finds the old key's ticket, once.
    assert!(old.store(&session(b"ticket", b"t", 300)));
    settle(&[&old]);
    assert!(matches!(step2.take(b"ticket"), Lookup::Found(_)));
    assert!(matches!(step2.take(b"ticket"), Lookup::Absent));
    // An explicit removal under the rotated ring deletes the old key's copy.
    assert!(old.store(&session(b"removed", b"r", 300)));
    settle(&[&old]);
    assert!(step2.delete(b"removed"));
    settle(&[&step2]);
    assert!(matches!(old.fetch(b"removed"), Lookup::Absent));

    // Real handshakes: a TLS 1.2 session made under key 1 resumes on a server
    // with the rotated ring; not on one with key 1 dropped.
    let a = RedisRustlsStore::new(100, with(KeyRing::new(1, &k1)));
    let b = RedisRustlsStore::new(100, with(KeyRing::new(2, &k2).with_older(1, &k1).unwrap()));
    let c = RedisRustlsStore::new(100, with(KeyRing::new(2, &k2)));
    let (sa, sb, sc) = (
        server_config(TLS12, a.clone()),
        server_config(TLS12, b.clone()),
        server_config(TLS12, c.clone()),
    );
    let client = client_config(TLS12);
    assert_eq!(connect(&client, &sa), HandshakeKind::Full);
    settle(&[a.redis()]);
    assert_eq!(connect(&client, &sc), HandshakeKind::Full);
    let client = client_config(TLS12);
    assert_eq!(connect(&client, &sa), HandshakeKind::Full);
    settle(&[a.redis()]);
    assert_eq!(connect(&client, &sb), HandshakeKind::Resumed);
}

/// Dropping the store waits (bounded by `drop_timeout`) for its queued writes:
/// what a server wrote before shutting down reaches Redis.
#[test]
fn dropping_the_store_drains_its_queue() {
    let redis = RedisServer::start();
    let st = store(config(&redis.url()).drop_timeout(Duration::from_secs(30)));
    let keys: Vec<Vec<u8>> = (0..200u32)
        .map(|i| {
            let id = i.to_be_bytes();
            assert!(st.store(&session(&id, b"v", 300)));
            st.key(&id)
        })
        .collect();
    drop(st);
    for k in &keys {
        assert!(raw_get(&redis, k).is_some());
    }
}

/// A batch that gets an error reply (here `OOM`: `maxmemory` reached with
/// `noeviction`) is final: counted in `errors` and dropped, not resent for
/// ever ahead of every later write (before, `flush` never returned true and the
/// later `DEL` never landed).
#[test]
fn a_batch_refused_by_the_server_is_dropped_not_resent_for_ever() {
    let redis = RedisServer::start();
    let st = store(config(&redis.url()));
    let first = session(b"first", b"one", 300);
    assert!(st.store(&first));
    settle(&[&st]);
    assert!(raw_get(&redis, &st.key(b"first")).is_some());
    // Full: every SET is refused from now on (DEL still works).
    assert_eq!(
        redis
            .cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
            .trim(),
        "OK"
    );
    assert_eq!(redis.cli(&["CONFIG", "SET", "maxmemory", "1"]).trim(), "OK");
    let errors = st.stats().errors;
    assert!(st.store(&session(b"second", b"two", 300)));
    assert!(
        st.flush(Duration::from_secs(10)),
        "the refused batch blocks the queue"
    );
    assert!(st.delete(b"first"));
    assert!(
        st.flush(Duration::from_secs(10)),
        "a later write is blocked"
    );
    assert_eq!(
        raw_get(&redis, &st.key(b"first")),
        None,
        "the later DEL landed"
    );
    assert_eq!(raw_get(&redis, &st.key(b"second")), None);
    let s = st.stats();
    assert!(s.errors > errors, "the refused batch is counted: {s:?}");
    assert!(!st.breaker_open(), "Redis answered: {s:?}");
}

/// While a batch keeps failing (writes paused with `CLIENT PAUSE … WRITE`:
/// `SET`s hang past `writer_timeout`, `PING` still answers), the writer still
/// runs the breaker's probe between its tries, so lookups come back (before,
/// the writer probed only between batches: the breaker stayed open as long as
/// the batch failed).
#[test]
fn the_breaker_is_probed_while_a_batch_keeps_failing() {
    let redis = RedisServer::start();
    let st = store(
        config(&redis.url())
            .timeout(Duration::from_millis(100))
            .writer_timeout(Duration::from_millis(200))
            .breaker(1, Duration::from_millis(50), Duration::from_millis(100)),
    );
    assert!(st.store(&session(b"first", b"one", 300)));
    settle(&[&st]);
    assert_eq!(
        redis.cli(&["CLIENT", "PAUSE", "120000", "WRITE"]).trim(),
        "OK"
    );
    // A write that cannot land: the writer retries it.
    assert!(st.store(&session(b"second", b"two", 300)));
    // A take is a write too: it times out and opens the breaker.
    assert!(matches!(st.take(b"first"), Lookup::Unavailable));
    assert!(st.breaker_open());
    let deadline = Instant::now() + Duration::from_secs(30);
    while st.breaker_open() {
        assert!(
            Instant::now() < deadline,
            "never probed while the batch failed: {:?}",
            st.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Reads work meanwhile.
    assert!(matches!(st.fetch(b"first"), Lookup::Found(_)));
    assert!(!st.flush(Duration::ZERO), "the batch is still failing");
    redis.cli(&["CLIENT", "UNPAUSE"]);
    settle(&[&st]);
}
