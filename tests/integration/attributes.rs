//! Attribute operations: append (POST /attrs), update (PATCH /attrs), partial update
//! (PATCH /attrs/{attr}), replace (PUT /attrs/{attr}), delete (DELETE /attrs/{attr}),
//! multi-instance attributes with datasetId.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn sensor(id: &str) -> Value {
    json!({
        "id": id,
        "type": "Sensor",
        "temperature": { "type": "Property", "value": 20, "unitCode": "CEL",
                         "accuracy": { "type": "Property", "value": 0.5 } },
        "status": { "type": "Property", "value": "ok" }
    })
}

fn attrs(id: &str) -> String {
    format!("/entities/{id}/attrs")
}

fn attr(id: &str, name: &str) -> String {
    format!("/entities/{id}/attrs/{name}")
}

#[tokio::test]
async fn append_attributes_204() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let r = api
        .post(
            &attrs(&id),
            &json!({
                "humidity": { "type": "Property", "value": 60 },
                "status": { "type": "Property", "value": "degraded" }
            }),
        )
        .await;
    r.expect(204);
    let e = api.entity(&id).await;
    assert_eq!(e["humidity"]["value"], json!(60));
    assert_eq!(
        e["status"]["value"],
        json!("degraded"),
        "append overwrites by default"
    );
    assert_eq!(e["temperature"]["value"], json!(20));
}

#[tokio::test]
async fn append_with_no_overwrite_is_207_listing_not_updated() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let r = api
        .post(
            &format!("{}?options=noOverwrite", attrs(&id)),
            &json!({
                "humidity": { "type": "Property", "value": 60 },
                "status": { "type": "Property", "value": "degraded" }
            }),
        )
        .await;
    r.expect(207);
    let body = r.json();
    assert_eq!(body["updated"], json!(["humidity"]), "{body}");
    let not_updated = body["notUpdated"].as_array().expect("notUpdated array");
    assert_eq!(not_updated.len(), 1, "{body}");
    assert_eq!(not_updated[0]["attributeName"], json!("status"));
    assert!(not_updated[0]["reason"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));

    let e = api.entity(&id).await;
    assert_eq!(
        e["status"]["value"],
        json!("ok"),
        "noOverwrite kept the old value"
    );
    assert_eq!(e["humidity"]["value"], json!(60));
}

#[tokio::test]
async fn append_with_no_overwrite_all_new_is_204() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let r = api
        .post(
            &format!("{}?options=noOverwrite", attrs(&id)),
            &json!({ "humidity": { "type": "Property", "value": 60 } }),
        )
        .await;
    r.expect(204);
}

#[tokio::test]
async fn append_errors() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let r = api
        .post(
            &attrs(&uid("Sensor")),
            &json!({ "a": { "type": "Property", "value": 1 } }),
        )
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = api
        .post(&format!("{}?options=bogus", attrs(&id)), &json!({ "a": 1 }))
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = api
        .post(&attrs(&id), &json!({ "a": { "type": "Property" } }))
        .await;
    assert_problem(&r, 400, "BadRequestData");
    assert_eq!(
        api.entity(&id).await,
        sensor(&id),
        "failed appends changed nothing"
    );
}

#[tokio::test]
async fn update_attributes_204() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let r = api
        .patch(
            &attrs(&id),
            &json!({ "status": { "type": "Property", "value": "down" } }),
        )
        .await;
    r.expect(204);
    assert_eq!(api.entity(&id).await["status"]["value"], json!("down"));
}

