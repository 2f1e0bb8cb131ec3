//! The epoch-managed slot: the unsafe core, kept apart from the safe API.
//!
//! A `Slot` is the map's value for one id. Its `ptr` points at the `Arc`
//! allocation of the linked session (never null: a key is in the map exactly
//! while a session is linked), for which the cache owns one strong reference. The position of the session's entry in its eviction partition is
//! kept in the map key (`Id::pos`, in the key's padding). Both change only under
//! the partition mutex (see `docs/DESIGN.md`).

use crate::session::Session;
use crate::sync::{AtomicPtr, Guard, Ordering};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};

/// The value stored in the map for one id.
pub(crate) struct Slot<P> {
    ptr: AtomicPtr<Session<P>>,
}

impl<P> Slot<P> {
    /// A slot linking `refs`: the slot now owns both references.
    pub(crate) fn new(refs: Refs<P>) -> Self {
        Slot {
            ptr: AtomicPtr::new(refs.publish()),
        }
    }

    /// The linked session, valid (as an allocation) while `guard` is pinned **and**
    /// the slot is borrowed (under the shard lock): a replace (under the read
    /// lock) defers its weak reference to the epoch, an unlink under the write lock
    /// releases at once, which the borrow of the slot excludes.
    #[inline]
    pub(crate) fn load<'g>(&'g self, _guard: &'g Guard) -> Shared<'g, P> {
        let p = self.ptr.load(Ordering::Acquire);
        Shared {
            // A slot is never null: `new` and `replace` store published pointers.
            ptr: NonNull::new(p).expect("a linked slot is never null"),
            _guard: PhantomData,
        }
    }

    /// Whether `s` is the linked session (identity); no guard needed to compare.
    #[inline]
    pub(crate) fn holds(&self, s: *const Session<P>) -> bool {
        self.ptr.load(Ordering::Acquire).cast_const() == s
    }

    /// The raw linked pointer (for identity comparison only).
    #[inline]
    pub(crate) fn raw(&self) -> *const Session<P> {
        self.ptr.load(Ordering::Acquire).cast_const()
    }

    /// Links `refs` in place of the current session. Returns the references to
    /// the previous session, now owned by the caller.
    ///
    /// Must be called with the slot's partition mutex held (and the shard read or
    /// write lock), after recording the new entry's position in the key: the
    /// pointer and the position then change in one step for every other holder of
    /// that mutex. The previous pointer is read with a swap, so even a caller that
    /// broke the locking rule could not obtain it twice. `seen` is the pointer the
    /// caller read before taking the mutex (used only by a mutant).
    pub(crate) fn replace(&self, refs: Refs<P>, seen: *const Session<P>) -> Unlinked<P> {
        let new = refs.publish();
        let swapped = self.ptr.swap(new, Ordering::AcqRel);
        // MUTANT (test-only cfg): check, then act: the pointer seen before the
        // mutex is taken as the one replaced.
        let old = if crate::mutant::SLOT_LOAD_STORE {
            seen.cast_mut()
        } else {
            swapped
        };
        Unlinked {
            ptr: NonNull::new(old).expect("a linked slot is never null"),
        }
    }

    /// Takes the references out of a slot that was just removed from the map (by
    /// the caller, under the shard write lock).
    pub(crate) fn into_unlinked(self) -> Unlinked<P> {
        let p = self.ptr.load(Ordering::Acquire);
        Unlinked {
            ptr: NonNull::new(p).expect("a linked slot is never null"),
        }
    }
}

/// A session pointer loaded from a slot while a guard is pinned and the slot is
/// borrowed under its shard lock: the allocation stays valid for `'g` (a replace
/// defers a weak reference until every guard pinned before it is dropped; every
/// other unlink needs the shard write lock, which the borrow excludes), as
/// crossbeam-epoch's `Shared<'g, T>`.
pub(crate) struct Shared<'g, P> {
    ptr: NonNull<Session<P>>,
    _guard: PhantomData<&'g Guard>,
}

impl<P> Clone for Shared<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P> Copy for Shared<'_, P> {}

impl<'g, P> Shared<'g, P> {
    #[inline]
    pub(crate) fn as_raw(self) -> *const Session<P> {
        self.ptr.as_ptr().cast_const()
    }

    /// A new strong reference, or `None` if the session's last strong reference is
    /// already gone (it was unlinked and released after this pointer was loaded).
    #[inline]
    pub(crate) fn upgrade(self) -> Option<Arc<Session<P>>> {
        // SAFETY: `Shared` is only made by `Slot::load` under a pinned guard and a
        // borrow of the slot (shard lock held), both outliving `'g`: the session
        // is either still linked (the cache's strong reference keeps the
        // allocation) or was replaced after the guard was pinned (the replacer's
        // deferred weak reference keeps it until the guard unpins). While the
        // allocation lives its weak count is at least 1 (strong references
        // together hold one), so a `Weak` made from the `Arc::into_raw` pointer
        // (the same pointer `Weak::into_raw` gives) is valid to upgrade through;
        // we borrow it without owning a count: `ManuallyDrop` never decrements.
        let weak = ManuallyDrop::new(unsafe { Weak::from_raw(self.as_raw()) });
        weak.upgrade()
    }

