//! Bad input: always a 4xx ProblemDetails, never a 500, and nothing stored is damaged.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn good(id: &str) -> Value {
    json!({
        "id": id,
        "type": "Sensor",
        "temperature": { "type": "Property", "value": 20, "observedAt": "2024-01-01T00:00:00Z" },
        "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [7.2, 43.7] } },
        "owner": { "type": "Relationship", "object": "urn:ngsi-ld:Person:p1" }
    })
}

/// Bodies that must be refused on create, with the expected error type.
fn bad_entities(id: &str) -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("not an object", json!([good(id)]), "InvalidRequest"),
        ("a string", json!("entity"), "InvalidRequest"),
        (
            "null inside a Property value",
            json!({"id": id, "type": "T", "p": {"type": "Property", "value": {"a": null}}}),
            "BadRequestData",
        ),
        (
            "observedAt with an offset instead of Z",
            json!({"id": id, "type": "T", "p": {"type": "Property", "value": 1, "observedAt": "2024-01-01T01:00:00+01:00"}}),
            "BadRequestData",
        ),
        (
            "unitCode on a Relationship",
            json!({"id": id, "type": "T", "r": {"type": "Relationship", "object": "urn:a:b", "unitCode": "MTR"}}),
            "BadRequestData",
        ),
        (
            "a GeometryCollection",
            json!({"id": id, "type": "T", "location": {"type": "GeoProperty", "value": {"type": "GeometryCollection", "geometries": []}}}),
            "BadRequestData",
        ),
        (
            "location as a plain Property",
            json!({"id": id, "type": "T", "location": {"type": "Property", "value": "here"}}),
            "BadRequestData",
        ),
        (
            "a zero-width space in the id",
            json!({"id": format!("{id}\u{200B}x"), "type": "T"}),
            "BadRequestData",
        ),
        (
            "a type starting with a digit",
            json!({"id": id, "type": "9Lives"}),
            "BadRequestData",
        ),
        (
            "a core member name as attribute name",
            json!({"id": id, "type": "T", "datasetId": {"type": "Property", "value": 1}}),
            "BadRequestData",
        ),
        (
            "an output-only previousValue",
            json!({"id": id, "type": "T", "p": {"type": "Property", "value": 1, "previousValue": 0}}),
            "BadRequestData",
        ),
        (
            "a keyword alias as type",
            json!({"id": id, "type": "type"}),
            "BadRequestData",
        ),
        (
            "id not a URI",
            json!({ "id": "not a uri", "type": "T" }),
            "BadRequestData",
        ),
        (
            "id without scheme",
            json!({ "id": "plainword", "type": "T" }),
            "BadRequestData",
        ),
        (
            "id not a string",
            json!({ "id": 42, "type": "T" }),
            "BadRequestData",
        ),
        ("missing id", json!({ "type": "T" }), "BadRequestData"),
        ("missing type", json!({ "id": id }), "BadRequestData"),
        (
            "type not a string",
            json!({ "id": id, "type": 3 }),
            "BadRequestData",
        ),
        (
            "empty type array",
            json!({ "id": id, "type": [] }),
            "BadRequestData",
        ),
        (
            "forbidden char in type",
            json!({ "id": id, "type": "Se(nsor" }),
            "BadRequestData",
        ),
        (
            "forbidden char in attribute name",
            json!({ "id": id, "type": "T", "a(b": { "type": "Property", "value": 1 } }),
            "BadRequestData",
        ),
        (
            "attribute name with a quote",
            json!({ "id": id, "type": "T", "a\"b": 1 }),
            "BadRequestData",
        ),
        (
            "attribute name with a space",
            json!({ "id": id, "type": "T", "a b": 1 }),
            "BadRequestData",
        ),
        (
            "Property without value",
            json!({ "id": id, "type": "T", "p": { "type": "Property" } }),
            "BadRequestData",
        ),
        (
            "Property with null value",
            json!({ "id": id, "type": "T", "p": { "type": "Property", "value": null } }),
            "BadRequestData",
        ),
        (
            "Relationship without object",
            json!({ "id": id, "type": "T", "r": { "type": "Relationship" } }),
            "BadRequestData",
        ),
        (
            "Relationship with a non-URI object",
            json!({ "id": id, "type": "T", "r": { "type": "Relationship", "object": "not a uri" } }),
            "BadRequestData",
        ),
        (
            "Relationship with a numeric object",
            json!({ "id": id, "type": "T", "r": { "type": "Relationship", "object": 5 } }),
            "BadRequestData",
        ),
        (
            "GeoProperty with latitude 100",
            json!({ "id": id, "type": "T", "location": { "type": "GeoProperty",
                    "value": { "type": "Point", "coordinates": [7.2, 100.0] } } }),
            "BadRequestData",
        ),
        (
            "GeoProperty with an unknown geometry",
            json!({ "id": id, "type": "T", "location": { "type": "GeoProperty",
                    "value": { "type": "Circle", "coordinates": [7.2, 43.0] } } }),
            "BadRequestData",
        ),
        (
            "GeoProperty with a string value",
            json!({ "id": id, "type": "T", "location": { "type": "GeoProperty", "value": "Nice" } }),
            "BadRequestData",
        ),
        (
            "observedAt not a date",
            json!({ "id": id, "type": "T", "p": { "type": "Property", "value": 1, "observedAt": "yesterday" } }),
            "BadRequestData",
        ),
        (
            "unitCode not a string",
            json!({ "id": id, "type": "T", "p": { "type": "Property", "value": 1, "unitCode": 5 } }),
            "BadRequestData",
        ),
        (
            "duplicate datasetId",
            json!({ "id": id, "type": "T", "p": [
                { "type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:ds:1" },
                { "type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:ds:1" }
            ] }),
            "BadRequestData",
        ),
        (
            "two default instances",
            json!({ "id": id, "type": "T", "p": [
                { "type": "Property", "value": 1 },
                { "type": "Property", "value": 2 }
            ] }),
            "BadRequestData",
        ),
        (
            "datasetId not a URI",
            json!({ "id": id, "type": "T", "p": { "type": "Property", "value": 1, "datasetId": "ds 1" } }),
            "BadRequestData",
        ),
        (
            "unknown attribute type",
            json!({ "id": id, "type": "T", "p": { "type": "Propertee", "value": 1 } }),
            "BadRequestData",
        ),
        (
            "LanguageProperty with a number",
            json!({ "id": id, "type": "T", "l": { "type": "LanguageProperty", "languageMap": { "en": 1 } } }),
            "BadRequestData",
        ),
        (
            "LanguageProperty whose valueType is not langString",
            json!({ "id": id, "type": "T", "l": { "type": "LanguageProperty", "languageMap": { "en": "x" }, "valueType": "xsd:string" } }),
            "BadRequestData",
        ),
        (
            "JsonProperty with a scalar",
            json!({ "id": id, "type": "T", "j": { "type": "JsonProperty", "json": 1 } }),
            "BadRequestData",
        ),
        (
            "ListProperty with an object",
            json!({ "id": id, "type": "T", "l": { "type": "ListProperty", "valueList": { "a": 1 } } }),
            "BadRequestData",
        ),
        (
            "scope without slash",
            json!({ "id": id, "type": "T", "scope": "city" }),
            "BadRequestData",
        ),
        (
            "scope with an empty level",
            json!({ "id": id, "type": "T", "scope": "/Marseille//Centre" }),
            "BadRequestData",
        ),
        (
            "scope ending with a separator",
            json!({ "id": id, "type": "T", "scope": ["/Aix", "/Marseille/"] }),
            "BadRequestData",
        ),
        (
            "scope of the root alone",
            json!({ "id": id, "type": "T", "scope": "/" }),
            "BadRequestData",
        ),
        (
            "the null URN as the entity id",
            json!({ "id": "urn:ngsi-ld:null", "type": "T" }),
            "BadRequestData",
        ),
        (
            "expiresAt not a date",
            json!({ "id": id, "type": "T", "expiresAt": "soon" }),
            "BadRequestData",
        ),
        (
            "Property with an object member",
            json!({ "id": id, "type": "T", "q": { "type": "Property", "value": 1, "object": "urn:a:b" } }),
            "BadRequestData",
        ),
    ]
}

