//! The plain sequential model of `SessionCache`, and the runner that drives the
//! real cache and the model side by side. One copy, shared by
//! tests/model.rs (proptest) and fuzz/fuzz_targets/ops.rs (cargo-fuzz; it includes
//! this file with `#[path]`, so both see the one `tls_session_cache` they link).
//! Each harness only generates a [`Setup`] and a list of [`Op`]s and calls [`run`].
//!
//! The model is a `BTreeMap` from id to (object, expiry, insertion seq) with the
//! rules of docs/SEMANTICS.md (the OpenSSL reference and its "Deliberate
//! differences") and the docs of `src/cache.rs` and `src/store.rs`, written the
//! obvious way. After every step every return value, `len()`, `stats()`,
//! `capacity()`, `mode()`, `now()`, the slot and index-entry counts, the strong
//! count, time and resumable flag of every pre-made session, and (with a store)
//! the exact sequence of store callbacks and the store's contents are compared.
//! Dropping the cache at the end must release every reference and fire nothing.
#![allow(dead_code)]

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls_session_cache::{
    CacheMode, Error, ManualClock, RemovalCause, Session, SessionCache, SessionStore, Stats,
    MAX_ID_LEN, MAX_SID_CTX_LEN,
};

/// Valid known ids `0..IDS`, of lengths 1, 8, 15, 22, 29 (see [`id_bytes`]).
pub const IDS: usize = 5;
/// Pre-made session objects per id.
pub const PER_ID: usize = 3;
pub const OBJS: usize = IDS * PER_ID;
/// The creation time the pre-made sessions are built around.
pub const BASE: u64 = 1_000;
/// The cache's default timeout (sessions without their own).
pub const CACHE_TIMEOUT: u64 = 30;
/// The session id contexts: empty, one byte (two of them), the longest.
pub const CTXS: [&[u8]; 4] = [b"", b"x", b"y", &[7; 32]];

/// The bytes of known id `id`: `b'a' + id`, repeated `1 + 7 * id % 32` times.
pub fn id_bytes(id: usize) -> Vec<u8> {
    vec![b'a' + id as u8; id_len(id)]
}

fn id_len(id: usize) -> usize {
    1 + (id * 7) % 32
}

/// The index of a known id, `usize::MAX` for any other byte string (also what
/// the recording store files such an id under).
pub fn id_index(id: &[u8]) -> usize {
    match id.first() {
        Some(&b) if (b'a'..b'a' + IDS as u8).contains(&b) => {
            let i = usize::from(b - b'a');
            if id.len() == id_len(i) && id.iter().all(|&c| c == b) {
                i
            } else {
                usize::MAX
            }
        }
        _ => usize::MAX,
    }
}

/// The id index of pre-made object `o`.
pub fn id_of(o: usize) -> usize {
    o / PER_ID
}

/// Whether a lookup with these id bytes reaches the map (1 to 32 bytes).
pub fn valid_id(id: &[u8]) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
}

// ------------------------------------------------------------------ setup and ops

/// One pre-made session.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Creation time offset from `BASE`.
    pub time_off: i64,
    /// The session's own timeout in seconds (`u64::MAX`: `Duration::MAX`).
    pub timeout: Option<u64>,
    /// Index into [`CTXS`].
    pub ctx: usize,
}

