//! Durability: what the broker acknowledged survives `kill -9` and a restart on the same
//! data directory. Each test runs a broker of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn everything_written_survives_kill_9_and_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = TestServer::start_in(dir.path(), &[]);
    let api = server.api();
    let tenant = api.tenant.clone();
    let default = server.api_default_tenant();

    // Entities of every kind, through every write path.
    let ids: Vec<String> = (0..5).map(|_| uid("WaterObserved")).collect();
    api.json_linked(
        Method::POST,
        "/entities",
        &json!({
            "id": ids[0],
            "type": "WaterObserved",
            "flow": { "type": "Property", "value": 12, "unitCode": "G51", "observedAt": "2024-01-01T00:00:00Z" },
            "refDevice": { "type": "Relationship", "object": "urn:ngsi-ld:Device:d1" },
            "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [7.19, 43.66] } },
            "name": { "type": "LanguageProperty", "languageMap": { "en": "Var", "fr": "Var" } },
            "speed": [
                { "type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:ds:a" },
                { "type": "Property", "value": 2 }
            ]
        }),
        SDM_ENVIRONMENT,
    )
    .await
    .expect(201);
    api.post(
        "/entityOperations/create",
        &json!([
            { "id": ids[1], "type": "Car", "speed": 1 },
            { "id": ids[2], "type": "Car", "speed": 2 },
            { "id": ids[3], "type": "Car", "speed": 3 }
        ]),
    )
    .await
    .expect(201);
    api.patch(
        &format!("/entities/{}/attrs", ids[1]),
        &json!({ "speed": 10 }),
    )
    .await
    .expect(204);
    api.post(
        &format!("/entities/{}/attrs", ids[2]),
        &json!({ "color": "red" }),
    )
    .await
    .expect(204);
    api.delete(&ent(&ids[3])).await.expect(204);
    api.create(&json!({ "id": ids[4], "type": "Bike", "scope": "/a/b", "gears": 21 }))
        .await;
    default
        .create(&json!({ "id": ids[0], "type": "InDefaultTenant" }))
        .await;
    // A hosted context.
    let r = api
        .post(
            "/jsonldContexts",
            &json!({ "@context": { "Boat": "https://example.org/Boat" } }),
        )
        .await;
    r.expect(201);
    let ctx_path = r
        .header("location")
        .expect("Location")
        .split("/ngsi-ld/v1")
        .nth(1)
        .expect("a /ngsi-ld/v1 URL")
        .to_string();

    let mut before = Vec::new();
    for id in &ids {
        let r = api.get(&format!("{}?options=sysAttrs", ent(id))).await;
        before.push((r.status, r.text.clone()));
    }
    let before_default = default.entity_q(&ids[0], "?options=sysAttrs").await;

    server.kill9();
    server.restart();
    let api = Api::new(&server.base_url, tenant);
    let default = server.api_default_tenant();

    for (id, (status, text)) in ids.iter().zip(&before) {
        let r = api.get(&format!("{}?options=sysAttrs", ent(id))).await;
        assert_eq!(r.status, *status, "{id} after restart: {}", r.text);
        if *status == 200 {
            assert_eq!(
                r.json(),
                serde_json::from_str::<Value>(text).expect("json"),
                "{id} reads back identically after kill -9"
            );
        }
    }
    assert_eq!(api.entity(&ids[1]).await["speed"]["value"], json!(10));
    assert_eq!(api.entity(&ids[2]).await["color"]["value"], json!("red"));
    assert_problem(&api.get(&ent(&ids[3])).await, 404, "ResourceNotFound");
    assert_eq!(
        default.entity_q(&ids[0], "?options=sysAttrs").await,
        before_default
    );
    let cars = api.get("/entities?type=Car&count=true").await;
    assert_eq!(
        cars.expect(200).header("NGSILD-Results-Count").as_deref(),
        Some("2")
    );
    // Indexes survive too: query by the expanded type and by attribute.
    let r = api
        .get_with(
            "/entities?type=WaterObserved",
            &[("Link", &link(SDM_ENVIRONMENT))],
        )
        .await;
    assert_eq!(r.expect(200).json().as_array().map(Vec::len), Some(1));
    // The hosted context survives and is still served.
    let r = api.get(&ctx_path).await;
    assert_eq!(
        r.expect(200).json(),
        json!({ "@context": { "Boat": "https://example.org/Boat" } })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_concurrent_creates_survive_kill_9() {
    const N: usize = 200;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = TestServer::start_in(dir.path(), &[]);
    let api = server.api();
    let tenant = api.tenant.clone();

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..N {
        let api = api.clone();
        let acked = acked.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("urn:ngsi-ld:Load:{i:04}");
            let body = json!({
                "id": id,
                "type": "Load",
                "n": { "type": "Property", "value": i },
                "payload": { "type": "Property", "value": "x".repeat(200) }
            });
            let r = api
                .req(Method::POST, "/entities")
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await;
            if let Ok(r) = r {
                if r.status().as_u16() == 201 {
                    acked.lock().expect("lock").push(id);
                }
            }
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    // Kill the broker while writes are still in flight: after half are acknowledged
    // (or, on a slow machine, when all are done).
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("lock").len() < N / 2
        && done.load(Ordering::SeqCst) < N
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let at_kill = (
        acked.lock().expect("lock").len(),
        done.load(Ordering::SeqCst),
    );
    server.kill9();
    eprintln!(
        "kill -9 with {} of {N} acknowledged, {} finished",
        at_kill.0, at_kill.1
    );
    for t in tasks {
        t.await.expect("task");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= N / 2,
        "only {} of {N} creates were acknowledged before the kill",
        acked.len()
    );

    server.restart();
    let api = Api::new(&server.base_url, tenant);
    for id in &acked {
        let r = api.get(&ent(id)).await;
        assert_eq!(
            r.status, 200,
            "acknowledged {id} lost after kill -9: {}",
            r.text
        );
        let e = r.json();
        let i: usize = id
            .rsplit(':')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("index");
        assert_eq!(e["n"]["value"], json!(i), "{id} is complete");
        assert_eq!(e["payload"]["value"].as_str().map(str::len), Some(200));
    }
    let r = api.get("/entities?type=Load&count=true&limit=0").await;
    let count: usize = r
        .expect(200)
        .header("NGSILD-Results-Count")
        .and_then(|c| c.parse().ok())
        .expect("count header");
    assert!(
        count >= acked.len() && count <= N,
        "count {count}, acked {}",
        acked.len()
    );
    // Everything that is there is whole.
    let all = api
        .get("/entities?type=Load&limit=1000")
        .await
        .expect(200)
        .json();
    for e in all.as_array().expect("array") {
        assert!(
            e["n"]["value"].is_number() && e["payload"]["value"].is_string(),
            "{e}"
        );
    }
    // The broker takes writes again.
    api.create(&json!({ "id": uid("Load"), "type": "Load" }))
        .await;
}

#[tokio::test]
async fn writes_after_a_restart_survive_the_next_kill_9() {
    // Two kill -9 + restart cycles on the same data directory.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = TestServer::start_in(dir.path(), &[]);
    let api = server.api();
    let tenant = api.tenant.clone();
    let id = uid("Thing");
    api.create(&json!({ "id": id, "type": "Thing", "v": 1 }))
        .await;
    server.restart();
    let api = Api::new(&server.base_url, tenant.clone());
    api.patch(&format!("/entities/{id}/attrs"), &json!({ "v": 2 }))
        .await
        .expect(204);
    server.restart();
    let api = Api::new(&server.base_url, tenant);
    assert_eq!(api.entity(&id).await["v"]["value"], json!(2));
}

/// A clean stop (SIGTERM) folds SQLite's write-ahead log back into the database file:
/// the data directory holds what was stored, and the next start has no log to replay.
#[tokio::test]
async fn a_clean_stop_leaves_the_write_ahead_log_empty() {
    if crate::POSTGRES {
        return; // PostgreSQL manages its own log.
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = TestServer::start_in(dir.path(), &[]);
    let api = server.api();
    let ids: Vec<String> = (0..50).map(|_| uid("WaterObserved")).collect();
    for id in &ids {
        api.create(&json!({ "id": id, "type": "WaterObserved", "flow": { "type": "Property", "value": 1 } }))
            .await;
    }
    let wal = dir.path().join("calanque.db-wal");
    let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(wal_size() > 0, "the writes went to the log first");
    let status = server.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "a clean exit: {}",
        server.log()
    );
    assert_eq!(wal_size(), 0, "the log is folded back at a clean stop");

    server.restart();
    let api = Api::new(&server.base_url, api.tenant.clone());
    for id in &ids {
        api.get(&format!("/entities/{id}")).await.expect(200);
    }
}
