//! Attribute history in PostgreSQL: recorded inside each entity write (same
//! transaction), queried with the time filters and aggregates pushed into SQL.

use deadpool_postgres::GenericClient;
use serde_json::{json, Map, Value};

use super::db_err;
use super::sql::Sql;
use crate::error::{NgsiError, Result};
use crate::ngsi::attribute::{self, Attribute};
use crate::ngsi::temporal::changes::{self, micros_of, StoredInstance};
use crate::ngsi::temporal::{
    AggrMethod, AttributeAggregates, Instance, TemporalEntity, TemporalQuery, TimeProperty, TimeRel,
};
use crate::ngsi::{time, Entity, Tenant};
use crate::store::NewInstance;

fn types_json(e: &TemporalEntity) -> Result<String> {
    serde_json::to_string(&e.types).map_err(NgsiError::internal)
}

fn scope_json(e: &TemporalEntity) -> Option<String> {
    e.scope.as_ref().map(|s| json!(s).to_string())
}

/// Creates or updates the temporal entity row (the temporal API's path).
pub async fn upsert_entity(
    c: &impl GenericClient,
    tenant: &Tenant,
    e: &TemporalEntity,
) -> Result<()> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO temporal_entities (tenant, id, types, scope, created_at, modified_at, deleted_at)
             VALUES ($1, $2, $3::text::jsonb, $4, $5, $6, $7)
             ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, scope = excluded.scope,
               modified_at = excluded.modified_at, deleted_at = excluded.deleted_at",
        )
        .await
        .map_err(db_err)?;
    c.execute(
        &stmt,
        &[
            &tenant.as_str(),
            &e.id,
            &types_json(e)?,
            &scope_json(e),
            &e.created_at,
            &e.modified_at,
            &e.deleted_at,
        ],
    )
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Creates or updates the temporal entity row (the write path: no longer deleted).
async fn store_entity(c: &impl GenericClient, tenant: &Tenant, e: &TemporalEntity) -> Result<()> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO temporal_entities (tenant, id, types, scope, created_at, modified_at, deleted_at)
             VALUES ($1, $2, $3::text::jsonb, $4, $5, $6, NULL)
             ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, scope = excluded.scope,
               modified_at = excluded.modified_at, deleted_at = NULL",
        )
        .await
        .map_err(db_err)?;
    c.execute(
        &stmt,
        &[
            &tenant.as_str(),
            &e.id,
            &types_json(e)?,
            &scope_json(e),
            &e.created_at,
            &e.modified_at,
        ],
    )
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Instances as the columns of `attr_instances`, one array per column, so that any
/// number of them is stored in one statement.
#[derive(Default)]
struct Rows {
    attr: Vec<String>,
    dataset_id: Vec<String>,
    observed: Vec<Option<i64>>,
    created: Vec<i64>,
    modified: Vec<i64>,
    deleted: Vec<Option<i64>>,
    num: Vec<Option<f64>>,
    doc: Vec<Option<String>>,
}

impl Rows {
    fn push(&mut self, inst: &NewInstance, now_us: i64) {
        let StoredInstance {
            body,
            created_us: created,
            modified_us: modified,
            observed_us: observed,
        } = inst.stored(now_us);
        // A bare floating-point Property (most sensor readings) is stored as its number
        // alone; integers keep their JSON so they read back as integers.
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
        self.attr.push(inst.attr.clone());
        self.dataset_id
            .push(inst.dataset_id.clone().unwrap_or_default());
        self.observed.push(observed);
        self.created.push(created);
        self.modified.push(modified);
        self.deleted.push(inst.deleted.then_some(now_us));
        self.num.push(body.get("value").and_then(Value::as_f64));
        self.doc
            .push((!compact).then(|| Value::Object(body).to_string()));
    }

