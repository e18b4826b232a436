//! Single entity create: `POST /entities`, one territory entity per request.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::{serialize, with_context_link, Scenario};
use crate::bench_context::BenchContext;
use crate::figures::{Figure, Target};

pub struct Create;

impl Scenario for Create {
    fn key(&self) -> &'static str {
        "create"
    }

    fn summary(&self) -> &'static str {
        "POST /entities for each entity of the territory (201), as a gateway provisioning sensors"
    }

    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>> {
        Box::pin(run(bench))
    }
}

async fn run(bench: &mut BenchContext) -> Vec<Figure> {
    let territory = bench.territory();
    let count = territory.entity_count().min(bench.options.requests as u64);
    let bodies: Vec<_> = (0..count)
        .map(|index| serialize(&territory.entity(index)))
        .collect();
    let url = format!("{}/entities", bench.broker().await.api_url());
    let bodies = Arc::new(bodies);
    let link = bench.options.context_link();
    let result = bench
        .load(
            bodies.len(),
            &[201],
            Arc::new(move |client, index| {
                let request = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(bodies[index].clone());
                with_context_link(request, link)
            }),
        )
        .await;
    if result.failed == 0 && !result.stopped_by_time_cap {
        bench.territory_in_store = count;
    }
    let figure = Figure::from_load(
        "create",
        "Create entity (POST /entities)",
        "req/s",
        1,
        &result,
    )
    .with_target(Target::RatioOfLimit {
        limit: "limit.http_post",
        at_least: 0.15,
    });
    vec![figure]
}
