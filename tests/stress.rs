//! Multi-threaded stress: threads × random operations on one cache, then the
//! invariants: `len()` within capacity at every sample, every strong count back
//! to 1 once the cache is gone, no session returned by a lookup that started
//! after a removal of it returned (unless an `add` of it that returned true can
//! be ordered between that removal and the lookup), statistics consistent with
//! what threads did.
//!
//! Each object logs every `add` of it and every removal that returned it, in one
//! logical time shared by all threads. An object can be re-added by its owner
//! while another thread's `take` removes it (the owner's second `add`, or its
//! re-add of an object no removal was logged for yet): such an add makes the
//! object live again, so a later lookup may legitimately return it. The checker
//! tells that apart from a stale return by the log, not by a single
//! "removed at" time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tls_session_cache::{CacheMode, ManualClock, Session, SessionCache};

const T0: u64 = 1_700_000_000;

/// One `add` of an object, or one removal that returned it, in logical time.
/// Every time is a distinct value of the shared counter, taken with `fetch_add`.
#[derive(Clone, Copy, Debug)]
enum Event {
    /// An `add`: `start` taken before the call; once it returned, the time taken
    /// after it and what it returned (true: it linked the object).
    Add {
        start: u64,
        done: Option<(u64, bool)>,
    },
    /// A `take`/`remove_if_same` that returned this object: `start` taken before
    /// the call, `end` after it returned.
    Removed { start: u64, end: u64 },
}

struct Payload {
    /// This object's adds and removals. Every time is taken while holding this
    /// lock, and an add is logged before its call, so a lookup that reads the log
    /// after taking its end time sees every event with an earlier time.
    history: Mutex<Vec<Event>>,
}

/// Only the owner thread adds its objects, each `add` through this: logged
/// before the call (as pending) and completed after it.
fn logged_add(cache: &SessionCache<Payload>, logical: &AtomicU64, s: &Arc<Session<Payload>>) {
    let (i, start) = {
        let mut h = s.payload().history.lock().unwrap();
        let start = logical.fetch_add(1, Ordering::SeqCst);
        h.push(Event::Add { start, done: None });
        (h.len() - 1, start)
    };
    let linked = cache.add(s);
    let mut h = s.payload().history.lock().unwrap();
    let end = logical.fetch_add(1, Ordering::SeqCst);
    h[i] = Event::Add {
        start,
        done: Some((end, linked)),
    };
}

/// Logs that a removal which started at `start` (a time taken before the call)
/// returned `s`.
fn log_removal(logical: &AtomicU64, s: &Session<Payload>, start: u64) {
    let mut h = s.payload().history.lock().unwrap();
    let end = logical.fetch_add(1, Ordering::SeqCst);
    h.push(Event::Removed { start, end });
}

/// A lookup whose verdict waits on an add: the object it returned, its start and end.
type Undecided = (Arc<Session<Payload>>, u64, u64);

/// Whether a lookup may have returned an object.
#[derive(Debug, PartialEq)]
enum Verdict {
    Fine,
    Stale(String),
    /// Only an add that has not returned yet can excuse the return: decided again
    /// once every add has returned.
    Undecided,
}

impl Verdict {
    fn is_stale(&self) -> bool {
        matches!(self, Verdict::Stale(_))
    }
}