    /// Stores the rows: their series are created as needed, instance ids follow the
    /// order of the rows. One round trip whatever their number.
    async fn store(self, c: &impl GenericClient, tenant: &Tenant, entity_id: &str) -> Result<()> {
        if self.attr.is_empty() {
            return Ok(());
        }
        let stmt = c
            .prepare_cached(
                "WITH v AS (
                   SELECT * FROM unnest($3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[],
                                        $8::int8[], $9::float8[], $10::text[])
                     WITH ORDINALITY AS v(attr, ds, observed, created, modified, deleted, num, doc, n)),
                 s AS (
                   INSERT INTO temporal_series (tenant, entity_id, attr, dataset_id)
                   SELECT DISTINCT $1::text, $2::text, attr, ds FROM v
                   ON CONFLICT (tenant, entity_id, attr, dataset_id) DO UPDATE SET attr = excluded.attr
                   RETURNING series, attr, dataset_id)
                 INSERT INTO attr_instances (series, observed_us, created_us, modified_us, deleted_us, num, doc)
                 SELECT s.series, v.observed, v.created, v.modified, v.deleted, v.num, v.doc
                 FROM v JOIN s ON s.attr = v.attr AND s.dataset_id = v.ds ORDER BY v.n",
            )
            .await
            .map_err(db_err)?;
        c.execute(
            &stmt,
            &[
                &tenant.as_str(),
                &entity_id,
                &self.attr,
                &self.dataset_id,
                &self.observed,
                &self.created,
                &self.modified,
                &self.deleted,
                &self.num,
                &self.doc,
            ],
        )
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

/// Stores new instances of one entity's attributes (the temporal API's path).
pub async fn insert_all(
    c: &impl GenericClient,
    tenant: &Tenant,
    entity_id: &str,
    instances: &[NewInstance],
    now_us: i64,
) -> Result<()> {
    let mut rows = Rows::default();
    for i in instances {
        rows.push(i, now_us);
    }
    rows.store(c, tenant, entity_id).await
}

/// Records what an entity write changed (`ngsi::temporal::changes`).
pub async fn record_change(
    c: &impl GenericClient,
    tenant: &Tenant,
    before: Option<&Entity>,
    after: Option<&Entity>,
) -> Result<()> {
    let now = time::now();
    let now_us = time::parse(&now).map(time::micros).unwrap_or(0);
    let Some(id) = after.or(before).map(|e| e.id.clone()) else {
        return Ok(());
    };
    if let Some(a) = after {
        store_entity(c, tenant, &changes::temporal_entity_of(a)).await?;
    }
    let mut rows = Rows::default();
    for inst in changes::changed_instances(before, after) {
        rows.push(&inst, now_us);
    }
    if before.is_some() && after.is_none() {
        c.execute(
            "UPDATE temporal_entities SET deleted_at = $3, modified_at = $3 WHERE tenant = $1 AND id = $2",
            &[&tenant.as_str(), &id, &now],
        )
        .await
        .map_err(db_err)?;
    }
    rows.store(c, tenant, &id).await
}

const ENTITY_COLUMNS: &str =
    "t.id, t.types::text, t.scope, t.created_at, t.modified_at, t.deleted_at";

fn row_entity(r: &tokio_postgres::Row) -> TemporalEntity {
    let types: String = r.get(1);
    let scope: Option<String> = r.get(2);
    TemporalEntity {
        id: r.get(0),
        types: serde_json::from_str(&types).unwrap_or_default(),
        scope: scope.and_then(|s| serde_json::from_str(&s).ok()),
        created_at: r.get(3),
        modified_at: r.get(4),
        deleted_at: r.get(5),
    }
}

pub async fn load_entity(
    c: &impl GenericClient,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<TemporalEntity>> {
    let row = c
        .query_opt(
            &format!("SELECT {ENTITY_COLUMNS} FROM temporal_entities t WHERE t.tenant = $1 AND t.id = $2"),
            &[&tenant.as_str(), &id],
        )
        .await
        .map_err(db_err)?;
    Ok(row.as_ref().map(row_entity))
}

/// Entities of the temporal store matching a selection (types OR'ed, ids, pattern).
pub async fn select_entities(
    c: &impl GenericClient,
    tenant: &Tenant,
    sel: &crate::store::TemporalSelection,
) -> Result<Vec<TemporalEntity>> {
    let (types, ids, id_pattern) = (
        sel.types.as_deref(),
        sel.ids.as_deref(),
        sel.id_pattern.as_deref(),
    );
    let (limit, offset) = (sel.limit, sel.offset);
    if ids.is_some_and(<[String]>::is_empty) {
        return Ok(Vec::new());
    }
    let mut sql = Sql::default();
    let t = sql.bind(tenant.as_str().to_string());
    sql.push(&format!(
        "SELECT {ENTITY_COLUMNS} FROM temporal_entities t WHERE t.tenant = {t}::text"
    ));
    if let Some(types) = types {
        let p = sql.bind(types.to_vec());
        sql.push(&format!(" AND t.types ?| {p}::text[]"));
    }
    if let Some(ids) = ids {
        let p = sql.bind(ids.to_vec());
        sql.push(&format!(" AND t.id = ANY({p}::text[])"));
    }
    sql.push(match sel.id_descending {
        None => " ORDER BY t.seq",
        // Bytewise, as SQLite orders text.
        Some(false) => " ORDER BY t.id COLLATE \"C\"",
        Some(true) => " ORDER BY t.id COLLATE \"C\" DESC",
    });
    let rows = c.query(&sql.text, &sql.refs()).await.map_err(db_err)?;
    // The id pattern is a Rust regular expression, as in SQLite: paging follows it.
    let pattern = match id_pattern {
        Some(p) => Some(
            regex::Regex::new(p)
                .map_err(|e| NgsiError::bad_data(format!("idPattern is not valid: {e}")))?,
        ),
        None => None,
    };
    Ok(rows
        .iter()
        .map(row_entity)
        .filter(|e| pattern.as_ref().is_none_or(|p| p.is_match(&e.id)))
        .skip(offset)
        .take(limit)
        .collect())
}

struct Series {
    id: i64,
    attr: String,
    dataset_id: Option<String>,
}

async fn series_of(
    c: &impl GenericClient,
    tenant: &Tenant,
    entity_id: &str,
    attrs: Option<&[String]>,
) -> Result<Vec<Series>> {
    let stmt = c
        .prepare_cached(
            "SELECT series, attr, dataset_id FROM temporal_series WHERE tenant = $1 AND entity_id = $2 ORDER BY series",
        )
        .await
        .map_err(db_err)?;
    let rows = c
        .query(&stmt, &[&tenant.as_str(), &entity_id])
        .await
        .map_err(db_err)?;
    Ok(rows
        .iter()
        .map(|r| {
            let ds: String = r.get(2);
            Series {
                id: r.get(0),
                attr: r.get(1),
                dataset_id: (!ds.is_empty()).then_some(ds),
            }
        })
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
fn time_filter(q: &TemporalQuery, sql: &mut Sql) -> String {
    let col = time_column(q.timeproperty);
    let mut out = format!(" AND {col} IS NOT NULL");
    match q.timerel {
        Some(TimeRel::Before(t)) => out.push_str(&format!(" AND {col} < {}::int8", sql.bind(t))),
        Some(TimeRel::After(t)) => out.push_str(&format!(" AND {col} >= {}::int8", sql.bind(t))),
        Some(TimeRel::Between(a, b)) => {
            let (a, b) = (sql.bind(a), sql.bind(b));
            out.push_str(&format!(" AND {col} >= {a}::int8 AND {col} < {b}::int8"));
        }
        None => {}
    }
    out
}

type InstanceRow = (
    i64,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
    Option<f64>,
    Option<String>,
);

/// The instances of one entity, oldest first (the last N when asked).
pub async fn instances(
    c: &impl GenericClient,
    tenant: &Tenant,
    entity_id: &str,
    attrs: Option<&[String]>,
    q: &TemporalQuery,
) -> Result<Vec<Instance>> {
    let mut out = Vec::new();
    let col = time_column(q.timeproperty);
    for s in series_of(c, tenant, entity_id, attrs).await? {
        let mut sql = Sql::default();
        let series = sql.bind(s.id);
        let filter = if q.timeproperty == TimeProperty::ObservedAt && q.timerel.is_none() {
            // Instances without observedAt still belong to an unfiltered history.
            String::new()
        } else {
            time_filter(q, &mut sql)
        };
        let order = if q.last_n.is_some() { "DESC" } else { "ASC" };
        sql.push(&format!(
            "SELECT instance, observed_us, created_us, modified_us, deleted_us, num, doc FROM attr_instances
             WHERE series = {series}::int8{filter} ORDER BY COALESCE({col}, modified_us) {order}, instance {order}"
        ));
        // One more than the page size tells the caller the series was cut.
        let limit = match (q.last_n, q.max_instances) {
            (Some(n), Some(m)) => Some(n.min(m + 1)),
            (Some(n), None) => Some(n),
            (None, Some(m)) => Some(m + 1),
            (None, None) => None,
        };
        if let Some(n) = limit {
            let p = sql.bind(n.min(i64::MAX as usize) as i64);
            sql.push(&format!(" LIMIT {p}"));
        }
        let rows = c.query(&sql.text, &sql.refs()).await.map_err(db_err)?;
        let mut rows: Vec<InstanceRow> = rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                )
            })
            .collect();
        if q.last_n.is_some() {
            rows.reverse();
        }
        for (instance, observed, created, modified, deleted, num, doc) in rows {
            let body = match doc {
                Some(d) => {
                    serde_json::from_str::<Map<String, Value>>(&d).map_err(NgsiError::internal)?
                }
                None => {
                    let mut b = Map::new();
                    b.insert("type".into(), json!(attribute::PROPERTY));
                    b.insert("value".into(), json!(num.unwrap_or(0.0)));
                    if let Some(o) = observed {
                        b.insert("observedAt".into(), json!(time::from_micros(o)));
                    }
                    b
                }
            };
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

/// The bucket number of each instance, as SQL. Fixed periods are whole periods since
/// the origin (what `date_bin` computes, in integer microseconds so no rounding creeps
/// in); calendar months are the month difference, less one when the day and time of
/// the month have not yet reached the origin's (the SQLite backend's rule).
fn bucket_sql(q: &TemporalQuery, col: &str, origin: i64) -> String {
    match q.period {
        Some(p) if p.months > 0 => {
            let ts = |v: &str| format!("(to_timestamp({v} / 1000000.0) AT TIME ZONE 'UTC')");
            let (c, o) = (ts(col), ts(&origin.to_string()));
            format!(
                "(((EXTRACT(YEAR FROM {c}) * 12 + EXTRACT(MONTH FROM {c}))
                   - (EXTRACT(YEAR FROM {o}) * 12 + EXTRACT(MONTH FROM {o}))
                   - CASE WHEN to_char({c}, 'DDHH24MISS') < to_char({o}, 'DDHH24MISS') THEN 1 ELSE 0 END
                  )::int8 / {})",
                p.months
            )
        }
        Some(p) => format!("(({col} - {origin}) / {})", p.micros.max(1)),
        None => "0::int8".into(),
    }
}

use crate::ngsi::temporal::aggregate::AggregateRow;

/// Aggregates per series and time bucket, computed by PostgreSQL.
pub async fn aggregates(
    c: &impl GenericClient,
    tenant: &Tenant,
    entity_id: &str,
    attrs: Option<&[String]>,
    q: &TemporalQuery,
) -> Result<Vec<AttributeAggregates>> {
    let col = time_column(q.timeproperty);
    let mut out = Vec::new();
    for s in series_of(c, tenant, entity_id, attrs).await? {
        // The first bucket starts at timeAt when given, else at the first instance.
        let origin: Option<i64> = match q.timerel {
            Some(TimeRel::After(t)) | Some(TimeRel::Between(t, _)) => Some(t),
            _ => {
                let mut sql = Sql::default();
                let series = sql.bind(s.id);
                let filter = time_filter(q, &mut sql);
                sql.push(&format!(
                    "SELECT MIN({col}) FROM attr_instances WHERE series = {series}::int8{filter}"
                ));
                c.query_one(&sql.text, &sql.refs())
                    .await
                    .map_err(db_err)?
                    .get(0)
            }
        };
        let Some(origin) = origin else { continue };
        let mut sql = Sql::default();
        let series = sql.bind(s.id);
        let filter = time_filter(q, &mut sql);
        let bucket = bucket_sql(q, col, origin);
        // A distinct count sorts every bucket: computed only when asked for.
        let distinct = if q.methods.contains(&AggrMethod::DistinctCount) {
            "COUNT(DISTINCT COALESCE(num::text, doc))"
        } else {
            "0::int8"
        };
        sql.push(&format!(
            "SELECT {bucket} AS bucket, COUNT(*), {distinct}, SUM(num), AVG(num),
                    MIN(num), MAX(num), SUM(num * num), COUNT(num), MAX({col})
             FROM attr_instances WHERE series = {series}::int8 AND deleted_us IS NULL{filter}
             GROUP BY bucket ORDER BY bucket"
        ));
        let rows = c.query(&sql.text, &sql.refs()).await.map_err(db_err)?;
        let rows: Vec<AggregateRow> = rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                    r.get(8),
                    r.get(9),
                )
            })
            .collect();
        let series = crate::ngsi::temporal::aggregate::series(rows, q, origin);
        out.push(AttributeAggregates {
            attr: s.attr,
            dataset_id: s.dataset_id,
            kind: attribute::PROPERTY.into(),
            series,
        });
    }
    Ok(out)
}

