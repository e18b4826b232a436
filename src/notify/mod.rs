//! Notifications: the in-memory index of subscriptions that matches writes (as the
//! store's write observer, inside the write's transaction), and the delivery workers
//! that drain the outbox.
//!
//! Guarantee: a notification of an acknowledged write is in the outbox before the write
//! is acknowledged, and stays there until its endpoint accepted it or its retries ran
//! out; so delivery is at least once, in order per (subscription, entity).

pub mod http;
pub mod mqtt;
pub mod retry;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::error::{NgsiError, Result};
use crate::jsonld::{ActiveContext, ContextResolver};
use crate::ngsi::subscription::{self, CompiledSubscription, Subscription};
use crate::ngsi::{Entity, Tenant};
use crate::store::{Observed, OutboxRow, SharedStore, WriteObserver, WriteResult};

/// Per-subscription delivery state kept across updates of the subscription.
#[derive(Debug, Default)]
pub struct SubState {
    /// Notifications in the outbox.
    pub pending: AtomicU64,
    /// When the last notification was queued (ms), for throttling.
    pub last_queued_ms: AtomicI64,
    /// When the next periodic notification is due (ms), for timeInterval.
    pub next_periodic_ms: AtomicI64,
}

#[derive(Debug)]
pub struct Entry {
    pub tenant: Tenant,
    pub compiled: CompiledSubscription,
    /// The context notifications are compacted with.
    pub ctx: Arc<ActiveContext>,
    pub state: Arc<SubState>,
}

impl Entry {
    pub fn sub(&self) -> &Subscription {
        &self.compiled.sub
    }
}

#[derive(Default)]
struct TenantIndex {
    by_type: HashMap<String, Vec<Arc<Entry>>>,
    any_type: Vec<Arc<Entry>>,
    by_id: HashMap<String, Arc<Entry>>,
    /// The timeInterval subscriptions, so the worker's every round looks at them
    /// only, not at every subscription.
    periodic: Vec<Arc<Entry>>,
}

impl TenantIndex {
    fn rebuild(&mut self) {
        self.by_type.clear();
        self.any_type.clear();
        self.periodic.clear();
        for e in self.by_id.values() {
            if e.sub().time_interval.is_some() {
                self.periodic.push(e.clone());
                continue; // periodic only
            }
            match e.compiled.index_types() {
                Some(types) => {
                    for t in types.into_iter().collect::<HashSet<_>>() {
                        self.by_type.entry(t).or_default().push(e.clone());
                    }
                }
                None => self.any_type.push(e.clone()),
            }
        }
    }
}

pub struct SubscriptionIndex {
    tenants: RwLock<HashMap<Tenant, TenantIndex>>,
    states: Mutex<HashMap<(Tenant, String), Arc<SubState>>>,
    /// Wakes the delivery worker when rows were queued.
    pub wake: Arc<Notify>,
    queue_cap: u64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl SubscriptionIndex {
    pub fn new(queue_cap: u64) -> Self {
        Self {
            tenants: RwLock::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
            wake: Arc::new(Notify::new()),
            queue_cap,
        }
    }

    fn state(&self, tenant: &Tenant, id: &str) -> Arc<SubState> {
        self.states
            .lock()
            .entry((tenant.clone(), id.to_string()))
            .or_default()
            .clone()
    }

    /// Builds the index entry for a subscription: its contexts resolved, q compiled.
    pub async fn prepare(
        &self,
        tenant: &Tenant,
        sub: Subscription,
        contexts: &ContextResolver,
    ) -> Result<Arc<Entry>> {
        let request_ctx = contexts
            .resolve(Some(&Value::String(sub.request_context.clone())))
            .await?;
        let ctx = if sub.jsonld_context == sub.request_context {
            request_ctx.clone()
        } else {
            contexts
                .resolve(Some(&Value::String(sub.jsonld_context.clone())))
                .await?
        };
        let state = self.state(tenant, &sub.id);
        let compiled = CompiledSubscription::compile(sub, &request_ctx)?;
        Ok(Arc::new(Entry {
            tenant: tenant.clone(),
            compiled,
            ctx,
            state,
        }))
    }

    pub fn insert(&self, entry: Arc<Entry>) {
        let mut tenants = self.tenants.write();
        let ti = tenants.entry(entry.tenant.clone()).or_default();
        if let Some(t) = entry.sub().time_interval {
            let first = now_ms() + (t * 1000.0) as i64;
            let _ = entry.state.next_periodic_ms.compare_exchange(
                0,
                first,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        ti.by_id.insert(entry.sub().id.clone(), entry);
        ti.rebuild();
    }

    pub fn remove(&self, tenant: &Tenant, id: &str) {
        let mut tenants = self.tenants.write();
        if let Some(ti) = tenants.get_mut(tenant) {
            if ti.by_id.remove(id).is_some() {
                ti.rebuild();
            }
        }
        self.states.lock().remove(&(tenant.clone(), id.to_string()));
    }

    pub fn get(&self, tenant: &Tenant, id: &str) -> Option<Arc<Entry>> {
        self.tenants.read().get(tenant)?.by_id.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.tenants.read().values().map(|t| t.by_id.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads every stored subscription (start-up) and the outbox's pending counts.
    pub async fn load(&self, store: &SharedStore, contexts: &ContextResolver) -> Result<()> {
        for (tenant, id, n) in store.pending_counts().await? {
            self.state(&tenant, &id).pending.store(n, Ordering::Relaxed);
        }
        for (tenant, record) in store.all_subscriptions().await? {
            let sub: Subscription = match serde_json::from_value(record.doc) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "a stored subscription cannot be read; skipped");
                    continue;
                }
            };
            let id = sub.id.clone();
            match self.prepare(&tenant, sub, contexts).await {
                Ok(entry) => self.insert(entry),
                Err(e) => {
                    tracing::error!(subscription = %id, error = %e.detail, "cannot restore a subscription")
                }
            }
        }
        Ok(())
    }

    /// True if some notification may be queued (the worker skips the outbox otherwise).
    pub fn has_pending(&self) -> bool {
        self.states
            .lock()
            .values()
            .any(|s| s.pending.load(Ordering::Relaxed) > 0)
    }

    /// A notification of this subscription left the outbox.
    pub fn done(&self, tenant: &Tenant, id: &str) {
        if let Some(s) = self.states.lock().get(&(tenant.clone(), id.to_string())) {
            let _ = s
                .pending
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        }
    }

    /// Periodic subscriptions whose interval has elapsed (their next time is advanced).
    pub fn periodic_due(&self) -> Vec<Arc<Entry>> {
        let now = now_ms();
        let mut nowstr: Option<String> = None;
        let mut due = Vec::new();
        for ti in self.tenants.read().values() {
            for e in &ti.periodic {
                let Some(interval) = e.sub().time_interval else {
                    continue;
                };
                let next = e.state.next_periodic_ms.load(Ordering::Relaxed);
                if next <= now {
                    e.state
                        .next_periodic_ms
                        .store(now + (interval * 1000.0) as i64, Ordering::Relaxed);
                    let nowstr = nowstr.get_or_insert_with(crate::ngsi::time::now);
                    if e.sub().is_active && !e.sub().is_expired(nowstr) {
                        due.push(e.clone());
                    }
                }
            }
        }
        due
    }

    /// Counts a queued notification against the cap; false if the queue is full.
    fn admit(&self, entry: &Entry) -> bool {
        entry
            .state
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.queue_cap).then_some(n + 1)
            })
            .is_ok()
    }

    /// Builds an outbox row for a periodic notification (many entities at once).
    pub fn periodic_row(&self, entry: &Entry, entities: Vec<Entity>) -> Option<OutboxRow> {
        if !self.admit(entry) {
            return None;
        }
        let data: Vec<Value> = entities
            .into_iter()
            .map(|e| {
                json!(subscription::NotifiedEntity {
                    entity: e,
                    previous: None,
                    deleted_at: None
                })
            })
            .collect();
        Some(OutboxRow {
            tenant: entry.tenant.clone(),
            subscription_id: entry.sub().id.clone(),
            entity_id: String::new(),
            payload: json!({ "data": data }).to_string(),
        })
    }
}

