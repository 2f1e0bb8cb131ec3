//! Throughput of every cache a TLS server would pick, side by side.
//!
//! One criterion group per workload; one `BenchmarkId` per implementation, with
//! the thread count as its parameter (`<workload>/<impl>/<threads>`). Each
//! iteration is one cache operation per thread; `Throughput::Elements(threads)`
//! makes criterion report total operations per second.
//!
//! Workloads (32-byte random ids, 128-byte payloads, 16 384 ids preloaded,
//! capacity 20 480):
//! - `read_heavy`: 90% get, 9% add of a new object under an existing id
//!   (replace), 1% remove;
//! - `write_heavy`: 50% get, 40% add (replace), 10% remove;
//! - `churn`: a full cache, 50% adds of new ids (each evicts), 50% lookups of
//!   one of the thread's last 1 024 adds (capacity-bounded peers only);
//! - `hot_keys`: lookups only, Zipf(s = 1.0) over the preloaded ids;
//! - `get`: lookups only, uniform over the preloaded ids (the single-thread
//!   get against the unsynchronized ceiling).
//!
//! Multi-thread timing: the threads are spawned and make their per-thread state
//! before the first barrier; the clock runs between the two barriers only.
//!
//! Environment: `TSC_BENCH_QUICK=1` (short warm-up and measurement),
//! `TSC_BENCH_PLOTS=1` (criterion's HTML plots; off by default, they cost
//! seconds per benchmark on a loaded machine),
//! `TSC_BENCH_THREADS=1,2,4` (thread counts), `TSC_BENCH_PEERS=ours,openssl`
//! (a subset of implementations), `TSC_BENCH_WORKLOADS=read_heavy,...`.

mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// Length of each thread's precomputed operation stream (cycled).
const OPS: usize = 1 << 16;
/// Churn: each thread's pool of fresh sessions (cycled; twice the capacity, so
/// a session comes round again only long after it was evicted).
const CHURN_POOL: usize = 2 * CAPACITY;
/// Churn: lookups pick one of the thread's last this-many adds.
const RECENT: usize = 1_024;

const GET: u32 = 0;
const ADD: u32 = 1;
const REMOVE: u32 = 2;
const IDX_MASK: u32 = (1 << 30) - 1;

fn op(kind: u32, idx: usize) -> u32 {
    (kind << 30) | idx as u32
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    ReadHeavy,
    WriteHeavy,
    Churn,
    HotKeys,
    Get,
}

impl Workload {
    const ALL: [Workload; 5] = [
        Workload::ReadHeavy,
        Workload::WriteHeavy,
        Workload::Churn,
        Workload::HotKeys,
        Workload::Get,
    ];
    fn name(self) -> &'static str {
        match self {
            Workload::ReadHeavy => "read_heavy",
            Workload::WriteHeavy => "write_heavy",
            Workload::Churn => "churn",
            Workload::HotKeys => "hot_keys",
            Workload::Get => "get",
        }
    }
    /// (get, add) percentages; the rest removes.
    fn mix(self) -> (usize, usize) {
        match self {
            Workload::ReadHeavy => (90, 9),
            Workload::WriteHeavy => (50, 40),
            Workload::Churn => (50, 50),
            Workload::HotKeys | Workload::Get => (100, 0),
        }
    }
}

/// The operation stream of thread `t`.
fn ops_for(w: Workload, t: usize) -> Vec<u32> {
    let mut rng = Rng::new(0xC0FF_EE00 + (t as u64) * 7919 + w as u64 * 104_729);
    let zipf = (w == Workload::HotKeys).then(|| Zipf::new(PRELOAD, 1.0));
    // Zipf ranks land on ids through a fixed random permutation, so the hot
    // ids are spread over shards like any others.
    let perm = {
        let mut p: Vec<usize> = (0..PRELOAD).collect();
        let mut r = Rng::new(42);
        for i in (1..p.len()).rev() {
            p.swap(i, r.below(i + 1));
        }
        p
    };
    let (g, a) = w.mix();
    (0..OPS)
        .map(|_| {
            let roll = rng.below(100);
            let kind = if roll < g {
                GET
            } else if roll < g + a {
                ADD
            } else {
                REMOVE
            };
            let idx = match (w, kind) {
                (Workload::Churn, GET) => rng.below(RECENT),
                (Workload::Churn, _) => 0,
                (Workload::HotKeys, _) => perm[zipf.as_ref().unwrap().sample(&mut rng)],
                _ => rng.below(PRELOAD),
            };
            op(kind, idx)
        })
        .collect()
}

