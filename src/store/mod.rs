//! The storage facade: what the broker needs from a database, with no SQL outside the
//! backends. Writes are expressed as domain closures the backend runs inside its own
//! transaction, so every backend gets read-modify-write atomicity for free.

pub mod dump;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::Result;
use crate::jsonld::ContextRecord;
use crate::ngsi::attribute::Attribute;
use crate::ngsi::operations::UpdateReport;
use crate::ngsi::query::{EntityQuery, QueryPage};
use crate::ngsi::subscription::DeliveryStatus;
use crate::ngsi::temporal::{TemporalEntity, TemporalQuery, TemporalResult};
use crate::ngsi::{Entity, Tenant};

/// What a write decided to do with the entity it was given.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built once per write, moved straight to the store
pub enum Effect {
    /// Store this entity (create or replace).
    Put(Entity, UpdateReport),
    /// Remove the entity.
    Delete,
    /// Leave it as it is (the report says why).
    Keep(UpdateReport),
}

/// A write on one entity: given its current state (`None` if absent), decide the effect.
///
/// A pure function of that state, which a backend may call more than once: the SQLite
/// backend runs it first on a reader, off the writer thread, and again in the writer
/// only if the entity changed in between.
pub type Mutation = Box<dyn Fn(Option<Entity>) -> Result<Effect> + Send>;

pub struct WriteOp {
    pub entity_id: String,
    pub mutation: Mutation,
}

impl WriteOp {
    pub fn new(
        entity_id: impl Into<String>,
        f: impl Fn(Option<Entity>) -> Result<Effect> + Send + 'static,
    ) -> Self {
        Self {
            entity_id: entity_id.into(),
            mutation: Box::new(f),
        }
    }
}

/// What happened to one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Deleted,
    Unchanged,
}

#[derive(Debug)]
pub struct WriteResult {
    pub outcome: Outcome,
    pub report: UpdateReport,
    /// The entity before and after the write (for history and notifications).
    pub before: Option<Entity>,
    pub after: Option<Entity>,
}

#[async_trait]
pub trait EntityStore: Send + Sync {
    /// Called once when the broker stops, after its last write: leaves the storage
    /// compact for whoever opens it next (SQLite folds its write-ahead log back into
    /// the database file). Nothing to do by default.
    async fn close(&self) -> Result<()> {
        Ok(())
    }

    /// Applies the operations, each atomically; one failing does not undo the others.
    /// Returns one result per operation, in order. Committed before it returns.
    async fn write(&self, tenant: &Tenant, ops: Vec<WriteOp>) -> Result<Vec<Result<WriteResult>>>;

    async fn get(&self, tenant: &Tenant, id: &str) -> Result<Option<Entity>>;

    async fn query(&self, tenant: &Tenant, query: &EntityQuery) -> Result<QueryPage<Entity>>;

    /// As `query`, with each entity as its stored document (the serde form of `Entity`)
    /// for callers that render the text directly; `None` when this store cannot hand
    /// documents out for less than `query` costs.
    async fn query_documents(
        &self,
        _tenant: &Tenant,
        _query: &EntityQuery,
    ) -> Result<Option<QueryPage<String>>> {
        Ok(None)
    }

    /// The ids of every entity the query selects (ignoring paging).
    async fn ids(&self, tenant: &Tenant, query: &EntityQuery) -> Result<Vec<String>>;

    /// Deletes every entity the query selects (ignoring paging); returns how many.
    async fn purge(&self, tenant: &Tenant, query: &EntityQuery) -> Result<u64>;

    async fn tenant_exists(&self, tenant: &Tenant) -> Result<bool>;

    /// Every entity type of the tenant with its attributes (for discovery).
    async fn type_stats(&self, tenant: &Tenant) -> Result<Vec<crate::ngsi::query::TypeStats>>;

    async fn tenants(&self) -> Result<Vec<String>>;

    /// Installs the observer shown every later successful write, inside its transaction.
    fn set_write_observer(&self, observer: Arc<dyn WriteObserver>);

    /// Installs the guard every later write is checked by, inside its transaction.
    fn set_write_guard(&self, guard: Arc<dyn WriteGuard>);

    /// Runs the write guard's check on an entity written outside `write` (a temporal
    /// entity created with its history).
    fn check_entity(&self, tenant: &Tenant, entity: &Entity) -> Result<()>;
}

