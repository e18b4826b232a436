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
/// (`row` is the entity's rowid), touching only the rows whose content changed: an
/// update of one value is one `UPDATE` of one row, not a delete and insert through
/// every index.
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
        let old = old.map(|instances| IndexRows::of(instances));
        let new = new.map(|instances| IndexRows::of(instances));
        write_values(conn, row, attr, old.as_ref(), new.as_ref())?;
        write_geo(conn, row, attr, old.as_ref(), new.as_ref())?;
    }
    Ok(())
}

/// What one attribute puts in the indexes.
struct IndexRows<'a> {
    /// (num, txt) per scalar value; one (NULL, NULL) presence row when there is none,
    /// because existence of an attribute is "some row for (entity, attr)". Value tests
    /// all require `num`/`txt` to be non-NULL, so presence rows never match them.
    values: Vec<(Option<f64>, Option<&'a str>)>,
    /// Bounding boxes of its GeoProperty instances, and whether they decide a `near`
    /// query without the entity's document.
    boxes: Vec<[f64; 4]>,
    decisive: bool,
}

impl<'a> IndexRows<'a> {
    fn of(instances: &'a [Attribute]) -> Self {
        let mut values = Vec::new();
        let mut boxes = Vec::new();
        let mut decisive = true;
        for inst in instances {
            let (value, bbox) = match kind(inst) {
                attribute::PROPERTY => (inst.get("value"), None),
                attribute::RELATIONSHIP => (inst.get("object"), None),
                attribute::VOCAB_PROPERTY => (inst.get("vocab"), None),
                attribute::GEO_PROPERTY => (None, inst.get("value").and_then(bounding_box)),
                _ => (None, None),
            };
            decisive &= bbox.is_some() && !inst.contains_key("expiresAt");
            boxes.extend(bbox);
            let scalars = match value {
                Some(Value::Array(items)) => items.as_slice(),
                Some(v) => std::slice::from_ref(v),
                None => &[],
            };
            values.extend(scalars.iter().filter_map(|v| match v {
                Value::Number(n) => Some((n.as_f64(), None)),
                Value::String(s) => Some((None, Some(s.as_str()))),
                _ => None,
            }));
        }
        if values.is_empty() {
            values.push((None, None));
        }
        Self {
            values,
            boxes,
            decisive,
        }
    }
}

fn write_values(
    conn: &Connection,
    row: i64,
    attr: i64,
    old: Option<&IndexRows>,
    new: Option<&IndexRows>,
) -> Result<()> {
    let old_values = old.map_or(&[][..], |o| o.values.as_slice());
    let new_values = new.map_or(&[][..], |n| n.values.as_slice());
    if old_values == new_values {
        return Ok(());
    }
    if let ([_], [(num, txt)]) = (old_values, new_values) {
        // Only the value indexes whose column changed are rewritten.
        return run(
            conn,
            "UPDATE attr_values SET num = ?3, txt = ?4 WHERE entity = ?1 AND attr = ?2",
            params![row, attr, num, txt],
        );
    }
    if !old_values.is_empty() {
        run(
            conn,
            "DELETE FROM attr_values WHERE entity = ?1 AND attr = ?2",
            params![row, attr],
        )?;
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO attr_values (entity, attr, seq, num, txt) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(db_err)?;
    for (seq, (num, txt)) in new_values.iter().enumerate() {
        insert
            .execute(params![row, attr, seq as i64, num, txt])
            .map_err(db_err)?;
    }
    Ok(())
}

fn write_geo(
    conn: &Connection,
    row: i64,
    attr: i64,
    old: Option<&IndexRows>,
    new: Option<&IndexRows>,
) -> Result<()> {
    // Only attributes with boxes can be decisive.
    let decisive = |rows: Option<&IndexRows>| rows.is_some_and(|r| r.decisive);
    let old_boxes = old.map_or(&[][..], |r| r.boxes.as_slice());
    let new_boxes = new.map_or(&[][..], |r| r.boxes.as_slice());
    if old_boxes == new_boxes && (old_boxes.is_empty() || decisive(old) == decisive(new)) {
        return Ok(());
    }
    if !old_boxes.is_empty() {
        for sql in [
            "DELETE FROM geo_index WHERE rid IN (SELECT rid FROM geo_rows WHERE entity = ?1 AND attr = ?2)",
            "DELETE FROM geo_rows WHERE entity = ?1 AND attr = ?2",
        ] {
            run(conn, sql, params![row, attr])?;
        }
    }
    for b in new_boxes {
        insert_geo(conn, row, attr, *b, decisive(new))?;
    }
    Ok(())
}

/// Runs one cached statement.
fn run(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(args))
        .map(|_| ())
        .map_err(db_err)
}

