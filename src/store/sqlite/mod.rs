//! The embedded backend: one SQLite file in WAL mode, a group-committing writer thread
//! and a small pool of reader connections.

mod checkpointer;
mod dump;
mod entities;
#[cfg(test)]
mod q_equivalence_tests;
mod q_sql;
mod rename;
mod retention;
mod schema;
mod speculation;
mod subscriptions;
pub mod temporal;
mod value_index;
mod writer;
mod writer_cache;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection, OpenFlags};
use tokio::sync::oneshot;

use super::{
    ContextRepository, Effect, EntityStore, Outcome, TemporalSelection, TemporalStore, WriteGuard,
    WriteObserver, WriteOp, WriteResult,
};
use crate::error::{NgsiError, Result};
use crate::jsonld::{ContextKind, ContextRecord};
use crate::ngsi::attribute::Attribute;
use crate::ngsi::query::{EntityQuery, QueryPage};
use crate::ngsi::temporal::{TemporalEntity, TemporalQuery, TemporalResult};
use crate::ngsi::{time, Entity, Tenant};
use speculation::Prepared;
use temporal::NewInstance;

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Survives a crash of the broker process (WAL, synchronous=NORMAL).
    Process,
    /// Survives a power cut too (fsync on every commit, synchronous=FULL).
    Power,
}

/// Writes per request prepared on the async thread rather than the blocking pool.
const INLINE_PREPARE: usize = 4;

/// The writer's page cache, as SQLite's `cache_size` (negative: KiB). A smaller one
/// was measured faster for PATCH (see docs/benchmarks.md, session 8) but is not taken
/// until the notification latency it may have changed is measured against this one.
const WRITER_CACHE_KIB: i32 = -16000;

pub struct SqliteStore {
    path: PathBuf,
    writer: std::sync::mpsc::Sender<writer::Message>,
    readers: Mutex<Vec<Connection>>,
    /// Sees every successful entity write inside its transaction (subscriptions).
    observer: parking_lot::RwLock<Option<Arc<dyn WriteObserver>>>,
    /// Checks every entity before it is stored (Smart Data Model validation).
    guard: parking_lot::RwLock<Option<Arc<dyn WriteGuard>>>,
}

pub(crate) fn db_err(e: rusqlite::Error) -> NgsiError {
    NgsiError::internal(format!("sqlite: {e}"))
}

/// Settings and functions every connection needs.
fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    // Plans must not depend on bound values: otherwise a statement whose plan looked at
    // a parameter (any `LIMIT ?`) is expired by every new binding and compiled again on
    // each use, cached or not.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let re: Arc<regex::Regex> = ctx.get_or_create_aux(
                0,
                |v| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(regex::Regex::new(v.as_str()?)?)
                },
            )?;
            let text = ctx.get_raw(1).as_str().unwrap_or_default();
            Ok(re.is_match(text))
        },
    )
}

