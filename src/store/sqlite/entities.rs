//! Entity rows: load, save, delete and select, in SQL.

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql};

use crate::error::{NgsiError, Result};
use crate::ngsi::geo::GeoQuery;
use crate::ngsi::query::{EntityQuery, TypeStats};
use crate::ngsi::type_expr::TypeExpr;
use crate::ngsi::{Entity, Tenant};

fn db_err(e: rusqlite::Error) -> NgsiError {
    NgsiError::internal(format!("sqlite: {e}"))
}

pub fn decode(doc: &str) -> Result<Entity> {
    let mut entity: Entity = serde_json::from_str(doc)
        .map_err(|e| NgsiError::internal(format!("stored entity is not readable: {e}")))?;
    entity.drop_expired_attributes(&crate::ngsi::time::now());
    Ok(entity)
}

pub fn load(conn: &Connection, tenant: &Tenant, id: &str, now: &str) -> Result<Option<Entity>> {
    read_row(conn, tenant, id)?
        .as_ref()
        .and_then(|r| r.live_doc(now))
        .map(decode)
        .transpose()
}

/// An entity's row as stored: its rowid, document and expiry instant.
pub struct StoredRow {
    pub rowid: i64,
    pub doc: String,
    pub expires_at: Option<String>,
}

impl StoredRow {
    /// The document, unless the entity has expired at `now`. Same test as the SQL
    /// filter of reads (stored times share one format, so they compare as text).
    pub fn live_doc(&self, now: &str) -> Option<&str> {
        match &self.expires_at {
            Some(t) if t.as_str() <= now => None,
            _ => Some(&self.doc),
        }
    }

    /// Whether the entity, or one of its attributes, has an expiry: what it reads as
    /// then depends on the time of the read. (A string value spelling `"expiresAt"`
    /// also answers yes, which only costs a speculative write its shortcut.)
    pub fn may_expire(&self) -> bool {
        self.expires_at.is_some() || self.doc.contains("\"expiresAt\"")
    }
}

pub fn read_row(conn: &Connection, tenant: &Tenant, id: &str) -> Result<Option<StoredRow>> {
    conn.prepare_cached("SELECT rowid, doc, expires_at FROM entities WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant.as_str(), id], |r| {
                Ok(StoredRow {
                    rowid: r.get(0)?,
                    doc: r.get(1)?,
                    expires_at: r.get(2)?,
                })
            })
            .optional()
        })
        .map_err(db_err)
}

/// The id of an expanded name, created on first use.
pub fn name_id(conn: &Connection, name: &str) -> Result<i64> {
    if let Some(id) = super::writer_cache::name(name) {
        return Ok(id);
    }
    let id = conn
        .prepare_cached("INSERT INTO names (name) VALUES (?1) ON CONFLICT (name) DO UPDATE SET name = name RETURNING id")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)))
        .map_err(db_err)?;
    super::writer_cache::remember_name(name, id);
    Ok(id)
}

fn rowid(conn: &Connection, tenant: &Tenant, id: &str) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT rowid FROM entities WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant.as_str(), id], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)
}

pub fn save(
    conn: &Connection,
    tenant: &Tenant,
    entity: &Entity,
    before: Option<&Entity>,
) -> Result<()> {
    let row = rowid(conn, tenant, &entity.id)?;
    save_row(conn, tenant, entity, before, row)
}

/// Stores `entity` over the row `row` (its current rowid, if it has a row, as
/// `load_row` found it) and brings the indexes from `before` to it.
pub fn save_row(
    conn: &Connection,
    tenant: &Tenant,
    entity: &Entity,
    before: Option<&Entity>,
    row: Option<i64>,
) -> Result<()> {
    let doc = serde_json::to_string(entity).map_err(NgsiError::internal)?;
    save_document(conn, tenant, entity, &doc, before, row)
}

