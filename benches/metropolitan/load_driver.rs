//! The load driver: sends a bounded number of requests with a fixed number of
//! concurrent workers, stopping early at a time cap, and records the status
//! and latency of each.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, RequestBuilder};

use crate::latency::LatencySummary;

/// How much load to send.
#[derive(Debug, Clone, Copy)]
pub struct LoadPlan {
    /// Requests to send at most.
    pub requests: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// No new request is started after this long.
    pub time_cap: Duration,
    /// Print a line on stderr at each tenth of the requests (long runs).
    pub show_progress: bool,
}

/// Builds request number `index` (0-based, below `LoadPlan::requests`).
/// Bodies should be prepared before the run so that building them does not
/// count as latency nor compete with the broker for the CPU.
pub type RequestFactory = dyn Fn(&Client, usize) -> RequestBuilder + Send + Sync;

#[derive(Debug)]
pub struct LoadResult {
    /// Requests answered with an expected status.
    pub succeeded: usize,
    /// Requests answered with another status or not answered at all.
    pub failed: usize,
    /// Answers per status code (0 for transport errors).
    pub statuses: BTreeMap<u16, usize>,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    /// Latencies of the succeeded requests.
    pub latency: Option<LatencySummary>,
    pub stopped_by_time_cap: bool,
    /// Status and start of the body of the first failure, to explain it.
    pub first_failure: Option<String>,
}

impl LoadResult {
    pub fn succeeded_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.succeeded as f64 / seconds
        } else {
            0.0
        }
    }

    /// True when nothing succeeded and every answer says the endpoint does
    /// not exist (yet): the scenario is reported as not available.
    pub fn endpoint_missing(&self) -> bool {
        self.succeeded == 0
            && !self.statuses.is_empty()
            && self
                .statuses
                .keys()
                .all(|status| matches!(status, 404 | 405 | 501))
    }
}

/// After this many failures without a single success, the endpoint is
/// considered broken or missing and the run stops instead of hammering it.
const FAILURES_BEFORE_GIVING_UP: usize = 50;

#[derive(Default)]
struct WorkerRecord {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, usize>,
    failed: usize,
}

pub async fn drive(
    client: &Client,
    plan: LoadPlan,
    expected_statuses: &'static [u16],
    factory: Arc<RequestFactory>,
) -> LoadResult {
    let next_index = Arc::new(AtomicUsize::new(0));
    let successes = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let first_failure = Arc::new(Mutex::new(None::<String>));
    let time_capped = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + plan.time_cap;

    let workers: Vec<_> = (0..plan.concurrency.max(1))
        .map(|_| {
            let client = client.clone();
            let factory = Arc::clone(&factory);
            let next_index = Arc::clone(&next_index);
            let successes = Arc::clone(&successes);
            let failures = Arc::clone(&failures);
            let first_failure = Arc::clone(&first_failure);
            let time_capped = Arc::clone(&time_capped);
            tokio::spawn(async move {
                let mut record = WorkerRecord::default();
                loop {
                    let index = next_index.fetch_add(1, Ordering::Relaxed);
                    let giving_up = successes.load(Ordering::Relaxed) == 0
                        && failures.load(Ordering::Relaxed) >= FAILURES_BEFORE_GIVING_UP;
                    if index >= plan.requests || giving_up {
                        break;
                    }
                    if Instant::now() >= deadline {
                        time_capped.store(true, Ordering::Relaxed);
                        break;
                    }
                    let request = factory(&client, index);
                    let sent = Instant::now();
                    let outcome = match request.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            // Reading the whole body is part of the request's
                            // cost and lets the connection be reused.
                            let body = response.bytes().await;
                            (status, body.map_err(|err| err.to_string()))
                        }
                        Err(err) => (0, Err(err.to_string())),
                    };
                    let latency = sent.elapsed();
                    if plan.show_progress {
                        report_progress(index, plan.requests, started);
                    }
                    let (status, body) = outcome;
                    *record.statuses.entry(status).or_default() += 1;
                    if body.is_ok() && expected_statuses.contains(&status) {
                        successes.fetch_add(1, Ordering::Relaxed);
                        record.latencies.push(latency);
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                        record.failed += 1;
                        let mut first = first_failure.lock().expect("failure note lock poisoned");
                        if first.is_none() {
                            let detail = match body {
                                Ok(bytes) => {
                                    String::from_utf8_lossy(&bytes).chars().take(300).collect()
                                }
                                Err(err) => err,
                            };
                            *first = Some(format!("status {status}: {detail}"));
                        }
                    }
                }
                record
            })
        })
        .collect();

    let mut latencies = Vec::new();
    let mut statuses = BTreeMap::new();
    let mut failed = 0;
    for worker in workers {
        let record = worker.await.expect("a load worker panicked");
        latencies.extend(record.latencies);
        failed += record.failed;
        for (status, count) in record.statuses {
            *statuses.entry(status).or_default() += count;
        }
    }
    let elapsed = started.elapsed();
    let first_failure = first_failure
        .lock()
        .expect("failure note lock poisoned")
        .take();
    LoadResult {
        succeeded: latencies.len(),
        failed,
        statuses,
        elapsed,
        stopped_by_time_cap: time_capped.load(Ordering::Relaxed),
        latency: LatencySummary::from_samples(latencies),
        first_failure,
    }
}

fn report_progress(index: usize, requests: usize, started: Instant) {
    let tenth = (requests / 10).max(1);
    if (index + 1) % tenth == 0 {
        eprintln!(
            "  {}% of {requests} requests after {:.0} s",
            (index + 1) * 100 / requests,
            started.elapsed().as_secs_f64()
        );
    }
}
