//! Sessions: an id, a context, a creation time, a timeout and an opaque payload.

use crate::clock::system_now;
use crate::id::Id;
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use crate::Error;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// The longest session id OpenSSL accepts (`SSL_MAX_SSL_SESSION_ID_LENGTH`).
pub const MAX_ID_LEN: usize = 32;
/// The longest session id context OpenSSL accepts (`SSL_MAX_SID_CTX_LENGTH`).
pub const MAX_SID_CTX_LEN: usize = 32;

/// Up to 32 bytes stored inline: session id contexts.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Bytes32 {
    len: u8,
    bytes: [u8; 32],
}

impl Bytes32 {
    /// `None` if `b` is longer than 32 bytes.
    #[inline]
    pub(crate) fn new(b: &[u8]) -> Option<Self> {
        if b.len() > 32 {
            return None;
        }
        let mut bytes = [0u8; 32];
        bytes[..b.len()].copy_from_slice(b);
        Some(Bytes32 {
            len: b.len() as u8,
            bytes,
        })
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether the bytes are `b` (see `short_eq`).
    #[inline]
    pub(crate) fn is(&self, b: &[u8]) -> bool {
        short_eq(self.as_slice(), b)
    }
}

/// `a == b` for slices of up to 32 bytes without a call to `memcmp` (every
/// `get` compares the session's context with the caller's): two overlapping
/// fixed-size loads per slice cover every length of their range. Longer slices
/// fall back to the slice comparison.
#[inline]
pub(crate) fn short_eq(a: &[u8], b: &[u8]) -> bool {
    #[inline(always)]
    fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
        let mut w = [0u8; N];
        w.copy_from_slice(&s[at..at + N]);
        w
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4),
        8..=15 => word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8),
        16..=32 => {
            u128::from_ne_bytes(word(a, 0)) == u128::from_ne_bytes(word(b, 0))
                && u128::from_ne_bytes(word(a, n - 16)) == u128::from_ne_bytes(word(b, n - 16))
        }
        _ => a == b,
    }
}

impl PartialEq for Bytes32 {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.is(other.as_slice())
    }
}
impl Eq for Bytes32 {}

impl Hash for Bytes32 {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl fmt::Debug for Bytes32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_short(self.as_slice(), f)
    }
}

/// Ids and contexts are not secret (they travel in clear in TLS 1.2 hellos), but
/// keep `Debug` short: the length and a 4-byte prefix tell them apart.
pub(crate) fn fmt_short(b: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{} bytes ", b.len())?;
    for x in b.iter().take(4) {
        write!(f, "{x:02x}")?;
    }
    if b.len() > 4 {
        f.write_str("..")?;
    }
    Ok(())
}

/// A cached TLS session: what OpenSSL calls an `SSL_SESSION`, minus the crypto,
/// which lives in the payload `P` (serialized bytes for rustls, a native session
/// object for OpenSSL). The cache never looks inside the payload.
///
/// Sessions are shared as `Arc<Session<P>>`; the cache compares them by identity
/// (`Arc::ptr_eq`) where OpenSSL compares `SSL_SESSION` pointers.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use tls_session_cache::Session;
///
/// let s = Arc::new(
///     Session::new(b"id-1", b"my-service", vec![1u8, 2, 3])?
///         .with_time(1_700_000_000)
///         .with_timeout(Duration::from_secs(300)),
/// );
/// assert_eq!(s.id(), b"id-1");
/// assert_eq!(s.timeout(), Some(Duration::from_secs(300)));
/// assert!(s.is_resumable());
/// // Debug never prints the payload.
/// assert!(!format!("{s:?}").contains("[1, 2, 3]"));
/// # Ok::<(), tls_session_cache::Error>(())
/// ```
// `repr(C)`: what a lookup reads (time, timeout, flags, the id the map compares,
// then the id context) comes first, right after the `Arc`'s two counts, so that a
// hit touches as few cache lines of the session as it can. The flags come
// before the id: an eviction clears `resumable` and drops the strong count,
// and does not read the id, so the two share a line more often (with the id's
// hash in the eviction entry: L1d misses per evicting add 9.4 -> 8.9 in
// callgrind, docs/BENCHMARKS.md; offsets 32
// and 0 of the `Arc`'s allocation). 88 bytes in all.
#[repr(C)]
pub struct Session<P> {
    time: AtomicU64,
    /// Whole seconds; meaningful only when `has_timeout`.
    timeout_secs: u64,
    has_timeout: bool,
    resumable: AtomicBool,
    /// The map compares it on every lookup (the map key reads it through the
    /// session pointer): right after the fields a hit reads first.
    id: Id,
    sid_ctx: Bytes32,
    payload: P,
}

