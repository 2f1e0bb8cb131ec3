//! Shared harness of the `openssl_*` tests: a rust-openssl server on 127.0.0.1
//! (with OpenSSL's internal cache or ours) and rust-openssl clients.
#![allow(dead_code)]

#[path = "../../examples/openssl_server.rs"]
pub mod openssl_server;

use foreign_types_shared::ForeignType;
use openssl::ssl::{
    Ssl, SslConnector, SslContext, SslMethod, SslOptions, SslSession, SslSessionCacheMode,
    SslStream, SslVerifyMode, SslVersion,
};
use openssl_sys as ffi;
use std::ffi::{c_int, c_long, c_uint};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls_session_cache::integrations::openssl::{
    install, set_ssl_session_id_context, NativeSession, OpensslCache,
};
use tls_session_cache::SessionCache;

// Exported by libssl 3 but not bound by openssl-sys 0.9.
extern "C" {
    fn SSL_CTX_set_timeout(ctx: *mut ffi::SSL_CTX, t: c_long) -> c_long;
    fn SSL_SESSION_is_resumable(s: *const ffi::SSL_SESSION) -> c_int;
    fn SSL_set_session_id_context(ssl: *mut ffi::SSL, sid_ctx: *const u8, len: c_uint) -> c_int;
}

const SSL_CTRL_SESS_NUMBER: c_int = 20;
const SSL_CTRL_SESS_HIT: c_int = 27;
const SSL_CTRL_SESS_MISSES: c_int = 29;
const SSL_CTRL_SESS_TIMEOUTS: c_int = 30;

/// Every wait is bounded by this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// The default session id context of test servers.
pub const SID_CTX: &[u8] = b"tls-session-cache tests";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    V12,
    V13,
}

impl Tls {
    fn version(self) -> SslVersion {
        match self {
            Tls::V12 => SslVersion::TLS1_2,
            Tls::V13 => SslVersion::TLS1_3,
        }
    }
}

/// What the server saw of one connection.
pub struct ConnInfo {
    pub reused: bool,
    /// The server's `SSL_get_session` after the handshake (TLS 1.3: the last
    /// ticket's session).
    pub session: Option<SslSession>,
    pub error: Option<String>,
    /// `SSL_SESSION_is_resumable` of `session` when the connection ended, before
    /// the server freed its `SSL`.
    pub resumable_at_end: bool,
}

/// Comparable counters: `(sessions, hits, misses, timeouts)`.
pub type Counters = (u64, u64, u64, u64);

/// A test server: one `SslContext` (internal cache or ours), a thread per
/// connection, a report per finished connection.
pub struct Server {
    pub addr: SocketAddr,
    pub ctx: SslContext,
    pub ours: Option<OpensslCache>,
    conns: Mutex<Receiver<ConnInfo>>,
    /// A session id context set on the next connections' `SSL` (per connection).
    pub per_conn_sid: Arc<Mutex<Option<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
}

pub struct ServerConfig {
    /// `Some`: our cache; `None`: OpenSSL's internal cache.
    pub cache: Option<Arc<SessionCache<NativeSession>>>,
    pub sid_ctx: Vec<u8>,
    /// `SSL_CTX_set_timeout`, seconds.
    pub timeout: Option<i64>,
    /// Leave stateless tickets on (no `SslOptions::NO_TICKET`).
    pub stateless_tickets: bool,
    /// `SSL_CTX_set_max_early_data` (0: no early data). With early data and
    /// OpenSSL's anti-replay (the default) TLS 1.3 tickets are single use.
    pub early_data: u32,
    /// A cache mode set on the context after `install` (which sets
    /// `SERVER | NO_INTERNAL`).
    pub mode_after_install: Option<SslSessionCacheMode>,
}

impl ServerConfig {
    pub fn internal() -> Self {
        ServerConfig {
            cache: None,
            sid_ctx: SID_CTX.to_vec(),
            timeout: None,
            stateless_tickets: false,
            early_data: 0,
            mode_after_install: None,
        }
    }
    pub fn ours(cache: Arc<SessionCache<NativeSession>>) -> Self {
        ServerConfig {
            cache: Some(cache),
            sid_ctx: SID_CTX.to_vec(),
            timeout: None,
            stateless_tickets: false,
            early_data: 0,
            mode_after_install: None,
        }
    }
    pub fn sid_ctx(mut self, sid_ctx: &[u8]) -> Self {
        self.sid_ctx = sid_ctx.to_vec();
        self
    }
    pub fn timeout(mut self, secs: i64) -> Self {
        self.timeout = Some(secs);
        self
    }
    pub fn stateless_tickets(mut self) -> Self {
        self.stateless_tickets = true;
        self
    }
    pub fn early_data(mut self, bytes: u32) -> Self {
        self.early_data = bytes;
        self
    }
    pub fn mode_after_install(mut self, mode: SslSessionCacheMode) -> Self {
        self.mode_after_install = Some(mode);
        self
    }
}

