//! The temporal API (issue 4): history recorded by core writes, `/temporal/entities`
//! retrieval and query (timerel, lastN, timeproperty, attrs), the temporalValues and
//! aggregatedValues representations (every aggregation method checked against values
//! computed here), datasetIds, deletion semantics, temporal entity and instance
//! operations, a large history read back in order, and bad input.
//!
//! Boundaries, as the broker implements them (NGSI-LD 1.8 clause 4.11 leaves the
//! inclusiveness of `after` loose): `before` is strict (t < timeAt), `after` is
//! inclusive (t >= timeAt), `between` is half-open (timeAt <= t < endTimeAt).
//! `stddev` is the population standard deviation (divided by n).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::common::*;

const TYPE: &str = "WaterObserved";
const LEVEL: &str = "groundwaterLevel";
const NULL_URI: &str = "urn:ngsi-ld:null";
const INSTANCE_PREFIX: &str = "urn:ngsi-ld:attribute:instance:";

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("'{s}' is not an RFC 3339 date-time: {e}"))
        .with_timezone(&Utc)
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `base` plus `minutes`, as an ISO 8601 string.
fn plus_min(base: &str, minutes: i64) -> String {
    iso(at(base) + Duration::minutes(minutes))
}

fn plus_hours(base: &str, hours: i64) -> String {
    plus_min(base, hours * 60)
}

fn plus_days(base: &str, days: i64) -> String {
    iso(at(base) + Duration::days(days))
}

/// The time in a JSON value (a date-time string).
fn time_of(v: &Value) -> DateTime<Utc> {
    at(v.as_str()
        .unwrap_or_else(|| panic!("expected a date-time string, got {v}")))
}

fn prop(value: Value, observed_at: &str) -> Value {
    json!({ "type": "Property", "value": value, "observedAt": observed_at })
}

fn prop_ds(value: Value, observed_at: &str, ds: &str) -> Value {
    json!({ "type": "Property", "value": value, "observedAt": observed_at, "datasetId": ds })
}

/// A groundwater reading (metres below ground), with a few repeated values.
fn reading(i: usize) -> f64 {
    12.0 + ((i * 7919) % 23) as f64 / 8.0
}

/// The items of an attribute in a temporal representation: an array, one object, or
/// nothing.
fn items(entity: &Value, attr: &str) -> Vec<Value> {
    match entity.get(attr) {
        None => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    }
}

fn values(entity: &Value, attr: &str) -> Vec<Value> {
    items(entity, attr)
        .iter()
        .map(|i| i["value"].clone())
        .collect()
}

fn nums(entity: &Value, attr: &str) -> Vec<f64> {
    values(entity, attr)
        .iter()
        .map(|v| {
            v.as_f64()
                .unwrap_or_else(|| panic!("not a number: {v} in {entity}"))
        })
        .collect()
}

fn observed(entity: &Value, attr: &str) -> Vec<DateTime<Utc>> {
    items(entity, attr)
        .iter()
        .map(|i| time_of(&i["observedAt"]))
        .collect()
}

fn instance_ids(entity: &Value, attr: &str) -> Vec<String> {
    items(entity, attr)
        .iter()
        .map(|i| {
            i["instanceId"]
                .as_str()
                .unwrap_or_else(|| panic!("instance without instanceId: {i}"))
                .to_string()
        })
        .collect()
}

/// Numbers of a list of JSON values (so that 5 and 5.0 compare equal).
fn f64s(v: &[Value]) -> Vec<f64> {
    v.iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("not a number: {x}")))
        .collect()
}

#[track_caller]
fn approx(actual: &Value, expected: f64, what: &str) {
    let a = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: expected a number, got {actual}"));
    let tol = 1e-9 * expected.abs().max(1.0);
    assert!(
        (a - expected).abs() <= tol,
        "{what}: broker says {a}, computed {expected}"
    );
}

/// GET a temporal path, asserting 200 and JSON.
async fn tget(api: &Api, path: &str) -> Value {
    let r = api.get(path).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text);
    assert!(
        r.content_type().starts_with("application/json"),
        "GET {path}: Content-Type {}",
        r.content_type()
    );
    r.json()
}

fn tpath(id: &str, query: &str) -> String {
    if query.is_empty() {
        format!("/temporal/entities/{id}")
    } else {
        format!("/temporal/entities/{id}?{query}")
    }
}

/// Creates a temporal entity with POST /temporal/entities, asserting 201.
async fn tcreate(api: &Api, entity: &Value) {
    let r = api.post("/temporal/entities", entity).await;
    assert_eq!(r.status, 201, "temporal create: {} for {entity}", r.text);
}

/// A piezometer with `n` readings of groundwaterLevel, one every `step_min` minutes
/// from `start`, created through one temporal POST. Returns (times, values).
async fn piezometer(
    api: &Api,
    id: &str,
    start: &str,
    step_min: i64,
    n: usize,
) -> (Vec<String>, Vec<f64>) {
    let times: Vec<String> = (0..n)
        .map(|i| plus_min(start, i as i64 * step_min))
        .collect();
    let vals: Vec<f64> = (0..n).map(reading).collect();
    let instances: Vec<Value> = times
        .iter()
        .zip(&vals)
        .map(|(t, v)| prop(json!(v), t))
        .collect();
    tcreate(api, &json!({ "id": id, "type": TYPE, LEVEL: instances })).await;
    (times, vals)
}

/// Expected aggregates of one bucket.
#[derive(Debug, Default)]
struct Bucket {
    values: Vec<f64>,
}

impl Bucket {
    fn expected(&self, method: &str) -> f64 {
        let v = &self.values;
        let n = v.len() as f64;
        let sum: f64 = v.iter().sum();
        match method {
            "totalCount" => n,
            "distinctCount" => v.iter().map(|x| x.to_bits()).collect::<HashSet<_>>().len() as f64,
            "sum" => sum,
            "avg" => sum / n,
            "min" => v.iter().cloned().fold(f64::INFINITY, f64::min),
            "max" => v.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            "sumsq" => v.iter().map(|x| x * x).sum(),
            "stddev" => {
                let mean = sum / n;
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
            }
            other => panic!("no such method {other}"),
        }
    }
}

const ALL_METHODS: [&str; 8] = [
    "totalCount",
    "distinctCount",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "sumsq",
];

/// Checks an aggregated attribute (`{"type", "<method>": [[v, start, end], ...]}`)
/// against buckets computed here: bucket start → (end, values).
#[track_caller]
fn check_aggregates(
    attr: &Value,
    methods: &[&str],
    buckets: &BTreeMap<DateTime<Utc>, (DateTime<Utc>, Bucket)>,
) {
    assert_eq!(attr["type"], json!("Property"), "aggregated attr: {attr}");
    for m in methods {
        let rows = attr[*m]
            .as_array()
            .unwrap_or_else(|| panic!("no '{m}' series in {attr}"));
        assert_eq!(
            rows.len(),
            buckets.len(),
            "{m}: {} buckets from the broker, {} expected: {attr}",
            rows.len(),
            buckets.len()
        );
        for (row, (start, (end, bucket))) in rows.iter().zip(buckets) {
            let row = row.as_array().expect("a [value, start, end] triple");
            assert_eq!(row.len(), 3, "{m}: a triple, got {row:?}");
            assert_eq!(time_of(&row[1]), *start, "{m}: bucket start in {row:?}");
            assert_eq!(time_of(&row[2]), *end, "{m}: bucket end in {row:?}");
            approx(
                &row[0],
                bucket.expected(m),
                &format!("{m} of bucket {start}"),
            );
        }
    }
}

/// Reads the whole history of one attribute, following the temporal paging of NGSI-LD
/// 6.3.10 if the broker answers 206 (Content-Range) instead of 200.
async fn whole_history(api: &Api, id: &str, attr: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut query = format!("attrs={attr}");
    for _ in 0..1000 {
        let r = api.get(&tpath(id, &query)).await;
        match r.status {
            200 | 206 => {}
            s => panic!("GET history: status {s}: {}", r.text),
        }
        let page = items(&r.json(), attr);
        let last = out.last().map(|i| time_of(&i["observedAt"]));
        out.extend(
            page.into_iter()
                .filter(|i| last.is_none_or(|l| time_of(&i["observedAt"]) > l)),
        );
        if r.status == 200 {
            return out;
        }
        assert!(
            r.header("content-range").is_some(),
            "a 206 needs a Content-Range header: {:?}",
            r.headers
        );
        let last = out.last().expect("a 206 page with instances");
        query = format!(
            "attrs={attr}&timerel=after&timeAt={}",
            last["observedAt"].as_str().expect("observedAt")
        );
    }
    panic!("the temporal paging did not end");
}

// ---------------------------------------------------------------------------------
// History recorded by core writes
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn core_writes_record_history() {
    let api = api();
    let id = uid("WaterObserved");
    let t0 = "2024-04-01T00:00:00Z";
    let t = |h: i64| plus_hours(t0, h);
    api.create(&json!({
        "id": id, "type": TYPE,
        LEVEL: prop(json!(12.5), &t(0)),
        "wellDepth": { "type": "Property", "value": 40 },
    }))
    .await;
    // Partial attribute update (PATCH .../attrs/{attr}).
    api.patch(
        &format!("/entities/{id}/attrs/{LEVEL}"),
        &json!({ "type": "Property", "value": 12.25, "observedAt": t(1) }),
    )
    .await
    .expect(204);
    // Update attributes (PATCH .../attrs).
    api.patch(
        &format!("/entities/{id}/attrs"),
        &json!({ LEVEL: prop(json!(12.0), &t(2)) }),
    )
    .await
    .expect(204);
    // Append attributes (POST .../attrs, overwriting).
    api.post(
        &format!("/entities/{id}/attrs"),
        &json!({ LEVEL: prop(json!(11.75), &t(3)) }),
    )
    .await
    .expect(204);
    // Merge entity (PATCH /entities/{id}).
    api.patch(&ent(&id), &json!({ LEVEL: prop(json!(11.5), &t(4)) }))
        .await
        .expect(204);

    // wellDepth was written once: one instance, while the level has five.
    let h = tget(&api, &tpath(&id, "")).await;
    assert_eq!(h["id"], json!(id));
    assert_eq!(h["type"], json!(TYPE));
    assert_eq!(f64s(&values(&h, "wellDepth")), vec![40.0], "{h}");

    // Replace attribute (PUT .../attrs/{attr}) and batch upsert (update mode).
    api.put(
        &format!("/entities/{id}/attrs/{LEVEL}"),
        &json!({ "type": "Property", "value": 11.25, "observedAt": t(5) }),
    )
    .await
    .expect(204);
    let r = api
        .post(
            "/entityOperations/upsert?options=update",
            &json!([{ "id": id, "type": TYPE, LEVEL: prop(json!(11.0), &t(6)) }]),
        )
        .await;
    assert!(r.status == 204 || r.status == 201, "upsert: {}", r.text);
    // Replace entity (PUT /entities/{id}).
    api.put(
        &ent(&id),
        &json!({ "type": TYPE, LEVEL: prop(json!(10.75), &t(7)),
                 "wellDepth": { "type": "Property", "value": 40 } }),
    )
    .await
    .expect(204);

    let h = tget(&api, &tpath(&id, "")).await;
    let level = items(&h, LEVEL);
    assert_eq!(
        nums(&h, LEVEL),
        vec![12.5, 12.25, 12.0, 11.75, 11.5, 11.25, 11.0, 10.75],
        "one instance per write, oldest first: {h}"
    );
    let want_times: Vec<DateTime<Utc>> = (0..8).map(|i| at(&t(i))).collect();
    assert_eq!(observed(&h, LEVEL), want_times);
    for i in &level {
        assert_eq!(i["type"], json!("Property"), "{i}");
        assert!(i.get("deletedAt").is_none(), "{i}");
    }
    let ids = instance_ids(&h, LEVEL);
    assert!(
        ids.iter().all(|i| i.starts_with(INSTANCE_PREFIX)),
        "{ids:?}"
    );
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "instance ids are unique: {ids:?}"
    );
    // The current entity is the last instance.
    let cur = api.entity(&id).await;
    approx(&cur[LEVEL]["value"], 10.75, "current value");
}

