//! Dump, restore and rename on PostgreSQL, with the semantics of the SQLite backend:
//! pages read by key (text keys compared bytewise, as SQLite does), items written back
//! verbatim (instance ids and µs timestamps included). A staged restore keeps its items
//! in `restore_staging`, keyed by session (brokers sharing the database may each run
//! one), and applies them in one transaction at commit, so a failed import leaves
//! nothing behind.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use serde_json::{json, Map, Value};

use super::{db_err, entities, lock_entities, subscriptions, Postgres, StoreChange};
use crate::error::{ErrorKind, NgsiError, Result};
use crate::jsonld::{ContextKind, ContextRecord};
use crate::ngsi::attribute;
use crate::ngsi::temporal::TemporalEntity;
use crate::ngsi::{rename, time, Entity, Tenant};
use crate::store::dump::{
    DumpStore, HistoryRow, RenameRow, RestoreItem, RestoreSession, SubscriptionRow, TenantRow,
};

/// Staged items applied per round trip at commit.
const COMMIT_PAGE: i64 = 500;

fn json_err(e: serde_json::Error) -> NgsiError {
    NgsiError::internal(format!("stored JSON is not readable: {e}"))
}

fn page_limit(limit: usize) -> i64 {
    limit.min(i64::MAX as usize) as i64
}

/// An instance body as stored: a bare floating-point Property as its number alone
/// (the same rule as the write path and SQLite).
fn encode(body: Map<String, Value>, observed: Option<i64>) -> (Option<f64>, Option<String>) {
    let compact = body.len() <= 3
        && body.get("type").and_then(Value::as_str) == Some(attribute::PROPERTY)
        && body.get("value").is_some_and(|v| v.is_f64())
        && body
            .keys()
            .all(|k| matches!(k.as_str(), "type" | "value" | "observedAt"))
        && body
            .get("observedAt")
            .and_then(Value::as_str)
            .zip(observed)
            .is_none_or(|(s, us)| time::from_micros(us) == s);
    let num = body.get("value").and_then(Value::as_f64);
    let doc = (!compact).then(|| Value::Object(body).to_string());
    (num, doc)
}

/// An instance body from its stored columns (the inverse of `encode`).
fn decode(
    num: Option<f64>,
    doc: Option<String>,
    observed: Option<i64>,
) -> Result<Map<String, Value>> {
    Ok(match doc {
        Some(d) => serde_json::from_str::<Map<String, Value>>(&d).map_err(json_err)?,
        None => {
            let mut b = Map::new();
            b.insert("type".into(), json!(attribute::PROPERTY));
            b.insert("value".into(), json!(num.unwrap_or(0.0)));
            if let Some(o) = observed {
                b.insert("observedAt".into(), json!(time::from_micros(o)));
            }
            b
        }
    })
}

