//! Issue 3: geo-queries over HTTP (`georel`, `geometry`, `coordinates`, `geoproperty`)
//! and GeoJSON output, on geometries around Aix-Marseille created in each test's tenant.
//!
//! Expectations are computed in the test, independently of the broker: haversine
//! distances for `near`, and for the other relations hand-checked axis-aligned boxes
//! and lines (the comments give the reasoning).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

/// Vieux-Port of Marseille.
const VIEUX_PORT: (f64, f64) = (5.3698, 43.2951);

/// (key, entity type, GeoJSON geometry of `location`).
fn dataset() -> Vec<(&'static str, &'static str, Value)> {
    let p = |lon: f64, lat: f64| json!({ "type": "Point", "coordinates": [lon, lat] });
    vec![
        // Points around the Vieux-Port: 0, ~100 m N, ~421 m E, ~469 m W, ~656 m N.
        ("port", "WasteContainer", p(5.3698, 43.2951)),
        ("north100", "WasteContainer", p(5.3698, 43.2960)),
        ("east420", "NoiseLevelObserved", p(5.3750, 43.2951)),
        ("west470", "WasteContainer", p(5.3640, 43.2951)),
        ("north656", "NoiseLevelObserved", p(5.3698, 43.3010)),
        ("aix", "WasteContainer", p(5.4474, 43.5297)),
        ("aubagne", "WasteContainer", p(5.5708, 43.2927)),
        // The Huveaune river as a line along 43.27 N.
        (
            "huveaune",
            "WaterObserved",
            json!({ "type": "LineString", "coordinates": [[5.40, 43.27], [5.60, 43.27]] }),
        ),
        // The Etang de Berre as a box.
        (
            "lake",
            "WaterObserved",
            json!({ "type": "Polygon", "coordinates": [[
                [5.05, 43.40], [5.20, 43.40], [5.20, 43.55], [5.05, 43.55], [5.05, 43.40]
            ]] }),
        ),
        // Two probes of one device.
        (
            "sensors",
            "Device",
            json!({ "type": "MultiPoint", "coordinates": [[5.10, 43.45], [5.70, 43.60]] }),
        ),
        // Two branches of the Canal de Marseille.
        (
            "canals",
            "WaterObserved",
            json!({ "type": "MultiLineString", "coordinates": [
                [[5.32, 43.45], [5.40, 43.45]],
                [[5.32, 43.50], [5.40, 43.50]]
            ] }),
        ),
        // Two parks: one around the Vieux-Port, one around the Aix point.
        (
            "parks",
            "Park",
            json!({ "type": "MultiPolygon", "coordinates": [
                [[[5.36, 43.28], [5.38, 43.28], [5.38, 43.30], [5.36, 43.30], [5.36, 43.28]]],
                [[[5.44, 43.52], [5.46, 43.52], [5.46, 43.54], [5.44, 43.54], [5.44, 43.52]]]
            ] }),
        ),
        // A weather station north of Marignane, observing an area at the Vieux-Port.
        ("weather", "WeatherObserved", p(5.25, 43.60)),
    ]
}

const OBSERVATION_SPACE: &str =
    "[[[5.365,43.29],[5.375,43.29],[5.375,43.30],[5.365,43.30],[5.365,43.29]]]";

fn id_of(key: &str) -> String {
    format!("urn:ngsi-ld:Thing:{key}")
}

fn all_keys() -> Vec<&'static str> {
    sorted(dataset().into_iter().map(|(k, _, _)| k).collect())
}

fn sorted(mut v: Vec<&'static str>) -> Vec<&'static str> {
    v.sort_unstable();
    v
}

fn all_but(excluded: &[&str]) -> Vec<&'static str> {
    all_keys()
        .into_iter()
        .filter(|k| !excluded.contains(k))
        .collect()
}

async fn geo_city(api: &Api) {
    let entities: Vec<Value> = dataset()
        .into_iter()
        .enumerate()
        .map(|(i, (key, kind, geometry))| {
            let mut e = json!({
                "id": id_of(key),
                "type": kind,
                "location": { "type": "GeoProperty", "value": geometry },
                "rank": { "type": "Property", "value": i },
            });
            if kind == "WasteContainer" {
                e["fillingLevel"] = json!({ "type": "Property", "value": i as f64 / 10.0 });
            }
            if key == "weather" {
                let space: Value = serde_json::from_str(OBSERVATION_SPACE).expect("JSON");
                e["observationSpace"] = json!({
                    "type": "GeoProperty",
                    "value": { "type": "Polygon", "coordinates": space }
                });
            }
            e
        })
        .collect();
    let r = api
        .post("/entityOperations/create", &Value::Array(entities))
        .await;
    assert_eq!(r.status, 201, "creating the dataset failed: {}", r.text);
}

fn key_of(id: &str) -> &'static str {
    all_keys()
        .into_iter()
        .find(|k| id_of(k) == id)
        .unwrap_or_else(|| panic!("unexpected entity {id}"))
}

fn keys_in(body: &Value) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = body
        .as_array()
        .unwrap_or_else(|| panic!("a query result must be an array: {body}"))
        .iter()
        .map(|e| key_of(e["id"].as_str().unwrap_or_else(|| panic!("no id in {e}"))))
        .collect();
    keys.sort_unstable();
    let distinct: BTreeSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "duplicates in {body}");
    keys
}

