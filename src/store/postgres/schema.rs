//! Numbered migrations, applied in order at start-up (and by `calanque migrate`); the
//! applied ones are recorded. Brokers starting together take turns (advisory lock).

use deadpool_postgres::GenericClient;

use super::db_err;
use crate::error::Result;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_restore_and_renames.sql")),
];

/// Any constant shared by every Calanque broker: the key of the migration lock.
const MIGRATION_LOCK: i64 = 0x00ca_1a9e;

pub async fn migrate(client: &mut deadpool_postgres::Object) -> Result<()> {
    let tx = client.transaction().await.map_err(db_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(db_err)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(db_err)?
        .get(0);
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await.map_err(db_err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(db_err)?;
        tracing::info!(version, "applied PostgreSQL migration");
    }
    tx.commit().await.map_err(db_err)
}