#[async_trait]
pub trait ContextRepository: Send + Sync {
    async fn put_context(&self, record: ContextRecord) -> Result<()>;
    async fn delete_context(&self, url: &str) -> Result<()>;
    async fn contexts(&self) -> Result<Vec<ContextRecord>>;
}

/// Which entities a temporal request covers (types OR'ed), with names expanded.
#[derive(Debug, Clone, Default)]
pub struct TemporalSelection {
    pub types: Option<Vec<String>>,
    pub ids: Option<Vec<String>>,
    pub id_pattern: Option<String>,
    pub attrs: Option<Vec<String>>,
    pub limit: usize,
    pub offset: usize,
    /// `orderBy=id`: `Some(false)` ascending, `Some(true)` descending; `None` keeps the
    /// store's own (insertion) order.
    pub id_descending: Option<bool>,
}

pub use sqlite::temporal::NewInstance;

/// Attribute history. Writes through `EntityStore` record their own history; these
/// are the temporal API's direct operations.
#[async_trait]
pub trait TemporalStore: Send + Sync {
    /// Adds instances (and creates the temporal entity if needed); true if created.
    async fn temporal_add(
        &self,
        tenant: &Tenant,
        entity: TemporalEntity,
        add: Vec<NewInstance>,
    ) -> Result<bool>;
    async fn temporal_query(
        &self,
        tenant: &Tenant,
        sel: &TemporalSelection,
        q: &TemporalQuery,
    ) -> Result<Vec<TemporalResult>>;
    async fn temporal_delete_entity(&self, tenant: &Tenant, id: &str) -> Result<bool>;
    async fn temporal_delete_attribute(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        ds: Option<&str>,
        all: bool,
    ) -> Result<u64>;
    async fn temporal_patch_instance(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        instance: i64,
        patch: Attribute,
    ) -> Result<bool>;
    async fn temporal_delete_instance(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        instance: i64,
    ) -> Result<bool>;
    /// Retention: deletes the history dated before `before_us` (observedAt, else
    /// createdAt) of the tenant's entities having one of the types `include` (every
    /// entity when `None`) and none of `exclude`, a type given as its IRI or the IRI's
    /// last segment. Returns how many instances went.
    async fn temporal_prune(
        &self,
        tenant: &Tenant,
        include: Option<Vec<String>>,
        exclude: Vec<String>,
        before_us: i64,
    ) -> Result<u64>;
}

/// A subscription as stored: the document (the domain's serialized `Subscription`) and
/// its delivery status.
#[derive(Debug, Clone)]
pub struct SubscriptionRecord {
    pub doc: Value,
    pub status: DeliveryStatus,
}

/// A notification queued for delivery, inside the transaction of the write that caused
/// it (the outbox).
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub tenant: Tenant,
    pub subscription_id: String,
    /// Notifications for the same (subscription, entity) are delivered in order.
    pub entity_id: String,
    /// What the notification shows (JSON, produced and read by the domain).
    pub payload: String,
}

/// What a write observer wants stored with a write.
#[derive(Debug, Default)]
pub struct Observed {
    pub rows: Vec<OutboxRow>,
    /// Notifications dropped because a subscription's queue was full: (tenant, id, n).
    pub dropped: Vec<(Tenant, String, u64)>,
}

/// Called by a backend inside the transaction of every successful entity write; what it
/// returns is stored in the same transaction.
pub trait WriteObserver: Send + Sync {
    fn observe(&self, tenant: &Tenant, result: &WriteResult, now: &str) -> Observed;
}

/// Checks, inside the transaction, every entity a write is about to store: the one place
/// every write path (single, batch, alert worker) goes through. Runs on the writer
/// thread, so it must be cheap and must not wait on the store.
pub trait WriteGuard: Send + Sync {
    /// The entity as it will be stored; an error refuses this write (only this one).
    fn check(&self, tenant: &Tenant, entity: &Entity) -> Result<()>;
    /// Told of each entity stored or deleted (keeps caches of configuration entities,
    /// such as validation policies, in step with the store).
    fn stored(&self, tenant: &Tenant, before: Option<&Entity>, after: Option<&Entity>);
}

/// Several guards, checked in order.
pub struct Guards(pub Vec<Arc<dyn WriteGuard>>);