/// What one thread keeps between samples.
struct ThreadState<C: Peer> {
    local: C::Local,
    ops: Vec<u32>,
    cursor: usize,
    /// Mixed workloads: two objects per preloaded id (`2 * idx + toggle`),
    /// alternated so every add is a replace by a different object (or a
    /// re-add after a remove). Churn: `CHURN_POOL` fresh sessions.
    pool: Vec<C::Obj>,
    /// Churn: the ids of `pool`.
    pool_ids: Vec<Id>,
    toggles: Vec<u8>,
    adds: usize,
}

struct Setup<C: Peer> {
    cache: C,
    ids: Vec<Id>,
    _preload: Vec<C::Obj>,
    threads: Vec<Mutex<ThreadState<C>>>,
    w: Workload,
}

fn setup<C: Peer>(w: Workload, threads: usize) -> Setup<C> {
    let cache = C::new(CAPACITY);
    let pay = payload(1);
    let (ids, preload) = if w == Workload::Churn {
        // Fill to capacity with ids that no thread will add again.
        let ids = random_ids(CAPACITY, 0xC4_0000);
        let objs: Vec<_> = ids.iter().map(|id| cache.make(id, &pay)).collect();
        (ids, objs)
    } else {
        let ids = random_ids(PRELOAD, 0x1D5);
        let objs: Vec<_> = ids.iter().map(|id| cache.make(id, &pay)).collect();
        (ids, objs)
    };
    let mut l = cache.local();
    for o in &preload {
        cache.add(&mut l, o);
    }
    let threads = (0..threads)
        .map(|t| {
            let (pool, pool_ids, toggles) = match w {
                Workload::ReadHeavy | Workload::WriteHeavy => {
                    let p2 = payload(100 + t as u64);
                    let pool = ids
                        .iter()
                        .flat_map(|id| [cache.make(id, &p2), cache.make(id, &p2)])
                        .collect();
                    (pool, Vec::new(), vec![0u8; ids.len()])
                }
                Workload::Churn => {
                    let pids = random_ids(CHURN_POOL, 0xF00D_0000 + t as u64);
                    let pool = pids.iter().map(|id| cache.make(id, &pay)).collect();
                    (pool, pids, Vec::new())
                }
                Workload::HotKeys | Workload::Get => (Vec::new(), Vec::new(), Vec::new()),
            };
            Mutex::new(ThreadState {
                local: cache.local(),
                ops: ops_for(w, t),
                cursor: 0,
                pool,
                pool_ids,
                toggles,
                adds: 0,
            })
        })
        .collect();
    Setup {
        cache,
        ids,
        _preload: preload,
        threads,
        w,
    }
}

/// Runs `iters` operations of thread `t`'s stream.
#[inline(never)]
fn run_ops<C: Peer>(s: &Setup<C>, st: &mut ThreadState<C>, iters: u64) {
    let cache = &s.cache;
    let ThreadState {
        local,
        ops,
        cursor,
        pool,
        pool_ids,
        toggles,
        adds,
    } = st;
    if s.w == Workload::Churn {
        for _ in 0..iters {
            let o = ops[*cursor];
            *cursor = (*cursor + 1) & (OPS - 1);
            if o >> 30 == GET {
                let back = (o & IDX_MASK) as usize;
                let k = (*adds + CHURN_POOL - 1 - back) % CHURN_POOL;
                black_box(cache.get(local, &pool_ids[k]));
            } else {
                cache.add(local, &pool[*adds % CHURN_POOL]);
                *adds += 1;
            }
        }
        return;
    }
    for _ in 0..iters {
        let o = ops[*cursor];
        *cursor = (*cursor + 1) & (OPS - 1);
        let idx = (o & IDX_MASK) as usize;
        match o >> 30 {
            GET => {
                black_box(cache.get(local, &s.ids[idx]));
            }
            ADD => {
                let tg = &mut toggles[idx];
                *tg ^= 1;
                cache.add(local, &pool[2 * idx + usize::from(*tg)]);
            }
            _ => {
                black_box(cache.remove(local, &pool[2 * idx]));
            }
        }
    }
}

