//! Long-run throughput: what a busy TLS server's session cache sees, with every
//! peer in one process, and one table at the end (not criterion: a plain
//! `harness = false` binary, so each number is one long timed span, not a
//! statistic over many tiny ones).
//!
//! ```text
//! cargo bench --bench longrun                                   # 500 000 ops/thread, 3 runs, 1 and 2 threads
//! cargo bench --bench longrun -- --ops 2000000 --runs 5 --threads 1,2,4
//! cargo bench --bench longrun -- --partitions 4,16,64           # churn only, ours by eviction partitions
//! cargo bench --bench longrun -- --test                         # smoke: 2 000 ops, 1 run, 1 thread
//! ```
//!
//! Flags (`--flag N` or `--flag=N`; unknown flags such as cargo's `--bench` are
//! ignored):
//! - `--ops N`: operations per thread per run (default 500 000);
//! - `--threads 1,2,...`: thread counts (default 1,2);
//! - `--runs R`: repeats; the table shows the median Mops/s (default 3);
//! - `--partitions 4,16,64`: run only the churn workload, ours only, built
//!   with that many eviction partitions, which is also the map's shard count
//!   (one partition per shard), plus the default build for reference;
//! - `--peers ours,openssl,...` and `--workloads churn,...`: subsets;
//! - `--test`: smoke run (criterion's flag, passed by
//!   `cargo bench --benches -- --test`): defaults become 2 000 ops, 1 run,
//!   1 thread, and the partitions table runs once with 4. Without `--bench`
//!   (which `cargo bench` passes), as under `cargo test --benches`, the run is
//!   a smoke run too, as criterion's benches behave. Explicit flags override
//!   the smoke defaults.
//!
//! Setup, per workload, thread count, run and peer (all before timing): a fresh
//! cache with capacity 20 480; 16 384 shared ids (32 bytes, random) with
//! 128-byte payloads; every session object that will be added is made up
//! front, per thread (no object is shared between threads). Each thread makes
//! its per-thread context (OpenSSL's `SSL`), does one lookup (registers with
//! the epoch collector and the like), then waits on a barrier; the timed span
//! runs from the first thread leaving that barrier to the last thread done
//! (each reaches a second barrier when done; the threads read the clock
//! themselves, so a late wake-up of another thread is not counted).
//! Every thread draws its operations from its own splitmix64 stream, the same
//! streams for every peer within a run (one draw per operation, inside the
//! timed span, same cost for every peer).
//!
//! Workloads:
//! - `read_heavy`: 90% get of a uniformly chosen shared id, 5% add of a new
//!   object under a uniformly chosen shared id (a replace, or a re-insert if
//!   it was evicted), 5% add of a brand-new id (this thread's own; once the
//!   cache is full, each of these evicts);
//! - `write_heavy`: the same with 50% get, 25% replace, 25% brand-new;
//! - `churn`: every operation adds a brand-new id to a full cache, so every
//!   add evicts. The cache starts full with each thread's first
//!   `capacity / threads` sessions. Unbounded peers (DashMap, hashbrown) do
//!   their own eviction: each add is followed by the remove of the session
//!   this thread added `capacity / threads` adds earlier, so they stay at
//!   capacity (one churn op = add + remove for them);
//! - `get`: uniform lookups of the shared ids only (all hits).
//!
//! Brand-new ids come from a per-thread pool of pre-made sessions (at most
//! 40 960, cycled; a recycled id was evicted long before by bounded peers,
//! and is a replace for unbounded ones).
//!
//! Peers (see `common/mod.rs`): ours (`SessionCache`), quick_cache 0.7,
//! the substrate (a bare `DashMap<[u8; 32], Arc<_>>` with keyed foldhash,
//! an `Arc` clone per hit), unsynchronized hashbrown (foldhash; one thread
//! only), moka, OpenSSL's internal cache (`SSL_CTX_add_session` /
//! `SSL_has_matching_session_id`) and rustls's `ServerSessionMemoryCache`.
//!
//! Output on stdout: a header (command line, available parallelism, setup),
//! a detailed table (median, min and max Mops/s over the runs, hit rate of the
//! lookups, ours ÷ the peer) and a summary (the medians side by side with
//! ours÷quick_cache, ours÷DashMap and ours÷OpenSSL). Progress goes to stderr.

mod common;

use common::*;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};
use tls_session_cache::SessionCache;