#[tokio::test]
async fn invalid_entities_are_refused_on_create() {
    let api = api();
    api.create(&good(&uid("Sensor"))).await;
    for (what, body, kind) in bad_entities(&uid("Sensor")) {
        let r = api.post("/entities", &body).await;
        assert!(
            r.status != 500 && r.status >= 400 && r.status < 500,
            "{what}: {} {}",
            r.status,
            r.text
        );
        let got = r.json();
        assert_eq!(
            got["type"].as_str(),
            Some(format!("{ERR_PREFIX}{kind}").as_str()),
            "{what}: {} {}",
            r.status,
            r.text
        );
        assert_problem(&r, 400, kind);
        if let Some(id) = body.get("id").and_then(Value::as_str) {
            // (An id that is itself invalid cannot be read back: that GET is a 400.)
            if id.starts_with("urn:") && id.is_ascii() {
                assert_problem(&api.get(&ent(id)).await, 404, "ResourceNotFound");
            }
        }
    }
}

#[tokio::test]
async fn malformed_json_is_400_invalid_request() {
    let api = api();
    let id = uid("Sensor");
    api.create(&good(&id)).await;
    let before = api.entity(&id).await;
    for text in ["{", "{\"id\": \"urn:a:b\",}", "nul", "\u{0}", "[1, 2"] {
        let r = api
            .body(Method::POST, "/entities", "application/json", text)
            .await;
        assert_problem(&r, 400, "InvalidRequest");
        let r = api
            .body(
                Method::PATCH,
                &format!("/entities/{id}/attrs"),
                "application/json",
                text,
            )
            .await;
        assert_problem(&r, 400, "InvalidRequest");
    }
    // Empty body.
    let r = api
        .body(Method::POST, "/entities", "application/json", "")
        .await;
    // An empty body sent without Content-Length is refused before it is read (411).
    assert!(
        r.status == 400 || r.status == 411,
        "empty body: {} {}",
        r.status,
        r.text
    );
    // 411 is bare (clause 6.3.4: "just a 411 HTTP status code, without any payload body").
    if r.status == 400 {
        assert_problem_any(&r, 400, &["InvalidRequest", "BadRequestData"]);
    } else {
        assert!(r.text.is_empty(), "a 411 has no body: {}", r.text);
    }
    // Well-formed JSON that is not an object (ETSI 001_02_02), with either media type.
    for media in ["application/json", "application/ld+json"] {
        for text in ["[]", "[{\"id\": \"urn:a:b\"}]", "\"text\"", "3"] {
            let r = api.body(Method::POST, "/entities", media, text).await;
            assert_problem(&r, 400, "InvalidRequest");
        }
    }
    // Invalid UTF-8.
    let r = api
        .send(
            api.req(Method::POST, "/entities")
                .header("Content-Type", "application/json")
                .body(vec![b'{', 0xff, 0xfe, b'}']),
        )
        .await;
    assert_problem(&r, 400, "InvalidRequest");
    assert_eq!(api.entity(&id).await, before);
}

