//! Fleet-wide ticket keys (`RedisTicketer`) through real rustls handshakes: two
//! servers sharing one `redis-server` (started by the test on a free 127.0.0.1
//! port), stateless tickets only (no session storage on the servers).
#![cfg(feature = "redis")]

mod redis_support;

use redis_support::tls::{client_config, connect, server_config, TLS12, TLS13};
use redis_support::RedisServer;
use rustls::server::NoServerSessionStorage;
use rustls::{HandshakeKind, ServerConfig, SupportedProtocolVersion};
use std::sync::Arc;
use std::time::Duration;
use tls_session_cache::integrations::redis::{RedisTicketer, TicketerOptions};
use tls_session_cache::{Clock, ManualClock, RedisConfig, SystemClock};

const HOUR: Duration = Duration::from_secs(3600);

/// Rotation every hour of `clock`, one previous key; no background refresh
/// during the test (refreshes are explicit); a 1 ms lease so consecutive test
/// rotations are not held off by real time.
fn ticketer(url: &str, clock: &ManualClock) -> Arc<RedisTicketer> {
    RedisTicketer::new(
        RedisConfig::new(url)
            .key_prefix("tickets:")
            .encryption_key([7; 32])
            .clock(clock.clone())
            .timeout(Duration::from_millis(500))
            .writer_timeout(Duration::from_secs(5)),
        TicketerOptions {
            rotation_interval: HOUR,
            previous_keys: 1,
            refresh_interval: 1000 * HOUR,
            lease: Duration::from_millis(1),
            lifetime: None,
        },
    )
    .unwrap()
}

/// A server that resumes by stateless tickets only.
fn server(version: &'static SupportedProtocolVersion, t: &Arc<RedisTicketer>) -> Arc<ServerConfig> {
    let mut cfg = (*server_config(version, Arc::new(NoServerSessionStorage {}))).clone();
    cfg.ticketer = t.clone();
    Arc::new(cfg)
}

fn rotate(clock: &ManualClock, ts: &[&Arc<RedisTicketer>]) {
    clock.advance(HOUR + Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(5)); // the 1 ms lease is gone
    for t in ts {
        assert!(t.refresh_now());
    }
}

#[test]
fn tickets_from_a_resume_on_b_within_the_window_and_not_beyond() {
    let redis = RedisServer::start();
    let clock = ManualClock::new(SystemClock.now());
    let (ta, tb) = (
        ticketer(&redis.url(), &clock),
        ticketer(&redis.url(), &clock),
    );
    // A made the fleet's first key; B read it.
    assert_eq!(ta.current_generation(), Some(1));
    assert_eq!(tb.current_generation(), Some(1));
    assert_eq!(ta.stats().rotations + tb.stats().rotations, 1);
    assert!(!ta.stats().local_only && !tb.stats().local_only);
    // The keys in Redis are sealed: the value opens only with the key ring.
    let raw: Vec<u8> = redis::cmd("GET")
        .arg("tickets:ticket-keys")
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(raw[0], 0, "sealed under ring key 0");

    for version in [TLS12, TLS13] {
        let (sa, sb) = (server(version, &ta), server(version, &tb));
        // Issued by A, resumed on B (and back).
        let client = client_config(version);
        assert_eq!(connect(&client, &sa), HandshakeKind::Full, "{version:?}");
        assert_eq!(connect(&client, &sb), HandshakeKind::Resumed, "{version:?}");
        assert_eq!(connect(&client, &sa), HandshakeKind::Resumed, "{version:?}");

        // A ticket from the previous key still resumes after a rotation.
        let old = client_config(version);
        assert_eq!(connect(&old, &sa), HandshakeKind::Full);
        let before = tb.current_generation().unwrap();
        rotate(&clock, &[&ta, &tb]);
        assert_eq!(ta.current_generation(), Some(before + 1));
        assert_eq!(tb.current_generation(), Some(before + 1));
        assert_eq!(connect(&old, &sb), HandshakeKind::Resumed, "{version:?}");

        // One older than the window (two rotations with one previous key) does
        // not: a full handshake.
        let too_old = client_config(version);
        assert_eq!(connect(&too_old, &sa), HandshakeKind::Full);
        rotate(&clock, &[&ta, &tb]);
        rotate(&clock, &[&ta, &tb]);
        assert_eq!(connect(&too_old, &sb), HandshakeKind::Full, "{version:?}");
        assert!(tb.stats().rejected >= 1);
        // Each rotation was made once across the fleet.
        let gen = ta.current_generation().unwrap();
        assert_eq!(ta.stats().rotations + tb.stats().rotations, gen);
    }
    // Never fetched on the handshake path: handshakes only read keys in memory,
    // so they work with Redis gone.
    drop(redis);
    let (sa, sb) = (server(TLS13, &ta), server(TLS13, &tb));
    let client = client_config(TLS13);
    assert_eq!(connect(&client, &sa), HandshakeKind::Full);
    assert_eq!(connect(&client, &sb), HandshakeKind::Resumed);
    assert!(!ta.refresh_now());
    assert!(ta.stats().refresh_errors >= 1);
}

