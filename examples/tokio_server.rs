//! An async HTTPS server (tokio + tokio-rustls) whose TLS sessions live in a
//! `RustlsStore`, with the cache's statistics as Prometheus text and certificate
//! reload on SIGHUP that keeps the store (so clients resume across reloads).
//!
//! ```text
//! cargo run --release --example tokio_server --features rustls,metrics -- \
//!     --port 8443 --metrics-port 9090 [--cert cert.pem --key key.pem]
//! openssl s_client -connect 127.0.0.1:8443 -reconnect -tls1_2 </dev/null | grep -E '^(New|Reused)'
//! curl -s http://127.0.0.1:9090/metrics | grep tls_session_cache_
//! kill -HUP <pid>     # reloads the certificate (a new self-signed one without --cert)
//! ```
//!
//! - `https://127.0.0.1:P/` answers any request with a short text saying the
//!   protocol version and whether the handshake resumed a session.
//! - `http://127.0.0.1:M/metrics`: the Prometheus exposition of the global
//!   recorder (metrics-exporter-prometheus), after a `MetricsReporter::report()`
//!   that publishes the store's statistics under the label `cache="https"`
//!   (`--cache-name`).
//! - SIGHUP rebuilds the `ServerConfig` from the certificate files (or a fresh
//!   self-signed certificate) and installs it for new connections; the new config
//!   gets the same `Arc<RustlsStore>` as its `session_storage`. rustls with no
//!   ticketer keeps TLS 1.2 sessions (session ids) and TLS 1.3 tickets (stateful)
//!   in that store, so sessions made before a reload resume after it. A reload
//!   that fails (unreadable files) keeps the running config.
//! - Ctrl-C or SIGTERM stops accepting, lets the open connections finish (10 s at most)
//!   and exits.
//!
//! tests/tokio_server.rs compiles this file as a module and drives [`start`] with
//! real clients.

use clap::Parser;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tls_session_cache::metrics::MetricsReporter;
use tls_session_cache::{RustlsStore, SessionCache};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// Errors of this example: boxed, with a message for the operator.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Command-line options.
#[derive(Parser, Debug, Clone)]
#[command(
    about = "HTTPS with a tls-session-cache RustlsStore, Prometheus metrics, reload on SIGHUP"
)]
pub struct Options {
    /// HTTPS port (0: any free port).
    #[arg(long, default_value_t = 8443)]
    pub port: u16,
    /// Address the HTTPS listener binds.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Port of the Prometheus endpoint, http://127.0.0.1:PORT/metrics (0: any free port).
    #[arg(long, default_value_t = 9090)]
    pub metrics_port: u16,
    /// Certificate chain (PEM); a self-signed certificate for localhost and
    /// 127.0.0.1 is generated when absent.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Sessions the store holds at most.
    #[arg(long, default_value_t = 20_480)]
    pub capacity: usize,
    /// Session lifetime in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// The `cache` label of the metrics.
    #[arg(long, default_value = "https")]
    pub cache_name: String,
    /// How long open connections may run on after Ctrl-C (seconds).
    #[arg(long, default_value_t = 10)]
    pub grace: u64,
}

/// Where certificates come from, at start and at every reload.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files, read again at each reload.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// A fresh self-signed certificate for `localhost` and `127.0.0.1` each time.
    SelfSigned,
}

impl CertSource {
    fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
        match self {
            CertSource::Files { cert, key } => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| format!("{}: {e}", cert.display()))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{}: {e}", cert.display()))?;
                if certs.is_empty() {
                    return Err(format!("{}: no certificate", cert.display()).into());
                }
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: {e}", key.display()))?;
                Ok((certs, key))
            }
            CertSource::SelfSigned => {
                let ck = rcgen::generate_simple_self_signed(vec![
                    "localhost".to_string(),
                    "127.0.0.1".to_string(),
                ])?;
                let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())?;
                Ok((vec![ck.cert.der().clone()], key))
            }
        }
    }
}

/// The current `ServerConfig` (swapped by reloads) and the store every config
/// shares.
#[derive(Debug)]
pub struct TlsState {
    store: Arc<RustlsStore>,
    source: CertSource,
    config: RwLock<Arc<ServerConfig>>,
    generation: AtomicU64,
}

