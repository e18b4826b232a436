//! Dump and restore (issue 8): `calanque export`/`import` and the admin API. A dump
//! imported into an empty broker exports identically, instance by instance; a bad dump
//! imports nothing; the admin API wants its token.

use std::collections::BTreeMap;
use std::process::Command;

use reqwest::Method;
use serde_json::Value;

use super::common::{database_url_for, Api, Resp, TestServer};
use super::dump_workload::{self, populate, records};

pub const TOKEN: &str = "test-admin-token-0123456789";

pub fn admin_server() -> TestServer {
    TestServer::start(&["--admin-token", TOKEN])
}

pub async fn admin(api: &Api, method: Method, path_and_query: &str, body: Option<String>) -> Resp {
    let mut r = api
        .client
        .request(method, format!("{}{path_and_query}", api.base_url))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r.header("Content-Type", "application/x-ndjson").body(b);
    }
    api.send(r).await
}

pub async fn export_all(api: &Api) -> String {
    let r = admin(api, Method::GET, "/admin/export", None).await;
    r.expect(200);
    assert!(r.content_type().starts_with("application/x-ndjson"));
    r.text
}

/// Instances keyed by (tenant, instanceId).
fn instances(recs: &[Value]) -> BTreeMap<(String, i64), Value> {
    recs.iter()
        .filter(|r| r["kind"] == "instance")
        .map(|r| {
            (
                (
                    r["tenant"].as_str().unwrap_or_default().to_string(),
                    r["instanceId"].as_i64().unwrap_or(-1),
                ),
                r.clone(),
            )
        })
        .collect()
}

