//! Normal builds: std's atomics and locks, crossbeam-epoch's global collector.

pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

/// Gives other threads a chance to finish what they are doing (a reservation that
/// is not linked yet).
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

/// The default number of map shards and eviction partitions for this machine.
pub(crate) fn default_shards_and_parts() -> (usize, usize) {
    let cores = cores();
    (cores * 4, cores.next_power_of_two().clamp(4, 64))
}

/// A random seed (std's randomly keyed hasher, hashing a counter).
pub(crate) fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    static N: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(N.fetch_add(1, Ordering::Relaxed))
}

/// The available parallelism, read once per process (it reads cgroup files).
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(4, |n| n.get()))
}
