//! Applies the retention policy: at start-up and then at every interval, each tenant's
//! history older than its rules allow is deleted.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ngsi::retention::RetentionPolicy;
use crate::ngsi::{time, Tenant};
use crate::store::SharedStore;

/// Starts the retention task; `None` when the policy keeps everything.
pub fn spawn(
    store: SharedStore,
    policy: RetentionPolicy,
    interval: Duration,
    cancel: CancellationToken,
) -> Option<JoinHandle<()>> {
    if policy.is_empty() {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            run_once(&store, &policy).await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }))
}

/// One pass over every tenant; failures are logged and retried at the next pass.
pub async fn run_once(store: &SharedStore, policy: &RetentionPolicy) -> u64 {
    let tenants = match store.tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e.detail, "retention: cannot list tenants");
            return 0;
        }
    };
    let now_us = time::parse(&time::now()).map(time::micros).unwrap_or(0);
    let mut total = 0;
    for name in tenants {
        let tenant = Tenant::from_stored(&name);
        for job in policy.jobs_for(&tenant) {
            let before_us = job.keep.subtract_from(now_us);
            match store
                .temporal_prune(&tenant, job.include.clone(), job.exclude.clone(), before_us)
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    total += n;
                    tracing::info!(
                        tenant = %name,
                        types = ?job.include,
                        instances = n,
                        before = %time::from_micros(before_us),
                        "retention: history deleted"
                    );
                }
                Err(e) => {
                    tracing::warn!(tenant = %name, error = %e.detail, "retention: prune failed")
                }
            }
        }
    }
    total
}
