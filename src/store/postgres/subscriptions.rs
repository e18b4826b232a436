//! Subscriptions and the notification outbox in PostgreSQL. Claims lock the rows they
//! lease with `FOR UPDATE SKIP LOCKED`, so brokers sharing the database never hand out
//! the same notification at the same time.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use serde_json::Value;

use super::{db_err, entities, Postgres};
use crate::error::{NgsiError, Result};
use crate::ngsi::subscription::DeliveryStatus;
use crate::ngsi::{time, Tenant};
use crate::store::{
    ClaimedNotification, DeliveryOutcome, DeliveryReport, Observed, OutboxRow, StoreChange,
    SubscriptionRecord, SubscriptionStore,
};

pub(super) const COLUMNS: &str =
    "doc, times_sent, times_failed, last_notification, last_success, last_failure, dropped";

pub(super) fn record(r: &tokio_postgres::Row) -> Result<SubscriptionRecord> {
    let doc: String = r.get(0);
    let doc: Value = serde_json::from_str(&doc)
        .map_err(|e| NgsiError::internal(format!("stored subscription is not JSON: {e}")))?;
    let count = |i: usize| r.get::<_, i64>(i).max(0) as u64;
    Ok(SubscriptionRecord {
        doc,
        status: DeliveryStatus {
            times_sent: count(1),
            times_failed: count(2),
            last_notification: r.get(3),
            last_success: r.get(4),
            last_failure: r.get(5),
            dropped: count(6),
        },
    })
}

