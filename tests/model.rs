//! Model-based property tests: `SessionCache` against a plain sequential model.
//!
//! The model is a `BTreeMap` from id to (object, expiry, insertion seq) with the
//! rules of SEMANTICS.md (the OpenSSL reference and its "Deliberate
//! differences") and the docs of `src/cache.rs` and `src/store.rs`, written the
//! obvious way. Random operation sequences run on both; after every step every
//! return value, `len()`, `stats()`, the strong count, time and resumable flag of
//! every pre-made session, and (with a store) the exact sequence of store
//! callbacks are compared.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls_session_cache::{
    CacheMode, Clock, ManualClock, Session, SessionCache, SessionStore, Stats,
};

/// Valid ids `0..IDS`; `IDS` is the empty id and `IDS + 1` a 33-byte id.
const IDS: usize = 5;
/// Pre-made session objects per id.
const PER_ID: usize = 3;
const OBJS: usize = IDS * PER_ID;
const BASE: u64 = 1_000;
const CACHE_TIMEOUT: u64 = 30;
const CTXS: [&[u8]; 2] = [b"x", b"y"];
/// The longest operation sequence.
const MAX_OPS: usize = 60;

fn id_bytes(id: usize) -> Vec<u8> {
    match id {
        i if i < IDS => vec![b'a' + i as u8],
        IDS => Vec::new(),
        _ => vec![b'z'; 33],
    }
}

fn id_index(id: &[u8]) -> usize {
    match id {
        [b] if (b'a'..b'a' + IDS as u8).contains(b) => usize::from(b - b'a'),
        _ => usize::MAX,
    }
}

fn id_of(o: usize) -> usize {
    o / PER_ID
}

// ------------------------------------------------------------------ setup and ops

#[derive(Debug, Clone, Copy)]
struct Spec {
    /// Creation time offset from `BASE`.
    time_off: i64,
    /// The session's own timeout in seconds (`u64::MAX`: `Duration::MAX`).
    timeout: Option<u64>,
    ctx: usize,
}

#[derive(Debug, Clone)]
struct Setup {
    specs: Vec<Spec>,
    capacity: usize,
    mode: CacheMode,
    clock: u64,
}

#[derive(Debug, Clone, Copy)]
enum FlushAt {
    Zero,
    /// `now` plus a small delta (saturating).
    Near(i64),
    Abs(u64),
}

#[derive(Debug, Clone)]
enum Op {
    /// `add` of a pre-made object (a new id, a replace or a no-op).
    Add(usize),
    /// `add` of the object cached in the k-th live entry (the no-op path).
    AddCached(usize),
    /// `add` of another object with the id of the k-th live entry (a replace).
    Replace(usize, usize),
    Remove(usize),
    RemoveIfSame(usize),
    Get {
        id: usize,
        ctx: usize,
        keep: bool,
    },
    /// `get` of the k-th live entry's id, with its object's sid_ctx or the other.
    GetCached {
        k: usize,
        same_ctx: bool,
        keep: bool,
    },
    Take {
        id: usize,
        keep: bool,
    },
    Flush(FlushAt),
    SetCapacity(usize),
    Advance(u64),
    SetClock(u64),
    /// Drop every reference the test holds from `get`/`take`.
    Release,
    /// `update_cache` of an object, repeated (to reach the 256th call).
    UpdateCache {
        obj: usize,
        times: usize,
    },
    /// Put an object into the store's external map (store runs only).
    ExtPut(usize),
    /// Delete an id from the store's external map (store runs only).
    ExtDel(usize),
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        -60i64..60,
        prop_oneof![
            2 => Just(None),
            6 => (0u64..60).prop_map(Some),
            1 => Just(Some(u64::MAX)),
        ],
        0usize..2,
    )
        .prop_map(|(time_off, timeout, ctx)| Spec {
            time_off,
            timeout,
            ctx,
        })
}

