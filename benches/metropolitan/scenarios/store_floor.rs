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
//! - `store_floor.update`: then the PATCH scenario's readings, each merged
//!   into its entity by the domain's `operations::update`, one per write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use calanque::error::NgsiError;
use calanque::jsonld::ActiveContext;
use calanque::jsonld::{ContextDocuments, ContextResolver};
use calanque::ngsi::entity::{parse_body, BodyKind};
use calanque::ngsi::{operations, time, Entity, Tenant};
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
use crate::workload::KINDS;

pub struct StoreFloor;

const KEY: &str = "store_floor";
const LABEL: &str = "Floor: the broker's SQLite store alone, 1000 parsed entities per transaction";
const SINGLE_KEY: &str = "store_floor.single";
const SINGLE_LABEL: &str =
    "Floor: the broker's SQLite store alone, one parsed entity per write (concurrent)";
const UPDATE_KEY: &str = "store_floor.update";
const UPDATE_LABEL: &str =
    "Floor: the broker's SQLite store alone, one parsed attribute update per write (concurrent)";
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
    let (creates, updates) = measure_single(bench).await;
    let single = figure(
        SINGLE_KEY,
        SINGLE_LABEL,
        "req/s",
        "limit.http_post",
        creates,
    );
    let update = figure(
        UPDATE_KEY,
        UPDATE_LABEL,
        "req/s",
        "limit.http_post",
        updates,
    );
    vec![batched, single, update]
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

/// The territory's entities written one per `write`, then each sensor's next
/// readings merged into its entity one per `write`, as many writes in flight
/// as the create and PATCH scenarios have requests.
async fn measure_single(bench: &BenchContext) -> (Measured, Measured) {
    let (store, resolver) = match open_store(bench, "store-floor-single").await {
        Ok(opened) => opened,
        Err(why) => return (Err(why.clone()), Err(why)),
    };
    let creates = single_creates(bench, &store, &resolver).await;
    let updates = match &creates {
        Ok((written, _, _)) => single_updates(bench, &store, &resolver, *written as u64).await,
        Err(why) => Err(format!("no entity to update: {why}")),
    };
    let closed = store.close().await.map_err(|e| e.detail);
    match closed {
        Ok(()) => (creates, updates),
        Err(why) => (Err(why.clone()), Err(why)),
    }
}

async fn single_creates(
    bench: &BenchContext,
    store: &Sqlite,
    resolver: &ContextResolver,
) -> Measured {
    let territory = bench.territory();
    let count = territory.entity_count().min(bench.options.requests as u64);
    let documents: Vec<Value> = (0..count).map(|index| territory.entity(index)).collect();
    let entities = parse_all(bench, resolver, &documents, BodyKind::Entity).await?;
    let ops = entities.into_iter().map(put).collect();
    write_concurrently(bench, store, ops).await
}

/// The PATCH scenario's requests: sensors taking turns at 15-minute steps,
/// each merged as `PATCH /attrs` merges it (`operations::update`).
async fn single_updates(
    bench: &BenchContext,
    store: &Sqlite,
    resolver: &ContextResolver,
    in_store: u64,
) -> Measured {
    let sensors = in_store.saturating_sub(KINDS.len() as u64) / 2;
    if sensors == 0 {
        return Err("no observed entity in the store".into());
    }
    let territory = bench.territory();
    let ctx = scenario_context(bench, resolver).await?;
    let now = time::now();
    let mut ops = Vec::with_capacity(bench.options.requests);
    for index in 0..bench.options.requests as u64 {
        let sensor = territory.sensor(index % sensors);
        let Value::Object(body) = territory.observation_update(&sensor, 1 + index / sensors) else {
            return Err("an update is a JSON object".into());
        };
        let fragment = parse_body(&body, &ctx, &now, BodyKind::Fragment { allow_null: true })
            .map_err(|e| e.detail)?;
        let now = now.clone();
        ops.push(WriteOp::new(sensor.entity_id.clone(), move |current| {
            let mut entity = current.ok_or_else(|| NgsiError::not_found("no such entity"))?;
            let report = operations::update(&mut entity, fragment.clone(), &now);
            Ok(Effect::Put(entity, report))
        }));
    }
    write_concurrently(bench, store, ops).await
}

/// `ops` written one per `write`, `concurrency` writes in flight, as the
/// load driver sends requests; stops starting writes at the time cap.
async fn write_concurrently(bench: &BenchContext, store: &Sqlite, ops: Vec<WriteOp>) -> Measured {
    let tenant = Tenant::default_tenant();
    let time_cap = bench.options.time_cap();
    let in_flight = bench.options.concurrency();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(ops.len());
    let mut pending = ops.into_iter();
    let mut running = FuturesUnordered::new();
    let write_one = |op: WriteOp| {
        let tenant = &tenant;
        async move {
            let began = Instant::now();
            let results = store.write(tenant, vec![op]).await;
            (results, began.elapsed())
        }
    };
    loop {
        while running.len() < in_flight && started.elapsed() < time_cap {
            match pending.next() {
                Some(op) => running.push(write_one(op)),
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
    Ok((latencies.len(), started.elapsed(), latencies))
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
        batches.push(parse_all(bench, resolver, &documents, BodyKind::Entity).await?);
    }
    Ok(batches)
}

/// The scenario's @context, resolved as the broker resolves it: the bundled
/// Smart Data Models one if asked for, else the core.
async fn scenario_context(
    bench: &BenchContext,
    resolver: &ContextResolver,
) -> Result<Arc<ActiveContext>, String> {
    let context = bench
        .options
        .context_link()
        .map(|_| Value::String(SDM_CONTEXT.into()));
    resolver
        .resolve(context.as_ref())
        .await
        .map_err(|e| e.detail)
}

/// Entities as the broker would have parsed them.
async fn parse_all(
    bench: &BenchContext,
    resolver: &ContextResolver,
    documents: &[Value],
    kind: BodyKind,
) -> Result<Vec<Entity>, String> {
    let ctx = scenario_context(bench, resolver).await?;
    let now = time::now();
    documents
        .iter()
        .map(|document| {
            let Value::Object(body) = document else {
                return Err("an entity is a JSON object".to_string());
            };
            parse_body(body, &ctx, &now, kind)
                .and_then(|fragment| Entity::create(fragment, &now))
                .map_err(|e| e.detail)
        })
        .collect()
}