pub async fn delete_entity(c: &impl GenericClient, tenant: &Tenant, id: &str) -> Result<bool> {
    c.execute(
        "DELETE FROM attr_instances WHERE series IN (SELECT series FROM temporal_series WHERE tenant = $1 AND entity_id = $2)",
        &[&tenant.as_str(), &id],
    )
    .await
    .map_err(db_err)?;
    c.execute(
        "DELETE FROM temporal_series WHERE tenant = $1 AND entity_id = $2",
        &[&tenant.as_str(), &id],
    )
    .await
    .map_err(db_err)?;
    let n = c
        .execute(
            "DELETE FROM temporal_entities WHERE tenant = $1 AND id = $2",
            &[&tenant.as_str(), &id],
        )
        .await
        .map_err(db_err)?;
    Ok(n > 0)
}

pub async fn delete_attribute(
    c: &impl GenericClient,
    tenant: &Tenant,
    id: &str,
    attr: &str,
    ds: Option<&str>,
    all: bool,
) -> Result<u64> {
    let n = if all {
        c.execute(
            "DELETE FROM attr_instances WHERE series IN (SELECT series FROM temporal_series WHERE tenant = $1 AND entity_id = $2 AND attr = $3)",
            &[&tenant.as_str(), &id, &attr],
        )
        .await
    } else {
        c.execute(
            "DELETE FROM attr_instances WHERE series IN (SELECT series FROM temporal_series WHERE tenant = $1 AND entity_id = $2 AND attr = $3 AND dataset_id = $4)",
            &[&tenant.as_str(), &id, &attr, &ds.unwrap_or("")],
        )
        .await
    }
    .map_err(db_err)?;
    Ok(n)
}

