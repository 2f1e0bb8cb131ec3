//! The key ring and the sealing of what goes to Redis.
//!
//! Each ring key is a 256-bit secret with a one-byte id. From each secret two
//! sub-keys are derived with HMAC-SHA256 under fixed labels: a MAC key and an
//! XChaCha20-Poly1305 key. A session's Redis key is
//! `prefix || hex(key id) || ":" || hex(HMAC(mac key, prefix || id)[..16])`, so
//! Redis never sees a session id; a value is `3 || key id || nonce(24) ||
//! ciphertext`, sealed with associated data binding the namespace (the prefix),
//! the store's sid_ctx and the Redis key. The current key writes; older keys are
//! still tried on reads (each through its own MAC key), so a rotation causes no
//! miss storm.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ring::hmac;
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

const FORMAT_PLAIN: u8 = 1;
const FORMAT_RING: u8 = 3;
const NONCE_LEN: usize = 24;
/// Bytes of the MAC kept in a Redis key (128 bits).
const MAC_LEN: usize = 16;
/// The most older keys a ring holds.
pub const MAX_OLDER_KEYS: usize = 8;

const LABEL_MAC: &[u8] = b"tls-session-cache redis v1: key mac";
const LABEL_AEAD: &[u8] = b"tls-session-cache redis v1: value aead";
const LABEL_TICKETS: &[u8] = b"tls-session-cache redis v1: ticket keys aead";
const AAD_LABEL: &[u8] = b"tls-session-cache redis v1";

/// Why a [`KeyRing`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyRingError {
    /// Two keys of the ring have this id.
    DuplicateId(u8),
    /// More than [`MAX_OLDER_KEYS`] older keys.
    TooManyKeys,
    /// A hex secret was not 64 hex digits.
    BadHex,
}

impl fmt::Display for KeyRingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRingError::DuplicateId(id) => write!(f, "two ring keys have the id {id}"),
            KeyRingError::TooManyKeys => {
                write!(f, "a key ring holds at most {MAX_OLDER_KEYS} older keys")
            }
            KeyRingError::BadHex => write!(f, "a ring key secret is 64 hex digits (32 bytes)"),
        }
    }
}

impl std::error::Error for KeyRingError {}

/// One key of a ring: its id and the sub-keys derived from its secret.
struct RingKey {
    id: u8,
    mac: hmac::Key,
    aead: XChaCha20Poly1305,
    tickets: XChaCha20Poly1305,
}

impl RingKey {
    fn new(id: u8, secret: &[u8; 32]) -> Self {
        let base = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derive = |label: &[u8]| Zeroizing::new(hmac::sign(&base, label).as_ref().to_vec());
        let mac = derive(LABEL_MAC);
        let aead = derive(LABEL_AEAD);
        let tickets = derive(LABEL_TICKETS);
        RingKey {
            id,
            mac: hmac::Key::new(hmac::HMAC_SHA256, &mac),
            aead: XChaCha20Poly1305::new(aead.as_slice().into()),
            tickets: XChaCha20Poly1305::new(tickets.as_slice().into()),
        }
    }
}

/// The keys that protect what a fleet stores in Redis: one current key (writes
/// and reads) and up to [`MAX_OLDER_KEYS`] older keys (reads only), each a
/// 256-bit secret with a one-byte id that every server of the fleet agrees on.
///
/// Rotation without a miss storm (`docs/REDIS.md`): deploy the new key as an
/// older key everywhere, then make it current everywhere (the old one older),
/// then, once the old sessions' lifetime has passed, drop the old key.
///
/// ```
/// use tls_session_cache::integrations::redis::KeyRing;
///
/// // Secrets come from a secret store; `openssl rand -hex 32` makes one.
/// let k1 = KeyRing::secret_from_hex(&"11".repeat(32))?;
/// let k2 = KeyRing::generate_secret();
/// let ring = KeyRing::new(2, &k2).with_older(1, &k1)?;
/// assert_eq!(ring.current_id(), 2);
/// assert_eq!(ring.ids().collect::<Vec<_>>(), [2, 1]);
/// # Ok::<(), tls_session_cache::integrations::redis::KeyRingError>(())
/// ```
#[derive(Clone)]
pub struct KeyRing {
    keys: Arc<Vec<RingKey>>,
}

