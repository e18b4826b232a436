//! Operational endpoints and the command line.

use std::process::Command;

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn health_and_version() {
    let s = shared();
    let c = client();
    let r = c
        .get(format!("{}/health", s.base_url))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["status"], json!("ok"));
    let r = c
        .get(format!("{}/version", s.base_url))
        .send()
        .await
        .expect("GET /version");
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["version"], json!(env!("CARGO_PKG_VERSION")));
}

#[test]
fn version_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_calanque"))
        .arg("--version")
        .output()
        .expect("run calanque --version");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

#[test]
fn invalid_configuration_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_calanque"))
        .args(["--max-body-bytes", "10", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run calanque");
    assert!(!out.status.success(), "a 10-byte body cap must be refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("max-body-bytes"));
}

#[tokio::test]
async fn migrate_applies_the_schema_and_can_run_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = database_url_for(dir.path());
    for round in 0..2 {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_calanque"));
        cmd.arg("--data-dir").arg(dir.path());
        if let Some(url) = &database {
            cmd.arg("--database-url").arg(url);
        }
        let out = cmd.arg("migrate").output().expect("run calanque migrate");
        assert!(
            out.status.success(),
            "migrate (round {round}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The migrated store is usable: a broker starts on it.
    let server = TestServer::start_in(dir.path(), &[]);
    server
        .api()
        .create(&json!({ "id": uid("Thing"), "type": "Thing" }))
        .await;
}

/// The embedded store prepares writes off its writer thread and counts, in /metrics,
/// whether each preparation held or had to be made again because the entity changed.
#[tokio::test]
async fn prepared_writes_are_counted_held_or_stale() {
    if crate::POSTGRES {
        return; // a SQLite-store mechanism; PostgreSQL writes are not prepared
    }
    use crate::validation::metric;
    let server = TestServer::start(&[]);
    let api = server.api();
    let held = "calanque_writes_prepared_total{outcome=\"held\"}";
    let stale = "calanque_writes_prepared_total{outcome=\"stale\"}";
    let id = uid("Car");
    let car =
        |attr: &str| json!({ "id": id, "type": "Car", attr: { "type": "Property", "value": 1 } });
    api.post("/entities", &car("speed")).await.expect(201);
    api.patch(
        &format!("/entities/{id}/attrs"),
        &json!({ "speed": { "type": "Property", "value": 2 } }),
    )
    .await
    .expect(204);
    assert_eq!(metric(&server.base_url, held).await, 2.0);
    assert_eq!(metric(&server.base_url, stale).await, 0.0);
    // The second operation was prepared against the entity before the first changed it.
    api.post(
        "/entityOperations/upsert?options=update",
        &json!([car("colour"), car("doors")]),
    )
    .await
    .expect(204);
    assert_eq!(metric(&server.base_url, held).await, 3.0);
    assert_eq!(metric(&server.base_url, stale).await, 1.0);
    let e = api.entity(&id).await;
    assert_eq!(
        (
            e["speed"]["value"].clone(),
            e["colour"]["value"].clone(),
            e["doors"]["value"].clone()
        ),
        (json!(2), json!(1), json!(1)),
        "{e}"
    );
}
