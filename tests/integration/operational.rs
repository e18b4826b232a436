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
