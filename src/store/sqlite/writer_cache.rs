//! Ids the writer thread looks up again and again (interned names, temporal series,
//! known tenants), remembered between writes.
//!
//! Only the writer thread uses it. A row created inside a savepoint that is rolled back
//! disappears, so any rollback clears the cache: a cached id always exists.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

#[derive(Default)]
struct Cache {
    names: HashMap<String, i64>,
    series: HashMap<(String, String, String, String), i64>,
    tenants: HashSet<String>,
}

/// Bounds memory: a broker with more distinct keys than this just looks them up again.
const MAX_ENTRIES: usize = 20_000;

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

pub fn series(key: &(String, String, String, String)) -> Option<i64> {
    CACHE.with(|c| c.borrow().series.get(key).copied())
}

pub fn remember_series(key: (String, String, String, String), id: i64) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.series.len() >= MAX_ENTRIES {
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