fn mode_strategy(with_store: bool) -> impl Strategy<Value = CacheMode> {
    // Store runs exercise the NO_INTERNAL_* bits more often.
    let internal = if with_store { 3u32 } else { 8 };
    (0u32..8, 0u32..2, 0u32..4, 0u32..internal, 0u32..internal).prop_map(
        |(server, update, no_clear, no_lookup, no_store)| {
            let mut m = match server {
                0 => CacheMode::OFF,
                1 => CacheMode::CLIENT,
                2 => CacheMode::BOTH,
                _ => CacheMode::SERVER,
            };
            if update == 0 {
                m |= CacheMode::UPDATE_TIME;
            }
            if no_clear == 0 {
                m |= CacheMode::NO_AUTO_CLEAR;
            }
            if no_lookup == 0 {
                m |= CacheMode::NO_INTERNAL_LOOKUP;
            }
            if no_store == 0 {
                m |= CacheMode::NO_INTERNAL_STORE;
            }
            m
        },
    )
}

fn setup_strategy(with_store: bool) -> impl Strategy<Value = Setup> {
    (
        prop::collection::vec(spec_strategy(), OBJS),
        0usize..5,
        mode_strategy(with_store),
        prop_oneof![4 => Just(BASE), 1 => 900u64..1100],
    )
        .prop_map(|(specs, capacity, mode, clock)| Setup {
            specs,
            capacity,
            mode,
            clock,
        })
}

fn op_strategy(with_store: bool) -> BoxedStrategy<Op> {
    let obj = 0..OBJS;
    let any_id = 0..IDS + 2;
    let flush_at = prop_oneof![
        1 => Just(FlushAt::Zero),
        3 => (-5i64..60).prop_map(FlushAt::Near),
        1 => (900u64..1200).prop_map(FlushAt::Abs),
    ];
    let clock_to = prop_oneof![
        8 => 900u64..1300,
        1 => Just(0u64),
        1 => Just(u64::MAX),
    ];
    let common = prop_oneof![
        12 => obj.clone().prop_map(Op::Add),
        3 => (0usize..8).prop_map(Op::AddCached),
        4 => (0usize..8, 0usize..2).prop_map(|(k, j)| Op::Replace(k, j)),
        4 => obj.clone().prop_map(Op::Remove),
        4 => obj.clone().prop_map(Op::RemoveIfSame),
        10 => (any_id.clone(), 0usize..2, any::<bool>())
            .prop_map(|(id, ctx, keep)| Op::Get { id, ctx, keep }),
        8 => (0usize..8, prop::bool::weighted(0.8), any::<bool>())
            .prop_map(|(k, same_ctx, keep)| Op::GetCached { k, same_ctx, keep }),
        3 => (any_id.clone(), any::<bool>()).prop_map(|(id, keep)| Op::Take { id, keep }),
        3 => flush_at.prop_map(Op::Flush),
        4 => (0usize..5).prop_map(Op::SetCapacity),
        5 => (0u64..40).prop_map(Op::Advance),
        2 => clock_to.prop_map(Op::SetClock),
        2 => Just(Op::Release),
        3 => (obj.clone(), prop_oneof![5 => Just(1usize), 1 => Just(256usize)])
            .prop_map(|(obj, times)| Op::UpdateCache { obj, times }),
    ];
    if with_store {
        prop_oneof![
            10 => common,
            2 => obj.prop_map(Op::ExtPut),
            1 => (0..IDS).prop_map(Op::ExtDel),
        ]
        .boxed()
    } else {
        common.boxed()
    }
}

// ------------------------------------------------------------------ the model

/// A store callback, naming sessions by their payload (the object index) and ids
/// by their index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    New(usize),
    Get(usize),
    Remove(usize),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    obj: usize,
    expiry: u64,
    seq: u64,
}

#[derive(Debug)]
struct Model {
    now: u64,
    cap: usize,
    mode: CacheMode,
    entries: BTreeMap<usize, Entry>,
    seq: u64,
    time: Vec<u64>,
    timeout: Vec<Option<u64>>,
    ctx: Vec<usize>,
    resumable: Vec<bool>,
    stats: Stats,
    handshakes: u64,
    store: bool,
    ext: BTreeMap<usize, usize>,
    events: Vec<Ev>,
    held: Vec<usize>,
}

