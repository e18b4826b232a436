//! Smart Data Model validation (issue 9): entities of the bundled models checked against
//! their JSON Schemas per tenant and type, in off, warn and enforce mode.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn water(id: &str, flow: Value) -> Value {
    json!({
        "id": id,
        "type": "WaterObserved",
        "dateObserved": "2024-03-17T08:45:00Z",
        "flow": flow,
        "height": 3.52,
        "location": { "type": "Point", "coordinates": [7.19, 43.66] },
        "refDevice": "urn:ngsi-ld:Device:water-1",
        "@context": SDM_ENVIRONMENT
    })
}

fn noise(id: &str, laeq: Value) -> Value {
    json!({
        "id": id,
        "type": "NoiseLevelObserved",
        "LAeq": laeq,
        "dateObservedFrom": "2024-03-17T08:00:00Z",
        "dateObservedTo": "2024-03-17T09:00:00Z",
        "location": { "type": "Point", "coordinates": [-2.698, 42.8491] },
        "@context": SDM_ENVIRONMENT
    })
}

async fn set_policy(api: &Api, model: &str, mode: &str) -> Resp {
    let id = format!("urn:ngsi-ld:ValidationPolicy:{model}");
    let policy = json!({
        "id": id, "type": "ValidationPolicy",
        "entityType": model, "validationMode": mode
    });
    api.post("/entityOperations/upsert", &json!([policy])).await
}

/// The value of one sample of /metrics (0 if absent).
pub async fn metric(server_url: &str, sample: &str) -> f64 {
    let text = client()
        .get(format!("{server_url}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn enforce_refuses_bad_entities_on_every_write_path() {
    let api = api();
    set_policy(&api, "WaterObserved", "enforce")
        .await
        .expect(201);

    let good = uid("WaterObserved");
    api.post_ld("/entities", &water(&good, json!(12)))
        .await
        .expect(201);

    // A negative flow breaks the schema's minimum: 400 naming the path and the rule.
    let bad = uid("WaterObserved");
    let r = api.post_ld("/entities", &water(&bad, json!(-3))).await;
    let p = assert_problem(&r, 400, "BadRequestData");
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("/flow"), "{detail}");
    assert!(detail.contains("minimum"), "{detail}");
    api.get(&format!("/entities/{bad}")).await.expect(404);

    // A required attribute missing.
    let mut missing = water(&uid("WaterObserved"), json!(1));
    missing.as_object_mut().map(|o| o.remove("dateObserved"));
    let r = api.post_ld("/entities", &missing).await;
    let p = assert_problem(&r, 400, "BadRequestData");
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("dateObserved"),
        "{p}"
    );

    // Updates are checked on the entity after the change; the stored one is untouched.
    let ctx = link(SDM_ENVIRONMENT);
    let patch = |body: Value, path: String| {
        let api = api.clone();
        let ctx = ctx.clone();
        async move {
            api.send(
                api.req(Method::PATCH, &path)
                    .header("Link", ctx)
                    .header("Content-Type", "application/json")
                    .body(body.to_string()),
            )
            .await
        }
    };
    let r = patch(json!({ "flow": -1 }), format!("/entities/{good}/attrs")).await;
    assert_problem(&r, 400, "BadRequestData");
    let r = patch(json!({ "flow": -1 }), format!("/entities/{good}")).await;
    assert_problem(&r, 400, "BadRequestData");
    let r = patch(json!({ "flow": 20 }), format!("/entities/{good}")).await;
    r.expect(204);
    let e = api.entity_q(&good, "?options=keyValues").await;
    assert_eq!(e[format!("{SDM_ENV_PREFIX}flow")], json!(20), "{e}");

    // Batch: each entity on its own.
    let (ok, ko) = (uid("WaterObserved"), uid("WaterObserved"));
    let r = api
        .post_ld(
            "/entityOperations/create",
            &json!([water(&ok, json!(1)), water(&ko, json!(-1))]),
        )
        .await;
    r.expect(207);
    let body = r.json();
    assert_eq!(body["success"], json!([ok]), "{body}");
    assert_eq!(body["errors"][0]["entityId"], json!(ko), "{body}");
    assert_problem_value(&body["errors"][0]["error"], "BadRequestData");

    // Another tenant has no policy: the same bad entity is accepted there.
    let other = crate::common::api();
    other
        .post_ld("/entities", &water(&bad, json!(-3)))
        .await
        .expect(201);
}

