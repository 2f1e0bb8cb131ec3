//! The record stored in Redis and the payload [`Codec`]s; [`decode_session`], the
//! pure decoding path of a fetched value (the fuzz target's entry point).

use super::crypto::Sealer;
use crate::integrations::rustls::Secret;
use crate::Session;
use std::time::Duration;
use zeroize::Zeroizing;

/// How a session payload becomes bytes in Redis and back.
///
/// `decode` gets bytes that passed the record checks (and decryption, if on) but
/// may still be garbage (another version, a bug elsewhere): it returns `None`
/// rather than panicking, and the lookup is a miss.
pub trait Codec<P>: Send + Sync + 'static {
    /// The payload's bytes, or `None` to not store this session in Redis.
    fn encode(&self, payload: &P) -> Option<Vec<u8>>;
    /// The payload back, or `None` (a miss).
    fn decode(&self, bytes: &[u8]) -> Option<P>;
}

/// The codec for rustls payloads ([`Secret`]): the serialized bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecretCodec;

impl Codec<Secret> for SecretCodec {
    fn encode(&self, payload: &Secret) -> Option<Vec<u8>> {
        Some(payload.as_bytes().to_vec())
    }
    fn decode(&self, bytes: &[u8]) -> Option<Secret> {
        Some(Secret::new(bytes.to_vec()))
    }
}

/// The codec for plain byte payloads (`Vec<u8>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesCodec;

impl Codec<Vec<u8>> for BytesCodec {
    fn encode(&self, payload: &Vec<u8>) -> Option<Vec<u8>> {
        Some(payload.clone())
    }
    fn decode(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        Some(bytes.to_vec())
    }
}

/// The codec for OpenSSL sessions: their DER encoding (`i2d_SSL_SESSION` /
/// `d2i_SSL_SESSION`).
#[cfg(feature = "openssl")]
#[derive(Debug, Clone, Copy, Default)]
pub struct DerCodec;

#[cfg(feature = "openssl")]
impl Codec<crate::NativeSession> for DerCodec {
    fn encode(&self, payload: &crate::NativeSession) -> Option<Vec<u8>> {
        payload.to_der().ok()
    }
    fn decode(&self, bytes: &[u8]) -> Option<crate::NativeSession> {
        crate::NativeSession::from_der(bytes).ok()
    }
}

/// A decoded record: the session's fields and its encoded payload.
pub(super) struct Record {
    pub(super) id: Vec<u8>,
    pub(super) sid_ctx: Vec<u8>,
    pub(super) time: u64,
    pub(super) timeout: u64,
    pub(super) payload: Zeroizing<Vec<u8>>,
}

/// `len(id) id len(sid_ctx) sid_ctx time:u64be timeout:u64be payload`. Ids and
/// contexts are at most 32 bytes (the cache refuses longer ones).
pub(super) fn encode_record(
    id: &[u8],
    sid_ctx: &[u8],
    time: u64,
    timeout: u64,
    payload: &[u8],
) -> Vec<u8> {
    debug_assert!(id.len() <= usize::from(u8::MAX) && sid_ctx.len() <= usize::from(u8::MAX));
    let mut v = Vec::with_capacity(2 + id.len() + sid_ctx.len() + 16 + payload.len());
    v.push(id.len() as u8);
    v.extend_from_slice(id);
    v.push(sid_ctx.len() as u8);
    v.extend_from_slice(sid_ctx);
    v.extend_from_slice(&time.to_be_bytes());
    v.extend_from_slice(&timeout.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub(super) fn decode_record(b: &[u8]) -> Option<Record> {
    let (&n, b) = b.split_first()?;
    let (id, b) = b.split_at_checked(usize::from(n))?;
    let (&n, b) = b.split_first()?;
    let (sid_ctx, b) = b.split_at_checked(usize::from(n))?;
    let (time, b) = b.split_at_checked(8)?;
    let (timeout, payload) = b.split_at_checked(8)?;
    Some(Record {
        id: id.to_vec(),
        sid_ctx: sid_ctx.to_vec(),
        time: u64::from_be_bytes(time.try_into().ok()?),
        timeout: u64::from_be_bytes(timeout.try_into().ok()?),
        payload: Zeroizing::new(payload.to_vec()),
    })
}

/// What a fetched value must match to become a session.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The id that was looked up.
    pub id: &'a [u8],
    /// The only session id context accepted (`None`: any).
    pub sid_ctx: Option<&'a [u8]>,
    /// The current time (seconds): an expired record is refused.
    pub now: u64,
}

/// Not a stable API: the whole decoding path of a value fetched from Redis under
/// `redis_key` — opening ([`Sealer`]), the record parser, the checks against
/// `expect` (id, sid_ctx, expiry) and the payload codec. Pure: no I/O, no
/// counters. `None` for anything that fails a step, never a panic.
/// `fuzz/fuzz_targets/redis_codec.rs` calls it directly.
#[doc(hidden)]
pub fn decode_session<P, C: Codec<P>>(
    sealer: &Sealer,
    codec: &C,
    redis_key: &[u8],
    value: &[u8],
    expect: &Expect<'_>,
) -> Option<Session<P>> {
    let plain = sealer.open(redis_key, value)?;
    let r = decode_record(&plain)?;
    if r.id != expect.id {
        return None;
    }
    if let Some(want) = expect.sid_ctx {
        if r.sid_ctx != want {
            return None;
        }
    }
    if expect.now > r.time.saturating_add(r.timeout) {
        return None;
    }
    let payload = codec.decode(&r.payload)?;
    Some(
        Session::new(&r.id, &r.sid_ctx, payload)
            .ok()?
            .with_time(r.time)
            .with_timeout(Duration::from_secs(r.timeout)),
    )
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_garbage() {
        let v = encode_record(b"id", b"ctx", 5, 300, b"payload");
        let r = decode_record(&v).unwrap();
        assert_eq!(
            (&r.id[..], &r.sid_ctx[..], r.time, r.timeout),
            (&b"id"[..], &b"ctx"[..], 5, 300)
        );
        assert_eq!(&r.payload[..], b"payload");
        let header = 1 + 2 + 1 + 3 + 16;
        for n in 0..header {
            assert!(decode_record(&v[..n]).is_none(), "{n}");
        }
        assert_eq!(&decode_record(&v[..header]).unwrap().payload[..], b"");
        assert!(decode_record(&[]).is_none());
        assert!(decode_record(&[40, 1, 2]).is_none());
    }
}
