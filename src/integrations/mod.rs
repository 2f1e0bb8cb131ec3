//! Adapters that plug the cache into TLS libraries.
//!
//! - `rustls` (feature `rustls`): `RustlsStore`, a drop-in
//!   `rustls::server::StoresServerSessions`.
//! - `openssl` (feature `openssl`): `openssl::install`, the cache as a rust-openssl
//!   `SslContext`'s session cache (`docs/OPENSSL.md`).
//! - `redis` (feature `redis`): `RedisStore`, Redis (or Redis Cluster) as a shared
//!   second tier behind the local cache (`docs/REDIS.md`).

#[cfg(feature = "openssl")]
pub mod openssl;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "rustls")]
pub mod rustls;