impl Model {
    fn new(setup: &Setup, store: bool) -> Self {
        Model {
            now: setup.clock,
            cap: setup.capacity,
            mode: setup.mode,
            entries: BTreeMap::new(),
            seq: 0,
            time: setup
                .specs
                .iter()
                .map(|s| BASE.saturating_add_signed(s.time_off))
                .collect(),
            timeout: setup.specs.iter().map(|s| s.timeout).collect(),
            ctx: setup.specs.iter().map(|s| s.ctx).collect(),
            resumable: vec![true; OBJS],
            stats: Stats::default(),
            handshakes: 0,
            store,
            ext: BTreeMap::new(),
            events: Vec::new(),
            held: Vec::new(),
        }
    }

    fn has(&self, m: CacheMode) -> bool {
        self.mode.contains(m)
    }

    /// `time + timeout`, saturating; expired when `now > expiry`.
    fn expiry_of(&self, o: usize) -> u64 {
        self.time[o].saturating_add(self.timeout[o].unwrap_or(CACHE_TIMEOUT))
    }

    fn cached(&self, id: usize) -> Option<usize> {
        self.entries.get(&id).map(|e| e.obj)
    }

    /// The remove path: flag not resumable, fire the remove callback.
    fn removed(&mut self, o: usize) {
        self.resumable[o] = false;
        if self.store {
            self.events.push(Ev::Remove(o));
        }
    }

    /// Evicts the soonest-expiring, then oldest, entry (never `except`).
    fn evict_one(&mut self, except: Option<usize>) -> bool {
        let victim = self
            .entries
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .min_by_key(|(_, e)| (e.expiry, e.seq))
            .map(|(id, _)| *id);
        let Some(id) = victim else {
            return false;
        };
        let e = self.entries.remove(&id).unwrap();
        self.stats.cache_full += 1;
        self.removed(e.obj);
        true
    }

    fn insert(&mut self, o: usize, expiry: u64) {
        self.seq += 1;
        let seq = self.seq;
        self.entries.insert(
            id_of(o),
            Entry {
                obj: o,
                expiry,
                seq,
            },
        );
    }

    fn add(&mut self, o: usize) -> bool {
        if self.has(CacheMode::UPDATE_TIME) {
            self.time[o] = self.now;
        }
        let expiry = self.expiry_of(o);
        let id = id_of(o);
        match self.entries.get_mut(&id) {
            Some(e) if e.obj == o => {
                // The identical object: nothing changes but the refreshed time.
                e.expiry = expiry;
                false
            }
            Some(_) => {
                // A replace returns true: it first evicts (never its own id) until
                // the cache counting the added session fits (only possible to
                // break after the limit was lowered).
                while self.cap > 0 && self.entries.len() > self.cap && self.evict_one(Some(id)) {}
                self.insert(o, expiry);
                true
            }
            None => {
                while self.cap > 0 && self.entries.len() >= self.cap {
                    assert!(self.evict_one(None));
                }
                self.insert(o, expiry);
                true
            }
        }
    }

    fn remove(&mut self, o: usize) -> bool {
        let r = self.entries.remove(&id_of(o)).is_some();
        self.removed(o);
        r
    }

    fn remove_if_same(&mut self, o: usize) -> bool {
        if self.cached(id_of(o)) == Some(o) {
            self.entries.remove(&id_of(o));
            self.removed(o);
            true
        } else {
            false
        }
    }

    fn take(&mut self, id: usize) -> Option<usize> {
        let o = self.entries.remove(&id)?.obj;
        self.removed(o);
        Some(o)
    }

    fn get(&mut self, id: usize, ctx: usize) -> Option<usize> {
        if id >= IDS {
            self.stats.misses += 1;
            return None;
        }
        let mut found = None;
        if !self.has(CacheMode::NO_INTERNAL_LOOKUP) {
            found = self.cached(id);
            if found.is_none() {
                self.stats.misses += 1;
            }
        }
        if found.is_none() && self.store {
            self.events.push(Ev::Get(id));
            if let Some(&o) = self.ext.get(&id) {
                if !self.resumable[o] {
                    return None;
                }
                self.stats.cb_hits += 1;
                if !self.has(CacheMode::NO_INTERNAL_STORE) {
                    self.add(o);
                }
                found = Some(o);
            }
        }
        let o = found?;
        if self.ctx[o] != ctx {
            return None;
        }
        if self.now > self.expiry_of(o) {
            self.stats.timeouts += 1;
            if self.cached(id) == Some(o) {
                self.entries.remove(&id);
            }
            self.removed(o);
            return None;
        }
        self.stats.hits += 1;
        Some(o)
    }

