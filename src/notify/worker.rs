//! The delivery worker: leases due notifications from the outbox, sends them with
//! bounded concurrency (overall and per endpoint), records each attempt, and schedules
//! retries. It also queues the periodic (timeInterval) notifications. It stops when
//! its cancellation token fires, after the deliveries it holds have finished.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::http::{self, Prepared};
use super::{mqtt, retry, Entry, NotifyConfig, SubscriptionIndex};
use crate::api::response::link_header_for_url;
use crate::ngsi::query::{EntityQuery, MAX_LIMIT};
use crate::ngsi::subscription::{render_notified, NotifiedEntity};
use crate::ngsi::type_expr::TypeExpr;
use crate::ngsi::{time, Entity};
use crate::store::{ClaimedNotification, DeliveryOutcome, DeliveryReport, SharedStore};

/// How often the worker looks for due retries and periodic subscriptions when nothing
/// wakes it.
const POLL: Duration = Duration::from_millis(250);
/// How long the worker lets notifications accumulate after a write wakes it: a few
/// milliseconds of latency for claims in batches.
const COALESCE: Duration = Duration::from_millis(4);
/// How long a notification whose endpoint is saturated waits before it is handed out
/// again.
const DEFER_MS: i64 = 50;
/// How long a notification waits for a free slot at its endpoint before it is deferred.
const ENDPOINT_WAIT: Duration = Duration::from_secs(1);

pub struct Worker {
    store: SharedStore,
    index: Arc<SubscriptionIndex>,
    config: NotifyConfig,
    http: reqwest::Client,
    global: Arc<Semaphore>,
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Attempts are recorded in batches, by one task.
    reports: mpsc::UnboundedSender<DeliveryReport>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Starts the worker on the current runtime.
pub fn spawn(
    store: SharedStore,
    index: Arc<SubscriptionIndex>,
    config: NotifyConfig,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (reports, pending_reports) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(record_attempts(store.clone(), pending_reports));
    let worker = Arc::new(Worker {
        store,
        index,
        global: Arc::new(Semaphore::new(config.concurrency.max(1))),
        config,
        http: http::client(),
        endpoints: Mutex::new(HashMap::new()),
        reports,
    });
    tokio::spawn(async move {
        worker.run(cancel).await;
        // The last sender goes with the worker: the recorder writes what is left, then
        // ends.
        if let Err(e) = recorder.await {
            tracing::error!(error = %e, "the notification recorder failed");
        }
    })
}

/// Records delivery attempts, many per transaction.
async fn record_attempts(store: SharedStore, mut rx: mpsc::UnboundedReceiver<DeliveryReport>) {
    while let Some(first) = rx.recv().await {
        // Recorded as soon as possible: a subscriber that got a notification may read
        // the subscription's status next and expect to see it (ETSI 046_12).
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if let Err(e) = store.finish(batch).await {
            tracing::error!(error = %e.detail, "cannot record notification attempts; they will be retried");
        }
    }
}

/// The key deliveries to one endpoint share a concurrency limit under.
fn endpoint_key(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => uri.to_string(),
    }
}

