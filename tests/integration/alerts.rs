//! Alert rules (issue 9): a background evaluator raises and closes `Alert` entities for
//! silent sensors and abnormal values. Each test runs a broker of its own with a short
//! evaluation period; waits count evaluation passes (from /metrics), never wall time.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;
use crate::subscriptions::Receiver;
use crate::validation::metric;

pub const ALERT_CONTEXT: &str =
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Alert/master/context.jsonld";
const WAIT: Duration = Duration::from_secs(30);

pub fn broker() -> TestServer {
    TestServer::start(&["--alert-interval-ms", "50"])
}

fn ago(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A noise sensor with its Device (refDevice) whose LAeq was observed at `observed`.
pub async fn sensor(api: &Api, laeq: f64, observed: &str) -> (String, String) {
    let (id, device) = (uid("NoiseLevelObserved"), uid("Device"));
    let r = api
        .post_ld("/entityOperations/create", &json!([
                {
                    "id": device, "type": "Device",
                    "controlledProperty": ["noiseLevel"],
                    "refDeviceModel": { "type": "Relationship", "object": "urn:ngsi-ld:DeviceModel:sonometer-1" },
                    "@context": "https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/context.jsonld"
                },
                {
                    "id": id, "type": "NoiseLevelObserved",
                    "LAeq": { "type": "Property", "value": laeq, "observedAt": observed },
                    "refDevice": { "type": "Relationship", "object": device },
                    "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [5.37, 43.29] } },
                    "@context": SDM_ENVIRONMENT
                }
            ])
            )
        .await;
    r.expect(201);
    (id, device)
}

pub async fn report(api: &Api, id: &str, laeq: f64, observed: &str) {
    api.send(
        api.req(Method::PATCH, &format!("/entities/{id}/attrs"))
            .header("Link", link(SDM_ENVIRONMENT))
            .header("Content-Type", "application/json")
            .body(
                json!({ "LAeq": { "type": "Property", "value": laeq, "observedAt": observed } })
                    .to_string(),
            ),
    )
    .await
    .expect(204);
}

pub async fn rule(api: &Api, body: Value) -> String {
    let id = uid("AlertRule");
    let mut body = body;
    body["id"] = json!(id);
    body["type"] = json!("AlertRule");
    body["entityType"] = json!("NoiseLevelObserved");
    body["ruleContext"] = json!(SDM_ENVIRONMENT);
    api.post("/entities", &body).await.expect(201);
    id
}

/// Alerts of a rule, in `status` (open/closed), with the Alert context.
pub async fn alerts(api: &Api, rule: &str, status: &str) -> Vec<Value> {
    let path = format!(
        "/entities?type=Alert&limit=1000&q=alertStatus==%22{status}%22;refRule==%22{rule}%22"
    );
    let r = api.get_with(&path, &[("Link", &link(ALERT_CONTEXT))]).await;
    r.expect(200);
    r.json().as_array().cloned().unwrap_or_default()
}

/// Waits until `n` more evaluation passes have run.
pub async fn passes(server: &TestServer, n: f64) {
    let sample = "calanque_alert_evaluations_total";
    let start = metric(&server.base_url, sample).await;
    let deadline = Instant::now() + WAIT;
    while metric(&server.base_url, sample).await < start + n {
        assert!(
            Instant::now() < deadline,
            "the evaluator did not run {n} passes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the rule has `n` alerts in `status`.
pub async fn wait_alerts(api: &Api, rule: &str, status: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = alerts(api, rule, status).await;
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} {status} alert(s) for {rule}, got {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn object(v: &Value) -> &Value {
    &v["object"]
}

#[tokio::test]
async fn a_silent_sensor_raises_one_alert_notified_and_closed_on_report() {
    let server = broker();
    let api = server.api();
    let receiver = Receiver::start().await;
    api.post_ld(
        "/subscriptions",
        &json!({
            "type": "Subscription",
            "entities": [{ "type": "Alert" }],
            "notification": { "endpoint": { "uri": receiver.url("/alerts") } },
            "@context": ALERT_CONTEXT
        }),
    )
    .await
    .expect(201);
    let (quiet, device) = sensor(&api, 60.0, &ago(120)).await;
    let (chatty, _) = sensor(&api, 60.0, &ago(0)).await;
    let rule = rule(
        &api,
        json!({ "ruleType": "communicationLoss", "watchedAttribute": "LAeq",
                "maxSilence": "PT1M", "severity": "high" }),
    )
    .await;

    // A second rule on the same sensors with a longer limit (the two share one scan).
    let patient = crate::alerts::rule(
        &api,
        json!({ "ruleType": "communicationLoss", "watchedAttribute": "LAeq", "maxSilence": "PT10M" }),
    )
    .await;
    let open = wait_alerts(&api, &rule, "open", 1).await;
    passes(&server, 3.0).await;
    assert!(
        alerts(&api, &patient, "open").await.is_empty(),
        "silent 2 min < 10 min"
    );
    let open_later = alerts(&api, &rule, "open").await;
    assert_eq!(
        open_later.len(),
        1,
        "exactly one open alert: {open_later:#?}"
    );
    let alert = &open_later[0];
    assert_eq!(alert["id"], open[0]["id"]);
    assert_eq!(alert["type"], json!("Alert"));
    assert_eq!(object(&alert["alertSource"]), &json!(quiet), "{alert}");
    assert_eq!(object(&alert["refDevice"]), &json!(device), "{alert}");
    assert_eq!(alert["severity"]["value"], json!("high"));
    assert_eq!(alert["subCategory"]["value"], json!("communicationLoss"));
    assert!(
        alert["validFrom"].is_object() && alert["dateIssued"].is_object(),
        "{alert}"
    );
    assert!(alert["validTo"].is_null(), "{alert}");
    assert!(alerts(&api, &rule, "open")
        .await
        .iter()
        .all(|a| object(&a["alertSource"]) != &json!(chatty)));

    // The subscriber is told.
    let got = receiver.wait_ok("/alerts", 1).await;
    assert_eq!(
        got[0].body["data"][0]["id"], alert["id"],
        "{:?}",
        got[0].body
    );

    // /metrics shows it.
    let silent = format!(
        "calanque_sensors_silent{{tenant=\"{}\",rule=\"{rule}\"}}",
        api.tenant.clone().unwrap_or_default()
    );
    assert_eq!(metric(&server.base_url, &silent).await, 1.0);

    // The sensor reports again: the alert is closed (same entity, validTo set).
    report(&api, &quiet, 61.0, &ago(0)).await;
    let closed = wait_alerts(&api, &rule, "closed", 1).await;
    assert_eq!(closed[0]["id"], alert["id"]);
    assert!(closed[0]["validTo"].is_object(), "{}", closed[0]);
    assert!(alerts(&api, &rule, "open").await.is_empty());
    receiver.wait_ok("/alerts", 2).await;
    let raised =
        format!("calanque_alerts_raised_total{{rule=\"{rule}\",category=\"environment\"}}");
    let closed_n =
        format!("calanque_alerts_closed_total{{rule=\"{rule}\",category=\"environment\"}}");
    assert_eq!(metric(&server.base_url, &raised).await, 1.0);
    assert_eq!(metric(&server.base_url, &closed_n).await, 1.0);

    // Its history: open, then closed.
    let id = alert["id"].as_str().unwrap_or_default();
    let r = api
        .get_with(
            &format!("/temporal/entities/{id}?attrs=alertStatus"),
            &[("Link", &link(ALERT_CONTEXT))],
        )
        .await;
    r.expect(200);
    let h = r.json();
    let values: Vec<&Value> = h["alertStatus"]
        .as_array()
        .map(|a| a.iter().map(|i| &i["value"]).collect())
        .unwrap_or_default();
    assert_eq!(values, vec![&json!("open"), &json!("closed")], "{h}");
}

#[tokio::test]
async fn a_threshold_rule_waits_for_its_duration_and_closes_on_return_to_normal() {
    let server = broker();
    let api = server.api();
    let (loud, _) = sensor(&api, 90.0, &ago(0)).await;
    let (calm, _) = sensor(&api, 60.0, &ago(0)).await;
    let soon = rule(
        &api,
        json!({ "ruleType": "abnormalValue", "condition": "LAeq>85", "minDuration": "PT0.2S" }),
    )
    .await;
    let never = rule(
        &api,
        json!({ "ruleType": "abnormalValue", "condition": "LAeq>85", "minDuration": "PT1H" }),
    )
    .await;
    let at_once = rule(
        &api,
        json!({ "ruleType": "abnormalValue", "condition": "LAeq>85" }),
    )
    .await;

    let open = wait_alerts(&api, &soon, "open", 1).await;
    let a = &open[0];
    assert_eq!(object(&a["alertSource"]), &json!(loud));
    assert_eq!(a["measuredValue"]["value"], json!(90.0));
    let from = a["validFrom"]["value"]["@value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let issued = a["dateIssued"]["value"]["@value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (from, issued) = (
        chrono::DateTime::parse_from_rfc3339(&from),
        chrono::DateTime::parse_from_rfc3339(&issued),
    );
    let held = issued.expect("dateIssued") - from.expect("validFrom");
    assert!(
        held >= chrono::Duration::milliseconds(200),
        "raised after {held}"
    );
    wait_alerts(&api, &at_once, "open", 1).await;
    passes(&server, 3.0).await;
    assert!(
        alerts(&api, &never, "open").await.is_empty(),
        "minDuration not reached"
    );
    assert_eq!(alerts(&api, &soon, "open").await.len(), 1);
    assert!(alerts(&api, &at_once, "open")
        .await
        .iter()
        .all(|a| object(&a["alertSource"]) != &json!(calm)));

    report(&api, &loud, 70.0, &ago(0)).await;
    wait_alerts(&api, &soon, "closed", 1).await;
    wait_alerts(&api, &at_once, "closed", 1).await;
    assert!(alerts(&api, &soon, "open").await.is_empty());

    // A new episode is a new alert.
    report(&api, &loud, 95.0, &ago(0)).await;
    let again = wait_alerts(&api, &at_once, "open", 1).await;
    assert_ne!(again[0]["id"], open[0]["id"]);
    assert_eq!(alerts(&api, &at_once, "closed").await.len(), 1);
}

#[tokio::test]
async fn a_restart_neither_duplicates_nor_loses_alerts() {
    let mut server = broker();
    let api = server.api();
    let (a, _) = sensor(&api, 60.0, &ago(600)).await;
    let rule = rule(&api, json!({ "ruleType": "communicationLoss", "watchedAttribute": "LAeq", "maxSilence": "PT5M" })).await;
    let before = wait_alerts(&api, &rule, "open", 1).await;
    // b falls silent just before the broker dies.
    let (b, _) = sensor(&api, 60.0, &ago(0)).await;
    report(&api, &b, 60.0, &ago(900)).await;

    server.restart();
    let api = Api::new(&server.base_url, api.tenant.clone());
    passes(&server, 3.0).await;
    let open = wait_alerts(&api, &rule, "open", 2).await;
    assert_eq!(open.len(), 2, "{open:#?}");
    let for_a: Vec<&Value> = open
        .iter()
        .filter(|x| object(&x["alertSource"]) == &json!(a))
        .collect();
    assert_eq!(for_a.len(), 1, "{open:#?}");
    assert_eq!(
        for_a[0]["id"], before[0]["id"],
        "the alert raised before the restart is kept"
    );
    assert!(open.iter().any(|x| object(&x["alertSource"]) == &json!(b)));

    // Closing works from the stored state too.
    report(&api, &a, 60.0, &ago(0)).await;
    let closed = wait_alerts(&api, &rule, "closed", 1).await;
    assert_eq!(closed[0]["id"], before[0]["id"]);
}

#[tokio::test]
async fn bad_rules_are_refused() {
    let api = api();
    for (body, why) in [
        (json!({ "ruleType": "sometimes" }), "unknown ruleType"),
        (
            json!({ "ruleType": "communicationLoss", "watchedAttribute": "LAeq" }),
            "no maxSilence",
        ),
        (
            json!({ "ruleType": "communicationLoss", "watchedAttribute": "LAeq", "maxSilence": "P1M" }),
            "months",
        ),
        (
            json!({ "ruleType": "abnormalValue", "condition": "LAeq>>" }),
            "bad q",
        ),
        (
            json!({ "ruleType": "abnormalValue", "condition": "LAeq>1", "idPattern": "(" }),
            "bad regex",
        ),
    ] {
        let mut body = body;
        body["id"] = json!(uid("AlertRule"));
        body["type"] = json!("AlertRule");
        body["entityType"] = json!("NoiseLevelObserved");
        let r = api.post("/entities", &body).await;
        assert_eq!(r.status, 400, "{why}: {}", r.text);
    }
}

#[tokio::test]
async fn metrics_are_in_prometheus_text_format() {
    let server = broker();
    let api = server.api();
    sensor(&api, 60.0, &ago(0)).await;
    let r = client()
        .get(format!("{}/metrics", server.base_url))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = r.text().await.expect("body");
    for family in [
        "calanque_http_responses_total",
        "calanque_entities_written_total",
        "calanque_validation_failures_total",
        "calanque_alerts_raised_total",
        "calanque_alerts_closed_total",
        "calanque_alerts_open",
        "calanque_sensors_silent",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    assert!(
        metric(&server.base_url, "calanque_entities_written_total").await >= 2.0,
        "{text}"
    );
    assert!(
        metric(
            &server.base_url,
            "calanque_http_responses_total{class=\"2xx\"}"
        )
        .await
            >= 1.0,
        "{text}"
    );
}