#[tokio::test]
async fn sys_attrs_on_instances_and_entity() {
    let api = api();
    let id = uid("WaterObserved");
    api.create(&json!({ "id": id, "type": TYPE, LEVEL: prop(json!(3.5), "2024-01-01T00:00:00Z") }))
        .await;
    api.patch(
        &format!("/entities/{id}/attrs/{LEVEL}"),
        &json!({ "value": 3.25, "observedAt": "2024-01-01T01:00:00Z" }),
    )
    .await
    .expect(204);
    let h = tget(&api, &tpath(&id, "options=sysAttrs")).await;
    assert_datetime(&h["createdAt"]);
    assert_datetime(&h["modifiedAt"]);
    let level = items(&h, LEVEL);
    assert_eq!(level.len(), 2, "{h}");
    for i in &level {
        assert_datetime(&i["createdAt"]);
        assert_datetime(&i["modifiedAt"]);
    }
    assert!(
        time_of(&level[0]["modifiedAt"]) <= time_of(&level[1]["modifiedAt"]),
        "{h}"
    );
    // Without sysAttrs, no system timestamps on instances.
    let h = tget(&api, &tpath(&id, "")).await;
    for i in items(&h, LEVEL) {
        assert!(
            i.get("createdAt").is_none() && i.get("modifiedAt").is_none(),
            "{i}"
        );
    }
}

// ---------------------------------------------------------------------------------
// timerel, lastN, timeproperty, attrs
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn timerel_before_after_between_boundaries() {
    let api = api();
    let id = uid("WaterObserved");
    let start = "2024-03-01T00:00:00Z";
    let (times, vals) = piezometer(&api, &id, start, 60, 10).await;
    let sel = |q: &str| tpath(&id, q);

    // before: strictly before timeAt (the instance at timeAt is excluded).
    let h = tget(&api, &sel(&format!("timerel=before&timeAt={}", times[5]))).await;
    assert_eq!(nums(&h, LEVEL), vals[..5].to_vec(), "before T5: {h}");
    // after: from timeAt on, inclusive.
    let h = tget(&api, &sel(&format!("timerel=after&timeAt={}", times[5]))).await;
    assert_eq!(nums(&h, LEVEL), vals[5..].to_vec(), "after T5: {h}");
    // between: timeAt included, endTimeAt excluded.
    let h = tget(
        &api,
        &sel(&format!(
            "timerel=between&timeAt={}&endTimeAt={}",
            times[2], times[5]
        )),
    )
    .await;
    assert_eq!(nums(&h, LEVEL), vals[2..5].to_vec(), "between T2,T5: {h}");
    // Between two readings (not on one): 30 minutes offsets.
    let h = tget(
        &api,
        &sel(&format!(
            "timerel=between&timeAt={}&endTimeAt={}",
            plus_min(&times[2], 30),
            plus_min(&times[5], 30)
        )),
    )
    .await;
    assert_eq!(
        nums(&h, LEVEL),
        vals[3..6].to_vec(),
        "between T2:30,T5:30: {h}"
    );
    // Other time-zone offsets denote the same instants.
    let h = tget(
        &api,
        &sel("timerel=after&timeAt=2024-03-01T09:00:00%2B02:00"),
    )
    .await;
    assert_eq!(nums(&h, LEVEL), vals[7..].to_vec(), "after 07:00Z: {h}");
    // Nothing before the first reading: the entity, no instances.
    let h = tget(&api, &sel(&format!("timerel=before&timeAt={}", times[0]))).await;
    assert_eq!(h["id"], json!(id));
    assert!(items(&h, LEVEL).is_empty(), "nothing before T0: {h}");
    // Observed times come back oldest first.
    let h = tget(&api, &sel(&format!("timerel=after&timeAt={}", times[0]))).await;
    let want: Vec<DateTime<Utc>> = times.iter().map(|t| at(t)).collect();
    assert_eq!(observed(&h, LEVEL), want);
}

#[tokio::test]
async fn last_n_per_attribute_with_and_without_timerel() {
    let api = api();
    let id = uid("WaterObserved");
    let start = "2024-03-01T00:00:00Z";
    let times: Vec<String> = (0..10).map(|i| plus_hours(start, i)).collect();
    let temps: Vec<Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| prop(json!(10 + i), t))
        .collect();
    let levels: Vec<Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| prop(json!(reading(i)), t))
        .collect();
    tcreate(
        &api,
        &json!({ "id": id, "type": TYPE, LEVEL: levels, "temperature": temps }),
    )
    .await;
    let all: Vec<f64> = (0..10).map(reading).collect();

    let h = tget(&api, &tpath(&id, "lastN=3")).await;
    assert_eq!(
        nums(&h, LEVEL),
        all[7..].to_vec(),
        "last 3, oldest first: {h}"
    );
    assert_eq!(
        nums(&h, "temperature"),
        vec![17.0, 18.0, 19.0],
        "per attribute"
    );
    // lastN inside a time range: the last N of that range.
    let h = tget(
        &api,
        &tpath(
            &id,
            &format!(
                "timerel=between&timeAt={}&endTimeAt={}&lastN=2",
                times[2], times[8]
            ),
        ),
    )
    .await;
    assert_eq!(nums(&h, LEVEL), all[6..8].to_vec(), "{h}");
    let h = tget(
        &api,
        &tpath(&id, &format!("timerel=before&timeAt={}&lastN=4", times[3])),
    )
    .await;
    assert_eq!(nums(&h, LEVEL), all[..3].to_vec(), "fewer than N: {h}");
    let h = tget(&api, &tpath(&id, "lastN=1&options=temporalValues")).await;
    assert_eq!(h[LEVEL]["values"].as_array().map(Vec::len), Some(1), "{h}");
    approx(&h[LEVEL]["values"][0][0], all[9], "lastN=1 temporalValues");
    let h = tget(&api, &tpath(&id, "lastN=100")).await;
    assert_eq!(nums(&h, LEVEL), all, "N larger than the history");
}

