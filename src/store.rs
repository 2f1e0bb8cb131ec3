//! OpenSSL's three external-cache callbacks as one trait.

use crate::Session;
use std::sync::Arc;

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
///   unless `NO_INTERNAL_STORE`. Its sid_ctx and expiry are then checked like any.
/// - [`remove_session`](Self::remove_session): whenever the cache removes a session:
///   [`remove`](crate::SessionCache::remove) (always, with its argument, even when
///   nothing was cached, as OpenSSL), a successful
///   [`remove_if_same`](crate::SessionCache::remove_if_same) or
///   [`take`](crate::SessionCache::take), an eviction, an expired session met by
///   `get`, and [`flush`](crate::SessionCache::flush). Not on a replace.
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

    /// `session` was removed from (or is no longer to be resumed through) the cache.
    fn remove_session(&self, session: &Arc<Session<P>>) {
        let _ = session;
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
    fn remove_session(&self, session: &Arc<Session<P>>) {
        (**self).remove_session(session)
    }
}