#[async_trait]
impl DumpStore for Postgres {
    async fn dump_tenants(&self) -> Result<Vec<TenantRow>> {
        self.read(|c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT name, created_at FROM tenants ORDER BY name COLLATE \"C\"",
                        &[],
                    )
                    .await
                    .map_err(db_err)?;
                Ok(rows
                    .iter()
                    .map(|r| TenantRow {
                        name: r.get(0),
                        created_at: r.get(1),
                    })
                    .collect())
            })
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
        self.read(move |c| {
            Box::pin(async move {
                let stmt = c
                    .prepare_cached(
                        "SELECT doc::text FROM entities WHERE tenant = $1
                           AND id COLLATE \"C\" > $2::text COLLATE \"C\"
                         ORDER BY id COLLATE \"C\" LIMIT $3",
                    )
                    .await
                    .map_err(db_err)?;
                let rows = c
                    .query(&stmt, &[&tenant.as_str(), &after, &page_limit(limit)])
                    .await
                    .map_err(db_err)?;
                rows.iter()
                    .map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(json_err))
                    .collect()
            })
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
        self.read(move |c| {
            Box::pin(async move {
                let stmt = c
                    .prepare_cached(
                        "SELECT id, types::text, scope, created_at, modified_at, deleted_at
                         FROM temporal_entities WHERE tenant = $1
                           AND id COLLATE \"C\" > $2::text COLLATE \"C\"
                         ORDER BY id COLLATE \"C\" LIMIT $3",
                    )
                    .await
                    .map_err(db_err)?;
                let rows = c
                    .query(&stmt, &[&tenant.as_str(), &after, &page_limit(limit)])
                    .await
                    .map_err(db_err)?;
                rows.iter()
                    .map(|r| {
                        let types: String = r.get(1);
                        let scope: Option<String> = r.get(2);
                        Ok(TemporalEntity {
                            id: r.get(0),
                            types: serde_json::from_str(&types).map_err(json_err)?,
                            scope: scope
                                .map(|s| serde_json::from_str(&s))
                                .transpose()
                                .map_err(json_err)?,
                            created_at: r.get(3),
                            modified_at: r.get(4),
                            deleted_at: r.get(5),
                        })
                    })
                    .collect()
            })
        })
        .await
    }

    async fn dump_history(
        &self,
        tenant: &Tenant,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<HistoryRow>> {
        let tenant = tenant.clone();
        let after = after.unwrap_or(i64::MIN);
        self.read(move |c| {
            Box::pin(async move {
                let stmt = c
                    .prepare_cached(
                        "SELECT i.instance, s.entity_id, s.attr, s.dataset_id, i.observed_us, i.created_us,
                                i.modified_us, i.deleted_us, i.num, i.doc
                         FROM attr_instances i JOIN temporal_series s ON s.series = i.series
                         WHERE s.tenant = $1 AND i.instance > $2 ORDER BY i.instance LIMIT $3",
                    )
                    .await
                    .map_err(db_err)?;
                let rows = c
                    .query(&stmt, &[&tenant.as_str(), &after, &page_limit(limit)])
                    .await
                    .map_err(db_err)?;
                rows.iter()
                    .map(|r| {
                        let ds: String = r.get(3);
                        let observed: Option<i64> = r.get(4);
                        Ok(HistoryRow {
                            instance_id: r.get(0),
                            entity_id: r.get(1),
                            attr: r.get(2),
                            dataset_id: (!ds.is_empty()).then_some(ds),
                            observed_us: observed,
                            created_us: r.get(5),
                            modified_us: r.get(6),
                            deleted_us: r.get(7),
                            body: decode(r.get(8), r.get(9), observed)?,
                        })
                    })
                    .collect()
            })
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
        self.read(move |c| {
            Box::pin(async move {
                let stmt = c
                    .prepare_cached(&format!(
                        "SELECT {}, id FROM subscriptions WHERE tenant = $1
                           AND id COLLATE \"C\" > $2::text COLLATE \"C\"
                         ORDER BY id COLLATE \"C\" LIMIT $3",
                        subscriptions::COLUMNS
                    ))
                    .await
                    .map_err(db_err)?;
                let rows = c
                    .query(&stmt, &[&tenant.as_str(), &after, &page_limit(limit)])
                    .await
                    .map_err(db_err)?;
                rows.iter()
                    .map(|r| {
                        let record = subscriptions::record(r)?;
                        Ok(SubscriptionRow {
                            id: r.get(7),
                            doc: record.doc,
                            status: record.status,
                        })
                    })
                    .collect()
            })
        })
        .await
    }

    async fn dump_renames(&self, tenant: &Tenant) -> Result<Vec<RenameRow>> {
        let tenant = tenant.clone();
        self.read(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT old_id, new_id, renamed_at, rewritten FROM renames WHERE tenant = $1
                         ORDER BY renamed_at COLLATE \"C\", old_id COLLATE \"C\"",
                        &[&tenant.as_str()],
                    )
                    .await
                    .map_err(db_err)?;
                rows.iter()
                    .map(|r| {
                        let rewritten: String = r.get(3);
                        Ok(RenameRow {
                            old_id: r.get(0),
                            new_id: r.get(1),
                            renamed_at: r.get(2),
                            rewritten: serde_json::from_str(&rewritten).map_err(json_err)?,
                        })
                    })
                    .collect()
            })
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
                self.transaction(move |tx, _| {
                    Box::pin(async move {
                        tx.execute(
                            "INSERT INTO restore_staging (session, item)
                             SELECT $1, item FROM unnest($2::text[]) WITH ORDINALITY AS v(item, n) ORDER BY n",
                            &[&session, &staged],
                        )
                        .await
                        .map_err(db_err)?;
                        Ok(())
                    })
                })
                .await
            }
            None => {
                self.transaction(move |tx, store| {
                    Box::pin(async move {
                        let mut applied = Applied::default();
                        for item in items {
                            apply(tx, item, &mut applied).await?;
                        }
                        applied.finish(tx, store).await
                    })
                })
                .await
            }
        }
    }

    async fn restore_commit(&self, session: &RestoreSession) -> Result<u64> {
        let session = session.0.clone();
        self.transaction(move |tx, store| {
            Box::pin(async move {
                let mut applied = Applied::default();
                let mut n = 0u64;
                let mut after = i64::MIN;
                loop {
                    let rows = tx
                        .query(
                            "SELECT seq, item FROM restore_staging WHERE session = $1 AND seq > $2
                             ORDER BY seq LIMIT $3",
                            &[&session, &after, &COMMIT_PAGE],
                        )
                        .await
                        .map_err(db_err)?;
                    for r in &rows {
                        after = r.get(0);
                        let item: RestoreItem = serde_json::from_str(r.get::<_, &str>(1))
                            .map_err(NgsiError::internal)?;
                        apply(tx, item, &mut applied).await?;
                        n += 1;
                    }
                    if (rows.len() as i64) < COMMIT_PAGE {
                        break;
                    }
                }
                tx.execute(
                    "DELETE FROM restore_staging WHERE session = $1",
                    &[&session],
                )
                .await
                .map_err(db_err)?;
                applied.finish(tx, store).await?;
                Ok(n)
            })
        })
        .await
    }

    async fn restore_abort(&self, session: &RestoreSession) -> Result<()> {
        let session = session.0.clone();
        self.transaction(move |tx, _| {
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM restore_staging WHERE session = $1",
                    &[&session],
                )
                .await
                .map_err(db_err)?;
                Ok(())
            })
        })
        .await
    }

    async fn rename_entity(
        &self,
        tenant: &Tenant,
        old_id: &str,
        new_id: &str,
    ) -> Result<RenameRow> {
        let (tenant, old, new) = (tenant.clone(), old_id.to_string(), new_id.to_string());
        self.transaction(move |tx, _| {
            Box::pin(async move { rename_in(tx, &tenant, &old, &new).await })
        })
        .await
    }
}

