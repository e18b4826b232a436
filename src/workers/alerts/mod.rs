//! The alert evaluator (stub).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::jsonld::ContextResolver;
use crate::store::SharedStore;

pub fn spawn(
    _store: SharedStore,
    _contexts: Arc<ContextResolver>,
    _interval: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { cancel.cancelled().await })
}
