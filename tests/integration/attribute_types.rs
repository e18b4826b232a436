//! Every NGSI-LD 1.8 attribute type, written in normalized form and read back.

use serde_json::{json, Value};

use crate::common::*;

/// Instants compare as instants (the broker may normalise the text of observedAt).
#[track_caller]
fn same_instant(a: &Value, b: &str) {
    let a = a
        .as_str()
        .unwrap_or_else(|| panic!("expected a date-time, got {a}"));
    let pa = chrono::DateTime::parse_from_rfc3339(a).expect("ISO 8601 date-time");
    let pb = chrono::DateTime::parse_from_rfc3339(b).expect("ISO 8601 date-time");
    assert_eq!(pa, pb, "{a} vs {b}");
}

/// The URIs of an objectList, whichever of the two spellings is used.
fn object_list(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("objectList must be an array: {v}"))
        .iter()
        .map(|i| match i {
            Value::String(s) => s.clone(),
            other => other["object"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

fn full_entity(id: &str) -> Value {
    json!({
        "id": id,
        "type": "Station",
        "temperature": {
            "type": "Property",
            "value": 21.7,
            "unitCode": "CEL",
            "observedAt": "2024-05-01T10:00:00Z",
            "accuracy": { "type": "Property", "value": 0.2 },
            "measuredBy": { "type": "Relationship", "object": "urn:ngsi-ld:Device:t1" }
        },
        "owner": {
            "type": "Relationship",
            "object": "urn:ngsi-ld:Person:alice",
            "since": { "type": "Property", "value": "2020" }
        },
        "location": {
            "type": "GeoProperty",
            "value": {
                "type": "Polygon",
                "coordinates": [[[7.0, 43.0], [7.1, 43.0], [7.1, 43.1], [7.0, 43.0]]]
            }
        },
        "street": {
            "type": "LanguageProperty",
            "languageMap": { "fr": "Grand Place", "nl": "Grote Markt", "@none": "Grand-Place" }
        },
        "settings": {
            "type": "JsonProperty",
            "json": { "thresholds": [1, 2, 3], "mode": { "auto": true } }
        },
        "category": { "type": "VocabProperty", "vocab": "Urban" },
        "readings": { "type": "ListProperty", "valueList": [1, "two", { "three": 3 }] },
        "neighbours": {
            "type": "ListRelationship",
            "objectList": [ { "object": "urn:ngsi-ld:Station:n1" }, { "object": "urn:ngsi-ld:Station:n2" } ]
        }
    })
}

#[tokio::test]
async fn all_attribute_types_round_trip() {
    let api = api();
    let id = uid("Station");
    api.create(&full_entity(&id)).await;
    let e = api.entity(&id).await;

    let t = &e["temperature"];
    assert_eq!(t["type"], json!("Property"));
    assert_eq!(t["value"], json!(21.7));
    assert_eq!(t["unitCode"], json!("CEL"));
    same_instant(&t["observedAt"], "2024-05-01T10:00:00Z");
    assert_eq!(t["accuracy"], json!({ "type": "Property", "value": 0.2 }));
    assert_eq!(
        t["measuredBy"],
        json!({ "type": "Relationship", "object": "urn:ngsi-ld:Device:t1" })
    );

    assert_eq!(
        e["owner"],
        json!({
            "type": "Relationship",
            "object": "urn:ngsi-ld:Person:alice",
            "since": { "type": "Property", "value": "2020" }
        })
    );
    assert_eq!(e["location"], full_entity(&id)["location"]);
    assert_eq!(e["street"], full_entity(&id)["street"]);
    assert_eq!(e["settings"], full_entity(&id)["settings"]);
    assert_eq!(
        e["category"],
        json!({ "type": "VocabProperty", "vocab": "Urban" })
    );
    assert_eq!(e["readings"], full_entity(&id)["readings"]);
    assert_eq!(e["neighbours"]["type"], json!("ListRelationship"));
    assert_eq!(
        object_list(&e["neighbours"]["objectList"]),
        vec!["urn:ngsi-ld:Station:n1", "urn:ngsi-ld:Station:n2"]
    );
}

#[tokio::test]
async fn list_relationship_accepts_plain_uris() {
    let api = api();
    let id = uid("Station");
    api.create(&json!({
        "id": id,
        "type": "Station",
        "neighbours": { "type": "ListRelationship", "objectList": ["urn:ngsi-ld:Station:n1", "urn:ngsi-ld:Station:n2"] }
    }))
    .await;
    let e = api.entity(&id).await;
    assert_eq!(
        object_list(&e["neighbours"]["objectList"]),
        vec!["urn:ngsi-ld:Station:n1", "urn:ngsi-ld:Station:n2"]
    );
    let r = api
        .post(
            "/entities",
            &json!({ "id": uid("Station"), "type": "Station",
                     "neighbours": { "type": "ListRelationship", "objectList": ["not a uri"] } }),
        )
        .await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test]
async fn relationship_with_several_objects_and_object_type() {
    let api = api();
    let id = uid("Station");
    api.create(&json!({
        "id": id,
        "type": "Station",
        "operator": { "type": "Relationship", "object": "urn:ngsi-ld:Company:c1", "objectType": "Company" }
    }))
    .await;
    let e = api.entity(&id).await;
    assert_eq!(
        e["operator"],
        json!({ "type": "Relationship", "object": "urn:ngsi-ld:Company:c1", "objectType": "Company" })
    );
}

#[tokio::test]
async fn geo_property_geometries() {
    let api = api();
    let geoms = [
        json!({ "type": "Point", "coordinates": [-3.7, 40.4] }),
        json!({ "type": "LineString", "coordinates": [[0, 0], [1, 1]] }),
        json!({ "type": "MultiPoint", "coordinates": [[0, 0], [1, 1]] }),
        json!({ "type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]]] }),
    ];
    for g in geoms {
        let id = uid("Place");
        api.create(&json!({ "id": id, "type": "Place", "location": { "type": "GeoProperty", "value": g } }))
            .await;
        assert_eq!(api.entity(&id).await["location"]["value"], g);
    }
}

#[tokio::test]
async fn vocab_property_expands_against_the_context() {
    let api = api();
    let id = uid("Station");
    let ctx = json!({ "Urban": "https://example.org/vocab/Urban" });
    let body = json!({
        "id": id,
        "type": "Station",
        "category": { "type": "VocabProperty", "vocab": "Urban" },
        "@context": [ctx, CORE_CONTEXT]
    });
    api.body(
        reqwest::Method::POST,
        "/entities",
        "application/ld+json",
        &body.to_string(),
    )
    .await
    .expect(201);
    // Without the user context the term cannot be compacted: the IRI shows.
    let e = api.entity(&id).await;
    assert_eq!(
        e["category"]["vocab"],
        json!("https://example.org/vocab/Urban"),
        "{e}"
    );
}
