//! [`RustlsStore`]: the cache as rustls's server-side session storage.
//!
//! rustls 0.23 asks its `ServerConfig::session_storage` for three things:
//!
//! - TLS 1.2 session-id resumption: `put(session_id, state)` after a full
//!   handshake, `get(session_id)` when a client offers an id;
//! - TLS 1.3 stateful resumption (the default when no ticketer is set): `put(ticket,
//!   state)` for each ticket issued (`send_tls13_tickets`, 2 by default, 32-byte
//!   random keys) and `take(ticket)` when a client offers one (single use).
//!
//! Keys come from untrusted clients and may have any length. The cache holds ids of
//! 1 to 32 bytes, which covers every key rustls generates (TLS 1.2 session ids
//! and TLS 1.3 stateful tickets are 32 random bytes); any other key is a miss for
//! `get`/`take` and `put` returns false, never a panic.
//!
//! A store made with [`RustlsStore::new`] or [`RustlsStore::with_cache`] owns its
//! cache and stores sessions under the empty session id context. Several
//! `ServerConfig`s (one per SNI name, per client-auth policy, or rebuilt at every
//! certificate reload) can share one cache's capacity with
//! [`RustlsStore::scoped`]: each store tags its sessions with its scope (as an
//! OpenSSL `sid_ctx`) and only finds (`get`) or consumes (`take`) sessions of its
//! own scope, so configurations never resume each other's sessions. rustls hands
//! the store only the session key, so the scope has to be the store's.
//!
//! ## Lifetimes, and when a stateless ticketer is the better choice
//!
//! rustls advertises a lifetime of 24 hours in the TLS 1.3 tickets it issues for
//! stateful resumption (a fixed value in rustls 0.23), whatever the store keeps; a
//! store keeps a session for the cache's timeout (300 s by default, OpenSSL's
//! `SSL_SESSION` default). A client that returns after the timeout offers a ticket
//! the store has forgotten: a miss and a full handshake, never an error. Raise the
//! timeout (`SessionCache::builder().timeout(..)`) to the resumption window you
//! want and size the capacity for it (sessions per second × timeout).
//!
//! A stateless ticketer (`ServerConfig::ticketer`, e.g. rustls's
//! `crypto::ring::Ticketer`, 6 h tickets) keeps no per-session state on the server
//! and resumes on any machine holding the ticket keys; choose it when memory per
//! session or a fleet without shared state matters more than what only stateful
//! resumption gives: single-use tickets (rustls only accepts 0-RTT early data with
//! stateful tickets), immediate revocation by removing a session, and no
//! long-lived ticket keys whose theft would expose every ticket issued under them.
//!
//! ```
//! use std::sync::Arc;
//! use rustls::server::StoresServerSessions;
//! use tls_session_cache::RustlsStore;
//!
//! let store = RustlsStore::new(20_480);
//! assert!(store.put(vec![7; 32], b"serialized session".to_vec()));
//! assert_eq!(store.get(&[7; 32]).as_deref(), Some(&b"serialized session"[..]));
//! assert_eq!(store.take(&[7; 32]).as_deref(), Some(&b"serialized session"[..]));
//! assert_eq!(store.take(&[7; 32]), None); // single use
//! assert_eq!(store.get(&[0; 64]), None);  // an over-long key is a miss
//! assert_eq!(store.stats().hits, 2);
//! // In a server: `config.session_storage = RustlsStore::new(20_480);`
//! ```

use crate::stats::{Counter, Counters};
use crate::{CacheMode, Error, Session, SessionCache, Stats, DEFAULT_CAPACITY, MAX_SID_CTX_LEN};
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroize;

/// Serialized rustls session state: the payload of a [`RustlsStore`]'s sessions.
///
/// The bytes hold the session's master secret (TLS 1.2) or resumption secret
/// (TLS 1.3), so they are wiped (`zeroize`) when the last reference to the session
/// drops, and `Debug` shows only their length.
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps serialized session bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Secret {
    /// Overwrites the whole allocation (length and spare capacity) with zeros, then
    /// clears the vector (keeping the allocation).
    fn wipe(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("len", &self.0.len())
            .finish_non_exhaustive()
    }
}

