//! Device metadata and maintenance (issue 9): readings name their Device (`refDevice`),
//! the Device its DeviceModel (`refDeviceModel`), maintenance interventions are
//! `DeviceOperation` entities linked to the Device, and a temporal query shows them
//! beside the readings.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

pub const SDM_DEVICE: &str =
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/context.jsonld";

/// A hosted context naming both subjects (readings and devices).
async fn both_contexts(api: &Api) -> String {
    let r = api
        .post(
            "/jsonldContexts",
            &json!({ "@context": [SDM_ENVIRONMENT, SDM_DEVICE] }),
        )
        .await;
    r.expect(201);
    let loc = r
        .header("location")
        .expect("Location of the hosted context");
    if loc.starts_with("http") {
        loc
    } else {
        format!("{}{loc}", api.base_url)
    }
}

async fn post_ld(api: &Api, path: &str, body: &Value) {
    api.post_ld(path, body).await.expect(201);
}

#[tokio::test]
async fn maintenance_shows_beside_readings_and_devices_link_to_their_model() {
    let api = api();
    let (model, device, water, op) = (
        uid("DeviceModel"),
        uid("Device"),
        uid("WaterObserved"),
        uid("DeviceOperation"),
    );
    post_ld(
        &api,
        "/entityOperations/create",
        &json!([
            { "id": model, "type": "DeviceModel", "brandName": "Hydro", "modelName": "H-200",
              "manufacturerName": "Hydro SA", "category": ["sensor"], "controlledProperty": ["flow"],
              "@context": SDM_DEVICE },
            { "id": device, "type": "Device", "serialNumber": "H200-0042",
              "controlledProperty": ["flow"],
              "refDeviceModel": { "type": "Relationship", "object": model },
              "@context": SDM_DEVICE }
        ]),
    )
    .await;
    post_ld(
        &api,
        "/entities",
        &json!({
            "id": water, "type": "WaterObserved",
            "dateObserved": "2024-05-01T10:00:00Z",
            "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [7.19, 43.66] } },
            "flow": { "type": "Property", "value": 10, "observedAt": "2024-05-01T10:00:00Z" },
            "refDevice": { "type": "Relationship", "object": device },
            "@context": SDM_ENVIRONMENT
        }),
    )
    .await;
    for (flow, at) in [
        (0, "2024-05-01T11:00:00Z"),
        (12, "2024-05-01T13:00:00Z"),
        (11, "2024-05-03T10:00:00Z"),
    ] {
        api.send(
            api.req(Method::PATCH, &format!("/entities/{water}/attrs"))
                .header("Link", link(SDM_ENVIRONMENT))
                .header("Content-Type", "application/json")
                .body(
                    json!({ "flow": { "type": "Property", "value": flow, "observedAt": at } })
                        .to_string(),
                ),
        )
        .await
        .expect(204);
    }
    // The intervention: its attributes are observed when it started, so it sits on the
    // same timeline as the readings.
    post_ld(
        &api,
        "/entities",
        &json!({
            "id": op, "type": "DeviceOperation",
            "refDevice": { "type": "Relationship", "object": device, "observedAt": "2024-05-01T11:30:00Z" },
            "operationType": { "type": "Property", "value": "maintenance", "observedAt": "2024-05-01T11:30:00Z" },
            "startedAt": { "type": "Property", "value": { "@type": "DateTime", "@value": "2024-05-01T11:30:00Z" }, "observedAt": "2024-05-01T11:30:00Z" },
            "endedAt": { "type": "Property", "value": { "@type": "DateTime", "@value": "2024-05-01T12:30:00Z" }, "observedAt": "2024-05-01T11:30:00Z" },
            "description": { "type": "Property", "value": "cleaned the clogged intake", "observedAt": "2024-05-01T11:30:00Z" },
            "@context": SDM_DEVICE
        }),
    )
    .await;

    // The day of the intervention: both types, and nothing outside the window.
    let ctx = both_contexts(&api).await;
    let r = api
        .get_with(
            "/temporal/entities?type=WaterObserved,DeviceOperation&timerel=between&timeAt=2024-05-01T00:00:00Z&endTimeAt=2024-05-02T00:00:00Z",
            &[("Link", &link(&ctx))],
        )
        .await;
    r.expect(200);
    let items = r.json();
    let items = items.as_array().cloned().unwrap_or_default();
    let ids: Vec<&str> = items.iter().filter_map(|e| e["id"].as_str()).collect();
    assert!(
        ids.contains(&water.as_str()) && ids.contains(&op.as_str()),
        "{items:#?}"
    );
    let by_id = |id: &str| {
        items
            .iter()
            .find(|e| e["id"] == json!(id))
            .cloned()
            .unwrap_or_default()
    };
    let flows = by_id(&water)["flow"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(flows, 3, "the readings of that day: {}", by_id(&water));
    let operation = by_id(&op);
    assert_eq!(operation["type"], json!("DeviceOperation"));
    assert_eq!(
        operation["operationType"][0]["value"],
        json!("maintenance"),
        "{operation}"
    );
    assert_eq!(
        operation["refDevice"][0]["object"],
        json!(device),
        "{operation}"
    );

    // Readings → Device → DeviceModel, in one request.
    let e = api
        .get_with(
            &format!("/entities/{water}?join=inline&joinLevel=2"),
            &[("Link", &link(&ctx))],
        )
        .await;
    e.expect(200);
    let e = e.json();
    // Both subject contexts define `refDevice`, with different IRIs: under the combined
    // context the Environment one (the reading's) stays an IRI.
    let dev = &e[format!("{SDM_ENV_PREFIX}refDevice")]["entity"];
    assert_eq!(dev["id"], json!(device), "{e}");
    assert_eq!(
        dev["refDeviceModel"]["entity"]["modelName"]["value"],
        json!("H-200"),
        "{e}"
    );

    // The interventions of a device.
    let r = api
        .get_with(
            &format!("/entities?type=DeviceOperation&q=refDevice==%22{device}%22"),
            &[("Link", &link(SDM_DEVICE))],
        )
        .await;
    r.expect(200);
    assert_eq!(r.json().as_array().map(Vec::len), Some(1), "{}", r.text);
}