impl TlsState {
    /// Builds the first config.
    pub fn new(store: Arc<RustlsStore>, source: CertSource) -> Result<Self, Error> {
        let config = build_config(&store, &source)?;
        Ok(TlsState {
            store,
            source,
            config: RwLock::new(config),
            generation: AtomicU64::new(0),
        })
    }

    /// Rebuilds the config (certificates read again) with the same store and
    /// installs it for new connections; returns the new generation. On error the
    /// running config stays.
    pub fn reload(&self) -> Result<u64, Error> {
        let config = build_config(&self.store, &self.source)?;
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(self.generation.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// The config new connections get.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many reloads succeeded.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The session store shared by every generation.
    pub fn store(&self) -> &Arc<RustlsStore> {
        &self.store
    }
}

fn build_config(store: &Arc<RustlsStore>, source: &CertSource) -> Result<Arc<ServerConfig>, Error> {
    let (certs, key) = source.load()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // The one line that makes sessions survive a reload: every generation
    // stores and finds sessions in the same cache. No ticketer is set, so TLS 1.3
    // tickets are stateful (kept in the store too); a stateless ticketer would
    // need its keys kept across reloads instead.
    config.session_storage = store.clone();
    Ok(Arc::new(config))
}

/// A running server: its addresses, its TLS state and the handles to stop it.
#[derive(Debug)]
pub struct Server {
    /// Where HTTPS listens.
    pub https_addr: SocketAddr,
    /// Where `/metrics` is served (127.0.0.1).
    pub metrics_addr: SocketAddr,
    /// Certificates, config generations and the store.
    pub tls: Arc<TlsState>,
    /// Publishes the store's statistics (registered as `cache_name`).
    pub reporter: Arc<MetricsReporter>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds both listeners, installs the SIGHUP handler (before returning, so a
/// SIGHUP sent after `start` returns always reloads) and spawns the accept loops.
/// `metrics` renders the recorder the `MetricsReporter` publishes to (the global
/// one).
pub async fn start(opts: &Options, metrics: PrometheusHandle) -> Result<Server, Error> {
    let cache = SessionCache::builder()
        .capacity(opts.capacity)
        .timeout(Duration::from_secs(opts.timeout))
        .build();
    let store = RustlsStore::with_cache(cache);
    let source = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => CertSource::SelfSigned,
    };
    let tls = Arc::new(TlsState::new(store, source)?);
    let reporter = Arc::new(MetricsReporter::new());
    reporter.register(opts.cache_name.clone(), tls.store())?;

    let https = TcpListener::bind((opts.bind, opts.port)).await?;
    let metrics_listener = TcpListener::bind(("127.0.0.1", opts.metrics_port)).await?;
    let https_addr = https.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;

    let (shutdown, rx) = watch::channel(false);
    let grace = Duration::from_secs(opts.grace);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(accept_loop(https, rx.clone(), grace, {
        let tls = tls.clone();
        move |tcp| {
            let acceptor = TlsAcceptor::from(tls.current());
            serve_https(acceptor, tcp)
        }
    })));
    tasks.push(tokio::spawn(accept_loop(
        metrics_listener,
        rx.clone(),
        grace,
        {
            let reporter = reporter.clone();
            move |tcp| serve_metrics(tcp, reporter.clone(), metrics.clone())
        },
    )));
    #[cfg(unix)]
    tasks.push(reload_on_sighup(tls.clone(), rx)?);
    Ok(Server {
        https_addr,
        metrics_addr,
        tls,
        reporter,
        shutdown,
        tasks,
    })
}

/// Installs the SIGHUP handler now (so a SIGHUP sent once this returns reloads
/// instead of terminating) and spawns the task that reloads on each one.
#[cfg(unix)]
fn reload_on_sighup(
    tls: Arc<TlsState>,
    mut rx: watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<()>> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = rx.changed() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    match tls.reload() {
                        Ok(g) => eprintln!("SIGHUP: certificate reloaded (generation {g}), session store kept"),
                        Err(e) => eprintln!("SIGHUP: reload failed, keeping the running certificate: {e}"),
                    }
                }
            }
        }
    }))
}

