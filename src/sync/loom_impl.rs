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

/// Two shards and two partitions: enough for cross-shard races, small state space.
pub(crate) fn default_shards_and_parts() -> (usize, usize) {
    (2, 2)
}

/// A fixed seed: models must be deterministic.
pub(crate) fn random_seed() -> u64 {
    0x5EED
}
