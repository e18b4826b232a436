//! The PostgreSQL + PostGIS backend, for deployments that outgrow one machine: several
//! broker processes may share one database and behave as one broker.
//!
//! Every write is one transaction. The entities it touches are locked first (advisory
//! locks, in a fixed order), then each operation runs in its own savepoint, so one
//! failing does not undo its neighbours; history rows and the write observer's outbox
//! rows are written in the same transaction. Changes other brokers must know about
//! (subscriptions, hosted contexts) are announced with `NOTIFY` inside the transaction
//! that makes them, so they are heard only once committed.
//!
//! The database is driven from a small runtime of its own, so connections do not
//! depend on which HTTP worker happened to open them.

mod changes;
mod dump;
mod entities;
mod geo_sql;
mod q_sql;
mod schema;
mod sql;
mod subscriptions;
mod temporal;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use sha2::{Digest, Sha256};

use super::{
    ContextRepository, Effect, EntityStore, NewInstance, Outcome, StoreChange, TemporalSelection,
    TemporalStore, WriteObserver, WriteOp, WriteResult,
};
use crate::error::{NgsiError, Result};
use crate::jsonld::{ContextKind, ContextRecord};
use crate::ngsi::attribute::Attribute;
use crate::ngsi::query::{EntityQuery, QueryPage};
use crate::ngsi::temporal::{TemporalEntity, TemporalQuery, TemporalResult};
use crate::ngsi::{time, Entity, Tenant};

/// Most connections one broker opens.
const POOL_SIZE: usize = 16;

pub(crate) fn db_err(e: tokio_postgres::Error) -> NgsiError {
    match e.as_db_error() {
        Some(db) => {
            NgsiError::internal(format!("postgres: {}: {}", db.code().code(), db.message()))
        }
        None => NgsiError::internal(format!("postgres: {e}")),
    }
}

fn pool_err(e: impl std::fmt::Display) -> NgsiError {
    NgsiError::internal(format!("postgres pool: {e}"))
}

/// True for a `--database-url` this backend serves.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A runtime that may be dropped anywhere, async code included.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

pub struct PgStore {
    pool: Pool,
    /// Drives the connections; lives as long as the store.
    _rt: OwnedRuntime,
    handle: tokio::runtime::Handle,
    /// Names this broker process: its connections' application_name, the owner of the
    /// outbox leases it takes, the origin of the changes it announces.
    owner: String,
    observer: parking_lot::RwLock<Option<Arc<dyn WriteObserver>>>,
    guard: parking_lot::RwLock<Option<Arc<dyn crate::store::WriteGuard>>>,
    /// What other brokers changed (heard with LISTEN).
    changes: tokio::sync::broadcast::Sender<StoreChange>,
    /// The connection holding the periodic-notification leadership (a session advisory
    /// lock: released by PostgreSQL when this broker's connection goes away).
    leader: Arc<tokio::sync::Mutex<Option<deadpool_postgres::Object>>>,
}

/// The advisory-lock key of the periodic-notification leadership.
const PERIODIC_LEADER_KEY: i64 = 0x6361_6c61_6e71_7565; // "calanque"

/// The store is shared behind an `Arc`; the traits are implemented on that.
pub struct Postgres(pub Arc<PgStore>);

type TxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

impl PgStore {
    /// Connects, applies the migrations and starts listening for other brokers' changes.
    pub fn open(url: &str) -> Result<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| NgsiError::internal(format!("the database URL is not valid: {e}")))?;
        let owner = format!("calanque-{}", uuid::Uuid::new_v4().simple());
        config.application_name(&owner);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(NgsiError::internal)?;
        let handle = rt.handle().clone();
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(pool_err)?;
        let (changes, _) = tokio::sync::broadcast::channel(1024);
        let store = Self {
            pool,
            _rt: OwnedRuntime(Some(rt)),
            handle,
            owner,
            observer: parking_lot::RwLock::new(None),
            guard: parking_lot::RwLock::new(None),
            changes,
            leader: Arc::new(tokio::sync::Mutex::new(None)),
        };
        // Start-up may be called from async code: block a plain thread, not this one.
        let (pool, h) = (store.pool.clone(), store.handle.clone());
        std::thread::spawn(move || {
            h.block_on(async move {
                let mut client = pool.get().await.map_err(pool_err)?;
                schema::migrate(&mut client).await
            })
        })
        .join()
        .map_err(|_| NgsiError::internal("the migration thread panicked"))??;
        store.handle.spawn(changes::listen(
            config,
            store.owner.clone(),
            store.changes.clone(),
        ));
        Ok(store)
    }

    pub fn set_observer(&self, observer: Arc<dyn WriteObserver>) {
        *self.observer.write() = Some(observer);
    }

    /// Tells the other brokers, once the transaction commits, what it changed.
    async fn announce(&self, c: &impl GenericClient, change: &StoreChange) -> Result<()> {
        let payload = changes::encode(&self.owner, change);
        c.execute("SELECT pg_notify('calanque_changes', $1)", &[&payload])
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Connections close now; the runtime (`_rt`) then shuts down in the background.
        self.pool.close();
    }
}

