//! Numbered migrations, applied in order at start-up; the applied ones are recorded.

use rusqlite::Connection;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_value_and_geo_indexes.sql")),
    (3, include_str!("migrations/0003_temporal.sql")),
    (4, include_str!("migrations/0004_subscriptions.sql")),
    (5, include_str!("migrations/0005_context_tenant.sql")),
    (6, include_str!("migrations/0006_restore_and_renames.sql")),
    (
        7,
        include_str!("migrations/0007_history_read_from_index.sql"),
    ),
    (8, include_str!("migrations/0008_decisive_geo_rows.sql")),
    (9, include_str!("migrations/0009_value_rows_by_entity.sql")),
    (10, include_str!("migrations/0010_series_by_owner.sql")),
];

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    migrate_to(conn, i64::MAX)
}

/// Applies the migrations not yet applied, up to version `last`.
fn migrate_to(conn: &mut Connection, last: i64) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for (version, sql) in MIGRATIONS
        .iter()
        .filter(|(v, _)| *v > current && *v <= last)
    {
        // Some migrations rewrite whole tables: on a large store the first start after an
        // upgrade takes a while, and the log should say why.
        tracing::info!(version, "applying SQLite migration");
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
            [version],
        )?;
        if *version == 2 {
            // The value and geo indexes start with what is already stored.
            super::value_index::reindex_all(&tx)
                .map_err(|e| rusqlite::Error::UserFunctionError(e.detail.into()))?;
        }
        tx.commit()?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::{params, Connection};

    use super::migrate_to;

    /// Geo rows stored before version 8 are marked decisive only when every instance
    /// of their attribute has a box and none expires.
    #[test]
    fn version_8_marks_the_boxes_that_stand_for_their_attribute() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        migrate_to(&mut conn, 7).expect("migrations 1 to 7");
        let point = r#"{"type":"GeoProperty","value":{"type":"Point","coordinates":[5.37,43.29]}}"#;
        let doc = format!(
            r#"{{"id":"urn:a","type":["T"],"createdAt":"x","modifiedAt":"x","attrs":{{
                "urn:plain":[{point}],
                "urn:expiring":[{{"type":"GeoProperty","value":{{"type":"Point","coordinates":[5,43]}},"expiresAt":"2999-01-01T00:00:00Z"}}],
                "urn:mixed":[{point},{{"type":"Property","value":1,"datasetId":"urn:d"}}]}}}}"#
        );
        conn.execute(
            "INSERT INTO entities (tenant, id, doc, created_at, modified_at) VALUES ('', 'urn:a', ?1, 'x', 'x')",
            [&doc],
        )
        .expect("entity row");
        for (id, name) in [(1, "urn:plain"), (2, "urn:expiring"), (3, "urn:mixed")] {
            conn.execute(
                "INSERT INTO names (id, name) VALUES (?1, ?2)",
                params![id, name],
            )
            .expect("name");
            conn.execute("INSERT INTO geo_rows (entity, attr) VALUES (1, ?1)", [id])
                .expect("geo row");
        }
        migrate_to(&mut conn, 8).expect("migration 8");
        let decisive: Vec<(i64, bool)> = conn
            .prepare("SELECT attr, decisive FROM geo_rows ORDER BY attr")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .expect("geo rows");
        assert_eq!(decisive, vec![(1, true), (2, false), (3, false)]);
    }

    /// Version 9 moves every value row into the table keyed by entity, numbering the
    /// rows of each (entity, attribute) in their stored order.
    #[test]
    fn version_9_keeps_every_value_row() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        migrate_to(&mut conn, 8).expect("migrations 1 to 8");
        for (attr, entity, num, txt) in [
            (1, 7, Some(3.5), None),
            (1, 7, None, Some("b")),
            (1, 7, Some(1.0), None),
            (2, 7, None, None),
            (1, 8, None, Some("a")),
        ] {
            conn.execute(
                "INSERT INTO attr_values (attr, entity, num, txt) VALUES (?1, ?2, ?3, ?4)",
                params![attr, entity, num, txt],
            )
            .expect("value row");
        }
        migrate_to(&mut conn, 9).expect("migration 9");
        type Row = (i64, i64, i64, Option<f64>, Option<String>);
        let rows: Vec<Row> = conn
            .prepare(
                "SELECT entity, attr, seq, num, txt FROM attr_values ORDER BY entity, attr, seq",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()
            })
            .expect("value rows");
        assert_eq!(
            rows,
            vec![
                (7, 1, 0, Some(3.5), None),
                (7, 1, 1, None, Some("b".to_string())),
                (7, 1, 2, Some(1.0), None),
                (7, 2, 0, None, None),
                (8, 1, 0, None, Some("a".to_string())),
            ]
        );
    }

    /// Version 10 keys each series by its temporal entity's rowid and interned names,
    /// keeping series ids (instances point at them), and gives history without a
    /// temporal entity row one.
    #[test]
    fn version_10_keeps_series_ids_and_every_owner() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        migrate_to(&mut conn, 9).expect("migrations 1 to 9");
        conn.execute_batch(
            "INSERT INTO temporal_entities (tenant, id, types, created_at, modified_at)
               VALUES ('', 'urn:a', '[\"T\"]', 'x', 'x'), ('t2', 'urn:a', '[\"T\"]', 'x', 'x');
             INSERT INTO temporal_series (series, tenant, entity_id, attr, dataset_id) VALUES
               (11, '', 'urn:a', 'urn:x', ''),
               (12, '', 'urn:a', 'urn:x', 'urn:ds:1'),
               (13, 't2', 'urn:a', 'urn:x', ''),
               (14, '', 'urn:orphan', 'urn:y', '');",
        )
        .expect("old series");
        migrate_to(&mut conn, 10).expect("migration 10");
        type Row = (i64, String, String, String, Option<String>);
        let series: Vec<Row> = conn
            .prepare(
                "SELECT s.series, t.tenant, t.id, a.name, d.name FROM temporal_series s
                 JOIN temporal_entities t ON t.rowid = s.owner JOIN names a ON a.id = s.attr
                 LEFT JOIN names d ON d.id = s.dataset ORDER BY s.series",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()
            })
            .expect("series");
        let text = |s: &str| s.to_string();
        assert_eq!(
            series,
            vec![
                (11, text(""), text("urn:a"), text("urn:x"), None),
                (
                    12,
                    text(""),
                    text("urn:a"),
                    text("urn:x"),
                    Some(text("urn:ds:1"))
                ),
                (13, text("t2"), text("urn:a"), text("urn:x"), None),
                (14, text(""), text("urn:orphan"), text("urn:y"), None),
            ]
        );
    }
}
