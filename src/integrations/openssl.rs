//! The cache as an `SslContext`'s session cache (rust-openssl).
//!
//! [`install`] replaces OpenSSL's internal session cache of a server context with a
//! [`SessionCache`]: it sets the context's cache mode to `SERVER | NO_INTERNAL` and
//! registers OpenSSL's three external-cache callbacks:
//!
//! - **new session** (`SSL_CTX_sess_set_new_cb`, after a full handshake and for each
//!   TLS 1.3 stateful ticket): the native `SSL_SESSION` itself becomes the payload
//!   ([`NativeSession`], no DER round-trip), stored under its id and id context with
//!   its own time and timeout, through [`SessionCache::update_cache`];
//! - **get** (`SSL_CTX_sess_set_get_cb`, a client offers a TLS 1.2 session id or a
//!   TLS 1.3 stateful ticket): [`SessionCache::get`] with the connection's session id
//!   context, so sessions of another context and expired sessions are never
//!   returned; the statistics (`hits`, `misses`, `timeouts`) are counted there.
//!   With TLS 1.3 early data the ticket is also taken out of the cache (single use,
//!   see "Early data" below);
//! - **remove** (`SSL_CTX_sess_set_remove_cb`: `SSL_CTX_remove_session` on the
//!   context, a fatal alert sent or received on a connection, a session OpenSSL
//!   finds expired, the early-data replay check): [`SessionCache::remove`] by id.
//!
//! Each callback body runs under [`std::panic::catch_unwind`]: a panic never
//! unwinds into OpenSSL (see "Panics" below).
//!
//! ```no_run
//! use std::sync::Arc;
//! use openssl::ssl::{SslAcceptor, SslMethod, SslOptions};
//! use tls_session_cache::SessionCache;
//! use tls_session_cache::integrations::openssl::{install, NativeSession};
//!
//! let cache: Arc<SessionCache<NativeSession>> = Arc::new(SessionCache::new());
//! let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
//! // ... certificate and key ...
//! builder.set_options(SslOptions::NO_TICKET); // session ids / TLS 1.3 stateful tickets
//! let handle = install(&mut builder, Arc::clone(&cache), b"my-service")?;
//! let acceptor = builder.build();
//! // ... accept connections with `acceptor` ...
//! println!("hits: {}, sessions: {}", handle.stats().hits, handle.len());
//! # Ok::<(), openssl::error::ErrorStack>(())
//! ```
//!
//! # The session id context
//!
//! OpenSSL keeps a session id context (`sid_ctx`) per context and per connection but
//! has no function to read either back. The adapter therefore records the value it
//! sets: [`install`] (and [`set_session_id_context`] for further contexts, e.g. the
//! ones an SNI callback switches to) sets it on the context and remembers it there;
//! [`set_ssl_session_id_context`] does the same for a single connection. The get
//! callback looks the session up with the connection's remembered value, else its
//! current context's, else the one given to [`install`]. OpenSSL checks the
//! returned session's `sid_ctx` against the connection's real one again, so a
//! session is never resumed across contexts even if a context was configured
//! behind the adapter's back (only the statistics would then be off).
//!
//! # Several contexts, one cache
//!
//! Contexts that share a cache (each with its own [`install`]) resume only
//! sessions of their own `sid_ctx`: with different values they never resume each
//! other's sessions. Contexts given the *same* `sid_ctx` are one service: a session
//! made on one resumes on the other, as connections of one context do, so give
//! them the same security policy (ciphers, client verification, ALPN) or different
//! values.
//!
//! rust-openssl's get callback must not return a session "associated with a
//! different `SslContext`". What OpenSSL forbids (`SSL_set_session(3)`) is one
//! `SSL_SESSION` linked into two contexts' internal cache lists (`prev`/`next`
//! pointers and the owning context); nothing else in an `SSL_SESSION` refers to a
//! context (its cipher points into libssl's static tables; certificates and
//! secrets are its own). The adapter keeps sessions out of internal caches:
//!
//! - the new-session callback stores only sessions of a context whose mode has
//!   `NO_INTERNAL_STORE` (as [`install`] sets it), so no cached session is linked
//!   in an internal cache; a context whose mode was changed back after [`install`]
//!   keeps its sessions to itself;
//! - the get callback returns sessions only to a context whose mode has
//!   `NO_INTERNAL_STORE`, which OpenSSL then does not link them into
//!   (`lookup_sess_in_cache`);
//! - the early-data hand-off (below) links a session into one context's internal
//!   cache after taking it out of the shared cache, so no other context can obtain
//!   it, and OpenSSL unlinks it again in the same call.
//!
//! (`tests/openssl_handshakes.rs`: `shared_cache_cross_context_resumption`,
//! `context_storing_internally_is_kept_out_of_the_shared_cache`.)
//!
//! # Time
//!
//! A session keeps the time and timeout OpenSSL gave it (`SSL_SESSION_get_time`,
//! `SSL_SESSION_get_timeout`, set from the context's `SSL_CTX_set_timeout`). The
//! cache decides expiry with its own [`Clock`](crate::Clock); OpenSSL checks the
//! returned session against `time(NULL)` once more. With the system clock both
//! agree; a [`ManualClock`](crate::ManualClock) can make sessions expire early (in
//! tests), never late.
//!
//! # TLS 1.3
//!
//! As OpenSSL's internal cache, TLS 1.3 sessions are stored only when a resumption
//! will look them up: with `SslOptions::NO_TICKET` (stateful tickets, whose identity
//! is the session id) or with early data and anti-replay. Stateless tickets carry
//! the whole session and are never stored. (OpenSSL also stores them when a ticket
//! callback, `SSL_CTX_set_session_ticket_cb`, is set; the adapter cannot see that.)
//!
//! # Early data (0-RTT)
//!
//! With `SslContextBuilder::set_max_early_data(n > 0)` and OpenSSL's anti-replay
//! protection (the default; `SSL_OP_NO_ANTI_REPLAY` turns it off) OpenSSL issues
//! stateful TLS 1.3 tickets even without `NO_TICKET` and makes each single use: right
//! after the lookup (`tls_parse_ctos_psk`) it calls `SSL_CTX_remove_session` and
//! resumes only if that found the session in the context's *internal* cache —
//! empty under `NO_INTERNAL`, so without help every resumption would fall back to a
//! full handshake while the remove callback deleted the ticket. The get callback
//! therefore, for a TLS 1.3 session on such a connection:
//!
//! 1. looks it up ([`SessionCache::get`]: `sid_ctx`, expiry, `hits`);
//! 2. takes it out of the cache ([`SessionCache::take`], counted in `takes`, the
//!    store told [`RemovalCause::Taken`](crate::RemovalCause::Taken)): of
//!    concurrent offers of one ticket exactly one gets it, the others are misses
//!    (a full handshake; they counted a hit before losing the race);
//! 3. adds it to the context's internal cache (`SSL_CTX_add_session`, which works
//!    whatever the mode), where OpenSSL's replay check finds and removes it again;
//!    that removal calls the remove callback, so the store also sees
//!    [`RemovalCause::Removed`](crate::RemovalCause::Removed) for it (as with
//!    OpenSSL's internal cache, whose replay check calls the remove callback too).
//!
//! So a ticket resumes at most once, through this cache, with early data accepted
//! (checked with `openssl s_client -early_data` in `tests/openssl_s_client.rs`).
//! TLS 1.2 session ids are not affected (OpenSSL has no replay check for them), nor
//! are contexts with `SSL_OP_NO_ANTI_REPLAY` (tickets may then be replayed, which is
//! what that option asks for). Limits: single use holds in this process (a store
//! sharing sessions across servers is told `Taken`/`Removed`, not asked to decide
//! atomically); a context sharing the cache *without* early data resumes a ticket
//! without taking it (no early data is at stake there). A session marked not
//! resumable by a concurrent removal between steps 2 and 3 is not added; if that
//! removal lands just after step 3, OpenSSL refuses the session before its replay
//! check and it stays in the internal cache, unreachable (lookups skip the
//! internal cache), until it expires and a flush, or the context's end, frees it.
//! Keep the internal cache's size limit (`SSL_CTX_sess_set_cache_size`, default
//! 20480) at its default or 0: a hand-off evicted by a tiny limit makes that
//! resumption a full handshake.
//!
//! # Panics
//!
//! rust-openssl's callback trampolines do not catch panics, and a panic unwinding
//! out of them into OpenSSL's C frames aborts the process. Each callback body
//! therefore runs under [`std::panic::catch_unwind`]; a caught panic counts in
//! [`OpensslCache::caught_panics`] (the panic hook still prints its message) and:
//!
//! - in **get** (the store's `get_session`, the [`Clock`](crate::Clock)): the
//!   lookup is a miss, the client gets a full handshake. Nothing was changed, so
//!   the session resumes once the fault is gone (with early data the ticket may
//!   already have been taken: it is then lost, never resumed twice);
//! - in **new**: the session stays where the panic stopped it. The store's
//!   `new_session` runs after the cache added the session (as OpenSSL calls its
//!   new-session callback after its internal add), so the session is cached and
//!   resumes; a panic before the add (the clock under
//!   [`CacheMode::UPDATE_TIME`](crate::CacheMode::UPDATE_TIME)) leaves it out. The
//!   handshake completes either way;
//! - in **remove**: ignored. The cache removes before it calls the store, so the
//!   session is gone.
//!
//! The cache stays consistent after a panicking store callback (the core's
//! promise, `tests/faults.rs`) or clock (read before a change, never in the middle
//! of one). With `panic = "abort"` nothing can be caught: the process aborts at the
//! panic, as it would anywhere. (`tests/openssl_faults.rs`.)
//!
//! # References
//!
//! The cache owns one reference (`SSL_SESSION` up-ref) per cached session, taken
//! from the new-session callback (which returns 1, handing OpenSSL's reference to
//! us) and released when the session leaves the cache. The get callback returns a
//! new reference with `*copy = 0`, which OpenSSL takes over. Nothing leaks: the
//! tests count `SSL_SESSION` frees.