    fn flush(&mut self, t: u64) -> usize {
        let mut victims: Vec<(u64, u64, usize)> = self
            .entries
            .iter()
            .filter(|(_, e)| t == 0 || t > e.expiry)
            .map(|(id, e)| (e.expiry, e.seq, *id))
            .collect();
        victims.sort_unstable();
        for &(_, _, id) in &victims {
            let e = self.entries.remove(&id).unwrap();
            self.removed(e.obj);
        }
        victims.len()
    }

    fn update_cache(&mut self, o: usize) -> bool {
        // OpenSSL's ssl_update_cache returns at once for a non-resumable session:
        // no add, no new-session callback, no handshake counted.
        if !self.has(CacheMode::SERVER) || !self.resumable[o] {
            return false;
        }
        let mut stored = false;
        if !self.has(CacheMode::NO_INTERNAL_STORE) {
            stored = self.add(o);
        }
        if self.store {
            self.events.push(Ev::New(o));
            // The test's store keeps what it is given.
            self.ext.insert(id_of(o), o);
        }
        if !self.has(CacheMode::NO_AUTO_CLEAR) {
            self.handshakes += 1;
            if self.handshakes % 256 == 0 {
                self.flush(self.now);
            }
        }
        stored
    }

    /// The k-th live entry's (id, object), if any.
    fn nth_entry(&self, k: usize) -> Option<(usize, usize)> {
        if self.entries.is_empty() {
            return None;
        }
        self.entries
            .iter()
            .nth(k % self.entries.len())
            .map(|(id, e)| (*id, e.obj))
    }

    /// The references the test predicts for object `o`.
    fn strong(&self, o: usize, cache_alive: bool) -> usize {
        1 + usize::from(cache_alive && self.cached(id_of(o)) == Some(o))
            + usize::from(self.ext.get(&id_of(o)) == Some(&o))
            + self.held.iter().filter(|&&h| h == o).count()
    }
}

// ------------------------------------------------------------------ the real side

/// A store recording every callback; `get_session` answers from `ext`, and
/// `new_session` keeps the session in `ext` (as a real external cache would).
#[derive(Default)]
struct RecStore {
    ext: Mutex<BTreeMap<usize, Arc<Session<usize>>>>,
    events: Mutex<Vec<Ev>>,
}

impl SessionStore<usize> for RecStore {
    fn new_session(&self, s: &Arc<Session<usize>>) {
        self.events.lock().unwrap().push(Ev::New(*s.payload()));
        self.ext
            .lock()
            .unwrap()
            .insert(id_index(s.id()), Arc::clone(s));
    }

    fn get_session(&self, id: &[u8]) -> Option<Arc<Session<usize>>> {
        let i = id_index(id);
        self.events.lock().unwrap().push(Ev::Get(i));
        self.ext.lock().unwrap().get(&i).cloned()
    }

    fn remove_session(&self, s: &Arc<Session<usize>>) {
        self.events.lock().unwrap().push(Ev::Remove(*s.payload()));
    }
}

struct Real {
    cache: Option<SessionCache<usize>>,
    clock: ManualClock,
    objs: Vec<Arc<Session<usize>>>,
    held: Vec<Arc<Session<usize>>>,
    store: Option<Arc<RecStore>>,
}

impl Real {
    fn new(setup: &Setup, with_store: bool) -> Self {
        let objs = setup
            .specs
            .iter()
            .enumerate()
            .map(|(o, s)| {
                let mut sess = Session::new(&id_bytes(id_of(o)), CTXS[s.ctx], o)
                    .unwrap()
                    .with_time(BASE.saturating_add_signed(s.time_off));
                if let Some(t) = s.timeout {
                    sess = sess.with_timeout(if t == u64::MAX {
                        Duration::MAX
                    } else {
                        Duration::from_secs(t)
                    });
                }
                Arc::new(sess)
            })
            .collect();
        let clock = ManualClock::new(setup.clock);
        let store = with_store.then(|| Arc::new(RecStore::default()));
        let mut b = SessionCache::builder()
            .capacity(setup.capacity)
            .timeout(Duration::from_secs(CACHE_TIMEOUT))
            .mode(setup.mode)
            .clock(clock.clone());
        if let Some(s) = &store {
            b = b.store_arc(Arc::clone(s) as Arc<dyn SessionStore<usize>>);
        }
        Real {
            cache: Some(b.build()),
            clock,
            objs,
            held: Vec::new(),
            store,
        }
    }

