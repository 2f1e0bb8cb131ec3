//! Model-based property tests: `SessionCache` against a plain sequential model.
//!
//! The model and the runner live in `model_support` (shared with the `ops` fuzz
//! target, fuzz/fuzz_targets/ops.rs); this file only generates setups and
//! operation sequences with proptest. Every step compares every return value,
//! `len()`, `stats()`, the slot and index-entry counts, the strong count, time and
//! resumable flag of every pre-made session, and (with a store) the exact sequence
//! of store callbacks; see `tests/model_support/mod.rs`.

mod model_support;

use model_support::{id_bytes, run, FlushAt, Op, Setup, Spec, BASE, CTXS, IDS, OBJS};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::sync::Arc;
use std::time::Duration;
use tls_session_cache::{CacheMode, Clock, ManualClock, Session, SessionCache};

/// The longest operation sequence.
const MAX_OPS: usize = 60;

// ------------------------------------------------------------------ strategies

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        -60i64..60,
        prop_oneof![
            2 => Just(None),
            6 => (0u64..60).prop_map(Some),
            1 => Just(Some(u64::MAX)),
            1 => (1u64..256).prop_map(|d| Some(u64::MAX - d)),
        ],
        0..CTXS.len(),
    )
        .prop_map(|(time_off, timeout, ctx)| Spec {
            time_off,
            timeout,
            ctx,
        })
}

fn mode_strategy(with_store: bool) -> impl Strategy<Value = CacheMode> {
    // Store runs exercise the NO_INTERNAL_* bits more often.
    let internal = if with_store { 3u32 } else { 8 };
    (0u32..8, 0u32..2, 0u32..4, 0u32..internal, 0u32..internal).prop_map(
        |(server, update, no_clear, no_lookup, no_store)| {
            let mut m = match server {
                0 => CacheMode::OFF,
                1 => CacheMode::CLIENT,
                2 => CacheMode::BOTH,
                _ => CacheMode::SERVER,
            };
            if update == 0 {
                m |= CacheMode::UPDATE_TIME;
            }
            if no_clear == 0 {
                m |= CacheMode::NO_AUTO_CLEAR;
            }
            if no_lookup == 0 {
                m |= CacheMode::NO_INTERNAL_LOOKUP;
            }
            if no_store == 0 {
                m |= CacheMode::NO_INTERNAL_STORE;
            }
            m
        },
    )
}

fn setup_strategy(with_store: bool) -> impl Strategy<Value = Setup> {
    (
        prop::collection::vec(spec_strategy(), OBJS),
        0usize..5,
        mode_strategy(with_store),
        prop_oneof![4 => Just(BASE), 1 => 900u64..1100],
        // Default, the fewest, and more than 8 (grouped summaries in the scan).
        prop_oneof![Just(None), Just(Some(2)), Just(Some(64))],
    )
        .prop_map(move |(specs, capacity, mode, clock, shards)| Setup {
            specs,
            capacity,
            mode,
            clock,
            store: with_store,
            shards,
        })
}

/// Mostly a known id; else empty, 33 bytes, arbitrary bytes of 0 to 40, or a run
/// of a known id's byte of another length.
fn id_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        10 => (0..IDS).prop_map(id_bytes),
        1 => Just(Vec::new()),
        1 => Just(vec![b'z'; 33]),
        1 => prop::collection::vec(any::<u8>(), 0..=40),
        1 => (0..IDS, 0usize..=40).prop_map(|(i, n)| vec![b'a' + i as u8; n]),
    ]
}

fn op_strategy(with_store: bool) -> BoxedStrategy<Op> {
    let obj = 0..OBJS;
    let flush_at = prop_oneof![
        1 => Just(FlushAt::Zero),
        3 => (-5i64..60).prop_map(FlushAt::Near),
        1 => (900u64..1200).prop_map(FlushAt::Abs),
    ];
    let clock_to = prop_oneof![
        8 => 900u64..1300,
        1 => Just(0u64),
        1 => Just(u64::MAX),
    ];
    let common = prop_oneof![
        12 => obj.clone().prop_map(Op::Add),
        3 => (0usize..8).prop_map(Op::AddCached),
        4 => (0usize..8, 0usize..2).prop_map(|(k, j)| Op::Replace(k, j)),
        4 => obj.clone().prop_map(Op::Remove),
        4 => obj.clone().prop_map(Op::RemoveIfSame),
        10 => (id_strategy(), 0..CTXS.len(), any::<bool>())
            .prop_map(|(id, ctx, keep)| Op::Get { id, ctx, keep }),
        8 => (0usize..8, prop::bool::weighted(0.8), any::<bool>())
            .prop_map(|(k, same_ctx, keep)| Op::GetCached { k, same_ctx, keep }),
        3 => (id_strategy(), any::<bool>()).prop_map(|(id, keep)| Op::Take { id, keep }),
        3 => flush_at.prop_map(Op::Flush),
        4 => (0usize..5).prop_map(Op::SetCapacity),
        1 => mode_strategy(with_store).prop_map(Op::SetMode),
        5 => (0u64..40).prop_map(Op::Advance),
        2 => clock_to.prop_map(Op::SetClock),
        2 => Just(Op::Release),
        3 => (obj.clone(), prop_oneof![5 => Just(1usize), 1 => Just(256usize)])
            .prop_map(|(obj, times)| Op::UpdateCache { obj, times }),
        1 => (0usize..=40, 0usize..=40)
            .prop_map(|(id_len, ctx_len)| Op::NewSession { id_len, ctx_len }),
    ];
    if with_store {
        prop_oneof![
            10 => common,
            2 => obj.prop_map(Op::ExtPut),
            1 => (0..IDS).prop_map(Op::ExtDel),
        ]
        .boxed()
    } else {
        common.boxed()
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES overrides, for longer searches.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024),
        // Keep the working tree clean; a found case is turned into a plain test.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// The cache (no store) against the model, under every mode.
    #[test]
    fn cache_matches_model(
        setup in setup_strategy(false),
        ops in prop::collection::vec(op_strategy(false), 0..MAX_OPS),
    ) {
        run(&setup, &ops).map_err(TestCaseError::fail)?;
    }

    /// With a recording `SessionStore`: the callbacks fire exactly as
    /// documented in `src/store.rs`, including under the NO_INTERNAL_* modes.
    #[test]
    fn store_callbacks_match_model(
        setup in setup_strategy(true),
        ops in prop::collection::vec(op_strategy(true), 0..MAX_OPS),
    ) {
        run(&setup, &ops).map_err(TestCaseError::fail)?;
    }
}