use crate::{Session, SessionCache, Stats};
use foreign_types_shared::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslRef, SslSession, SslSessionCacheMode, SslSessionRef,
    SslVersion,
};
use openssl_sys as ffi;
use std::ffi::{c_int, c_long, c_uint};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The payload of the adapter's sessions: OpenSSL's own `SSL_SESSION`, one
/// reference held per cached session.
pub type NativeSession = SslSession;

/// `SSL_OP_NO_TICKET` as the `uint64_t` `SSL_get_options` returns (openssl-sys's
/// type for it differs between OpenSSL versions).
const SSL_OP_NO_TICKET: u64 = 1 << 14;
/// `SSL_OP_NO_ANTI_REPLAY` (OpenSSL 1.1.1+), not exported by rust-openssl.
const SSL_OP_NO_ANTI_REPLAY: u64 = 1 << 24;
/// `SSL_CTRL_GET_SESS_CACHE_MODE` (`SSL_CTX_get_session_cache_mode` is a macro).
const SSL_CTRL_GET_SESS_CACHE_MODE: c_int = 45;
/// `SSL_SESS_CACHE_NO_INTERNAL_STORE`.
const SSL_SESS_CACHE_NO_INTERNAL_STORE: c_long = 0x200;

// Exported by libssl (1.1.1 and 3.x) but not bound by openssl-sys 0.9.
extern "C" {
    fn SSL_get_options(ssl: *const ffi::SSL) -> u64;
    fn SSL_SESSION_is_resumable(s: *const ffi::SSL_SESSION) -> c_int;
    fn SSL_set_session_id_context(ssl: *mut ffi::SSL, sid_ctx: *const u8, len: c_uint) -> c_int;
    fn SSL_SESSION_get0_id_context(s: *const ffi::SSL_SESSION, len: *mut c_uint) -> *const u8;
}

