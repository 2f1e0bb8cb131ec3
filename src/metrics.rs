//! The cache's statistics through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`).
//!
//! The library only *publishes*: the application installs the exporter it wants
//! (Prometheus, StatsD, OpenTelemetry, ...) as the `metrics` recorder. Nothing is
//! counted twice: the handshake path bumps only the cache's own per-thread
//! counters, and a [`MetricsReporter`] reads [`Stats`] snapshots when asked
//! ([`report`](MetricsReporter::report), e.g. just before an exporter renders a
//! scrape) or on a timer ([`spawn`](MetricsReporter::spawn)), publishing them with
//! `Counter::absolute` and `Gauge::set`.
//!
//! Every metric carries the label `cache="NAME"`, the name given at
//! registration, so several caches in one process stay apart. `docs/METRICS.md`
//! lists every metric, its meaning and what to alert on.
//!
//! ```
//! use std::sync::Arc;
//! use tls_session_cache::{metrics::MetricsReporter, Session, SessionCache};
//!
//! let cache: Arc<SessionCache<Vec<u8>>> = Arc::new(SessionCache::builder().capacity(1_000).build());
//! let reporter = MetricsReporter::new();
//! reporter.register("https", &cache)?;
//!
//! let s = Arc::new(Session::new(b"id", b"", b"state".to_vec())?);
//! cache.add(&s);
//! cache.get(b"id", b"");
//!
//! // With an exporter installed as the recorder: publish, then render.
//! reporter.report();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The Redis tier, and other sources
//!
//! With the `redis` feature, [`MetricsReporter::register_redis`] publishes a
//! `RedisStore`'s [`RedisStats`](crate::RedisStats) ([`redis_samples`]: hits,
//! misses, rejected, errors, timeouts, skipped, pending-delete misses, breaker
//! trips, the write queue's
//! depth, queued, dropped and written, and the lookup latency as a Prometheus-style
//! histogram `tls_session_cache_redis_lookup_microseconds_{bucket,sum,count}`).
//! Sources other than a [`Stats`] snapshot plug in with
//! [`MetricsReporter::register_fn`]: a closure returning [`Sample`]s, read at each
//! report like the built-in ones.

use crate::{SessionCache, Stats};
use ::metrics::{Label, SharedString};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// The prefix of every metric name.
pub const PREFIX: &str = "tls_session_cache_";
/// The label naming the cache (the name given at registration).
pub const CACHE_LABEL: &str = "cache";
/// The label of [`EVICTIONS`] saying why sessions left.
pub const CAUSE_LABEL: &str = "cause";

/// Counter: lookups that returned a session ([`Stats::hits`]).
pub const HITS: &str = "tls_session_cache_hits_total";
/// Counter: lookups that found nothing ([`Stats::misses`]).
pub const MISSES: &str = "tls_session_cache_misses_total";
/// Counter: lookups that found an expired session ([`Stats::timeouts`]).
pub const TIMEOUTS: &str = "tls_session_cache_timeouts_total";
/// Counter: lookups answered by the external store's get callback
/// ([`Stats::cb_hits`]).
pub const CB_HITS: &str = "tls_session_cache_cb_hits_total";
/// Counter: store answers not added because an explicit removal of their id
/// may have raced them ([`Stats::readds_refused`]).
pub const READDS_REFUSED: &str = "tls_session_cache_readds_refused_total";
/// Counter: adds that linked a new id ([`Stats::adds`]).
pub const ADDS: &str = "tls_session_cache_adds_total";
/// Counter: adds that replaced a different session with the same id
/// ([`Stats::replaces`]).
pub const REPLACES: &str = "tls_session_cache_replaces_total";
/// Counter: explicit removals ([`Stats::removes`]).
pub const REMOVES: &str = "tls_session_cache_removes_total";
/// Counter: single-use takes that removed a session ([`Stats::takes`]).
pub const TAKES: &str = "tls_session_cache_takes_total";
/// Counter with label `cause`: `capacity` ([`Stats::cache_full`]), `expired`
/// ([`Stats::expired`]), `flushed` ([`Stats::flushed`]).
pub const EVICTIONS: &str = "tls_session_cache_evictions_total";
/// Gauge: sessions held ([`Stats::len`]).
pub const ENTRIES: &str = "tls_session_cache_entries";
/// Gauge: the size limit, 0 = unlimited ([`Stats::capacity`]).
pub const CAPACITY: &str = "tls_session_cache_capacity";

/// Anything with a [`Stats`] snapshot: [`SessionCache`] and, with the `rustls`
/// feature, `RustlsStore` (whose statistics include its
/// `take`s). Implement it for a wrapper of your own to register that.
pub trait StatsSource: Send + Sync {
    /// A snapshot of the statistics (cheap: it sums per-thread counters).
    fn stats(&self) -> Stats;
}

