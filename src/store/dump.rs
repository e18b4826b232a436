//! Raw access for dump and restore: the store's content page by page, and written back
//! verbatim (instance ids and timestamps included). Kept small and storage-neutral so
//! every backend implements it the same way: pages are ordered by a key and resumed
//! after the last key seen (no offsets, no server-side cursors), restored items are
//! plain structs, and a restore either goes straight in (`session = None`) or is staged
//! in a session that is committed or aborted as a whole.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Result;
use crate::jsonld::ContextRecord;
use crate::ngsi::subscription::DeliveryStatus;
use crate::ngsi::temporal::TemporalEntity;
use crate::ngsi::{Entity, Tenant};

/// A tenant and its settings (today: when it was created).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRow {
    pub name: String,
    pub created_at: String,
}

/// One attribute instance of the history, exactly as stored. Times are microseconds
/// since the epoch; `body` is the instance (type, value member, observedAt, unitCode,
/// sub-attributes) without its system members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub instance_id: i64,
    pub entity_id: String,
    pub attr: String,
    pub dataset_id: Option<String>,
    pub observed_us: Option<i64>,
    pub created_us: i64,
    pub modified_us: i64,
    pub deleted_us: Option<i64>,
    pub body: Map<String, Value>,
}

/// An entity renamed by `rename`, kept so that a dump carries the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenameRow {
    pub old_id: String,
    pub new_id: String,
    pub renamed_at: String,
    /// Entities whose relationships were rewritten to the new id.
    pub rewritten: Vec<String>,
}

/// A subscription with its delivery status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRow {
    pub id: String,
    pub doc: Value,
    pub status: DeliveryStatus,
}

/// What a restore writes; each item replaces what has the same key (idempotent).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // short-lived, moved straight to the store
pub enum RestoreItem {
    Tenant(TenantRow),
    Context(ContextRecord),
    Entity(String, Entity),
    TemporalEntity(String, TemporalEntity),
    History(String, HistoryRow),
    Subscription(String, SubscriptionRow),
    Rename(String, RenameRow),
}

/// A staged restore: nothing of it is visible until it is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSession(pub String);

#[async_trait]
pub trait DumpStore: Send + Sync {
    /// Every tenant (the default one is the empty name), by name.
    async fn dump_tenants(&self) -> Result<Vec<TenantRow>>;
    /// Up to `limit` entities of the tenant with an id greater than `after`, by id,
    /// expired ones included (they are part of the stored state).
    async fn dump_entities(
        &self,
        tenant: &Tenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entity>>;
    /// Up to `limit` temporal entities (deleted ones included) after `after`, by id.
    async fn dump_temporal_entities(
        &self,
        tenant: &Tenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TemporalEntity>>;
    /// Up to `limit` history rows of the tenant with an instance id greater than
    /// `after`, by instance id.
    async fn dump_history(
        &self,
        tenant: &Tenant,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HistoryRow>>;
    /// Up to `limit` subscriptions after `after`, by id.
    async fn dump_subscriptions(
        &self,
        tenant: &Tenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SubscriptionRow>>;
    /// The renames recorded in the tenant, oldest first.
    async fn dump_renames(&self, tenant: &Tenant) -> Result<Vec<RenameRow>>;

    /// Starts a staged restore.
    async fn restore_begin(&self) -> Result<RestoreSession>;
    /// Writes a batch: staged in the session, or applied at once (and committed) when
    /// there is none. A history row whose instance id belongs to another attribute
    /// series is refused (Conflict).
    async fn restore(
        &self,
        session: Option<&RestoreSession>,
        items: Vec<RestoreItem>,
    ) -> Result<()>;
    /// Applies everything staged in the session, atomically; returns how many items.
    async fn restore_commit(&self, session: &RestoreSession) -> Result<u64>;
    /// Drops what the session staged.
    async fn restore_abort(&self, session: &RestoreSession) -> Result<()>;

    /// Moves an entity to a new id, atomically: its current state, its whole history,
    /// and every reference other entities (current state and history) hold to it
    /// (rewritten with `ngsi::rename`); the rename is recorded (`dump_renames`).
    /// ResourceNotFound if there is no such entity, AlreadyExists if the new id is taken
    /// (by an entity or a history).
    async fn rename_entity(&self, tenant: &Tenant, old_id: &str, new_id: &str)
        -> Result<RenameRow>;
}
