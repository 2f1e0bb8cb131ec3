//! A TLS server on rust-openssl whose sessions live in a `SessionCache`.
//!
//! ```text
//! cargo run --features openssl --example openssl_server -- --port 4433
//! openssl s_client -connect 127.0.0.1:4433 -reconnect -tls1_2 -no_ticket   # 5 × "Reused"
//! printf 'GET / HTTP/1.0\r\n\r\n' | openssl s_client -connect 127.0.0.1:4433 -tls1_3 -sess_out s.pem -ign_eof
//! printf 'GET / HTTP/1.0\r\n\r\n' | openssl s_client -connect 127.0.0.1:4433 -tls1_3 -sess_in s.pem -ign_eof  # "Reused"
//!
//! # TLS 1.3 early data (0-RTT): start with `--early-data 16384`
//! printf 'GET / HTTP/1.0\r\n\r\n' > req.txt
//! openssl s_client -connect 127.0.0.1:4433 -tls1_3 -sess_out s.pem -ign_eof < req.txt
//! openssl s_client -connect 127.0.0.1:4433 -tls1_3 -sess_in s.pem -early_data req.txt -ign_eof < /dev/null  # "Early data was accepted"
//! openssl s_client -connect 127.0.0.1:4433 -tls1_3 -sess_in s.pem -early_data req.txt -ign_eof < /dev/null  # replay: "Early data was rejected"
//! ```
//!
//! It listens on 127.0.0.1 only, generates a self-signed certificate at start,
//! answers each connection with a short HTTP response and serves until killed.
//! `SslOptions::NO_TICKET` makes clients resume by session id (TLS 1.2) or by TLS
//! 1.3 stateful tickets, both looked up in the cache. With `--early-data N` the
//! server accepts up to N bytes of TLS 1.3 early data, each ticket once (the
//! adapter takes the ticket out of the cache). The test suite
//! (`tests/openssl_s_client.rs`) includes this file to run the same server.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslContext, SslMethod, SslOptions, SslStream, SslVersion};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509NameBuilder, X509};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tls_session_cache::integrations::openssl::{install, NativeSession, OpensslCache};
use tls_session_cache::SessionCache;

/// The response to every request.
pub const RESPONSE: &[u8] =
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

/// A fresh P-256 key and a self-signed certificate for `localhost` / 127.0.0.1.
pub fn self_signed() -> Result<(PKey<Private>, X509), ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, "localhost")?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let mut cert = X509::builder()?;
    cert.set_version(2)?;
    let serial = serial.to_asn1_integer()?;
    cert.set_serial_number(&serial)?;
    cert.set_subject_name(&name)?;
    cert.set_issuer_name(&name)?;
    cert.set_pubkey(&key)?;
    let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(30)?);
    cert.set_not_before(&not_before)?;
    cert.set_not_after(&not_after)?;
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&cert.x509v3_context(None, None))?;
    cert.append_extension(san)?;
    cert.sign(&key, MessageDigest::sha256())?;
    Ok((key, cert.build()))
}

/// The server context: TLS 1.2 and 1.3, no stateless tickets, sessions in `cache`.
pub fn server_context(
    cache: Arc<SessionCache<NativeSession>>,
) -> Result<(SslContext, OpensslCache), ErrorStack> {
    server_context_with(cache, 0)
}

/// [`server_context`] accepting up to `max_early_data` bytes of TLS 1.3 early
/// data (`SSL_CTX_set_max_early_data`; 0: none). OpenSSL's anti-replay stays on:
/// each ticket is accepted once.
pub fn server_context_with(
    cache: Arc<SessionCache<NativeSession>>,
    max_early_data: u32,
) -> Result<(SslContext, OpensslCache), ErrorStack> {
    let (key, cert) = self_signed()?;
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_private_key(&key)?;
    b.set_certificate(&cert)?;
    b.check_private_key()?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_options(SslOptions::NO_TICKET);
    b.set_max_early_data(max_early_data)?;
    let handle = install(&mut b, cache, b"tls-session-cache/openssl_server")?;
    Ok((b.build().into_context(), handle))
}

/// What the server saw of one connection.
#[derive(Debug)]
pub struct Served {
    /// The handshake resumed a session.
    pub reused: bool,
    /// The TLS 1.3 early data the client sent and the server accepted.
    pub early_data: Vec<u8>,
}

/// Answers one connection: read any early data (`SSL_read_early_data`), finish
/// the handshake, read the request (early data first, up to the blank line, or
/// whatever arrives before the peer closes), send [`RESPONSE`], close.
pub fn handle(ctx: &SslContext, tcp: TcpStream) -> Result<Served, Box<dyn std::error::Error>> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut ssl = openssl::ssl::Ssl::new(ctx)?;
    ssl.set_accept_state();
    let mut tls = SslStream::new(ssl, tcp)?;
    let mut buf = [0u8; 1024];
    // Returns 0 at once when no early data comes (TLS 1.2, no ticket, rejected).
    let mut early_data = Vec::new();
    while early_data.len() < 16 * 1024 {
        match tls.read_early_data(&mut buf)? {
            0 => break,
            n => early_data.extend_from_slice(&buf[..n]),
        }
    }
    tls.accept()?;
    let reused = tls.ssl().session_reused();
    let mut request = early_data.clone();
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    if !request.is_empty() {
        tls.write_all(RESPONSE)?;
        tls.flush()?;
    }
    let _ = tls.shutdown();
    Ok(Served { reused, early_data })
}

/// Serves connections on `listener` (one thread each) until the listener fails.
pub fn serve(listener: TcpListener, ctx: SslContext, handle_: OpensslCache, verbose: bool) {
    let ctx = Arc::new(ctx);
    let n = Arc::new(AtomicU64::new(0));
    for tcp in listener.incoming() {
        let Ok(tcp) = tcp else { continue };
        let (ctx, n, h) = (Arc::clone(&ctx), Arc::clone(&n), handle_.clone());
        std::thread::spawn(move || {
            let i = n.fetch_add(1, Ordering::Relaxed) + 1;
            let r = handle(&ctx, tcp);
            if verbose {
                let s = h.stats();
                match r {
                    Ok(served) => eprintln!(
                        "#{i}: {}{} (sessions {}, hits {}, misses {}, timeouts {})",
                        if served.reused {
                            "resumed"
                        } else {
                            "full handshake"
                        },
                        if served.early_data.is_empty() {
                            String::new()
                        } else {
                            format!(", {} bytes of early data", served.early_data.len())
                        },
                        h.len(),
                        s.hits,
                        s.misses,
                        s.timeouts
                    ),
                    Err(e) => eprintln!("#{i}: {e}"),
                }
            }
        });
    }
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut port: u16 = 4433;
    let mut early_data: u32 = 0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" | "-p" => {
                port = args.next().ok_or("--port needs a value")?.parse()?;
            }
            "--early-data" => {
                early_data = args.next().ok_or("--early-data needs a value")?.parse()?;
            }
            "--help" | "-h" => {
                println!(
                    "usage: openssl_server [--port P] [--early-data BYTES]   (127.0.0.1 only; default 4433, no early data)"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let cache = Arc::new(SessionCache::new());
    let (ctx, handle_) = server_context_with(cache, early_data)?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening on {}", listener.local_addr()?);
    serve(listener, ctx, handle_, true);
    Ok(())
}
