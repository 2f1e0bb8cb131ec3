//! The write queue: `SET`s and `DEL`s leave the handshake through a bounded queue
//! that one background writer drains in pipelined batches on its own connection.
//! A full queue drops the write (counted), or for a `DEL` the oldest queued
//! `SET`; nothing on a handshake waits on Redis for a write.

use super::pool::{count_error, instant_after, Conn};
use super::stats::{bump, AtomicStats};
use super::store::{Shared, GETDEL_NO, GETDEL_UNKNOWN, GETDEL_YES};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// One write.
pub(super) enum Op {
    /// `SET key value EX (expiry - now)`, the TTL computed when sent.
    Set {
        key: Vec<u8>,
        value: Zeroizing<Vec<u8>>,
        /// Unix seconds; the value is not sent once it has passed.
        expiry: u64,
    },
    /// `DEL key` for each key (a session id's key under each ring key).
    Del { keys: Vec<Vec<u8>> },
}

impl Op {
    fn keys(&self) -> impl Iterator<Item = &Vec<u8>> {
        let (one, many) = match self {
            Op::Set { key, .. } => (Some(key), &[][..]),
            Op::Del { keys } => (None, &keys[..]),
        };
        one.into_iter().chain(many)
    }
}

struct State {
    ops: VecDeque<Op>,
    /// The keys of the batch being sent.
    in_flight: Vec<Vec<u8>>,
    /// The keys of the `DEL`s in the batch being sent (still in `deleting`).
    in_flight_dels: Vec<Vec<u8>>,
    /// Every key with a `DEL` queued or being sent, with how many: Redis may
    /// still hold its value, which a lookup must not answer (the
    /// `SessionStore` contract: nothing removed is answered once
    /// `remove_session` returned).
    deleting: HashMap<Vec<u8>, usize>,
    shutdown: bool,
}

impl State {
    /// A `DEL` joined the queue: its keys are being deleted.
    fn track(&mut self, op: &Op) {
        if let Op::Del { keys } = op {
            for k in keys {
                *self.deleting.entry(k.clone()).or_insert(0) += 1;
            }
        }
    }

    /// A `DEL` of `key` left (sent, refused by the server, or given up).
    fn untrack(&mut self, key: &[u8]) {
        if let Some(n) = self.deleting.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.deleting.remove(key);
            }
        }
    }

    /// Takes up to `n` queued writes as the batch to send.
    fn start_batch(&mut self, n: usize) -> Vec<Op> {
        debug_assert!(self.in_flight_dels.is_empty(), "the last batch ended");
        let batch: Vec<Op> = self.ops.drain(..n).collect();
        self.in_flight = batch.iter().flat_map(Op::keys).cloned().collect();
        self.in_flight_dels = batch
            .iter()
            .filter(|op| matches!(op, Op::Del { .. }))
            .flat_map(Op::keys)
            .cloned()
            .collect();
        batch
    }

    /// The batch being sent is done with: sent, refused, given up, or lost
    /// with a writer that panicked.
    fn end_batch(&mut self) {
        self.in_flight.clear();
        for k in std::mem::take(&mut self.in_flight_dels) {
            self.untrack(&k);
        }
    }

    /// Drops every queued write (given up at shutdown).
    fn clear_ops(&mut self) {
        let ops = std::mem::take(&mut self.ops);
        for op in &ops {
            if let Op::Del { keys } = op {
                for k in keys {
                    self.untrack(k);
                }
            }
        }
    }
}

/// Where a `SET` for a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Withdrawn {
    /// It was still queued: taken out, Redis never saw it.
    Queued,
    /// It is being sent now: Redis may or may not have it yet.
    InFlight,
    /// Not queued (sent, dropped, or never written).
    No,
}

/// The bounded queue between the handshakes and the writer.
pub(super) struct Queue {
    state: Mutex<State>,
    /// The writer waits here for work.
    work: Condvar,
    /// Flushers wait here for the queue to drain.
    idle: Condvar,
    capacity: usize,
}

