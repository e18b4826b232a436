//! Linked entity retrieval (`join=inline|flat`, `joinLevel`, clause 4.5.23) and the
//! projections nested under a Relationship (`pick`/`omit` with `{...}`, clause 4.21).

use serde_json::{json, Value};

use crate::common::*;

/// A container → its sensor Device → the Device's model, in the test's tenant.
async fn chain(api: &Api) -> (String, String, String) {
    let (container, device, model) = (uid("WasteContainer"), uid("Device"), uid("DeviceModel"));
    api.post(
        "/entities",
        &json!({ "id": model, "type": "DeviceModel",
        "brandName": { "type": "Property", "value": "Sigrenea" },
        "modelName": { "type": "Property", "value": "FL-2" } }),
    )
    .await
    .expect(201);
    api.post(
        "/entities",
        &json!({ "id": device, "type": "Device",
        "serialNumber": { "type": "Property", "value": "waste-fill-000042" },
        "batteryLevel": { "type": "Property", "value": 0.91 },
        "refDeviceModel": { "type": "Relationship", "object": model } }),
    )
    .await
    .expect(201);
    api.post(
        "/entities",
        &json!({ "id": container, "type": "WasteContainer",
        "fillingLevel": { "type": "Property", "value": 0.4 },
        "name": { "type": "Property", "value": "Vieux-Port" },
        "refDevice": { "type": "Relationship", "object": device } }),
    )
    .await
    .expect(201);
    (container, device, model)
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().filter(|k| *k != "@context").cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[tokio::test]
async fn inline_and_flat_joins_follow_relationships() {
    let api = api();
    let (container, device, model) = chain(&api).await;
    let e = api.entity_q(&container, "?join=inline&joinLevel=2").await;
    assert_eq!(e["refDevice"]["entity"]["id"], json!(device), "{e}");
    assert_eq!(
        e["refDevice"]["entity"]["refDeviceModel"]["entity"]["id"],
        json!(model),
        "{e}"
    );
    let r = api
        .get(&format!("{}?join=flat&joinLevel=1", ent(&container)))
        .await;
    let flat = r.expect(200).json();
    let ids: Vec<&str> = flat
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, vec![container.as_str(), device.as_str()], "{flat}");
}

#[tokio::test]
async fn nested_pick_and_omit_shape_linked_entities() {
    let api = api();
    let (container, device, model) = chain(&api).await;
    let pick = "id,refDevice%7Bid,serialNumber,refDeviceModel%7Bid,brandName%7D%7D";
    let e = api
        .entity_q(&container, &format!("?join=inline&joinLevel=2&pick={pick}"))
        .await;
    assert_eq!(keys(&e), vec!["id", "refDevice"], "{e}");
    let dev = &e["refDevice"]["entity"];
    assert_eq!(
        keys(dev),
        vec!["id", "refDeviceModel", "serialNumber"],
        "{e}"
    );
    assert_eq!(
        keys(&dev["refDeviceModel"]["entity"]),
        vec!["brandName", "id"],
        "{e}"
    );

    // Flat: every entity with its own projection; unpicked Relationships are not followed.
    let r = api
        .get(&format!(
            "{}?join=flat&joinLevel=2&pick={pick}",
            ent(&container)
        ))
        .await;
    let flat = r.expect(200).json();
    let items = flat.as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 3, "{flat}");
    assert_eq!(
        keys(&items[1]),
        vec!["id", "refDeviceModel", "serialNumber"]
    );
    assert_eq!(items[2]["id"], json!(model));
    let r = api
        .get(&format!(
            "{}?join=flat&joinLevel=2&pick=id,name",
            ent(&container)
        ))
        .await;
    assert_eq!(
        r.expect(200).json().as_array().map(Vec::len),
        Some(1),
        "refDevice not picked: not followed"
    );

    // Omit nested under a Relationship keeps the Relationship, trims the linked entity.
    let e = api
        .entity_q(
            &container,
            "?join=inline&omit=refDevice%7BbatteryLevel,type%7D",
        )
        .await;
    assert!(
        e.get("refDevice").is_some() && e.get("name").is_some(),
        "{e}"
    );
    let dev = &e["refDevice"]["entity"];
    assert_eq!(dev["id"], json!(device));
    assert!(
        dev.get("batteryLevel").is_none() && dev.get("type").is_none(),
        "{e}"
    );
    assert!(dev.get("serialNumber").is_some(), "{e}");

    // Nesting without join, or malformed, is a 400.
    for bad in [
        format!("?pick={pick}"),
        "?join=inline&pick=refDevice%7Bid".to_string(),
        "?join=inline&pick=id%7Bname%7D".to_string(),
        "?join=inline&pick=refDevice%7B%7D".to_string(),
    ] {
        let r = api.get(&format!("{}{bad}", ent(&container))).await;
        assert_problem(&r, 400, "BadRequestData");
    }
}