fn kinds(recs: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in recs {
        *out.entry(r["kind"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    out
}

#[track_caller]
fn assert_same_content(a: &str, b: &str) {
    let (ra, rb) = (records(a), records(b));
    let (ia, ib) = (instances(&ra), instances(&rb));
    assert_eq!(ia.len(), ib.len(), "instance count");
    for (key, inst) in &ia {
        assert_eq!(Some(inst), ib.get(key), "instance {key:?} differs");
    }
    assert_eq!(kinds(&ra), kinds(&rb));
    assert_eq!(ra, rb, "the dumps differ");
}

fn cli(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_calanque"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CALANQUE_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--data-dir").arg(data_dir);
    // The store a broker on this data directory would use (PostgreSQL in that pass).
    if let Some(url) = database_url_for(data_dir) {
        cmd.arg("--database-url").arg(url);
    }
    cmd.args(args)
        .env("CALANQUE_LOG", "warn")
        .output()
        .expect("run the calanque binary")
}

#[tokio::test]
async fn round_trip_is_lossless_instance_by_instance() {
    let a = admin_server();
    let (t1, t2) = (a.api(), a.api());
    let updates = populate(&t1, 7, 4, 6).await;
    populate(&t2, 11, 2, 3).await;
    // A rename leaves its record, which travels with the dump.
    let r = t1
        .send(
            t1.raw(Method::POST, &format!("{}/admin/rename", t1.base_url))
                .bearer_auth(TOKEN)
                .header("Content-Type", "application/json")
                .body(
                    serde_json::json!({"oldId": dump_workload::station_id(3), "newId": "urn:ngsi-ld:WaterObserved:moved"})
                        .to_string(),
                ),
        )
        .await;
    r.expect(200);
    let dump = export_all(&t1).await;
    let recs = records(&dump);
    let k = kinds(&recs);
    assert_eq!(k.get("tenant"), Some(&2));
    assert_eq!(k.get("subscription"), Some(&2));
    assert_eq!(k.get("context"), Some(&2), "{k:?}");
    assert_eq!(k.get("rename"), Some(&1), "{k:?}");
    assert!(k.get("instance").copied().unwrap_or(0) > updates, "{k:?}");
    assert!(recs
        .iter()
        .any(|r| r["kind"] == "temporalEntity" && r["deletedAt"].is_string()));
    assert!(recs
        .iter()
        .any(|r| r["kind"] == "instance" && r["deletedAt"].is_string()));
    assert_eq!(recs.last().map(|r| r["kind"].clone()), Some("end".into()));

    // CLI import into an empty store, then the broker on it exports the same.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("dump.jsonl");
    std::fs::write(&file, &dump).expect("write the dump");
    let data = dir.path().join("b");
    let out = cli(
        &data,
        &["import", "--input", file.to_str().unwrap_or_default()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&data, &["export"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_content(&dump, &String::from_utf8_lossy(&out.stdout));

    let b = TestServer::start_in(&data, &["--admin-token", TOKEN]);
    let again = export_all(&b.api()).await;
    assert_same_content(&dump, &again);
    // The restored broker serves what it got: an entity, its history, its subscription.
    let b1 = t1.in_tenant(t1.tenant.as_deref());
    let b1 = Api::new(&b.base_url, b1.tenant);
    let e = b1.entity(&dump_workload::station_id(1)).await;
    assert!(e["level"]["value"].is_number(), "{e}");
    let h = b1
        .get(&format!(
            "/temporal/entities/{}?attrs=level",
            dump_workload::station_id(1)
        ))
        .await;
    h.expect(200);
    assert_eq!(h.json()["level"].as_array().map(Vec::len), Some(7));
    let subs = b1.get("/subscriptions").await;
    assert_eq!(subs.json().as_array().map(Vec::len), Some(1));

    // Importing the same dump again (HTTP this time) duplicates nothing.
    let r = admin(&b.api(), Method::POST, "/admin/import", Some(dump.clone())).await;
    r.expect(200);
    assert_eq!(
        r.json()["instances"],
        k.get("instance").copied().unwrap_or(0)
    );
    assert_same_content(&dump, &export_all(&b.api()).await);
}

#[tokio::test]
async fn http_import_into_an_empty_broker_round_trips() {
    let a = admin_server();
    let t = a.api();
    populate(&t, 3, 2, 2).await;
    let dump = export_all(&a.api()).await;
    let c = admin_server();
    let r = admin(&c.api(), Method::POST, "/admin/import", Some(dump.clone())).await;
    r.expect(200);
    assert_same_content(&dump, &export_all(&c.api()).await);
    // New history written after the import takes instance ids past the restored ones.
    let restored = instances(&records(&dump));
    let max = restored.keys().map(|k| k.1).max().unwrap_or(0);
    let c1 = Api::new(&c.base_url, t.tenant.clone());
    let id = dump_workload::station_id(0);
    c1.patch(
        &format!("/entities/{id}/attrs"),
        &serde_json::json!({"name": {"type": "Property", "value": "renamed station"}}),
    )
    .await
    .expect(204);
    let after = instances(&records(&export_all(&c.api()).await));
    let fresh: Vec<i64> = after
        .keys()
        .filter(|k| !restored.contains_key(*k))
        .map(|k| k.1)
        .collect();
    assert!(!fresh.is_empty(), "the update recorded no history");
    assert!(fresh.iter().all(|i| *i > max), "{fresh:?} vs {max}");
}

#[tokio::test]
async fn an_instance_id_held_by_another_series_is_a_conflict_and_imports_nothing() {
    let a = admin_server();
    populate(&a.api(), 5, 2, 2).await;
    let dump = export_all(&a.api()).await;
    let c = admin_server();
    admin(&c.api(), Method::POST, "/admin/import", Some(dump.clone()))
        .await
        .expect(200);
    // The same instance id, now said to belong to another attribute.
    let mut moved = false;
    let clash: Vec<String> = dump
        .lines()
        .map(|line| {
            let mut rec: Value = serde_json::from_str(line).expect("a JSON line");
            if !moved && rec["kind"] == "instance" {
                rec["attribute"] = Value::from("https://example.org/another");
                moved = true;
            }
            rec.to_string()
        })
        .collect();
    assert!(moved);
    let r = admin(
        &c.api(),
        Method::POST,
        "/admin/import",
        Some(clash.join("\n") + "\n"),
    )
    .await;
    super::common::assert_problem(&r, 409, "Conflict");
    assert_same_content(&dump, &export_all(&c.api()).await);
}

async fn expect_rejected(api: &Api, dump: String, resume: bool, line: &str) -> Value {
    let q = if resume { "?resume=true" } else { "" };
    let r = admin(api, Method::POST, &format!("/admin/import{q}"), Some(dump)).await;
    let body = super::common::assert_problem(&r, 400, "BadRequestData");
    let detail = body["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains(line), "'{detail}' should name {line}");
    body
}

#[tokio::test]
async fn bad_dumps_import_nothing_and_name_the_line() {
    let a = admin_server();
    populate(&a.api(), 5, 2, 1).await;
    let dump = export_all(&a.api()).await;
    let lines: Vec<&str> = dump.lines().collect();
    let target = admin_server();
    let empty = export_all(&target.api()).await;
    assert_eq!(records(&empty).len(), 1, "{empty}");

    // Wrong version header.
    let mut wrong = lines.clone();
    let header = lines[0].replace("\"version\":1", "\"version\":99");
    wrong[0] = &header;
    let body = expect_rejected(&target.api(), wrong.join("\n"), false, "line 1").await;
    assert!(body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("version"));
    // Truncated: the end record is missing.
    let truncated = lines[..lines.len() - 3].join("\n");
    let body = expect_rejected(&target.api(), truncated, false, "truncated").await;
    assert!(body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains(&format!("line {}", lines.len() - 3)));
    // An invalid entity in the middle.
    let mut invalid = lines.clone();
    let bad_at = lines
        .iter()
        .rposition(|l| l.contains("\"kind\":\"entity\""))
        .expect("an entity line");
    let broken = r#"{"kind":"entity","tenant":"x","entity":{"id":"not a uri","type":["T"]}}"#;
    invalid[bad_at] = broken;
    expect_rejected(
        &target.api(),
        invalid.join("\n"),
        false,
        &format!("line {}", bad_at + 1),
    )
    .await;
    // Nothing of the three was imported.
    assert_eq!(export_all(&target.api()).await.lines().count(), 2);

    // With resume, what came before the bad line stays; the same import completes
    // once the file is fixed.
    expect_rejected(
        &target.api(),
        invalid.join("\n"),
        true,
        &format!("line {}", bad_at + 1),
    )
    .await;
    let partial = records(&export_all(&target.api()).await);
    assert!(partial.iter().any(|r| r["kind"] == "entity"));
    let r = admin(
        &target.api(),
        Method::POST,
        "/admin/import?resume=true",
        Some(dump.clone()),
    )
    .await;
    r.expect(200);
    assert_same_content(&dump, &export_all(&target.api()).await);
}

#[tokio::test]
async fn cli_import_of_a_bad_file_fails_and_names_the_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, "{\"format\":\"something-else\",\"version\":1}\n").expect("write");
    let out = cli(
        &dir.path().join("d"),
        &["import", "-i", file.to_str().unwrap_or_default()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1"), "{err}");
}

#[tokio::test]
async fn the_admin_api_wants_its_token() {
    let s = admin_server();
    let api = s.api();
    let r = api
        .send(api.client.get(format!("{}/admin/export", api.base_url)))
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    assert_eq!(r.json()["type"], "urn:calanque:errors:Unauthorized");
    let r = api
        .send(
            api.client
                .get(format!("{}/admin/export", api.base_url))
                .bearer_auth("another-token-that-is-long"),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json()["type"], "urn:calanque:errors:Forbidden");
    // Off when the broker has no admin token.
    let shared = super::common::api();
    let r = admin(&shared, Method::GET, "/admin/export", None).await;
    super::common::assert_problem(&r, 404, "ResourceNotFound");
}

/// The same CLI, on the embedded SQLite store of `data_dir` whatever the pass.
fn cli_sqlite(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_calanque"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CALANQUE_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("CALANQUE_LOG", "warn")
        .output()
        .expect("run the calanque binary")
}

/// A city leaving one backend for the other: PostgreSQL → dump → SQLite → dump →
/// PostgreSQL, the same content at every step. Runs in the PostgreSQL pass (the SQLite
/// pass has no cluster to move to).
#[tokio::test]
async fn dumps_move_between_sqlite_and_postgresql() {
    if !crate::POSTGRES || crate::pg_cluster::cluster().is_none() {
        return;
    }
    let a = admin_server();
    let api = a.api();
    populate(&api, 5, 3, 4).await;
    let dump = export_all(&api).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("from-postgres.jsonl");
    std::fs::write(&file, &dump).expect("write the dump");
    let lite = dir.path().join("sqlite");
    let out = cli_sqlite(
        &lite,
        &["import", "--input", file.to_str().unwrap_or_default()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli_sqlite(&lite, &["export"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_sqlite = String::from_utf8_lossy(&out.stdout).to_string();
    assert_same_content(&dump, &from_sqlite);

    let file = dir.path().join("from-sqlite.jsonl");
    std::fs::write(&file, &from_sqlite).expect("write the dump");
    let pg = dir.path().join("postgres");
    let out = cli(
        &pg,
        &["import", "--input", file.to_str().unwrap_or_default()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&pg, &["export"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_content(&dump, &String::from_utf8_lossy(&out.stdout));
}
