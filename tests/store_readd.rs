//! A lookup that misses internally asks the external store and adds its answer.
//! OpenSSL runs that callback outside its lock, so a `SSL_CTX_remove_session` of
//! the id between the store's answer and the add is undone: the session comes
//! back. Here an explicit removal (`remove`, `remove_if_same`, `take`, `take_in`)
//! that runs while the store answers keeps the answer out of the cache; the
//! lookup still returns it (the store answered it). Each test holds the store's
//! answer at a gate until the removal has run, so the interleaving is forced,
//! not hoped for.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use tls_session_cache::{Session, SessionCache, SessionStore};

const CTX: &[u8] = b"svc";

/// A store whose `get_session` says it was entered, then waits to be released
/// before answering a fresh object with the asked id (as a shared tier that
/// deserializes its answer does).
struct GatedStore {
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl SessionStore<()> for GatedStore {
    fn get_session(&self, id: &[u8]) -> Option<Arc<Session<()>>> {
        self.entered.lock().unwrap().send(()).unwrap();
        self.release.lock().unwrap().recv().unwrap();
        Some(Arc::new(Session::new(id, CTX, ()).unwrap()))
    }
}

struct Gate {
    cache: Arc<SessionCache<()>>,
    entered: Receiver<()>,
    release: Sender<()>,
}

fn gated_cache() -> Gate {
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let cache = SessionCache::builder()
        .capacity(16)
        .store(GatedStore {
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        })
        .build();
    Gate {
        cache: Arc::new(cache),
        entered,
        release,
    }
}

/// Runs a lookup of `id` on another thread; `during` runs while the store is
/// answering it. Returns what the lookup returned.
fn lookup_with(gate: &Gate, id: &'static [u8], during: impl FnOnce()) -> Option<Arc<Session<()>>> {
    let lookup = {
        let cache = gate.cache.clone();
        thread::spawn(move || cache.get(id, CTX))
    };
    gate.entered.recv().unwrap();
    during();
    gate.release.send(()).unwrap();
    lookup.join().unwrap()
}

#[test]
fn a_remove_while_the_store_answers_is_not_undone() {
    let gate = gated_cache();
    let local = Arc::new(Session::new(b"id", CTX, ()).unwrap());
    let got = lookup_with(&gate, b"id", || {
        // Nothing cached under the id yet: the remove finds nothing, as
        // OpenSSL's would.
        assert!(!gate.cache.remove(&local));
    });
    let got = got.expect("the lookup returns the store's answer");
    assert_eq!(got.id(), b"id");
    assert_eq!(
        gate.cache.len(),
        0,
        "the removed id came back into the cache"
    );
    let st = gate.cache.stats();
    assert_eq!((st.cb_hits, st.adds, st.readds_refused), (1, 0, 1));
}

#[test]
fn a_take_while_the_store_answers_is_not_undone() {
    let gate = gated_cache();
    let got = lookup_with(&gate, b"ticket", || {
        assert!(gate.cache.take(b"ticket").is_none());
    });
    assert!(got.is_some());
    assert_eq!(gate.cache.len(), 0);
}

#[test]
fn a_take_in_and_a_remove_if_same_while_the_store_answers_are_not_undone() {
    let gate = gated_cache();
    assert!(lookup_with(&gate, b"a", || {
        assert!(gate.cache.take_in(b"a", CTX).is_none());
    })
    .is_some());
    let other = Arc::new(Session::new(b"b", CTX, ()).unwrap());
    assert!(lookup_with(&gate, b"b", || {
        assert!(!gate.cache.remove_if_same(&other));
    })
    .is_some());
    assert_eq!(gate.cache.len(), 0);
}

#[test]
fn a_removal_of_another_id_does_not_keep_the_answer_out() {
    let gate = gated_cache();
    let other = Arc::new(Session::new(b"other", CTX, ()).unwrap());
    let got = lookup_with(&gate, b"id", || {
        assert!(!gate.cache.remove(&other));
    });
    let got = got.unwrap();
    assert_eq!(gate.cache.len(), 1);
    assert_eq!(gate.cache.stats().adds, 1);
    assert_eq!(gate.cache.stats().readds_refused, 0);
    // The cached object is the store's answer: the next lookup hits it.
    let again = gate.cache.get(b"id", CTX).unwrap();
    assert!(Arc::ptr_eq(&got, &again));
}

#[test]
fn a_removal_before_the_lookup_does_not_keep_the_answer_out() {
    let gate = gated_cache();
    let local = Arc::new(Session::new(b"id", CTX, ()).unwrap());
    assert!(!gate.cache.remove(&local));
    assert!(lookup_with(&gate, b"id", || {}).is_some());
    assert_eq!(
        gate.cache.len(),
        1,
        "a removal that preceded the lookup is no reason to refuse"
    );
}

#[test]
fn a_remove_that_unlinks_while_the_store_answers_is_not_undone() {
    let gate = gated_cache();
    let y = Arc::new(Session::new(b"id", CTX, ()).unwrap());
    let got = lookup_with(&gate, b"id", || {
        // Cached meanwhile, then removed: this remove unlinks something.
        assert!(gate.cache.add(&y));
        assert!(gate.cache.remove(&y));
    });
    assert!(got.is_some());
    assert_eq!(gate.cache.len(), 0);
}

/// A store that answers every lookup at once with a fresh object, and whose
/// `remove_session` says it was entered, then waits to be released: a removal
/// whose unlink is done but whose store has not been told yet.
struct SlowRemoveStore {
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl SessionStore<()> for SlowRemoveStore {
    fn get_session(&self, id: &[u8]) -> Option<Arc<Session<()>>> {
        Some(Arc::new(Session::new(id, CTX, ()).unwrap()))
    }
    fn remove_session(&self, _: &Arc<Session<()>>, _: tls_session_cache::RemovalCause) {
        self.entered.lock().unwrap().send(()).unwrap();
        self.release.lock().unwrap().recv().unwrap();
    }
}

/// The removal has unlinked the session, so the lookup misses internally; the
/// store still answers it, as its `remove_session` has not returned yet. The
/// answer must not be cached (found by a review: the first version checked
/// only removals recorded after the lookup began).
#[test]
fn a_remove_still_in_its_callback_is_not_undone() {
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let cache = Arc::new(
        SessionCache::builder()
            .capacity(16)
            .store(SlowRemoveStore {
                entered: Mutex::new(entered_tx),
                release: Mutex::new(release_rx),
            })
            .build(),
    );
    let x = Arc::new(Session::new(b"id", CTX, ()).unwrap());
    assert!(cache.add(&x));
    let remover = {
        let (cache, x) = (cache.clone(), x.clone());
        thread::spawn(move || cache.remove(&x))
    };
    entered.recv().unwrap();
    // Unlinked, its callback not returned: a lookup misses and asks the store.
    let got = cache.get(b"id", CTX).expect("the store answers");
    assert!(!Arc::ptr_eq(&got, &x));
    assert_eq!(cache.len(), 0, "the removed id came back into the cache");
    release.send(()).unwrap();
    assert!(remover.join().unwrap());
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().readds_refused, 1);
    // Once the callback has returned, a lookup's answer is cached again.
    assert!(cache.get(b"id", CTX).is_some());
    assert_eq!(cache.len(), 1);
}
