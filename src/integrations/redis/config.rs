//! [`RedisConfig`]: what a [`RedisStore`](super::RedisStore) connects to and how it
//! behaves.

use super::crypto::KeyRing;
#[cfg(doc)]
use super::RedisStore;
#[cfg(doc)]
use crate::RemovalCause;
use crate::{Clock, SystemClock};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

#[derive(Clone)]
pub(super) enum Target {
    Single(String),
    Cluster(Vec<String>),
}

/// What a [`RedisStore`] connects to and how it behaves. Built with
/// [`RedisConfig::new`] (one server) or [`RedisConfig::cluster`], then setters.
#[derive(Clone)]
pub struct RedisConfig {
    pub(super) target: Target,
    pub(super) key_prefix: Vec<u8>,
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) session_timeout: Duration,
    pub(super) sid_ctx: Option<Vec<u8>>,
    pub(super) ring: Option<KeyRing>,
    pub(super) plaintext: bool,
    pub(super) pool_size: usize,
    pub(super) breaker_threshold: u32,
    pub(super) breaker_backoff: Duration,
    pub(super) breaker_max_backoff: Duration,
    pub(super) propagate_removes: bool,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) queue_capacity: usize,
    pub(super) batch_size: usize,
    pub(super) writer_timeout: Duration,
    pub(super) drop_timeout: Duration,
    pub(super) resolve_interval: Duration,
}

/// The default total deadline of a lookup: 5 ms.
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
            ring: None,
            plaintext: false,
            pool_size: 16,
            breaker_threshold: 3,
            breaker_backoff: Duration::from_millis(500),
            breaker_max_backoff: Duration::from_secs(10),
            propagate_removes: true,
            clock: Arc::new(SystemClock),
            queue_capacity: 4096,
            batch_size: 128,
            writer_timeout: Duration::from_secs(1),
            drop_timeout: Duration::from_secs(1),
            resolve_interval: Duration::from_secs(30),
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

    /// The prefix of every key (default `tls-session:`): the namespace. Give each
    /// service its own; it is bound into every sealed value, so two services
    /// sharing a key ring still cannot resume each other's sessions.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.key_prefix = prefix.as_ref().to_vec();
        self
    }

    /// The total deadline of one lookup (`GET`, `GETDEL`; default 5 ms): making a
    /// connection if none is pooled, writing, reading and any retry (a cluster
    /// redirect, a key ring's older keys) all fit in it. A lookup that goes past
    /// it is `Unavailable` (counted in `timeouts`) and its connection dropped.
    /// Writes never wait on it: they go through the write queue.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_micros(1));
        self
    }

    /// The most a lookup spends making a new connection (default 5 ms), within
    /// its [`timeout`](Self::timeout).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_micros(1));
        self
    }

    /// The bound of the write queue (default 4096 writes and deletes). A write
    /// that finds it full is dropped and counted (`RedisStats::dropped`): a
    /// handshake never waits for Redis. A delete that finds it full drops the
    /// oldest queued write instead (also counted), and is itself dropped only
    /// when the queue holds nothing but deletes.
    #[must_use]
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// The most writes the background writer sends in one pipeline (default 128).
    #[must_use]
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// The background writer's limit on connecting and on each read and write of
    /// a batch (default 1 s). A batch that fails (I/O error, timeout) is sent
    /// again (after a back-off, on a new connection) until it succeeds or the
    /// store is dropped; meanwhile the queue fills and further writes are dropped
    /// and counted. A batch the server refuses (an error reply: `OOM`,
    /// `READONLY`, `NOPERM`...) is dropped and counted in `errors`.
    #[must_use]
    pub fn writer_timeout(mut self, timeout: Duration) -> Self {
        self.writer_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long dropping the store waits for the write queue to drain (default
    /// 1 s); what is left then is lost.
    #[must_use]
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// How often the background writer resolves the host names again (default
    /// 30 s; every second while a name has never resolved). Names are resolved
    /// when the store is built and then only by the writer: never on a handshake.
    #[must_use]
    pub fn resolve_interval(mut self, every: Duration) -> Self {
        self.resolve_interval = every.max(Duration::from_millis(10));
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

    /// This store's session id context: only sessions made for it are written
    /// and handed out (others are misses, counted in `rejected`), and it is bound
    /// into every sealed value's associated data, so a value written under another
    /// sid_ctx does not even open. Default: none (any; the cache checks it again).
    #[must_use]
    pub fn sid_ctx(mut self, sid_ctx: impl AsRef<[u8]>) -> Self {
        self.sid_ctx = Some(sid_ctx.as_ref().to_vec());
        self
    }

    /// The key ring (required unless [`insecure_plaintext`](Self::insecure_plaintext)):
    /// Redis keys are the prefix, the current key's id and a keyed MAC of the
    /// session id (never the id); values are sealed with XChaCha20-Poly1305 (a
    /// random 192-bit nonce each) under the current key, the associated data
    /// binding the key prefix (the namespace), [`sid_ctx`](Self::sid_ctx) and the
    /// Redis key. Older keys of the ring are still read. Values that do not open
    /// (another key, namespace or sid_ctx, tampering, plaintext) are misses,
    /// counted `rejected`.
    #[must_use]
    pub fn key_ring(mut self, ring: KeyRing) -> Self {
        self.ring = Some(ring);
        self
    }

    /// A ring of this one key, with id 0: [`key_ring`](Self::key_ring)`(KeyRing::new(0, &key))`.
    #[must_use]
    pub fn encryption_key(self, key: [u8; 32]) -> Self {
        let key = Zeroizing::new(key);
        self.key_ring(KeyRing::new(0, &key))
    }

    /// Store session secrets in Redis **in the clear**, keyed by the session id
    /// in hex: whoever reads Redis (its replication stream, its RDB files) can
    /// decrypt recorded TLS 1.2 traffic and resume the sessions; whoever writes
    /// it can plant sessions. Only for a Redis trusted as much as the server's
    /// memory. Without it (or a [`key_ring`](Self::key_ring)) building the
    /// store fails with [`RedisStoreError::NoKey`](super::RedisStoreError::NoKey).
    #[must_use]
    pub fn insecure_plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }

    /// The most idle connections kept for reuse (default 16; at least 1).
    #[must_use]
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// The circuit breaker: after `threshold` consecutive failures (default 3),
    /// lookups skip Redis; the background writer probes (`PING`) after `backoff`
    /// (default 500 ms), doubling while probes keep
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
            .field("key_ring", &self.ring)
            .field("insecure_plaintext", &self.plaintext)
            .field("pool_size", &self.pool_size)
            .field("propagate_removes", &self.propagate_removes)
            .field("queue_capacity", &self.queue_capacity)
            .field("writer_timeout", &self.writer_timeout)
            .finish_non_exhaustive()
    }
}