async fn get(api: &Api, params: &[(&str, &str)]) -> Resp {
    api.send(api.req(Method::GET, "/entities").query(params))
        .await
}

/// One geo-query case: georel, geometry, coordinates, expected keys.
type Case = (&'static str, &'static str, &'static str, Vec<&'static str>);

/// Runs the cases (each with `geoproperty` if given) and reports every mismatch at once.
async fn check(api: &Api, cases: &[Case], geoproperty: Option<&str>) {
    let mut failures = Vec::new();
    for (georel, geometry, coordinates, want) in cases {
        let mut params = vec![
            ("georel", *georel),
            ("geometry", *geometry),
            ("coordinates", *coordinates),
        ];
        if let Some(g) = geoproperty {
            params.push(("geoproperty", g));
        }
        let r = get(api, &params).await;
        if r.status != 200 {
            failures.push(format!(
                "{georel} {geometry} {coordinates}: status {} {}",
                r.status, r.text
            ));
            continue;
        }
        let got = keys_in(&r.json());
        let want = sorted(want.clone());
        if got != want {
            failures.push(format!(
                "{georel} {geometry} {coordinates}: expected {want:?}, got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// --- Independent geometry for the `near` expectations -------------------------------

/// Great-circle distance in metres (mean Earth radius 6371.0088 km).
fn haversine(a: (f64, f64), b: (f64, f64)) -> f64 {
    let r = 6_371_008.8;
    let (lon1, lat1) = (a.0.to_radians(), a.1.to_radians());
    let (lon2, lat2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * r * h.sqrt().asin()
}

fn pos(v: &Value) -> (f64, f64) {
    (
        v[0].as_f64().expect("longitude"),
        v[1].as_f64().expect("latitude"),
    )
}

/// Points along a line, 500 per segment (a few metres apart at most here).
fn densify(line: &Value) -> Vec<(f64, f64)> {
    let pts: Vec<(f64, f64)> = line.as_array().expect("line").iter().map(pos).collect();
    let mut out = Vec::new();
    for w in pts.windows(2) {
        for i in 0..=500 {
            let t = i as f64 / 500.0;
            out.push((
                w[0].0 + (w[1].0 - w[0].0) * t,
                w[0].1 + (w[1].1 - w[0].1) * t,
            ));
        }
    }
    out
}

/// Ray casting: is the point inside the ring?
fn in_ring(p: (f64, f64), ring: &Value) -> bool {
    let pts: Vec<(f64, f64)> = ring.as_array().expect("ring").iter().map(pos).collect();
    let mut inside = false;
    for w in pts.windows(2) {
        let ((x1, y1), (x2, y2)) = (w[0], w[1]);
        if (y1 > p.1) != (y2 > p.1) && p.0 < (x2 - x1) * (p.1 - y1) / (y2 - y1) + x1 {
            inside = !inside;
        }
    }
    inside
}

/// Distance in metres from a point to a geometry (0 inside a polygon).
fn distance_to(p: (f64, f64), g: &Value) -> f64 {
    let c = &g["coordinates"];
    let min = |pts: Vec<(f64, f64)>| {
        pts.into_iter()
            .map(|q| haversine(p, q))
            .fold(f64::INFINITY, f64::min)
    };
    let polygon = |poly: &Value| -> f64 {
        let rings = poly.as_array().expect("rings");
        if in_ring(p, &rings[0]) && !rings[1..].iter().any(|h| in_ring(p, h)) {
            0.0
        } else {
            min(rings.iter().flat_map(densify).collect())
        }
    };
    match g["type"].as_str().expect("type") {
        "Point" => haversine(p, pos(c)),
        "MultiPoint" => min(c.as_array().expect("points").iter().map(pos).collect()),
        "LineString" => min(densify(c)),
        "MultiLineString" => min(c
            .as_array()
            .expect("lines")
            .iter()
            .flat_map(densify)
            .collect()),
        "Polygon" => polygon(c),
        "MultiPolygon" => c
            .as_array()
            .expect("polygons")
            .iter()
            .map(polygon)
            .fold(f64::INFINITY, f64::min),
        other => panic!("unexpected geometry {other}"),
    }
}

/// The keys whose `location` is within / beyond a distance of a point, with a margin
/// check so that no entity sits on the threshold.
fn by_distance(
    center: (f64, f64),
    keep: impl Fn(f64) -> bool,
    threshold: f64,
) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (key, _, g) in dataset() {
        let d = distance_to(center, &g);
        assert!(
            (d - threshold).abs() > 15.0,
            "test data: {key} is {d:.1} m away, too close to {threshold} m"
        );
        if keep(d) {
            out.push(key);
        }
    }
    sorted(out)
}

#[test]
fn the_test_geometry_is_sound() {
    // Known distances, computed by hand: 0.0009 deg of latitude is ~100 m.
    let d = haversine(VIEUX_PORT, (5.3698, 43.2960));
    assert!((d - 100.1).abs() < 1.0, "{d}");
    let d = haversine(VIEUX_PORT, (5.3750, 43.2951));
    assert!((d - 421.0).abs() < 2.0, "{d}");
    // Marseille (Vieux-Port) to Aix-en-Provence (Rotonde): about 26 km.
    let d = haversine(VIEUX_PORT, (5.4474, 43.5265));
    assert!((25_000.0..27_500.0).contains(&d), "{d}");
    let square = json!([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]);
    assert!(in_ring((0.5, 0.5), &square));
    assert!(!in_ring((1.5, 0.5), &square));
}

// --- near ---------------------------------------------------------------------------

#[tokio::test]
async fn near_max_and_min_distance_in_metres() {
    let api = api();
    geo_city(&api).await;
    let within_500 = by_distance(VIEUX_PORT, |d| d <= 500.0, 500.0);
    // port, north100, east420, west470 and the park around the Vieux-Port (distance 0).
    assert_eq!(
        within_500,
        sorted(vec!["port", "north100", "east420", "west470", "parks"])
    );
    let beyond_1000 = by_distance(VIEUX_PORT, |d| d >= 1000.0, 1000.0);
    let within_150 = by_distance(VIEUX_PORT, |d| d <= 150.0, 150.0);
    let beyond_450 = by_distance(VIEUX_PORT, |d| d >= 450.0, 450.0);
    let vp = "[5.3698,43.2951]";
    check(
        &api,
        &[
            ("near;maxDistance==500", "Point", vp, within_500),
            ("near;minDistance==1000", "Point", vp, beyond_1000),
            ("near;maxDistance==150", "Point", vp, within_150),
            ("near;minDistance==450", "Point", vp, beyond_450),
            // One metre: only what touches the point.
            ("near;maxDistance==1", "Point", vp, vec!["port", "parks"]),
        ],
        None,
    )
    .await;
    // A near query combines with type and q.
    let r = get(
        &api,
        &[
            ("type", "WasteContainer"),
            ("q", "fillingLevel>0.0"),
            ("georel", "near;maxDistance==500"),
            ("geometry", "Point"),
            ("coordinates", vp),
        ],
    )
    .await;
    // port has rank 0 (fillingLevel 0.0), north100 rank 1, west470 rank 3.
    assert_eq!(keys_in(&r.expect(200).json()), vec!["north100", "west470"]);
    // count works with geo-queries.
    let r = get(
        &api,
        &[
            ("georel", "near;maxDistance==500"),
            ("geometry", "Point"),
            ("coordinates", vp),
            ("count", "true"),
            ("limit", "2"),
        ],
    )
    .await;
    assert_eq!(
        r.expect(200).header("NGSILD-Results-Count").as_deref(),
        Some("5")
    );
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));
}

// --- the other relations, for each geometry type of the query ------------------------

/// Marseille centre: [5.30, 5.42] x [43.25, 43.35]. It holds the five Vieux-Port points,
/// the first park; the river crosses it from 5.40 to 5.42.
const CENTRE_BOX: &str = "[[[5.30,43.25],[5.42,43.25],[5.42,43.35],[5.30,43.35],[5.30,43.25]]]";
const LAKE: &str = "[[[5.05,43.40],[5.20,43.40],[5.20,43.55],[5.05,43.55],[5.05,43.40]]]";
/// A line along 43.2951 N through port, east420 and west470 (and the first park).
const PORT_LINE: &str = "[[5.30,43.2951],[5.42,43.2951]]";
/// PORT_LINE plus a line along 43.5297 N through the Aix point (and the second park).
const TWO_LINES: &str = "[[[5.30,43.2951],[5.42,43.2951]],[[5.44,43.5297],[5.46,43.5297]]]";
/// CENTRE_BOX plus an Aix box [5.41, 5.50] x [43.50, 43.56] (holds aix and park 2; the
/// canal ends at 5.40, outside).
const TWO_BOXES: &str = "[[[[5.30,43.25],[5.42,43.25],[5.42,43.35],[5.30,43.35],[5.30,43.25]]],\
     [[[5.41,43.50],[5.50,43.50],[5.50,43.56],[5.41,43.56],[5.41,43.50]]]]";
/// The Vieux-Port and Aix points.
const TWO_POINTS: &str = "[[5.3698,43.2951],[5.4474,43.5297]]";

/// A near query on points is decided on the index's boxes: an entity matches through
/// any instance of the GeoProperty, an instance that has expired no longer counts, and
/// paging and the count see the same matches.
#[tokio::test]
async fn near_counts_every_instance_and_pages_with_a_count() {
    let api = api();
    let at = |lon: f64, lat: f64| json!({ "type": "Point", "coordinates": [lon, lat] });
    let past = "2020-01-01T00:00:00Z";
    let entities = json!([
        { "id": "urn:ngsi-ld:Thing:twin", "type": "Bin", "location": [
            { "type": "GeoProperty", "value": at(5.4474, 43.5297) },
            { "type": "GeoProperty", "datasetId": "urn:ngsi-ld:Dataset:port", "value": at(5.3698, 43.2951) }
        ] },
        { "id": "urn:ngsi-ld:Thing:near1", "type": "Bin", "location": { "type": "GeoProperty", "value": at(5.3699, 43.2952) } },
        { "id": "urn:ngsi-ld:Thing:near2", "type": "Bin", "location": { "type": "GeoProperty", "value": at(5.3700, 43.2950) } },
        { "id": "urn:ngsi-ld:Thing:far", "type": "Bin", "location": { "type": "GeoProperty", "value": at(5.3698, 43.3010) } },
        { "id": "urn:ngsi-ld:Thing:gone", "type": "Bin", "location": {
            "type": "GeoProperty", "value": at(5.3698, 43.2951), "expiresAt": past } }
    ]);
    let r = api.post("/entityOperations/create", &entities).await;
    assert!(
        r.status == 201 || r.status == 207,
        "{} {}",
        r.status,
        r.text
    );
    // The expired instance, if the broker accepted it, must not match.
    let near = [
        ("type", "Bin"),
        ("georel", "near;maxDistance==500"),
        ("geometry", "Point"),
        ("coordinates", "[5.3698,43.2951]"),
    ];
    let ids = |r: &Resp| -> Vec<String> {
        let mut v: Vec<String> = r
            .json()
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {}", r.text))
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_string))
            .collect();
        v.sort_unstable();
        v
    };
    let all = get(&api, &near).await;
    assert_eq!(all.status, 200, "{}", all.text);
    let want = vec![
        "urn:ngsi-ld:Thing:near1".to_string(),
        "urn:ngsi-ld:Thing:near2".to_string(),
        "urn:ngsi-ld:Thing:twin".to_string(),
    ];
    assert_eq!(ids(&all), want);
    let mut paged = Vec::new();
    for offset in ["0", "2"] {
        let mut params = near.to_vec();
        params.extend([("limit", "2"), ("offset", offset), ("count", "true")]);
        let r = get(&api, &params).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("NGSILD-Results-Count").as_deref(), Some("3"));
        paged.extend(ids(&r));
    }
    paged.sort_unstable();
    assert_eq!(paged, want);
}

