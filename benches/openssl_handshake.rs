//! Resumed TLS handshakes per second on one rust-openssl server context:
//! OpenSSL's internal session cache against ours (the adapter), 1, 2 and 4
//! threads, TLS 1.2 session ids and TLS 1.3 stateful tickets (`NO_TICKET`).
//!
//! ```text
//! cargo bench --features openssl --bench openssl_handshake
//! TSC_BENCH_QUICK=1 cargo bench --features openssl --bench openssl_handshake   # short runs
//! ```
//!
//! Client and server run in the same thread over an in-memory pipe, so the
//! figure is handshake CPU plus the cache, without sockets. Every thread drives
//! its own client/server pairs; all servers share one `SslContext`, and so one
//! session cache: the contended resource being compared. Each thread resumes the
//! session it got from one full handshake, over and over (TLS 1.3: every resumed
//! handshake also stores one new ticket's session, so the cache fills up and
//! evicts, in both caches alike).

#[path = "../examples/openssl_server.rs"]
#[allow(dead_code)]
mod openssl_server;

use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslMethod, SslOptions, SslSession, SslStream, SslVerifyMode,
    SslVersion,
};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use tls_session_cache::integrations::openssl::install;
use tls_session_cache::SessionCache;

type Queue = Rc<RefCell<VecDeque<u8>>>;

/// One end of an in-memory duplex pipe; reads would block when empty.
struct End {
    rx: Queue,
    tx: Queue,
}

impl Read for End {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut q = self.rx.borrow_mut();
        if q.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(q.len());
        for (b, x) in buf.iter_mut().zip(q.drain(..n)) {
            *b = x;
        }
        Ok(n)
    }
}

impl Write for End {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.borrow_mut().extend(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn pipe() -> (End, End) {
    let (a, b): (Queue, Queue) = Default::default();
    (
        End {
            rx: a.clone(),
            tx: b.clone(),
        },
        End { rx: b, tx: a },
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Tls {
    V12,
    V13,
}

fn server_ctx(ours: bool) -> SslContext {
    let (key, cert) = openssl_server::self_signed().unwrap();
    let mut b = SslContext::builder(SslMethod::tls_server()).unwrap();
    b.set_private_key(&key).unwrap();
    b.set_certificate(&cert).unwrap();
    b.set_options(SslOptions::NO_TICKET);
    if ours {
        install(&mut b, Arc::new(SessionCache::new()), b"bench").unwrap();
    } else {
        b.set_session_id_context(b"bench").unwrap();
    }
    b.build()
}

fn client_ctx(tls: Tls) -> SslContext {
    let v = match tls {
        Tls::V12 => SslVersion::TLS1_2,
        Tls::V13 => SslVersion::TLS1_3,
    };
    let mut b = SslContext::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_min_proto_version(Some(v)).unwrap();
    b.set_max_proto_version(Some(v)).unwrap();
    b.set_options(SslOptions::NO_TICKET);
    b.build()
}

/// One handshake (offering `offer`), then a byte each way (so a TLS 1.3 client
/// has the server's tickets) and a clean close on both sides. Returns whether
/// it was resumed and the client's session.
fn handshake(
    server: &SslContext,
    client: &SslContext,
    offer: Option<&SslSession>,
) -> (bool, SslSession) {
    let (ce, se) = pipe();
    let mut cssl = Ssl::new(client).unwrap();
    if let Some(s) = offer {
        // SAFETY: the session was made by this client context.
        unsafe { cssl.set_session(s).unwrap() };
    }
    cssl.set_connect_state();
    let mut sssl = Ssl::new(server).unwrap();
    sssl.set_accept_state();
    let mut c = SslStream::new(cssl, ce).unwrap();
    let mut s = SslStream::new(sssl, se).unwrap();
    let mut done = (false, false);
    for _ in 0..64 {
        if !done.0 {
            done.0 = step(c.do_handshake());
        }
        if !done.1 {
            done.1 = step(s.do_handshake());
        }
        if done == (true, true) {
            break;
        }
    }
    assert_eq!(done, (true, true), "handshake did not finish");
    s.ssl_write(b"x").unwrap();
    let mut b = [0u8; 1];
    c.ssl_read(&mut b).unwrap();
    let reused = s.ssl().session_reused();
    let session = c.ssl().session().unwrap().to_owned();
    // Clean closes: an `SSL` freed without one removes its session.
    let _ = c.shutdown();
    let _ = s.shutdown();
    (reused, session)
}

fn step(r: Result<(), openssl::ssl::Error>) -> bool {
    match r {
        Ok(()) => true,
        Err(e) if e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE => false,
        Err(e) => panic!("handshake failed: {e}"),
    }
}

/// Resumed handshakes per second with `threads` threads for `span`.
fn run(ours: bool, tls: Tls, threads: usize, span: Duration) -> f64 {
    let server = server_ctx(ours);
    let client = client_ctx(tls);
    let barrier = Barrier::new(threads + 1);
    let (total, elapsed) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (server, client, barrier) = (&server, &client, &barrier);
                scope.spawn(move || {
                    let (_, session) = handshake(server, client, None);
                    // Warm up.
                    for _ in 0..20 {
                        assert!(handshake(server, client, Some(&session)).0);
                    }
                    barrier.wait();
                    let start = Instant::now();
                    let mut n = 0u64;
                    while start.elapsed() < span {
                        for _ in 0..16 {
                            let (reused, _) = handshake(server, client, Some(&session));
                            assert!(reused);
                        }
                        n += 16;
                    }
                    (n, start.elapsed())
                })
            })
            .collect();
        barrier.wait();
        let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        let total: u64 = results.iter().map(|r| r.0).sum();
        let elapsed = results.iter().map(|r| r.1).max().unwrap();
        (total, elapsed)
    });
    total as f64 / elapsed.as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects rows by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let quick = std::env::var("TSC_BENCH_QUICK").is_ok_and(|v| v == "1");
    let span = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("resumed handshakes per second ({cores} cores, {span:?} per cell)");
    println!();
    println!("| protocol | threads | OpenSSL internal cache | tls-session-cache | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for (tls, name) in [
        (Tls::V12, "TLS 1.2 session id"),
        (Tls::V13, "TLS 1.3 stateful ticket"),
    ] {
        for threads in [1, 2, 4] {
            let row = format!("{name} x{threads}");
            if filter.as_deref().is_some_and(|f| !row.contains(f)) {
                continue;
            }
            let internal = run(false, tls, threads, span);
            let ours = run(true, tls, threads, span);
            println!(
                "| {name} | {threads} | {internal:.0} | {ours:.0} | {:.2} |",
                ours / internal
            );
        }
    }
}