/// As `save_row`, with the entity's stored form `doc` already made.
pub fn save_document(
    conn: &Connection,
    tenant: &Tenant,
    entity: &Entity,
    doc: &str,
    before: Option<&Entity>,
    row: Option<i64>,
) -> Result<()> {
    // Plain INSERT or UPDATE by rowid: an upsert with RETURNING costs SQLite an extra
    // ephemeral table per statement, and the writer already knows which case it is in.
    let row = match row {
        Some(row) => {
            conn.prepare_cached(
                "UPDATE entities SET doc = ?2, created_at = ?3, modified_at = ?4, expires_at = ?5 WHERE rowid = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![row, doc, entity.created_at, entity.modified_at, entity.expiry_instant()])
            })
            .map_err(db_err)?;
            if before.is_none() {
                // The row held an expired entity: its index rows go with it.
                super::value_index::delete_entity(conn, row)?;
                conn.prepare_cached("DELETE FROM entity_types WHERE entity = ?1")
                    .and_then(|mut s| s.execute([row]))
                    .map_err(db_err)?;
            }
            row
        }
        None => {
            conn.prepare_cached(
                "INSERT INTO entities (tenant, id, doc, created_at, modified_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![tenant.as_str(), entity.id, doc, entity.created_at, entity.modified_at, entity.expiry_instant()])
            })
            .map_err(db_err)?;
            conn.last_insert_rowid()
        }
    };
    if before.is_none_or(|b| b.types != entity.types) {
        if before.is_some() {
            conn.prepare_cached("DELETE FROM entity_types WHERE entity = ?1")
                .and_then(|mut s| s.execute([row]))
                .map_err(db_err)?;
        }
        for t in &entity.types {
            let type_id = name_id(conn, t)?;
            conn.prepare_cached(
                "INSERT OR IGNORE INTO entity_types (type, entity) VALUES (?1, ?2)",
            )
            .and_then(|mut s| s.execute(params![type_id, row]))
            .map_err(db_err)?;
        }
    }
    super::value_index::update(conn, row, before, entity)
}

pub fn delete(conn: &Connection, tenant: &Tenant, id: &str) -> Result<()> {
    let Some(row) = rowid(conn, tenant, id)? else {
        return Ok(());
    };
    super::value_index::delete_entity(conn, row)?;
    for sql in [
        "DELETE FROM entity_types WHERE entity = ?1",
        "DELETE FROM entities WHERE rowid = ?1",
    ] {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([row]))
            .map_err(db_err)?;
    }
    Ok(())
}

pub fn ensure_tenant(conn: &Connection, tenant: &Tenant, now: &str) -> Result<()> {
    if super::writer_cache::tenant_known(tenant.as_str()) {
        return Ok(());
    }
    conn.prepare_cached("INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![tenant.as_str(), now]))
        .map_err(db_err)?;
    super::writer_cache::remember_tenant(tenant.as_str());
    Ok(())
}

/// The rows a query reads, as SQL pieces: `SELECT … FROM {from} WHERE {filter}
/// ORDER BY {order}` (parameters bound, never spliced).
struct Selection {
    from: &'static str,
    filter: String,
    args: Vec<Box<dyn ToSql>>,
    /// False when the rows are a superset to re-check in memory.
    exact: bool,
}

impl Selection {
    /// The entity order of pages (rowid), as the driving index delivers it.
    fn order(&self) -> &'static str {
        if self.from == FROM_TYPE_RANGE {
            "dt.entity"
        } else {
            "e.rowid"
        }
    }
}

const FROM_ENTITIES: &str = "entities e";
/// One type drives: its (type, entity) index range is walked in entity order, so a
/// page stops after its last row instead of first collecting every member of the type
/// (what `rowid IN (SELECT …)` does, into a temporary b-tree).
const FROM_TYPE_RANGE: &str = "entity_types dt CROSS JOIN entities e";

fn selection(query: &EntityQuery, tenant: &Tenant, now: &str, q_before_type: bool) -> Selection {
    selection_with(query, tenant, now, q_before_type, true)
}

