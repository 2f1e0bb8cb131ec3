//! The `openssl_server` example checked with the real OpenSSL command-line client.
//!
//! The server runs in-process (the example's own `server_context` and `serve`,
//! included from `examples/openssl_server.rs`) on a free port of 127.0.0.1; the
//! system `openssl s_client` connects to it. Every child process is killed after
//! [`CLIENT_TIMEOUT`].
#![cfg(feature = "openssl")]

mod openssl_support;

use openssl_support::openssl_server::{handle, serve, server_context, server_context_with, Served};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tls_session_cache::integrations::openssl::OpensslCache;
use tls_session_cache::SessionCache;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts the example's server on a free port; returns the port and its handle.
fn start_server() -> (u16, OpensslCache) {
    let (ctx, handle) = server_context(Arc::new(SessionCache::new())).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = handle.clone();
    std::thread::spawn(move || serve(listener, ctx, h, false));
    (port, handle)
}

/// Runs `openssl s_client ARGS` with `input` on stdin; returns stdout + stderr.
fn s_client(args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the system `openssl` binary must be installed");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin); // EOF
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        let mut e = String::new();
        let _ = err.read_to_string(&mut e);
        s + &e
    });
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("openssl s_client {args:?} did not finish in {CLIENT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    reader.join().unwrap()
}

fn lines_starting(out: &str, prefix: &str) -> usize {
    out.lines().filter(|l| l.starts_with(prefix)).count()
}

/// Waits (up to 10 s) until the server's cache holds `n` sessions: the server
/// stores a TLS 1.2 session at the end of its side of the handshake, on its own
/// thread, which a loaded machine may run after the client has already
/// reconnected (CI saw `s_client -reconnect` make three full handshakes).
fn wait_for_len(handle: &OpensslCache, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle.len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(handle.len(), n, "the server stored the session");
}

#[test]
fn s_client_reconnect_tls12_reuses_all_five() {
    let (port, handle) = start_server();
    let addr = format!("127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("tsc-s_client12-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sess = dir.join("session.pem");
    let sess = sess.to_str().unwrap();
    // A full handshake whose session the client saves, then the server's copy
    // stored before any reconnect.
    let out = s_client(
        &[
            "-connect",
            &addr,
            "-tls1_2",
            "-no_ticket",
            "-sess_out",
            sess,
        ],
        b"",
    );
    assert_eq!(lines_starting(&out, "New, TLSv1.2"), 1, "{out}");
    wait_for_len(&handle, 1);
    // The saved session, then five reconnects: all six resume.
    let out = s_client(
        &[
            "-connect",
            &addr,
            "-reconnect",
            "-tls1_2",
            "-no_ticket",
            "-sess_in",
            sess,
        ],
        b"",
    );
    assert_eq!(lines_starting(&out, "New, TLSv1.2"), 0, "{out}");
    assert_eq!(lines_starting(&out, "Reused, TLSv1.2"), 6, "{out}");
    let st = handle.stats();
    assert_eq!((st.hits, st.misses), (6, 0));
    assert_eq!(handle.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn s_client_tls13_sess_out_sess_in_is_reused() {
    let (port, handle) = start_server();
    let addr = format!("127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("tsc-s_client-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sess = dir.join("session.pem");
    let sess = sess.to_str().unwrap();
    let request = b"GET / HTTP/1.0\r\n\r\n";

    let out = s_client(
        &["-connect", &addr, "-tls1_3", "-sess_out", sess, "-ign_eof"],
        request,
    );
    assert_eq!(lines_starting(&out, "New, TLSv1.3"), 1, "{out}");
    assert!(out.contains("HTTP/1.0 200 OK"), "{out}");
    assert!(std::fs::metadata(sess)
        .map(|m| m.len() > 0)
        .unwrap_or(false));
    assert_eq!(handle.len(), 2, "two stateful tickets stored");

    let out = s_client(
        &["-connect", &addr, "-tls1_3", "-sess_in", sess, "-ign_eof"],
        request,
    );
    assert_eq!(lines_starting(&out, "Reused, TLSv1.3"), 1, "{out}");
    assert!(out.contains("HTTP/1.0 200 OK"), "{out}");
    assert_eq!(handle.stats().hits, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example's server with `max_early_data`, one connection at a time; what it
/// saw of each connection comes back on the channel.
fn start_early_data_server(max_early_data: u32) -> (u16, OpensslCache, Receiver<Served>) {
    let (ctx, handle_) =
        server_context_with(Arc::new(SessionCache::new()), max_early_data).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let served = handle(&ctx, tcp).expect("server connection");
            if tx.send(served).is_err() {
                break;
            }
        }
    });
    (port, handle_, rx)
}

/// TLS 1.3 early data through the cache: `openssl s_client -early_data` with a
/// stored ticket is accepted (the server reads the request as early data); the
/// same ticket offered again is refused (OpenSSL's anti-replay, single use
/// through our cache), and the client falls back to a full handshake.
#[test]
fn s_client_early_data_accepted_once_replay_refused() {
    let (port, handle_, conns) = start_early_data_server(16384);
    let next = || conns.recv_timeout(CLIENT_TIMEOUT).expect("server report");
    let addr = format!("127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("tsc-early-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sess = dir.join("session.pem");
    let sess = sess.to_str().unwrap();
    let early = dir.join("early.txt");
    let request = b"GET / HTTP/1.0\r\n\r\n";
    std::fs::write(&early, request).unwrap();
    let early = early.to_str().unwrap();

    let out = s_client(
        &["-connect", &addr, "-tls1_3", "-sess_out", sess, "-ign_eof"],
        request,
    );
    assert_eq!(lines_starting(&out, "New, TLSv1.3"), 1, "{out}");
    let full = next();
    assert!(!full.reused && full.early_data.is_empty(), "{full:?}");
    // With early data and anti-replay OpenSSL issues stateful tickets (even
    // without NO_TICKET): both are in the cache.
    assert_eq!(handle_.len(), 2, "two stateful tickets stored");

    let early_args = [
        "-connect",
        &addr,
        "-tls1_3",
        "-sess_in",
        sess,
        "-early_data",
        early,
        "-ign_eof",
    ];
    // Nothing on stdin: the server can answer only a request sent as early data.
    let out = s_client(&early_args, b"");
    assert_eq!(lines_starting(&out, "Reused, TLSv1.3"), 1, "{out}");
    assert!(out.contains("Early data was accepted"), "{out}");
    assert!(out.contains("HTTP/1.0 200 OK"), "{out}");
    let first = next();
    assert!(first.reused, "{first:?}");
    assert_eq!(
        first.early_data, request,
        "the request arrived as early data"
    );
    let st = handle_.stats();
    assert_eq!(
        (st.hits, st.takes),
        (1, 1),
        "the ticket was taken out: {st:?}"
    );

    // The replay: same ticket, same early data; the request also on stdin (sent
    // after the handshake), which is all a server that refused the early data gets.
    let out = s_client(&early_args, request);
    assert_eq!(lines_starting(&out, "New, TLSv1.3"), 1, "{out}");
    assert!(out.contains("Early data was rejected"), "{out}");
    let replay = next();
    assert!(!replay.reused, "{replay:?}");
    assert!(
        replay.early_data.is_empty(),
        "replayed early data: {replay:?}"
    );
    assert!(out.contains("HTTP/1.0 200 OK"), "{out}");
    assert_eq!(handle_.stats().misses, st.misses + 1);
    let _ = std::fs::remove_dir_all(&dir);
}