pub fn server_ctx(cfg: ServerConfig) -> (SslContext, Option<OpensslCache>) {
    let (key, cert) = openssl_server::self_signed().unwrap();
    let mut b = SslContext::builder(SslMethod::tls_server()).unwrap();
    b.set_private_key(&key).unwrap();
    b.set_certificate(&cert).unwrap();
    b.set_min_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    if !cfg.stateless_tickets {
        b.set_options(SslOptions::NO_TICKET);
    }
    b.set_max_early_data(cfg.early_data).unwrap();
    if let Some(t) = cfg.timeout {
        // SAFETY: `b` owns a live SSL_CTX; the call only stores a number.
        unsafe { SSL_CTX_set_timeout(b.as_ptr(), t) };
    }
    let ours = match cfg.cache {
        Some(cache) => {
            let handle = install(&mut b, cache, &cfg.sid_ctx).unwrap();
            if let Some(mode) = cfg.mode_after_install {
                b.set_session_cache_mode(mode);
            }
            Some(handle)
        }
        None => {
            b.set_session_id_context(&cfg.sid_ctx).unwrap();
            None
        }
    };
    (b.build(), ours)
}

impl Server {
    pub fn start(cfg: ServerConfig) -> Server {
        let (ctx, ours) = server_ctx(cfg);
        Server::start_with(ctx, ours)
    }