/// `geo_in_sql`: false when the caller decides the geo-query itself, candidate by
/// candidate (the other tests are then all per candidate, as the geo index drives).
fn selection_with(
    query: &EntityQuery,
    tenant: &Tenant,
    now: &str,
    q_before_type: bool,
    geo_in_sql: bool,
) -> Selection {
    let mut sql = String::new();
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let geo_box = query
        .geo_q
        .as_ref()
        .and_then(|g| g.prefilter_box().map(|b| (b, g.property.clone())));
    let q_before_type = q_before_type && query.q.is_some();
    let type_drives = geo_box.is_none() && query.types.is_some() && !q_before_type;
    let q_drives = geo_box.is_none() && (query.types.is_none() || q_before_type);
    let from = match &query.types {
        Some(TypeExpr::Type(t)) if type_drives => {
            sql.push_str(
                "dt.type = (SELECT id FROM names WHERE name = ?) AND e.rowid = dt.entity AND ",
            );
            args.push(Box::new(t.clone()));
            FROM_TYPE_RANGE
        }
        _ => FROM_ENTITIES,
    };
    // The unary `+` keeps SQLite from driving the query with the (tenant, id) index,
    // which would visit every entity of the tenant: the selective membership tests
    // below (type, value, geo indexes) drive it instead.
    sql.push_str("+e.tenant = ? AND (e.expires_at IS NULL OR e.expires_at > ?)");
    args.push(Box::new(tenant.as_str().to_string()));
    args.push(Box::new(now.to_string()));
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
    // One index drives the query (its matches are looked up by rowid); the other tests
    // are checked per candidate. The geo R*Tree is the most selective when there is one,
    // then the type index, then q.
    if let Some(types) = query.types.as_ref().filter(|_| from == FROM_ENTITIES) {
        sql.push_str(" AND ");
        type_sql(types, &mut sql, &mut args, !type_drives);
    }
    if let Some(ids) = &query.ids {
        in_list(&mut sql, &mut args, " AND e.id IN ", ids);
    }
    if let Some(pattern) = &query.id_pattern {
        sql.push_str(" AND regexp(?, e.id)");
        args.push(Box::new(pattern.clone()));
    }
    if let Some(attrs) = &query.attrs {
        in_list(
            &mut sql,
            &mut args,
            " AND EXISTS (SELECT 1 FROM attr_values WHERE entity = e.rowid AND attr IN (SELECT id FROM names WHERE name IN ",
            attrs,
        );
        sql.push_str("))");
    }
    let mut exact = query.only_q_filter();
    if let Some(q) = &query.q {
        let t = super::q_sql::translate(q, !q_drives);
        sql.push_str(" AND ");
        sql.push_str(&t.sql);
        args.extend(t.args);
        exact &= t.exact;
    }
    if let Some(b) = geo_box.filter(|_| geo_in_sql) {
        let ([min_x, max_x, min_y, max_y], attr) = b;
        sql.push_str(
            " AND e.rowid IN (SELECT r.entity FROM geo_index g JOIN geo_rows r ON r.rid = g.rid
               WHERE r.attr = (SELECT id FROM names WHERE name = ?)
                 AND g.max_x >= ? AND g.min_x <= ? AND g.max_y >= ? AND g.min_y <= ?)",
        );
        args.push(Box::new(attr));
        args.extend([min_x, max_x, min_y, max_y].map(|v| Box::new(v) as Box<dyn ToSql>));
    }
    Selection {
        from,
        filter: sql,
        args,
        exact,
    }
}

