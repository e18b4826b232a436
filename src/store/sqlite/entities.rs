//! Entity rows: load, save, delete and select, in SQL.

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql};

use crate::error::{NgsiError, Result};
use crate::ngsi::query::EntityQuery;
use crate::ngsi::{Entity, Tenant};

fn db_err(e: rusqlite::Error) -> NgsiError {
    NgsiError::internal(format!("sqlite: {e}"))
}

fn decode(doc: &str) -> Result<Entity> {
    let mut entity: Entity = serde_json::from_str(doc)
        .map_err(|e| NgsiError::internal(format!("stored entity is not readable: {e}")))?;
    entity.drop_expired_attributes(&crate::ngsi::time::now());
    Ok(entity)
}

pub fn load(conn: &Connection, tenant: &Tenant, id: &str, now: &str) -> Result<Option<Entity>> {
    let doc: Option<String> = conn
        .prepare_cached(
            "SELECT doc FROM entities WHERE tenant = ?1 AND id = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
        )
        .and_then(|mut s| s.query_row(params![tenant.as_str(), id, now], |r| r.get(0)).optional())
        .map_err(db_err)?;
    doc.as_deref().map(decode).transpose()
}

pub fn save(
    conn: &Connection,
    tenant: &Tenant,
    entity: &Entity,
    before: Option<&Entity>,
) -> Result<()> {
    let doc = serde_json::to_string(entity).map_err(NgsiError::internal)?;
    conn.prepare_cached(
        "INSERT INTO entities (tenant, id, doc, created_at, modified_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc, created_at = excluded.created_at,
           modified_at = excluded.modified_at, expires_at = excluded.expires_at",
    )
    .and_then(|mut s| {
        s.execute(params![
            tenant.as_str(),
            entity.id,
            doc,
            entity.created_at,
            entity.modified_at,
            entity.expires_at
        ])
    })
    .map_err(db_err)?;
    let types_changed = before.is_none_or(|b| b.types != entity.types);
    if types_changed {
        conn.prepare_cached("DELETE FROM entity_types WHERE tenant = ?1 AND id = ?2")
            .and_then(|mut s| s.execute(params![tenant.as_str(), entity.id]))
            .map_err(db_err)?;
        let mut insert = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO entity_types (tenant, type, id) VALUES (?1, ?2, ?3)",
            )
            .map_err(db_err)?;
        for t in &entity.types {
            insert
                .execute(params![tenant.as_str(), t, entity.id])
                .map_err(db_err)?;
        }
    }
    let attrs_changed = before.is_none_or(|b| !b.attrs.keys().eq(entity.attrs.keys()));
    if attrs_changed {
        conn.prepare_cached("DELETE FROM entity_attrs WHERE tenant = ?1 AND id = ?2")
            .and_then(|mut s| s.execute(params![tenant.as_str(), entity.id]))
            .map_err(db_err)?;
        let mut insert = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO entity_attrs (tenant, attr, id) VALUES (?1, ?2, ?3)",
            )
            .map_err(db_err)?;
        for a in entity.attrs.keys() {
            insert
                .execute(params![tenant.as_str(), a, entity.id])
                .map_err(db_err)?;
        }
    }
    Ok(())
}

pub fn delete(conn: &Connection, tenant: &Tenant, id: &str) -> Result<()> {
    for sql in [
        "DELETE FROM entities WHERE tenant = ?1 AND id = ?2",
        "DELETE FROM entity_types WHERE tenant = ?1 AND id = ?2",
        "DELETE FROM entity_attrs WHERE tenant = ?1 AND id = ?2",
    ] {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute(params![tenant.as_str(), id]))
            .map_err(db_err)?;
    }
    Ok(())
}

pub fn ensure_tenant(conn: &Connection, tenant: &Tenant, now: &str) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![tenant.as_str(), now]))
        .map_err(db_err)?;
    Ok(())
}

