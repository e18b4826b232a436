//! Batch operations under /entityOperations: create, upsert (replace/update), update
//! (noOverwrite), delete and merge, with their 201/204/207 responses.

use serde_json::{json, Value};

use crate::common::*;

fn car(id: &str, speed: i64) -> Value {
    json!({ "id": id, "type": "Car", "speed": { "type": "Property", "value": speed } })
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("expected an array of ids: {v}"))
        .iter()
        .map(|i| i.as_str().expect("id string").to_string())
        .collect();
    out.sort();
    out
}

fn sorted_ids(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The 207 body: `success` ids and `errors` with entityId and a ProblemDetails.
#[track_caller]
fn check_207(body: &Value, ok: &[&String], failed: &[(&String, &str)]) {
    assert_eq!(
        sorted(&body["success"]),
        sorted_ids(ok),
        "success in {body}"
    );
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("errors array in {body}"));
    assert_eq!(errors.len(), failed.len(), "errors in {body}");
    for (id, kind) in failed {
        let e = errors
            .iter()
            .find(|e| e["entityId"].as_str() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("no error for {id} in {body}"));
        assert_problem_value(&e["error"], kind);
    }
}

#[tokio::test]
async fn batch_create_201_with_ids() {
    let api = api();
    let (a, b) = (uid("Car"), uid("Car"));
    let r = api
        .post("/entityOperations/create", &json!([car(&a, 1), car(&b, 2)]))
        .await;
    r.expect(201);
    assert_eq!(sorted(&r.json()), sorted_ids(&[&a, &b]));
    assert_eq!(api.entity(&a).await["speed"]["value"], json!(1));
    assert_eq!(api.entity(&b).await["speed"]["value"], json!(2));
}

#[tokio::test]
async fn batch_create_partial_is_207() {
    let api = api();
    let (a, b, c) = (uid("Car"), uid("Car"), uid("Car"));
    api.create(&car(&a, 1)).await;
    let invalid = json!({ "id": c, "type": "Car", "speed": { "type": "Property" } });
    let r = api
        .post(
            "/entityOperations/create",
            &json!([car(&a, 9), car(&b, 2), invalid]),
        )
        .await;
    r.expect(207);
    check_207(
        &r.json(),
        &[&b],
        &[(&a, "AlreadyExists"), (&c, "BadRequestData")],
    );
    assert_eq!(
        api.entity(&a).await["speed"]["value"],
        json!(1),
        "existing entity untouched"
    );
    api.entity(&b).await;
    assert_problem(&api.get(&ent(&c)).await, 404, "ResourceNotFound");
}

#[tokio::test]
async fn batch_create_item_without_id_or_not_an_object_is_reported() {
    let api = api();
    let a = uid("Car");
    let r = api
        .post(
            "/entityOperations/create",
            &json!([car(&a, 1), { "type": "Car" }]),
        )
        .await;
    r.expect(207);
    let body = r.json();
    assert_eq!(sorted(&body["success"]), vec![a.clone()]);
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    // An item that is not an entity object (e.g. null, 42) refuses the whole batch.
    let b = uid("Car");
    for junk in [json!(42), json!(null)] {
        let r = api
            .post("/entityOperations/create", &json!([car(&b, 1), junk]))
            .await;
        assert_problem(&r, 400, "BadRequestData");
    }
    assert_problem(&api.get(&ent(&b)).await, 404, "ResourceNotFound");
    for e in errors {
        assert_problem_value(&e["error"], "BadRequestData");
    }
}

#[tokio::test]
async fn batch_upsert_replace_default() {
    let api = api();
    let (a, b) = (uid("Car"), uid("Car"));
    api.create(&json!({
        "id": a, "type": "Car",
        "speed": { "type": "Property", "value": 1 },
        "color": { "type": "Property", "value": "red" }
    }))
    .await;
    // One new entity: 201 with the ids of the created ones.
    let r = api
        .post(
            "/entityOperations/upsert",
            &json!([car(&a, 10), car(&b, 20)]),
        )
        .await;
    r.expect(201);
    assert_eq!(
        sorted(&r.json()),
        vec![b.clone()],
        "201 lists the created entities"
    );
    let e = api.entity(&a).await;
    assert_eq!(e["speed"]["value"], json!(10));
    assert!(e.get("color").is_none(), "upsert replaces by default: {e}");
    // Only updates: 204.
    let r = api
        .post(
            "/entityOperations/upsert?options=replace",
            &json!([car(&a, 11), car(&b, 21)]),
        )
        .await;
    r.expect(204);
    assert_eq!(api.entity(&b).await["speed"]["value"], json!(21));
}