/// A membership test of `e` in an index table: as `rowid IN (...)` when that index
/// drives the query, else as a correlated `EXISTS` looked up per candidate entity.
pub fn membership(
    table: &str,
    entity_column: &str,
    condition: &str,
    per_candidate: bool,
) -> String {
    if per_candidate {
        // Named, because the planner otherwise prefers the value index and scans it
        // for every candidate. Value rows are keyed by entity: the primary key is the
        // index to use, under the name SQLite gives it (`NOT INDEXED` does not keep
        // the planner off the partial value indexes).
        let by_entity = match table {
            "attr_values" => " INDEXED BY sqlite_autoindex_attr_values_1",
            "entity_types" => " INDEXED BY entity_types_by_entity",
            _ => "",
        };
        format!("EXISTS (SELECT 1 FROM {table}{by_entity} WHERE {entity_column} = e.rowid AND {condition})")
    } else {
        format!("e.rowid IN (SELECT {entity_column} FROM {table} WHERE {condition})")
    }
}

/// A type selector as SQL over the type index: each type is an indexed membership test.
fn type_sql(
    expr: &TypeExpr,
    sql: &mut String,
    args: &mut Vec<Box<dyn ToSql>>,
    per_candidate: bool,
) {
    match expr {
        TypeExpr::Type(t) => {
            sql.push_str(&membership(
                "entity_types",
                "entity",
                "type = (SELECT id FROM names WHERE name = ?)",
                per_candidate,
            ));
            args.push(Box::new(t.clone()));
        }
        // Any of several types is one membership test over all of them: as OR'ed tests
        // SQLite would evaluate the whole union of the types row by row (a table lookup
        // per member) before ordering and cutting the page.
        TypeExpr::Or(items) if items.iter().all(|i| matches!(i, TypeExpr::Type(_))) => {
            let mut names = String::new();
            for (i, item) in items.iter().enumerate() {
                if let TypeExpr::Type(t) = item {
                    names.push_str(if i == 0 { "?" } else { ", ?" });
                    args.push(Box::new(t.clone()));
                }
            }
            sql.push_str(&membership(
                "entity_types",
                "entity",
                &format!("type IN (SELECT id FROM names WHERE name IN ({names}))"),
                per_candidate,
            ));
        }
        TypeExpr::And(items) | TypeExpr::Or(items) => {
            let joiner = if matches!(expr, TypeExpr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            sql.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sql.push_str(joiner);
                }
                type_sql(item, sql, args, per_candidate);
            }
            sql.push(')');
        }
    }
}

/// Whether q should drive a query that also selects by type: the type index drives by
/// default and q is checked per candidate, which visits every entity of the type when
/// few of them match (a threshold nobody crosses reads all 6000 containers of a type).
/// Both sides are counted on their indexes, capped, so the estimate costs at most a short
/// index range per side.
fn q_more_selective(conn: &Connection, query: &EntityQuery) -> Result<bool> {
    const CAP: i64 = 50_000;
    let (Some(TypeExpr::Type(type_iri)), Some(q)) = (&query.types, &query.q) else {
        return Ok(false);
    };
    if query
        .geo_q
        .as_ref()
        .is_some_and(|g| g.prefilter_box().is_some())
    {
        return Ok(false);
    }
    let Some((rows_sql, mut args)) = super::q_sql::rows_of(q) else {
        return Ok(false);
    };
    let typed: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM (SELECT 1 FROM entity_types WHERE type = (SELECT id FROM names WHERE name = ?1) LIMIT ?2)",
        )
        .and_then(|mut s| s.query_row(params![type_iri, CAP], |r| r.get(0)))
        .map_err(db_err)?;
    // Only a clear win is worth leaving the default plan for.
    let wanted = typed / 4;
    if wanted == 0 {
        return Ok(false);
    }
    args.push(Box::new(wanted));
    let matching: i64 = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM ({rows_sql}) LIMIT ?)"
        ))
        .and_then(|mut s| {
            s.query_row(params_from_iter(args.iter().map(|a| a.as_ref())), |r| {
                r.get(0)
            })
        })
        .map_err(db_err)?;
    Ok(matching < wanted)
}