#[derive(Debug, Clone)]
pub struct Setup {
    /// One per pre-made object (`OBJS`).
    pub specs: Vec<Spec>,
    pub capacity: usize,
    pub mode: CacheMode,
    pub clock: u64,
    /// With a recording `SessionStore`.
    pub store: bool,
    /// The builder's shard count (`None`: the default, four per core).
    pub shards: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
pub enum FlushAt {
    Zero,
    /// `now` plus a small delta (saturating).
    Near(i64),
    Abs(u64),
}

#[derive(Debug, Clone)]
pub enum Op {
    /// `add` of a pre-made object (a new id, a replace or a no-op).
    Add(usize),
    /// `add` of the object cached in the k-th live entry (the no-op path).
    AddCached(usize),
    /// `add` of another object with the id of the k-th live entry (a replace).
    Replace(usize, usize),
    Remove(usize),
    RemoveIfSame(usize),
    /// `get` with any id bytes (any length) and one of [`CTXS`].
    Get {
        id: Vec<u8>,
        ctx: usize,
        keep: bool,
    },
    /// `get` of the k-th live entry's id, with its object's sid_ctx or another.
    GetCached {
        k: usize,
        same_ctx: bool,
        keep: bool,
    },
    Take {
        id: Vec<u8>,
        keep: bool,
    },
    Flush(FlushAt),
    SetCapacity(usize),
    SetMode(CacheMode),
    Advance(u64),
    SetClock(u64),
    /// Drop every reference the test holds from `get`/`take`.
    Release,
    /// `update_cache` of an object, repeated (to reach the 256th call).
    UpdateCache {
        obj: usize,
        times: usize,
    },
    /// Put an object into the store's external map (a no-op without a store).
    ExtPut(usize),
    /// Delete an id from the store's external map (a no-op without a store).
    ExtDel(usize),
    /// `Session::new` with these id / sid_ctx lengths: the typed error or a session.
    NewSession {
        id_len: usize,
        ctx_len: usize,
    },
}

// ------------------------------------------------------------------ the model

/// A map from a known id's index (`0..IDS`) to `T`, with the interface of the
/// `BTreeMap` it stands for (same iteration order), over an array: the state is
/// compared after every step, and this keeps that cheap. Only known ids are ever
/// inserted; looking up any other index (`usize::MAX`) finds nothing.
#[derive(Debug, Clone)]
pub struct IdMap<T>([Option<T>; IDS]);

impl<T> Default for IdMap<T> {
    fn default() -> Self {
        IdMap(std::array::from_fn(|_| None))
    }
}

impl<T> IdMap<T> {
    pub fn get(&self, id: &usize) -> Option<&T> {
        self.0.get(*id)?.as_ref()
    }

    pub fn get_mut(&mut self, id: &usize) -> Option<&mut T> {
        self.0.get_mut(*id)?.as_mut()
    }

    pub fn insert(&mut self, id: usize, v: T) -> Option<T> {
        self.0[id].replace(v)
    }

    pub fn remove(&mut self, id: &usize) -> Option<T> {
        self.0.get_mut(*id)?.take()
    }

    pub fn len(&self) -> usize {
        self.0.iter().filter(|e| e.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// `(id, value)` in id order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(id, e)| Some((id, e.as_ref()?)))
    }
}

/// A store callback, naming sessions by their payload (the object index) and ids
/// by their index ([`id_index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ev {
    New(usize),
    Get(usize),
    Remove(usize, RemovalCause),
}

#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub obj: usize,
    pub expiry: u64,
    pub seq: u64,
}

#[derive(Debug)]
pub struct Model {
    pub now: u64,
    pub cap: usize,
    pub mode: CacheMode,
    /// id index -> entry.
    pub entries: IdMap<Entry>,
    seq: u64,
    pub time: Vec<u64>,
    timeout: Vec<Option<u64>>,
    pub ctx: Vec<usize>,
    pub resumable: Vec<bool>,
    pub stats: Stats,
    /// Calls of `update_cache` with `SERVER` in the mode (counted whatever
    /// `NO_AUTO_CLEAR` says, as OpenSSL and `src/cache.rs`).
    handshakes: u64,
    store: bool,
    /// The store's external map: id index -> object.
    pub ext: IdMap<usize>,
    pub events: Vec<Ev>,
    /// Objects the test holds references to (from `get`/`take`).
    pub held: Vec<usize>,
}

