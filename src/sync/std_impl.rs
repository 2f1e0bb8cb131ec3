//! Normal builds: std's atomics and locks, crossbeam-epoch's global collector.

pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

/// Gives other threads a chance to finish what they are doing (a link whose
/// place is taken, an eviction in progress).
#[inline]
pub(crate) fn backoff() {
    std::thread::yield_now();
}

/// The epoch collector a cache pins: crossbeam-epoch's global one (a cached
/// thread-local handle; pinning is one fence).
pub(crate) struct Epoch {}

impl Epoch {
    pub(crate) fn new() -> Self {
        Epoch {}
    }

    #[inline]
    pub(crate) fn pin(&self) -> crossbeam_epoch::Guard {
        crossbeam_epoch::pin()
    }
}

/// This thread's stripe index: a small number unique among the live threads of
/// the process (indices of exited threads are reused), so that a thread whose
/// index is below a cache's stripe count is the only writer of that stripe.
/// `None` while the thread-local is being destroyed (at thread exit).
#[inline]
pub(crate) fn thread_stripe() -> Option<usize> {
    THREAD_INDEX.try_with(|i| i.0).ok()
}

/// Indices handed back by exited threads. The mutex orders the last writes of a
/// thread to its stripes before the first writes of the next thread that gets its
/// index (release on push, acquire on pop).
static FREE_INDICES: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

struct ThreadIndex(usize);

impl ThreadIndex {
    fn new() -> Self {
        let reused = FREE_INDICES.lock().unwrap_or_else(|e| e.into_inner()).pop();
        ThreadIndex(reused.unwrap_or_else(|| NEXT_INDEX.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Drop for ThreadIndex {
    fn drop(&mut self) {
        FREE_INDICES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.0);
    }
}

thread_local! {
    static THREAD_INDEX: ThreadIndex = ThreadIndex::new();
}

/// Whether a thread whose stripe index is below the stripe count writes its stripe
/// alone (plain load and store instead of a read-modify-write).
pub(crate) const EXCLUSIVE_STRIPES: bool = true;

/// The default number of map shards (each one eviction partition) for this
/// machine: four per core, as dashmap's own default.
pub(crate) fn default_shards() -> usize {
    cores() * 4
}

/// The available parallelism, read once per process (it reads cgroup files).
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(4, |n| n.get()))
}

/// A cell whose exclusive access the caller proves by other means (a lock it
/// holds elsewhere): std's `UnsafeCell`. Under loom, loom's, which also checks
/// that no two accesses overlap.
pub(crate) struct ExclCell<T>(std::cell::UnsafeCell<T>);

/// Exclusive access to an `ExclCell`'s value, for as long as this lives.
pub(crate) struct CellMut<'a, T>(&'a mut T);

impl<T> ExclCell<T> {
    pub(crate) fn new(v: T) -> Self {
        ExclCell(std::cell::UnsafeCell::new(v))
    }

    /// # Safety
    /// No other access to the value may exist while the returned `CellMut` lives.
    #[inline]
    pub(crate) unsafe fn get_mut(&self) -> CellMut<'_, T> {
        // SAFETY: exclusive per the caller's contract.
        CellMut(unsafe { &mut *self.0.get() })
    }
}

impl<T> std::ops::Deref for CellMut<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.0
    }
}

impl<T> std::ops::DerefMut for CellMut<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        self.0
    }
}
