//! [`RedisTicketer`]: TLS ticket keys shared by a fleet through Redis, as a rustls
//! `ProducesTickets`.
//!
//! Stateless resumption (TLS 1.3 tickets and TLS 1.2 session tickets, rustls's
//! `ServerConfig::ticketer`) needs every server to hold the keys the tickets were
//! sealed with. rustls's own ticketer makes random keys per process. This one keeps
//! the fleet's keys in one Redis value (`{prefix}ticket-keys`), sealed with the
//! [`KeyRing`]: a current key, which seals new tickets, and the previous N, which
//! still open theirs.
//!
//! - A background thread refreshes the keys every `refresh_interval` (and the
//!   constructor once): it reads the value and installs its keys. When the current
//!   key is older than `rotation_interval`, the server that wins a lease (`SET
//!   {prefix}ticket-keys:lease … NX PX lease`) makes a new key and writes the new
//!   list (new key first, at most N previous); the others pick it up at their next
//!   refresh.
//! - A handshake only reads the keys held in memory: it never waits on Redis.
//! - Redis unreachable: the keys held are kept (tickets keep resuming across the
//!   fleet until the keys age out of the window). If Redis was never reachable, a
//!   local key is made: its tickets resume on this server only
//!   ([`TicketerStats::local_only`]); it stays accepted here for the window after
//!   the fleet's keys arrive.
//!
//! - Keys age out by time, not only by rotation: a key `rotation_interval ×
//!   (previous_keys + 1)` old opens nothing, one `rotation_interval × 2` old seals
//!   nothing (a local key then), even when rotation has stopped. A list older than
//!   one installed here (replayed) is refused, a deleted one is rebuilt from the
//!   keys held, and a lease with no expiry is given one.
//!
//! A ticket is `key name (16) || nonce (24) || XChaCha20-Poly1305(state)`, the key
//! name as associated data. A ticket whose key has left the window does not open:
//! a full handshake.

use super::config::RedisConfig;
use super::crypto::KeyRing;
use super::pool::Link;
use super::stats::AtomicStats;
use super::RedisStoreError;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::Duration;
use zeroize::Zeroizing;

const NAME_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const BLOB_VERSION: u8 = 1;
const ENTRY_LEN: usize = 8 + 8 + NAME_LEN + 32;

/// How a [`RedisTicketer`] rotates.
#[derive(Debug, Clone, Copy)]
pub struct TicketerOptions {
    /// A new current key this often (default 1 h).
    pub rotation_interval: Duration,
    /// Previous keys still accepted (default 5): while rotation runs a ticket
    /// resumes for about `rotation_interval × previous_keys` after it was issued
    /// (less the time to the next refresh), and never once its key is
    /// `rotation_interval × (previous_keys + 1)` old, rotation or not (a key
    /// seals new tickets only while younger than `rotation_interval × 2`).
    pub previous_keys: usize,
    /// How often each server reads the keys from Redis (default 30 s; at least
    /// 10 ms).
    pub refresh_interval: Duration,
    /// How long a rotation lease is held (default 10 s; at most 2^40 ms).
    pub lease: Duration,
    /// The lifetime told to clients (default `rotation_interval ×
    /// previous_keys`, at most 7 days).
    pub lifetime: Option<Duration>,
}

impl Default for TicketerOptions {
    fn default() -> Self {
        TicketerOptions {
            rotation_interval: Duration::from_secs(3600),
            previous_keys: 5,
            refresh_interval: Duration::from_secs(30),
            lease: Duration::from_secs(10),
            lifetime: None,
        }
    }
}

/// A [`RedisTicketer`]'s counters (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TicketerStats {
    /// Refreshes that read the keys from Redis.
    pub refreshes: u64,
    /// Refreshes that failed (Redis unreachable, a value that does not open).
    pub refresh_errors: u64,
    /// Rotations this server made (it won the lease).
    pub rotations: u64,
    /// Tickets sealed.
    pub encrypted: u64,
    /// Tickets opened.
    pub decrypted: u64,
    /// Tickets that did not open (unknown or expired key, tampering, garbage).
    pub rejected: u64,
    /// Keys held (current, previous and any local ones).
    pub keys: u64,
    /// Whether the current key is a local one (Redis never reachable, or no fleet
    /// key young enough to seal: rotation stopped): tickets then resume on this
    /// server only.
    pub local_only: bool,
}