#[tokio::test]
async fn batch_upsert_update_keeps_other_attributes() {
    let api = api();
    let a = uid("Car");
    api.create(&json!({
        "id": a, "type": "Car",
        "speed": { "type": "Property", "value": 1 },
        "color": { "type": "Property", "value": "red" }
    }))
    .await;
    let r = api
        .post(
            "/entityOperations/upsert?options=update",
            &json!([car(&a, 10)]),
        )
        .await;
    r.expect(204);
    let e = api.entity(&a).await;
    assert_eq!(e["speed"]["value"], json!(10));
    assert_eq!(
        e["color"]["value"],
        json!("red"),
        "options=update keeps the rest: {e}"
    );
}

#[tokio::test]
async fn batch_upsert_partial_is_207() {
    let api = api();
    let (a, bad) = (uid("Car"), "not a uri".to_string());
    let r = api
        .post(
            "/entityOperations/upsert",
            &json!([car(&a, 1), { "id": bad, "type": "Car" }]),
        )
        .await;
    r.expect(207);
    check_207(&r.json(), &[&a], &[(&bad, "BadRequestData")]);
}

#[tokio::test]
async fn batch_upsert_bad_option_is_400() {
    let api = api();
    let r = api
        .post(
            "/entityOperations/upsert?options=noOverwrite",
            &json!([car(&uid("Car"), 1)]),
        )
        .await;
    assert_problem(&r, 400, "BadRequestData");
}

#[tokio::test]
async fn batch_update_204_and_207() {
    let api = api();
    let (a, b, missing) = (uid("Car"), uid("Car"), uid("Car"));
    api.create(&car(&a, 1)).await;
    api.create(&car(&b, 2)).await;
    let r = api
        .post(
            "/entityOperations/update",
            &json!([
                { "id": a, "type": "Car", "speed": { "type": "Property", "value": 100 } },
                { "id": b, "color": { "type": "Property", "value": "blue" } }
            ]),
        )
        .await;
    r.expect(204);
    assert_eq!(api.entity(&a).await["speed"]["value"], json!(100));
    let e = api.entity(&b).await;
    assert_eq!(e["color"]["value"], json!("blue"));
    assert_eq!(e["speed"]["value"], json!(2));

    let r = api
        .post(
            "/entityOperations/update",
            &json!([car(&a, 7), car(&missing, 3)]),
        )
        .await;
    r.expect(207);
    check_207(&r.json(), &[&a], &[(&missing, "ResourceNotFound")]);
    assert_problem(&api.get(&ent(&missing)).await, 404, "ResourceNotFound");
}

#[tokio::test]
async fn batch_update_no_overwrite() {
    let api = api();
    let a = uid("Car");
    api.create(&car(&a, 1)).await;
    let r = api
        .post(
            "/entityOperations/update?options=noOverwrite",
            &json!([{ "id": a, "type": "Car",
                      "speed": { "type": "Property", "value": 100 },
                      "color": { "type": "Property", "value": "blue" } }]),
        )
        .await;
    assert!(
        r.status == 204 || r.status == 207,
        "noOverwrite update: {} {}",
        r.status,
        r.text
    );
    let e = api.entity(&a).await;
    assert_eq!(
        e["speed"]["value"],
        json!(1),
        "noOverwrite keeps existing attributes"
    );
    assert_eq!(
        e["color"]["value"],
        json!("blue"),
        "noOverwrite adds new attributes"
    );
}

