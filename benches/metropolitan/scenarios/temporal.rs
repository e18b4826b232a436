//! Temporal (issue 4): a fresh broker is loaded with sensor history through
//! the temporal API, its on-disk size per instance is measured, the history is
//! extended by batch upserts of the next readings (each write records
//! history), then the three temporal queries are timed.
//!
//! Default: 50 sensors × 365 days (1.75 million instances, about two minutes);
//! `--temporal-year` is the 500 × 365 days (17.5 million), and takes long.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use super::temporal_history::{History, DISTRICT};
use super::{serialize, with_context_link, Scenario};
use crate::bench_context::{start_broker, BenchContext};
use crate::broker::BrokerProcess;
use crate::figures::{Figure, Target};
use crate::load_driver::{drive, LoadPlan, LoadResult};

pub struct Temporal;

/// Loading a year takes many minutes; the per-run `--time-cap` would cut it.
const LOAD_TIME_CAP: Duration = Duration::from_secs(1200);
/// Batches of the upsert ingestion: half a day of readings of every sensor
/// (also bounded by `--time-cap`).
const UPSERT_BATCHES: u64 = 48;
/// Repetitions of each query; a year of one sensor is a 3.5 MB answer.
const FULL_SPAN_READS: usize = 20;
const AGGREGATE_READS: usize = 200;
/// Issue 4's targets.
const DAILY_MEANS_P50_MS: f64 = 50.0;
const BYTES_PER_INSTANCE_MAX: f64 = 100.0;

impl Scenario for Temporal {
    fn key(&self) -> &'static str {
        "temporal"
    }

    fn summary(&self) -> &'static str {
        "fresh broker: history bulk load (POST /temporal/entities), bytes per instance, upsert ingestion, temporalValues and daily aggregates"
    }

    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>> {
        Box::pin(run(bench))
    }
}

async fn run(bench: &mut BenchContext) -> Vec<Figure> {
    let (sensors, days) = bench.options.temporal_span();
    let history = Arc::new(History::new(bench.options.seed, sensors, days));
    let data_dir = bench.work_dir().join("temporal-store");
    let broker = start_broker(&data_dir, bench.work_dir()).await;
    let disk_before = broker.disk_usage();
    let span = format!(
        "{} sensors × {days} days = {} instances",
        history.sensor_count(),
        history.instances()
    );
    eprintln!("metropolitan: temporal: loading {span}");

    let (load, loaded) = bulk_load(bench, &broker, &history).await;
    let mut figures = vec![load.with_note(span)];
    if loaded == 0 {
        return figures;
    }
    // A clean stop checkpoints the WAL, so the files hold what was stored.
    let broker = broker.restart().await;
    let grown = broker.disk_usage().saturating_sub(disk_before);
    figures.push(
        Figure::measured(
            "temporal.bytes_per_instance",
            "Temporal: on-disk bytes per instance",
            grown as f64 / loaded as f64,
            "bytes",
        )
        .with_target(Target::AtMost {
            at_most: BYTES_PER_INSTANCE_MAX,
        })
        .with_note(format!(
            "data directory grew {:.1} MB for {loaded} instances (after a clean stop)",
            grown as f64 / 1e6
        )),
    );
    figures.extend(upsert_ingestion(bench, &broker, &history).await);
    figures.extend(queries(bench, &broker, &history).await);
    figures
}

/// The history through `POST /temporal/entities`, one sensor and ten days per
/// request; returns the figure and the instances stored.
async fn bulk_load(
    bench: &BenchContext,
    broker: &BrokerProcess,
    history: &Arc<History>,
) -> (Figure, u64) {
    let url = format!("{}/temporal/entities", broker.api_url());
    let requests = history.load_requests() as usize;
    let plan = LoadPlan {
        requests,
        concurrency: bench.options.concurrency(),
        time_cap: LOAD_TIME_CAP,
        show_progress: requests >= 1000,
    };
    // Bodies are built when sent (outside the latency): a year's would take
    // gigabytes in the bench process.
    let bodies = Arc::clone(history);
    let link = bench.options.context_link();
    let result = drive(
        &bench.client,
        plan,
        &[201, 204],
        Arc::new(move |client, index| {
            let (body, _) = bodies.load_body(index as u64);
            let request = client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(serialize(&body));
            with_context_link(request, link)
        }),
    )
    .await;
    // Chunks hold the same number of instances but the last of each sensor;
    // when some failed, count the mean.
    let loaded = if result.succeeded == requests {
        history.instances()
    } else {
        history.instances() * result.succeeded as u64 / requests.max(1) as u64
    };
    let figure = per_item(
        Figure::from_load(
            "temporal.load",
            "Temporal: history bulk load (POST /temporal/entities, 10 days of a sensor per request)",
            "instances/s",
            1,
            &result,
        ),
        loaded,
        &result,
    );
    (figure, loaded)
}

