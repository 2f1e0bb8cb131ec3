//! The epoch-managed slot: the unsafe core, kept apart from the safe API.
//!
//! A `Slot` is the map's value for one id. Its `ptr` is null (dead) or points at
//! the `Arc` allocation of the cached session, for which the cache owns one strong
//! and one weak reference. See `docs/DESIGN.md` for the states, transitions and
//! ownership rules this file implements.

use crate::session::Session;
use crate::sync::{AtomicPtr, AtomicU64, Guard, Ordering};
use std::mem::ManuallyDrop;
use std::sync::{Arc, Weak};

/// The value stored in the map for one id.
pub(crate) struct Slot<P> {
    /// The cached session (`Arc::into_raw`), or null when dead.
    pub(crate) ptr: AtomicPtr<Session<P>>,
    /// The occupant's insertion order (unique per cache, never 0).
    pub(crate) seq: AtomicU64,
    /// The occupant's `time + timeout` as this cache last computed it.
    pub(crate) expiry: AtomicU64,
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
            ptr: AtomicPtr::new(std::ptr::null_mut()),
            seq: AtomicU64::new(0),
            expiry: AtomicU64::new(0),
            part,
            filed_expiry: AtomicU64::new(0),
            filed_seq: AtomicU64::new(0),
        }
    }

    /// Records the order key of the occupant just linked by this thread.
    #[inline]
    pub(crate) fn set_order(&self, (expiry, seq): (u64, u64)) {
        self.expiry.store(expiry, Ordering::Relaxed);
        self.seq.store(seq, Ordering::Relaxed);
    }

    /// The current occupant's `(expiry, seq)` order key.
    #[inline]
    pub(crate) fn order(&self) -> (u64, u64) {
        (
            self.expiry.load(Ordering::Relaxed),
            self.seq.load(Ordering::Relaxed),
        )
    }
}

/// The pointer a slot holds for `s`.
#[inline]
pub(crate) fn raw<P>(s: &Arc<Session<P>>) -> *mut Session<P> {
    Arc::as_ptr(s).cast_mut()
}

/// A new strong reference to the session a slot pointed at, or `None` if its last
/// strong reference is already gone.
///
/// # Safety
/// `p` must be non-null and must have been loaded from a slot while `_guard` was
/// pinned (the cache's weak reference to `p`, released only after every guard
/// pinned before its unlink is dropped, keeps the allocation valid).
#[inline]
pub(crate) unsafe fn upgrade<P>(p: *mut Session<P>, _guard: &Guard) -> Option<Arc<Session<P>>> {
    // SAFETY: per the contract, the cache still holds a weak reference to `p`
    // (from `Weak::into_raw`, the same pointer as `Arc::into_raw`). We borrow it
    // without taking ownership: `ManuallyDrop` never decrements the weak count.
    let weak = ManuallyDrop::new(unsafe { Weak::from_raw(p.cast_const()) });
    weak.upgrade()
}

/// The two references the cache takes for a session it is about to link. Until
/// `publish` is called, dropping it (also while unwinding from a panicking
/// callback) gives both back, so none can leak.
pub(crate) struct Unpublished<P> {
    ptr: *mut Session<P>,
}

impl<P> Unpublished<P> {
    /// Takes one strong and one weak reference to `s`.
    pub(crate) fn new(s: &Arc<Session<P>>) -> Self {
        let strong = Arc::into_raw(Arc::clone(s));
        let weak = Weak::into_raw(Arc::downgrade(s));
        debug_assert_eq!(strong, weak);
        Unpublished {
            ptr: strong.cast_mut(),
        }
    }

    /// The pointer to store in a slot.
    #[inline]
    pub(crate) fn ptr(&self) -> *mut Session<P> {
        self.ptr
    }

    /// The pointer is now in a slot: the slot owns both references.
    #[inline]
    pub(crate) fn publish(self) {
        std::mem::forget(self);
    }
}

impl<P> Drop for Unpublished<P> {
    fn drop(&mut self) {
        // SAFETY: `new` took one strong and one weak reference to `ptr` and they
        // were never published, so we own them and give each back exactly once.
        unsafe {
            drop(Weak::from_raw(self.ptr.cast_const()));
            drop(Arc::from_raw(self.ptr.cast_const()));
        }
    }
}

/// Takes the cache's references out of a pointer that this thread unlinked: returns
/// the strong one (to be dropped by the caller, outside any lock) and hands the
/// weak one to the epoch, to be dropped after the grace period.
///
/// # Safety
/// `p` must be non-null and must have been taken out of its slot by a successful
/// compare-and-swap (or a swap under the shard write lock) performed by the calling
/// thread while `guard` was pinned, so that this thread is the one owner of the
/// slot's two references; no other call may be made for the same unlink.
pub(crate) unsafe fn release_unlinked<P>(p: *mut Session<P>, guard: &Guard) -> Arc<Session<P>> {
    // SAFETY: per the contract we own the slot's strong reference to `p`.
    let strong = unsafe { Arc::from_raw(p.cast_const()) };
    let weak = SendPtr(p);
    // SAFETY: we own the slot's weak reference; readers pinned before the unlink may
    // still upgrade through it, so it is dropped only after they unpin. The closure
    // captures a pointer only; dropping a `Weak<Session<P>>` on another thread is
    // sound because `Session<P>` is `Send + Sync` for the `P` the cache accepts.
    unsafe {
        guard.defer_unchecked(move || {
            let weak = weak;
            drop(Weak::from_raw(weak.0.cast_const()));
        })
    };
    #[cfg(tls_session_cache_mutant = "release_before_unlink")]
    {
        // MUTANT (test-only cfg): the unlinker already dropped the cache's strong
        // reference *before* its unlink (see `mutant_release_early`), so it hands
        // its caller a clone made from the raw pointer: a count that may already
        // have reached zero is revived, and an unlink that lost its race has
        // released a reference it never owned. The loom models must catch this.
        std::mem::forget(Arc::clone(&strong));
    }
    strong
}

/// A pointer the epoch may drop on another thread (see `release_unlinked`).
struct SendPtr<P>(*mut Session<P>);
// SAFETY: only moved into a deferred function that drops a `Weak<Session<P>>`,
// which is sound on any thread when `Session<P>` is `Send + Sync`.
unsafe impl<P: Send + Sync> Send for SendPtr<P> {}

/// MUTANT (test-only cfg): drops the cache's strong reference of a session that
/// is still linked, before the compare-and-swap that would unlink it.
///
/// # Safety
/// None: deliberately wrong; never compiled outside mutant test builds.
#[cfg(tls_session_cache_mutant = "release_before_unlink")]
pub(crate) unsafe fn mutant_release_early<P>(p: *mut Session<P>) {
    // SAFETY: deliberately wrong (a mutant): releases a reference we do not own.
    drop(unsafe { Arc::from_raw(p.cast_const()) });
}

/// Releases a slot's references during the cache's `Drop` (exclusive access).
pub(crate) fn drop_exclusive<P>(slot: Slot<P>) -> Option<Arc<Session<P>>> {
    let p = slot.ptr.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: called only from `SessionCache::drop`, which owns the map by `&mut`,
    // so no reader exists and the slot's two references are ours to give back,
    // each exactly once.
    unsafe {
        drop(Weak::from_raw(p.cast_const()));
        Some(Arc::from_raw(p.cast_const()))
    }
}
