//! The circuit breaker in front of every Redis call.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Closed while `failures < threshold`; then open: lookups are skipped (a
/// handshake never pays for probing a failing server). Once `open_until` has
/// passed, one background probe at a time (`probing`, the writer thread's
/// `PING`) decides: success closes it, failure reopens it with a doubled
/// back-off. Any call that succeeds meanwhile (the writer's batches) closes it
/// too.
pub(super) struct Breaker {
    epoch: Instant,
    threshold: u32,
    initial_backoff_us: u64,
    max_backoff_us: u64,
    failures: AtomicU32,
    /// Microseconds since `epoch`.
    open_until: AtomicU64,
    backoff_us: AtomicU64,
    probing: AtomicBool,
}

impl Breaker {
    pub(super) fn new(threshold: u32, backoff: Duration, max: Duration) -> Self {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Breaker {
            epoch: Instant::now(),
            threshold,
            initial_backoff_us: us(backoff),
            max_backoff_us: us(max),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            backoff_us: AtomicU64::new(us(backoff)),
            probing: AtomicBool::new(false),
        }
    }

    pub(super) fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether a lookup may go to Redis now (the breaker is closed): a
    /// [`Permit`] to report its outcome with. An open breaker admits no lookup,
    /// even once its back-off has passed: probing is [`admit_probe`]'s.
    ///
    /// [`admit_probe`]: Self::admit_probe
    pub(super) fn admit(&self) -> Option<Permit<'_>> {
        if self.failures.load(Ordering::Acquire) >= self.threshold {
            return None;
        }
        Some(Permit {
            breaker: self,
            probe: false,
            settled: false,
        })
    }

    /// The probe's permit, if the breaker is open, its back-off has passed and no
    /// other probe runs (for a background thread, never for a handshake).
    pub(super) fn admit_probe(&self) -> Option<Permit<'_>> {
        if self.failures.load(Ordering::Acquire) < self.threshold
            || self.now_us() < self.open_until.load(Ordering::Acquire)
        {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(Permit {
            breaker: self,
            probe: true,
            settled: false,
        })
    }

    /// How long until a probe is due: `None` while the breaker is closed.
    pub(super) fn probe_due_in(&self) -> Option<Duration> {
        if !self.is_open() {
            return None;
        }
        let until = self.open_until.load(Ordering::Acquire);
        Some(Duration::from_micros(until.saturating_sub(self.now_us())))
    }

    /// A call outside the breaker (the writer's batch) reached Redis: close it.
    pub(super) fn succeeded_elsewhere(&self) {
        if self.failures.load(Ordering::Acquire) != 0 {
            self.success(false);
        }
    }

    fn success(&self, probe: bool) {
        if self.failures.swap(0, Ordering::AcqRel) != 0 {
            self.backoff_us
                .store(self.initial_backoff_us, Ordering::Release);
        }
        if probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    /// Returns whether the breaker (re)opened.
    fn failure(&self, probe: bool) -> bool {
        let f = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let opened = if probe || f == self.threshold {
            let backoff = if probe {
                let b = self.backoff_us.load(Ordering::Acquire);
                let next = b.saturating_mul(2).min(self.max_backoff_us);
                self.backoff_us.store(next, Ordering::Release);
                next
            } else {
                self.backoff_us.load(Ordering::Acquire)
            };
            self.open_until
                .store(self.now_us().saturating_add(backoff), Ordering::Release);
            true
        } else {
            false
        };
        if probe {
            self.probing.store(false, Ordering::Release);
        }
        opened
    }

    pub(super) fn is_open(&self) -> bool {
        self.failures.load(Ordering::Acquire) >= self.threshold
    }
}

/// One admitted call. Report its outcome with [`success`](Self::success) or
/// [`failure`](Self::failure); a permit dropped unreported (the call panicked)
/// counts as a failure, so a probe that panics cannot leave the breaker
/// half-open with its `probing` flag set forever.
pub(super) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

impl Permit<'_> {
    /// The call succeeded: the breaker closes.
    pub(super) fn success(mut self) {
        self.settled = true;
        self.breaker.success(self.probe);
    }

    /// The call failed; returns whether the breaker (re)opened.
    pub(super) fn failure(mut self) -> bool {
        self.settled = true;
        self.breaker.failure(self.probe)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.failure(self.probe);
        }
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_backs_off_and_probes_once() {
        let b = Breaker::new(2, Duration::from_millis(30), Duration::from_millis(100));
        assert!(b.admit_probe().is_none(), "closed: nothing to probe");
        assert_eq!(b.probe_due_in(), None);
        let p = b.admit();
        assert!(!p.as_ref().unwrap().probe);
        assert!(!p.unwrap().failure());
        assert!(b.admit().unwrap().failure()); // threshold reached: open
        assert!(b.admit().is_none());
        assert!(b.admit_probe().is_none(), "not before the back-off");
        assert!(b.probe_due_in().unwrap() <= Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.admit().is_none(), "a lookup never probes");
        assert_eq!(b.probe_due_in(), Some(Duration::ZERO));
        let p = b.admit_probe().expect("the probe");
        assert!(p.probe);
        assert!(b.admit_probe().is_none()); // only one at a time
        assert!(p.failure()); // reopened, backoff doubled
        assert!(b.admit().is_none() && b.admit_probe().is_none());
        std::thread::sleep(Duration::from_millis(70));
        assert!(b.admit().is_none());
        b.admit_probe().expect("the second probe").success();
        assert!(!b.is_open());
        assert!(!b.admit().unwrap().probe);
    }

    #[test]
    fn an_unreported_probe_counts_as_a_failure() {
        let b = Breaker::new(1, Duration::from_millis(10), Duration::from_millis(10));
        assert!(b.admit().unwrap().failure());
        std::thread::sleep(Duration::from_millis(20));
        let p = b.admit_probe().unwrap();
        assert!(p.probe);
        drop(p); // as when the call panics
        assert!(b.is_open());
        std::thread::sleep(Duration::from_millis(20));
        let p = b.admit_probe().expect("probing again, not wedged");
        p.success();
        assert!(!b.is_open());
    }

    #[test]
    fn a_success_elsewhere_closes_it() {
        let b = Breaker::new(1, Duration::from_secs(60), Duration::from_secs(60));
        assert!(b.admit().unwrap().failure());
        assert!(b.is_open() && b.admit().is_none());
        b.succeeded_elsewhere();
        assert!(!b.is_open());
        assert!(b.admit().is_some());
    }
}