    fn cache(&self) -> &SessionCache<usize> {
        self.cache.as_ref().unwrap()
    }

    /// The object index of a returned session, checking it is that very object.
    fn index_of(&self, s: &Arc<Session<usize>>) -> usize {
        let o = *s.payload();
        assert!(Arc::ptr_eq(s, &self.objs[o]), "not the pre-made object {o}");
        o
    }

    fn keep(&mut self, s: Option<Arc<Session<usize>>>, keep: bool) -> Option<usize> {
        let o = s.as_ref().map(|s| self.index_of(s));
        if keep {
            self.held.extend(s);
        }
        o
    }
}

// ------------------------------------------------------------------ the runner

fn check(model: &mut Model, real: &Real, step: usize, op: &Op) -> Result<(), TestCaseError> {
    let cache_alive = real.cache.is_some();
    if let Some(c) = &real.cache {
        prop_assert_eq!(
            c.len(),
            model.entries.len(),
            "len after step {}: {:?}",
            step,
            op
        );
        prop_assert_eq!(
            c.stats(),
            model.stats,
            "stats after step {}: {:?}",
            step,
            op
        );
        prop_assert_eq!(c.capacity(), model.cap);
        prop_assert_eq!(c.now(), model.now);
        // Single-threaded, no dead slot or stale index entry may be left behind.
        prop_assert_eq!(
            c.__slots(),
            model.entries.len(),
            "slots after step {}",
            step
        );
        prop_assert_eq!(
            c.__index_entries(),
            model.entries.len(),
            "index entries after step {}",
            step
        );
    }
    for (o, s) in real.objs.iter().enumerate() {
        prop_assert_eq!(
            Arc::strong_count(s),
            model.strong(o, cache_alive),
            "strong count of object {} (id {}) after step {}: {:?}; cached {:?}",
            o,
            id_of(o),
            step,
            op,
            model.entries
        );
        prop_assert_eq!(
            s.is_resumable(),
            model.resumable[o],
            "resumable of object {} after step {}: {:?}",
            o,
            step,
            op
        );
        prop_assert_eq!(
            s.time(),
            model.time[o],
            "time of object {} after step {}",
            o,
            step
        );
    }
    let held: Vec<usize> = real.held.iter().map(|s| *s.payload()).collect();
    prop_assert_eq!(&held, &model.held);
    if let Some(store) = &real.store {
        let got = std::mem::take(&mut *store.events.lock().unwrap());
        let want = std::mem::take(&mut model.events);
        prop_assert_eq!(got, want, "store callbacks of step {}: {:?}", step, op);
        let ext: BTreeMap<usize, usize> = store
            .ext
            .lock()
            .unwrap()
            .iter()
            .map(|(id, s)| (*id, *s.payload()))
            .collect();
        prop_assert_eq!(&ext, &model.ext);
    }
    Ok(())
}