#[tokio::test]
async fn within_each_geometry() {
    let api = api();
    geo_city(&api).await;
    let centre = vec!["port", "north100", "east420", "west470", "north656"];
    check(
        &api,
        &[
            ("within", "Polygon", CENTRE_BOX, centre.clone()),
            ("within", "Polygon", LAKE, vec!["lake"]),
            (
                "within",
                "MultiPolygon",
                TWO_BOXES,
                [centre.clone(), vec!["aix", "parks"]].concat(),
            ),
            ("within", "Point", "[5.3698,43.2951]", vec!["port"]),
            ("within", "MultiPoint", TWO_POINTS, vec!["port", "aix"]),
            // Points in the interior of the line.
            (
                "within",
                "LineString",
                PORT_LINE,
                vec!["port", "east420", "west470"],
            ),
            (
                "within",
                "MultiLineString",
                TWO_LINES,
                vec!["port", "east420", "west470", "aix"],
            ),
            // Far away in the sea: nothing.
            (
                "within",
                "Polygon",
                "[[[5.0,43.15],[5.05,43.15],[5.05,43.2],[5.0,43.2],[5.0,43.15]]]",
                vec![],
            ),
        ],
        None,
    )
    .await;
}

#[tokio::test]
async fn contains_each_geometry() {
    let api = api();
    geo_city(&api).await;
    check(
        &api,
        &[
            // Inside the first park only.
            ("contains", "Point", "[5.37,43.29]", vec!["parks"]),
            // A point contains itself.
            (
                "contains",
                "Point",
                "[5.4474,43.5297]",
                vec!["aix", "parks"],
            ),
            // One point in each park.
            ("contains", "MultiPoint", TWO_POINTS, vec!["parks"]),
            (
                "contains",
                "LineString",
                "[[5.11,43.47],[5.14,43.48]]",
                vec!["lake"],
            ),
            (
                "contains",
                "MultiLineString",
                "[[[5.11,43.47],[5.14,43.47]],[[5.11,43.49],[5.14,43.49]]]",
                vec!["lake"],
            ),
            (
                "contains",
                "Polygon",
                "[[[5.11,43.46],[5.15,43.46],[5.15,43.50],[5.11,43.50],[5.11,43.46]]]",
                vec!["lake"],
            ),
            (
                "contains",
                "MultiPolygon",
                "[[[[5.06,43.41],[5.08,43.41],[5.08,43.43],[5.06,43.43],[5.06,43.41]]],\
                 [[[5.16,43.51],[5.18,43.51],[5.18,43.53],[5.16,43.53],[5.16,43.51]]]]",
                vec!["lake"],
            ),
            // Nothing contains the whole centre box.
            ("contains", "Polygon", CENTRE_BOX, vec![]),
        ],
        None,
    )
    .await;
}