#[tokio::test]
async fn timeproperty_modified_at_and_created_at() {
    let api = api();
    let id = uid("WaterObserved");
    // Readings whose observedAt are all in 2020: far from their modifiedAt (now).
    api.create(&json!({ "id": id, "type": TYPE, LEVEL: prop(json!(1.0), "2020-01-01T00:00:00Z") }))
        .await;
    for (i, v) in [2.0, 3.0, 4.0].iter().enumerate() {
        api.patch(
            &format!("/entities/{id}/attrs/{LEVEL}"),
            &json!({ "value": v, "observedAt": format!("2020-01-0{}T00:00:00Z", i + 2) }),
        )
        .await
        .expect(204);
    }
    let h = tget(&api, &tpath(&id, "options=sysAttrs")).await;
    let level = items(&h, LEVEL);
    assert_eq!(level.len(), 4, "{h}");
    let modified: Vec<String> = level
        .iter()
        .map(|i| i["modifiedAt"].as_str().expect("modifiedAt").to_string())
        .collect();
    let created: Vec<String> = level
        .iter()
        .map(|i| i["createdAt"].as_str().expect("createdAt").to_string())
        .collect();
    let (m2, m3) = (at(&modified[2]), at(&modified[3]));

    // observedAt (default) in 2020: everything; by modifiedAt, 2020 holds nothing.
    let h = tget(
        &api,
        &tpath(&id, "timerel=before&timeAt=2021-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(nums(&h, LEVEL).len(), 4, "{h}");
    let h = tget(
        &api,
        &tpath(
            &id,
            "timeproperty=modifiedAt&timerel=before&timeAt=2021-01-01T00:00:00Z",
        ),
    )
    .await;
    assert!(
        items(&h, LEVEL).is_empty(),
        "no instance modified in 2020: {h}"
    );

    // After (inclusive) the third instance's modifiedAt: the instances modified since.
    let from = modified[2].replace('+', "%2B");
    let h = tget(
        &api,
        &tpath(
            &id,
            &format!("timeproperty=modifiedAt&timerel=after&timeAt={from}"),
        ),
    )
    .await;
    let want: Vec<f64> = [1.0, 2.0, 3.0, 4.0]
        .iter()
        .zip(&modified)
        .filter(|(_, m)| at(m) >= m2)
        .map(|(v, _)| *v)
        .collect();
    assert_eq!(nums(&h, LEVEL), want, "{h}");
    assert!(
        want.starts_with(&[3.0]) || m2 == at(&modified[1]),
        "{want:?}"
    );

    // temporalValues by modifiedAt carry the modifiedAt times.
    let h = tget(
        &api,
        &tpath(
            &id,
            &format!(
                "timeproperty=modifiedAt&timerel=after&timeAt={}&options=temporalValues",
                modified[3].replace('+', "%2B")
            ),
        ),
    )
    .await;
    let pairs = h[LEVEL]["values"].as_array().expect("values").clone();
    assert!(!pairs.is_empty(), "{h}");
    approx(&pairs.last().expect("one")[0], 4.0, "last value");
    assert_eq!(time_of(&pairs.last().expect("one")[1]), m3, "{h}");

    // createdAt: the attribute was created once; instances keep that createdAt or
    // their own, but all lie at or before the last modification.
    let h = tget(
        &api,
        &tpath(
            &id,
            &format!(
                "timeproperty=createdAt&timerel=before&timeAt={}",
                plus_min(&iso(m3), 1)
            ),
        ),
    )
    .await;
    assert_eq!(items(&h, LEVEL).len(), 4, "{h}");
    assert!(created.iter().all(|c| at(c) <= m3));
}

#[tokio::test]
async fn attrs_filter_and_entity_selection() {
    let api = api();
    let start = "2024-05-01T00:00:00Z";
    let a = format!("urn:ngsi-ld:{TYPE}:a-{}", uuid::Uuid::new_v4().simple());
    let b = format!("urn:ngsi-ld:{TYPE}:b-{}", uuid::Uuid::new_v4().simple());
    let c = format!("urn:ngsi-ld:Well:c-{}", uuid::Uuid::new_v4().simple());
    for (id, kind) in [(&a, TYPE), (&b, TYPE), (&c, "Well")] {
        tcreate(
            &api,
            &json!({
                "id": id, "type": kind,
                LEVEL: [prop(json!(1.5), start), prop(json!(1.25), &plus_hours(start, 1))],
                "temperature": [prop(json!(11), start)],
                "conductivity": [prop(json!(480), start)],
            }),
        )
        .await;
    }
    // b has one more attribute.
    api.post(
        &format!("/temporal/entities/{b}/attrs"),
        &json!({ "nitrate": [prop(json!(12), start)] }),
    )
    .await
    .expect(204);

    let h = tget(&api, &tpath(&a, &format!("attrs={LEVEL},temperature"))).await;
    let keys: HashSet<&str> = h
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert!(keys.contains(LEVEL) && keys.contains("temperature"), "{h}");
    assert!(!keys.contains("conductivity"), "attrs projects: {h}");
    assert_eq!(nums(&h, LEVEL), vec![1.5, 1.25]);

    let ids_of = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap_or_else(|| panic!("an array: {v}"))
            .iter()
            .map(|e| e["id"].as_str().expect("id").to_string())
            .collect();
        ids.sort();
        ids
    };
    let mut ab = vec![a.clone(), b.clone()];
    ab.sort();
    let v = tget(&api, &format!("/temporal/entities?type={TYPE}")).await;
    assert_eq!(ids_of(&v), ab, "type selects: {v}");
    for e in v.as_array().expect("array") {
        assert_eq!(items(e, LEVEL).len(), 2, "{e}");
    }
    let v = tget(&api, &format!("/temporal/entities?id={a},{c}&local=true")).await;
    let mut ac = vec![a.clone(), c.clone()];
    ac.sort();
    assert_eq!(ids_of(&v), ac);
    let v = tget(&api, "/temporal/entities?idPattern=.*:Well:c-.*&local=true").await;
    assert_eq!(ids_of(&v), vec![c.clone()]);
    let v = tget(
        &api,
        &format!("/temporal/entities?type={TYPE}&attrs=temperature&timerel=after&timeAt={start}"),
    )
    .await;
    assert_eq!(ids_of(&v), ab);
    for e in v.as_array().expect("array") {
        assert_eq!(f64s(&values(e, "temperature")), vec![11.0], "{e}");
        assert!(e.get(LEVEL).is_none(), "{e}");
    }
    let v = tget(&api, "/temporal/entities?type=Borehole").await;
    assert_eq!(v, json!([]));
    // attrs alone selects the entities having the attribute.
    let v = tget(&api, "/temporal/entities?attrs=nitrate").await;
    assert_eq!(ids_of(&v), vec![b.clone()], "attrs selects: {v}");
    assert!(v[0].get(LEVEL).is_none(), "attrs projects: {v}");
}

// ---------------------------------------------------------------------------------
// Representations
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn temporal_values_shape() {
    let api = api();
    let id = uid("WaterObserved");
    let start = "2024-06-01T00:00:00Z";
    let station = uid("Station");
    tcreate(
        &api,
        &json!({
            "id": id, "type": TYPE,
            LEVEL: [prop(json!(7.5), start), prop(json!(7.25), &plus_hours(start, 1))],
            "status": [prop(json!("ok"), start), prop(json!("drying"), &plus_hours(start, 1))],
            "refStation": [{ "type": "Relationship", "object": station, "observedAt": start }],
        }),
    )
    .await;
    let h = tget(&api, &tpath(&id, "options=temporalValues")).await;
    assert_eq!(h["id"], json!(id));
    assert_eq!(h["type"], json!(TYPE));
    assert_eq!(
        h[LEVEL]["type"],
        json!("Property"),
        "attr → {{type, values}}: {h}"
    );
    let pairs = h[LEVEL]["values"].as_array().expect("values array");
    assert_eq!(pairs.len(), 2);
    approx(&pairs[0][0], 7.5, "first pair");
    assert_eq!(time_of(&pairs[0][1]), at(start));
    approx(&pairs[1][0], 7.25, "second pair");
    assert_eq!(time_of(&pairs[1][1]), at(&plus_hours(start, 1)));
    assert!(pairs.iter().all(|p| p.as_array().map(Vec::len) == Some(2)));
    assert_eq!(h["status"]["values"][1][0], json!("drying"));
    assert_eq!(h["refStation"]["type"], json!("Relationship"), "{h}");
    // NGSI-LD 1.8 simplified temporal: a Relationship has "objects", not "values".
    assert_eq!(h["refStation"]["objects"][0][0], json!(station), "{h}");
    assert_eq!(time_of(&h["refStation"]["objects"][0][1]), at(start), "{h}");
    assert!(h[LEVEL].get("instanceId").is_none());
    // Same through options=simplified? Normalized stays the default.
    let n = tget(&api, &tpath(&id, "")).await;
    assert!(
        n[LEVEL].is_array(),
        "normalized: an array of instances: {n}"
    );
    assert_eq!(items(&n, "refStation")[0]["object"], json!(station));
}

// ---------------------------------------------------------------------------------
// Aggregations
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn aggregated_daily_statistics_of_hourly_readings() {
    let api = api();
    let id = uid("WaterObserved");
    let start = "2024-02-10T00:00:00Z";
    let days = 4;
    let (times, vals) = piezometer(&api, &id, start, 60, 24 * days).await;
    let mut buckets = BTreeMap::new();
    for d in 0..days {
        let s = at(&plus_days(start, d as i64));
        buckets.insert(
            s,
            (
                s + Duration::days(1),
                Bucket {
                    values: vals[d * 24..(d + 1) * 24].to_vec(),
                },
            ),
        );
    }
    let q = format!(
        "options=aggregatedValues&aggrMethods={}&aggrPeriodDuration=P1D&timerel=between&timeAt={start}&endTimeAt={}",
        ALL_METHODS.join(","),
        plus_days(start, days as i64)
    );
    let h = tget(&api, &tpath(&id, &q)).await;
    assert_eq!(h["id"], json!(id));
    check_aggregates(&h[LEVEL], &ALL_METHODS, &buckets);
    // Repeated values make distinctCount smaller than totalCount somewhere.
    assert!(buckets
        .values()
        .any(|(_, b)| b.expected("distinctCount") < b.expected("totalCount")));

    // Only the methods asked for.
    let h = tget(
        &api,
        &tpath(
            &id,
            &format!(
                "options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=P1D&timerel=after&timeAt={start}"
            ),
        ),
    )
    .await;
    check_aggregates(&h[LEVEL], &["avg"], &buckets);
    for m in ["sum", "max", "totalCount"] {
        assert!(h[LEVEL].get(m).is_none(), "{m} not asked for: {h}");
    }
    assert_eq!(times.len(), 24 * days);
}

#[tokio::test]
async fn aggregated_hourly_sums_of_quarter_hour_readings() {
    let api = api();
    let id = uid("WaterObserved");
    let start = "2024-07-01T06:00:00Z";
    let (_, vals) = piezometer(&api, &id, start, 15, 4 * 6).await;
    let mut buckets = BTreeMap::new();
    for h in 0..6 {
        let s = at(&plus_hours(start, h as i64));
        buckets.insert(
            s,
            (
                s + Duration::hours(1),
                Bucket {
                    values: vals[h * 4..(h + 1) * 4].to_vec(),
                },
            ),
        );
    }
    let h = tget(
        &api,
        &tpath(
            &id,
            &format!(
                "options=aggregatedValues&aggrMethods=sum,totalCount,min,max&aggrPeriodDuration=PT1H&timerel=after&timeAt={start}"
            ),
        ),
    )
    .await;
    check_aggregates(&h[LEVEL], &["sum", "totalCount", "min", "max"], &buckets);

    // PT15M: one reading per bucket; sum = the reading itself.
    let h = tget(
        &api,
        &tpath(
            &id,
            &format!(
                "options=aggregatedValues&aggrMethods=sum&aggrPeriodDuration=PT15M&timerel=after&timeAt={start}"
            ),
        ),
    )
    .await;
    let rows = h[LEVEL]["sum"].as_array().expect("sum rows");
    assert_eq!(rows.len(), vals.len(), "{h}");
    for (i, (row, v)) in rows.iter().zip(&vals).enumerate() {
        approx(&row[0], *v, &format!("PT15M bucket {i}"));
        assert_eq!(time_of(&row[1]), at(&plus_min(start, 15 * i as i64)));
    }

    // Without a timerel the first bucket starts at the first instance.
    let h = tget(
        &api,
        &tpath(
            &id,
            "options=aggregatedValues&aggrMethods=sum&aggrPeriodDuration=PT1H",
        ),
    )
    .await;
    check_aggregates(&h[LEVEL], &["sum"], &buckets);
    // timerel=before: buckets start at the first instance as well.
    let end = plus_hours(start, 3);
    let h = tget(
        &api,
        &tpath(
            &id,
            &format!(
                "options=aggregatedValues&aggrMethods=sum,totalCount&aggrPeriodDuration=PT1H&timerel=before&timeAt={end}"
            ),
        ),
    )
    .await;
    let first3: BTreeMap<_, _> = buckets.into_iter().take(3).collect();
    check_aggregates(&h[LEVEL], &["sum", "totalCount"], &first3);
}

#[tokio::test]
async fn aggregated_whole_range_without_period() {
    let api = api();
    let id = uid("WaterObserved");
    let start = "2024-08-01T00:00:00Z";
    let (times, vals) = piezometer(&api, &id, start, 60, 30).await;
    // between T5 and T20: one bucket over the range.
    let h = tget(
        &api,
        &tpath(
            &id,
            &format!(
                "options=aggregatedValues&aggrMethods={}&timerel=between&timeAt={}&endTimeAt={}",
                ALL_METHODS.join(","),
                times[5],
                times[20]
            ),
        ),
    )
    .await;
    let bucket = Bucket {
        values: vals[5..20].to_vec(),
    };
    for m in ALL_METHODS {
        let rows = h[LEVEL][m].as_array().unwrap_or_else(|| panic!("{m}: {h}"));
        assert_eq!(rows.len(), 1, "{m}: a single bucket: {h}");
        approx(&rows[0][0], bucket.expected(m), m);
        assert_eq!(time_of(&rows[0][1]), at(&times[5]), "{m}: starts at timeAt");
    }
}

#[tokio::test]
async fn aggregated_monthly_over_two_months() {
    let api = api();
    let id = uid("WaterObserved");
    // Daily readings at noon, January and February 2024 (31 + 29 days).
    let start = "2024-01-01T12:00:00Z";
    let (times, vals) = piezometer(&api, &id, start, 24 * 60, 60).await;
    assert!(times[59].starts_with("2024-02-29"));
    let jan = at("2024-01-01T00:00:00Z");
    let feb = at("2024-02-01T00:00:00Z");
    let mar = at("2024-03-01T00:00:00Z");
    let mut buckets = BTreeMap::new();
    buckets.insert(
        jan,
        (
            feb,
            Bucket {
                values: vals[..31].to_vec(),
            },
        ),
    );
    buckets.insert(
        feb,
        (
            mar,
            Bucket {
                values: vals[31..].to_vec(),
            },
        ),
    );
    let h = tget(
        &api,
        &tpath(
            &id,
            &format!(
                "options=aggregatedValues&aggrMethods={}&aggrPeriodDuration=P1M&timerel=between&timeAt=2024-01-01T00:00:00Z&endTimeAt=2024-03-01T00:00:00Z",
                ALL_METHODS.join(",")
            ),
        ),
    )
    .await;
    check_aggregates(&h[LEVEL], &ALL_METHODS, &buckets);
}

/// Calendar months counted from a mid-month timeAt: [Jan 15, Feb 15), [Feb 15, Mar 15).
#[tokio::test]
async fn aggregated_monthly_from_mid_month() {
    let api = api();
    let id = uid("WaterObserved");
    let start = "2024-01-01T12:00:00Z";
    let (_, vals) = piezometer(&api, &id, start, 24 * 60, 60).await;
    // Index 14 is Jan 15, index 45 is Feb 15.
    let mut buckets = BTreeMap::new();
    buckets.insert(
        at("2024-01-15T00:00:00Z"),
        (
            at("2024-02-15T00:00:00Z"),
            Bucket {
                values: vals[14..45].to_vec(),
            },
        ),
    );
    buckets.insert(
        at("2024-02-15T00:00:00Z"),
        (
            at("2024-03-15T00:00:00Z"),
            Bucket {
                values: vals[45..].to_vec(),
            },
        ),
    );
    let h = tget(
        &api,
        &tpath(
            &id,
            "options=aggregatedValues&aggrMethods=totalCount,avg&aggrPeriodDuration=P1M&timerel=after&timeAt=2024-01-15T00:00:00Z",
        ),
    )
    .await;
    check_aggregates(&h[LEVEL], &["totalCount", "avg"], &buckets);
}

// ---------------------------------------------------------------------------------
// datasetIds
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn multiple_dataset_ids() {
    let api = api();
    let id = uid("WaterObserved");
    let start = "2024-09-01T00:00:00Z";
    let ds_a = "urn:ngsi-ld:Dataset:probe-a";
    let ds_b = "urn:ngsi-ld:Dataset:probe-b";
    let t = |h: i64| plus_hours(start, h);
    tcreate(
        &api,
        &json!({
            "id": id, "type": TYPE,
            LEVEL: [
                prop(json!(5.0), &t(0)),
                prop_ds(json!(6.0), &t(0), ds_a),
                prop_ds(json!(7.0), &t(0), ds_b),
                prop_ds(json!(6.5), &t(1), ds_a),
                prop_ds(json!(7.5), &t(1), ds_b),
                prop_ds(json!(8.0), &t(2), ds_b),
            ],
        }),
    )
    .await;
    let h = tget(&api, &tpath(&id, "")).await;
    let level = items(&h, LEVEL);
    assert_eq!(level.len(), 6, "{h}");
    let of = |ds: Option<&str>| -> Vec<Value> {
        level
            .iter()
            .filter(|i| i.get("datasetId").and_then(Value::as_str) == ds)
            .map(|i| i["value"].clone())
            .collect()
    };
    assert_eq!(f64s(&of(None)), vec![5.0]);
    assert_eq!(f64s(&of(Some(ds_a))), vec![6.0, 6.5]);
    assert_eq!(f64s(&of(Some(ds_b))), vec![7.0, 7.5, 8.0]);

    // temporalValues: one object per datasetId.
    let h = tget(&api, &tpath(&id, "options=temporalValues")).await;
    let groups = h[LEVEL].as_array().expect("one entry per datasetId");
    assert_eq!(groups.len(), 3, "{h}");
    let vals_of = |ds: Option<&str>| -> Vec<Value> {
        let g = groups
            .iter()
            .find(|g| g.get("datasetId").and_then(Value::as_str) == ds)
            .unwrap_or_else(|| panic!("no group for {ds:?} in {h}"));
        g["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|p| p[0].clone())
            .collect()
    };
    assert_eq!(f64s(&vals_of(Some(ds_b))), vec![7.0, 7.5, 8.0]);
    assert_eq!(f64s(&vals_of(None)), vec![5.0]);

    // aggregatedValues: per datasetId.
    let h = tget(
        &api,
        &tpath(&id, "options=aggregatedValues&aggrMethods=sum,totalCount"),
    )
    .await;
    let groups = h[LEVEL].as_array().expect("one entry per datasetId");
    let agg = |ds: Option<&str>| -> &Value {
        groups
            .iter()
            .find(|g| g.get("datasetId").and_then(Value::as_str) == ds)
            .unwrap_or_else(|| panic!("no aggregates for {ds:?}: {h}"))
    };
    approx(&agg(Some(ds_a))["sum"][0][0], 12.5, "sum of probe-a");
    approx(
        &agg(Some(ds_b))["totalCount"][0][0],
        3.0,
        "count of probe-b",
    );
    approx(&agg(None)["sum"][0][0], 5.0, "sum of the default instance");

    // lastN counts per attribute instance (datasetId).
    let h = tget(&api, &tpath(&id, "lastN=1")).await;
    let mut last = f64s(&values(&h, LEVEL));
    last.sort_by(f64::total_cmp);
    assert_eq!(last, vec![5.0, 6.5, 8.0], "{h}");

    // Deleting one datasetId's history leaves the others.
    api.delete(&format!(
        "/temporal/entities/{id}/attrs/{LEVEL}?datasetId={ds_a}"
    ))
    .await
    .expect(204);
    let h = tget(&api, &tpath(&id, "")).await;
    assert_eq!(items(&h, LEVEL).len(), 4, "{h}");
    assert!(items(&h, LEVEL)
        .iter()
        .all(|i| i.get("datasetId").and_then(Value::as_str) != Some(ds_a)));
    // Without datasetId: the default instance only.
    api.delete(&format!("/temporal/entities/{id}/attrs/{LEVEL}"))
        .await
        .expect(204);
    let h = tget(&api, &tpath(&id, "")).await;
    assert_eq!(
        items(&h, LEVEL)
            .iter()
            .map(|i| i["datasetId"].clone())
            .collect::<Vec<_>>(),
        vec![json!(ds_b); 3],
        "{h}"
    );
    // deleteAll: the rest.
    api.delete(&format!(
        "/temporal/entities/{id}/attrs/{LEVEL}?deleteAll=true"
    ))
    .await
    .expect(204);
    let h = tget(&api, &tpath(&id, "")).await;
    assert!(items(&h, LEVEL).is_empty(), "{h}");
    let r = api
        .delete(&format!("/temporal/entities/{id}/attrs/{LEVEL}"))
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
}

#[tokio::test]
async fn dataset_ids_through_core_writes() {
    let api = api();
    let id = uid("WaterObserved");
    let ds = "urn:ngsi-ld:Dataset:logger";
    api.create(&json!({
        "id": id, "type": TYPE,
        LEVEL: [prop(json!(2.0), "2024-01-01T00:00:00Z"),
                prop_ds(json!(2.5), "2024-01-01T00:00:00Z", ds)],
    }))
    .await;
    api.patch(
        &format!("/entities/{id}/attrs/{LEVEL}"),
        &json!({ "value": 2.75, "observedAt": "2024-01-01T01:00:00Z", "datasetId": ds }),
    )
    .await
    .expect(204);
    let h = tget(&api, &tpath(&id, "")).await;
    let level = items(&h, LEVEL);
    let logger: Vec<Value> = level
        .iter()
        .filter(|i| i["datasetId"] == json!(ds))
        .map(|i| i["value"].clone())
        .collect();
    let default: Vec<Value> = level
        .iter()
        .filter(|i| i.get("datasetId").is_none())
        .map(|i| i["value"].clone())
        .collect();
    assert_eq!(f64s(&logger), vec![2.5, 2.75], "{h}");
    assert_eq!(f64s(&default), vec![2.0], "untouched default instance: {h}");
}

// ---------------------------------------------------------------------------------
// Deletion semantics
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_an_attribute_records_a_deletion_instance() {
    let api = api();
    let id = uid("WaterObserved");
    api.create(&json!({
        "id": id, "type": TYPE,
        LEVEL: prop(json!(9.0), "2024-01-01T00:00:00Z"),
        "temperature": prop(json!(12), "2024-01-01T00:00:00Z"),
    }))
    .await;
    api.patch(
        &format!("/entities/{id}/attrs/{LEVEL}"),
        &json!({ "value": 8.5, "observedAt": "2024-01-01T01:00:00Z" }),
    )
    .await
    .expect(204);
    api.delete(&format!("/entities/{id}/attrs/{LEVEL}"))
        .await
        .expect(204);

    let h = tget(&api, &tpath(&id, "")).await;
    let level = items(&h, LEVEL);
    assert_eq!(level.len(), 3, "two values and one deletion: {h}");
    let (gone, kept): (Vec<Value>, Vec<Value>) = level
        .iter()
        .cloned()
        .partition(|i| i.get("deletedAt").is_some());
    assert_eq!(gone.len(), 1, "one deletion instance: {h}");
    let gone = &gone[0];
    assert_datetime(&gone["deletedAt"]);
    assert_eq!(gone["value"], json!(NULL_URI), "{gone}");
    assert!(gone["instanceId"]
        .as_str()
        .is_some_and(|s| s.starts_with(INSTANCE_PREFIX)));
    let kept: Vec<Value> = kept.iter().map(|i| i["value"].clone()).collect();
    assert_eq!(f64s(&kept), vec![9.0, 8.5], "{h}");
    // temperature was not touched.
    assert_eq!(f64s(&values(&h, "temperature")), vec![12.0]);

    // timeproperty=deletedAt: only the deletion.
    let d = tget(
        &api,
        &tpath(
            &id,
            "timeproperty=deletedAt&timerel=before&timeAt=2100-01-01T00:00:00Z",
        ),
    )
    .await;
    assert_eq!(items(&d, LEVEL).len(), 1, "{d}");
    assert_eq!(items(&d, LEVEL)[0]["value"], json!(NULL_URI));
    assert!(items(&d, "temperature").is_empty(), "{d}");

    // The deletion closes the history: it comes after the values it deleted.
    assert!(
        level[2].get("deletedAt").is_some(),
        "the deletion instance must be the last one (oldest first): {h}"
    );
}

#[tokio::test]
async fn deleting_the_entity_keeps_history_until_temporal_delete() {
    let api = api();
    let id = uid("WaterObserved");
    api.create(&json!({
        "id": id, "type": TYPE,
        LEVEL: prop(json!(4.0), "2024-01-01T00:00:00Z"),
        "temperature": prop(json!(13), "2024-01-01T00:00:00Z"),
    }))
    .await;
    api.delete(&ent(&id)).await.expect(204);
    api.get(&ent(&id)).await.expect(404);

    // The history stays, each attribute closed by a deletion instance.
    let h = tget(&api, &tpath(&id, "options=sysAttrs")).await;
    let mut deletion_last = true;
    for attr in [LEVEL, "temperature"] {
        let list = items(&h, attr);
        assert_eq!(list.len(), 2, "{attr}: value then deletion: {h}");
        let gone: Vec<&Value> = list
            .iter()
            .filter(|i| i.get("deletedAt").is_some())
            .collect();
        assert_eq!(gone.len(), 1, "{attr}: one deletion instance: {h}");
        assert_datetime(&gone[0]["deletedAt"]);
        assert_eq!(gone[0]["value"], json!(NULL_URI));
        deletion_last &= list[1].get("deletedAt").is_some();
    }
    assert_datetime(&h["deletedAt"]);

    // DELETE /temporal/entities/{id}: gone for good.
    api.delete(&tpath(&id, "")).await.expect(204);
    let r = api.get(&tpath(&id, "")).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = api.delete(&tpath(&id, "")).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let v = tget(&api, &format!("/temporal/entities?id={id}&local=true")).await;
    assert_eq!(v, json!([]));
    assert!(
        deletion_last,
        "each deletion instance must come last (oldest first): {h}"
    );
}

#[tokio::test]
async fn an_entity_created_again_continues_its_history() {
    let api = api();
    let id = uid("WaterObserved");
    let entity =
        |level: f64, at: &str| json!({ "id": id, "type": TYPE, LEVEL: prop(json!(level), at) });
    api.create(&entity(4.0, "2024-01-01T00:00:00Z")).await;
    api.delete(&ent(&id)).await.expect(204);
    // Same id, same attribute: its series already exists and is carried on.
    api.create(&entity(5.0, "2024-01-02T00:00:00Z")).await;
    let h = tget(&api, &tpath(&id, "")).await;
    let list = items(&h, LEVEL);
    assert_eq!(
        list.len(),
        3,
        "two values and the deletion between them: {h}"
    );
    let mut kept: Vec<&Value> = list.iter().map(|i| &i["value"]).collect();
    kept.sort_by_key(|v| v.to_string());
    assert_eq!(kept, [&json!(NULL_URI), &json!(4.0), &json!(5.0)], "{h}");
    assert!(h.get("deletedAt").is_none(), "alive again: {h}");
}

#[tokio::test]
async fn temporal_delete_of_a_live_entity() {
    let api = api();
    let id = uid("WaterObserved");
    let (_, _) = piezometer(&api, &id, "2024-01-01T00:00:00Z", 60, 3).await;
    api.delete(&tpath(&id, "")).await.expect(204);
    assert_problem(&api.get(&tpath(&id, "")).await, 404, "ResourceNotFound");
    // A new temporal POST starts a new history (201 again).
    tcreate(
        &api,
        &json!({ "id": id, "type": TYPE, LEVEL: [prop(json!(1), "2024-02-01T00:00:00Z")] }),
    )
    .await;
    let h = tget(&api, &tpath(&id, "")).await;
    assert_eq!(nums(&h, LEVEL), vec![1.0]);
}

// ---------------------------------------------------------------------------------
// Temporal entity and instance operations
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn temporal_create_then_add_instances() {
    let api = api();
    let id = uid("WaterObserved");
    let start = "2024-10-01T00:00:00Z";
    let t = |h: i64| plus_hours(start, h);
    let r = api
        .post(
            "/temporal/entities",
            &json!({ "id": id, "type": TYPE,
                     LEVEL: [prop(json!(3.0), &t(0)), prop(json!(3.25), &t(2))] }),
        )
        .await;
    r.expect(201);
    assert!(
        r.header("location")
            .is_some_and(|l| l.ends_with(&format!("/ngsi-ld/v1/temporal/entities/{id}"))),
        "Location: {:?}",
        r.header("location")
    );
    let h = tget(&api, &tpath(&id, "")).await;
    assert_eq!(nums(&h, LEVEL), vec![3.0, 3.25]);
    // The temporal API does not create the current entity.
    api.get(&ent(&id)).await.expect(404);

    // POST again on an existing temporal entity: 204, instances added, kept in time order.
    let r = api
        .post(
            "/temporal/entities",
            &json!({ "id": id, "type": TYPE, LEVEL: [prop(json!(3.125), &t(1))] }),
        )
        .await;
    r.expect(204);
    let h = tget(&api, &tpath(&id, "")).await;
    assert_eq!(
        nums(&h, LEVEL),
        vec![3.0, 3.125, 3.25],
        "ordered by observedAt"
    );

    // POST .../attrs: more instances of an existing attribute and a new attribute.
    api.post(
        &format!("/temporal/entities/{id}/attrs"),
        &json!({
            LEVEL: [prop(json!(3.5), &t(3)), prop(json!(3.75), &t(4))],
            "temperature": [prop(json!(14), &t(3))],
        }),
    )
    .await
    .expect(204);
    let h = tget(&api, &tpath(&id, "")).await;
    assert_eq!(nums(&h, LEVEL), vec![3.0, 3.125, 3.25, 3.5, 3.75]);
    assert_eq!(nums(&h, "temperature"), vec![14.0]);
    // A single instance (not an array) is accepted as well.
    api.post(
        &format!("/temporal/entities/{id}/attrs"),
        &json!({ "temperature": prop(json!(15), &t(4)) }),
    )
    .await
    .expect(204);
    let h = tget(&api, &tpath(&id, "attrs=temperature")).await;
    assert_eq!(nums(&h, "temperature"), vec![14.0, 15.0]);

    // Unknown entity.
    let missing = uid("WaterObserved");
    let r = api
        .post(
            &format!("/temporal/entities/{missing}/attrs"),
            &json!({ LEVEL: [prop(json!(1), &t(0))] }),
        )
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    // Bad bodies.
    let r = api
        .post("/temporal/entities", &json!({ "type": TYPE, LEVEL: [] }))
        .await;
    assert_problem_any(&r, 400, BAD_BODY);
    let r = api
        .post(
            "/temporal/entities",
            &json!({ "id": uid("WaterObserved"), "type": TYPE, LEVEL: [] }),
        )
        .await;
    assert_problem_any(&r, 400, BAD_BODY);
}

#[tokio::test]
async fn instance_patch_and_delete() {
    let api = api();
    let id = uid("WaterObserved");
    let start = "2024-11-01T00:00:00Z";
    piezometer(&api, &id, start, 60, 4).await;
    let h = tget(&api, &tpath(&id, "")).await;
    let ids = instance_ids(&h, LEVEL);
    let before = nums(&h, LEVEL);
    assert_eq!(ids.len(), 4);

    // PATCH the second instance's value: same instance, same place in time.
    let r = api
        .patch(
            &format!("/temporal/entities/{id}/attrs/{LEVEL}/{}", ids[1]),
            &json!({ LEVEL: { "type": "Property", "value": 99.5,
                              "observedAt": plus_hours(start, 1) } }),
        )
        .await;
    r.expect(204);
    let h = tget(&api, &tpath(&id, "")).await;
    assert_eq!(instance_ids(&h, LEVEL), ids, "ids unchanged: {h}");
    let mut want = before.clone();
    want[1] = 99.5;
    assert_eq!(nums(&h, LEVEL), want);
    assert_eq!(
        observed(&h, LEVEL)[1],
        at(&plus_hours(start, 1)),
        "observedAt kept"
    );
    // Aggregates see the patched value.
    let h = tget(
        &api,
        &tpath(&id, "options=aggregatedValues&aggrMethods=max"),
    )
    .await;
    approx(&h[LEVEL]["max"][0][0], 99.5, "max after PATCH");

    // DELETE the first instance.
    api.delete(&format!("/temporal/entities/{id}/attrs/{LEVEL}/{}", ids[0]))
        .await
        .expect(204);
    let h = tget(&api, &tpath(&id, "")).await;
    assert_eq!(instance_ids(&h, LEVEL), ids[1..].to_vec());
    assert_eq!(nums(&h, LEVEL), want[1..].to_vec());
    // Again: 404.
    let r = api
        .delete(&format!("/temporal/entities/{id}/attrs/{LEVEL}/{}", ids[0]))
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    // PATCH of a missing instance, of an instance under another attribute, of another
    // entity: 404.
    let r = api
        .patch(
            &format!("/temporal/entities/{id}/attrs/{LEVEL}/{}", ids[0]),
            &json!({ LEVEL: { "type": "Property", "value": 1 } }),
        )
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = api
        .delete(&format!(
            "/temporal/entities/{id}/attrs/temperature/{}",
            ids[2]
        ))
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    let other = uid("WaterObserved");
    let r = api
        .delete(&format!(
            "/temporal/entities/{other}/attrs/{LEVEL}/{}",
            ids[2]
        ))
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    assert_eq!(
        instance_ids(&tget(&api, &tpath(&id, "")).await, LEVEL),
        ids[1..].to_vec()
    );
    // Not an instance id.
    let r = api
        .delete(&format!(
            "/temporal/entities/{id}/attrs/{LEVEL}/not-an-instance"
        ))
        .await;
    assert_problem_any(&r, 400, BAD_BODY);
}

#[tokio::test]
async fn instance_ids_are_tenant_scoped() {
    let api = api();
    let id = uid("WaterObserved");
    piezometer(&api, &id, "2024-11-01T00:00:00Z", 60, 2).await;
    let ids = instance_ids(&tget(&api, &tpath(&id, "")).await, LEVEL);
    let other = api.in_tenant(Some(&new_tenant()));
    let r = other
        .delete(&format!("/temporal/entities/{id}/attrs/{LEVEL}/{}", ids[0]))
        .await;
    assert!(r.status == 404, "another tenant: {} {}", r.status, r.text);
    assert_eq!(instance_ids(&tget(&api, &tpath(&id, "")).await, LEVEL), ids);
}

// ---------------------------------------------------------------------------------
// POST /temporal/entityOperations/query
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn query_post_is_equivalent_to_get() {
    let api = api();
    let start = "2024-12-01T00:00:00Z";
    let a = uid("WaterObserved");
    let b = uid("WaterObserved");
    piezometer(&api, &a, start, 60, 12).await;
    piezometer(&api, &b, start, 30, 12).await;
    let end = plus_hours(start, 5);

    let sorted = |v: Value| -> Vec<Value> {
        let mut l = v.as_array().expect("array").clone();
        l.sort_by_key(|e| e["id"].as_str().unwrap_or_default().to_string());
        l
    };
    let get = tget(
        &api,
        &format!(
            "/temporal/entities?type={TYPE}&attrs={LEVEL}&timerel=between&timeAt={start}&endTimeAt={end}&lastN=3"
        ),
    )
    .await;
    let r = api
        .post(
            "/temporal/entityOperations/query",
            &json!({
                "type": "Query",
                "entities": [{ "type": TYPE }],
                "attrs": [LEVEL],
                "temporalQ": { "timerel": "between", "timeAt": start, "endTimeAt": end, "lastN": 3 },
            }),
        )
        .await;
    r.expect(200);
    let post = r.json();
    assert_eq!(sorted(post.clone()), sorted(get.clone()));
    assert_eq!(post.as_array().map(Vec::len), Some(2));
    for e in post.as_array().expect("array") {
        assert_eq!(items(e, LEVEL).len(), 3, "{e}");
    }

    // Aggregated, by id, with options in the query string.
    let agg_get = tget(
        &api,
        &format!(
            "/temporal/entities?id={a}&local=true&timerel=after&timeAt={start}&options=aggregatedValues&aggrMethods=avg,max&aggrPeriodDuration=PT6H"
        ),
    )
    .await;
    let r = api
        .post(
            "/temporal/entityOperations/query?options=aggregatedValues",
            &json!({
                "type": "Query",
                "entities": [{ "id": a, "type": TYPE }],
                "temporalQ": { "timerel": "after", "timeAt": start },
                "aggrMethods": ["avg", "max"],
                "aggrPeriodDuration": "PT6H",
            }),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json(), agg_get);
    assert_eq!(agg_get[0][LEVEL]["avg"].as_array().map(Vec::len), Some(2));

    // temporalValues by idPattern.
    let tv_get = tget(
        &api,
        &format!(
            "/temporal/entities?local=true&idPattern={}&timerel=before&timeAt={end}&options=temporalValues",
            b.replace(':', "%3A")
        ),
    )
    .await;
    let r = api
        .post(
            "/temporal/entityOperations/query?options=temporalValues",
            &json!({
                "type": "Query",
                "entities": [{ "idPattern": b, "type": TYPE }],
                "temporalQ": { "timerel": "before", "timeAt": end },
            }),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json(), tv_get);
    assert_eq!(
        tv_get[0][LEVEL]["values"].as_array().map(Vec::len),
        Some(10),
        "{tv_get}"
    );

    // Bad Query objects.
    let r = api
        .post(
            "/temporal/entityOperations/query",
            &json!({ "type": "Query", "entities": [{ "type": TYPE }],
                     "temporalQ": { "timerel": "between", "timeAt": start } }),
        )
        .await;
    let p = assert_problem_any(&r, 400, BAD_BODY);
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("endTimeAt"),
        "{p}"
    );
    let r = api
        .post(
            "/temporal/entityOperations/query",
            &json!({ "type": "Query", "entities": [{ "type": TYPE }],
                     "temporalQ": { "lastN": 0 } }),
        )
        .await;
    assert_problem_any(&r, 400, BAD_BODY);
}

// ---------------------------------------------------------------------------------
// A larger history
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn large_history_read_back_completely_and_in_order() {
    let api = api();
    let id = uid("WaterObserved");
    let start = "2023-01-01T00:00:00Z";
    let n = 500usize;
    // Sent out of order (a fixed permutation), read back in time order.
    let order: Vec<usize> = (0..n).map(|i| (i * 211) % n).collect();
    assert_eq!(order.iter().collect::<HashSet<_>>().len(), n);
    let instances: Vec<Value> = order
        .iter()
        .map(|&i| prop(json!(reading(i)), &plus_min(start, 15 * i as i64)))
        .collect();
    tcreate(&api, &json!({ "id": id, "type": TYPE, LEVEL: instances })).await;

    let all = whole_history(&api, &id, LEVEL).await;
    assert_eq!(all.len(), n, "every instance read back");
    for (i, inst) in all.iter().enumerate() {
        assert_eq!(
            time_of(&inst["observedAt"]),
            at(&plus_min(start, 15 * i as i64)),
            "instance {i} out of order"
        );
        approx(&inst["value"], reading(i), &format!("instance {i}"));
    }
    let ids: HashSet<&str> = all
        .iter()
        .map(|i| i["instanceId"].as_str().expect("instanceId"))
        .collect();
    assert_eq!(ids.len(), n);

    let h = tget(&api, &tpath(&id, "options=temporalValues")).await;
    let pairs = h[LEVEL]["values"].as_array().expect("values");
    assert_eq!(pairs.len(), n);
    assert!(pairs
        .windows(2)
        .all(|w| time_of(&w[0][1]) < time_of(&w[1][1])));

    let h = tget(&api, &tpath(&id, "lastN=50")).await;
    let want: Vec<f64> = (n - 50..n).map(reading).collect();
    assert_eq!(nums(&h, LEVEL), want);

    // A day in the middle: 96 quarter hours.
    let day = plus_days(start, 2);
    let h = tget(
        &api,
        &tpath(
            &id,
            &format!(
                "timerel=between&timeAt={day}&endTimeAt={}",
                plus_days(&day, 1)
            ),
        ),
    )
    .await;
    let want: Vec<f64> = (192..288).map(reading).collect();
    assert_eq!(nums(&h, LEVEL), want);
    let h = tget(
        &api,
        &tpath(
            &id,
            "options=aggregatedValues&aggrMethods=totalCount&aggrPeriodDuration=P1D",
        ),
    )
    .await;
    let counts: Vec<f64> = h[LEVEL]["totalCount"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[0].as_f64().expect("count"))
        .collect();
    // 500 quarter hours = 5 full days and 20 readings.
    assert_eq!(counts, vec![96.0, 96.0, 96.0, 96.0, 96.0, 20.0]);
}

// ---------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn bad_temporal_queries_are_400_with_a_clear_detail() {
    let api = api();
    let id = uid("WaterObserved");
    piezometer(&api, &id, "2024-01-01T00:00:00Z", 60, 3).await;
    let t = "2024-01-01T00:00:00Z";
    let e = "2024-01-02T00:00:00Z";
    let cases: Vec<(String, &[&str])> = vec![
        (
            "timerel=after&timeAt=yesterday".to_string(),
            &["timeAt", "yesterday"],
        ),
        (
            "timerel=after&timeAt=2024-13-45T99:00:00Z".to_string(),
            &["timeAt"],
        ),
        (
            format!("timerel=between&timeAt={t}&endTimeAt=tomorrow"),
            &["endTimeAt"],
        ),
        (format!("timerel=between&timeAt={t}"), &["endTimeAt"]),
        (format!("timerel=during&timeAt={t}"), &["timerel", "during"]),
        ("timerel=after".to_string(), &["timeAt"]),
        ("lastN=0".to_string(), &["lastN"]),
        ("lastN=-1".to_string(), &["lastN"]),
        ("lastN=1.5".to_string(), &["lastN"]),
        ("lastN=many".to_string(), &["lastN"]),
        (
            "options=aggregatedValues&aggrMethods=median".to_string(),
            &["median"],
        ),
        (
            "options=aggregatedValues&aggrMethods=avg,mode".to_string(),
            &["mode"],
        ),
        (
            "options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=P1X".to_string(),
            &["P1X"],
        ),
        (
            "options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=daily".to_string(),
            &["daily"],
        ),
        (
            "aggrMethods=avg&aggrPeriodDuration=P1D".to_string(),
            &["aggregatedValues"],
        ),
        (
            format!("timeproperty=observedOn&timerel=after&timeAt={t}"),
            &["timeproperty", "observedOn"],
        ),
        (
            format!("timerel=between&timeAt={e}&endTimeAt={t}"),
            &["endTimeAt"],
        ),
    ];
    for (query, words) in &cases {
        let r = api.get(&tpath(&id, query)).await;
        let p = assert_problem_any(&r, 400, BAD_BODY);
        let detail = p["detail"].as_str().unwrap_or_default();
        assert!(
            words.iter().all(|w| detail.contains(w)),
            "?{query}: the detail should name {words:?}: {detail}"
        );
        // The same on the query endpoint.
        let r = api
            .get(&format!("/temporal/entities?type={TYPE}&{query}"))
            .await;
        assert_problem_any(&r, 400, BAD_BODY);
    }
}