/// Runs `ops` on a fresh cache and the model, comparing after every step; then
/// drops the cache and checks every reference came back.
fn run(setup: &Setup, ops: &[Op], with_store: bool) -> Result<(), TestCaseError> {
    let mut m = Model::new(setup, with_store);
    let mut r = Real::new(setup, with_store);
    check(&mut m, &r, 0, &Op::Release)?;
    for (step, op) in ops.iter().enumerate() {
        let step = step + 1;
        // Resolve the ops that depend on the state into plain ones.
        let op = match *op {
            Op::AddCached(k) => match m.nth_entry(k) {
                Some((_, o)) => Op::Add(o),
                None => continue,
            },
            Op::Replace(k, j) => match m.nth_entry(k) {
                Some((id, cur)) => {
                    let others: Vec<usize> = (id * PER_ID..(id + 1) * PER_ID)
                        .filter(|&o| o != cur)
                        .collect();
                    Op::Add(others[j % others.len()])
                }
                None => continue,
            },
            Op::GetCached { k, same_ctx, keep } => match m.nth_entry(k) {
                Some((id, o)) => Op::Get {
                    id,
                    ctx: if same_ctx { m.ctx[o] } else { 1 - m.ctx[o] },
                    keep,
                },
                None => continue,
            },
            ref other => other.clone(),
        };
        match op {
            Op::Add(o) => {
                let want = m.add(o);
                let got = r.cache().add(&r.objs[o]);
                prop_assert_eq!(got, want, "add({}) at step {}", o, step);
            }
            Op::AddCached(_) | Op::Replace(..) | Op::GetCached { .. } => unreachable!(),
            Op::Remove(o) => {
                let want = m.remove(o);
                let got = r.cache().remove(&r.objs[o]);
                prop_assert_eq!(got, want, "remove({}) at step {}", o, step);
            }
            Op::RemoveIfSame(o) => {
                let want = m.remove_if_same(o);
                let got = r.cache().remove_if_same(&r.objs[o]);
                prop_assert_eq!(got, want, "remove_if_same({}) at step {}", o, step);
            }
            Op::Get { id, ctx, keep } => {
                let want = m.get(id, ctx);
                if keep {
                    m.held.extend(want);
                }
                let s = r.cache().get(&id_bytes(id), CTXS[ctx]);
                let got = r.keep(s, keep);
                prop_assert_eq!(got, want, "get(id {}, ctx {}) at step {}", id, ctx, step);
            }
            Op::Take { id, keep } => {
                let want = if id < IDS { m.take(id) } else { None };
                if keep {
                    m.held.extend(want);
                }
                let s = r.cache().take(&id_bytes(id));
                let got = r.keep(s, keep);
                prop_assert_eq!(got, want, "take(id {}) at step {}", id, step);
            }
            Op::Flush(at) => {
                let t = match at {
                    FlushAt::Zero => 0,
                    FlushAt::Near(d) => m.now.saturating_add_signed(d),
                    FlushAt::Abs(t) => t,
                };
                let want = m.flush(t);
                let got = r.cache().flush(t);
                prop_assert_eq!(got, want, "flush({}) at step {}", t, step);
            }
            Op::SetCapacity(n) => {
                let want = std::mem::replace(&mut m.cap, n);
                let got = r.cache().set_capacity(n);
                prop_assert_eq!(got, want, "set_capacity({}) at step {}", n, step);
            }
            Op::Advance(d) => {
                m.now = m.now.saturating_add(d);
                r.clock.advance(Duration::from_secs(d));
            }
            Op::SetClock(t) => {
                m.now = t;
                r.clock.set(t);
            }
            Op::Release => {
                m.held.clear();
                r.held.clear();
            }
            Op::UpdateCache { obj, times } => {
                for i in 0..times {
                    let want = m.update_cache(obj);
                    let got = r.cache().update_cache(&r.objs[obj]);
                    prop_assert_eq!(got, want, "update_cache({}) #{} at step {}", obj, i, step);
                }
            }
            Op::ExtPut(o) => {
                m.ext.insert(id_of(o), o);
                let store = r.store.as_ref().unwrap();
                store
                    .ext
                    .lock()
                    .unwrap()
                    .insert(id_of(o), Arc::clone(&r.objs[o]));
            }
            Op::ExtDel(id) => {
                m.ext.remove(&id);
                r.store.as_ref().unwrap().ext.lock().unwrap().remove(&id);
            }
        }
        check(&mut m, &r, step, &op)?;
    }
    // Dropping the cache releases exactly its references and flags nothing.
    drop(r.cache.take());
    if let Some(store) = &r.store {
        // No callback fires on drop.
        prop_assert_eq!(
            std::mem::take(&mut *store.events.lock().unwrap()),
            Vec::<Ev>::new()
        );
    }
    m.events.clear();
    check(&mut m, &r, usize::MAX, &Op::Release)?;
    r.held.clear();
    drop(r.store.take());
    for (o, s) in r.objs.iter().enumerate() {
        prop_assert_eq!(Arc::strong_count(s), 1, "object {} leaked", o);
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES overrides, for longer searches.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024),
        // Keep the working tree clean; a found case is turned into a plain test.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// The cache (no store) against the model, under every mode.
    #[test]
    fn cache_matches_model(
        setup in setup_strategy(false),
        ops in prop::collection::vec(op_strategy(false), 0..MAX_OPS),
    ) {
        run(&setup, &ops, false)?;
    }

    /// With a recording `SessionStore`: the callbacks fire exactly as
    /// documented in `src/store.rs`, including under the NO_INTERNAL_* modes.
    #[test]
    fn store_callbacks_match_model(
        setup in setup_strategy(true),
        ops in prop::collection::vec(op_strategy(true), 0..MAX_OPS),
    ) {
        run(&setup, &ops, true)?;
    }

}

