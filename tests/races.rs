//! Brute-force probes on real threads for the races of issue 11, where loom's
//! bounds cannot reach: many iterations, real preemption, different expiries.
//!
//! - `flush_never_removes_unexpired`: a replacer alternates an expired and a
//!   long-lived session under 8 ids while another thread flushes; every session a
//!   flush hands to the store must be expired (round one: about half were not).
//! - `index_has_no_orphans`: replaces that lower the expiry race removes of the same
//!   ids; afterwards the eviction order holds exactly one entry per cached session.
//! - `concurrent_adds_of_one_object_stay_consistent`: two threads add the same
//!   objects while a third forces evictions.
//! - `eviction_order_deviation_is_bounded`: T threads add sessions of increasing
//!   expiry into a full cache; the survivors differ from the exact order by at
//!   most T sessions.
//! - `adds_of_one_new_id_evict_once`: a full cache's capacity is lowered, and
//!   three threads add their own objects under the same new ids while a fourth
//!   reads the old ones (busy shards send adds to the waiting path); the
//!   evictions must bring the cache exactly to the capacity, never below.
//! - `update_time_readds_keep_entries_exact`: under `UPDATE_TIME`, two threads
//!   re-add the same objects (each re-add stamps the time and re-files the
//!   entry) while a third flushes on an advancing clock and the re-adds of
//!   evicted objects evict others; afterwards every cached session has one
//!   entry, filed at its current expiry (evictions then go in time order).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls_session_cache::{
    CacheMode, ManualClock, RemovalCause, Session, SessionCache, SessionStore,
};

const NOW: u64 = 1_700_000_000;

/// Payload: whether the session is long-lived, and an identity (kept so that
/// every session's payload differs, as real sessions do).
struct P {
    long_lived: bool,
    #[allow(dead_code)]
    n: u64,
}

#[derive(Default)]
struct Removed {
    long_lived_flushed: AtomicUsize,
    expired_flushed: AtomicUsize,
}

impl SessionStore<P> for Arc<Removed> {
    fn remove_session(&self, s: &Arc<Session<P>>, _: RemovalCause) {
        if s.payload().long_lived {
            self.long_lived_flushed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.expired_flushed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn iterations() -> u64 {
    std::env::var("RACES_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

#[test]
fn flush_never_removes_unexpired() {
    let removed = Arc::new(Removed::default());
    let cache: SessionCache<P> = SessionCache::builder()
        .capacity(0)
        .timeout(Duration::from_secs(300))
        .clock(ManualClock::new(NOW))
        .store(removed.clone())
        .build();
    let stop = AtomicBool::new(false);
    let flushed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                flushed.fetch_add(cache.flush(NOW) as u64, Ordering::Relaxed);
            }
        });
        for n in 0..iterations() {
            // Per id (n % 8), the sessions alternate: expired, long-lived, ...
            let long_lived = (n / 8) % 2 == 1;
            let time = if long_lived { NOW } else { NOW - 1_000 };
            let id = [(n % 8) as u8; 32];
            let s = Arc::new(
                Session::new(&id, b"", P { long_lived, n })
                    .unwrap()
                    .with_time(time),
            );
            cache.add(&s);
        }
        stop.store(true, Ordering::Relaxed);
    });
    let flushed = flushed.load(Ordering::Relaxed);
    assert_eq!(
        removed.long_lived_flushed.load(Ordering::Relaxed),
        0,
        "flush removed long-lived sessions ({flushed} removals in all)"
    );
    assert_eq!(
        removed.expired_flushed.load(Ordering::Relaxed) as u64,
        flushed
    );
    assert!(
        flushed > 0,
        "the probe raced nothing: no flush removal at all"
    );
    assert_eq!(cache.__index_entries(), cache.len());
    assert_eq!(cache.__slots(), cache.len());
}

