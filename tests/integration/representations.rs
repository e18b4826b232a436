//! Representations: normalized, concise, keyValues (options and format), sysAttrs,
//! attrs/pick/omit projections and lang on a LanguageProperty.

use serde_json::{json, Value};

use crate::common::*;

fn station(id: &str) -> Value {
    json!({
        "id": id,
        "type": "Station",
        "temperature": { "type": "Property", "value": 21.5, "unitCode": "CEL" },
        "status": { "type": "Property", "value": "ok" },
        "config": { "type": "Property", "value": { "mode": "auto" } },
        "operator": { "type": "Relationship", "object": "urn:ngsi-ld:Company:c1" },
        "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [7.2, 43.7] } },
        "name": { "type": "LanguageProperty", "languageMap": { "en": "Harbour", "fr": "Port" } }
    })
}

#[tokio::test]
async fn key_values_via_options_and_format() {
    let api = api();
    let id = uid("Station");
    api.create(&station(&id)).await;
    for q in [
        "?options=keyValues",
        "?format=keyValues",
        "?options=simplified",
    ] {
        let e = api.entity_q(&id, q).await;
        assert_eq!(e["id"], json!(id), "{q}");
        assert_eq!(e["type"], json!("Station"), "{q}");
        assert_eq!(e["temperature"], json!(21.5), "{q}: {e}");
        assert_eq!(e["status"], json!("ok"), "{q}");
        assert_eq!(e["config"], json!({ "mode": "auto" }), "{q}");
        assert_eq!(e["operator"], json!("urn:ngsi-ld:Company:c1"), "{q}");
        assert_eq!(
            e["location"],
            json!({ "type": "Point", "coordinates": [7.2, 43.7] }),
            "{q}"
        );
        assert!(e.get("createdAt").is_none());
    }
}

#[tokio::test]
async fn key_values_and_normalized_together_is_400() {
    let api = api();
    let id = uid("Station");
    api.create(&station(&id)).await;
    let r = api
        .get(&format!("{}?options=keyValues,normalized", ent(&id)))
        .await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test]
async fn concise_representation() {
    let api = api();
    let id = uid("Station");
    api.create(&station(&id)).await;
    for q in ["?options=concise", "?format=concise"] {
        let e = api.entity_q(&id, q).await;
        assert_eq!(e["id"], json!(id));
        assert_eq!(e["type"], json!("Station"));
        assert_eq!(
            e["temperature"],
            json!({ "value": 21.5, "unitCode": "CEL" }),
            "{q}: {e}"
        );
        assert_eq!(e["status"], json!("ok"), "{q}: {e}");
        // A bare object would read as an attribute with sub-attributes: keep "value".
        assert_eq!(
            e["config"],
            json!({ "value": { "mode": "auto" } }),
            "{q}: {e}"
        );
        assert_eq!(
            e["operator"],
            json!({ "object": "urn:ngsi-ld:Company:c1" }),
            "{q}: {e}"
        );
        assert_eq!(
            e["name"],
            json!({ "languageMap": { "en": "Harbour", "fr": "Port" } }),
            "{q}: {e}"
        );
    }
}

#[tokio::test]
async fn concise_output_is_valid_input() {
    // What the broker writes in concise form, it reads back to the same entity.
    let api = api();
    let id = uid("Station");
    api.create(&station(&id)).await;
    let mut concise = api.entity_q(&id, "?options=concise").await;
    let id2 = uid("Station");
    concise["id"] = json!(id2);
    api.create(&concise).await;
    let mut a = api.entity(&id).await;
    let mut b = api.entity(&id2).await;
    a["id"] = json!("x");
    b["id"] = json!("x");
    assert_eq!(a, b);
}

#[tokio::test]
async fn sys_attrs() {
    let api = api();
    let id = uid("Station");
    api.create(&station(&id)).await;
    let plain = api.entity(&id).await;
    assert!(plain.get("createdAt").is_none() && plain.get("modifiedAt").is_none());
    assert!(plain["temperature"].get("createdAt").is_none());

    let e = api.entity_q(&id, "?options=sysAttrs").await;
    assert_datetime(&e["createdAt"]);
    assert_datetime(&e["modifiedAt"]);
    for name in ["temperature", "status", "operator", "location", "name"] {
        assert_datetime(&e[name]["createdAt"]);
        assert_datetime(&e[name]["modifiedAt"]);
    }
    // Combined with concise.
    let c = api.entity_q(&id, "?options=concise,sysAttrs").await;
    assert_datetime(&c["createdAt"]);
}

#[tokio::test]
async fn attrs_projection() {
    let api = api();
    let id = uid("Station");
    api.create(&station(&id)).await;
    let e = api.entity_q(&id, "?attrs=temperature,operator").await;
    let mut keys: Vec<&str> = e
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["id", "operator", "temperature", "type"]);
}

#[tokio::test]
async fn pick_and_omit() {
    let api = api();
    let id = uid("Station");
    api.create(&station(&id)).await;
    let e = api.entity_q(&id, "?pick=id,temperature").await;
    let mut keys: Vec<&str> = e
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["id", "temperature"], "{e}");

    let e = api.entity_q(&id, "?omit=type,temperature,name").await;
    let mut keys: Vec<&str> = e
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec!["config", "id", "location", "operator", "status"],
        "{e}"
    );

    let r = api.get(&format!("{}?pick=id&attrs=status", ent(&id))).await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test]
