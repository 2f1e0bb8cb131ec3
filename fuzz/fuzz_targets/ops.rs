//! `ops`: arbitrary bytes decoded into a setup (15 pre-made sessions over 5 ids of
//! different lengths and 4 session id contexts, capacity, mode, clock, with or
//! without a recording `SessionStore`) and a sequence of operations, applied to the
//! cache and to the plain sequential model of `tests/model_support/mod.rs` (the
//! same file tests/model.rs uses, included here), asserting after every step that
//! they agree: return values, `len()`, `stats()`, slot and index-entry counts,
//! `Arc::strong_count`, the resumable flag and time of every pre-made session, and
//! the store callbacks.
//!
//! Also: `Session::new` with arbitrary id / sid_ctx lengths returns exactly the
//! typed error; `get`/`take` with ids of any length never panic (a counted miss).
#![no_main]

#[path = "epoch.rs"]
mod epoch;
use epoch::collect_garbage;

#[path = "../../tests/model_support/mod.rs"]
mod model;

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use model::{id_bytes, FlushAt, Op, Setup, Spec, BASE, CTXS, IDS, OBJS};
use tls_session_cache::CacheMode;

/// The longest operation sequence (the rest of a longer input is ignored). Every
/// step is followed by the full comparison, so an execution costs about its number
/// of steps; 64 (tests/model.rs draws up to 60) reaches every state of a cache of
/// at most 5 sessions over 5 ids, and the `update_cache` x256 step still reaches
/// the auto-flush. It was 256: 2.5x the time per execution, and no more edges of
/// `src/` covered in a 60 s run (docs/FUZZING.md).
const MAX_OPS: usize = 64;

fn mode(bits: u16) -> CacheMode {
    let mut mode = match bits & 3 {
        0 => CacheMode::OFF,
        1 => CacheMode::CLIENT,
        2 => CacheMode::SERVER,
        _ => CacheMode::BOTH,
    };
    for (bit, m) in [
        (2, CacheMode::NO_AUTO_CLEAR),
        (3, CacheMode::NO_INTERNAL_LOOKUP),
        (4, CacheMode::NO_INTERNAL_STORE),
        (5, CacheMode::UPDATE_TIME),
    ] {
        if bits & (1 << bit) != 0 {
            mode |= m;
        }
    }
    mode
}

fn setup(u: &mut Unstructured) -> ArbResult<Setup> {
    let mut specs = Vec::with_capacity(OBJS);
    for _ in 0..OBJS {
        let time_off = i64::from(u.int_in_range(-60i8..=60)?);
        let timeout = match u.int_in_range(0u8..=8)? {
            0 | 1 => None,
            2 => Some(u64::MAX),
            3 => Some(u64::MAX - u64::from(u.arbitrary::<u8>()?)),
            _ => Some(u64::from(u.int_in_range(0u8..=59)?)),
        };
        let ctx = u.choose_index(CTXS.len())?;
        specs.push(Spec {
            time_off,
            timeout,
            ctx,
        });
    }
    let capacity = u.int_in_range(0usize..=5)?;
    let mode = mode(u.arbitrary()?);
    let clock = match u.int_in_range(0u8..=5)? {
        0 => u64::from(u.int_in_range(900u16..=1100)?),
        1 => 0,
        2 => u64::MAX,
        _ => BASE,
    };
    let store = u.arbitrary()?;
    Ok(Setup {
        specs,
        capacity,
        mode,
        clock,
        store,
        // Not the default (four per core): every check locks every shard, and
        // five ids gain nothing from more.
        shards: Some(2),
    })
}

/// Any id bytes: a known id (often), or arbitrary bytes of length 0 to 40.
fn any_id(u: &mut Unstructured) -> ArbResult<Vec<u8>> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 | 1 => id_bytes(u.choose_index(IDS)?),
        2 => {
            let len = u.int_in_range(0usize..=40)?;
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                v.push(u.arbitrary()?);
            }
            v
        }
        _ => vec![b'a' + u.choose_index(IDS)? as u8; u.int_in_range(0usize..=40)?],
    })
}

fn op(u: &mut Unstructured, store: bool) -> ArbResult<Op> {
    let obj = |u: &mut Unstructured| u.choose_index(OBJS);
    Ok(match u.int_in_range(0u8..=19)? {
        0 | 1 => Op::Add(obj(u)?),
        2 => Op::AddCached(u.int_in_range(0..=7)?),
        3 => Op::Replace(u.int_in_range(0..=7)?, u.int_in_range(0..=1)?),
        4 => Op::Remove(obj(u)?),
        5 => Op::RemoveIfSame(obj(u)?),
        6 | 7 => Op::Get {
            id: any_id(u)?,
            ctx: u.choose_index(CTXS.len())?,
            keep: u.arbitrary()?,
        },
        8 => Op::GetCached {
            k: u.int_in_range(0..=7)?,
            same_ctx: u.ratio(4u8, 5)?,
            keep: u.arbitrary()?,
        },
        9 => Op::Take {
            id: any_id(u)?,
            keep: u.arbitrary()?,
        },
        10 => Op::Flush(match u.int_in_range(0u8..=3)? {
            0 => FlushAt::Zero,
            1 => FlushAt::Abs(u.arbitrary()?),
            2 => FlushAt::Near(i64::from(u.int_in_range(-5i8..=60)?)),
            _ => FlushAt::Abs(u64::from(u.int_in_range(900u16..=1200)?)),
        }),
        11 => Op::SetCapacity(u.int_in_range(0usize..=5)?),
        12 => Op::Advance(match u.int_in_range(0u8..=7)? {
            0 => u.arbitrary()?,
            _ => u64::from(u.int_in_range(0u8..=40)?),
        }),
        13 => Op::SetClock(match u.int_in_range(0u8..=5)? {
            0 => 0,
            1 => u64::MAX,
            2 => u.arbitrary()?,
            _ => u64::from(u.int_in_range(900u16..=1300)?),
        }),
        14 => Op::Release,
        15 => Op::UpdateCache {
            obj: obj(u)?,
            times: if u.ratio(1u8, 6)? { 256 } else { 1 },
        },
        16 if store => Op::ExtPut(obj(u)?),
        17 if store => Op::ExtDel(u.choose_index(IDS)?),
        18 => Op::SetMode(mode(u.arbitrary()?)),
        _ => Op::NewSession {
            id_len: u.int_in_range(0..=40)?,
            ctx_len: u.int_in_range(0..=40)?,
        },
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    // Running out of bytes mid-decode just ends the sequence.
    let Ok(setup) = setup(&mut u) else {
        return;
    };
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match op(&mut u, setup.store) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    let result = model::run(&setup, &ops);
    collect_garbage();
    if let Err(e) = result {
        panic!("cache and model differ: {e}\nsetup: {setup:?}");
    }
});
