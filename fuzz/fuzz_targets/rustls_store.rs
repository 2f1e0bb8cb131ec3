//! `rustls_store`: arbitrary `put` / `get` / `take` keys and values (and clock
//! moves) on `RustlsStore`, checked against a `HashMap` model: `put` stores keys of
//! 1 to 32 bytes (returns true) and refuses others, `get` returns what was last put
//! (until it expires or is evicted), `take` returns it once, keys of 0 or over 32
//! bytes always miss, the statistics agree, nothing panics.
//!
//! The model follows the cache's rules for this use: every `put` is a new session
//! stamped with the clock's now, so it expires at `now + timeout`; a full cache
//! evicts the soonest expiry, then the oldest put; every 256th valid `put`
//! (`update_cache`) flushes the sessions expired at now.
#![no_main]

#[path = "epoch.rs"]
mod epoch;
use epoch::collect_garbage;

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use rustls::server::StoresServerSessions;
use std::collections::HashMap;
use std::time::Duration;
use tls_session_cache::{ManualClock, RustlsStore, SessionCache, Stats};

const START: u64 = 1_700_000_000;
const MAX_OPS: usize = 512;

struct Entry {
    value: Vec<u8>,
    expiry: u64,
    seq: u64,
}

#[derive(Default)]
struct Model {
    now: u64,
    timeout: u64,
    cap: usize,
    map: HashMap<Vec<u8>, Entry>,
    seq: u64,
    puts: u64,
    stats: Stats,
}

impl Model {
    fn evict_one(&mut self) {
        let k = self
            .map
            .iter()
            .min_by_key(|(_, e)| (e.expiry, e.seq))
            .map(|(k, _)| k.clone())
            .unwrap();
        self.map.remove(&k);
        self.stats.cache_full += 1;
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> bool {
        if key.is_empty() || key.len() > 32 {
            return false;
        }
        if self.map.contains_key(key) {
            self.stats.replaces += 1;
        } else {
            while self.cap > 0 && self.map.len() >= self.cap {
                self.evict_one();
            }
            self.stats.adds += 1;
        }
        self.seq += 1;
        let e = Entry {
            value: value.to_vec(),
            expiry: self.now.saturating_add(self.timeout),
            seq: self.seq,
        };
        self.map.insert(key.to_vec(), e);
        self.puts += 1;
        if self.puts % 256 == 0 {
            // The cache's auto-flush is `flush(now)`, and `flush(0)` removes
            // everything (OpenSSL's `SSL_CTX_flush_sessions(ctx, 0)` too): a
            // clock reading 0 empties the cache.
            let now = self.now;
            let before = self.map.len();
            if now == 0 {
                self.map.clear();
            } else {
                self.map.retain(|_, e| now <= e.expiry);
            }
            self.stats.flushed += (before - self.map.len()) as u64;
        }
        true
    }

    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let Some(e) = self.map.get(key) else {
            self.stats.misses += 1;
            return None;
        };
        if self.now > e.expiry {
            self.map.remove(key);
            self.stats.expired += 1;
            self.stats.timeouts += 1;
            return None;
        }
        self.stats.hits += 1;
        Some(e.value.clone())
    }

    fn take(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let Some(e) = self.map.remove(key) else {
            self.stats.misses += 1;
            return None;
        };
        self.stats.takes += 1;
        if self.now > e.expiry {
            self.stats.timeouts += 1;
            return None;
        }
        self.stats.hits += 1;
        Some(e.value)
    }
}

fn bytes(u: &mut Unstructured, max: usize) -> ArbResult<Vec<u8>> {
    let len = u.int_in_range(0..=max)?;
    Ok(u.bytes(len)?.to_vec())
}

/// A key: often one used before (so gets and takes hit), else fresh bytes of
/// 0 to 48 bytes.
fn key(u: &mut Unstructured, used: &mut Vec<Vec<u8>>) -> ArbResult<Vec<u8>> {
    if !used.is_empty() && u.ratio(2u8, 3)? {
        return Ok(used[u.choose_index(used.len())?].clone());
    }
    let k = match u.int_in_range(0u8..=3)? {
        0 => vec![u.arbitrary()?; 32],
        1 => vec![u.arbitrary()?; 33],
        _ => bytes(u, 48)?,
    };
    used.push(k.clone());
    Ok(k)
}

fn run(u: &mut Unstructured) -> ArbResult<()> {
    let cap = u.int_in_range(0usize..=6)?;
    let timeout = match u.int_in_range(0u8..=3)? {
        0 => 0,
        1 => u64::MAX,
        _ => u64::from(u.int_in_range(1u16..=600)?),
    };
    let clock = ManualClock::new(START);
    let cache = SessionCache::builder()
        .capacity(cap)
        .timeout(if timeout == u64::MAX {
            Duration::MAX
        } else {
            Duration::from_secs(timeout)
        })
        .clock(clock.clone())
        // Two shards: the per-input cache is tiny; dashmap's default (four per
        // core) made building it a large part of an execution.
        .shards(2)
        .build();
    let store = RustlsStore::with_cache(cache);
    let mut m = Model {
        now: START,
        timeout,
        cap,
        ..Model::default()
    };
    let mut used = Vec::new();
    let mut step = 0;
    while !u.is_empty() && step < MAX_OPS {
        step += 1;
        match u.int_in_range(0u8..=9)? {
            0..=2 => {
                let k = key(u, &mut used)?;
                let v = bytes(u, 64)?;
                assert_eq!(
                    store.put(k.clone(), v.clone()),
                    m.put(&k, &v),
                    "put({k:?}) at {step}"
                );
            }
            3..=5 => {
                let k = key(u, &mut used)?;
                assert_eq!(store.get(&k), m.get(&k), "get({k:?}) at {step}");
            }
            6 | 7 => {
                let k = key(u, &mut used)?;
                assert_eq!(store.take(&k), m.take(&k), "take({k:?}) at {step}");
            }
            8 => {
                let d = u64::from(u.int_in_range(0u16..=700)?);
                m.now = m.now.saturating_add(d);
                clock.advance(Duration::from_secs(d));
            }
            _ => {
                // Backwards, or anywhere.
                let t = if u.arbitrary()? {
                    START.saturating_sub(u64::from(u.arbitrary::<u16>()?))
                } else {
                    u.arbitrary()?
                };
                m.now = t;
                clock.set(t);
            }
        }
        assert_eq!(store.cache().len(), m.map.len(), "len at {step}");
        m.stats.len = m.map.len() as u64;
        m.stats.capacity = cap as u64;
        assert_eq!(store.stats(), m.stats, "stats at {step}");
        assert!(cap == 0 || store.cache().len() <= cap);
        assert!(store.can_cache());
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
    collect_garbage();
});