/// A session id context remembered on a context or a connection (ex_data).
struct SidCtx(Box<[u8]>);

fn ctx_index() -> Result<Index<SslContext, SidCtx>, ErrorStack> {
    static INDEX: OnceLock<Index<SslContext, SidCtx>> = OnceLock::new();
    if let Some(i) = INDEX.get() {
        return Ok(*i);
    }
    // A lost race allocates one index that stays unused: harmless.
    let i = SslContext::new_ex_index::<SidCtx>()?;
    Ok(*INDEX.get_or_init(|| i))
}

fn ssl_index() -> Result<Index<Ssl, SidCtx>, ErrorStack> {
    static INDEX: OnceLock<Index<Ssl, SidCtx>> = OnceLock::new();
    if let Some(i) = INDEX.get() {
        return Ok(*i);
    }
    let i = Ssl::new_ex_index::<SidCtx>()?;
    Ok(*INDEX.get_or_init(|| i))
}

/// A handle on a cache installed into a context: the cache, its statistics and
/// the context's session id context. Cloning it is cheap.
#[derive(Clone)]
pub struct OpensslCache {
    cache: Arc<SessionCache<NativeSession>>,
    sid_ctx: Arc<[u8]>,
    panics: Arc<AtomicU64>,
}

impl OpensslCache {
    /// The cache.
    pub fn cache(&self) -> &Arc<SessionCache<NativeSession>> {
        &self.cache
    }

