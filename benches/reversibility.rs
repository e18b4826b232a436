//! Dump and restore throughput, and memory while doing it (issue 8).
//!
//! `cargo bench --bench reversibility [-- --scales 10,100 --readings 10]`
//!
//! For each scale, builds a store shaped like the metropolitan territory (472 sensors
//! per ×1, each a Device and the entity it observes, as in `benches/metropolitan`), with
//! `--readings` observations per observed entity written through the store (so the
//! history is real), then times `calanque export` to a file and `calanque import` of
//! that file into an empty store, as child processes whose resident memory is sampled
//! every 20 ms. Memory that stays flat while the volume grows ×10 is what streaming
//! promises; the instances/s figures are the throughput.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use calanque::ngsi::{time, Entity, Tenant};
use calanque::store::{Effect, SharedStore, WriteOp};
use clap::Parser;
use serde_json::{json, Map, Value};

const SENSORS_AT_SCALE_ONE: u64 = 472;
const TYPES: &[&str] = &[
    "WasteContainer",
    "WaterObserved",
    "NoiseLevelObserved",
    "WeatherObserved",
];
const VOCAB: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

#[derive(Parser)]
struct Args {
    /// Territory scales to run, comma-separated.
    #[arg(long, default_value = "10,100", value_delimiter = ',')]
    scales: Vec<u64>,
    /// Observations per observed entity.
    #[arg(long, default_value_t = 10)]
    readings: u64,
    /// cargo bench passes --bench.
    #[arg(long)]
    bench: bool,
}

fn attr(kind: &str, member: &str, value: Value, at: &str) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("type".into(), json!(kind));
    a.insert(member.into(), value);
    a.insert("createdAt".into(), json!(at));
    a.insert("modifiedAt".into(), json!(at));
    a
}

fn entity(id: String, t: &str, at: &str, attrs: Vec<(&str, Map<String, Value>)>) -> Entity {
    Entity {
        id,
        types: vec![format!("{VOCAB}{t}")],
        scope: None,
        created_at: at.into(),
        modified_at: at.into(),
        expires_at: None,
        attrs: attrs
            .into_iter()
            .map(|(n, a)| (format!("{VOCAB}{n}"), vec![a]))
            .collect(),
    }
}

async fn put(store: &SharedStore, tenant: &Tenant, entities: Vec<Entity>) {
    let ops = entities
        .into_iter()
        .map(|e| {
            WriteOp::new(e.id.clone(), move |_| {
                Ok(Effect::Put(e.clone(), Default::default()))
            })
        })
        .collect();
    for r in store.write(tenant, ops).await.expect("write") {
        r.expect("write one");
    }
}