impl<P: Send + Sync + 'static> StatsSource for SessionCache<P> {
    fn stats(&self) -> Stats {
        SessionCache::stats(self)
    }
}

#[cfg(feature = "rustls")]
impl StatsSource for crate::RustlsStore {
    fn stats(&self) -> Stats {
        crate::RustlsStore::stats(self)
    }
}

/// What a [`Sample`] publishes.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A monotonic total, published with `Counter::absolute`.
    Counter(u64),
    /// A level, published with `Gauge::set`.
    Gauge(f64),
}

/// One value from a [`register_fn`](MetricsReporter::register_fn) source.
///
/// The name is given without the prefix: `Sample::counter("redis_hits_total", n)`
/// publishes `tls_session_cache_redis_hits_total{cache="NAME"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    name: SharedString,
    value: Value,
    labels: Vec<Label>,
}

impl Sample {
    /// A counter (a total that only grows; exporters keep the maximum seen).
    pub fn counter(name: impl Into<SharedString>, value: u64) -> Self {
        Sample {
            name: name.into(),
            value: Value::Counter(value),
            labels: Vec::new(),
        }
    }

    /// A gauge (a level that goes up and down).
    pub fn gauge(name: impl Into<SharedString>, value: f64) -> Self {
        Sample {
            name: name.into(),
            value: Value::Gauge(value),
            labels: Vec::new(),
        }
    }

    /// Adds a label besides `cache` (e.g. `("cause", "timeout")`).
    pub fn with_label(
        mut self,
        key: impl Into<SharedString>,
        value: impl Into<SharedString>,
    ) -> Self {
        self.labels.push(Label::new(key, value));
        self
    }

    /// The name without the prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value.
    pub fn value(&self) -> Value {
        self.value
    }
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterError {
    /// A live source is already registered under this name: two sources would
    /// publish one counter alternately (and exporters keep a counter's maximum).
    DuplicateName(String),
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::DuplicateName(n) => {
                write!(f, "a metrics source named {n:?} is already registered")
            }
        }
    }
}

impl std::error::Error for RegisterError {}

type SampleFn = dyn Fn() -> Option<Vec<Sample>> + Send + Sync;
type LiveFn = dyn Fn() -> bool + Send + Sync;

enum Source {
    Stats(Weak<dyn StatsSource>),
    /// Samples, and (for a source held weakly) whether it is still alive, so a
    /// dropped source's name is free again before the next report prunes it.
    Fn(Box<SampleFn>, Option<Box<LiveFn>>),
}

struct Entry {
    name: String,
    label: Label,
    source: Source,
}

impl Entry {
    fn is_live(&self) -> bool {
        match &self.source {
            Source::Stats(w) => w.strong_count() > 0,
            Source::Fn(_, live) => live.as_ref().is_none_or(|l| l()),
        }
    }
}

#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// Publishes registered sources' statistics through the `metrics` facade.
///
/// Holds only weak references to the caches: a dropped cache disappears from the
/// next report (its last values stay in the exporter until the exporter's own
/// idle timeout, if any, removes them). Cheap to share behind an `Arc`; every
/// method takes `&self`.
pub struct MetricsReporter {
    thread: Mutex<Option<(Arc<Stop>, JoinHandle<()>)>>,
    // The background thread's view of the entries: it holds this weakly, so the
    // reporter's drop ends it.
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    entries: Mutex<Vec<Arc<Entry>>>,
    /// One report pass at a time (the timer thread's and a scrape's): an older
    /// snapshot's gauges never overwrite a newer one's.
    passes: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing under these locks can be left half-updated by a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for MetricsReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsReporter {
    /// A reporter with no sources.
    pub fn new() -> Self {
        MetricsReporter {
            thread: Mutex::new(None),
            shared: Arc::new(Shared::default()),
        }
    }

    /// Registers a cache (or a `RustlsStore`, or any
    /// [`StatsSource`]) under `name`, the value of its `cache` label. The reporter
    /// keeps a weak reference: dropping the cache unregisters it.
    ///
    /// Fails if a live source already has this name.
    ///
    /// Keep one source per name for the life of the process (across certificate
    /// reloads, keep the store, as `examples/tokio_server.rs` does): counters are
    /// published with `Counter::absolute`, which exporters such as
    /// metrics-exporter-prometheus apply as a maximum, so a new source registered
    /// under a dead one's name shows the old totals until its own pass them.
    pub fn register<S: StatsSource + 'static>(
        &self,
        name: impl Into<String>,
        source: &Arc<S>,
    ) -> Result<(), RegisterError> {
        let weak: Weak<dyn StatsSource> = Arc::downgrade(source) as Weak<dyn StatsSource>;
        self.insert(name.into(), Source::Stats(weak))
    }

