//! [`RedisStore`]: Redis (or Redis Cluster, or Valkey) as a shared second tier.
//!
//! When TLS terminators scale out behind a load balancer, a client's next
//! connection lands on another machine; resumption then only works if the machines
//! share a store. The local [`SessionCache`] stays the first tier; a [`RedisStore`]
//! plugged in as its [`SessionStore`] is the second:
//!
//! - a new session (`new_session`) is written with `SET key value EX ttl`, the TTL
//!   being the session's remaining lifetime, under a configurable key prefix (one
//!   namespace per service / sid_ctx); the value is a small record (id, sid_ctx,
//!   time, timeout, then the payload through a [`Codec`]), optionally sealed with
//!   XChaCha20-Poly1305 so Redis only ever holds ciphertext;
//! - an internal miss (`get_session`) fetches with `GET`, checks the record (id,
//!   sid_ctx, expiry, authentication tag) and hands it to the cache, which adds it
//!   locally (unless `NO_INTERNAL_STORE`) and counts a `cb_hits`; anything that
//!   fails a check is a miss, never a panic;
//! - an explicit removal (`remove_session` with [`RemovalCause::Removed`]:
//!   `SSL_CTX_remove_session`, [`SessionCache::remove`]) is a `DEL` (unless turned
//!   off with [`RedisConfig::propagate_removes`]); the local tier's housekeeping
//!   (evictions, expiries, flushes) and its takes never reach Redis;
//! - [`RedisStore::take`] is an atomic `GETDEL`: of two servers racing for one TLS
//!   1.3 ticket exactly one gets it. [`RedisRustlsStore`] wires it into rustls's
//!   `take`.
//!
//! Faults: every call is bounded by [`RedisConfig::timeout`] (per read/write) and
//! [`RedisConfig::connect_timeout`]; a connection that failed is dropped and a new
//! one made on the next call (the pool reconnects by itself); after
//! [`RedisConfig::breaker`]`.0` consecutive failures a circuit breaker skips Redis
//! for a back-off period (doubling up to a maximum while it keeps failing, one probe
//! call at a time once it elapses). While Redis is skipped or failing, the local
//! tier keeps serving and a lookup that misses locally is a miss (a full
//! handshake). [`RedisStore::stats`] counts tier-2 hits, misses, errors, timeouts
//! and skipped calls.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tls_session_cache::{RedisConfig, RedisRustlsStore, RedisStore};
//!
//! let redis = RedisStore::new(
//!     RedisConfig::new("redis://127.0.0.1:6379/")
//!         .key_prefix("tls:my-service:")
//!         .timeout(Duration::from_millis(5))
//!         .encryption_key([7; 32]),
//! )?;
//! // rustls: `config.session_storage = store;`
//! let store = RedisRustlsStore::new(20_480, Arc::clone(&redis));
//! # let _ = store;
//! # Ok::<(), redis::RedisError>(())
//! ```
//!
//! `docs/REDIS.md` has the design, the failure behaviour and measurements.

use crate::integrations::rustls::Secret;
use crate::stats::{Counter, Counters};
use crate::{
    Clock, RemovalCause, RustlsStore, Session, SessionCache, SessionStore, Stats, SystemClock,
};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use redis::{ConnectionLike, RedisError, RedisResult};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

// ---------------------------------------------------------------------------
// Codecs
// ---------------------------------------------------------------------------

/// How a session payload becomes bytes in Redis and back.
///
/// `decode` gets bytes that passed the record checks (and decryption, if on) but
/// may still be garbage (another version, a bug elsewhere): it returns `None`
/// rather than panicking, and the lookup is a miss.
pub trait Codec<P>: Send + Sync + 'static {
    /// The payload's bytes, or `None` to not store this session in Redis.
    fn encode(&self, payload: &P) -> Option<Vec<u8>>;
    /// The payload back, or `None` (a miss).
    fn decode(&self, bytes: &[u8]) -> Option<P>;
}

/// The codec for rustls payloads ([`Secret`]): the serialized bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecretCodec;

impl Codec<Secret> for SecretCodec {
    fn encode(&self, payload: &Secret) -> Option<Vec<u8>> {
        Some(payload.as_bytes().to_vec())
    }
    fn decode(&self, bytes: &[u8]) -> Option<Secret> {
        Some(Secret::new(bytes.to_vec()))
    }
}

/// The codec for plain byte payloads (`Vec<u8>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesCodec;

