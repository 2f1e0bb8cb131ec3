//! [`RedisStore`]: Redis as the [`SessionStore`] behind a local
//! [`SessionCache`](crate::SessionCache).

use super::config::RedisConfig;
use super::crypto::Sealer;
use super::pool::{Call, Failure, Link};
use super::queue::{run_writer_catching, Op, Queue, Withdrawn};
use super::record::{decode_session, encode_record, Codec, Expect, SecretCodec};
use super::stats::{bump, AtomicStats};
use super::{Lookup, RedisStats};
use crate::integrations::rustls::Secret;
use crate::{RemovalCause, Session, SessionStore};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Redis as a [`SessionStore`]: the shared second tier behind a
/// [`SessionCache`](crate::SessionCache). See the [module documentation](super).
///
/// `P` is the session payload and `C` its [`Codec`] ([`SecretCodec`] for rustls
/// payloads, [`BytesCodec`](super::BytesCodec) for `Vec<u8>`).
///
/// Writes (`store`, `delete`, and through them `new_session` and explicit
/// removals) are queued for a background writer thread; lookups (`fetch`,
/// `take`) go to Redis under one deadline each. Dropping the store waits up to
/// [`RedisConfig::drop_timeout`] for the queue to drain, then stops the writer.
pub struct RedisStore<P = Secret, C = SecretCodec> {
    shared: Arc<Shared>,
    codec: C,
    sealer: Sealer,
    writer: Mutex<Option<JoinHandle<()>>>,
    _payload: PhantomData<fn(P) -> P>,
}

/// What the store and its writer thread share.
pub(super) struct Shared {
    pub(super) config: RedisConfig,
    pub(super) link: Link,
    pub(super) queue: Queue,
    pub(super) stats: AtomicStats,
    /// Whether the server knows `GETDEL` (Redis >= 6.2): [`GETDEL_UNKNOWN`],
    /// [`GETDEL_YES`] or [`GETDEL_NO`]. Detected by the writer when it connects
    /// (`COMMAND INFO GETDEL`), or by a take that got "unknown command".
    pub(super) getdel: AtomicU8,
}

pub(super) const GETDEL_UNKNOWN: u8 = 0;
pub(super) const GETDEL_YES: u8 = 1;
pub(super) const GETDEL_NO: u8 = 2;

/// The take without `GETDEL` (Redis 2.6 to 6.0): a script runs atomically, and
/// on a cluster it is routed by its one key.
const TAKE_SCRIPT: &str =
    "local v = redis.call('GET', KEYS[1]) if v then redis.call('DEL', KEYS[1]) end return v";

/// Whether `e` says the server does not know the command.
fn unknown_command(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::ResponseError
        && e.to_string()
            .to_ascii_lowercase()
            .contains("unknown command")
}

/// Why a [`RedisStore`] could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// No [`RedisConfig::key_ring`] and plaintext not chosen with
    /// [`RedisConfig::insecure_plaintext`].
    NoKey,
    /// A URL the `redis` crate does not accept.
    Url(redis::RedisError),
    /// The writer thread could not be started.
    Thread(std::io::Error),
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisStoreError::NoKey => f.write_str(
                "no key ring: set RedisConfig::key_ring (or choose \
                 RedisConfig::insecure_plaintext explicitly)",
            ),
            RedisStoreError::Url(e) => write!(f, "invalid Redis URL: {e}"),
            RedisStoreError::Thread(e) => write!(f, "could not start the Redis writer: {e}"),
        }
    }
}

impl std::error::Error for RedisStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedisStoreError::NoKey => None,
            RedisStoreError::Url(e) => Some(e),
            RedisStoreError::Thread(e) => Some(e),
        }
    }
}

impl RedisStore<Secret, SecretCodec> {
    /// A store for rustls payloads. Resolves the host names now (a name that
    /// does not resolve yet is retried in the background) and connects lazily:
    /// Redis may be down now.
    ///
    /// # Errors
    /// No key ring (and plaintext not chosen by name), an invalid URL, or the
    /// writer thread could not be started.
    pub fn new(config: RedisConfig) -> Result<Arc<Self>, RedisStoreError> {
        Self::with_codec(config, SecretCodec)
    }
}