/// Every kind of bad update leaves the stored entity exactly as it was.
#[tokio::test]
async fn bad_updates_do_not_damage_the_entity() {
    let api = api();
    let id = uid("Sensor");
    api.create(&good(&id)).await;
    let before = api.entity_q(&id, "?options=sysAttrs").await;

    let attrs = format!("/entities/{id}/attrs");
    let temp = format!("/entities/{id}/attrs/temperature");
    let bad_bodies = vec![
        json!({ "temperature": { "type": "Property" } }),
        json!({ "a(b": 1 }),
        json!({ "owner": { "type": "Relationship", "object": "not a uri" } }),
        json!({ "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [1, 100] } } }),
        json!({ "temperature": { "type": "Property", "value": 1, "observedAt": "not a date" } }),
        json!({ "temperature": [
            { "type": "Property", "value": 1, "datasetId": "urn:ds:1" },
            { "type": "Property", "value": 2, "datasetId": "urn:ds:1" }
        ] }),
        // A valid attribute next to an invalid one: all or nothing.
        json!({ "temperature": { "type": "Property", "value": 99 }, "x y": 1 }),
        json!([1, 2]),
        json!("text"),
    ];
    for body in &bad_bodies {
        for (method, path) in [
            (Method::PATCH, attrs.as_str()),
            (Method::POST, attrs.as_str()),
            (Method::PATCH, format!("/entities/{id}").as_str()),
            (Method::PUT, format!("/entities/{id}").as_str()),
        ] {
            let r = api.json(method.clone(), path, body).await;
            assert!(
                (400..500).contains(&r.status),
                "{method} {path} with {body}: {} {}",
                r.status,
                r.text
            );
            assert_problem_any(&r, r.status, &["BadRequestData", "InvalidRequest"]);
        }
    }
    for body in [
        json!({ "value": 1, "observedAt": "never" }),
        json!({ "type": "Relationship", "object": "no uri" }),
        json!({ "value": 1, "datasetId": "not a uri" }),
        json!({ "value": 1, "sub attr": 1 }),
        // 5.5.8: a datasetId cannot be deleted by setting it to NGSI-LD Null.
        json!({ "datasetId": "urn:ngsi-ld:null" }),
    ] {
        let r = api.json(Method::PATCH, &temp, &body).await;
        assert_problem(&r, 400, "BadRequestData");
        let r = api.json(Method::PUT, &temp, &body).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    let after = api.entity_q(&id, "?options=sysAttrs").await;
    assert_eq!(
        after, before,
        "a refused request must not change the entity"
    );
}

#[tokio::test]
async fn unknown_query_parameters_are_400() {
    let api = api();
    let id = uid("Sensor");
    api.create(&good(&id)).await;
    for (method, path) in [
        (Method::GET, format!("/entities/{id}?foo=bar")),
        (Method::GET, "/entities?type=Sensor&foo=bar".to_string()),
        (Method::DELETE, format!("/entities/{id}?foo=bar")),
        (Method::GET, "/jsonldContexts?foo=bar".to_string()),
    ] {
        let r = api.send(api.req(method.clone(), &path)).await;
        assert_problem_any(&r, 400, UNKNOWN_PARAM);
    }
    let r = api
        .json(Method::POST, "/entities?foo=bar", &good(&uid("Sensor")))
        .await;
    assert_problem_any(&r, 400, UNKNOWN_PARAM);
    let r = api
        .json(
            Method::POST,
            "/entityOperations/create?foo=bar",
            &json!([good(&uid("Sensor"))]),
        )
        .await;
    assert_problem_any(&r, 400, UNKNOWN_PARAM);
    // Repeated parameter.
    let r = api.get(&format!("/entities/{id}?attrs=a&attrs=b")).await;
    assert_problem_any(&r, 400, UNKNOWN_PARAM);
    api.entity(&id).await;
}

#[tokio::test]
async fn invalid_id_pattern_is_400() {
    let api = api();
    api.create(&good(&uid("Sensor"))).await;
    for pattern in ["(", "[a-", "a{2,1}"] {
        let q: String = url::form_urlencoded::byte_serialize(pattern.as_bytes()).collect();
        let r = api.get(&format!("/entities?idPattern={q}")).await;
        assert_problem(&r, 400, "BadRequestData");
    }
}

#[tokio::test]
async fn invalid_ids_in_paths_are_400() {
    let api = api();
    api.create(&good(&uid("Sensor"))).await;
    for path in [
        "/entities/plainword",
        "/entities/plainword/attrs/temperature",
    ] {
        let r = api.get(path).await;
        assert!(
            r.status == 400 || r.status == 405,
            "{path}: {} {}",
            r.status,
            r.text
        );
        assert_problem(
            &r,
            r.status,
            if r.status == 400 {
                "BadRequestData"
            } else {
                "MethodNotAllowed"
            },
        );
    }
    let r = api.delete("/entities/plainword").await;
    assert_problem(&r, 400, "BadRequestData");
    let r = api
        .patch("/entities/plainword/attrs", &json!({ "a": 1 }))
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = api.delete("/entities/urn:a:b/attrs/a(b").await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let api = api();
    let r = api.get("/nothing-here").await;
    assert_problem(&r, 404, "ResourceNotFound");
    // PUT on the collection reads as a replace without an entity id.
    let r = api
        .body(Method::PUT, "/entities", "application/json", "{}")
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = api
        .body(Method::POST, "/entities/urn:a:b", "application/json", "{}")
        .await;
    assert_eq!(r.status, 405, "{}", r.text);
    let r = api.get("/entityOperations/create").await;
    assert!(
        r.status == 404 || r.status == 405,
        "{} {}",
        r.status,
        r.text
    );
    assert!(r.json()["type"]
        .as_str()
        .is_some_and(|t| t.starts_with(ERR_PREFIX)));
}

#[tokio::test]
async fn body_over_the_size_cap_is_413() {
    let server = TestServer::start(&["--max-body-bytes", "4096"]);
    let api = server.api();
    let id = uid("Sensor");
    api.create(&good(&id)).await;
    let before = api.entity(&id).await;
    let big = json!({
        "id": uid("Sensor"),
        "type": "Sensor",
        "blob": { "type": "Property", "value": "x".repeat(8000) }
    });
    let r = api.post("/entities", &big).await;
    assert_problem(&r, 413, "PayloadTooLarge");
    let r = api
        .post(
            &format!("/entities/{id}/attrs"),
            &json!({ "blob": "x".repeat(5000) }),
        )
        .await;
    assert_problem(&r, 413, "PayloadTooLarge");
    let r = api.post("/entityOperations/upsert", &json!([big])).await;
    assert_problem(&r, 413, "PayloadTooLarge");
    // Just under the cap is fine.
    let fits = json!({ "id": uid("Sensor"), "type": "Sensor", "blob": "x".repeat(3000) });
    api.create(&fits).await;
    assert_eq!(api.entity(&id).await, before);
    drop(server);
}

/// RFC 7946 geometries that are structurally wrong beyond their coordinate ranges.
#[tokio::test]
async fn invalid_geojson_geometries_are_400() {
    let api = api();
    api.create(&good(&uid("Sensor"))).await;
    let cases = [
        (
            "longitude 200",
            json!({ "type": "Point", "coordinates": [200, 0] }),
        ),
        (
            "Point with one number",
            json!({ "type": "Point", "coordinates": [1] }),
        ),
        (
            "Point with strings",
            json!({ "type": "Point", "coordinates": ["1", "2"] }),
        ),
        (
            "LineString with one position",
            json!({ "type": "LineString", "coordinates": [[0, 0]] }),
        ),
        (
            "Polygon ring not closed",
            json!({ "type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]] }),
        ),
        (
            "Polygon ring with three positions",
            json!({ "type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]] }),
        ),
        ("no coordinates", json!({ "type": "Point" })),
        ("not an object", json!([7.2, 43.7])),
    ];
    let mut accepted = Vec::new();
    for (what, geometry) in cases {
        let id = uid("Place");
        let r = api
            .post(
                "/entities",
                &json!({ "id": id, "type": "Place", "location": { "type": "GeoProperty", "value": geometry } }),
            )
            .await;
        if r.status == 400 {
            assert_problem(&r, 400, "BadRequestData");
        } else {
            accepted.push(format!("{what}: {} {}", r.status, r.text));
        }
    }
    assert!(
        accepted.is_empty(),
        "invalid geometries not refused with 400: {accepted:#?}"
    );
}

#[tokio::test]
async fn accept_geo_json_is_geo_json_or_406() {
    let api = api();
    let id = uid("Place");
    api.create(&good(&id)).await;
    let r = api
        .get_with(&ent(&id), &[("Accept", "application/geo+json")])
        .await;
    if r.status == 406 {
        assert_problem(&r, 406, "NotAcceptable");
    } else {
        r.expect(200);
        assert!(
            r.content_type().starts_with("application/geo+json"),
            "asked for application/geo+json only, got Content-Type {:?}",
            r.content_type()
        );
        let body = r.json();
        assert_eq!(body["type"], json!("Feature"), "{body}");
        assert_eq!(body["id"], json!(id));
        assert_eq!(
            body["geometry"],
            json!({ "type": "Point", "coordinates": [7.2, 43.7] })
        );
    }
}

/// A crude fuzz: odd bodies on every write endpoint. Whatever the answer, it is never a
/// 5xx, every error is a ProblemDetails, and the broker is still healthy afterwards.
#[tokio::test]
async fn odd_bodies_never_cause_a_server_error() {
    let api = api();
    let id = uid("Sensor");
    api.create(&good(&id)).await;
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let deep_obj = format!(
        "{{\"id\":\"{}\",\"type\":\"T\",\"p\":{{\"type\":\"Property\",\"value\":{deep}}}}}",
        uid("X")
    );
    let bodies: Vec<String> = vec![
        "null".into(),
        "0".into(),
        "\"\"".into(),
        "[]".into(),
        "{}".into(),
        "[null]".into(),
        "[[]]".into(),
        "{\"id\":null,\"type\":null}".into(),
        format!("{{\"id\":\"{id}\",\"type\":\"\"}}"),
        format!("{{\"id\":\"{id}\",\"type\":[null]}}"),
        "{\"p\":{\"type\":\"Property\",\"value\":{\"type\":\"Property\"}}}".into(),
        "{\"p\":{\"type\":[\"Property\"],\"value\":1}}".into(),
        "{\"p\":{\"type\":\"GeoProperty\",\"value\":{\"type\":\"GeometryCollection\"}}}".into(),
        "{\"p\":{\"type\":\"ListRelationship\",\"objectList\":[{}]}}".into(),
        "{\"p\":{\"type\":\"LanguageProperty\",\"languageMap\":{\"\":\"x\"}}}".into(),
        "{\"p\":[]}".into(),
        "{\"p\":[{\"type\":\"Property\",\"value\":1},2]}".into(),
        "{\"p\":{\"value\":1,\"observedAt\":5}}".into(),
        "{\"p\":1e999}".into(),
        "{\"scope\":[]}".into(),
        "{\"scope\":5}".into(),
        "{\"expiresAt\":\"1970-01-01T00:00:00Z\"}".into(),
        deep.clone(),
        deep_obj,
        format!("[\"{id}\", 5, null, {{}}]"),
    ];
    let paths = [
        (Method::POST, "/entities".to_string()),
        (Method::PUT, format!("/entities/{id}")),
        (Method::PATCH, format!("/entities/{id}")),
        (Method::POST, format!("/entities/{id}/attrs")),
        (Method::PATCH, format!("/entities/{id}/attrs")),
        (Method::PATCH, format!("/entities/{id}/attrs/temperature")),
        (Method::PUT, format!("/entities/{id}/attrs/temperature")),
        (Method::POST, "/entityOperations/create".to_string()),
        (Method::POST, "/entityOperations/upsert".to_string()),
        (Method::POST, "/entityOperations/update".to_string()),
        (Method::POST, "/entityOperations/merge".to_string()),
        (Method::POST, "/jsonldContexts".to_string()),
    ];
    let mut server_errors = Vec::new();
    for (method, path) in &paths {
        for body in &bodies {
            let r = api
                .body(method.clone(), path, "application/json", body)
                .await;
            if r.status >= 500 {
                server_errors.push(format!(
                    "{method} {path} {:.80}: {} {}",
                    body, r.status, r.text
                ));
            } else if r.status >= 400 {
                let v: Value = serde_json::from_str(&r.text).unwrap_or(Value::Null);
                assert!(
                    v["type"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(ERR_PREFIX))
                        && v["detail"].as_str().is_some(),
                    "{method} {path} {body:.80}: error without ProblemDetails: {} {}",
                    r.status,
                    r.text
                );
            }
        }
    }
    assert!(server_errors.is_empty(), "5xx answers: {server_errors:#?}");
    // Some odd requests are valid (e.g. a merge setting expiresAt in the past, which
    // expires the entity), so the entity itself is not checked; the broker stays healthy.
    let r = client()
        .get(format!("{}/health", api.base_url))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn odd_paths_never_cause_a_server_error() {
    let api = api();
    let id = uid("Sensor");
    api.create(&good(&id)).await;
    let paths = [
        "/entities/%00".to_string(),
        "/entities/urn:a:%ZZ".to_string(),
        "/entities/%2F%2F".to_string(),
        format!("/entities/{id}/attrs/%00"),
        format!("/entities/{id}/attrs/"),
        format!("/entities/{id}/attrs/a%2Fb"),
        format!("/entities/{}", "x".repeat(10_000)),
        "/entities?type=%00".to_string(),
        "/entities?idPattern=%00".to_string(),
        "/entities?type=A&limit=99999999999999999999999".to_string(),
        "/entities?type=A&offset=-0".to_string(),
        "/entities?id=urn:a:b&attrs=,,,".to_string(),
        "/jsonldContexts/%00".to_string(),
    ];
    for p in &paths {
        for method in [Method::GET, Method::DELETE] {
            let r = api.send(api.req(method.clone(), p)).await;
            assert!(r.status < 500, "{method} {p}: {} {}", r.status, r.text);
            if r.status >= 400 {
                let v: Value = serde_json::from_str(&r.text).unwrap_or(Value::Null);
                assert!(
                    v["type"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(ERR_PREFIX)),
                    "{method} {p}: error without ProblemDetails: {} {}",
                    r.status,
                    r.text
                );
            }
        }
    }
    api.entity(&id).await;
}