    pub fn start_with(ctx: SslContext, ours: Option<OpensslCache>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let per_conn_sid: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
        {
            let (ctx, stop, per_conn_sid, is_ours) = (
                ctx.clone(),
                stop.clone(),
                per_conn_sid.clone(),
                ours.is_some(),
            );
            std::thread::spawn(move || {
                for tcp in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(tcp) = tcp else { continue };
                    let sid = per_conn_sid.lock().unwrap().clone();
                    let (ctx, tx) = (ctx.clone(), tx.clone());
                    std::thread::spawn(move || {
                        let info = serve_one(&ctx, tcp, sid.as_deref(), is_ours);
                        let _ = tx.send(info);
                    });
                }
            });
        }
        Server {
            addr,
            ctx,
            ours,
            conns: Mutex::new(rx),
            per_conn_sid,
            stop,
        }
    }

    /// The report of the next finished connection.
    pub fn next_conn(&self) -> ConnInfo {
        self.conns
            .lock()
            .unwrap()
            .recv_timeout(IO_TIMEOUT)
            .expect("server connection did not finish in time")
    }

    pub fn set_conn_sid(&self, sid: Option<&[u8]>) {
        *self.per_conn_sid.lock().unwrap() = sid.map(<[u8]>::to_vec);
    }

    /// `SSL_CTX_remove_session` on the server context.
    pub fn remove_session(&self, s: &SslSession) -> bool {
        // SAFETY: `s` is a session this server context made.
        unsafe { self.ctx.remove_session(s) }
    }

    /// `(sessions, hits, misses, timeouts)` of whichever cache serves.
    pub fn counters(&self) -> Counters {
        match &self.ours {
            Some(h) => {
                let s = h.stats();
                (h.len() as u64, s.hits, s.misses, s.timeouts)
            }
            None => {
                let ctrl = |cmd| {
                    // SAFETY: a read-only counter query on a live SSL_CTX.
                    unsafe {
                        ffi::SSL_CTX_ctrl(self.ctx.as_ptr(), cmd, 0, std::ptr::null_mut()) as u64
                    }
                };
                (
                    ctrl(SSL_CTRL_SESS_NUMBER),
                    ctrl(SSL_CTRL_SESS_HIT),
                    ctrl(SSL_CTRL_SESS_MISSES),
                    ctrl(SSL_CTRL_SESS_TIMEOUTS),
                )
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve_one(ctx: &SslContext, tcp: TcpStream, sid: Option<&[u8]>, ours: bool) -> ConnInfo {
    let fail = |e: String| ConnInfo {
        reused: false,
        session: None,
        error: Some(e),
        resumable_at_end: false,
    };
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut ssl = Ssl::new(ctx).unwrap();
    if let Some(sid) = sid {
        if ours {
            set_ssl_session_id_context(&mut ssl, sid).unwrap();
        } else {
            // SAFETY: live SSL; `sid` is valid for its length (<= 32).
            let r = unsafe {
                SSL_set_session_id_context(ssl.as_ptr(), sid.as_ptr(), sid.len() as c_uint)
            };
            assert_eq!(r, 1);
        }
    }
    let mut s = match SslStream::new(ssl, tcp) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    if let Err(e) = s.accept() {
        return fail(e.to_string());
    }
    let reused = s.ssl().session_reused();
    let session = s.ssl().session().map(|x| x.to_owned());
    let mut error = None;
    if let Err(e) = s.write_all(b"ok").and_then(|_| s.flush()) {
        error = Some(e.to_string());
    }
    // Read until the client closes (close_notify or EOF) or sends garbage.
    let mut buf = [0u8; 256];
    let mut failed = false;
    loop {
        match s.ssl_read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) => {
                if e.code() != openssl::ssl::ErrorCode::ZERO_RETURN {
                    error = Some(e.to_string());
                    failed = true;
                }
                break;
            }
        }
    }
    // Before `SSL_free`, which also removes the session of a connection that was
    // not shut down cleanly (`ssl_clear_bad_session`).
    let resumable_at_end = session.as_ref().is_some_and(|x| {
        // SAFETY: a live session; a read-only query.
        unsafe { SSL_SESSION_is_resumable(x.as_ptr()) == 1 }
    });
    if !failed {
        // Our close_notify too: without it `SSL_free` removes the session.
        let _ = s.shutdown();
    }
    drop(s);
    ConnInfo {
        reused,
        session,
        error,
        resumable_at_end,
    }
}

/// A client for one protocol version (certificate not verified).
pub struct Client {
    pub tls: Tls,
    connector: SslConnector,
}

/// What a client saw, without the server's report.
pub struct Outcome2 {
    pub reused: bool,
    pub session: SslSession,
}

/// What a client saw.
pub struct Outcome {
    pub reused: bool,
    /// The session to offer next time (TLS 1.3: from the last ticket).
    pub session: SslSession,
    pub server: ConnInfo,
}

impl Client {
    pub fn new(tls: Tls) -> Client {
        let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
        b.set_verify(SslVerifyMode::NONE);
        b.set_min_proto_version(Some(tls.version())).unwrap();
        b.set_max_proto_version(Some(tls.version())).unwrap();
        if tls == Tls::V12 {
            b.set_options(SslOptions::NO_TICKET);
        }
        Client {
            tls,
            connector: b.build(),
        }
    }

    /// One connection: handshake (offering `offer`), read "ok", then close
    /// cleanly, or with `garbage` write a corrupt record so the server sends a
    /// fatal alert. Waits until the server finished with the connection.
    pub fn connect(&self, server: &Server, offer: Option<&SslSession>, garbage: bool) -> Outcome {
        let (reused, session) = self.handshake(server, offer, garbage);
        let server = server.next_conn();
        Outcome {
            reused,
            session,
            server,
        }
    }

    /// Like `connect` without waiting for the server's report (for many clients
    /// on one server at once; the server caches before it writes "ok").
    pub fn connect_nowait(&self, server: &Server, offer: Option<&SslSession>) -> Outcome2 {
        let (reused, session) = self.handshake(server, offer, false);
        Outcome2 { reused, session }
    }

    fn handshake(
        &self,
        server: &Server,
        offer: Option<&SslSession>,
        garbage: bool,
    ) -> (bool, SslSession) {
        let tcp = TcpStream::connect_timeout(&server.addr, IO_TIMEOUT).unwrap();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut ssl = self
            .connector
            .configure()
            .unwrap()
            .verify_hostname(false)
            .use_server_name_indication(false)
            .into_ssl("localhost")
            .unwrap();
        if let Some(sess) = offer {
            // SAFETY: every offered session was made by this connector's context.
            unsafe { ssl.set_session(sess).unwrap() };
        }
        let mut s = SslStream::new(ssl, tcp).unwrap();
        s.connect().expect("client handshake");
        let mut ok = [0u8; 2];
        s.read_exact(&mut ok).expect("read ok");
        assert_eq!(&ok, b"ok");
        let reused = s.ssl().session_reused();
        let session = s.ssl().session().expect("client session").to_owned();
        if garbage {
            // An application-data record whose authentication must fail.
            let mut rec = vec![0x17, 0x03, 0x03, 0x00, 0x40];
            rec.extend((0..0x40u8).map(|i| i.wrapping_mul(37)));
            s.get_mut().write_all(&rec).unwrap();
            // Not reading the server's alert, and closing cleanly on our side: a
            // client that receives a fatal alert, or frees an `SSL` it did not
            // shut down, marks its session not resumable and never offers it.
            let _ = s.shutdown();
        } else {
            let _ = s.shutdown();
        }
        drop(s);
        (reused, session)
    }
}