#[tokio::test]
async fn unknown_entity_is_404() {
    let api = api();
    // The tenant exists (else the answer is NonexistentTenant).
    piezometer(&api, &uid("WaterObserved"), "2024-01-01T00:00:00Z", 60, 1).await;
    let missing = uid("WaterObserved");
    for q in ["", "options=temporalValues", "lastN=2"] {
        let r = api.get(&tpath(&missing, q)).await;
        assert_problem(&r, 404, "ResourceNotFound");
    }
    let r = api.delete(&tpath(&missing, "")).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = api
        .delete(&format!("/temporal/entities/{missing}/attrs/{LEVEL}"))
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = api
        .patch(
            &format!("/temporal/entities/{missing}/attrs/{LEVEL}/{INSTANCE_PREFIX}1"),
            &json!({ LEVEL: { "type": "Property", "value": 1 } }),
        )
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
    // A malformed id is a 400, not a 404.
    let r = api.get("/temporal/entities/not%20a%20uri").await;
    assert_problem_any(&r, 400, BAD_BODY);
}

#[tokio::test]
async fn history_is_tenant_scoped() {
    let api = api();
    let id = uid("WaterObserved");
    piezometer(&api, &id, "2024-01-01T00:00:00Z", 60, 2).await;
    let other = api.in_tenant(Some(&new_tenant()));
    let r = other.get(&tpath(&id, "")).await;
    assert!(
        r.status == 404,
        "another tenant sees nothing: {} {}",
        r.status,
        r.text
    );
}

