//! Floor: the broker's own embedded store alone, 1000 entities per
//! transaction, the batch upsert's documents parsed beforehand. No HTTP, no
//! JSON parsing, no @context work, no subscriptions or validation: only what
//! the store writes for an entity (its row, its type, one value-index row per
//! attribute, geometry, and the first instance of each attribute's history).
//!
//! The batch upsert target is a ratio to the bare SQLite insert (one row per
//! entity); this figure shows how much of that ratio the storage design leaves
//! for the rest of the broker. A batch upsert can never beat it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use calanque::jsonld::{ContextDocuments, ContextResolver};
use calanque::ngsi::entity::{parse_body, BodyKind};
use calanque::ngsi::{time, Entity, Tenant};
use calanque::store::sqlite::{Durability, Sqlite, SqliteStore};
use calanque::store::{ContextRepository, Effect, EntityStore, WriteOp};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;

use super::batch_upsert::{upsert_batch, upsert_workload};
use super::Scenario;
use crate::bench_context::BenchContext;
use crate::figures::{Figure, Target};
use crate::latency::LatencySummary;

pub struct StoreFloor;

const KEY: &str = "store_floor";
const LABEL: &str = "Floor: the broker's SQLite store alone, 1000 parsed entities per transaction";
const SDM_CONTEXT: &str =
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld";

impl Scenario for StoreFloor {
    fn key(&self) -> &'static str {
        "store_floor"
    }

    fn summary(&self) -> &'static str {
        "floor: the batch upsert's entities written straight into the broker's SQLite store (no HTTP)"
    }

    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>> {
        Box::pin(run(bench))
    }
}

async fn run(bench: &mut BenchContext) -> Vec<Figure> {
    match measure(bench).await {
        Ok((entities, elapsed, latencies)) => {
            let mut figure = Figure::measured(
                KEY,
                LABEL,
                entities as f64 / elapsed.as_secs_f64(),
                "entities/s",
            )
            .with_target(Target::ComparedTo {
                limit: "limit.sqlite_insert",
            });
            figure.latency = LatencySummary::from_samples(latencies);
            vec![figure]
        }
        Err(why) => vec![Figure::not_available(KEY, LABEL, "entities/s", why)],
    }
}

async fn measure(bench: &BenchContext) -> Result<(usize, Duration, Vec<Duration>), String> {
    let path = bench.work_dir().join("store-floor").join("calanque.db");
    let store = SqliteStore::open(&path, Durability::Process).map_err(|e| e.detail)?;
    let store = Sqlite(Arc::new(store));
    let batches = parsed_batches(bench, &store).await?;
    let tenant = Tenant::default_tenant();
    let time_cap = bench.options.time_cap();
    let started = Instant::now();
    let mut written = 0;
    let mut latencies = Vec::with_capacity(batches.len());
    for batch in batches {
        if started.elapsed() >= time_cap {
            break;
        }
        let size = batch.len();
        let ops = batch
            .into_iter()
            .map(|entity| {
                WriteOp::new(entity.id.clone(), move |_| {
                    Ok(Effect::Put(entity.clone(), Default::default()))
                })
            })
            .collect();
        let batch_started = Instant::now();
        for result in store.write(&tenant, ops).await.map_err(|e| e.detail)? {
            result.map_err(|e| e.detail)?;
        }
        latencies.push(batch_started.elapsed());
        written += size;
    }
    let elapsed = started.elapsed();
    store.close().await.map_err(|e| e.detail)?;
    Ok((written, elapsed, latencies))
}

/// The batch upsert's batches as the broker would have parsed them, with the
/// same @context (bundled, so no network).
async fn parsed_batches(bench: &BenchContext, store: &Sqlite) -> Result<Vec<Vec<Entity>>, String> {
    let docs = Arc::new(ContextDocuments::new(
        "http://127.0.0.1/ngsi-ld/v1/jsonldContexts/".into(),
        Duration::from_secs(5),
        1 << 20,
    ));
    let repository: Arc<dyn ContextRepository> = Arc::new(Sqlite(store.0.clone()));
    let resolver = ContextResolver::new(docs, repository)
        .await
        .map_err(|e| e.detail)?;
    let context = match bench.options.context_link() {
        Some(_) => Some(Value::String(SDM_CONTEXT.into())),
        None => None,
    };
    let ctx = resolver
        .resolve(context.as_ref())
        .await
        .map_err(|e| e.detail)?;
    let workload = upsert_workload(bench);
    let now = time::now();
    (0..bench.options.batches as u64)
        .map(|batch| {
            let Value::Array(documents) = upsert_batch(&workload, batch) else {
                return Err("a batch is a JSON array".to_string());
            };
            documents
                .iter()
                .map(|document| {
                    let Value::Object(body) = document else {
                        return Err("an entity is a JSON object".to_string());
                    };
                    parse_body(body, &ctx, &now, BodyKind::Entity)
                        .and_then(|fragment| Entity::create(fragment, &now))
                        .map_err(|e| e.detail)
                })
                .collect()
        })
        .collect()
}