impl Codec<Vec<u8>> for BytesCodec {
    fn encode(&self, payload: &Vec<u8>) -> Option<Vec<u8>> {
        Some(payload.clone())
    }
    fn decode(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        Some(bytes.to_vec())
    }
}

/// The codec for OpenSSL sessions: their DER encoding (`i2d_SSL_SESSION` /
/// `d2i_SSL_SESSION`).
#[cfg(feature = "openssl")]
#[derive(Debug, Clone, Copy, Default)]
pub struct DerCodec;

#[cfg(feature = "openssl")]
impl Codec<crate::NativeSession> for DerCodec {
    fn encode(&self, payload: &crate::NativeSession) -> Option<Vec<u8>> {
        payload.to_der().ok()
    }
    fn decode(&self, bytes: &[u8]) -> Option<crate::NativeSession> {
        crate::NativeSession::from_der(bytes).ok()
    }
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[derive(Clone)]
enum Target {
    Single(String),
    Cluster(Vec<String>),
}

/// What a [`RedisStore`] connects to and how it behaves. Built with
/// [`RedisConfig::new`] (one server) or [`RedisConfig::cluster`], then setters.
#[derive(Clone)]
pub struct RedisConfig {
    target: Target,
    key_prefix: Vec<u8>,
    timeout: Duration,
    connect_timeout: Duration,
    session_timeout: Duration,
    sid_ctx: Option<Vec<u8>>,
    key: Option<Zeroizing<[u8; 32]>>,
    pool_size: usize,
    breaker_threshold: u32,
    breaker_backoff: Duration,
    breaker_max_backoff: Duration,
    propagate_removes: bool,
    clock: Arc<dyn Clock>,
}

/// The default per-call timeout: 5 ms.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(5);

impl RedisConfig {
    fn with_target(target: Target) -> Self {
        RedisConfig {
            target,
            key_prefix: b"tls-session:".to_vec(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            connect_timeout: DEFAULT_REDIS_TIMEOUT,
            session_timeout: crate::DEFAULT_TIMEOUT,
            sid_ctx: None,
            key: None,
            pool_size: 16,
            breaker_threshold: 3,
            breaker_backoff: Duration::from_millis(500),
            breaker_max_backoff: Duration::from_secs(10),
            propagate_removes: true,
            clock: Arc::new(SystemClock),
        }
    }

    /// One Redis (or Valkey) server, e.g. `redis://127.0.0.1:6379/` (any URL the
    /// `redis` crate accepts: password, database number).
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_target(Target::Single(url.into()))
    }

    /// A Redis Cluster, given the URLs of some of its nodes (the rest is
    /// discovered).
    pub fn cluster<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> Self {
        Self::with_target(Target::Cluster(nodes.into_iter().map(Into::into).collect()))
    }

    /// The prefix of every key (default `tls-session:`); the key is the prefix then
    /// the session id in hex. Give each service (each sid_ctx) its own.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.key_prefix = prefix.as_ref().to_vec();
        self
    }