#[tokio::test]
async fn update_attributes_partial_is_207() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let r = api
        .patch(
            &attrs(&id),
            &json!({
                "status": { "type": "Property", "value": "down" },
                "nonexistent": { "type": "Property", "value": 1 }
            }),
        )
        .await;
    r.expect(207);
    let body = r.json();
    assert_eq!(body["updated"], json!(["status"]), "{body}");
    assert_eq!(
        body["notUpdated"][0]["attributeName"],
        json!("nonexistent"),
        "{body}"
    );
    assert!(body["notUpdated"][0]["reason"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let e = api.entity(&id).await;
    assert_eq!(e["status"]["value"], json!("down"));
    assert!(
        e.get("nonexistent").is_none(),
        "update does not create attributes"
    );
}

#[tokio::test]
async fn update_attributes_unknown_entity_is_404() {
    let api = api();
    api.create(&sensor(&uid("Sensor"))).await;
    let r = api
        .patch(
            &attrs(&uid("Sensor")),
            &json!({ "status": { "type": "Property", "value": 1 } }),
        )
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test]
async fn partial_attribute_update_keeps_other_members() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let r = api
        .patch(&attr(&id, "temperature"), &json!({ "value": 25 }))
        .await;
    r.expect(204);
    let e = api.entity(&id).await;
    assert_eq!(e["temperature"]["value"], json!(25));
    assert_eq!(e["temperature"]["type"], json!("Property"));
    assert_eq!(e["temperature"]["unitCode"], json!("CEL"), "{e}");
    assert_eq!(e["temperature"]["accuracy"]["value"], json!(0.5), "{e}");
}

#[tokio::test]
async fn partial_attribute_update_with_type() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let r = api
        .patch(
            &attr(&id, "temperature"),
            &json!({ "type": "Property", "value": 26 }),
        )
        .await;
    r.expect(204);
    let e = api.entity(&id).await;
    assert_eq!(e["temperature"]["value"], json!(26));
    assert_eq!(e["temperature"]["unitCode"], json!("CEL"), "{e}");
}

#[tokio::test]
async fn partial_attribute_update_errors() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let body = json!({ "type": "Property", "value": 1 });
    let r = api.patch(&attr(&id, "nonexistent"), &body).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = api.patch(&attr(&uid("Sensor"), "temperature"), &body).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = api.patch(&attr(&id, "a(b"), &body).await;
    assert_problem(&r, 400, "BadRequestData");
    assert_eq!(api.entity(&id).await, sensor(&id));
}

/// Only a merge patches into a compound value, where a null member removes that
/// member; a partial attribute update replaces the value, so a null inside it would
/// be stored as data that reads as "deleted".
#[tokio::test]
async fn partial_attribute_update_refuses_null_inside_a_value_a_merge_removes_it() {
    let api = api();
    let id = uid("Building");
    let address = json!({ "street": "La Canebière", "country": "France" });
    api.create(&json!({
        "id": id,
        "type": "Building",
        "address": { "type": "Property", "value": address }
    }))
    .await;
    for value in [
        json!({ "country": "urn:ngsi-ld:null" }),
        json!({ "geo": { "country": null } }),
        json!(["a", "urn:ngsi-ld:null"]),
    ] {
        let r = api
            .patch(&attr(&id, "address"), &json!({ "value": value }))
            .await;
        assert_problem(&r, 400, "BadRequestData");
    }
    assert_eq!(api.entity(&id).await["address"]["value"], address);

    let r = api
        .patch(
            &ent(&id),
            &json!({ "address": { "type": "Property", "value": { "country": "urn:ngsi-ld:null" } } }),
        )
        .await;
    r.expect(204);
    assert_eq!(
        api.entity(&id).await["address"]["value"],
        json!({ "street": "La Canebière" })
    );
}

#[tokio::test]
async fn replace_attribute_with_put() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let r = api
        .put(
            &attr(&id, "temperature"),
            &json!({ "type": "Property", "value": 5 }),
        )
        .await;
    r.expect(204);
    let e = api.entity(&id).await;
    assert_eq!(
        e["temperature"],
        json!({ "type": "Property", "value": 5 }),
        "PUT replaces the whole attribute"
    );
    let r = api
        .put(
            &attr(&id, "nonexistent"),
            &json!({ "type": "Property", "value": 5 }),
        )
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = api
        .put(
            &attr(&uid("Sensor"), "temperature"),
            &json!({ "type": "Property", "value": 5 }),
        )
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test]
async fn delete_attribute() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let r = api.delete(&attr(&id, "status")).await;
    r.expect(204);
    let e = api.entity(&id).await;
    assert!(e.get("status").is_none(), "{e}");
    assert!(e.get("temperature").is_some());
    assert_problem(
        &api.delete(&attr(&id, "status")).await,
        404,
        "ResourceNotFound",
    );
    assert_problem(
        &api.delete(&attr(&uid("Sensor"), "status")).await,
        404,
        "ResourceNotFound",
    );
}

