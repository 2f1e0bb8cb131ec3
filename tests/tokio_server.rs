//! examples/tokio_server.rs driven by real clients, in-process: this file
//! compiles the example as a module (`#[path]`) and calls its `start` on
//! 127.0.0.1 with free ports, so the test runs exactly the example's code without
//! building and spawning a second binary. The clients are tokio-rustls clients
//! over real TCP; `/metrics` is scraped over HTTP.
//!
//! The global Prometheus recorder is installed once per test binary; each test
//! registers its store under its own `cache` label.

#[allow(dead_code)]
#[path = "../examples/tokio_server.rs"]
mod server;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    ClientConfig, HandshakeKind, ProtocolVersion, RootCertStore, SupportedProtocolVersion,
};
use server::{Options, Server};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
        .clone()
}

/// A self-signed certificate for localhost.
struct Cert {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn cert() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    Cert {
        der: ck.cert.der().clone(),
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
    }
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tls-session-cache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the PEM files by rename, so a reload never reads a half-written file.
fn install_cert(dir: &Path, c: &Cert) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    for (path, pem) in [(&cert, &c.cert_pem), (&key, &c.key_pem)] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
    (cert, key)
}

fn options(name: &str, cert: PathBuf, key: PathBuf) -> Options {
    Options {
        port: 0,
        bind: "127.0.0.1".parse().unwrap(),
        metrics_port: 0,
        cert: Some(cert),
        key: Some(key),
        capacity: 1_000,
        timeout: 300,
        cache_name: name.to_string(),
        grace: 10,
    }
}

/// A client trusting `roots`, speaking only `version`, with its own session cache
/// (resumption on).
fn client(version: &'static SupportedProtocolVersion, roots: &[&Cert]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for c in roots {
        store.add(c.der.clone()).unwrap();
    }
    let mut cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    cfg.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(64)));
    Arc::new(cfg)
}

/// One HTTPS request; returns how the handshake went (as the client saw it, and
/// as the server reported it in the body) and the protocol.
async fn get(
    addr: SocketAddr,
    cfg: &Arc<ClientConfig>,
) -> Result<(HandshakeKind, ProtocolVersion, String), std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = TlsConnector::from(cfg.clone()).connect(name, tcp).await?;
    let (_, conn) = tls.get_ref();
    let kind = conn.handshake_kind().unwrap();
    let version = conn.protocol_version().unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    // Reading to the end also processes the TLS 1.3 tickets sent after the
    // handshake, so the next connection can offer one.
    let mut body = String::new();
    tls.read_to_string(&mut body).await?;
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(
        body.contains(&format!("handshake: Some({kind:?})")),
        "the server saw another handshake kind: {body}"
    );
    Ok((kind, version, body))
}

/// Scrapes `/metrics` over HTTP; returns the body.
async fn scrape(addr: SocketAddr) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    body.to_string()
}

/// The value of `metric{cache="CACHE"[,...]}` in Prometheus text (labels in
/// `extra` must be there too), if present.
fn sample(text: &str, metric: &str, cache: &str, extra: &[&str]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (name, labels) = series.split_once('{')?;
        let labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
        let want_cache = format!("cache=\"{cache}\"");
        (name == metric
            && labels.contains(&want_cache.as_str())
            && extra.iter().all(|e| labels.contains(e)))
        .then(|| value.parse().unwrap())
    })
}

