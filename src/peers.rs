//! Several brokers on one database behave as one: what another broker changed in the
//! state this one keeps in memory (subscriptions, stored @contexts) is reloaded from
//! the store as soon as the store reports it.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;

use crate::jsonld::ContextResolver;
use crate::ngsi::subscription::Subscription;
use crate::ngsi::Tenant;
use crate::notify::SubscriptionIndex;
use crate::store::{SharedStore, StoreChange};

/// Follows the store's change feed, if it has one, for as long as the broker runs.
pub fn follow(store: SharedStore, index: Arc<SubscriptionIndex>, contexts: Arc<ContextResolver>) {
    let Some(mut changes) = store.changes() else {
        return;
    };
    actix_web::rt::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(StoreChange::Subscription { tenant, id }) => {
                    reload_subscription(&store, &index, &contexts, &tenant, &id).await
                }
                Ok(StoreChange::Contexts) => reload_contexts(&store, &contexts).await,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "missed changes of other brokers; reloading all");
                    reload_contexts(&store, &contexts).await;
                    if let Err(e) = index.load(&store, &contexts).await {
                        tracing::error!(error = %e.detail, "cannot reload subscriptions");
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
}

async fn reload_subscription(
    store: &SharedStore,
    index: &SubscriptionIndex,
    contexts: &ContextResolver,
    tenant: &Tenant,
    id: &str,
) {
    let record = match store.get_subscription(tenant, id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(subscription = id, error = %e.detail, "cannot reload a subscription changed by another broker");
            return;
        }
    };
    let Some(record) = record else {
        index.remove(tenant, id);
        return;
    };
    let sub: Subscription = match serde_json::from_value(record.doc) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(subscription = id, error = %e, "a stored subscription cannot be read");
            return;
        }
    };
    match index.prepare(tenant, sub, contexts).await {
        Ok(entry) => index.insert(entry),
        Err(e) => {
            tracing::error!(subscription = id, error = %e.detail, "cannot prepare a subscription changed by another broker")
        }
    }
}

async fn reload_contexts(store: &SharedStore, contexts: &ContextResolver) {
    match store.contexts().await {
        Ok(records) => contexts.docs.replace_all(records),
        Err(e) => tracing::error!(error = %e.detail, "cannot reload stored @contexts"),
    }
}
