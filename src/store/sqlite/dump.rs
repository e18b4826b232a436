//! Dump and restore for SQLite: pages read by key, items written back verbatim. A staged
//! restore keeps its items in `restore_staging` and applies them in one write job (one
//! savepoint) at commit, so a failed import leaves nothing behind.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{db_err, entities, subscriptions, temporal, writer, Sqlite};
use crate::error::{ErrorKind, NgsiError, Result};
use crate::jsonld::{ContextKind, ContextRecord};
use crate::ngsi::temporal::TemporalEntity;
use crate::ngsi::{time, Entity, Tenant};
use crate::store::dump::{
    DumpStore, HistoryRow, RenameRow, RestoreItem, RestoreSession, SubscriptionRow, TenantRow,
};

fn json_err(e: serde_json::Error) -> NgsiError {
    NgsiError::internal(format!("stored JSON is not readable: {e}"))
}

#[async_trait]
impl DumpStore for Sqlite {
    async fn dump_tenants(&self) -> Result<Vec<TenantRow>> {
        self.0
            .read(|conn| {
                let mut stmt = conn
                    .prepare("SELECT name, created_at FROM tenants ORDER BY name")
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(TenantRow {
                            name: r.get(0)?,
                            created_at: r.get(1)?,
                        })
                    })
                    .map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
            })
            .await
    }

    async fn dump_entities(
        &self,
        tenant: &Tenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entity>> {
        let (tenant, after) = (tenant.clone(), after.unwrap_or("").to_string());
        self.0
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT doc FROM entities WHERE tenant = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                    )
                    .map_err(db_err)?;
                let docs = stmt
                    .query_map(params![tenant.as_str(), after, limit as i64], |r| {
                        r.get::<_, String>(0)
                    })
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                docs.iter()
                    .map(|d| serde_json::from_str(d).map_err(json_err))
                    .collect()
            })
            .await
    }

    async fn dump_temporal_entities(
        &self,
        tenant: &Tenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TemporalEntity>> {
        let (tenant, after) = (tenant.clone(), after.unwrap_or("").to_string());
        self.0
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT id, types, scope, created_at, modified_at, deleted_at FROM temporal_entities
                         WHERE tenant = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                    )
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![tenant.as_str(), after, limit as i64], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, Option<String>>(5)?,
                        ))
                    })
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                rows.into_iter()
                    .map(|(id, types, scope, created_at, modified_at, deleted_at)| {
                        Ok(TemporalEntity {
                            id,
                            types: serde_json::from_str(&types).map_err(json_err)?,
                            scope: scope
                                .map(|s| serde_json::from_str(&s))
                                .transpose()
                                .map_err(json_err)?,
                            created_at,
                            modified_at,
                            deleted_at,
                        })
                    })
                    .collect()
            })
            .await
    }

    // Driven by the instance key (CROSS JOIN keeps attr_instances outside, `+` keeps
    // the tenant index out): each page is a range scan, not a sort of the whole history.
    async fn dump_history(
        &self,
        tenant: &Tenant,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HistoryRow>> {
        let tenant = tenant.clone();
        let after = after.unwrap_or(i64::MIN);
        self.0
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT i.instance, t.id, a.name, COALESCE(d.name, ''), i.observed_us, i.created_us,
                                i.modified_us, i.deleted_us, i.num, i.unit, i.doc
                         FROM attr_instances i CROSS JOIN temporal_series s ON s.series = i.series
                         CROSS JOIN temporal_entities t ON t.rowid = s.owner
                         CROSS JOIN names a ON a.id = s.attr LEFT JOIN names d ON d.id = s.dataset
                         WHERE +t.tenant = ?1 AND i.instance > ?2 ORDER BY i.instance LIMIT ?3",
                    )
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![tenant.as_str(), after, limit as i64], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Option<i64>>(4)?,
                            r.get::<_, i64>(5)?,
                            r.get::<_, i64>(6)?,
                            r.get::<_, Option<i64>>(7)?,
                            r.get::<_, Option<f64>>(8)?,
                            r.get::<_, Option<String>>(9)?,
                            r.get::<_, Option<String>>(10)?,
                        ))
                    })
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                rows.into_iter()
                    .map(|(id, entity, attr, ds, obs, created, modified, deleted, num, unit, doc)| {
                        Ok(HistoryRow {
                            instance_id: id,
                            entity_id: entity,
                            attr,
                            dataset_id: (!ds.is_empty()).then_some(ds),
                            observed_us: obs,
                            created_us: created,
                            modified_us: modified,
                            deleted_us: deleted,
                            body: temporal::decode(num, unit, doc, obs)?,
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn dump_subscriptions(
        &self,
        tenant: &Tenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SubscriptionRow>> {
        let (tenant, after) = (tenant.clone(), after.unwrap_or("").to_string());
        self.0
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {}, id FROM subscriptions WHERE tenant = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                        subscriptions::COLUMNS
                    ))
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![tenant.as_str(), after, limit as i64], |r| {
                        let id: String = r.get(7)?;
                        let (doc, status) = subscriptions::record(r)?;
                        Ok((id, doc, status))
                    })
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                rows.into_iter()
                    .map(|(id, doc, status)| {
                        Ok(SubscriptionRow {
                            id,
                            doc: serde_json::from_str(&doc).map_err(json_err)?,
                            status,
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn dump_renames(&self, tenant: &Tenant) -> Result<Vec<RenameRow>> {
        let tenant = tenant.clone();
        self.0
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT old_id, new_id, renamed_at, rewritten FROM renames WHERE tenant = ?1
                         ORDER BY renamed_at, old_id",
                    )
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map([tenant.as_str()], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    })
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                rows.into_iter()
                    .map(|(old_id, new_id, renamed_at, rewritten)| {
                        Ok(RenameRow {
                            old_id,
                            new_id,
                            renamed_at,
                            rewritten: serde_json::from_str(&rewritten).map_err(json_err)?,
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn restore_begin(&self) -> Result<RestoreSession> {
        Ok(RestoreSession(uuid::Uuid::new_v4().simple().to_string()))
    }

    async fn restore(
        &self,
        session: Option<&RestoreSession>,
        items: Vec<RestoreItem>,
    ) -> Result<()> {
        match session {
            Some(s) => {
                let session = s.0.clone();
                let staged = items
                    .iter()
                    .map(serde_json::to_string)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(NgsiError::internal)?;
                self.0
                    .write_job(move |conn| {
                        writer::in_savepoint(conn, |conn| {
                            let mut stmt = conn
                                .prepare_cached(
                                    "INSERT INTO restore_staging (session, item) VALUES (?1, ?2)",
                                )
                                .map_err(db_err)?;
                            for item in &staged {
                                stmt.execute(params![session, item]).map_err(db_err)?;
                            }
                            Ok(())
                        })
                    })
                    .await?
            }
            None => {
                self.0
                    .write_job(move |conn| {
                        writer::in_savepoint(conn, |conn| {
                            items.into_iter().try_for_each(|item| apply(conn, item))
                        })
                    })
                    .await?
            }
        }
    }

    async fn restore_commit(&self, session: &RestoreSession) -> Result<u64> {
        let session = session.0.clone();
        self.0
            .write_job(move |conn| {
                writer::in_savepoint(conn, |conn| {
                    let mut n = 0u64;
                    {
                        let mut stmt = conn
                            .prepare(
                                "SELECT item FROM restore_staging WHERE session = ?1 ORDER BY seq",
                            )
                            .map_err(db_err)?;
                        let mut rows = stmt.query([&session]).map_err(db_err)?;
                        while let Some(row) = rows.next().map_err(db_err)? {
                            let text: String = row.get(0).map_err(db_err)?;
                            let item: RestoreItem =
                                serde_json::from_str(&text).map_err(NgsiError::internal)?;
                            apply(conn, item)?;
                            n += 1;
                        }
                    }
                    conn.execute("DELETE FROM restore_staging WHERE session = ?1", [&session])
                        .map_err(db_err)?;
                    Ok(n)
                })
            })
            .await?
    }

    async fn rename_entity(
        &self,
        tenant: &Tenant,
        old_id: &str,
        new_id: &str,
    ) -> Result<RenameRow> {
        let (tenant, old, new) = (tenant.clone(), old_id.to_string(), new_id.to_string());
        self.0
            .write_job(move |conn| {
                writer::in_savepoint(conn, |conn| {
                    super::rename::rename(conn, &tenant, &old, &new)
                })
            })
            .await?
    }

    async fn restore_abort(&self, session: &RestoreSession) -> Result<()> {
        let session = session.0.clone();
        self.0
            .write_job(move |conn| {
                conn.execute("DELETE FROM restore_staging WHERE session = ?1", [&session])
                    .map(|_| ())
                    .map_err(db_err)
            })
            .await?
    }
}

/// Writes one item, replacing what has the same key.
fn apply(conn: &Connection, item: RestoreItem) -> Result<()> {
    match item {
        RestoreItem::Tenant(t) => {
            conn.prepare_cached(
                "INSERT INTO tenants (name, created_at) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET created_at = excluded.created_at",
            )
            .and_then(|mut s| s.execute(params![t.name, t.created_at]))
            .map_err(db_err)?;
            super::writer_cache::remember_tenant(&t.name);
        }
        RestoreItem::Context(c) => restore_context(conn, &c)?,
        RestoreItem::Entity(tenant, entity) => {
            let tenant = Tenant::from_stored(&tenant);
            entities::ensure_tenant(conn, &tenant, &time::now())?;
            // Deleting first keeps the index tables exact whatever was there before.
            entities::delete(conn, &tenant, &entity.id)?;
            entities::save(conn, &tenant, &entity, None)?;
        }
        RestoreItem::TemporalEntity(tenant, e) => {
            let types = serde_json::to_string(&e.types).map_err(NgsiError::internal)?;
            let scope = e
                .scope
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(NgsiError::internal)?;
            conn.prepare_cached(
                "INSERT INTO temporal_entities (tenant, id, types, scope, created_at, modified_at, deleted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, scope = excluded.scope,
                   created_at = excluded.created_at, modified_at = excluded.modified_at,
                   deleted_at = excluded.deleted_at",
            )
            .and_then(|mut s| {
                s.execute(params![tenant, e.id, types, scope, e.created_at, e.modified_at, e.deleted_at])
            })
            .map_err(db_err)?;
        }
        RestoreItem::History(tenant, h) => {
            restore_instance(conn, &Tenant::from_stored(&tenant), h)?
        }
        RestoreItem::Subscription(tenant, s) => {
            conn.prepare_cached(
                "INSERT INTO subscriptions (tenant, id, doc, times_sent, times_failed, last_notification,
                   last_success, last_failure, dropped) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc, times_sent = excluded.times_sent,
                   times_failed = excluded.times_failed, last_notification = excluded.last_notification,
                   last_success = excluded.last_success, last_failure = excluded.last_failure,
                   dropped = excluded.dropped",
            )
            .and_then(|mut st| {
                st.execute(params![
                    tenant,
                    s.id,
                    s.doc.to_string(),
                    s.status.times_sent as i64,
                    s.status.times_failed as i64,
                    s.status.last_notification,
                    s.status.last_success,
                    s.status.last_failure,
                    s.status.dropped as i64
                ])
            })
            .map_err(db_err)?;
        }
        RestoreItem::Rename(tenant, r) => insert_rename(conn, &tenant, &r)?,
    }
    Ok(())
}

pub(crate) fn insert_rename(conn: &Connection, tenant: &str, r: &RenameRow) -> Result<()> {
    let rewritten = serde_json::to_string(&r.rewritten).map_err(NgsiError::internal)?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO renames (tenant, old_id, new_id, renamed_at, rewritten) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![tenant, r.old_id, r.new_id, r.renamed_at, rewritten]))
    .map_err(db_err)?;
    Ok(())
}

fn restore_context(conn: &Connection, c: &ContextRecord) -> Result<()> {
    let kind: &str = match c.kind {
        ContextKind::Hosted => "Hosted",
        ContextKind::Cached => "Cached",
        ContextKind::ImplicitlyCreated => "ImplicitlyCreated",
    };
    conn.prepare_cached(
        "INSERT INTO contexts (url, local_id, kind, document, created_at, tenant) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (url) DO UPDATE SET local_id = excluded.local_id, kind = excluded.kind,
           document = excluded.document, created_at = excluded.created_at, tenant = excluded.tenant",
    )
    .and_then(|mut s| {
        s.execute(params![
            c.url,
            c.local_id,
            kind,
            c.document.to_string(),
            time::format(c.created_at),
            c.tenant
        ])
    })
    .map_err(db_err)?;
    Ok(())
}

/// Writes a history row under its own instance id; re-writing the same row is a no-op
/// change, but an id already used by another series is a conflict (the target broker
/// holds history that overlaps the dump).
fn restore_instance(conn: &Connection, tenant: &Tenant, h: HistoryRow) -> Result<()> {
    let series = temporal::series_id(conn, tenant, &h.entity_id, &h.attr, h.dataset_id.as_deref())?;
    let stored = temporal::encode(h.body, h.observed_us);
    let changed = conn
        .prepare_cached(
            "INSERT INTO attr_instances (instance, series, observed_us, created_us, modified_us, deleted_us, num, unit, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (instance) DO UPDATE SET observed_us = excluded.observed_us,
               created_us = excluded.created_us, modified_us = excluded.modified_us,
               deleted_us = excluded.deleted_us, num = excluded.num, unit = excluded.unit,
               doc = excluded.doc
             WHERE series = excluded.series",
        )
        .and_then(|mut s| {
            s.execute(params![
                h.instance_id,
                series,
                h.observed_us,
                h.created_us,
                h.modified_us,
                h.deleted_us,
                stored.num,
                stored.unit,
                stored.doc
            ])
        })
        .map_err(db_err)?;
    if changed == 0 {
        let other: Option<String> = conn
            .query_row(
                "SELECT t.id FROM attr_instances i JOIN temporal_series s ON s.series = i.series
                 JOIN temporal_entities t ON t.rowid = s.owner WHERE i.instance = ?1",
                [h.instance_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        return Err(NgsiError::new(
            ErrorKind::Conflict,
            format!(
                "instance {} of {} is already used by {} in this broker: import into a broker whose history does not overlap",
                h.instance_id,
                h.entity_id,
                other.unwrap_or_else(|| "another attribute".into())
            ),
        ));
    }
    Ok(())
}
