//! History retention (issue 4): rules per tenant and per entity type, applied by a
//! background task; the current state of entities is never touched; bad rules stop the
//! broker at start-up with a clear message.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};

use crate::common::*;

const OLD: &str = "2020-01-01T00:00:00Z";

fn recent() -> String {
    (Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Creates an entity whose `reading` has an old and a recent instance in its history.
async fn entity_with_history(api: &Api, id: &str, kind: &str) {
    api.post(
        "/entities",
        &json!({ "id": id, "type": kind,
                 "reading": { "type": "Property", "value": 1.0, "observedAt": OLD } }),
    )
    .await
    .expect(201);
    api.patch(
        &format!("{}/attrs", ent(id)),
        &json!({ "reading": { "type": "Property", "value": 2.0, "observedAt": recent() } }),
    )
    .await
    .expect(204);
}

/// The observedAt of every instance of `reading` in the entity's history.
async fn history(api: &Api, id: &str) -> Vec<String> {
    let r = api
        .get(&format!("/temporal{}?attrs=reading", ent(id)))
        .await;
    r.expect(200);
    let body = r.json();
    let instances = match &body["reading"] {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![body["reading"].clone()],
        _ => Vec::new(),
    };
    instances
        .iter()
        .filter_map(|i| i["observedAt"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn old_history_goes_by_tenant_and_type_rules() {
    let server = TestServer::start(&[
        "--retention",
        "*=P30D, kept@WaterObserved=P100Y",
        "--retention-interval-secs",
        "1",
    ]);
    let pruned = server.api().in_tenant(Some("pruned"));
    let kept = server.api().in_tenant(Some("kept"));
    let water = uid("WaterObserved");
    let noise = uid("NoiseLevelObserved");
    entity_with_history(&pruned, &water, "WaterObserved").await;
    entity_with_history(&kept, &water, "WaterObserved").await;
    entity_with_history(&kept, &noise, "NoiseLevelObserved").await;

    // Both tenants' 30-day rule eventually drops the 2020 instances.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = history(&pruned, &water).await;
        let b = history(&kept, &noise).await;
        if a.len() == 1 && b.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old history still there: {a:?} {b:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ne!(
        history(&pruned, &water).await[0],
        OLD,
        "the recent instance stays"
    );
    // The type rule of tenant "kept" keeps its WaterObserved history whole.
    let both = history(&kept, &water).await;
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both.contains(&OLD.to_string()));
    // Retention is about history: the current state is untouched.
    let current = pruned.entity(&water).await;
    assert_eq!(current["reading"]["value"], json!(2.0));
}

#[tokio::test]
async fn without_rules_history_is_kept() {
    let api = api();
    let id = uid("WaterObserved");
    entity_with_history(&api, &id, "WaterObserved").await;
    assert_eq!(history(&api, &id).await.len(), 2);
}

#[test]
fn bad_rules_stop_the_broker_at_start_up() {
    for bad in ["*=5 years", "*@=P1Y", "*=P1Y,*=P2Y"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_calanque"))
            .args(["--retention", bad, "--port", "0"])
            .output()
            .expect("run the broker");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("retention"), "{bad}: {err}");
    }
}