#[tokio::test]
async fn intersects_each_geometry() {
    let api = api();
    geo_city(&api).await;
    let centre = vec!["port", "north100", "east420", "west470", "north656"];
    check(
        &api,
        &[
            (
                "intersects",
                "Polygon",
                CENTRE_BOX,
                [centre.clone(), vec!["huveaune", "parks"]].concat(),
            ),
            (
                "intersects",
                "MultiPolygon",
                TWO_BOXES,
                [centre.clone(), vec!["huveaune", "parks", "aix"]].concat(),
            ),
            (
                "intersects",
                "Point",
                "[5.3698,43.2951]",
                vec!["port", "parks"],
            ),
            (
                "intersects",
                "MultiPoint",
                TWO_POINTS,
                vec!["port", "aix", "parks"],
            ),
            (
                "intersects",
                "LineString",
                PORT_LINE,
                vec!["port", "east420", "west470", "parks"],
            ),
            (
                "intersects",
                "MultiLineString",
                TWO_LINES,
                vec!["port", "east420", "west470", "aix", "parks"],
            ),
            // A line crossing the lake and the canals along 43.47 and 43.45..43.50.
            (
                "intersects",
                "LineString",
                "[[5.00,43.47],[5.36,43.47],[5.36,43.52]]",
                vec!["lake", "canals"],
            ),
        ],
        None,
    )
    .await;
}