/// q, scopeQ and geoQ of a temporal query are judged on the instances inside the
/// window (clause 5.7.4.4), not on the entity's current state.
#[tokio::test]
async fn temporal_filters_are_judged_on_the_windowed_instances() {
    let api = api();
    let (fast, slow) = (uid(TYPE), uid(TYPE));
    let here = json!({ "type": "Point", "coordinates": [5.37, 43.30] });
    let far = json!({ "type": "Point", "coordinates": [7.26, 43.70] });
    // `fast` read 80 in January and 10 in March; `slow` read 10 then 30.
    for (id, jan, mar, place) in [(&fast, 80, 10, &here), (&slow, 10, 30, &far)] {
        tcreate(
            &api,
            &json!({
                "id": id, "type": TYPE,
                LEVEL: [prop(json!(jan), "2026-01-05T00:00:00Z"), prop(json!(mar), "2026-03-01T12:00:00Z")],
                "location": [{ "type": "GeoProperty", "value": place, "observedAt": "2026-01-05T00:00:00Z" }]
            }),
        )
        .await;
    }
    let ids = |v: &Value| -> HashSet<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let january = "timerel=between&timeAt=2026-01-01T00:00:00Z&endTimeAt=2026-02-01T00:00:00Z";
    let march = "timerel=between&timeAt=2026-03-01T00:00:00Z&endTimeAt=2026-03-02T00:00:00Z";
    let both = format!("id={fast},{slow}");
    let jan = tget(
        &api,
        &format!("/temporal/entities?{both}&{january}&q={LEVEL}%3E25"),
    )
    .await;
    assert_eq!(ids(&jan), HashSet::from([fast.clone()]), "{jan}");
    let mar = tget(
        &api,
        &format!("/temporal/entities?{both}&{march}&q={LEVEL}%3E25"),
    )
    .await;
    assert_eq!(ids(&mar), HashSet::from([slow.clone()]), "{mar}");
    // Only in-window instances come back.
    assert!(!mar.to_string().contains("2026-01-05"), "{mar}");
    // An attribute without instances in the window does not exist for the filter.
    let absent = tget(
        &api,
        &format!("/temporal/entities?{both}&{march}&q=location"),
    )
    .await;
    assert!(ids(&absent).is_empty(), "{absent}");
    // geoQ on the windowed location instances.
    let near = tget(
        &api,
        &format!(
            "/temporal/entities?{both}&{january}&georel=near%3BmaxDistance%3D%3D2000&geometry=Point&coordinates=%5B5.37,43.30%5D"
        ),
    )
    .await;
    assert_eq!(ids(&near), HashSet::from([fast.clone()]), "{near}");
}