/// What a restore transaction did that must be followed up before it commits.
#[derive(Default)]
struct Applied {
    /// The largest instance id written: the identity must move past it.
    max_instance: Option<i64>,
    /// Subscriptions written, announced to the other brokers.
    subscriptions: Vec<(Tenant, String)>,
    contexts: bool,
}

impl Applied {
    async fn finish(self, c: &impl GenericClient, store: &super::PgStore) -> Result<()> {
        if let Some(max) = self.max_instance {
            // New instances must not reuse restored ids. Only ever moves forward (never
            // takes back ids other brokers already drew).
            c.execute(
                "SELECT setval(s::regclass, $1::int8)
                 FROM pg_get_serial_sequence('attr_instances', 'instance') AS s
                 WHERE $1::int8 > COALESCE(pg_sequence_last_value(s::regclass), 0)",
                &[&max],
            )
            .await
            .map_err(db_err)?;
        }
        for (tenant, id) in self.subscriptions {
            store
                .announce(c, &StoreChange::Subscription { tenant, id })
                .await?;
        }
        if self.contexts {
            store.announce(c, &StoreChange::Contexts).await?;
        }
        Ok(())
    }
}

/// Writes one item, replacing what has the same key.
async fn apply(c: &impl GenericClient, item: RestoreItem, applied: &mut Applied) -> Result<()> {
    match item {
        RestoreItem::Tenant(t) => {
            c.execute(
                "INSERT INTO tenants (name, created_at) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET created_at = excluded.created_at",
                &[&t.name, &t.created_at],
            )
            .await
            .map_err(db_err)?;
        }
        RestoreItem::Context(ctx) => {
            restore_context(c, &ctx).await?;
            applied.contexts = true;
        }
        RestoreItem::Entity(tenant, entity) => {
            let tenant = Tenant::from_stored(&tenant);
            let now = time::now();
            entities::ensure_tenant(c, &tenant, &now).await?;
            // Deleting first keeps the geo index exact whatever was there before.
            entities::delete(c, &tenant, &entity.id).await?;
            entities::save(c, &tenant, &entity, None, &now).await?;
        }
        RestoreItem::TemporalEntity(tenant, e) => {
            let types = serde_json::to_string(&e.types).map_err(NgsiError::internal)?;
            let scope = e
                .scope
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(NgsiError::internal)?;
            c.execute(
                "INSERT INTO temporal_entities (tenant, id, types, scope, created_at, modified_at, deleted_at)
                 VALUES ($1, $2, $3::text::jsonb, $4, $5, $6, $7)
                 ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, scope = excluded.scope,
                   created_at = excluded.created_at, modified_at = excluded.modified_at,
                   deleted_at = excluded.deleted_at",
                &[&tenant, &e.id, &types, &scope, &e.created_at, &e.modified_at, &e.deleted_at],
            )
            .await
            .map_err(db_err)?;
        }
        RestoreItem::History(tenant, h) => {
            let id = h.instance_id;
            restore_instance(c, &tenant, h).await?;
            applied.max_instance = Some(applied.max_instance.map_or(id, |m| m.max(id)));
        }
        RestoreItem::Subscription(tenant, s) => {
            c.execute(
                "INSERT INTO subscriptions (tenant, id, doc, times_sent, times_failed, last_notification,
                   last_success, last_failure, dropped) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc, times_sent = excluded.times_sent,
                   times_failed = excluded.times_failed, last_notification = excluded.last_notification,
                   last_success = excluded.last_success, last_failure = excluded.last_failure,
                   dropped = excluded.dropped",
                &[
                    &tenant,
                    &s.id,
                    &s.doc.to_string(),
                    &(s.status.times_sent.min(i64::MAX as u64) as i64),
                    &(s.status.times_failed.min(i64::MAX as u64) as i64),
                    &s.status.last_notification,
                    &s.status.last_success,
                    &s.status.last_failure,
                    &(s.status.dropped.min(i64::MAX as u64) as i64),
                ],
            )
            .await
            .map_err(db_err)?;
            applied
                .subscriptions
                .push((Tenant::from_stored(&tenant), s.id));
        }
        RestoreItem::Rename(tenant, r) => insert_rename(c, &tenant, &r).await?,
    }
    Ok(())
}