    /// The statistics: `hits`, `misses`, `timeouts`, `cache_full` are OpenSSL's
    /// `SSL_CTX_sess_hits`, `_misses`, `_timeouts`, `_cache_full` for this cache
    /// (OpenSSL's own counters of the context only see its bypassed internal cache).
    pub fn stats(&self) -> Stats {
        self.cache.stats()
    }

    /// The number of sessions held (`SSL_CTX_sess_number`).
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// The session id context given to [`install`].
    pub fn sid_ctx(&self) -> &[u8] {
        &self.sid_ctx
    }

    /// How many panics the context's session callbacks caught (from the cache's
    /// [`SessionStore`](crate::SessionStore), its [`Clock`](crate::Clock) or the
    /// adapter itself): each made a lookup a miss, left a new session where the
    /// panic stopped it, or ended a removal early (see "Panics" in the
    /// [module docs](self)). Nonzero means a bug to look for in the panic
    /// messages (the panic hook still prints them).
    pub fn caught_panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for OpensslCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpensslCache")
            .field("cache", &self.cache)
            .field("sid_ctx_len", &self.sid_ctx.len())
            .field("caught_panics", &self.caught_panics())
            .finish()
    }
}

/// Sets `sid_ctx` as the session id context of a context
/// (`SSL_CTX_set_session_id_context`) and remembers it for the adapter's get
/// callback. [`install`] calls it; call it yourself for every other context a
/// connection may be switched to (`SslRef::set_ssl_context`, e.g. from an SNI
/// callback), so lookups use the right value.
///
/// # Errors
/// OpenSSL's, e.g. for a `sid_ctx` longer than 32 bytes.
pub fn set_session_id_context(
    builder: &mut SslContextBuilder,
    sid_ctx: &[u8],
) -> Result<(), ErrorStack> {
    builder.set_session_id_context(sid_ctx)?;
    builder.set_ex_data(ctx_index()?, SidCtx(sid_ctx.into()));
    Ok(())
}

/// Sets the session id context of one connection (`SSL_set_session_id_context`)
/// and remembers it for the adapter's get callback. Use it instead of setting the
/// value directly, which the adapter could not see.
///
/// # Errors
/// OpenSSL's, e.g. for a `sid_ctx` longer than 32 bytes.
pub fn set_ssl_session_id_context(ssl: &mut SslRef, sid_ctx: &[u8]) -> Result<(), ErrorStack> {
    let len = c_uint::try_from(sid_ctx.len()).unwrap_or(c_uint::MAX);
    // SAFETY: `ssl` is a live `SSL` (we hold a `&mut SslRef`); OpenSSL copies at
    // most `len` bytes from `sid_ctx`, which is valid for `sid_ctx.len()` bytes, and
    // rejects lengths above 32 without reading.
    let ok = unsafe { SSL_set_session_id_context(ssl.as_ptr(), sid_ctx.as_ptr(), len) };
    if ok != 1 {
        return Err(ErrorStack::get());
    }
    ssl.set_ex_data(ssl_index()?, SidCtx(sid_ctx.into()));
    Ok(())
}

