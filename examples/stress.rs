//! Hammers one cache from many threads with a realistic mix of operations and
//! checks the invariants while it runs and at the end. Exits non-zero on any
//! violation.
//!
//! ```text
//! cargo run --release --example stress -- --threads 16 --seconds 30
//! ```
//!
//! Options (all optional): `--threads N` (default 4), `--seconds S` (default 5),
//! `--capacity C` (default 1024), `--ids K` (ids shared by all threads, default
//! 4096; new ids come from a separate, never-repeating range).
//! Sessions under shared ids are dated up to 25 s back (the timeout is 20 s).
//!
//! The mix per operation: 40% `get` (5% of them with another sid_ctx, 1% with an
//! invalid id), 15% `add` of a never-seen id into the (full) cache, 15% `add` of a
//! new object under a shared id (a replace, or a new id), 5% re-`add` of an object
//! this thread added before (a no-op or a re-insert), 6% `remove`, 6%
//! `remove_if_same`, 6% `take`, 7% `len`; besides, one operation in 20 000 moves
//! the clock by 1 or 2 s (sessions live 20 s) and one in 2 000 is a `flush`.
//!
//! Checked: `len() <= capacity` sampled after every operation; at the end,
//! `hits` equals the number of `get`s that returned a session, `hits + misses +
//! timeouts` lies between the `get`s that must count exactly one (the right
//! sid_ctx or an invalid id) and all `get`s (a session of another sid_ctx counts
//! nothing); `len()` equals the map's live slots and the expiry index's entries;
//! after the cache is dropped every session kept by the threads has strong count 1,
//! and every payload ever made was dropped exactly once (no leak, no double release).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tls_session_cache::{ManualClock, Session, SessionCache};

static CREATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// A payload the size of a TLS 1.3 session's secrets that counts its drops.
struct Payload {
    _secret: [u8; 48],
}