#[test]
fn index_has_no_orphans() {
    let cache: SessionCache<P> = SessionCache::builder()
        .capacity(0)
        .timeout(Duration::MAX)
        .clock(ManualClock::new(NOW))
        .build();
    // Rarer than the flush race: round one's core showed orphans at 2 000 000
    // iterations (20 entries for 8 sessions), not always at 200 000.
    let n = iterations() * 5;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Replaces with a falling expiry (the case round one re-filed).
            for i in 0..n {
                let id = [(i % 8) as u8; 32];
                let s = Session::new(
                    &id,
                    b"",
                    P {
                        long_lived: true,
                        n: i,
                    },
                )
                .unwrap()
                .with_time(NOW)
                .with_timeout(Duration::from_secs(1_000_000 - (i % 1_000)));
                cache.add(&Arc::new(s));
            }
        });
        scope.spawn(|| {
            for i in 0..n {
                let id = [(i % 8) as u8; 32];
                let probe = Arc::new(
                    Session::new(
                        &id,
                        b"",
                        P {
                            long_lived: true,
                            n: i,
                        },
                    )
                    .unwrap(),
                );
                cache.remove(&probe);
            }
        });
    });
    assert!(cache.len() <= 8);
    assert_eq!(cache.__index_entries(), cache.len(), "orphaned entries");
    assert_eq!(cache.__slots(), cache.len());
    // Every remaining entry is evictable: flushing everything empties the order.
    cache.flush(0);
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.__index_entries(), 0);
}

#[test]
fn concurrent_adds_of_one_object_stay_consistent() {
    let cache: SessionCache<P> = SessionCache::builder()
        .capacity(4)
        .clock(ManualClock::new(NOW))
        .build();
    let objects: Vec<Arc<Session<P>>> = (0..16u64)
        .map(|n| {
            Arc::new(
                Session::new(
                    &[n as u8 + 1; 32],
                    b"",
                    P {
                        long_lived: true,
                        n,
                    },
                )
                .unwrap()
                .with_time(NOW),
            )
        })
        .collect();
    let rounds = iterations() / 10;
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for r in 0..rounds {
                    cache.add(&objects[(r % 16) as usize]);
                }
            });
        }
        scope.spawn(|| {
            for r in 0..rounds {
                let s = Session::new(
                    &(r + 1_000).to_le_bytes(),
                    b"",
                    P {
                        long_lived: false,
                        n: r,
                    },
                )
                .unwrap()
                .with_time(NOW);
                cache.add(&Arc::new(s));
            }
        });
    });
    assert!(cache.len() <= 4);
    assert_eq!(cache.__index_entries(), cache.len());
    assert_eq!(cache.__slots(), cache.len());
    drop(cache);
    for o in &objects {
        assert_eq!(Arc::strong_count(o), 1, "a reference leaked or was lost");
    }
}

#[test]
fn eviction_order_deviation_is_bounded() {
    const CAP: usize = 256;
    let threads = 2usize;
    let per_thread = (iterations() / 20).max(1_000);
    for _round in 0..5 {
        let cache: SessionCache<P> = SessionCache::builder()
            .capacity(CAP)
            .timeout(Duration::from_secs(300))
            .clock(ManualClock::new(NOW))
            .partitions(8)
            .build();
        // Expiry = creation order: a global counter stamps each session's time
        // just before its add.
        let clock = AtomicU64::new(NOW);
        let created: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for t in 0..threads as u64 {
                let (cache, clock, created) = (&cache, &clock, &created);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..per_thread {
                        let time = clock.fetch_add(1, Ordering::SeqCst);
                        let n = (t << 32) | i;
                        let s = Session::new(
                            &n.to_le_bytes(),
                            b"",
                            P {
                                long_lived: true,
                                n,
                            },
                        )
                        .unwrap()
                        .with_time(time);
                        cache.add(&Arc::new(s));
                        mine.push((time, n));
                    }
                    created.lock().unwrap().extend(mine);
                });
            }
        });
        let mut created = created.into_inner().unwrap();
        created.sort();
        let newest: HashSet<u64> = created.iter().rev().take(CAP).map(|&(_, n)| n).collect();
        let survivors: Vec<u64> = created
            .iter()
            .filter(|&&(_, n)| cache.get(&n.to_le_bytes(), b"").is_some())
            .map(|&(_, n)| n)
            .collect();
        assert_eq!(survivors.len(), CAP);
        let out_of_order = survivors.iter().filter(|n| !newest.contains(n)).count();
        assert!(
            out_of_order <= threads,
            "{out_of_order} survivors are not among the {CAP} newest ({threads} threads)"
        );
    }
}

