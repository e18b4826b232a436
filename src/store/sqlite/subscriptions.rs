//! Subscriptions and the notification outbox in SQLite.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::{db_err, entities, Sqlite};
use crate::error::{NgsiError, Result};
use crate::ngsi::subscription::DeliveryStatus;
use crate::ngsi::{time, Tenant};
use crate::store::{
    ClaimedNotification, DeliveryOutcome, DeliveryReport, Observed, OutboxRow, SubscriptionRecord,
    SubscriptionStore,
};

pub(crate) const COLUMNS: &str =
    "doc, times_sent, times_failed, last_notification, last_success, last_failure, dropped";

pub(crate) fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, DeliveryStatus)> {
    Ok((
        r.get::<_, String>(0)?,
        DeliveryStatus {
            times_sent: r.get::<_, i64>(1)? as u64,
            times_failed: r.get::<_, i64>(2)? as u64,
            last_notification: r.get(3)?,
            last_success: r.get(4)?,
            last_failure: r.get(5)?,
            dropped: r.get::<_, i64>(6)? as u64,
        },
    ))
}

fn to_record((doc, status): (String, DeliveryStatus)) -> Result<SubscriptionRecord> {
    let doc: Value = serde_json::from_str(&doc)
        .map_err(|e| NgsiError::internal(format!("stored subscription is not JSON: {e}")))?;
    Ok(SubscriptionRecord { doc, status })
}

/// Inserts what a write observer asked for, in the caller's transaction.
pub fn store_observed(conn: &Connection, observed: &Observed, now: &str) -> Result<()> {
    for row in &observed.rows {
        insert_row(conn, row, now)?;
    }
    for (tenant, id, n) in &observed.dropped {
        conn.prepare_cached(
            "UPDATE subscriptions SET dropped = dropped + ?3 WHERE tenant = ?1 AND id = ?2",
        )
        .and_then(|mut s| s.execute(params![tenant.as_str(), id, *n as i64]))
        .map_err(db_err)?;
    }
    Ok(())
}