const DEFAULT_OPS: usize = 500_000;
const DEFAULT_RUNS: usize = 3;
const SMOKE_OPS: usize = 2_000;
/// Per-thread pool of brand-new sessions (cycled past this).
const FRESH_POOL: usize = 2 * CAPACITY;

/// Ours with `p` eviction partitions, for `--partitions`.
fn ours_with_partitions(p: usize) -> SessionCache<Payload> {
    SessionCache::builder()
        .capacity(CAPACITY)
        .timeout(Duration::from_secs(TIMEOUT_SECS))
        .partitions(p)
        .build()
}

/// Whether `ours_with_partitions` passes `p` on (printed in the table's title).
const PARTITIONS_WIRED: bool = true;

// ------------------------------------------------------------------ workloads

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    ReadHeavy,
    WriteHeavy,
    Churn,
    Get,
}

impl Workload {
    const ALL: [Workload; 4] = [
        Workload::ReadHeavy,
        Workload::WriteHeavy,
        Workload::Churn,
        Workload::Get,
    ];
    fn name(self) -> &'static str {
        match self {
            Workload::ReadHeavy => "read_heavy",
            Workload::WriteHeavy => "write_heavy",
            Workload::Churn => "churn",
            Workload::Get => "get",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == s)
    }
    /// Percentage of lookups; the rest are adds, half replaces of a shared
    /// id, half brand-new ids (churn is all brand-new adds).
    fn get_pct(self) -> u64 {
        match self {
            Workload::ReadHeavy => 90,
            Workload::WriteHeavy => 50,
            Workload::Churn => 0,
            Workload::Get => 100,
        }
    }
}

// ------------------------------------------------------------------ one timed run

/// What one timed span measured.
#[derive(Clone, Copy, Default)]
struct Sample {
    secs: f64,
    ops: u64,
    gets: u64,
    hits: u64,
}

impl Sample {
    fn mops(&self) -> f64 {
        self.ops as f64 / self.secs / 1e6
    }
}

/// One thread's pre-made sessions.
struct Kit<C: Peer> {
    /// Mixed workloads: two objects per shared id (`2 * idx + toggle`),
    /// alternated, so that every replace installs a different object.
    replace: Vec<C::Obj>,
    /// Mixed workloads: brand-new ids. Churn: this thread's pool, whose first
    /// `lag` are in the cache before timing.
    fresh: Vec<C::Obj>,
}

/// The operation stream of thread `t` in run `run` of workload `w`.
fn stream_seed(w: Workload, t: usize, run: usize) -> u64 {
    0x10A6_0000_0000 ^ ((w as u64) << 24) ^ ((t as u64) << 12) ^ run as u64
}

/// The ids of thread `t`'s brand-new sessions.
fn fresh_seed(w: Workload, t: usize) -> u64 {
    0xF4E5_0000 + (t as u64) * 1_000 + w as u64
}

/// Churn: how many adds ago (by the same thread) the session an unbounded peer
/// removes was added; also each thread's share of the initial fill.
fn churn_lag(threads: usize) -> usize {
    CAPACITY / threads
}