// ------------------------------------------------------------------ direct tests

fn plain(id: &[u8], time: u64, timeout: u64) -> Arc<Session<usize>> {
    Arc::new(
        Session::new(id, b"x", 0)
            .unwrap()
            .with_time(time)
            .with_timeout(Duration::from_secs(timeout)),
    )
}

/// `update_cache` flushes expired sessions on exactly every 256th call, unless
/// NO_AUTO_CLEAR; the flush uses the clock's now.
#[test]
fn update_cache_auto_flushes_every_256th_call() {
    for no_auto_clear in [false, true] {
        let mut mode = CacheMode::SERVER;
        if no_auto_clear {
            mode |= CacheMode::NO_AUTO_CLEAR;
        }
        let clock = ManualClock::new(BASE);
        let c: SessionCache<usize> = SessionCache::builder()
            .capacity(0)
            .mode(mode)
            .clock(clock.clone())
            .build();
        let h = plain(b"h", BASE, 1_000_000);
        for round in 1..=3u64 {
            // Expires at BASE + round, so is expired when the clock reads BASE + 10 * round.
            let old = plain(format!("old{round}").as_bytes(), BASE, round);
            assert!(c.add(&old));
            clock.set(BASE + 10 * round);
            for call in 1..256 {
                c.update_cache(&h);
                assert_eq!(Arc::strong_count(&old), 2, "round {round} call {call}");
            }
            c.update_cache(&h);
            assert_eq!(
                Arc::strong_count(&old) == 1,
                !no_auto_clear,
                "round {round}: the 256th call flushes unless NO_AUTO_CLEAR"
            );
            assert_eq!(old.is_resumable(), no_auto_clear);
            assert_eq!(Arc::strong_count(&h), 2, "h never expires");
            assert_eq!(c.stats().timeouts, 0, "a flush counts no timeouts");
        }
        assert_eq!(c.len(), if no_auto_clear { 4 } else { 1 });
    }
}

/// SEMANTICS.md: an add that returns true, a replacement included, first evicts
/// (never its own id) until the cache counting the added session fits the limit.
#[test]
fn replace_after_lowered_capacity_evicts_until_it_fits() {
    let clock = ManualClock::new(BASE);
    let c: SessionCache<usize> = SessionCache::builder()
        .capacity(0)
        .clock(clock.clone())
        .build();
    let a = plain(b"a", BASE, 30);
    let b = plain(b"b", BASE, 20);
    let d = plain(b"d", BASE, 10);
    for s in [&a, &b, &d] {
        assert!(c.add(s));
    }
    assert_eq!(c.set_capacity(2), 0);
    assert_eq!(c.len(), 3, "nothing evicted by set_capacity");
    let a2 = plain(b"a", BASE, 30);
    assert!(c.add(&a2), "a replace returns true");
    assert_eq!(Arc::strong_count(&a), 1, "the old object is released");
    assert_eq!(c.len(), 2, "the replace made the cache fit");
    assert_eq!(c.stats().cache_full, 1);
    assert_eq!(Arc::strong_count(&d), 1, "d expires soonest: evicted");
    assert!(!d.is_resumable());
    assert_eq!(Arc::strong_count(&b), 2);
    assert_eq!(Arc::strong_count(&a2), 2);
    assert!(a.is_resumable(), "a replaced session is not flagged");
}

/// `now()` of the cache follows the shared clock (sanity for the model's clock).
#[test]
fn manual_clock_is_shared() {
    let clock = ManualClock::new(5);
    let c: SessionCache<usize> = SessionCache::builder().clock(clock.clone()).build();
    clock.advance(Duration::from_secs(3));
    assert_eq!(c.now(), 8);
    assert_eq!(Clock::now(&clock), 8);
}