/// The session cache as a `rustls::server::StoresServerSessions`: a drop-in for
/// rustls's `ServerSessionMemoryCache` without its single mutex, FIFO eviction
/// and O(n) `take`.
///
/// ```
/// # use std::sync::Arc;
/// use tls_session_cache::RustlsStore;
///
/// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// # let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
/// # let provider = Arc::new(rustls::crypto::ring::default_provider());
/// let mut config = rustls::ServerConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions()
///     .unwrap()
///     .with_no_client_auth()
///     .with_single_cert(vec![cert.cert.der().clone()], key)
///     .unwrap();
/// config.session_storage = RustlsStore::new(20_480);
/// ```
///
/// - `put` stores through [`SessionCache::update_cache`] (a full handshake made a
///   session; every 256th call also flushes expired sessions), stamped with the
///   cache clock's time, and returns whether the cache stored it.
/// - `get` is the handshake lookup [`SessionCache::get`]: expired sessions are not
///   handed out (and are removed, counting `timeouts`).
/// - `take` is [`SessionCache::take`] (atomic: of two concurrent takes of one
///   ticket exactly one gets it); a taken session that has expired is a miss.
///   The core's `take` counts nothing, so the store counts takes itself (hits,
///   misses, timeouts); [`stats`](Self::stats) adds them to the cache's.
/// - `can_cache` is true unless the cache's mode forbids storing (no `SERVER`
///   bit, or `NO_INTERNAL_STORE`): rustls then sends no TLS 1.2 session id and
///   issues no stateful TLS 1.3 ticket instead of promising a resumption the
///   store would refuse.
pub struct RustlsStore {
    cache: Arc<SessionCache<Secret>>,
    /// The session id context of this store's sessions (empty unless scoped).
    scope: Box<[u8]>,
    takes: Counters,
}

impl RustlsStore {
    /// A store holding at most `capacity` sessions (0 = unlimited), with the
    /// cache's other defaults (timeout 300 s, the system clock). Mirrors
    /// `rustls::server::ServerSessionMemoryCache::new`.
    pub fn new(capacity: usize) -> Arc<Self> {
        Self::with_cache(SessionCache::builder().capacity(capacity).build())
    }

    /// A store over a cache configured with [`SessionCache::builder`] (capacity,
    /// timeout, clock, mode, an external [`SessionStore`](crate::SessionStore)).
    ///
    /// `put` stores only if the cache's mode has `SERVER` and not
    /// `NO_INTERNAL_STORE`.
    pub fn with_cache(cache: SessionCache<Secret>) -> Arc<Self> {
        Arc::new(Self::from_parts(Arc::new(cache), &[]))
    }

    /// The one constructor the public ones share.
    fn from_parts(cache: Arc<SessionCache<Secret>>, scope: &[u8]) -> Self {
        RustlsStore {
            cache,
            scope: scope.into(),
            takes: Counters::new(),
        }
    }

    /// A store for one `ServerConfig` over a cache shared with others: sessions
    /// are stored under `scope` (0 to 32 bytes, e.g. a short tag per SNI name or
    /// client-auth policy) and only sessions of the same scope are found or taken.
    /// All the stores count against the one cache's capacity; keep the same scope
    /// for a configuration rebuilt at a certificate reload, so its clients resume
    /// across the reload.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use rustls::server::StoresServerSessions;
    /// use tls_session_cache::{integrations::rustls::Secret, RustlsStore, SessionCache};
    ///
    /// let shared: Arc<SessionCache<Secret>> =
    ///     Arc::new(SessionCache::builder().capacity(50_000).build());
    /// let api = RustlsStore::scoped(&shared, b"api.example.com")?;
    /// let admin = RustlsStore::scoped(&shared, b"admin+mtls")?;
    /// assert!(api.put(vec![1; 32], b"api session".to_vec()));
    /// assert_eq!(admin.get(&[1; 32]), None);  // never another scope's session
    /// assert_eq!(admin.take(&[1; 32]), None); // ...nor consumes it
    /// assert!(api.take(&[1; 32]).is_some());
    /// // In a server: `config.session_storage = api;`
    /// # Ok::<(), tls_session_cache::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidSidCtxLength`] if `scope` is longer than 32 bytes.
    pub fn scoped(cache: &Arc<SessionCache<Secret>>, scope: &[u8]) -> Result<Arc<Self>, Error> {
        if scope.len() > MAX_SID_CTX_LEN {
            return Err(Error::InvalidSidCtxLength { len: scope.len() });
        }
        Ok(Arc::new(Self::from_parts(Arc::clone(cache), scope)))
    }