/// Builds a cache with `mk`, makes every object, preloads, then times
/// `threads` threads running `ops` operations each between two barriers.
fn measure_with<C: Peer>(
    mk: &dyn Fn() -> C,
    shared: &[Id],
    w: Workload,
    threads: usize,
    ops: usize,
    run: usize,
) -> Sample {
    let cache = mk();
    let pay = payload(1);
    let lag = churn_lag(threads);
    let kits: Vec<Kit<C>> = (0..threads)
        .map(|t| {
            let p2 = payload(100 + t as u64);
            let replace = match w {
                Workload::ReadHeavy | Workload::WriteHeavy => shared
                    .iter()
                    .flat_map(|id| [cache.make(id, &p2), cache.make(id, &p2)])
                    .collect(),
                Workload::Churn | Workload::Get => Vec::new(),
            };
            let n_fresh = match w {
                Workload::ReadHeavy | Workload::WriteHeavy => ops.min(FRESH_POOL),
                Workload::Churn => (lag + ops).min(FRESH_POOL),
                Workload::Get => 0,
            };
            let fresh = random_ids(n_fresh, fresh_seed(w, t))
                .iter()
                .map(|id| cache.make(id, &p2))
                .collect();
            Kit { replace, fresh }
        })
        .collect();

    // Churn fills to capacity exactly: the remainder of `capacity / threads`
    // first (ids nobody adds again), then the threads' first `lag` sessions
    // interleaved, oldest first, as if they had been running already. The
    // other workloads preload the shared ids.
    let preload: Vec<C::Obj> = if w == Workload::Churn {
        random_ids(CAPACITY - lag * threads, 0xF111)
            .iter()
            .map(|id| cache.make(id, &pay))
            .collect()
    } else {
        shared.iter().map(|id| cache.make(id, &pay)).collect()
    };
    let mut l = cache.local();
    for o in &preload {
        cache.add(&mut l, o);
    }
    if w == Workload::Churn {
        for i in 0..lag {
            for k in &kits {
                cache.add(&mut l, &k.fresh[i]);
            }
        }
    }
    // Settles peers with deferred bookkeeping (moka) before timing.
    black_box(cache.len());
    drop(l);

    // The clock: from the first thread leaving the start barrier to the last
    // one reaching the end barrier, read by the workers themselves (a waiting
    // main thread may be woken late on a loaded machine).
    let start_b = Barrier::new(threads);
    let end_b = Barrier::new(threads);
    let per_thread: Vec<(Instant, Instant, u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = kits
            .iter()
            .enumerate()
            .map(|(t, kit)| {
                let (cache, start_b, end_b) = (&cache, &start_b, &end_b);
                s.spawn(move || {
                    let mut local = cache.local();
                    let mut rng = Rng::new(stream_seed(w, t, run));
                    let mut toggles = vec![0u8; shared.len()];
                    black_box(cache.get(&mut local, &[0u8; ID_LEN]));
                    start_b.wait();
                    let t0 = Instant::now();
                    let (gets, hits) = if w == Workload::Churn {
                        run_churn(cache, &mut local, kit, lag, ops);
                        (0, 0)
                    } else {
                        run_mixed(
                            cache,
                            &mut local,
                            shared,
                            kit,
                            &mut toggles,
                            w.get_pct(),
                            ops,
                            &mut rng,
                        )
                    };
                    let t1 = Instant::now();
                    end_b.wait();
                    (t0, t1, gets, hits)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect()
    });
    let first_start = per_thread.iter().map(|c| c.0).min().expect("threads > 0");
    let last_end = per_thread.iter().map(|c| c.1).max().expect("threads > 0");
    // The cache goes before the objects (OpenSSL's holds references to them).
    drop(cache);
    drop((kits, preload));
    Sample {
        secs: (last_end - first_start).as_secs_f64(),
        ops: (ops * threads) as u64,
        gets: per_thread.iter().map(|c| c.2).sum(),
        hits: per_thread.iter().map(|c| c.3).sum(),
    }
}

/// read_heavy, write_heavy and get: one draw per operation; returns
/// (lookups, hits).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn run_mixed<C: Peer>(
    cache: &C,
    l: &mut C::Local,
    ids: &[Id],
    kit: &Kit<C>,
    toggles: &mut [u8],
    get_pct: u64,
    ops: usize,
    rng: &mut Rng,
) -> (u64, u64) {
    let replace_below = get_pct + (100 - get_pct) / 2;
    let n = ids.len() as u64;
    let (mut gets, mut hits) = (0u64, 0u64);
    let mut next_fresh = 0usize;
    for _ in 0..ops {
        let r = rng.next_u64();
        let roll = ((r & 0xFFFF_FFFF) * 100) >> 32;
        let idx = (((r >> 32) * n) >> 32) as usize;
        if roll < get_pct {
            gets += 1;
            hits += u64::from(cache.get(l, &ids[idx]));
        } else if roll < replace_below {
            let tg = &mut toggles[idx];
            *tg ^= 1;
            cache.add(l, &kit.replace[2 * idx + usize::from(*tg)]);
        } else {
            cache.add(l, &kit.fresh[next_fresh]);
            next_fresh += 1;
            if next_fresh == kit.fresh.len() {
                next_fresh = 0;
            }
        }
    }
    (gets, hits)
}

/// churn: every operation adds the thread's next brand-new session; unbounded
/// peers also remove the one added `lag` adds earlier.
#[inline(never)]
fn run_churn<C: Peer>(cache: &C, l: &mut C::Local, kit: &Kit<C>, lag: usize, ops: usize) {
    let n = kit.fresh.len();
    let (mut add_i, mut rm_i) = (lag % n, 0usize);
    for _ in 0..ops {
        cache.add(l, &kit.fresh[add_i]);
        add_i += 1;
        if add_i == n {
            add_i = 0;
        }
        if !C::BOUNDED {
            black_box(cache.remove(l, &kit.fresh[rm_i]));
            rm_i += 1;
            if rm_i == n {
                rm_i = 0;
            }
        }
    }
}

// ------------------------------------------------------------------ peers

type Measure = fn(&[Id], Workload, usize, usize, usize) -> Sample;

fn measure<C: Peer>(shared: &[Id], w: Workload, threads: usize, ops: usize, run: usize) -> Sample {
    measure_with(&|| C::new(CAPACITY), shared, w, threads, ops, run)
}

struct PeerEntry {
    name: &'static str,
    /// Column title in the summary.
    short: &'static str,
    measure: Measure,
    /// Unsynchronized: one thread only.
    single_thread: bool,
}

const OURS: &str = Ours::NAME;
const QUICK: &str = Quick::NAME;
const DASH: &str = DashFold::NAME;
const OPENSSL: &str = OpenSsl::NAME;

const PEERS: [PeerEntry; 10] = [
    PeerEntry {
        name: Ours::NAME,
        short: "ours",
        measure: measure::<Ours>,
        single_thread: false,
    },
    PeerEntry {
        name: Quick::NAME,
        short: "quick",
        measure: measure::<Quick>,
        single_thread: false,
    },
    PeerEntry {
        name: DashFold::NAME,
        short: "dashmap",
        measure: measure::<DashFold>,
        single_thread: false,
    },
    PeerEntry {
        name: Floor::<true>::NAME,
        short: "floor",
        measure: measure::<Floor<true>>,
        single_thread: false,
    },
    PeerEntry {
        name: Floor::<false>::NAME,
        short: "floor_nopin",
        measure: measure::<Floor<false>>,
        single_thread: false,
    },
    PeerEntry {
        name: FloorIndirect::NAME,
        short: "floor_indirect",
        measure: measure::<FloorIndirect>,
        single_thread: false,
    },
    PeerEntry {
        name: Hashbrown::NAME,
        short: "hb_unsync",
        measure: measure::<Hashbrown>,
        single_thread: true,
    },
    PeerEntry {
        name: Moka::NAME,
        short: "moka",
        measure: measure::<Moka>,
        single_thread: false,
    },
    PeerEntry {
        name: OpenSsl::NAME,
        short: "openssl",
        measure: measure::<OpenSsl>,
        single_thread: false,
    },
    PeerEntry {
        name: Rustls::NAME,
        short: "rustls",
        measure: measure::<Rustls>,
        single_thread: false,
    },
];

// ------------------------------------------------------------------ flags

struct Config {
    ops: usize,
    runs: usize,
    threads: Vec<usize>,
    partitions: Option<Vec<usize>>,
    peers: Option<Vec<String>>,
    workloads: Vec<Workload>,
    smoke: bool,
    ignored: Vec<String>,
}

fn parse_count(flag: &str, v: &str) -> Result<usize, String> {
    match v.replace('_', "").parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag}: expected a positive integer, got {v:?}")),
    }
}