impl<P> Session<P> {
    /// A session with id `id` (1 to 32 bytes) made for context `sid_ctx` (0 to 32
    /// bytes), created now (system time), with the cache's timeout.
    ///
    /// # Errors
    /// [`Error::InvalidIdLength`] or [`Error::InvalidSidCtxLength`] when a length is
    /// outside those bounds.
    pub fn new(id: &[u8], sid_ctx: &[u8], payload: P) -> Result<Self, Error> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(Error::InvalidIdLength { len: id.len() });
        }
        let sid_ctx =
            Bytes32::new(sid_ctx).ok_or(Error::InvalidSidCtxLength { len: sid_ctx.len() })?;
        Ok(Session {
            id: Id::new(id).ok_or(Error::InvalidIdLength { len: id.len() })?,
            sid_ctx,
            time: AtomicU64::new(system_now()),
            timeout_secs: 0,
            has_timeout: false,
            resumable: AtomicBool::new(true),
            payload,
        })
    }

    /// Sets the creation time (Unix seconds). Sessions dated in the future are
    /// allowed; they expire `timeout` after that time.
    #[must_use]
    pub fn with_time(self, unix_secs: u64) -> Self {
        self.time.store(unix_secs, Ordering::Relaxed);
        self
    }

    /// Sets this session's own lifetime; without it the cache's timeout applies.
    /// Only whole seconds count (OpenSSL's resolution); `Duration::MAX` never expires.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout_secs = timeout.as_secs();
        self.has_timeout = true;
        self
    }

    /// The session id.
    pub fn id(&self) -> &[u8] {
        self.id.as_slice()
    }

    #[inline]
    pub(crate) fn key(&self) -> &Id {
        &self.id
    }

    /// The session id context it was made for.
    pub fn sid_ctx(&self) -> &[u8] {
        self.sid_ctx.as_slice()
    }

    /// Whether the session was made for context `ctx` (a fixed-size comparison).
    #[inline]
    pub(crate) fn sid_ctx_is(&self, ctx: &[u8]) -> bool {
        self.sid_ctx.is(ctx)
    }

    /// The payload.
    pub fn payload(&self) -> &P {
        &self.payload
    }

    /// The creation time in Unix seconds (refreshed by an add under
    /// [`CacheMode::UPDATE_TIME`](crate::CacheMode::UPDATE_TIME)).
    pub fn time(&self) -> u64 {
        self.time.load(Ordering::Relaxed)
    }

    pub(crate) fn set_time(&self, unix_secs: u64) {
        self.time.store(unix_secs, Ordering::Relaxed);
    }

    /// The session's own timeout (whole seconds), if one was set.
    pub fn timeout(&self) -> Option<Duration> {
        self.has_timeout
            .then(|| Duration::from_secs(self.timeout_secs))
    }

    /// Whether the session may still be resumed. Removing it from a cache
    /// ([`SessionCache::remove`](crate::SessionCache::remove)), evicting it or
    /// finding it expired clears this, as OpenSSL does.
    pub fn is_resumable(&self) -> bool {
        self.resumable.load(Ordering::Acquire)
    }

    /// Marks the session as never to be resumed again (`SSL_SESSION` `not_resumable`).
    pub fn mark_not_resumable(&self) {
        self.resumable.store(false, Ordering::Release);
    }

    /// The last second at which the session is still valid: `time + timeout`,
    /// saturating (a session expires when `now > expiry`).
    #[inline]
    pub(crate) fn expiry(&self, default_timeout: u64) -> u64 {
        let t = if self.has_timeout {
            self.timeout_secs
        } else {
            default_timeout
        };
        self.time().saturating_add(t)
    }

    /// Whether the session has expired at `now`.
    ///
    /// Expired means `now > time + timeout` (strictly, as OpenSSL). Without its own
    /// timeout, `default_timeout` applies.
    pub fn is_expired_at(&self, now: u64, default_timeout: Duration) -> bool {
        now > self.expiry(default_timeout.as_secs())
    }
}