impl WriteObserver for SubscriptionIndex {
    fn observe(&self, tenant: &Tenant, result: &WriteResult, now: &str) -> Observed {
        let mut observed = Observed::default();
        let tenants = self.tenants.read();
        let Some(ti) = tenants.get(tenant) else {
            return observed;
        };
        let Some(entity) = result.after.as_ref().or(result.before.as_ref()) else {
            return observed;
        };
        let mut seen: HashSet<&str> = HashSet::new();
        let mut candidates: Vec<&Arc<Entry>> = Vec::new();
        let types = entity
            .types
            .iter()
            .chain(result.before.iter().flat_map(|b| b.types.iter()));
        for t in types {
            for e in ti.by_type.get(t).into_iter().flatten() {
                if seen.insert(e.sub().id.as_str()) {
                    candidates.push(e);
                }
            }
        }
        for e in &ti.any_type {
            if seen.insert(e.sub().id.as_str()) {
                candidates.push(e);
            }
        }
        if candidates.is_empty() {
            return observed;
        }
        let change = subscription::derive_change(result.before.as_ref(), result.after.as_ref());
        if change.is_empty() {
            return observed;
        }
        let mut payloads: [Option<String>; 2] = [None, None];
        let now_ms = now_ms();
        for entry in candidates {
            let c = &entry.compiled;
            if !c.sub.is_active || c.sub.is_expired(now) {
                continue;
            }
            if !c.selects(entity) || !c.triggered_by(&change, entity) || !c.filters_pass(entity) {
                continue;
            }
            if let Some(t) = c.sub.throttling {
                let last = entry.state.last_queued_ms.load(Ordering::Relaxed);
                if last > 0 && now_ms - last < (t * 1000.0) as i64 {
                    continue;
                }
            }
            if !self.admit(entry) {
                observed.dropped.push((tenant.clone(), c.sub.id.clone(), 1));
                continue;
            }
            entry.state.last_queued_ms.store(now_ms, Ordering::Relaxed);
            let with_previous = c.sub.notification.show_changes;
            let slot = &mut payloads[with_previous as usize];
            if slot.is_none() {
                let ne = subscription::notified_entity(
                    result.before.as_ref(),
                    result.after.as_ref(),
                    &change,
                    with_previous,
                    now,
                );
                *slot = Some(json!({ "data": [ne] }).to_string());
            }
            observed.rows.push(OutboxRow {
                tenant: tenant.clone(),
                subscription_id: c.sub.id.clone(),
                entity_id: entity.id.clone(),
                payload: slot.clone().unwrap_or_default(),
            });
        }
        if !observed.rows.is_empty() {
            self.wake.notify_one();
        }
        observed
    }
}

/// Delivery settings (from the command line).
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub timeout_ms: u64,
    pub concurrency: usize,
    pub endpoint_concurrency: usize,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub deny_private: bool,
    pub instance_id: String,
}

impl NotifyConfig {
    pub fn lease_ms(&self) -> i64 {
        (self.timeout_ms * 3 + 5000) as i64
    }
}

pub fn invalid_payload(e: impl std::fmt::Display) -> NgsiError {
    NgsiError::internal(format!("an outbox payload cannot be read: {e}"))
}