/// Replaces (merges into) one stored instance, keeping its identity.
pub async fn patch_instance(
    c: &impl GenericClient,
    tenant: &Tenant,
    id: &str,
    attr: &str,
    instance: i64,
    patch: &Attribute,
) -> Result<bool> {
    let q = TemporalQuery::default();
    let Some(current) = instances(c, tenant, id, Some(&[attr.to_string()]), &q)
        .await?
        .into_iter()
        .find(|i| i.instance_id == instance)
    else {
        return Ok(false);
    };
    let body = changes::patched_body(&current.body, patch);
    let observed = micros_of(&body, "observedAt");
    let num = body.get("value").and_then(Value::as_f64);
    let now = time::parse(&time::now()).map(time::micros).unwrap_or(0);
    c.execute(
        "UPDATE attr_instances SET doc = $2, num = $3, observed_us = $4, modified_us = $5 WHERE instance = $1",
        &[&instance, &Value::Object(body).to_string(), &num, &observed, &now],
    )
    .await
    .map_err(db_err)?;
    Ok(true)
}

pub async fn delete_instance(
    c: &impl GenericClient,
    tenant: &Tenant,
    id: &str,
    attr: &str,
    instance: i64,
) -> Result<bool> {
    let n = c
        .execute(
            "DELETE FROM attr_instances WHERE instance = $4 AND series IN
               (SELECT series FROM temporal_series WHERE tenant = $1 AND entity_id = $2 AND attr = $3)",
            &[&tenant.as_str(), &id, &attr, &instance],
        )
        .await
        .map_err(db_err)?;
    Ok(n > 0)
}