async fn lang_on_language_property() {
    let api = api();
    let id = uid("Station");
    api.create(&station(&id)).await;
    let e = api.entity_q(&id, "?lang=fr").await;
    assert_eq!(
        e["name"],
        json!({ "type": "Property", "value": "Port", "lang": "fr" }),
        "{e}"
    );
    let kv = api.entity_q(&id, "?lang=fr&options=keyValues").await;
    assert_eq!(kv["name"], json!("Port"));
    // A language that is missing falls back to some language of the map.
    let e = api.entity_q(&id, "?lang=de").await;
    assert_eq!(e["name"]["type"], json!("Property"));
    assert!(
        ["Harbour", "Port"].contains(&e["name"]["value"].as_str().unwrap_or("")),
        "{e}"
    );
    // Without lang the full map is returned.
    let e = api.entity(&id).await;
    assert_eq!(
        e["name"]["languageMap"],
        json!({ "en": "Harbour", "fr": "Port" })
    );
}

#[tokio::test]
async fn unknown_option_is_400() {
    let api = api();
    let id = uid("Station");
    api.create(&station(&id)).await;
    let r = api.get(&format!("{}?options=fancy", ent(&id))).await;
    // ETSI 018_16 expects InvalidRequest for an unknown option.
    assert_problem(&r, 400, "InvalidRequest");
}

/// A full Smart Data Models WaterObserved, created under its own @context and read back
/// normalized with system attributes, against a reviewed snapshot.
#[tokio::test]
async fn water_observed_normalized_with_sys_attrs_snapshot() {
    let api = api(); // a fresh tenant: the fixed id cannot clash
    let id = "urn:ngsi-ld:WaterObserved:MNCA-001";
    let entity = json!({
        "id": id,
        "type": "WaterObserved",
        "dateObserved": { "type": "Property", "value": { "@type": "DateTime", "@value": "2020-03-17T08:45:00Z" } },
        "description": { "type": "Property", "value": "Observation of the water level of the Var" },
        "flow": { "type": "Property", "value": 12, "unitCode": "G51", "observedAt": "2020-03-17T08:45:00.000Z" },
        "height": { "type": "Property", "value": 3.52, "unitCode": "MTR",
                    "observedAt": "2020-03-17T08:45:00.000Z",
                    "accuracy": { "type": "Property", "value": 0.05 } },
        "temperature": { "type": "Property", "value": 14.2, "unitCode": "CEL" },
        "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [7.196545, 43.66481] } },
        "name": { "type": "Property", "value": "STLRT-MNCA-AP-WO-012" },
        "refDevice": { "type": "Relationship", "object": "urn:ngsi-ld:Device:T2-NP-018" },
        "measuredArea": { "type": "Property", "value": 250 }
    });
    api.json_linked(reqwest::Method::POST, "/entities", &entity, SDM_ENVIRONMENT)
        .await
        .expect(201);
    let r = api
        .get_with(
            &format!("{}?options=sysAttrs", ent(id)),
            &[("Link", &link(SDM_ENVIRONMENT))],
        )
        .await;
    r.expect(200);
    let v = r.json();
    // One snapshot for both backends' test binaries (named without the binary).
    insta::with_settings!({ prepend_module_to_snapshot => false }, {
        insta::assert_json_snapshot!("water_observed_normalized_sys_attrs", v, {
            ".createdAt" => "[ts]",
            ".modifiedAt" => "[ts]",
            ".*.createdAt" => "[ts]",
            ".*.modifiedAt" => "[ts]",
            ".*.*.createdAt" => "[ts]",
            ".*.*.modifiedAt" => "[ts]",
        });
    });
}

/// The same entity in keyValues and concise forms, read with the core context (expanded
/// names), against a reviewed snapshot.
#[tokio::test]
async fn water_observed_other_representations_snapshot() {
    let api = api();
    let id = "urn:ngsi-ld:WaterObserved:MNCA-002";
    let entity = json!({
        "id": id,
        "type": "WaterObserved",
        "flow": { "type": "Property", "value": 12, "unitCode": "G51" },
        "height": { "type": "Property", "value": 3.52, "accuracy": { "type": "Property", "value": 0.05 } },
        "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [7.196545, 43.66481] } },
        "refDevice": { "type": "Relationship", "object": "urn:ngsi-ld:Device:T2-NP-018" }
    });
    api.json_linked(reqwest::Method::POST, "/entities", &entity, SDM_ENVIRONMENT)
        .await
        .expect(201);
    let kv = api.entity_q(id, "?options=keyValues").await;
    let concise = api.entity_q(id, "?options=concise").await;
    insta::with_settings!({ prepend_module_to_snapshot => false }, {
        insta::assert_json_snapshot!("water_observed_key_values_core_context", kv);
        insta::assert_json_snapshot!("water_observed_concise_core_context", concise);
    });
}
