//! Flat and GIS layers (issue 8): each format read back with its own parser.

use std::io::Read;
use std::str::FromStr;

use reqwest::Method;

use super::common::{assert_problem, Api};
use super::dump_workload::{populate, station_id};
use super::reversibility::{admin_server, TOKEN};

/// A layer of the api's tenant, as bytes (asserting 200 and the content type).
async fn layer(api: &Api, query: &str, content_type: &str) -> Vec<u8> {
    let r = api
        .raw(
            Method::GET,
            &format!("{}/admin/export?{query}", api.base_url),
        )
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = r.bytes().await.expect("body").to_vec();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert!(ct.starts_with(content_type), "content type {ct}");
    bytes
}

fn csv_rows(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_reader(bytes);
    let header = r
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = r
        .records()
        .map(|rec| {
            rec.expect("a CSV record")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    (header, rows)
}

#[tokio::test]
async fn layers_parse_back_with_their_own_readers() {
    let s = admin_server();
    let api = s.api();
    // 3 stations, 4 readings each after the first one at midnight.
    populate(&api, 21, 3, 4).await;

    // CSV of history: the level instances in [00:15, 01:00), local times in Paris.
    let bytes = layer(
        &api,
        "format=csv-history&type=WaterObserved&attrs=level&timerel=between&timeAt=2026-01-01T00:15:00Z&endTimeAt=2026-01-01T01:00:00Z",
        "text/csv",
    )
    .await;
    let (header, rows) = csv_rows(&bytes);
    assert_eq!(
        header,
        [
            "entityId",
            "entityType",
            "attribute",
            "datasetId",
            "value",
            "unitCode",
            "observedAt",
            "observedAtLocal"
        ]
    );
    assert_eq!(rows.len(), 3 * 3, "{rows:?}");
    let first = rows
        .iter()
        .find(|r| r[0] == station_id(1) && r[6] == "2026-01-01T00:30:00Z")
        .expect("the 00:30 reading of station 1");
    assert_eq!(first[1], "WaterObserved");
    assert_eq!(first[2], "level");
    assert_eq!(first[5], "MTR");
    assert!(first[4].parse::<f64>().is_ok(), "{first:?}");
    assert_eq!(first[7], "2026-01-01 01:30:00");
    // Another zone; multi-instance attributes keep their datasetId.
    let bytes = layer(
        &api,
        "format=csv-history&type=WaterObserved&attrs=temperature&tz=America/New_York",
        "text/csv",
    )
    .await;
    let (_, rows) = csv_rows(&bytes);
    assert_eq!(rows.len(), 3 * 2);
    assert!(rows.iter().any(|r| r[3] == "urn:ngsi-ld:Dataset:bottom"));
    assert!(
        rows.iter().all(|r| r[7] == "2025-12-31 19:00:00"),
        "{rows:?}"
    );

    // CSV of current state: one row per entity, one column per attribute.
    let bytes = layer(&api, "format=csv&type=WaterObserved", "text/csv").await;
    let (header, rows) = csv_rows(&bytes);
    assert_eq!(&header[..2], ["id", "type"]);
    let level = header
        .iter()
        .position(|h| h == "level")
        .expect("a level column");
    let name = header
        .iter()
        .position(|h| h == "name")
        .expect("a name column");
    assert_eq!(rows.len(), 3);
    let row = rows
        .iter()
        .find(|r| r[0] == station_id(2))
        .expect("station 2");
    assert!(row[level].parse::<f64>().is_ok());
    assert_eq!(row[name], "Station 2");

    // GeoJSON: a valid FeatureCollection with point geometries.
    let bytes = layer(
        &api,
        "format=geojson&type=WaterObserved",
        "application/geo+json",
    )
    .await;
    let gj = geojson::GeoJson::from_str(&String::from_utf8_lossy(&bytes)).expect("valid GeoJSON");
    let geojson::GeoJson::FeatureCollection(fc) = gj else {
        panic!("not a FeatureCollection")
    };
    assert_eq!(fc.features.len(), 3);
    for f in &fc.features {
        assert!(matches!(
            f.geometry.as_ref().map(|g| &g.value),
            Some(geojson::GeometryValue::Point { .. })
        ));
        assert!(f.property("level").is_some_and(|v| v.is_number()));
    }

    // KML: parsed back, one Placemark per entity with a geometry.
    let bytes = layer(
        &api,
        "format=kml&type=WasteContainer",
        "application/vnd.google-earth.kml+xml",
    )
    .await;
    let text = String::from_utf8_lossy(&bytes).to_string();
    let kml = kml::Kml::<f64>::from_str(&text).expect("valid KML");
    let mut placemarks = 0;
    count_placemarks(&kml, &mut placemarks);
    assert_eq!(placemarks, 2, "one container was deleted");
    assert!(text.contains("<Data name=\"fill\">"));

    // Shapefile: the zip holds .shp/.shx/.dbf/.prj, read back with the shapefile crate.
    let bytes = layer(
        &api,
        "format=shapefile&type=WaterObserved",
        "application/zip",
    )
    .await;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut names = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).expect("zip entry");
        let name = f.name().to_string();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).expect("read entry");
        std::fs::write(dir.path().join(&name), buf).expect("write entry");
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "WaterObserved_points.dbf",
            "WaterObserved_points.prj",
            "WaterObserved_points.shp",
            "WaterObserved_points.shx"
        ]
    );
    let mut reader = shapefile::Reader::from_path(dir.path().join("WaterObserved_points.shp"))
        .expect("a shapefile");
    let mut ids = Vec::new();
    for item in reader.iter_shapes_and_records() {
        let (shape, record) = item.expect("a shape and its record");
        assert!(matches!(shape, shapefile::Shape::Point(_)));
        match record.get("id") {
            Some(shapefile::dbase::FieldValue::Character(Some(id))) => ids.push(id.clone()),
            other => panic!("id field: {other:?}"),
        }
        assert!(matches!(
            record.get("level"),
            Some(shapefile::dbase::FieldValue::Numeric(Some(_)))
        ));
    }
    ids.sort();
    assert_eq!(ids, [station_id(0), station_id(1), station_id(2)]);
}

fn count_placemarks(k: &kml::Kml<f64>, n: &mut usize) {
    match k {
        kml::Kml::Placemark(_) => *n += 1,
        kml::Kml::KmlDocument(d) => d.elements.iter().for_each(|e| count_placemarks(e, n)),
        kml::Kml::Document { elements, .. }
        | kml::Kml::Folder(kml::types::Folder { elements, .. }) => {
            elements.iter().for_each(|e| count_placemarks(e, n))
        }
        _ => {}
    }
}

#[tokio::test]
async fn bad_layer_requests_are_refused() {
    let s = admin_server();
    let api = s.api();
    for (query, kind) in [
        ("format=xls", "BadRequestData"),
        ("format=csv&tz=Mars/Olympus", "BadRequestData"),
        ("format=csv-history&type=A;B", "BadRequestData"),
        ("format=csv&color=red", "InvalidRequest"),
    ] {
        let r = api
            .send(
                api.raw(
                    Method::GET,
                    &format!("{}/admin/export?{query}", api.base_url),
                )
                .bearer_auth(TOKEN),
            )
            .await;
        assert_problem(&r, 400, kind);
    }
}
