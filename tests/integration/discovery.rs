//! Issue 3: discovery of entity types and attributes (`/types`, `/types/{type}`,
//! `/attributes`, `/attributes/{attr}`, with `details=true`), compacted with the
//! request's context, on a small metropolitan dataset in each test's tenant.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

const DEFAULT_VOCAB: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

fn prop(v: Value) -> Value {
    json!({ "type": "Property", "value": v })
}

fn point(lon: f64, lat: f64) -> Value {
    json!({ "type": "GeoProperty", "value": { "type": "Point", "coordinates": [lon, lat] } })
}

fn rel(object: &str) -> Value {
    json!({ "type": "Relationship", "object": object })
}

/// 3 WasteContainers, 2 NoiseLevelObserved, 1 WaterObserved, 1 Device, 1 WeatherObserved.
/// `owner` is a Property on the Device and a Relationship on the WaterObserved.
async fn city(api: &Api) {
    let dev = "urn:ngsi-ld:Device:probe-berre";
    let entities = json!([
        { "id": "urn:ngsi-ld:WasteContainer:wc1", "type": "WasteContainer",
          "fillingLevel": prop(json!(0.8)), "status": prop(json!("ok")),
          "refDevice": rel(dev), "location": point(5.3698, 43.2951) },
        { "id": "urn:ngsi-ld:WasteContainer:wc2", "type": "WasteContainer",
          "fillingLevel": prop(json!(0.2)), "status": prop(json!("ok")),
          "location": point(5.3750, 43.2951) },
        { "id": "urn:ngsi-ld:WasteContainer:wc3", "type": "WasteContainer",
          "fillingLevel": prop(json!(1.0)), "location": point(5.4474, 43.5297) },
        { "id": "urn:ngsi-ld:NoiseLevelObserved:n1", "type": "NoiseLevelObserved",
          "LAeq": prop(json!(65.5)), "location": point(5.3720, 43.2960) },
        { "id": "urn:ngsi-ld:NoiseLevelObserved:n2", "type": "NoiseLevelObserved",
          "LAeq": prop(json!(48.0)), "location": point(5.4450, 43.5280) },
        { "id": "urn:ngsi-ld:WaterObserved:w1", "type": "WaterObserved",
          "flow": prop(json!(12.5)), "refDevice": rel(dev),
          "owner": rel("urn:ngsi-ld:Organization:metropole"),
          "location": point(5.1600, 43.4500) },
        { "id": dev, "type": "Device",
          "batteryLevel": prop(json!(0.75)), "owner": prop(json!("Metropole AMP")),
          "location": point(5.1600, 43.4500) },
        { "id": "urn:ngsi-ld:WeatherObserved:m1", "type": "WeatherObserved",
          "temperature": prop(json!(21.5)),
          "name": { "type": "LanguageProperty", "languageMap": { "fr": "Marignane", "en": "Marignane" } },
          "location": point(5.2150, 43.4370) }
    ]);
    let r = api.post("/entityOperations/create", &entities).await;
    assert_eq!(r.status, 201, "creating the dataset failed: {}", r.text);
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array of strings: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("not a string: {s}"))
                .to_string()
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn assert_uri(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("id must be a string: {v}"));
    assert!(
        url::Url::parse(s).is_ok() && s.contains(':'),
        "id must be a URI: {s}"
    );
}

const ALL_TYPES: &[&str] = &[
    "Device",
    "NoiseLevelObserved",
    "WasteContainer",
    "WaterObserved",
    "WeatherObserved",
];

#[tokio::test]
async fn types_list() {
    let api = api();
    city(&api).await;
    let r = api.get("/types").await;
    r.expect(200);
    assert!(r.content_type().starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["type"], json!("EntityTypeList"), "{v}");
    assert_uri(&v["id"]);
    assert_eq!(strings(&v["typeList"]), set(ALL_TYPES), "{v}");
    assert_eq!(
        v["typeList"].as_array().map(Vec::len),
        Some(ALL_TYPES.len()),
        "no duplicates: {v}"
    );

    // JSON-LD: the same, with an @context.
    let r = api
        .get_with("/types", &[("Accept", "application/ld+json")])
        .await;
    r.expect(200);
    assert!(r.content_type().starts_with("application/ld+json"));
    let v = r.json();
    assert!(v.get("@context").is_some(), "{v}");
    assert_eq!(strings(&v["typeList"]), set(ALL_TYPES));

    // Tenants are separate.
    let other = api.in_tenant(Some(&new_tenant()));
    city(&other).await;
    other
        .delete("/entities?type=NoiseLevelObserved")
        .await
        .expect(204);
    let v = other.get("/types").await.expect(200).json();
    assert!(
        !strings(&v["typeList"]).contains("NoiseLevelObserved"),
        "{v}"
    );
    let v = api.get("/types").await.expect(200).json();
    assert!(
        strings(&v["typeList"]).contains("NoiseLevelObserved"),
        "{v}"
    );
}

