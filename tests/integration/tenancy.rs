//! Multi-tenancy with NGSILD-Tenant: full isolation, unknown tenants.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn tenants_are_isolated() {
    let a = api();
    let b = a.in_tenant(Some(&new_tenant()));
    let default = a.in_tenant(None);
    let id = uid("Secret");
    a.create(&json!({ "id": id, "type": "Secret", "code": { "type": "Property", "value": "A" } }))
        .await;
    // Tenant B exists too, with an entity of the same id but other content.
    b.create(&json!({ "id": id, "type": "Secret", "code": { "type": "Property", "value": "B" } }))
        .await;
    assert_eq!(a.entity(&id).await["code"]["value"], json!("A"));
    assert_eq!(b.entity(&id).await["code"]["value"], json!("B"));
    // Default tenant: never sees either (the default tenant always exists).
    assert_problem(&default.get(&ent(&id)).await, 404, "ResourceNotFound");
    let r = default.get("/entities?type=Secret").await;
    let hits = r.expect(200).json();
    assert!(
        !hits
            .as_array()
            .expect("array")
            .iter()
            .any(|e| e["id"] == json!(id)),
        "the default tenant sees another tenant's entity: {hits}"
    );
    // Queries stay within the tenant.
    let r = a.get("/entities?type=Secret").await;
    let v = r.expect(200).json();
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(v[0]["code"]["value"], json!("A"));
    // Writes stay within the tenant.
    b.delete(&ent(&id)).await.expect(204);
    assert_eq!(a.entity(&id).await["code"]["value"], json!("A"));
    // Purge in one tenant does not touch the other.
    b.create(&json!({ "id": id, "type": "Secret" })).await;
    b.delete("/entities?type=Secret").await.expect(204);
    assert_eq!(a.entity(&id).await["code"]["value"], json!("A"));
    // Batch operations too.
    b.post("/entityOperations/delete", &json!([id]))
        .await
        .expect(207);
    a.entity(&id).await;
}

#[tokio::test]
async fn create_in_a_tenant_echoes_the_tenant_header() {
    let a = api();
    let r = a
        .post("/entities", &json!({ "id": uid("T"), "type": "T" }))
        .await;
    r.expect(201);
    assert_eq!(r.header("NGSILD-Tenant"), a.tenant.clone());
}

#[tokio::test]
async fn default_tenant_works_without_header() {
    let d = api_default_tenant();
    let id = uid("Public");
    d.create(&json!({ "id": id, "type": "Public", "v": 1 }))
        .await;
    assert_eq!(d.entity(&id).await["v"]["value"], json!(1));
    // Not visible from a named tenant.
    let other = d.in_tenant(Some(&new_tenant()));
    other.create(&json!({ "id": uid("X"), "type": "X" })).await;
    assert_problem(&other.get(&ent(&id)).await, 404, "ResourceNotFound");
    d.delete(&ent(&id)).await.expect(204);
}

#[tokio::test]
async fn unknown_tenant_is_404_nonexistent_tenant() {
    let t = api(); // a tenant nobody wrote to
    assert_problem(&t.get(&ent(&uid("X"))).await, 404, "NonexistentTenant");
    assert_problem(&t.get("/entities?type=X").await, 404, "NonexistentTenant");
    assert_problem(&t.delete(&ent(&uid("X"))).await, 404, "NonexistentTenant");
    // Reading did not create it.
    assert_problem(&t.get("/entities?type=X").await, 404, "NonexistentTenant");
    // Writing creates it.
    t.create(&json!({ "id": uid("X"), "type": "X" })).await;
    assert_eq!(
        t.get("/entities?type=Y").await.expect(200).json(),
        json!([])
    );
}

#[tokio::test]
async fn invalid_tenant_name_is_400() {
    let t = api().in_tenant(Some("bad tenant!"));
    let r = t
        .post("/entities", &json!({ "id": uid("X"), "type": "X" }))
        .await;
    assert_problem(&r, 400, "BadRequestData");
}

/// Operations that cannot create anything, in a tenant nobody wrote to: NonexistentTenant,
/// and the tenant is still unknown afterwards (a failed write must not create it).
#[tokio::test]
async fn non_creating_operations_on_an_unknown_tenant() {
    let t = api();
    let id = uid("X");
    let attr_body = json!({ "p": { "type": "Property", "value": 1 } });
    let cases: Vec<(&str, Resp)> = vec![
        (
            "PATCH /attrs",
            t.patch(&format!("/entities/{id}/attrs"), &attr_body).await,
        ),
        (
            "POST /attrs",
            t.post(&format!("/entities/{id}/attrs"), &attr_body).await,
        ),
        (
            "PATCH /attrs/p",
            t.patch(
                &format!("/entities/{id}/attrs/p"),
                &json!({ "type": "Property", "value": 1 }),
            )
            .await,
        ),
        (
            "PUT /attrs/p",
            t.put(
                &format!("/entities/{id}/attrs/p"),
                &json!({ "type": "Property", "value": 1 }),
            )
            .await,
        ),
        (
            "DELETE /attrs/p",
            t.delete(&format!("/entities/{id}/attrs/p")).await,
        ),
        (
            "PUT entity",
            t.put(&ent(&id), &json!({ "type": "X", "p": 1 })).await,
        ),
        ("PATCH entity", t.patch(&ent(&id), &json!({ "p": 1 })).await),
        ("DELETE entity", t.delete(&ent(&id)).await),
        ("purge", t.delete("/entities?type=X").await),
    ];
    let mut wrong = Vec::new();
    for (what, r) in &cases {
        if r.status != 404 || !r.text.contains("NonexistentTenant") {
            wrong.push(format!("{what}: {} {}", r.status, r.text));
        } else {
            assert_problem(r, 404, "NonexistentTenant");
        }
    }
    // Batch operations that only touch existing entities.
    for op in ["update", "merge"] {
        let r = t
            .post(
                &format!("/entityOperations/{op}"),
                &json!([{ "id": id, "type": "X", "p": 1 }]),
            )
            .await;
        if r.status == 207 {
            // Per-entity errors are acceptable, as long as the tenant is not created.
            continue;
        }
        if r.status != 404 || !r.text.contains("NonexistentTenant") {
            wrong.push(format!("batch {op}: {} {}", r.status, r.text));
        }
    }
    let r = t.post("/entityOperations/delete", &json!([id])).await;
    if r.status != 207 && !(r.status == 404 && r.text.contains("NonexistentTenant")) {
        wrong.push(format!("batch delete: {} {}", r.status, r.text));
    }
    // None of that created the tenant.
    let r = t.get("/entities?type=X").await;
    if r.status != 404 {
        wrong.push(format!(
            "the tenant exists after failed writes only: GET /entities gives {} {}",
            r.status, r.text
        ));
    }
    assert!(wrong.is_empty(), "unknown tenant not reported: {wrong:#?}");
}

#[tokio::test]
async fn batch_create_creates_the_tenant() {
    let t = api();
    let id = uid("X");
    t.post(
        "/entityOperations/create",
        &json!([{ "id": id, "type": "X" }]),
    )
    .await
    .expect(201);
    t.entity(&id).await;
}