fn insert_row(conn: &Connection, row: &OutboxRow, now: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (tenant, subscription_id, entity_id, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(params![
            row.tenant.as_str(),
            row.subscription_id,
            row.entity_id,
            row.payload,
            now
        ])
    })
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl SubscriptionStore for Sqlite {
    async fn create_subscription(&self, tenant: &Tenant, id: &str, doc: Value) -> Result<()> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.0
            .write_job(move |conn| {
                let now = time::now();
                entities::ensure_tenant(conn, &tenant, &now)?;
                let n = conn
                    .execute(
                        "INSERT OR IGNORE INTO subscriptions (tenant, id, doc) VALUES (?1, ?2, ?3)",
                        params![tenant.as_str(), id, doc.to_string()],
                    )
                    .map_err(db_err)?;
                if n == 0 {
                    return Err(NgsiError::already_exists(format!(
                        "a subscription with id {id} already exists"
                    )));
                }
                Ok(())
            })
            .await?
    }

    async fn update_subscription(&self, tenant: &Tenant, id: &str, doc: Value) -> Result<bool> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.0
            .write_job(move |conn| {
                conn.execute(
                    "UPDATE subscriptions SET doc = ?3 WHERE tenant = ?1 AND id = ?2",
                    params![tenant.as_str(), id, doc.to_string()],
                )
                .map(|n| n > 0)
                .map_err(db_err)
            })
            .await?
    }

    async fn delete_subscription(&self, tenant: &Tenant, id: &str) -> Result<bool> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.0
            .write_job(move |conn| {
                conn.execute(
                    "DELETE FROM outbox WHERE tenant = ?1 AND subscription_id = ?2",
                    params![tenant.as_str(), id],
                )
                .map_err(db_err)?;
                conn.execute(
                    "DELETE FROM subscriptions WHERE tenant = ?1 AND id = ?2",
                    params![tenant.as_str(), id],
                )
                .map(|n| n > 0)
                .map_err(db_err)
            })
            .await?
    }

    async fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<SubscriptionRecord>> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.0
            .read(move |conn| {
                conn.query_row(
                    &format!("SELECT {COLUMNS} FROM subscriptions WHERE tenant = ?1 AND id = ?2"),
                    params![tenant.as_str(), id],
                    record,
                )
                .optional()
                .map_err(db_err)?
                .map(to_record)
                .transpose()
            })
            .await
    }

    async fn list_subscriptions(
        &self,
        tenant: &Tenant,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<SubscriptionRecord>, u64)> {
        let tenant = tenant.clone();
        self.0
            .read(move |conn| {
                let total: i64 = conn
                    .query_row(
                        "SELECT COUNT(*) FROM subscriptions WHERE tenant = ?1",
                        [tenant.as_str()],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                let mut stmt = conn
                    .prepare(&format!(
                        "SELECT {COLUMNS} FROM subscriptions WHERE tenant = ?1 ORDER BY id LIMIT ?2 OFFSET ?3"
                    ))
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(
                        params![tenant.as_str(), limit as i64, offset as i64],
                        record,
                    )
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                let items = rows
                    .into_iter()
                    .map(to_record)
                    .collect::<Result<Vec<_>>>()?;
                Ok((items, total as u64))
            })
            .await
    }

    async fn all_subscriptions(&self) -> Result<Vec<(Tenant, SubscriptionRecord)>> {
        self.0
            .read(move |conn| {
                let mut stmt = conn
                    .prepare(&format!("SELECT {COLUMNS}, tenant FROM subscriptions"))
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map([], |r| Ok((record(r)?, r.get::<_, String>(7)?)))
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                rows.into_iter()
                    .map(|(rec, tenant)| Ok((Tenant::from_stored(&tenant), to_record(rec)?)))
                    .collect()
            })
            .await
    }

    async fn enqueue(&self, rows: Vec<OutboxRow>) -> Result<()> {
        self.0
            .write_job(move |conn| {
                let now = time::now();
                for row in &rows {
                    insert_row(conn, row, &now)?;
                }
                Ok(())
            })
            .await?
    }

    async fn claim(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<ClaimedNotification>> {
        self.0
            .write_job(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT seq, tenant, subscription_id, entity_id, payload, attempts FROM outbox o
                         WHERE o.next_attempt_ms <= ?1 AND o.lease_until_ms <= ?1
                           AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.tenant = o.tenant
                                 AND p.subscription_id = o.subscription_id
                                 AND p.entity_id = o.entity_id AND p.seq < o.seq)
                         ORDER BY o.seq LIMIT ?2",
                    )
                    .map_err(db_err)?;
                let claimed = stmt
                    .query_map(params![now_ms, limit as i64], |r| {
                        Ok(ClaimedNotification {
                            seq: r.get(0)?,
                            tenant: Tenant::from_stored(&r.get::<_, String>(1)?),
                            subscription_id: r.get(2)?,
                            entity_id: r.get(3)?,
                            payload: r.get(4)?,
                            attempts: r.get::<_, i64>(5)? as u32,
                        })
                    })
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                let mut lease = conn
                    .prepare_cached("UPDATE outbox SET lease_until_ms = ?2 WHERE seq = ?1")
                    .map_err(db_err)?;
                for c in &claimed {
                    lease.execute(params![c.seq, now_ms + lease_ms]).map_err(db_err)?;
                }
                Ok(claimed)
            })
            .await?
    }

    async fn finish(&self, reports: Vec<DeliveryReport>) -> Result<()> {
        self.0
            .write_job(move |conn| {
                for r in &reports {
                    finish_one(conn, r)?;
                }
                Ok(())
            })
            .await?
    }

    async fn release_all(&self, now_ms: i64) -> Result<()> {
        self.0
            .write_job(move |conn| {
                conn.execute(
                    "UPDATE outbox SET lease_until_ms = 0, next_attempt_ms = MIN(next_attempt_ms, ?1)",
                    [now_ms],
                )
                .map(|_| ())
                .map_err(db_err)
            })
            .await?
    }

    async fn pending_counts(&self) -> Result<Vec<(Tenant, String, u64)>> {
        self.0
            .read(move |conn| {
                let mut stmt = conn
                    .prepare("SELECT tenant, subscription_id, COUNT(*) FROM outbox GROUP BY tenant, subscription_id")
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((
                            Tenant::from_stored(&r.get::<_, String>(0)?),
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)? as u64,
                        ))
                    })
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                Ok(rows)
            })
            .await
    }
}

fn finish_one(conn: &Connection, r: &DeliveryReport) -> Result<()> {
    let (tenant, id) = (r.tenant.as_str(), r.subscription_id.as_str());
    let exec = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<()> {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute(p))
            .map(|_| ())
            .map_err(db_err)
    };
    match &r.outcome {
        DeliveryOutcome::Delivered => {
            exec("DELETE FROM outbox WHERE seq = ?1", &[&r.seq])?;
            exec(
                "UPDATE subscriptions SET times_sent = times_sent + 1, last_notification = ?3, last_success = ?3
                 WHERE tenant = ?1 AND id = ?2",
                &[&tenant, &id, &r.at],
            )?;
        }
        DeliveryOutcome::Retry { at_ms, error } => {
            exec(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, lease_until_ms = 0, last_error = ?3
                 WHERE seq = ?1",
                &[&r.seq, at_ms, error],
            )?;
            failed(conn, tenant, id, &r.at)?;
        }
        DeliveryOutcome::GiveUp { error } => {
            tracing::warn!(subscription = id, error = %error, "notification abandoned");
            exec("DELETE FROM outbox WHERE seq = ?1", &[&r.seq])?;
            failed(conn, tenant, id, &r.at)?;
        }
        DeliveryOutcome::Defer { at_ms } => {
            exec(
                "UPDATE outbox SET next_attempt_ms = ?2, lease_until_ms = 0 WHERE seq = ?1",
                &[&r.seq, at_ms],
            )?;
        }
    }
    Ok(())
}

fn failed(conn: &Connection, tenant: &str, id: &str, at: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE subscriptions SET times_sent = times_sent + 1, times_failed = times_failed + 1,
         last_notification = ?3, last_failure = ?3 WHERE tenant = ?1 AND id = ?2",
    )
    .and_then(|mut s| s.execute(params![tenant, id, at]))
    .map(|_| ())
    .map_err(db_err)
}