/// One page of a selection, as stored documents (see `decode`), and, when the query
/// asks for it, the number of matches.
pub fn page(
    conn: &Connection,
    tenant: &Tenant,
    query: &EntityQuery,
    now: &str,
) -> Result<(Vec<String>, Option<u64>)> {
    let keep = query.limit > 0;
    let q_first = q_more_selective(conn, query)?;
    let sel = selection(query, tenant, now, q_first);
    if sel.exact {
        let items = if keep {
            select_exact(conn, sel, query)?
        } else {
            Vec::new()
        };
        let total = if query.count {
            Some(count_exact(conn, query, tenant, now, q_first)?)
        } else {
            None
        };
        return Ok((items, total));
    }
    if let Some(geo) = decided_by_boxes(query) {
        let candidates = near_candidates(conn, geo)?;
        if let Some(candidates) = candidates {
            let per_candidate = selection_with(query, tenant, now, false, false);
            return near_in_entity_order(conn, per_candidate, candidates, query, keep);
        }
        return near_scan(conn, sel, geo, query, keep);
    }
    scan(conn, sel, query, keep)
}

fn select_exact(conn: &Connection, sel: Selection, query: &EntityQuery) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT e.doc FROM {} WHERE {} ORDER BY {} LIMIT ? OFFSET ?",
        sel.from,
        sel.filter,
        sel.order()
    );
    let mut args = sel.args;
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
    Ok(docs)
}

fn count_exact(
    conn: &Connection,
    query: &EntityQuery,
    tenant: &Tenant,
    now: &str,
    q_first: bool,
) -> Result<u64> {
    let sel = selection(query, tenant, now, q_first);
    let sql = format!("SELECT COUNT(*) FROM {} WHERE {}", sel.from, sel.filter);
    let n: i64 = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(params_from_iter(sel.args.iter().map(|a| a.as_ref())), |r| {
                r.get(0)
            })
        })
        .map_err(db_err)?;
    Ok(n.max(0) as u64)
}

