//! Queries of the query issue: type + q (containers below half full: on the freshly
//! loaded territory that is every container, so each page holds 100), geo `near` (500 m
//! around the Vieux-Port) and a GeoJSON page of 1000 entities, each a repeated GET on
//! the territory loaded by the earlier scenarios.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use super::territory_loader::ensure_territory;
use super::{with_context_link, Scenario};
use crate::bench_context::BenchContext;
use crate::figures::Figure;

pub struct Queries;

const KEY: &str = "queries";

/// (figure key, label, query string, Accept, p50 target in ms, requests).
const QUERIES: &[(&str, &str, &str, &str, f64, usize)] = &[
    (
        "query_type_q",
        "query type + q (100 per page)",
        "type=WasteContainer&q=fillingLevel%3C0.5&limit=100",
        "application/json",
        5.0,
        1_000,
    ),
    (
        "query_geo_near",
        "geo near 500 m (100 per page)",
        "georel=near%3BmaxDistance%3D%3D500&geometry=Point&coordinates=%5B5.3698%2C43.2951%5D&type=Streetlight,WasteContainer,NoiseLevelObserved,WaterObserved,WeatherObserved&limit=100",
        "application/json",
        10.0,
        1_000,
    ),
    (
        "query_geojson_page",
        "GeoJSON page of 1000",
        "type=Streetlight,WasteContainer,WeatherObserved&limit=1000",
        "application/geo+json",
        f64::INFINITY,
        40,
    ),
];

impl Scenario for Queries {
    fn key(&self) -> &'static str {
        KEY
    }

    fn summary(&self) -> &'static str {
        "GET /entities with type+q, geo near and a GeoJSON page (200)"
    }

    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>> {
        Box::pin(run(bench))
    }
}

async fn run(bench: &mut BenchContext) -> Vec<Figure> {
    if let Err(why) = ensure_territory(bench).await {
        return QUERIES
            .iter()
            .map(|(key, label, ..)| Figure::not_available(key, *label, "req/s", why.clone()))
            .collect();
    }
    let api = bench.broker().await.api_url();
    let link = bench.options.context_link();
    let mut figures = Vec::new();
    // Fewer repetitions than the single-entity scenarios: each answer is large.
    for (key, label, query, accept, p50_ms, count) in QUERIES {
        let count = (*count).min(bench.options.requests);
        let url = Arc::new(format!("{api}/entities?{query}"));
        let accept = *accept;
        let result = bench
            .load(
                count,
                &[200],
                Arc::new(move |client, _| {
                    with_context_link(client.get(url.as_str()).header("Accept", accept), link)
                }),
            )
            .await;
        let mut figure = Figure::from_load(key, *label, "req/s", 1, &result);
        if p50_ms.is_finite() {
            figure = figure.with_p50_target_ms(*p50_ms);
        }
        figures.push(figure);
    }
    figures
}
