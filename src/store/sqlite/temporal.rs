//! Attribute history in SQLite: recorded inside each entity write, queried with the
//! time filters and aggregates pushed into SQL.

use rusqlite::types::ValueRef;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql};
use serde_json::{json, Map, Value};

use crate::error::{NgsiError, Result};
use crate::ngsi::attribute::{self, Attribute};
use crate::ngsi::temporal::aggregate::{BucketFolder, DistinctKey};
use crate::ngsi::temporal::changes::{self, micros_of, StoredInstance};
use crate::ngsi::temporal::{
    AggrMethod, AttributeAggregates, Instance, TemporalEntity, TemporalQuery, TimeProperty, TimeRel,
};
use crate::ngsi::{time, Entity, Tenant};

fn db_err(e: rusqlite::Error) -> NgsiError {
    NgsiError::internal(format!("sqlite: {e}"))
}

pub use crate::ngsi::temporal::changes::NewInstance;

/// Creates or updates the temporal entity row; true if it was created.
pub fn upsert_entity(conn: &Connection, tenant: &Tenant, e: &TemporalEntity) -> Result<bool> {
    let existed = conn
        .prepare_cached("SELECT 1 FROM temporal_entities WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant.as_str(), e.id], |_| Ok(()))
                .optional()
        })
        .map_err(db_err)?
        .is_some();
    let types = serde_json::to_string(&e.types).map_err(NgsiError::internal)?;
    let scope = e.scope.as_ref().map(|s| json!(s).to_string());
    conn.prepare_cached(
        "INSERT INTO temporal_entities (tenant, id, types, scope, created_at, modified_at, deleted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, scope = excluded.scope,
           modified_at = excluded.modified_at, deleted_at = excluded.deleted_at",
    )
    .and_then(|mut s| s.execute(params![tenant.as_str(), e.id, types, scope, e.created_at, e.modified_at, e.deleted_at]))
    .map_err(db_err)?;
    Ok(!existed)
}

pub(crate) fn series_id(
    conn: &Connection,
    tenant: &Tenant,
    entity_id: &str,
    attr: &str,
    ds: Option<&str>,
) -> Result<i64> {
    find_or_add_series(conn, &mut Owner::existing(tenant, entity_id), attr, ds)
}

/// The temporal entity whose series a write adds to; its row id is looked up at most
/// once per write, and only when a series is not in the writer's cache.
struct Owner<'a> {
    tenant: &'a Tenant,
    entity_id: &'a str,
    row: Option<i64>,
    /// The row was just inserted: it has no series yet, so none is looked up.
    is_new: bool,
}

impl<'a> Owner<'a> {
    fn existing(tenant: &'a Tenant, entity_id: &'a str) -> Self {
        Self {
            tenant,
            entity_id,
            row: None,
            is_new: false,
        }
    }

    fn just_inserted(tenant: &'a Tenant, entity_id: &'a str, row: i64) -> Self {
        Self {
            tenant,
            entity_id,
            row: Some(row),
            is_new: true,
        }
    }

    fn row(&mut self, conn: &Connection) -> Result<i64> {
        if let Some(row) = self.row {
            return Ok(row);
        }
        let row = owner_row(conn, self.tenant, self.entity_id)?;
        self.row = Some(row);
        Ok(row)
    }
}