/// Started while Redis is down: a local key (tickets resume on that server only,
/// flagged `local_only`); once Redis is back the fleet's keys are adopted, and the
/// local key's tickets still resume on that server.
#[test]
fn without_redis_a_local_key_then_the_fleets_keys() {
    let mut redis = RedisServer::start();
    let clock = ManualClock::new(SystemClock.now());
    let tb = ticketer(&redis.url(), &clock);
    redis.kill();
    let ta = ticketer(&redis.url(), &clock);
    assert!(ta.stats().local_only);
    assert_eq!(ta.current_generation(), None);
    let (sa, sb) = (server(TLS13, &ta), server(TLS13, &tb));
    let local = client_config(TLS13);
    assert_eq!(connect(&local, &sa), HandshakeKind::Full);
    let elsewhere = client_config(TLS13);
    assert_eq!(connect(&elsewhere, &sa), HandshakeKind::Full);
    assert_eq!(
        connect(&elsewhere, &sb),
        HandshakeKind::Full,
        "local key only"
    );

    redis.restart(); // empty: the fleet's keys are made again
    assert!(ta.refresh_now());
    assert!(tb.refresh_now());
    let s = ta.stats();
    assert!(!s.local_only, "{s:?}");
    assert_eq!(ta.current_generation(), tb.current_generation());
    assert_eq!(
        connect(&local, &sa),
        HandshakeKind::Resumed,
        "local ticket, same server"
    );
    let shared = client_config(TLS13);
    assert_eq!(connect(&shared, &sa), HandshakeKind::Full);
    assert_eq!(connect(&shared, &sb), HandshakeKind::Resumed);
}

/// The ticketer's breaker closes again once Redis is back: its refresh probes
/// (before the fix nothing probed it, so after `threshold` failed refreshes every
/// later refresh was skipped for good).
#[test]
fn the_ticketers_breaker_closes_once_redis_is_back() {
    let mut redis = RedisServer::start();
    let clock = ManualClock::new(SystemClock.now());
    let t = RedisTicketer::new(
        RedisConfig::new(redis.url())
            .key_prefix("tickets:")
            .encryption_key([7; 32])
            .clock(clock.clone())
            .timeout(Duration::from_millis(500))
            .writer_timeout(Duration::from_secs(5))
            .breaker(2, Duration::from_millis(50), Duration::from_millis(200)),
        TicketerOptions {
            refresh_interval: 1000 * HOUR,
            ..TicketerOptions::default()
        },
    )
    .unwrap();
    assert_eq!(t.current_generation(), Some(1));
    redis.kill();
    for _ in 0..4 {
        assert!(!t.refresh_now(), "Redis is down");
    }
    redis.restart();
    // Generous: past the back-off (at most 200 ms) many times over.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !t.refresh_now() {
        assert!(
            std::time::Instant::now() < deadline,
            "the ticketer never reached Redis again: {:?}",
            t.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The server is empty again: a new first key was made.
    assert!(t.current_generation().is_some());
}

/// `lease: Duration::MAX` still rotates (the lease's `PX` used to be out of the
/// range Redis accepts, so no rotation ever happened and no fleet key was made).
#[test]
fn an_extreme_lease_still_rotates() {
    let redis = RedisServer::start();
    let t = RedisTicketer::new(
        RedisConfig::new(redis.url())
            .key_prefix("tickets:")
            .encryption_key([7; 32])
            .writer_timeout(Duration::from_secs(5)),
        TicketerOptions {
            lease: Duration::MAX,
            refresh_interval: 1000 * HOUR,
            ..TicketerOptions::default()
        },
    )
    .unwrap();
    assert_eq!(t.current_generation(), Some(1), "{:?}", t.stats());
    assert!(!t.stats().local_only);
}
