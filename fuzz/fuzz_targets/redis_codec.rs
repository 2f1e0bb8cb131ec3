//! `redis_codec`: everything in `src/integrations/redis/` that decodes bytes coming
//! from Redis — the format byte, the XChaCha20-Poly1305 opening, the record parser,
//! the payload codecs (`SecretCodec`, `BytesCodec`, `DerCodec`) and the checks that
//! turn a record into a session — gets arbitrary input through the pure
//! `decode_session` and must never panic; a session it returns must match the
//! requested id, the required sid_ctx and not be expired.
//!
//! Input layout: byte 0 picks the configuration and path, byte 1 the id length,
//! then the id, then the value. Random bytes never pass the AEAD tag, so one path
//! seals the fuzzer's bytes with the sealer first: the record parser then sees
//! arbitrary *decrypted* plaintexts too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tls_session_cache::integrations::redis::{
    decode_session, BytesCodec, Codec, DerCodec, Expect, KeyRing, Sealer, SecretCodec,
};

const KEY: [u8; 32] = [0x42; 32];
const NOW: u64 = 1_700_000_000;

struct Sealers {
    plain: Sealer,
    /// A ring of two keys (ids 2 current, 1 older) in namespace `ns:`.
    sealed: Sealer,
    /// The same ring, another namespace: nothing sealed for `ns:` opens.
    other_ns: Sealer,
}

fn sealers() -> &'static Sealers {
    static S: OnceLock<Sealers> = OnceLock::new();
    S.get_or_init(|| {
        let ring = KeyRing::new(2, &KEY).with_older(1, &[0x24; 32]).unwrap();
        Sealers {
            plain: Sealer::plaintext(b"ns:"),
            sealed: Sealer::new(&ring, b"ns:", b""),
            other_ns: Sealer::new(&ring, b"other:", b""),
        }
    })
}

type Seen = (Vec<u8>, Vec<u8>, u64, Option<std::time::Duration>);

/// What the checks need of a returned session.
fn sess<P>(o: Option<tls_session_cache::Session<P>>) -> Option<Seen> {
    o.map(|s| (s.id().to_vec(), s.sid_ctx().to_vec(), s.time(), s.timeout()))
}

fuzz_target!(|data: &[u8]| {
    let [sel, id_len, rest @ ..] = data else {
        return;
    };
    let sel = *sel;
    let (id, value) = rest.split_at(usize::from(*id_len).min(rest.len()));
    let s = sealers();
    // Time moves with the input so the expiry check sees both sides.
    let now = if sel & 0x80 != 0 { u64::MAX } else { NOW };
    let aad = b"redis-key";
    let any = Expect {
        id,
        sid_ctx: None,
        now,
    };
    let ctx = Expect {
        sid_ctx: Some(b"ctx"),
        ..any
    };
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
        0 => check(
            sess(decode_session(&s.plain, &SecretCodec, aad, value, &any)),
            None,
        ),
        1 => check(
            sess(decode_session(&s.sealed, &SecretCodec, aad, value, &any)),
            None,
        ),
        2 => check(
            sess(decode_session(&s.plain, &SecretCodec, aad, value, &ctx)),
            Some(b"ctx"),
        ),
        3 => check(
            sess(decode_session(&s.sealed, &BytesCodec, aad, value, &any)),
            None,
        ),
        // Arbitrary plaintext sealed with the right key: the record parser behind
        // a passing tag.
        4 | 5 => {
            let sealed = s.sealed.seal(aad, value).expect("sealing never fails");
            let got = if sel & 1 == 0 {
                sess(decode_session(&s.sealed, &SecretCodec, aad, &sealed, &any))
            } else {
                sess(decode_session(&s.sealed, &BytesCodec, aad, &sealed, &ctx))
            };
            check(got, (sel & 1 == 1).then_some(&b"ctx"[..]));
            // Moved to another key (aad) or namespace: must not open.
            assert!(decode_session(&s.sealed, &SecretCodec, b"other", &sealed, &any).is_none());
            assert!(decode_session(&s.other_ns, &SecretCodec, aad, &sealed, &any).is_none());
        }
        // A plain record reached with the id it names (the fuzzer rarely guesses
        // the id): the whole accept path.
        6 => {
            let v = s.plain.seal(aad, value).expect("plaintext never fails");
            let named = value
                .get(1..1 + usize::from(*value.first().unwrap_or(&0)))
                .unwrap_or(&[]);
            let e = Expect { id: named, ..any };
            if let Some(got) = decode_session(&s.plain, &SecretCodec, aad, &v, &e) {
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