/// The rowid of an entity's temporal row. History arriving before its temporal entity
/// (a restore whose dump lists them in another order) gets a row without types, which
/// the temporal entity fills in when it comes.
fn owner_row(conn: &Connection, tenant: &Tenant, entity_id: &str) -> Result<i64> {
    let found = conn
        .prepare_cached("SELECT rowid FROM temporal_entities WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant.as_str(), entity_id], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)?;
    if let Some(row) = found {
        return Ok(row);
    }
    let now = time::now();
    conn.prepare_cached(
        "INSERT INTO temporal_entities (tenant, id, types, created_at, modified_at) VALUES (?1, ?2, '[]', ?3, ?3)",
    )
    .and_then(|mut s| s.execute(params![tenant.as_str(), entity_id, now]))
    .map_err(db_err)?;
    Ok(conn.last_insert_rowid())
}

/// The interned id of a datasetId; 0 for the default instance.
fn dataset_key(conn: &Connection, ds: &str) -> Result<i64> {
    if ds.is_empty() {
        Ok(0)
    } else {
        super::entities::name_id(conn, ds)
    }
}

/// The series of (entity, attribute, datasetId), created if missing.
fn find_or_add_series(
    conn: &Connection,
    owner: &mut Owner,
    attr: &str,
    ds: Option<&str>,
) -> Result<i64> {
    let ds = ds.unwrap_or("");
    let key = super::writer_cache::SeriesKey::new(owner.tenant.as_str(), owner.entity_id, attr, ds);
    if let Some(id) = super::writer_cache::series(&key) {
        return Ok(id);
    }
    let key_ids = (
        owner.row(conn)?,
        super::entities::name_id(conn, attr)?,
        dataset_key(conn, ds)?,
    );
    let add = || {
        conn.prepare_cached(
            "INSERT INTO temporal_series (owner, attr, dataset) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut s| s.execute(params![key_ids.0, key_ids.1, key_ids.2]))
        .map(|_| conn.last_insert_rowid())
    };
    // A lookup, then a plain INSERT when missing: the upsert with RETURNING it replaces
    // rewrote the existing row and built an ephemeral result table on every call.
    let find = || {
        conn.prepare_cached(
            "SELECT series FROM temporal_series WHERE owner = ?1 AND attr = ?2 AND dataset = ?3",
        )
        .and_then(|mut s| {
            s.query_row(params![key_ids.0, key_ids.1, key_ids.2], |r| r.get(0))
                .optional()
        })
    };
    let added = if owner.is_new { add().ok() } else { None };
    let id = match added {
        Some(id) => id,
        None => match find().map_err(db_err)? {
            Some(id) => id,
            None => add().map_err(db_err)?,
        },
    };
    super::writer_cache::remember_series(key, id);
    Ok(id)
}

pub fn insert(
    conn: &Connection,
    tenant: &Tenant,
    entity_id: &str,
    inst: &NewInstance,
    now_us: i64,
) -> Result<()> {
    insert_instance(conn, &mut Owner::existing(tenant, entity_id), inst, now_us)
}

fn insert_instance(
    conn: &Connection,
    owner: &mut Owner,
    inst: &NewInstance,
    now_us: i64,
) -> Result<()> {
    let series = find_or_add_series(conn, owner, &inst.attr, inst.dataset_id.as_deref())?;
    let StoredInstance {
        body,
        created_us: created,
        modified_us: modified,
        observed_us: observed,
    } = inst.stored(now_us);
    let stored = encode(body, observed);
    conn.prepare_cached(
        "INSERT INTO attr_instances (series, observed_us, created_us, modified_us, deleted_us, num, unit, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            series,
            observed,
            created,
            modified,
            inst.deleted.then_some(now_us),
            stored.num,
            stored.unit,
            stored.doc
        ])
    })
    .map_err(db_err)?;
    Ok(())
}

/// How an instance body is stored: a bare number with its unit code when that is all
/// it holds (most sensor readings: ~20 bytes instead of ~80 of JSON), else its JSON.
pub(crate) struct Stored {
    /// The value when it is a number (also kept beside the JSON, for aggregates).
    pub num: Option<f64>,
    /// `unitCode` of a compact row.
    pub unit: Option<String>,
    /// The JSON; NULL for a compact row.
    pub doc: Option<String>,
}

/// The stored columns of an instance body (without its system members).
pub(crate) fn encode(body: Map<String, Value>, observed: Option<i64>) -> Stored {
    // A floating-point Property with at most observedAt and a unitCode is stored as its
    // number alone; integers keep their JSON so they read back as integers.
    let compact = body.get("type").and_then(Value::as_str) == Some(attribute::PROPERTY)
        && body.get("value").is_some_and(|v| v.is_f64())
        && body.get("unitCode").is_none_or(Value::is_string)
        && body
            .keys()
            .all(|k| matches!(k.as_str(), "type" | "value" | "observedAt" | "unitCode"))
        && body
            .get("observedAt")
            .map(|o| {
                o.as_str()
                    .zip(observed)
                    .is_some_and(|(s, us)| time::from_micros(us) == s)
            })
            .unwrap_or(true);
    let num = body.get("value").and_then(Value::as_f64);
    if compact {
        let unit = body
            .get("unitCode")
            .and_then(Value::as_str)
            .map(str::to_string);
        Stored {
            num,
            unit,
            doc: None,
        }
    } else {
        Stored {
            num,
            unit: None,
            doc: Some(Value::Object(body).to_string()),
        }
    }
}