/// One ticket key.
#[derive(Clone)]
struct TicketKey {
    generation: u64,
    created: u64,
    name: [u8; NAME_LEN],
    secret: Zeroizing<[u8; 32]>,
    aead: XChaCha20Poly1305,
}

impl TicketKey {
    fn new(generation: u64, created: u64, name: [u8; NAME_LEN], secret: [u8; 32]) -> Self {
        let secret = Zeroizing::new(secret);
        TicketKey {
            generation,
            created,
            name,
            aead: XChaCha20Poly1305::new(secret.as_slice().into()),
            secret,
        }
    }

    fn random(generation: u64, created: u64) -> Self {
        let mut name = [0u8; NAME_LEN];
        name.copy_from_slice(&KeyRing::generate_secret()[..NAME_LEN]);
        Self::new(generation, created, name, KeyRing::generate_secret())
    }
}

/// The keys in use: `fleet` newest first (the first seals), `local` decrypt-only
/// (or sealing too while `fleet` is empty).
#[derive(Clone, Default)]
struct Keys {
    fleet: Vec<TicketKey>,
    local: Vec<TicketKey>,
}

/// A key's age at `now`; a `created` in the future counts as now (age 0).
fn age(k: &TicketKey, now: u64) -> u64 {
    now.saturating_sub(k.created)
}

impl Keys {
    /// The key sealing new tickets: the newest fleet key, else the newest local
    /// key, if younger than `max_age` (none: no ticket is issued).
    fn sealing(&self, now: u64, max_age: u64) -> Option<&TicketKey> {
        [self.fleet.first(), self.local.first()]
            .into_iter()
            .flatten()
            .find(|k| age(k, now) < max_age)
    }

    /// The key named `name`, if younger than `window`.
    fn find(&self, name: &[u8], now: u64, window: u64) -> Option<&TicketKey> {
        self.fleet
            .iter()
            .chain(&self.local)
            .find(|k| k.name == name)
            .filter(|k| age(k, now) < window)
    }
}

fn encode_keys(keys: &[TicketKey]) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(2 + keys.len() * ENTRY_LEN));
    v.push(BLOB_VERSION);
    v.push(u8::try_from(keys.len()).unwrap_or(u8::MAX));
    for k in keys.iter().take(usize::from(u8::MAX)) {
        v.extend_from_slice(&k.generation.to_be_bytes());
        v.extend_from_slice(&k.created.to_be_bytes());
        v.extend_from_slice(&k.name);
        v.extend_from_slice(k.secret.as_slice());
    }
    v
}

fn decode_keys(b: &[u8]) -> Option<Vec<TicketKey>> {
    let (&[version, n], rest) = b.split_first_chunk::<2>()?;
    if version != BLOB_VERSION || rest.len() != usize::from(n) * ENTRY_LEN {
        return None;
    }
    rest.chunks_exact(ENTRY_LEN)
        .map(|e| {
            let (generation, e) = e.split_first_chunk::<8>()?;
            let (created, e) = e.split_first_chunk::<8>()?;
            let (name, secret) = e.split_first_chunk::<NAME_LEN>()?;
            Some(TicketKey::new(
                u64::from_be_bytes(*generation),
                u64::from_be_bytes(*created),
                *name,
                secret.try_into().ok()?,
            ))
        })
        .collect()
}

struct Inner {
    config: RedisConfig,
    options: TicketerOptions,
    ring: KeyRing,
    link: Link,
    link_stats: AtomicStats,
    keys: RwLock<Arc<Keys>>,
    blob_key: Vec<u8>,
    lease_key: Vec<u8>,
    lease_token: [u8; 16],
    refreshes: AtomicU64,
    refresh_errors: AtomicU64,
    rotations: AtomicU64,
    encrypted: AtomicU64,
    decrypted: AtomicU64,
    rejected: AtomicU64,
    local_only: AtomicBool,
    /// The highest fleet generation this server installed: an older list read
    /// from Redis (a replayed value) is refused.
    max_generation: AtomicU64,
    stop: (Mutex<bool>, Condvar),
}

