//! The broker's memory and disk after the scenarios before it.

use futures_util::future::LocalBoxFuture;

use super::Scenario;
use crate::bench_context::BenchContext;
use crate::figures::{Figure, MB};

pub struct Footprint;

impl Scenario for Footprint {
    fn key(&self) -> &'static str {
        "footprint"
    }

    fn summary(&self) -> &'static str {
        "broker RSS (current and peak, from /proc) and data directory size after the run so far"
    }

    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>> {
        Box::pin(run(bench))
    }
}

async fn run(bench: &mut BenchContext) -> Vec<Figure> {
    let broker = bench.broker().await;
    let disk = broker.disk_usage() as f64 / MB;
    let memory = broker.resident_memory();
    let mut figures = match memory {
        Some((current, peak)) => vec![
            Figure::measured(
                "footprint.rss",
                "Broker RSS after the run",
                current as f64 / MB,
                "MB",
            ),
            Figure::measured(
                "footprint.rss_peak",
                "Broker peak RSS (VmHWM)",
                peak as f64 / MB,
                "MB",
            ),
        ],
        None => vec![Figure::not_available(
            "footprint.rss",
            "Broker RSS after the run",
            "MB",
            "/proc/<pid>/status unreadable",
        )],
    };
    figures.push(Figure::measured(
        "footprint.disk",
        "Data directory size",
        disk,
        "MB",
    ));
    figures
}
