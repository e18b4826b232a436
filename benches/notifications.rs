//! Notification benchmark (issue 5): attribute-update ingestion with no subscription and
//! with 1,000 active subscriptions, notifications/s delivered to a local receiver, and
//! write-to-receive latency (p50/p99), all on loopback.
//!
//! `cargo bench --bench notifications [-- --updates N --concurrency C --subscriptions S]`
//! Runs the broker cargo built with the bench (or `CALANQUE_BIN`).
//!
//! Workload: S entity types with one entity and one subscription each, so every update
//! matches exactly one subscription, which the index finds by type among the S. Updates
//! go round-robin over the entities, each carrying its send time, which the receiver
//! subtracts from the arrival time.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

struct Broker {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker() -> Broker {
    let bin = std::env::var("CALANQUE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_calanque").to_string());
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(&bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("CALANQUE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {bin} (build it with cargo build --release): {e}")
        });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker {
        child,
        url: format!("http://127.0.0.1:{port}/ngsi-ld/v1"),
        _dir: dir,
    }
}

/// Records, for every notification, (arrival time - send time) in µs.
async fn receiver() -> (String, Arc<Mutex<Vec<u64>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let l2 = latencies.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let latencies = l2.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end().to_ascii_lowercase();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let arrived = now_us();
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    for e in v["data"].as_array().into_iter().flatten() {
                        if let Some(sent) = e["sentAt"].as_u64() {
                            latencies
                                .lock()
                                .expect("lock")
                                .push(arrived.saturating_sub(sent));
                        }
                    }
                    if write
                        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/notify"), latencies)
}

/// Sends `updates` PATCH /attrs round-robin over `ids` with `concurrency` clients;
/// returns updates/s.
async fn ingest(
    client: &reqwest::Client,
    base: &str,
    ids: &[String],
    updates: usize,
    concurrency: usize,
) -> f64 {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, base, ids, next) =
            (client.clone(), base.to_string(), ids.to_vec(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= updates {
                    return;
                }
                let id = &ids[i % ids.len()];
                let r = client
                    .patch(format!("{base}/entities/{id}/attrs"))
                    .header("Content-Type", "application/json")
                    .body(json!({ "sentAt": now_us(), "n": i }).to_string())
                    .send()
                    .await
                    .expect("update");
                assert_eq!(r.status().as_u16(), 204, "update failed");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    updates as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let updates = arg("--updates", 20_000);
    let concurrency = arg("--concurrency", 16);
    let subs = arg("--subscriptions", 1000);
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let mut results: HashMap<&str, f64> = HashMap::new();

    // Baseline: no subscription.
    {
        let broker = start_broker();
        let ids = create_entities(&client, &broker.url, subs).await;
        ingest(&client, &broker.url, &ids, updates / 10, concurrency).await; // warm-up
        results.insert(
            "no_subs",
            ingest(&client, &broker.url, &ids, updates, concurrency).await,
        );
    }
    // With one subscription per type.
    let broker = start_broker();
    let (notify_url, latencies) = receiver().await;
    let ids = create_entities(&client, &broker.url, subs).await;
    for t in 0..subs {
        let r = client
            .post(format!("{}/subscriptions", broker.url))
            .header("Content-Type", "application/json")
            .body(
                json!({
                    "type": "Subscription",
                    "entities": [{ "type": format!("Sensor{t}") }],
                    "watchedAttributes": ["sentAt"],
                    "notification": { "format": "keyValues", "endpoint": { "uri": notify_url } }
                })
                .to_string(),
            )
            .send()
            .await
            .expect("subscribe");
        assert_eq!(r.status().as_u16(), 201, "subscription failed");
    }
    ingest(&client, &broker.url, &ids, updates / 10, concurrency).await; // warm-up
    let warm = updates / 10;
    let deadline = Instant::now() + Duration::from_secs(60);
    while latencies.lock().expect("lock").len() < warm && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.lock().expect("lock").clear();
    let started = Instant::now();
    let with_subs = ingest(&client, &broker.url, &ids, updates, concurrency).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while latencies.lock().expect("lock").len() < updates && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let delivered_in = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().expect("lock").clone();
    lat.sort_unstable();
    let no_subs = results["no_subs"];
    println!("notifications bench: {updates} updates, {concurrency} clients, {subs} subscriptions (one per type, each update matches one)");
    println!("  ingestion, no subscription        {no_subs:>10.0} updates/s");
    println!(
        "  ingestion, {subs} subscriptions   {with_subs:>10.0} updates/s  ({:.0}% of none; target >= 70%)",
        100.0 * with_subs / no_subs
    );
    println!(
        "  notifications delivered           {:>10.0} /s  ({} of {updates} received)",
        lat.len() as f64 / delivered_in,
        lat.len()
    );
    println!(
        "  write-to-receive latency          p50 {:.1} ms  p99 {:.1} ms  (target p99 < 50 ms)",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99)
    );
}

async fn create_entities(client: &reqwest::Client, base: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    let batch: Vec<Value> = (0..n)
        .map(|t| {
            let id = format!("urn:ngsi-ld:Sensor{t}:bench");
            ids.push(id.clone());
            json!({ "id": id, "type": format!("Sensor{t}"), "sentAt": 0, "n": 0 })
        })
        .collect();
    for chunk in batch.chunks(500) {
        let r = client
            .post(format!("{base}/entityOperations/upsert"))
            .header("Content-Type", "application/json")
            .body(Value::Array(chunk.to_vec()).to_string())
            .send()
            .await
            .expect("create entities");
        assert!(r.status().is_success(), "batch create failed");
    }
    ids
}
