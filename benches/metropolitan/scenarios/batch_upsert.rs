//! Batch upsert: `POST /entityOperations/upsert` with 1000 new entities per
//! request, as a bulk import of a whole district's sensors would.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::{serialize, with_context_link, Scenario};
use crate::bench_context::BenchContext;
use crate::figures::{Figure, Target};
use crate::workload::Workload;

pub const BATCH_SIZE: u64 = 1000;
/// Id prefix of the upserted copy of the territory; the bare SQLite limit
/// inserts the very same documents.
pub const UPSERT_PREFIX: &str = "AMP-U";

pub struct BatchUpsert;

impl Scenario for BatchUpsert {
    fn key(&self) -> &'static str {
        "batch_upsert"
    }

    fn summary(&self) -> &'static str {
        "POST /entityOperations/upsert with batches of 1000 new entities (201/204)"
    }

    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>> {
        Box::pin(run(bench))
    }
}

/// The entities of batch `batch` of the upserted territory copy.
pub fn upsert_batch(workload: &Workload, batch: u64) -> serde_json::Value {
    let first = batch * BATCH_SIZE;
    let last = (first + BATCH_SIZE).min(workload.entity_count());
    serde_json::Value::Array((first..last).map(|index| workload.entity(index)).collect())
}

pub fn upsert_workload(bench: &BenchContext) -> Workload {
    Workload::with_at_least(
        bench.options.seed,
        bench.options.batches as u64 * BATCH_SIZE,
        UPSERT_PREFIX,
    )
}

async fn run(bench: &mut BenchContext) -> Vec<Figure> {
    let workload = upsert_workload(bench);
    let bodies: Vec<_> = (0..bench.options.batches as u64)
        .map(|batch| serialize(&upsert_batch(&workload, batch)))
        .collect();
    let url = format!("{}/entityOperations/upsert", bench.broker().await.api_url());
    let bodies = Arc::new(bodies);
    let link = bench.options.context_link();
    let result = bench
        .load(
            bodies.len(),
            &[201, 204],
            Arc::new(move |client, index| {
                let request = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(bodies[index].clone());
                with_context_link(request, link)
            }),
        )
        .await;
    let figure = Figure::from_load(
        "batch_upsert",
        "Batch upsert, 1000 new entities per request",
        "entities/s",
        BATCH_SIZE as usize,
        &result,
    )
    .with_target(Target::RatioOfLimit {
        limit: "limit.sqlite_insert",
        at_least: 0.30,
    });
    vec![figure]
}