impl SqliteStore {
    pub fn open(path: &Path, durability: Durability) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                NgsiError::internal(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut conn = Connection::open(path).map_err(db_err)?;
        let sync = match durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000; PRAGMA cache_size = {WRITER_CACHE_KIB}; PRAGMA temp_store = MEMORY;"
        ))
        .map_err(db_err)?;
        schema::migrate(&mut conn).map_err(db_err)?;
        register_functions(&conn).map_err(db_err)?;
        // The write path uses more distinct statements than rusqlite's default 16:
        // evicted ones would be compiled again.
        conn.set_prepared_statement_cache_capacity(128);
        let writer = writer::spawn(conn, path).map_err(NgsiError::internal)?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            readers: Mutex::new(Vec::new()),
            observer: parking_lot::RwLock::new(None),
            guard: parking_lot::RwLock::new(None),
        })
    }

    /// Installs the observer every later write is shown to.
    pub fn set_observer(&self, observer: Arc<dyn WriteObserver>) {
        *self.observer.write() = Some(observer);
    }

    /// Installs the guard every later write is checked by.
    pub fn set_guard(&self, guard: Arc<dyn WriteGuard>) {
        *self.guard.write() = Some(guard);
    }

    fn open_reader(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(db_err)?;
        conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA cache_size = -4000;")
            .map_err(db_err)?;
        register_functions(&conn).map_err(db_err)?;
        Ok(conn)
    }

    /// Runs a read on a pooled connection, off the async threads.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match this.readers.lock().pop() {
                Some(c) => c,
                None => this.open_reader()?,
            };
            let out = f(&conn);
            let mut pool = this.readers.lock();
            if pool.len() < 4 {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(NgsiError::internal)?
    }

    /// Prepares each write on a pooled reader, off the writer thread (see
    /// `speculation`). Without a reader, the writes are left for the writer to make.
    ///
    /// A few writes are prepared right here on the async thread: a lookup by id and a
    /// decode take about as long as parsing the request did, and a hop to the blocking
    /// pool would add its latency to every write (with few writes in flight, a slower
    /// write is fewer writes per second). Batches go to the blocking pool.
    async fn prepare(
        self: &Arc<Self>,
        tenant: &Tenant,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Prepared>> {
        if ops.len() <= INLINE_PREPARE {
            return Ok(self.prepare_now(tenant, ops));
        }
        let (this, tenant) = (self.clone(), tenant.clone());
        tokio::task::spawn_blocking(move || this.prepare_now(&tenant, ops))
            .await
            .map_err(NgsiError::internal)
    }

    fn prepare_now(&self, tenant: &Tenant, ops: Vec<WriteOp>) -> Vec<Prepared> {
        let conn = match self.readers.lock().pop() {
            Some(c) => Ok(c),
            None => self.open_reader(),
        };
        let Ok(conn) = conn else {
            return ops.into_iter().map(Prepared::unprepared).collect();
        };
        let prepared = ops
            .into_iter()
            .map(|op| Prepared::on_reader(&conn, tenant, op))
            .collect();
        let mut pool = self.readers.lock();
        if pool.len() < 4 {
            pool.push(conn);
        }
        prepared
    }

    /// Runs a write in the writer thread's next group; answers after the commit.
    async fn write_job<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: writer::Job = Box::new(move |conn| {
            let value = f(conn);
            Box::new(move |committed: Result<()>| {
                let _ = tx.send(committed.map(|_| value));
            })
        });
        self.send(writer::Message::Write(job))?;
        rx.await
            .map_err(|_| NgsiError::internal("the sqlite writer dropped a job"))?
    }

    /// Runs `f` on the writer thread outside any transaction, after the writes queued
    /// before it.
    async fn alone<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel::<T>();
        let work = Box::new(move |conn: &Connection| {
            let _ = tx.send(f(conn));
        });
        self.send(writer::Message::Alone(work))?;
        rx.await
            .map_err(|_| NgsiError::internal("the sqlite writer dropped a job"))
    }

    fn send(&self, message: writer::Message) -> Result<()> {
        self.writer
            .send(message)
            .map_err(|_| NgsiError::internal("the sqlite writer has stopped"))
    }
}

/// The store is shared behind an `Arc`; the trait is implemented on that.
pub struct Sqlite(pub Arc<SqliteStore>);

/// What every write on the writer thread is shown to.
#[derive(Clone, Default)]
struct Hooks {
    observer: Option<Arc<dyn WriteObserver>>,
    guard: Option<Arc<dyn WriteGuard>>,
}

impl SqliteStore {
    fn hooks(&self) -> Hooks {
        Hooks {
            observer: self.observer.read().clone(),
            guard: self.guard.read().clone(),
        }
    }
}

fn apply(
    conn: &Connection,
    tenant: &Tenant,
    write: Prepared,
    now: &str,
    hooks: &Hooks,
) -> Result<WriteResult> {
    let observer = hooks.observer.as_deref();
    let guard = hooks.guard.as_deref();
    // Every refusal (a missing entity, a failed check) comes before the first change.
    writer::checked_first(conn, |conn| {
        let result = apply_op(conn, tenant, write, now, guard)?;
        if result.outcome != Outcome::Unchanged {
            crate::metrics::entity_written();
        }
        if let Some(guard) = guard {
            if result.outcome != Outcome::Unchanged {
                guard.stored(tenant, result.before.as_ref(), result.after.as_ref());
            }
        }
        if let Some(observer) = observer {
            if result.outcome != Outcome::Unchanged {
                let observed = observer.observe(tenant, &result, now);
                subscriptions::store_observed(conn, &observed, now)?;
            }
        }
        Ok(result)
    })
}