/// Retention: deletes up to `chunk` instances of the tenant's history dated before
/// `before_us` of the entities having one of `include` (every entity when `None`) and
/// none of `exclude` (a type matches by IRI or by the IRI's last segment).
pub async fn prune_chunk(
    c: &impl GenericClient,
    tenant: &Tenant,
    include: Option<&[String]>,
    exclude: &[String],
    before_us: i64,
    chunk: i64,
) -> Result<u64> {
    if include.is_some_and(<[String]>::is_empty) {
        return Ok(0);
    }
    let mut sql = Sql::default();
    let t = sql.bind(tenant.as_str().to_string());
    let before = sql.bind(before_us);
    let mut filters = String::new();
    let any_of = |terms: &[String], sql: &mut Sql| -> String {
        let p = sql.bind(terms.to_vec());
        format!(
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text(e.types) ty, unnest({p}::text[]) term \
             WHERE ty = term OR ty LIKE '%/' || term OR ty LIKE '%#' || term)"
        )
    };
    if let Some(include) = include {
        filters += &format!(" AND {}", any_of(include, &mut sql));
    }
    if !exclude.is_empty() {
        filters += &format!(" AND NOT {}", any_of(exclude, &mut sql));
    }
    sql.push(&format!(
        "DELETE FROM attr_instances WHERE instance IN (
           SELECT i.instance FROM temporal_series s
           JOIN temporal_entities e ON e.tenant = s.tenant AND e.id = s.entity_id
           JOIN attr_instances i ON i.series = s.series
           WHERE s.tenant = {t}::text
             AND (i.observed_us < {before}::int8 OR (i.observed_us IS NULL AND i.created_us < {before}::int8))
             {filters}
           LIMIT {chunk})"
    ));
    let n = c.execute(&sql.text, &sql.refs()).await.map_err(db_err)?;
    Ok(n)
}
