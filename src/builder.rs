//! Configuration of a [`SessionCache`].

use crate::clock::{Clock, ClockSrc};
use crate::{CacheMode, SessionCache, SessionStore};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// OpenSSL's default cache size (`SSL_SESSION_CACHE_MAX_SIZE_DEFAULT`).
pub const DEFAULT_CAPACITY: usize = 20_480;
/// OpenSSL's documented default session timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Builds a [`SessionCache`]; every setting has OpenSSL's default.
///
/// ```
/// use std::time::Duration;
/// use tls_session_cache::{CacheMode, ManualClock, SessionCache};
///
/// let clock = ManualClock::new(1_700_000_000);
/// let cache: SessionCache<Vec<u8>> = SessionCache::builder()
///     .capacity(20_480)
///     .timeout(Duration::from_secs(300))
///     .mode(CacheMode::SERVER | CacheMode::UPDATE_TIME)
///     .clock(clock.clone())
///     .build();
/// assert_eq!(cache.capacity(), 20_480);
/// ```
#[must_use = "a builder does nothing until .build() is called"]
pub struct Builder<P> {
    pub(crate) capacity: usize,
    pub(crate) timeout: Duration,
    pub(crate) mode: CacheMode,
    pub(crate) clock: ClockSrc,
    pub(crate) store: Option<Arc<dyn SessionStore<P>>>,
    pub(crate) shards: Option<usize>,
    #[cfg(tls_session_cache_loom)]
    pub(crate) collector: Option<crossbeam_epoch::Collector>,
}

impl<P> Default for Builder<P> {
    fn default() -> Self {
        Builder {
            capacity: DEFAULT_CAPACITY,
            timeout: DEFAULT_TIMEOUT,
            mode: CacheMode::SERVER,
            clock: ClockSrc::System,
            store: None,
            shards: None,
            #[cfg(tls_session_cache_loom)]
            collector: None,
        }
    }
}

impl<P> Builder<P> {
    /// The most sessions held at once; 0 means unlimited. Default 20 480.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The lifetime of sessions that have no timeout of their own. Default 300 s.
    /// Whole seconds count; `Duration::MAX` means never.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The cache mode (OpenSSL's bits). Default [`CacheMode::SERVER`].
    pub fn mode(mut self, mode: CacheMode) -> Self {
        self.mode = mode;
        self
    }

    /// The time source. Default: the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = ClockSrc::of(clock);
        self
    }

    /// An external store whose callbacks the cache fires (see [`SessionStore`]).
    pub fn store(mut self, store: impl SessionStore<P> + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Like [`store`](Self::store), for a store shared with other code.
    pub fn store_arc(mut self, store: Arc<dyn SessionStore<P>>) -> Self {
        self.store = Some(store);
        self
    }

    /// The number of map shards (rounded up to a power of two, 2 to 65 536).
    /// Each shard is also an eviction partition (its own slice of the eviction
    /// order, published in two atomics): an eviction reads every partition's
    /// published minimum without locking and takes only the winner's shard
    /// write lock. More shards spread lock contention at a small scan cost
    /// (with more than 8, the scan reads a summary per group of 8 first).
    /// Default: four per available core, as dashmap's own default.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The number of eviction partitions: the same number as `shards` (each map
    /// shard is one partition), so this sets the shard count; the last of the
    /// two calls wins. Kept for callers of earlier versions, where partitions
    /// and shards were counted apart.
    pub fn partitions(self, partitions: usize) -> Self {
        self.shards(partitions)
    }

    /// Under the loom cfg only: the model-local epoch collector to use.
    #[cfg(tls_session_cache_loom)]
    pub fn collector(mut self, collector: crossbeam_epoch::Collector) -> Self {
        self.collector = Some(collector);
        self
    }
}

impl<P: Send + Sync + 'static> Builder<P> {
    /// Builds the cache.
    pub fn build(self) -> SessionCache<P> {
        SessionCache::from_builder(self)
    }
}

impl<P> fmt::Debug for Builder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("capacity", &self.capacity)
            .field("timeout", &self.timeout)
            .field("mode", &self.mode)
            .field("store", &self.store.is_some())
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}
