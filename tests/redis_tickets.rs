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

/// M3: a key past the window (`rotation_interval × (previous_keys + 1)` after it
/// was made) opens no ticket, even while it is still held because rotation has
/// stopped (Redis down); and it seals none past `rotation_interval × 2`: a local
/// key then (before the fix the stale key sealed and opened for ever).
#[test]
fn a_key_past_the_window_opens_nothing_even_when_rotation_stops() {
    let mut redis = RedisServer::start();
    let clock = ManualClock::new(SystemClock.now());
    let (ta, tb) = (
        ticketer(&redis.url(), &clock),
        ticketer(&redis.url(), &clock),
    );
    let (sa, sb) = (server(TLS13, &ta), server(TLS13, &tb));
    let stolen = client_config(TLS13);
    assert_eq!(connect(&stolen, &sa), HandshakeKind::Full);
    redis.kill(); // no rotation from now on
    clock.advance(2 * HOUR - Duration::from_secs(1));
    assert!(!tb.refresh_now());
    // Still within the window: resumes (the key is refused only past it).
    assert_eq!(connect(&stolen, &sb), HandshakeKind::Resumed, "within");
    clock.advance(Duration::from_secs(1)); // created + window <= now
    assert_eq!(
        connect(&stolen, &sb),
        HandshakeKind::Full,
        "past the window"
    );
    assert!(tb.stats().rejected >= 1, "{:?}", tb.stats());
    // New tickets: the stale key does not seal; after a refresh a local key.
    assert!(!ta.refresh_now());
    assert!(ta.stats().local_only, "{:?}", ta.stats());
    let fresh = client_config(TLS13);
    assert_eq!(connect(&fresh, &sa), HandshakeKind::Full);
    assert_eq!(connect(&fresh, &sa), HandshakeKind::Resumed, "local key");
}

/// M3: a `created` stamped in the future (a rotator's clock far ahead) counts
/// from when the key was first seen: the key still ages out of the window.
#[test]
fn a_key_created_in_the_future_still_ages_out() {
    let mut redis = RedisServer::start();
    let clock = ManualClock::new(SystemClock.now());
    let ahead = ManualClock::new(clock.now() + 100 * 3600);
    let _rotator = ticketer(&redis.url(), &ahead); // makes the list, stamped +100 h
    let ta = ticketer(&redis.url(), &clock);
    assert_eq!(ta.current_generation(), Some(1));
    let sa = server(TLS13, &ta);
    let stolen = client_config(TLS13);
    assert_eq!(connect(&stolen, &sa), HandshakeKind::Full);
    redis.kill();
    clock.advance(2 * HOUR);
    assert_eq!(
        connect(&stolen, &sa),
        HandshakeKind::Full,
        "past the window"
    );
}

/// M3: a replayed older key list (an old Redis value written back) is not
/// installed: the newer keys are kept, and the lease winner writes them back.
#[test]
fn a_replayed_older_key_list_is_refused() {
    let redis = RedisServer::start();
    let clock = ManualClock::new(SystemClock.now());
    let (ta, tb) = (
        ticketer(&redis.url(), &clock),
        ticketer(&redis.url(), &clock),
    );
    let get = || -> Vec<u8> {
        redis::cmd("GET")
            .arg("tickets:ticket-keys")
            .query(&mut redis.conn())
            .unwrap()
    };
    let old_value = get();
    rotate(&clock, &[&ta, &tb]);
    rotate(&clock, &[&ta, &tb]);
    assert_eq!(ta.current_generation(), Some(3));
    let (sa, sb) = (server(TLS13, &ta), server(TLS13, &tb));
    let current = client_config(TLS13);
    assert_eq!(connect(&current, &sa), HandshakeKind::Full);

    let _: () = redis::cmd("SET")
        .arg("tickets:ticket-keys")
        .arg(&old_value)
        .query(&mut redis.conn())
        .unwrap();
    std::thread::sleep(Duration::from_millis(5)); // the 1 ms lease is gone
    assert!(ta.refresh_now());
    assert!(tb.refresh_now());
    assert_eq!(ta.current_generation(), Some(3), "{:?}", ta.stats());
    assert_eq!(tb.current_generation(), Some(3), "{:?}", tb.stats());
    assert_ne!(get(), old_value, "the newer keys were written back");
    assert_eq!(connect(&current, &sb), HandshakeKind::Resumed);
    // Rotation goes on from the newer generation.
    rotate(&clock, &[&ta, &tb]);
    assert_eq!(tb.current_generation(), Some(4));
}

/// M3: a rotation lease with no expiry (`PTTL` -1) is given one, so rotation
/// resumes (before the fix `SET NX` never succeeded again).
#[test]
fn a_lease_with_no_ttl_is_expired_and_rotation_resumes() {
    let redis = RedisServer::start();
    let clock = ManualClock::new(SystemClock.now());
    let ta = ticketer(&redis.url(), &clock);
    assert_eq!(ta.current_generation(), Some(1));
    let _: () = redis::cmd("SET")
        .arg("tickets:ticket-keys:lease")
        .arg("stuck")
        .query(&mut redis.conn())
        .unwrap();
    clock.advance(HOUR + Duration::from_secs(1));
    assert!(ta.refresh_now());
    assert_eq!(ta.current_generation(), Some(1), "the lease is held");
    let pttl: i64 = redis::cmd("PTTL")
        .arg("tickets:ticket-keys:lease")
        .query(&mut redis.conn())
        .unwrap();
    assert_ne!(pttl, -1, "the lease got an expiry");
    std::thread::sleep(Duration::from_millis(5)); // that 1 ms expiry is gone
    assert!(ta.refresh_now());
    assert_eq!(ta.current_generation(), Some(2), "{:?}", ta.stats());
}

/// M4: the key list deleted (Redis restarted empty, `FLUSHALL`): the lease
/// winner rebuilds it from the keys it holds, so tickets already issued still
/// resume fleet-wide, and generations keep increasing.
#[test]
fn a_deleted_key_list_is_rebuilt_from_the_keys_held() {
    let redis = RedisServer::start();
    let clock = ManualClock::new(SystemClock.now());
    let (ta, tb) = (
        ticketer(&redis.url(), &clock),
        ticketer(&redis.url(), &clock),
    );
    let (sa, sb) = (server(TLS13, &ta), server(TLS13, &tb));
    let issued = client_config(TLS13);
    assert_eq!(connect(&issued, &sa), HandshakeKind::Full);
    let _: () = redis::cmd("FLUSHALL").query(&mut redis.conn()).unwrap();
    rotate(&clock, &[&ta, &tb]); // A rebuilds (and rotates: the key is due)
    assert_eq!(ta.current_generation(), Some(2), "{:?}", ta.stats());
    assert_eq!(tb.current_generation(), Some(2), "{:?}", tb.stats());
    assert_eq!(connect(&issued, &sa), HandshakeKind::Resumed, "on A");
    assert_eq!(connect(&issued, &sb), HandshakeKind::Resumed, "on B");
    // Not due: the held list is written back as it is.
    let _: () = redis::cmd("FLUSHALL").query(&mut redis.conn()).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert!(tb.refresh_now());
    assert!(ta.refresh_now());
    assert_eq!(ta.current_generation(), Some(2));
    assert_eq!(connect(&issued, &sa), HandshakeKind::Resumed, "on A");
}