impl Payload {
    fn new(seed: u64) -> Self {
        CREATED.fetch_add(1, Ordering::Relaxed);
        Payload {
            _secret: [seed as u8; 48],
        }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

struct Args {
    threads: usize,
    seconds: u64,
    capacity: usize,
    ids: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        threads: 4,
        seconds: 5,
        capacity: 1024,
        ids: 4096,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse::<u64>().map_err(|e| format!("{name} {v}: {e}"))
        };
        match flag.as_str() {
            "--threads" => a.threads = value("--threads")? as usize,
            "--seconds" => a.seconds = value("--seconds")?,
            "--capacity" => a.capacity = value("--capacity")? as usize,
            "--ids" => a.ids = value("--ids")?,
            "-h" | "--help" => {
                return Err(
                    "usage: stress [--threads N] [--seconds S] [--capacity C] [--ids K]".into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.threads == 0 || a.capacity == 0 || a.ids == 0 {
        return Err("--threads, --capacity and --ids must be at least 1".into());
    }
    Ok(a)
}

/// xorshift64*: a small, fast, per-thread generator (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const CTX: &[u8] = b"stress";
const OTHER_CTX: &[u8] = b"other";
const TIMEOUT: u64 = 20;
const START: u64 = 1_700_000_000;

/// What one thread did, tallied by itself.
#[derive(Default)]
struct Tally {
    ops: u64,
    gets: u64,
    /// `get`s that count exactly one of hits/misses/timeouts.
    gets_counting: u64,
    gets_some: u64,
    adds_new: u64,
    adds_new_true: u64,
    replaces: u64,
    readds: u64,
    removes: u64,
    removes_true: u64,
    remove_if_same: u64,
    remove_if_same_true: u64,
    takes: u64,
    takes_some: u64,
    flushes: u64,
    flushed: u64,
    clock_moves: u64,
    len_violations: u64,
    max_len: usize,
    wrong_ctx_returned: u64,
}

fn shared_id(k: u64) -> [u8; 9] {
    let mut id = [0u8; 9];
    id[0] = b's';
    id[1..].copy_from_slice(&k.to_le_bytes());
    id
}

fn worker(
    t: usize,
    cache: &SessionCache<Payload>,
    clock: &ManualClock,
    args: &Args,
    stop: &AtomicBool,
) -> (Tally, Vec<Arc<Session<Payload>>>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) * 0x1234_5678_9abc_def1));
    let mut tally = Tally::default();
    // Sessions this thread made and still holds (for remove_if_same, re-adds and
    // the final strong-count check).
    let mut mine: Vec<Arc<Session<Payload>>> = Vec::with_capacity(64);
    let mut fresh = 0u64;
    let cap = cache.capacity();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..64 {
            tally.ops += 1;
            let now = clock.now();
            let r = rng.below(1000);
            match r {
                0..=399 => {
                    tally.gets += 1;
                    let k = rng.below(args.ids);
                    let id = shared_id(k);
                    let sel = rng.below(100);
                    if sel == 0 {
                        // An invalid id (33 bytes): always one miss.
                        tally.gets_counting += 1;
                        assert!(cache.get(&[7u8; 33], CTX).is_none());
                    } else if sel <= 5 {
                        // Another context: counts a miss if absent, else nothing.
                        if cache.get(&id, OTHER_CTX).is_some() {
                            tally.wrong_ctx_returned += 1;
                        }
                    } else {
                        tally.gets_counting += 1;
                        if let Some(s) = cache.get(&id, CTX) {
                            tally.gets_some += 1;
                            if s.sid_ctx() != CTX || s.id() != id {
                                tally.wrong_ctx_returned += 1;
                            }
                        }
                    }
                }
                400..=549 => {
                    // A never-seen id into the (full) cache: evicts.
                    tally.adds_new += 1;
                    fresh += 1;
                    let mut id = [0u8; 17];
                    id[0] = b'n';
                    id[1..9].copy_from_slice(&(t as u64).to_le_bytes());
                    id[9..].copy_from_slice(&fresh.to_le_bytes());
                    let s = Arc::new(
                        Session::new(&id, CTX, Payload::new(fresh))
                            .expect("valid id")
                            .with_time(now),
                    );
                    if cache.add(&s) {
                        tally.adds_new_true += 1;
                    }
                    keep(&mut mine, s, &mut rng);
                }
                550..=699 => {
                    // A new object under a shared id: a replace (or a new id).
                    tally.replaces += 1;
                    let id = shared_id(rng.below(args.ids));
                    // Dated up to TIMEOUT + 5 s back: some are born expired, many
                    // expire while cached.
                    let s = Arc::new(
                        Session::new(&id, CTX, Payload::new(r))
                            .expect("valid id")
                            .with_time(now - rng.below(TIMEOUT + 5)),
                    );
                    cache.add(&s);
                    keep(&mut mine, s, &mut rng);
                }
                700..=749 => {
                    tally.readds += 1;
                    if let Some(s) = pick(&mine, &mut rng) {
                        cache.add(&s);
                    }
                }
                750..=809 => {
                    tally.removes += 1;
                    if let Some(s) = pick(&mine, &mut rng) {
                        if cache.remove(&s) {
                            tally.removes_true += 1;
                        }
                    }
                }
                810..=869 => {
                    tally.remove_if_same += 1;
                    if let Some(s) = pick(&mine, &mut rng) {
                        if cache.remove_if_same(&s) {
                            tally.remove_if_same_true += 1;
                        }
                    }
                }
                870..=929 => {
                    tally.takes += 1;
                    if cache.take(&shared_id(rng.below(args.ids))).is_some() {
                        tally.takes_some += 1;
                    }
                }
                _ => {
                    let _ = cache.is_empty();
                }
            }
            // Rarer events: the clock moves (expiring the oldest sessions) and a
            // flush of what expired.
            if rng.below(20_000) == 0 {
                tally.clock_moves += 1;
                clock.advance(Duration::from_secs(1 + rng.below(2)));
            }
            if rng.below(2_000) == 0 {
                tally.flushes += 1;
                tally.flushed += cache.flush(clock.now()) as u64;
            }
            let len = cache.len();
            tally.max_len = tally.max_len.max(len);
            if len > cap {
                tally.len_violations += 1;
            }
        }
    }
    (tally, mine)
}

/// Keeps at most 64 of this thread's sessions, replacing a random one.
fn keep(mine: &mut Vec<Arc<Session<Payload>>>, s: Arc<Session<Payload>>, rng: &mut Rng) {
    if mine.len() < 64 {
        mine.push(s);
    } else {
        let i = rng.below(64) as usize;
        mine[i] = s;
    }
}