/// pick and omit choose attributes and the core members of temporal answers.
#[tokio::test]
async fn pick_and_omit_shape_temporal_answers() {
    let api = api();
    let id = uid(TYPE);
    tcreate(
        &api,
        &json!({
            "id": id, "type": TYPE,
            LEVEL: [prop(json!(1.5), "2026-01-05T00:00:00Z")],
            "temperature": [prop(json!(14.0), "2026-01-05T00:00:00Z")]
        }),
    )
    .await;
    let keys = |v: &Value| -> HashSet<String> {
        v.as_object()
            .map(|o| o.keys().filter(|k| *k != "@context").cloned().collect())
            .unwrap_or_default()
    };
    let set = |names: &[&str]| -> HashSet<String> { names.iter().map(|s| s.to_string()).collect() };
    let picked = tget(&api, &tpath(&id, &format!("pick={LEVEL}"))).await;
    assert_eq!(keys(&picked), set(&[LEVEL]), "{picked}");
    let picked = tget(&api, &tpath(&id, &format!("pick=id,{LEVEL}"))).await;
    assert_eq!(keys(&picked), set(&["id", LEVEL]), "{picked}");
    let omitted = tget(&api, &tpath(&id, &format!("omit=type,{LEVEL}"))).await;
    assert_eq!(keys(&omitted), set(&["id", "temperature"]), "{omitted}");
    let listed = tget(
        &api,
        &format!("/temporal/entities?id={id}&pick=id,temperature"),
    )
    .await;
    assert_eq!(keys(&listed[0]), set(&["id", "temperature"]), "{listed}");

    for bad in [
        format!("pick={LEVEL}&omit={LEVEL}"),
        "pick=id&omit=id".to_string(),
        format!("attrs={LEVEL}&pick={LEVEL}"),
        format!("attrs={LEVEL}&omit=temperature"),
    ] {
        let r = api.get(&tpath(&id, &bad)).await;
        assert_problem(&r, 400, "BadRequestData");
    }
    let r = api.get(&tpath(&id, "pick=neverSeen")).await;
    assert_problem(&r, 404, "ResourceNotFound");
    let r = api
        .get(&tpath(&id, &format!("omit={LEVEL},temperature")))
        .await;
    assert_problem(&r, 404, "ResourceNotFound");
}

