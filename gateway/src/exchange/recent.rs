//! A small bounded memo of the last few answers the pipeline computed from outside bytes
//! (certificate identities, batch signature checks), so that requests carrying the same bytes do
//! not repeat the work. Keys are compared whole, so a hit means this very input was seen.

use std::collections::VecDeque;
use std::sync::Mutex;

/// The last `capacity` keys and their values, oldest dropped first.
pub struct Recent<K, V> {
    entries: Mutex<VecDeque<(K, V)>>,
    capacity: usize,
}

impl<K: PartialEq, V: Clone> Recent<K, V> {
    /// An empty memo of at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Recent {
            entries: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
        }
    }

    /// The value remembered for `key`, or `make`'s, which is then remembered.
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, value)) = entries.iter().find(|(k, _)| *k == key) {
            return value.clone();
        }
        let value = make();
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back((key, value.clone()));
        value
    }

    /// The value remembered for `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// How many entries are remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
