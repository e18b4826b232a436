//! Floors: the broker's own embedded store alone, the entities parsed
//! beforehand. No HTTP, no JSON parsing, no @context work, no subscriptions or
//! validation: only what the store writes for an entity (its row, its type,
//! one value-index row per attribute, geometry, and the first instance of each
//! attribute's history).
//!
//! - `store_floor`: the batch upsert's batches, 1000 entities per write. The
//!   batch upsert target is a ratio to the bare SQLite insert (one row per
//!   entity); this shows how much of that ratio the storage design leaves for
//!   the rest of the broker. A batch upsert can never beat it.
//! - `store_floor.single`: the territory's entities one per write, as many in
//!   flight as the create scenario has requests (the writer groups them as it
//!   groups concurrent requests). Creates over HTTP can never beat it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use calanque::jsonld::{ContextDocuments, ContextResolver};
use calanque::ngsi::entity::{parse_body, BodyKind};
use calanque::ngsi::{time, Entity, Tenant};
use calanque::store::sqlite::{Durability, Sqlite, SqliteStore};
use calanque::store::{ContextRepository, Effect, EntityStore, WriteOp};
use futures_util::future::LocalBoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use super::batch_upsert::{upsert_batch, upsert_workload};
use super::Scenario;
use crate::bench_context::BenchContext;
use crate::figures::{Figure, Target};
use crate::latency::LatencySummary;

pub struct StoreFloor;

const KEY: &str = "store_floor";
const LABEL: &str = "Floor: the broker's SQLite store alone, 1000 parsed entities per transaction";
const SINGLE_KEY: &str = "store_floor.single";
const SINGLE_LABEL: &str =
    "Floor: the broker's SQLite store alone, one parsed entity per write (concurrent)";
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
    let batched = figure(
        KEY,
        LABEL,
        "entities/s",
        "limit.sqlite_insert",
        measure_batches(bench).await,
    );
    let single = figure(
        SINGLE_KEY,
        SINGLE_LABEL,
        "req/s",
        "limit.http_post",
        measure_single(bench).await,
    );
    vec![batched, single]
}

type Measured = Result<(usize, Duration, Vec<Duration>), String>;

fn figure(
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    limit: &'static str,
    measured: Measured,
) -> Figure {
    match measured {
        Ok((entities, elapsed, latencies)) => {
            let mut figure =
                Figure::measured(key, label, entities as f64 / elapsed.as_secs_f64(), unit)
                    .with_target(Target::ComparedTo { limit });
            figure.latency = LatencySummary::from_samples(latencies);
            figure
        }
        Err(why) => Figure::not_available(key, label, unit, why),
    }
}

async fn open_store(bench: &BenchContext, dir: &str) -> Result<(Sqlite, ContextResolver), String> {
    let path = bench.work_dir().join(dir).join("calanque.db");
    let store = SqliteStore::open(&path, Durability::Process).map_err(|e| e.detail)?;
    let store = Sqlite(Arc::new(store));
    let resolver = resolver(&store).await?;
    Ok((store, resolver))
}

fn put(entity: Entity) -> WriteOp {
    WriteOp::new(entity.id.clone(), move |_| {
        Ok(Effect::Put(entity.clone(), Default::default()))
    })
}

async fn measure_batches(bench: &BenchContext) -> Measured {
    let (store, resolver) = open_store(bench, "store-floor").await?;
    let batches = parsed_batches(bench, &resolver).await?;
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
        let ops = batch.into_iter().map(put).collect();
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

/// The territory's entities written one per `write`, `concurrency` writes in
/// flight, as the create scenario's requests are.
async fn measure_single(bench: &BenchContext) -> Measured {
    let (store, resolver) = open_store(bench, "store-floor-single").await?;
    let territory = bench.territory();
    let count = territory.entity_count().min(bench.options.requests as u64);
    let documents: Vec<Value> = (0..count).map(|index| territory.entity(index)).collect();
    let entities = parse_all(bench, &resolver, &documents).await?;
    let tenant = Tenant::default_tenant();
    let time_cap = bench.options.time_cap();
    let in_flight = bench.options.concurrency();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(entities.len());
    let mut pending = entities.into_iter();
    let mut running = FuturesUnordered::new();
    let write_one = |entity: Entity| {
        let (store, tenant) = (&store, &tenant);
        async move {
            let began = Instant::now();
            let results = store.write(tenant, vec![put(entity)]).await;
            (results, began.elapsed())
        }
    };
    loop {
        while running.len() < in_flight && started.elapsed() < time_cap {
            match pending.next() {
                Some(entity) => running.push(write_one(entity)),
                None => break,
            }
        }
        let Some((results, latency)) = running.next().await else {
            break;
        };
        for result in results.map_err(|e| e.detail)? {
            result.map_err(|e| e.detail)?;
        }
        latencies.push(latency);
    }
    let elapsed = started.elapsed();
    drop(running);
    store.close().await.map_err(|e| e.detail)?;
    Ok((latencies.len(), elapsed, latencies))
}

/// A resolver over the bundled contexts (no network) and the store's own.
async fn resolver(store: &Sqlite) -> Result<ContextResolver, String> {
    let docs = Arc::new(ContextDocuments::new(
        "http://127.0.0.1/ngsi-ld/v1/jsonldContexts/".into(),
        Duration::from_secs(5),
        1 << 20,
    ));
    let repository: Arc<dyn ContextRepository> = Arc::new(Sqlite(store.0.clone()));
    ContextResolver::new(docs, repository)
        .await
        .map_err(|e| e.detail)
}

/// The batch upsert's batches as the broker would have parsed them.
async fn parsed_batches(
    bench: &BenchContext,
    resolver: &ContextResolver,
) -> Result<Vec<Vec<Entity>>, String> {
    let workload = upsert_workload(bench);
    let mut batches = Vec::with_capacity(bench.options.batches);
    for batch in 0..bench.options.batches as u64 {
        let Value::Array(documents) = upsert_batch(&workload, batch) else {
            return Err("a batch is a JSON array".to_string());
        };
        batches.push(parse_all(bench, resolver, &documents).await?);
    }
    Ok(batches)
}

/// Entities as the broker would have parsed them, with the scenario's
/// @context (the bundled Smart Data Models one if asked for, else the core).
async fn parse_all(
    bench: &BenchContext,
    resolver: &ContextResolver,
    documents: &[Value],
) -> Result<Vec<Entity>, String> {
    let context = bench
        .options
        .context_link()
        .map(|_| Value::String(SDM_CONTEXT.into()));
    let ctx = resolver
        .resolve(context.as_ref())
        .await
        .map_err(|e| e.detail)?;
    let now = time::now();
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
}
