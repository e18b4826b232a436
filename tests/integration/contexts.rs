//! JSON-LD @context handling: Link header vs @context in the body, expansion and
//! compaction of names, Accept / Content-Type negotiation, unreachable contexts.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn water(id: &str) -> Value {
    json!({
        "id": id,
        "type": "WaterObserved",
        "flow": { "type": "Property", "value": 12 },
        "height": { "type": "Property", "value": 3.52 },
        "refDevice": { "type": "Relationship", "object": "urn:ngsi-ld:Device:T2-NP-018" },
        "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [7.19, 43.66] } }
    })
}

#[tokio::test]
async fn link_context_expands_smart_data_model_terms() {
    let api = api();
    let id = uid("WaterObserved");
    api.json_linked(Method::POST, "/entities", &water(&id), SDM_ENVIRONMENT)
        .await
        .expect(201);

    // With the core context only, the names are full IRIs.
    let e = api.entity(&id).await;
    assert_eq!(
        e["type"],
        json!(format!("{SDM_ENV_PREFIX}WaterObserved")),
        "{e}"
    );
    assert_eq!(
        e[format!("{SDM_ENV_PREFIX}flow")]["value"],
        json!(12),
        "{e}"
    );
    assert_eq!(
        e[format!("{SDM_ENV_PREFIX}height")]["value"],
        json!(3.52),
        "{e}"
    );
    assert_eq!(
        e[format!("{SDM_ENV_PREFIX}refDevice")]["object"],
        json!("urn:ngsi-ld:Device:T2-NP-018")
    );
    // location is a core term: it stays short.
    assert_eq!(e["location"]["type"], json!("GeoProperty"), "{e}");
    assert!(e.get("flow").is_none());

    // With the same Link, the short names come back.
    let r = api
        .get_with(&ent(&id), &[("Link", &link(SDM_ENVIRONMENT))])
        .await;
    r.expect(200);
    let l = r.header("link").expect("Link header");
    assert!(
        l.contains(SDM_ENVIRONMENT),
        "the response names the request's context: {l}"
    );
    assert_eq!(r.json(), water(&id));

    // Queries by short type name need the context; by IRI they do not.
    let r = api.get("/entities?type=WaterObserved").await;
    assert_eq!(r.expect(200).json(), json!([]));
    let r = api
        .get(&format!(
            "/entities?type={}",
            url::form_urlencoded::byte_serialize(
                format!("{SDM_ENV_PREFIX}WaterObserved").as_bytes()
            )
            .collect::<String>()
        ))
        .await;
    assert_eq!(r.expect(200).json().as_array().map(Vec::len), Some(1));
    let r = api
        .get_with(
            "/entities?type=WaterObserved",
            &[("Link", &link(SDM_ENVIRONMENT))],
        )
        .await;
    assert_eq!(r.expect(200).json(), json!([water(&id)]));
}

#[tokio::test]
async fn attribute_operations_honour_the_link_context() {
    let api = api();
    let id = uid("WaterObserved");
    api.json_linked(Method::POST, "/entities", &water(&id), SDM_ENVIRONMENT)
        .await
        .expect(201);
    // PATCH an attribute by its short name, with the context.
    let r = api
        .send(
            api.req(Method::PATCH, &format!("/entities/{id}/attrs/flow"))
                .header("Content-Type", "application/json")
                .header("Link", link(SDM_ENVIRONMENT))
                .body(json!({ "type": "Property", "value": 13 }).to_string()),
        )
        .await;
    r.expect(204);
    // Without the context, "flow" is another attribute: not found.
    let r = api
        .patch(
            &format!("/entities/{id}/attrs/flow"),
            &json!({ "type": "Property", "value": 14 }),
        )
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    // DELETE attribute with the context.
    let r = api
        .send(
            api.req(Method::DELETE, &format!("/entities/{id}/attrs/height"))
                .header("Link", link(SDM_ENVIRONMENT)),
        )
        .await;
    r.expect(204);
    let e = api
        .get_with(&ent(&id), &[("Link", &link(SDM_ENVIRONMENT))])
        .await
        .expect(200)
        .json();
    assert_eq!(e["flow"]["value"], json!(13));
    assert!(e.get("height").is_none(), "{e}");
}

#[tokio::test]
async fn ld_json_body_with_context_is_201() {
    let api = api();
    let id = uid("WaterObserved");
    let mut body = water(&id);
    body["@context"] = json!(SDM_ENVIRONMENT);
    let r = api.post_ld("/entities", &body).await;
    r.expect(201);
    let e = api.entity(&id).await;
    assert_eq!(e["type"], json!(format!("{SDM_ENV_PREFIX}WaterObserved")));

    // An inline context object works too.
    let id2 = uid("Thing");
    let body = json!({
        "@context": [{ "speed": "https://example.org/ns#speed", "Thing": "https://example.org/ns#Thing" }, CORE_CONTEXT],
        "id": id2,
        "type": "Thing",
        "speed": { "type": "Property", "value": 1 }
    });
    api.post_ld("/entities", &body).await.expect(201);
    let e = api.entity(&id2).await;
    assert_eq!(e["type"], json!("https://example.org/ns#Thing"));
    assert_eq!(e["https://example.org/ns#speed"]["value"], json!(1), "{e}");
}