impl Model {
    pub fn new(setup: &Setup) -> Self {
        Model {
            now: setup.clock,
            cap: setup.capacity,
            mode: setup.mode,
            entries: IdMap::default(),
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
            ext: IdMap::default(),
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
    fn removed(&mut self, o: usize, cause: RemovalCause) {
        self.resumable[o] = false;
        if self.store {
            self.events.push(Ev::Remove(o, cause));
        }
    }

    /// Evicts the soonest-expiring, then oldest, entry (never `except`).
    fn evict_one(&mut self, except: Option<usize>) -> bool {
        let victim = self
            .entries
            .iter()
            .filter(|(id, _)| Some(*id) != except)
            .min_by_key(|(_, e)| (e.expiry, e.seq))
            .map(|(id, _)| id);
        let Some(id) = victim else {
            return false;
        };
        let e = self.entries.remove(&id).unwrap();
        self.stats.cache_full += 1;
        self.removed(e.obj, RemovalCause::Evicted);
        true
    }

    fn insert(&mut self, o: usize, expiry: u64) {
        if self.entries.get(&id_of(o)).is_some() {
            self.stats.replaces += 1;
        } else {
            self.stats.adds += 1;
        }
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

    pub fn add(&mut self, o: usize) -> bool {
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

    pub fn remove(&mut self, o: usize) -> bool {
        let r = self.entries.remove(&id_of(o)).is_some();
        self.stats.removes += u64::from(r);
        self.removed(o, RemovalCause::Removed);
        r
    }

    pub fn remove_if_same(&mut self, o: usize) -> bool {
        if self.cached(id_of(o)) == Some(o) {
            self.entries.remove(&id_of(o));
            self.stats.removes += 1;
            self.removed(o, RemovalCause::Removed);
            true
        } else {
            false
        }
    }

    /// Any id bytes: an unknown id (any length) finds nothing and counts nothing.
    pub fn take(&mut self, id: &[u8]) -> Option<usize> {
        let o = self.entries.remove(&id_index(id))?.obj;
        self.stats.takes += 1;
        self.removed(o, RemovalCause::Taken);
        Some(o)
    }

    pub fn get(&mut self, id_b: &[u8], ctx: usize) -> Option<usize> {
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
                self.stats.expired += 1;
            }
            self.removed(o, RemovalCause::Expired);
            return None;
        }
        self.stats.hits += 1;
        Some(o)
    }

    pub fn flush(&mut self, t: u64) -> usize {
        let mut victims: Vec<(u64, u64, usize)> = self
            .entries
            .iter()
            .filter(|(_, e)| t == 0 || t > e.expiry)
            .map(|(id, e)| (e.expiry, e.seq, id))
            .collect();
        victims.sort_unstable();
        for &(_, _, id) in &victims {
            let e = self.entries.remove(&id).unwrap();
            self.stats.flushed += 1;
            self.removed(e.obj, RemovalCause::Flushed);
        }
        victims.len()
    }

    pub fn update_cache(&mut self, o: usize) -> bool {
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
        // Every call counts; NO_AUTO_CLEAR only decides whether the 256th flushes.
        self.handshakes += 1;
        if !self.has(CacheMode::NO_AUTO_CLEAR) && self.handshakes % 256 == 0 {
            self.flush(self.now);
        }
        stored
    }

    /// The k-th live entry's (id, object), if any.
    pub fn nth_entry(&self, k: usize) -> Option<(usize, usize)> {
        if self.entries.is_empty() {
            return None;
        }
        self.entries
            .iter()
            .nth(k % self.entries.len())
            .map(|(id, e)| (id, e.obj))
    }

    /// The references the test predicts for every object: its own, the cache's
    /// (while alive), the store's and the ones from `get`/`take` it holds.
    fn strong(&self, cache_alive: bool) -> [usize; OBJS] {
        let mut n = [1; OBJS];
        if cache_alive {
            for (_, e) in self.entries.iter() {
                n[e.obj] += 1;
            }
        }
        for (_, &o) in self.ext.iter() {
            n[o] += 1;
        }
        for &h in &self.held {
            n[h] += 1;
        }
        n
    }
}

// ------------------------------------------------------------------ the real side

/// A store recording every callback; `get_session` answers from `ext`, and
/// `new_session` keeps the session in `ext` (as a real external cache would).
#[derive(Default)]
pub struct RecStore {
    pub ext: Mutex<IdMap<Arc<Session<usize>>>>,
    pub events: Mutex<Vec<Ev>>,
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

    fn remove_session(&self, s: &Arc<Session<usize>>, cause: RemovalCause) {
        self.events
            .lock()
            .unwrap()
            .push(Ev::Remove(*s.payload(), cause));
    }
}

pub struct Real {
    pub cache: Option<SessionCache<usize>>,
    pub clock: ManualClock,
    pub objs: Vec<Arc<Session<usize>>>,
    pub held: Vec<Arc<Session<usize>>>,
    pub store: Option<Arc<RecStore>>,
}

impl Real {
    pub fn new(setup: &Setup) -> Self {
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
        if let Some(n) = setup.shards {
            b = b.shards(n);
        }
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

    pub fn cache(&self) -> &SessionCache<usize> {
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

/// Fails the run with both values and the context unless `got == want`; the
/// message is only formatted on a failure.
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($ctx:tt)+) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err(format!(
                "{}\n  got:  {:?}\n  want: {:?}",
                format_args!($($ctx)+),
                got,
                want
            ));
        }
    }};
}