/// Rates in items rather than requests when requests carry unequal counts.
fn per_item(mut figure: Figure, items: u64, result: &LoadResult) -> Figure {
    let seconds = result.elapsed.as_secs_f64();
    if figure.value.is_some() && seconds > 0.0 {
        figure.value = Some(items as f64 / seconds);
    }
    figure
}

/// The sensors' next readings by `POST /entityOperations/upsert`, one batch
/// per 15-minute step with every sensor's entity.
async fn upsert_ingestion(
    bench: &BenchContext,
    broker: &BrokerProcess,
    history: &History,
) -> Vec<Figure> {
    let url = format!("{}/entityOperations/upsert", broker.api_url());
    let mut attributes = Vec::new();
    let bodies: Vec<_> = (0..UPSERT_BATCHES)
        .map(|batch| {
            let (body, count) = history.upsert_batch(batch);
            attributes.push(count);
            serialize(&body)
        })
        .collect();
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
    // Every batch has the same entities and attribute count.
    let per_batch = attributes.first().copied().unwrap_or(0);
    let instances = per_item(
        Figure::from_load(
            "temporal.upsert_instances",
            format!(
                "Temporal: batch upsert of next readings ({} entities per request)",
                history.sensor_count()
            ),
            "instances/s",
            1,
            &result,
        ),
        per_batch * result.succeeded as u64,
        &result,
    )
    .with_target(Target::ComparedTo {
        limit: "limit.sqlite_insert",
    })
    .with_note(format!(
        "{per_batch} attributes per batch, each recording one instance"
    ));
    let entities = Figure::from_load(
        "temporal.upsert_entities",
        "Temporal: batch upsert of next readings, entities",
        "entities/s",
        history.sensor_count() as usize,
        &result,
    );
    vec![instances, entities]
}

async fn queries(bench: &BenchContext, broker: &BrokerProcess, history: &History) -> Vec<Figure> {
    let api = broker.api_url();
    let (sensor, district) = history.weather_sensors();
    let Some(sensor) = sensor else {
        return vec![Figure::not_available(
            "temporal.daily_means",
            "Temporal: daily means of one sensor",
            "req/s",
            "no WeatherObserved sensor among the stored ones",
        )];
    };
    let one = format!(
        "{api}/temporal/entities/{}?attrs=temperature",
        sensor.entity_id
    );
    let (time_at, end_time_at) = history.summer_month();
    let mut figures = vec![
        timed_get(
            bench,
            "temporal.full_span",
            format!(
                "Temporal: one sensor's {} days in temporalValues (one answer)",
                history.days
            ),
            format!("{one}&options=temporalValues"),
            FULL_SPAN_READS,
        )
        .await,
        timed_get(
            bench,
            "temporal.daily_means",
            format!(
                "Temporal: daily means (avg, P1D) of one sensor over {} days",
                history.days
            ),
            format!("{one}&options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=P1D"),
            AGGREGATE_READS,
        )
        .await
        .with_p50_target_ms(DAILY_MEANS_P50_MS),
    ];
    if district.is_empty() {
        figures.push(Figure::not_available(
            "temporal.district_max",
            "Temporal: daily max of a district's WeatherObserved",
            "req/s",
            format!("no stored WeatherObserved sensor in {DISTRICT}"),
        ));
    } else {
        figures.push(
            timed_get(
                bench,
                "temporal.district_max",
                format!(
                    "Temporal: daily max of {DISTRICT}'s {} WeatherObserved, {} to {}",
                    district.len(),
                    &time_at[..10],
                    &end_time_at[..10]
                ),
                format!(
                    "{api}/temporal/entities?type=WeatherObserved&id={}&attrs=temperature&options=aggregatedValues&aggrMethods=max&aggrPeriodDuration=P1D&timerel=between&timeAt={time_at}&endTimeAt={end_time_at}&limit=100",
                    district.join(",")
                ),
                AGGREGATE_READS,
            )
            .await
            .with_note(format!(
                "the district's sensors are selected by their ids (those the workload places around {DISTRICT})"
            )),
        );
    }
    figures
}

/// `count` sequential-in-parallel GETs of `url`, 200 expected (206 would mean
/// a cut answer).
async fn timed_get(
    bench: &BenchContext,
    key: &'static str,
    label: String,
    url: String,
    count: usize,
) -> Figure {
    let url = Arc::new(url);
    let link = bench.options.context_link();
    let result = drive(
        &bench.client,
        bench.plan(count),
        &[200],
        Arc::new(move |client, _| with_context_link(client.get(url.as_str()), link)),
    )
    .await;
    Figure::from_load(key, label, "req/s", 1, &result)
}