#[tokio::test]
async fn nested_projections_respect_join_level_and_keep_deeper_relationships() {
    let api = api();
    let (container, device, model) = chain(&api).await;
    // Two levels of nesting need joinLevel 2.
    let pick = "id,refDevice%7Bid,refDeviceModel%7Bid%7D%7D";
    let r = api
        .get(&format!("{}?join=inline&pick={pick}", ent(&container)))
        .await;
    assert_problem(&r, 400, "BadRequestData");
    // An omit two levels deep keeps the Relationship of the first linked entity.
    let e = api
        .entity_q(
            &container,
            "?join=inline&joinLevel=2&omit=refDevice%7BrefDeviceModel%7BmodelName%7D%7D",
        )
        .await;
    let dev = &e["refDevice"]["entity"];
    assert_eq!(dev["id"], json!(device), "{e}");
    let m = &dev["refDeviceModel"]["entity"];
    assert_eq!(m["id"], json!(model), "{e}");
    assert!(
        m.get("modelName").is_none() && m.get("brandName").is_some(),
        "{e}"
    );
}

#[tokio::test]
async fn query_objects_take_joins_orderings_and_id_lists() {
    let api = api();
    let (container, device, _) = chain(&api).await;
    let other = uid("WasteContainer");
    api.post("/entities", &json!({ "id": other, "type": "WasteContainer", "fillingLevel": { "type": "Property", "value": 0.9 } }))
        .await
        .expect(201);
    let post = |body: Value| {
        let api = api.clone();
        async move { api.post("/entityOperations/query", &body).await }
    };
    let r = post(json!({ "type": "Query", "entities": [{ "type": "WasteContainer", "id": [container, other] }],
        "ordering": { "orderBy": ["fillingLevel;desc"] }, "join": "inline", "joinLevel": 1 })).await;
    let v = r.expect(200).json();
    assert_eq!(v[0]["id"], json!(other), "{v}");
    assert_eq!(v[1]["refDevice"]["entity"]["id"], json!(device), "{v}");
    for bad in [
        json!({ "type": "Query", "entities": [{ "type": "WasteContainer" }], "join": "inline", "joinLevel": 0 }),
        json!({ "type": "Query", "entities": [{ "type": "WasteContainer" }], "temporalQ": { "timerel": "after", "timeAt": "2020-01-01T00:00:00Z" } }),
        json!({ "type": "Query", "entities": [{ "type": "WasteContainer" }], "ordering": { "orderBy": ["location;dist-asc"] } }),
        json!({ "type": "Query", "entities": [{ "type": "WasteContainer" }], "ordering": { "orderBy": ["id"], "geometry": 5 } }),
        json!({ "type": "Query", "entities": [{ "type": "WasteContainer" }], "ordering": { "orderBy": ["id"], "coordinates": "8,40" } }),
    ] {
        let r = post(bad.clone()).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    let r = api.get("/entities?type=*&local=false").await;
    assert_problem(&r, 400, "BadRequestData");
}