impl Server {
    /// Stops accepting, waits for open connections (up to the grace period, then
    /// aborts them) and for every task.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Accepts until shutdown, one task per connection; then lets the connections
/// run for `grace` and aborts what is left.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    serve: F,
) where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            // At the cap, stop accepting (the kernel's backlog holds new clients)
            // until a connection ends: bounded memory whatever clients do.
            accepted = listener.accept(), if conns.len() < MAX_CONNECTIONS => match accepted {
                Ok((tcp, _)) => {
                    conns.spawn(serve(tcp));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        eprintln!(
            "{} connection(s) aborted after the grace period",
            conns.len()
        );
        conns.shutdown().await;
    }
}

/// How long one connection may take (handshake, request, response).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Open connections per listener at most (each is bounded in time by
/// [`CONNECTION_TIMEOUT`] and in memory by its TLS state and request head).
const MAX_CONNECTIONS: usize = 4096;
/// The longest request head read.
const MAX_REQUEST: usize = 16 * 1024;

async fn serve_https(acceptor: TlsAcceptor, tcp: TcpStream) {
    // Client errors (bad handshakes, resets, timeouts) end the connection quietly.
    let _ = tokio::time::timeout(CONNECTION_TIMEOUT, async move {
        let mut tls = acceptor.accept(tcp).await?;
        let (_, conn) = tls.get_ref();
        let body = format!(
            "hello from tls-session-cache\nprotocol: {:?}\nhandshake: {:?}\n",
            conn.protocol_version(),
            conn.handshake_kind()
        );
        // A client that sends nothing (openssl s_client -reconnect) gets the answer
        // when it closes.
        let _ = read_head(&mut tls).await;
        respond(&mut tls, "200 OK", "text/plain; charset=utf-8", &body).await
    })
    .await;
}

async fn serve_metrics(
    mut tcp: TcpStream,
    reporter: Arc<MetricsReporter>,
    handle: PrometheusHandle,
) {
    let _ = tokio::time::timeout(CONNECTION_TIMEOUT, async move {
        let head = read_head(&mut tcp).await?;
        let line = head.lines().next().unwrap_or("");
        let mut parts = line.split_ascii_whitespace();
        let (method, path) = (parts.next(), parts.next());
        if method == Some("GET")
            && path.is_some_and(|p| p == "/metrics" || p.starts_with("/metrics?"))
        {
            // Read the caches' counters now, then render: the scrape sees fresh values.
            reporter.report();
            let body = handle.render();
            respond(&mut tcp, "200 OK", "text/plain; version=0.0.4", &body).await
        } else {
            respond(&mut tcp, "404 Not Found", "text/plain", "try /metrics\n").await
        }
    })
    .await;
}

/// Reads up to the end of the request head (or EOF, or `MAX_REQUEST` bytes).
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

async fn respond<S: AsyncWrite + Unpin>(
    s: &mut S,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.shutdown().await
}

#[allow(dead_code)] // tests/tokio_server.rs includes this file and calls `start`.
/// Ctrl-C (SIGINT) or, on Unix, SIGTERM (what systemd and Kubernetes send).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    r = tokio::signal::ctrl_c() => {
                        if let Err(e) = r {
                            eprintln!("Ctrl-C handler: {e}");
                        }
                    }
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => eprintln!("SIGTERM handler: {e}"),
        }
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("Ctrl-C handler: {e}");
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let opts = Options::parse();
    // The application picks the exporter: Prometheus text, rendered on request.
    let handle = match PrometheusBuilder::new().install_recorder() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("metrics recorder: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let server = match start(&opts, handle).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tokio_server: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!(
        "https://{} (pid {}), metrics on http://{}/metrics; SIGHUP reloads the certificate, Ctrl-C or SIGTERM stops",
        server.https_addr,
        std::process::id(),
        server.metrics_addr
    );
    stop_signal().await;
    eprintln!("shutting down: no new connections, open ones finish");
    server.shutdown().await;
    std::process::ExitCode::SUCCESS
}