    /// Registers a source of arbitrary [`Sample`]s under `name` (the extension
    /// point for statistics that are not a [`Stats`], such as a Redis tier's).
    /// The closure is called at each report, outside the reporter's locks;
    /// returning `None` unregisters it (e.g. once a `Weak` it holds is gone).
    ///
    /// ```
    /// use std::sync::{atomic::{AtomicU64, Ordering}, Arc};
    /// use tls_session_cache::metrics::{MetricsReporter, Sample};
    ///
    /// let errors = Arc::new(AtomicU64::new(0));
    /// let reporter = MetricsReporter::new();
    /// let weak = Arc::downgrade(&errors);
    /// reporter.register_fn("redis", move || {
    ///     let errors = weak.upgrade()?;
    ///     Some(vec![Sample::counter("redis_errors_total", errors.load(Ordering::Relaxed))])
    /// })?;
    /// reporter.report(); // publishes tls_session_cache_redis_errors_total{cache="redis"}
    /// # Ok::<(), tls_session_cache::metrics::RegisterError>(())
    /// ```
    pub fn register_fn<F>(&self, name: impl Into<String>, f: F) -> Result<(), RegisterError>
    where
        F: Fn() -> Option<Vec<Sample>> + Send + Sync + 'static,
    {
        self.insert(name.into(), Source::Fn(Box::new(f), None))
    }

    fn insert(&self, name: String, source: Source) -> Result<(), RegisterError> {
        let mut entries = lock(&self.shared.entries);
        entries.retain(|e| e.is_live());
        if entries.iter().any(|e| e.name == name) {
            return Err(RegisterError::DuplicateName(name));
        }
        entries.push(Arc::new(Entry {
            label: Label::new(CACHE_LABEL, name.clone()),
            name,
            source,
        }));
        Ok(())
    }

    /// Registers a Redis tier's statistics under `name` (its `cache` label: use a
    /// name of its own, e.g. `"https-redis"`, next to the local cache's), held
    /// weakly like [`register`](Self::register). See [`redis_samples`] for the
    /// metrics.
    ///
    /// ```no_run
    /// use tls_session_cache::{metrics::MetricsReporter, KeyRing, RedisConfig, RedisStore};
    /// let ring = KeyRing::new(1, &KeyRing::generate_secret());
    /// let redis = RedisStore::new(RedisConfig::new("redis://127.0.0.1:6379/").key_ring(ring))?;
    /// let reporter = MetricsReporter::new();
    /// reporter.register_redis("https-redis", &redis)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn register_redis<P, C>(
        &self,
        name: impl Into<String>,
        store: &Arc<crate::RedisStore<P, C>>,
    ) -> Result<(), RegisterError>
    where
        P: 'static,
        C: crate::integrations::redis::Codec<P> + 'static,
        crate::RedisStore<P, C>: Send + Sync,
    {
        let weak = Arc::downgrade(store);
        let alive = weak.clone();
        self.insert(
            name.into(),
            Source::Fn(
                Box::new(move || Some(redis_samples(&weak.upgrade()?.stats()))),
                Some(Box::new(move || alive.strong_count() > 0)),
            ),
        )
    }

    /// Removes the source registered under `name`; returns whether there was one.
    pub fn unregister(&self, name: &str) -> bool {
        let mut entries = lock(&self.shared.entries);
        let before = entries.len();
        entries.retain(|e| e.name != name);
        entries.len() != before
    }

    /// The names of the live registered sources.
    pub fn names(&self) -> Vec<String> {
        let mut entries = lock(&self.shared.entries);
        entries.retain(|e| e.is_live());
        entries.iter().map(|e| e.name.clone()).collect()
    }

    /// Reads every live source once and publishes its values to the current
    /// `metrics` recorder (the global one, or a thread's local one). Call it just
    /// before an exporter renders a scrape.
    pub fn report(&self) {
        self.shared.report();
    }

    /// Also [`report`](Self::report)s every `interval` on a background thread
    /// (for push exporters, or when nothing calls `report` at scrape time). The
    /// thread publishes to the *global* recorder and stops when the reporter is
    /// dropped (the drop wakes and joins it). Calling `spawn` again replaces the
    /// thread (a new interval).
    ///
    /// Fails with `InvalidInput` for a zero interval, or if the thread cannot be
    /// started.
    pub fn spawn(&self, interval: Duration) -> std::io::Result<()> {
        if interval.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the metrics report interval must not be zero",
            ));
        }
        let mut thread = lock(&self.thread);
        if let Some((stop, handle)) = thread.take() {
            stop_and_join(&stop, handle);
        }
        let stop = Arc::new(Stop::default());
        let shared = Arc::downgrade(&self.shared);
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name("tls-session-cache-metrics".into())
            .spawn(move || run(&shared, &stop2, interval))?;
        *thread = Some((stop, handle));
        Ok(())
    }
}

