//! A minimal HTTP/1.1 notification receiver on loopback: answers 204 to every
//! POST and records, for each notified entity, the time from the update's send
//! (`sentAt`, µs since the epoch, written by the bench) to the arrival.
//!
//! Hand-written rather than actix so that its own cost stays negligible and
//! the timestamp is taken as soon as the body is read.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Largest notification body accepted; a keyValues notification of one small
/// entity is far below.
const MAX_BODY_BYTES: usize = 1 << 20;

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

pub struct Receiver {
    pub url: String,
    latencies: Arc<Mutex<Vec<Duration>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/notify", listener.local_addr()?);
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&latencies);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&recorded)));
            }
        });
        Ok(Self {
            url,
            latencies,
            task,
        })
    }

    pub fn received(&self) -> usize {
        self.latencies.lock().expect("latency lock poisoned").len()
    }

    /// Takes the latencies recorded so far, leaving none.
    pub fn take(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.latencies.lock().expect("latency lock poisoned"))
    }

    /// Waits (polling, bounded by `timeout`) until `count` notified entities
    /// have arrived; returns whether they did.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.received() < count {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One keep-alive connection: request line, headers, body, answer, again.
async fn serve(stream: TcpStream, latencies: Arc<Mutex<Vec<Duration>>>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            if let Some(value) = header.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        if length > MAX_BODY_BYTES {
            return;
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let arrived = now_micros();
        let notification: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let sent: Vec<u64> = notification["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entity| entity["sentAt"].as_u64())
            .collect();
        latencies.lock().expect("latency lock poisoned").extend(
            sent.into_iter()
                .map(|sent| Duration::from_micros(arrived.saturating_sub(sent))),
        );
        if write
            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
}