#[tokio::test]
async fn disjoint_each_geometry() {
    let api = api();
    geo_city(&api).await;
    let centre = ["port", "north100", "east420", "west470", "north656"];
    check(
        &api,
        &[
            (
                "disjoint",
                "Polygon",
                CENTRE_BOX,
                all_but(&[&centre[..], &["huveaune", "parks"]].concat()),
            ),
            (
                "disjoint",
                "MultiPolygon",
                TWO_BOXES,
                all_but(&[&centre[..], &["huveaune", "parks", "aix"]].concat()),
            ),
            (
                "disjoint",
                "Point",
                "[5.3698,43.2951]",
                all_but(&["port", "parks"]),
            ),
            (
                "disjoint",
                "MultiPoint",
                TWO_POINTS,
                all_but(&["port", "aix", "parks"]),
            ),
            (
                "disjoint",
                "LineString",
                PORT_LINE,
                all_but(&["port", "east420", "west470", "parks"]),
            ),
            (
                "disjoint",
                "MultiLineString",
                TWO_LINES,
                all_but(&["port", "east420", "west470", "aix", "parks"]),
            ),
        ],
        None,
    )
    .await;
}

#[tokio::test]
async fn equals_each_geometry() {
    let api = api();
    geo_city(&api).await;
    check(
        &api,
        &[
            ("equals", "Point", "[5.3698,43.2951]", vec!["port"]),
            ("equals", "Point", "[5.3698,43.2952]", vec![]),
            (
                "equals",
                "MultiPoint",
                "[[5.10,43.45],[5.70,43.60]]",
                vec!["sensors"],
            ),
            (
                "equals",
                "LineString",
                "[[5.40,43.27],[5.60,43.27]]",
                vec!["huveaune"],
            ),
            (
                "equals",
                "MultiLineString",
                "[[[5.32,43.45],[5.40,43.45]],[[5.32,43.50],[5.40,43.50]]]",
                vec!["canals"],
            ),
            ("equals", "Polygon", LAKE, vec!["lake"]),
            (
                "equals",
                "MultiPolygon",
                "[[[[5.36,43.28],[5.38,43.28],[5.38,43.30],[5.36,43.30],[5.36,43.28]]],\
                 [[[5.44,43.52],[5.46,43.52],[5.46,43.54],[5.44,43.54],[5.44,43.52]]]]",
                vec!["parks"],
            ),
            ("equals", "Polygon", CENTRE_BOX, vec![]),
        ],
        None,
    )
    .await;
}

#[tokio::test]
async fn overlaps_each_geometry() {
    let api = api();
    geo_city(&api).await;
    check(
        &api,
        &[
            // A box over the lake's south-east corner.
            (
                "overlaps",
                "Polygon",
                "[[[5.15,43.35],[5.30,43.35],[5.30,43.45],[5.15,43.45],[5.15,43.35]]]",
                vec!["lake"],
            ),
            // A box over the lake's north-east corner, and one in the sea.
            (
                "overlaps",
                "MultiPolygon",
                "[[[[5.19,43.54],[5.25,43.54],[5.25,43.58],[5.19,43.58],[5.19,43.54]]],\
                 [[[5.70,43.20],[5.72,43.20],[5.72,43.22],[5.70,43.22],[5.70,43.20]]]]",
                vec!["lake"],
            ),
            // Shares one of the two probes, and has a point of its own.
            (
                "overlaps",
                "MultiPoint",
                "[[5.70,43.60],[5.75,43.62]]",
                vec!["sensors"],
            ),
            // Collinear with part of the river.
            (
                "overlaps",
                "LineString",
                "[[5.30,43.27],[5.50,43.27]]",
                vec!["huveaune"],
            ),
            // Collinear with part of the first canal.
            (
                "overlaps",
                "MultiLineString",
                "[[[5.35,43.45],[5.45,43.45]],[[5.00,43.20],[5.01,43.20]]]",
                vec!["canals"],
            ),
            // A single point overlaps nothing (it is within or disjoint).
            ("overlaps", "Point", "[5.3698,43.2951]", vec![]),
            // Equal geometries do not overlap.
            (
                "overlaps",
                "LineString",
                "[[5.40,43.27],[5.60,43.27]]",
                vec![],
            ),
        ],
        None,
    )
    .await;
}

#[tokio::test]
async fn overlaps_only_between_geometries_of_the_same_dimension() {
    // NGSI-LD georels follow the OGC Simple Features (DE-9IM) definitions: "overlaps"
    // holds between two geometries of the same dimension whose interiors intersect and
    // neither contains the other. A line crossing the lake crosses it, it does not
    // overlap it; the centre box holds the park 1 (same dimension: overlaps) and is
    // crossed by the river (a line: no); the lake holds one of the two probes (points:
    // no) and equals itself (no).
    let api = api();
    geo_city(&api).await;
    check(
        &api,
        &[
            (
                "overlaps",
                "LineString",
                "[[5.00,43.47],[5.30,43.47]]",
                vec![],
            ),
            ("overlaps", "Polygon", CENTRE_BOX, vec!["parks"]),
            ("overlaps", "Polygon", LAKE, vec![]),
        ],
        None,
    )
    .await;
}