impl Queue {
    /// Wakes the writer to look at its timers again (the breaker just opened: a
    /// probe is now due after the back-off). Under the lock, so a writer about
    /// to wait cannot miss it.
    pub(super) fn wake_writer(&self) {
        let _st = self.lock();
        self.work.notify_one();
    }

    pub(super) fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                ops: VecDeque::new(),
                in_flight: Vec::new(),
                in_flight_dels: Vec::new(),
                deleting: HashMap::new(),
                shutdown: false,
            }),
            work: Condvar::new(),
            idle: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn gauge(st: &State, stats: &AtomicStats) {
        let depth = st.ops.len() + st.in_flight.len();
        stats
            .queue_depth
            .store(u64::try_from(depth).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Queues `op`; `false` (and counted in `dropped`) if the queue is full.
    /// A `DEL` that finds the queue full takes the place of the oldest queued
    /// `SET` (that `SET` is counted in `dropped`): a lost `SET` costs another
    /// server a full handshake, a lost `DEL` lets the fleet resume a session
    /// this server removed. A `DEL` is dropped only when every queued write is
    /// a `DEL`. Never blocks beyond the queue's mutex.
    pub(super) fn push(&self, op: Op, stats: &AtomicStats) -> bool {
        let mut st = self.lock();
        let full = st.ops.len() >= self.capacity;
        // Only when full, so only a server already behind on its writes scans.
        let displaced = match op {
            Op::Del { .. } if full && !st.shutdown => {
                st.ops.iter().position(|o| matches!(o, Op::Set { .. }))
            }
            _ => None,
        };
        if st.shutdown || (full && displaced.is_none()) {
            drop(st);
            bump(&stats.dropped);
            return false;
        }
        if let Some(i) = displaced {
            st.ops.remove(i);
            bump(&stats.dropped);
        }
        st.track(&op);
        st.ops.push_back(op);
        Self::gauge(&st, stats);
        drop(st);
        bump(&stats.queued);
        self.work.notify_one();
        true
    }

    /// Takes a queued `SET` of `key` out of the queue (a single-use ticket that
    /// is taken before it was shared never reaches Redis), or says whether one
    /// is being sent.
    pub(super) fn withdraw_set(&self, key: &[u8], stats: &AtomicStats) -> Withdrawn {
        let mut st = self.lock();
        if let Some(i) = st
            .ops
            .iter()
            .position(|op| matches!(op, Op::Set { key: k, .. } if k == key))
        {
            st.ops.remove(i);
            Self::gauge(&st, stats);
            if st.ops.is_empty() && st.in_flight.is_empty() {
                self.idle.notify_all();
            }
            return Withdrawn::Queued;
        }
        if st.in_flight.iter().any(|k| k == key) {
            Withdrawn::InFlight
        } else {
            Withdrawn::No
        }
    }

    /// Whether a `DEL` of one of `keys` is queued or being sent.
    pub(super) fn deleting(&self, keys: &[Vec<u8>]) -> bool {
        let st = self.lock();
        keys.iter().any(|k| st.deleting.contains_key(k.as_slice()))
    }

    /// Whether the batch being sent holds `key` (tests).
    #[cfg(test)]
    pub(super) fn sending(&self, key: &[u8]) -> bool {
        self.lock().in_flight.iter().any(|k| k == key)
    }

    /// Waits until every queued write was sent (acknowledged or given up at
    /// shutdown), at most `timeout`. Returns whether the queue drained.
    pub(super) fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = instant_after(timeout);
        let mut st = self.lock();
        while !(st.ops.is_empty() && st.in_flight.is_empty()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .idle
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Tells the writer to stop once the queue is empty; while its batches keep
    /// failing it stops at once, and the writes still queued are given up.
    pub(super) fn shutdown(&self) {
        self.lock().shutdown = true;
        self.work.notify_all();
    }

    /// Sleeps `d` unless shut down first; returns whether shut down.
    fn sleep(&self, d: Duration) -> bool {
        let st = self.lock();
        if st.shutdown {
            return true;
        }
        let (st, _) = self
            .work
            .wait_timeout_while(st, d, |st| !st.shutdown)
            .unwrap_or_else(|e| e.into_inner());
        st.shutdown
    }
}

/// The writer thread's body: [`run_writer`], started again if it panics (a bug;
/// counted in `errors`), so the queue never stops draining.
pub(super) fn run_writer_catching(shared: Arc<Shared>) {
    // A writer that panics at once again must not restart in a hot loop.
    let mut backoff = Duration::from_millis(10);
    loop {
        let s = Arc::clone(&shared);
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_writer(s))).is_ok() {
            return;
        }
        bump(&shared.stats.errors);
        let mut st = shared.queue.lock();
        st.end_batch();
        Queue::gauge(&st, &shared.stats);
        if st.ops.is_empty() {
            shared.queue.idle.notify_all();
        }
        if st.shutdown {
            return;
        }
        drop(st);
        if shared.queue.sleep(backoff) {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Asks the server whether it has `GETDEL` (Redis >= 6.2). If the question
/// fails other than by the server's refusal (an I/O error, a timeout), the
/// connection is dropped: a late reply would be read as the next pipeline's.
fn detect_getdel(shared: &Shared, conn: &mut Option<Conn>) {
    if shared.getdel.load(Ordering::Relaxed) != GETDEL_UNKNOWN {
        return;
    }
    let Some(c) = conn.as_mut() else {
        return;
    };
    let info: redis::RedisResult<Vec<redis::Value>> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("GETDEL")
        .query(c.as_dyn());
    match info {
        Ok(v) => {
            let known = matches!(v.first(), Some(x) if *x != redis::Value::Nil);
            shared.getdel.store(
                if known { GETDEL_YES } else { GETDEL_NO },
                Ordering::Relaxed,
            );
        }
        // A whole reply was read (the server refused `COMMAND`, say by an ACL):
        // the connection is in step; a take that gets "unknown command" learns.
        Err(e) if refused_by_server(&e) => {}
        Err(_) => *conn = None,
    }
}

/// Whether `e` is the server's answer refusing a command (`OOM`, `READONLY`,
/// `NOPERM`, a wrong type...): final for the batch that got it, which is then
/// dropped (sending it again would get the same answer, ahead of every later
/// write). I/O errors, timeouts, redirects and the transient cluster states
/// (`TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING`) are not: the batch is
/// sent again. Nor is `BUSY` (a script or function running past
/// `busy-reply-threshold`): the server refused every command then, and will
/// take them once it is done.
pub(super) fn refused_by_server(e: &redis::RedisError) -> bool {
    use redis::ErrorKind as K;
    if e.code() == Some("BUSY") {
        return false;
    }
    matches!(
        e.kind(),
        K::ResponseError
            | K::ExtensionError
            | K::ReadOnly
            | K::ExecAbortError
            | K::NoScriptError
            | K::CrossSlot
            | K::TypeError
    )
}

/// When the writer resolves the names next.
fn resolve_every(cfg: &super::config::RedisConfig, resolved: bool) -> Duration {
    if resolved {
        cfg.resolve_interval
    } else {
        cfg.resolve_interval.min(Duration::from_secs(1))
    }
}

/// Connects (if `GETDEL` support is still unknown and there is no connection)
/// and asks whether the server has `GETDEL`.
fn detect(shared: &Shared, conn: &mut Option<Conn>) {
    let cfg = &shared.config;
    if shared.getdel.load(Ordering::Relaxed) == GETDEL_UNKNOWN && conn.is_none() {
        if let Ok(c) = shared.link.connect(&shared.stats, cfg.writer_timeout) {
            if c.set_timeouts(cfg.writer_timeout).is_ok() {
                *conn = Some(c);
            }
        }
    }
    detect_getdel(shared, conn);
}

/// The writer's timers, between batches and between the tries of one: the
/// breaker's probe when due, the names' resolution when due.
fn housekeeping(shared: &Shared, conn: &mut Option<Conn>, next_resolve: &mut Instant) {
    // The breaker's probes are this thread's, never a handshake's: an open
    // breaker skips every lookup until a probe (or a batch) gets through.
    if shared.link.breaker.probe_due_in() == Some(Duration::ZERO) {
        shared
            .link
            .probe(&shared.stats, shared.config.writer_timeout);
    }
    if Instant::now() >= *next_resolve {
        if let Ok(true) = shared.link.resolve() {
            *conn = None;
        }
        *next_resolve = instant_after(resolve_every(&shared.config, shared.link.resolved()));
        detect(shared, conn);
    }
}

/// The writer thread: drains the queue in batches until shut down; re-resolves
/// the host names every `resolve_interval`; detects `GETDEL` when it connects.
fn run_writer(shared: Arc<Shared>) {
    let cfg = &shared.config;
    let queue = &shared.queue;
    let stats = &shared.stats;
    let mut conn: Option<Conn> = None;
    let mut next_resolve = instant_after(resolve_every(cfg, shared.link.resolved()));
    detect(&shared, &mut conn);
    loop {
        housekeeping(&shared, &mut conn, &mut next_resolve);
        let batch: Vec<Op> = {
            let mut st = queue.lock();
            loop {
                if !st.ops.is_empty() {
                    break;
                }
                if st.shutdown {
                    return;
                }
                let mut left = next_resolve.saturating_duration_since(Instant::now());
                if let Some(due) = shared.link.breaker.probe_due_in() {
                    // At least 1 ms: never a busy loop.
                    left = left.min(due.max(Duration::from_millis(1)));
                    if due.is_zero() {
                        break;
                    }
                }
                if left.is_zero() {
                    break;
                }
                st = queue
                    .work
                    .wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            let n = st.ops.len().min(cfg.batch_size);
            st.start_batch(n)
        };
        if batch.is_empty() {
            continue;
        }
        let mut backoff = Duration::from_millis(10);
        let mut given_up = false;
        loop {
            match send(&shared, &mut conn, &batch) {
                Ok((sets, dels)) => {
                    // Redis answers: lookups may use it again.
                    shared.link.breaker.succeeded_elsewhere();
                    bump(&stats.batches);
                    stats.writes.fetch_add(sets, Ordering::Relaxed);
                    stats.deletes.fetch_add(dels, Ordering::Relaxed);
                    break;
                }
                Err(e) if refused_by_server(&e) => {
                    // The server answered, refusing a command (OOM, READONLY,
                    // NOPERM...): the same batch would be refused again, ahead
                    // of every later write. Dropped (the pipeline's other
                    // commands ran), counted in `errors`.
                    count_error(stats, &e);
                    shared.link.breaker.succeeded_elsewhere();
                    conn = None;
                    break;
                }
                Err(e) => {
                    count_error(stats, &e);
                    // Its state is unknown: a new connection for the retry.
                    conn = None;
                    if queue.sleep(backoff) {
                        given_up = true;
                        break; // shut down: the batch is given up
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    // While it fails: the names may have moved (a failover),
                    // and the breaker's probe may be due.
                    housekeeping(&shared, &mut conn, &mut next_resolve);
                }
            }
        }
        let mut st = queue.lock();
        st.end_batch();
        Queue::gauge(&st, stats);
        if st.ops.is_empty() {
            queue.idle.notify_all();
        }
        if st.shutdown && st.ops.is_empty() {
            return;
        }
        drop(st);
        if given_up {
            // Shut down while failing: what is left is given up.
            let mut st = queue.lock();
            st.clear_ops();
            Queue::gauge(&st, stats);
            queue.idle.notify_all();
            return;
        }
    }
}

/// Sends one batch as a pipeline; returns the `SET`s and `DEL`s it held.
fn send(shared: &Shared, conn: &mut Option<Conn>, batch: &[Op]) -> redis::RedisResult<(u64, u64)> {
    let cfg = &shared.config;
    if conn.is_none() {
        let c = shared.link.connect(&shared.stats, cfg.writer_timeout)?;
        c.set_timeouts(cfg.writer_timeout)?;
        *conn = Some(c);
        detect_getdel(shared, conn);
        if conn.is_none() {
            // The question failed and took the connection: a clean one for
            // the batch (asked again at the next connect).
            let c = shared.link.connect(&shared.stats, cfg.writer_timeout)?;
            c.set_timeouts(cfg.writer_timeout)?;
            *conn = Some(c);
        }
    }
    let Some(c) = conn.as_mut() else {
        return Err(super::pool::timed_out());
    };
    c.set_timeouts(cfg.writer_timeout)?;
    let now = cfg.clock.now();
    let mut cmds = Vec::with_capacity(batch.len());
    let (mut sets, mut dels) = (0, 0);
    for op in batch {
        match op {
            Op::Set { key, value, expiry } => {
                if now > *expiry {
                    continue; // expired while queued
                }
                // Valid through second `expiry` inclusive; Redis caps EX values.
                let ttl = (expiry - now).clamp(1, 1 << 40);
                let mut cmd = redis::cmd("SET");
                cmd.arg(key).arg(value.as_slice()).arg("EX").arg(ttl);
                cmds.push(cmd);
                sets += 1;
            }
            Op::Del { keys } => {
                // One command per key: on a cluster they live in different slots.
                for key in keys {
                    let mut cmd = redis::cmd("DEL");
                    cmd.arg(key);
                    cmds.push(cmd);
                }
                dels += 1;
            }
        }
    }
    if cmds.is_empty() {
        return Ok((0, 0));
    }
    match c {
        Conn::Single(c) => {
            let mut pipe = redis::pipe();
            for cmd in cmds {
                pipe.add_command(cmd).ignore();
            }
            pipe.query::<()>(c)?;
        }
        Conn::Cluster(c) => {
            let mut pipe = redis::cluster::cluster_pipe();
            for cmd in cmds {
                pipe.add_command(cmd).ignore();
            }
            pipe.query::<()>(c)?;
        }
    }
    Ok((sets, dels))
}

#[cfg(all(test, not(tls_session_cache_loom)))]
mod tests {
    use super::*;
    use crate::integrations::redis::config::RedisConfig;
    use crate::integrations::redis::pool::Link;
    use std::io::{Read, Write};
    use std::sync::atomic::AtomicU8;

    /// A "server" that completes the connection setup (the client's `CLIENT
    /// SETINFO` pipeline) and then answers nothing.
    fn silent_server() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    if conn.read(&mut buf).is_ok_and(|n| n > 0) {
                        let _ = conn.write_all(b"+OK\r\n+OK\r\n");
                    }
                    while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
                });
            }
        });
        format!("redis://127.0.0.1:{port}/")
    }

    /// A key is `deleting` from the push of its `DEL` until the last `DEL` of
    /// it leaves: with the batch that sent it, or cleared at shutdown. Two
    /// `DEL`s of one key count twice; a `SET` counts nothing.
    #[test]
    fn a_del_is_pending_from_its_push_until_its_batch_ends() {
        let q = Queue::new(16);
        let stats = AtomicStats::default();
        let (a, b) = (b"a".to_vec(), b"b".to_vec());
        let del = |k: &Vec<u8>| Op::Del {
            keys: vec![k.clone(), [k.as_slice(), b"-old"].concat()],
        };
        let set = |k: &Vec<u8>| Op::Set {
            key: k.clone(),
            value: Zeroizing::new(b"v".to_vec()),
            expiry: u64::MAX,
        };
        let deleting = |k: &[u8]| q.deleting(&[k.to_vec()]);
        assert!(q.push(set(&b), &stats));
        assert!(!deleting(b"b"), "a SET deletes nothing");
        assert!(q.push(del(&a), &stats));
        assert!(deleting(b"a") && deleting(b"a-old"), "every ring key");
        assert!(q.push(del(&a), &stats));
        let batch = q.lock().start_batch(2); // the SET and the first DEL
        assert_eq!(batch.len(), 2);
        assert!(deleting(b"a"), "being sent");
        q.lock().end_batch();
        assert!(deleting(b"a"), "the second DEL is still queued");
        let batch = q.lock().start_batch(1);
        assert_eq!(batch.len(), 1);
        q.lock().end_batch();
        assert!(!deleting(b"a") && !deleting(b"a-old"));
        assert!(q.lock().deleting.is_empty());
        // Given up at shutdown: nothing stays pending.
        assert!(q.push(del(&b), &stats));
        assert!(q.push(del(&a), &stats));
        let _ = q.lock().start_batch(1);
        q.lock().clear_ops();
        assert!(deleting(b"b"), "the batch is still being sent");
        q.lock().end_batch();
        assert!(q.lock().deleting.is_empty());
    }

    /// A full queue: a `SET` is dropped; a `DEL` takes the place of the oldest
    /// queued `SET` (which is counted dropped, and is gone from the queue); a
    /// `DEL` is dropped only once the queue holds nothing but `DEL`s, and a
    /// dropped `DEL` is not pending.
    #[test]
    fn a_del_at_a_full_queue_displaces_the_oldest_set() {
        let q = Queue::new(3);
        let stats = AtomicStats::default();
        let set = |k: &[u8]| Op::Set {
            key: k.to_vec(),
            value: Zeroizing::new(b"v".to_vec()),
            expiry: u64::MAX,
        };
        let del = |k: &[u8]| Op::Del {
            keys: vec![k.to_vec()],
        };
        let dropped = || stats.dropped.load(Ordering::Relaxed);
        let keys = |q: &Queue| -> Vec<(bool, Vec<u8>)> {
            q.lock()
                .ops
                .iter()
                .flat_map(|op| {
                    op.keys()
                        .map(move |k| (matches!(op, Op::Del { .. }), k.clone()))
                })
                .collect()
        };
        assert!(q.push(set(b"s1"), &stats));
        assert!(q.push(set(b"s2"), &stats));
        assert!(q.push(del(b"d1"), &stats));
        assert!(!q.push(set(b"s3"), &stats), "a SET at a full queue");
        assert_eq!(dropped(), 1);
        assert!(q.push(del(b"d2"), &stats), "a DEL displaces a SET");
        assert_eq!(dropped(), 2);
        assert_eq!(
            keys(&q),
            vec![
                (false, b"s2".to_vec()),
                (true, b"d1".to_vec()),
                (true, b"d2".to_vec())
            ],
            "the oldest SET (s1) made room; the order of the rest is kept"
        );
        assert!(q.deleting(&[b"d2".to_vec()]));
        assert!(q.push(del(b"d3"), &stats));
        assert_eq!(dropped(), 3);
        assert!(!q.push(del(b"d4"), &stats), "only DELs queued");
        assert_eq!(dropped(), 4);
        assert!(
            !q.deleting(&[b"d4".to_vec()]),
            "a dropped DEL is not pending"
        );
        assert_eq!(stats.queued.load(Ordering::Relaxed), 5);
    }

    /// `COMMAND INFO GETDEL` timed out: the connection is dropped (its late reply
    /// would be read as the next pipeline's).
    #[test]
    fn a_getdel_detection_that_times_out_drops_the_connection() {
        let config = RedisConfig::new(silent_server())
            .insecure_plaintext()
            .writer_timeout(Duration::from_millis(50));
        let shared = Shared {
            link: Link::new(&config).unwrap(),
            queue: Queue::new(16),
            stats: AtomicStats::default(),
            getdel: AtomicU8::new(GETDEL_UNKNOWN),
            config,
        };
        let c = shared
            .link
            .connect(&shared.stats, Duration::from_secs(5))
            .expect("the setup is answered");
        c.set_timeouts(Duration::from_millis(50)).unwrap();
        let mut conn = Some(c);
        detect(&shared, &mut conn);
        assert_eq!(shared.getdel.load(Ordering::Relaxed), GETDEL_UNKNOWN);
        assert!(
            conn.is_none(),
            "a connection with a reply in flight was kept"
        );
    }
}
