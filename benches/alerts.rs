//! Alert evaluation benchmark (issue 9): the cost of 100 alert rules over 10,000
//! monitored sensors: broker CPU time per minute spent evaluating them (idle broker,
//! with minus without rules) and the ingestion slowdown they cause.
//!
//! `cargo bench --bench alerts [-- --sensors N --rules R --updates U --concurrency C
//!  --interval-ms I --window-s W --rounds P]`
//! Runs the broker cargo built with the bench (or `CALANQUE_BIN`), on loopback.
//!
//! Workload: N `NoiseLevelObserved` sensors in 10 districts (ids `…:D<d>-<n>`), each
//! with `LAeq` observed now (1%, in district 2, observed an hour ago: silent). Rules: half are
//! communication-loss rules (5 per district, maxSilence 10–50 min), half threshold
//! rules (`LAeq>80…95` per district, half of them with a minDuration). Readings stay
//! around 60 dB, 0.5% of sensors at 88 dB, so a few alerts are open, as in real life.
//! Ingestion: U PATCH /attrs of `LAeq` round-robin over the sensors, C clients, in P
//! adjacent pairs (without rules, then with them); the pair with the median slowdown
//! is reported, so a burst of background load does not decide the figure.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Broker {
    child: Child,
    root: String,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker(interval_ms: usize) -> Broker {
    let bin = std::env::var("CALANQUE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_calanque").to_string());
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(&bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--alert-interval-ms",
            &interval_ms.to_string(),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("CALANQUE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let root = format!("http://127.0.0.1:{port}");
    Broker {
        child,
        url: format!("{root}/ngsi-ld/v1"),
        root,
        _dir: dir,
    }
}

/// CPU time (user + system) the process has used, in seconds (Linux /proc).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 here).
    (ticks(11) + ticks(12)) / 100.0
}

const SDM_ENVIRONMENT: &str =
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld";

fn now_minus(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn sensor_id(i: usize) -> String {
    format!("urn:ngsi-ld:NoiseLevelObserved:D{}-{i:05}", i % 10)
}

/// A reading: around 60 dB, 0.5% of the sensors loud.
fn laeq(i: usize, n: usize) -> f64 {
    if i % 200 == 7 {
        88.0
    } else {
        55.0 + ((i * 7919 + n * 104_729) % 100) as f64 / 10.0
    }
}

async fn create_sensors(client: &reqwest::Client, base: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(sensor_id).collect();
    let bodies: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let observed = if i % 100 == 2 { now_minus(3600) } else { now_minus(0) };
            json!({
                "id": id, "type": "NoiseLevelObserved",
                "LAeq": { "type": "Property", "value": laeq(i, 0), "unitCode": "2N", "observedAt": observed },
                "refDevice": { "type": "Relationship", "object": format!("urn:ngsi-ld:Device:noise-{i:05}") },
                "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [5.0 + (i % 80) as f64 / 100.0, 43.2 + (i % 40) as f64 / 100.0] } },
                "dateObservedFrom": { "type": "Property", "value": observed },
                "dateObservedTo": { "type": "Property", "value": observed }
            })
        })
        .collect();
    for chunk in bodies.chunks(500) {
        let r = client
            .post(format!("{base}/entityOperations/upsert"))
            .header("Content-Type", "application/json")
            .header("Link", format!("<{SDM_ENVIRONMENT}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\""))
            .body(Value::Array(chunk.to_vec()).to_string())
            .send()
            .await
            .expect("create sensors");
        assert!(
            r.status().is_success(),
            "batch create failed: {}",
            r.status()
        );
    }
    ids
}

async fn create_rules(client: &reqwest::Client, base: &str, n: usize) {
    for r in 0..n {
        let district = r % 10;
        let mut rule = if r % 2 == 0 {
            json!({ "ruleType": "communicationLoss", "watchedAttribute": "LAeq",
                    "maxSilence": format!("PT{}M", 10 + 10 * (r / 20) % 50) })
        } else {
            let mut t = json!({ "ruleType": "abnormalValue",
                                "condition": format!("LAeq>{}", 80 + (r / 10) % 16) });
            if r % 4 == 1 {
                t["minDuration"] = json!("PT1M");
            }
            t
        };
        rule["id"] = json!(format!("urn:ngsi-ld:AlertRule:bench-{r:03}"));
        rule["type"] = json!("AlertRule");
        rule["entityType"] = json!("NoiseLevelObserved");
        rule["idPattern"] = json!(format!("^urn:ngsi-ld:NoiseLevelObserved:D{district}-"));
        rule["ruleContext"] = json!(SDM_ENVIRONMENT);
        let resp = client
            .post(format!("{base}/entities"))
            .header("Content-Type", "application/json")
            .body(rule.to_string())
            .send()
            .await
            .expect("create rule");
        assert_eq!(
            resp.status().as_u16(),
            201,
            "rule refused: {}",
            resp.text().await.unwrap_or_default()
        );
    }
}