#[tokio::test]
async fn geoproperty_selects_the_geo_property_tested() {
    let api = api();
    geo_city(&api).await;
    // The station's observationSpace contains the Vieux-Port; its location is 35 km away.
    check(
        &api,
        &[
            (
                "near;maxDistance==500",
                "Point",
                "[5.3698,43.2951]",
                vec!["weather"],
            ),
            ("within", "Polygon", CENTRE_BOX, vec!["weather"]),
            ("contains", "Point", "[5.37,43.295]", vec!["weather"]),
            ("intersects", "Polygon", LAKE, vec![]),
        ],
        Some("observationSpace"),
    )
    .await;
    // The default is location.
    let r = get(
        &api,
        &[
            ("type", "WeatherObserved"),
            ("georel", "near;maxDistance==500"),
            ("geometry", "Point"),
            ("coordinates", "[5.3698,43.2951]"),
        ],
    )
    .await;
    assert_eq!(r.expect(200).json(), json!([]));
    let r = get(
        &api,
        &[
            ("type", "WeatherObserved"),
            ("georel", "near;maxDistance==500"),
            ("geometry", "Point"),
            ("coordinates", "[5.3698,43.2951]"),
            ("geoproperty", "location"),
        ],
    )
    .await;
    assert_eq!(r.expect(200).json(), json!([]));
}

#[tokio::test]
async fn post_query_geo_q_matches_get() {
    let api = api();
    geo_city(&api).await;
    let cases = [
        ("near;maxDistance==500", "Point", "[5.3698,43.2951]"),
        ("within", "Polygon", CENTRE_BOX),
        ("intersects", "LineString", PORT_LINE),
        ("contains", "MultiPoint", TWO_POINTS),
    ];
    for (georel, geometry, coordinates) in cases {
        let coords: Value = serde_json::from_str(coordinates).expect("JSON");
        let body = json!({
            "type": "Query",
            "geoQ": { "georel": georel, "geometry": geometry, "coordinates": coords }
        });
        let p = api.post("/entityOperations/query", &body).await;
        assert_eq!(p.status, 200, "{body}: {}", p.text);
        let g = get(
            &api,
            &[
                ("georel", georel),
                ("geometry", geometry),
                ("coordinates", coordinates),
            ],
        )
        .await;
        assert_eq!(keys_in(&p.json()), keys_in(&g.expect(200).json()), "{body}");
    }
    // geoproperty inside geoQ.
    let body = json!({
        "type": "Query",
        "geoQ": {
            "georel": "near;maxDistance==500", "geometry": "Point",
            "coordinates": [5.3698, 43.2951], "geoproperty": "observationSpace"
        }
    });
    let p = api.post("/entityOperations/query", &body).await;
    assert_eq!(keys_in(&p.expect(200).json()), vec!["weather"]);
    // A geoQ without coordinates.
    let body = json!({ "type": "Query", "geoQ": { "georel": "within", "geometry": "Polygon" } });
    let p = api.post("/entityOperations/query", &body).await;
    let detail = assert_problem(&p, 400, "BadRequestData")["detail"].to_string();
    assert!(detail.contains("coordinates"), "{detail}");
}

// --- GeoJSON ------------------------------------------------------------------------

fn valid_position(v: &Value) -> bool {
    v.as_array().is_some_and(|p| {
        (2..=3).contains(&p.len())
            && p.iter().all(Value::is_number)
            && (-180.0..=180.0).contains(&p[0].as_f64().unwrap_or(999.0))
            && (-90.0..=90.0).contains(&p[1].as_f64().unwrap_or(999.0))
    })
}

fn all_of(v: &Value, f: &dyn Fn(&Value) -> bool) -> bool {
    v.as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(f))
}

fn valid_ring(v: &Value) -> bool {
    all_of(v, &valid_position)
        && v.as_array()
            .is_some_and(|a| a.len() >= 4 && a.first() == a.last())
}

/// An RFC 7946 geometry object (the kinds NGSI-LD uses).
fn valid_geometry(g: &Value) -> bool {
    let c = &g["coordinates"];
    match g["type"].as_str() {
        Some("Point") => valid_position(c),
        Some("MultiPoint") => all_of(c, &valid_position),
        Some("LineString") => {
            all_of(c, &valid_position) && c.as_array().is_some_and(|a| a.len() >= 2)
        }
        Some("MultiLineString") => all_of(c, &|l| all_of(l, &valid_position)),
        Some("Polygon") => all_of(c, &valid_ring),
        Some("MultiPolygon") => all_of(c, &|p| all_of(p, &valid_ring)),
        _ => false,
    }
}

