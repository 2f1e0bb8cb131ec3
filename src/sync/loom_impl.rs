//! Under `--cfg tls_session_cache_loom`: loom's atomics and locks, and a
//! model-local crossbeam-epoch collector (models with the global one are ~70x
//! slower).

pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

/// A yield point the model checker sees.
pub(crate) fn backoff() {
    loom::thread::yield_now();
}

/// The epoch collector a cache pins: the model-local collector the builder was
/// given (or a fresh one).
pub(crate) struct Epoch {
    collector: crossbeam_epoch::Collector,
}

impl Epoch {
    pub(crate) fn new(collector: Option<crossbeam_epoch::Collector>) -> Self {
        Epoch {
            collector: collector.unwrap_or_default(),
        }
    }

    pub(crate) fn pin(&self) -> crossbeam_epoch::Guard {
        // One handle per (loom thread, collector), like the global collector's
        // thread-local handle: registering per pin made every operation also
        // insert into the collector's list of locals, multiplying the states.
        use std::cell::RefCell;
        loom::thread_local! {
            static HANDLE: RefCell<Option<(crossbeam_epoch::Collector, crossbeam_epoch::LocalHandle)>> =
                RefCell::new(None);
        }
        HANDLE.with(|h| {
            let mut h = h.borrow_mut();
            if h.as_ref().is_none_or(|(c, _)| *c != self.collector) {
                *h = Some((self.collector.clone(), self.collector.register()));
            }
            h.as_ref().map(|(_, l)| l.pin()).expect("registered above")
        })
    }
}

/// One shared stripe under loom (every loom thread adds with a read-modify-write).
pub(crate) fn thread_stripe() -> Option<usize> {
    None
}

/// Under loom every counter update is a read-modify-write.
pub(crate) const EXCLUSIVE_STRIPES: bool = false;

/// Two shards (two partitions): enough for cross-shard races, small state space.
pub(crate) fn default_shards() -> usize {
    2
}

/// A cell whose exclusive access the caller proves by other means (a lock it
/// holds elsewhere): loom's `UnsafeCell`, which checks that no two accesses
/// overlap (a model fails if the caller's proof is wrong).
pub(crate) struct ExclCell<T>(loom::cell::UnsafeCell<T>);

/// Exclusive access to an `ExclCell`'s value, tracked by loom for as long as
/// this lives.
pub(crate) struct CellMut<'a, T> {
    ptr: loom::cell::MutPtr<T>,
    _cell: std::marker::PhantomData<&'a mut T>,
}

impl<T> ExclCell<T> {
    pub(crate) fn new(v: T) -> Self {
        ExclCell(loom::cell::UnsafeCell::new(v))
    }

    /// # Safety
    /// No other access to the value may exist while the returned `CellMut` lives
    /// (loom panics if one does).
    pub(crate) unsafe fn get_mut(&self) -> CellMut<'_, T> {
        CellMut {
            ptr: self.0.get_mut(),
            _cell: std::marker::PhantomData,
        }
    }
}

impl<T> std::ops::Deref for CellMut<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: exclusive per `get_mut`'s contract, for this value's lifetime.
        unsafe { self.ptr.deref() }
    }
}

impl<T> std::ops::DerefMut for CellMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`.
        unsafe { self.ptr.deref() }
    }
}