fn parse_counts(flag: &str, v: &str) -> Result<Vec<usize>, String> {
    v.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_count(flag, s.trim()))
        .collect()
}

fn parse_args(args: &[String]) -> Result<Config, String> {
    let (mut ops, mut runs, mut threads) = (None, None, None);
    let (mut partitions, mut peers, mut workloads) = (None, None, None);
    let (mut test, mut bench) = (false, false);
    let mut ignored = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let takes_value = matches!(
            flag,
            "--ops" | "--runs" | "--threads" | "--partitions" | "--peers" | "--workloads"
        );
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))?,
            }
        } else {
            String::new()
        };
        match flag {
            "--ops" => ops = Some(parse_count(flag, &value)?),
            "--runs" => runs = Some(parse_count(flag, &value)?),
            "--threads" => threads = Some(parse_counts(flag, &value)?),
            "--partitions" => partitions = Some(parse_counts(flag, &value)?),
            "--peers" => {
                let list: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
                for p in &list {
                    if !PEERS.iter().any(|e| e.name == p || e.short == p) {
                        return Err(format!("--peers: unknown peer {p:?}"));
                    }
                }
                peers = Some(list);
            }
            "--workloads" => {
                let list = value
                    .split(',')
                    .map(|s| {
                        Workload::parse(s.trim())
                            .ok_or_else(|| format!("--workloads: unknown workload {s:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                workloads = Some(list);
            }
            "--test" => test = true,
            "--bench" => bench = true,
            _ => ignored.push(a.clone()),
        }
    }
    let smoke = test || !bench;
    Ok(Config {
        ops: ops.unwrap_or(if smoke { SMOKE_OPS } else { DEFAULT_OPS }),
        runs: runs.unwrap_or(if smoke { 1 } else { DEFAULT_RUNS }),
        threads: threads.unwrap_or_else(|| if smoke { vec![1] } else { vec![1, 2] }),
        partitions,
        peers,
        workloads: workloads.unwrap_or_else(|| Workload::ALL.to_vec()),
        smoke,
        ignored,
    })
}

// ------------------------------------------------------------------ results

struct Row {
    w: Workload,
    threads: usize,
    label: String,
    samples: Vec<Sample>,
}

impl Row {
    fn mops(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.samples.iter().map(Sample::mops).collect();
        v.sort_by(f64::total_cmp);
        v
    }
    fn median(&self) -> f64 {
        let v = self.mops();
        let m = v.len() / 2;
        if v.len() % 2 == 1 {
            v[m]
        } else {
            (v[m - 1] + v[m]) / 2.0
        }
    }
    fn hit_pct(&self) -> Option<f64> {
        let gets: u64 = self.samples.iter().map(|s| s.gets).sum();
        let hits: u64 = self.samples.iter().map(|s| s.hits).sum();
        (gets > 0).then(|| 100.0 * hits as f64 / gets as f64)
    }
}

fn record(rows: &mut Vec<Row>, w: Workload, threads: usize, label: &str, s: Sample) {
    match rows
        .iter_mut()
        .find(|r| r.w == w && r.threads == threads && r.label == label)
    {
        Some(r) => r.samples.push(s),
        None => rows.push(Row {
            w,
            threads,
            label: label.to_string(),
            samples: vec![s],
        }),
    }
}

fn median_of(rows: &[Row], w: Workload, threads: usize, label: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.w == w && r.threads == threads && r.label == label)
        .map(Row::median)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_string(),
    }
}