async fn insert_rename(c: &impl GenericClient, tenant: &str, r: &RenameRow) -> Result<()> {
    let rewritten = serde_json::to_string(&r.rewritten).map_err(NgsiError::internal)?;
    c.execute(
        "INSERT INTO renames (tenant, old_id, new_id, renamed_at, rewritten) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant, old_id, new_id, renamed_at) DO UPDATE SET rewritten = excluded.rewritten",
        &[&tenant, &r.old_id, &r.new_id, &r.renamed_at, &rewritten],
    )
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn restore_context(c: &impl GenericClient, ctx: &ContextRecord) -> Result<()> {
    let kind: &str = match ctx.kind {
        ContextKind::Hosted => "Hosted",
        ContextKind::Cached => "Cached",
        ContextKind::ImplicitlyCreated => "ImplicitlyCreated",
    };
    c.execute(
        "INSERT INTO contexts (url, local_id, kind, document, created_at, tenant) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (url) DO UPDATE SET local_id = excluded.local_id, kind = excluded.kind,
           document = excluded.document, created_at = excluded.created_at, tenant = excluded.tenant",
        &[
            &ctx.url,
            &ctx.local_id,
            &kind,
            &ctx.document.to_string(),
            &time::format(ctx.created_at),
            &ctx.tenant,
        ],
    )
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Writes a history row under its own instance id; re-writing the same row is a no-op
/// change, but an id already used by another series is a conflict (the target broker
/// holds history that overlaps the dump).
async fn restore_instance(c: &impl GenericClient, tenant: &str, h: HistoryRow) -> Result<()> {
    let ds = h.dataset_id.clone().unwrap_or_default();
    let series: i64 = c
        .query_one(
            "INSERT INTO temporal_series (tenant, entity_id, attr, dataset_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, entity_id, attr, dataset_id) DO UPDATE SET attr = excluded.attr
             RETURNING series",
            &[&tenant, &h.entity_id, &h.attr, &ds],
        )
        .await
        .map_err(db_err)?
        .get(0);
    let (num, doc) = encode(h.body, h.observed_us);
    let changed = c
        .execute(
            "INSERT INTO attr_instances (instance, series, observed_us, created_us, modified_us, deleted_us, num, doc)
             OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (instance) DO UPDATE SET observed_us = excluded.observed_us,
               created_us = excluded.created_us, modified_us = excluded.modified_us,
               deleted_us = excluded.deleted_us, num = excluded.num, doc = excluded.doc
             WHERE attr_instances.series = excluded.series",
            &[
                &h.instance_id,
                &series,
                &h.observed_us,
                &h.created_us,
                &h.modified_us,
                &h.deleted_us,
                &num,
                &doc,
            ],
        )
        .await
        .map_err(db_err)?;
    if changed == 0 {
        let other: Option<String> = c
            .query_opt(
                "SELECT s.entity_id FROM attr_instances i JOIN temporal_series s ON s.series = i.series
                 WHERE i.instance = $1",
                &[&h.instance_id],
            )
            .await
            .map_err(db_err)?
            .map(|r| r.get(0));
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

/// The JSON text of an id as it appears in a document (quoted, escaped).
fn needle(id: &str) -> String {
    Value::String(id.to_string()).to_string()
}

async fn exists(c: &impl GenericClient, sql: &str, tenant: &Tenant, id: &str) -> Result<bool> {
    Ok(c.query_opt(sql, &[&tenant.as_str(), &id])
        .await
        .map_err(db_err)?
        .is_some())
}

/// Moves an entity to a new id in the caller's transaction: the entity row, its
/// history series, the references held by other entities (found by the id's JSON text
/// in their documents, then rewritten by the domain) and the record of the rename.
async fn rename_in(
    c: &deadpool_postgres::Transaction<'_>,
    tenant: &Tenant,
    old: &str,
    new: &str,
) -> Result<RenameRow> {
    lock_entities(c, tenant, [old, new].into_iter()).await?;
    let now = time::now();
    let Some(mut entity) = entities::load(c, tenant, old, &now).await? else {
        return Err(NgsiError::not_found(format!("there is no entity {old}")));
    };
    if exists(
        c,
        "SELECT 1 FROM entities WHERE tenant = $1 AND id = $2",
        tenant,
        new,
    )
    .await?
        || exists(
            c,
            "SELECT 1 FROM temporal_entities WHERE tenant = $1 AND id = $2",
            tenant,
            new,
        )
        .await?
    {
        return Err(NgsiError::already_exists(format!(
            "{new} already exists (as an entity or a history)"
        )));
    }
    entities::delete(c, tenant, old).await?;
    entity.id = new.to_string();
    // The entity may point at itself.
    rename::rewrite_entity(&mut entity, old, new);
    entities::save(c, tenant, &entity, None, &now).await?;
    for sql in [
        "UPDATE temporal_series SET entity_id = $3 WHERE tenant = $1 AND entity_id = $2",
        "UPDATE temporal_entities SET id = $3 WHERE tenant = $1 AND id = $2",
    ] {
        c.execute(sql, &[&tenant.as_str(), &old, &new])
            .await
            .map_err(db_err)?;
    }
    let rewritten = rewrite_referrers(c, tenant, old, new, &now).await?;
    rewrite_history(c, tenant, old, new).await?;
    let row = RenameRow {
        old_id: old.to_string(),
        new_id: new.to_string(),
        renamed_at: now,
        rewritten,
    };
    insert_rename(c, tenant.as_str(), &row).await?;
    Ok(row)
}

/// Current state of the entities that mention the old id; returns those changed.
async fn rewrite_referrers(
    c: &deadpool_postgres::Transaction<'_>,
    tenant: &Tenant,
    old: &str,
    new: &str,
    now: &str,
) -> Result<Vec<String>> {
    let find = "SELECT id FROM entities WHERE tenant = $1 AND strpos(doc::text, $2) > 0
                ORDER BY id COLLATE \"C\"";
    let ids: Vec<String> = c
        .query(find, &[&tenant.as_str(), &needle(old)])
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Locked before they are read again: other brokers may be writing them.
    lock_entities(c, tenant, ids.iter().map(String::as_str)).await?;
    let mut changed = Vec::new();
    for id in ids {
        let Some(row) = c
            .query_opt(
                "SELECT doc::text FROM entities WHERE tenant = $1 AND id = $2",
                &[&tenant.as_str(), &id],
            )
            .await
            .map_err(db_err)?
        else {
            continue;
        };
        let before: Entity = serde_json::from_str(row.get::<_, &str>(0))
            .map_err(|e| NgsiError::internal(format!("stored entity is not readable: {e}")))?;
        let mut after = before.clone();
        if rename::rewrite_entity(&mut after, old, new) {
            entities::save(c, tenant, &after, Some(&before), now).await?;
            changed.push(after.id.clone());
        }
    }
    Ok(changed)
}

/// Past instances (of any entity of the tenant) that pointed at the old id.
async fn rewrite_history(
    c: &impl GenericClient,
    tenant: &Tenant,
    old: &str,
    new: &str,
) -> Result<()> {
    let rows = c
        .query(
            "SELECT i.instance, i.doc FROM attr_instances i JOIN temporal_series s ON s.series = i.series
             WHERE s.tenant = $1 AND i.doc IS NOT NULL AND strpos(i.doc, $2) > 0",
            &[&tenant.as_str(), &needle(old)],
        )
        .await
        .map_err(db_err)?;
    for r in &rows {
        let instance: i64 = r.get(0);
        let mut body: Map<String, Value> =
            serde_json::from_str(r.get::<_, &str>(1)).map_err(json_err)?;
        if rename::rewrite_attribute(&mut body, old, new) {
            let (_, doc) = encode(body, None);
            c.execute(
                "UPDATE attr_instances SET doc = $2 WHERE instance = $1",
                &[&instance, &doc],
            )
            .await
            .map_err(db_err)?;
        }
    }
    Ok(())
}
