//! Dropping history older than a retention rule allows, a chunk at a time so that a
//! large prune never holds the writer for long.

use rusqlite::{params_from_iter, types::Value as SqlValue, Connection};

use crate::error::{NgsiError, Result};
use crate::ngsi::Tenant;

/// Most instances deleted in one transaction.
pub const CHUNK: i64 = 5_000;

/// `t.value` (a type IRI from `json_each`) is `term`, or ends in `/term` or `#term`.
const TYPE_MATCHES: &str = "(t.value = ?N OR (substr(t.value, -length(?N)) = ?N \
     AND substr(t.value, -length(?N) - 1, 1) IN ('/', '#')))";

fn type_test(term_param: usize) -> String {
    TYPE_MATCHES.replace("?N", &format!("?{term_param}"))
}

/// Deletes up to [`CHUNK`] instances of the tenant's history dated before `before_us`
/// (observedAt, or createdAt when there is none) of the entities having one of
/// `include` (any entity when `None`) and none of `exclude`. Returns how many went.
pub fn prune_chunk(
    conn: &Connection,
    tenant: &Tenant,
    include: Option<&[String]>,
    exclude: &[String],
    before_us: i64,
) -> Result<u64> {
    let mut args: Vec<SqlValue> = vec![
        SqlValue::Text(tenant.as_str().to_string()),
        SqlValue::Integer(before_us),
    ];
    let mut filters = String::new();
    let any_of = |terms: &[String], args: &mut Vec<SqlValue>| -> String {
        let tests: Vec<String> = terms
            .iter()
            .map(|term| {
                args.push(SqlValue::Text(term.clone()));
                type_test(args.len())
            })
            .collect();
        format!(
            "EXISTS (SELECT 1 FROM json_each(e.types) t WHERE {})",
            tests.join(" OR ")
        )
    };
    if let Some(include) = include {
        if include.is_empty() {
            return Ok(0);
        }
        filters += &format!(" AND {}", any_of(include, &mut args));
    }
    if !exclude.is_empty() {
        filters += &format!(" AND NOT {}", any_of(exclude, &mut args));
    }
    let sql = format!(
        "DELETE FROM attr_instances WHERE instance IN (
           SELECT i.instance FROM temporal_entities e
           JOIN temporal_series s ON s.owner = e.rowid
           JOIN attr_instances i ON i.series = s.series
           WHERE e.tenant = ?1
             AND (i.observed_us < ?2 OR (i.observed_us IS NULL AND i.created_us < ?2))
             {filters}
           LIMIT {CHUNK})"
    );
    let n = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.execute(params_from_iter(args)))
        .map_err(|e| NgsiError::internal(format!("sqlite: {e}")))?;
    Ok(n as u64)
}
