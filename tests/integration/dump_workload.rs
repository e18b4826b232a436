//! A small, seeded territory for the reversibility tests, in the spirit of the
//! metropolitan benchmark's workload (tests cannot import bench code): river-level
//! stations with float readings over time, waste containers with integer fill levels,
//! multi-instance attributes, sub-attributes (a relationship among them), a
//! ListRelationship, a LanguageProperty, a deleted attribute, a deleted entity, history
//! added through the temporal API, a subscription and a hosted @context.

use serde_json::{json, Value};

use super::common::Api;

/// A tiny deterministic generator (xorshift), so a failing case can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A float in [lo, hi) with two decimals (and a non-zero fraction, so it stays a float).
    pub fn float(&mut self, lo: f64, hi: f64) -> f64 {
        let x = lo + (self.next() % 10_000) as f64 / 10_000.0 * (hi - lo);
        (x * 100.0).round() / 100.0 + 0.005
    }
}

pub fn station_id(i: usize) -> String {
    format!("urn:ngsi-ld:WaterObserved:station-{i:03}")
}

pub fn container_id(i: usize) -> String {
    format!("urn:ngsi-ld:WasteContainer:wc-{i:03}")
}

/// Fills the tenant of `api`; returns how many observation updates were sent.
pub async fn populate(api: &Api, seed: u64, stations: usize, readings: usize) -> usize {
    let mut rng = Rng::new(seed);
    let r = api
        .post(
            "/jsonldContexts",
            &json!({"@context": {"level": "https://example.org/river#level", "fill": "https://example.org/waste#fill"}}),
        )
        .await;
    assert_eq!(r.status, 201, "hosted context: {}", r.text);
    for i in 0..stations {
        let lon = 5.3 + i as f64 * 0.01;
        api.create(&json!({
            "id": station_id(i),
            "type": "WaterObserved",
            "name": {"type": "Property", "value": format!("Station {i}")},
            "level": {"type": "Property", "value": rng.float(0.5, 3.0), "unitCode": "MTR",
                      "observedAt": "2026-01-01T00:00:00Z",
                      "quality": {"type": "Property", "value": "good"},
                      "measuredBy": {"type": "Relationship", "object": container_id(i)}},
            "temperature": [
                {"type": "Property", "value": rng.float(5.0, 20.0), "datasetId": "urn:ngsi-ld:Dataset:surface",
                 "observedAt": "2026-01-01T00:00:00Z"},
                {"type": "Property", "value": rng.float(5.0, 20.0), "datasetId": "urn:ngsi-ld:Dataset:bottom",
                 "observedAt": "2026-01-01T00:00:00Z"}
            ],
            "description": {"type": "LanguageProperty", "languageMap": {"fr": "station", "en": "station"}},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, 43.29]}}
        }))
        .await;
        api.create(&json!({
            "id": container_id(i),
            "type": "WasteContainer",
            "fill": {"type": "Property", "value": (rng.next() % 100) as i64, "observedAt": "2026-01-01T00:00:00Z"},
            "refStation": {"type": "Relationship", "object": station_id(i)},
            "neighbours": {"type": "ListRelationship", "objectList": [{"object": station_id((i + 1) % stations)}]},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, 43.30]}}
        }))
        .await;
    }
    let mut updates = 0;
    for k in 1..=readings {
        let at = format!("2026-01-01T{:02}:{:02}:00Z", k / 4, (k % 4) * 15);
        for i in 0..stations {
            let r = api
                .patch(
                    &format!("/entities/{}/attrs", station_id(i)),
                    &json!({"level": {"type": "Property", "value": rng.float(0.5, 3.0), "unitCode": "MTR", "observedAt": at}}),
                )
                .await;
            assert_eq!(r.status, 204, "update: {}", r.text);
            let r = api
                .patch(
                    &format!("/entities/{}/attrs", container_id(i)),
                    &json!({"fill": {"type": "Property", "value": (rng.next() % 100) as i64, "observedAt": at}}),
                )
                .await;
            assert_eq!(r.status, 204, "update: {}", r.text);
            updates += 2;
        }
    }
    // A deleted attribute and a deleted entity leave deletion instances and deletedAt.
    let r = api
        .delete(&format!("/entities/{}/attrs/description", station_id(0)))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = api.delete(&format!("/entities/{}", container_id(0))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    // History added directly, for an entity with no current state.
    let r = api
        .post(
            "/temporal/entities",
            &json!({"id": "urn:ngsi-ld:WaterObserved:archived", "type": "WaterObserved",
                    "level": [{"type": "Property", "value": 1.25, "observedAt": "2025-06-01T00:00:00Z"},
                              {"type": "Property", "value": 1.5, "observedAt": "2025-06-02T00:00:00Z"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "temporal create: {}", r.text);
    let r = api
        .post(
            "/subscriptions",
            &json!({"type": "Subscription", "entities": [{"type": "WaterObserved"}],
                    "watchedAttributes": ["level"], "q": "level>2.5",
                    "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}}),
        )
        .await;
    assert_eq!(r.status, 201, "subscription: {}", r.text);
    updates
}

/// The records of a dump (header dropped), parsed.
pub fn records(dump: &str) -> Vec<Value> {
    dump.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad dump line {l}: {e}")))
        .collect()
}
