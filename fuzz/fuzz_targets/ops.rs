//! `ops`: arbitrary bytes decoded into a setup (15 pre-made sessions over 5 ids of
//! different lengths and 4 session id contexts, capacity, mode, clock, with or
//! without a recording `SessionStore`) and a sequence of operations, applied to the
//! cache and to the plain sequential model of `tests/model.rs` (copied here, with
//! lookups generalised to arbitrary id bytes), asserting after every step that they
//! agree: return values, `len()`, `stats()`, `Arc::strong_count`, the resumable
//! flag and time of every pre-made session, and the store callbacks.
//!
//! Also: `Session::new` with arbitrary id / sid_ctx lengths returns exactly the
//! typed error; `get`/`take` with ids of any length never panic (a counted miss).
#![no_main]

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls_session_cache::{
    CacheMode, Error, ManualClock, Session, SessionCache, SessionStore, Stats, MAX_ID_LEN,
    MAX_SID_CTX_LEN,
};

/// Valid ids `0..IDS` (lengths 1, 8, 15, 22, 29).
const IDS: usize = 5;
const PER_ID: usize = 3;
const OBJS: usize = IDS * PER_ID;
const BASE: u64 = 1_000;
const CACHE_TIMEOUT: u64 = 30;
const CTXS: [&[u8]; 4] = [b"", b"x", b"y", &[7; 32]];
const MAX_OPS: usize = 256;

fn id_bytes(id: usize) -> Vec<u8> {
    vec![b'a' + id as u8; 1 + (id * 7) % 32]
}

/// The index of a known id, `usize::MAX` for any other byte string.
fn id_index(id: &[u8]) -> usize {
    match id.first() {
        Some(&b) if (b'a'..b'a' + IDS as u8).contains(&b) => {
            let i = usize::from(b - b'a');
            if id == id_bytes(i).as_slice() {
                i
            } else {
                usize::MAX
            }
        }
        _ => usize::MAX,
    }
}

fn id_of(o: usize) -> usize {
    o / PER_ID
}

fn valid_id(id: &[u8]) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
}

// ------------------------------------------------------------------ setup and ops

#[derive(Debug, Clone, Copy)]
struct Spec {
    time_off: i64,
    timeout: Option<u64>,
    ctx: usize,
}

#[derive(Debug, Clone)]
struct Setup {
    specs: Vec<Spec>,
    capacity: usize,
    mode: CacheMode,
    clock: u64,
    store: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Add(usize),
    AddCached(usize),
    Replace(usize, usize),
    Remove(usize),
    RemoveIfSame(usize),
    /// `get` with arbitrary id bytes (any length) and one of the contexts.
    Get {
        id: Vec<u8>,
        ctx: usize,
        keep: bool,
    },
    GetCached {
        k: usize,
        same_ctx: bool,
        keep: bool,
    },
    Take {
        id: Vec<u8>,
        keep: bool,
    },
    Flush(u64),
    SetCapacity(usize),
    Advance(u64),
    SetClock(u64),
    Release,
    UpdateCache {
        obj: usize,
        times: usize,
    },
    ExtPut(usize),
    ExtDel(usize),
    /// `Session::new` with these lengths: the typed error or a session.
    NewSession {
        id_len: usize,
        ctx_len: usize,
    },
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
    let bits: u16 = u.arbitrary()?;
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
    Ok(match u.int_in_range(0u8..=18)? {
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
            0 => 0,
            1 => u.arbitrary()?,
            _ => u64::from(u.int_in_range(900u16..=1200)?),
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
        _ => Op::NewSession {
            id_len: u.int_in_range(0..=40)?,
            ctx_len: u.int_in_range(0..=40)?,
        },
    })
}