/// Inserts what a write observer asked for, in the caller's transaction.
pub async fn store_observed(c: &impl GenericClient, observed: &Observed, now: &str) -> Result<()> {
    for row in &observed.rows {
        insert_row(c, row, now).await?;
    }
    // In a fixed order, so that two transactions never wait on each other's rows.
    let mut dropped: Vec<&(Tenant, String, u64)> = observed.dropped.iter().collect();
    dropped.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    for (tenant, id, n) in dropped {
        c.execute(
            "UPDATE subscriptions SET dropped = dropped + $3 WHERE tenant = $1 AND id = $2",
            &[&tenant.as_str(), id, &(*n as i64)],
        )
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

async fn insert_row(c: &impl GenericClient, row: &OutboxRow, now: &str) -> Result<()> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO outbox (tenant, subscription_id, entity_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .await
        .map_err(db_err)?;
    c.execute(
        &stmt,
        &[
            &row.tenant.as_str(),
            &row.subscription_id,
            &row.entity_id,
            &row.payload,
            &now,
        ],
    )
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl SubscriptionStore for Postgres {
    async fn create_subscription(&self, tenant: &Tenant, id: &str, doc: Value) -> Result<()> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.transaction(move |tx, store| {
            Box::pin(async move {
                entities::ensure_tenant(tx, &tenant, &time::now()).await?;
                let n = tx
                    .execute(
                        "INSERT INTO subscriptions (tenant, id, doc) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&tenant.as_str(), &id, &doc.to_string()],
                    )
                    .await
                    .map_err(db_err)?;
                if n == 0 {
                    return Err(NgsiError::already_exists(format!(
                        "a subscription with id {id} already exists"
                    )));
                }
                store.announce(tx, &StoreChange::Subscription { tenant, id }).await
            })
        })
        .await
    }

    async fn update_subscription(&self, tenant: &Tenant, id: &str, doc: Value) -> Result<bool> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.transaction(move |tx, store| {
            Box::pin(async move {
                let n = tx
                    .execute(
                        "UPDATE subscriptions SET doc = $3 WHERE tenant = $1 AND id = $2",
                        &[&tenant.as_str(), &id, &doc.to_string()],
                    )
                    .await
                    .map_err(db_err)?;
                if n > 0 {
                    store
                        .announce(tx, &StoreChange::Subscription { tenant, id })
                        .await?;
                }
                Ok(n > 0)
            })
        })
        .await
    }

    async fn delete_subscription(&self, tenant: &Tenant, id: &str) -> Result<bool> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.transaction(move |tx, store| {
            Box::pin(async move {
                tx.execute(
                    "DELETE FROM outbox WHERE tenant = $1 AND subscription_id = $2",
                    &[&tenant.as_str(), &id],
                )
                .await
                .map_err(db_err)?;
                let n = tx
                    .execute(
                        "DELETE FROM subscriptions WHERE tenant = $1 AND id = $2",
                        &[&tenant.as_str(), &id],
                    )
                    .await
                    .map_err(db_err)?;
                if n > 0 {
                    store
                        .announce(tx, &StoreChange::Subscription { tenant, id })
                        .await?;
                }
                Ok(n > 0)
            })
        })
        .await
    }

    async fn get_subscription(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<SubscriptionRecord>> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.read(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        &format!(
                            "SELECT {COLUMNS} FROM subscriptions WHERE tenant = $1 AND id = $2"
                        ),
                        &[&tenant.as_str(), &id],
                    )
                    .await
                    .map_err(db_err)?;
                row.as_ref().map(record).transpose()
            })
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
        self.read(move |c| {
            Box::pin(async move {
                let total: i64 = c
                    .query_one(
                        "SELECT COUNT(*) FROM subscriptions WHERE tenant = $1",
                        &[&tenant.as_str()],
                    )
                    .await
                    .map_err(db_err)?
                    .get(0);
                let rows = c
                    .query(
                        &format!(
                            "SELECT {COLUMNS} FROM subscriptions WHERE tenant = $1 ORDER BY id COLLATE \"C\" LIMIT $2 OFFSET $3"
                        ),
                        &[&tenant.as_str(), &(limit.min(i64::MAX as usize) as i64), &(offset.min(i64::MAX as usize) as i64)],
                    )
                    .await
                    .map_err(db_err)?;
                let items = rows.iter().map(record).collect::<Result<Vec<_>>>()?;
                Ok((items, total.max(0) as u64))
            })
        })
        .await
    }

    async fn all_subscriptions(&self) -> Result<Vec<(Tenant, SubscriptionRecord)>> {
        self.read(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(&format!("SELECT {COLUMNS}, tenant FROM subscriptions"), &[])
                    .await
                    .map_err(db_err)?;
                rows.iter()
                    .map(|r| Ok((Tenant::from_stored(r.get::<_, &str>(7)), record(r)?)))
                    .collect()
            })
        })
        .await
    }

    async fn enqueue(&self, rows: Vec<OutboxRow>) -> Result<()> {
        self.transaction(move |tx, _| {
            Box::pin(async move {
                let now = time::now();
                for row in &rows {
                    insert_row(tx, row, &now).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn claim(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<ClaimedNotification>> {
        self.transaction(move |tx, store| {
            Box::pin(async move {
                // Rows another broker is leasing right now are skipped, not waited for;
                // a row is due only once every older row of its (subscription, entity)
                // is gone, so delivery stays in order per entity.
                let rows = tx
                    .query(
                        "WITH due AS (
                           SELECT o.seq FROM outbox o
                           WHERE o.next_attempt_ms <= $1 AND o.lease_until_ms <= $1
                             AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.tenant = o.tenant
                                   AND p.subscription_id = o.subscription_id
                                   AND p.entity_id = o.entity_id AND p.seq < o.seq)
                           ORDER BY o.seq LIMIT $2
                           FOR UPDATE OF o SKIP LOCKED)
                         UPDATE outbox SET lease_until_ms = $1 + $3, lease_owner = $4
                         FROM due WHERE outbox.seq = due.seq
                         RETURNING outbox.seq, outbox.tenant, outbox.subscription_id, outbox.entity_id,
                                   outbox.payload, outbox.attempts",
                        &[&now_ms, &(limit.min(i64::MAX as usize) as i64), &lease_ms, &store.owner],
                    )
                    .await
                    .map_err(db_err)?;
                let mut claimed: Vec<ClaimedNotification> = rows
                    .iter()
                    .map(|r| ClaimedNotification {
                        seq: r.get(0),
                        tenant: Tenant::from_stored(r.get::<_, &str>(1)),
                        subscription_id: r.get(2),
                        entity_id: r.get(3),
                        payload: r.get(4),
                        attempts: r.get::<_, i64>(5).clamp(0, u32::MAX as i64) as u32,
                    })
                    .collect();
                claimed.sort_by_key(|c| c.seq);
                Ok(claimed)
            })
        })
        .await
    }

    async fn finish(&self, mut reports: Vec<DeliveryReport>) -> Result<()> {
        // In a fixed order, so that two transactions never wait on each other's rows.
        reports.sort_by(|a, b| {
            (a.tenant.as_str(), &a.subscription_id, a.seq).cmp(&(
                b.tenant.as_str(),
                &b.subscription_id,
                b.seq,
            ))
        });
        self.transaction(move |tx, _| {
            Box::pin(async move {
                for r in &reports {
                    finish_one(tx, r).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn release_all(&self, now_ms: i64) -> Result<()> {
        // Only the leases of brokers that are gone: a lease is held by a live broker if
        // one of its connections (named after it) is open.
        self.transaction(move |tx, _| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE outbox SET lease_until_ms = 0, lease_owner = NULL,
                       next_attempt_ms = LEAST(next_attempt_ms, $1)
                     WHERE lease_owner IS NULL OR lease_owner NOT IN
                       (SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'calanque-%')",
                    &[&now_ms],
                )
                .await
                .map(|_| ())
                .map_err(db_err)
            })
        })
        .await
    }

    async fn pending_counts(&self) -> Result<Vec<(Tenant, String, u64)>> {
        self.read(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT tenant, subscription_id, COUNT(*) FROM outbox GROUP BY tenant, subscription_id",
                        &[],
                    )
                    .await
                    .map_err(db_err)?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (
                            Tenant::from_stored(r.get::<_, &str>(0)),
                            r.get::<_, String>(1),
                            r.get::<_, i64>(2).max(0) as u64,
                        )
                    })
                    .collect())
            })
        })
        .await
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<StoreChange>> {
        Some(self.0.changes.subscribe())
    }

    async fn leads_periodic(&self) -> bool {
        self.periodic_leadership().await
    }
}

