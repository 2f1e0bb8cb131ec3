//! The epoch-managed link: the unsafe core, kept apart from the safe API.
//!
//! A `Link` is the map's **key** for one id: a pointer to the `Arc` allocation of
//! the linked session (never null: a key is in the map exactly while a session is
//! linked), for which the cache owns one strong reference. It hashes and compares
//! as the session's id (read through the pointer), so a map bucket is the pointer
//! and the entry's position (`Pos`, the map's value): 16 bytes, no copy of the id.
//! The pointer changes (a replace: same id, so the same hash and equality) and the
//! position change only under the id's partition mutex (see `docs/DESIGN.md`).

use crate::id::{Id, IdKey};
use crate::session::Session;
use crate::sync::{AtomicPtr, AtomicU64, Guard, Ordering};
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};

/// The map's key for one id: the linked session.
pub(crate) struct Link<P> {
    ptr: AtomicPtr<Session<P>>,
}

impl<P> Link<P> {
    /// A link to `p` for a lookup, an insert or a removal. It owns nothing: an
    /// insert hands the session's strong reference to it with `Refs::publish`.
    ///
    /// # Safety
    /// While the map may hash or compare it (until the map call it is passed to
    /// returns, or — once inserted — while it is in the map), `p` must point at a
    /// live session: one the caller holds a reference to (or, once inserted, the
    /// one the link owns a reference to).
    #[inline]
    pub(crate) unsafe fn to(p: *const Session<P>) -> Self {
        Link {
            ptr: AtomicPtr::new(p.cast_mut()),
        }
    }

    /// The linked session, valid (as an allocation) while `guard` is pinned **and**
    /// the link is borrowed (under the shard lock): a replace (under the read
    /// lock) defers a weak reference to the epoch, an unlink under the write lock
    /// releases at once, which the borrow excludes.
    #[inline]
    pub(crate) fn load<'g>(&'g self, _guard: &'g Guard) -> Shared<'g, P> {
        let p = self.ptr.load(Ordering::Acquire);
        Shared {
            // Never null: made from session pointers, replaced by published ones.
            ptr: NonNull::new(p).expect("a link is never null"),
            _guard: PhantomData,
        }
    }

    /// Whether `s` is the linked session (identity); no guard needed to compare.
    #[inline]
    pub(crate) fn holds(&self, s: *const Session<P>) -> bool {
        self.ptr.load(Ordering::Acquire).cast_const() == s
    }

    /// The linked session, borrowed while the caller holds this id's shard
    /// *write* lock (no replace, which needs the read lock, and no unlink, which
    /// needs this lock, can run), so the map's strong reference keeps it alive.
    ///
    /// # Safety
    /// The caller must hold the write lock of the shard this key is in for as
    /// long as the borrow lives.
    #[inline]
    pub(crate) unsafe fn linked_under_write_lock(&self) -> &Session<P> {
        // SAFETY: per the contract the session is linked for the borrow.
        unsafe { &*self.raw() }
    }

    /// The raw linked pointer (for identity comparison only).
    #[inline]
    pub(crate) fn raw(&self) -> *const Session<P> {
        self.ptr.load(Ordering::Acquire).cast_const()
    }

    /// Links `refs` (a session with the same id) in place of the current session.
    /// Returns the reference to the previous session, now owned by the caller.
    ///
    /// Must be called with the id's partition mutex held (and the shard read or
    /// write lock), after recording the new entry's position: the pointer and the
    /// position then change in one step for every other holder of that mutex. The
    /// previous pointer is read with a swap, so even a caller that broke the
    /// locking rule could not obtain it twice. `seen` is the pointer the caller
    /// read before taking the mutex (used only by a mutant).
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
            ptr: NonNull::new(old).expect("a link is never null"),
        }
    }

    /// Takes the reference out of a link that was just removed from the map (by
    /// the caller, under the shard write lock).
    pub(crate) fn into_unlinked(self) -> Unlinked<P> {
        let p = self.ptr.load(Ordering::Acquire);
        Unlinked {
            ptr: NonNull::new(p).expect("a link is never null"),
        }
    }
}

