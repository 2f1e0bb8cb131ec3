//! The map key: a session id of 1 to 32 bytes, stored zero-padded in 32 bytes
//! aligned to 8, compared and hashed as four `u64` words plus the length
//! (fixed-size work: no variable-length `memcmp` or byte-wise hashing).

use std::fmt;
use std::hash::{Hash, Hasher};
// Std atomics even under loom: the position is only read and written under a
// lock (the partition mutex or the shard write lock), which orders it.
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};

/// A session id of 1 to 32 bytes.
///
/// As a map key it also carries, in what would be padding, the position of its
/// session's eviction entry (`part`, `idx`: see `docs/DESIGN.md`); equality and
/// hashing ignore it. It changes only under the id's partition mutex (replace) or
/// before the key is inserted; an id made for a lookup or stored in a session
/// carries 0.
#[repr(C, align(8))]
pub(crate) struct Id {
    bytes: [u8; 32],
    len: u8,
    _pad: u8,
    /// The eviction partition of the entry (at most 65 536 partitions).
    part: AtomicU16,
    /// The entry's index in its partition.
    idx: AtomicU32,
}

impl Clone for Id {
    fn clone(&self) -> Self {
        Id {
            bytes: self.bytes,
            len: self.len,
            _pad: 0,
            part: AtomicU16::new(self.part.load(Ordering::Relaxed)),
            idx: AtomicU32::new(self.idx.load(Ordering::Relaxed)),
        }
    }
}

impl Id {
    /// `None` if `b` is empty or longer than 32 bytes.
    #[inline]
    pub(crate) fn new(b: &[u8]) -> Option<Self> {
        if b.is_empty() || b.len() > 32 {
            return None;
        }
        let mut bytes = [0u8; 32];
        if let Ok(full) = <&[u8; 32]>::try_from(b) {
            // The common length: a fixed-size copy, no `memmove` call.
            bytes = *full;
        } else {
            bytes[..b.len()].copy_from_slice(b);
        }
        Some(Id {
            bytes,
            len: b.len() as u8,
            _pad: 0,
            part: AtomicU16::new(0),
            idx: AtomicU32::new(0),
        })
    }

    /// The position of the session's eviction entry: `(part << 32) | idx`.
    #[inline]
    pub(crate) fn pos(&self) -> u64 {
        (u64::from(self.part.load(Ordering::Relaxed)) << 32)
            | u64::from(self.idx.load(Ordering::Relaxed))
    }

    /// Records the entry's position (under the partition mutex, or before the key
    /// is published). Partitions number at most 65 536.
    #[inline]
    pub(crate) fn set_pos(&self, pos: u64) {
        debug_assert!(pos >> 32 <= u64::from(u16::MAX));
        self.part.store((pos >> 32) as u16, Ordering::Relaxed);
        self.idx.store(pos as u32, Ordering::Relaxed);
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

    /// The first word mixed with `seed`: the eviction partition's input (one
    /// multiply; the seed is random per cache, and ids are made by the server).
    #[inline]
    pub(crate) fn spread(&self, seed: u64) -> u64 {
        (self.word(0) ^ self.word(3) ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15)
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
        assert_eq!(std::mem::size_of::<Id>(), 40);
        // The entry position rides along, ignored by equality and hashing.
        let c = Id::new(b"ab").unwrap();
        c.set_pos((65_535 << 32) | 0xdead_beef);
        assert_eq!(c.pos(), (65_535 << 32) | 0xdead_beef);
        assert_eq!(c, a);
        assert_eq!(h.hash_one(&c), h.hash_one(&a));
        assert_eq!(c.clone().pos(), c.pos());
    }
}