    /// The limit on each read and each write of a call (default 5 ms). A call that
    /// goes past it fails (counted in `timeouts`) and its connection is dropped.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_micros(1));
        self
    }

    /// The limit on making a new connection, setup included (default 5 ms).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_micros(1));
        self
    }

    /// The lifetime of sessions without their own timeout: set it to the local
    /// cache's timeout (default [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT), as the
    /// cache's).
    #[must_use]
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Only hand out sessions made for this session id context (others are misses,
    /// counted in `rejected`). Default: any (the cache checks it again).
    #[must_use]
    pub fn sid_ctx(mut self, sid_ctx: impl AsRef<[u8]>) -> Self {
        self.sid_ctx = Some(sid_ctx.as_ref().to_vec());
        self
    }

    /// Seal every value with XChaCha20-Poly1305 under this 256-bit key (a random
    /// 192-bit nonce per value, the Redis key as associated data). Values that do
    /// not open with it (another key, tampering, plaintext) are misses.
    #[must_use]
    pub fn encryption_key(mut self, key: [u8; 32]) -> Self {
        self.key = Some(Zeroizing::new(key));
        self
    }

    /// The most idle connections kept for reuse (default 16; at least 1).
    #[must_use]
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// The circuit breaker: after `threshold` consecutive failures (default 3),
    /// skip Redis for `backoff` (default 500 ms), doubling while probes keep
    /// failing, up to `max_backoff` (default 10 s).
    #[must_use]
    pub fn breaker(mut self, threshold: u32, backoff: Duration, max_backoff: Duration) -> Self {
        self.breaker_threshold = threshold.max(1);
        self.breaker_backoff = backoff;
        self.breaker_max_backoff = max_backoff.max(backoff);
        self
    }

    /// Whether an explicit removal ([`RemovalCause::Removed`]: the TLS stack or the
    /// application said the session must not be resumed) deletes the session from
    /// Redis (default true, OpenSSL's semantics). Other causes never do: an
    /// eviction, expiry or flush is the local tier's housekeeping (Redis has its
    /// own TTL), and a take is decided by Redis itself ([`RedisStore::take`]).
    #[must_use]
    pub fn propagate_removes(mut self, on: bool) -> Self {
        self.propagate_removes = on;
        self
    }

    /// The clock for remaining lifetimes and expiry checks (default: the system
    /// clock): the local cache's.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            Target::Single(_) => "single",
            Target::Cluster(_) => "cluster",
        };
        // URLs may carry passwords and the key is secret: neither is shown.
        f.debug_struct("RedisConfig")
            .field("target", &target)
            .field("key_prefix", &String::from_utf8_lossy(&self.key_prefix))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("session_timeout", &self.session_timeout)
            .field("encrypted", &self.key.is_some())
            .field("pool_size", &self.pool_size)
            .field("propagate_removes", &self.propagate_removes)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// The second tier's counters (a snapshot; exact once quiescent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RedisStats {
    /// Lookups (`GET` or `GETDEL`) that returned a valid session.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Values found but refused: expired, another sid_ctx or id, undecodable, or
    /// failing decryption (wrong key, tampering). Each is a miss to the caller.
    pub rejected: u64,
    /// Sessions written (`SET`).
    pub writes: u64,
    /// Deletes sent (`DEL`).
    pub deletes: u64,
    /// Calls that failed other than by timing out (connection refused or reset,
    /// protocol or server errors).
    pub errors: u64,
    /// Calls that failed by timing out (connect, read or write).
    pub timeouts: u64,
    /// Calls not made because the circuit breaker was open.
    pub skipped: u64,
    /// Times the breaker opened (or reopened after a failed probe).
    pub breaker_trips: u64,
    /// Connections made.
    pub connects: u64,
}

#[derive(Default)]
struct AtomicStats {
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
    writes: AtomicU64,
    deletes: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    skipped: AtomicU64,
    breaker_trips: AtomicU64,
    connects: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl AtomicStats {
    fn snapshot(&self) -> RedisStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisStats {
            hits: r(&self.hits),
            misses: r(&self.misses),
            rejected: r(&self.rejected),
            writes: r(&self.writes),
            deletes: r(&self.deletes),
            errors: r(&self.errors),
            timeouts: r(&self.timeouts),
            skipped: r(&self.skipped),
            breaker_trips: r(&self.breaker_trips),
            connects: r(&self.connects),
        }
    }
}

// ---------------------------------------------------------------------------
// Circuit breaker
// ---------------------------------------------------------------------------

/// Closed while `failures < threshold`; then open until `open_until`; then
/// half-open: one probe call at a time (`probing`) decides.
struct Breaker {
    epoch: Instant,
    threshold: u32,
    initial_backoff_us: u64,
    max_backoff_us: u64,
    failures: AtomicU32,
    /// Microseconds since `epoch`.
    open_until: AtomicU64,
    backoff_us: AtomicU64,
    probing: AtomicBool,
}