fn run(shared: &Weak<Shared>, stop: &Stop, interval: Duration) {
    loop {
        match shared.upgrade() {
            Some(s) => s.report(),
            None => return,
        }
        let stopped = lock(&stop.stopped);
        let (stopped, _) = stop
            .wake
            .wait_timeout_while(stopped, interval, |s| !*s)
            .unwrap_or_else(PoisonError::into_inner);
        if *stopped {
            return;
        }
    }
}

fn stop_and_join(stop: &Stop, handle: JoinHandle<()>) {
    *lock(&stop.stopped) = true;
    stop.wake.notify_all();
    // A panic in the thread (a panicking recorder) has nothing left to clean up.
    let _ = handle.join();
}

impl Drop for MetricsReporter {
    fn drop(&mut self) {
        if let Some((stop, handle)) = lock(&self.thread).take() {
            stop_and_join(&stop, handle);
        }
    }
}

impl Shared {
    fn report(&self) {
        let _pass = lock(&self.passes);
        // Snapshot the list, then read the sources without the entries lock: a
        // `register_fn` closure may register or unregister sources (not report).
        let entries: Vec<Arc<Entry>> = lock(&self.entries).clone();
        let mut dead = Vec::new();
        for e in &entries {
            let published = match &e.source {
                Source::Stats(w) => w.upgrade().map(|s| publish_stats(&e.label, &s.stats())),
                Source::Fn(f, _) => f().map(|samples| publish_samples(&e.label, samples)),
            };
            if published.is_none() {
                dead.push(e.clone());
            }
        }
        if !dead.is_empty() {
            lock(&self.entries).retain(|e| !dead.iter().any(|d| Arc::ptr_eq(d, e)));
        }
    }
}

fn counter(name: &'static str, labels: Vec<Label>, v: u64) {
    ::metrics::counter!(name, labels).absolute(v);
}

fn publish_stats(cache: &Label, s: &Stats) {
    let l = || vec![cache.clone()];
    describe();
    counter(HITS, l(), s.hits);
    counter(MISSES, l(), s.misses);
    counter(TIMEOUTS, l(), s.timeouts);
    counter(CB_HITS, l(), s.cb_hits);
    counter(READDS_REFUSED, l(), s.readds_refused);
    counter(ADDS, l(), s.adds);
    counter(REPLACES, l(), s.replaces);
    counter(REMOVES, l(), s.removes);
    counter(TAKES, l(), s.takes);
    for (cause, v) in [
        ("capacity", s.cache_full),
        ("expired", s.expired),
        ("flushed", s.flushed),
    ] {
        let mut labels = l();
        labels.push(Label::from_static_parts(CAUSE_LABEL, cause));
        counter(EVICTIONS, labels, v);
    }
    // u64 -> f64 is exact up to 2^53 sessions.
    ::metrics::gauge!(ENTRIES, l()).set(s.len as f64);
    ::metrics::gauge!(CAPACITY, l()).set(s.capacity as f64);
}

/// A Redis tier's statistics as [`Sample`]s, all prefixed `redis_`: the counters
/// `redis_{hits,misses,rejected,writes,deletes,errors,timeouts,skipped,
/// pending_delete_misses,breaker_trips,connects,queued,dropped,batches}_total`, the gauge
/// `redis_queue_depth`, and the lookup latency as the counters
/// `redis_lookup_microseconds_bucket{le=..}` (cumulative, as Prometheus
/// histograms, bounds [`LOOKUP_BUCKETS_US`](crate::integrations::redis::LOOKUP_BUCKETS_US)
/// and `+Inf`), `redis_lookup_microseconds_sum` and `_count`.
#[cfg(feature = "redis")]
pub fn redis_samples(s: &crate::RedisStats) -> Vec<Sample> {
    use crate::integrations::redis::LOOKUP_BUCKETS_US;
    let mut out = vec![
        Sample::counter("redis_hits_total", s.hits),
        Sample::counter("redis_misses_total", s.misses),
        Sample::counter("redis_rejected_total", s.rejected),
        Sample::counter("redis_writes_total", s.writes),
        Sample::counter("redis_deletes_total", s.deletes),
        Sample::counter("redis_errors_total", s.errors),
        Sample::counter("redis_timeouts_total", s.timeouts),
        Sample::counter("redis_skipped_total", s.skipped),
        Sample::counter("redis_pending_delete_misses_total", s.pending_delete_misses),
        Sample::counter("redis_breaker_trips_total", s.breaker_trips),
        Sample::counter("redis_connects_total", s.connects),
        Sample::counter("redis_queued_total", s.queued),
        Sample::counter("redis_dropped_total", s.dropped),
        Sample::counter("redis_batches_total", s.batches),
        // u64 -> f64 is exact far beyond any queue's size.
        Sample::gauge("redis_queue_depth", s.queue_depth as f64),
    ];
    let mut cumulative = 0;
    for (i, n) in s.lookup_us_buckets.iter().enumerate() {
        cumulative += n;
        let le = LOOKUP_BUCKETS_US
            .get(i)
            .map_or_else(|| "+Inf".to_string(), u64::to_string);
        out.push(
            Sample::counter("redis_lookup_microseconds_bucket", cumulative).with_label("le", le),
        );
    }
    out.push(Sample::counter(
        "redis_lookup_microseconds_sum",
        s.lookup_us_sum,
    ));
    out.push(Sample::counter(
        "redis_lookup_microseconds_count",
        s.lookups(),
    ));
    out
}

