//! The epoch-managed slot and node: the unsafe core, kept apart from the safe API.
//!
//! A `Slot` is the map's value for one id. Its `node` pointer is null (dead) or
//! points at a `Node` that owns the cache's one strong reference to a session. See
//! `docs/DESIGN.md` for the states, transitions and ownership rules this file
//! implements.

use crate::session::Session;
use crate::sync::{Atomic, AtomicU64, Guard, Ordering, Owned, Shared};
use std::mem::ManuallyDrop;
use std::sync::{Arc, Weak};

/// What a live slot points at.
pub(crate) struct Node<P> {
    /// The cache's one strong reference. Never read by lookups; moved out exactly
    /// once, by the thread whose CAS took this node out of its slot (or by `Drop`
    /// of the cache, which has exclusive access).
    strong: ManuallyDrop<Arc<Session<P>>>,
    /// How lookups get their own reference: `upgrade` fails once the last strong
    /// reference is gone, so a released session is never handed out.
    weak: Weak<Session<P>>,
    /// Insertion order (unique per cache, never 0).
    pub(crate) seq: u64,
    /// `time + timeout` as this cache last computed it (the eviction order key).
    pub(crate) expiry: AtomicU64,
}

impl<P> Node<P> {
    pub(crate) fn new(s: &Arc<Session<P>>, seq: u64, expiry: u64) -> Owned<Self> {
        Owned::new(Node {
            strong: ManuallyDrop::new(Arc::clone(s)),
            weak: Arc::downgrade(s),
            seq,
            expiry: AtomicU64::new(expiry),
        })
    }

    /// The session's address: identity, as OpenSSL compares `SSL_SESSION` pointers.
    #[inline]
    pub(crate) fn session_ptr(&self) -> *const Session<P> {
        self.weak.as_ptr()
    }

    /// A new strong reference for a reader, or `None` if the session was released.
    #[inline]
    pub(crate) fn upgrade(&self) -> Option<Arc<Session<P>>> {
        self.weak.upgrade()
    }

    /// The current `(expiry, seq)` order key.
    #[inline]
    pub(crate) fn order(&self) -> (u64, u64) {
        (self.expiry.load(Ordering::Relaxed), self.seq)
    }
}

/// The value stored in the map for one id.
pub(crate) struct Slot<P> {
    pub(crate) node: Atomic<Node<P>>,
    /// Which expiry-index partition files this slot (fixed at creation).
    pub(crate) part: usize,
    /// The slot's entry in its index partition: `(filed_expiry, filed_seq)`;
    /// `filed_seq == 0` means none. Written only under that partition's mutex.
    pub(crate) filed_expiry: AtomicU64,
    pub(crate) filed_seq: AtomicU64,
}

impl<P> Slot<P> {
    pub(crate) fn new(part: usize) -> Self {
        Slot {
            node: Atomic::null(),
            part,
            filed_expiry: AtomicU64::new(0),
            filed_seq: AtomicU64::new(0),
        }
    }
}

