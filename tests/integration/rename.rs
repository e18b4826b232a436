//! Entity rename (issue 8): current state, history and inbound references move to the
//! new id in one step, and the rename is recorded in the dump.

use reqwest::Method;
use serde_json::json;

use super::common::assert_problem;
use super::dump_workload::{container_id, populate, records, station_id};
use super::reversibility::{admin, admin_server, export_all};

#[tokio::test]
async fn rename_moves_state_history_and_inbound_relationships() {
    let s = admin_server();
    let api = s.api();
    populate(&api, 13, 3, 2).await;
    let rename = |old: String, new: &str| {
        let api = api.clone();
        let body = json!({"oldId": old, "newId": new}).to_string();
        async move {
            let r = api
                .send(
                    api.client
                        .post(format!("{}/admin/rename", api.base_url))
                        .bearer_auth(super::reversibility::TOKEN)
                        .header("NGSILD-Tenant", api.tenant.clone().unwrap_or_default())
                        .header("Content-Type", "application/json")
                        .body(body),
                )
                .await;
            r
        }
    };
    let station = station_id(2);
    let container = container_id(2);
    let (new_station, new_container) = (
        "urn:ngsi-ld:WaterObserved:renamed-station",
        "urn:ngsi-ld:WasteContainer:renamed-container",
    );

    // The container: the station's level points at it through a sub-attribute (in its
    // first history instance, and again in its current state).
    let r = api
        .patch(
            &format!("/entities/{station}/attrs"),
            &json!({"level": {"type": "Property", "value": 1.5, "observedAt": "2026-01-02T00:00:00Z",
                              "measuredBy": {"type": "Relationship", "object": container}}}),
        )
        .await;
    r.expect(204);
    let r = rename(container.clone(), new_container).await;
    r.expect(200);
    assert_eq!(r.json()["rewritten"], json!([station]));
    let st = api.entity(&station).await;
    assert_eq!(
        api.get(&format!("/temporal/entities/{station}?attrs=level"))
            .await
            .json()["level"][0]["measuredBy"]["object"],
        new_container,
        "history instances follow too"
    );
    assert_eq!(st["level"]["measuredBy"]["object"], new_container, "{st}");

    let history_before = api
        .get(&format!("/temporal/entities/{station}?attrs=level"))
        .await
        .json();
    // The station: a Relationship (the renamed container) and a ListRelationship point at it.
    let r = rename(station.clone(), new_station).await;
    r.expect(200);
    let mut rewritten: Vec<String> =
        serde_json::from_value(r.json()["rewritten"].clone()).unwrap_or_default();
    rewritten.sort();
    let mut expected = vec![container_id(1), new_container.to_string()];
    expected.sort();
    assert_eq!(rewritten, expected);
    assert_eq!(api.get(&format!("/entities/{station}")).await.status, 404);
    let moved = api.entity(new_station).await;
    assert_eq!(moved["id"], new_station);
    assert_eq!(moved["name"]["value"], "Station 2");
    assert_eq!(
        api.entity(new_container).await["refStation"]["object"],
        new_station
    );
    assert_eq!(
        api.entity(&container_id(1)).await["neighbours"]["objectList"][0]["object"],
        new_station
    );
    // The value index follows: a query on the relationship finds the referrer.
    let q = api
        .get(&format!(
            "/entities?type=WasteContainer&q=refStation==%22{new_station}%22"
        ))
        .await;
    assert_eq!(q.json().as_array().map(Vec::len), Some(1), "{}", q.text);
    // The whole history moved.
    let history_after = api
        .get(&format!("/temporal/entities/{new_station}?attrs=level"))
        .await;
    history_after.expect(200);
    assert_eq!(
        history_after.json()["level"].as_array().map(Vec::len),
        history_before["level"].as_array().map(Vec::len)
    );
    assert_eq!(
        api.get(&format!("/temporal/entities/{station}"))
            .await
            .status,
        404
    );

    // Conflict, absent entity, bad ids.
    let r = rename(station_id(0), &station_id(1)).await;
    assert_problem(&r, 409, "AlreadyExists");
    let r = rename(station.clone(), "urn:ngsi-ld:WaterObserved:elsewhere").await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = rename(station_id(0), "not a uri").await;
    assert_problem(&r, 400, "BadRequestData");

    // The renames are in the dump.
    let dump = records(&admin(&api, Method::GET, "/admin/export", None).await.text);
    let renames: Vec<_> = dump.iter().filter(|r| r["kind"] == "rename").collect();
    assert_eq!(renames.len(), 2, "{renames:?}");
    assert_eq!(renames[1]["oldId"], station);
    assert_eq!(renames[1]["newId"], new_station);
    let _ = export_all(&api).await;
}