/// An instance body from its stored columns (the inverse of `encode`).
pub(crate) fn decode(
    num: Option<f64>,
    unit: Option<String>,
    doc: Option<String>,
    observed: Option<i64>,
) -> Result<Map<String, Value>> {
    Ok(match doc {
        Some(d) => serde_json::from_str::<Map<String, Value>>(&d).map_err(NgsiError::internal)?,
        None => {
            let mut b = Map::new();
            b.insert("type".into(), json!(attribute::PROPERTY));
            b.insert("value".into(), json!(num.unwrap_or(0.0)));
            if let Some(o) = observed {
                b.insert("observedAt".into(), json!(time::from_micros(o)));
            }
            if let Some(u) = unit {
                b.insert("unitCode".into(), json!(u));
            }
            b
        }
    })
}

/// Records what an entity write changed (`ngsi::temporal::changes`).
pub fn record_change(
    conn: &Connection,
    tenant: &Tenant,
    before: Option<&Entity>,
    after: Option<&Entity>,
) -> Result<()> {
    let now = time::now();
    let now_us = time::parse(&now).map(time::micros).unwrap_or(0);
    let Some(id) = after.or(before).map(|e| e.id.clone()) else {
        return Ok(());
    };
    // An entity created with no history yet (the usual create) has no series to look up.
    let owner_is_new = before.is_none() && !has_temporal_row(conn, tenant, &id)?;
    if let Some(a) = after {
        store_entity(conn, tenant, &changes::temporal_entity_of(a))?;
    }
    let mut owner = if owner_is_new && after.is_some() {
        // store_entity has just inserted the row.
        Owner::just_inserted(tenant, &id, conn.last_insert_rowid())
    } else {
        Owner::existing(tenant, &id)
    };
    for inst in changes::changed_instances(before, after) {
        insert_instance(conn, &mut owner, &inst, now_us)?;
    }
    if before.is_some() && after.is_none() {
        conn.prepare_cached("UPDATE temporal_entities SET deleted_at = ?3, modified_at = ?3 WHERE tenant = ?1 AND id = ?2")
            .and_then(|mut s| s.execute(params![tenant.as_str(), id, now]))
            .map_err(db_err)?;
    }
    Ok(())
}

fn has_temporal_row(conn: &Connection, tenant: &Tenant, id: &str) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM temporal_entities WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| s.exists(params![tenant.as_str(), id]))
        .map_err(db_err)
}

pub fn load_entity(conn: &Connection, tenant: &Tenant, id: &str) -> Result<Option<TemporalEntity>> {
    conn.prepare_cached(
        "SELECT id, types, scope, created_at, modified_at, deleted_at FROM temporal_entities WHERE tenant = ?1 AND id = ?2",
    )
    .and_then(|mut s| s.query_row(params![tenant.as_str(), id], row_entity).optional())
    .map_err(db_err)
}

fn row_entity(r: &rusqlite::Row) -> rusqlite::Result<TemporalEntity> {
    let types: String = r.get(1)?;
    let scope: Option<String> = r.get(2)?;
    Ok(TemporalEntity {
        id: r.get(0)?,
        types: serde_json::from_str(&types).unwrap_or_default(),
        scope: scope.and_then(|s| serde_json::from_str(&s).ok()),
        created_at: r.get(3)?,
        modified_at: r.get(4)?,
        deleted_at: r.get(5)?,
    })
}