/// Takes the cache's strong reference out of a node that this thread unlinked, and
/// schedules the node's memory for reclamation after the grace period.
///
/// # Safety
/// - `node` must be non-null and must have been taken out of its slot by a
///   successful compare-and-swap performed by the calling thread (so no other
///   thread will call this for the same node), while `guard` was pinned;
/// - after this call `node` must not be dereferenced except through pointers
///   loaded under a guard pinned before the unlink (readers only touch `weak`,
///   `seq` and `expiry`, which stay valid until reclamation).
pub(crate) unsafe fn release_unlinked<P>(
    node: Shared<'_, Node<P>>,
    guard: &Guard,
) -> Arc<Session<P>> {
    // SAFETY: the caller guarantees `node` is non-null and was unlinked by this
    // thread under `guard`, so it is still allocated (reclamation waits for the
    // guard) and no other thread moves `strong` out of it: this is the one move.
    let strong = unsafe { std::ptr::read(&*node.deref().strong) };
    #[cfg(not(tls_session_cache_mutant = "release_before_unlink"))]
    {
        // SAFETY: the node is unreachable from the map (unlinked by our CAS); only
        // threads pinned before the unlink may still hold it, and the collector
        // waits for them. `strong` was moved out above and is `ManuallyDrop`, so
        // destroying the node drops only its `Weak`.
        unsafe { guard.defer_destroy(node) };
    }
    #[cfg(tls_session_cache_mutant = "release_before_unlink")]
    {
        // MUTANT (test-only cfg): the unlinker already dropped the cache's reference
        // *before* its unlink (see `mutant_release_early`), so it hands its caller a
        // clone made from the raw pointer: a count that may already have reached
        // zero is revived, and an unlink that lost its race has released a
        // reference it never owned. The loom models must catch this.
        // SAFETY: as in the normal build (the node was unlinked by our CAS).
        unsafe { guard.defer_destroy(node) };
        std::mem::forget(Arc::clone(&strong));
    }
    strong
}

/// A node not (yet) published in a slot. Dropping it (also while unwinding from a
/// panicking callback) releases the reference it holds, so none can leak.
pub(crate) struct Unpublished<P>(Option<Owned<Node<P>>>);

impl<P> Unpublished<P> {
    pub(crate) fn none() -> Self {
        Unpublished(None)
    }

    /// The node held, or a new one from `make`.
    pub(crate) fn take_or(&mut self, make: impl FnOnce() -> Owned<Node<P>>) -> Owned<Node<P>> {
        self.0.take().unwrap_or_else(make)
    }

    /// Keeps `node` (a CAS gave it back) for a later attempt or for release.
    pub(crate) fn put(&mut self, node: Owned<Node<P>>) {
        debug_assert!(self.0.is_none());
        self.0 = Some(node);
    }
}

impl<P> Drop for Unpublished<P> {
    fn drop(&mut self) {
        if let Some(n) = self.0.take() {
            drop_unpublished(n);
        }
    }
}

/// MUTANT (test-only cfg): drops the cache's strong reference of a node that is
/// still linked, before the compare-and-swap that would unlink it.
///
/// # Safety
/// None: deliberately wrong; never compiled outside mutant test builds.
#[cfg(tls_session_cache_mutant = "release_before_unlink")]
pub(crate) unsafe fn mutant_release_early<P>(node: &Node<P>) {
    // SAFETY: deliberately wrong (a mutant): releases a reference we do not own.
    drop(unsafe { std::ptr::read(&*node.strong) });
}

/// Drops a node that was never published (its CAS failed and we gave up on it).
fn drop_unpublished<P>(node: Owned<Node<P>>) {
    let mut node = node.into_box();
    // SAFETY: never published, so we own the only reference to `strong`; it is
    // dropped exactly once here and the box (with its `ManuallyDrop`) then frees.
    unsafe { ManuallyDrop::drop(&mut node.strong) };
}

/// Drops a slot's node during the cache's `Drop` (exclusive access).
pub(crate) fn drop_exclusive<P>(slot: Slot<P>) -> Option<Arc<Session<P>>> {
    // SAFETY: called only from `SessionCache::drop`, which owns the map by `&mut`:
    // no other thread can load this pointer, so the unprotected guard is sound.
    let guard = unsafe { crossbeam_epoch::unprotected() };
    let node = slot.node.load(Ordering::Acquire, guard);
    if node.is_null() {
        return None;
    }
    // SAFETY: non-null, exclusively owned (see above); converting it back into an
    // owned box frees it when dropped.
    let mut owned = unsafe { node.into_owned() }.into_box();
    // SAFETY: `strong` is moved out exactly once, here; the box then drops only
    // the `Weak` (the `ManuallyDrop` field is not dropped again).
    Some(unsafe { ManuallyDrop::take(&mut owned.strong) })
}