/// Streams the SQL-selected rows through the in-memory filter, keeping only the
/// requested page: memory stays bounded by the page, whatever the number of candidates.
/// Without a count, it stops as soon as the page is full.
fn scan(
    conn: &Connection,
    sel: Selection,
    query: &EntityQuery,
    keep: bool,
) -> Result<(Vec<String>, Option<u64>)> {
    let sql = format!(
        "SELECT e.doc FROM {} WHERE {} ORDER BY {}",
        sel.from,
        sel.filter,
        sel.order()
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt
        .query(params_from_iter(sel.args.iter().map(|a| a.as_ref())))
        .map_err(db_err)?;
    let mut paging = Paging::new(query, keep);
    while let Some(row) = rows.next().map_err(db_err)? {
        let doc: String = row.get(0).map_err(db_err)?;
        if query.row_matches(&decode(&doc)?) && paging.matched(|| Ok(doc))? {
            break;
        }
    }
    Ok(paging.finish())
}

/// The page being filled while candidates stream by, in rowid order.
struct Paging {
    page: Vec<String>,
    matched: u64,
    offset: u64,
    limit: usize,
    keep: bool,
    count: bool,
}

impl Paging {
    fn new(query: &EntityQuery, keep: bool) -> Self {
        Self {
            page: Vec::new(),
            matched: 0,
            offset: query.offset as u64,
            limit: query.limit,
            keep,
            count: query.count,
        }
    }

    /// Records one match (its document is only read when it belongs to the page); true
    /// once nothing more is needed.
    fn matched(&mut self, entity: impl FnOnce() -> Result<String>) -> Result<bool> {
        if self.keep && self.matched >= self.offset && self.page.len() < self.limit {
            self.page.push(entity()?);
        }
        self.matched += 1;
        Ok(!self.count && (!self.keep || self.page.len() >= self.limit))
    }

    fn finish(self) -> (Vec<String>, Option<u64>) {
        let total = self.count.then_some(self.matched);
        (self.page, total)
    }
}

/// The NGSI-LD `near` query whose candidates the R*Tree boxes can decide (see
/// `GeoQuery::decide_by_box`), when nothing else needs the documents: q is exact in SQL
/// and there is no scopeQ.
fn decided_by_boxes(query: &EntityQuery) -> Option<&GeoQuery> {
    let geo = query.geo_q.as_ref()?;
    let q_exact = query
        .q
        .as_ref()
        .is_none_or(|q| super::q_sql::translate(q, true).exact);
    (query.scope_q.is_none() && q_exact && geo.prefilter_box().is_some() && geo.decides_by_box())
        .then_some(geo)
}

/// A `near` query decided on the candidates' R*Tree boxes: only the documents of the
/// page, and of the few candidates a box cannot decide, are read and decoded.
fn near_scan(
    conn: &Connection,
    sel: Selection,
    geo: &GeoQuery,
    query: &EntityQuery,
    keep: bool,
) -> Result<(Vec<String>, Option<u64>)> {
    // A box stands for its instance only when every instance of the attribute has one
    // (instances without a box, a non-GeoProperty say, are checked on the document) and
    // no instance may expire (`decode` drops expired ones): the row's `decisive` flag,
    // kept by the value index. Otherwise the document decides.
    let sql = format!(
        "SELECT e.rowid, g.min_x, g.max_x, g.min_y, g.max_y, r.decisive
         FROM {from}
         JOIN geo_rows r ON r.entity = e.rowid AND r.attr = (SELECT id FROM names WHERE name = ?)
         JOIN geo_index g ON g.rid = r.rid
         WHERE {filter} ORDER BY {order}",
        from = sel.from,
        filter = sel.filter,
        order = sel.order(),
    );
    let head: [Box<dyn ToSql>; 1] = [Box::new(geo.property.clone())];
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt
        .query(params_from_iter(
            head.iter().chain(sel.args.iter()).map(|a| a.as_ref()),
        ))
        .map_err(db_err)?;
    let mut paging = Paging::new(query, keep);
    // Rows of one entity (one per boxed instance) come together: decide once they are in.
    let mut current: Option<(i64, bool, Vec<[f64; 4]>)> = None;
    loop {
        let row = rows.next().map_err(db_err)?;
        let next = match row {
            Some(r) => {
                let rowid: i64 = r.get(0).map_err(db_err)?;
                let b = [
                    r.get(1).map_err(db_err)?,
                    r.get(2).map_err(db_err)?,
                    r.get(3).map_err(db_err)?,
                    r.get(4).map_err(db_err)?,
                ];
                let plain: bool = r
                    .get::<_, Option<bool>>(5)
                    .map_err(db_err)?
                    .unwrap_or(false);
                match &mut current {
                    Some((id, _, boxes)) if *id == rowid => {
                        boxes.push(b);
                        continue;
                    }
                    _ => Some((rowid, plain, vec![b])),
                }
            }
            None => None,
        };
        if let Some((rowid, plain, boxes)) = std::mem::replace(&mut current, next) {
            let verdict = if plain { by_boxes(geo, &boxes) } else { None };
            let done = match verdict {
                Some(false) => false,
                Some(true) => paging.matched(|| load_rowid(conn, rowid))?,
                None => {
                    let doc = load_rowid(conn, rowid)?;
                    query.row_matches(&decode(&doc)?) && paging.matched(|| Ok(doc))?
                }
            };
            if done {
                break;
            }
        }
        if current.is_none() {
            break;
        }
    }
    Ok(paging.finish())
}

/// Most R*Tree candidates a `near` query sorts in memory (about 40 bytes each); beyond,
/// SQL orders them and every candidate's entity row is read.
const MAX_NEAR_CANDIDATES: usize = 100_000;

/// What the boxes say of one entity: surely a match, or only its document can tell.
enum NearVerdict {
    Sure,
    ReadDocument,
}

/// The entities a `near` query's boxes leave, in entity order: the R*Tree candidates of
/// every tenant are sorted in memory (integers and boxes, no entity row read), those the
/// boxes rule out are dropped. `None` when there are too many to sort here.
fn near_candidates(conn: &Connection, geo: &GeoQuery) -> Result<Option<Vec<(i64, NearVerdict)>>> {
    let Some([min_x, max_x, min_y, max_y]) = geo.prefilter_box() else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT r.entity, g.min_x, g.max_x, g.min_y, g.max_y, r.decisive
             FROM geo_index g JOIN geo_rows r ON r.rid = g.rid
             WHERE r.attr = (SELECT id FROM names WHERE name = ?1)
               AND g.max_x >= ?2 AND g.min_x <= ?3 AND g.max_y >= ?4 AND g.min_y <= ?5
             LIMIT ?6",
        )
        .map_err(db_err)?;
    let mut rows = stmt
        .query(params![
            geo.property,
            min_x,
            max_x,
            min_y,
            max_y,
            (MAX_NEAR_CANDIDATES + 1) as i64
        ])
        .map_err(db_err)?;
    let mut boxes: Vec<(i64, [f64; 4], bool)> = Vec::new();
    while let Some(r) = rows.next().map_err(db_err)? {
        boxes.push((
            r.get(0).map_err(db_err)?,
            [
                r.get(1).map_err(db_err)?,
                r.get(2).map_err(db_err)?,
                r.get(3).map_err(db_err)?,
                r.get(4).map_err(db_err)?,
            ],
            r.get(5).map_err(db_err)?,
        ));
    }
    if boxes.len() > MAX_NEAR_CANDIDATES {
        return Ok(None);
    }
    boxes.sort_by_key(|(entity, ..)| *entity);
    let mut out = Vec::new();
    for rows in boxes.chunk_by(|a, b| a.0 == b.0) {
        // `decisive` is the same on every row of an attribute.
        let verdict = if rows.iter().all(|(_, _, decisive)| *decisive) {
            let b: Vec<[f64; 4]> = rows.iter().map(|(_, b, _)| *b).collect();
            by_boxes(geo, &b)
        } else {
            None
        };
        match verdict {
            Some(false) => {}
            Some(true) => out.push((rows[0].0, NearVerdict::Sure)),
            None => out.push((rows[0].0, NearVerdict::ReadDocument)),
        }
    }
    Ok(Some(out))
}