/// Writes the territory; returns the number of observed entities.
async fn generate(store: &SharedStore, scale: u64, readings: u64) -> u64 {
    let tenant = Tenant::default_tenant();
    let sensors = SENSORS_AT_SCALE_ONE * scale;
    let t0 = time::parse("2026-01-01T00:00:00Z")
        .expect("a time")
        .timestamp_micros();
    let at =
        |us: i64| time::format(chrono::DateTime::from_timestamp_micros(us).unwrap_or_default());
    for chunk in (0..sensors).collect::<Vec<_>>().chunks(500) {
        let mut batch = Vec::new();
        for &i in chunk {
            let now = at(t0);
            let t = TYPES[(i % TYPES.len() as u64) as usize];
            let observed = format!("urn:ngsi-ld:{t}:obs-{i:07}");
            let device = format!("urn:ngsi-ld:Device:dev-{i:07}");
            let lon = 5.0 + (i % 800) as f64 * 0.001;
            let lat = 43.15 + (i / 800 % 500) as f64 * 0.001;
            batch.push(entity(
                device.clone(),
                "Device",
                &now,
                vec![
                    (
                        "serialNumber",
                        attr("Property", "value", json!(format!("SN-{i}")), &now),
                    ),
                    (
                        "controlledAsset",
                        attr("Relationship", "object", json!(observed), &now),
                    ),
                ],
            ));
            let mut level = attr("Property", "value", json!(1.5), &now);
            level.insert("observedAt".into(), json!(time::from_micros(t0)));
            level.insert("unitCode".into(), json!("MTR"));
            batch.push(entity(
                observed,
                t,
                &now,
                vec![
                    ("level", level),
                    (
                        "refDevice",
                        attr("Relationship", "object", json!(device), &now),
                    ),
                    (
                        "location",
                        attr(
                            "GeoProperty",
                            "value",
                            json!({"type": "Point", "coordinates": [lon, lat]}),
                            &now,
                        ),
                    ),
                ],
            ));
        }
        put(store, &tenant, batch).await;
    }
    // Readings: each a new level instance (a new modifiedAt), 500 entities per write.
    for k in 1..=readings {
        let us = t0 + k as i64 * 900_000_000;
        for chunk in (0..sensors).collect::<Vec<_>>().chunks(500) {
            let ops = chunk
                .iter()
                .map(|&i| {
                    let t = TYPES[(i % TYPES.len() as u64) as usize];
                    let id = format!("urn:ngsi-ld:{t}:obs-{i:07}");
                    let now = at(us);
                    let value = 0.5 + ((i * 7 + k * 13) % 300) as f64 / 100.0 + 0.001;
                    WriteOp::new(id, move |current| {
                        let mut e = current.expect("the entity exists");
                        let mut level = attr("Property", "value", json!(value), &now);
                        level.insert("observedAt".into(), json!(time::from_micros(us)));
                        level.insert("unitCode".into(), json!("MTR"));
                        e.attrs.insert(format!("{VOCAB}level"), vec![level]);
                        e.modified_at = now.clone();
                        Ok(Effect::Put(e, Default::default()))
                    })
                })
                .collect();
            for r in store.write(&tenant, ops).await.expect("write") {
                r.expect("write one");
            }
        }
    }
    sensors
}

/// Runs the broker binary; returns (seconds, peak resident memory in MiB).
fn run(args: &[&str]) -> (f64, f64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_calanque"))
        .args(args)
        .env("CALANQUE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run calanque");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("VmRSS:") {
                    let kb = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak_kb = peak_kb.max(kb);
                }
            }
        }
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "calanque {args:?} failed");
    (started.elapsed().as_secs_f64(), peak_kb as f64 / 1024.0)
}

fn count_instances(dump: &Path) -> (u64, u64) {
    let f = std::io::BufReader::new(std::fs::File::open(dump).expect("the dump"));
    let (mut lines, mut instances) = (0, 0);
    for line in f.lines() {
        let line = line.expect("a line");
        lines += 1;
        if line.starts_with(r#"{"kind":"instance""#) {
            instances += 1;
        }
    }
    (lines, instances)
}

fn main() {
    let args = Args::parse();
    let _ = args.bench;
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    println!("| scale | entities | instances | dump MiB | export s | export inst/s | export peak RSS MiB | import s | import inst/s | import peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for scale in args.scales {
        let dir = tempfile::tempdir().expect("a temp dir");
        let a = dir.path().join("a");
        let cli = calanque::config::Cli::parse_from([
            "calanque",
            "--data-dir",
            a.to_str().unwrap_or_default(),
        ]);
        let store = calanque::server::open_store(&cli.config).expect("the store");
        let sensors = rt.block_on(generate(&store, scale, args.readings));
        drop(store);
        let dump = dir.path().join("dump.jsonl");
        let a_arg = a.to_str().unwrap_or_default();
        let dump_arg = dump.to_str().unwrap_or_default();
        let (export_s, export_mib) = run(&["--data-dir", a_arg, "export", "-o", dump_arg]);
        let (_, instances) = count_instances(&dump);
        let size = std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
        let b = dir.path().join("b");
        let (import_s, import_mib) = run(&[
            "--data-dir",
            b.to_str().unwrap_or_default(),
            "import",
            "-i",
            dump_arg,
        ]);
        println!(
            "| ×{scale} | {} | {instances} | {size:.0} | {export_s:.1} | {:.0} | {export_mib:.0} | {import_s:.1} | {:.0} | {import_mib:.0} |",
            sensors * 2,
            instances as f64 / export_s,
            instances as f64 / import_s,
        );
    }
}