/// One timed sample: `threads` threads each run `iters` operations between two
/// barriers; returns the span from the first worker leaving the start barrier to
/// the last worker finishing, as the workers themselves read the clock.
///
/// An earlier version let the main thread read the clock after the start barrier:
/// with as many workers as cores the main thread was often not scheduled until a
/// worker blocked, so it started its clock late and short samples looked much
/// faster than they were (this hid the collapse of lock-bound peers at 2 threads
/// that the long-run harness, `benches/longrun.rs`, shows).
fn sample<C: Peer>(s: &Setup<C>, iters: u64) -> Duration {
    let n = s.threads.len();
    if n == 1 {
        let mut st = s.threads[0].lock().unwrap();
        let start = Instant::now();
        run_ops(s, &mut st, iters);
        return start.elapsed();
    }
    let start_b = Barrier::new(n);
    let spans: Mutex<Vec<(Instant, Instant)>> = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|scope| {
        for t in 0..n {
            let (start_b, spans) = (&start_b, &spans);
            scope.spawn(move || {
                let mut st = s.threads[t].lock().unwrap();
                // Register this thread with the epoch collector, thread-locals
                // and the like before timing: one lookup.
                let first = s.ids[0];
                black_box(s.cache.get(&mut st.local, &first));
                start_b.wait();
                let start = Instant::now();
                run_ops(s, &mut st, iters);
                let end = Instant::now();
                spans.lock().unwrap().push((start, end));
            });
        }
    });
    let spans = spans.into_inner().unwrap();
    let first = spans.iter().map(|s| s.0).min().expect("n > 0 workers");
    let last = spans.iter().map(|s| s.1).max().expect("n > 0 workers");
    last - first
}

fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
}

fn thread_counts() -> Vec<usize> {
    env_list("TSC_BENCH_THREADS")
        .map(|v| v.iter().map(|s| s.parse().expect("thread count")).collect())
        .unwrap_or_else(|| vec![1, 2, 4])
}

fn wanted(list: &Option<Vec<String>>, name: &str) -> bool {
    list.as_ref().is_none_or(|l| l.iter().any(|x| x == name))
}

/// Benchmarks peer `C` on workload `w` at `t` threads (skipped where the
/// workload or thread count does not apply to it).
fn bench_one<C: Peer>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    w: Workload,
    t: usize,
) {
    if !wanted(&env_list("TSC_BENCH_PEERS"), C::NAME) {
        return;
    }
    if w == Workload::Churn && !C::BOUNDED {
        return;
    }
    if (C::NAME == Hashbrown::NAME || w == Workload::Get) && t != 1 {
        return;
    }
    let s = setup::<C>(w, t);
    group.throughput(Throughput::Elements(t as u64));
    group.bench_with_input(BenchmarkId::new(C::NAME, t), &s, |b, s| {
        b.iter_custom(|iters| sample(s, iters))
    });
}

/// One group per workload; inside it, for each thread count, every peer back
/// to back (so that a change in the machine's load hits neighbours alike).
fn bench_workload(c: &mut Criterion, w: Workload) {
    let mut group = c.benchmark_group(w.name());
    configure(&mut group);
    for t in thread_counts() {
        bench_one::<Ours>(&mut group, w, t);
        bench_one::<OpenSsl>(&mut group, w, t);
        bench_one::<Rustls>(&mut group, w, t);
        bench_one::<Moka>(&mut group, w, t);
        bench_one::<Quick>(&mut group, w, t);
        bench_one::<Dash>(&mut group, w, t);
        bench_one::<MutexMap>(&mut group, w, t);
        bench_one::<Hashbrown>(&mut group, w, t);
    }
    group.finish();
}

fn quick() -> bool {
    std::env::var("TSC_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn configure(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    if quick() {
        g.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_millis(1_000))
            .sample_size(10);
    } else {
        g.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20);
    }
}

fn all(c: &mut Criterion) {
    let workloads = env_list("TSC_BENCH_WORKLOADS");
    for w in Workload::ALL {
        if wanted(&workloads, w.name()) {
            bench_workload(c, w);
        }
    }
}

/// Criterion's HTML plots cost seconds per benchmark on a loaded 2-core
/// machine: on only with `TSC_BENCH_PLOTS=1`.
fn config() -> Criterion {
    let c = Criterion::default().nresamples(20_000);
    if std::env::var("TSC_BENCH_PLOTS").is_ok_and(|v| v == "1") {
        c
    } else {
        c.without_plots()
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = all
}
criterion_main!(benches);
