//! Attribute update: `PATCH /entities/{id}/attrs` with a sensor's new
//! readings, sensors taking turns at successive 15-minute steps as the
//! territory's IoT agents would send them.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::territory_loader::ensure_territory;
use super::{serialize, with_context_link, Scenario};
use crate::bench_context::BenchContext;
use crate::figures::{Figure, Target};
use crate::workload::KINDS;

pub struct PatchAttrs;

const KEY: &str = "patch_attrs";
const LABEL: &str = "Attribute update (PATCH /attrs)";

impl Scenario for PatchAttrs {
    fn key(&self) -> &'static str {
        KEY
    }

    fn summary(&self) -> &'static str {
        "PATCH /entities/{id}/attrs with each sensor's next 15-minute readings (204)"
    }

    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>> {
        Box::pin(run(bench))
    }
}

async fn run(bench: &mut BenchContext) -> Vec<Figure> {
    let in_store = match ensure_territory(bench).await {
        Ok(count) => count,
        Err(why) => return vec![Figure::not_available(KEY, LABEL, "req/s", why)],
    };
    // Sensors whose observed entity (the second of each sensor's pair) is
    // in the store.
    let sensors = in_store.saturating_sub(KINDS.len() as u64) / 2;
    if sensors == 0 {
        return vec![Figure::not_available(
            KEY,
            LABEL,
            "req/s",
            "no observed entity in the store",
        )];
    }
    let territory = bench.territory();
    let api = bench.broker().await.api_url();
    let requests: Vec<_> = (0..bench.options.requests as u64)
        .map(|index| {
            let sensor = territory.sensor(index % sensors);
            let step = 1 + index / sensors;
            let url = format!("{api}/entities/{}/attrs", sensor.entity_id);
            (url, serialize(&territory.observation_update(&sensor, step)))
        })
        .collect();
    let requests = Arc::new(requests);
    let link = bench.options.context_link();
    let result = bench
        .load(
            requests.len(),
            &[204],
            Arc::new(move |client, index| {
                let (url, body) = &requests[index];
                let request = client
                    .patch(url)
                    .header("Content-Type", "application/json")
                    .body(body.clone());
                with_context_link(request, link)
            }),
        )
        .await;
    let figure =
        Figure::from_load(KEY, LABEL, "req/s", 1, &result).with_target(Target::RatioOfLimit {
            limit: "limit.http_post",
            at_least: 0.15,
        });
    vec![figure]
}