#[tokio::test]
async fn batch_delete_204_and_207() {
    let api = api();
    let (a, b, missing) = (uid("Car"), uid("Car"), uid("Car"));
    api.create(&car(&a, 1)).await;
    api.create(&car(&b, 2)).await;
    let r = api.post("/entityOperations/delete", &json!([a])).await;
    r.expect(204);
    assert_problem(&api.get(&ent(&a)).await, 404, "ResourceNotFound");

    let r = api
        .post(
            "/entityOperations/delete",
            &json!([b, missing, "not a uri"]),
        )
        .await;
    r.expect(207);
    let body = r.json();
    assert_eq!(sorted(&body["success"]), vec![b.clone()]);
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{body}");
    let nf = errors
        .iter()
        .find(|e| e["entityId"] == json!(missing))
        .expect("error for the missing entity");
    assert_problem_value(&nf["error"], "ResourceNotFound");
    let bad = errors
        .iter()
        .find(|e| e["entityId"] == json!("not a uri"))
        .expect("error for the invalid id");
    assert_problem_value(&bad["error"], "BadRequestData");
    assert_problem(&api.get(&ent(&b)).await, 404, "ResourceNotFound");
}

#[tokio::test]
async fn batch_merge() {
    let api = api();
    let (a, missing) = (uid("Car"), uid("Car"));
    api.create(&json!({
        "id": a, "type": "Car",
        "speed": { "type": "Property", "value": 1, "unitCode": "KMH" },
        "color": { "type": "Property", "value": "red" }
    }))
    .await;
    let r = api
        .post(
            "/entityOperations/merge",
            &json!([{ "id": a, "type": "Car",
                      "speed": { "type": "Property", "value": 5 },
                      "color": "urn:ngsi-ld:null",
                      "owner": { "type": "Relationship", "object": "urn:ngsi-ld:Person:p" } }]),
        )
        .await;
    r.expect(204);
    let e = api.entity(&a).await;
    assert_eq!(e["speed"]["value"], json!(5));
    assert_eq!(
        e["speed"]["unitCode"],
        json!("KMH"),
        "merge keeps unmentioned members"
    );
    assert!(e.get("color").is_none(), "null deletes: {e}");
    assert_eq!(e["owner"]["object"], json!("urn:ngsi-ld:Person:p"));

    let r = api
        .post(
            "/entityOperations/merge",
            &json!([car(&a, 6), car(&missing, 1)]),
        )
        .await;
    r.expect(207);
    check_207(&r.json(), &[&a], &[(&missing, "ResourceNotFound")]);
}

#[tokio::test]
async fn batch_body_errors() {
    let api = api();
    for op in ["create", "upsert", "update", "delete", "merge"] {
        let path = format!("/entityOperations/{op}");
        let r = api
            .post(&path, &json!({ "id": "urn:a:b", "type": "Car" }))
            .await;
        assert_problem(&r, 400, "BadRequestData");
        let r = api.post(&path, &json!([])).await;
        assert_problem(&r, 400, "BadRequestData");
        let r = api
            .body(
                reqwest::Method::POST,
                &path,
                "application/json",
                "[{\"id\":",
            )
            .await;
        assert_problem(&r, 400, "InvalidRequest");
    }
}

#[tokio::test]
async fn batch_with_link_context_expands_names() {
    let api = api();
    let a = uid("WaterObserved");
    let r = api
        .json_linked(
            reqwest::Method::POST,
            "/entityOperations/create",
            &json!([{ "id": a, "type": "WaterObserved", "flow": { "type": "Property", "value": 3 } }]),
            SDM_ENVIRONMENT,
        )
        .await;
    r.expect(201);
    let e = api.entity(&a).await;
    assert_eq!(e["type"], json!(format!("{SDM_ENV_PREFIX}WaterObserved")));
    assert_eq!(e[format!("{SDM_ENV_PREFIX}flow")]["value"], json!(3), "{e}");
}

