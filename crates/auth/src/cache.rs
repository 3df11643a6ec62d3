//! A small bounded cache keyed by SHA-256 digests, whose entries expire. Used to skip repeated
//! Argon2 verifications and ECDSA token verifications for the same credentials.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

pub(crate) type CacheKey = [u8; 32];

struct Entry<V> {
    value: V,
    expires: Instant,
    seq: u64,
}

struct State<V> {
    entries: HashMap<CacheKey, Entry<V>>,
    /// seq → key, oldest insertion first.
    order: BTreeMap<u64, CacheKey>,
    next_seq: u64,
}

pub(crate) struct TtlCache<V> {
    capacity: usize,
    state: Mutex<State<V>>,
}

impl<V: Clone> TtlCache<V> {
    pub(crate) fn new(capacity: usize) -> TtlCache<V> {
        TtlCache {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                entries: HashMap::new(),
                order: BTreeMap::new(),
                next_seq: 0,
            }),
        }
    }

    /// The live value under `key`; an expired one is dropped.
    pub(crate) fn get(&self, key: &CacheKey, now: Instant) -> Option<V> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.entries.get(key) {
            Some(entry) if entry.expires > now => Some(entry.value.clone()),
            Some(_) => {
                if let Some(old) = state.entries.remove(key) {
                    state.order.remove(&old.seq);
                }
                None
            }
            None => None,
        }
    }

    /// Stores `value` until `expires`. When full, expired entries go first, then the oldest.
    pub(crate) fn insert(&self, key: CacheKey, value: V, expires: Instant, now: Instant) {
        if expires <= now {
            return;
        }
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        if let Some(old) = state.entries.remove(&key) {
            state.order.remove(&old.seq);
        }
        if state.entries.len() >= self.capacity {
            let State { entries, order, .. } = state;
            entries.retain(|_, e| {
                let live = e.expires > now;
                if !live {
                    order.remove(&e.seq);
                }
                live
            });
        }
        while state.entries.len() >= self.capacity {
            let Some((_, oldest)) = state.order.pop_first() else {
                break;
            };
            state.entries.remove(&oldest);
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.order.insert(seq, key);
        state.entries.insert(
            key,
            Entry {
                value,
                expires,
                seq,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(n: u8) -> CacheKey {
        [n; 32]
    }

    #[test]
    fn entries_expire() {
        let cache = TtlCache::new(10);
        let t0 = Instant::now();
        cache.insert(key(1), "a", t0 + Duration::from_secs(5), t0);
        assert_eq!(cache.get(&key(1), t0), Some("a"));
        assert_eq!(cache.get(&key(1), t0 + Duration::from_secs(4)), Some("a"));
        assert_eq!(cache.get(&key(1), t0 + Duration::from_secs(5)), None);
        assert_eq!(cache.len(), 0);
        // Already expired: not stored.
        cache.insert(key(2), "b", t0, t0);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn bounded_expired_first_then_oldest() {
        let cache = TtlCache::new(3);
        let t0 = Instant::now();
        let long = t0 + Duration::from_secs(100);
        cache.insert(key(1), 1, long, t0);
        cache.insert(key(2), 2, t0 + Duration::from_secs(1), t0);
        cache.insert(key(3), 3, long, t0);
        let t1 = t0 + Duration::from_secs(2);
        cache.insert(key(4), 4, long, t1);
        // key 2 had expired: it went, key 1 stayed.
        assert_eq!(cache.get(&key(1), t1), Some(1));
        assert_eq!(cache.get(&key(2), t1), None);
        cache.insert(key(5), 5, long, t1);
        // Full of live entries: the oldest insertion (key 1) went.
        assert_eq!(cache.get(&key(1), t1), None);
        assert_eq!(cache.len(), 3);
        for k in [3, 4, 5] {
            assert_eq!(cache.get(&key(k), t1), Some(k));
        }
    }
}
