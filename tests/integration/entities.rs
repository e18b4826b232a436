//! Entity lifecycle: create, retrieve, replace (PUT), merge (PATCH), delete.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn vehicle(id: &str) -> Value {
    json!({
        "id": id,
        "type": "Vehicle",
        "speed": { "type": "Property", "value": 80, "unitCode": "KMH" },
        "brand": { "type": "Property", "value": "Mercedes" },
        "isParked": { "type": "Relationship", "object": "urn:ngsi-ld:OffStreetParking:Downtown1" }
    })
}

#[tokio::test]
async fn create_returns_201_with_location_and_reads_back_normalized() {
    let api = api();
    let id = uid("Vehicle");
    let r = api.post("/entities", &vehicle(&id)).await;
    r.expect(201);
    assert_eq!(r.text, "", "201 on create has no body");
    let loc = r.header("location").expect("Location header on 201");
    assert_eq!(loc, format!("/ngsi-ld/v1/entities/{id}"));

    // The Location is usable as is.
    let got = api
        .send(api.raw(Method::GET, &format!("{}{loc}", api.base_url)))
        .await;
    got.expect(200);
    assert!(got.content_type().starts_with("application/json"));
    let link_header = got
        .header("link")
        .expect("application/json responses carry a Link");
    assert!(
        link_header.contains(CORE_CONTEXT),
        "core context in Link: {link_header}"
    );
    assert!(link_header.contains(JSONLD_REL));

    let body = got.json();
    assert_eq!(
        body,
        json!({
            "id": id,
            "type": "Vehicle",
            "speed": { "type": "Property", "value": 80, "unitCode": "KMH" },
            "brand": { "type": "Property", "value": "Mercedes" },
            "isParked": { "type": "Relationship", "object": "urn:ngsi-ld:OffStreetParking:Downtown1" }
        })
    );
}

#[tokio::test]
async fn create_twice_is_409_already_exists() {
    let api = api();
    let id = uid("Vehicle");
    api.create(&vehicle(&id)).await;
    let mut other = vehicle(&id);
    other["speed"]["value"] = json!(1);
    let r = api.post("/entities", &other).await;
    assert_problem(&r, 409, "AlreadyExists");
    // The first version is untouched.
    assert_eq!(api.entity(&id).await["speed"]["value"], json!(80));
}

#[tokio::test]
async fn retrieve_unknown_entity_is_404_resource_not_found() {
    let api = api();
    api.create(&vehicle(&uid("Vehicle"))).await; // the tenant exists
    let r = api.get(&ent(&uid("Vehicle"))).await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test]
async fn retrieve_with_type_filter() {
    let api = api();
    let id = uid("Vehicle");
    api.create(&vehicle(&id)).await;
    api.get(&format!("{}?type=Vehicle", ent(&id)))
        .await
        .expect(200);
    let r = api.get(&format!("{}?type=Building", ent(&id))).await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test]
async fn retrieve_with_invalid_id_in_path_is_400() {
    let api = api();
    api.create(&vehicle(&uid("Vehicle"))).await;
    let r = api.get("/entities/not-a-uri").await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test]
async fn replace_entity_with_put() {
    let api = api();
    let id = uid("Vehicle");
    api.create(&vehicle(&id)).await;
    let before = api.entity_q(&id, "?options=sysAttrs").await;

    let r = api
        .put(
            &ent(&id),
            &json!({
                "type": "Vehicle",
                "color": { "type": "Property", "value": "red" }
            }),
        )
        .await;
    r.expect(204);
    assert_eq!(r.text, "");

    let after = api.entity_q(&id, "?options=sysAttrs").await;
    assert_eq!(after["color"]["value"], json!("red"));
    assert!(
        after.get("speed").is_none(),
        "PUT replaces: old attributes are gone: {after}"
    );
    assert!(after.get("isParked").is_none());
    assert_eq!(
        after["createdAt"], before["createdAt"],
        "createdAt survives a replace"
    );
    assert_datetime(&after["modifiedAt"]);
    assert!(
        after["modifiedAt"].as_str() >= before["modifiedAt"].as_str(),
        "modifiedAt moves forward"
    );
}

#[tokio::test]
async fn replace_entity_errors() {
    let api = api();
    let id = uid("Vehicle");
    api.create(&vehicle(&id)).await;
    // Unknown entity.
    let r = api
        .put(&ent(&uid("Vehicle")), &json!({ "type": "Vehicle", "a": 1 }))
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    // Id in the body differs from the path.
    let r = api
        .put(
            &ent(&id),
            &json!({ "id": uid("Vehicle"), "type": "Vehicle", "a": 1 }),
        )
        .await;
    assert_problem(&r, 400, "BadRequestData");
    // Nothing changed.
    assert_eq!(api.entity(&id).await, vehicle(&id));
}