#[tokio::test]
async fn types_with_details() {
    let api = api();
    city(&api).await;
    let v = api.get("/types?details=true").await.expect(200).json();
    let items = v
        .as_array()
        .unwrap_or_else(|| panic!("details=true gives an array of EntityType: {v}"));
    assert_eq!(items.len(), ALL_TYPES.len(), "{v}");
    let mut by_name = BTreeMap::new();
    for t in items {
        assert_eq!(t["type"], json!("EntityType"), "{t}");
        let name = t["typeName"].as_str().expect("typeName").to_string();
        assert_eq!(t["id"], json!(format!("{DEFAULT_VOCAB}{name}")), "{t}");
        by_name.insert(name, strings(&t["attributeNames"]));
    }
    assert_eq!(
        by_name.keys().cloned().collect::<BTreeSet<_>>(),
        set(ALL_TYPES)
    );
    assert_eq!(
        by_name["WasteContainer"],
        set(&["fillingLevel", "status", "refDevice", "location"])
    );
    assert_eq!(by_name["NoiseLevelObserved"], set(&["LAeq", "location"]));
    assert_eq!(
        by_name["WaterObserved"],
        set(&["flow", "refDevice", "owner", "location"])
    );
    assert_eq!(
        by_name["Device"],
        set(&["batteryLevel", "owner", "location"])
    );
    assert_eq!(
        by_name["WeatherObserved"],
        set(&["temperature", "name", "location"])
    );
}

#[tokio::test]
async fn type_info_and_unknown_type() {
    let api = api();
    city(&api).await;
    let v = api.get("/types/WasteContainer").await.expect(200).json();
    assert_eq!(v["type"], json!("EntityTypeInfo"), "{v}");
    assert_eq!(v["id"], json!(format!("{DEFAULT_VOCAB}WasteContainer")));
    assert_eq!(v["typeName"], json!("WasteContainer"));
    assert_eq!(v["entityCount"], json!(3), "{v}");
    let details: BTreeMap<String, (Value, BTreeSet<String>)> = v["attributeDetails"]
        .as_array()
        .unwrap_or_else(|| panic!("attributeDetails: {v}"))
        .iter()
        .map(|a| {
            assert_eq!(a["type"], json!("Attribute"), "{a}");
            let name = a["attributeName"]
                .as_str()
                .expect("attributeName")
                .to_string();
            (name, (a["id"].clone(), strings(&a["attributeTypes"])))
        })
        .collect();
    assert_eq!(
        details.keys().cloned().collect::<BTreeSet<_>>(),
        set(&["fillingLevel", "status", "refDevice", "location"])
    );
    assert_eq!(details["fillingLevel"].1, set(&["Property"]));
    assert_eq!(details["status"].1, set(&["Property"]));
    assert_eq!(details["refDevice"].1, set(&["Relationship"]));
    assert_eq!(details["location"].1, set(&["GeoProperty"]));
    assert_eq!(
        details["fillingLevel"].0,
        json!(format!("{DEFAULT_VOCAB}fillingLevel"))
    );
    // location is a core term: its IRI is the core one.
    assert_eq!(
        details["location"].0,
        json!("https://uri.etsi.org/ngsi-ld/location")
    );

    let v = api
        .get("/types/NoiseLevelObserved")
        .await
        .expect(200)
        .json();
    assert_eq!(v["entityCount"], json!(2), "{v}");
    let v = api.get("/types/Device").await.expect(200).json();
    assert_eq!(v["entityCount"], json!(1), "{v}");

    // The full IRI names the same type.
    let iri = format!("{DEFAULT_VOCAB}WaterObserved");
    let r = api
        .send(api.req(
            Method::GET,
            &format!(
                "/types/{}",
                url::form_urlencoded::byte_serialize(iri.as_bytes()).collect::<String>()
            ),
        ))
        .await;
    let v = r.expect(200).json();
    assert_eq!(v["typeName"], json!("WaterObserved"), "{v}");
    assert_eq!(v["entityCount"], json!(1));

    // Unknown types: 404 ResourceNotFound.
    assert_problem(&api.get("/types/Tramway").await, 404, "ResourceNotFound");
    // A type known in another tenant only.
    let other = api.in_tenant(Some(&new_tenant()));
    other
        .create(&json!({ "id": "urn:ngsi-ld:Tramway:t1", "type": "Tramway" }))
        .await;
    assert_problem(&api.get("/types/Tramway").await, 404, "ResourceNotFound");
    other.get("/types/Tramway").await.expect(200);
}

