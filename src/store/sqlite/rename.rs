//! Entity rename in SQLite, in one savepoint: the entity row, its history series, the
//! references held by other entities (found by the id's JSON text in their documents,
//! then rewritten by the domain) and the record of the rename.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::{db_err, entities, writer_cache};
use crate::error::{NgsiError, Result};
use crate::ngsi::{rename, time, Entity, Tenant};
use crate::store::dump::RenameRow;

fn exists(conn: &Connection, sql: &str, tenant: &Tenant, id: &str) -> Result<bool> {
    conn.prepare_cached(sql)
        .and_then(|mut s| {
            s.query_row(params![tenant.as_str(), id], |_| Ok(()))
                .optional()
        })
        .map(|r| r.is_some())
        .map_err(db_err)
}

pub fn rename(conn: &Connection, tenant: &Tenant, old: &str, new: &str) -> Result<RenameRow> {
    let now = time::now();
    let Some(mut entity) = entities::load(conn, tenant, old, &now)? else {
        return Err(NgsiError::not_found(format!("there is no entity {old}")));
    };
    if exists(
        conn,
        "SELECT 1 FROM entities WHERE tenant = ?1 AND id = ?2",
        tenant,
        new,
    )? || exists(
        conn,
        "SELECT 1 FROM temporal_entities WHERE tenant = ?1 AND id = ?2",
        tenant,
        new,
    )? {
        return Err(NgsiError::already_exists(format!(
            "{new} already exists (as an entity or a history)"
        )));
    }
    // The series cache is keyed by entity id.
    writer_cache::clear();
    entities::delete(conn, tenant, old)?;
    entity.id = new.to_string();
    // The entity may point at itself.
    rename::rewrite_entity(&mut entity, old, new);
    entities::save(conn, tenant, &entity, None)?;
    // The history's series belong to the temporal entity row, which keeps its rowid.
    conn.execute(
        "UPDATE temporal_entities SET id = ?3 WHERE tenant = ?1 AND id = ?2",
        params![tenant.as_str(), old, new],
    )
    .map_err(db_err)?;
    let rewritten = rewrite_referrers(conn, tenant, old, new)?;
    rewrite_history(conn, tenant, old, new)?;
    let row = RenameRow {
        old_id: old.to_string(),
        new_id: new.to_string(),
        renamed_at: now,
        rewritten,
    };
    super::dump::insert_rename(conn, tenant.as_str(), &row)?;
    Ok(row)
}

/// The JSON text of an id as it appears in a document (quoted, escaped).
fn needle(id: &str) -> String {
    Value::String(id.to_string()).to_string()
}

/// Current state of the entities that mention the old id; returns those changed.
fn rewrite_referrers(
    conn: &Connection,
    tenant: &Tenant,
    old: &str,
    new: &str,
) -> Result<Vec<String>> {
    let docs: Vec<String> = {
        let mut stmt = conn
            .prepare(
                "SELECT doc FROM entities WHERE tenant = ?1 AND instr(doc, ?2) > 0 ORDER BY id",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![tenant.as_str(), needle(old)], |r| r.get(0))
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)?
    };
    let mut changed = Vec::new();
    for doc in docs {
        let before: Entity = serde_json::from_str(&doc)
            .map_err(|e| NgsiError::internal(format!("stored entity is not readable: {e}")))?;
        let mut after = before.clone();
        if rename::rewrite_entity(&mut after, old, new) {
            entities::save(conn, tenant, &after, Some(&before))?;
            changed.push(after.id.clone());
        }
    }
    Ok(changed)
}

/// Past instances (of any entity of the tenant) that pointed at the old id.
fn rewrite_history(conn: &Connection, tenant: &Tenant, old: &str, new: &str) -> Result<()> {
    let rows: Vec<(i64, String)> = {
        let mut stmt = conn
            .prepare(
                "SELECT i.instance, i.doc FROM attr_instances i JOIN temporal_series s ON s.series = i.series
                 JOIN temporal_entities t ON t.rowid = s.owner
                 WHERE t.tenant = ?1 AND i.doc IS NOT NULL AND instr(i.doc, ?2) > 0",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![tenant.as_str(), needle(old)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)?
    };
    for (instance, doc) in rows {
        let mut body: Map<String, Value> =
            serde_json::from_str(&doc).map_err(NgsiError::internal)?;
        if rename::rewrite_attribute(&mut body, old, new) {
            // Only rows stored as JSON are rewritten, and they stay JSON: the number,
            // unit and time columns of the row are left as they are.
            let doc = Value::Object(body).to_string();
            conn.execute(
                "UPDATE attr_instances SET doc = ?2 WHERE instance = ?1",
                params![instance, doc],
            )
            .map_err(db_err)?;
        }
    }
    Ok(())
}