/// Ticket keys shared by a fleet through Redis, as a rustls `ProducesTickets`.
///
/// The fleet's keys live in one Redis value (`{prefix}ticket-keys`), sealed with
/// the [`KeyRing`]: the current key seals new tickets, the previous
/// [`TicketerOptions::previous_keys`] still open theirs. A background thread
/// refreshes them every `refresh_interval`; when the current key is older than
/// `rotation_interval`, the server that wins a lease (`SET … NX PX`) makes a new
/// one. A handshake only reads the keys held in memory. Redis unreachable: the
/// keys held are kept; never reachable: a local key (tickets resume on this
/// server only, [`TicketerStats::local_only`]). `docs/REDIS.md` has the details.
///
/// ```no_run
/// use std::sync::Arc;
/// use tls_session_cache::integrations::redis::{RedisTicketer, TicketerOptions};
/// use tls_session_cache::{KeyRing, RedisConfig};
///
/// let ring = KeyRing::new(1, &KeyRing::generate_secret()); // the fleet's, really
/// let ticketer = RedisTicketer::new(
///     RedisConfig::new("redis://10.0.0.5:6379/")
///         .key_prefix("tls:my-service:")
///         .key_ring(ring),
///     TicketerOptions::default(),
/// )?;
/// // rustls: `server_config.ticketer = ticketer;`
/// # let _: Arc<dyn rustls::server::ProducesTickets> = ticketer;
/// # Ok::<(), tls_session_cache::RedisStoreError>(())
/// ```
pub struct RedisTicketer {
    inner: Arc<Inner>,
}

impl RedisTicketer {
    /// Connects, reads (or makes) the fleet's keys once, and starts the refresh
    /// thread. Never fails because Redis is down: it then makes a local key.
    ///
    /// # Errors
    /// No key ring in `config` (the keys are sealed with it in Redis: plaintext
    /// is not offered), an invalid URL, or the thread could not be started.
    pub fn new(
        config: RedisConfig,
        options: TicketerOptions,
    ) -> Result<Arc<Self>, RedisStoreError> {
        let ring = config.ring.clone().ok_or(RedisStoreError::NoKey)?;
        let link = Link::new(&config).map_err(RedisStoreError::Url)?;
        let mut blob_key = config.key_prefix.clone();
        blob_key.extend_from_slice(b"ticket-keys");
        let mut lease_key = blob_key.clone();
        lease_key.extend_from_slice(b":lease");
        let mut lease_token = [0u8; 16];
        lease_token.copy_from_slice(&KeyRing::generate_secret()[..16]);
        let options = TicketerOptions {
            previous_keys: options.previous_keys.min(64),
            refresh_interval: options.refresh_interval.max(Duration::from_millis(10)),
            ..options
        };
        let inner = Arc::new(Inner {
            config,
            options,
            ring,
            link,
            link_stats: AtomicStats::default(),
            keys: RwLock::new(Arc::new(Keys::default())),
            blob_key,
            lease_key,
            lease_token,
            refreshes: AtomicU64::new(0),
            refresh_errors: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            encrypted: AtomicU64::new(0),
            decrypted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            local_only: AtomicBool::new(false),
            max_generation: AtomicU64::new(0),
            stop: (Mutex::new(false), Condvar::new()),
        });
        inner.refresh();
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("tls-session-cache-ticket-keys".into())
            .spawn(move || refresher(&weak))
            .map_err(RedisStoreError::Thread)?;
        Ok(Arc::new(RedisTicketer { inner }))
    }

    /// Reads the keys from Redis now (rotating them if due and this server wins
    /// the lease), as the background thread does every `refresh_interval`.
    /// Returns whether Redis answered. Blocking: not for a handshake.
    pub fn refresh_now(&self) -> bool {
        self.inner.refresh()
    }

    /// The counters.
    pub fn stats(&self) -> TicketerStats {
        let i = &self.inner;
        let keys = i.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TicketerStats {
            refreshes: r(&i.refreshes),
            refresh_errors: r(&i.refresh_errors),
            rotations: r(&i.rotations),
            encrypted: r(&i.encrypted),
            decrypted: r(&i.decrypted),
            rejected: r(&i.rejected),
            keys: u64::try_from(keys.fleet.len() + keys.local.len()).unwrap_or(u64::MAX),
            local_only: i.local_only.load(Ordering::Relaxed),
        }
    }