/// Whether a lookup that started at logical time `start` and ended at `end` (both
/// loads of the counter, taken before the call and after it returned) may have
/// returned the object with this history.
///
/// Linearizability decides it: of the removals that returned before the lookup
/// started (removal end < `start`), take the one that started last (`r`). The
/// lookup may return the object only if an add that linked it can be ordered
/// after `r` and before the lookup: one that started before the lookup ended
/// (`a < end`) and returned true after `r` started (`ae > r`). An add that
/// returned false linked nothing (the object was cached already); one still
/// running leaves the verdict open.
fn stale_return(history: &[Event], start: u64, end: u64) -> Verdict {
    let Some((r, re)) = history
        .iter()
        .filter_map(|e| match *e {
            Event::Removed { start: rs, end: re } if re < start => Some((rs, re)),
            _ => None,
        })
        .max()
    else {
        return Verdict::Fine;
    };
    let (mut relinked, mut running) = (false, false);
    for e in history {
        match *e {
            Event::Add { start: a, done } if a < end => match done {
                Some((ae, linked)) => relinked |= linked && ae > r,
                None => running = true,
            },
            _ => {}
        }
    }
    if relinked {
        Verdict::Fine
    } else if running {
        Verdict::Undecided
    } else {
        Verdict::Stale(format!(
            "get [{start}, {end}] returned a session removed at [{r}, {re}] \
             with no add of it that can be ordered in between: {history:?}"
        ))
    }
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
    // Lookups whose verdict waited on a running add: (object, start, end).
    let undecided: Mutex<Vec<Undecided>> = Mutex::new(Vec::new());

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
            let (cache, clock, logical, all, tallies, violations, undecided) = (
                &cache,
                &clock,
                &logical,
                &all,
                &tallies,
                &violations,
                &undecided,
            );
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
                                let end = logical.load(Ordering::SeqCst);
                                let verdict = {
                                    let h = s.payload().history.lock().unwrap();
                                    stale_return(&h, start, end)
                                };
                                match verdict {
                                    Verdict::Fine => {}
                                    Verdict::Stale(v) => violations.lock().unwrap().push(v),
                                    Verdict::Undecided => {
                                        let u = (Arc::clone(&s), start, end);
                                        undecided.lock().unwrap().push(u);
                                    }
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
                                        history: Mutex::new(Vec::with_capacity(2)),
                                    },
                                )
                                .unwrap()
                                .with_time(clock.now())
                                .with_timeout(Duration::from_secs(rng.below(40))),
                            );
                            logged_add(cache, logical, &s);
                            if rng.below(4) == 0 {
                                // Identical: a no-op, or a re-add if another thread
                                // took it in between (logged, so accounted for).
                                logged_add(cache, logical, &s);
                            }
                            mine.push(s);
                        }
                        80..=87 => {
                            let start = logical.fetch_add(1, Ordering::SeqCst);
                            if let Some(s) = cache.take(&id) {
                                log_removal(logical, &s, start);
                                // Ours: never re-added by us (another thread's object
                                // may still be re-added by its owner: logged).
                                if let Some(pos) = mine.iter().position(|m| Arc::ptr_eq(m, &s)) {
                                    all.lock().unwrap().push(mine.swap_remove(pos));
                                }
                            }
                        }
                        88..=93 => {
                            if let Some(s) = mine.pop() {
                                let start = logical.fetch_add(1, Ordering::SeqCst);
                                if cache.remove_if_same(&s) {
                                    log_removal(logical, &s, start);
                                }
                                all.lock().unwrap().push(s);
                            }
                        }
                        94..=97 => clock.advance(Duration::from_secs(1)),
                        98 => {
                            cache.flush(clock.now());
                        }
                        _ => {
                            // Re-add one of ours no removal was logged for yet (another
                            // thread's take may remove it meanwhile: the add is logged,
                            // so a later lookup that returns it is accounted for).
                            if let Some(s) = mine.last() {
                                let removed = s
                                    .payload()
                                    .history
                                    .lock()
                                    .unwrap()
                                    .iter()
                                    .any(|e| matches!(e, Event::Removed { .. }));
                                if !removed {
                                    logged_add(cache, logical, s);
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

    // Every add has returned now: decide the lookups that waited on one.
    for (s, start, end) in undecided.into_inner().unwrap() {
        let h = s.payload().history.lock().unwrap();
        match stale_return(&h, start, end) {
            Verdict::Fine => {}
            Verdict::Stale(v) => violations.lock().unwrap().push(v),
            Verdict::Undecided => unreachable!("an add still running: {h:?}"),
        }
    }
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

/// The checker itself, on hand-made histories: a lookup may return an object
/// after a removal of it only if an add that linked it can be ordered between.
#[test]
fn stale_return_checker() {
    let add = |start, done| Event::Add { start, done };
    let removed = |start, end| Event::Removed { start, end };
    // Never removed, or removed while the lookup ran: may be returned.
    assert_eq!(
        stale_return(&[add(1, Some((2, true)))], 5, 6),
        Verdict::Fine
    );
    assert_eq!(
        stale_return(&[add(1, Some((2, true))), removed(4, 6)], 5, 7),
        Verdict::Fine
    );
    // Removed before the lookup started, no add since: stale.
    assert!(stale_return(&[add(1, Some((2, true))), removed(3, 4)], 5, 6).is_stale());
    // Re-added after the removal returned (true): live again.
    let h = [
        add(1, Some((2, true))),
        removed(3, 4),
        add(5, Some((6, true))),
    ];
    assert_eq!(stale_return(&h, 7, 8), Verdict::Fine);
    // ... but not for a lookup that ended before that add started.
    assert!(stale_return(&h[..2], 5, 5).is_stale());
    assert!(stale_return(&[removed(3, 4), add(9, None)], 5, 8).is_stale());
    // An add still running when the lookup ended may have linked it: decided once
    // it returned (true after the removal started: fine; false: stale).
    assert_eq!(
        stale_return(&[removed(3, 4), add(6, None)], 5, 8),
        Verdict::Undecided
    );
    assert_eq!(
        stale_return(&[removed(3, 4), add(6, Some((9, true)))], 5, 8),
        Verdict::Fine
    );
    assert!(stale_return(&[removed(3, 4), add(6, Some((9, false)))], 5, 8).is_stale());
    // An add overlapping the removal's start and returning true after it may be
    // ordered after it; one that returned before the removal started may not.
    assert_eq!(
        stale_return(&[add(2, Some((4, true))), removed(3, 5)], 6, 7),
        Verdict::Fine
    );
    assert!(stale_return(&[add(1, Some((2, true))), removed(3, 5)], 6, 7).is_stale());
    // An add that returned false linked nothing.
    assert!(stale_return(&[removed(3, 4), add(5, Some((6, false)))], 7, 8).is_stale());
    // The last removal decides: a re-add between two removals does not excuse the
    // second one.
    let h = [
        add(1, Some((2, true))),
        removed(3, 4),
        add(5, Some((6, true))),
        removed(7, 8),
    ];
    assert!(stale_return(&h, 9, 10).is_stale());
}
