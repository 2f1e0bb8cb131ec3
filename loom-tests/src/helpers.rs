//! What every model shares: `run_model` (names the model, sets its preemption
//! bound, prints its iteration count and time), a payload that counts its own
//! releases, and a cache wired to a model-local epoch collector and a manual clock.

use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tls_session_cache::{ManualClock, Session, SessionCache};

/// The id context every model session is made for.
pub const CTX: &[u8] = b"ctx";
/// The manual clock's time in every model.
pub const NOW: u64 = 1_000;
/// The cache's session timeout (seconds).
pub const TIMEOUT: u64 = 100;
/// A session time that is expired at `NOW`.
pub const EXPIRED: u64 = NOW - TIMEOUT - 10;

/// The session type of every model.
pub type S = Session<Tracked>;
/// The cache type of every model.
pub type Cache = SessionCache<Tracked>;

/// Runs one model with `loom::model::Builder`, with preemption bound `bound`
/// unless `LOOM_MAX_PREEMPTIONS` is set (then the environment wins), and prints
///
/// ```text
/// model <name>: <N> iterations in <T> s (preemption bound <B>)
/// ```
///
/// or, when an interleaving fails, `model <name>: FAILED at iteration <N> after
/// <T> s` (the line `mutants.sh` reads for the time to catch a mutant).
pub fn run_model<F>(name: &'static str, bound: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_BRANCHES").is_none() {
        // Every operation pins the epoch (a register, a pin and an unregister in
        // crossbeam-epoch's list and queue): a path of one interleaving is longer
        // than loom's default 1 000 branches.
        builder.max_branches = 20_000;
    }
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = Some(bound);
    }
    let bound = builder.preemption_bound;
    let iterations = Arc::new(StdAtomicUsize::new(0));
    let report = Report {
        name,
        bound,
        iterations: iterations.clone(),
        start: Instant::now(),
    };
    install_failure_hook();
    CURRENT.with(|c| *c.borrow_mut() = Some((name, iterations.clone(), report.start)));
    builder.check(move || {
        iterations.fetch_add(1, StdOrdering::Relaxed);
        f();
    });
    drop(report);
}

thread_local! {
    /// The model running on this OS thread (loom runs all of a model's threads on
    /// the test's own thread): its name, iteration counter and start time.
    static CURRENT: std::cell::RefCell<Option<(&'static str, Arc<StdAtomicUsize>, Instant)>> =
        const { std::cell::RefCell::new(None) };
}

/// A panic hook that prints `model <name>: FAILED at iteration <N> after <T> s`
/// before the default message: a failing model may abort while unwinding (a
/// double release corrupts the heap), so this is printed at the first panic.
fn install_failure_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = CURRENT.try_with(|c| {
                if let Ok(Some((name, n, start))) = c.try_borrow().map(|c| c.clone()) {
                    println!(
                        "model {name}: FAILED at iteration {} after {:.2} s",
                        n.load(StdOrdering::Relaxed),
                        start.elapsed().as_secs_f64()
                    );
                }
            });
            default(info);
        }));
    });
}

/// Prints the result line when the model ends.
struct Report {
    name: &'static str,
    bound: Option<usize>,
    iterations: Arc<StdAtomicUsize>,
    start: Instant,
}

impl Drop for Report {
    fn drop(&mut self) {
        let n = self.iterations.load(StdOrdering::Relaxed);
        let t = self.start.elapsed().as_secs_f64();
        let b = self.bound.map_or("none".to_string(), |b| b.to_string());
        CURRENT.with(|c| c.borrow_mut().take());
        if !std::thread::panicking() {
            println!(
                "model {}: {n} iterations in {t:.2} s (preemption bound {b})",
                self.name
            );
        }
    }
}

/// The payload of every model session: counts how often it is dropped, in a
/// counter that outlives the iteration's cache and sessions, and panics on a
/// second drop (a double release would otherwise go on to corrupt memory).
pub struct Tracked {
    counter: *const StdAtomicUsize,
    /// Which session of the model this is (its index in [`Drops`]).
    pub tag: usize,
}