impl<P> fmt::Debug for Session<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("sid_ctx", &self.sid_ctx)
            .field("time", &self.time())
            .field("timeout", &self.timeout())
            .field("resumable", &self.is_resumable())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;

    /// `short_eq` agrees with `==` for every length up to 33, on equal slices,
    /// on slices differing in any one byte, and on different lengths.
    #[test]
    fn short_eq_is_slice_equality() {
        for n in 0..=33usize {
            let a: Vec<u8> = (0..n).map(|i| (i * 7 + 1) as u8).collect();
            assert!(short_eq(&a, &a.clone()), "len {n}");
            for pos in 0..n {
                let mut b = a.clone();
                b[pos] ^= 0x80;
                assert!(!short_eq(&a, &b), "len {n}, byte {pos}");
                assert!(!short_eq(&b, &a), "len {n}, byte {pos}");
            }
            for m in 0..=33usize {
                if m != n {
                    let b: Vec<u8> = (0..m).map(|i| (i * 7 + 1) as u8).collect();
                    assert!(!short_eq(&a, &b), "lens {n} {m}");
                }
            }
        }
    }

    #[test]
    fn id_bounds() {
        assert_eq!(
            Session::new(b"", b"", ()).unwrap_err(),
            Error::InvalidIdLength { len: 0 }
        );
        assert_eq!(
            Session::new(&[0u8; 33], b"", ()).unwrap_err(),
            Error::InvalidIdLength { len: 33 }
        );
        assert_eq!(
            Session::new(b"a", &[0u8; 33], ()).unwrap_err(),
            Error::InvalidSidCtxLength { len: 33 }
        );
        assert!(Session::new(&[7u8; 32], &[1u8; 32], ()).is_ok());
        assert!(Session::new(b"x", b"", ()).is_ok());
    }

    #[test]
    fn accessors_and_defaults() {
        let s = Session::new(b"abc", b"ctx", 5u32).unwrap();
        assert_eq!(s.id(), b"abc");
        assert_eq!(s.sid_ctx(), b"ctx");
        assert_eq!(*s.payload(), 5);
        assert_eq!(s.timeout(), None);
        assert!(s.time() > 1_577_836_800);
        assert!(s.is_resumable());
        s.mark_not_resumable();
        assert!(!s.is_resumable());
    }

    #[test]
    fn expiry_is_strict_and_saturating() {
        let s = Session::new(b"a", b"", ())
            .unwrap()
            .with_time(100)
            .with_timeout(Duration::from_secs(10));
        assert!(!s.is_expired_at(110, Duration::ZERO));
        assert!(s.is_expired_at(111, Duration::ZERO));
        let s = Session::new(b"a", b"", ())
            .unwrap()
            .with_time(u64::MAX - 1)
            .with_timeout(Duration::MAX);
        assert!(!s.is_expired_at(u64::MAX, Duration::ZERO));
        let s = Session::new(b"a", b"", ()).unwrap().with_time(100);
        assert!(!s.is_expired_at(400, Duration::from_secs(300)));
        assert!(s.is_expired_at(401, Duration::from_secs(300)));
    }

    #[test]
    fn header_is_88_bytes_and_lookup_fields_come_first() {
        // Beyond the payload (and the `Arc`'s 16 bytes of counts).
        assert_eq!(std::mem::size_of::<Session<()>>(), 88);
        assert_eq!(std::mem::offset_of!(Session<()>, time), 0);
        // The flag an eviction clears: within the first 32 bytes of the `Arc`'s
        // allocation (with its 16 bytes of counts), beside the strong count.
        assert_eq!(std::mem::offset_of!(Session<()>, resumable), 17);
        assert_eq!(std::mem::offset_of!(Session<()>, id), 18);
        assert!(std::mem::offset_of!(Session<()>, sid_ctx) < 56);
    }

    #[test]
    fn debug_hides_payload() {
        // A fixed time: `Debug` shows it, and the clock's seconds can contain
        // "222" (the payload's first byte in decimal) by chance.
        let s = Session::new(b"abcdef", b"", vec![0xde_u8, 0xad, 0xbe, 0xef])
            .unwrap()
            .with_time(1_000_000);
        let d = format!("{s:?}");
        assert!(!d.contains("222"), "{d}");
        assert!(!d.contains("payload"), "{d}");
    }
}