impl<P, C: Codec<P>> RedisStore<P, C> {
    /// A store with the given payload codec. Connects lazily.
    ///
    /// # Errors
    /// As [`RedisStore::new`].
    pub fn with_codec(config: RedisConfig, codec: C) -> Result<Arc<Self>, RedisStoreError> {
        let sealer = match (&config.ring, config.plaintext) {
            (Some(ring), _) => Sealer::new(
                ring,
                &config.key_prefix,
                config.sid_ctx.as_deref().unwrap_or_default(),
            ),
            (None, true) => Sealer::plaintext(&config.key_prefix),
            (None, false) => return Err(RedisStoreError::NoKey),
        };
        let link = Link::new(&config).map_err(RedisStoreError::Url)?;
        let shared = Arc::new(Shared {
            queue: Queue::new(config.queue_capacity),
            config,
            link,
            stats: AtomicStats::default(),
            getdel: AtomicU8::new(GETDEL_UNKNOWN),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("tls-session-cache-redis-writer".into())
                .spawn(move || run_writer_catching(shared))
                .map_err(RedisStoreError::Thread)?
        };
        Ok(Arc::new(RedisStore {
            shared,
            codec,
            sealer,
            writer: Mutex::new(Some(writer)),
            _payload: PhantomData,
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.shared.config
    }

    /// The counters.
    pub fn stats(&self) -> RedisStats {
        self.shared.stats.snapshot()
    }

    /// Whether the circuit breaker is open (Redis is being skipped or probed).
    pub fn breaker_open(&self) -> bool {
        self.shared.link.breaker.is_open()
    }

    /// The Redis key session id `id` is written under: the prefix, the current
    /// ring key's id and a keyed MAC of the id (with
    /// [`insecure_plaintext`](RedisConfig::insecure_plaintext): the prefix and
    /// the id in hex).
    pub fn key(&self, id: &[u8]) -> Vec<u8> {
        self.sealer.key(id)
    }

    /// Every Redis key `id` may be stored under: the current ring key's, then
    /// each older key's (what a lookup tries, in this order).
    pub fn keys(&self, id: &[u8]) -> Vec<Vec<u8>> {
        self.sealer.keys(id)
    }

    /// Waits until every write queued so far reached Redis (or was given up), at
    /// most `timeout`. Returns whether the queue drained. A removal that must be
    /// visible fleet-wide before going on: `remove`, then `flush`.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.shared.queue.wait_idle(timeout)
    }

    fn now(&self) -> u64 {
        self.config().clock.now()
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
        let stats = &self.shared.stats;
        let Some(value) = value.map(Zeroizing::new) else {
            bump(&stats.misses);
            return Lookup::Absent;
        };
        let expect = Expect {
            id,
            sid_ctx: self.config().sid_ctx.as_deref(),
            now: self.now(),
        };
        match decode_session(&self.sealer, &self.codec, key, &value, &expect) {
            Some(s) => {
                bump(&stats.hits);
                Lookup::Found(Arc::new(s))
            }
            None => {
                bump(&stats.rejected);
                Lookup::Absent
            }
        }
    }

    fn lookup(&self, id: &[u8], take: bool) -> Lookup<Arc<Session<P>>> {
        if id.is_empty() || id.len() > crate::MAX_ID_LEN {
            return Lookup::Absent;
        }
        // The current key's Redis key first, then each older key's: after a
        // rotation, sessions written under the old key are still found.
        let keys = self.keys(id);
        let s = &self.shared;
        let _timed = Timed(&s.stats, Instant::now());
        // Removed here, and Redis may not have been told yet: a miss (the
        // `SessionStore` contract), without asking Redis.
        if s.queue.deleting(&keys) {
            bump(&s.stats.pending_delete_misses);
            return Lookup::Absent;
        }
        match s.link.call(&s.stats, s.config.timeout, |c| {
            for key in &keys {
                let v = if take {
                    self.take_in(c, key)?
                } else {
                    c.query::<Option<Vec<u8>>>(redis::cmd("GET").arg(key))?
                };
                if let Some(v) = v {
                    return Ok(Some((key, v)));
                }
            }
            Ok(None)
        }) {
            Ok(Some((key, v))) => self.found(id, key, Some(v)),
            Ok(None) => self.found(id, &[], None),
            Err(Failure::Failed) if s.link.breaker.is_open() => {
                // This failure may have opened the breaker: the writer probes.
                s.queue.wake_writer();
                Lookup::Unavailable
            }
            Err(_) => Lookup::Unavailable,
        }
    }

    /// `GETDEL key`, or on a server without it (Redis < 6.2) the script
    /// [`TAKE_SCRIPT`] (`GET`, then `DEL` if found), as atomic, one round trip,
    /// on one server or a cluster (which cannot run a `MULTI`/`EXEC`
    /// transaction through the `redis` crate's cluster connection).
    fn take_in(&self, c: &mut Call<'_>, key: &[u8]) -> redis::RedisResult<Option<Vec<u8>>> {
        let getdel = &self.shared.getdel;
        if getdel.load(Ordering::Relaxed) != GETDEL_NO {
            match c.query::<Option<Vec<u8>>>(redis::cmd("GETDEL").arg(key)) {
                Err(e) if unknown_command(&e) => getdel.store(GETDEL_NO, Ordering::Relaxed),
                other => return other,
            }
        }
        c.query::<Option<Vec<u8>>>(redis::cmd("EVAL").arg(TAKE_SCRIPT).arg(1).arg(key))
    }

    /// `GET`: the session stored under `id`, checked; within one deadline
    /// ([`RedisConfig::timeout`]). `Absent`, without asking Redis, while this
    /// store's `DEL` of `id` is queued or being sent (as [`take`](Self::take)).
    pub fn fetch(&self, id: &[u8]) -> Lookup<Arc<Session<P>>> {
        self.lookup(id, false)
    }

    /// `GETDEL`: atomically removes and returns the session stored under `id` (of
    /// several concurrent takes across the fleet, exactly one gets it); within one
    /// deadline. A value that fails the checks is removed too and is `Absent`.
    ///
    /// On a server without `GETDEL` (Redis < 6.2, detected when the writer
    /// connects or from the first "unknown command" answer) the take is a Lua
    /// script (`EVAL`: `GET`, then `DEL` if found), as atomic, one round trip
    /// too, on one server or a cluster.
    pub fn take(&self, id: &[u8]) -> Lookup<Arc<Session<P>>> {
        self.lookup(id, true)
    }

    /// Whether the server has `GETDEL`: `None` until known (the writer asks
    /// with `COMMAND INFO GETDEL` when it connects).
    pub fn getdel_supported(&self) -> Option<bool> {
        match self.shared.getdel.load(Ordering::Relaxed) {
            GETDEL_YES => Some(true),
            GETDEL_NO => Some(false),
            _ => None,
        }
    }

    /// Queues `SET … EX ttl`, the TTL being the session's remaining lifetime
    /// when the writer sends it. Returns whether it was queued (not if the
    /// session has expired, the codec declines or the queue is full: counted in
    /// `dropped`). A queued `SET` can still be displaced, before it is sent, by a
    /// `DEL` that finds the queue full (also counted in `dropped`). Never waits
    /// on Redis.
    pub fn store(&self, s: &Session<P>) -> bool {
        if let Some(ctx) = &self.config().sid_ctx {
            if s.sid_ctx() != ctx.as_slice() {
                return false; // another context's session: not this store's
            }
        }
        let timeout = s
            .timeout()
            .unwrap_or(self.config().session_timeout)
            .as_secs();
        let expiry = s.time().saturating_add(timeout);
        if self.now() > expiry {
            return false;
        }
        let key = self.key(s.id());
        let Some(value) = self.seal(&key, s, timeout) else {
            return false;
        };
        self.shared.queue.push(
            Op::Set {
                key,
                value: Zeroizing::new(value),
                expiry,
            },
            &self.shared.stats,
        )
    }

    /// Queues `DEL` of `id` under every ring key. Returns whether it was queued.
    /// Until it was sent (or given up), this store's lookups of `id` are
    /// `Absent` without asking Redis, counted in
    /// [`RedisStats::pending_delete_misses`].
    pub fn delete(&self, id: &[u8]) -> bool {
        if id.is_empty() || id.len() > crate::MAX_ID_LEN {
            return false;
        }
        let keys = self.keys(id);
        self.shared.queue.push(Op::Del { keys }, &self.shared.stats)
    }

    /// Takes a not yet sent write of `id` out of the queue; see [`Withdrawn`].
    pub(super) fn withdraw(&self, id: &[u8]) -> Withdrawn {
        if id.is_empty() || id.len() > crate::MAX_ID_LEN {
            return Withdrawn::No;
        }
        self.shared
            .queue
            .withdraw_set(&self.key(id), &self.shared.stats)
    }
}

#[cfg(test)]
impl<P, C: Codec<P>> RedisStore<P, C> {
    /// Whether the writer's current batch holds the `SET` of `id`.
    pub(super) fn sending(&self, id: &[u8]) -> bool {
        self.shared.queue.sending(&self.key(id))
    }
}

impl<P, C> Drop for RedisStore<P, C> {
    fn drop(&mut self) {
        let drained = self.shared.queue.wait_idle(self.shared.config.drop_timeout);
        self.shared.queue.shutdown();
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let (true, Some(w)) = (drained, writer) {
            // Idle: it returns at once.
            let _ = w.join();
        }
        // Otherwise it stops after its current attempt, on its own.
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
        if !self.config().propagate_removes || cause != RemovalCause::Removed {
            return;
        }
        // An expired session is dropped by Redis's TTL anyway.
        let timeout = session
            .timeout()
            .unwrap_or(self.config().session_timeout)
            .as_secs();
        if self.now() > session.time().saturating_add(timeout) {
            return;
        }
        // Queued after any write of it: the writer sends them in order.
        self.delete(session.id());
    }
}

impl<P, C> fmt::Debug for RedisStore<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.shared.config)
            .field("stats", &self.shared.stats.snapshot())
            .field("breaker_open", &self.shared.link.breaker.is_open())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;

    #[test]
    fn sealing_round_trip_and_wrong_key() {
        let mk = |key: Option<[u8; 32]>| {
            let c = RedisConfig::new("redis://127.0.0.1:1/");
            RedisStore::new(match key {
                Some(k) => c.encryption_key(k),
                None => c.insecure_plaintext(),
            })
            .unwrap()
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
    fn building_requires_a_key_unless_plaintext_is_chosen_by_name() {
        let url = "redis://127.0.0.1:1/";
        assert!(matches!(
            RedisStore::new(RedisConfig::new(url)),
            Err(RedisStoreError::NoKey)
        ));
        assert!(RedisStore::new(RedisConfig::new(url).insecure_plaintext()).is_ok());
        assert!(RedisStore::new(RedisConfig::new(url).encryption_key([3; 32])).is_ok());
        assert!(matches!(
            RedisStore::new(RedisConfig::new("not a url").encryption_key([3; 32])),
            Err(RedisStoreError::Url(_))
        ));
    }

    /// `Duration::MAX` in any duration setting: no panic (each one used to
    /// overflow `Instant + Duration`: on every lookup, in `flush`, in `Drop`, and
    /// in the writer, which then restarted in a hot loop).
    #[test]
    fn extreme_durations_do_not_panic() {
        let max = Duration::MAX;
        let store = RedisStore::new(
            RedisConfig::new("redis://127.0.0.1:1/")
                .encryption_key([1; 32])
                .timeout(max)
                .connect_timeout(max)
                .writer_timeout(max)
                .drop_timeout(max)
                .resolve_interval(max)
                .breaker(1, max, max),
        )
        .unwrap();
        // Connection refused at once: unavailable, whatever the deadline.
        assert!(matches!(store.fetch(b"x"), Lookup::Unavailable));
        assert!(matches!(store.fetch(b"x"), Lookup::Unavailable)); // skipped
        assert!(store.flush(max), "nothing queued: drained");
        // The writer's own timers: give it a moment to run into them.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(store.stats().errors, 1, "{:?}", store.stats()); // the lookup
        drop(store); // waits for an empty queue: at once
    }

    #[test]
    fn dead_server_is_a_counted_miss_then_skipped() {
        // Port 1 on loopback: connection refused at once.
        let store = RedisStore::new(
            RedisConfig::new("redis://127.0.0.1:1/")
                .encryption_key([1; 32])
                .breaker(2, Duration::from_secs(60), Duration::from_secs(60)),
        )
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

/// Records a lookup's duration when dropped (also if the lookup unwinds).
struct Timed<'a>(&'a AtomicStats, Instant);

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        self.0.record_lookup(self.1.elapsed());
    }
}
