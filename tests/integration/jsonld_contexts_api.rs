//! The /jsonldContexts API: add, list, serve and delete user contexts.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

fn unique_context() -> (Value, String) {
    let ns = format!("https://example.org/{}/", uuid::Uuid::new_v4().simple());
    (
        json!({
            "@context": {
                "Boat": format!("{ns}Boat"),
                "speed": format!("{ns}speed"),
                "harbour": { "@id": format!("{ns}harbour"), "@type": "@id" }
            }
        }),
        ns,
    )
}

async fn add(api: &Api, doc: &Value) -> String {
    let r = api.post("/jsonldContexts", doc).await;
    r.expect(201);
    r.header("location")
        .expect("Location of the hosted context")
}

fn absolute(api: &Api, location: &str) -> String {
    if location.starts_with("http") {
        location.to_string()
    } else {
        format!("{}{location}", api.base_url)
    }
}

#[tokio::test]
async fn hosted_context_lifecycle() {
    let api = api();
    let (doc, ns) = unique_context();
    let location = add(&api, &doc).await;
    let url = absolute(&api, &location);
    assert!(
        url.contains("/ngsi-ld/v1/jsonldContexts/"),
        "hosted contexts are served under /jsonldContexts: {url}"
    );

    // Served back as a JSON document (ETSI 053_01 expects application/json).
    let r = api.send(api.raw(Method::GET, &url)).await;
    r.expect(200);
    assert!(
        r.content_type().starts_with("application/json"),
        "{}",
        r.content_type()
    );
    assert_eq!(r.json(), doc);

    // Listed, plain and with details.
    let r = api.get("/jsonldContexts").await;
    let list = r.expect(200).json();
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .any(|u| u.as_str() == Some(url.as_str())),
        "{url} in {list}"
    );
    let r = api.get("/jsonldContexts?details=true&kind=Hosted").await;
    let list = r.expect(200).json();
    let items = list.as_array().expect("array");
    assert!(items.iter().all(|i| i["kind"] == json!("Hosted")), "{list}");
    let mine = items
        .iter()
        .find(|i| i["URL"].as_str() == Some(url.as_str()))
        .unwrap_or_else(|| panic!("{url} in {list}"));
    assert!(
        mine["localId"].as_str().is_some_and(|s| !s.is_empty()),
        "{mine}"
    );
    assert_datetime(&mine["createdAt"]);
    let r = api.get("/jsonldContexts?kind=Cached").await;
    let cached = r.expect(200).json();
    assert!(
        !cached
            .as_array()
            .expect("array")
            .iter()
            .any(|u| u.as_str() == Some(url.as_str())),
        "a hosted context is not listed as Cached"
    );

    // Usable as the context of a request.
    let id = uid("Boat");
    let r = api
        .json_linked(
            Method::POST,
            "/entities",
            &json!({
                "id": id,
                "type": "Boat",
                "speed": { "type": "Property", "value": 12 },
                "harbour": { "type": "Relationship", "object": "urn:ngsi-ld:Harbour:nice" }
            }),
            &url,
        )
        .await;
    r.expect(201);
    let e = api.entity(&id).await;
    assert_eq!(e["type"], json!(format!("{ns}Boat")), "{e}");
    assert_eq!(e[format!("{ns}speed")]["value"], json!(12), "{e}");
    let r = api.get_with(&ent(&id), &[("Link", &link(&url))]).await;
    let e = r.expect(200).json();
    assert_eq!(e["type"], json!("Boat"));
    assert_eq!(e["speed"]["value"], json!(12));

    // Delete: 204, then gone.
    let r = api.send(api.raw(Method::DELETE, &url)).await;
    r.expect(204);
    assert_problem(
        &api.send(api.raw(Method::GET, &url)).await,
        404,
        "ResourceNotFound",
    );
    assert_problem(
        &api.send(api.raw(Method::DELETE, &url)).await,
        404,
        "ResourceNotFound",
    );
    let list = api.get("/jsonldContexts").await.expect(200).json();
    assert!(!list
        .as_array()
        .expect("array")
        .iter()
        .any(|u| u.as_str() == Some(url.as_str())));
}

#[tokio::test]
async fn details_of_one_context() {
    let api = api();
    let (doc, _) = unique_context();
    let url = absolute(&api, &add(&api, &doc).await);
    let r = api
        .send(api.raw(Method::GET, &format!("{url}?details=true")))
        .await;
    let d = r.expect(200).json();
    assert_eq!(d["URL"], json!(url));
    assert_eq!(d["kind"], json!("Hosted"));
}

#[tokio::test]
async fn core_context_is_listed_and_served() {
    let api = api();
    let list = api.get("/jsonldContexts").await.expect(200).json();
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .any(|u| u.as_str() == Some(CORE_CONTEXT)),
        "{list}"
    );
    let r = api
        .delete(&format!(
            "/jsonldContexts/{}",
            "urn:ngsi-ld:jsonldContext:core"
        ))
        .await;
    assert!(
        r.status == 400 || r.status == 403 || r.status == 422,
        "the core context cannot be deleted: {} {}",
        r.status,
        r.text
    );
}

#[tokio::test]
async fn add_context_errors() {
    let api = api();
    // No @context member.
    let r = api.post("/jsonldContexts", &json!({ "foo": "bar" })).await;
    assert_problem_any(&r, 400, BAD_BODY);
    // Not an object.
    let r = api
        .post(
            "/jsonldContexts",
            &json!(["https://example.org/ctx.jsonld"]),
        )
        .await;
    assert_problem_any(&r, 400, BAD_BODY);
    // @context of the wrong shape.
    let r = api
        .post("/jsonldContexts", &json!({ "@context": 42 }))
        .await;
    assert_problem_any(&r, 400, BAD_BODY);
    // Malformed JSON.
    let r = api
        .body(
            Method::POST,
            "/jsonldContexts",
            "application/json",
            "{\"@context\": ",
        )
        .await;
    assert_problem(&r, 400, "InvalidRequest");
    // Unknown kind filter.
    assert_problem_any(&api.get("/jsonldContexts?kind=Weird").await, 400, BAD_BODY);
    // Unknown id.
    let r = api
        .get("/jsonldContexts/urn:ngsi-ld:jsonldContext:doesnotexist")
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = api.delete("/jsonldContexts/doesnotexist").await;
    assert_problem(&r, 404, "ResourceNotFound");
}

/// A hosted @context belongs to the tenant that added it: other tenants neither see,
/// list, serve nor delete it.
#[tokio::test]
async fn hosted_contexts_are_private_to_their_tenant() {
    let owner = api();
    let other = api();
    let (doc, _) = unique_context();
    let location = add(&owner, &doc).await;
    let id = location.rsplit('/').next().unwrap_or_default().to_string();
    let path = format!("/jsonldContexts/{id}");

    owner.get(&path).await.expect(200);
    assert_problem(&other.get(&path).await, 404, "ResourceNotFound");
    let listed = |v: Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .any(|u| u.as_str().is_some_and(|u| u.ends_with(&id)))
    };
    assert!(listed(
        owner.get("/jsonldContexts").await.expect(200).json()
    ));
    assert!(!listed(
        other.get("/jsonldContexts").await.expect(200).json()
    ));
    assert_problem(&other.delete(&path).await, 404, "ResourceNotFound");
    owner.get(&path).await.expect(200);
    owner.delete(&path).await.expect(204);
}
