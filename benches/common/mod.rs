//! Shared by the benchmark binaries: the peers behind one small trait, ids,
//! payloads, a deterministic RNG and a Zipf sampler.
//!
//! Every peer stores the same thing: a 32-byte id mapped to a session object
//! carrying a 128-byte payload. Objects to add are made *before* timing (a TLS
//! server gets them from the handshake), so the timed span measures the cache
//! operations only; where a peer's API forces an allocation per operation
//! (rustls takes and returns owned `Vec`s) that allocation is part of its cost.

#![allow(dead_code)]

use foreign_types_shared::ForeignType;
use openssl::ssl::{Ssl, SslContext, SslMethod};
use openssl_sys as ffi;
use rustls::server::StoresServerSessions;
use std::collections::HashMap;
use std::ffi::{c_int, c_long, c_uint};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls_session_cache::{Clock, Session, SessionCache};

pub const ID_LEN: usize = 32;
pub const PAYLOAD_LEN: usize = 128;
/// Ids preloaded before the mixed workloads.
pub const PRELOAD: usize = 16_384;
/// OpenSSL's default `SSL_SESSION_CACHE_MAX_SIZE_DEFAULT`.
pub const CAPACITY: usize = 20_480;
/// The session id context every session is made for.
pub const SID_CTX: &[u8] = b"tsc-bench";
/// Session lifetime: OpenSSL 3's TLS default, so nothing expires during a run.
pub const TIMEOUT_SECS: u64 = 7_200;

pub type Id = [u8; ID_LEN];
pub type Payload = [u8; PAYLOAD_LEN];

// ------------------------------------------------------------------ randomness

/// splitmix64: tiny, deterministic, good enough to pick operations and ids.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn id(&mut self) -> Id {
        let mut id = [0u8; ID_LEN];
        for c in id.chunks_mut(8) {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        id
    }
}

/// `n` distinct random 32-byte ids.
pub fn random_ids(n: usize, seed: u64) -> Vec<Id> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.id()).collect()
}

pub fn payload(seed: u64) -> Payload {
    let mut p = [0u8; PAYLOAD_LEN];
    let mut rng = Rng::new(seed);
    for c in p.chunks_mut(8) {
        c.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    p
}

/// Zipf(s) over `0..n` by inverse CDF: rank 0 is the hottest.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

// ------------------------------------------------------------------ the peers

/// One cache implementation, as a TLS server would drive it.
pub trait Peer: Sync + Send + Sized + 'static {
    const NAME: &'static str;
    /// Enforces a size limit (takes part in the churn workload).
    const BOUNDED: bool;
    /// A session object ready to be added (made outside the timed span).
    type Obj: Send + Sync;
    /// Per-thread context (an `SSL` for OpenSSL's lookup; nothing otherwise).
    type Local: Send;
    fn new(capacity: usize) -> Self;
    fn make(&self, id: &Id, payload: &Payload) -> Self::Obj;
    fn local(&self) -> Self::Local;
    /// `SSL_CTX_add_session`: insert or replace.
    fn add(&self, l: &mut Self::Local, o: &Self::Obj);
    /// The resumption lookup; true on a hit.
    fn get(&self, l: &mut Self::Local, id: &Id) -> bool;
    /// Remove by id (the object gives the id).
    fn remove(&self, l: &mut Self::Local, o: &Self::Obj) -> bool;
    /// Number of entries (outside timing; may be approximate for moka).
    fn len(&self) -> usize;
}

// ---- this crate

/// `BENCH_FIXED_TIME=<unix seconds>`: every session of ours is made with that
/// creation time instead of the clock's. Only for instruction counts (callgrind)
/// that must not depend on whether making the objects crossed a second boundary
/// (a recycled object then files behind its partition's newest expiry, another
/// path); the published figures use the real clock.
fn fixed_time() -> Option<u64> {
    static T: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::env::var("BENCH_FIXED_TIME").ok()?.parse().ok())
}

pub struct Ours(pub SessionCache<Payload>);