impl Worker {
    async fn run(self: Arc<Self>, cancel: CancellationToken) {
        if let Err(e) = self.store.release_all(now_ms()).await {
            tracing::error!(error = %e.detail, "cannot resume queued notifications");
        }
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut rounds: u64 = 0;
        loop {
            rounds += 1;
            // The in-memory counts say whether anything is queued; every few seconds the
            // outbox is looked at anyway, in case they drifted.
            let look = self.index.has_pending() || rounds % 20 == 0;
            while tasks.try_join_next().is_some() {}
            let mut full_batch = false;
            let free = self.global.available_permits();
            if free > 0 && !cancel.is_cancelled() && look {
                match self
                    .store
                    .claim(now_ms(), self.config.lease_ms(), free)
                    .await
                {
                    Ok(batch) => {
                        full_batch = batch.len() == free;
                        for n in batch {
                            let Ok(permit) = self.global.clone().try_acquire_owned() else {
                                break;
                            };
                            tasks.spawn(self.clone().deliver(n, permit));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e.detail, "cannot claim notifications"),
                }
            }
            let due = self.index.periodic_due();
            // Several brokers on one database: only the leader sends periodic ones.
            if !due.is_empty() && self.store.leads_periodic().await {
                for entry in due {
                    tasks.spawn(self.clone().periodic(entry));
                }
            }
            if full_batch && self.global.available_permits() > 0 {
                continue;
            }
            let woken = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.index.wake.notified() => true,
                _ = tokio::time::sleep(POLL) => false,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => false,
            };
            if woken {
                // A write woke us: let the writes arriving with it queue their
                // notifications too, so one claim transaction takes them all instead of
                // one transaction per write competing with the writes themselves.
                tokio::time::sleep(COALESCE).await;
            }
        }
        // Finish what is in flight; what was not claimed stays queued for next time.
        let grace = Duration::from_millis(self.config.timeout_ms + 2000);
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("notification deliveries still running at shutdown were abandoned; they stay queued");
        }
        tracing::debug!("notification worker stopped");
    }

    fn endpoint_limit(&self, uri: &str) -> Arc<Semaphore> {
        self.endpoints
            .lock()
            .entry(endpoint_key(uri))
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.endpoint_concurrency.max(1))))
            .clone()
    }

    async fn deliver(self: Arc<Self>, n: ClaimedNotification, _permit: OwnedSemaphorePermit) {
        let outcome = match self.index.get(&n.tenant, &n.subscription_id) {
            None => DeliveryOutcome::GiveUp {
                error: "the subscription no longer exists".into(),
            },
            Some(entry) => {
                let uri = entry.sub().notification.endpoint.uri.clone();
                // Wait a little for a slot at the endpoint; a saturated (slow or dead)
                // endpoint sends the notification back to the queue instead of holding
                // a delivery slot for long.
                let limit = self.endpoint_limit(&uri);
                let slot = tokio::time::timeout(ENDPOINT_WAIT, limit.acquire_owned()).await;
                match slot.ok().and_then(Result::ok).ok_or(()) {
                    Err(()) => DeliveryOutcome::Defer {
                        at_ms: now_ms() + DEFER_MS,
                    },
                    Ok(_endpoint_permit) => match self.attempt(&entry, &n.payload).await {
                        Ok(()) => DeliveryOutcome::Delivered,
                        Err(error) => {
                            let failures = n.attempts + 1;
                            if failures >= self.config.max_attempts {
                                DeliveryOutcome::GiveUp { error }
                            } else {
                                tracing::debug!(subscription = %n.subscription_id, %error, failures, "notification failed; will retry");
                                let delay = retry::backoff(
                                    failures,
                                    Duration::from_millis(self.config.retry_base_ms),
                                    Duration::from_millis(self.config.retry_max_ms),
                                );
                                DeliveryOutcome::Retry {
                                    at_ms: now_ms() + delay.as_millis() as i64,
                                    error,
                                }
                            }
                        }
                    },
                }
            }
        };
        if matches!(
            outcome,
            DeliveryOutcome::Delivered | DeliveryOutcome::GiveUp { .. }
        ) {
            self.index.done(&n.tenant, &n.subscription_id);
        }
        let report = DeliveryReport {
            seq: n.seq,
            tenant: n.tenant,
            subscription_id: n.subscription_id,
            outcome,
            at: time::now(),
        };
        if self.reports.send(report).is_err() {
            tracing::error!("the notification recorder has stopped; the attempt will be retried");
        }
    }

    async fn attempt(&self, entry: &Entry, payload: &str) -> Result<(), String> {
        let prepared = prepare(entry, payload)?;
        let endpoint = &entry.sub().notification.endpoint;
        http::guard(&endpoint.uri, self.config.deny_private).await?;
        let timeout = endpoint
            .timeout
            .map(|t| Duration::from_millis(t as u64))
            .unwrap_or(Duration::from_millis(self.config.timeout_ms));
        if endpoint.uri.starts_with("mqtt") {
            mqtt::publish(&endpoint.uri, &prepared, timeout).await
        } else {
            http::send(&self.http, &endpoint.uri, &prepared, timeout).await
        }
    }

    /// Queues a periodic notification with every entity the subscription selects now.
    async fn periodic(self: Arc<Self>, entry: Arc<Entry>) {
        let sub = entry.sub();
        let mut found: Vec<Entity> = Vec::new();
        let selectors: Vec<(crate::ngsi::subscription::EntitySelector, Option<TypeExpr>)> =
            if sub.entities.is_empty() {
                vec![Default::default()]
            } else {
                sub.entities
                    .iter()
                    .cloned()
                    .zip(entry.compiled.types.iter().cloned())
                    .collect()
            };
        for (sel, types) in selectors {
            let query = EntityQuery {
                types,
                ids: sel.id.clone().map(|i| vec![i]),
                id_pattern: sel.id_pattern.clone(),
                q: entry.compiled.q.clone(),
                limit: MAX_LIMIT,
                ..Default::default()
            };
            match self.store.query(&entry.tenant, &query).await {
                Ok(page) => {
                    for e in page.items {
                        if !found.iter().any(|f| f.id == e.id) && entry.compiled.filters_pass(&e) {
                            found.push(e);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(subscription = %sub.id, error = %e.detail, "periodic query failed");
                    return;
                }
            }
        }
        if found.is_empty() {
            return;
        }
        if let Some(row) = self.index.periodic_row(&entry, found) {
            match self.store.enqueue(vec![row]).await {
                Ok(()) => self.index.wake.notify_one(),
                Err(e) => {
                    self.index.done(&entry.tenant, &sub.id);
                    tracing::warn!(subscription = %sub.id, error = %e.detail, "cannot queue a periodic notification");
                }
            }
        }
    }
}

/// Builds the Notification (clause 5.3.1) for an outbox payload.
pub fn prepare(entry: &Entry, payload: &str) -> Result<Prepared, String> {
    let sub = entry.sub();
    let parsed: Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let items: Vec<NotifiedEntity> = parsed
        .get("data")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| format!("outbox payload: {e}"))?
        .unwrap_or_default();
    let accept = sub
        .notification
        .endpoint
        .accept
        .as_deref()
        .unwrap_or("application/json");
    let ld = accept == "application/ld+json";
    let data: Vec<Value> = items
        .iter()
        .map(|ne| {
            let mut m: Map<String, Value> = render_notified(ne, sub, &entry.ctx);
            if ld {
                m.insert("@context".into(), json!(sub.jsonld_context));
            }
            Value::Object(m)
        })
        .collect();
    let body = json!({
        "id": format!("urn:ngsi-ld:Notification:{}", uuid::Uuid::new_v4()),
        "type": "Notification",
        "subscriptionId": sub.id,
        "notifiedAt": time::now(),
        "data": data,
    });
    let mut headers: Vec<(String, String)> = sub
        .notification
        .endpoint
        .receiver_info
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    if !entry.tenant.is_default() {
        headers.push(("NGSILD-Tenant".into(), entry.tenant.as_str().to_string()));
    }
    Ok(Prepared {
        body: body.to_string(),
        content_type: if ld {
            "application/ld+json"
        } else {
            "application/json"
        },
        link: (!ld).then(|| link_header_for_url(&sub.jsonld_context)),
        headers,
        notifier: sub
            .notification
            .endpoint
            .notifier_info
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
    })
}