impl Postgres {
    /// Runs `f` in one transaction on the store's runtime: committed if it succeeds,
    /// rolled back if not.
    async fn transaction<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a deadpool_postgres::Transaction<'a>, &'a PgStore) -> TxFuture<'a, T>
            + Send
            + 'static,
    {
        let store = self.0.clone();
        self.0
            .handle
            .spawn(async move {
                let mut client = store.pool.get().await.map_err(pool_err)?;
                let tx = client.transaction().await.map_err(db_err)?;
                match f(&tx, &store).await {
                    Ok(v) => {
                        tx.commit().await.map_err(db_err)?;
                        Ok(v)
                    }
                    Err(e) => {
                        let _ = tx.rollback().await;
                        Err(e)
                    }
                }
            })
            .await
            .map_err(NgsiError::internal)?
    }

    /// True while this broker holds the periodic-notification leadership: it keeps the
    /// connection that took the session advisory lock; when that connection fails (or
    /// the broker dies), PostgreSQL releases the lock and another broker takes it.
    pub async fn periodic_leadership(&self) -> bool {
        let (pool, leader) = (self.0.pool.clone(), self.0.leader.clone());
        let led = self.0.handle.spawn(async move {
            let mut held = leader.lock().await;
            if let Some(conn) = held.as_ref() {
                if conn.simple_query("SELECT 1").await.is_ok() {
                    return true;
                }
                *held = None;
            }
            let Ok(conn) = pool.get().await else {
                return false;
            };
            let took = conn
                .query_one("SELECT pg_try_advisory_lock($1)", &[&PERIODIC_LEADER_KEY])
                .await
                .ok()
                .and_then(|row| row.try_get::<_, bool>(0).ok())
                .unwrap_or(false);
            if took {
                // Out of the pool for good: the lock lives as long as this session.
                *held = Some(conn);
            }
            took
        });
        led.await.unwrap_or(false)
    }

    /// Runs a read on a pooled connection, on the store's runtime.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a deadpool_postgres::Client) -> TxFuture<'a, T> + Send + 'static,
    {
        let store = self.0.clone();
        self.0
            .handle
            .spawn(async move {
                let client = store.pool.get().await.map_err(pool_err)?;
                f(&client).await
            })
            .await
            .map_err(NgsiError::internal)?
    }
}

/// The advisory-lock key of an entity (the same in every broker process).
fn lock_key(tenant: &Tenant, id: &str) -> i64 {
    let digest = Sha256::digest(format!("{}\u{0}{id}", tenant.as_str()).as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Locks the entities a write touches until its transaction ends, in key order.
async fn lock_entities<'a>(
    c: &impl GenericClient,
    tenant: &Tenant,
    ids: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let mut keys: Vec<i64> = ids.map(|id| lock_key(tenant, id)).collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(());
    }
    c.execute("SELECT calanque_lock($1)", &[&keys])
        .await
        .map_err(db_err)?;
    Ok(())
}

