//! Adapters that plug the cache into TLS libraries.
//!
//! - `rustls` (feature `rustls`): `RustlsStore`, a drop-in
//!   `rustls::server::StoresServerSessions`.
//! - `openssl` (feature `openssl`): `openssl::install`, the cache as a rust-openssl
//!   `SslContext`'s session cache (`docs/OPENSSL.md`).

#[cfg(feature = "openssl")]
pub mod openssl;
#[cfg(feature = "rustls")]
pub mod rustls;