/// Whether two sequences are equal, without collecting either.
fn same_seq<T: PartialEq>(
    a: impl ExactSizeIterator<Item = T>,
    b: impl ExactSizeIterator<Item = T>,
) -> bool {
    a.len() == b.len() && a.zip(b).all(|(x, y)| x == y)
}

fn check(model: &mut Model, real: &Real, step: usize, op: &Op) -> Result<(), String> {
    let cache_alive = real.cache.is_some();
    if let Some(c) = &real.cache {
        let n = model.entries.len();
        ensure_eq!(c.len(), n, "len after step {step}: {op:?}");
        model.stats.len = n as u64;
        model.stats.capacity = model.cap as u64;
        ensure_eq!(c.stats(), model.stats, "stats after step {step}: {op:?}");
        let st = c.stats();
        ensure_eq!(
            st.len,
            st.adds - st.removes - st.takes - st.evictions(),
            "len from the counters after step {step}"
        );
        ensure_eq!(c.capacity(), model.cap, "capacity after step {step}");
        ensure_eq!(c.mode(), model.mode, "mode after step {step}");
        ensure_eq!(c.now(), model.now, "now after step {step}");
        // Single-threaded, no dead slot or stale index entry may be left behind:
        // one slot and one index entry per live session.
        ensure_eq!(c.__slots(), n, "slots after step {step}: {op:?}");
        ensure_eq!(
            c.__index_entries(),
            n,
            "index entries after step {step}: {op:?}"
        );
    }
    let strong = model.strong(cache_alive);
    for (o, s) in real.objs.iter().enumerate() {
        ensure_eq!(
            Arc::strong_count(s),
            strong[o],
            "strong count of object {o} (id {}) after step {step}: {op:?}; cached {:?}",
            id_of(o),
            model.entries
        );
        ensure_eq!(
            s.is_resumable(),
            model.resumable[o],
            "resumable of object {o} after step {step}: {op:?}"
        );
        ensure_eq!(
            s.time(),
            model.time[o],
            "time of object {o} after step {step}"
        );
    }
    if !same_seq(
        real.held.iter().map(|s| *s.payload()),
        model.held.iter().copied(),
    ) {
        let got: Vec<usize> = real.held.iter().map(|s| *s.payload()).collect();
        ensure_eq!(got, model.held, "held after step {step}");
    }
    if let Some(store) = &real.store {
        let mut got = store.events.lock().unwrap();
        ensure_eq!(*got, model.events, "store callbacks of step {step}: {op:?}");
        got.clear();
        model.events.clear();
        let ext = store.ext.lock().unwrap();
        for id in 0..IDS {
            ensure_eq!(
                ext.get(&id).map(|s| *s.payload()),
                model.ext.get(&id).copied(),
                "store contents for id {id} after step {step}: {op:?}"
            );
        }
    }
    Ok(())
}

/// `Session::new` returns exactly the typed error for bad lengths.
fn check_new_session(id_len: usize, ctx_len: usize) -> Result<(), String> {
    let r = Session::new(&vec![1u8; id_len], &vec![2u8; ctx_len], ());
    let want = if !(1..=MAX_ID_LEN).contains(&id_len) {
        Err(Error::InvalidIdLength { len: id_len })
    } else if ctx_len > MAX_SID_CTX_LEN {
        Err(Error::InvalidSidCtxLength { len: ctx_len })
    } else {
        Ok((id_len, ctx_len))
    };
    let got = r.map(|s| (s.id().len(), s.sid_ctx().len()));
    ensure_eq!(
        got,
        want,
        "Session::new(id len {id_len}, sid_ctx len {ctx_len})"
    );
    Ok(())
}

fn ret<T: PartialEq + Debug>(got: T, want: T, what: impl FnOnce() -> String) -> Result<(), String> {
    ensure_eq!(got, want, "{} returned", what());
    Ok(())
}

