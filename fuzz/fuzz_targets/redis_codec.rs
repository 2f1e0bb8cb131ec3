//! `redis_codec`: everything in `src/integrations/redis.rs` that decodes bytes
//! coming from Redis — the format byte, the XChaCha20-Poly1305 opening, the record
//! parser, the payload codecs (`SecretCodec`, `BytesCodec`, `DerCodec`) and the
//! checks that turn a record into a session — gets arbitrary input and must never
//! panic; a session it returns must match the requested id, the configured sid_ctx
//! and not be expired.
//!
//! Input layout: byte 0 picks the store configuration and path, byte 1 the id
//! length, then the id, then the value. Random bytes never pass the AEAD tag, so
//! one path seals the fuzzer's bytes with the store's key first: the record parser
//! then sees arbitrary *decrypted* plaintexts too.
#![no_main]

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tls_session_cache::integrations::redis::{BytesCodec, Codec, DerCodec, SecretCodec};
use tls_session_cache::{ManualClock, RedisConfig, RedisStore, Session};

const KEY: [u8; 32] = [0x42; 32];
const NOW: u64 = 1_700_000_000;

struct Stores {
    plain: Arc<RedisStore>,
    sealed: Arc<RedisStore>,
    plain_ctx: Arc<RedisStore>,
    bytes: Arc<RedisStore<Vec<u8>, BytesCodec>>,
    clock: ManualClock,
}

fn stores() -> &'static Stores {
    static S: OnceLock<Stores> = OnceLock::new();
    S.get_or_init(|| {
        let clock = ManualClock::new(NOW);
        // Never connected: only the decoding path is called.
        let cfg = || RedisConfig::new("redis://127.0.0.1:1/").clock(clock.clone());
        Stores {
            plain: RedisStore::new(cfg()).unwrap(),
            sealed: RedisStore::new(cfg().encryption_key(KEY)).unwrap(),
            plain_ctx: RedisStore::new(cfg().sid_ctx(b"ctx")).unwrap(),
            bytes: RedisStore::with_codec(cfg().encryption_key(KEY), BytesCodec).unwrap(),
            clock,
        }
    })
}

fn seal(key: &[u8], nonce: &[u8; 24], record: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new((&KEY).into());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: record,
                aad: key,
            },
        )
        .unwrap();
    let mut v = vec![2u8];
    v.extend_from_slice(nonce);
    v.extend_from_slice(&ct);
    v
}

type Seen = (Vec<u8>, Vec<u8>, u64, Option<std::time::Duration>);

/// What the checks need of a returned session.
fn sess<P>(o: Option<Arc<Session<P>>>) -> Option<Seen> {
    o.map(|s| (s.id().to_vec(), s.sid_ctx().to_vec(), s.time(), s.timeout()))
}

fuzz_target!(|data: &[u8]| {
    let [sel, id_len, rest @ ..] = data else {
        return;
    };
    let sel = *sel;
    let (id, value) = rest.split_at(usize::from(*id_len).min(rest.len()));
    let s = stores();
    // Time moves with the input so the expiry check sees both sides.
    s.clock.set(if sel & 0x80 != 0 { u64::MAX } else { NOW });
    let now = if sel & 0x80 != 0 { u64::MAX } else { NOW };
    let key = s.plain.key(id);
    let check = |got: Option<Seen>, ctx: Option<&[u8]>| {
        if let Some((gid, gctx, time, timeout)) = got {
            assert_eq!(gid, id, "a session for another id");
            if let Some(c) = ctx {
                assert_eq!(gctx, c, "a session for another context");
            }
            let t = timeout.expect("records carry their timeout").as_secs();
            assert!(now <= time.saturating_add(t), "an expired session");
        }
    };
    match sel & 7 {
        // The value as stored, for each configuration.
        0 => check(sess(s.plain.__fuzz_to_session(id, &key, value)), None),
        1 => check(sess(s.sealed.__fuzz_to_session(id, &key, value)), None),
        2 => check(
            sess(s.plain_ctx.__fuzz_to_session(id, &key, value)),
            Some(b"ctx"),
        ),
        3 => check(sess(s.bytes.__fuzz_to_session(id, &key, value)), None),
        // Arbitrary plaintext sealed with the right key: the record parser behind
        // a passing tag.
        4 | 5 => {
            let nonce = [sel; 24];
            let sealed = seal(&key, &nonce, value);
            let got = if sel & 1 == 0 {
                sess(s.sealed.__fuzz_to_session(id, &key, &sealed))
            } else {
                sess(s.bytes.__fuzz_to_session(id, &key, &sealed))
            };
            check(got, None);
            // Moved to another key (aad): must not open.
            let other = s.plain.key(value);
            if other != key {
                assert!(s.sealed.__fuzz_to_session(id, &other, &sealed).is_none());
            }
        }
        // A plain record reached with the id it names (the fuzzer rarely guesses
        // the id): the whole accept path.
        6 => {
            let mut v = vec![1u8];
            v.extend_from_slice(value);
            let named = value
                .get(1..1 + usize::from(*value.first().unwrap_or(&0)))
                .unwrap_or(&[]);
            let k = s.plain.key(named);
            if let Some(got) = s.plain.__fuzz_to_session(named, &k, &v) {
                assert_eq!(got.id(), named);
                assert!(!named.is_empty() && named.len() <= 32);
            }
        }
        // The payload codecs on their own.
        _ => {
            let _ = SecretCodec.decode(value);
            assert_eq!(BytesCodec.decode(value).as_deref(), Some(value));
            let _ = DerCodec.decode(value);
        }
    }
});