async fn geojson(api: &Api, params: &[(&str, &str)]) -> Value {
    let r = api
        .send(
            api.req(Method::GET, "/entities")
                .query(params)
                .header("Accept", "application/geo+json"),
        )
        .await;
    r.expect(200);
    assert!(
        r.content_type().starts_with("application/geo+json"),
        "Content-Type {}",
        r.content_type()
    );
    let v: Value = serde_json::from_str(&r.text).expect("GeoJSON is JSON");
    assert_eq!(v["type"], json!("FeatureCollection"), "{v}");
    let features = v["features"].as_array().expect("features array");
    for f in features {
        assert_eq!(f["type"], json!("Feature"), "{f}");
        assert!(f["id"].is_string(), "a feature carries the entity id: {f}");
        assert!(
            f["geometry"].is_null() || valid_geometry(&f["geometry"]),
            "invalid geometry in {f}"
        );
        assert!(f["properties"].is_object(), "{f}");
    }
    v
}

fn features_by_key(v: &Value) -> Vec<(&'static str, Value)> {
    let mut out: Vec<(&'static str, Value)> = v["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| (key_of(f["id"].as_str().expect("id")), f.clone()))
        .collect();
    out.sort_by_key(|(k, _)| *k);
    out
}

#[tokio::test]
async fn geojson_feature_collection() {
    let api = api();
    geo_city(&api).await;
    let data = dataset();

    // Every geometry type round-trips into the features.
    let v = geojson(
        &api,
        &[("type", "WasteContainer,WaterObserved,Device,Park")],
    )
    .await;
    let features = features_by_key(&v);
    assert_eq!(features.len(), 10);
    for (key, f) in &features {
        let (_, kind, geometry) = data.iter().find(|(k, _, _)| k == key).expect("key");
        assert_eq!(&f["geometry"], geometry, "{key}");
        assert_eq!(f["properties"]["type"], json!(kind), "{key}: {f}");
        // Normalized by default: the attributes keep their NGSI-LD form.
        assert_eq!(
            f["properties"]["location"]["type"],
            json!("GeoProperty"),
            "{f}"
        );
        assert_eq!(f["properties"]["location"]["value"], *geometry, "{f}");
        assert_eq!(f["properties"]["rank"]["type"], json!("Property"), "{f}");
    }

    // With a geo-query and keyValues.
    let v = geojson(
        &api,
        &[
            ("georel", "near;maxDistance==500"),
            ("geometry", "Point"),
            ("coordinates", "[5.3698,43.2951]"),
            ("type", "WasteContainer"),
            ("options", "keyValues"),
        ],
    )
    .await;
    let features = features_by_key(&v);
    let keys: Vec<&str> = features.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, vec!["north100", "port", "west470"]);
    for (key, f) in &features {
        assert!(f["properties"]["fillingLevel"].is_number(), "{key}: {f}");
        assert_eq!(f["properties"]["type"], json!("WasteContainer"));
    }

    // geometryProperty picks the geometry; entities without it get a null geometry.
    let v = geojson(
        &api,
        &[
            ("type", "WeatherObserved,Device"),
            ("geometryProperty", "observationSpace"),
        ],
    )
    .await;
    let features = features_by_key(&v);
    assert_eq!(features.len(), 2);
    for (key, f) in &features {
        if *key == "weather" {
            let space: Value = serde_json::from_str(OBSERVATION_SPACE).expect("JSON");
            assert_eq!(
                f["geometry"],
                json!({ "type": "Polygon", "coordinates": space }),
                "{f}"
            );
        } else {
            assert!(f["geometry"].is_null(), "{f}");
        }
    }

    // An empty result is an empty collection.
    let v = geojson(&api, &[("type", "Nothing")]).await;
    assert_eq!(v["features"], json!([]));
}

// --- bad geo-queries ----------------------------------------------------------------

/// Query parameters, words one of which the detail must contain, what is wrong.
type BadCase<'a> = (Vec<(&'a str, &'a str)>, &'a [&'a str], &'a str);

