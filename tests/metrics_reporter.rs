//! `MetricsReporter::spawn`: the background thread publishes to the global
//! recorder, and dropping the reporter stops it (the drop joins the thread).
//! Its own test binary: it installs a global recorder.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tls_session_cache::metrics::{MetricsReporter, HITS};
use tls_session_cache::{Session, SessionCache};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

fn hits(snap: &Snapshotter) -> Option<u64> {
    snap.snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(ck, _, _, v)| match v {
            DebugValue::Counter(n)
                if ck.key().name() == HITS
                    && ck
                        .key()
                        .labels()
                        .any(|l| l.key() == "cache" && l.value() == "bg") =>
            {
                Some(n)
            }
            _ => None,
        })
}

#[test]
fn the_background_thread_publishes_until_the_reporter_drops() {
    let rec = DebuggingRecorder::new();
    let snap = rec.snapshotter();
    rec.install().unwrap();

    let cache: Arc<SessionCache<u8>> = Arc::new(SessionCache::new());
    let reporter = MetricsReporter::new();
    reporter.register("bg", &cache).unwrap();
    let s = Arc::new(Session::new(b"id", b"", 1).unwrap());
    cache.add(&s);
    for _ in 0..5 {
        cache.get(b"id", b"").unwrap();
    }
    reporter.spawn(Duration::from_millis(5)).unwrap();
    // No call to `report` here: only the thread can publish. Waits (bounded, so a
    // broken thread fails instead of hanging) until the value shows.
    let deadline = Instant::now() + Duration::from_secs(60);
    while hits(&snap) != Some(5) {
        assert!(Instant::now() < deadline, "the thread never published");
        std::thread::sleep(Duration::from_millis(5));
    }

    // A long interval: only the drop's wake-up can end the thread's wait, so a
    // drop that returns proves the thread stopped (it is joined).
    reporter.spawn(Duration::from_secs(24 * 3600)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(reporter);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("dropping the reporter did not stop its thread");
}