// ------------------------------------------------------------------ direct tests

fn plain(id: &[u8], time: u64, timeout: u64) -> Arc<Session<usize>> {
    Arc::new(
        Session::new(id, b"x", 0)
            .unwrap()
            .with_time(time)
            .with_timeout(Duration::from_secs(timeout)),
    )
}

/// `update_cache` flushes expired sessions on exactly every 256th call, unless
/// NO_AUTO_CLEAR; the flush uses the clock's now.
#[test]
fn update_cache_auto_flushes_every_256th_call() {
    for no_auto_clear in [false, true] {
        let mut mode = CacheMode::SERVER;
        if no_auto_clear {
            mode |= CacheMode::NO_AUTO_CLEAR;
        }
        let clock = ManualClock::new(BASE);
        let c: SessionCache<usize> = SessionCache::builder()
            .capacity(0)
            .mode(mode)
            .clock(clock.clone())
            .build();
        let h = plain(b"h", BASE, 1_000_000);
        for round in 1..=3u64 {
            // Expires at BASE + round, so is expired when the clock reads BASE + 10 * round.
            let old = plain(format!("old{round}").as_bytes(), BASE, round);
            assert!(c.add(&old));
            clock.set(BASE + 10 * round);
            for call in 1..256 {
                c.update_cache(&h);
                assert_eq!(Arc::strong_count(&old), 2, "round {round} call {call}");
            }
            c.update_cache(&h);
            assert_eq!(
                Arc::strong_count(&old) == 1,
                !no_auto_clear,
                "round {round}: the 256th call flushes unless NO_AUTO_CLEAR"
            );
            assert_eq!(old.is_resumable(), no_auto_clear);
            assert_eq!(Arc::strong_count(&h), 2, "h never expires");
            assert_eq!(c.stats().timeouts, 0, "a flush counts no timeouts");
        }
        assert_eq!(c.len(), if no_auto_clear { 4 } else { 1 });
    }
}

/// SEMANTICS.md: an add that returns true, a replacement included, first evicts
/// (never its own id) until the cache counting the added session fits the limit.
#[test]
fn replace_after_lowered_capacity_evicts_until_it_fits() {
    let clock = ManualClock::new(BASE);
    let c: SessionCache<usize> = SessionCache::builder()
        .capacity(0)
        .clock(clock.clone())
        .build();
    let a = plain(b"a", BASE, 30);
    let b = plain(b"b", BASE, 20);
    let d = plain(b"d", BASE, 10);
    for s in [&a, &b, &d] {
        assert!(c.add(s));
    }
    assert_eq!(c.set_capacity(2), 0);
    assert_eq!(c.len(), 3, "nothing evicted by set_capacity");
    let a2 = plain(b"a", BASE, 30);
    assert!(c.add(&a2), "a replace returns true");
    assert_eq!(Arc::strong_count(&a), 1, "the old object is released");
    assert_eq!(c.len(), 2, "the replace made the cache fit");
    assert_eq!(c.stats().cache_full, 1);
    assert_eq!(Arc::strong_count(&d), 1, "d expires soonest: evicted");
    assert!(!d.is_resumable());
    assert_eq!(Arc::strong_count(&b), 2);
    assert_eq!(Arc::strong_count(&a2), 2);
    assert!(a.is_resumable(), "a replaced session is not flagged");
}

/// `now()` of the cache follows the shared clock (sanity for the model's clock).
#[test]
fn manual_clock_is_shared() {
    let clock = ManualClock::new(5);
    let c: SessionCache<usize> = SessionCache::builder().clock(clock.clone()).build();
    clock.advance(Duration::from_secs(3));
    assert_eq!(c.now(), 8);
    assert_eq!(Clock::now(&clock), 8);
}