/// Records the time of every evicted session, in eviction order.
#[derive(Default)]
struct Evictions(Mutex<Vec<u64>>);

impl SessionStore<P> for Arc<Evictions> {
    fn remove_session(&self, s: &Arc<Session<P>>, cause: RemovalCause) {
        if cause == RemovalCause::Evicted {
            self.0.lock().unwrap().push(s.time());
        }
    }
}

#[test]
fn update_time_readds_keep_entries_exact() {
    let clock = ManualClock::new(NOW);
    let evictions = Arc::new(Evictions::default());
    let cache: SessionCache<P> = SessionCache::builder()
        .capacity(6)
        .timeout(Duration::from_secs(8))
        .clock(clock.clone())
        .store(evictions.clone())
        .build();
    let objects: Vec<Arc<Session<P>>> = (0..8u64)
        .map(|n| {
            let p = P {
                long_lived: true,
                n,
            };
            Arc::new(Session::new(&[n as u8 + 1; 32], b"", p).unwrap())
        })
        .collect();
    // Short races, each checked once quiescent: a stale entry shows only while
    // its session stays cached, so many checks catch more than one at the end.
    let epochs = 40;
    let rounds = (iterations() / 4 / epochs).max(100);
    let (mut flushed_all, mut evicted_all) = (0, 0);
    for epoch in 0..epochs {
        cache.set_mode(CacheMode::SERVER | CacheMode::UPDATE_TIME);
        evictions.0.lock().unwrap().clear();
        let stop = AtomicBool::new(false);
        let flushed = AtomicU64::new(0);
        std::thread::scope(|scope| {
            let readders: Vec<_> = (0..2u64)
                .map(|t| {
                    let (cache, objects, clock) = (&cache, &objects, &clock);
                    scope.spawn(move || {
                        for r in 0..rounds {
                            // A new second per add: the objects' times differ,
                            // so that a stale entry would be filed out of time
                            // order, and some expire between re-adds (for the
                            // flusher).
                            clock.advance(Duration::from_secs(1));
                            // A random object: some re-adds find it cached (a
                            // re-file), others evicted (a new link that evicts).
                            let x =
                                (r ^ (t << 40) ^ (epoch << 48)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                            cache.add(&objects[(x >> 61) as usize]);
                        }
                    })
                })
                .collect();
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    flushed.fetch_add(cache.flush(clock.now()) as u64, Ordering::Relaxed);
                }
            });
            for h in readders {
                h.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
        flushed_all += flushed.load(Ordering::Relaxed);
        evicted_all += evictions.0.lock().unwrap().len();
        assert!(cache.len() <= 6);
        assert_eq!(cache.__index_entries(), cache.len(), "epoch {epoch}");
        assert_eq!(cache.__slots(), cache.len(), "epoch {epoch}");
        let cached: Vec<&Arc<Session<P>>> = objects
            .iter()
            .filter(|o| Arc::strong_count(o) == 2)
            .collect();
        assert_eq!(
            cached.len(),
            cache.len(),
            "one cache reference per cached object"
        );

        // Each entry is filed at its session's current expiry: new sessions
        // (made far in the future, the mode no longer stamping) now evict the
        // cached ones soonest time first.
        cache.set_mode(CacheMode::SERVER);
        evictions.0.lock().unwrap().clear();
        let mut want: Vec<u64> = cached.iter().map(|o| o.time()).collect();
        want.sort_unstable();
        // As many as the capacity: the first fill any free room, the rest evict
        // every cached object.
        let fillers: Vec<[u8; 32]> = (0..6).map(|n| [n as u8 + 100; 32]).collect();
        for (n, id) in fillers.iter().enumerate() {
            let p = P {
                long_lived: false,
                n: n as u64,
            };
            let s = Session::new(id, b"", p)
                .unwrap()
                .with_time(clock.now() + 1_000);
            assert!(cache.add(&Arc::new(s)));
        }
        assert_eq!(
            *evictions.0.lock().unwrap(),
            want,
            "epoch {epoch}: evicted in time order"
        );
        for id in &fillers {
            assert!(cache.take(id).is_some());
        }
        assert!(cache.is_empty());
    }
    // Evictions always happen (8 objects, room for 6); how many flush removals
    // overlapped the re-adds depends on scheduling (loom model 20 covers that
    // race exhaustively).
    assert!(
        evicted_all > 0,
        "the probe raced nothing (flushed {flushed_all})"
    );
    drop(cache);
    for o in &objects {
        assert_eq!(Arc::strong_count(o), 1, "a reference leaked or was lost");
    }
}

#[test]
fn adds_of_one_new_id_evict_once() {
    const CAP: usize = 64;
    const LOWERED: usize = 48;
    const NEW_IDS: u64 = 8;
    const ADDERS: u64 = 3;
    let session = |id: u64, n: u64| {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&id.to_le_bytes());
        Arc::new(
            Session::new(
                &b,
                b"",
                P {
                    long_lived: true,
                    n,
                },
            )
            .unwrap()
            // The old sessions expire first (in their id order), the new
            // ones last: every eviction must take an old one.
            .with_time(if id >= 1_000 { NOW - 1_200 + id } else { NOW }),
        )
    };
    for round in 0..(iterations() / 1_000).max(20) {
        // 8 shards whatever the core count: with more than 8 partitions the
        // runner-up is picked within a group of 8, which may hold only new
        // sessions once the old ones thin out, and evicting one would be
        // allowed (DESIGN.md, "Exact and approximate") but fail the count.
        let cache: SessionCache<P> = SessionCache::builder()
            .capacity(CAP)
            .shards(8)
            .clock(ManualClock::new(NOW))
            .build();
        let old: Vec<_> = (0..CAP as u64).map(|i| session(1_000 + i, 0)).collect();
        for s in &old {
            assert!(cache.add(s));
        }
        cache.set_capacity(LOWERED);
        let done = AtomicBool::new(false);
        let linked = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    for s in &old {
                        drop(cache.get(s.id(), b""));
                    }
                }
            });
            let adders: Vec<_> = (0..ADDERS)
                .map(|t| {
                    let (cache, linked) = (&cache, &linked);
                    scope.spawn(move || {
                        for id in 0..NEW_IDS {
                            assert!(cache.add(&session(id, t + 1)), "a new object is linked");
                            linked.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for a in adders {
                a.join().unwrap();
            }
            done.store(true, Ordering::Relaxed);
        });
        assert_eq!(linked.load(Ordering::Relaxed), (ADDERS * NEW_IDS) as usize);
        let evicted = cache.stats().cache_full;
        assert_eq!(
            (cache.len(), evicted),
            (LOWERED, (CAP - LOWERED) as u64 + NEW_IDS),
            "round {round}: len and evictions"
        );
        assert_eq!(cache.__index_entries(), LOWERED);
        assert_eq!(cache.__slots(), LOWERED);
        for id in 0..NEW_IDS {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&id.to_le_bytes());
            assert!(
                cache.get(&b, b"").is_some(),
                "round {round}: new id {id} cached"
            );
        }
    }
}
