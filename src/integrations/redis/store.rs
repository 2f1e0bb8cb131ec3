//! [`RedisStore`]: Redis as the [`SessionStore`] behind a local
//! [`SessionCache`](crate::SessionCache).

use super::config::RedisConfig;
use super::crypto::Sealer;
use super::pool::Link;
use super::record::{decode_session, encode_record, hex_key, Codec, Expect, SecretCodec};
use super::stats::{bump, AtomicStats};
use super::{Lookup, RedisStats};
use crate::integrations::rustls::Secret;
use crate::{RemovalCause, Session, SessionStore};
use redis::RedisResult;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Redis as a [`SessionStore`]: the shared second tier behind a
/// [`SessionCache`](crate::SessionCache). See the [module documentation](super).
///
/// `P` is the session payload and `C` its [`Codec`] ([`SecretCodec`] for rustls
/// payloads, [`BytesCodec`](super::BytesCodec) for `Vec<u8>`).
pub struct RedisStore<P = Secret, C = SecretCodec> {
    pub(super) config: RedisConfig,
    link: Link,
    codec: C,
    sealer: Sealer,
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
        let link = Link::new(&config)?;
        let sealer = match &config.key {
            Some(k) => Sealer::new(k),
            None => Sealer::plaintext(),
        };
        Ok(Arc::new(RedisStore {
            config,
            link,
            codec,
            sealer,
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
        self.link.breaker.is_open()
    }

    /// The Redis key of session id `id`: the prefix, then the id in hex.
    pub fn key(&self, id: &[u8]) -> Vec<u8> {
        hex_key(&self.config.key_prefix, id)
    }

    fn now(&self) -> u64 {
        self.config.clock.now()
    }

    /// The value stored for a session (`None` if the codec declines).
    fn seal(&self, key: &[u8], s: &Session<P>, timeout: u64) -> Option<Vec<u8>> {
        let payload = Zeroizing::new(self.codec.encode(s.payload())?);
        let record = Zeroizing::new(encode_record(
            s.id(),
            s.sid_ctx(),
            s.time(),
            timeout,
            &payload,
        ));
        self.sealer.seal(key, &record)
    }

    fn found(&self, id: &[u8], key: &[u8], value: Option<Vec<u8>>) -> Lookup<Arc<Session<P>>> {
        let Some(value) = value.map(Zeroizing::new) else {
            bump(&self.stats.misses);
            return Lookup::Absent;
        };
        let expect = Expect {
            id,
            sid_ctx: self.config.sid_ctx.as_deref(),
            now: self.now(),
        };
        match decode_session(&self.sealer, &self.codec, key, &value, &expect) {
            Some(s) => {
                bump(&self.stats.hits);
                Lookup::Found(Arc::new(s))
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
        match self.link.call(&self.stats, |c| {
            redis::cmd("GET").arg(&key).query::<Option<Vec<u8>>>(c)
        }) {
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
        match self.link.call(&self.stats, |c| {
            redis::cmd("GETDEL").arg(&key).query::<Option<Vec<u8>>>(c)
        }) {
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
            .link
            .call(&self.stats, |c| {
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
            .link
            .call(&self.stats, |c| redis::cmd("DEL").arg(&key).query::<i64>(c))
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
            .field("breaker_open", &self.link.breaker.is_open())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let open = |st: &RedisStore, id: &[u8], key: &[u8], v: &[u8]| {
            let expect = Expect {
                id,
                sid_ctx: None,
                now: crate::clock::system_now(),
            };
            decode_session(&st.sealer, &st.codec, key, v, &expect)
        };
        let key = a.key(s.id());
        let sealed = a.seal(&key, &s, 300).unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"top secret"));
        let back = open(&a, b"id1", &key, &sealed).unwrap();
        assert_eq!(back.payload().as_bytes(), b"top secret");
        assert!(open(&b, b"id1", &key, &sealed).is_none(), "wrong key");
        assert!(
            open(&plain, b"id1", &key, &sealed).is_none(),
            "sealed, no key"
        );
        assert!(
            open(&a, b"id1", b"other key", &sealed).is_none(),
            "moved value"
        );
        let clear = plain.seal(&key, &s, 300).unwrap();
        assert!(
            open(&a, b"id1", &key, &clear).is_none(),
            "plaintext refused"
        );
        assert!(open(&plain, b"id2", &key, &clear).is_none(), "other id");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(open(&a, b"id1", &key, &bad).is_none(), "tampered");
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