impl KeyRing {
    /// A ring whose current key is `secret`, with id `id`.
    pub fn new(id: u8, secret: &[u8; 32]) -> Self {
        KeyRing {
            keys: Arc::new(vec![RingKey::new(id, secret)]),
        }
    }

    /// Adds an older key, still accepted for reading (tried after the current
    /// one and the older keys added before it).
    ///
    /// # Errors
    /// Its id is taken, or the ring already holds [`MAX_OLDER_KEYS`] older keys.
    pub fn with_older(self, id: u8, secret: &[u8; 32]) -> Result<Self, KeyRingError> {
        if self.keys.iter().any(|k| k.id == id) {
            return Err(KeyRingError::DuplicateId(id));
        }
        if self.keys.len() > MAX_OLDER_KEYS {
            return Err(KeyRingError::TooManyKeys);
        }
        let mut keys = Arc::try_unwrap(self.keys).unwrap_or_else(|shared| {
            shared
                .iter()
                .map(|k| RingKey {
                    id: k.id,
                    mac: k.mac.clone(),
                    aead: k.aead.clone(),
                    tickets: k.tickets.clone(),
                })
                .collect()
        });
        keys.push(RingKey::new(id, secret));
        Ok(KeyRing {
            keys: Arc::new(keys),
        })
    }

    /// A fresh random secret from the operating system's generator.
    pub fn generate_secret() -> [u8; 32] {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut out = [0u8; 32];
        out.copy_from_slice(&key);
        out
    }

    /// A secret written as 64 hex digits (e.g. from `openssl rand -hex 32`;
    /// surrounding white space is ignored).
    ///
    /// # Errors
    /// Not exactly 64 hex digits.
    pub fn secret_from_hex(hex: &str) -> Result<[u8; 32], KeyRingError> {
        let hex = hex.trim().as_bytes();
        if hex.len() != 64 {
            return Err(KeyRingError::BadHex);
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(KeyRingError::BadHex),
        };
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            *o = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Ok(out)
    }

    /// The current key's id.
    pub fn current_id(&self) -> u8 {
        self.keys[0].id
    }

