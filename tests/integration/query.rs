//! Query entities (GET /entities) and purge (DELETE /entities).

use serde_json::{json, Value};

use crate::common::*;

fn ids_of(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("query result must be an array: {v}"))
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

/// A tenant with 5 Cars (with speed) and 3 Bikes (with gears), ids sorted.
async fn fleet(api: &Api) -> (Vec<String>, Vec<String>) {
    let mut cars: Vec<String> = (0..5).map(|i| format!("urn:ngsi-ld:Car:{i:03}")).collect();
    let mut bikes: Vec<String> = (0..3).map(|i| format!("urn:ngsi-ld:Bike:{i:03}")).collect();
    for c in &cars {
        api.create(
            &json!({ "id": c, "type": "Car", "speed": { "type": "Property", "value": 50 } }),
        )
        .await;
    }
    for b in &bikes {
        api.create(
            &json!({ "id": b, "type": "Bike", "gears": { "type": "Property", "value": 21 } }),
        )
        .await;
    }
    cars.sort();
    bikes.sort();
    (cars, bikes)
}

#[tokio::test]
async fn query_by_type() {
    let api = api();
    let (cars, bikes) = fleet(&api).await;
    let r = api.get("/entities?type=Car").await;
    r.expect(200);
    assert!(r.content_type().starts_with("application/json"));
    assert!(r.header("link").is_some_and(|l| l.contains(CORE_CONTEXT)));
    assert_eq!(ids_of(&r.json()), cars);
    let r = api.get("/entities?type=Car,Bike").await;
    let mut all = [cars.clone(), bikes.clone()].concat();
    all.sort();
    assert_eq!(ids_of(&r.expect(200).json()), all);
    let r = api.get("/entities?type=Plane").await;
    assert_eq!(r.expect(200).json(), json!([]));
}

#[tokio::test]
async fn query_by_id_and_id_pattern() {
    let api = api();
    let (cars, bikes) = fleet(&api).await;
    // Ids alone are too wide a query (clause 5.7.2.4) unless it is local.
    let r = api
        .get(&format!("/entities?id={},{}", cars[0], bikes[1]))
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = api
        .get(&format!("/entities?id={},{}&local=true", cars[0], bikes[1]))
        .await;
    let mut want = vec![cars[0].clone(), bikes[1].clone()];
    want.sort();
    assert_eq!(ids_of(&r.expect(200).json()), want);

    let r = api
        .get("/entities?idPattern=urn:ngsi-ld:Bike:.*&local=true")
        .await;
    assert_eq!(ids_of(&r.expect(200).json()), bikes);
    let r = api.get("/entities?type=Car&idPattern=.*00[12]$").await;
    assert_eq!(ids_of(&r.expect(200).json()), cars[1..3].to_vec());
}

#[tokio::test]
async fn query_by_attrs() {
    let api = api();
    let (_cars, bikes) = fleet(&api).await;
    let r = api.get("/entities?attrs=gears").await;
    let v = r.expect(200).json();
    assert_eq!(ids_of(&v), bikes);
    for e in v.as_array().expect("array") {
        assert!(e.get("gears").is_some());
    }
    // attrs also projects: only the named attributes are returned.
    let r = api.get("/entities?type=Car&attrs=gears").await;
    assert_eq!(r.expect(200).json(), json!([]));
}

#[tokio::test]
async fn query_key_values_and_concise() {
    let api = api();
    fleet(&api).await;
    let v = api
        .get("/entities?type=Bike&options=keyValues")
        .await
        .expect(200)
        .json();
    for e in v.as_array().expect("array") {
        assert_eq!(e["gears"], json!(21));
    }
    let v = api
        .get("/entities?type=Bike&format=concise")
        .await
        .expect(200)
        .json();
    for e in v.as_array().expect("array") {
        assert_eq!(e["gears"], json!(21));
    }
}

