//! Cache modes, with OpenSSL's bit values (`SSL_SESS_CACHE_*`).

bitflags::bitflags! {
    /// How the handshake paths use the cache (`SSL_CTX_set_session_cache_mode`).
    ///
    /// The bit values are OpenSSL's, so a mode read from an OpenSSL configuration
    /// converts with [`CacheMode::from_bits_truncate`]. Direct calls to
    /// [`add`](crate::SessionCache::add) and [`remove`](crate::SessionCache::remove)
    /// work whatever the mode; the mode steers [`get`](crate::SessionCache::get)
    /// (the resumption lookup) and [`update_cache`](crate::SessionCache::update_cache)
    /// (the store after a full handshake).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CacheMode: u32 {
        /// No caching after handshakes (`SSL_SESS_CACHE_OFF`, 0). Same as `CacheMode::empty()`.
        const OFF = 0x0;
        /// Client-side caching (`SSL_SESS_CACHE_CLIENT`).
        const CLIENT = 0x1;
        /// Server-side caching (`SSL_SESS_CACHE_SERVER`), the default.
        const SERVER = 0x2;
        /// Both sides (`SSL_SESS_CACHE_BOTH`).
        const BOTH = 0x3;
        /// Do not flush expired sessions every 256 handshakes (`SSL_SESS_CACHE_NO_AUTO_CLEAR`).
        const NO_AUTO_CLEAR = 0x80;
        /// Lookups skip the internal cache and only ask the store (`SSL_SESS_CACHE_NO_INTERNAL_LOOKUP`).
        const NO_INTERNAL_LOOKUP = 0x100;
        /// New and externally found sessions are not stored internally (`SSL_SESS_CACHE_NO_INTERNAL_STORE`).
        const NO_INTERNAL_STORE = 0x200;
        /// Both of the above (`SSL_SESS_CACHE_NO_INTERNAL`).
        const NO_INTERNAL = 0x300;
        /// Every add stamps the session's time with the clock's now (`SSL_SESS_CACHE_UPDATE_TIME`).
        const UPDATE_TIME = 0x400;
    }
}

impl Default for CacheMode {
    fn default() -> Self {
        CacheMode::SERVER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_values_are_openssls() {
        assert_eq!(CacheMode::OFF.bits(), 0);
        assert_eq!(CacheMode::CLIENT.bits(), 1);
        assert_eq!(CacheMode::SERVER.bits(), 2);
        assert_eq!(CacheMode::BOTH, CacheMode::CLIENT | CacheMode::SERVER);
        assert_eq!(CacheMode::NO_AUTO_CLEAR.bits(), 0x80);
        assert_eq!(
            CacheMode::NO_INTERNAL,
            CacheMode::NO_INTERNAL_LOOKUP | CacheMode::NO_INTERNAL_STORE
        );
        assert_eq!(CacheMode::UPDATE_TIME.bits(), 0x400);
        assert_eq!(CacheMode::default(), CacheMode::SERVER);
    }
}