/// One operation inside its own savepoint: its changes stay if it succeeds.
async fn apply(
    c: &deadpool_postgres::Transaction<'_>,
    tenant: &Tenant,
    op: WriteOp,
    now: &str,
    observer: Option<&dyn WriteObserver>,
    guard: Option<&dyn crate::store::WriteGuard>,
) -> Result<WriteResult> {
    c.batch_execute("SAVEPOINT op").await.map_err(db_err)?;
    let result = async {
        let result = apply_op(c, tenant, op, now, guard).await?;
        if result.outcome != Outcome::Unchanged {
            crate::metrics::entity_written();
            if let Some(guard) = guard {
                guard.stored(tenant, result.before.as_ref(), result.after.as_ref());
            }
        }
        if let Some(observer) = observer {
            if result.outcome != Outcome::Unchanged {
                let observed = observer.observe(tenant, &result, now);
                subscriptions::store_observed(c, &observed, now).await?;
            }
        }
        Ok(result)
    }
    .await;
    let end = if result.is_ok() {
        "RELEASE SAVEPOINT op"
    } else {
        "ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op"
    };
    c.batch_execute(end).await.map_err(db_err)?;
    result
}

async fn apply_op(
    c: &deadpool_postgres::Transaction<'_>,
    tenant: &Tenant,
    op: WriteOp,
    now: &str,
    guard: Option<&dyn crate::store::WriteGuard>,
) -> Result<WriteResult> {
    let current = entities::load(c, tenant, &op.entity_id, now).await?;
    let before = current.clone();
    match (op.mutation)(current)? {
        Effect::Put(entity, report) => {
            if let Some(guard) = guard {
                guard.check(tenant, &entity)?;
            }
            entities::save(c, tenant, &entity, before.as_ref(), now).await?;
            temporal::record_change(c, tenant, before.as_ref(), Some(&entity)).await?;
            let outcome = if before.is_some() {
                Outcome::Updated
            } else {
                Outcome::Created
            };
            Ok(WriteResult {
                outcome,
                report,
                before,
                after: Some(entity),
            })
        }
        Effect::Delete => {
            entities::delete(c, tenant, &op.entity_id).await?;
            temporal::record_change(c, tenant, before.as_ref(), None).await?;
            Ok(WriteResult {
                outcome: Outcome::Deleted,
                report: Default::default(),
                before,
                after: None,
            })
        }
        Effect::Keep(report) => Ok(WriteResult {
            outcome: Outcome::Unchanged,
            report,
            after: before.clone(),
            before,
        }),
    }
}

#[async_trait]
impl EntityStore for Postgres {
    async fn write(&self, tenant: &Tenant, ops: Vec<WriteOp>) -> Result<Vec<Result<WriteResult>>> {
        let tenant = tenant.clone();
        let observer = self.0.observer.read().clone();
        let guard = self.0.guard.read().clone();
        self.transaction(move |tx, _| {
            Box::pin(async move {
                let ids: Vec<String> = ops.iter().map(|o| o.entity_id.clone()).collect();
                lock_entities(tx, &tenant, ids.iter().map(String::as_str)).await?;
                let now = time::now();
                let mut results = Vec::with_capacity(ops.len());
                for op in ops {
                    results.push(
                        apply(tx, &tenant, op, &now, observer.as_deref(), guard.as_deref()).await,
                    );
                }
                Ok(results)
            })
        })
        .await
    }