#[tokio::test]
async fn ld_json_without_context_is_400() {
    let api = api();
    let r = api
        .post_ld("/entities", &water(&uid("WaterObserved")))
        .await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test]
async fn json_with_context_in_body_is_400() {
    let api = api();
    let id = uid("WaterObserved");
    let mut body = water(&id);
    body["@context"] = json!(SDM_ENVIRONMENT);
    let r = api.post("/entities", &body).await;
    assert_problem(&r, 400, "BadRequestData");
    api.create(&water(&uid("W"))).await;
    assert_problem(&api.get(&ent(&id)).await, 404, "ResourceNotFound");
}

#[tokio::test]
async fn ld_json_with_link_header_is_400() {
    let api = api();
    let id = uid("WaterObserved");
    let mut body = water(&id);
    body["@context"] = json!(SDM_ENVIRONMENT);
    let r = api
        .send(
            api.req(Method::POST, "/entities")
                .header("Content-Type", "application/ld+json")
                .header("Link", link(SDM_ENVIRONMENT))
                .body(body.to_string()),
        )
        .await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test]
async fn accept_ld_json_puts_context_in_body() {
    let api = api();
    let id = uid("WaterObserved");
    api.json_linked(Method::POST, "/entities", &water(&id), SDM_ENVIRONMENT)
        .await
        .expect(201);
    let r = api
        .get_with(
            &ent(&id),
            &[
                ("Accept", "application/ld+json"),
                ("Link", &link(SDM_ENVIRONMENT)),
            ],
        )
        .await;
    r.expect(200);
    assert!(
        r.content_type().starts_with("application/ld+json"),
        "{}",
        r.content_type()
    );
    assert!(
        r.header("link").is_none(),
        "no Link header with ld+json: {:?}",
        r.headers
    );
    let body = r.json();
    let ctx = body
        .get("@context")
        .unwrap_or_else(|| panic!("@context in {body}"));
    assert!(ctx.to_string().contains(SDM_ENVIRONMENT), "{ctx}");
    assert_eq!(body["flow"]["value"], json!(12));

    // Default context: the core context.
    let r = api
        .get_with(&ent(&id), &[("Accept", "application/ld+json")])
        .await;
    r.expect(200);
    assert!(r.json()["@context"].to_string().contains(CORE_CONTEXT));

    // Queries too.
    let r = api
        .get_with(
            "/entities?type=WaterObserved",
            &[
                ("Accept", "application/ld+json"),
                ("Link", &link(SDM_ENVIRONMENT)),
            ],
        )
        .await;
    r.expect(200);
    assert!(r.header("link").is_none());
    for e in r.json().as_array().expect("array") {
        assert!(
            e.get("@context").is_some(),
            "every entity carries @context: {e}"
        );
    }
}

#[tokio::test]
async fn accept_json_gives_link_header() {
    let api = api();
    let id = uid("WaterObserved");
    api.create(&water(&id)).await;
    for accept in ["application/json", "*/*", "application/*"] {
        let r = api.get_with(&ent(&id), &[("Accept", accept)]).await;
        r.expect(200);
        assert!(r.content_type().starts_with("application/json"), "{accept}");
        assert!(
            r.header("link").is_some_and(|l| l.contains(JSONLD_REL)),
            "{accept}"
        );
        assert!(r.json().get("@context").is_none(), "{accept}");
    }
    // q-values choose.
    let r = api
        .get_with(
            &ent(&id),
            &[("Accept", "application/json;q=0.5, application/ld+json")],
        )
        .await;
    assert!(r
        .expect(200)
        .content_type()
        .starts_with("application/ld+json"));
}

#[tokio::test]
async fn unsupported_accept_is_406() {
    let api = api();
    let id = uid("WaterObserved");
    api.create(&water(&id)).await;
    let r = api.get_with(&ent(&id), &[("Accept", "text/xml")]).await;
    assert_problem(&r, 406, "NotAcceptable");
    let r = api
        .get_with("/entities?type=WaterObserved", &[("Accept", "text/html")])
        .await;
    assert_problem(&r, 406, "NotAcceptable");
}

#[tokio::test]
async fn unsupported_content_type_is_415() {
    let api = api();
    let id = uid("WaterObserved");
    let r = api
        .body(
            Method::POST,
            "/entities",
            "text/plain",
            &water(&id).to_string(),
        )
        .await;
    assert_problem(&r, 415, "UnsupportedMediaType");
    api.create(&water(&id)).await;
    let r = api
        .body(
            Method::PATCH,
            &format!("/entities/{id}/attrs"),
            "application/xml",
            "<flow>1</flow>",
        )
        .await;
    assert_problem(&r, 415, "UnsupportedMediaType");
    // No Content-Type at all.
    let r = api
        .send(
            api.req(Method::POST, "/entities")
                .body(water(&uid("W")).to_string()),
        )
        .await;
    assert_problem(&r, 415, "UnsupportedMediaType");
    let r = api
        .body(Method::POST, "/entityOperations/create", "text/plain", "[]")
        .await;
    assert_problem(&r, 415, "UnsupportedMediaType");
}