// ------------------------------------------------------------------ the model

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
    fn new(setup: &Setup) -> Self {
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
            store: setup.store,
            ext: BTreeMap::new(),
            events: Vec::new(),
            held: Vec::new(),
        }
    }

    fn has(&self, m: CacheMode) -> bool {
        self.mode.contains(m)
    }

    fn expiry_of(&self, o: usize) -> u64 {
        self.time[o].saturating_add(self.timeout[o].unwrap_or(CACHE_TIMEOUT))
    }

    fn cached(&self, id: usize) -> Option<usize> {
        self.entries.get(&id).map(|e| e.obj)
    }

    fn removed(&mut self, o: usize) {
        self.resumable[o] = false;
        if self.store {
            self.events.push(Ev::Remove(o));
        }
    }

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
                e.expiry = expiry;
                false
            }
            Some(_) => {
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

    fn take(&mut self, id: &[u8]) -> Option<usize> {
        let o = self.entries.remove(&id_index(id))?.obj;
        self.removed(o);
        Some(o)
    }

    fn get(&mut self, id_b: &[u8], ctx: usize) -> Option<usize> {
        if !valid_id(id_b) {
            self.stats.misses += 1;
            return None;
        }
        let id = id_index(id_b);
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
        if !self.has(CacheMode::SERVER) {
            return false;
        }
        let mut stored = false;
        if !self.has(CacheMode::NO_INTERNAL_STORE) && self.resumable[o] {
            stored = self.add(o);
        }
        if self.store {
            self.events.push(Ev::New(o));
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

    fn nth_entry(&self, k: usize) -> Option<(usize, usize)> {
        if self.entries.is_empty() {
            return None;
        }
        self.entries
            .iter()
            .nth(k % self.entries.len())
            .map(|(id, e)| (*id, e.obj))
    }

    fn strong(&self, o: usize, cache_alive: bool) -> usize {
        1 + usize::from(cache_alive && self.cached(id_of(o)) == Some(o))
            + usize::from(self.ext.get(&id_of(o)) == Some(&o))
            + self.held.iter().filter(|&&h| h == o).count()
    }
}

// ------------------------------------------------------------------ the real side

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
    fn new(setup: &Setup) -> Self {
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
        let store = setup.store.then(|| Arc::new(RecStore::default()));
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

fn check(model: &mut Model, real: &Real, step: usize, op: &Op) {
    let cache_alive = real.cache.is_some();
    if let Some(c) = &real.cache {
        assert_eq!(
            c.len(),
            model.entries.len(),
            "len after step {step}: {op:?}"
        );
        assert_eq!(c.stats(), model.stats, "stats after step {step}: {op:?}");
        assert_eq!(c.capacity(), model.cap);
        assert_eq!(c.now(), model.now);
        assert_eq!(c.__slots(), model.entries.len(), "slots after step {step}");
        assert_eq!(
            c.__index_entries(),
            model.entries.len(),
            "index entries after step {step}"
        );
    }
    for (o, s) in real.objs.iter().enumerate() {
        assert_eq!(
            Arc::strong_count(s),
            model.strong(o, cache_alive),
            "strong count of object {o} after step {step}: {op:?}; cached {:?}",
            model.entries
        );
        assert_eq!(
            s.is_resumable(),
            model.resumable[o],
            "resumable of {o} after step {step}: {op:?}"
        );
        assert_eq!(s.time(), model.time[o], "time of {o} after step {step}");
    }
    let held: Vec<usize> = real.held.iter().map(|s| *s.payload()).collect();
    assert_eq!(held, model.held);
    if let Some(store) = &real.store {
        let got = std::mem::take(&mut *store.events.lock().unwrap());
        let want = std::mem::take(&mut model.events);
        assert_eq!(got, want, "store callbacks of step {step}: {op:?}");
        let ext: BTreeMap<usize, usize> = store
            .ext
            .lock()
            .unwrap()
            .iter()
            .map(|(id, s)| (*id, *s.payload()))
            .collect();
        assert_eq!(ext, model.ext);
    }
}

fn new_session(id_len: usize, ctx_len: usize) {
    let r = Session::new(&vec![1u8; id_len], &vec![2u8; ctx_len], ());
    let want = if !(1..=MAX_ID_LEN).contains(&id_len) {
        Err(Error::InvalidIdLength { len: id_len })
    } else if ctx_len > MAX_SID_CTX_LEN {
        Err(Error::InvalidSidCtxLength { len: ctx_len })
    } else {
        Ok((id_len, ctx_len))
    };
    assert_eq!(r.map(|s| (s.id().len(), s.sid_ctx().len())), want);
}

fn run(u: &mut Unstructured) -> ArbResult<()> {
    let setup = setup(u)?;
    let mut m = Model::new(&setup);
    let mut r = Real::new(&setup);
    check(&mut m, &r, 0, &Op::Release);
    let mut step = 0;
    while !u.is_empty() && step < MAX_OPS {
        step += 1;
        let op = match op(u, setup.store)? {
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
                    id: id_bytes(id),
                    ctx: if same_ctx {
                        m.ctx[o]
                    } else {
                        (m.ctx[o] + 1) % CTXS.len()
                    },
                    keep,
                },
                None => continue,
            },
            other => other,
        };
        match &op {
            Op::Add(o) => {
                let want = m.add(*o);
                assert_eq!(r.cache().add(&r.objs[*o]), want, "add({o}) at step {step}");
            }
            Op::AddCached(_) | Op::Replace(..) | Op::GetCached { .. } => unreachable!(),
            Op::Remove(o) => {
                let want = m.remove(*o);
                assert_eq!(
                    r.cache().remove(&r.objs[*o]),
                    want,
                    "remove({o}) at step {step}"
                );
            }
            Op::RemoveIfSame(o) => {
                let want = m.remove_if_same(*o);
                let got = r.cache().remove_if_same(&r.objs[*o]);
                assert_eq!(got, want, "remove_if_same({o}) at step {step}");
            }
            Op::Get { id, ctx, keep } => {
                let want = m.get(id, *ctx);
                if *keep {
                    m.held.extend(want);
                }
                let s = r.cache().get(id, CTXS[*ctx]);
                let got = r.keep(s, *keep);
                assert_eq!(got, want, "get({id:?}, ctx {ctx}) at step {step}");
            }
            Op::Take { id, keep } => {
                let want = m.take(id);
                if *keep {
                    m.held.extend(want);
                }
                let s = r.cache().take(id);
                let got = r.keep(s, *keep);
                assert_eq!(got, want, "take({id:?}) at step {step}");
            }
            Op::Flush(t) => {
                let want = m.flush(*t);
                assert_eq!(r.cache().flush(*t), want, "flush({t}) at step {step}");
            }
            Op::SetCapacity(n) => {
                let want = std::mem::replace(&mut m.cap, *n);
                assert_eq!(
                    r.cache().set_capacity(*n),
                    want,
                    "set_capacity({n}) at step {step}"
                );
            }
            Op::Advance(d) => {
                m.now = m.now.saturating_add(*d);
                r.clock.advance(Duration::from_secs(*d));
            }
            Op::SetClock(t) => {
                m.now = *t;
                r.clock.set(*t);
            }
            Op::Release => {
                m.held.clear();
                r.held.clear();
            }
            Op::UpdateCache { obj, times } => {
                for i in 0..*times {
                    let want = m.update_cache(*obj);
                    let got = r.cache().update_cache(&r.objs[*obj]);
                    assert_eq!(got, want, "update_cache({obj}) #{i} at step {step}");
                }
            }
            Op::ExtPut(o) => {
                m.ext.insert(id_of(*o), *o);
                let store = r.store.as_ref().unwrap();
                store
                    .ext
                    .lock()
                    .unwrap()
                    .insert(id_of(*o), Arc::clone(&r.objs[*o]));
            }
            Op::ExtDel(id) => {
                m.ext.remove(id);
                r.store.as_ref().unwrap().ext.lock().unwrap().remove(id);
            }
            Op::NewSession { id_len, ctx_len } => new_session(*id_len, *ctx_len),
        }
        check(&mut m, &r, step, &op);
    }
    // Dropping the cache releases exactly its references and fires no callback.
    drop(r.cache.take());
    if let Some(store) = &r.store {
        assert_eq!(
            std::mem::take(&mut *store.events.lock().unwrap()),
            Vec::<Ev>::new()
        );
    }
    m.events.clear();
    check(&mut m, &r, usize::MAX, &Op::Release);
    r.held.clear();
    drop(r.store.take());
    for (o, s) in r.objs.iter().enumerate() {
        assert_eq!(Arc::strong_count(s), 1, "object {o} leaked");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    // Running out of bytes mid-decode just ends the sequence.
    let _ = run(&mut u);
});