    /// The cache underneath: its length, capacity and its own statistics (which do
    /// not include this store's `take` outcomes: see [`stats`](Self::stats)).
    /// Shared with the other scoped stores over it, if any.
    pub fn cache(&self) -> &Arc<SessionCache<Secret>> {
        &self.cache
    }

    /// The session id context this store's sessions are stored under (empty
    /// unless made with [`scoped`](Self::scoped)).
    pub fn scope(&self) -> &[u8] {
        &self.scope
    }

    /// The cache's statistics plus this store's `take`s: a taken live session
    /// counts a hit, a take that found nothing a miss, a taken expired session a
    /// timeout. For a scoped store, the cache's counters (and `len`) are those of
    /// the whole shared cache; the take outcomes are this store's.
    pub fn stats(&self) -> Stats {
        let mut s = self.cache.stats();
        let t = self.takes.snapshot();
        s.hits += t.hits;
        s.misses += t.misses;
        s.timeouts += t.timeouts;
        s
    }
}

impl Default for RustlsStore {
    fn default() -> Self {
        Self::from_parts(
            Arc::new(SessionCache::builder().capacity(DEFAULT_CAPACITY).build()),
            &[],
        )
    }
}

impl ::rustls::server::StoresServerSessions for RustlsStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let secret = Secret::new(value);
        // Invalid lengths (0 or over 32 bytes): not stored; `secret` is wiped here.
        let Ok(s) = Session::new(&key, &self.scope, secret) else {
            return false;
        };
        let s = Arc::new(s.with_time(self.cache.now()));
        self.cache.update_cache(&s)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        // Any length: the cache counts a miss for an invalid one.
        let s = self.cache.get(key, &self.scope)?;
        Some(s.payload().as_bytes().to_vec())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        // Only this store's scope: another configuration's ticket stays its own.
        let Some(s) = self.cache.take_in(key, &self.scope) else {
            self.takes.bump(Counter::Misses);
            return None;
        };
        // Checked after taking: whatever the answer, the ticket is gone.
        if s.is_expired_at(self.cache.now(), self.cache.timeout()) {
            self.takes.bump(Counter::Timeouts);
            return None;
        }
        self.takes.bump(Counter::Hits);
        Some(s.payload().as_bytes().to_vec())
    }

    fn can_cache(&self) -> bool {
        let mode = self.cache.mode();
        mode.contains(CacheMode::SERVER) && !mode.contains(CacheMode::NO_INTERNAL_STORE)
    }
}

