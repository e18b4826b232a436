//! Ids the writer thread looks up again and again (interned names, temporal series,
//! known tenants), remembered between writes.
//!
//! Only the writer thread uses it. A row created inside a savepoint that is rolled back
//! disappears, so any rollback clears the cache: a cached id always exists.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

#[derive(Default)]
struct Cache {
    names: HashMap<String, i64>,
    series: HashMap<SeriesKey, i64>,
    tenants: HashSet<String>,
}

/// Bounds memory: a broker with more distinct keys than this just looks them up again.
const MAX_ENTRIES: usize = 20_000;
/// Series are many (one per attribute and dataset of every entity: ~60,000 for a
/// 10,000-sensor territory) and their keys small, so more of them are kept: ~40 bytes
/// each, 10 MB at most.
const MAX_SERIES: usize = 250_000;

/// A series' (tenant, entity id, attribute, datasetId) as 128 bits of two independent
/// hashes: a lookup allocates nothing, and an entry weighs 24 bytes instead of four
/// strings. Two keys sharing both hashes (odds ~n²/2¹²⁹, 10⁻²⁶ at a million series)
/// would share a series; that is accepted as impossible in practice.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesKey(u64, u64);

impl SeriesKey {
    pub fn new(tenant: &str, entity_id: &str, attr: &str, dataset_id: &str) -> Self {
        let half = |salt: u8| {
            // DefaultHasher::new() has fixed keys: stable within the process, which is
            // all a cache needs.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            salt.hash(&mut h);
            (tenant, entity_id, attr, dataset_id).hash(&mut h);
            h.finish()
        };
        Self(half(0x5a), half(0xa5))
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

pub fn name(name: &str) -> Option<i64> {
    CACHE.with(|c| c.borrow().names.get(name).copied())
}

pub fn remember_name(name: &str, id: i64) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.names.len() >= MAX_ENTRIES {
            c.names.clear();
        }
        c.names.insert(name.to_string(), id);
    });
}

pub fn series(key: &SeriesKey) -> Option<i64> {
    CACHE.with(|c| c.borrow().series.get(key).copied())
}

pub fn remember_series(key: SeriesKey, id: i64) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.series.len() >= MAX_SERIES {
            c.series.clear();
        }
        c.series.insert(key, id);
    });
}

pub fn tenant_known(tenant: &str) -> bool {
    CACHE.with(|c| c.borrow().tenants.contains(tenant))
}

pub fn remember_tenant(tenant: &str) {
    CACHE.with(|c| {
        c.borrow_mut().tenants.insert(tenant.to_string());
    });
}

/// After a rollback: forget everything (some remembered rows may be gone).
pub fn clear() {
    CACHE.with(|c| *c.borrow_mut() = Cache::default());
}