/// Checks the candidates of `near_candidates` in entity order against the rest of the
/// selection until the page is full (or all of them, for a count). Candidates go to SQL
/// in chunks, so that the per-candidate tests (type lists, q) are set up once per chunk.
fn near_in_entity_order(
    conn: &Connection,
    sel: Selection,
    candidates: Vec<(i64, NearVerdict)>,
    query: &EntityQuery,
    keep: bool,
) -> Result<(Vec<String>, Option<u64>)> {
    debug_assert_eq!(sel.from, FROM_ENTITIES);
    let mut paging = Paging::new(query, keep);
    let mut chunk_size = 256;
    let mut rest = candidates.as_slice();
    while !rest.is_empty() {
        let (chunk, next) = rest.split_at(chunk_size.min(rest.len()));
        rest = next;
        chunk_size = (chunk_size * 2).min(8192);
        // Rowids from our own index, spliced as integers; the user's values stay bound.
        let list = chunk
            .iter()
            .map(|(rowid, _)| rowid.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT e.rowid, e.doc FROM entities e WHERE e.rowid IN ({list}) AND {} ORDER BY e.rowid",
            sel.filter
        );
        let mut stmt = conn.prepare(&sql).map_err(db_err)?;
        let mut rows = stmt
            .query(params_from_iter(sel.args.iter().map(|a| a.as_ref())))
            .map_err(db_err)?;
        while let Some(row) = rows.next().map_err(db_err)? {
            let rowid: i64 = row.get(0).map_err(db_err)?;
            let doc: String = row.get(1).map_err(db_err)?;
            let verdict = chunk
                .binary_search_by_key(&rowid, |(r, _)| *r)
                .ok()
                .map(|i| &chunk[i].1);
            let matches = match verdict {
                Some(NearVerdict::Sure) => true,
                Some(NearVerdict::ReadDocument) => query.row_matches(&decode(&doc)?),
                None => false,
            };
            if matches && paging.matched(|| Ok(doc))? {
                return Ok(paging.finish());
            }
        }
    }
    Ok(paging.finish())
}

