//! Session floods: memory stays bounded by the capacity.
//!
//! An attacker who completes many full handshakes makes the server cache one new
//! session each (OpenSSL's CVE-2024-2511 was unbounded growth of its cache under a
//! flood of this kind). Here 2 threads add distinct new sessions into a cache of
//! capacity 20 480, and a counting global allocator (this file is its own test
//! binary, so it sees every allocation of the process) records the live heap:
//!
//! 1. the size of one entry is measured first, in the same process: the live heap
//!    of a cache filled to capacity, minus the heap before it was built, divided by
//!    the capacity (so the cache's fixed overhead — shards, index partitions,
//!    statistics stripes — is spread over the entries);
//! 2. then the flood: the live heap's exact peak (kept by the allocator on every
//!    allocation, and sampled every few milliseconds by a monitor thread for the
//!    printed profile) must stay within `BOUND_FACTOR` × capacity × entry size +
//!    `GARBAGE_SLACK`, garbage waiting for epoch reclamation included (each
//!    unlinked session leaves its `Arc` allocation, payload already dropped, until
//!    the epoch grace period: see docs/DESIGN.md, "Bound on reclamation");
//! 3. after the cache is dropped and the epoch is flushed, the live heap returns to
//!    where it was before (no leak).
//!
//! The flood is the full size, 10^6 sessions: about 5 s in a release build,
//! 16 to 40 s in a debug build (2 cores). The figures are printed with `--nocapture`:
//! `cargo test --release --test flood -- --nocapture`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tls_session_cache::{ManualClock, Session, SessionCache};

/// Counts live heap bytes and keeps their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[inline]
fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to `System` unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                grew(new - l.size());
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counters are process-wide: the tests of this file run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const CAPACITY: usize = 20_480;
const THREADS: usize = 2;
/// A serialized TLS session (rustls stores about this much per session).
const PAYLOAD_LEN: usize = 128;
/// The stated bound: peak live heap during the flood, above the heap before the
/// cache was built, is at most this many times `CAPACITY` × the measured entry size,
/// plus `GARBAGE_SLACK`. The factor covers the map's and the index's tables (which
/// double when they grow, so a full cache may sit anywhere between just-grown and
/// about-to-grow) and entries dead but not yet unlinked by a racing thread.
const BOUND_FACTOR: f64 = 1.5;
/// Epoch garbage: each thread defers up to 64 weak drops locally (one `Arc`
/// allocation each, ~136 bytes with a `Vec` payload: the payload itself is freed at
/// once), plus the bags in the global queue waiting for two epoch advances.
const GARBAGE_SLACK: usize = 2 << 20;
/// What may remain live after the cache is dropped and the epoch flushed (test
/// harness noise; a leak of one entry per flooded session would be megabytes).
const LEAK_SLACK: usize = 64 << 10;

const T0: u64 = 1_700_000_000;

fn session(thread: usize, n: u64) -> Arc<Session<Vec<u8>>> {
    // 32-byte ids, as TLS 1.2 servers make them; distinct across threads and calls.
    let mut id = [0x5au8; 32];
    id[0] = thread as u8;
    id[1..9].copy_from_slice(&n.to_le_bytes());
    Arc::new(
        Session::new(&id, b"flood-ctx", vec![n as u8; PAYLOAD_LEN])
            .unwrap()
            .with_time(T0),
    )
}

fn cache(clock: &ManualClock) -> SessionCache<Vec<u8>> {
    SessionCache::builder()
        .capacity(CAPACITY)
        .timeout(Duration::from_secs(300))
        .clock(clock.clone())
        .build()
}

/// Pins and flushes the global epoch collector until queued garbage is freed.
fn flush_epoch() {
    for _ in 0..256 {
        crossbeam_epoch::pin().flush();
    }
}

fn mib(b: usize) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// Bytes of live heap per cached entry, measured on a cache filled to capacity.
fn measure_entry_size(clock: &ManualClock) -> usize {
    flush_epoch();
    let before = LIVE.load(Ordering::SeqCst);
    let c = cache(clock);
    for n in 0..CAPACITY as u64 {
        assert!(c.add(&session(9, n)));
    }
    assert_eq!(c.len(), CAPACITY);
    let full = LIVE.load(Ordering::SeqCst);
    drop(c);
    flush_epoch();
    let after = LIVE.load(Ordering::SeqCst);
    assert!(
        after <= before + LEAK_SLACK,
        "measuring leaked: {before} -> {after}"
    );
    (full - before).div_ceil(CAPACITY)
}

