//! Under loom: a `Vec` of loom `RwLock<HashMap>`, chosen by a fixed hash of the
//! key (models must be deterministic), with dashmap's interface.

use crate::id::Id;
use crate::sync::RwLock;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};

type Shard<V> = HashMap<Id, V, BuildHasherDefault<DefaultHasher>>;

pub(crate) struct ShardMap<V> {
    shards: Vec<RwLock<Shard<V>>>,
}

impl<V> ShardMap<V> {
    pub(crate) fn new(shards: usize) -> Self {
        let shards = shards.clamp(2, 1 << 16).next_power_of_two();
        ShardMap {
            shards: (0..shards).map(|_| RwLock::new(Shard::default())).collect(),
        }
    }

    fn hash(&self, k: &Id) -> u64 {
        BuildHasherDefault::<DefaultHasher>::default().hash_one(k)
    }

    fn shard(&self, k: &Id) -> &RwLock<Shard<V>> {
        let i = (self.hash(k) >> 7) as usize % self.shards.len();
        &self.shards[i]
    }

    pub(crate) fn read<R>(&self, k: &Id, f: impl FnOnce(Option<(&Id, &V)>) -> R) -> R {
        let g = self.shard(k).read().unwrap_or_else(|e| e.into_inner());
        f(g.get_key_value(k))
    }

    pub(crate) fn write<R>(&self, k: Id, f: impl FnOnce(&Id, Option<&V>) -> (Option<V>, R)) -> R {
        let mut g = self.shard(&k).write().unwrap_or_else(|e| e.into_inner());
        match g.get_key_value(&k) {
            Some((key, v)) => f(key, Some(v)).1,
            None => {
                let (ins, r) = f(&k, None);
                if let Some(val) = ins {
                    g.insert(k, val);
                }
                r
            }
        }
    }

    pub(crate) fn remove_if(&self, k: &Id, pred: impl FnOnce(&Id, &V) -> bool) -> Option<V> {
        let mut g = self.shard(k).write().unwrap_or_else(|e| e.into_inner());
        if g.get_key_value(k).is_some_and(|(k, v)| pred(k, v)) {
            g.remove(k)
        } else {
            None
        }
    }

    pub(crate) fn slots(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub(crate) fn drain(&mut self) -> Vec<V> {
        let mut out = Vec::new();
        for s in &self.shards {
            let mut g = s.write().unwrap_or_else(|e| e.into_inner());
            out.extend(g.drain().map(|(_, v)| v));
        }
        out
    }
}