    async fn get(&self, tenant: &Tenant, id: &str) -> Result<Option<Entity>> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.read(move |c| {
            Box::pin(async move { entities::load(c, &tenant, &id, &time::now()).await })
        })
        .await
    }

    async fn query(&self, tenant: &Tenant, query: &EntityQuery) -> Result<QueryPage<Entity>> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.read(move |c| {
            Box::pin(async move {
                let now = time::now();
                let items = if query.limit == 0 {
                    Vec::new()
                } else {
                    entities::select(c, &tenant, &query, &now).await?
                };
                let total = if query.count {
                    Some(entities::count(c, &tenant, &query, &now).await?)
                } else {
                    None
                };
                Ok(QueryPage { items, total })
            })
        })
        .await
    }

    async fn ids(&self, tenant: &Tenant, query: &EntityQuery) -> Result<Vec<String>> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.read(move |c| {
            Box::pin(async move { entities::select_ids(c, &tenant, &query, &time::now()).await })
        })
        .await
    }

    async fn purge(&self, tenant: &Tenant, query: &EntityQuery) -> Result<u64> {
        let (tenant, query) = (tenant.clone(), query.clone());
        let observer = self.0.observer.read().clone();
        let guard = self.0.guard.read().clone();
        self.transaction(move |tx, _| {
            Box::pin(async move {
                let now = time::now();
                let ids = entities::select_ids(tx, &tenant, &query, &now).await?;
                lock_entities(tx, &tenant, ids.iter().map(String::as_str)).await?;
                let mut n = 0u64;
                for id in &ids {
                    // Loaded after the lock: another broker may have changed it since.
                    let Some(before) = entities::load(tx, &tenant, id, &now).await? else {
                        continue;
                    };
                    entities::delete(tx, &tenant, id).await?;
                    n += 1;
                    if let Some(guard) = &guard {
                        guard.stored(&tenant, Some(&before), None);
                    }
                    if let Some(observer) = &observer {
                        let result = WriteResult {
                            outcome: Outcome::Deleted,
                            report: Default::default(),
                            before: Some(before),
                            after: None,
                        };
                        let observed = observer.observe(&tenant, &result, &now);
                        subscriptions::store_observed(tx, &observed, &now).await?;
                    }
                }
                Ok(n)
            })
        })
        .await
    }

    async fn tenant_exists(&self, tenant: &Tenant) -> Result<bool> {
        if tenant.is_default() {
            return Ok(true);
        }
        let name = tenant.as_str().to_string();
        self.read(move |c| {
            Box::pin(async move {
                let stmt = c
                    .prepare_cached("SELECT 1 FROM tenants WHERE name = $1")
                    .await
                    .map_err(db_err)?;
                Ok(c.query_opt(&stmt, &[&name])
                    .await
                    .map_err(db_err)?
                    .is_some())
            })
        })
        .await
    }

    async fn type_stats(&self, tenant: &Tenant) -> Result<Vec<crate::ngsi::query::TypeStats>> {
        let tenant = tenant.clone();
        self.read(move |c| {
            Box::pin(async move { entities::type_stats(c, &tenant, &time::now()).await })
        })
        .await
    }

    async fn tenants(&self) -> Result<Vec<String>> {
        self.read(|c| {
            Box::pin(async move {
                let rows = c
                    .query("SELECT name FROM tenants ORDER BY name COLLATE \"C\"", &[])
                    .await
                    .map_err(db_err)?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
        .await
    }

    fn set_write_observer(&self, observer: Arc<dyn WriteObserver>) {
        self.0.set_observer(observer);
    }

    fn set_write_guard(&self, guard: Arc<dyn crate::store::WriteGuard>) {
        *self.0.guard.write() = Some(guard);
    }

    fn check_entity(&self, tenant: &Tenant, entity: &crate::ngsi::Entity) -> Result<()> {
        match self.0.guard.read().as_deref() {
            Some(guard) => guard.check(tenant, entity),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl ContextRepository for Postgres {
    async fn put_context(&self, r: ContextRecord) -> Result<()> {
        self.transaction(move |tx, store| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO contexts (url, local_id, kind, document, created_at, tenant) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (url) DO UPDATE SET document = excluded.document, kind = excluded.kind",
                    &[&r.url, &r.local_id, &r.kind.as_str(), &r.document.to_string(), &time::format(r.created_at), &r.tenant],
                )
                .await
                .map_err(db_err)?;
                store.announce(tx, &StoreChange::Contexts).await
            })
        })
        .await
    }

    async fn delete_context(&self, url: &str) -> Result<()> {
        let url = url.to_string();
        self.transaction(move |tx, store| {
            Box::pin(async move {
                tx.execute("DELETE FROM contexts WHERE url = $1", &[&url])
                    .await
                    .map_err(db_err)?;
                store.announce(tx, &StoreChange::Contexts).await
            })
        })
        .await
    }

    async fn contexts(&self) -> Result<Vec<ContextRecord>> {
        self.read(|c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT url, local_id, kind, document, created_at, tenant FROM contexts",
                        &[],
                    )
                    .await
                    .map_err(db_err)?;
                Ok(rows
                    .iter()
                    .filter_map(|r| {
                        let (url, local_id, kind, doc, created, tenant): (
                            String,
                            String,
                            String,
                            String,
                            String,
                            Option<String>,
                        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
                        Some(ContextRecord {
                            tenant,
                            url,
                            local_id,
                            kind: ContextKind::parse(&kind)?,
                            document: serde_json::from_str(&doc).ok()?,
                            created_at: time::parse(&created).ok()?,
                        })
                    })
                    .collect())
            })
        })
        .await
    }
}