impl Breaker {
    fn new(threshold: u32, backoff: Duration, max: Duration) -> Self {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Breaker {
            epoch: Instant::now(),
            threshold,
            initial_backoff_us: us(backoff),
            max_backoff_us: us(max),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            backoff_us: AtomicU64::new(us(backoff)),
            probing: AtomicBool::new(false),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether a call may go to Redis now; `Some(true)` if it is the probe.
    fn admit(&self) -> Option<bool> {
        if self.failures.load(Ordering::Acquire) < self.threshold {
            return Some(false);
        }
        if self.now_us() < self.open_until.load(Ordering::Acquire) {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| true)
    }

    fn success(&self, probe: bool) {
        if self.failures.swap(0, Ordering::AcqRel) != 0 {
            self.backoff_us
                .store(self.initial_backoff_us, Ordering::Release);
        }
        if probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    /// Returns whether the breaker (re)opened.
    fn failure(&self, probe: bool) -> bool {
        let f = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let opened = if probe || f == self.threshold {
            let backoff = if probe {
                let b = self.backoff_us.load(Ordering::Acquire);
                let next = b.saturating_mul(2).min(self.max_backoff_us);
                self.backoff_us.store(next, Ordering::Release);
                next
            } else {
                self.backoff_us.load(Ordering::Acquire)
            };
            self.open_until
                .store(self.now_us().saturating_add(backoff), Ordering::Release);
            true
        } else {
            false
        };
        if probe {
            self.probing.store(false, Ordering::Release);
        }
        opened
    }

    fn is_open(&self) -> bool {
        self.failures.load(Ordering::Acquire) >= self.threshold
    }
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

enum Backend {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

enum Conn {
    Single(redis::Connection),
    Cluster(redis::cluster::ClusterConnection),
}

impl Conn {
    fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => c,
        }
    }
}

/// Why a call to Redis gave no answer.
enum Failure {
    /// The breaker is open: not tried.
    Skipped,
    /// Tried and failed (already counted).
    Failed,
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

const FORMAT_PLAIN: u8 = 1;
const FORMAT_SEALED: u8 = 2;
const NONCE_LEN: usize = 24;

struct Record {
    id: Vec<u8>,
    sid_ctx: Vec<u8>,
    time: u64,
    timeout: u64,
    payload: Zeroizing<Vec<u8>>,
}

/// `len(id) id len(sid_ctx) sid_ctx time:u64be timeout:u64be payload`.
fn encode_record(id: &[u8], sid_ctx: &[u8], time: u64, timeout: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + id.len() + sid_ctx.len() + 16 + payload.len());
    v.push(id.len() as u8);
    v.extend_from_slice(id);
    v.push(sid_ctx.len() as u8);
    v.extend_from_slice(sid_ctx);
    v.extend_from_slice(&time.to_be_bytes());
    v.extend_from_slice(&timeout.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn decode_record(b: &[u8]) -> Option<Record> {
    let (&n, b) = b.split_first()?;
    let (id, b) = b.split_at_checked(usize::from(n))?;
    let (&n, b) = b.split_first()?;
    let (sid_ctx, b) = b.split_at_checked(usize::from(n))?;
    let (time, b) = b.split_at_checked(8)?;
    let (timeout, payload) = b.split_at_checked(8)?;
    Some(Record {
        id: id.to_vec(),
        sid_ctx: sid_ctx.to_vec(),
        time: u64::from_be_bytes(time.try_into().ok()?),
        timeout: u64::from_be_bytes(timeout.try_into().ok()?),
        payload: Zeroizing::new(payload.to_vec()),
    })
}

fn hex_key(prefix: &[u8], id: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut k = Vec::with_capacity(prefix.len() + 2 * id.len());
    k.extend_from_slice(prefix);
    for b in id {
        k.push(HEX[usize::from(b >> 4)]);
        k.push(HEX[usize::from(b & 15)]);
    }
    k
}

// ---------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------

/// What a second-tier lookup found.
#[derive(Debug)]
pub enum Lookup<T> {
    /// A valid session.
    Found(T),
    /// Redis answered: nothing valid there (absent, expired, rejected).
    Absent,
    /// Redis was not asked (breaker open) or did not answer in time.
    Unavailable,
}

/// Redis as a [`SessionStore`]: the shared second tier behind a [`SessionCache`].
/// See the [module documentation](self).
///
/// `P` is the session payload and `C` its [`Codec`] ([`SecretCodec`] for rustls
/// payloads, [`BytesCodec`] for `Vec<u8>`).
pub struct RedisStore<P = Secret, C = SecretCodec> {
    config: RedisConfig,
    backend: Backend,
    codec: C,
    cipher: Option<XChaCha20Poly1305>,
    pool: Mutex<Vec<Conn>>,
    breaker: Breaker,
    stats: AtomicStats,
    _payload: PhantomData<fn(P) -> P>,
}

impl RedisStore<Secret, SecretCodec> {
    /// A store for rustls payloads. Connects lazily: Redis may be down now.
    ///
    /// # Errors
    /// An invalid URL.
    pub fn new(config: RedisConfig) -> RedisResult<Arc<Self>> {
        Self::with_codec(config, SecretCodec)
    }
}

impl<P, C: Codec<P>> RedisStore<P, C> {
    /// A store with the given payload codec. Connects lazily.
    ///
    /// # Errors
    /// An invalid URL.
    pub fn with_codec(config: RedisConfig, codec: C) -> RedisResult<Arc<Self>> {
        let backend = match &config.target {
            Target::Single(url) => Backend::Single(redis::Client::open(url.as_str())?),
            Target::Cluster(nodes) => {
                let wait = u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX);
                Backend::Cluster(
                    redis::cluster::ClusterClient::builder(nodes.clone())
                        .connection_timeout(config.connect_timeout)
                        .response_timeout(config.timeout)
                        // One retry: enough to follow a MOVED redirect, and bounded.
                        .retries(1)
                        .min_retry_wait(0)
                        .max_retry_wait(wait)
                        .build()?,
                )
            }
        };
        let cipher = config
            .key
            .as_ref()
            .map(|k| XChaCha20Poly1305::new(k.as_slice().into()));
        let breaker = Breaker::new(
            config.breaker_threshold,
            config.breaker_backoff,
            config.breaker_max_backoff,
        );
        Ok(Arc::new(RedisStore {
            config,
            backend,
            codec,
            cipher,
            pool: Mutex::new(Vec::new()),
            breaker,
            stats: AtomicStats::default(),
            _payload: PhantomData,
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> RedisStats {
        self.stats.snapshot()
    }

    /// Whether the circuit breaker is open (Redis is being skipped or probed).
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// The Redis key of session id `id`: the prefix, then the id in hex.
    pub fn key(&self, id: &[u8]) -> Vec<u8> {
        hex_key(&self.config.key_prefix, id)
    }

    fn now(&self) -> u64 {
        self.config.clock.now()
    }

    fn connect(&self) -> RedisResult<Conn> {
        bump(&self.stats.connects);
        let t = Some(self.config.timeout);
        Ok(match &self.backend {
            Backend::Single(client) => {
                let c = client.get_connection_with_timeout(self.config.connect_timeout)?;
                c.set_read_timeout(t)?;
                c.set_write_timeout(t)?;
                Conn::Single(c)
            }
            Backend::Cluster(client) => {
                let c = client.get_connection()?;
                c.set_read_timeout(t)?;
                c.set_write_timeout(t)?;
                Conn::Cluster(c)
            }
        })
    }

    /// Runs `f` on a pooled (or new) connection, under the breaker. A connection
    /// that saw an error is dropped (its state is unknown), never pooled again.
    fn call<T>(
        &self,
        f: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T, Failure> {
        let Some(probe) = self.breaker.admit() else {
            bump(&self.stats.skipped);
            return Err(Failure::Skipped);
        };
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let result = match pooled {
            Some(c) => Ok(c),
            None => self.connect(),
        }
        .and_then(|mut conn| f(conn.as_dyn()).map(|v| (v, conn)));
        match result {
            Ok((v, conn)) => {
                self.breaker.success(probe);
                let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                if pool.len() < self.config.pool_size {
                    pool.push(conn);
                }
                Ok(v)
            }
            Err(e) => {
                self.count_error(&e);
                if self.breaker.failure(probe) {
                    bump(&self.stats.breaker_trips);
                    // Whatever is pooled went to the same failing server.
                    self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
                }
                Err(Failure::Failed)
            }
        }
    }

    fn count_error(&self, e: &RedisError) {
        if e.is_timeout() {
            bump(&self.stats.timeouts);
        } else {
            bump(&self.stats.errors);
        }
    }

    /// The value stored for a session: format byte, then the record (sealed if a
    /// key is set). `None` if the codec declines.
    fn seal(&self, key: &[u8], s: &Session<P>, timeout: u64) -> Option<Vec<u8>> {
        let payload = Zeroizing::new(self.codec.encode(s.payload())?);
        let record = Zeroizing::new(encode_record(
            s.id(),
            s.sid_ctx(),
            s.time(),
            timeout,
            &payload,
        ));
        Some(match &self.cipher {
            None => {
                let mut v = Vec::with_capacity(1 + record.len());
                v.push(FORMAT_PLAIN);
                v.extend_from_slice(&record);
                v
            }
            Some(cipher) => {
                let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
                let ct = cipher
                    .encrypt(
                        &nonce,
                        Payload {
                            msg: &record,
                            aad: key,
                        },
                    )
                    .ok()?;
                let mut v = Vec::with_capacity(1 + NONCE_LEN + ct.len());
                v.push(FORMAT_SEALED);
                v.extend_from_slice(&nonce);
                v.extend_from_slice(&ct);
                v
            }
        })
    }

    /// The record in a stored value, if it opens and parses.
    fn open(&self, key: &[u8], value: &[u8]) -> Option<Record> {
        let (&format, rest) = value.split_first()?;
        match (&self.cipher, format) {
            (None, FORMAT_PLAIN) => decode_record(rest),
            (Some(cipher), FORMAT_SEALED) if rest.len() >= NONCE_LEN => {
                let (nonce, ct) = rest.split_at(NONCE_LEN);
                let pt = Zeroizing::new(
                    cipher
                        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: key })
                        .ok()?,
                );
                decode_record(&pt)
            }
            _ => None,
        }
    }

    /// Turns a fetched value into a session, checking id, sid_ctx and expiry.
    fn to_session(&self, id: &[u8], key: &[u8], value: &[u8]) -> Option<Arc<Session<P>>> {
        let r = self.open(key, value)?;
        if r.id != id {
            return None;
        }
        if let Some(want) = &self.config.sid_ctx {
            if r.sid_ctx != *want {
                return None;
            }
        }
        if self.now() > r.time.saturating_add(r.timeout) {
            return None;
        }
        let payload = self.codec.decode(&r.payload)?;
        let s = Session::new(&r.id, &r.sid_ctx, payload)
            .ok()?
            .with_time(r.time)
            .with_timeout(Duration::from_secs(r.timeout));
        Some(Arc::new(s))
    }

    /// Not API: the decoding path of a fetched value (format byte, decryption,
    /// record, codec, session checks) for `fuzz/fuzz_targets/redis_codec.rs`.
    #[doc(hidden)]
    pub fn __fuzz_to_session(
        &self,
        id: &[u8],
        key: &[u8],
        value: &[u8],
    ) -> Option<Arc<Session<P>>> {
        self.to_session(id, key, value)
    }

    fn found(&self, id: &[u8], key: &[u8], value: Option<Vec<u8>>) -> Lookup<Arc<Session<P>>> {
        let Some(value) = value.map(Zeroizing::new) else {
            bump(&self.stats.misses);
            return Lookup::Absent;
        };
        match self.to_session(id, key, &value) {
            Some(s) => {
                bump(&self.stats.hits);
                Lookup::Found(s)
            }
            None => {
                bump(&self.stats.rejected);
                Lookup::Absent
            }
        }
    }

    /// `GET`: the session stored under `id`, checked.
    pub fn fetch(&self, id: &[u8]) -> Lookup<Arc<Session<P>>> {
        if id.is_empty() || id.len() > crate::MAX_ID_LEN {
            return Lookup::Absent;
        }
        let key = self.key(id);
        match self.call(|c| redis::cmd("GET").arg(&key).query::<Option<Vec<u8>>>(c)) {
            Ok(v) => self.found(id, &key, v),
            Err(_) => Lookup::Unavailable,
        }
    }

    /// `GETDEL`: atomically removes and returns the session stored under `id` (of
    /// several concurrent takes across the fleet, exactly one gets it). A value
    /// that fails the checks is removed too and is `Absent`.
    pub fn take(&self, id: &[u8]) -> Lookup<Arc<Session<P>>> {
        if id.is_empty() || id.len() > crate::MAX_ID_LEN {
            return Lookup::Absent;
        }
        let key = self.key(id);
        match self.call(|c| redis::cmd("GETDEL").arg(&key).query::<Option<Vec<u8>>>(c)) {
            Ok(v) => self.found(id, &key, v),
            Err(_) => Lookup::Unavailable,
        }
    }

    /// `SET … EX ttl` with the session's remaining lifetime (nothing if it has
    /// expired or the codec declines). Returns whether Redis stored it.
    pub fn store(&self, s: &Session<P>) -> bool {
        let timeout = s.timeout().unwrap_or(self.config.session_timeout).as_secs();
        let expiry = s.time().saturating_add(timeout);
        let now = self.now();
        if now > expiry {
            return false;
        }
        // Valid through second `expiry` inclusive; Redis caps EX values.
        let ttl = (expiry - now).clamp(1, 1 << 40);
        let key = self.key(s.id());
        let Some(value) = self.seal(&key, s, timeout) else {
            return false;
        };
        let value = Zeroizing::new(value);
        let ok = self
            .call(|c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(value.as_slice())
                    .arg("EX")
                    .arg(ttl)
                    .query::<()>(c)
            })
            .is_ok();
        if ok {
            bump(&self.stats.writes);
        }
        ok
    }

    /// `DEL`. Returns whether Redis answered (whatever it deleted).
    pub fn delete(&self, id: &[u8]) -> bool {
        if id.is_empty() || id.len() > crate::MAX_ID_LEN {
            return false;
        }
        let key = self.key(id);
        let ok = self
            .call(|c| redis::cmd("DEL").arg(&key).query::<i64>(c))
            .is_ok();
        if ok {
            bump(&self.stats.deletes);
        }
        ok
    }
}

impl<P: Send + Sync + 'static, C: Codec<P>> SessionStore<P> for RedisStore<P, C> {
    fn new_session(&self, session: &Arc<Session<P>>) {
        self.store(session);
    }

    fn get_session(&self, id: &[u8]) -> Option<Arc<Session<P>>> {
        match self.fetch(id) {
            Lookup::Found(s) => Some(s),
            Lookup::Absent | Lookup::Unavailable => None,
        }
    }

    fn remove_session(&self, session: &Arc<Session<P>>, cause: RemovalCause) {
        if !self.config.propagate_removes || cause != RemovalCause::Removed {
            return;
        }
        // An expired session is dropped by Redis's TTL anyway.
        let timeout = session
            .timeout()
            .unwrap_or(self.config.session_timeout)
            .as_secs();
        if self.now() > session.time().saturating_add(timeout) {
            return;
        }
        self.delete(session.id());
    }
}

impl<P, C> fmt::Debug for RedisStore<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.config)
            .field("stats", &self.stats.snapshot())
            .field("breaker_open", &self.breaker.is_open())
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// rustls
// ---------------------------------------------------------------------------

/// A [`RustlsStore`] with a [`RedisStore`] second tier, as rustls's
/// `StoresServerSessions`.
///
/// - `put` stores locally and in Redis (the cache's new-session callback);
/// - `get` (TLS 1.2 session ids) looks locally, then in Redis (the cache's get
///   callback; a hit is added locally and counts `cb_hits`);
/// - `take` (TLS 1.3 tickets) is decided by Redis: a `GETDEL` that returns the
///   ticket wins it (and any local copy is dropped); one that finds nothing means
///   the ticket was used elsewhere (or never shared), so the local copy is dropped
///   too and it is a miss. Only when Redis is unavailable does the local tier
///   decide alone (a ticket stays single-use per server, not fleet-wide, then).
///
/// The local tier's removals (evictions, expiries) are not sent to Redis: the
/// shared tier keeps its sessions until their TTL.
pub struct RedisRustlsStore {
    local: Arc<RustlsStore>,
    redis: Arc<RedisStore<Secret, SecretCodec>>,
    takes: Counters,
}

/// A [`Clock`] shared through an `Arc`.
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> u64 {
        self.0.now()
    }
}

impl RedisRustlsStore {
    /// A local cache of `capacity` sessions (0 = unlimited) with `redis`'s session
    /// timeout and clock, backed by `redis`.
    pub fn new(capacity: usize, redis: Arc<RedisStore<Secret, SecretCodec>>) -> Arc<Self> {
        let cache = SessionCache::builder()
            .capacity(capacity)
            .timeout(redis.config.session_timeout)
            .clock(SharedClock(Arc::clone(&redis.config.clock)))
            .store(Arc::clone(&redis))
            .build();
        Self::with_cache(cache, redis)
    }

    /// Over a cache configured by the caller, which must have `redis` as its store
    /// (`builder.store(Arc::clone(&redis))`) and the same timeout and clock.
    pub fn with_cache(
        cache: SessionCache<Secret>,
        redis: Arc<RedisStore<Secret, SecretCodec>>,
    ) -> Arc<Self> {
        Arc::new(RedisRustlsStore {
            local: RustlsStore::with_cache(cache),
            redis,
            takes: Counters::new(),
        })
    }

    /// The local tier.
    pub fn local(&self) -> &Arc<RustlsStore> {
        &self.local
    }

    /// The second tier.
    pub fn redis(&self) -> &Arc<RedisStore<Secret, SecretCodec>> {
        &self.redis
    }

    /// The local tier's statistics plus the takes decided by Redis (a won ticket
    /// counts a hit, a lost or absent one a miss). `cb_hits` counts TLS 1.2
    /// sessions found in Redis; [`redis`](Self::redis)`.stats()` has the rest.
    pub fn stats(&self) -> Stats {
        let mut s = self.local.stats();
        let t = self.takes.snapshot();
        s.hits += t.hits;
        s.misses += t.misses;
        s.timeouts += t.timeouts;
        s
    }
}

impl ::rustls::server::StoresServerSessions for RedisRustlsStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.local.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.local.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.redis.take(key) {
            Lookup::Found(s) => {
                drop(self.local.cache().take(key));
                let cache = self.local.cache();
                if s.is_expired_at(cache.now(), cache.timeout()) {
                    self.takes.bump(Counter::Timeouts);
                    return None;
                }
                self.takes.bump(Counter::Hits);
                Some(s.payload().as_bytes().to_vec())
            }
            Lookup::Absent => {
                drop(self.local.cache().take(key));
                self.takes.bump(Counter::Misses);
                None
            }
            Lookup::Unavailable => self.local.take(key),
        }
    }

    fn can_cache(&self) -> bool {
        true
    }
}

impl fmt::Debug for RedisRustlsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRustlsStore")
            .field("local", &self.local)
            .field("redis", &self.redis)
            .finish()
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_garbage() {
        let v = encode_record(b"id", b"ctx", 5, 300, b"payload");
        let r = decode_record(&v).unwrap();
        assert_eq!(
            (&r.id[..], &r.sid_ctx[..], r.time, r.timeout),
            (&b"id"[..], &b"ctx"[..], 5, 300)
        );
        assert_eq!(&r.payload[..], b"payload");
        let header = 1 + 2 + 1 + 3 + 16;
        for n in 0..header {
            assert!(decode_record(&v[..n]).is_none(), "{n}");
        }
        assert_eq!(&decode_record(&v[..header]).unwrap().payload[..], b"");
        assert!(decode_record(&[]).is_none());
        assert!(decode_record(&[40, 1, 2]).is_none());
    }

