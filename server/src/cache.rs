//! A cache bounded in bytes, not entries: what a value holds decides what it costs, so a few
//! large search results cannot take more memory than many small ones.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Roughly how many bytes of heap a value holds.
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for Vec<f32> {
    fn weight(&self) -> usize {
        self.capacity() * size_of::<f32>()
    }
}

impl Weigh for String {
    fn weight(&self) -> usize {
        self.capacity()
    }
}

impl<T: Weigh> Weigh for Option<T> {
    fn weight(&self) -> usize {
        self.as_ref().map_or(0, Weigh::weight)
    }
}

impl Weigh for Value {
    fn weight(&self) -> usize {
        const NODE: usize = size_of::<Value>();
        NODE + match self {
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
            Value::String(s) => s.capacity(),
            Value::Array(a) => a.iter().map(Weigh::weight).sum(),
            Value::Object(o) => o.iter().map(|(k, v)| k.capacity() + v.weight()).sum(),
        }
    }
}

/// Per entry, beyond its key and value: the map slot, the order queue, the `Arc`.
const ENTRY_OVERHEAD: usize = 96;

/// A byte-bounded map with insertion-order eviction, safe to share between requests. A value
/// larger than the whole budget is not kept.
pub struct Cache<V> {
    max_bytes: usize,
    inner: Mutex<Entries<V>>,
}

struct Entries<V> {
    map: HashMap<String, (Arc<V>, usize)>,
    /// Keys in insertion order: the eviction order.
    order: VecDeque<String>,
    bytes: usize,
}

impl<V: Weigh> Cache<V> {
    pub fn new(max_bytes: usize) -> Self {
        Cache {
            max_bytes,
            inner: Mutex::new(Entries {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        if self.max_bytes == 0 {
            return None;
        }
        self.inner
            .lock()
            .ok()?
            .map
            .get(key)
            .map(|(v, _)| Arc::clone(v))
    }

    pub fn put(&self, key: String, value: V) {
        let cost = key.len() * 2 + value.weight() + ENTRY_OVERHEAD;
        if cost > self.max_bytes {
            return;
        }
        let Ok(mut e) = self.inner.lock() else {
            return;
        };
        if let Some((_, old)) = e.map.insert(key.clone(), (Arc::new(value), cost)) {
            e.bytes -= old;
        } else {
            e.order.push_back(key);
        }
        e.bytes += cost;
        while e.bytes > self.max_bytes {
            let Some(oldest) = e.order.pop_front() else {
                break;
            };
            if let Some((_, c)) = e.map.remove(&oldest) {
                e.bytes -= c;
            }
        }
    }

    /// Bytes held (keys, values and bookkeeping, as estimated).
    pub fn bytes(&self) -> usize {
        self.inner.lock().map_or(0, |e| e.bytes)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |e| e.map.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_bytes_whatever_the_values() {
        let cache: Cache<String> = Cache::new(10_000);
        for i in 0..1000 {
            cache.put(format!("k{i}"), "x".repeat(i % 300));
            assert!(cache.bytes() <= 10_000, "{} bytes", cache.bytes());
        }
        assert!(cache.len() > 10);
        // The newest stays, the oldest went.
        assert!(cache.get("k999").is_some());
        assert!(cache.get("k0").is_none());
        // A value larger than the budget is not kept, and evicts nothing.
        let before = cache.len();
        cache.put("huge".into(), "x".repeat(20_000));
        assert!(cache.get("huge").is_none());
        assert_eq!(cache.len(), before);
        // Replacing a key accounts for the new value only.
        cache.put("k999".into(), String::new());
        assert!(cache.bytes() <= 10_000);
        let off: Cache<String> = Cache::new(0);
        off.put("a".into(), "b".into());
        assert!(off.get("a").is_none());
    }
}
