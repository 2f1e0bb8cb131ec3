//! Adapters that plug the cache into TLS libraries.
//!
//! - [`rustls`] (feature `rustls`): [`RustlsStore`](rustls::RustlsStore), a
//!   drop-in `rustls::server::StoresServerSessions`.

pub mod rustls;