impl<P> IdKey for Link<P> {
    #[inline]
    fn id(&self) -> &Id {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: a `Link` is made only by `Link::to`, whose contract keeps the
        // session alive while the map can hash or compare the link; a replace
        // stores another live session with the same id. A reader racing a
        // replace under the shard read lock may load the old pointer: it is
        // pinned (every read-locked call pins first), and the replacer defers a
        // weak reference to the old allocation, so it stays valid; the id never
        // changes after a session is made. (The replacer may meanwhile drop the
        // old session's last strong reference, which runs `Session<P>`'s drop
        // glue through a `&mut`: the id has no drop glue and is never written,
        // and the memory stays allocated, so the bytes read are the id's; under
        // a strict aliasing model such as Stacked Borrows the overlap of that
        // `&mut` with this shared read would still count as a violation.)
        unsafe { (*p).key() }
    }
}

impl<P> Hash for Link<P> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl<P> PartialEq for Link<P> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        // The same session is the same id without reading it.
        self.raw() == other.raw() || self.id() == other.id()
    }
}
impl<P> Eq for Link<P> {}

impl<P: 'static> Borrow<dyn IdKey> for Link<P> {
    #[inline]
    fn borrow(&self) -> &(dyn IdKey + 'static) {
        self
    }
}

/// The map's value for one id: the position of the linked session's eviction
/// entry, `(partition << 32) | index`. Written only under the partition mutex, or
/// before the key is inserted; read under that mutex or the shard write lock.
pub(crate) struct Pos(AtomicU64);

impl Pos {
    #[inline]
    pub(crate) fn new(pos: u64) -> Self {
        Pos(AtomicU64::new(pos))
    }

    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn set(&self, pos: u64) {
        self.0.store(pos, Ordering::Relaxed);
    }
}

/// A session pointer loaded from a link while a guard is pinned and the link is
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
        // SAFETY: `Shared` is only made by `Link::load` under a pinned guard and a
        // borrow of the link (shard lock held), both outliving `'g`: the session
        // is either still linked (the cache's strong reference keeps the
        // allocation) or was replaced after the guard was pinned (the replacer's
        // deferred weak reference keeps it until the guard unpins). While the
        // allocation lives its weak count is at least 1 (strong references
        // together hold one), so a `Weak` made from the `Arc::into_raw` pointer
        // (the same pointer `Weak::into_raw` gives) is valid to upgrade through;
        // we borrow it without owning a count: `ManuallyDrop` never decrements.
        // (This relies on `Arc::into_raw` and `Weak::into_raw` giving the same
        // data pointer for the same allocation, which std guarantees for `T:
        // Sized`; std documents `Weak::into_raw` as `from_raw`'s origin.)
        let weak = ManuallyDrop::new(unsafe { Weak::from_raw(self.as_raw()) });
        weak.upgrade()
    }
}

/// The strong reference the cache takes for a session it is about to link. Until
/// published into the map, dropping it (also while unwinding from a panicking
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

    /// The pointer a link will hold.
    #[inline]
    pub(crate) fn as_raw(&self) -> *const Session<P> {
        self.ptr.as_ptr().cast_const()
    }

    /// The reference moves into a link in the map (the link inserted for a new
    /// id, made with `Link::to` on this pointer, or a replaced link): the map owns
    /// it now.
    #[inline]
    pub(crate) fn publish(self) -> *mut Session<P> {
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
/// pointer taken out of the map by `Link::replace` or `Link::into_unlinked`): this
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
        // SAFETY: we own the link's strong reference to `p` (the unlink that made
        // this value took it out of the map exactly once).
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

/// Releases a link's reference during the cache's `Drop` (exclusive access).
pub(crate) fn drop_exclusive<P>(link: Link<P>) -> Arc<Session<P>> {
    let p = link.ptr.load(Ordering::Acquire).cast_const();
    // SAFETY: called only from the cache's `Drop`, which owns the map by `&mut`,
    // so no reader exists and the link's strong reference is ours to give back,
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
