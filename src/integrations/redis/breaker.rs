//! The circuit breaker in front of every Redis call.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Closed while `failures < threshold`; then open until `open_until`; then
/// half-open: one probe call at a time (`probing`) decides.
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

    /// Whether a call may go to Redis now: a [`Permit`] to report its outcome
    /// with (the probe's, when half-open).
    pub(super) fn admit(&self) -> Option<Permit<'_>> {
        let probe = self.admit_raw()?;
        Some(Permit {
            breaker: self,
            probe,
            settled: false,
        })
    }

    /// `Some(true)` if the call is the probe.
    fn admit_raw(&self) -> Option<bool> {
        if self.failures.load(Ordering::Acquire) < self.threshold {
            return Some(false);
        }
        if self.now_us() < self.open_until.load(Ordering::Acquire) {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| true)
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
        let probe = |p: &Option<Permit<'_>>| p.as_ref().map(|p| p.probe);
        let p = b.admit();
        assert_eq!(probe(&p), Some(false));
        assert!(!p.unwrap().failure());
        assert!(b.admit().unwrap().failure()); // threshold reached: open
        assert!(b.admit().is_none());
        std::thread::sleep(Duration::from_millis(40));
        let p = b.admit();
        assert_eq!(probe(&p), Some(true)); // the probe
        assert!(b.admit().is_none()); // only one at a time
        assert!(p.unwrap().failure()); // reopened, backoff doubled
        assert!(b.admit().is_none());
        std::thread::sleep(Duration::from_millis(70));
        let p = b.admit();
        assert_eq!(probe(&p), Some(true));
        p.unwrap().success();
        assert!(!b.is_open());
        assert_eq!(probe(&b.admit()), Some(false));
    }

    #[test]
    fn an_unreported_probe_counts_as_a_failure() {
        let b = Breaker::new(1, Duration::from_millis(10), Duration::from_millis(10));
        assert!(b.admit().unwrap().failure());
        std::thread::sleep(Duration::from_millis(20));
        let p = b.admit().unwrap();
        assert!(p.probe);
        drop(p); // as when the call panics
        assert!(b.is_open());
        std::thread::sleep(Duration::from_millis(20));
        let p = b.admit().expect("probing again, not wedged");
        assert!(p.probe);
        p.success();
        assert!(!b.is_open());
    }
}
