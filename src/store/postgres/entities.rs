//! Entity rows: load, save, delete and select, in SQL.

use deadpool_postgres::GenericClient;
use futures_util::TryStreamExt;
use serde_json::Value;

use super::db_err;
use super::sql::Sql;
use crate::error::{NgsiError, Result};
use crate::ngsi::attribute;
use crate::ngsi::query::{EntityQuery, TypeStats};
use crate::ngsi::type_expr::TypeExpr;
use crate::ngsi::{Entity, Tenant};

fn decode(doc: &str) -> Result<Entity> {
    let mut entity: Entity = serde_json::from_str(doc)
        .map_err(|e| NgsiError::internal(format!("stored entity is not readable: {e}")))?;
    entity.drop_expired_attributes(&crate::ngsi::time::now());
    Ok(entity)
}

pub async fn load(
    c: &impl GenericClient,
    tenant: &Tenant,
    id: &str,
    now: &str,
) -> Result<Option<Entity>> {
    let stmt = c
        .prepare_cached(
            "SELECT doc::text FROM entities WHERE tenant = $1 AND id = $2 AND (expires_at IS NULL OR expires_at > $3)",
        )
        .await
        .map_err(db_err)?;
    let row = c
        .query_opt(&stmt, &[&tenant.as_str(), &id, &now])
        .await
        .map_err(db_err)?;
    row.map(|r| decode(r.get(0))).transpose()
}

/// The GeoProperty values of an entity as (attribute, GeoJSON text), for `entity_geo`.
fn geo_values(e: &Entity) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, instances) in &e.attrs {
        for inst in instances {
            if inst.get("type").and_then(Value::as_str) == Some(attribute::GEO_PROPERTY) {
                if let Some(v) = inst.get("value").filter(|v| v.is_object()) {
                    out.push((name.clone(), v.to_string()));
                }
            }
        }
    }
    out
}