/// The session id context recorded in `s` (`SSL_SESSION_get0_id_context`).
fn session_sid_ctx(s: &SslSessionRef) -> &[u8] {
    let mut len: c_uint = 0;
    // SAFETY: `s` is a live `SSL_SESSION`; the returned pointer addresses `len`
    // bytes inside it, valid as long as `s` is borrowed (OpenSSL never changes a
    // session's id context once it is set, and only the owner could).
    unsafe {
        let p = SSL_SESSION_get0_id_context(s.as_ptr(), &mut len);
        if p.is_null() || len == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(p, len as usize)
        }
    }
}

/// The session's creation time and timeout, in whole seconds.
fn session_time(s: &SslSessionRef) -> (u64, u64) {
    // SAFETY: `s` is a live `SSL_SESSION`; both getters only read it.
    let (time, timeout) = unsafe {
        (
            ffi::SSL_SESSION_get_time(s.as_ptr()),
            ffi::SSL_SESSION_get_timeout(s.as_ptr()),
        )
    };
    (
        u64::try_from(time).unwrap_or(0),
        u64::try_from(timeout).unwrap_or(0),
    )
}

/// Whether OpenSSL's internal cache would store `session`, made on `ssl`
/// (`ssl_update_cache`): TLS 1.3 sessions only when a resumption looks them up.
fn worth_storing(ssl: &SslRef, session: &SslSessionRef) -> bool {
    if session.protocol_version() != SslVersion::TLS1_3 {
        return true;
    }
    // SAFETY: `ssl` is a live `SSL`; `SSL_get_options` only reads it.
    let options = unsafe { SSL_get_options(ssl.as_ptr()) };
    options & SSL_OP_NO_TICKET != 0
        || (ssl.max_early_data() > 0 && options & SSL_OP_NO_ANTI_REPLAY == 0)
}

/// The session id context to look sessions up with on `ssl`.
fn lookup_sid_ctx<'a>(ssl: &'a SslRef, installed: &'a [u8]) -> &'a [u8] {
    if let Ok(i) = ssl_index() {
        if let Some(s) = ssl.ex_data(i) {
            return &s.0;
        }
    }
    if let Ok(i) = ctx_index() {
        if let Some(s) = ssl.ssl_context().ex_data(i) {
            return &s.0;
        }
    }
    installed
}

/// Runs one callback body, catching a panic so that it never unwinds into
/// OpenSSL's C frames (rust-openssl's trampolines do not catch; unwinding out of
/// an `extern "C"` function aborts the process). A panic counts in `panics` and
/// yields `on_panic`.
fn guarded<R>(panics: &AtomicU64, on_panic: R, body: impl FnOnce() -> R) -> R {
    // AssertUnwindSafe: after a panic the body's captures are not used again
    // except the cache, which stays consistent (the core's promise for a panicking
    // store callback, `tests/faults.rs`; the clock is only read before a change,
    // never in the middle of one) and the connection, which OpenSSL goes on with
    // as after a miss / an unstored session / a removal.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            panics.fetch_add(1, Ordering::Relaxed);
            // Dropping the payload runs its destructor, which may panic too.
            if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(again);
            }
            on_panic
        }
    }
}

/// An `SSL_CTX` pointer captured by the context's own callbacks.
#[derive(Clone, Copy)]
struct CtxPtr(*mut ffi::SSL_CTX);

// SAFETY: the pointer is only used from the callbacks of the context it points to,
// which OpenSSL calls only while that context is alive (a connection holds a
// reference to its session context), and only for calls that OpenSSL synchronises
// itself (`SSL_CTX_add_session` takes the context's lock; the cache mode is a
// plain read, as OpenSSL's own handshake code does).
unsafe impl Send for CtxPtr {}
// SAFETY: as for `Send`.
unsafe impl Sync for CtxPtr {}