/// An entity matches if one of its instances does: true if a box surely holds a match,
/// false if no box can, `None` if the documents must tell.
fn by_boxes(geo: &GeoQuery, boxes: &[[f64; 4]]) -> Option<bool> {
    let mut all_out = true;
    for b in boxes {
        match geo.decide_by_box(*b) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => all_out = false,
        }
    }
    all_out.then_some(false)
}

/// The document at a rowid, read inside the caller's statement (same snapshot).
fn load_rowid(conn: &Connection, rowid: i64) -> Result<String> {
    conn.prepare_cached("SELECT doc FROM entities WHERE rowid = ?1")
        .and_then(|mut s| s.query_row([rowid], |r| r.get(0)))
        .map_err(db_err)
}

pub fn select_ids(
    conn: &Connection,
    tenant: &Tenant,
    query: &EntityQuery,
    now: &str,
) -> Result<Vec<String>> {
    let sel = selection(query, tenant, now, false);
    if !sel.exact {
        let all = EntityQuery {
            limit: usize::MAX,
            offset: 0,
            ..query.clone()
        };
        let sel = selection(&all, tenant, now, false);
        return scan(conn, sel, &all, true)?
            .0
            .iter()
            .map(|doc| decode(doc).map(|e| e.id))
            .collect();
    }
    let sql = format!("SELECT e.id FROM {} WHERE {}", sel.from, sel.filter);
    let mut stmt = conn.prepare(&sql).map_err(db_err)?;
    let ids = stmt
        .query_map(params_from_iter(sel.args.iter().map(|a| a.as_ref())), |r| {
            r.get::<_, String>(0)
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(db_err)?;
    Ok(ids)
}

/// Types, their entity counts and attributes, computed in SQL over the indexes and the
/// stored documents.
pub fn type_stats(conn: &Connection, tenant: &Tenant, now: &str) -> Result<Vec<TypeStats>> {
    let mut stats: Vec<TypeStats> = Vec::new();
    let mut counts = conn
        .prepare_cached(
            "SELECT n.name, COUNT(*) FROM entity_types t JOIN entities e ON e.rowid = t.entity JOIN names n ON n.id = t.type
             WHERE e.tenant = ?1 AND (e.expires_at IS NULL OR e.expires_at > ?2) GROUP BY n.name ORDER BY n.name",
        )
        .map_err(db_err)?;
    let rows = counts
        .query_map(params![tenant.as_str(), now], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(db_err)?;
    for row in rows {
        let (type_iri, n) = row.map_err(db_err)?;
        stats.push(TypeStats {
            type_iri,
            entity_count: n.max(0) as u64,
            attributes: Vec::new(),
        });
    }
    let mut attrs = conn
        .prepare_cached(
            "SELECT n.name, a.key, json_extract(i.value, '$.type') AS kind, COUNT(DISTINCT e.id)
             FROM entity_types t JOIN entities e ON e.rowid = t.entity JOIN names n ON n.id = t.type,
                  json_each(e.doc, '$.attrs') a, json_each(a.value) i
             WHERE e.tenant = ?1 AND (e.expires_at IS NULL OR e.expires_at > ?2)
             GROUP BY n.name, a.key, kind ORDER BY n.name, a.key, kind",
        )
        .map_err(db_err)?;
    let rows = attrs
        .query_map(params![tenant.as_str(), now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(db_err)?;
    for row in rows {
        let (type_iri, attr, kind, n) = row.map_err(db_err)?;
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