/// Entities of the temporal store matching a selection (types OR'ed, ids, pattern).
pub fn select_entities(
    conn: &Connection,
    tenant: &Tenant,
    sel: &crate::store::TemporalSelection,
) -> Result<Vec<TemporalEntity>> {
    let (types, ids, id_pattern) = (
        sel.types.as_deref(),
        sel.ids.as_deref(),
        sel.id_pattern.as_deref(),
    );
    let mut sql = String::from(
        "SELECT t.id, t.types, t.scope, t.created_at, t.modified_at, t.deleted_at FROM temporal_entities t WHERE t.tenant = ?",
    );
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(tenant.as_str().to_string())];
    if let Some(types) = types {
        sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(t.types) j WHERE j.value IN (");
        sql.push_str(&vec!["?"; types.len()].join(", "));
        sql.push_str("))");
        args.extend(types.iter().map(|t| Box::new(t.clone()) as Box<dyn ToSql>));
    }
    if ids.is_some_and(<[String]>::is_empty) {
        return Ok(Vec::new());
    }
    if let Some(ids) = ids {
        sql.push_str(" AND t.id IN (");
        sql.push_str(&vec!["?"; ids.len()].join(", "));
        sql.push(')');
        args.extend(ids.iter().map(|t| Box::new(t.clone()) as Box<dyn ToSql>));
    }
    if let Some(p) = id_pattern {
        sql.push_str(" AND regexp(?, t.id)");
        args.push(Box::new(p.to_string()));
    }
    sql.push_str(match sel.id_descending {
        None => " ORDER BY t.rowid",
        Some(false) => " ORDER BY t.id",
        Some(true) => " ORDER BY t.id DESC",
    });
    sql.push_str(" LIMIT ? OFFSET ?");
    args.push(Box::new(sel.limit.min(i64::MAX as usize) as i64));
    args.push(Box::new(sel.offset.min(i64::MAX as usize) as i64));
    let mut stmt = conn.prepare(&sql).map_err(db_err)?;
    let rows = stmt
        .query_map(
            params_from_iter(args.iter().map(|a| a.as_ref())),
            row_entity,
        )
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_err)?;
    Ok(rows)
}

struct Series {
    id: i64,
    attr: String,
    dataset_id: Option<String>,
}

fn series_of(
    conn: &Connection,
    tenant: &Tenant,
    entity_id: &str,
    attrs: Option<&[String]>,
) -> Result<Vec<Series>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT s.series, a.name, d.name FROM temporal_series s
             JOIN names a ON a.id = s.attr LEFT JOIN names d ON d.id = s.dataset
             WHERE s.owner = (SELECT rowid FROM temporal_entities WHERE tenant = ?1 AND id = ?2)
             ORDER BY s.series",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![tenant.as_str(), entity_id], |r| {
            Ok(Series {
                id: r.get(0)?,
                attr: r.get(1)?,
                dataset_id: r.get(2)?,
            })
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .filter(|s| attrs.is_none_or(|a| a.contains(&s.attr)))
        .collect())
}

fn time_column(p: TimeProperty) -> &'static str {
    match p {
        TimeProperty::ObservedAt => "observed_us",
        TimeProperty::CreatedAt => "created_us",
        TimeProperty::ModifiedAt => "modified_us",
        TimeProperty::DeletedAt => "deleted_us",
    }
}

/// The time filter as SQL on the chosen time column.
fn time_filter(q: &TemporalQuery, args: &mut Vec<Box<dyn ToSql>>) -> String {
    let col = time_column(q.timeproperty);
    let mut sql = format!(" AND {col} IS NOT NULL");
    match q.timerel {
        Some(TimeRel::Before(t)) => {
            sql.push_str(&format!(" AND {col} < ?"));
            args.push(Box::new(t));
        }
        Some(TimeRel::After(t)) => {
            sql.push_str(&format!(" AND {col} >= ?"));
            args.push(Box::new(t));
        }
        Some(TimeRel::Between(a, b)) => {
            sql.push_str(&format!(" AND {col} >= ? AND {col} < ?"));
            args.push(Box::new(a));
            args.push(Box::new(b));
        }
        None => {}
    }
    sql
}

/// Whether a series holds instances without observedAt (a point lookup: NULLs come
/// first in the observed index).
fn has_untimed(conn: &Connection, series: i64) -> Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM attr_instances WHERE series = ?1 AND observed_us IS NULL LIMIT 1",
    )
    .and_then(|mut st| st.query_row([series], |_| Ok(())).optional())
    .map(|found| found.is_some())
    .map_err(db_err)
}

