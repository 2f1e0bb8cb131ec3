//! Shared by the fuzz targets: empty crossbeam-epoch's garbage at the end of
//! each input.

/// Runs the epoch's deferred functions of this input now, so that every input
/// frees what it allocated. The cache hands the weak reference of every session
/// it unlinks to crossbeam-epoch's global collector; left there, the input's
/// sessions outlive it, libFuzzer sees more mallocs than frees and re-runs the
/// input under a full LeakSanitizer scan of the heap (with ASan's quarantine,
/// hundreds of MB: this was most of the target's time).
///
/// Each round moves this thread's bag (never empty: a no-op is deferred) to the
/// global queue, advances the epoch (this is the only thread, re-pinned in the
/// current epoch) and frees the bags two epochs old. `repin` keeps the pin count
/// still: a plain `pin()` collects on every 128th pin, which would leave the
/// queue in another phase on some inputs (one node more or less: a needless leak
/// scan). After three rounds the collector is back in the same state whatever
/// the input did, so mallocs and frees balance exactly.
pub fn collect_garbage() {
    let mut guard = crossbeam_epoch::pin();
    for _ in 0..4 {
        guard.repin();
        guard.defer(|| ());
        guard.flush();
    }
}
