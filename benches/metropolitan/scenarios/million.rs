//! One million entities: a fresh broker is filled with 1,000,000 territory
//! entities by batch upsert, then its memory, disk and start-up time on that
//! store are measured (issue 2's RSS < 150 MB and start-up < 2 s). Takes
//! minutes, so it runs only with `--million` or `--scenarios million`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use super::batch_upsert::{upsert_batch, BATCH_SIZE};
use super::{serialize, with_context_link, Scenario};
use crate::bench_context::{start_broker, BenchContext};
use crate::figures::{Figure, Target, MB};
use crate::load_driver::{drive, LoadPlan};
use crate::seeded_rng::SeededRng;
use crate::workload::Workload;

pub struct Million;

const ENTITIES: u64 = 1_000_000;
const MILLION_PREFIX: &str = "AMP-M";
/// Filling takes minutes; the usual per-run time cap would cut it short.
const FILL_TIME_CAP: Duration = Duration::from_secs(1800);
const WARM_UP_READS: usize = 2000;

impl Scenario for Million {
    fn key(&self) -> &'static str {
        "million"
    }

    fn summary(&self) -> &'static str {
        "fresh broker filled with 1,000,000 entities by upsert: RSS, disk, start-up on that store (long)"
    }

    fn runs_by_default(&self) -> bool {
        false
    }

    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>> {
        Box::pin(run(bench))
    }
}

async fn run(bench: &mut BenchContext) -> Vec<Figure> {
    let data_dir = bench.work_dir().join("million-store");
    let broker = start_broker(&data_dir, bench.work_dir()).await;
    let workload = Arc::new(Workload::with_at_least(
        bench.options.seed,
        ENTITIES,
        MILLION_PREFIX,
    ));
    let url = format!("{}/entityOperations/upsert", broker.api_url());
    let batches = ENTITIES.div_ceil(BATCH_SIZE) as usize;
    let plan = LoadPlan {
        requests: batches,
        concurrency: bench.options.concurrency(),
        time_cap: FILL_TIME_CAP,
        show_progress: true,
    };
    // Bodies are built when each batch is sent (outside its latency): all
    // of them at once would take a gigabyte in the bench process.
    let batch_workload = Arc::clone(&workload);
    let link = bench.options.context_link();
    let fill = drive(
        &bench.client,
        plan,
        &[201, 204],
        Arc::new(move |client, index| {
            let request = client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(serialize(&upsert_batch(&batch_workload, index as u64)));
            with_context_link(request, link)
        }),
    )
    .await;
    let mut figures = vec![Figure::from_load(
        "million.fill",
        "Filling 1M entities by batch upsert",
        "entities/s",
        BATCH_SIZE as usize,
        &fill,
    )];
    if fill.succeeded < batches {
        figures.push(Figure::not_available(
            "million.rss",
            "Broker RSS at 1M entities",
            "MB",
            format!("only {} of {batches} batches stored", fill.succeeded),
        ));
        return figures;
    }

    // Read a sample so that memory reflects a broker that serves, not one
    // that only ingested.
    let mut order = SeededRng::new(bench.options.seed ^ 4);
    let api = broker.api_url();
    let urls: Arc<Vec<String>> = Arc::new(
        (0..WARM_UP_READS)
            .map(|_| {
                format!(
                    "{api}/entities/{}",
                    workload.entity_id(order.below(ENTITIES))
                )
            })
            .collect(),
    );
    let reads = Arc::clone(&urls);
    drive(
        &bench.client,
        bench.plan(WARM_UP_READS),
        &[200],
        Arc::new(move |client, index| with_context_link(client.get(&reads[index]), link)),
    )
    .await;

    if let Some((current, peak)) = broker.resident_memory() {
        figures.push(
            Figure::measured(
                "million.rss",
                "Broker RSS at 1M entities",
                current as f64 / MB,
                "MB",
            )
            .with_target(Target::AtMost { at_most: 150.0 }),
        );
        figures.push(Figure::measured(
            "million.rss_peak",
            "Broker peak RSS while filling 1M (VmHWM)",
            peak as f64 / MB,
            "MB",
        ));
    }
    figures.push(Figure::measured(
        "million.disk",
        "Data directory at 1M entities",
        broker.disk_usage() as f64 / MB,
        "MB",
    ));

    let restarted = broker.restart().await;
    figures.push(
        Figure::measured(
            "million.startup",
            "Start-up on the 1M-entity store",
            restarted.startup_time.as_secs_f64(),
            "s",
        )
        .with_target(Target::AtMost { at_most: 2.0 }),
    );
    if let Some((current, _)) = restarted.resident_memory() {
        figures.push(
            Figure::measured(
                "million.rss_restarted",
                "Broker RSS after restart on 1M entities",
                current as f64 / MB,
                "MB",
            )
            .with_target(Target::AtMost { at_most: 150.0 }),
        );
    }
    figures
}