impl CtxPtr {
    /// The pointer (a method, so closures capture the whole `CtxPtr`, which is
    /// `Send + Sync`, not its raw field).
    fn as_ptr(self) -> *mut ffi::SSL_CTX {
        self.0
    }

    /// Whether the context's cache mode keeps sessions out of OpenSSL's internal
    /// cache (`SSL_SESS_CACHE_NO_INTERNAL_STORE`, set by [`install`]).
    fn no_internal_store(self) -> bool {
        // SAFETY: see `CtxPtr`; a read-only ctrl on a live context.
        let mode = unsafe {
            ffi::SSL_CTX_ctrl(
                self.as_ptr(),
                SSL_CTRL_GET_SESS_CACHE_MODE,
                0,
                std::ptr::null_mut(),
            )
        };
        mode & SSL_SESS_CACHE_NO_INTERNAL_STORE != 0
    }
}

/// Whether OpenSSL will run its TLS 1.3 anti-replay check right after the lookup
/// of `session` on `ssl` (`tls_parse_ctos_psk`: `max_early_data > 0` and no
/// `SSL_OP_NO_ANTI_REPLAY`), i.e. whether the ticket must be single use.
fn single_use(ssl: &SslRef, session: &SslSessionRef) -> bool {
    if session.protocol_version() != SslVersion::TLS1_3
        || ssl.version2() != Some(SslVersion::TLS1_3)
        || ssl.max_early_data() == 0
    {
        return false;
    }
    // SAFETY: `ssl` is a live `SSL`; `SSL_get_options` only reads it.
    let options = unsafe { SSL_get_options(ssl.as_ptr()) };
    options & SSL_OP_NO_ANTI_REPLAY == 0
}