/// The instances of one entity, oldest first (the last N when asked).
pub fn instances(
    conn: &Connection,
    tenant: &Tenant,
    entity_id: &str,
    attrs: Option<&[String]>,
    q: &TemporalQuery,
) -> Result<Vec<Instance>> {
    let mut out = Vec::new();
    let col = time_column(q.timeproperty);
    for s in series_of(conn, tenant, entity_id, attrs)? {
        let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(s.id)];
        let filter = if q.timeproperty == TimeProperty::ObservedAt && q.timerel.is_none() {
            // Instances without observedAt still belong to an unfiltered history.
            String::new()
        } else {
            time_filter(q, &mut args)
        };
        let order = if q.last_n.is_some() { "DESC" } else { "ASC" };
        // Ordering by the time column alone follows the index; instances without one
        // (only possible unfiltered) are placed by their modification time instead.
        let key = if filter.is_empty() && has_untimed(conn, s.id)? {
            format!("COALESCE({col}, modified_us)")
        } else {
            col.to_string()
        };
        let mut sql = format!(
            "SELECT instance, observed_us, created_us, modified_us, deleted_us, num, unit, doc FROM attr_instances
             WHERE series = ?{filter} ORDER BY {key} {order}, instance {order}"
        );
        // One more than the page size tells the caller the series was cut.
        let limit = match (q.last_n, q.max_instances) {
            (Some(n), Some(m)) => Some(n.min(m + 1)),
            (Some(n), None) => Some(n),
            (None, Some(m)) => Some(m + 1),
            (None, None) => None,
        };
        if let Some(n) = limit {
            sql.push_str(" LIMIT ?");
            args.push(Box::new(n as i64));
        }
        let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
        let mut rows = stmt
            .query_map(params_from_iter(args.iter().map(|a| a.as_ref())), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<f64>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })
            .map_err(db_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err)?;
        if q.last_n.is_some() {
            rows.reverse();
        }
        for (instance, observed, created, modified, deleted, num, unit, doc) in rows {
            let body = decode(num, unit, doc, observed)?;
            out.push(Instance {
                instance_id: instance,
                attr: s.attr.clone(),
                dataset_id: s.dataset_id.clone(),
                body,
                observed_at: observed,
                created_at: created,
                modified_at: modified,
                deleted_at: deleted,
            });
        }
    }
    Ok(out)
}

/// Aggregates per series and time bucket: SQLite streams the window in time order
/// (an index range, no sort) and the buckets are folded as rows go by.
pub fn aggregates(
    conn: &Connection,
    tenant: &Tenant,
    entity_id: &str,
    attrs: Option<&[String]>,
    q: &TemporalQuery,
) -> Result<Vec<AttributeAggregates>> {
    let col = time_column(q.timeproperty);
    // The JSON is read only for a distinct count of values that are not numbers.
    let distinct = q.methods.contains(&AggrMethod::DistinctCount);
    let doc = if distinct { "doc" } else { "NULL" };
    // The first bucket starts at timeAt when given, else at the first instance.
    let fixed_origin = match q.timerel {
        Some(TimeRel::After(t)) | Some(TimeRel::Between(t, _)) => Some(t),
        _ => None,
    };
    let mut out = Vec::new();
    for s in series_of(conn, tenant, entity_id, attrs)? {
        let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(s.id)];
        let filter = time_filter(q, &mut args);
        let sql = format!(
            "SELECT {col}, num, {doc} FROM attr_instances
             WHERE series = ? AND deleted_us IS NULL{filter} ORDER BY {col}"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
        let mut rows = stmt
            .query(params_from_iter(args.iter().map(|a| a.as_ref())))
            .map_err(db_err)?;
        let mut folder = fixed_origin.map(|t| BucketFolder::new(q, t));
        while let Some(r) = rows.next().map_err(db_err)? {
            // Raw column access: this loop runs once per instance of a long window.
            let ValueRef::Integer(at) = r.get_ref(0).map_err(db_err)? else {
                continue;
            };
            let num = match r.get_ref(1).map_err(db_err)? {
                ValueRef::Real(n) => Some(n),
                ValueRef::Integer(n) => Some(n as f64),
                _ => None,
            };
            let key = if distinct {
                let json: Option<String> = r.get(2).map_err(db_err)?;
                DistinctKey::of(num, json.as_deref())
            } else {
                None
            };
            folder
                .get_or_insert_with(|| BucketFolder::new(q, at))
                .push(at, num, key);
        }
        let Some(folder) = folder else { continue };
        let origin = folder.origin();
        let series = crate::ngsi::temporal::aggregate::series(folder.finish(), q, origin);
        out.push(AttributeAggregates {
            attr: s.attr,
            dataset_id: s.dataset_id,
            kind: attribute::PROPERTY.into(),
            series,
        });
    }
    Ok(out)
}

