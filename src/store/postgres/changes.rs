//! Cross-broker cache invalidation: each change to a subscription or a hosted context
//! is announced with `NOTIFY calanque_changes` inside the transaction that makes it;
//! every broker LISTENs and passes on what other brokers changed.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;

use crate::ngsi::Tenant;
use crate::store::StoreChange;

const CHANNEL: &str = "calanque_changes";

pub fn encode(origin: &str, change: &StoreChange) -> String {
    match change {
        StoreChange::Subscription { tenant, id } => {
            json!({ "origin": origin, "kind": "subscription", "tenant": tenant.as_str(), "id": id })
        }
        StoreChange::Contexts => json!({ "origin": origin, "kind": "contexts" }),
    }
    .to_string()
}

/// The change in a notification payload, unless this broker made it.
fn decode(own: &str, payload: &str) -> Option<StoreChange> {
    let v: Value = serde_json::from_str(payload).ok()?;
    if v["origin"].as_str() == Some(own) {
        return None;
    }
    match v["kind"].as_str()? {
        "subscription" => Some(StoreChange::Subscription {
            tenant: Tenant::from_stored(v["tenant"].as_str()?),
            id: v["id"].as_str()?.to_string(),
        }),
        "contexts" => Some(StoreChange::Contexts),
        _ => None,
    }
}

/// Listens for as long as someone may want to hear; reconnects after a lost connection.
pub async fn listen(
    config: tokio_postgres::Config,
    own: String,
    out: broadcast::Sender<StoreChange>,
) {
    loop {
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(n) = message {
                            if tx.send(n.payload().to_string()).is_err() {
                                break;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        while let Some(payload) = rx.recv().await {
                            if let Some(change) = decode(&own, &payload) {
                                let _ = out.send(change);
                            }
                        }
                        tracing::warn!("lost the connection listening for other brokers' changes; reconnecting");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for other brokers' changes")
                    }
                }
                driver.abort();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot connect to listen for other brokers' changes")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