/// Builds the WHERE clause of a selection; parameters are bound, never spliced.
fn selection(query: &EntityQuery, tenant: &Tenant, now: &str) -> (String, Vec<Box<dyn ToSql>>) {
    let mut sql = String::from("e.tenant = ? AND (e.expires_at IS NULL OR e.expires_at > ?)");
    let mut args: Vec<Box<dyn ToSql>> = vec![
        Box::new(tenant.as_str().to_string()),
        Box::new(now.to_string()),
    ];
    let in_list =
        |sql: &mut String, args: &mut Vec<Box<dyn ToSql>>, prefix: &str, values: &[String]| {
            sql.push_str(prefix);
            sql.push('(');
            for (i, v) in values.iter().enumerate() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
                args.push(Box::new(v.clone()));
            }
            sql.push(')');
        };
    if let Some(types) = &query.types {
        args.push(Box::new(tenant.as_str().to_string()));
        in_list(
            &mut sql,
            &mut args,
            " AND e.id IN (SELECT id FROM entity_types WHERE tenant = ? AND type IN ",
            types,
        );
        sql.push(')');
    }
    if let Some(ids) = &query.ids {
        in_list(&mut sql, &mut args, " AND e.id IN ", ids);
    }
    if let Some(pattern) = &query.id_pattern {
        sql.push_str(" AND regexp(?, e.id)");
        args.push(Box::new(pattern.clone()));
    }
    if let Some(attrs) = &query.attrs {
        args.push(Box::new(tenant.as_str().to_string()));
        in_list(
            &mut sql,
            &mut args,
            " AND e.id IN (SELECT id FROM entity_attrs WHERE tenant = ? AND attr IN ",
            attrs,
        );
        sql.push(')');
    }
    (sql, args)
}

pub fn select(
    conn: &Connection,
    tenant: &Tenant,
    query: &EntityQuery,
    now: &str,
) -> Result<Vec<Entity>> {
    if query.q.is_some() {
        return Ok(scan(conn, tenant, query, now, true)?.0);
    }
    let (filter, mut args) = selection(query, tenant, now);
    let sql =
        format!("SELECT e.doc FROM entities e WHERE {filter} ORDER BY e.rowid LIMIT ? OFFSET ?");
    args.push(Box::new(query.limit as i64));
    args.push(Box::new(query.offset as i64));
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let docs = stmt
        .query_map(params_from_iter(args.iter().map(|a| a.as_ref())), |r| {
            r.get::<_, String>(0)
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(db_err)?;
    docs.iter().map(|d| decode(d)).collect()
}

pub fn count(conn: &Connection, tenant: &Tenant, query: &EntityQuery, now: &str) -> Result<u64> {
    if query.q.is_some() {
        return Ok(scan(conn, tenant, query, now, false)?.1);
    }
    let (filter, args) = selection(query, tenant, now);
    let sql = format!("SELECT COUNT(*) FROM entities e WHERE {filter}");
    let n: i64 = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(params_from_iter(args.iter().map(|a| a.as_ref())), |r| {
                r.get(0)
            })
        })
        .map_err(db_err)?;
    Ok(n.max(0) as u64)
}

/// Streams the SQL-selected rows through the q filter, keeping only the requested page:
/// memory stays bounded by the page, whatever the number of candidates.
// TODO(query issue): translate q to SQL so indexes do the filtering.
fn scan(
    conn: &Connection,
    tenant: &Tenant,
    query: &EntityQuery,
    now: &str,
    keep: bool,
) -> Result<(Vec<Entity>, u64)> {
    let (filter, args) = selection(query, tenant, now);
    let sql = format!("SELECT e.doc FROM entities e WHERE {filter} ORDER BY e.rowid");
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt
        .query(params_from_iter(args.iter().map(|a| a.as_ref())))
        .map_err(db_err)?;
    let (mut page, mut matched) = (Vec::new(), 0u64);
    while let Some(row) = rows.next().map_err(db_err)? {
        let doc: String = row.get(0).map_err(db_err)?;
        let entity = decode(&doc)?;
        if query
            .q
            .as_ref()
            .is_some_and(|q| crate::ngsi::q::matches(q, &entity))
        {
            if keep && matched as usize >= query.offset && page.len() < query.limit {
                page.push(entity);
            }
            matched += 1;
        }
    }
    Ok((page, matched))
}

pub fn select_ids(
    conn: &Connection,
    tenant: &Tenant,
    query: &EntityQuery,
    now: &str,
) -> Result<Vec<String>> {
    if query.q.is_some() {
        let all = EntityQuery {
            limit: usize::MAX,
            offset: 0,
            ..query.clone()
        };
        return Ok(scan(conn, tenant, &all, now, true)?
            .0
            .into_iter()
            .map(|e| e.id)
            .collect());
    }
    let (filter, args) = selection(query, tenant, now);
    let sql = format!("SELECT e.id FROM entities e WHERE {filter}");
    let mut stmt = conn.prepare(&sql).map_err(db_err)?;
    let ids = stmt
        .query_map(params_from_iter(args.iter().map(|a| a.as_ref())), |r| {
            r.get::<_, String>(0)
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(db_err)?;
    Ok(ids)
}
