//! # tls-session-cache
//!
//! A TLS server session cache that behaves exactly like OpenSSL's internal one
//! (`SSL_CTX_add_session`, `SSL_CTX_remove_session`, the handshake's lookup,
//! timeouts, the size limit, the cache modes and the statistics) without its one
//! lock per context.
//!
//! ## Usage
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use tls_session_cache::{CacheMode, ManualClock, Session, SessionCache};
//!
//! let clock = ManualClock::new(1_700_000_000);
//! let cache: SessionCache<Vec<u8>> = SessionCache::builder()
//!     .capacity(20_480)
//!     .timeout(Duration::from_secs(300))
//!     .mode(CacheMode::SERVER)
//!     .clock(clock.clone())
//!     .build();
//!
//! let s = Arc::new(Session::new(b"an id", b"my service", b"secret state".to_vec())?
//!     .with_time(clock.now()));
//! assert!(cache.add(&s));
//! assert!(cache.get(b"an id", b"my service").is_some());
//!
//! clock.advance(Duration::from_secs(301));
//! assert!(cache.get(b"an id", b"my service").is_none()); // expired
//! assert_eq!(cache.stats().timeouts, 1);
//! # use tls_session_cache::Clock;
//! # Ok::<(), tls_session_cache::Error>(())
//! ```
//!
//! Many threads share one cache by reference (`SessionCache` is `Send + Sync`):
//!
//! ```
//! use std::sync::Arc;
//! use tls_session_cache::{Session, SessionCache};
//!
//! let cache: SessionCache<u64> = SessionCache::builder().capacity(1_000).build();
//! std::thread::scope(|scope| {
//!     for t in 0..4u64 {
//!         let cache = &cache;
//!         scope.spawn(move || {
//!             for i in 0..1_000u64 {
//!                 let id = [t.to_le_bytes(), i.to_le_bytes()].concat();
//!                 let s = Arc::new(Session::new(&id, b"", i).unwrap());
//!                 cache.add(&s);
//!                 let _ = cache.get(&id, b"");
//!             }
//!         });
//!     }
//! });
//! assert!(cache.len() <= 1_000);
//! ```
//!
//! ## Semantics
//!
//! OpenSSL's, with a few deliberate differences (a size limit of N holds N
//! sessions, not N-1; the key is the id alone; adding the identical object again
//! does not reorder it; an identity-based [`SessionCache::remove_if_same`] exists).
//! `docs/SEMANTICS.md` lists every rule.
//!
//! ## Consistency under concurrency
//!
//! Every operation is linearizable on a single id: of two racing adds of different
//! objects with one id, one wins and the other's reference is released exactly
//! once; of two racing removes, exactly one returns true. `len()` never exceeds the
//! capacity, even transiently. The eviction order is exact single-threaded and
//! approximate under concurrency. Statistics are exact once quiescent.
//!
//! ## Performance
//!
//! Lookups and no-op adds take one shard *read* lock plus atomics; a replace also
//! takes its shard's eviction-partition mutex; adding a new id takes the shard
//! write lock, and a removal one shard write lock; an eviction finds its victim
//! through atomics and takes one lock, the victim's shard write lock, whatever
//! the number of cores. Nothing takes a global lock. `docs/BENCHMARKS.md` has the measurements against the peers.
//!
//! ## Features
//!
//! | feature | what |
//! |---|---|
//! | (none) | [`SessionCache`], [`Session`], [`SessionStore`] (with [`RemovalCause`]), clocks, modes, [`Stats`] |
//! | `rustls` | `RustlsStore`: `rustls::server::StoresServerSessions` (rustls 0.23, ring) |
//! | `openssl` | `install_openssl`: the cache as a rust-openssl `SslContext`'s session cache |
//! | `redis` | `RedisStore` / `RedisRustlsStore`: Redis (or Redis Cluster) as a shared second tier; `RedisTicketer`: ticket keys shared by a fleet |
//! | `metrics` | `metrics::MetricsReporter`: the statistics through the `metrics` facade (`tls_session_cache_*`, label `cache`) |
//!
//! ## Safety and correctness
//!
//! The unsafe code of the core is confined to `src/slot.rs` (the map key that is a
//! session pointer, hashed and compared as the session's id; the cache's one
//! strong reference per session: taking it, upgrading in place under an epoch
//! guard through a guard-bound `Shared<'g, P>`, releasing it after an unlink —
//! with a weak reference deferred to the epoch after a replace), plus the
//! eviction partitions' raw identities and their access rule (`src/order.rs`:
//! a shard's write lock, or its read lock plus the partition mutex), the probe of
//! a shard's table in `src/map/dashmap.rs`, and the coarse clock's
//! `clock_gettime` (`src/clock.rs`); the OpenSSL adapter's FFI is in
//! `src/integrations/openssl.rs`. The design and its invariants are in
//! `docs/DESIGN.md`; loom models (and their planted mutants) check the races.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations)]

mod builder;
mod cache;
mod clock;
mod error;
mod id;
mod map;
#[cfg(feature = "metrics")]
pub mod metrics;
mod mode;
mod mutant;
mod order;
#[cfg(tls_session_cache_loom)]
#[doc(hidden)]
pub use order::__loom_group_summary_race;
mod raw;
mod removals;
mod session;
mod slot;
mod stats;
mod store;
mod sync;

#[cfg(any(feature = "rustls", feature = "openssl", feature = "redis"))]
pub mod integrations;

pub use builder::{Builder, DEFAULT_CAPACITY, DEFAULT_TIMEOUT};
pub use cache::SessionCache;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
#[cfg(feature = "openssl")]
pub use integrations::openssl::{install as install_openssl, NativeSession, OpensslCache};
#[cfg(feature = "redis")]
pub use integrations::redis::{
    KeyRing, RedisConfig, RedisRustlsStore, RedisStats, RedisStore, RedisStoreError, RedisTicketer,
};
#[cfg(feature = "rustls")]
pub use integrations::rustls::RustlsStore;
pub use mode::CacheMode;
pub use session::{Session, MAX_ID_LEN, MAX_SID_CTX_LEN};
pub use stats::Stats;
pub use store::{RemovalCause, SessionStore};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_doctests {}

/// `docs/DESIGN.md`: slot states, reference ownership, locks and epochs.
#[doc = include_str!("../docs/DESIGN.md")]
pub mod design {}

/// `docs/SEMANTICS.md`: every rule, and the deliberate differences from OpenSSL.
#[doc = include_str!("../docs/SEMANTICS.md")]
pub mod semantics {}