#[tokio::test]
async fn attributes_list_and_details() {
    let api = api();
    city(&api).await;
    let all = set(&[
        "fillingLevel",
        "status",
        "refDevice",
        "location",
        "LAeq",
        "flow",
        "owner",
        "batteryLevel",
        "temperature",
        "name",
    ]);
    let v = api.get("/attributes").await.expect(200).json();
    assert_eq!(v["type"], json!("AttributeList"), "{v}");
    assert_uri(&v["id"]);
    assert_eq!(strings(&v["attributeList"]), all, "{v}");
    assert_eq!(v["attributeList"].as_array().map(Vec::len), Some(all.len()));

    let v = api.get("/attributes?details=true").await.expect(200).json();
    let items = v
        .as_array()
        .unwrap_or_else(|| panic!("details=true gives an array of Attribute: {v}"));
    let by_name: BTreeMap<String, Value> = items
        .iter()
        .map(|a| {
            assert_eq!(a["type"], json!("Attribute"), "{a}");
            (
                a["attributeName"]
                    .as_str()
                    .expect("attributeName")
                    .to_string(),
                a.clone(),
            )
        })
        .collect();
    assert_eq!(by_name.keys().cloned().collect::<BTreeSet<_>>(), all);
    let loc = &by_name["location"];
    assert_eq!(strings(&loc["typeNames"]), set(ALL_TYPES), "{loc}");
    assert_eq!(strings(&loc["attributeTypes"]), set(&["GeoProperty"]));
    let r = &by_name["refDevice"];
    assert_eq!(
        strings(&r["typeNames"]),
        set(&["WasteContainer", "WaterObserved"]),
        "{r}"
    );
    assert_eq!(strings(&r["attributeTypes"]), set(&["Relationship"]));
    let owner = &by_name["owner"];
    assert_eq!(
        strings(&owner["attributeTypes"]),
        set(&["Property", "Relationship"]),
        "{owner}"
    );
    assert_eq!(
        strings(&owner["typeNames"]),
        set(&["Device", "WaterObserved"])
    );
    assert_eq!(
        strings(&by_name["name"]["attributeTypes"]),
        set(&["LanguageProperty"])
    );
}

#[tokio::test]
async fn attribute_info_and_unknown_attribute() {
    let api = api();
    city(&api).await;
    let v = api.get("/attributes/fillingLevel").await.expect(200).json();
    assert_eq!(v["type"], json!("Attribute"), "{v}");
    assert_eq!(v["id"], json!(format!("{DEFAULT_VOCAB}fillingLevel")));
    assert_eq!(v["attributeName"], json!("fillingLevel"));
    assert_eq!(v["attributeCount"], json!(3), "{v}");
    assert_eq!(strings(&v["attributeTypes"]), set(&["Property"]));
    assert_eq!(strings(&v["typeNames"]), set(&["WasteContainer"]));

    let v = api.get("/attributes/location").await.expect(200).json();
    assert_eq!(v["attributeCount"], json!(8), "{v}");
    assert_eq!(strings(&v["typeNames"]), set(ALL_TYPES));

    let v = api.get("/attributes/refDevice").await.expect(200).json();
    assert_eq!(v["attributeCount"], json!(2), "{v}");
    assert_eq!(strings(&v["attributeTypes"]), set(&["Relationship"]));

    assert_problem(
        &api.get("/attributes/occupancy").await,
        404,
        "ResourceNotFound",
    );
    // After the last entity with an attribute is gone, so is the attribute.
    api.delete("/entities/urn:ngsi-ld:Device:probe-berre")
        .await
        .expect(204);
    let v = api.get("/attributes/owner").await.expect(200).json();
    assert_eq!(strings(&v["typeNames"]), set(&["WaterObserved"]), "{v}");
    assert_eq!(strings(&v["attributeTypes"]), set(&["Relationship"]), "{v}");
    assert_problem(
        &api.get("/attributes/batteryLevel").await,
        404,
        "ResourceNotFound",
    );
    assert_problem(&api.get("/types/Device").await, 404, "ResourceNotFound");
}