#[async_trait]
impl TemporalStore for Postgres {
    async fn temporal_add(
        &self,
        tenant: &Tenant,
        entity: TemporalEntity,
        add: Vec<NewInstance>,
    ) -> Result<bool> {
        let tenant = tenant.clone();
        self.transaction(move |tx, _| {
            Box::pin(async move {
                lock_entities(tx, &tenant, std::iter::once(entity.id.as_str())).await?;
                entities::ensure_tenant(tx, &tenant, &time::now()).await?;
                let existing = temporal::load_entity(tx, &tenant, &entity.id).await?;
                let merged =
                    crate::ngsi::temporal::changes::merged_entity(existing.as_ref(), &entity);
                temporal::upsert_entity(tx, &tenant, &merged).await?;
                let now_us = time::parse(&time::now()).map(time::micros).unwrap_or(0);
                temporal::insert_all(tx, &tenant, &merged.id, &add, now_us).await?;
                Ok(existing.is_none())
            })
        })
        .await
    }

    async fn temporal_query(
        &self,
        tenant: &Tenant,
        sel: &TemporalSelection,
        q: &TemporalQuery,
    ) -> Result<Vec<TemporalResult>> {
        let (tenant, sel, q) = (tenant.clone(), sel.clone(), q.clone());
        self.read(move |c| {
            Box::pin(async move {
                let entities = temporal::select_entities(c, &tenant, &sel).await?;
                let mut out = Vec::with_capacity(entities.len());
                for entity in entities {
                    let attrs = sel.attrs.as_deref();
                    let aggregated =
                        q.format == crate::ngsi::temporal::request::TemporalFormat::Aggregated;
                    let (instances, aggregates) = if aggregated {
                        (
                            Vec::new(),
                            temporal::aggregates(c, &tenant, &entity.id, attrs, &q).await?,
                        )
                    } else {
                        (
                            temporal::instances(c, &tenant, &entity.id, attrs, &q).await?,
                            Vec::new(),
                        )
                    };
                    out.push(TemporalResult {
                        entity,
                        instances,
                        aggregates,
                    });
                }
                Ok(out)
            })
        })
        .await
    }

    async fn temporal_delete_entity(&self, tenant: &Tenant, id: &str) -> Result<bool> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.transaction(move |tx, _| {
            Box::pin(async move { temporal::delete_entity(tx, &tenant, &id).await })
        })
        .await
    }

    async fn temporal_delete_attribute(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        ds: Option<&str>,
        all: bool,
    ) -> Result<u64> {
        let (tenant, id, attr, ds) = (
            tenant.clone(),
            id.to_string(),
            attr.to_string(),
            ds.map(str::to_string),
        );
        self.transaction(move |tx, _| {
            Box::pin(async move {
                temporal::delete_attribute(tx, &tenant, &id, &attr, ds.as_deref(), all).await
            })
        })
        .await
    }

    async fn temporal_prune(
        &self,
        tenant: &Tenant,
        include: Option<Vec<String>>,
        exclude: Vec<String>,
        before_us: i64,
    ) -> Result<u64> {
        const CHUNK: i64 = 5_000;
        let mut total = 0;
        // One chunk per transaction, so writes of other brokers interleave.
        loop {
            let (tenant, include, exclude) = (tenant.clone(), include.clone(), exclude.clone());
            let n = self
                .transaction(move |tx, _| {
                    Box::pin(async move {
                        temporal::prune_chunk(
                            tx,
                            &tenant,
                            include.as_deref(),
                            &exclude,
                            before_us,
                            CHUNK,
                        )
                        .await
                    })
                })
                .await?;
            total += n;
            if n < CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    async fn temporal_patch_instance(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        instance: i64,
        patch: Attribute,
    ) -> Result<bool> {
        let (tenant, id, attr) = (tenant.clone(), id.to_string(), attr.to_string());
        self.transaction(move |tx, _| {
            Box::pin(async move {
                temporal::patch_instance(tx, &tenant, &id, &attr, instance, &patch).await
            })
        })
        .await
    }

    async fn temporal_delete_instance(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        instance: i64,
    ) -> Result<bool> {
        let (tenant, id, attr) = (tenant.clone(), id.to_string(), attr.to_string());
        self.transaction(move |tx, _| {
            Box::pin(
                async move { temporal::delete_instance(tx, &tenant, &id, &attr, instance).await },
            )
        })
        .await
    }
}
