//! The epoch-managed slot: the unsafe core, kept apart from the safe API.
//!
//! A `Slot` is the map's value for one id. Its `ptr` points at the `Arc`
//! allocation of the linked session (never null: a key is in the map exactly
//! while a session is linked), for which the cache owns one strong and one weak
//! reference. The position of the session's entry in its eviction partition is
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

    /// The linked session, valid (as an allocation) while `guard` is pinned.
    #[inline]
    pub(crate) fn load<'g>(&self, _guard: &'g Guard) -> Shared<'g, P> {
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

/// A session pointer loaded from a slot while a guard is pinned: the allocation
/// stays valid for `'g` (the cache's weak reference is released only after every
/// guard pinned before the unlink is dropped), as crossbeam-epoch's
/// `Shared<'g, T>`.
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
        // SAFETY: `Shared` is only made by `Slot::load` under a pinned guard that
        // outlives `'g`; the cache's weak reference to this pointer (from
        // `Weak::into_raw`, the same pointer as `Arc::into_raw`) is released only
        // after that guard unpins, so the allocation is valid. We borrow the weak
        // reference without owning it: `ManuallyDrop` never decrements the count.
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

/// A pointer to a linked session as an eviction entry stores it.
///
/// # Safety
/// `p` must be a pointer stored in a slot (published `Refs`), read under the
/// partition mutex while its entry is present (so it is still linked), and the
/// returned `Shared` must not outlive `_guard`, pinned before the read.
pub(crate) unsafe fn shared_from_entry<'g, P>(
    p: *const Session<P>,
    _guard: &'g Guard,
) -> Shared<'g, P> {
    Shared {
        ptr: NonNull::new(p.cast_mut()).expect("entries hold linked sessions"),
        _guard: PhantomData,
    }
}

/// The two references the cache takes for a session it is about to link. Until
/// published into a slot, dropping it (also while unwinding from a panicking
/// callback) gives both back, so none can leak.
pub(crate) struct Refs<P> {
    ptr: NonNull<Session<P>>,
}

impl<P> Refs<P> {
    /// Takes one strong and one weak reference to `s`.
    pub(crate) fn new(s: &Arc<Session<P>>) -> Self {
        let strong = Arc::into_raw(Arc::clone(s));
        let weak = Weak::into_raw(Arc::downgrade(s));
        debug_assert_eq!(strong, weak);
        Refs {
            ptr: NonNull::new(strong.cast_mut()).expect("Arc pointers are non-null"),
        }
    }

    /// The pointer a slot will hold.
    #[inline]
    pub(crate) fn as_raw(&self) -> *const Session<P> {
        self.ptr.as_ptr().cast_const()
    }

    /// The references move into a slot: the slot owns them now.
    #[inline]
    fn publish(self) -> *mut Session<P> {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl<P> Drop for Refs<P> {
    fn drop(&mut self) {
        // SAFETY: `new` took one strong and one weak reference to `ptr` and they
        // were never published, so we own them and give each back exactly once.
        unsafe {
            drop(Weak::from_raw(self.as_raw()));
            drop(Arc::from_raw(self.as_raw()));
        }
    }
}

/// The references of a session that this thread has just unlinked (its pointer
/// taken out of a slot by `Slot::replace` or `Slot::into_unlinked`): this thread is
/// their one owner. `release` must be called (dropping it leaks two references,
/// never frees twice).
#[must_use = "the unlinked references must be released"]
pub(crate) struct Unlinked<P> {
    ptr: NonNull<Session<P>>,
}

impl<P: Send + Sync> Unlinked<P> {
    /// Releases the strong reference now (returned to the caller, to be dropped
    /// outside every lock) and hands the weak one to the epoch, to be dropped after
    /// every guard pinned before the unlink is gone.
    pub(crate) fn release(self, guard: &Guard) -> Arc<Session<P>> {
        let p = self.ptr.as_ptr().cast_const();
        // SAFETY: we own the slot's strong reference to `p` (the unlink that made
        // this value took it out of the slot exactly once).
        let strong = unsafe { Arc::from_raw(p) };
        let weak = SendPtr(p);
        // SAFETY: we own the slot's weak reference; readers pinned before the
        // unlink may still upgrade through it, so it is dropped only after they
        // unpin. The closure captures a pointer only; dropping a
        // `Weak<Session<P>>` on another thread is sound because `Session<P>` is
        // `Send + Sync` for the `P` the cache accepts.
        unsafe {
            guard.defer_unchecked(move || {
                let weak = weak;
                drop(Weak::from_raw(weak.0));
            })
        };
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
    // so no reader exists and the slot's two references are ours to give back,
    // each exactly once.
    unsafe {
        drop(Weak::from_raw(p));
        Arc::from_raw(p)
    }
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
