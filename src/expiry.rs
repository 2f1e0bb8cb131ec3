//! The expiry order: partitions of `(expiry, seq) -> id`, each behind its own mutex.
//!
//! Lock order: a shard lock of the map may be held when a partition mutex is taken,
//! never the reverse; a partition mutex is held only to edit its `BTreeMap`.

use crate::session::SessionId;
use crate::slot::Slot;
use crate::sync::{lock, Mutex, Ordering};
use std::collections::BTreeMap;

/// `(expiry, seq)`: the eviction order key (soonest expiry, then oldest insert).
pub(crate) type Order = (u64, u64);

pub(crate) struct Index {
    parts: Box<[Mutex<BTreeMap<Order, SessionId>>]>,
}

impl Index {
    pub(crate) fn new(parts: usize) -> Self {
        let parts = parts.max(1).next_power_of_two();
        Index {
            parts: (0..parts).map(|_| Mutex::new(BTreeMap::new())).collect(),
        }
    }

    pub(crate) fn parts(&self) -> usize {
        self.parts.len()
    }

    /// The partition for a key with this hash (high bits: the map's shards use
    /// other bits of the same hash).
    pub(crate) fn part_of(&self, hash: u64) -> usize {
        (hash >> 48) as usize & (self.parts.len() - 1)
    }

    /// Files `slot` (id `key`) at `order`, replacing its previous entry.
    pub(crate) fn file<P>(&self, slot: &Slot<P>, key: &SessionId, order: Order) {
        let mut p = lock(&self.parts[slot.part]);
        let old_seq = slot.filed_seq.load(Ordering::Relaxed);
        if old_seq != 0 {
            let old = (slot.filed_expiry.load(Ordering::Relaxed), old_seq);
            if p.get(&old) == Some(key) {
                p.remove(&old);
            }
        }
        p.insert(order, *key);
        slot.filed_expiry.store(order.0, Ordering::Relaxed);
        slot.filed_seq.store(order.1, Ordering::Relaxed);
    }

    /// Removes `slot`'s entry, if any.
    pub(crate) fn unfile<P>(&self, slot: &Slot<P>) {
        let mut p = lock(&self.parts[slot.part]);
        let seq = slot.filed_seq.load(Ordering::Relaxed);
        if seq != 0 {
            p.remove(&(slot.filed_expiry.load(Ordering::Relaxed), seq));
            slot.filed_seq.store(0, Ordering::Relaxed);
        }
    }

    /// The smallest entry of a partition after `after` (from the start if `None`).
    pub(crate) fn next(&self, part: usize, after: Option<Order>) -> Option<(Order, SessionId)> {
        let p = lock(&self.parts[part]);
        match after {
            None => p.first_key_value().map(|(o, k)| (*o, *k)),
            Some(a) => p
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
                .next()
                .map(|(o, k)| (*o, *k)),
        }
    }

    /// Removes the entry `order` of `part` if it still names `key`.
    pub(crate) fn drop_entry(&self, part: usize, order: Order, key: &SessionId) {
        let mut p = lock(&self.parts[part]);
        if p.get(&order) == Some(key) {
            p.remove(&order);
        }
    }

    /// Total entries (for tests: equals the number of live slots when quiescent).
    pub(crate) fn len(&self) -> usize {
        self.parts.iter().map(|p| lock(p).len()).sum()
    }
}