#[tokio::test]
async fn merge_entity_with_patch() {
    let api = api();
    let id = uid("Vehicle");
    api.create(&vehicle(&id)).await;
    let r = api
        .patch(
            &ent(&id),
            &json!({
                "speed": { "type": "Property", "value": 99 },
                "color": { "type": "Property", "value": "blue" },
                "brand": "urn:ngsi-ld:null"
            }),
        )
        .await;
    r.expect(204);
    let e = api.entity(&id).await;
    assert_eq!(e["speed"]["value"], json!(99));
    assert_eq!(
        e["speed"]["unitCode"],
        json!("KMH"),
        "merge keeps members of the attribute it did not mention: {e}"
    );
    assert_eq!(e["color"]["value"], json!("blue"));
    assert!(
        e.get("brand").is_none(),
        "urn:ngsi-ld:null deletes the attribute: {e}"
    );
    assert_eq!(
        e["isParked"]["object"],
        json!("urn:ngsi-ld:OffStreetParking:Downtown1")
    );
}

#[tokio::test]
async fn merge_unknown_entity_is_404() {
    let api = api();
    api.create(&vehicle(&uid("Vehicle"))).await;
    let r = api.patch(&ent(&uid("Vehicle")), &json!({ "a": 1 })).await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test]
async fn delete_entity_then_404() {
    let api = api();
    let id = uid("Vehicle");
    api.create(&vehicle(&id)).await;
    let r = api.delete(&ent(&id)).await;
    r.expect(204);
    assert_eq!(r.text, "");
    assert_problem(&api.get(&ent(&id)).await, 404, "ResourceNotFound");
    assert_problem(&api.delete(&ent(&id)).await, 404, "ResourceNotFound");
    // The id can be used again.
    api.create(&vehicle(&id)).await;
}

#[tokio::test]
async fn multi_typed_entity() {
    let api = api();
    let id = uid("Thing");
    api.create(&json!({
        "id": id,
        "type": ["Vehicle", "Asset"],
        "speed": { "type": "Property", "value": 3 }
    }))
    .await;
    let e = api.entity(&id).await;
    let mut types: Vec<String> = serde_json::from_value(e["type"].clone()).expect("type array");
    types.sort();
    assert_eq!(types, vec!["Asset", "Vehicle"]);
    for t in ["Vehicle", "Asset"] {
        let r = api.get(&format!("/entities?type={t}")).await;
        r.expect(200);
        let ids: Vec<Value> = r
            .json()
            .as_array()
            .expect("array")
            .iter()
            .map(|e| e["id"].clone())
            .collect();
        assert_eq!(ids, vec![json!(id)], "query by type {t}");
    }
    // Merging adds a type.
    api.patch(&ent(&id), &json!({ "type": "Robot" }))
        .await
        .expect(204);
    let e = api.entity(&id).await;
    assert_eq!(e["type"].as_array().map(Vec::len), Some(3), "{e}");
}

#[tokio::test]
async fn scope_is_stored_and_returned() {
    let api = api();
    let id = uid("Vehicle");
    api.create(&json!({
        "id": id,
        "type": "Vehicle",
        "scope": ["/Nice/Airport", "/Fleet", "/Marseille/Vieux-Port_2"],
        "speed": { "type": "Property", "value": 3 }
    }))
    .await;
    let e = api.entity(&id).await;
    // Levels keep the territory's own names (dashes, digits after the first letter).
    assert_eq!(
        e["scope"],
        json!(["/Nice/Airport", "/Fleet", "/Marseille/Vieux-Port_2"])
    );
    let r = api
        .post(
            "/entities",
            &json!({ "id": uid("V"), "type": "V", "scope": "no-slash" }),
        )
        .await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test]
