//! The SQL translation of q and the in-memory evaluator must select the same entities.
//! Checked on a seeded random population against a grid of queries.

use std::sync::Arc;

use serde_json::json;

use super::{Sqlite, SqliteStore};
use crate::ngsi::query::EntityQuery;
use crate::ngsi::type_expr::TypeExpr;
use crate::ngsi::{q, Entity, Tenant};
use crate::store::sqlite::Durability;
use crate::store::{Effect, EntityStore, WriteOp};

/// A small deterministic generator (no dependency needed for a test).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() as usize) % items.len()]
    }
}

fn entity(i: usize, rng: &mut Lcg) -> Entity {
    let mut attrs = serde_json::Map::new();
    let level = rng
        .pick(&[
            json!(0),
            json!(1.5),
            json!(3),
            json!(-2),
            json!([1, 4]),
            json!("3"),
            json!(true),
        ])
        .clone();
    if rng.next() % 5 != 0 {
        attrs.insert(
            "level".into(),
            json!([{ "type": "Property", "value": level }]),
        );
    }
    let name = rng
        .pick(&["Aix", "Marseille", "Aubagne", "aix", "Martigues"])
        .to_string();
    if rng.next() % 4 != 0 {
        attrs.insert(
            "name".into(),
            json!([{ "type": "Property", "value": name, "observedAt": "2024-05-01T10:00:00Z" }]),
        );
    }
    let dev = format!("urn:ngsi-ld:Device:{}", rng.next() % 3);
    attrs.insert(
        "refDevice".into(),
        json!([{ "type": "Relationship", "object": dev }]),
    );
    if rng.next() % 3 == 0 {
        attrs.insert(
            "level2".into(),
            json!([{ "type": "Property", "value": 2, "datasetId": "urn:d:1" }, { "type": "Property", "value": 7 }]),
        );
    }
    serde_json::from_value(json!({
        "id": format!("urn:ngsi-ld:T:{i}"), "type": ["T"], "createdAt": "t", "modifiedAt": "t", "attrs": attrs
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

const QUERIES: &[&str] = &[
    "level",
    "level==3",
    "level!=3",
    "level>1",
    "level>=1.5",
    "level<0",
    "level<=0",
    "level==1..3",
    "level==0,3",
    "level==\"3\"",
    "level==true",
    "name==\"Aix\"",
    "name~=\"^[Aa]ix\"",
    "name!~=\"ai\"",
    "name==Aix..Marseille",
    "name>\"B\"",
    "refDevice==urn:ngsi-ld:Device:1",
    "refDevice!=urn:ngsi-ld:Device:1",
    "level2==7",
    "level2!=7",
    "level>1;name==\"Aix\"",
    "level>1|name==\"Aix\"",
    "(level>1|level<0);refDevice==urn:ngsi-ld:Device:2",
    "name.observedAt>2024-01-01T00:00:00Z",
    "missing",
    "missing|level",
    "level2==2,7",
];

#[tokio::test]
async fn sql_translation_selects_what_the_evaluator_selects() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = SqliteStore::open(&dir.path().join("q.db"), Durability::Process)
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Sqlite(Arc::new(store));
    let tenant = Tenant::default_tenant();
    let mut rng = Lcg(42);
    let population: Vec<Entity> = (0..300).map(|i| entity(i, &mut rng)).collect();
    let ops = population
        .iter()
        .cloned()
        .map(|e| {
            WriteOp::new(e.id.clone(), move |_| {
                Ok(Effect::Put(e.clone(), Default::default()))
            })
        })
        .collect();
    for r in store
        .write(&tenant, ops)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    {
        r.unwrap_or_else(|e| panic!("{e}"));
    }
    let mut non_empty = 0;
    for text in QUERIES {
        let expr = q::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut expected: Vec<String> = population
            .iter()
            .filter(|e| q::matches(&expr, e))
            .map(|e| e.id.clone())
            .collect();
        expected.sort();
        // Once with q driving the query, once checked per candidate behind a type filter.
        for types in [None, Some(TypeExpr::Type("T".into()))] {
            let query = EntityQuery {
                q: Some(expr.clone()),
                types,
                limit: 1000,
                count: true,
                ..Default::default()
            };
            let page = store
                .query(&tenant, &query)
                .await
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            let mut got: Vec<String> = page.items.iter().map(|e| e.id.clone()).collect();
            got.sort();
            assert_eq!(got, expected, "q={text}");
            assert_eq!(
                page.total,
                Some(expected.len() as u64),
                "count for q={text}"
            );
        }
        non_empty += usize::from(!expected.is_empty());
    }
    assert!(
        non_empty > QUERIES.len() / 2,
        "the population is too uniform to test anything"
    );
    // The common forms are decided by SQL alone (no scan).
    for text in [
        "level>1",
        "name==\"Aix\"",
        "level==0,3",
        "refDevice==urn:ngsi-ld:Device:1",
        "level>1;name~=\"A\"",
    ] {
        let expr = q::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            super::q_sql::translate(&expr, false).exact,
            "{text} should be exact in SQL"
        );
    }
}
