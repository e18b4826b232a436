//! Temporal paging (clause 6.3.10): a history longer than the broker's page answers 206
//! with a `Content-Range`, and a client walks it window by window.

use serde_json::{json, Value};

use crate::common::*;

fn readings(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({ "type": "Property", "value": i as f64 + 0.5,
                    "observedAt": format!("2024-03-01T{:02}:{:02}:00Z", i / 60, i % 60) })
        })
        .collect()
}

/// The end of `date-time <start>-<end>/<size>` (both instants end in `Z`).
fn range_end(range: &str) -> String {
    let window = range
        .trim_start_matches("date-time ")
        .split('/')
        .next()
        .unwrap_or_default();
    window
        .split_once("Z-")
        .map(|(_, end)| end.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn long_histories_are_paged_with_content_range() {
    let server = TestServer::start(&["--temporal-max-instances", "10"]);
    let api = server.api();
    let id = uid("WaterObserved");
    let r = api
        .post(
            "/temporal/entities",
            &json!({ "id": id, "type": "WaterObserved", "level": readings(25) }),
        )
        .await;
    r.expect(201);

    // First page: the ten oldest, 206, a date-time range from the first to the tenth.
    let r = api.get(&format!("/temporal/entities/{id}")).await;
    assert_eq!(r.status, 206, "{}", r.text);
    let range = r.header("Content-Range").expect("Content-Range on a 206");
    assert_eq!(
        range,
        "date-time 2024-03-01T00:00:00Z-2024-03-01T00:09:00Z/*"
    );
    let page = r.json();
    assert_eq!(page["level"].as_array().map(Vec::len), Some(10));

    // Walk forward from where each window ends (after is inclusive: skip the repeat).
    let mut seen: Vec<f64> = page["level"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["value"].as_f64())
        .collect();
    let mut to = range_end(&range);
    let mut guard = 0;
    loop {
        guard += 1;
        assert!(guard < 10, "paging does not end");
        let r = api
            .get(&format!(
                "/temporal/entities/{id}?timerel=after&timeAt={to}"
            ))
            .await;
        let body = r.json();
        let values: Vec<f64> = body["level"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["value"].as_f64())
            .collect();
        seen.extend(values.into_iter().skip(1));
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 206, "{}", r.text);
        to = range_end(&r.header("Content-Range").expect("Content-Range on a 206"));
    }
    let expected: Vec<f64> = (0..25).map(|i| i as f64 + 0.5).collect();
    assert_eq!(
        seen, expected,
        "the walk must return every instance once, in order"
    );

    // lastN pages from the newest: the range runs from the most recent backwards.
    let r = api.get(&format!("/temporal/entities/{id}?lastN=20")).await;
    assert_eq!(r.status, 206, "{}", r.text);
    assert_eq!(
        r.header("Content-Range").as_deref(),
        Some("date-time 2024-03-01T00:24:00Z-2024-03-01T00:15:00Z/20"),
        "with lastN the size is lastN (clause 6.3.10)"
    );
    let values: Vec<f64> = r.json()["level"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["value"].as_f64())
        .collect();
    assert_eq!(values, (15..25).map(|i| i as f64 + 0.5).collect::<Vec<_>>());

    // A short history is whole: 200, no Content-Range.
    let small = uid("WaterObserved");
    api.post(
        "/temporal/entities",
        &json!({ "id": small, "type": "WaterObserved", "level": readings(3) }),
    )
    .await
    .expect(201);
    let r = api.get(&format!("/temporal/entities/{small}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("Content-Range").is_none());
}