/// Runs `ops` on a fresh cache and the model, comparing after every step; then
/// drops the cache and checks every reference came back. `Err` names the first
/// difference.
pub fn run(setup: &Setup, ops: &[Op]) -> Result<(), String> {
    let mut m = Model::new(setup);
    let mut r = Real::new(setup);
    check(&mut m, &r, 0, &Op::Release)?;
    for (step, op) in ops.iter().enumerate() {
        let step = step + 1;
        // Resolve the ops that depend on the state into plain ones.
        let resolved;
        let op = match *op {
            Op::AddCached(k) => match m.nth_entry(k) {
                Some((_, o)) => {
                    resolved = Op::Add(o);
                    &resolved
                }
                None => continue,
            },
            Op::Replace(k, j) => match m.nth_entry(k) {
                Some((id, cur)) => {
                    let others: Vec<usize> = (id * PER_ID..(id + 1) * PER_ID)
                        .filter(|&o| o != cur)
                        .collect();
                    resolved = Op::Add(others[j % others.len()]);
                    &resolved
                }
                None => continue,
            },
            Op::GetCached { k, same_ctx, keep } => match m.nth_entry(k) {
                Some((id, o)) => {
                    let ctx = if same_ctx {
                        m.ctx[o]
                    } else {
                        (m.ctx[o] + 1) % CTXS.len()
                    };
                    resolved = Op::Get {
                        id: id_bytes(id),
                        ctx,
                        keep,
                    };
                    &resolved
                }
                None => continue,
            },
            _ => op,
        };
        match *op {
            Op::Add(o) => {
                let want = m.add(o);
                ret(r.cache().add(&r.objs[o]), want, || {
                    format!("add({o}) at step {step}")
                })?;
            }
            Op::AddCached(_) | Op::Replace(..) | Op::GetCached { .. } => unreachable!(),
            Op::Remove(o) => {
                let want = m.remove(o);
                ret(r.cache().remove(&r.objs[o]), want, || {
                    format!("remove({o}) at step {step}")
                })?;
            }
            Op::RemoveIfSame(o) => {
                let want = m.remove_if_same(o);
                ret(r.cache().remove_if_same(&r.objs[o]), want, || {
                    format!("remove_if_same({o}) at step {step}")
                })?;
            }
            Op::Get { ref id, ctx, keep } => {
                let want = m.get(id, ctx);
                if keep {
                    m.held.extend(want);
                }
                let s = r.cache().get(id, CTXS[ctx]);
                let got = r.keep(s, keep);
                ret(got, want, || {
                    format!("get({id:?}, ctx {ctx}) at step {step}")
                })?;
            }
            Op::Take { ref id, keep } => {
                let want = m.take(id);
                if keep {
                    m.held.extend(want);
                }
                let s = r.cache().take(id);
                let got = r.keep(s, keep);
                ret(got, want, || format!("take({id:?}) at step {step}"))?;
            }
            Op::Flush(at) => {
                let t = match at {
                    FlushAt::Zero => 0,
                    FlushAt::Near(d) => m.now.saturating_add_signed(d),
                    FlushAt::Abs(t) => t,
                };
                let want = m.flush(t);
                ret(r.cache().flush(t), want, || {
                    format!("flush({t}) at step {step}")
                })?;
            }
            Op::SetCapacity(n) => {
                let want = std::mem::replace(&mut m.cap, n);
                ret(r.cache().set_capacity(n), want, || {
                    format!("set_capacity({n}) at step {step}")
                })?;
            }
            Op::SetMode(mode) => {
                let want = std::mem::replace(&mut m.mode, mode);
                ret(r.cache().set_mode(mode), want, || {
                    format!("set_mode({mode:?}) at step {step}")
                })?;
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
                    ret(r.cache().update_cache(&r.objs[obj]), want, || {
                        format!("update_cache({obj}) #{i} at step {step}")
                    })?;
                }
            }
            Op::ExtPut(o) => {
                if let Some(store) = &r.store {
                    m.ext.insert(id_of(o), o);
                    store
                        .ext
                        .lock()
                        .unwrap()
                        .insert(id_of(o), Arc::clone(&r.objs[o]));
                }
            }
            Op::ExtDel(id) => {
                if let Some(store) = &r.store {
                    m.ext.remove(&id);
                    store.ext.lock().unwrap().remove(&id);
                }
            }
            Op::NewSession { id_len, ctx_len } => check_new_session(id_len, ctx_len)?,
        }
        check(&mut m, &r, step, op)?;
    }
    // Dropping the cache releases exactly its references and fires no callback.
    drop(r.cache.take());
    if let Some(store) = &r.store {
        let events = std::mem::take(&mut *store.events.lock().unwrap());
        ensure_eq!(
            events,
            Vec::<Ev>::new(),
            "store callbacks while dropping the cache"
        );
    }
    m.events.clear();
    check(&mut m, &r, usize::MAX, &Op::Release)?;
    r.held.clear();
    drop(r.store.take());
    for (o, s) in r.objs.iter().enumerate() {
        ensure_eq!(
            Arc::strong_count(s),
            1,
            "references to object {o} after the run"
        );
    }
    Ok(())
}