fn publish_samples(cache: &Label, samples: Vec<Sample>) {
    for s in samples {
        let name = format!("{PREFIX}{}", s.name);
        let mut labels = Vec::with_capacity(s.labels.len() + 1);
        labels.push(cache.clone());
        labels.extend(s.labels);
        match s.value {
            Value::Counter(v) => ::metrics::counter!(name, labels).absolute(v),
            Value::Gauge(v) => ::metrics::gauge!(name, labels).set(v),
        }
    }
}

/// Registers the built-in metrics' help texts with the current recorder (done by
/// every report; exporters show them as `# HELP`).
fn describe() {
    use ::metrics::{describe_counter, describe_gauge, Unit};
    describe_counter!(
        HITS,
        Unit::Count,
        "Session lookups that returned a session."
    );
    describe_counter!(
        MISSES,
        Unit::Count,
        "Session lookups that found nothing in the cache (the external store may still answer)."
    );
    describe_counter!(
        TIMEOUTS,
        Unit::Count,
        "Session lookups that found an expired session."
    );
    describe_counter!(
        CB_HITS,
        Unit::Count,
        "Session lookups answered by the external store (second tier)."
    );
    describe_counter!(
        READDS_REFUSED,
        Unit::Count,
        "External store answers not cached because a removal of their id may have raced them."
    );
    describe_counter!(ADDS, Unit::Count, "Sessions added under a new id.");
    describe_counter!(
        REPLACES,
        Unit::Count,
        "Adds that replaced a different session with the same id."
    );
    describe_counter!(REMOVES, Unit::Count, "Sessions removed explicitly.");
    describe_counter!(
        TAKES,
        Unit::Count,
        "Sessions removed by a single-use take (TLS 1.3 stateful tickets)."
    );
    describe_counter!(
        EVICTIONS,
        Unit::Count,
        "Sessions the cache removed itself, by cause: capacity, expired, flushed."
    );
    describe_gauge!(ENTRIES, Unit::Count, "Sessions held.");
    describe_gauge!(
        CAPACITY,
        Unit::Count,
        "The cache's size limit in sessions (0 = unlimited)."
    );
}