fn shell_quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./=,:+-@%".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

// ------------------------------------------------------------------ main

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let cfg = match parse_args(&argv[1..]) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("longrun: {e}");
            std::process::exit(2);
        }
    };
    let t_start = Instant::now();
    let parallelism = std::thread::available_parallelism().map_or(0, |n| n.get());
    let thread_list = |v: &[usize]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };

    println!(
        "# longrun: {}",
        argv.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("# available_parallelism: {parallelism}");
    println!(
        "# mode: {}; ops/thread {}; runs {} (median shown); threads {}",
        if cfg.smoke {
            "smoke (--test, or no --bench)"
        } else {
            "full"
        },
        cfg.ops,
        cfg.runs,
        thread_list(&cfg.threads)
    );
    println!(
        "# setup: {PRELOAD} shared ids of {ID_LEN} B, {PAYLOAD_LEN}-byte payloads, capacity {CAPACITY}; \
         objects made before timing, per thread; clock: first thread out of the start barrier to last thread done"
    );
    if !cfg.ignored.is_empty() {
        println!("# ignored arguments: {}", cfg.ignored.join(" "));
    }

    let shared = random_ids(PRELOAD, 0x1D5);

    // The main table, unless only the partitions were asked for.
    if cfg.partitions.is_none() {
        let peers: Vec<&PeerEntry> = PEERS
            .iter()
            .filter(|p| {
                cfg.peers
                    .as_ref()
                    .is_none_or(|l| l.iter().any(|x| x == p.name || x == p.short))
            })
            .collect();
        let rows = main_table(&cfg, &shared, &peers);
        print_main(&cfg, &rows, &peers);
    }

    let partitions = match (&cfg.partitions, cfg.smoke) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(vec![4]),
        (None, false) => None,
    };
    if let Some(parts) = partitions {
        partitions_table(&cfg, &shared, &parts);
    }
    println!("# total wall time {:.1} s", t_start.elapsed().as_secs_f64());
}

/// Every workload × thread count × run × peer, peers back to back inside a run
/// so that a change in the machine's load hits neighbours alike.
fn main_table(cfg: &Config, shared: &[Id], peers: &[&PeerEntry]) -> Vec<Row> {
    let mut rows = Vec::new();
    for &w in &cfg.workloads {
        for &t in &cfg.threads {
            for run in 0..cfg.runs {
                for p in peers {
                    if p.single_thread && t != 1 {
                        continue;
                    }
                    let s = (p.measure)(shared, w, t, cfg.ops, run);
                    eprintln!(
                        "  [{} t={t} run {}/{}] {:<18} {:>8.2} Mops/s",
                        w.name(),
                        run + 1,
                        cfg.runs,
                        p.name,
                        s.mops()
                    );
                    record(&mut rows, w, t, p.name, s);
                }
            }
        }
    }
    rows
}

