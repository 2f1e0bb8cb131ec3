//! In-memory rustls handshakes: one harness shared by tests/rustls_handshakes.rs,
//! the Redis tests (tests/redis_support) and benches/handshake.rs (each includes
//! it as a module and uses a subset, hence the dead_code allowance).
#![allow(dead_code)]

use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::StoresServerSessions;
use rustls::{
    ClientConfig, ClientConnection, HandshakeKind, RootCertStore, ServerConfig, ServerConnection,
    SupportedProtocolVersion,
};
use std::sync::{Arc, OnceLock};

pub const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;
pub const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;
pub struct Pki {
    pub cert: CertificateDer<'static>,
    pub key: Vec<u8>,
    pub roots: Arc<RootCertStore>,
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = ck.cert.der().clone();
        let mut roots = RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        Pki {
            cert,
            key: ck.signing_key.serialize_der(),
            roots: Arc::new(roots),
        }
    })
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn server_config(
    version: &'static SupportedProtocolVersion,
    store: Arc<dyn StoresServerSessions>,
) -> Arc<ServerConfig> {
    let p = pki();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(p.key.clone()));
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![p.cert.clone()], key)
        .unwrap();
    cfg.session_storage = store;
    Arc::new(cfg)
}

/// A client with its own in-memory session store (resumption on: session ids and
/// tickets for TLS 1.2, tickets for TLS 1.3).
pub fn client_config(version: &'static SupportedProtocolVersion) -> Arc<ClientConfig> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(pki().roots.clone())
        .with_no_client_auth();
    cfg.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(64)));
    Arc::new(cfg)
}

pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// Moves everything `from` wants to write into `to`; returns whether anything moved.
pub fn client_to_server(c: &mut ClientConnection, s: &mut ServerConnection) -> bool {
    let mut buf = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut buf).unwrap();
    }
    feed_server(s, &buf);
    !buf.is_empty()
}

pub fn server_to_client(s: &mut ServerConnection, c: &mut ClientConnection) -> bool {
    let mut buf = Vec::new();
    while s.wants_write() {
        s.write_tls(&mut buf).unwrap();
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        c.read_tls(&mut rd).unwrap();
        c.process_new_packets().unwrap();
    }
    !buf.is_empty()
}

pub fn feed_server(s: &mut ServerConnection, buf: &[u8]) {
    let mut rd = buf;
    while !rd.is_empty() {
        s.read_tls(&mut rd).unwrap();
        s.process_new_packets().unwrap();
    }
}

/// Runs one connection to completion (including the TLS 1.3 tickets the server
/// sends after the handshake); returns what the client saw, after checking that
/// the server saw the same.
pub fn connect(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> HandshakeKind {
    let mut c = ClientConnection::new(client.clone(), server_name()).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    loop {
        let a = client_to_server(&mut c, &mut s);
        let b = server_to_client(&mut s, &mut c);
        if !a && !b {
            break;
        }
    }
    assert!(!c.is_handshaking() && !s.is_handshaking());
    let kind = c.handshake_kind().unwrap();
    assert_eq!(Some(kind), s.handshake_kind(), "client and server disagree");
    kind
}

/// The bytes of a ClientHello from a new connection of `client` (offering its
/// newest ticket or session id), and the connection to finish it with.
pub fn client_hello(client: &Arc<ClientConfig>) -> (ClientConnection, Vec<u8>) {
    let mut c = ClientConnection::new(client.clone(), server_name()).unwrap();
    let mut hello = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut hello).unwrap();
    }
    (c, hello)
}

/// What a server makes of `hello` (whether it would resume).
pub fn server_sees(server: &Arc<ServerConfig>, hello: &[u8]) -> Option<HandshakeKind> {
    let mut s = ServerConnection::new(server.clone()).unwrap();
    feed_server(&mut s, hello);
    s.handshake_kind()
}
