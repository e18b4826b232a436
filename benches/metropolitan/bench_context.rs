//! State shared by the scenarios of one run: options, the HTTP client, the
//! broker process and what earlier scenarios left in the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;

use crate::broker::{broker_binary, BrokerProcess};
use crate::load_driver::{drive, LoadPlan, LoadResult, RequestFactory};
use crate::options::Options;
use crate::workload::Workload;

/// Id prefix of the territory created entity by entity (and then patched
/// and read by the later scenarios).
pub const TERRITORY_PREFIX: &str = "AMP";

pub struct BenchContext {
    pub options: Options,
    pub client: Client,
    /// Temporary directory holding the brokers' data and logs; removed at
    /// the end of the run.
    work_dir: tempfile::TempDir,
    broker: Option<BrokerProcess>,
    /// Number of entities of the `AMP` territory known to be in the store
    /// (the first ones in the workload's order).
    pub territory_in_store: u64,
}

impl BenchContext {
    pub fn new(options: Options) -> Self {
        let client = Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(options.concurrency())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("cannot build the load driver's HTTP client");
        let work_dir = tempfile::Builder::new()
            .prefix("calanque-bench-")
            .tempdir()
            .expect("cannot create the bench's temporary directory");
        Self {
            options,
            client,
            work_dir,
            broker: None,
            territory_in_store: 0,
        }
    }

    pub fn territory(&self) -> Workload {
        Workload::new(self.options.seed, self.options.scale, TERRITORY_PREFIX)
    }

    pub fn work_dir(&self) -> &Path {
        self.work_dir.path()
    }

    pub fn plan(&self, requests: usize) -> LoadPlan {
        LoadPlan {
            requests,
            concurrency: self.options.concurrency(),
            time_cap: self.options.time_cap(),
            show_progress: false,
        }
    }

    pub async fn load(
        &self,
        requests: usize,
        expected_statuses: &'static [u16],
        factory: Arc<RequestFactory>,
    ) -> LoadResult {
        drive(
            &self.client,
            self.plan(requests),
            expected_statuses,
            factory,
        )
        .await
    }

    /// The broker of the main run, started on first use with a fresh store.
    pub async fn broker(&mut self) -> &BrokerProcess {
        if self.broker.is_none() {
            let data_dir = self.work_dir().join("main-store");
            let started = start_broker(&data_dir, self.work_dir()).await;
            self.broker = Some(started);
        }
        self.broker.as_ref().expect("the broker was just started")
    }

    /// Restarts the main broker on its store and returns the new process.
    pub async fn restart_broker(&mut self) -> &BrokerProcess {
        let running = match self.broker.take() {
            Some(broker) => broker,
            None => {
                self.broker().await;
                self.broker.take().expect("the broker was just started")
            }
        };
        self.broker = Some(running.restart().await);
        self.broker.as_ref().expect("the broker was just restarted")
    }

    /// Stops the main broker (the work directory goes with the context).
    pub fn shutdown(&mut self) {
        if let Some(mut broker) = self.broker.take() {
            broker.stop();
        }
    }
}

/// Starts a broker on its own data directory, logging under `log_dir`.
pub async fn start_broker(data_dir: &Path, log_dir: &Path) -> BrokerProcess {
    let binary: PathBuf = broker_binary();
    BrokerProcess::start(&binary, data_dir, &log_dir.join("logs")).await
}