    #[test]
    fn keys_are_prefix_and_hex() {
        assert_eq!(hex_key(b"p:", &[0x00, 0xab, 0xff]), b"p:00abff".to_vec());
    }

    #[test]
    fn breaker_opens_backs_off_and_probes_once() {
        let b = Breaker::new(2, Duration::from_millis(30), Duration::from_millis(100));
        assert_eq!(b.admit(), Some(false));
        assert!(!b.failure(false));
        assert!(b.failure(false)); // threshold reached: open
        assert_eq!(b.admit(), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.admit(), Some(true)); // the probe
        assert_eq!(b.admit(), None); // only one at a time
        assert!(b.failure(true)); // reopened, backoff doubled
        assert_eq!(b.admit(), None);
        std::thread::sleep(Duration::from_millis(70));
        assert_eq!(b.admit(), Some(true));
        b.success(true);
        assert!(!b.is_open());
        assert_eq!(b.admit(), Some(false));
    }

    #[test]
    fn sealing_round_trip_and_wrong_key() {
        let mk = |key: Option<[u8; 32]>| {
            let mut c = RedisConfig::new("redis://127.0.0.1:1/");
            if let Some(k) = key {
                c = c.encryption_key(k);
            }
            RedisStore::new(c).unwrap()
        };
        let s = Session::new(b"id1", b"", Secret::new(b"top secret".to_vec()))
            .unwrap()
            .with_time(crate::clock::system_now());
        let (a, b, plain) = (mk(Some([1; 32])), mk(Some([2; 32])), mk(None));
        let key = a.key(s.id());
        let sealed = a.seal(&key, &s, 300).unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"top secret"));
        let back = a.to_session(b"id1", &key, &sealed).unwrap();
        assert_eq!(back.payload().as_bytes(), b"top secret");
        assert!(b.to_session(b"id1", &key, &sealed).is_none(), "wrong key");
        assert!(
            plain.to_session(b"id1", &key, &sealed).is_none(),
            "sealed, no key"
        );
        assert!(
            a.to_session(b"id1", b"other key", &sealed).is_none(),
            "moved value"
        );
        let clear = plain.seal(&key, &s, 300).unwrap();
        assert!(
            a.to_session(b"id1", &key, &clear).is_none(),
            "plaintext refused"
        );
        assert!(plain.to_session(b"id2", &key, &clear).is_none(), "other id");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(a.to_session(b"id1", &key, &bad).is_none(), "tampered");
    }

    #[test]
    fn dead_server_is_a_counted_miss_then_skipped() {
        // Port 1 on loopback: connection refused at once.
        let store = RedisStore::new(RedisConfig::new("redis://127.0.0.1:1/").breaker(
            2,
            Duration::from_secs(60),
            Duration::from_secs(60),
        ))
        .unwrap();
        for _ in 0..5 {
            assert!(matches!(store.fetch(b"x"), Lookup::Unavailable));
        }
        let st = store.stats();
        assert_eq!(st.errors + st.timeouts, 2);
        assert_eq!(st.skipped, 3);
        assert_eq!(st.breaker_trips, 1);
        assert!(store.breaker_open());
    }
}