fn apply_op(
    conn: &Connection,
    tenant: &Tenant,
    write: Prepared,
    now: &str,
    guard: Option<&dyn WriteGuard>,
) -> Result<WriteResult> {
    let entity_id = write.op.entity_id.clone();
    let speculation::Decided {
        row,
        before,
        effect,
        doc,
    } = write.decide(conn, tenant, now)?;
    match effect? {
        Effect::Put(entity, report) => {
            if let Some(guard) = guard {
                guard.check(tenant, &entity)?;
            }
            entities::ensure_tenant(conn, tenant, now)?;
            match doc {
                Some(doc) => {
                    entities::save_document(conn, tenant, &entity, &doc, before.as_ref(), row)?
                }
                None => entities::save_row(conn, tenant, &entity, before.as_ref(), row)?,
            }
            temporal::record_change(conn, tenant, before.as_ref(), Some(&entity))?;
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
            entities::delete(conn, tenant, &entity_id)?;
            temporal::record_change(conn, tenant, before.as_ref(), None)?;
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
impl EntityStore for Sqlite {
    async fn close(&self) -> Result<()> {
        self.0.readers.lock().clear();
        self.0
            .alone(|conn| checkpointer::fold_back(conn).map_err(db_err))
            .await?
    }

    async fn write(&self, tenant: &Tenant, ops: Vec<WriteOp>) -> Result<Vec<Result<WriteResult>>> {
        let tenant = tenant.clone();
        let prepared = self.0.prepare(&tenant, ops).await?;
        let hooks = self.0.hooks();
        self.0
            .write_job(move |conn| {
                let now = time::now();
                prepared
                    .into_iter()
                    .map(|write| apply(conn, &tenant, write, &now, &hooks))
                    .collect()
            })
            .await
    }

    async fn get(&self, tenant: &Tenant, id: &str) -> Result<Option<Entity>> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.0
            .read(move |conn| entities::load(conn, &tenant, &id, &time::now()))
            .await
    }

    async fn query(&self, tenant: &Tenant, query: &EntityQuery) -> Result<QueryPage<Entity>> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.0
            .read(move |conn| {
                let (docs, total) = entities::page(conn, &tenant, &query, &time::now())?;
                let items = docs
                    .iter()
                    .map(|d| entities::decode(d))
                    .collect::<Result<_>>()?;
                Ok(QueryPage { items, total })
            })
            .await
    }

    async fn query_documents(
        &self,
        tenant: &Tenant,
        query: &EntityQuery,
    ) -> Result<Option<QueryPage<String>>> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.0
            .read(move |conn| {
                let (items, total) = entities::page(conn, &tenant, &query, &time::now())?;
                Ok(Some(QueryPage { items, total }))
            })
            .await
    }

    async fn ids(&self, tenant: &Tenant, query: &EntityQuery) -> Result<Vec<String>> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.0
            .read(move |conn| entities::select_ids(conn, &tenant, &query, &time::now()))
            .await
    }

    async fn purge(&self, tenant: &Tenant, query: &EntityQuery) -> Result<u64> {
        let (tenant, query) = (tenant.clone(), query.clone());
        let Hooks { observer, guard } = self.0.hooks();
        self.0
            .write_job(move |conn| {
                let now = time::now();
                let ids = entities::select_ids(conn, &tenant, &query, &now)?;
                for id in &ids {
                    let before = match (&observer, &guard) {
                        (None, None) => None,
                        _ => entities::load(conn, &tenant, id, &now)?,
                    };
                    entities::delete(conn, &tenant, id)?;
                    if let (Some(guard), Some(before)) = (&guard, &before) {
                        guard.stored(&tenant, Some(before), None);
                    }
                    if let (Some(observer), Some(before)) = (&observer, before) {
                        let result = WriteResult {
                            outcome: Outcome::Deleted,
                            report: Default::default(),
                            before: Some(before),
                            after: None,
                        };
                        let observed = observer.observe(&tenant, &result, &now);
                        subscriptions::store_observed(conn, &observed, &now)?;
                    }
                }
                Ok(ids.len() as u64)
            })
            .await?
    }

    async fn tenant_exists(&self, tenant: &Tenant) -> Result<bool> {
        if tenant.is_default() {
            return Ok(true);
        }
        let name = tenant.as_str().to_string();
        self.0
            .read(move |conn| {
                conn.query_row("SELECT 1 FROM tenants WHERE name = ?1", [name], |_| Ok(()))
                    .map(|_| true)
                    .or_else(|e| {
                        if e == rusqlite::Error::QueryReturnedNoRows {
                            Ok(false)
                        } else {
                            Err(db_err(e))
                        }
                    })
            })
            .await
    }

    async fn type_stats(&self, tenant: &Tenant) -> Result<Vec<crate::ngsi::query::TypeStats>> {
        let tenant = tenant.clone();
        self.0
            .read(move |conn| entities::type_stats(conn, &tenant, &time::now()))
            .await
    }

    fn set_write_observer(&self, observer: Arc<dyn WriteObserver>) {
        self.0.set_observer(observer);
    }

    fn set_write_guard(&self, guard: Arc<dyn WriteGuard>) {
        self.0.set_guard(guard);
    }

    fn check_entity(&self, tenant: &Tenant, entity: &Entity) -> Result<()> {
        match self.0.guard.read().as_deref() {
            Some(guard) => guard.check(tenant, entity),
            None => Ok(()),
        }
    }

    async fn tenants(&self) -> Result<Vec<String>> {
        self.0
            .read(|conn| {
                let mut stmt = conn
                    .prepare("SELECT name FROM tenants ORDER BY name")
                    .map_err(db_err)?;
                let names = stmt.query_map([], |r| r.get(0)).map_err(db_err)?;
                names
                    .collect::<rusqlite::Result<Vec<String>>>()
                    .map_err(db_err)
            })
            .await
    }
}

