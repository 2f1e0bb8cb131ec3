//! A TLS server on rust-openssl whose sessions live in a `SessionCache`.
//!
//! ```text
//! cargo run --features openssl --example openssl_server -- --port 4433
//! openssl s_client -connect 127.0.0.1:4433 -reconnect -tls1_2 -no_ticket   # 5 × "Reused"
//! printf 'GET / HTTP/1.0\r\n\r\n' | openssl s_client -connect 127.0.0.1:4433 -tls1_3 -sess_out s.pem -ign_eof
//! printf 'GET / HTTP/1.0\r\n\r\n' | openssl s_client -connect 127.0.0.1:4433 -tls1_3 -sess_in s.pem -ign_eof  # "Reused"
//! ```
//!
//! It listens on 127.0.0.1 only, generates a self-signed certificate at start,
//! answers each connection with a short HTTP response and serves until killed.
//! `SslOptions::NO_TICKET` makes clients resume by session id (TLS 1.2) or by TLS
//! 1.3 stateful tickets, both looked up in the cache. The test suite
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
    let (key, cert) = self_signed()?;
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_private_key(&key)?;
    b.set_certificate(&cert)?;
    b.check_private_key()?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_options(SslOptions::NO_TICKET);
    let handle = install(&mut b, cache, b"tls-session-cache/openssl_server")?;
    Ok((b.build().into_context(), handle))
}

/// Answers one connection: handshake, read the request (up to the blank line, or
/// whatever arrives before the peer closes), send [`RESPONSE`], close.
pub fn handle(ctx: &SslContext, tcp: TcpStream) -> Result<bool, Box<dyn std::error::Error>> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let ssl = openssl::ssl::Ssl::new(ctx)?;
    let mut tls = SslStream::new(ssl, tcp)?;
    tls.accept()?;
    let reused = tls.ssl().session_reused();
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
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
    Ok(reused)
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
                    Ok(reused) => eprintln!(
                        "#{i}: {} (sessions {}, hits {}, misses {}, timeouts {})",
                        if reused { "resumed" } else { "full handshake" },
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
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" | "-p" => {
                port = args.next().ok_or("--port needs a value")?.parse()?;
            }
            "--help" | "-h" => {
                println!("usage: openssl_server [--port P]   (127.0.0.1 only; default 4433)");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let cache = Arc::new(SessionCache::new());
    let (ctx, handle_) = server_context(cache)?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening on {}", listener.local_addr()?);
    serve(listener, ctx, handle_, true);
    Ok(())
}
