//! Sealing of the values stored in Redis.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

const FORMAT_PLAIN: u8 = 1;
const FORMAT_SEALED: u8 = 2;
const NONCE_LEN: usize = 24;

/// Not a stable API: turns records into stored values and back (a format byte,
/// then the record, sealed with XChaCha20-Poly1305 when a key is set).
#[doc(hidden)]
pub struct Sealer {
    cipher: Option<XChaCha20Poly1305>,
}

impl Sealer {
    /// Values are the plain record.
    pub fn plaintext() -> Self {
        Sealer { cipher: None }
    }

    /// Values are sealed under `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer {
            cipher: Some(XChaCha20Poly1305::new(key.into())),
        }
    }

    /// The stored value for `record` under Redis key `aad`.
    pub fn seal(&self, aad: &[u8], record: &[u8]) -> Option<Vec<u8>> {
        Some(match &self.cipher {
            None => {
                let mut v = Vec::with_capacity(1 + record.len());
                v.push(FORMAT_PLAIN);
                v.extend_from_slice(record);
                v
            }
            Some(cipher) => {
                let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
                let ct = cipher.encrypt(&nonce, Payload { msg: record, aad }).ok()?;
                let mut v = Vec::with_capacity(1 + NONCE_LEN + ct.len());
                v.push(FORMAT_SEALED);
                v.extend_from_slice(&nonce);
                v.extend_from_slice(&ct);
                v
            }
        })
    }

    /// The record in a stored value, if it opens.
    pub fn open(&self, aad: &[u8], value: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (&format, rest) = value.split_first()?;
        match (&self.cipher, format) {
            (None, FORMAT_PLAIN) => Some(Zeroizing::new(rest.to_vec())),
            (Some(cipher), FORMAT_SEALED) if rest.len() >= NONCE_LEN => {
                let (nonce, ct) = rest.split_at(NONCE_LEN);
                cipher
                    .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
                    .ok()
                    .map(Zeroizing::new)
            }
            _ => None,
        }
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is secret: only whether there is one.
        f.debug_struct("Sealer")
            .field("sealed", &self.cipher.is_some())
            .finish()
    }
}