fn print_main(cfg: &Config, rows: &[Row], peers: &[&PeerEntry]) {
    println!();
    println!(
        "{:<12} {:>3}  {:<18} {:>8} {:>8} {:>8} {:>7} {:>8}",
        "workload", "thr", "peer", "Mops/s", "min", "max", "hit%", "ours÷"
    );
    for &w in &cfg.workloads {
        for &t in &cfg.threads {
            let ours = median_of(rows, w, t, OURS);
            for p in peers {
                let Some(r) = rows
                    .iter()
                    .find(|r| r.w == w && r.threads == t && r.label == p.name)
                else {
                    continue;
                };
                let v = r.mops();
                println!(
                    "{:<12} {:>3}  {:<18} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>8}",
                    w.name(),
                    t,
                    p.name,
                    r.median(),
                    v[0],
                    v[v.len() - 1],
                    r.hit_pct().map_or("-".to_string(), |h| format!("{h:.1}")),
                    if p.name == OURS {
                        String::new()
                    } else {
                        ratio(ours, Some(r.median()))
                    }
                );
            }
        }
    }

    println!();
    println!("# summary: median Mops/s; ratios are ours ÷ peer (above 1: ours faster)");
    let mut head = format!("{:<12} {:>3}", "workload", "thr");
    for p in peers {
        head += &format!(" {:>9}", p.short);
    }
    head += &format!(" {:>11} {:>11} {:>11}", "÷quick", "÷dashmap", "÷openssl");
    println!("{head}");
    for &w in &cfg.workloads {
        for &t in &cfg.threads {
            let mut line = format!("{:<12} {:>3}", w.name(), t);
            for p in peers {
                line += &format!(
                    " {:>9}",
                    median_of(rows, w, t, p.name).map_or("-".to_string(), |m| format!("{m:.2}"))
                );
            }
            let ours = median_of(rows, w, t, OURS);
            for other in [QUICK, DASH, OPENSSL] {
                line += &format!(" {:>11}", ratio(ours, median_of(rows, w, t, other)));
            }
            println!("{line}");
        }
    }
    println!(
        "# churn: unbounded peers ({DASH}, {}) add and remove per op; hit% counts lookups only",
        Hashbrown::NAME
    );
}

/// `--partitions`: churn only, ours only, by eviction partitions, with the
/// default build as the reference row.
fn partitions_table(cfg: &Config, shared: &[Id], parts: &[usize]) {
    let w = Workload::Churn;
    let mut rows = Vec::new();
    let labels: Vec<(String, Option<usize>)> = std::iter::once(("default".to_string(), None))
        .chain(parts.iter().map(|&p| (format!("partitions={p}"), Some(p))))
        .collect();
    for &t in &cfg.threads {
        for run in 0..cfg.runs {
            for (label, p) in &labels {
                let s = match p {
                    None => measure::<Ours>(shared, w, t, cfg.ops, run),
                    Some(p) => {
                        let p = *p;
                        measure_with(
                            &|| Ours(ours_with_partitions(p)),
                            shared,
                            w,
                            t,
                            cfg.ops,
                            run,
                        )
                    }
                };
                eprintln!(
                    "  [churn/partitions t={t} run {}/{}] {label:<16} {:>8.2} Mops/s",
                    run + 1,
                    cfg.runs,
                    s.mops()
                );
                record(&mut rows, w, t, label, s);
            }
        }
    }
    println!();
    println!(
        "# churn, ours by eviction partitions{}",
        if PARTITIONS_WIRED {
            ""
        } else {
            " (NOT WIRED YET: Builder::partitions is commented out in ours_with_partitions, every row is the default build)"
        }
    );
    println!(
        "{:>3}  {:<16} {:>8} {:>8} {:>8} {:>9}",
        "thr", "build", "Mops/s", "min", "max", "÷default"
    );
    for &t in &cfg.threads {
        let base = median_of(&rows, w, t, "default");
        for (label, _) in &labels {
            let Some(r) = rows.iter().find(|r| r.threads == t && &r.label == label) else {
                continue;
            };
            let v = r.mops();
            println!(
                "{:>3}  {:<16} {:>8.2} {:>8.2} {:>8.2} {:>9}",
                t,
                label,
                r.median(),
                v[0],
                v[v.len() - 1],
                ratio(Some(r.median()), base)
            );
        }
    }
}
