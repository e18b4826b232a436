//! Notifications (issue 5): attribute-update ingestion on a fresh broker with
//! no subscription, then on another fresh broker with `--subscriptions` (1000)
//! active ones notifying a local receiver; notifications/s delivered and the
//! write-to-receive latency (p50/p99), all on loopback.
//!
//! Workload: S entity types with one entity and one subscription each, so
//! every update matches exactly one subscription among the S. Updates go
//! round-robin over the entities, each carrying its send time, which the
//! receiver subtracts from the arrival time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use serde_json::{json, Value};

use super::notification_receiver::{now_micros, Receiver};
use super::Scenario;
use crate::bench_context::{start_broker, BenchContext};
use crate::broker::BrokerProcess;
use crate::figures::{Figure, Target};
use crate::latency::LatencySummary;
use crate::load_driver::LoadResult;

pub struct Notifications;

const NONE_KEY: &str = "notify.ingest_none";
const SUBSCRIBED_KEY: &str = "notify.ingest_subscribed";
const DELIVERY_KEY: &str = "notify.delivery";
/// Issue 5's targets.
const RATIO_AT_LEAST: f64 = 0.70;
const P99_AT_MOST_MS: f64 = 50.0;
/// How long notifications may keep arriving after the last update.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// Entities per (unmeasured) creation request.
const CREATE_BATCH: usize = 500;

impl Scenario for Notifications {
    fn key(&self) -> &'static str {
        "notifications"
    }

    fn summary(&self) -> &'static str {
        "PATCH ingestion with 0 and with 1000 subscriptions (fresh brokers), notifications/s and write-to-receive latency"
    }

    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>> {
        Box::pin(run(bench))
    }
}

async fn run(bench: &mut BenchContext) -> Vec<Figure> {
    let subscriptions = bench.options.subscriptions.max(1);
    let updates = bench
        .options
        .notify_updates
        .min(bench.options.requests)
        .max(1);
    let rounds = bench.options.notify_rounds.max(1);

    let baseline = start_broker(&bench.work_dir().join("notify-none"), bench.work_dir()).await;
    if let Err(why) = prepare(bench, &baseline, subscriptions, updates, None).await {
        return vec![Figure::not_available(
            NONE_KEY,
            "Ingestion, no subscription",
            "req/s",
            why,
        )];
    }
    let receiver = match Receiver::start().await {
        Ok(receiver) => receiver,
        Err(err) => {
            return vec![Figure::not_available(
                SUBSCRIBED_KEY,
                "Ingestion with subscriptions",
                "req/s",
                format!("no receiver: {err}"),
            )]
        }
    };
    let subscribed = start_broker(&bench.work_dir().join("notify-subs"), bench.work_dir()).await;
    if let Err(why) = prepare(bench, &subscribed, subscriptions, updates, Some(&receiver)).await {
        return vec![Figure::not_available(
            SUBSCRIBED_KEY,
            "Ingestion with subscriptions",
            "req/s",
            why,
        )];
    }
    // The warm-up's notifications must not count as the measured runs'.
    let warmed = receiver
        .wait_for(warm_up_count(updates), DRAIN_TIMEOUT)
        .await;
    receiver.take();

    // Both brokers stay up and take turns, so both sides of each ratio see the same
    // background load; a round's subscribed run ends when its notifications arrived.
    let mut measured = Vec::new();
    let mut latencies = Vec::new();
    let mut all_drained = warmed;
    let mut delivered = 0usize;
    let mut delivering = Duration::ZERO;
    let mut expected = 0usize;
    for _ in 0..rounds {
        let none = ingest(bench, &baseline, subscriptions, updates).await;
        let started = Instant::now();
        let with = ingest(bench, &subscribed, subscriptions, updates).await;
        all_drained &= receiver.wait_for(with.succeeded, DRAIN_TIMEOUT).await;
        delivering += started.elapsed();
        expected += with.succeeded;
        let round = receiver.take();
        delivered += round.len();
        latencies.extend(round);
        measured.push((none, with));
    }
    drop(baseline);
    let ratio_of = |(none, with): &(LoadResult, LoadResult)| {
        with.succeeded_per_second() / none.succeeded_per_second().max(f64::EPSILON)
    };
    let mut order: Vec<usize> = (0..measured.len()).collect();
    order.sort_by(|a, b| ratio_of(&measured[*a]).total_cmp(&ratio_of(&measured[*b])));
    let median = order[order.len() / 2];
    let ratios: Vec<String> = measured
        .iter()
        .map(|m| format!("{:.0}%", 100.0 * ratio_of(m)))
        .collect();
    let (none, with) = &measured[median];

    let mut figures = vec![Figure::from_load(
        NONE_KEY,
        "Notifications: PATCH ingestion, no subscription",
        "req/s",
        1,
        none,
    )];
    figures.push(
        Figure::from_load(
            SUBSCRIBED_KEY,
            format!("Notifications: PATCH ingestion, {subscriptions} subscriptions (each update matches one)"),
            "req/s",
            1,
            with,
        )
        .with_target(Target::RatioOfLimit {
            limit: NONE_KEY,
            at_least: RATIO_AT_LEAST,
        })
        .with_note(format!(
            "median of {rounds} alternating rounds of {updates} updates; ratios per round: {}",
            ratios.join(", ")
        )),
    );
    let mut delivery = Figure::measured(
        DELIVERY_KEY,
        "Notifications delivered (latency: write to receive)",
        delivered as f64 / delivering.as_secs_f64().max(f64::EPSILON),
        "notifications/s",
    )
    .with_target(Target::P99AtMostMs { ms: P99_AT_MOST_MS });
    delivery.latency = LatencySummary::from_samples(latencies);
    delivery = delivery.with_note(format!(
        "all {rounds} rounds: from each round's first update to its last notification"
    ));
    if !all_drained {
        delivery = delivery.with_note(format!(
            "{delivered} of {expected} notifications received within {} s of the rounds' starts",
            delivering.as_secs()
        ));
    }
    figures.push(delivery);
    figures
}