impl fmt::Debug for RustlsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cache's Debug shows counts and settings, never ids or payloads.
        f.debug_struct("RustlsStore")
            .field("cache", &self.cache)
            .field("scope_len", &self.scope.len())
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;
    use crate::ManualClock;
    use ::rustls::server::StoresServerSessions;
    use std::time::Duration;

    fn store_with_clock(capacity: usize, timeout: u64) -> (Arc<RustlsStore>, ManualClock) {
        let clock = ManualClock::new(1_700_000_000);
        let cache = SessionCache::builder()
            .capacity(capacity)
            .timeout(Duration::from_secs(timeout))
            .clock(clock.clone())
            .build();
        (RustlsStore::with_cache(cache), clock)
    }

    #[test]
    fn put_get_take() {
        let store = RustlsStore::new(16);
        assert!(store.can_cache());
        assert!(store.put(vec![1; 32], vec![9, 8, 7]));
        assert_eq!(store.get(&[1; 32]), Some(vec![9, 8, 7]));
        assert_eq!(store.get(&[1; 32]), Some(vec![9, 8, 7])); // get keeps it
        assert_eq!(store.take(&[1; 32]), Some(vec![9, 8, 7]));
        assert_eq!(store.take(&[1; 32]), None);
        assert_eq!(store.get(&[1; 32]), None);
        assert!(store.cache().is_empty());
        let st = store.stats();
        assert_eq!((st.hits, st.misses, st.timeouts), (3, 2, 0));
    }

    #[test]
    fn put_replaces_same_key() {
        let store = RustlsStore::new(16);
        assert!(store.put(b"k".to_vec(), b"one".to_vec()));
        assert!(store.put(b"k".to_vec(), b"two".to_vec()));
        assert_eq!(store.cache().len(), 1);
        assert_eq!(store.take(b"k"), Some(b"two".to_vec()));
    }

    #[test]
    fn key_lengths() {
        let store = RustlsStore::new(16);
        for len in [0usize, 33, 64, 1000, 70_000] {
            let key = vec![0xab; len];
            assert!(!store.put(key.clone(), vec![1]), "len {len}");
            assert_eq!(store.get(&key), None, "len {len}");
            assert_eq!(store.take(&key), None, "len {len}");
        }
        for len in [1usize, 16, 32] {
            let key = vec![0xcd; len];
            assert!(store.put(key.clone(), vec![2]), "len {len}");
            assert_eq!(store.get(&key), Some(vec![2]), "len {len}");
            assert_eq!(store.take(&key), Some(vec![2]), "len {len}");
        }
        // A 33-byte key never matches the 32-byte key it starts with.
        assert!(store.put(vec![5; 32], vec![3]));
        assert_eq!(store.get(&[5; 33]), None);
        assert_eq!(store.take(&[5; 33]), None);
        assert_eq!(store.get(&[5; 32]), Some(vec![3]));
    }

    #[test]
    fn expired_sessions_are_not_handed_out() {
        let (store, clock) = store_with_clock(16, 10);
        assert!(store.put(b"a".to_vec(), vec![1]));
        assert!(store.put(b"b".to_vec(), vec![2]));
        clock.advance(Duration::from_secs(10));
        assert_eq!(store.get(b"a"), Some(vec![1])); // expiry is strict
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.get(b"a"), None);
        assert_eq!(store.take(b"b"), None);
        assert!(store.cache().is_empty(), "both removed");
        let st = store.stats();
        assert_eq!(st.timeouts, 2);
        assert_eq!(st.hits, 1);
    }

    #[test]
    fn put_uses_the_cache_clock() {
        let (store, clock) = store_with_clock(16, 10);
        clock.advance(Duration::from_secs(1_000_000));
        assert!(store.put(b"late".to_vec(), vec![1]));
        clock.advance(Duration::from_secs(10));
        assert_eq!(store.take(b"late"), Some(vec![1]));
    }

    #[test]
    fn capacity_evicts() {
        let store = RustlsStore::new(2);
        for k in [b"1", b"2", b"3"] {
            assert!(store.put(k.to_vec(), k.to_vec()));
        }
        assert_eq!(store.cache().len(), 2);
        assert_eq!(store.stats().cache_full, 1);
    }

    #[test]
    fn no_internal_store_mode_does_not_store() {
        let cache = SessionCache::builder()
            .mode(crate::CacheMode::SERVER | crate::CacheMode::NO_INTERNAL_STORE)
            .build();
        let store = RustlsStore::with_cache(cache);
        assert!(!store.can_cache(), "rustls must not promise a resumption");
        assert!(!store.put(b"x".to_vec(), vec![1]));
        assert_eq!(store.get(b"x"), None);
        store.cache().set_mode(crate::CacheMode::OFF);
        assert!(!store.can_cache());
        store.cache().set_mode(crate::CacheMode::SERVER);
        assert!(store.can_cache());
        assert!(store.put(b"x".to_vec(), vec![1]));
    }

    #[test]
    fn scoped_stores_share_capacity_never_sessions() {
        let shared = Arc::new(SessionCache::builder().capacity(4).build());
        let a = RustlsStore::scoped(&shared, b"a").unwrap();
        let b = RustlsStore::scoped(&shared, b"b").unwrap();
        assert_eq!(
            RustlsStore::scoped(&shared, &[0; 33]).unwrap_err(),
            Error::InvalidSidCtxLength { len: 33 }
        );
        assert!(a.put(vec![1; 32], b"a1".to_vec()));
        assert!(b.put(vec![2; 32], b"b2".to_vec()));
        assert_eq!(b.get(&[1; 32]), None);
        assert_eq!(a.get(&[2; 32]), None);
        assert_eq!(b.take(&[1; 32]), None);
        assert_eq!(shared.len(), 2, "a's session survives b's take");
        assert_eq!(a.get(&[1; 32]).as_deref(), Some(&b"a1"[..]));
        // One capacity: b's puts evict a's oldest session.
        for i in 3..=5u8 {
            assert!(b.put(vec![i; 32], vec![i]));
        }
        assert_eq!(shared.len(), 4);
        assert_eq!(shared.stats().cache_full, 1);
        assert_eq!(a.get(&[1; 32]), None, "evicted by b's puts");
        assert_eq!(a.take(&[2; 32]), None);
        assert_eq!(b.take(&[2; 32]).as_deref(), Some(&b"b2"[..]));
        assert_eq!((a.stats().misses >= 1, b.stats().takes), (true, 1));
    }

    #[test]
    fn concurrent_takes_hand_out_once() {
        let store = RustlsStore::new(0);
        let keys: Vec<Vec<u8>> = (0..2_000u32)
            .map(|i| {
                let mut k = vec![0u8; 32];
                k[..4].copy_from_slice(&i.to_le_bytes());
                k
            })
            .collect();
        for k in &keys {
            assert!(store.put(k.clone(), k.clone()));
        }
        let got: usize = std::thread::scope(|scope| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let (store, keys) = (&store, &keys);
                    scope.spawn(move || {
                        keys.iter()
                            .filter(|k| store.take(k).is_some_and(|v| &v == *k))
                            .count()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(got, keys.len());
        let st = store.stats();
        assert_eq!(st.hits, keys.len() as u64);
        assert_eq!(st.misses, 3 * keys.len() as u64);
    }

    #[test]
    fn debug_shows_no_bytes() {
        let store = RustlsStore::new(4);
        assert!(store.put(vec![0x5a; 32], vec![0xc3; 48]));
        let d = format!("{store:?}");
        assert!(
            !d.contains("195") && !d.to_lowercase().contains("c3c3"),
            "{d}"
        );
        assert!(!d.contains("90, 90") && !d.contains("5a5a"), "{d}");
        let s = store.cache().get(&[0x5a; 32], b"").unwrap();
        let d = format!("{s:?} {:?}", s.payload());
        assert!(
            !d.contains("195") && !d.to_lowercase().contains("c3"),
            "{d}"
        );
        assert!(d.contains("len: 48"), "{d}");
    }

    #[test]
    fn secret_wipe_zeroes_the_allocation() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0x77u8; 48]);
        let mut s = Secret::new(v);
        assert_eq!(s.as_bytes(), &[0x77; 48][..]);
        assert_eq!((s.len(), s.is_empty()), (48, false));
        s.wipe(); // what Drop runs
        assert!(s.is_empty());
        // zeroize overwrote the allocation in place (up to its capacity) and kept it.
        assert!(s.0.capacity() >= 48);
    }

    #[test]
    fn default_store_works() {
        let store = RustlsStore::default();
        assert_eq!(store.cache().capacity(), DEFAULT_CAPACITY);
        assert!(store.put(b"d".to_vec(), vec![1]));
    }
}
