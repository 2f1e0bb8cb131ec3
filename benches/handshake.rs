//! Real rustls handshakes (in memory) per second: `RustlsStore` vs rustls's
//! `ServerSessionMemoryCache`.
//!
//! ```sh
//! cargo bench --bench handshake --features rustls              # full run
//! TSC_BENCH_QUICK=1 cargo bench --bench handshake --features rustls
//! cargo bench --bench handshake --features rustls -- --test    # smoke: each once
//! ```
//!
//! - `resumed_tls12`, `resumed_tls13`: every connection resumes (TLS 1.2 session
//!   ids: `get`; TLS 1.3 stateful tickets: `take` plus two `put`s). Both stores
//!   have capacity 20 480 and are filled to it before measuring (a busy server's
//!   steady state), so TLS 1.3's `put`s evict.
//! - `churn_tls12`, `churn_tls13`: clients without resumption: every connection is
//!   a full handshake that stores a fresh session (TLS 1.3: two tickets) into the
//!   full cache, evicting as many.
//!
//! - `store_ticket_cycle`: the store alone, one thread: take a random live ticket
//!   from the full cache and put a fresh one (what a TLS 1.3 resumption asks).
//!
//! The handshake groups at 1, 2 and 4 threads; every thread runs both ends of its connections (no
//! sockets). Throughput is handshakes per second over all threads.
//! `TSC_BENCH_QUICK=1` shortens warm-up and measurement.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::pki_types::ServerName;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use rustls::{
    ClientConfig, ClientConnection, HandshakeKind, ServerConfig, ServerConnection,
    SupportedProtocolVersion,
};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use tls_session_cache::RustlsStore;

// The in-memory handshake harness shared with the tests (certificate, provider,
// server config).
#[path = "../tests/tls_support/mod.rs"]
mod tls_support;
use tls_support::{pki, provider, server_config};

const CAPACITY: usize = 20_480;
const THREADS: [usize; 3] = [1, 2, 4];

#[derive(Clone, Copy)]
enum Impl {
    Ours,
    Rustls,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Ours => "tls-session-cache",
            Impl::Rustls => "rustls-memory-cache",
        }
    }

    /// A store of capacity `CAPACITY`, filled to it with unrelated sessions.
    fn full_store(self) -> Arc<dyn StoresServerSessions> {
        let store: Arc<dyn StoresServerSessions> = match self {
            Impl::Ours => RustlsStore::new(CAPACITY),
            Impl::Rustls => ServerSessionMemoryCache::new(CAPACITY),
        };
        for i in 0..CAPACITY as u64 {
            let mut key = vec![0xee; 32];
            key[..8].copy_from_slice(&i.to_le_bytes());
            assert!(store.put(key, vec![0x5a; 100]));
        }
        store
    }
}

fn client_config(version: &'static SupportedProtocolVersion, resume: bool) -> Arc<ClientConfig> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(pki().roots.clone())
        .with_no_client_auth();
    cfg.resumption = if resume {
        Resumption::store(Arc::new(ClientSessionMemoryCache::new(64)))
    } else {
        // The server still stores a session (TLS 1.2) or two tickets (TLS 1.3).
        Resumption::disabled()
    };
    Arc::new(cfg)
}

/// One connection, both ends in this thread, through in-memory buffers,
/// including the TLS 1.3 tickets sent after the handshake.
fn connect(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    buf: &mut Vec<u8>,
) -> HandshakeKind {
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = ClientConnection::new(client.clone(), name).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    loop {
        buf.clear();
        while c.wants_write() {
            c.write_tls(buf).unwrap();
        }
        let mut moved = !buf.is_empty();
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets().unwrap();
        }
        buf.clear();
        while s.wants_write() {
            s.write_tls(buf).unwrap();
        }
        moved |= !buf.is_empty();
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets().unwrap();
        }
        if !moved {
            break;
        }
    }
    c.handshake_kind().unwrap()
}

fn quick() -> bool {
    std::env::var_os("TSC_BENCH_QUICK").is_some_and(|v| v != "0")
}

/// `threads` threads, each running `iters` connections between barriers.
fn run_threads(
    server: &Arc<ServerConfig>,
    clients: &[Arc<ClientConfig>],
    iters: u64,
    expect: HandshakeKind,
) -> Duration {
    let threads = clients.len();
    let start = Barrier::new(threads + 1);
    let end = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for client in clients {
            let (start, end) = (&start, &end);
            scope.spawn(move || {
                let mut buf = Vec::with_capacity(8 << 10);
                start.wait();
                for _ in 0..iters {
                    let kind = connect(client, server, &mut buf);
                    assert_eq!(kind, expect, "every connection must be {expect:?}");
                    black_box(kind);
                }
                end.wait();
            });
        }
        start.wait();
        let t0 = Instant::now();
        end.wait();
        t0.elapsed()
    })
}

fn bench_group(
    c: &mut Criterion,
    group: &str,
    version: &'static SupportedProtocolVersion,
    resume: bool,
) {
    let mut g = c.benchmark_group(group);
    if quick() {
        g.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .sample_size(10);
    } else {
        g.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(20);
    }
    for threads in THREADS {
        g.throughput(Throughput::Elements(threads as u64));
        for imp in [Impl::Ours, Impl::Rustls] {
            let server = server_config(version, imp.full_store());
            let clients: Vec<_> = (0..threads)
                .map(|_| client_config(version, resume))
                .collect();
            let mut buf = Vec::new();
            let expect = if resume {
                for client in &clients {
                    // Prime: the full handshake that gives each client its session.
                    assert_eq!(connect(client, &server, &mut buf), HandshakeKind::Full);
                }
                HandshakeKind::Resumed
            } else {
                HandshakeKind::Full
            };
            g.bench_function(BenchmarkId::new(imp.name(), format!("{threads}t")), |b| {
                b.iter_custom(|iters| run_threads(&server, &clients, iters, expect))
            });
        }
    }
    g.finish();
}

fn resumed(c: &mut Criterion) {
    bench_group(c, "resumed_tls12", &rustls::version::TLS12, true);
    bench_group(c, "resumed_tls13", &rustls::version::TLS13, true);
}

fn churn(c: &mut Criterion) {
    bench_group(c, "churn_tls12", &rustls::version::TLS12, false);
    bench_group(c, "churn_tls13", &rustls::version::TLS13, false);
}

/// The store alone, no handshake: what one TLS 1.3 resumption asks of it in a
/// full cache (take a random live ticket, put a fresh one), single-threaded.
fn store_ticket_cycle(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_ticket_cycle");
    if quick() {
        g.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
    }
    g.throughput(Throughput::Elements(1));
    for imp in [Impl::Ours, Impl::Rustls] {
        let store = imp.full_store();
        let mut live: Vec<u64> = (0..CAPACITY as u64).collect();
        let mut next = CAPACITY as u64;
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let key = |i: u64| {
            let mut k = vec![0xee; 32];
            k[..8].copy_from_slice(&i.to_le_bytes());
            k
        };
        g.bench_function(imp.name(), |b| {
            b.iter(|| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let j = (rng % CAPACITY as u64) as usize;
                let got = store.take(&key(live[j]));
                assert!(got.is_some());
                assert!(store.put(key(next), vec![0x5a; 100]));
                live[j] = next;
                next += 1;
            })
        });
    }
    g.finish();
}

criterion_group!(benches, resumed, churn, store_ticket_cycle);
criterion_main!(benches);
