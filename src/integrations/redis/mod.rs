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

#[cfg(doc)]
use crate::{RemovalCause, SessionCache, SessionStore};

mod breaker;
mod config;
mod crypto;
mod pool;
mod queue;
mod record;
mod rustls_store;
mod stats;
mod store;

pub use config::{RedisConfig, DEFAULT_REDIS_TIMEOUT};
#[doc(hidden)]
pub use crypto::Sealer;
#[cfg(feature = "openssl")]
pub use record::DerCodec;
#[doc(hidden)]
pub use record::{decode_session, Expect};
pub use record::{BytesCodec, Codec, SecretCodec};
pub use rustls_store::RedisRustlsStore;
pub use stats::RedisStats;
pub use store::RedisStore;

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