/// datasetId narrows the answer to instances of the listed datasets; aggregation
/// parameters may come in the Query body (temporalQ or aggrParams) and imply
/// aggregated values; PT0S aggregates the whole window; `format` beats `options`.
#[tokio::test]
async fn dataset_filter_and_aggregation_parameters_of_queries() {
    let api = api();
    let id = uid(TYPE);
    let ds = "urn:ngsi-ld:Dataset:backup";
    let mut backup = prop(json!(7.0), "2026-01-05T00:00:00Z");
    backup["datasetId"] = json!(ds);
    tcreate(
        &api,
        &json!({
            "id": id, "type": TYPE,
            LEVEL: [prop(json!(1.0), "2026-01-05T00:00:00Z"), prop(json!(3.0), "2026-01-06T00:00:00Z"), backup]
        }),
    )
    .await;
    let only_backup = tget(
        &api,
        &tpath(&id, &format!("datasetId={ds}&options=temporalValues")),
    )
    .await;
    assert_eq!(only_backup[LEVEL]["datasetId"], json!(ds), "{only_backup}");
    assert_eq!(
        only_backup[LEVEL]["values"].as_array().map(Vec::len),
        Some(1)
    );
    let default = tget(&api, &tpath(&id, "datasetId=@none&options=temporalValues")).await;
    assert!(default[LEVEL].get("datasetId").is_none(), "{default}");
    assert_eq!(default[LEVEL]["values"].as_array().map(Vec::len), Some(2));
    let r = api.get(&tpath(&id, "datasetId=not%20a%20uri")).await;
    assert_problem(&r, 400, "BadRequestData");

    let window = json!({ "timerel": "after", "timeAt": "2026-01-01T00:00:00Z" });
    let query = |extra: Value| {
        let mut q = json!({ "type": "Query", "entities": [{ "type": TYPE, "id": id }], "temporalQ": window });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            if k == "temporalQ" {
                for (tk, tv) in v.as_object().cloned().unwrap_or_default() {
                    q["temporalQ"][tk] = tv;
                }
            } else {
                q[k] = v;
            }
        }
        q
    };
    let avg_of = |v: &Value| -> Vec<f64> {
        v[0][LEVEL]
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .filter_map(|s| s["avg"][0][0].as_f64())
                    .collect()
            })
            .or_else(|| v[0][LEVEL]["avg"][0][0].as_f64().map(|a| vec![a]))
            .unwrap_or_default()
    };
    for extra in [
        json!({ "aggrParams": { "aggrMethods": ["avg"], "aggrPeriodDuration": "PT0S" } }),
        json!({ "temporalQ": { "aggrMethods": "avg" } }),
        json!({ "temporalQ": { "aggrMethods": ["avg"] } }),
    ] {
        let r = api
            .post("/temporal/entityOperations/query", &query(extra.clone()))
            .await;
        assert_eq!(r.status, 200, "{extra}: {}", r.text);
        let avgs = avg_of(&r.json());
        assert!(
            avgs.contains(&2.0),
            "{extra}: one period over the window, avg 2: {}",
            r.text
        );
    }
    let bad =
        query(json!({ "aggrParams": { "aggrMethods": ["avg"], "aggrPeriodDuration": "bogus" } }));
    let r = api.post("/temporal/entityOperations/query", &bad).await;
    let problem = assert_problem(&r, 400, "BadRequestData");
    assert!(problem["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("aggrPeriodDuration"));
    let bad = query(json!({ "aggrParams": { "aggrMethods": ["median"] } }));
    let r = api.post("/temporal/entityOperations/query", &bad).await;
    assert_problem(&r, 400, "BadRequestData");

    // format=temporalValues wins over options=aggregatedValues.
    let r = tget(
        &api,
        &tpath(
            &id,
            "format=temporalValues&options=aggregatedValues&aggrMethods=sum",
        ),
    )
    .await;
    assert!(r.to_string().contains("\"values\""), "{r}");
}

/// What a temporal query must name, how it may be ordered, and more bad input.
#[tokio::test]
async fn temporal_query_selection_rules() {
    let api = api();
    let (a, b) = (uid(TYPE), uid(TYPE));
    for id in [&a, &b] {
        tcreate(
            &api,
            &json!({ "id": id, "type": TYPE, LEVEL: [prop(json!(1.0), "2026-01-05T00:00:00Z")] }),
        )
        .await;
    }
    let window = "timerel=after&timeAt=2026-01-01T00:00:00Z";
    // Ids alone are not enough (clause 5.7.4.4); local=true makes them so.
    let r = api
        .get(&format!("/temporal/entities?id={a},{b}&{window}"))
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let v = tget(
        &api,
        &format!("/temporal/entities?id={a},{b}&{window}&local=true"),
    )
    .await;
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
    // orderBy=id, both ways.
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut sorted = vec![a.clone(), b.clone()];
    sorted.sort();
    let both = format!("/temporal/entities?type={TYPE}&id={a},{b}&{window}");
    assert_eq!(
        ids(&tget(&api, &format!("{both}&orderBy=id")).await),
        sorted
    );
    sorted.reverse();
    assert_eq!(
        ids(&tget(&api, &format!("{both}&orderBy=id;desc")).await),
        sorted
    );
    for bad in [
        format!("{both}&orderBy=name"),
        format!("{both}&orderBy=createdAt"),
        format!("/temporal/entities?type={TYPE}&timerel=after&timeAt=2026-01-01"),
        format!("/temporal/entities?attrs=createdAt&{window}"),
        format!("{both}&csf=))bad(("),
    ] {
        let r = api.get(&bad).await;
        assert_problem(&r, 400, "BadRequestData");
    }
}

/// temporalValues of the attribute types whose value is not `value`, the results count
/// of a query, `pick=id`, and one paging window shared by every entity of a query.
#[tokio::test]
async fn simplified_values_count_and_shared_windows() {
    let api = api();
    let id = uid(TYPE);
    let t = "2026-01-05T00:00:00Z";
    tcreate(
        &api,
        &json!({
            "id": id, "type": TYPE,
            "label": [{ "type": "LanguageProperty", "languageMap": { "fr": "Puits", "en": "Well" }, "observedAt": t }],
            "config": [{ "type": "JsonProperty", "json": { "a": 1 }, "observedAt": t }],
            "category": [{ "type": "VocabProperty", "vocab": "groundwater", "observedAt": t }],
            "probes": [{ "type": "ListRelationship", "objectList": [{ "object": "urn:ngsi-ld:Device:1" }, { "object": "urn:ngsi-ld:Device:2" }], "observedAt": t }]
        }),
    )
    .await;
    let v = tget(&api, &tpath(&id, "options=temporalValues")).await;
    assert_eq!(
        v["label"]["languageMaps"][0][0],
        json!({ "languageMap": { "fr": "Puits", "en": "Well" } }),
        "{v}"
    );
    assert_eq!(
        v["config"]["jsons"][0][0],
        json!({ "json": { "a": 1 } }),
        "{v}"
    );
    assert_eq!(
        v["category"]["vocabs"][0][0],
        json!({ "vocab": "groundwater" }),
        "{v}"
    );
    assert_eq!(
        v["probes"]["objectLists"][0][0],
        json!(["urn:ngsi-ld:Device:1", "urn:ngsi-ld:Device:2"]),
        "{v}"
    );

    // Count, and pick=id.
    let r = api
        .get(&format!(
            "/temporal/entities?type={TYPE}&count=true&limit=1&pick=id"
        ))
        .await;
    r.expect(200);
    let count: u64 = r
        .header("NGSILD-Results-Count")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(count >= 1, "{:?}", r.header("NGSILD-Results-Count"));
    let listed = r.json();
    assert_eq!(
        listed[0]
            .as_object()
            .map(|o| o.keys().filter(|k| *k != "@context").count()),
        Some(1),
        "{listed}"
    );

    // Two entities, one with a long history: the page ends at the same instant for both.
    let server = TestServer::start(&["--temporal-max-instances", "10"]);
    let api = server.api();
    let (long, short) = (uid(TYPE), uid(TYPE));
    let start = "2026-02-01T00:00:00Z";
    let long_history: Vec<Value> = (0..30)
        .map(|i| prop(json!(i), &plus_hours(start, i)))
        .collect();
    let short_history: Vec<Value> = (0..3)
        .map(|i| prop(json!(i), &plus_days(start, 10 + i)))
        .collect();
    tcreate(
        &api,
        &json!({ "id": long, "type": TYPE, LEVEL: long_history }),
    )
    .await;
    tcreate(
        &api,
        &json!({ "id": short, "type": TYPE, LEVEL: short_history }),
    )
    .await;
    let r = api
        .get(&format!(
            "/temporal/entities?type={TYPE}&timerel=after&timeAt={start}"
        ))
        .await;
    assert_eq!(r.status, 206, "{}", r.text);
    let edge = plus_hours(start, 9);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("date-time {start}-{edge}/*"))
    );
    // Nothing after the edge, whichever entity it belongs to; an attribute with
    // nothing left in this page is listed empty.
    let body = r.json();
    let short_page = body
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == json!(short)))
        .cloned()
        .unwrap_or_default();
    assert_eq!(short_page[LEVEL], json!([]), "{body}");
    for e in body.as_array().into_iter().flatten() {
        for inst in e[LEVEL].as_array().into_iter().flatten() {
            let at = inst["observedAt"].as_str().unwrap_or_default();
            assert!(
                at <= edge.as_str(),
                "{at} is after the window's end {edge}: {body}"
            );
        }
    }
}