#[tokio::test]
async fn warn_accepts_counts_and_off_ignores() {
    let api = api();
    let url = shared().base_url.clone();
    let sample = "calanque_validation_failures_total{type=\"NoiseLevelObserved\",mode=\"warn\"}";
    set_policy(&api, "NoiseLevelObserved", "warn")
        .await
        .expect(201);
    let before = metric(&url, sample).await;
    let id = uid("NoiseLevelObserved");
    api.post_ld("/entities", &noise(&id, json!("loud")))
        .await
        .expect(201);
    api.get(&format!("/entities/{id}")).await.expect(200);
    assert!(metric(&url, sample).await >= before + 1.0);

    // A good one is not counted as a failure... (it cannot lower the counter either)
    api.post_ld("/entities", &noise(&uid("NoiseLevelObserved"), json!(67.8)))
        .await
        .expect(201);

    // Enforce now refuses the same entity; off accepts it again.
    set_policy(&api, "NoiseLevelObserved", "enforce")
        .await
        .expect(204);
    let r = api
        .post_ld(
            "/entities",
            &noise(&uid("NoiseLevelObserved"), json!("loud")),
        )
        .await;
    assert_problem(&r, 400, "BadRequestData");
    set_policy(&api, "NoiseLevelObserved", "off")
        .await
        .expect(204);
    api.post_ld(
        "/entities",
        &noise(&uid("NoiseLevelObserved"), json!("loud")),
    )
    .await
    .expect(201);

    // Deleting the policy goes back to the default (off).
    set_policy(&api, "NoiseLevelObserved", "enforce")
        .await
        .expect(204);
    api.delete("/entities/urn:ngsi-ld:ValidationPolicy:NoiseLevelObserved")
        .await
        .expect(204);
    api.post_ld(
        "/entities",
        &noise(&uid("NoiseLevelObserved"), json!("loud")),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn bad_policies_are_refused() {
    let api = api();
    let r = set_policy(&api, "WaterObserved", "strict").await;
    assert_eq!(r.status, 207, "{}", r.text);
    let r = api
        .post(
            "/entities",
            &json!({ "id": "urn:ngsi-ld:ValidationPolicy:x", "type": "ValidationPolicy",
                     "entityType": "NoSuchModel", "validationMode": "warn" }),
        )
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = api
        .post(
            "/entities",
            &json!({ "id": "urn:ngsi-ld:ValidationPolicy:y", "type": "ValidationPolicy",
                     "entityType": "WaterObserved" }),
        )
        .await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test]
async fn the_default_flag_and_policies_survive_a_restart() {
    let mut server = TestServer::start(&["--validation-default", "enforce"]);
    let api = server.api();
    // No policy: the default (enforce) applies, also to entities written without the
    // model's @context (names in the default vocabulary).
    let r = api
        .post_ld("/entities", &water(&uid("WaterObserved"), json!(-3)))
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let mut plain = water(&uid("WaterObserved"), json!(-3));
    plain.as_object_mut().map(|o| o.remove("@context"));
    let r = api.post("/entities", &plain).await;
    assert_problem(&r, 400, "BadRequestData");
    api.post_ld("/entities", &water(&uid("WaterObserved"), json!(3)))
        .await
        .expect(201);

    // A policy lifts it for one type, and is still there after a restart.
    set_policy(&api, "WaterObserved", "off").await.expect(201);
    server.restart();
    let api = Api::new(&server.base_url, api.tenant.clone());
    api.post_ld("/entities", &water(&uid("WaterObserved"), json!(-3)))
        .await
        .expect(201);
    let r = api
        .post_ld("/entities", &noise(&uid("NoiseLevelObserved"), json!("x")))
        .await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test]
async fn temporal_create_is_checked_on_its_latest_state() {
    let api = api();
    set_policy(&api, "WaterObserved", "enforce")
        .await
        .expect(201);
    let history = |id: &str, last_flow: f64| {
        json!({
            "id": id, "type": "WaterObserved",
            "dateObserved": "2024-03-17T08:45:00Z",
            "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [7.19, 43.66] } },
            "flow": [
                { "type": "Property", "value": 5, "observedAt": "2024-03-17T08:00:00Z" },
                { "type": "Property", "value": last_flow, "observedAt": "2024-03-17T09:00:00Z" }
            ],
            "@context": SDM_ENVIRONMENT
        })
    };
    api.post_ld("/temporal/entities", &history(&uid("WaterObserved"), 7.0))
        .await
        .expect(201);
    let r = api
        .post_ld("/temporal/entities", &history(&uid("WaterObserved"), -7.0))
        .await;
    let p = assert_problem(&r, 400, "BadRequestData");
    assert!(
        p["detail"].as_str().unwrap_or_default().contains("/flow"),
        "{p}"
    );
}