fn warm_up_count(updates: usize) -> usize {
    (updates / 10).max(1)
}

/// Creates one entity per type (and one subscription per type when a
/// receiver is given), then warms the broker up with a tenth of the updates.
async fn prepare(
    bench: &BenchContext,
    broker: &BrokerProcess,
    types: usize,
    updates: usize,
    receiver: Option<&Receiver>,
) -> Result<(), String> {
    let api = broker.api_url();
    let entities: Vec<Value> = (0..types)
        .map(|t| json!({ "id": entity_id(t), "type": format!("Sensor{t}"), "sentAt": 0, "n": 0 }))
        .collect();
    for chunk in entities.chunks(CREATE_BATCH) {
        let response = bench
            .client
            .post(format!("{api}/entityOperations/upsert"))
            .header("Content-Type", "application/json")
            .body(Value::Array(chunk.to_vec()).to_string())
            .send()
            .await
            .map_err(|err| format!("creating entities: {err}"))?;
        if !response.status().is_success() {
            return Err(format!("creating entities: status {}", response.status()));
        }
    }
    if let Some(receiver) = receiver {
        for t in 0..types {
            let subscription = json!({
                "type": "Subscription",
                "entities": [{ "type": format!("Sensor{t}") }],
                "watchedAttributes": ["sentAt"],
                "notification": { "format": "keyValues", "endpoint": { "uri": receiver.url } }
            });
            let response = bench
                .client
                .post(format!("{api}/subscriptions"))
                .header("Content-Type", "application/json")
                .body(subscription.to_string())
                .send()
                .await
                .map_err(|err| format!("subscribing: {err}"))?;
            if response.status().as_u16() != 201 {
                return Err(format!("subscribing: status {}", response.status()));
            }
        }
    }
    ingest(bench, broker, types, warm_up_count(updates)).await;
    Ok(())
}

fn entity_id(t: usize) -> String {
    format!("urn:ngsi-ld:Sensor{t}:bench")
}

/// `updates` PATCH /attrs round-robin over the entities; each body carries
/// its send time, taken when the request is built (just before it is sent).
async fn ingest(
    bench: &BenchContext,
    broker: &BrokerProcess,
    types: usize,
    updates: usize,
) -> LoadResult {
    let api = broker.api_url();
    let urls: Arc<Vec<String>> = Arc::new(
        (0..types)
            .map(|t| format!("{api}/entities/{}/attrs", entity_id(t)))
            .collect(),
    );
    bench
        .load(
            updates,
            &[204],
            Arc::new(move |client, index| {
                client
                    .patch(&urls[index % urls.len()])
                    .header("Content-Type", "application/json")
                    .body(json!({ "sentAt": now_micros(), "n": index }).to_string())
            }),
        )
        .await
}