    /// The session itself.
    ///
    /// # Safety
    /// The session must still be linked (the caller holds a lock that keeps it
    /// linked: its partition mutex with its entry present, or its shard lock with
    /// the slot holding this pointer), so that the cache's strong reference keeps
    /// the payload alive for the borrow.
    #[inline]
    pub(crate) unsafe fn deref_linked(self) -> &'g Session<P> {
        // SAFETY: per the contract the session is linked, so its strong count is at
        // least 1 and the allocation is valid for `'g`.
        unsafe { self.ptr.as_ref() }
    }
}

/// The strong reference the cache takes for a session it is about to link. Until
/// published into a slot, dropping it (also while unwinding from a panicking
/// callback) gives it back, so none can leak.
pub(crate) struct Refs<P> {
    ptr: NonNull<Session<P>>,
}

impl<P> Refs<P> {
    /// Takes one strong reference to `s`.
    pub(crate) fn new(s: &Arc<Session<P>>) -> Self {
        let strong = Arc::into_raw(Arc::clone(s));
        Refs {
            ptr: NonNull::new(strong.cast_mut()).expect("Arc pointers are non-null"),
        }
    }

    /// The pointer a slot will hold.
    #[inline]
    pub(crate) fn as_raw(&self) -> *const Session<P> {
        self.ptr.as_ptr().cast_const()
    }

    /// The reference moves into a slot: the slot owns it now.
    #[inline]
    fn publish(self) -> *mut Session<P> {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl<P> Drop for Refs<P> {
    fn drop(&mut self) {
        // SAFETY: `new` took one strong reference to `ptr` and it was never
        // published, so we own it and give it back exactly once.
        unsafe { drop(Arc::from_raw(self.as_raw())) }
    }
}

/// The strong reference of a session that this thread has just unlinked (its
/// pointer taken out of a slot by `Slot::replace` or `Slot::into_unlinked`): this
/// thread is its one owner. `release_replaced` or `release_removed` must be called
/// (dropping it leaks a reference, never frees twice).
#[must_use = "the unlinked reference must be released"]
pub(crate) struct Unlinked<P> {
    ptr: NonNull<Session<P>>,
}

impl<P: Send + Sync> Unlinked<P> {
    /// For a session unlinked by a replace (under the shard *read* lock, which
    /// readers share): returns the strong reference (to be dropped outside every
    /// lock) and hands a new weak one to the epoch, so the allocation outlives
    /// every reader pinned before the swap that may still upgrade through it.
    pub(crate) fn release_replaced(self, guard: &Guard) -> Arc<Session<P>> {
        let strong = self.take();
        let weak = SendPtr(Weak::into_raw(Arc::downgrade(&strong)));
        // SAFETY: we own the weak reference just made; it is dropped only after
        // every guard pinned before this point unpins. The closure captures a
        // pointer only; dropping a `Weak<Session<P>>` on another thread is sound
        // because `Session<P>` is `Send + Sync` for the `P` the cache accepts.
        unsafe {
            guard.defer_unchecked(move || {
                let weak = weak;
                drop(Weak::from_raw(weak.0));
            })
        };
        strong
    }

    /// For a session unlinked under the shard *write* lock (remove, take,
    /// eviction, expiry, flush): no reader can hold its pointer (readers load and
    /// upgrade under the read lock), so the strong reference is all there is to
    /// release, with no epoch deferral.
    pub(crate) fn release_removed(self) -> Arc<Session<P>> {
        self.take()
    }

    fn take(self) -> Arc<Session<P>> {
        let p = self.ptr.as_ptr().cast_const();
        // SAFETY: we own the slot's strong reference to `p` (the unlink that made
        // this value took it out of the slot exactly once).
        let strong = unsafe { Arc::from_raw(p) };
        if crate::mutant::RELEASE_BEFORE_UNLINK {
            // MUTANT (test-only cfg): the unlinker already dropped the cache's
            // strong reference before its unlink (`mutant::release_early`), so it
            // hands its caller a clone: a count that reached zero is revived.
            std::mem::forget(Arc::clone(&strong));
        }
        strong
    }
}

/// A pointer the epoch may drop on another thread (see `Unlinked::release`).
struct SendPtr<P>(*const Session<P>);
// SAFETY: only moved into a deferred function that drops a `Weak<Session<P>>`,
// which is sound on any thread when `Session<P>` is `Send + Sync`.
unsafe impl<P: Send + Sync> Send for SendPtr<P> {}

/// Releases a slot's references during the cache's `Drop` (exclusive access).
pub(crate) fn drop_exclusive<P>(slot: Slot<P>) -> Arc<Session<P>> {
    let p = slot.ptr.load(Ordering::Acquire).cast_const();
    // SAFETY: called only from the cache's `Drop`, which owns the map by `&mut`,
    // so no reader exists and the slot's strong reference is ours to give back,
    // exactly once.
    unsafe { Arc::from_raw(p) }
}

/// MUTANT (test-only cfg `release_before_unlink`): drops the cache's strong
/// reference of a session that is still linked, before the unlink.
///
/// # Safety
/// None: deliberately wrong; a no-op unless that mutant is compiled in.
pub(crate) unsafe fn mutant_release_early<P>(p: *const Session<P>) {
    if crate::mutant::RELEASE_BEFORE_UNLINK {
        // SAFETY: deliberately wrong (a mutant): releases a reference we do not own.
        drop(unsafe { Arc::from_raw(p) });
    }
}