fn flood(total: u64) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let clock = ManualClock::new(T0);
    let entry = measure_entry_size(&clock);

    // Allocated before the baseline, so that it counts in neither the peak nor
    // the leak check.
    let mut samples: Vec<usize> = Vec::with_capacity(1 << 16);
    flush_epoch();
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let bound = (BOUND_FACTOR * (CAPACITY * entry) as f64) as usize + GARBAGE_SLACK;

    let c = Arc::new(cache(&clock));
    let done = Arc::new(AtomicBool::new(false));
    // Samples of the live heap for the printed profile (the peak itself is exact).
    let monitor = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) && samples.len() < samples.capacity() {
                samples.push(LIVE.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        })
    };
    let started = Instant::now();
    let per_thread = total / THREADS as u64;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for n in 0..per_thread {
                    // Every flooded session is new: each add links it (evicting the
                    // oldest once full) and the flood keeps no reference to it.
                    assert!(c.add(&session(t, n)));
                    assert!(c.len() <= CAPACITY);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let samples = monitor.join().unwrap();
    let peak = PEAK.load(Ordering::SeqCst) - base;
    let end = LIVE.load(Ordering::SeqCst) - base;
    assert_eq!(c.len(), CAPACITY);
    let stats = c.stats();

    drop(c);
    flush_epoch();
    let after = LIVE.load(Ordering::SeqCst);

    let step = (samples.len() / 10).max(1);
    let profile: Vec<String> = samples
        .iter()
        .step_by(step)
        .map(|s| format!("{:.2}", mib(s.saturating_sub(base))))
        .collect();
    println!(
        "flood of {total} sessions from {THREADS} threads into capacity {CAPACITY}, \
         payload {PAYLOAD_LEN} B, {elapsed:.2?}:\n  \
         entry size {entry} B (capacity x entry = {:.2} MiB)\n  \
         peak live heap {:.2} MiB ({peak} B) = {:.3} x capacity x entry; \
         bound {:.2} MiB ({BOUND_FACTOR} x capacity x entry + {} KiB)\n  \
         live at the end {:.2} MiB; after drop + epoch flush {} B above the start\n  \
         samples (MiB, {} of them, every ~2 ms): {}\n  {stats:?}",
        mib(CAPACITY * entry),
        mib(peak),
        peak as f64 / (CAPACITY * entry) as f64,
        mib(bound),
        GARBAGE_SLACK >> 10,
        mib(end),
        after as isize - base as isize,
        samples.len(),
        profile.join(" "),
    );
    assert!(
        peak <= bound,
        "peak live heap {peak} B exceeds the bound {bound} B (entry {entry} B)"
    );
    assert!(
        after <= base + LEAK_SLACK,
        "{} B still live after the cache was dropped and the epoch flushed",
        after - base
    );
}

/// The full size: 10^6 sessions (about 5 s in release builds, 16 to 40 s
/// in debug builds on 2 busy cores).
#[test]
fn flood_1m_sessions_2_threads_memory_bounded() {
    flood(1_000_000);
}

/// Lookups with attacker-chosen ids (any length, any bytes) allocate nothing that
/// outlives them: a miss never creates a map entry, so a flood of lookups cannot
/// grow the cache or fill a bucket with keys of the attacker's choosing.
#[test]
fn lookup_flood_with_arbitrary_ids_allocates_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let clock = ManualClock::new(T0);
    let c = cache(&clock);
    for n in 0..1024 {
        assert!(c.add(&session(0, n)));
    }
    let mut ids: Vec<Vec<u8>> = Vec::with_capacity(4096);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..4096usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = [0, 1, 8, 31, 32, 33, 64, 300][i % 8];
        ids.push((0..len).map(|j| (x >> (j % 8 * 8)) as u8).collect());
    }
    flush_epoch();
    let slots = c.__slots();
    let before = LIVE.load(Ordering::SeqCst);
    for _ in 0..25 {
        for id in &ids {
            assert!(c.get(id, b"flood-ctx").is_none());
            assert!(c.take(id).is_none());
        }
    }
    flush_epoch();
    let after = LIVE.load(Ordering::SeqCst);
    assert_eq!(c.__slots(), slots, "a miss created a map entry");
    assert_eq!(c.len(), 1024);
    assert!(
        after <= before + LEAK_SLACK,
        "lookups left {} B live",
        after - before
    );
}