async fn finish_one(c: &impl GenericClient, r: &DeliveryReport) -> Result<()> {
    let (tenant, id) = (r.tenant.as_str(), r.subscription_id.as_str());
    match &r.outcome {
        DeliveryOutcome::Delivered => {
            c.execute("DELETE FROM outbox WHERE seq = $1", &[&r.seq])
                .await
                .map_err(db_err)?;
            c.execute(
                "UPDATE subscriptions SET times_sent = times_sent + 1, last_notification = $3, last_success = $3
                 WHERE tenant = $1 AND id = $2",
                &[&tenant, &id, &r.at],
            )
            .await
            .map_err(db_err)?;
        }
        DeliveryOutcome::Retry { at_ms, error } => {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = $2, lease_until_ms = 0,
                   lease_owner = NULL, last_error = $3 WHERE seq = $1",
                &[&r.seq, at_ms, error],
            )
            .await
            .map_err(db_err)?;
            failed(c, tenant, id, &r.at).await?;
        }
        DeliveryOutcome::GiveUp { error } => {
            tracing::warn!(subscription = id, error = %error, "notification abandoned");
            c.execute("DELETE FROM outbox WHERE seq = $1", &[&r.seq])
                .await
                .map_err(db_err)?;
            failed(c, tenant, id, &r.at).await?;
        }
        DeliveryOutcome::Defer { at_ms } => {
            c.execute(
                "UPDATE outbox SET next_attempt_ms = $2, lease_until_ms = 0, lease_owner = NULL WHERE seq = $1",
                &[&r.seq, at_ms],
            )
            .await
            .map_err(db_err)?;
        }
    }
    Ok(())
}

async fn failed(c: &impl GenericClient, tenant: &str, id: &str, at: &str) -> Result<()> {
    c.execute(
        "UPDATE subscriptions SET times_sent = times_sent + 1, times_failed = times_failed + 1,
         last_notification = $3, last_failure = $3 WHERE tenant = $1 AND id = $2",
        &[&tenant, &id, &at],
    )
    .await
    .map(|_| ())
    .map_err(db_err)
}