pub fn delete_entity(conn: &Connection, row: i64) -> Result<()> {
    for sql in [
        "DELETE FROM attr_values WHERE entity = ?1",
        "DELETE FROM geo_index WHERE rid IN (SELECT rid FROM geo_rows WHERE entity = ?1)",
        "DELETE FROM geo_rows WHERE entity = ?1",
    ] {
        run(conn, sql, [row])?;
    }
    Ok(())
}

fn kind(i: &Attribute) -> &str {
    i.get("type")
        .and_then(Value::as_str)
        .unwrap_or(attribute::PROPERTY)
}

fn insert_geo(conn: &Connection, row: i64, attr: i64, b: [f64; 4], decisive: bool) -> Result<()> {
    run(
        conn,
        "INSERT INTO geo_rows (entity, attr, decisive) VALUES (?1, ?2, ?3)",
        params![row, attr, decisive],
    )?;
    let rid = conn.last_insert_rowid();
    run(
        conn,
        "INSERT INTO geo_index (rid, min_x, max_x, min_y, max_y) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![rid, b[0], b[1], b[2], b[3]],
    )
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

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::update;
    use crate::store::sqlite::{entities, schema};

    fn entity(attrs: &str) -> crate::ngsi::Entity {
        let doc = format!(
            r#"{{"id":"urn:e","type":["T"],"createdAt":"x","modifiedAt":"x","attrs":{{{attrs}}}}}"#
        );
        entities::decode(&doc).expect("a stored entity document")
    }

    /// Every row of the indexes, in a comparable order.
    fn index_rows(conn: &Connection) -> Vec<String> {
        let mut rows: Vec<String> = conn
            .prepare(
                "SELECT printf('v %d %d %s %s', attr, entity, quote(num), quote(txt)) FROM attr_values
                 UNION ALL
                 SELECT printf('g %d %d %d %g %g %g %g', r.attr, r.entity, r.decisive, g.min_x, g.max_x, g.min_y, g.max_y)
                 FROM geo_rows r JOIN geo_index g ON g.rid = r.rid",
            )
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("index rows");
        rows.sort();
        rows
    }

    /// Whatever the change, the rows left by an incremental update are exactly those a
    /// rebuild from the new document writes.
    #[test]
    fn incremental_updates_leave_the_rows_a_rebuild_writes() {
        let point = |x: f64| {
            format!(
                r#"{{"type":"GeoProperty","value":{{"type":"Point","coordinates":[{x},43.3]}}}}"#
            )
        };
        let states = [
            r#""urn:a":[{"type":"Property","value":1}]"#.to_string(),
            r#""urn:a":[{"type":"Property","value":2}]"#.to_string(),
            r#""urn:a":[{"type":"Property","value":"text"}]"#.to_string(),
            r#""urn:a":[{"type":"Property","value":[3,"x",4]}]"#.to_string(),
            r#""urn:a":[{"type":"Property","value":{"nested":1}}]"#.to_string(),
            r#""urn:a":[{"type":"Relationship","object":"urn:b"}],"urn:g":[GEO1]"#.replace("GEO1", &point(5.1)),
            r#""urn:a":[{"type":"Property","value":5},{"type":"Property","value":6,"datasetId":"urn:d"}],"urn:g":[GEO2]"#.replace("GEO2", &point(5.2)),
            r#""urn:g":[GEO2,{"type":"Property","value":7,"datasetId":"urn:d"}]"#.replace("GEO2", &point(5.2)),
            r#""urn:g":[{"type":"Property","value":8}]"#.to_string(),
            String::new(),
        ];
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        schema::migrate(&mut conn).expect("schema");
        let mut before: Option<crate::ngsi::Entity> = None;
        for (step, attrs) in states.iter().enumerate() {
            let after = entity(attrs);
            update(&conn, 1, before.as_ref(), &after).expect("incremental update");
            let incremental = index_rows(&conn);

            let mut fresh = Connection::open_in_memory().expect("in-memory database");
            schema::migrate(&mut fresh).expect("schema");
            for name in ["urn:a", "urn:g"] {
                // The same name ids in both databases.
                entities::name_id(&conn, name).expect("name");
                entities::name_id(&fresh, name).expect("name");
            }
            update(&fresh, 1, None, &after).expect("rebuild");
            assert_eq!(
                incremental,
                index_rows(&fresh),
                "after step {step}: {attrs}"
            );
            before = Some(after);
        }
    }
}
