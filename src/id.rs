//! A session id of 1 to 32 bytes, stored zero-padded in 32 bytes, compared and
//! hashed as four `u64` words plus the length (fixed-size work: no variable-length
//! `memcmp` or byte-wise hashing), and `IdKey`: what the map is looked up by.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A session id of 1 to 32 bytes.
#[derive(Clone)]
#[repr(C)]
pub(crate) struct Id {
    bytes: [u8; 32],
    len: u8,
}

impl Id {
    /// `None` if `b` is empty or longer than 32 bytes.
    #[inline]
    pub(crate) fn new(b: &[u8]) -> Option<Self> {
        match <&[u8; 32]>::try_from(b) {
            // The common length: a fixed-size copy. (Merged with the general
            // path below, the compiler called `memmove` for every id: 7% of a
            // lookup's samples.)
            Ok(full) => Some(Id {
                bytes: *full,
                len: 32,
            }),
            Err(_) => Self::new_short(b),
        }
    }

    /// Ids of 1 to 31 bytes (`None` if empty or too long), kept out of line.
    #[cold]
    #[inline(never)]
    fn new_short(b: &[u8]) -> Option<Self> {
        if b.is_empty() || b.len() > 32 {
            return None;
        }
        let mut bytes = [0u8; 32];
        bytes[..b.len()].copy_from_slice(b);
        Some(Id {
            bytes,
            len: b.len() as u8,
        })
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    #[inline]
    fn word(&self, i: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.bytes[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(w)
    }
}

impl PartialEq for Id {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        // Zero padding makes equal ids equal word by word.
        self.len == other.len
            && (self.word(0) ^ other.word(0))
                | (self.word(1) ^ other.word(1))
                | (self.word(2) ^ other.word(2))
                | (self.word(3) ^ other.word(3))
                == 0
    }
}
impl Eq for Id {}

impl Id {
    /// Two 128-bit halves; the length is mixed into the last byte's lane of the
    /// second (equal ids are equal here; ids that differ only in length usually
    /// differ here too, and `Eq` tells them apart when they do not).
    #[inline]
    fn halves(&self) -> (u128, u128) {
        let lo = u128::from(self.word(0)) | (u128::from(self.word(1)) << 64);
        let hi = u128::from(self.word(2)) | (u128::from(self.word(3)) << 64);
        (lo, hi ^ (u128::from(self.len) << 120))
    }
}

impl Hash for Id {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Two 16-byte writes: the keyed hasher mixes each in one folded multiply.
        let (lo, hi) = self.halves();
        state.write_u128(lo);
        state.write_u128(hi);
    }
}

/// Something that has a session id: what the map is looked up by. The map's key
/// (`slot::Link`) reaches its id through the linked session; a lookup passes an
/// `Id`. Both hash and compare as the id (`Borrow<dyn IdKey>`), so a lookup needs
/// no session and the key needs no copy of the id.
pub(crate) trait IdKey {
    fn id(&self) -> &Id;
}

impl IdKey for Id {
    #[inline]
    fn id(&self) -> &Id {
        self
    }
}

impl Hash for dyn IdKey + '_ {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl PartialEq for dyn IdKey + '_ {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}
impl Eq for dyn IdKey + '_ {}

impl Borrow<dyn IdKey> for Id {
    #[inline]
    fn borrow(&self) -> &(dyn IdKey + 'static) {
        self
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::session::fmt_short(self.as_slice(), f)
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn equality_is_by_bytes_and_length() {
        let a = Id::new(b"ab").unwrap();
        let b = Id::new(b"ab\0").unwrap();
        assert_ne!(a, b, "a trailing zero byte is a different id");
        assert_eq!(a, Id::new(b"ab").unwrap());
        assert_eq!(Id::new(&[7u8; 32]).unwrap().as_slice(), &[7u8; 32]);
        assert!(Id::new(b"").is_none());
        assert!(Id::new(&[0u8; 33]).is_none());
        let h = foldhash::quality::RandomState::default();
        assert_eq!(h.hash_one(&a), h.hash_one(Id::new(b"ab").unwrap()));
        assert_eq!(std::mem::size_of::<Id>(), 33);
        // A lookup through `dyn IdKey` hashes and compares as the id itself.
        let d: &dyn IdKey = &a;
        assert_eq!(h.hash_one(d), h.hash_one(&a));
        assert!(*d == *(&Id::new(b"ab").unwrap() as &dyn IdKey));
    }
}