#[tokio::test]
async fn bad_geo_queries_are_400_with_a_detail_naming_the_problem() {
    let api = api();
    geo_city(&api).await;
    let mut failures = Vec::new();
    let vp = "[5.3698,43.2951]";
    let cases: Vec<BadCase> = vec![
        (
            vec![
                ("georel", "sideways"),
                ("geometry", "Point"),
                ("coordinates", vp),
            ],
            &["georel"],
            "unknown georel",
        ),
        (
            vec![
                ("georel", "near"),
                ("geometry", "Point"),
                ("coordinates", vp),
            ],
            &["maxDistance", "minDistance", "distance"],
            "near without a distance",
        ),
        (
            vec![
                ("georel", "near;maxDistance==far"),
                ("geometry", "Point"),
                ("coordinates", vp),
            ],
            &["distance", "number"],
            "near with a distance that is not a number",
        ),
        (
            vec![
                ("georel", "near;maxDistance=500"),
                ("geometry", "Point"),
                ("coordinates", vp),
            ],
            &["maxDistance", "=="],
            "near with a single =",
        ),
        (
            vec![
                ("georel", "near;radius==500"),
                ("geometry", "Point"),
                ("coordinates", vp),
            ],
            &["maxDistance", "minDistance"],
            "near with an unknown modifier",
        ),
        (
            vec![
                ("georel", "within"),
                ("geometry", "Polygon"),
                (
                    "coordinates",
                    "[[[5.30,43.25],[5.42,43.25],[5.42,43.35],[5.30,43.35]]]",
                ),
            ],
            &["closed"],
            "Polygon ring not closed",
        ),
        (
            vec![
                ("georel", "within"),
                ("geometry", "Polygon"),
                ("coordinates", "[[[5.30,43.25],[5.42,43.25],[5.30,43.25]]]"),
            ],
            &["ring", "four", "4 "],
            "Polygon ring with three positions",
        ),
        (
            vec![
                ("georel", "near;maxDistance==500"),
                ("geometry", "Point"),
                ("coordinates", "[200,43.3]"),
            ],
            &["range", "longitude"],
            "longitude out of range",
        ),
        (
            vec![
                ("georel", "near;maxDistance==500"),
                ("geometry", "Point"),
                ("coordinates", "[5.37,95]"),
            ],
            &["range", "latitude"],
            "latitude out of range",
        ),
        (
            vec![
                ("georel", "intersects"),
                ("geometry", "LineString"),
                ("coordinates", "[[5.3,43.2]]"),
            ],
            &["LineString", "position"],
            "LineString with one position",
        ),
        (
            vec![("georel", "within"), ("geometry", "Polygon")],
            &["coordinates"],
            "geometry without coordinates",
        ),
        (
            vec![("georel", "within"), ("coordinates", CENTRE_BOX)],
            &["geometry"],
            "coordinates without geometry",
        ),
        (
            vec![("geometry", "Polygon"), ("coordinates", CENTRE_BOX)],
            &["georel"],
            "geometry without georel",
        ),
        (
            vec![
                ("georel", "within"),
                ("geometry", "Circle"),
                ("coordinates", vp),
            ],
            &["Circle", "geometry"],
            "unknown geometry",
        ),
        (
            vec![
                ("georel", "near;maxDistance==500"),
                ("geometry", "Point"),
                ("coordinates", "5.37,43.29"),
            ],
            &["coordinates"],
            "coordinates that are not a JSON array",
        ),
        (
            vec![
                ("georel", "near;maxDistance==500"),
                ("geometry", "Point"),
                ("coordinates", "[[5.37,43.29]]"),
            ],
            &["Point", "coordinates"],
            "coordinates of the wrong depth",
        ),
    ];
    for (params, words, what) in &cases {
        let r = get(&api, params).await;
        if r.status != 400 {
            failures.push(format!("{what}: expected 400, got {} {}", r.status, r.text));
            continue;
        }
        let body = assert_problem(&r, 400, "BadRequestData");
        let detail = body["detail"].as_str().unwrap_or_default().to_lowercase();
        if !words.iter().any(|w| detail.contains(&w.to_lowercase())) {
            failures.push(format!(
                "{what}: the detail {detail:?} names none of {words:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Clause 6.3.6: a GeoJSON body carries its @context unless `Prefer: body=json` asks
/// for it in the Link header only.
#[tokio::test]
async fn geojson_context_in_body_unless_prefer_body_json() {
    let api = api();
    let id = uid("WasteContainer");
    api.create(&serde_json::json!({
        "id": id, "type": "WasteContainer",
        "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [5.37, 43.29] } }
    }))
    .await;
    let geo = |prefer: Option<&str>| {
        let mut r = api
            .req(reqwest::Method::GET, "/entities?type=WasteContainer")
            .header("Accept", "application/geo+json");
        if let Some(p) = prefer {
            r = r.header("Prefer", p);
        }
        r
    };
    let r = api.send(geo(None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json().get("@context").is_some(), "{}", r.text);
    let r = api.send(geo(Some("body=json"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json().get("@context").is_none(), "{}", r.text);
    assert!(r
        .header("Link")
        .is_some_and(|l| l.contains("json-ld#context")));
    assert!(r.content_type().starts_with("application/geo+json"));
    // The same for one entity.
    let one = api
        .req(reqwest::Method::GET, &ent(&id))
        .header("Accept", "application/geo+json")
        .header("Prefer", "body=json");
    let r = api.send(one).await;
    assert_eq!(r.json()["type"], "Feature");
    assert!(r.json().get("@context").is_none(), "{}", r.text);
}

/// A `near` query whose box holds many candidates checks them in chunks, in entity
/// order: pages and the count agree with the matches whichever chunk they fall in.
#[tokio::test]
async fn near_pages_through_many_candidates_in_entity_order() {
    let api = api();
    // Even-numbered bins about 100 m from the Vieux-Port, odd ones 2 km north.
    let bins: Vec<Value> = (0..700)
        .map(|n| {
            let lat = if n % 2 == 0 { 43.2960 } else { 43.3131 };
            json!({ "id": format!("urn:ngsi-ld:Bin:{n:04}"), "type": "Bin",
                    "location": { "type": "GeoProperty",
                                  "value": { "type": "Point", "coordinates": [5.3698, lat] } } })
        })
        .collect();
    let r = api
        .post("/entityOperations/create", &Value::Array(bins))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let params = [
        ("type", "Bin"),
        ("georel", "near;maxDistance==500"),
        ("geometry", "Point"),
        ("coordinates", "[5.3698,43.2951]"),
        ("limit", "100"),
        ("offset", "250"),
        ("count", "true"),
    ];
    let r = get(&api, &params).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("NGSILD-Results-Count").as_deref(), Some("350"));
    let want: Vec<String> = (500..700)
        .step_by(2)
        .map(|n| format!("urn:ngsi-ld:Bin:{n:04}"))
        .collect();
    assert_eq!(ids(&r.json()), want);
}