    /// The generation of the key sealing new tickets (`None` while it is a local
    /// key). Generations count rotations across the fleet.
    pub fn current_generation(&self) -> Option<u64> {
        let keys = self.inner.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.fleet.first().map(|k| k.generation)
    }
}

impl Inner {
    fn now(&self) -> u64 {
        self.config.clock.now()
    }

    /// A key opens tickets while younger than this: `rotation_interval ×
    /// (previous_keys + 1)`, in seconds.
    fn window(&self) -> u64 {
        self.rotation()
            .saturating_mul(self.options.previous_keys as u64 + 1)
    }

    /// `rotation_interval` in seconds (at least 1).
    fn rotation(&self) -> u64 {
        self.options.rotation_interval.as_secs().max(1)
    }

    /// A key seals new tickets while younger than this: `rotation_interval × 2`.
    fn seal_max(&self) -> u64 {
        self.rotation().saturating_mul(2)
    }

    fn install(&self, keys: Keys) {
        if let Some(k) = keys.fleet.first() {
            self.max_generation
                .fetch_max(k.generation, Ordering::Relaxed);
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }

    fn current(&self) -> Arc<Keys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The fleet's keys in Redis: `Ok(None)` if there are none. A value that does
    /// not open (sealed with a ring key this server does not have, tampered) is an
    /// error: the keys held are kept, and this server never overwrites the
    /// fleet's keys it cannot read.
    fn read(&self) -> Result<Option<Vec<TicketKey>>, ()> {
        let v = self
            .link
            .call(&self.link_stats, self.config.writer_timeout, |c| {
                c.query::<Option<Vec<u8>>>(redis::cmd("GET").arg(&self.blob_key))
            })
            .map_err(|_| ())?;
        let Some(v) = v.map(Zeroizing::new) else {
            return Ok(None);
        };
        let Some(mut keys) = self
            .ring
            .open_tickets(&self.blob_key, &v)
            .and_then(|pt| decode_keys(&pt))
            .filter(|k| !k.is_empty())
        else {
            return Err(());
        };
        // A list older than one this server installed is a replayed value: it is
        // not installed, and the lease winner writes a newer one (see `rotate`).
        let newest = keys.iter().map(|k| k.generation).max().unwrap_or(0);
        if newest < self.max_generation.load(Ordering::Relaxed) {
            return Ok(None);
        }
        // A `created` in the future (a rotator's clock ahead) counts from when
        // this server first saw the key, so the key still ages out.
        let now = self.now();
        let held = self.current();
        for k in &mut keys {
            let first_seen = held
                .fleet
                .iter()
                .find(|h| h.name == k.name)
                .map_or(now, |h| h.created);
            k.created = k.created.min(first_seen).min(now);
        }
        Ok(Some(keys))
    }

    /// The fleet keys held that are still within the window, newest first.
    fn held_fleet(&self, now: u64) -> Vec<TicketKey> {
        let window = self.window();
        self.current()
            .fleet
            .iter()
            .filter(|k| age(k, now) < window)
            .cloned()
            .collect()
    }

    /// Rotates if due and the lease is won; returns the keys to use.
    fn rotate(&self, keys: Option<Vec<TicketKey>>) -> Result<Option<Vec<TicketKey>>, ()> {
        let now = self.now();
        let rotation = self.rotation();
        let due = keys
            .as_ref()
            .and_then(|k| k.first())
            .is_none_or(|k| now >= k.created.saturating_add(rotation));
        if !due {
            return Ok(keys);
        }
        // Redis refuses a `PX` beyond its range: at most 2^40 ms (~35 years).
        let lease_ms = u64::try_from(self.options.lease.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, 1 << 40);
        let won = self
            .link
            .call(&self.link_stats, self.config.writer_timeout, |c| {
                c.query::<Option<String>>(
                    redis::cmd("SET")
                        .arg(&self.lease_key)
                        .arg(&self.lease_token[..])
                        .arg("NX")
                        .arg("PX")
                        .arg(lease_ms),
                )
            })
            .map_err(|_| ())?
            .is_some();
        if !won {
            // A lease with no expiry (written by hand or by an attacker with
            // write access) would stop rotation for good: give it one.
            self.expire_stuck_lease(lease_ms);
            return Ok(keys); // another server rotates; picked up next refresh
        }
        // Someone may have rotated just before the lease was won.
        let keys = self.read()?;
        let still_due = keys
            .as_ref()
            .and_then(|k| k.first())
            .is_none_or(|k| now >= k.created.saturating_add(rotation));
        if !still_due {
            return Ok(keys);
        }
        // No list (Redis restarted empty, FLUSHALL) or a replayed older one:
        // start from the keys held here, so tickets already issued still open
        // within their window and generations keep increasing.
        let newest = keys
            .iter()
            .flatten()
            .map(|k| k.generation)
            .max()
            .unwrap_or(0);
        let (old, rewrite_only) = match keys {
            // Keys past the window are not written back.
            Some(old) => (
                old.into_iter()
                    .filter(|k| age(k, now) < self.window())
                    .collect::<Vec<_>>(),
                false,
            ),
            None => {
                let held = self.held_fleet(now);
                let fresh = held
                    .first()
                    .is_some_and(|k| now < k.created.saturating_add(rotation));
                (held, fresh)
            }
        };
        let new = if rewrite_only {
            old
        } else {
            let generation = old
                .iter()
                .map(|k| k.generation)
                .fold(newest, u64::max)
                .max(self.max_generation.load(Ordering::Relaxed))
                .saturating_add(1);
            let mut new = vec![TicketKey::random(generation, now)];
            new.extend(old.into_iter().take(self.options.previous_keys));
            new
        };
        let sealed = self
            .ring
            .seal_tickets(&self.blob_key, &encode_keys(&new))
            .ok_or(())?;
        self.link
            .call(&self.link_stats, self.config.writer_timeout, |c| {
                c.query::<()>(redis::cmd("SET").arg(&self.blob_key).arg(sealed.as_slice()))
            })
            .map_err(|_| ())?;
        if !rewrite_only {
            self.rotations.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(new))
    }

    /// Gives the lease an expiry if it has none (`PTTL` -1). Best effort: an
    /// error only delays rotation to the next refresh.
    fn expire_stuck_lease(&self, lease_ms: u64) {
        let _ = self
            .link
            .call(&self.link_stats, self.config.writer_timeout, |c| {
                let ttl = c.query::<i64>(redis::cmd("PTTL").arg(&self.lease_key))?;
                if ttl == -1 {
                    c.query::<i64>(redis::cmd("PEXPIRE").arg(&self.lease_key).arg(lease_ms))?;
                }
                Ok(())
            });
    }

    /// One refresh; returns whether Redis answered.
    fn refresh(&self) -> bool {
        let _ = self.link.resolve();
        // Nothing else probes this link's breaker: once open, a refresh after
        // its back-off probes (`PING`), and a success closes it. Without this it
        // would stay open for good after `threshold` failed refreshes.
        self.link
            .probe(&self.link_stats, self.config.writer_timeout);
        let fetched = self.read().and_then(|k| self.rotate(k));
        let held = self.current();
        let window = self.window();
        let now = self.now();
        // Keys past the window never open a ticket again: they go.
        let live = |ks: &[TicketKey]| -> Vec<TicketKey> {
            ks.iter()
                .filter(|k| age(k, now) < window)
                .cloned()
                .collect()
        };
        let local = live(&held.local);
        match fetched {
            Ok(Some(fleet)) => {
                self.refreshes.fetch_add(1, Ordering::Relaxed);
                // Local keys stay accepted for the window, then go.
                let mut keys = Keys {
                    fleet: live(&fleet),
                    local,
                };
                let local_only = keys.sealing(now, self.seal_max()).is_none();
                if local_only {
                    // The fleet's current key is too old to seal (rotation is
                    // stuck): a local key, as when Redis is down.
                    keys.local.insert(0, TicketKey::random(0, now));
                }
                self.local_only.store(local_only, Ordering::Relaxed);
                self.install(keys);
                true
            }
            Ok(None) | Err(()) => {
                // Redis unreachable (or lease lost with no keys yet): keep what
                // is held within the window; with no key young enough to seal,
                // make a local key.
                if fetched.is_err() {
                    self.refresh_errors.fetch_add(1, Ordering::Relaxed);
                }
                let mut keys = Keys {
                    fleet: live(&held.fleet),
                    local,
                };
                if keys.sealing(now, self.seal_max()).is_none() {
                    self.local_only.store(true, Ordering::Relaxed);
                    keys.local.insert(0, TicketKey::random(0, now));
                }
                self.install(keys);
                fetched.is_ok()
            }
        }
    }
}

fn refresher(weak: &Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let every = inner.options.refresh_interval;
        {
            let (lock, cv) = &inner.stop;
            let stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
            let (stopped, _) = cv
                .wait_timeout_while(stopped, every, |s| !*s)
                .unwrap_or_else(|e| e.into_inner());
            if *stopped {
                return;
            }
        }
        inner.refresh();
    }
}

