//! The one place concurrency primitives come from.
//!
//! The loom cfg (`--cfg tls_session_cache_loom`) is switched **once**, here: the
//! std flavour (`std_impl.rs`: std atomics and locks, crossbeam-epoch's global
//! collector) or the loom flavour (`loom_impl.rs`: loom's atomics and locks, a
//! model-local collector; crossbeam-epoch itself is modeled when built with its
//! `loom` feature and `--cfg crossbeam_loom`). Nothing else in the crate imports
//! `std::sync` atomics/locks or `loom` directly (tokio's `src/loom/` layout).

#[cfg(not(tls_session_cache_loom))]
mod std_impl;
#[cfg(not(tls_session_cache_loom))]
pub(crate) use std_impl::*;

#[cfg(tls_session_cache_loom)]
mod loom_impl;
#[cfg(tls_session_cache_loom)]
pub(crate) use loom_impl::*;

pub(crate) use crossbeam_epoch::Guard;

/// Locks a mutex, ignoring poisoning: every critical section in this crate leaves
/// its data consistent before anything that could panic, so a poisoned lock holds
/// valid data.
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::fmt::Debug for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Epoch")
    }
}
