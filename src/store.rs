//! OpenSSL's three external-cache callbacks as one trait.

use crate::Session;
use std::sync::Arc;

/// Why the cache removed a session (the second argument of
/// [`SessionStore::remove_session`]).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tls_session_cache::{RemovalCause, Session, SessionCache, SessionStore};
///
/// #[derive(Default)]
/// struct Log(Mutex<Vec<RemovalCause>>);
/// impl SessionStore<()> for Log {
///     fn remove_session(&self, _: &Arc<Session<()>>, cause: RemovalCause) {
///         self.0.lock().unwrap().push(cause);
///     }
/// }
///
/// let log = Arc::new(Log::default());
/// let cache = SessionCache::builder().capacity(1).store(Arc::clone(&log)).build();
/// let a = Arc::new(Session::new(b"a", b"", ())?);
/// let b = Arc::new(Session::new(b"b", b"", ())?);
/// cache.add(&a);
/// cache.add(&b); // evicts a
/// cache.take(b"b");
/// cache.remove(&a); // nothing cached under a's id: still reported, as OpenSSL
/// assert_eq!(
///     *log.0.lock().unwrap(),
///     [RemovalCause::Evicted, RemovalCause::Taken, RemovalCause::Removed]
/// );
/// # Ok::<(), tls_session_cache::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// [`SessionCache::remove`](crate::SessionCache::remove) or
    /// [`remove_if_same`](crate::SessionCache::remove_if_same)
    /// (`SSL_CTX_remove_session`): the TLS stack or the application said this
    /// session must not be resumed (a failed handshake, a revoked peer). The one
    /// cause a shared tier should propagate.
    Removed,
    /// [`SessionCache::take`](crate::SessionCache::take): consumed by a single-use
    /// resumption (a TLS 1.3 ticket).
    Taken,
    /// [`SessionCache::get`](crate::SessionCache::get) met it expired.
    Expired,
    /// Evicted to make room under the capacity (`SSL_CTX_sess_cache_full`).
    Evicted,
    /// Removed by [`SessionCache::flush`](crate::SessionCache::flush) (also the
    /// auto-flush every 256 handshakes): expired at the flush's time, or any
    /// session for `flush(0)`.
    Flushed,
}

impl RemovalCause {
    /// Whether the session was removed because someone asked for it
    /// ([`Removed`](Self::Removed) or [`Taken`](Self::Taken)) rather than by the
    /// cache's own housekeeping (eviction, expiry, flush).
    pub fn is_explicit(self) -> bool {
        matches!(self, RemovalCause::Removed | RemovalCause::Taken)
    }
}

/// An external session store: OpenSSL's `sess_new_cb`, `sess_get_cb` and
/// `sess_remove_cb` (`SSL_CTX_sess_set_*_cb`), each optional (the defaults do
/// nothing), fired exactly when OpenSSL fires them:
///
/// - [`new_session`](Self::new_session): from
///   [`SessionCache::update_cache`](crate::SessionCache::update_cache) after a full
///   handshake, when the mode has `SERVER` (even with `NO_INTERNAL_STORE`).
/// - [`get_session`](Self::get_session): from
///   [`SessionCache::get`](crate::SessionCache::get) when the internal lookup missed
///   or was skipped (`NO_INTERNAL_LOOKUP`). A session that is not resumable is
///   ignored; a found one counts a `cb_hits` and is added to the internal cache
///   unless `NO_INTERNAL_STORE`, or unless an explicit removal of that id may
///   have raced the answer (recorded since the lookup began, or one of its shard
///   still in `remove_session` then; the session is still returned). Its sid_ctx
///   and expiry are then checked like any. So that a removal is never undone, a
///   store should not answer a session once its `remove_session` for it has
///   returned (a store that sends deletes later must withhold the session
///   meanwhile).
/// - [`remove_session`](Self::remove_session): whenever the cache removes a session,
///   with the [`RemovalCause`]: [`remove`](crate::SessionCache::remove) (always,
///   with its argument, even when nothing was cached, as OpenSSL) and a successful
///   [`remove_if_same`](crate::SessionCache::remove_if_same) →
///   [`Removed`](RemovalCause::Removed); a successful
///   [`take`](crate::SessionCache::take) → [`Taken`](RemovalCause::Taken); an
///   eviction → [`Evicted`](RemovalCause::Evicted); an expired session met by
///   [`get`](crate::SessionCache::get) → [`Expired`](RemovalCause::Expired); each
///   session [`flush`](crate::SessionCache::flush) removes (also the auto-flush of
///   [`update_cache`](crate::SessionCache::update_cache)) →
///   [`Flushed`](RemovalCause::Flushed). Not on a replace.
///
/// Callbacks run with no lock held and no epoch pinned, so they may call back into
/// the cache. A callback that panics leaves the cache consistent.
pub trait SessionStore<P>: Send + Sync {
    /// A full handshake made `session`.
    fn new_session(&self, session: &Arc<Session<P>>) {
        let _ = session;
    }

    /// Look up a session by id after an internal miss.
    fn get_session(&self, id: &[u8]) -> Option<Arc<Session<P>>> {
        let _ = id;
        None
    }

    /// `session` was removed from (or is no longer to be resumed through) the
    /// cache, for `cause`. A shared tier decides from the cause what to propagate:
    /// typically only [`RemovalCause::Removed`] (a session the TLS stack or the
    /// application said must not be resumed anywhere), since evictions, expiries
    /// and flushes are local housekeeping.
    fn remove_session(&self, session: &Arc<Session<P>>, cause: RemovalCause) {
        let _ = (session, cause);
    }
}

/// A shared store: `builder.store(Arc::clone(&store))` keeps a handle for the caller.
impl<P, S: SessionStore<P> + ?Sized> SessionStore<P> for Arc<S> {
    fn new_session(&self, session: &Arc<Session<P>>) {
        (**self).new_session(session)
    }
    fn get_session(&self, id: &[u8]) -> Option<Arc<Session<P>>> {
        (**self).get_session(id)
    }
    fn remove_session(&self, session: &Arc<Session<P>>, cause: RemovalCause) {
        (**self).remove_session(session, cause)
    }
}