#[tokio::test]
async fn pagination_limit_offset_count() {
    let api = api();
    let (cars, _) = fleet(&api).await;
    let mut seen = Vec::new();
    for offset in [0, 2, 4] {
        let r = api
            .get(&format!(
                "/entities?type=Car&limit=2&offset={offset}&count=true"
            ))
            .await;
        r.expect(200);
        assert_eq!(r.header("NGSILD-Results-Count").as_deref(), Some("5"));
        let page = r.json();
        let n = page.as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(
            n,
            if offset == 4 { 1 } else { 2 },
            "page at {offset}: {page}"
        );
        seen.extend(ids_of(&page));
    }
    seen.sort();
    assert_eq!(seen, cars, "the pages cover every entity exactly once");

    // count without results.
    let r = api.get("/entities?type=Car&limit=0&count=true").await;
    r.expect(200);
    assert_eq!(r.header("NGSILD-Results-Count").as_deref(), Some("5"));
    assert_eq!(r.json(), json!([]));
    // No count header unless asked.
    let r = api.get("/entities?type=Car").await;
    assert!(r.expect(200).header("NGSILD-Results-Count").is_none());
    // Beyond the end.
    let r = api.get("/entities?type=Car&offset=50").await;
    assert_eq!(r.expect(200).json(), json!([]));

    // The paging links keep the client's parameters as it wrote them (clause 4.12).
    let r = api
        .get("/entities?type=Car&idPattern=urn:ngsi-ld:Car:.*&limit=2&offset=2&count=true")
        .await;
    r.expect(200);
    let mut links: Vec<String> = r
        .headers
        .get_all("Link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(", ").map(str::to_string).collect::<Vec<_>>())
        .filter(|l| !l.contains("json-ld#context"))
        .collect();
    links.sort();
    let base = "/ngsi-ld/v1/entities?count=true&idPattern=urn:ngsi-ld:Car:.*";
    assert_eq!(
        links,
        vec![
            format!("<{base}&limit=2&offset=0&type=Car>; rel=\"prev\";type=\"application/json\""),
            format!("<{base}&limit=2&offset=4&type=Car>; rel=\"next\";type=\"application/json\""),
        ]
    );

    // Escapes a query does not need are written plainly; those it needs are kept.
    let r = api
        .get("/entities?type=Car&idPattern=urn%3Angsi-ld%3ACar%3A.%2A&q=speed%21%3D%22a%26b%22&limit=2&count=true")
        .await;
    r.expect(200);
    let next: Vec<String> = r
        .headers
        .get_all("Link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(", ").map(str::to_string).collect::<Vec<_>>())
        .filter(|l| l.contains("rel=\"next\""))
        .collect();
    assert_eq!(
        next,
        vec![format!(
            "<{base}&limit=2&offset=2&q=speed!%3D%22a%26b%22&type=Car>; rel=\"next\";type=\"application/json\""
        )]
    );
}

#[tokio::test]
async fn limit_over_maximum_is_403_too_many_results() {
    let api = api();
    fleet(&api).await;
    let r = api.get("/entities?type=Car&limit=1001").await;
    assert_problem(&r, 403, "TooManyResults");
    api.get("/entities?type=Car&limit=1000").await.expect(200);
}

#[tokio::test]
async fn query_parameter_errors() {
    let api = api();
    fleet(&api).await;
    // No selection at all.
    assert_problem(&api.get("/entities").await, 400, "BadRequestData");
    assert_problem(
        &api.get("/entities?type=Car&limit=-1").await,
        400,
        "BadRequestData",
    );
    assert_problem(
        &api.get("/entities?type=Car&limit=abc").await,
        400,
        "BadRequestData",
    );
    assert_problem(
        &api.get("/entities?type=Car&count=yes").await,
        400,
        "BadRequestData",
    );
    assert_problem(
        &api.get("/entities?type=Car&offset=x").await,
        400,
        "BadRequestData",
    );
    assert_problem(
        &api.get("/entities?id=not%20a%20uri").await,
        400,
        "BadRequestData",
    );
    assert_problem(
        &api.get("/entities?type=Car&limit=0").await,
        400,
        "BadRequestData",
    );
    assert_problem_any(
        &api.get("/entities?type=Car&bogus=1").await,
        400,
        UNKNOWN_PARAM,
    );
    assert_problem(
        &api.get("/entities?idPattern=(unclosed").await,
        400,
        "BadRequestData",
    );
}

#[tokio::test]
async fn purge_entities_by_type() {
    let api = api();
    let (cars, bikes) = fleet(&api).await;
    let r = api.delete("/entities?type=Car").await;
    r.expect(204);
    assert_eq!(
        api.get("/entities?type=Car").await.expect(200).json(),
        json!([])
    );
    assert_eq!(
        ids_of(&api.get("/entities?type=Bike").await.expect(200).json()),
        bikes
    );
    assert_problem(&api.get(&ent(&cars[0])).await, 404, "ResourceNotFound");

    // Purge by id pattern.
    // An id pattern alone selects too little to purge by (ETSI 060_06).
    let r = api.delete("/entities?idPattern=.*Bike:00[01]").await;
    assert_problem(&r, 400, "BadRequestData");
    api.delete("/entities?type=Bike&idPattern=.*Bike:00[01]")
        .await
        .expect(204);
    assert_eq!(
        ids_of(&api.get("/entities?type=Bike").await.expect(200).json()),
        vec![bikes[2].clone()]
    );
    // A purge needs a selection.
    assert_problem(&api.delete("/entities").await, 400, "BadRequestData");
}

/// Queries too wide or malformed for clause 5.7.2.4: system members alone, a q on
/// system attributes alone, core members in attrs, a pattern with nothing to repeat.
#[tokio::test]
async fn too_wide_or_malformed_queries_are_400() {
    let api = api();
    api.post(
        "/entities",
        &json!({ "id": uid("Car"), "type": "Car", "speed": { "type": "Property", "value": 1 } }),
    )
    .await
    .expect(201);
    for bad in [
        "/entities?attrs=createdAt",
        "/entities?q=modifiedAt%3E%222020-01-01T00:00:00Z%22",
        "/entities?attrs=id,type",
        "/entities?type=Car&idPattern=car**",
        "/entities?type=Car&idPattern=car%2B*",
    ] {
        let r = api.get(bad).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    // Lazy quantifiers, escaped and bracketed characters are fine.
    for good in [
        "/entities?type=Car&idPattern=car.*%3F",
        "/entities?type=Car&idPattern=a%5C*%2B",
        "/entities?type=Car&idPattern=%5B*%2B%5D%2B",
        "/entities?type=Car&q=modifiedAt%3E%222020-01-01T00:00:00Z%22",
    ] {
        api.get(good).await.expect(200);
    }
}

/// orderBy (clause 4.23): by attribute value, sub-attribute, id, type, several keys,
/// each ascending or descending; missing values last; paging after ordering.
#[tokio::test]
async fn order_by_members_and_attributes() {
    let api = api();
    let ids: Vec<String> = (0..4).map(|_| uid("Building")).collect();
    // name: c, a, b, (none); floors: 3, 1, 2, 5; name.rank on two of them.
    let bodies = [
        json!({ "name": { "type": "Property", "value": "c", "rank": { "type": "Property", "value": 1 } }, "floors": { "type": "Property", "value": 3 } }),
        json!({ "name": { "type": "Property", "value": "a", "rank": { "type": "Property", "value": 9 } }, "floors": { "type": "Property", "value": 1 } }),
        json!({ "name": { "type": "Property", "value": "b" }, "floors": { "type": "Property", "value": 2 } }),
        json!({ "floors": { "type": "Property", "value": 5 } }),
    ];
    for (id, body) in ids.iter().zip(bodies) {
        let mut e = body;
        e["id"] = json!(id);
        e["type"] = json!("Building");
        api.post("/entities", &e).await.expect(201);
    }
    let order = |q: &str| {
        let api = api.clone();
        let q = q.to_string();
        async move {
            let r = api
                .get(&format!("/entities?type=Building&orderBy={q}"))
                .await;
            ids_of_in_order(&r.expect(200).json())
        }
    };
    let at = |i: &[usize]| -> Vec<String> { i.iter().map(|&k| ids[k].clone()).collect() };
    assert_eq!(order("name").await, at(&[1, 2, 0, 3]), "missing name last");
    assert_eq!(
        order("name;desc").await,
        at(&[0, 2, 1, 3]),
        "missing still last"
    );
    assert_eq!(order("floors;desc").await, at(&[3, 0, 2, 1]));
    assert_eq!(order("name.rank;desc,floors").await, at(&[1, 0, 2, 3]));
    let mut by_id = ids.clone();
    by_id.sort();
    assert_eq!(order("id").await, by_id);
    // Paging follows the order.
    let r = api
        .get("/entities?type=Building&orderBy=floors&limit=2&offset=1")
        .await;
    assert_eq!(ids_of_in_order(&r.expect(200).json()), at(&[2, 0]));
    let links: Vec<&str> = r
        .headers
        .get_all("Link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        links.iter().any(|l| l.contains("rel=\"next\"")),
        "{links:?}"
    );
    for bad in ["name;up", "", "name%3D%3D1"] {
        let r = api
            .get(&format!("/entities?type=Building&orderBy={bad}"))
            .await;
        assert_problem(&r, 400, "BadRequestData");
    }
}

fn ids_of_in_order(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect()
}