pub async fn save(
    c: &impl GenericClient,
    tenant: &Tenant,
    entity: &Entity,
    before: Option<&Entity>,
    now: &str,
) -> Result<()> {
    let doc = serde_json::to_string(entity).map_err(NgsiError::internal)?;
    let scope = entity
        .scope
        .as_ref()
        .map(|s| serde_json::to_string(s).unwrap_or_default());
    let stmt = c
        .prepare_cached(
            // The tenant is recorded by the same statement (one round trip).
            "WITH t AS (INSERT INTO tenants (name, created_at) VALUES ($1, $9) ON CONFLICT (name) DO NOTHING)
             INSERT INTO entities (tenant, id, doc, types, scope, created_at, modified_at, expires_at)
             VALUES ($1, $2, $3::text::json, $4, $5::text::jsonb, $6, $7, $8)
             ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc, types = excluded.types,
               scope = excluded.scope, created_at = excluded.created_at,
               modified_at = excluded.modified_at, expires_at = excluded.expires_at
             RETURNING seq",
        )
        .await
        .map_err(db_err)?;
    let row = c
        .query_one(
            &stmt,
            &[
                &tenant.as_str(),
                &entity.id,
                &doc,
                &entity.types,
                &scope,
                &entity.created_at,
                &entity.modified_at,
                &entity.expiry_instant(),
                &now,
            ],
        )
        .await
        .map_err(db_err)?;
    let seq: i64 = row.get(0);
    let geo = geo_values(entity);
    let old_geo = before.map(geo_values);
    if old_geo.as_ref() == Some(&geo) {
        return Ok(());
    }
    if old_geo.is_some_and(|g| !g.is_empty()) {
        c.execute("DELETE FROM entity_geo WHERE entity = $1", &[&seq])
            .await
            .map_err(db_err)?;
    }
    for (attr, geojson) in &geo {
        // A geometry PostGIS cannot read is left out of the index (it then matches no
        // geo-query, as it would not in memory either) instead of failing the write.
        c.execute(
            "INSERT INTO entity_geo (entity, attr, geom)
             SELECT $1, $2, g FROM (SELECT calanque_geometry($3::text) AS g) x WHERE g IS NOT NULL",
            &[&seq, attr, geojson],
        )
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

pub async fn delete(c: &impl GenericClient, tenant: &Tenant, id: &str) -> Result<()> {
    let stmt = c
        .prepare_cached("DELETE FROM entities WHERE tenant = $1 AND id = $2 RETURNING seq")
        .await
        .map_err(db_err)?;
    if let Some(row) = c
        .query_opt(&stmt, &[&tenant.as_str(), &id])
        .await
        .map_err(db_err)?
    {
        let seq: i64 = row.get(0);
        c.execute("DELETE FROM entity_geo WHERE entity = $1", &[&seq])
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

pub async fn ensure_tenant(c: &impl GenericClient, tenant: &Tenant, now: &str) -> Result<()> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .await
        .map_err(db_err)?;
    c.execute(&stmt, &[&tenant.as_str(), &now])
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The WHERE clause of a selection and whether it is exact: if not, the rows it selects
/// are a superset to re-check in memory (`row_matches` and the id pattern).
fn selection(query: &EntityQuery, tenant: &Tenant, now: &str) -> (Sql, bool) {
    let mut sql = Sql::default();
    let t = sql.bind(tenant.as_str().to_string());
    let n = sql.bind(now.to_string());
    sql.push(&format!(
        "e.tenant = {t}::text AND (e.expires_at IS NULL OR e.expires_at > {n}::text)"
    ));
    if let Some(types) = &query.types {
        sql.push(" AND ");
        type_sql(types, &mut sql);
    }
    if let Some(ids) = &query.ids {
        let p = sql.bind(ids.clone());
        sql.push(&format!(" AND e.id = ANY({p}::text[])"));
    }
    if let Some(attrs) = &query.attrs {
        let p = sql.bind(attrs.clone());
        sql.push(&format!(" AND e.attrs ?| {p}::text[]"));
    }
    // The id pattern is a Rust regular expression: checked in memory, as in SQLite.
    let mut exact = query.only_q_filter() && query.id_pattern.is_none();
    if let Some(q) = &query.q {
        sql.push(" AND ");
        exact &= super::q_sql::translate(q, &mut sql);
    }
    if let Some(g) = &query.geo_q {
        super::geo_sql::prefilter(g, &mut sql);
    }
    (sql, exact)
}

/// A type selector on the `types` array (GIN-indexed containment).
fn type_sql(expr: &TypeExpr, sql: &mut Sql) {
    match expr {
        TypeExpr::Type(t) => {
            let p = sql.bind(t.clone());
            sql.push(&format!("e.types @> ARRAY[{p}::text]"));
        }
        TypeExpr::And(items) | TypeExpr::Or(items) => {
            let joiner = if matches!(expr, TypeExpr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            sql.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sql.push(joiner);
                }
                type_sql(item, sql);
            }
            sql.push(")");
        }
    }
}

pub async fn select(
    c: &impl GenericClient,
    tenant: &Tenant,
    query: &EntityQuery,
    now: &str,
) -> Result<Vec<Entity>> {
    let (mut sql, exact) = selection(query, tenant, now);
    if !exact {
        return Ok(scan(c, tenant, query, now, true).await?.0);
    }
    let limit = sql.bind(query.limit.min(i64::MAX as usize) as i64);
    let offset = sql.bind(query.offset.min(i64::MAX as usize) as i64);
    let text = format!(
        "SELECT e.doc::text FROM entities e WHERE {} ORDER BY e.seq LIMIT {limit} OFFSET {offset}",
        sql.text
    );
    let rows = c.query(&text, &sql.refs()).await.map_err(db_err)?;
    rows.iter().map(|r| decode(r.get(0))).collect()
}

pub async fn count(
    c: &impl GenericClient,
    tenant: &Tenant,
    query: &EntityQuery,
    now: &str,
) -> Result<u64> {
    let (sql, exact) = selection(query, tenant, now);
    if !exact {
        return Ok(scan(c, tenant, query, now, false).await?.1);
    }
    let text = format!("SELECT COUNT(*) FROM entities e WHERE {}", sql.text);
    let n: i64 = c
        .query_one(&text, &sql.refs())
        .await
        .map_err(db_err)?
        .get(0);
    Ok(n.max(0) as u64)
}

/// Reads the SQL-selected rows through the in-memory filter, keeping only the page.
async fn scan(
    c: &impl GenericClient,
    tenant: &Tenant,
    query: &EntityQuery,
    now: &str,
    keep: bool,
) -> Result<(Vec<Entity>, u64)> {
    let (sql, _) = selection(query, tenant, now);
    let pattern = match &query.id_pattern {
        Some(p) => Some(
            regex::Regex::new(p)
                .map_err(|e| NgsiError::bad_data(format!("idPattern is not valid: {e}")))?,
        ),
        None => None,
    };
    let text = format!(
        "SELECT e.doc::text FROM entities e WHERE {} ORDER BY e.seq",
        sql.text
    );
    // Streamed: memory stays bounded by the page, whatever the number of candidates.
    let rows = c.query_raw(&text, sql.refs()).await.map_err(db_err)?;
    futures_util::pin_mut!(rows);
    let (mut page, mut matched) = (Vec::new(), 0u64);
    while let Some(row) = rows.try_next().await.map_err(db_err)? {
        let entity = decode(row.get(0))?;
        if pattern.as_ref().is_some_and(|p| !p.is_match(&entity.id)) {
            continue;
        }
        if query.row_matches(&entity) {
            if keep && matched as usize >= query.offset && page.len() < query.limit {
                page.push(entity);
            }
            matched += 1;
        }
    }
    Ok((page, matched))
}

pub async fn select_ids(
    c: &impl GenericClient,
    tenant: &Tenant,
    query: &EntityQuery,
    now: &str,
) -> Result<Vec<String>> {
    let (sql, exact) = selection(query, tenant, now);
    if !exact {
        let all = EntityQuery {
            limit: usize::MAX,
            offset: 0,
            ..query.clone()
        };
        return Ok(scan(c, tenant, &all, now, true)
            .await?
            .0
            .into_iter()
            .map(|e| e.id)
            .collect());
    }
    let text = format!(
        "SELECT e.id FROM entities e WHERE {} ORDER BY e.seq",
        sql.text
    );
    let rows = c.query(&text, &sql.refs()).await.map_err(db_err)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Types, their entity counts and attributes, computed in SQL.
pub async fn type_stats(
    c: &impl GenericClient,
    tenant: &Tenant,
    now: &str,
) -> Result<Vec<TypeStats>> {
    let mut stats: Vec<TypeStats> = Vec::new();
    let rows = c
        .query(
            "SELECT t, COUNT(*) FROM entities e, unnest(e.types) t
             WHERE e.tenant = $1 AND (e.expires_at IS NULL OR e.expires_at > $2)
             GROUP BY t ORDER BY t COLLATE \"C\"",
            &[&tenant.as_str(), &now],
        )
        .await
        .map_err(db_err)?;
    for r in rows {
        let n: i64 = r.get(1);
        stats.push(TypeStats {
            type_iri: r.get(0),
            entity_count: n.max(0) as u64,
            attributes: Vec::new(),
        });
    }
    let rows = c
        .query(
            "SELECT t, k, kind, n FROM (
               SELECT t, a.key AS k, i ->> 'type' AS kind, COUNT(DISTINCT e.id) AS n
               FROM entities e, unnest(e.types) t, jsonb_each(e.attrs) a,
                    jsonb_array_elements(CASE WHEN jsonb_typeof(a.value) = 'array' THEN a.value ELSE '[]'::jsonb END) i
               WHERE e.tenant = $1 AND (e.expires_at IS NULL OR e.expires_at > $2)
               GROUP BY 1, 2, 3) s
             ORDER BY t COLLATE \"C\", k COLLATE \"C\", kind COLLATE \"C\" NULLS FIRST",
            &[&tenant.as_str(), &now],
        )
        .await
        .map_err(db_err)?;
    for r in rows {
        let (type_iri, attr, kind, n): (String, String, Option<String>, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let Some(t) = stats.iter_mut().find(|s| s.type_iri == type_iri) else {
            continue;
        };
        let kind = kind.unwrap_or_else(|| "Property".into());
        match t.attributes.iter_mut().find(|(name, _, _)| *name == attr) {
            Some((_, kinds, count)) => {
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
                *count = (*count).max(n.max(0) as u64);
            }
            None => t.attributes.push((attr, vec![kind], n.max(0) as u64)),
        }
    }
    Ok(stats)
}