/// Sends `updates` PATCH /attrs of LAeq round-robin; returns updates/s.
async fn ingest(
    client: &reqwest::Client,
    base: &str,
    ids: &[String],
    updates: usize,
    concurrency: usize,
    round: usize,
) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let ids = Arc::new(ids.to_vec());
    for _ in 0..concurrency {
        let (client, base, ids, next) =
            (client.clone(), base.to_string(), ids.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= updates {
                    return;
                }
                let s = i % ids.len();
                // The silent 1% stay silent.
                let s = if s % 100 == 2 { s + 1 } else { s };
                let Some(id) = ids.get(s) else { continue };
                let body = json!({ "LAeq": { "type": "Property", "value": laeq(s, round + i / ids.len()),
                                              "unitCode": "2N", "observedAt": now_minus(0) } });
                let r = client
                    .patch(format!("{base}/entities/{id}/attrs"))
                    .header("Content-Type", "application/json")
                    .header("Link", format!("<{SDM_ENVIRONMENT}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\""))
                    .body(body.to_string())
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

/// Waits until the evaluator has completed `n` more passes.
async fn wait_passes(client: &reqwest::Client, root: &str, n: usize) {
    let name = "calanque_alert_evaluations_total";
    let start = metric(client, root, name).await;
    while metric(client, root, name).await < start + n as f64 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn delete_rules(client: &reqwest::Client, base: &str) {
    let r = client
        .delete(format!("{base}/entities?type=AlertRule"))
        .send()
        .await
        .expect("delete rules");
    assert!(r.status().is_success(), "rules not deleted: {}", r.status());
}

async fn metric(client: &reqwest::Client, root: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{root}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Broker CPU seconds used over an idle window of `secs`.
async fn idle_cpu(pid: u32, secs: usize) -> f64 {
    let before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(secs as u64)).await;
    cpu_seconds(pid) - before
}

#[tokio::main]
async fn main() {
    let sensors = arg("--sensors", 10_000);
    let rules = arg("--rules", 100);
    let updates = arg("--updates", 20_000);
    let concurrency = arg("--concurrency", 8);
    let interval_ms = arg("--interval-ms", 10_000);
    let window = arg("--window-s", 30);
    let rounds = arg("--rounds", 3).max(1);
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let broker = start_broker(interval_ms);
    let pid = broker.child.id();
    let ids = create_sensors(&client, &broker.url, sensors).await;
    ingest(&client, &broker.url, &ids, updates / 10, concurrency, 1).await; // warm-up

    let idle_without = idle_cpu(pid, window).await;

    create_rules(&client, &broker.url, rules).await;
    wait_passes(&client, &broker.root, 2).await;
    let (p0, t0) = (
        metric(&client, &broker.root, "calanque_alert_evaluations_total").await,
        metric(
            &client,
            &broker.root,
            "calanque_alert_evaluation_seconds_total",
        )
        .await,
    );
    let idle_with = idle_cpu(pid, window).await;
    let (p1, t1) = (
        metric(&client, &broker.root, "calanque_alert_evaluations_total").await,
        metric(
            &client,
            &broker.root,
            "calanque_alert_evaluation_seconds_total",
        )
        .await,
    );
    let open = metric(&client, &broker.root, "calanque_alerts_open").await;
    let silent = metric(&client, &broker.root, "calanque_sensors_silent").await;
    delete_rules(&client, &broker.url).await;
    wait_passes(&client, &broker.root, 1).await;

    // Ingestion without and with rules, in adjacent pairs, so both sides of each
    // comparison see the same background load on a shared machine; the median pair
    // is reported.
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    for round in 0..rounds {
        let seed = 2 + 2 * round;
        let without = ingest(&client, &broker.url, &ids, updates, concurrency, seed).await;
        create_rules(&client, &broker.url, rules).await;
        wait_passes(&client, &broker.root, 1).await;
        let with = ingest(&client, &broker.url, &ids, updates, concurrency, seed + 1).await;
        delete_rules(&client, &broker.url).await;
        wait_passes(&client, &broker.root, 1).await;
        pairs.push((without, with));
    }
    let slowdown = |(without, with): &(f64, f64)| 100.0 * (without - with) / without;
    pairs.sort_by(|a, b| slowdown(a).total_cmp(&slowdown(b)));
    let (without, with) = pairs[pairs.len() / 2];
    let rounds_text: Vec<String> = pairs
        .iter()
        .map(|p| format!("{:.0}→{:.0} ({:+.1}%)", p.0, p.1, -slowdown(p)))
        .collect();

    let per_minute = (idle_with - idle_without).max(0.0) / window as f64 * 60.0;
    let pass_ms = if p1 > p0 {
        (t1 - t0) / (p1 - p0) * 1000.0
    } else {
        f64::NAN
    };
    println!("alerts bench: {sensors} sensors, {rules} rules, evaluation every {interval_ms} ms, {updates} updates x {concurrency} clients");
    println!("  open alerts / silent sensors at the end  {open:.0} / {silent:.0}");
    println!("  one evaluation pass (wall)                {pass_ms:>8.1} ms");
    println!(
        "  broker CPU, idle, without / with rules    {:>8.3} / {:.3} s per {window} s",
        idle_without, idle_with
    );
    println!("  CPU time spent evaluating                 {per_minute:>8.2} s per minute ({:.1}% of one core)", per_minute / 60.0 * 100.0);
    println!("  ingestion without / with rules, median of {rounds} adjacent pairs");
    println!(
        "                                            {without:>8.0} / {with:.0} updates/s ({:+.1}%; target: slowdown under 5%)",
        100.0 * (with - without) / without
    );
    println!(
        "  every pair (sorted by slowdown)           {}",
        rounds_text.join(", ")
    );
}
