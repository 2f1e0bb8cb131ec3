//! Multi-threaded stress: threads × random operations on one cache, then the
//! invariants: `len()` within capacity at every sample, every strong count back
//! to 1 once the cache is gone, no session returned by a lookup that started
//! after a removal of it returned, statistics consistent with what threads did.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tls_session_cache::{CacheMode, ManualClock, Session, SessionCache};

const T0: u64 = 1_700_000_000;

struct Payload {
    /// Logical time at which a `take`/`remove_if_same` returned this object (0: never).
    removed_at: AtomicU64,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Tally {
    gets: u64,
    ctx_mismatch_lookups: u64,
}

fn run(threads: usize, capacity: usize, ids: u64, mode: CacheMode, dur: Duration) {
    let clock = ManualClock::new(T0);
    let cache: SessionCache<Payload> = SessionCache::builder()
        .capacity(capacity)
        .timeout(Duration::from_secs(30))
        .mode(mode)
        .clock(clock.clone())
        .build();
    let logical = AtomicU64::new(1);
    let all: Mutex<Vec<Arc<Session<Payload>>>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let max_len_seen = AtomicU64::new(0);
    let tallies: Mutex<Vec<Tally>> = Mutex::new(Vec::new());
    let violations: Mutex<Vec<String>> = Mutex::new(Vec::new());

    std::thread::scope(|scope| {
        // Sampler: len() never above capacity (the capacity is never lowered here).
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let l = cache.len();
                max_len_seen.fetch_max(l as u64, Ordering::Relaxed);
                if capacity != 0 && l > capacity {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("len {l} > capacity {capacity}"));
                }
                std::hint::spin_loop();
            }
        });
        for t in 0..threads {
            let (cache, clock, logical, all, tallies, violations) =
                (&cache, &clock, &logical, &all, &tallies, &violations);
            scope.spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1234_5678));
                let mut mine: Vec<Arc<Session<Payload>>> = Vec::new();
                let mut tally = Tally::default();
                let deadline = Instant::now() + dur;
                // Under a slow executor (valgrind) keep going until the workload
                // has exercised every path the final checks expect, within reason.
                let hard_deadline = deadline + dur * 40;
                let covered = || {
                    let st = cache.stats();
                    st.hits > 0
                        && st.misses > 0
                        && st.timeouts > 0
                        && (capacity == 0 || st.cache_full > 0)
                };
                let mut n = 0u64;
                while n < 2_000
                    || Instant::now() < deadline
                    || (n % 256 != 0 || !covered()) && Instant::now() < hard_deadline
                {
                    n += 1;
                    let id = rng.below(ids).to_le_bytes();
                    let ctx: &[u8] = if rng.below(20) == 0 { b"other" } else { b"ctx" };
                    match rng.below(100) {
                        0..=49 => {
                            let start = logical.load(Ordering::SeqCst);
                            tally.gets += 1;
                            if ctx != b"ctx" {
                                tally.ctx_mismatch_lookups += 1;
                            }
                            if let Some(s) = cache.get(&id, ctx) {
                                let r = s.payload().removed_at.load(Ordering::SeqCst);
                                if r != 0 && r < start {
                                    violations.lock().unwrap().push(format!(
                                        "get returned a session removed at {r} < {start}"
                                    ));
                                }
                                if s.sid_ctx() != ctx {
                                    violations.lock().unwrap().push("sid_ctx leak".into());
                                }
                            }
                        }
                        50..=79 => {
                            let s = Arc::new(
                                Session::new(
                                    &id,
                                    b"ctx",
                                    Payload {
                                        removed_at: AtomicU64::new(0),
                                    },
                                )
                                .unwrap()
                                .with_time(clock.now())
                                .with_timeout(Duration::from_secs(rng.below(40))),
                            );
                            cache.add(&s);
                            if rng.below(4) == 0 {
                                cache.add(&s); // identical: no-op or re-add
                            }
                            mine.push(s);
                        }
                        80..=87 => {
                            if let Some(s) = cache.take(&id) {
                                let at = logical.fetch_add(1, Ordering::SeqCst);
                                s.payload().removed_at.store(at, Ordering::SeqCst);
                                // Never re-added below: objects are single-use once removed.
                                if let Some(pos) = mine.iter().position(|m| Arc::ptr_eq(m, &s)) {
                                    mine.swap_remove(pos);
                                }
                            }
                        }
                        88..=93 => {
                            if let Some(s) = mine.pop() {
                                if cache.remove_if_same(&s) {
                                    let at = logical.fetch_add(1, Ordering::SeqCst);
                                    s.payload().removed_at.store(at, Ordering::SeqCst);
                                }
                                all.lock().unwrap().push(s);
                            }
                        }
                        94..=97 => clock.advance(Duration::from_secs(1)),
                        98 => {
                            cache.flush(clock.now());
                        }
                        _ => {
                            // Re-add one of ours that was never removed by identity.
                            if let Some(s) = mine.last() {
                                if s.payload().removed_at.load(Ordering::SeqCst) == 0 {
                                    cache.add(s);
                                }
                            }
                        }
                    }
                    if mine.len() > 64 {
                        let drained: Vec<_> = mine.drain(..32).collect();
                        all.lock().unwrap().extend(drained);
                    }
                }
                all.lock().unwrap().extend(mine);
                tallies.lock().unwrap().push(tally);
            });
        }
        // Stop the sampler once the workers are done.
        scope.spawn(|| {
            std::thread::sleep(dur + Duration::from_millis(50));
            // Workers run at least `dur`; wait until all have reported.
            while tallies.lock().unwrap().len() < threads {
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Relaxed);
        });
    });

    let v = violations.lock().unwrap();
    assert!(v.is_empty(), "violations: {:?}", &v[..v.len().min(10)]);
    let tallies = tallies.lock().unwrap();
    let gets: u64 = tallies.iter().map(|t| t.gets).sum();
    let mismatches: u64 = tallies.iter().map(|t| t.ctx_mismatch_lookups).sum();
    let st = cache.stats();
    // Every get counts at most one of hits/misses/timeouts; only a lookup with
    // another sid_ctx that found a session counts nothing.
    let counted = st.hits + st.misses + st.timeouts;
    assert!(counted <= gets, "{st:?} vs {gets} gets");
    assert!(
        gets - counted <= mismatches,
        "{st:?}, {gets} gets, {mismatches} mismatches"
    );
    if capacity != 0 {
        assert!(cache.len() <= capacity);
        assert!(max_len_seen.load(Ordering::Relaxed) as usize <= capacity);
        assert!(st.cache_full > 0, "the workload must evict: {st:?}");
    }
    assert!(st.hits > 0 && st.misses > 0 && st.timeouts > 0, "{st:?}");
    drop(cache);
    for s in all.lock().unwrap().iter() {
        assert_eq!(Arc::strong_count(s), 1, "a reference leaked: {s:?}");
    }
}

#[test]
fn stress_small_capacity_4_threads() {
    run(4, 16, 64, CacheMode::SERVER, Duration::from_millis(700));
}

#[test]
fn stress_capacity_one() {
    run(3, 1, 8, CacheMode::SERVER, Duration::from_millis(400));
}

#[test]
fn stress_unlimited_update_time() {
    run(
        2,
        0,
        128,
        CacheMode::SERVER | CacheMode::UPDATE_TIME,
        Duration::from_millis(500),
    );
}

#[test]
fn stress_large_id_space() {
    run(4, 256, 4096, CacheMode::SERVER, Duration::from_millis(700));
}