#[tokio::test]
async fn discovery_is_compacted_with_the_request_context() {
    let api = api();
    let water = json!({
        "id": "urn:ngsi-ld:WaterObserved:huveaune",
        "type": "WaterObserved",
        "flow": { "type": "Property", "value": 3.2 },
        "refDevice": { "type": "Relationship", "object": "urn:ngsi-ld:Device:h1" },
        "location": point(5.43, 43.28)
    });
    api.json_linked(Method::POST, "/entities", &water, SDM_ENVIRONMENT)
        .await
        .expect(201);
    let with_link = [("Link", link(SDM_ENVIRONMENT))];
    let with_link: Vec<(&str, &str)> = with_link.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Without the context the Smart Data Models names stay full IRIs.
    let v = api.get("/types").await.expect(200).json();
    assert_eq!(
        strings(&v["typeList"]),
        set(&[format!("{SDM_ENV_PREFIX}WaterObserved").as_str()]),
        "{v}"
    );
    // With it they are short.
    let v = api.get_with("/types", &with_link).await.expect(200).json();
    assert_eq!(strings(&v["typeList"]), set(&["WaterObserved"]), "{v}");
    let v = api
        .get_with("/types?details=true", &with_link)
        .await
        .expect(200)
        .json();
    assert_eq!(v[0]["typeName"], json!("WaterObserved"), "{v}");
    assert_eq!(v[0]["id"], json!(format!("{SDM_ENV_PREFIX}WaterObserved")));
    assert_eq!(
        strings(&v[0]["attributeNames"]),
        set(&["flow", "refDevice", "location"]),
        "{v}"
    );
    let v = api
        .get_with("/types/WaterObserved", &with_link)
        .await
        .expect(200)
        .json();
    assert_eq!(v["entityCount"], json!(1), "{v}");
    // Without the context, WaterObserved is another (default-context) type.
    assert_problem(
        &api.get("/types/WaterObserved").await,
        404,
        "ResourceNotFound",
    );

    let v = api
        .get_with("/attributes", &with_link)
        .await
        .expect(200)
        .json();
    assert_eq!(
        strings(&v["attributeList"]),
        set(&["flow", "refDevice", "location"]),
        "{v}"
    );
    let v = api.get("/attributes").await.expect(200).json();
    assert_eq!(
        strings(&v["attributeList"]),
        set(&[
            format!("{SDM_ENV_PREFIX}flow").as_str(),
            format!("{SDM_ENV_PREFIX}refDevice").as_str(),
            "location"
        ]),
        "{v}"
    );
    let v = api
        .get_with("/attributes/flow", &with_link)
        .await
        .expect(200)
        .json();
    assert_eq!(v["attributeName"], json!("flow"));
    assert_eq!(v["typeNames"], json!(["WaterObserved"]), "{v}");
    assert_problem(&api.get("/attributes/flow").await, 404, "ResourceNotFound");

    // q uses the same context to expand its names.
    let r = api
        .send(
            api.req(Method::GET, "/entities")
                .query(&[("type", "WaterObserved"), ("q", "flow>3")])
                .header("Link", link(SDM_ENVIRONMENT)),
        )
        .await;
    assert_eq!(r.expect(200).json().as_array().map(Vec::len), Some(1));
    let r = api
        .send(api.req(Method::GET, "/entities").query(&[("q", "flow>3")]))
        .await;
    assert_eq!(r.expect(200).json(), json!([]));
}

#[tokio::test]
async fn discovery_parameter_errors() {
    let api = api();
    city(&api).await;
    assert_problem(
        &api.get("/types?details=maybe").await,
        400,
        "BadRequestData",
    );
    assert_problem_any(&api.get("/types?colour=red").await, 400, UNKNOWN_PARAM);
    assert_problem_any(&api.get("/attributes?colour=red").await, 400, UNKNOWN_PARAM);
    // details=false is the plain list.
    let v = api
        .get("/attributes?details=false")
        .await
        .expect(200)
        .json();
    assert_eq!(v["type"], json!("AttributeList"), "{v}");
}

/// Undefined parameters are refused before anything is looked up: `details` belongs to
/// the lists, `limit` to no discovery endpoint.
#[tokio::test]
async fn discovery_refuses_parameters_it_does_not_define() {
    let api = api();
    for path in [
        "/attributes?limit=5",
        "/types?limit=5",
        "/attributes/neverSeen?details=true",
        "/types/NeverSeen?details=true",
    ] {
        let r = api.get(path).await;
        assert_problem_any(&r, 400, UNKNOWN_PARAM);
    }
}