async fn concise_input_reads_back_normalized() {
    let api = api();
    let id = uid("WaterObserved");
    api.create(&json!({
        "id": id,
        "type": "WaterObserved",
        "temperature": 21.5,
        "name": "Var river",
        "isOk": true,
        "measures": [1, 2, 3],
        "details": { "depth": 3, "unit": "m" },
        "withUnit": { "value": 12, "unitCode": "MTR" },
        "location": { "type": "Point", "coordinates": [7.19, 43.66] },
        "refDevice": { "object": "urn:ngsi-ld:Device:d1" },
        "label": { "languageMap": { "en": "river", "fr": "rivière" } },
        "category": { "vocab": "Simple" },
        "config": { "json": { "a": [1, { "b": null }] } }
    }))
    .await;
    let e = api.entity(&id).await;
    assert_eq!(
        e["temperature"],
        json!({ "type": "Property", "value": 21.5 })
    );
    assert_eq!(
        e["name"],
        json!({ "type": "Property", "value": "Var river" })
    );
    assert_eq!(e["isOk"], json!({ "type": "Property", "value": true }));
    assert_eq!(
        e["measures"],
        json!({ "type": "Property", "value": [1, 2, 3] })
    );
    assert_eq!(
        e["details"],
        json!({ "type": "Property", "value": { "depth": 3, "unit": "m" } })
    );
    assert_eq!(
        e["withUnit"],
        json!({ "type": "Property", "value": 12, "unitCode": "MTR" })
    );
    assert_eq!(
        e["location"],
        json!({ "type": "GeoProperty", "value": { "type": "Point", "coordinates": [7.19, 43.66] } })
    );
    assert_eq!(
        e["refDevice"],
        json!({ "type": "Relationship", "object": "urn:ngsi-ld:Device:d1" })
    );
    assert_eq!(
        e["label"],
        json!({ "type": "LanguageProperty", "languageMap": { "en": "river", "fr": "rivière" } })
    );
    assert_eq!(
        e["category"],
        json!({ "type": "VocabProperty", "vocab": "Simple" })
    );
    assert_eq!(
        e["config"],
        json!({ "type": "JsonProperty", "json": { "a": [1, { "b": null }] } })
    );
}

#[tokio::test]
async fn entity_ids_with_url_form_and_reserved_characters() {
    let api = api();
    let id = format!(
        "http://example.org/things/{}",
        uuid::Uuid::new_v4().simple()
    );
    api.create(&json!({ "id": id, "type": "Thing", "n": 1 }))
        .await;
    let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let e = api.entity(&encoded).await;
    assert_eq!(e["id"], json!(id));
    api.delete(&ent(&encoded)).await.expect(204);
}

#[tokio::test]
async fn system_attributes_sent_by_clients_are_ignored() {
    let api = api();
    let id = uid("Vehicle");
    api.create(&json!({
        "id": id,
        "type": "Vehicle",
        "createdAt": "1999-01-01T00:00:00Z",
        "speed": { "type": "Property", "value": 1, "createdAt": "1999-01-01T00:00:00Z" }
    }))
    .await;
    let e = api.entity_q(&id, "?options=sysAttrs").await;
    assert_ne!(e["createdAt"], json!("1999-01-01T00:00:00Z"));
    assert!(
        !e["createdAt"]
            .as_str()
            .unwrap_or("1999")
            .starts_with("1999"),
        "{e}"
    );
    assert!(
        !e["speed"]["createdAt"]
            .as_str()
            .unwrap_or("1999")
            .starts_with("1999"),
        "{e}"
    );
}

#[tokio::test]
async fn merge_accepts_merge_patch_json() {
    let api = api();
    let id = uid("Vehicle");
    api.create(&vehicle(&id)).await;
    let r = api
        .body(
            Method::PATCH,
            &ent(&id),
            "application/merge-patch+json",
            &json!({ "speed": { "type": "Property", "value": 5 } }).to_string(),
        )
        .await;
    r.expect(204);
    assert_eq!(api.entity(&id).await["speed"]["value"], json!(5));
}

#[tokio::test]
async fn json_values_round_trip_exactly() {
    let api = api();
    let id = uid("Thing");
    let value = json!({
        "unicode": "Čeština, 日本語, emoji 🌊, quote \" backslash \\ tab \t",
        "big": 12345678901234567890u64,
        "negative": -9007199254740993i64,
        "float": 1.5e300,
        "small": -2.5e-10,
        "nested": [[1, [2, [3]]], { "k": [0, true, false] }],
        "empty": { "a": [], "b": {} }
    });
    api.create(&json!({ "id": id, "type": "Thing", "p": { "type": "Property", "value": value } }))
        .await;
    assert_eq!(api.entity(&id).await["p"]["value"], value);
    let kv = api.entity_q(&id, "?options=keyValues").await;
    assert_eq!(kv["p"], value);
}