impl Drop for RedisTicketer {
    fn drop(&mut self) {
        let (lock, cv) = &self.inner.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }
}

impl ::rustls::server::ProducesTickets for RedisTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        let o = &self.inner.options;
        let d = o.lifetime.unwrap_or_else(|| {
            o.rotation_interval
                .saturating_mul(u32::try_from(o.previous_keys.max(1)).unwrap_or(u32::MAX))
        });
        u32::try_from(d.as_secs().min(7 * 24 * 3600)).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.inner.current();
        let k = keys.sealing(self.inner.now(), self.inner.seal_max())?;
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = k
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &k.name,
                },
            )
            .ok()?;
        let mut v = Vec::with_capacity(NAME_LEN + NONCE_LEN + ct.len());
        v.extend_from_slice(&k.name);
        v.extend_from_slice(&nonce);
        v.extend_from_slice(&ct);
        self.inner.encrypted.fetch_add(1, Ordering::Relaxed);
        Some(v)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let opened = (|| {
            let (name, rest) = cipher.split_at_checked(NAME_LEN)?;
            let (nonce, ct) = rest.split_at_checked(NONCE_LEN)?;
            let keys = self.inner.current();
            let k = keys.find(name, self.inner.now(), self.inner.window())?;
            k.aead
                .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: name })
                .ok()
        })();
        let c = if opened.is_some() {
            &self.inner.decrypted
        } else {
            &self.inner.rejected
        };
        c.fetch_add(1, Ordering::Relaxed);
        opened
    }
}