async fn wait_for_generation(server: &Server, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.tls.generation() < at_least {
        assert!(Instant::now() < deadline, "no reload happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Resumption before and after an in-process reload with a new certificate, for
/// TLS 1.2 (session ids) and TLS 1.3 (stateful tickets, taken once), and the
/// scraped counters moving with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_resume_across_a_reload_and_metrics_show_it() {
    let handle = prometheus();
    let (a, b) = (cert(), cert());
    let dir = temp_dir("reload");
    let (cert_path, key_path) = install_cert(&dir, &a);
    let server = server::start(&options("reload", cert_path, key_path), handle)
        .await
        .unwrap();
    let addr = server.https_addr;

    let before = scrape(server.metrics_addr).await;
    assert_eq!(
        sample(&before, "tls_session_cache_hits_total", "reload", &[]),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "tls_session_cache_capacity", "reload", &[]),
        Some(1000.0)
    );

    let tls12 = client(&rustls::version::TLS12, &[&a, &b]);
    let tls13 = client(&rustls::version::TLS13, &[&a, &b]);
    let (kind, version, _) = get(addr, &tls12).await.unwrap();
    assert_eq!(
        (kind, version),
        (HandshakeKind::Full, ProtocolVersion::TLSv1_2)
    );
    assert_eq!(get(addr, &tls12).await.unwrap().0, HandshakeKind::Resumed);
    let (kind, version, _) = get(addr, &tls13).await.unwrap();
    assert_eq!(
        (kind, version),
        (HandshakeKind::Full, ProtocolVersion::TLSv1_3)
    );
    assert_eq!(get(addr, &tls13).await.unwrap().0, HandshakeKind::Resumed);

    let mid = scrape(server.metrics_addr).await;
    // One session-id lookup and one ticket take found their session.
    assert_eq!(
        sample(&mid, "tls_session_cache_hits_total", "reload", &[]),
        Some(2.0),
        "{mid}"
    );
    assert_eq!(
        sample(&mid, "tls_session_cache_takes_total", "reload", &[]),
        Some(1.0)
    );
    assert!(sample(&mid, "tls_session_cache_entries", "reload", &[]).unwrap() >= 2.0);

    // New certificate on disk, reload: new connections get it, the store stays.
    install_cert(&dir, &b);
    let g = server.tls.reload().unwrap();
    assert!(g >= 1);
    let only_a = client(&rustls::version::TLS12, &[&a]);
    assert!(
        get(addr, &only_a).await.is_err(),
        "the reload did not install the new certificate"
    );
    let only_b = client(&rustls::version::TLS13, &[&b]);
    assert_eq!(get(addr, &only_b).await.unwrap().0, HandshakeKind::Full);

    // Sessions made before the reload resume after it.
    assert_eq!(get(addr, &tls12).await.unwrap().0, HandshakeKind::Resumed);
    assert_eq!(get(addr, &tls13).await.unwrap().0, HandshakeKind::Resumed);

    let after = scrape(server.metrics_addr).await;
    assert_eq!(
        sample(&after, "tls_session_cache_hits_total", "reload", &[]),
        Some(4.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "tls_session_cache_takes_total", "reload", &[]),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &after,
            "tls_session_cache_evictions_total",
            "reload",
            &["cause=\"capacity\""]
        ),
        Some(0.0)
    );

    server.shutdown().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The real signal path: SIGHUP sent to this process reloads the certificate
/// files; a TLS 1.2 session from before the signal resumes after it.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_keeps_the_sessions() {
    let handle = prometheus();
    let (a, b) = (cert(), cert());
    let dir = temp_dir("sighup");
    let (cert_path, key_path) = install_cert(&dir, &a);
    // `start` returns after installing its SIGHUP handler: the signal below
    // cannot hit the default action (terminate).
    let server = server::start(&options("sighup", cert_path, key_path), handle)
        .await
        .unwrap();
    let addr = server.https_addr;
    let tls12 = client(&rustls::version::TLS12, &[&a, &b]);
    assert_eq!(get(addr, &tls12).await.unwrap().0, HandshakeKind::Full);
    assert_eq!(get(addr, &tls12).await.unwrap().0, HandshakeKind::Resumed);

    install_cert(&dir, &b);
    let g = server.tls.generation();
    // SAFETY: kill(2) with this process's own pid and a signal number; it touches
    // no memory of ours. SIGHUP is handled (see above), so it does not terminate.
    let rc = unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    wait_for_generation(&server, g + 1).await;

    let only_b = client(&rustls::version::TLS12, &[&b]);
    assert_eq!(get(addr, &only_b).await.unwrap().0, HandshakeKind::Full);
    assert_eq!(get(addr, &tls12).await.unwrap().0, HandshakeKind::Resumed);

    let text = scrape(server.metrics_addr).await;
    assert_eq!(
        sample(&text, "tls_session_cache_hits_total", "sighup", &[]),
        Some(2.0),
        "{text}"
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Anything but `GET /metrics` on the metrics port is a 404.
#[tokio::test]
async fn the_metrics_port_serves_only_metrics() {
    let handle = prometheus();
    let a = cert();
    let dir = temp_dir("404");
    let (cert_path, key_path) = install_cert(&dir, &a);
    let server = server::start(&options("notfound", cert_path, key_path), handle)
        .await
        .unwrap();
    let mut tcp = TcpStream::connect(server.metrics_addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A reload that cannot read the new files keeps the running certificate and
/// sessions.
#[tokio::test]
async fn a_failed_reload_keeps_the_running_certificate() {
    let handle = prometheus();
    let a = cert();
    let dir = temp_dir("badreload");
    let (cert_path, key_path) = install_cert(&dir, &a);
    let server = server::start(&options("badreload", cert_path.clone(), key_path), handle)
        .await
        .unwrap();
    let addr = server.https_addr;
    let tls12 = client(&rustls::version::TLS12, &[&a]);
    assert_eq!(get(addr, &tls12).await.unwrap().0, HandshakeKind::Full);

    std::fs::write(&cert_path, "not a certificate").unwrap();
    let g = server.tls.generation();
    assert!(server.tls.reload().is_err());
    assert_eq!(server.tls.generation(), g);
    assert_eq!(get(addr, &tls12).await.unwrap().0, HandshakeKind::Resumed);
    let fresh = client(&rustls::version::TLS12, &[&a]);
    assert_eq!(get(addr, &fresh).await.unwrap().0, HandshakeKind::Full);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