/// Bad attribute names and unknown instance ids on the temporal attribute paths.
#[tokio::test]
async fn temporal_attribute_paths_refuse_bad_names_and_unknown_instances() {
    let api = api();
    let id = uid(TYPE);
    tcreate(
        &api,
        &json!({ "id": id, "type": TYPE, LEVEL: [prop(json!(1.0), "2026-01-05T00:00:00Z")] }),
    )
    .await;
    let instance = "urn:ngsi-ld:attribute:instance:1";
    let r = api
        .delete(&format!(
            "/temporal/entities/{id}/attrs/invalid(Name/{instance}"
        ))
        .await;
    assert_problem(&r, 400, "BadRequestData");
    let r = api
        .patch(
            &format!("/temporal/entities/{id}/attrs/invalid(Name/{instance}"),
            &json!({ "value": 2 }),
        )
        .await;
    assert_problem(&r, 400, "BadRequestData");
    for unknown in [
        "urn:ngsi-ld:Instance:not-ours",
        "urn:ngsi-ld:attribute:instance:999999999",
    ] {
        let r = api
            .delete(&format!("/temporal/entities/{id}/attrs/{LEVEL}/{unknown}"))
            .await;
        assert_problem(&r, 404, "ResourceNotFound");
    }
    let r = api
        .patch(
            &format!("/temporal/entities/{id}/attrs/{LEVEL}"),
            &json!({ "value": 2 }),
        )
        .await;
    assert_eq!(r.status, 405, "{}", r.text);
}

/// A null-marker instance in temporal input records a deletion in the history.
#[tokio::test]
async fn temporal_input_records_deletions_and_unions_types() {
    let api = api();
    let id = uid(TYPE);
    tcreate(
        &api,
        &json!({ "id": id, "type": TYPE, LEVEL: [prop(json!(1.0), "2026-01-01T00:00:00Z")] }),
    )
    .await;
    let r = api
        .post(
            "/temporal/entities",
            &json!({ "id": id, "type": [TYPE, "Piezometer"],
                     LEVEL: [{ "type": "Property", "value": NULL_URI, "observedAt": "2026-01-02T00:00:00Z" }] }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let v = tget(
        &api,
        &tpath(&id, "timerel=before&timeAt=2030-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(items(&v, LEVEL).len(), 2, "{v}");
    assert!(v.to_string().contains("Piezometer"), "{v}");
    assert!(
        items(&v, LEVEL)
            .iter()
            .any(|i| i.get("deletedAt").is_some()),
        "{v}"
    );
}

/// A temporal entity's scope may come as its own history (Property instances); the
/// latest is the entity's scope, which scopeQ selects on.
#[tokio::test]
async fn scope_given_as_instances() {
    let api = api();
    let (ab, x) = (uid(TYPE), uid(TYPE));
    for (id, scopes) in [
        (
            &ab,
            json!([{ "type": "Property", "value": "/Old", "observedAt": "2026-01-01T00:00:00Z" }, { "type": "Property", "value": ["/A/B", "/C"], "observedAt": "2026-02-01T00:00:00Z" }]),
        ),
        (
            &x,
            json!([{ "type": "Property", "value": "/X", "observedAt": "2026-01-01T00:00:00Z" }]),
        ),
    ] {
        tcreate(&api, &json!({ "id": id, "type": TYPE, "scope": scopes, LEVEL: [prop(json!(1.0), "2026-03-01T00:00:00Z")] })).await;
    }
    let v = tget(
        &api,
        &format!("/temporal/entities?type={TYPE}&id={ab},{x}&scopeQ=/A/%23"),
    )
    .await;
    let ids: Vec<&str> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, vec![ab.as_str()], "{v}");
    assert!(v.to_string().contains("/A/B"), "{v}");
    let r = api.post("/temporal/entities", &json!({ "id": uid(TYPE), "type": TYPE, "scope": [{ "type": "Property", "value": 3 }] })).await;
    assert_problem(&r, 400, "BadRequestData");
}

/// Readings with a unit code are the common sensor case (stored compactly): they must
/// read back exactly, and a patch that adds a member must keep every member.
#[tokio::test]
async fn readings_with_unit_codes_read_back_whole() {
    let api = api();
    let id = uid("WaterObserved");
    let start = "2024-11-01T00:00:00Z";
    let reading = |v: f64, h: i64| json!({ "type": "Property", "value": v, "observedAt": plus_hours(start, h), "unitCode": "MTR" });
    api.post(
        "/temporal/entities",
        &json!({ "id": id, "type": TYPE,
                 LEVEL: [reading(3.5, 0), reading(3.75, 1)],
                 "temperature": [{ "type": "Property", "value": 12.5, "unitCode": "CEL",
                                   "observedAt": plus_hours(start, 0), "accuracy": { "type": "Property", "value": 0.1 } }] }),
    )
    .await
    .expect(201);
    let h = tget(&api, &tpath(&id, "")).await;
    let levels = items(&h, LEVEL);
    assert_eq!(levels.len(), 2);
    for (got, want) in levels.iter().zip([3.5, 3.75]) {
        assert_eq!(got["value"], json!(want));
        assert_eq!(got["unitCode"], json!("MTR"), "{got}");
        assert_eq!(got["type"], json!("Property"));
    }
    assert_eq!(time_of(&levels[1]["observedAt"]), at(&plus_hours(start, 1)));
    let temperature = &items(&h, "temperature")[0];
    assert_eq!(temperature["unitCode"], json!("CEL"));
    assert_eq!(temperature["accuracy"]["value"], json!(0.1));

    // Patching an instance with a new member keeps its unit and value.
    let instance = instance_ids(&h, LEVEL)[0].clone();
    api.patch(
        &format!("/temporal/entities/{id}/attrs/{LEVEL}/{instance}"),
        &json!({ LEVEL: { "type": "Property", "value": 3.5, "observedAt": plus_hours(start, 0),
                          "quality": { "type": "Property", "value": "checked" } } }),
    )
    .await
    .expect(204);
    let h = tget(&api, &tpath(&id, &format!("attrs={LEVEL}"))).await;
    let first = &items(&h, LEVEL)[0];
    assert_eq!(first["unitCode"], json!("MTR"), "{first}");
    assert_eq!(first["quality"]["value"], json!("checked"), "{first}");
    // Aggregates see the numbers of compact rows.
    let h = tget(
        &api,
        &tpath(
            &id,
            &format!("attrs={LEVEL}&options=aggregatedValues&aggrMethods=avg,max"),
        ),
    )
    .await;
    approx(&h[LEVEL]["avg"][0][0], 3.625, "avg of compact rows");
    approx(&h[LEVEL]["max"][0][0], 3.75, "max of compact rows");
}
