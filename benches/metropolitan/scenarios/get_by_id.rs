//! GET by id: `GET /entities/{id}` of territory entities in a seeded random
//! order, as a dashboard opening sensors' pages would.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::territory_loader::ensure_territory;
use super::{with_context_link, Scenario};
use crate::bench_context::BenchContext;
use crate::figures::{Figure, Target};
use crate::seeded_rng::SeededRng;

pub struct GetById;

const KEY: &str = "get_by_id";
const LABEL: &str = "GET entity by id";
/// Random stream of the read order, apart from the workload's own streams.
const READ_ORDER_STREAM: u64 = 3;

impl Scenario for GetById {
    fn key(&self) -> &'static str {
        KEY
    }

    fn summary(&self) -> &'static str {
        "GET /entities/{id} of random territory entities (200)"
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
    let territory = bench.territory();
    let api = bench.broker().await.api_url();
    let mut order = SeededRng::new(bench.options.seed ^ READ_ORDER_STREAM);
    let urls: Vec<String> = (0..bench.options.requests)
        .map(|_| {
            format!(
                "{api}/entities/{}",
                territory.entity_id(order.below(in_store))
            )
        })
        .collect();
    let urls = Arc::new(urls);
    let link = bench.options.context_link();
    let result = bench
        .load(
            urls.len(),
            &[200],
            Arc::new(move |client, index| {
                let request = client
                    .get(&urls[index])
                    .header("Accept", "application/json");
                with_context_link(request, link)
            }),
        )
        .await;
    let figure =
        Figure::from_load(KEY, LABEL, "req/s", 1, &result).with_target(Target::RatioOfLimit {
            limit: "limit.http_get",
            at_least: 0.30,
        });
    vec![figure]
}