#[tokio::test]
async fn transient_entity_expires() {
    let api = api();
    let id = uid("Transient");
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    api.create(&json!({
        "id": id,
        "type": "Transient",
        "expiresAt": expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "v": 1
    }))
    .await;
    // expiresAt is a system member: shown with sysAttrs only (ETSI 6311_01).
    let e = api
        .get(&format!("{}?options=sysAttrs", ent(&id)))
        .await
        .expect(200)
        .json();
    assert_datetime(&e["expiresAt"]);
    assert!(api.entity(&id).await.get("expiresAt").is_none());
    // Poll (with a deadline) until it is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = api.get(&ent(&id)).await;
        if r.status == 404 {
            assert_problem(&r, 404, "ResourceNotFound");
            break;
        }
        r.expect(200);
        assert!(
            std::time::Instant::now() < deadline,
            "the entity is still there 18 s after its expiresAt"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let r = api.get("/entities?type=Transient").await;
    assert_eq!(r.expect(200).json(), json!([]));
    // Its id can be reused.
    api.create(&json!({ "id": id, "type": "Transient" })).await;
}

/// `expiresAt` reads back as it was written (ETSI 6311_01_02), while expiry compares
/// instants: a time written with an offset expires at the instant it names.
#[tokio::test]
async fn expires_at_reads_back_as_written_and_expires_by_instant() {
    let api = api();
    let id = uid("Ephemeral");
    api.create(&json!({ "id": id, "type": "Ephemeral", "expiresAt": "2100-01-01T00:00:00Z" }))
        .await;
    let e = api
        .get(&format!("{}?options=sysAttrs", ent(&id)))
        .await
        .expect(200)
        .json();
    assert_eq!(e["expiresAt"], json!("2100-01-01T00:00:00Z"));
    // 01:00 at +02:00 is 23:00 UTC the day before: long past.
    let gone = uid("Ephemeral");
    api.create(
        &json!({ "id": gone, "type": "Ephemeral", "expiresAt": "2000-01-01T01:00:00+02:00" }),
    )
    .await;
    let r = api.get(&ent(&gone)).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let later = uid("Ephemeral");
    api.create(
        &json!({ "id": later, "type": "Ephemeral", "expiresAt": "2999-12-31T23:00:00-02:00" }),
    )
    .await;
    let e = api
        .get(&format!("{}?options=sysAttrs", ent(&later)))
        .await
        .expect(200)
        .json();
    assert_eq!(e["expiresAt"], json!("2999-12-31T23:00:00-02:00"));
    let r = api.get("/entities?type=Ephemeral&options=sysAttrs").await;
    let ids: Vec<String> = r
        .expect(200)
        .json()
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert!(ids.contains(&later) && ids.contains(&id), "{ids:?}");
    assert!(!ids.contains(&gone), "{ids:?}");
}

#[tokio::test]
async fn core_context_terms_expand_to_the_default_vocabulary() {
    let api = api();
    let id = uid("Vehicle");
    api.create(&vehicle(&id)).await;
    let iri = "https://uri.etsi.org/ngsi-ld/default-context/Vehicle";
    let q: String = url::form_urlencoded::byte_serialize(iri.as_bytes()).collect();
    let r = api.get(&format!("/entities?type={q}")).await;
    let v = r.expect(200).json();
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(
        v[0]["type"],
        json!("Vehicle"),
        "compacted back with the core context"
    );
}

/// The null marker removes `expiresAt` in a merge fragment (clause 5.5.4), so the
/// entity no longer expires; it is refused at the top level of a temporal entity.
#[tokio::test]
async fn expires_at_removed_by_the_null_marker_in_a_merge() {
    let api = api();
    let id = uid("Vehicle");
    api.post(
        "/entities",
        &json!({ "id": id, "type": "Vehicle", "expiresAt": "2099-01-01T00:00:00Z",
                 "speed": { "type": "Property", "value": 1 } }),
    )
    .await
    .expect(201);
    api.patch(&ent(&id), &json!({ "expiresAt": "urn:ngsi-ld:null" }))
        .await
        .expect(204);
    let e = api.entity_q(&id, "?options=sysAttrs").await;
    assert!(
        e.get("createdAt").is_some() && e.get("expiresAt").is_none(),
        "{e}"
    );

    let temporal = uid("Vehicle");
    let r = api
        .post(
            "/temporal/entities",
            &json!({ "id": temporal, "type": "Vehicle", "expiresAt": "urn:ngsi-ld:null",
                     "speed": [{ "type": "Property", "value": 1, "observedAt": "2026-01-01T00:00:00Z" }] }),
        )
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = api.get(&format!("/temporal/entities/{temporal}")).await;
    assert_problem(&r, 404, "ResourceNotFound");
}

/// A transient attribute's expiresAt is a system member: shown with sysAttrs only.
#[tokio::test]
async fn attribute_expires_at_is_shown_with_sys_attrs_only() {
    let api = api();
    let id = uid("Vehicle");
    api.post(
        "/entities",
        &json!({ "id": id, "type": "Vehicle",
                 "speed": { "type": "Property", "value": 7, "expiresAt": "2100-01-01T00:00:00Z" } }),
    )
    .await
    .expect(201);
    let plain = api.entity(&id).await;
    assert!(plain["speed"].get("expiresAt").is_none(), "{plain}");
    let sys = api.entity_q(&id, "?options=sysAttrs").await;
    assert_eq!(
        sys["speed"]["expiresAt"],
        json!("2100-01-01T00:00:00Z"),
        "{sys}"
    );
}
