//! Start-up time on the populated store: stop the broker, start it again on
//! the same data directory, time until `/health` answers 200.

use futures_util::future::LocalBoxFuture;

use super::Scenario;
use crate::bench_context::BenchContext;
use crate::figures::{Figure, Target, MB};

pub struct Startup;

impl Scenario for Startup {
    fn key(&self) -> &'static str {
        "startup"
    }

    fn summary(&self) -> &'static str {
        "restart the broker on the store the run filled; time to the first 200 on /health"
    }

    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>> {
        Box::pin(run(bench))
    }
}

async fn run(bench: &mut BenchContext) -> Vec<Figure> {
    let disk = bench.broker().await.disk_usage() as f64 / MB;
    let restarted = bench.restart_broker().await;
    let mut figures = vec![Figure::measured(
        "startup",
        format!("Start-up on the run's store ({disk:.0} MB)"),
        restarted.startup_time.as_secs_f64(),
        "s",
    )
    .with_target(Target::AtMost { at_most: 2.0 })];
    if let Some((current, _)) = restarted.resident_memory() {
        figures.push(Figure::measured(
            "startup.rss",
            "Broker RSS right after restart",
            current as f64 / MB,
            "MB",
        ));
    }
    figures
}