impl Ours {
    /// The session objects ours (and `Floor`) are given.
    pub fn make_session(id: &Id, payload: &Payload) -> Arc<Session<Payload>> {
        let s = Session::new(id, SID_CTX, *payload).expect("valid id");
        Arc::new(match fixed_time() {
            Some(t) => s.with_time(t),
            None => s,
        })
    }
}

impl Peer for Ours {
    const NAME: &'static str = "ours";
    const BOUNDED: bool = true;
    type Obj = Arc<Session<Payload>>;
    type Local = ();
    fn new(capacity: usize) -> Self {
        Ours(
            SessionCache::builder()
                .capacity(capacity)
                .timeout(Duration::from_secs(TIMEOUT_SECS))
                .build(),
        )
    }
    fn make(&self, id: &Id, payload: &Payload) -> Self::Obj {
        Ours::make_session(id, payload)
    }
    fn local(&self) {}
    #[inline]
    fn add(&self, _: &mut (), o: &Self::Obj) {
        std::hint::black_box(self.0.add(o));
    }
    #[inline]
    fn get(&self, _: &mut (), id: &Id) -> bool {
        let r = self.0.get(id, SID_CTX);
        std::hint::black_box(&r);
        r.is_some()
    }
    #[inline]
    fn remove(&self, _: &mut (), o: &Self::Obj) -> bool {
        self.0.remove(o)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

// ---- OpenSSL 3's internal SSL_CTX cache (system libssl)

const SSL_CTRL_SESS_NUMBER: c_int = 20;
const SSL_CTRL_SET_SESS_CACHE_SIZE: c_int = 42;

// Exported by libssl 3 but not bound by openssl-sys 0.9 (see SEMANTICS.md).
extern "C" {
    fn SSL_SESSION_new() -> *mut ffi::SSL_SESSION;
    fn SSL_SESSION_set1_id(s: *mut ffi::SSL_SESSION, sid: *const u8, sid_len: c_uint) -> c_int;
    fn SSL_SESSION_set1_id_context(
        s: *mut ffi::SSL_SESSION,
        sid_ctx: *const u8,
        sid_ctx_len: c_uint,
    ) -> c_int;
    fn SSL_SESSION_set1_master_key(s: *mut ffi::SSL_SESSION, k: *const u8, len: usize) -> c_int;
    fn SSL_SESSION_set_time(s: *mut ffi::SSL_SESSION, t: c_long) -> c_long;
    fn SSL_SESSION_set_timeout(s: *mut ffi::SSL_SESSION, t: c_long) -> c_long;
    fn SSL_SESSION_set_protocol_version(s: *mut ffi::SSL_SESSION, version: c_int) -> c_int;
    fn SSL_has_matching_session_id(ssl: *const ffi::SSL, id: *const u8, id_len: c_uint) -> c_int;
}

/// An `SSL_SESSION` we hold one reference to.
pub struct OsslSession(*mut ffi::SSL_SESSION);
// SAFETY: SSL_SESSION reference counting and the SSL_CTX cache are thread-safe in
// OpenSSL 3; we only pass the pointer to those thread-safe functions.
unsafe impl Send for OsslSession {}
unsafe impl Sync for OsslSession {}
impl Drop for OsslSession {
    fn drop(&mut self) {
        // SAFETY: we own one reference.
        unsafe { ffi::SSL_SESSION_free(self.0) }
    }
}

pub struct OpenSsl {
    pub ctx: SslContext,
    version: c_int,
    now: c_long,
}

impl Peer for OpenSsl {
    const NAME: &'static str = "openssl";
    const BOUNDED: bool = true;
    type Obj = OsslSession;
    type Local = Ssl;
    fn new(capacity: usize) -> Self {
        let ctx = SslContext::builder(SslMethod::tls_server())
            .expect("SSL_CTX_new")
            .build();
        // SAFETY: valid ctx; this ctrl takes no pointer.
        unsafe {
            ffi::SSL_CTX_ctrl(
                ctx.as_ptr(),
                SSL_CTRL_SET_SESS_CACHE_SIZE,
                capacity as c_long,
                std::ptr::null_mut(),
            );
        }
        let ssl = Ssl::new(&ctx).expect("SSL_new");
        // SAFETY: valid SSL.
        let version = unsafe { ffi::SSL_version(ssl.as_ptr()) };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as c_long;
        OpenSsl { ctx, version, now }
    }
    fn make(&self, id: &Id, payload: &Payload) -> Self::Obj {
        // SAFETY: fresh session, checked; the slices outlive the copying calls.
        unsafe {
            let s = SSL_SESSION_new();
            assert!(!s.is_null());
            assert_eq!(SSL_SESSION_set1_id(s, id.as_ptr(), ID_LEN as c_uint), 1);
            assert_eq!(
                SSL_SESSION_set1_id_context(s, SID_CTX.as_ptr(), SID_CTX.len() as c_uint),
                1
            );
            // The payload's first 48 bytes as the master secret (a fixed array
            // inside SSL_SESSION: OpenSSL's session state is its own struct).
            assert_eq!(SSL_SESSION_set1_master_key(s, payload.as_ptr(), 48), 1);
            assert_eq!(SSL_SESSION_set_protocol_version(s, self.version), 1);
            SSL_SESSION_set_time(s, self.now);
            SSL_SESSION_set_timeout(s, TIMEOUT_SECS as c_long);
            OsslSession(s)
        }
    }
    fn local(&self) -> Ssl {
        Ssl::new(&self.ctx).expect("SSL_new")
    }
    #[inline]
    fn add(&self, _: &mut Ssl, o: &OsslSession) {
        // SAFETY: valid ctx and live session; add takes its own reference.
        std::hint::black_box(unsafe { ffi::SSL_CTX_add_session(self.ctx.as_ptr(), o.0) });
    }
    #[inline]
    fn get(&self, ssl: &mut Ssl, id: &Id) -> bool {
        // SAFETY: valid SSL made from our ctx; id outlives the call.
        unsafe { SSL_has_matching_session_id(ssl.as_ptr(), id.as_ptr(), ID_LEN as c_uint) == 1 }
    }
    #[inline]
    fn remove(&self, _: &mut Ssl, o: &OsslSession) -> bool {
        // SAFETY: valid ctx and live session.
        unsafe { ffi::SSL_CTX_remove_session(self.ctx.as_ptr(), o.0) == 1 }
    }
    fn len(&self) -> usize {
        // SAFETY: valid ctx; this ctrl takes no pointer.
        unsafe {
            ffi::SSL_CTX_ctrl(
                self.ctx.as_ptr(),
                SSL_CTRL_SESS_NUMBER,
                0,
                std::ptr::null_mut(),
            ) as usize
        }
    }
}

// ---- rustls 0.23 ServerSessionMemoryCache

pub struct Rustls(pub Arc<rustls::server::ServerSessionMemoryCache>);

impl Peer for Rustls {
    const NAME: &'static str = "rustls";
    const BOUNDED: bool = true;
    type Obj = (Vec<u8>, Vec<u8>);
    type Local = ();
    fn new(capacity: usize) -> Self {
        Rustls(rustls::server::ServerSessionMemoryCache::new(capacity))
    }
    fn make(&self, id: &Id, payload: &Payload) -> Self::Obj {
        (id.to_vec(), payload.to_vec())
    }
    fn local(&self) {}
    #[inline]
    fn add(&self, _: &mut (), o: &Self::Obj) {
        // The API takes owned Vecs: the clones are part of its cost.
        std::hint::black_box(self.0.put(o.0.clone(), o.1.clone()));
    }
    #[inline]
    fn get(&self, _: &mut (), id: &Id) -> bool {
        let r = self.0.get(id);
        std::hint::black_box(&r);
        r.is_some()
    }
    #[inline]
    fn remove(&self, _: &mut (), o: &Self::Obj) -> bool {
        self.0.take(&o.0).is_some()
    }
    fn len(&self) -> usize {
        usize::MAX // not exposed
    }
}

// ---- key → Arc<payload> maps: moka, quick_cache, DashMap (SipHash and foldhash),
// Mutex<HashMap>, hashbrown

pub type Value = Arc<Payload>;

pub struct Moka(pub moka::sync::Cache<Id, Value>);

impl Peer for Moka {
    const NAME: &'static str = "moka";
    const BOUNDED: bool = true;
    type Obj = (Id, Value);
    type Local = ();
    fn new(capacity: usize) -> Self {
        Moka(moka::sync::Cache::new(capacity as u64))
    }
    fn make(&self, id: &Id, payload: &Payload) -> Self::Obj {
        (*id, Arc::new(*payload))
    }
    fn local(&self) {}
    #[inline]
    fn add(&self, _: &mut (), o: &Self::Obj) {
        self.0.insert(o.0, o.1.clone());
    }
    #[inline]
    fn get(&self, _: &mut (), id: &Id) -> bool {
        let r = self.0.get(id);
        std::hint::black_box(&r);
        r.is_some()
    }
    #[inline]
    fn remove(&self, _: &mut (), o: &Self::Obj) -> bool {
        self.0.remove(&o.0).is_some()
    }
    fn len(&self) -> usize {
        self.0.run_pending_tasks();
        self.0.entry_count() as usize
    }
}

pub struct Quick(pub quick_cache::sync::Cache<Id, Value>);

impl Peer for Quick {
    const NAME: &'static str = "quick_cache";
    const BOUNDED: bool = true;
    type Obj = (Id, Value);
    type Local = ();
    fn new(capacity: usize) -> Self {
        Quick(quick_cache::sync::Cache::new(capacity))
    }
    fn make(&self, id: &Id, payload: &Payload) -> Self::Obj {
        (*id, Arc::new(*payload))
    }
    fn local(&self) {}
    #[inline]
    fn add(&self, _: &mut (), o: &Self::Obj) {
        self.0.insert(o.0, o.1.clone());
    }
    #[inline]
    fn get(&self, _: &mut (), id: &Id) -> bool {
        let r = self.0.get(id);
        std::hint::black_box(&r);
        r.is_some()
    }
    #[inline]
    fn remove(&self, _: &mut (), o: &Self::Obj) -> bool {
        self.0.remove(&o.0).is_some()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// `DashMap` with its default hasher (std's SipHash-1-3).
pub struct Dash(pub dashmap::DashMap<Id, Value>);

impl Peer for Dash {
    const NAME: &'static str = "dashmap";
    const BOUNDED: bool = false;
    type Obj = (Id, Value);
    type Local = ();
    fn new(_capacity: usize) -> Self {
        Dash(dashmap::DashMap::new())
    }
    fn make(&self, id: &Id, payload: &Payload) -> Self::Obj {
        (*id, Arc::new(*payload))
    }
    fn local(&self) {}
    #[inline]
    fn add(&self, _: &mut (), o: &Self::Obj) {
        std::hint::black_box(self.0.insert(o.0, o.1.clone()));
    }
    #[inline]
    fn get(&self, _: &mut (), id: &Id) -> bool {
        let r = self.0.get(id).map(|v| v.value().clone());
        std::hint::black_box(&r);
        r.is_some()
    }
    #[inline]
    fn remove(&self, _: &mut (), o: &Self::Obj) -> bool {
        self.0.remove(&o.0).is_some()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The substrate: a bare `DashMap` keyed by the same hasher as ours
/// (`foldhash::quality::RandomState`, a random seed per map), one `Arc` clone
/// per hit. Everything ours does beyond this map is the price of its semantics.
pub struct DashFold(pub dashmap::DashMap<Id, Value, foldhash::quality::RandomState>);

impl Peer for DashFold {
    const NAME: &'static str = "dashmap_foldhash";
    const BOUNDED: bool = false;
    type Obj = (Id, Value);
    type Local = ();
    fn new(_capacity: usize) -> Self {
        DashFold(dashmap::DashMap::with_hasher(
            foldhash::quality::RandomState::default(),
        ))
    }
    fn make(&self, id: &Id, payload: &Payload) -> Self::Obj {
        (*id, Arc::new(*payload))
    }
    fn local(&self) {}
    #[inline]
    fn add(&self, _: &mut (), o: &Self::Obj) {
        std::hint::black_box(self.0.insert(o.0, o.1.clone()));
    }
    #[inline]
    fn get(&self, _: &mut (), id: &Id) -> bool {
        let r = self.0.get(id).map(|v| v.value().clone());
        std::hint::black_box(&r);
        r.is_some()
    }
    #[inline]
    fn remove(&self, _: &mut (), o: &Self::Obj) -> bool {
        self.0.remove(&o.0).is_some()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// The checks every floor peer makes on a found session, as ours does:
/// its context, and its expiry against the coarse clock.
#[inline]
fn floor_hit(r: Option<Arc<Session<Payload>>>) -> bool {
    let timeout = Duration::from_secs(TIMEOUT_SECS);
    let r = r.filter(|s| {
        s.sid_ctx() == SID_CTX && !s.is_expired_at(tls_session_cache::SystemClock.now(), timeout)
    });
    std::hint::black_box(&r);
    r.is_some()
}

/// The floor of a lookup under this crate's constraints, measured, not a
/// cache: the substrate map (`DashMap`, foldhash, the id inline as its key)
/// holding our `Session` objects, and a `get` that does only what any design
/// keeping this crate's substrate and OpenSSL's semantics must do per hit:
/// pin the epoch (`PIN`; a replace under the shard read lock is what makes
/// the pin necessary), take a new reference, and check the session's context
/// and expiry (coarse clock) in its header. No order, no statistics, no
/// modes, no bound (its churn op is an add and a remove, as `DashFold`'s).
/// It goes through `DashMap`'s own API (an out-of-line `get` returning a
/// guard), so it is not a strict lower bound: since `get` was inlined, ours
/// runs faster than it on lookups (docs/BENCHMARKS.md, "The inlined
/// lookup").
pub struct Floor<const PIN: bool>(
    pub dashmap::DashMap<Id, Arc<Session<Payload>>, foldhash::quality::RandomState>,
);

impl<const PIN: bool> Peer for Floor<PIN> {
    const NAME: &'static str = if PIN { "floor_pin" } else { "floor_nopin" };
    const BOUNDED: bool = false;
    type Obj = (Id, Arc<Session<Payload>>);
    type Local = ();
    fn new(_capacity: usize) -> Self {
        Floor(dashmap::DashMap::with_hasher(
            foldhash::quality::RandomState::default(),
        ))
    }
    fn make(&self, id: &Id, payload: &Payload) -> Self::Obj {
        (*id, Ours::make_session(id, payload))
    }
    fn local(&self) {}
    #[inline]
    fn add(&self, _: &mut (), o: &Self::Obj) {
        std::hint::black_box(self.0.insert(o.0, o.1.clone()));
    }
    #[inline]
    fn get(&self, _: &mut (), id: &Id) -> bool {
        let guard = PIN.then(crossbeam_epoch::pin);
        let r = self.0.get(id).map(|v| v.value().clone());
        drop(guard);
        floor_hit(r)
    }
    #[inline]
    fn remove(&self, _: &mut (), o: &Self::Obj) -> bool {
        self.0.remove(&o.0).is_some()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// A map key that holds the session and compares and hashes by the session's
/// own id, as ours does: the bucket holds only the pointer, so a lookup reads
/// the id inside the session.
pub struct ByInnerId(pub Arc<Session<Payload>>);

impl std::hash::Hash for ByInnerId {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.id().hash(h);
    }
}
impl PartialEq for ByInnerId {
    fn eq(&self, o: &Self) -> bool {
        self.0.id() == o.0.id()
    }
}
impl Eq for ByInnerId {}
impl std::borrow::Borrow<[u8]> for ByInnerId {
    fn borrow(&self) -> &[u8] {
        self.0.id()
    }
}

/// [`Floor`] (with the pin), but keyed as ours is: the bucket holds the
/// session pointer, and a lookup compares the id inside the session. Floor ÷
/// this isolates what keeping the id out of the bucket costs.
pub struct FloorIndirect(pub dashmap::DashMap<ByInnerId, (), foldhash::quality::RandomState>);

impl Peer for FloorIndirect {
    const NAME: &'static str = "floor_indirect";
    const BOUNDED: bool = false;
    type Obj = Arc<Session<Payload>>;
    type Local = ();
    fn new(_capacity: usize) -> Self {
        FloorIndirect(dashmap::DashMap::with_hasher(
            foldhash::quality::RandomState::default(),
        ))
    }
    fn make(&self, id: &Id, payload: &Payload) -> Self::Obj {
        Ours::make_session(id, payload)
    }
    fn local(&self) {}
    #[inline]
    fn add(&self, _: &mut (), o: &Self::Obj) {
        std::hint::black_box(self.0.insert(ByInnerId(o.clone()), ()));
    }
    #[inline]
    fn get(&self, _: &mut (), id: &Id) -> bool {
        let guard = crossbeam_epoch::pin();
        let r = self.0.get(&id[..]).map(|e| e.key().0.clone());
        drop(guard);
        floor_hit(r)
    }
    #[inline]
    fn remove(&self, _: &mut (), o: &Self::Obj) -> bool {
        self.0.remove(o.id()).is_some()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

pub struct MutexMap(pub Mutex<HashMap<Id, Value>>);

impl Peer for MutexMap {
    const NAME: &'static str = "mutex_hashmap";
    const BOUNDED: bool = false;
    type Obj = (Id, Value);
    type Local = ();
    fn new(_capacity: usize) -> Self {
        MutexMap(Mutex::new(HashMap::new()))
    }
    fn make(&self, id: &Id, payload: &Payload) -> Self::Obj {
        (*id, Arc::new(*payload))
    }
    fn local(&self) {}
    #[inline]
    fn add(&self, _: &mut (), o: &Self::Obj) {
        let old = self.0.lock().unwrap().insert(o.0, o.1.clone());
        // Drop the replaced value outside the lock, as a careful server would.
        std::hint::black_box(old);
    }
    #[inline]
    fn get(&self, _: &mut (), id: &Id) -> bool {
        let r = self.0.lock().unwrap().get(id).cloned();
        std::hint::black_box(&r);
        r.is_some()
    }
    #[inline]
    fn remove(&self, _: &mut (), o: &Self::Obj) -> bool {
        let old = self.0.lock().unwrap().remove(&o.0);
        old.is_some()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// The unsynchronized ceiling (single-threaded only): hashbrown with its
/// default hasher (foldhash), values cloned out like every other peer's.
pub struct Hashbrown(pub std::cell::UnsafeCell<hashbrown::HashMap<Id, Value>>);
// SAFETY: only ever driven by one thread at a time (the harness runs it at one
// thread only; the threads of successive samples are joined in between).
unsafe impl Sync for Hashbrown {}

impl Hashbrown {
    #[allow(clippy::mut_from_ref)]
    fn map(&self) -> &mut hashbrown::HashMap<Id, Value> {
        // SAFETY: see `Sync` above: one thread at a time, no reentrancy.
        unsafe { &mut *self.0.get() }
    }
}

impl Peer for Hashbrown {
    const NAME: &'static str = "hashbrown_unsync";
    const BOUNDED: bool = false;
    type Obj = (Id, Value);
    type Local = ();
    fn new(_capacity: usize) -> Self {
        Hashbrown(std::cell::UnsafeCell::new(hashbrown::HashMap::new()))
    }
    fn make(&self, id: &Id, payload: &Payload) -> Self::Obj {
        (*id, Arc::new(*payload))
    }
    fn local(&self) {}
    #[inline]
    fn add(&self, _: &mut (), o: &Self::Obj) {
        std::hint::black_box(self.map().insert(o.0, o.1.clone()));
    }
    #[inline]
    fn get(&self, _: &mut (), id: &Id) -> bool {
        let r = self.map().get(id).cloned();
        std::hint::black_box(&r);
        r.is_some()
    }
    #[inline]
    fn remove(&self, _: &mut (), o: &Self::Obj) -> bool {
        self.map().remove(&o.0).is_some()
    }
    fn len(&self) -> usize {
        self.map().len()
    }
}
