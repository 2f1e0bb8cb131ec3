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

/// A stripe index for this thread (threads get consecutive indices in creation
/// order), used to spread counters over cache lines.
#[inline]
pub(crate) fn thread_stripe() -> usize {
    use std::cell::Cell;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT.fetch_add(1, Ordering::Relaxed);
        s.set(v);
        v
    })
}

/// The default number of map shards and eviction partitions for this machine.
pub(crate) fn default_shards_and_parts() -> (usize, usize) {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cores * 4, cores.next_power_of_two().clamp(4, 64))
}
