//! Keeps `attr_values` and the geo R*Tree in step with the entities, so that q terms and
//! geo-queries are answered from indexes.

use rusqlite::{params, Connection};
use serde_json::Value;

use crate::error::{NgsiError, Result};
use crate::ngsi::attribute::{self, Attribute};
use crate::ngsi::Entity;

fn db_err(e: rusqlite::Error) -> NgsiError {
    NgsiError::internal(format!("sqlite: {e}"))
}

/// Rewrites the index rows of the attributes that changed between `before` and `after`
/// (`row` is the entity's rowid).
pub fn update(conn: &Connection, row: i64, before: Option<&Entity>, after: &Entity) -> Result<()> {
    let mut names: Vec<&String> = after.attrs.keys().collect();
    if let Some(b) = before {
        names.extend(b.attrs.keys().filter(|k| !after.attrs.contains_key(*k)));
    }
    for name in names {
        let old = before.and_then(|b| b.attrs.get(name));
        let new = after.attrs.get(name);
        if before.is_some() && old == new {
            continue;
        }
        let attr = super::entities::name_id(conn, name)?;
        if before.is_some() {
            clear_attr(conn, row, attr)?;
        }
        if let Some(instances) = new {
            insert_attr(conn, row, attr, instances)?;
        }
    }
    Ok(())
}

pub fn delete_entity(conn: &Connection, row: i64) -> Result<()> {
    for sql in [
        "DELETE FROM attr_values WHERE entity = ?1",
        "DELETE FROM geo_index WHERE rid IN (SELECT rid FROM geo_rows WHERE entity = ?1)",
        "DELETE FROM geo_rows WHERE entity = ?1",
    ] {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([row]))
            .map_err(db_err)?;
    }
    Ok(())
}

fn clear_attr(conn: &Connection, row: i64, attr: i64) -> Result<()> {
    for sql in [
        "DELETE FROM attr_values WHERE entity = ?1 AND attr = ?2",
        "DELETE FROM geo_index WHERE rid IN (SELECT rid FROM geo_rows WHERE entity = ?1 AND attr = ?2)",
        "DELETE FROM geo_rows WHERE entity = ?1 AND attr = ?2",
    ] {
        conn.prepare_cached(sql).and_then(|mut s| s.execute(params![row, attr])).map_err(db_err)?;
    }
    Ok(())
}

fn insert_attr(conn: &Connection, row: i64, attr: i64, instances: &[Attribute]) -> Result<()> {
    let mut value_row = conn
        .prepare_cached("INSERT INTO attr_values (attr, entity, num, txt) VALUES (?1, ?2, ?3, ?4)")
        .map_err(db_err)?;
    let mut values = 0usize;
    let boxes: Vec<Option<[f64; 4]>> = instances
        .iter()
        .map(|i| match kind(i) {
            attribute::GEO_PROPERTY => i.get("value").and_then(bounding_box),
            _ => None,
        })
        .collect();
    // Whether the boxes of this attribute decide a `near` query without its document.
    let decisive = instances
        .iter()
        .zip(&boxes)
        .all(|(i, b)| b.is_some() && !i.contains_key("expiresAt"));
    for (inst, bbox) in instances.iter().zip(&boxes) {
        let kind = kind(inst);
        let value = match kind {
            attribute::PROPERTY => inst.get("value"),
            attribute::RELATIONSHIP => inst.get("object"),
            attribute::VOCAB_PROPERTY => inst.get("vocab"),
            attribute::GEO_PROPERTY => {
                if let Some(bbox) = bbox {
                    insert_geo(conn, row, attr, *bbox, decisive)?;
                }
                None
            }
            _ => None,
        };
        let scalars: Vec<&Value> = match value {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(v) => vec![v],
            None => Vec::new(),
        };
        for v in scalars {
            let (num, txt) = match v {
                Value::Number(n) => (n.as_f64(), None),
                Value::String(s) => (None, Some(s.as_str())),
                _ => continue,
            };
            value_row
                .execute(params![attr, row, num, txt])
                .map_err(db_err)?;
            values += 1;
        }
    }
    // Existence of an attribute is "some row for (entity, attr)": a value row already
    // says it, so the presence row (num and txt NULL) is only written when there is none.
    // Value tests all require `num`/`txt` to be non-NULL, so stores that still hold
    // presence rows beside value rows answer exactly the same.
    if values == 0 {
        value_row
            .execute(params![attr, row, None::<f64>, None::<String>])
            .map_err(db_err)?;
    }
    Ok(())
}

fn kind(i: &Attribute) -> &str {
    i.get("type")
        .and_then(Value::as_str)
        .unwrap_or(attribute::PROPERTY)
}

fn insert_geo(conn: &Connection, row: i64, attr: i64, b: [f64; 4], decisive: bool) -> Result<()> {
    conn.prepare_cached("INSERT INTO geo_rows (entity, attr, decisive) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![row, attr, decisive]))
        .map_err(db_err)?;
    let rid = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO geo_index (rid, min_x, max_x, min_y, max_y) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![rid, b[0], b[1], b[2], b[3]]))
    .map_err(db_err)?;
    Ok(())
}

/// [min_x, max_x, min_y, max_y] of a GeoJSON geometry.
pub fn bounding_box(geometry: &Value) -> Option<[f64; 4]> {
    fn walk(v: &Value, b: &mut [f64; 4]) {
        match v.as_array() {
            Some(a) if a.first().is_some_and(Value::is_number) => {
                if let (Some(x), Some(y)) = (
                    a.first().and_then(Value::as_f64),
                    a.get(1).and_then(Value::as_f64),
                ) {
                    b[0] = b[0].min(x);
                    b[1] = b[1].max(x);
                    b[2] = b[2].min(y);
                    b[3] = b[3].max(y);
                }
            }
            Some(a) => a.iter().for_each(|i| walk(i, b)),
            None => {}
        }
    }
    let mut b = [
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    walk(geometry.get("coordinates")?, &mut b);
    b[0].is_finite().then_some(b)
}

/// Builds the indexes for every stored entity (after the migration that adds them).
pub fn reindex_all(conn: &Connection) -> Result<()> {
    let mut stmt = conn
        .prepare("SELECT rowid, doc FROM entities")
        .map_err(db_err)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_err)?;
    for (row, doc) in rows {
        let entity: Entity = serde_json::from_str(&doc).map_err(NgsiError::internal)?;
        update(conn, row, None, &entity)?;
    }
    Ok(())
}