impl fmt::Debug for RedisTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys never print.
        f.debug_struct("RedisTicketer")
            .field("options", &self.inner.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    #[test]
    fn key_lists_round_trip_and_garbage_is_refused() {
        let keys = vec![TicketKey::random(3, 100), TicketKey::random(2, 50)];
        let back = decode_keys(&encode_keys(&keys)).unwrap();
        assert_eq!(back.len(), 2);
        for (a, b) in keys.iter().zip(&back) {
            assert_eq!(
                (a.generation, a.created, a.name),
                (b.generation, b.created, b.name)
            );
            assert_eq!(a.secret.as_slice(), b.secret.as_slice());
        }
        let v = encode_keys(&keys);
        for n in 0..v.len() {
            assert!(decode_keys(&v[..n]).is_none(), "{n}");
        }
        assert!(decode_keys(&[2, 0]).is_none());
    }

    /// Redis unreachable from the start: a local key, tickets round-trip on this
    /// server, garbage and foreign tickets are refused.
    #[test]
    fn without_redis_a_local_key_seals_and_opens() {
        let t = RedisTicketer::new(
            RedisConfig::new("redis://127.0.0.1:1/").encryption_key([1; 32]),
            TicketerOptions::default(),
        )
        .unwrap();
        let s = t.stats();
        assert!(s.local_only && s.keys == 1, "{s:?}");
        let ticket = t.encrypt(b"state").unwrap();
        assert_eq!(t.decrypt(&ticket).as_deref(), Some(&b"state"[..]));
        let mut bad = ticket.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(t.decrypt(&bad).is_none());
        assert!(t.decrypt(&[]).is_none());
        assert!(t.decrypt(&[0; 100]).is_none());
        let other = RedisTicketer::new(
            RedisConfig::new("redis://127.0.0.1:1/").encryption_key([1; 32]),
            TicketerOptions::default(),
        )
        .unwrap();
        assert!(
            other.decrypt(&ticket).is_none(),
            "another server's local key"
        );
        assert_eq!(t.stats().rejected, 3);
        assert!(RedisTicketer::new(
            RedisConfig::new("redis://127.0.0.1:1/").insecure_plaintext(),
            TicketerOptions::default()
        )
        .is_err());
    }
}