#[async_trait]
impl ContextRepository for Sqlite {
    async fn put_context(&self, r: ContextRecord) -> Result<()> {
        self.0
            .write_job(move |conn| {
                conn.execute(
                    "INSERT INTO contexts (url, local_id, kind, document, created_at, tenant) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (url) DO UPDATE SET document = excluded.document, kind = excluded.kind",
                    params![r.url, r.local_id, r.kind.as_str(), r.document.to_string(), time::format(r.created_at), r.tenant],
                )
                .map(|_| ())
                .map_err(db_err)
            })
            .await?
    }

    async fn delete_context(&self, url: &str) -> Result<()> {
        let url = url.to_string();
        self.0
            .write_job(move |conn| {
                conn.execute("DELETE FROM contexts WHERE url = ?1", [url])
                    .map(|_| ())
                    .map_err(db_err)
            })
            .await?
    }

    async fn contexts(&self) -> Result<Vec<ContextRecord>> {
        self.0
            .read(|conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT url, local_id, kind, document, created_at, tenant FROM contexts",
                    )
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, Option<String>>(5)?,
                        ))
                    })
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(url, local_id, kind, doc, created, tenant)| {
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
            .await
    }
}

#[async_trait]
impl TemporalStore for Sqlite {
    async fn temporal_add(
        &self,
        tenant: &Tenant,
        entity: TemporalEntity,
        add: Vec<NewInstance>,
    ) -> Result<bool> {
        let tenant = tenant.clone();
        self.0
            .write_job(move |conn| {
                writer::in_savepoint(conn, |conn| {
                    entities::ensure_tenant(conn, &tenant, &time::now())?;
                    let existing = temporal::load_entity(conn, &tenant, &entity.id)?;
                    let merged =
                        crate::ngsi::temporal::changes::merged_entity(existing.as_ref(), &entity);
                    temporal::upsert_entity(conn, &tenant, &merged)?;
                    let now_us = time::parse(&time::now()).map(time::micros).unwrap_or(0);
                    for i in &add {
                        temporal::insert(conn, &tenant, &merged.id, i, now_us)?;
                    }
                    Ok(existing.is_none())
                })
            })
            .await?
    }

    async fn temporal_query(
        &self,
        tenant: &Tenant,
        sel: &TemporalSelection,
        q: &TemporalQuery,
    ) -> Result<Vec<TemporalResult>> {
        let (tenant, sel, q) = (tenant.clone(), sel.clone(), q.clone());
        self.0
            .read(move |conn| {
                let entities = temporal::select_entities(conn, &tenant, &sel)?;
                let mut out = Vec::with_capacity(entities.len());
                for entity in entities {
                    let attrs = sel.attrs.as_deref();
                    let (instances, aggregates) =
                        if q.format == crate::ngsi::temporal::request::TemporalFormat::Aggregated {
                            (
                                Vec::new(),
                                temporal::aggregates(conn, &tenant, &entity.id, attrs, &q)?,
                            )
                        } else {
                            (
                                temporal::instances(conn, &tenant, &entity.id, attrs, &q)?,
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
            .await
    }

    async fn temporal_delete_entity(&self, tenant: &Tenant, id: &str) -> Result<bool> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.0
            .write_job(move |conn| temporal::delete_entity(conn, &tenant, &id))
            .await?
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
        self.0
            .write_job(move |conn| {
                temporal::delete_attribute(conn, &tenant, &id, &attr, ds.as_deref(), all)
            })
            .await?
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
        self.0
            .write_job(move |conn| {
                temporal::patch_instance(conn, &tenant, &id, &attr, instance, &patch)
            })
            .await?
    }

    async fn temporal_delete_instance(
        &self,
        tenant: &Tenant,
        id: &str,
        attr: &str,
        instance: i64,
    ) -> Result<bool> {
        let (tenant, id, attr) = (tenant.clone(), id.to_string(), attr.to_string());
        self.0
            .write_job(move |conn| temporal::delete_instance(conn, &tenant, &id, &attr, instance))
            .await?
    }

    async fn temporal_prune(
        &self,
        tenant: &Tenant,
        include: Option<Vec<String>>,
        exclude: Vec<String>,
        before_us: i64,
    ) -> Result<u64> {
        let mut total = 0;
        // One chunk per transaction: other writes get the writer between chunks.
        loop {
            let (tenant, include, exclude) = (tenant.clone(), include.clone(), exclude.clone());
            let n = self
                .0
                .write_job(move |conn| {
                    retention::prune_chunk(conn, &tenant, include.as_deref(), &exclude, before_us)
                })
                .await??;
            total += n;
            if n < retention::CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}