fn multi(id: &str) -> Value {
    json!({
        "id": id,
        "type": "Sensor",
        "speed": [
            { "type": "Property", "value": 10 },
            { "type": "Property", "value": 11, "datasetId": "urn:ngsi-ld:dataset:gps" },
            { "type": "Property", "value": 12, "datasetId": "urn:ngsi-ld:dataset:radar" }
        ]
    })
}

fn by_dataset(e: &Value, name: &str) -> Vec<(Option<String>, Value)> {
    let v = &e[name];
    let items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    };
    let mut out: Vec<(Option<String>, Value)> = items
        .iter()
        .map(|i| {
            (
                i["datasetId"].as_str().map(str::to_string),
                i["value"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn multi_instance_attributes_with_dataset_id() {
    let api = api();
    let id = uid("Sensor");
    api.create(&multi(&id)).await;
    let e = api.entity(&id).await;
    assert_eq!(
        by_dataset(&e, "speed"),
        vec![
            (None, json!(10)),
            (Some("urn:ngsi-ld:dataset:gps".into()), json!(11)),
            (Some("urn:ngsi-ld:dataset:radar".into()), json!(12)),
        ]
    );

    // Partial update of one instance, selected by datasetId.
    api.patch(
        &attr(&id, "speed"),
        &json!({ "type": "Property", "value": 21, "datasetId": "urn:ngsi-ld:dataset:gps" }),
    )
    .await
    .expect(204);
    // Update via /attrs of the default instance.
    api.patch(
        &attrs(&id),
        &json!({ "speed": { "type": "Property", "value": 20 } }),
    )
    .await
    .expect(204);
    // Append a new instance.
    api.post(
        &attrs(&id),
        &json!({ "speed": { "type": "Property", "value": 13, "datasetId": "urn:ngsi-ld:dataset:lidar" } }),
    )
    .await
    .expect(204);
    let e = api.entity(&id).await;
    assert_eq!(
        by_dataset(&e, "speed"),
        vec![
            (None, json!(20)),
            (Some("urn:ngsi-ld:dataset:gps".into()), json!(21)),
            (Some("urn:ngsi-ld:dataset:lidar".into()), json!(13)),
            (Some("urn:ngsi-ld:dataset:radar".into()), json!(12)),
        ]
    );

    // Delete one instance by datasetId.
    api.delete(&format!(
        "{}?datasetId=urn:ngsi-ld:dataset:gps",
        attr(&id, "speed")
    ))
    .await
    .expect(204);
    // Unknown datasetId.
    assert_problem(
        &api.delete(&format!(
            "{}?datasetId=urn:ngsi-ld:dataset:nope",
            attr(&id, "speed")
        ))
        .await,
        404,
        "ResourceNotFound",
    );
    // Default instance (no datasetId).
    api.delete(&attr(&id, "speed")).await.expect(204);
    let e = api.entity(&id).await;
    assert_eq!(
        by_dataset(&e, "speed"),
        vec![
            (Some("urn:ngsi-ld:dataset:lidar".into()), json!(13)),
            (Some("urn:ngsi-ld:dataset:radar".into()), json!(12)),
        ]
    );
    // deleteAll removes every instance.
    api.delete(&format!("{}?deleteAll=true", attr(&id, "speed")))
        .await
        .expect(204);
    let e = api.entity(&id).await;
    assert!(e.get("speed").is_none(), "{e}");
}

#[tokio::test]
async fn partial_update_of_unknown_dataset_id_is_404() {
    let api = api();
    let id = uid("Sensor");
    api.create(&multi(&id)).await;
    let r = api
        .patch(
            &attr(&id, "speed"),
            &json!({ "type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:dataset:nope" }),
        )
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    assert_eq!(
        by_dataset(&api.entity(&id).await, "speed"),
        by_dataset(&multi(&id), "speed")
    );
}

#[tokio::test]
async fn delete_attribute_bad_parameters() {
    let api = api();
    let id = uid("Sensor");
    api.create(&multi(&id)).await;
    let r = api
        .delete(&format!("{}?datasetId=not%20a%20uri", attr(&id, "speed")))
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = api
        .delete(&format!("{}?deleteAll=maybe", attr(&id, "speed")))
        .await;
    assert_problem(&r, 400, "BadRequestData");
    assert_eq!(by_dataset(&api.entity(&id).await, "speed").len(), 3);
}

#[tokio::test]
async fn attribute_modified_at_changes_and_created_at_stays() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let before = api.entity_q(&id, "?options=sysAttrs").await;
    assert_datetime(&before["temperature"]["createdAt"]);
    assert_datetime(&before["temperature"]["modifiedAt"]);
    // Wait until the clock has visibly moved (microsecond timestamps).
    let start = std::time::Instant::now();
    while chrono::Utc::now()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        .as_str()
        <= before["temperature"]["modifiedAt"]
            .as_str()
            .unwrap_or_default()
        && start.elapsed() < std::time::Duration::from_secs(2)
    {
        tokio::task::yield_now().await;
    }
    api.send(
        api.req(Method::PATCH, &attr(&id, "temperature"))
            .header("Content-Type", "application/json")
            .body(json!({ "type": "Property", "value": 30 }).to_string()),
    )
    .await
    .expect(204);
    let after = api.entity_q(&id, "?options=sysAttrs").await;
    assert_eq!(
        after["temperature"]["createdAt"],
        before["temperature"]["createdAt"]
    );
    assert!(
        after["temperature"]["modifiedAt"].as_str() > before["temperature"]["modifiedAt"].as_str(),
        "attribute modifiedAt moves: {before} -> {after}"
    );
    assert!(after["modifiedAt"].as_str() > before["modifiedAt"].as_str());
}

#[tokio::test]
async fn append_with_mismatching_id_in_body_is_400() {
    let api = api();
    let id = uid("Sensor");
    api.create(&sensor(&id)).await;
    let r = api
        .post(&attrs(&id), &json!({ "id": uid("Sensor"), "humidity": 1 }))
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = api.patch(&attrs(&id), &json!({})).await;
    assert_problem(&r, 400, "BadRequestData");
    assert_eq!(api.entity(&id).await, sensor(&id));
}

/// Concurrent writers on one entity: no update may be lost (the store must not
/// read-modify-write without isolation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_to_one_entity_lose_nothing() {
    const N: usize = 60;
    let api = api();
    let id = uid("Sensor");
    api.create(&json!({ "id": id, "type": "Sensor" })).await;
    let mut tasks = Vec::new();
    for i in 0..N {
        let api = api.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let r = api
                .post(
                    &attrs(&id),
                    &json!({ format!("a{i}"): { "type": "Property", "value": i } }),
                )
                .await;
            assert_eq!(r.status, 204, "append a{i}: {}", r.text);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let e = api.entity(&id).await;
    for i in 0..N {
        assert_eq!(e[format!("a{i}")]["value"], json!(i), "a{i} lost: {e}");
    }
}

/// Concurrent merges (PATCH /entities/{id}) of distinct attributes into one entity: each
/// is prepared against the entity as last committed, so most see a stale entity; every
/// one must still land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_merges_into_one_entity_lose_nothing() {
    const N: usize = 40;
    let api = api();
    let id = uid("Sensor");
    api.create(&json!({ "id": id, "type": "Sensor" })).await;
    let mut tasks = Vec::new();
    for i in 0..N {
        let api = api.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let r = api
                .patch(
                    &format!("/entities/{id}"),
                    &json!({ format!("m{i}"): { "type": "Property", "value": i } }),
                )
                .await;
            assert_eq!(r.status, 204, "merge m{i}: {}", r.text);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let e = api.entity(&id).await;
    for i in 0..N {
        assert_eq!(e[format!("m{i}")]["value"], json!(i), "m{i} lost: {e}");
    }
}
