//! The one place concurrency primitives come from.
//!
//! Under `--cfg tls_session_cache_loom` every atomic, lock, thread-local and the
//! epoch collector are loom's (crossbeam-epoch is modeled by loom when built with
//! its `loom` feature and `--cfg crossbeam_loom`); otherwise they are std's, with
//! crossbeam-epoch's global collector. Nothing else in the crate imports
//! `std::sync` atomics/locks or `loom` directly.

pub(crate) use crossbeam_epoch::Guard;

#[cfg(not(tls_session_cache_loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

#[cfg(tls_session_cache_loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard, RwLock,
};

/// Locks a mutex, ignoring poisoning: every critical section in this crate leaves
/// its data consistent before anything that could panic, so a poisoned lock holds
/// valid data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Gives other threads a chance to finish what they are doing (a reservation that
/// is not linked yet). Under loom this is a yield point the model checker sees.
pub(crate) fn backoff() {
    #[cfg(not(tls_session_cache_loom))]
    std::thread::yield_now();
    #[cfg(tls_session_cache_loom)]
    loom::thread::yield_now();
}

/// The epoch collector a cache pins.
///
/// Normal builds use crossbeam-epoch's global collector (a cached thread-local
/// handle: pinning is a fence). Under loom a model-local `Collector` is injected
/// (models with the global collector are ~70x slower) and every pin registers a
/// fresh handle, which is correct, only slow, and fine in a model.
pub(crate) struct Epoch {
    #[cfg(tls_session_cache_loom)]
    collector: crossbeam_epoch::Collector,
}

impl Epoch {
    #[cfg(not(tls_session_cache_loom))]
    pub(crate) fn new() -> Self {
        Epoch {}
    }

    #[cfg(tls_session_cache_loom)]
    pub(crate) fn new(collector: Option<crossbeam_epoch::Collector>) -> Self {
        Epoch {
            collector: collector.unwrap_or_default(),
        }
    }

    #[inline]
    pub(crate) fn pin(&self) -> Guard {
        #[cfg(not(tls_session_cache_loom))]
        {
            crossbeam_epoch::pin()
        }
        #[cfg(tls_session_cache_loom)]
        {
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
}

impl std::fmt::Debug for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Epoch")
    }
}

/// A stripe index for this thread, used to spread counters over cache lines.
pub(crate) fn thread_stripe() -> usize {
    #[cfg(not(tls_session_cache_loom))]
    {
        use std::cell::Cell;
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        thread_local! {
            static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        STRIPE.with(|s| {
            let v = s.get();
            if v != usize::MAX {
                return v;
            }
            let v = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            s.set(v);
            v
        })
    }
    #[cfg(tls_session_cache_loom)]
    {
        0
    }
}