/// Makes `cache` the session cache of the server context being built.
///
/// Sets the cache mode to `SERVER | NO_INTERNAL` (OpenSSL's internal cache is
/// neither searched nor filled), sets the context's session id context to `sid_ctx`
/// (see [`set_session_id_context`]) and registers the new, get and remove
/// callbacks. Several contexts may share one cache; their sessions are kept apart
/// by their `sid_ctx`.
///
/// Servers that resume by session id (TLS 1.2) or TLS 1.3 stateful tickets need
/// `SslOptions::NO_TICKET`; otherwise clients resume with stateless tickets and the
/// cache is not consulted.
///
/// # Errors
/// OpenSSL's, e.g. for a `sid_ctx` longer than 32 bytes.
pub fn install(
    builder: &mut SslContextBuilder,
    cache: Arc<SessionCache<NativeSession>>,
    sid_ctx: &[u8],
) -> Result<OpensslCache, ErrorStack> {
    set_session_id_context(builder, sid_ctx)?;
    // Create the indices now, so the callbacks never meet an allocation failure.
    ssl_index()?;
    let installed: Arc<[u8]> = sid_ctx.into();
    let panics = Arc::new(AtomicU64::new(0));
    let ctx = CtxPtr(builder.as_ptr());

    builder.set_session_cache_mode(SslSessionCacheMode::SERVER | SslSessionCacheMode::NO_INTERNAL);

    let (c, p) = (Arc::clone(&cache), Arc::clone(&panics));
    builder.set_new_session_callback(move |ssl, session| {
        // `session` is the reference OpenSSL handed us (the callback returns 1):
        // the cache keeps it, or it is freed when dropped here (also while
        // unwinding from a caught panic).
        let c = &c;
        guarded(&p, (), move || {
            // A context whose mode was changed to store internally has linked the
            // session into its own cache list: it must not reach contexts sharing
            // ours ("Several contexts, one cache" in the module docs).
            if !ctx.no_internal_store() || !worth_storing(ssl, &session) {
                return;
            }
            let (time, timeout) = session_time(&session);
            let sid = session_sid_ctx(&session).to_vec();
            let id = session.id().to_vec();
            let Ok(s) = Session::new(&id, &sid, session) else {
                return; // an id of 0 or more than 32 bytes: OpenSSL never caches it either
            };
            let s = Arc::new(s.with_time(time).with_timeout(Duration::from_secs(timeout)));
            c.update_cache(&s);
        })
    });

    let (c, p) = (Arc::clone(&cache), Arc::clone(&panics));
    let inst = Arc::clone(&installed);
    let get = move |ssl: &mut SslRef, id: &[u8]| -> Option<SslSession> {
        guarded(&p, None, || {
            // OpenSSL would add the session to this context's internal cache
            // (`lookup_sess_in_cache`) while it stays in ours: refuse.
            if !ctx.no_internal_store() {
                return None;
            }
            let sid = lookup_sid_ctx(ssl, &inst);
            let s = c.get(id, sid)?;
            // OpenSSL's internal cache is keyed by (version, id): a session of
            // another protocol version (a TLS 1.2 session id offered as a TLS 1.3
            // PSK identity) is a miss there. Without this check the anti-replay
            // `SSL_CTX_remove_session` that follows would delete it from ours.
            if ssl
                .version2()
                .is_some_and(|v| v != s.payload().protocol_version())
            {
                return None;
            }
            if !single_use(ssl, s.payload()) {
                return Some(s.payload().clone());
            }
            // TLS 1.3 with early data and anti-replay: OpenSSL will call
            // `SSL_CTX_remove_session` right after this lookup and resume only if
            // that finds the session in the context's internal cache. Take the
            // ticket out of ours (of concurrent offers exactly one wins), then hand
            // it to the internal cache for that one check, which removes it again.
            // `take_in`: a session another context put under this id meanwhile
            // stays cached (it is not this context's to consume).
            let taken = c.take_in(id, sid)?;
            if !Arc::ptr_eq(&taken, &s) {
                return None; // replaced meanwhile: neither is resumed
            }
            let payload = s.payload().clone();
            // SAFETY: `payload` is a live session. It was stored by a context whose
            // mode has NO_INTERNAL_STORE (checked in the new-session callback), so
            // it is linked in no internal cache; we just took it out of ours, so no
            // other lookup can hand it out: this context's internal cache is the
            // only one it enters. `ctx` is this connection's session context (see
            // `CtxPtr`). `SSL_CTX_add_session` takes its own reference.
            let resumable = unsafe { SSL_SESSION_is_resumable(payload.as_ptr()) } == 1;
            if resumable {
                // SAFETY: as above.
                unsafe { ffi::SSL_CTX_add_session(ctx.as_ptr(), payload.as_ptr()) };
            }
            Some(payload)
        })
    };
    // SAFETY: rust-openssl's contract is that the callback returns no session
    // "associated with a different SslContext": OpenSSL's warning
    // (`SSL_set_session(3)`) is about a session linked into one context's internal
    // cache list being linked into another's. Here no session in the cache is
    // linked in any internal cache (the new-session callback refuses sessions of
    // contexts without NO_INTERNAL_STORE), and sessions are returned only to
    // contexts with NO_INTERNAL_STORE (checked above), which never link them; the
    // early-data hand-off links a session into one context only, after taking it
    // out of the cache. Nothing else in an `SSL_SESSION` refers to its context;
    // contexts sharing a cache are kept apart by `sid_ctx`, which the cache and
    // OpenSSL (`ssl_get_prev_session`) both check. Each returned `SslSession` is a
    // new reference (`SSL_SESSION_up_ref` by `clone`); rust-openssl passes it with
    // `*copy = 0`, so OpenSSL takes it over and nothing leaks.
    unsafe { builder.set_get_session_callback(get) };

    let (c, p) = (Arc::clone(&cache), Arc::clone(&panics));
    builder.set_remove_session_callback(move |_ctx, session| {
        guarded(&p, (), || {
            // OpenSSL removes by key: whatever we cache under this id goes,
            // whichever object it is. The probe carries a new reference to
            // `session`.
            let sid = session_sid_ctx(session).to_vec();
            if let Ok(probe) = Session::new(session.id(), &sid, session.to_owned()) {
                c.remove(&Arc::new(probe));
            }
        })
    });

    Ok(OpensslCache {
        cache,
        sid_ctx: installed,
        panics,
    })
}
