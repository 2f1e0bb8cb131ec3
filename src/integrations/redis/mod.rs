//! [`RedisStore`]: Redis (or Redis Cluster, or Valkey) as a shared second tier.
//!
//! When TLS terminators scale out behind a load balancer, a client's next
//! connection lands on another machine; resumption then only works if the machines
//! share a store. The local [`SessionCache`] stays the first tier; a [`RedisStore`]
//! plugged in as its [`SessionStore`] is the second:
//!
//! - a new session (`new_session`) is queued for `SET key value EX ttl`, the TTL
//!   being the session's remaining lifetime; a background writer sends the queue
//!   in pipelined batches, so **a handshake never waits on Redis for a write**
//!   (a full queue drops the write and counts it);
//! - the key is the namespace prefix, the ring key's id and a keyed MAC of the
//!   session id ([`KeyRing`]): Redis never sees a session id; the value is a small
//!   record (id, sid_ctx, time, timeout, then the payload through a [`Codec`])
//!   sealed with XChaCha20-Poly1305, the associated data binding the namespace and
//!   sid_ctx. A key ring is required unless plaintext is chosen by name
//!   ([`RedisConfig::insecure_plaintext`]);
//! - an internal miss (`get_session`) fetches with `GET` (under the current ring
//!   key, then each older one), checks the record (id, sid_ctx, expiry,
//!   authentication tag) and hands it to the cache, which adds it locally (unless
//!   `NO_INTERNAL_STORE`) and counts a `cb_hits`; anything that fails a check is a
//!   miss, never a panic;
//! - an explicit removal (`remove_session` with [`RemovalCause::Removed`]:
//!   `SSL_CTX_remove_session`, [`SessionCache::remove`]) is a queued `DEL` (unless
//!   turned off with [`RedisConfig::propagate_removes`]); the local tier's
//!   housekeeping (evictions, expiries, flushes) and its takes never reach Redis.
//!   While the `DEL` is queued or being sent, this store's lookups of the id are
//!   misses without asking Redis (counted in `pending_delete_misses`), so this
//!   store does not fetch a removed session back (unless the `DEL` is dropped:
//!   docs/REDIS.md, "The write queue"). [`RedisStore::flush`] waits until queued
//!   writes and deletes reached Redis;
//! - [`RedisStore::take`] is an atomic `GETDEL` (an `EVAL` script, `GET` then
//!   `DEL`, on Redis < 6.2): of two servers racing for one TLS 1.3 ticket exactly one gets it.
//!   [`RedisRustlsStore`] wires it into rustls's `take`.
//!
//! Faults: a lookup has one total deadline, [`RedisConfig::timeout`] (default
//! 5 ms: connect, write, read, any retry); host names are resolved when the store
//! is built and then in the background; a connection that failed is dropped and a
//! new one made on the next call; after [`RedisConfig::breaker`]`.0` consecutive
//! failures a circuit breaker skips every lookup until the background writer's
//! probe (a `PING` once each back-off has passed, the back-off doubling up to a
//! maximum while probes fail) or one of its batches gets through: a handshake
//! never pays for probing a stalled server.
//! While Redis is skipped, slow or failing, the local tier keeps serving and a
//! lookup that misses locally is a miss (a full handshake). [`RedisStore::stats`]
//! counts tier-2 hits, misses, errors, timeouts, skipped calls and the queue.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tls_session_cache::{KeyRing, RedisConfig, RedisRustlsStore, RedisStore};
//!
//! // The same secrets and ids on every server of the fleet (from a secret store).
//! let current = KeyRing::secret_from_hex(&std::env::var("TLS_REDIS_KEY_2")?)?;
//! let previous = KeyRing::secret_from_hex(&std::env::var("TLS_REDIS_KEY_1")?)?;
//! let redis = RedisStore::new(
//!     RedisConfig::new("redis://10.0.0.5:6379/")
//!         .key_prefix("tls:my-service:")
//!         .timeout(Duration::from_millis(5))
//!         .key_ring(KeyRing::new(2, &current).with_older(1, &previous)?),
//! )?;
//! // rustls: `config.session_storage = store;`
//! let store = RedisRustlsStore::new(20_480, Arc::clone(&redis));
//! # let _ = store;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `docs/REDIS.md` has the design, the failure behaviour, key rotation and
//! measurements.

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
mod ticketer;

pub use config::{RedisConfig, DEFAULT_REDIS_TIMEOUT};
#[doc(hidden)]
pub use crypto::Sealer;
pub use crypto::{KeyRing, KeyRingError, MAX_OLDER_KEYS};
#[cfg(feature = "openssl")]
pub use record::DerCodec;
#[doc(hidden)]
pub use record::{decode_session, Expect};
pub use record::{BytesCodec, Codec, SecretCodec};
pub use rustls_store::RedisRustlsStore;
pub use stats::{RedisStats, LOOKUP_BUCKETS_US};
pub use store::{RedisStore, RedisStoreError};
pub use ticketer::{RedisTicketer, TicketerOptions, TicketerStats};

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