#[tokio::test]
async fn unreachable_remote_context_is_503_quickly() {
    let api = api();
    let dead = "http://127.0.0.1:9/none.jsonld";
    let start = Instant::now();
    let r = api
        .json_linked(
            Method::POST,
            "/entities",
            &water(&uid("WaterObserved")),
            dead,
        )
        .await;
    assert_ld_context_not_available(&r);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "a refused connection must fail fast (took {:?})",
        start.elapsed()
    );
    // Also in a body context.
    let body = json!({ "@context": dead, "id": uid("W"), "type": "W" });
    let r = api.post_ld("/entities", &body).await;
    assert_ld_context_not_available(&r);
    // And on reads.
    let id = uid("W");
    api.create(&json!({ "id": id, "type": "W" })).await;
    let r = api.get_with(&ent(&id), &[("Link", &link(dead))]).await;
    assert_ld_context_not_available(&r);
}

#[tokio::test]
async fn malformed_link_headers_are_400() {
    let api = api();
    let id = uid("W");
    api.create(&json!({ "id": id, "type": "W" })).await;
    let r = api
        .get_with(
            &ent(&id),
            &[(
                "Link",
                "<not a url>; rel=\"http://www.w3.org/ns/json-ld#context\"",
            )],
        )
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let two = format!("{}, {}", link(SDM_ENVIRONMENT), link(CORE_CONTEXT));
    let r = api.get_with(&ent(&id), &[("Link", &two)]).await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test]
async fn inline_context_that_is_not_json_ld_is_400() {
    let api = api();
    let body = json!({ "@context": 42, "id": uid("W"), "type": "W" });
    let r = api.post_ld("/entities", &body).await;
    assert_problem_any(&r, 400, &["BadRequestData", "InvalidRequest"]);
}

#[track_caller]
fn assert_ld_context_not_available(r: &Resp) {
    assert!(
        LD_CONTEXT_NOT_AVAILABLE_STATUS.contains(&r.status),
        "expected LdContextNotAvailable (503/504), got {} {}",
        r.status,
        r.text
    );
    assert_problem(r, r.status, "LdContextNotAvailable");
}

#[tokio::test]
async fn merge_and_replace_honour_the_link_context() {
    let api = api();
    let id = uid("WaterObserved");
    api.json_linked(Method::POST, "/entities", &water(&id), SDM_ENVIRONMENT)
        .await
        .expect(201);
    api.json_linked(
        Method::PATCH,
        &ent(&id),
        &json!({ "temperature": { "type": "Property", "value": 9 } }),
        SDM_ENVIRONMENT,
    )
    .await
    .expect(204);
    api.json_linked(
        Method::PUT,
        &format!("/entities/{id}/attrs/flow"),
        &json!({ "type": "Property", "value": 99 }),
        SDM_ENVIRONMENT,
    )
    .await
    .expect(204);
    let e = api.entity(&id).await;
    assert_eq!(
        e[format!("{SDM_ENV_PREFIX}temperature")]["value"],
        json!(9),
        "{e}"
    );
    assert_eq!(
        e[format!("{SDM_ENV_PREFIX}flow")]["value"],
        json!(99),
        "{e}"
    );
    assert!(
        e.get("temperature").is_none() && e.get("flow").is_none(),
        "{e}"
    );
    // Replace the entity under the context: types and names expand the same way.
    api.json_linked(
        Method::PUT,
        &ent(&id),
        &json!({ "type": "WaterObserved", "height": { "type": "Property", "value": 1 } }),
        SDM_ENVIRONMENT,
    )
    .await
    .expect(204);
    let e = api.entity(&id).await;
    assert_eq!(e["type"], json!(format!("{SDM_ENV_PREFIX}WaterObserved")));
    assert_eq!(
        e[format!("{SDM_ENV_PREFIX}height")]["value"],
        json!(1),
        "{e}"
    );
}

#[tokio::test]
async fn an_inline_scoped_context_is_400_and_nothing_is_stored() {
    let api = api();
    let id = uid("Vehicle");
    let body = json!({
        "@context": [{ "Vehicle": { "@id": "https://example.org/Vehicle", "@context": { "speed": "https://example.org/hidden-speed" } } }],
        "id": id,
        "type": "Vehicle"
    });
    let r = api.post_ld("/entities", &body).await;
    assert_problem(&r, 400, "BadRequestData");
    assert!(r.text.contains("scoped"), "{}", r.text);
    // (The tenant must exist for the read to be a plain 404.)
    api.create(&water(&uid("W"))).await;
    assert_problem(&api.get(&ent(&id)).await, 404, "ResourceNotFound");
}
