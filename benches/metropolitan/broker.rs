//! Starting, watching and restarting the broker under test as a child
//! process on a free loopback port with its own data directory.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process_stats;

/// How long the broker may take to answer `/health` before the run gives up.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a graceful stop (SIGTERM) may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Instances per attribute in one temporal answer: above a year of 15-minute
/// readings (35,040), so the temporal scenario times one sensor's whole year in
/// one answer rather than a walk through 206 pages.
pub const TEMPORAL_MAX_INSTANCES: usize = 40_000;

pub struct BrokerProcess {
    binary: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Child,
    port: u16,
    /// Time from spawn to the first 200 on `/health`.
    pub startup_time: Duration,
}

/// The broker binary: `CALANQUE_BIN` if set (to bench another build), else
/// the one cargo built for this bench.
pub fn broker_binary() -> PathBuf {
    std::env::var_os("CALANQUE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_calanque")))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("cannot bind a loopback port to find a free one")
}

impl BrokerProcess {
    /// Starts the broker on `data_dir` (created if missing) and waits until
    /// it answers `/health`. Panics with the broker's log if it never does.
    pub async fn start(binary: &Path, data_dir: &Path, log_dir: &Path) -> Self {
        std::fs::create_dir_all(data_dir).expect("cannot create the broker's data directory");
        std::fs::create_dir_all(log_dir).expect("cannot create the broker's log directory");
        let port = free_port();
        let log_path = log_dir.join(format!("broker-{port}.log"));
        let log = File::create(&log_path).expect("cannot create the broker log file");
        let started = Instant::now();
        let mut command = Command::new(binary);
        // `CALANQUE_BENCH_DATABASE_URL=postgres://...` benches the PostgreSQL backend
        // (an empty database; the broker applies its migrations).
        if let Some(url) = std::env::var_os("CALANQUE_BENCH_DATABASE_URL") {
            command.env("CALANQUE_DATABASE_URL", url);
        }
        let child = command
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--temporal-max-instances")
            .arg(TEMPORAL_MAX_INSTANCES.to_string())
            .env("CALANQUE_PORT", port.to_string())
            .env("CALANQUE_DATA_DIR", data_dir)
            // Only the bench may reach it.
            .env("CALANQUE_HOST", "127.0.0.1")
            // Request logging at info level would cost the broker CPU that
            // the bench attributes to it; warnings are enough to debug.
            .env(
                "CALANQUE_LOG",
                std::env::var("CALANQUE_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cannot share the broker log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start the broker {}: {err}", binary.display()));
        let mut broker = Self {
            binary: binary.to_owned(),
            data_dir: data_dir.to_owned(),
            log_path,
            child,
            port,
            startup_time: Duration::ZERO,
        };
        broker.wait_until_healthy(started).await;
        broker.startup_time = started.elapsed();
        broker
    }

    async fn wait_until_healthy(&mut self, started: Instant) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("cannot build the health-check HTTP client");
        let url = format!("{}/health", self.base_url());
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the broker exited ({status}) before answering /health; its log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "the broker did not answer /health within {START_TIMEOUT:?}; its log:\n{}",
                    self.log_tail()
                );
            }
            // Polling every 5 ms bounds the error on the start-up time.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn api_url(&self) -> String {
        format!("{}/ngsi-ld/v1", self.base_url())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (current RSS, peak RSS) in bytes.
    pub fn resident_memory(&self) -> Option<(u64, u64)> {
        process_stats::resident_memory(self.pid())
    }

    pub fn disk_usage(&self) -> u64 {
        process_stats::directory_size(&self.data_dir)
    }

    /// Stops the broker (SIGTERM, then SIGKILL after a grace period) and
    /// starts it again on the same data directory; returns the new process,
    /// whose `startup_time` is the start-up time on the populated store.
    pub async fn restart(mut self) -> Self {
        self.stop();
        let log_dir = self
            .log_path
            .parent()
            .expect("the broker log has a parent directory")
            .to_owned();
        Self::start(&self.binary, &self.data_dir, &log_dir).await
    }

    /// Asks the broker to stop as an operator would, so the data directory is
    /// left as after a normal shutdown; falls back to SIGKILL.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let asked = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|status| status.success());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while asked && Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