impl fmt::Debug for MetricsReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsReporter")
            .field("sources", &self.names())
            .field("thread", &lock(&self.thread).is_some())
            .finish()
    }
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;

    /// A Redis tier that cannot connect (nothing listens on the port): its
    /// lookups fail, and the errors and the lookups' latency reach the metrics.
    #[cfg(feature = "redis")]
    #[test]
    fn a_redis_tier_publishes_its_counters_and_lookup_latency() {
        use crate::integrations::redis::Lookup;
        use crate::{RedisConfig, RedisStore};
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let store = RedisStore::new(
            RedisConfig::new(format!("redis://127.0.0.1:{port}/")).insecure_plaintext(),
        )
        .unwrap();
        for _ in 0..3 {
            assert!(matches!(store.fetch(b"id"), Lookup::Unavailable));
        }
        let st = store.stats();
        assert_eq!(st.lookups(), 3);
        let reporter = MetricsReporter::new();
        reporter.register_redis("edge-redis", &store).unwrap();
        let rec = DebuggingRecorder::new();
        report_into(&rec, &reporter);
        // One snapshot (taking one resets the debugging recorder's counters).
        type Row = (String, Vec<(String, String)>, DebugValue);
        let all: Vec<Row> = rec
            .snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(ck, _, _, v)| {
                let mut labels: Vec<(String, String)> = ck
                    .key()
                    .labels()
                    .map(|l| (l.key().to_string(), l.value().to_string()))
                    .collect();
                labels.sort();
                (ck.key().name().to_string(), labels, v)
            })
            .collect();
        let get = |name: &str, extra: &[(&str, &str)]| {
            let mut want: Vec<(String, String)> = extra
                .iter()
                .chain(&[("cache", "edge-redis")])
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            want.sort();
            match all.iter().find(|(n, l, _)| n == name && *l == want) {
                Some((_, _, DebugValue::Counter(v))) => *v,
                other => panic!("{name} {extra:?}: {other:?}"),
            }
        };
        assert_eq!(
            get("tls_session_cache_redis_lookup_microseconds_count", &[]),
            3
        );
        assert_eq!(
            get(
                "tls_session_cache_redis_lookup_microseconds_bucket",
                &[("le", "+Inf")]
            ),
            3
        );
        assert_eq!(
            get("tls_session_cache_redis_lookup_microseconds_sum", &[]),
            st.lookup_us_sum
        );
        // The store's background writer may count a failed probe of its own
        // between the two snapshots: the published sum lies between them.
        let after = store.stats();
        let failed = get("tls_session_cache_redis_errors_total", &[])
            + get("tls_session_cache_redis_timeouts_total", &[])
            + get("tls_session_cache_redis_skipped_total", &[]);
        assert!(
            (st.errors + st.timeouts + st.skipped..=after.errors + after.timeouts + after.skipped)
                .contains(&failed),
            "published {failed}, before {st:?}, after {after:?}"
        );
        assert!(failed >= 3, "each lookup failed or was skipped: {st:?}");
        // Cumulative buckets never decrease.
        let mut last = 0;
        for le in crate::integrations::redis::LOOKUP_BUCKETS_US {
            let v = get(
                "tls_session_cache_redis_lookup_microseconds_bucket",
                &[("le", &le.to_string())],
            );
            assert!(v >= last);
            last = v;
        }
        // Dropping the store frees its name at once (a reload that rebuilds the
        // tier can register the new one before any report pruned the old one).
        drop(store);
        assert!(reporter.names().is_empty());
        let again = RedisStore::new(
            RedisConfig::new(format!("redis://127.0.0.1:{port}/")).insecure_plaintext(),
        )
        .unwrap();
        reporter.register_redis("edge-redis", &again).unwrap();
        assert_eq!(reporter.names(), ["edge-redis"]);
    }
    use crate::{ManualClock, Session};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use metrics_util::MetricKind;

    /// Publishes once into a fresh local recorder and returns the values by
    /// (kind, name, sorted labels).
    fn report_into(rec: &DebuggingRecorder, reporter: &MetricsReporter) {
        ::metrics::with_local_recorder(rec, || reporter.report());
    }

    fn value(snap: &Snapshotter, name: &str, labels: &[(&str, &str)]) -> Option<DebugValue> {
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        snap.snapshot()
            .into_vec()
            .into_iter()
            .find_map(|(ck, _, _, v)| {
                let mut got: Vec<(String, String)> = ck
                    .key()
                    .labels()
                    .map(|l| (l.key().to_string(), l.value().to_string()))
                    .collect();
                got.sort();
                (ck.key().name() == name && got == want).then_some(v)
            })
    }

    fn counters(
        rec: &DebuggingRecorder,
        reporter: &MetricsReporter,
        cache: &str,
    ) -> std::collections::HashMap<String, u64> {
        report_into(rec, reporter);
        let mut out = std::collections::HashMap::new();
        for (ck, _, _, v) in rec.snapshotter().snapshot().into_vec() {
            let labels: Vec<_> = ck.key().labels().collect();
            if !labels
                .iter()
                .any(|l| l.key() == CACHE_LABEL && l.value() == cache)
            {
                continue;
            }
            let mut name = ck.key().name().to_string();
            if let Some(c) = labels.iter().find(|l| l.key() == CAUSE_LABEL) {
                name = format!("{name}{{cause={}}}", c.value());
            }
            let v = match (ck.kind(), v) {
                (MetricKind::Counter, DebugValue::Counter(v)) => v,
                (MetricKind::Gauge, DebugValue::Gauge(g)) => g.into_inner() as u64,
                other => panic!("unexpected {other:?}"),
            };
            out.insert(name, v);
        }
        out
    }

    fn session(id: &[u8], clock: &ManualClock) -> Arc<Session<u32>> {
        Arc::new(Session::new(id, b"ctx", 7).unwrap().with_time(clock.now()))
    }

    #[test]
    fn every_metric_follows_real_operations() {
        let clock = ManualClock::new(1_700_000_000);
        let cache: Arc<SessionCache<u32>> = Arc::new(
            SessionCache::builder()
                .capacity(4)
                .timeout(Duration::from_secs(100))
                .clock(clock.clone())
                .build(),
        );
        let reporter = MetricsReporter::new();
        reporter.register("edge", &cache).unwrap();
        let rec = DebuggingRecorder::new();

        let m = counters(&rec, &reporter, "edge");
        assert_eq!(m[HITS], 0);
        assert_eq!(m[ENTRIES], 0);
        assert_eq!(m[CAPACITY], 4);
        assert_eq!(m.len(), 14, "{m:?}");

        // Each counter ends at a different value from its neighbours, so a swap
        // of two of them is seen.
        assert!(cache.add(&session(b"a", &clock)));
        clock.advance(Duration::from_secs(10));
        for id in [b"b", b"c", b"d"] {
            assert!(cache.add(&session(id, &clock)));
        }
        assert!(cache.add(&session(b"e", &clock))); // evicts "a" (capacity)
        assert!(cache.add(&session(b"e", &clock))); // replaces
        for _ in 0..3 {
            assert!(cache.get(b"b", b"ctx").is_some());
        }
        for _ in 0..4 {
            assert!(cache.get(b"a", b"ctx").is_none());
        }
        assert!(cache.take(b"c").is_some());
        assert!(cache.take(b"d").is_some());
        let f = session(b"f", &clock);
        assert!(cache.add(&f));
        assert!(cache.remove(&f));
        clock.advance(Duration::from_secs(200));
        assert!(cache.get(b"b", b"ctx").is_none()); // expired
        assert!(cache.get(b"e", b"ctx").is_none()); // expired
        for id in [b"g", b"h", b"i"] {
            assert!(cache.add(&session(id, &clock)));
        }
        assert_eq!(cache.flush(0), 3);

        let m = counters(&rec, &reporter, "edge");
        let s = cache.stats();
        assert_eq!(m[HITS], 3);
        assert_eq!(m[MISSES], 4);
        assert_eq!(m[TIMEOUTS], 2);
        assert_eq!(m[CB_HITS], 0);
        // No store here: tests/store_readd.rs counts refusals.
        assert_eq!(m[READDS_REFUSED], 0);
        assert_eq!(m[ADDS], 9);
        assert_eq!(m[REPLACES], 1);
        assert_eq!(m[REMOVES], 1);
        assert_eq!(m[TAKES], 2);
        assert_eq!(m[&format!("{EVICTIONS}{{cause=capacity}}")], 1);
        assert_eq!(m[&format!("{EVICTIONS}{{cause=expired}}")], 2);
        assert_eq!(m[&format!("{EVICTIONS}{{cause=flushed}}")], 3);
        assert_eq!(m[ENTRIES], 0);
        assert_eq!(m[CAPACITY], 4);
        // The same numbers as the snapshot (nothing counted on the side).
        assert_eq!(
            (s.hits, s.misses, s.adds, s.evictions()),
            (m[HITS], m[MISSES], m[ADDS], 6)
        );

        assert!(cache.add(&session(b"f", &clock)));
        cache.set_capacity(50);
        let m = counters(&rec, &reporter, "edge");
        assert_eq!(m[ENTRIES], 1);
        assert_eq!(m[CAPACITY], 50);
        assert_eq!(m[ADDS], 10);
    }

    #[test]
    fn caches_are_told_apart_by_their_label() {
        let a: Arc<SessionCache<u32>> = Arc::new(SessionCache::builder().capacity(10).build());
        let b: Arc<SessionCache<u32>> = Arc::new(SessionCache::builder().capacity(20).build());
        let reporter = MetricsReporter::new();
        reporter.register("a", &a).unwrap();
        reporter.register("b", &b).unwrap();
        let clock = ManualClock::new(1);
        a.add(&session(b"x", &clock));
        for _ in 0..3 {
            b.get(b"nothing", b"ctx");
        }
        let rec = DebuggingRecorder::new();
        report_into(&rec, &reporter);
        let snap = rec.snapshotter();
        let all = snap.snapshot().into_vec();
        let find = |name: &str, cache: &str| {
            all.iter().find_map(|(ck, _, _, v)| {
                (ck.key().name() == name
                    && ck
                        .key()
                        .labels()
                        .any(|l| l.key() == "cache" && l.value() == cache))
                .then_some(v)
            })
        };
        assert_eq!(find(ADDS, "a"), Some(&DebugValue::Counter(1)));
        assert_eq!(find(ADDS, "b"), Some(&DebugValue::Counter(0)));
        assert_eq!(find(MISSES, "a"), Some(&DebugValue::Counter(0)));
        assert_eq!(find(MISSES, "b"), Some(&DebugValue::Counter(3)));
        assert_eq!(find(CAPACITY, "b"), Some(&DebugValue::Gauge(20.0.into())));
        assert_eq!(find(ENTRIES, "a"), Some(&DebugValue::Gauge(1.0.into())));
    }

    #[test]
    fn duplicate_names_are_refused_and_dropped_caches_unregister() {
        let a: Arc<SessionCache<u32>> = Arc::new(SessionCache::new());
        let reporter = MetricsReporter::new();
        reporter.register("x", &a).unwrap();
        let b: Arc<SessionCache<u32>> = Arc::new(SessionCache::new());
        assert_eq!(
            reporter.register("x", &b),
            Err(RegisterError::DuplicateName("x".into()))
        );
        assert_eq!(reporter.names(), vec!["x".to_string()]);
        drop(a);
        assert!(reporter.names().is_empty());
        reporter.register("x", &b).unwrap();
        b.get(b"id", b"");
        let rec = DebuggingRecorder::new();
        report_into(&rec, &reporter);
        assert_eq!(
            value(&rec.snapshotter(), MISSES, &[("cache", "x")]),
            Some(DebugValue::Counter(1))
        );
        assert!(reporter.unregister("x"));
        assert!(!reporter.unregister("x"));
        assert!(reporter.names().is_empty());
    }

    #[test]
    fn a_dropped_cache_is_no_longer_published() {
        let a: Arc<SessionCache<u32>> = Arc::new(SessionCache::new());
        let reporter = MetricsReporter::new();
        reporter.register("gone", &a).unwrap();
        let rec = DebuggingRecorder::new();
        a.get(b"id", b"");
        report_into(&rec, &reporter);
        let snap = rec.snapshotter();
        // The snapshot reads and resets the recorder's values...
        assert_eq!(
            value(&snap, MISSES, &[("cache", "gone")]),
            Some(DebugValue::Counter(1))
        );
        drop(a);
        report_into(&rec, &reporter);
        // ... so a value stays at the reset unless a report publishes it again.
        assert_eq!(
            value(&snap, MISSES, &[("cache", "gone")]),
            Some(DebugValue::Counter(0))
        );
    }

    #[test]
    fn register_fn_publishes_samples_until_it_returns_none() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let errors = Arc::new(AtomicU64::new(0));
        let reporter = MetricsReporter::new();
        let w = Arc::downgrade(&errors);
        reporter
            .register_fn("tier", move || {
                let e = w.upgrade()?;
                Some(vec![
                    Sample::counter("redis_errors_total", e.load(Ordering::Relaxed))
                        .with_label("kind", "timeout"),
                    Sample::gauge("redis_queue_depth", 4.0),
                ])
            })
            .unwrap();
        errors.fetch_add(5, Ordering::Relaxed);
        let rec = DebuggingRecorder::new();
        report_into(&rec, &reporter);
        let snap = rec.snapshotter();
        let all = snap.snapshot().into_vec();
        assert_eq!(all.len(), 2);
        let errors_key = all
            .iter()
            .find(|(ck, ..)| ck.key().name() == "tls_session_cache_redis_errors_total")
            .expect("published");
        let labels: Vec<_> = errors_key
            .0
            .key()
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        assert_eq!(
            labels,
            vec![
                ("cache".to_string(), "tier".to_string()),
                ("kind".to_string(), "timeout".to_string())
            ]
        );
        assert_eq!(errors_key.3, DebugValue::Counter(5));
        assert_eq!(reporter.names(), vec!["tier".to_string()]);
        drop(errors);
        report_into(&rec, &reporter);
        assert!(reporter.names().is_empty());
    }

    #[test]
    fn a_zero_interval_is_refused() {
        let reporter = MetricsReporter::new();
        let e = reporter.spawn(Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn a_rustls_store_reports_its_takes_as_hits() {
        use ::rustls::server::StoresServerSessions;
        let store = crate::RustlsStore::new(100);
        let reporter = MetricsReporter::new();
        reporter.register("tls13", &store).unwrap();
        assert!(store.put(b"ticket".to_vec(), b"state".to_vec()));
        assert!(store.take(b"ticket").is_some());
        assert!(store.take(b"ticket").is_none());
        let rec = DebuggingRecorder::new();
        let m = counters(&rec, &reporter, "tls13");
        assert_eq!(m[HITS], 1);
        assert_eq!(m[MISSES], 1);
        assert_eq!(m[TAKES], 1);
        assert_eq!(m[ADDS], 1);
        assert_eq!(m[ENTRIES], 0);
        assert_eq!(m[CAPACITY], 100);
    }
}
