//! What a node keeps of the store's answers on the read path — API keys, principals, and each
//! principal's grants with its domains' identities — so that searches keep answering from the
//! shards while the store is unreachable.
//!
//! While the store answers, every request still asks it (a revocation takes effect at once);
//! each answer refreshes what is kept, a refusal forgets it, and a change to keys, principals,
//! groups, grants or domains forgets everything on every node (at once on this one; on the
//! others when the change's `NOTIFY` reaches their listener). When a read fails because the
//! store cannot be reached (or does not answer within the store timeout), the last answer kept
//! for it is used, if it is younger than the staleness bound; later reads go straight to what
//! is kept until a call succeeds again. Writes and admin calls are never answered from here.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::model::{Domain, Role};

/// Entries kept per kind at most; past it the oldest half goes.
const MAX_ENTRIES: usize = 100_000;

/// An API key's row, as `authenticate_key` reads it.
#[derive(Debug, Clone)]
pub(crate) struct KeyRow {
    pub hash: String,
    pub domains: Option<String>,
    pub role: Option<String>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub principal_id: i64,
    pub name: String,
    pub superuser: bool,
}

/// A principal's row, as authentication reads it.
#[derive(Debug, Clone)]
pub(crate) struct PrincipalRow {
    pub id: i64,
    pub name: String,
    pub group: bool,
    pub superuser: bool,
}

/// Every domain a principal holds a grant on (its own or its groups'), with the best role.
pub(crate) type Held = Vec<(Role, Domain)>;

#[derive(Default)]
pub(crate) struct Kept {
    keys: HashMap<String, (KeyRow, Instant)>,
    principals: HashMap<String, (PrincipalRow, Instant)>,
    /// (principal id, superuser): every domain it holds a grant on, with the best role.
    grants: HashMap<(i64, bool), (Held, Instant)>,
}

pub(crate) struct Fallback {
    kept: Mutex<Kept>,
    /// The store could not be reached on the last call (cleared by the next that succeeds).
    down: AtomicBool,
    /// Reads answered from here since the start.
    served: AtomicU64,
    pub(crate) timeout: Duration,
    pub(crate) stale_for: Duration,
}

/// Which map an entry lives in.
pub(crate) trait Kind: Sized {
    type Key: Eq + Hash + Clone;
    fn map(kept: &mut Kept) -> &mut HashMap<Self::Key, (Self, Instant)>;
}

impl Kind for KeyRow {
    type Key = String;
    fn map(kept: &mut Kept) -> &mut HashMap<String, (Self, Instant)> {
        &mut kept.keys
    }
}

impl Kind for PrincipalRow {
    type Key = String;
    fn map(kept: &mut Kept) -> &mut HashMap<String, (Self, Instant)> {
        &mut kept.principals
    }
}

impl Kind for Held {
    type Key = (i64, bool);
    fn map(kept: &mut Kept) -> &mut HashMap<(i64, bool), (Self, Instant)> {
        &mut kept.grants
    }
}

impl Fallback {
    pub(crate) fn new(timeout: Duration, stale_for: Duration) -> Self {
        Fallback {
            kept: Mutex::default(),
            down: AtomicBool::new(false),
            served: AtomicU64::new(0),
            timeout,
            stale_for,
        }
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    pub(crate) fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    pub(crate) fn mark(&self, down: bool) {
        if self.down.swap(down, Ordering::AcqRel) != down {
            if down {
                tracing::warn!("store unreachable: reads answer from what this node keeps");
            } else {
                tracing::warn!("store reachable again");
            }
        }
    }

    /// The entry kept for `key`, if younger than the staleness bound (counted as served).
    pub(crate) fn get<V: Kind + Clone>(&self, key: &V::Key) -> Option<V> {
        let mut kept = self.kept.lock().ok()?;
        let (v, at) = V::map(&mut kept).get(key)?;
        (at.elapsed() <= self.stale_for).then(|| {
            self.served.fetch_add(1, Ordering::Relaxed);
            v.clone()
        })
    }

    pub(crate) fn put<V: Kind>(&self, key: V::Key, value: V) {
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        let map = V::map(&mut kept);
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            let mut ages: Vec<Instant> = map.values().map(|(_, at)| *at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            map.retain(|_, (_, at)| *at > cut);
        }
        map.insert(key, (value, Instant::now()));
    }

    pub(crate) fn forget<V: Kind>(&self, key: &V::Key) {
        if let Ok(mut kept) = self.kept.lock() {
            V::map(&mut kept).remove(key);
        }
    }

    /// Forgets everything: keys, principals, groups, grants or domains changed.
    pub(crate) fn clear(&self) {
        if let Ok(mut kept) = self.kept.lock() {
            *kept = Kept::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(id: i64) -> PrincipalRow {
        PrincipalRow {
            id,
            name: format!("p{id}"),
            group: false,
            superuser: false,
        }
    }

    #[test]
    fn kept_answers_are_used_within_the_bound_and_forgotten_on_change() {
        let f = Fallback::new(Duration::from_secs(1), Duration::from_millis(200));
        f.put("p1".to_string(), principal(1));
        assert_eq!(
            f.get::<PrincipalRow>(&"p1".to_string()).map(|p| p.id),
            Some(1)
        );
        assert_eq!(f.served(), 1);
        // A refusal forgets the one; an access change forgets all.
        f.forget::<PrincipalRow>(&"p1".to_string());
        assert!(f.get::<PrincipalRow>(&"p1".to_string()).is_none());
        f.put("p2".to_string(), principal(2));
        f.put((2, false), Held::new());
        f.clear();
        assert!(f.get::<PrincipalRow>(&"p2".to_string()).is_none());
        assert!(f.get::<Held>(&(2, false)).is_none());
        // Older than the staleness bound: not used.
        f.put("p3".to_string(), principal(3));
        std::thread::sleep(Duration::from_millis(250));
        assert!(f.get::<PrincipalRow>(&"p3".to_string()).is_none());
        assert_eq!(f.served(), 1);
    }

    #[test]
    fn the_down_flag_follows_the_last_call() {
        let f = Fallback::new(Duration::from_secs(1), Duration::from_secs(1));
        assert!(!f.is_down());
        f.mark(true);
        assert!(f.is_down());
        f.mark(false);
        assert!(!f.is_down());
    }
}