// SAFETY: `counter` points into a `Drops` that every model declares before its
// cache and sessions, so it outlives them on every thread; it is only used
// through an atomic.
unsafe impl Send for Tracked {}
// SAFETY: as above; `&Tracked` gives access to nothing but `tag`.
unsafe impl Sync for Tracked {}

impl Drop for Tracked {
    fn drop(&mut self) {
        // SAFETY: see the `Send` impl.
        let prev = unsafe { &*self.counter }.fetch_add(1, StdOrdering::SeqCst);
        if prev != 0 && !std::thread::panicking() {
            panic!("session {} released twice", self.tag);
        }
    }
}

/// Release counters of one iteration's sessions, by tag.
///
/// Plain std atomics: loom runs every model thread on one OS thread, one at a time,
/// so a read sees every release that has happened in the explored interleaving.
pub struct Drops {
    counts: Box<[StdAtomicUsize]>,
}

impl Drops {
    /// Counters for `n` sessions. Declare this before the cache and the sessions,
    /// so that it is dropped after them.
    pub fn new(n: usize) -> Self {
        Drops {
            counts: (0..n).map(|_| StdAtomicUsize::new(0)).collect(),
        }
    }

    /// A session with tag `tag`, id `id`, context [`CTX`], created at `time`.
    pub fn session(&self, tag: usize, id: &[u8], time: u64) -> Arc<S> {
        let payload = Tracked {
            counter: &self.counts[tag],
            tag,
        };
        Arc::new(Session::new(id, CTX, payload).unwrap().with_time(time))
    }

    /// A session like [`session`](Self::session), made for the context `ctx`.
    pub fn session_in(&self, tag: usize, id: &[u8], ctx: &[u8], time: u64) -> Arc<S> {
        let payload = Tracked {
            counter: &self.counts[tag],
            tag,
        };
        Arc::new(Session::new(id, ctx, payload).unwrap().with_time(time))
    }

    /// How often session `tag` was released (its payload dropped): 0 or 1.
    pub fn of(&self, tag: usize) -> usize {
        self.counts[tag].load(StdOrdering::SeqCst)
    }

    /// Every counter, by tag.
    pub fn all(&self) -> Vec<usize> {
        self.counts
            .iter()
            .map(|c| c.load(StdOrdering::SeqCst))
            .collect()
    }
}

/// A cache of capacity `capacity` (timeout [`TIMEOUT`], mode `SERVER`) on a manual
/// clock at [`NOW`] and a model-local epoch collector. Call inside the model.
pub fn cache(capacity: usize) -> Arc<Cache> {
    cache_with_clock(capacity).0
}

/// [`cache`], with a handle on its manual clock (to move time inside a model).
pub fn cache_with_clock(capacity: usize) -> (Arc<Cache>, ManualClock) {
    let clock = ManualClock::new(NOW);
    let cache = builder(capacity, &clock).build();
    (Arc::new(cache), clock)
}

/// The builder of [`cache`] (capacity, [`TIMEOUT`], `clock`, a model-local
/// collector), for models that add to it (a store).
pub fn builder(capacity: usize, clock: &ManualClock) -> tls_session_cache::Builder<Tracked> {
    SessionCache::builder()
        .capacity(capacity)
        .timeout(Duration::from_secs(TIMEOUT))
        .clock(clock.clone())
        .collector(crossbeam_epoch::Collector::new())
}

/// Asserts the quiescent bookkeeping: `len()`, map slots and index entries all
/// equal `live` (every dead slot was unlinked by whoever made it dead).
#[track_caller]
pub fn assert_quiescent(cache: &Cache, live: usize) {
    assert_eq!(cache.len(), live, "len()");
    assert_eq!(cache.__slots(), live, "map slots (dead ones not unlinked?)");
    assert_eq!(cache.__index_entries(), live, "expiry index entries");
}

/// The tag of the session cached under `id`, through `get` (which counts a hit or
/// a miss: check the stats before calling it). The returned reference is dropped
/// before this returns. Call once the threads joined.
pub fn cached_tag(cache: &Cache, id: &[u8]) -> Option<usize> {
    let timeouts = cache.stats().timeouts;
    let got = cache.get(id, CTX).map(|s| s.payload().tag);
    assert_eq!(
        cache.stats().timeouts,
        timeouts,
        "cached_tag met an expired session"
    );
    got
}