pub fn delete_entity(conn: &Connection, tenant: &Tenant, id: &str) -> Result<bool> {
    // Series rows go away: their cached ids must too.
    super::writer_cache::clear();
    conn.prepare_cached(
        "DELETE FROM attr_instances WHERE series IN (SELECT series FROM temporal_series WHERE owner = (SELECT rowid FROM temporal_entities WHERE tenant = ?1 AND id = ?2))",
    )
    .and_then(|mut s| s.execute(params![tenant.as_str(), id]))
    .map_err(db_err)?;
    conn.prepare_cached("DELETE FROM temporal_series WHERE owner = (SELECT rowid FROM temporal_entities WHERE tenant = ?1 AND id = ?2)")
        .and_then(|mut s| s.execute(params![tenant.as_str(), id]))
        .map_err(db_err)?;
    let n = conn
        .prepare_cached("DELETE FROM temporal_entities WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| s.execute(params![tenant.as_str(), id]))
        .map_err(db_err)?;
    Ok(n > 0)
}

pub fn delete_attribute(
    conn: &Connection,
    tenant: &Tenant,
    id: &str,
    attr: &str,
    ds: Option<&str>,
    all: bool,
) -> Result<u64> {
    let (sql, n) = if all {
        ("DELETE FROM attr_instances WHERE series IN (SELECT series FROM temporal_series WHERE owner = (SELECT rowid FROM temporal_entities WHERE tenant = ?1 AND id = ?2) AND attr = (SELECT id FROM names WHERE name = ?3))", 3)
    } else {
        ("DELETE FROM attr_instances WHERE series IN (SELECT series FROM temporal_series WHERE owner = (SELECT rowid FROM temporal_entities WHERE tenant = ?1 AND id = ?2) AND attr = (SELECT id FROM names WHERE name = ?3)
            AND dataset = CASE WHEN ?4 = '' THEN 0 ELSE (SELECT id FROM names WHERE name = ?4) END)", 4)
    };
    let ds = ds.unwrap_or("").to_string();
    let deleted = if n == 3 {
        conn.execute(sql, params![tenant.as_str(), id, attr])
    } else {
        conn.execute(sql, params![tenant.as_str(), id, attr, ds])
    }
    .map_err(db_err)?;
    Ok(deleted as u64)
}

/// Replaces (merges into) one stored instance, keeping its identity.
pub fn patch_instance(
    conn: &Connection,
    tenant: &Tenant,
    id: &str,
    attr: &str,
    instance: i64,
    patch: &Attribute,
) -> Result<bool> {
    let q = TemporalQuery::default();
    let Some(current) = instances(conn, tenant, id, Some(&[attr.to_string()]), &q)?
        .into_iter()
        .find(|i| i.instance_id == instance)
    else {
        return Ok(false);
    };
    let body = changes::patched_body(&current.body, patch);
    let observed = micros_of(&body, "observedAt");
    let stored = encode(body, observed);
    let now = time::parse(&time::now()).map(time::micros).unwrap_or(0);
    conn.execute(
        "UPDATE attr_instances SET doc = ?2, num = ?3, unit = ?4, observed_us = ?5, modified_us = ?6
         WHERE instance = ?1",
        params![instance, stored.doc, stored.num, stored.unit, observed, now],
    )
    .map_err(db_err)?;
    Ok(true)
}

pub fn delete_instance(
    conn: &Connection,
    tenant: &Tenant,
    id: &str,
    attr: &str,
    instance: i64,
) -> Result<bool> {
    let n = conn
        .execute(
            "DELETE FROM attr_instances WHERE instance = ?4 AND series IN
               (SELECT series FROM temporal_series WHERE owner = (SELECT rowid FROM temporal_entities WHERE tenant = ?1 AND id = ?2) AND attr = (SELECT id FROM names WHERE name = ?3))",
            params![tenant.as_str(), id, attr, instance],
        )
        .map_err(db_err)?;
    Ok(n > 0)
}

/// Creates or updates the temporal entity row (the write path: no need to know which).
fn store_entity(conn: &Connection, tenant: &Tenant, e: &TemporalEntity) -> Result<()> {
    let types = serde_json::to_string(&e.types).map_err(NgsiError::internal)?;
    let scope = e.scope.as_ref().map(|s| json!(s).to_string());
    conn.prepare_cached(
        "INSERT INTO temporal_entities (tenant, id, types, scope, created_at, modified_at, deleted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)
         ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, scope = excluded.scope,
           modified_at = excluded.modified_at, deleted_at = NULL",
    )
    .and_then(|mut s| s.execute(params![tenant.as_str(), e.id, types, scope, e.created_at, e.modified_at]))
    .map_err(db_err)?;
    Ok(())
}
