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
];

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
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
