//! Dump, restore and rename on PostgreSQL: not written yet. Every call says so with a
//! 501 (OperationNotSupported) naming the SQLite backend as the one that has them, so an
//! export or import against PostgreSQL fails loudly instead of writing a partial dump.

use async_trait::async_trait;

use super::Postgres;
use crate::error::{NgsiError, Result};
use crate::ngsi::temporal::TemporalEntity;
use crate::ngsi::{Entity, Tenant};
use crate::store::dump::{
    DumpStore, HistoryRow, RenameRow, RestoreItem, RestoreSession, SubscriptionRow, TenantRow,
};

fn missing<T>() -> Result<T> {
    Err(NgsiError::unsupported(
        "dump, restore and rename are not available on the PostgreSQL backend yet; \
         export from and import into the SQLite backend",
    ))
}

#[async_trait]
impl DumpStore for Postgres {
    async fn dump_tenants(&self) -> Result<Vec<TenantRow>> {
        missing()
    }
    async fn dump_entities(&self, _: &Tenant, _: Option<&str>, _: usize) -> Result<Vec<Entity>> {
        missing()
    }
    async fn dump_temporal_entities(
        &self,
        _: &Tenant,
        _: Option<&str>,
        _: usize,
    ) -> Result<Vec<TemporalEntity>> {
        missing()
    }
    async fn dump_history(&self, _: &Tenant, _: Option<i64>, _: usize) -> Result<Vec<HistoryRow>> {
        missing()
    }
    async fn dump_subscriptions(
        &self,
        _: &Tenant,
        _: Option<&str>,
        _: usize,
    ) -> Result<Vec<SubscriptionRow>> {
        missing()
    }
    async fn dump_renames(&self, _: &Tenant) -> Result<Vec<RenameRow>> {
        missing()
    }
    async fn restore_begin(&self) -> Result<RestoreSession> {
        missing()
    }
    async fn restore(&self, _: Option<&RestoreSession>, _: Vec<RestoreItem>) -> Result<()> {
        missing()
    }
    async fn restore_commit(&self, _: &RestoreSession) -> Result<u64> {
        missing()
    }
    async fn restore_abort(&self, _: &RestoreSession) -> Result<()> {
        missing()
    }
    async fn rename_entity(&self, _: &Tenant, _: &str, _: &str) -> Result<RenameRow> {
        missing()
    }
}
