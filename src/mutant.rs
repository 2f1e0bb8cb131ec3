//! Planted bugs for the loom mutant tests (`loom-tests/mutants.sh`), in one place.
//!
//! Each constant is `true` only under its `--cfg tls_session_cache_mutant=...`,
//! never in normal builds; the code reads them as ordinary `if`s, so the hot paths
//! carry no `cfg` blocks and the optimizer removes the dead branch.

/// A replace trusts the pointer it saw before taking the partition mutex (check,
/// then act) instead of the one it swapped out under the mutex.
pub(crate) const SLOT_LOAD_STORE: bool = cfg!(tls_session_cache_mutant = "slot_load_store");

/// A new id's eviction entry is filed after the shard write lock that linked it
/// was released (a second step), instead of in the same critical section.
pub(crate) const ORDER_AFTER_POINTER: bool = cfg!(tls_session_cache_mutant = "order_after_pointer");

/// The capacity check and the increment are two steps instead of one CAS.
pub(crate) const CAPACITY_CHECK_THEN_ACT: bool =
    cfg!(tls_session_cache_mutant = "capacity_check_then_act");

/// The cache's strong reference is dropped before the unlink.
pub(crate) const RELEASE_BEFORE_UNLINK: bool =
    cfg!(tls_session_cache_mutant = "release_before_unlink");

/// A replace (under the shard *read* lock, which other replacers share) takes
/// its partition as if it held the shard write lock: without the partition
/// mutex.
pub(crate) const READ_LOCK_AS_EXCLUSIVE: bool =
    cfg!(tls_session_cache_mutant = "read_lock_as_exclusive");

/// The re-add of a store's answer skips the removal log: a `remove` of the id
/// between the store's answer and the add is undone (OpenSSL's window).
pub(crate) const STORE_READD_UNCHECKED: bool =
    cfg!(tls_session_cache_mutant = "store_readd_unchecked");

/// The waiting path of that re-add (`Raw::add_waiting`) skips the removal log
/// when it links (its first critical section still checks): a removal between
/// the two critical sections is undone.
pub(crate) const STORE_READD_FALLBACK_UNCHECKED: bool =
    cfg!(tls_session_cache_mutant = "store_readd_fallback_unchecked");

/// That re-add ignores removals in flight at the lookup's start (unlinked, their
/// remove callback not returned): the store may still answer the session.
pub(crate) const STORE_READD_IGNORES_IN_FLIGHT: bool =
    cfg!(tls_session_cache_mutant = "store_readd_ignores_in_flight");

/// A lookup's removal mark reads the log with Relaxed loads instead of Acquire:
/// it can count a removal without seeing that the removal is still in flight.
pub(crate) const MARK_RELAXED: bool = cfg!(tls_session_cache_mutant = "mark_relaxed");
