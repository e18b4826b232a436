//! Published datasets (issue 8): whole files at stable URLs for the open-data portal,
//! read-only API keys scoped to one dataset, 304 on an unchanged re-read, and the
//! DCAT-AP catalogue of the public ones.

use reqwest::Method;
use serde_json::{json, Value};

use super::common::{assert_problem, Api, Resp};
use super::dump_workload::{populate, station_id};
use super::reversibility::{admin_server, TOKEN};

const DCAT: &str =
    "https://raw.githubusercontent.com/smart-data-models/dataModel.DCAT-AP/master/context.jsonld";

async fn define(api: &Api, name: &str, access: &str, publication: Value) {
    let r = api
        .json_linked(
            Method::POST,
            "/entities",
            &json!({
                "id": format!("urn:ngsi-ld:Dataset:{name}"),
                "type": "Dataset",
                "name": {"type": "Property", "value": name},
                "title": {"type": "Property", "value": [format!("The {name} dataset")]},
                "description": {"type": "Property", "value": ["Published by the metropolis"]},
                "keyword": {"type": "Property", "value": ["water", "open data"]},
                "accessRights": {"type": "Property", "value": access},
                "publication": {"type": "Property", "value": publication}
            }),
            DCAT,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn new_key(api: &Api, name: &str) -> String {
    let r = api
        .send(
            api.raw(
                Method::POST,
                &format!("{}/admin/datasets/{name}/keys", api.base_url),
            )
            .bearer_auth(TOKEN)
            .header("Content-Length", "0"),
        )
        .await;
    r.expect(201);
    r.json()["apiKey"].as_str().expect("a key").to_string()
}

async fn read(api: &Api, file: &str, headers: &[(&str, &str)]) -> Resp {
    let mut r = api.raw(Method::GET, &format!("{}/datasets/{file}", api.base_url));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    api.send(r).await
}

#[tokio::test]
async fn datasets_are_served_with_keys_validators_and_a_catalogue() {
    let s = admin_server();
    let api = s.api();
    populate(&api, 31, 2, 2).await;
    define(
        &api,
        "river-levels",
        "non-public",
        json!({"query": "type=WaterObserved&attrs=level", "format": "csv"}),
    )
    .await;
    define(
        &api,
        "containers",
        "non-public",
        json!({"query": "type=WasteContainer", "format": "geojson"}),
    )
    .await;
    define(
        &api,
        "open-levels",
        "public",
        json!({"query": "type=WaterObserved&attrs=level", "format": "csv-history", "window": "P3650D"}),
    )
    .await;
    let levels_key = new_key(&api, "river-levels").await;
    let containers_key = new_key(&api, "containers").await;

    // Refused without a key, and with another dataset's key.
    let r = read(&api, "river-levels.csv", &[]).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.json()["type"], "urn:calanque:errors:Unauthorized");
    let r = read(&api, "river-levels.csv", &[("X-API-Key", &containers_key)]).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json()["type"], "urn:calanque:errors:Forbidden");

    // Read with its key, in a header, as Authorization: Apikey, or in the query.
    let r = read(&api, "river-levels.csv", &[("X-API-Key", &levels_key)]).await;
    r.expect(200);
    assert!(r.content_type().starts_with("text/csv"));
    let mut csv = csv::Reader::from_reader(r.text.as_bytes());
    assert_eq!(
        csv.headers().expect("header").iter().collect::<Vec<_>>(),
        ["id", "type", "level"]
    );
    assert_eq!(csv.records().count(), 2);
    let etag = r.header("etag").expect("an ETag");
    let last_modified = r.header("last-modified").expect("a Last-Modified");
    let auth = format!("Apikey {levels_key}");
    read(&api, "river-levels.csv", &[("Authorization", &auth)])
        .await
        .expect(200);
    read(&api, &format!("river-levels.json?apikey={levels_key}"), &[])
        .await
        .expect(200);
    let r = read(
        &api,
        &format!("containers.geojson?apikey={containers_key}"),
        &[],
    )
    .await;
    r.expect(200);
    assert_eq!(r.json()["features"].as_array().map(Vec::len), Some(1));

    // An unchanged dataset costs a 304; a change shows.
    let r = read(
        &api,
        "river-levels.csv",
        &[("X-API-Key", &levels_key), ("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(r.status, 304, "{}", r.text);
    assert!(r.text.is_empty());
    let r = read(
        &api,
        "river-levels.csv",
        &[
            ("X-API-Key", &levels_key),
            ("If-Modified-Since", &last_modified),
        ],
    )
    .await;
    assert_eq!(r.status, 304);
    let r = api
        .patch(
            &format!("/entities/{}/attrs", station_id(0)),
            &json!({"level": {"type": "Property", "value": 9.5, "observedAt": "2026-02-01T00:00:00Z"}}),
        )
        .await;
    r.expect(204);
    let r = read(
        &api,
        "river-levels.csv",
        &[("X-API-Key", &levels_key), ("If-None-Match", &etag)],
    )
    .await;
    r.expect(200);
    assert_ne!(r.header("etag"), Some(etag));
    assert!(r.text.contains("9.5"));

    // A public dataset needs no key; the history window holds every reading (the two
    // stations', the update above, the archived history's two).
    let r = read(&api, "open-levels.csv", &[]).await;
    r.expect(200);
    assert_eq!(
        csv::Reader::from_reader(r.text.as_bytes())
            .records()
            .count(),
        2 * 3 + 1 + 2
    );

    // The catalogue lists the public datasets only.
    let tenant = api.tenant.clone().unwrap_or_default();
    let r = api
        .send(api.client.get(format!(
            "{}/datasets/data.json?tenant={tenant}",
            api.base_url
        )))
        .await;
    r.expect(200);
    let cat = r.json();
    let sets = cat["dcat:dataset"].as_array().expect("datasets");
    assert_eq!(sets.len(), 1, "{cat}");
    assert_eq!(sets[0]["dct:identifier"], "open-levels");
    assert_eq!(sets[0]["dct:title"], "The open-levels dataset");
    let url = sets[0]["dcat:distribution"][0]["dcat:downloadURL"]["@id"]
        .as_str()
        .unwrap_or_default();
    assert!(
        url.ends_with(&format!("/datasets/open-levels.csv?tenant={tenant}")),
        "{url}"
    );

    // Unknown datasets and extensions.
    assert_problem(
        &read(&api, "nothing.csv", &[]).await,
        404,
        "ResourceNotFound",
    );
    assert_problem(
        &read(&api, "open-levels.xls", &[]).await,
        404,
        "ResourceNotFound",
    );
}