impl WriteGuard for Guards {
    fn check(&self, tenant: &Tenant, entity: &Entity) -> Result<()> {
        self.0.iter().try_for_each(|g| g.check(tenant, entity))
    }
    fn stored(&self, tenant: &Tenant, before: Option<&Entity>, after: Option<&Entity>) {
        self.0.iter().for_each(|g| g.stored(tenant, before, after));
    }
}

/// A queued notification handed to a delivery worker, leased until it reports back.
#[derive(Debug, Clone)]
pub struct ClaimedNotification {
    pub seq: i64,
    pub tenant: Tenant,
    pub subscription_id: String,
    pub entity_id: String,
    pub payload: String,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Delivered,
    /// Failed; try again at this time (ms since the epoch).
    Retry {
        at_ms: i64,
        error: String,
    },
    /// Failed for the last time (or the subscription is gone): drop it.
    GiveUp {
        error: String,
    },
    /// Not attempted (endpoint busy): hand it out again at this time.
    Defer {
        at_ms: i64,
    },
}

#[derive(Debug, Clone)]
pub struct DeliveryReport {
    pub seq: i64,
    pub tenant: Tenant,
    pub subscription_id: String,
    pub outcome: DeliveryOutcome,
    /// When the attempt was made (broker time format).
    pub at: String,
}

/// Something another broker process sharing the database changed, that this one keeps
/// in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreChange {
    /// A subscription was created, updated or deleted: reload it.
    Subscription { tenant: Tenant, id: String },
    /// Hosted or cached @contexts changed: reload them.
    Contexts,
}

#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Stores a new subscription; AlreadyExists if the id is taken in the tenant.
    async fn create_subscription(&self, tenant: &Tenant, id: &str, doc: Value) -> Result<()>;
    /// Replaces the document; false if there is no such subscription.
    async fn update_subscription(&self, tenant: &Tenant, id: &str, doc: Value) -> Result<bool>;
    /// Deletes it and its queued notifications; false if there is no such subscription.
    async fn delete_subscription(&self, tenant: &Tenant, id: &str) -> Result<bool>;
    async fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<SubscriptionRecord>>;
    /// A page of a tenant's subscriptions (by id) and the total.
    async fn list_subscriptions(
        &self,
        tenant: &Tenant,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<SubscriptionRecord>, u64)>;
    /// Every subscription of every tenant (start-up).
    async fn all_subscriptions(&self) -> Result<Vec<(Tenant, SubscriptionRecord)>>;

    /// Queues notifications outside an entity write (periodic ones).
    async fn enqueue(&self, rows: Vec<OutboxRow>) -> Result<()>;
    /// Leases up to `limit` due notifications, oldest first, at most one per
    /// (subscription, entity) at a time.
    async fn claim(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<ClaimedNotification>>;
    /// Records attempts: removes delivered/abandoned rows, reschedules the others and
    /// updates the subscriptions' delivery status.
    async fn finish(&self, reports: Vec<DeliveryReport>) -> Result<()>;
    /// Makes every queued notification due now (after a restart).
    async fn release_all(&self, now_ms: i64) -> Result<()>;
    /// Queued notifications per (tenant, subscription).
    async fn pending_counts(&self) -> Result<Vec<(Tenant, String, u64)>>;
    /// What other broker processes on the same database change, for backends that
    /// allow several (`None`: this broker is alone).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<StoreChange>> {
        None
    }
    /// Whether this broker sends the periodic (timeInterval) notifications: with several
    /// brokers on one database exactly one does, or each would send them. A broker alone
    /// always leads.
    async fn leads_periodic(&self) -> bool {
        true
    }
}

pub use dump::DumpStore;

/// Everything a backend provides.
pub trait Store:
    EntityStore + ContextRepository + TemporalStore + SubscriptionStore + DumpStore
{
}
impl<T: EntityStore + ContextRepository + TemporalStore + SubscriptionStore + DumpStore> Store
    for T
{
}

pub type SharedStore = Arc<dyn Store>;

/// Lets a `SharedStore` be used where only the context repository is wanted.
pub struct ContextRepo(pub SharedStore);

#[async_trait]
impl ContextRepository for ContextRepo {
    async fn put_context(&self, record: ContextRecord) -> Result<()> {
        self.0.put_context(record).await
    }
    async fn delete_context(&self, url: &str) -> Result<()> {
        self.0.delete_context(url).await
    }
    async fn contexts(&self) -> Result<Vec<ContextRecord>> {
        self.0.contexts().await
    }
}