fn pick(mine: &[Arc<Session<Payload>>], rng: &mut Rng) -> Option<Arc<Session<Payload>>> {
    if mine.is_empty() {
        None
    } else {
        Some(Arc::clone(&mine[rng.below(mine.len() as u64) as usize]))
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let clock = ManualClock::new(START);
    let cache: SessionCache<Payload> = SessionCache::builder()
        .capacity(args.capacity)
        .timeout(Duration::from_secs(TIMEOUT))
        .clock(clock.clone())
        .build();
    let stop = AtomicBool::new(false);
    let started = Instant::now();

    let results: Vec<(Tally, Vec<Arc<Session<Payload>>>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                let (cache, clock, args, stop) = (&cache, &clock, &args, &stop);
                scope.spawn(move || worker(t, cache, clock, args, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_secs(args.seconds));
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker panicked"))
            .collect()
    });
    let elapsed = started.elapsed();

    let mut violations: Vec<String> = Vec::new();
    let mut total = Tally::default();
    let mut kept = Vec::new();
    for (t, mine) in results {
        total.ops += t.ops;
        total.gets += t.gets;
        total.gets_counting += t.gets_counting;
        total.gets_some += t.gets_some;
        total.adds_new += t.adds_new;
        total.adds_new_true += t.adds_new_true;
        total.replaces += t.replaces;
        total.readds += t.readds;
        total.removes += t.removes;
        total.removes_true += t.removes_true;
        total.remove_if_same += t.remove_if_same;
        total.remove_if_same_true += t.remove_if_same_true;
        total.takes += t.takes;
        total.takes_some += t.takes_some;
        total.flushes += t.flushes;
        total.flushed += t.flushed;
        total.clock_moves += t.clock_moves;
        total.len_violations += t.len_violations;
        total.max_len = total.max_len.max(t.max_len);
        total.wrong_ctx_returned += t.wrong_ctx_returned;
        kept.extend(mine);
    }

    let stats = cache.stats();
    let counted = stats.hits + stats.misses + stats.timeouts;
    let len = cache.len();
    if total.len_violations > 0 {
        violations.push(format!(
            "len() above capacity {} in {} samples (max {})",
            args.capacity, total.len_violations, total.max_len
        ));
    }
    if total.wrong_ctx_returned > 0 {
        violations.push(format!(
            "{} gets returned a session of another sid_ctx or id",
            total.wrong_ctx_returned
        ));
    }
    if stats.hits != total.gets_some {
        violations.push(format!(
            "hits {} != gets that returned a session {}",
            stats.hits, total.gets_some
        ));
    }
    if counted < total.gets_counting || counted > total.gets {
        violations.push(format!(
            "hits+misses+timeouts {counted} outside [{}, {}]",
            total.gets_counting, total.gets
        ));
    }
    if len > args.capacity {
        violations.push(format!("final len() {len} > capacity {}", args.capacity));
    }
    if cache.__slots() != len {
        violations.push(format!("map slots {} != len() {len}", cache.__slots()));
    }
    if cache.__index_entries() != len {
        violations.push(format!(
            "expiry index entries {} != len() {len}",
            cache.__index_entries()
        ));
    }

    drop(cache);
    let not_one = kept.iter().filter(|s| Arc::strong_count(s) != 1).count();
    if not_one > 0 {
        violations.push(format!(
            "{not_one} of {} kept sessions have a strong count != 1 after the cache was dropped",
            kept.len()
        ));
    }
    let kept_n = kept.len();
    drop(kept);
    let (created, dropped) = (
        CREATED.load(Ordering::SeqCst),
        DROPPED.load(Ordering::SeqCst),
    );
    if created != dropped {
        violations.push(format!(
            "payloads created {created}, dropped {dropped} (leak or double release)"
        ));
    }

    let secs = elapsed.as_secs_f64();
    println!(
        "stress: {} threads, {:.1} s, capacity {}, {} shared ids",
        args.threads, secs, args.capacity, args.ids
    );
    println!(
        "  ops {} ({:.2} M ops/s); clock moved {} times to +{} s",
        total.ops,
        total.ops as f64 / secs / 1e6,
        total.clock_moves,
        clock.now() - START
    );
    println!(
        "  get {} (returned {}), add new id {} (true {}), replace-or-new {}, re-add {}",
        total.gets,
        total.gets_some,
        total.adds_new,
        total.adds_new_true,
        total.replaces,
        total.readds
    );
    println!(
        "  remove {} (true {}), remove_if_same {} (true {}), take {} (some {}), flush {} (removed {})",
        total.removes,
        total.removes_true,
        total.remove_if_same,
        total.remove_if_same_true,
        total.takes,
        total.takes_some,
        total.flushes,
        total.flushed
    );
    println!(
        "  stats: hits {} misses {} timeouts {} cache_full {}; gets counting exactly one {}",
        stats.hits, stats.misses, stats.timeouts, stats.cache_full, total.gets_counting
    );
    println!(
        "  len at end {len} (max sampled {}), {kept_n} kept sessions checked, payloads created {created} dropped {dropped}",
        total.max_len
    );
    if violations.is_empty() {
        println!("OK: no invariant violated");
        ExitCode::SUCCESS
    } else {
        for v in &violations {
            println!("VIOLATION: {v}");
        }
        ExitCode::FAILURE
    }
}
