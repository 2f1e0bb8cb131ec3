//! Time sources, in whole Unix seconds (OpenSSL's resolution).

use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time in Unix seconds.
///
/// The cache asks it for "now" when checking expiry, stamping times
/// ([`CacheMode::UPDATE_TIME`](crate::CacheMode::UPDATE_TIME)) and auto-flushing.
/// A clock may go backwards; the cache never panics or overflows because of it.
pub trait Clock: Send + Sync + 'static {
    /// The current time in seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// The system's wall clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        system_now()
    }
}

/// The wall clock in whole seconds. On Linux `CLOCK_REALTIME_COARSE`: the time of
/// the last kernel tick, read from the vDSO without `rdtsc` (whole seconds are all
/// the cache needs; its measured share of a lookup is in `docs/DESIGN.md`).
/// Elsewhere `SystemTime::now()`.
#[inline]
pub(crate) fn system_now() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME_COARSE exists
        // on every Linux since 2.6.32. On failure `ts` stays zero (reads as 0).
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        if rc == 0 {
            // A clock before 1970 reads as 0 rather than wrapping.
            return u64::try_from(ts.tv_sec).unwrap_or(0);
        }
    }
    // A system clock before 1970 reads as 0 rather than panicking.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The cache's time source: the system clock read inline (no virtual call), or a
/// caller's clock through its trait object.
#[derive(Clone)]
pub(crate) enum ClockSrc {
    System,
    Custom(Arc<dyn Clock>),
}

impl ClockSrc {
    /// The source for a clock given to the builder: `SystemClock` is recognized
    /// and read inline.
    pub(crate) fn of<C: Clock>(clock: C) -> Self {
        if std::any::TypeId::of::<C>() == std::any::TypeId::of::<SystemClock>() {
            ClockSrc::System
        } else {
            ClockSrc::Custom(Arc::new(clock))
        }
    }

    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match self {
            ClockSrc::System => system_now(),
            ClockSrc::Custom(c) => c.now(),
        }
    }
}

/// A clock that only moves when told to: for tests and simulations.
///
/// Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use tls_session_cache::{Clock, ManualClock};
///
/// let clock = ManualClock::new(1_000);
/// let other = clock.clone();
/// other.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), 1_005);
/// clock.set(10);
/// assert_eq!(other.now(), 10);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `unix_secs`.
    pub fn new(unix_secs: u64) -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(unix_secs)),
        }
    }

    /// The current reading (also available through [`Clock::now`]).
    pub fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    /// Sets the time (it may go backwards).
    pub fn set(&self, unix_secs: u64) {
        self.now.store(unix_secs, Ordering::SeqCst);
    }

    /// Moves the time forward by whole seconds of `by`, saturating at `u64::MAX`.
    pub fn advance(&self, by: Duration) {
        let secs = by.as_secs();
        let mut cur = self.now.load(Ordering::SeqCst);
        loop {
            match self.now.compare_exchange_weak(
                cur,
                cur.saturating_add(secs),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return,
                Err(v) => cur = v,
            }
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        ManualClock::now(self)
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_saturates() {
        let c = ManualClock::new(u64::MAX - 1);
        c.advance(Duration::MAX);
        assert_eq!(c.now(), u64::MAX);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > 1_577_836_800);
    }

    #[test]
    fn coarse_clock_agrees_with_system_time() {
        let fine = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let coarse = system_now();
        // The coarse clock lags by at most a tick (a few ms): within a second.
        assert!(
            coarse + 1 >= fine && coarse <= fine + 1,
            "{coarse} vs {fine}"
        );
        assert!(matches!(ClockSrc::of(SystemClock), ClockSrc::System));
        assert!(matches!(
            ClockSrc::of(ManualClock::new(5)),
            ClockSrc::Custom(_)
        ));
        assert_eq!(ClockSrc::of(ManualClock::new(5)).now(), 5);
    }
}