    /// The ids, current first.
    pub fn ids(&self) -> impl Iterator<Item = u8> + '_ {
        self.keys.iter().map(|k| k.id)
    }

    fn get(&self, id: u8) -> Option<&RingKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Seals `msg` (the fleet's ticket keys) under the current key's ticket
    /// sub-key: `key id || nonce || ciphertext`.
    pub(super) fn seal_tickets(&self, aad: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
        let k = &self.keys[0];
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = k.tickets.encrypt(&nonce, Payload { msg, aad }).ok()?;
        let mut v = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        v.push(k.id);
        v.extend_from_slice(&nonce);
        v.extend_from_slice(&ct);
        Some(v)
    }

    /// Opens what [`seal_tickets`](Self::seal_tickets) made, with whichever ring
    /// key it names.
    pub(super) fn open_tickets(&self, aad: &[u8], v: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (&id, rest) = v.split_first()?;
        let k = self.get(id)?;
        let (nonce, ct) = rest.split_at_checked(NONCE_LEN)?;
        k.tickets
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()
            .map(Zeroizing::new)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ids only: the secrets never print.
        f.debug_struct("KeyRing")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// Not a stable API: how a store names and seals what it puts in Redis — the
/// Redis keys of a session id and the sealing of records — for one namespace
/// (key prefix) and sid_ctx.
#[doc(hidden)]
pub struct Sealer {
    prefix: Vec<u8>,
    ring: Option<KeyRing>,
    /// `label || len(prefix) prefix || len(sid_ctx) sid_ctx`: the start of every
    /// value's associated data (the Redis key follows).
    aad_head: Vec<u8>,
}

impl Sealer {
    /// No key ring (`RedisConfig::insecure_plaintext`): keys are the prefix and
    /// the id in hex, values the plain record.
    pub fn plaintext(prefix: &[u8]) -> Self {
        Sealer {
            prefix: prefix.to_vec(),
            ring: None,
            aad_head: Vec::new(),
        }
    }

    /// Keys MACed and values sealed with `ring`, bound to the namespace `prefix`
    /// and `sid_ctx` (empty: none configured).
    pub fn new(ring: &KeyRing, prefix: &[u8], sid_ctx: &[u8]) -> Self {
        let mut aad_head = AAD_LABEL.to_vec();
        aad_head.extend_from_slice(
            &u32::try_from(prefix.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        aad_head.extend_from_slice(prefix);
        aad_head.extend_from_slice(
            &u32::try_from(sid_ctx.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        aad_head.extend_from_slice(sid_ctx);
        Sealer {
            prefix: prefix.to_vec(),
            ring: Some(ring.clone()),
            aad_head,
        }
    }

    /// Whether values are sealed.
    pub fn sealed(&self) -> bool {
        self.ring.is_some()
    }

    fn key_with(&self, k: &RingKey, id: &[u8]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&k.mac);
        ctx.update(
            &u32::try_from(self.prefix.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        ctx.update(&self.prefix);
        ctx.update(id);
        let tag = ctx.sign();
        let mut key = Vec::with_capacity(self.prefix.len() + 3 + 2 * MAC_LEN);
        key.extend_from_slice(&self.prefix);
        push_hex(&mut key, &[k.id]);
        key.push(b':');
        push_hex(&mut key, &tag.as_ref()[..MAC_LEN]);
        key
    }

    /// The Redis key a session id is written under (the current ring key's).
    pub fn key(&self, id: &[u8]) -> Vec<u8> {
        match &self.ring {
            None => {
                let mut k = self.prefix.clone();
                push_hex(&mut k, id);
                k
            }
            Some(ring) => self.key_with(&ring.keys[0], id),
        }
    }

    /// Every Redis key a session id may be stored under: the current ring key's
    /// first, then each older key's.
    pub fn keys(&self, id: &[u8]) -> Vec<Vec<u8>> {
        match &self.ring {
            None => vec![self.key(id)],
            Some(ring) => ring.keys.iter().map(|k| self.key_with(k, id)).collect(),
        }
    }

    fn aad(&self, redis_key: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(self.aad_head.len() + redis_key.len());
        aad.extend_from_slice(&self.aad_head);
        aad.extend_from_slice(redis_key);
        aad
    }

    /// The stored value for `record` under `redis_key`, sealed with the current
    /// key.
    pub fn seal(&self, redis_key: &[u8], record: &[u8]) -> Option<Vec<u8>> {
        Some(match &self.ring {
            None => {
                let mut v = Vec::with_capacity(1 + record.len());
                v.push(FORMAT_PLAIN);
                v.extend_from_slice(record);
                v
            }
            Some(ring) => {
                let k = &ring.keys[0];
                let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
                let aad = self.aad(redis_key);
                let ct = k
                    .aead
                    .encrypt(
                        &nonce,
                        Payload {
                            msg: record,
                            aad: &aad,
                        },
                    )
                    .ok()?;
                let mut v = Vec::with_capacity(2 + NONCE_LEN + ct.len());
                v.push(FORMAT_RING);
                v.push(k.id);
                v.extend_from_slice(&nonce);
                v.extend_from_slice(&ct);
                v
            }
        })
    }

    /// The record in a value fetched from `redis_key`, if it opens (with the
    /// ring key it names).
    pub fn open(&self, redis_key: &[u8], value: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (&format, rest) = value.split_first()?;
        match (&self.ring, format) {
            (None, FORMAT_PLAIN) => Some(Zeroizing::new(rest.to_vec())),
            (Some(ring), FORMAT_RING) => {
                let (&id, rest) = rest.split_first()?;
                let k = ring.get(id)?;
                let (nonce, ct) = rest.split_at_checked(NONCE_LEN)?;
                let aad = self.aad(redis_key);
                k.aead
                    .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
                    .ok()
                    .map(Zeroizing::new)
            }
            _ => None,
        }
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("ring", &self.ring)
            .finish()
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;

    #[test]
    fn keys_hide_the_id_and_carry_the_key_id() {
        let ring = KeyRing::new(7, &[1; 32]);
        let s = Sealer::new(&ring, b"p:", b"");
        let k = s.key(&[0xab; 32]);
        let text = String::from_utf8(k.clone()).unwrap();
        assert!(text.starts_with("p:07:"), "{text}");
        assert_eq!(text.len(), 2 + 3 + 32);
        assert!(!text.contains("abab"));
        // Deterministic per (key, namespace, id); different across each.
        assert_eq!(k, Sealer::new(&ring, b"p:", b"x").key(&[0xab; 32]));
        assert_ne!(k, s.key(&[0xac; 32]));
        assert_ne!(k, Sealer::new(&ring, b"q:", b"").key(&[0xab; 32]));
        assert_ne!(
            k,
            Sealer::new(&KeyRing::new(7, &[2; 32]), b"p:", b"").key(&[0xab; 32])
        );
        assert_eq!(
            Sealer::plaintext(b"p:").key(&[0x00, 0xab, 0xff]),
            b"p:00abff".to_vec()
        );
    }

    #[test]
    fn values_open_only_in_their_namespace_sid_ctx_and_key() {
        let ring = KeyRing::new(1, &[1; 32]);
        let s = Sealer::new(&ring, b"p:", b"ctx");
        let key = s.key(b"id");
        let v = s.seal(&key, b"record").unwrap();
        assert_eq!(&s.open(&key, &v).unwrap()[..], b"record");
        assert!(s.open(b"other key", &v).is_none(), "moved");
        assert!(
            Sealer::new(&ring, b"q:", b"ctx").open(&key, &v).is_none(),
            "namespace"
        );
        assert!(
            Sealer::new(&ring, b"p:", b"other").open(&key, &v).is_none(),
            "sid_ctx"
        );
        let other = KeyRing::new(1, &[2; 32]);
        assert!(
            Sealer::new(&other, b"p:", b"ctx").open(&key, &v).is_none(),
            "secret"
        );
        assert!(
            Sealer::plaintext(b"p:").open(&key, &v).is_none(),
            "plain reader"
        );
        let plain = Sealer::plaintext(b"p:").seal(&key, b"record").unwrap();
        assert!(s.open(&key, &plain).is_none(), "plaintext refused");
        let mut bad = v.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(s.open(&key, &bad).is_none(), "tampered");
    }

    #[test]
    fn a_rotated_ring_reads_old_values_and_writes_new_ones() {
        let (k1, k2) = ([1; 32], [2; 32]);
        let old = Sealer::new(&KeyRing::new(1, &k1), b"p:", b"");
        let rotated = Sealer::new(
            &KeyRing::new(2, &k2).with_older(1, &k1).unwrap(),
            b"p:",
            b"",
        );
        let dropped = Sealer::new(&KeyRing::new(2, &k2), b"p:", b"");
        let key1 = old.key(b"id");
        let v1 = old.seal(&key1, b"old").unwrap();
        assert_eq!(rotated.keys(b"id"), vec![dropped.key(b"id"), key1.clone()]);
        assert_eq!(&rotated.open(&key1, &v1).unwrap()[..], b"old");
        assert!(dropped.open(&key1, &v1).is_none());
        assert!(!dropped.keys(b"id").contains(&key1));
        assert_eq!(
            KeyRing::new(1, &k1).with_older(1, &k2).unwrap_err(),
            KeyRingError::DuplicateId(1)
        );
    }

    #[test]
    fn hex_secrets() {
        assert_eq!(KeyRing::secret_from_hex(&"0a".repeat(32)), Ok([10; 32]));
        assert_eq!(KeyRing::secret_from_hex(" 0A"), Err(KeyRingError::BadHex));
        assert_eq!(
            KeyRing::secret_from_hex(&"zz".repeat(32)),
            Err(KeyRingError::BadHex)
        );
        assert_ne!(KeyRing::generate_secret(), KeyRing::generate_secret());
    }
}