#[tokio::test]
async fn batch_ld_json_with_context_in_every_item() {
    let api = api();
    let (a, b) = (uid("WaterObserved"), uid("WaterObserved"));
    let item = |id: &str| {
        json!({ "@context": SDM_ENVIRONMENT, "id": id, "type": "WaterObserved",
                "flow": { "type": "Property", "value": 1 } })
    };
    let r = api
        .body(
            reqwest::Method::POST,
            "/entityOperations/create",
            "application/ld+json",
            &json!([item(&a), item(&b)]).to_string(),
        )
        .await;
    r.expect(201);
    assert_eq!(
        api.entity(&a).await["type"],
        json!(format!("{SDM_ENV_PREFIX}WaterObserved"))
    );
    // One item without @context: that item fails, the others are written (207).
    let c = uid("WaterObserved");
    let w = uid("W");
    let mut bare = item(&c);
    bare.as_object_mut().expect("object").remove("@context");
    let r = api
        .body(
            reqwest::Method::POST,
            "/entityOperations/upsert",
            "application/ld+json",
            &json!([item(&w), bare]).to_string(),
        )
        .await;
    r.expect(207);
    let body = r.json();
    assert_eq!(sorted(&body["success"]), vec![w.clone()]);
    assert_eq!(body["errors"][0]["entityId"], json!(c));
    assert_problem_value(&body["errors"][0]["error"], "BadRequestData");
    assert_problem(&api.get(&ent(&c)).await, 404, "ResourceNotFound");
}

#[tokio::test]
async fn batch_of_a_thousand_entities() {
    let api = api();
    let items: Vec<Value> = (0..1000)
        .map(|i| json!({ "id": format!("urn:ngsi-ld:Bulk:{i:04}"), "type": "Bulk", "n": i }))
        .collect();
    let r = api.post("/entityOperations/upsert", &json!(items)).await;
    r.expect(201);
    assert_eq!(r.json().as_array().map(Vec::len), Some(1000));
    let r = api.get("/entities?type=Bulk&count=true&limit=1").await;
    assert_eq!(
        r.expect(200).header("NGSILD-Results-Count").as_deref(),
        Some("1000")
    );
    // The same batch again only updates: 204.
    api.post("/entityOperations/upsert", &json!(items))
        .await
        .expect(204);
    let ids: Vec<String> = (0..1000)
        .map(|i| format!("urn:ngsi-ld:Bulk:{i:04}"))
        .collect();
    api.post("/entityOperations/delete", &json!(ids))
        .await
        .expect(204);
    let r = api.get("/entities?type=Bulk&count=true&limit=0").await;
    assert_eq!(
        r.expect(200).header("NGSILD-Results-Count").as_deref(),
        Some("0")
    );
}

#[tokio::test]
async fn batch_create_with_the_same_id_twice() {
    let api = api();
    let a = uid("Car");
    let r = api
        .post("/entityOperations/create", &json!([car(&a, 1), car(&a, 2)]))
        .await;
    r.expect(207);
    let body = r.json();
    assert_eq!(sorted(&body["success"]), vec![a.clone()], "{body}");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(1), "{body}");
    assert_problem_value(&body["errors"][0]["error"], "AlreadyExists");
    assert_eq!(
        api.entity(&a).await["speed"]["value"],
        json!(1),
        "the first one wins"
    );
}

#[tokio::test]
async fn batch_upsert_update_creates_missing_entities() {
    let api = api();
    let a = uid("Car");
    let r = api
        .post(
            "/entityOperations/upsert?options=update",
            &json!([car(&a, 1)]),
        )
        .await;
    r.expect(201);
    assert_eq!(sorted(&r.json()), vec![a.clone()]);
    assert_eq!(api.entity(&a).await["speed"]["value"], json!(1));
}

/// Two updates of one entity in one batch: the second acts on what the first wrote
/// (the SQLite store prepares both against the stored entity and must notice that the
/// second's view is stale).
#[tokio::test]
async fn batch_upsert_update_with_the_same_id_twice_applies_both() {
    let api = api();
    let a = uid("Car");
    api.create(&car(&a, 1)).await;
    let first = json!({ "id": a, "type": "Car", "colour": { "type": "Property", "value": "red" } });
    let second = json!({ "id": a, "type": "Car", "doors": { "type": "Property", "value": 5 } });
    api.post(
        "/entityOperations/upsert?options=update",
        &json!([first, second]),
    )
    .await
    .expect(204);
    let e = api.entity(&a).await;
    assert_eq!(e["speed"]["value"], json!(1), "{e}");
    assert_eq!(e["colour"]["value"], json!("red"), "{e}");
    assert_eq!(e["doors"]["value"], json!(5), "{e}");
}
