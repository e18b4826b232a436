//! Makes sure the territory is in the store before a scenario that reads or
//! updates it, even when `create` was not run or stopped early. The loading
//! is not measured.

use std::sync::Arc;

use super::{serialize, with_context_link};
use crate::bench_context::BenchContext;

const BATCH: u64 = 1000;

/// Number of territory entities in the store afterwards, or why none are.
pub async fn ensure_territory(bench: &mut BenchContext) -> Result<u64, String> {
    let territory = bench.territory();
    let wanted = territory.entity_count().min(bench.options.requests as u64);
    if bench.territory_in_store >= wanted {
        return Ok(bench.territory_in_store);
    }
    eprintln!("  loading the territory ({wanted} entities) by batch upsert first (not measured)");
    let batches: Vec<_> = (0..wanted.div_ceil(BATCH))
        .map(|batch| {
            let entities: Vec<_> = (batch * BATCH..((batch + 1) * BATCH).min(wanted))
                .map(|index| territory.entity(index))
                .collect();
            serialize(&serde_json::Value::Array(entities))
        })
        .collect();
    let url = format!("{}/entityOperations/upsert", bench.broker().await.api_url());
    let batch_count = batches.len();
    let batches = Arc::new(batches);
    let link = bench.options.context_link();
    let result = bench
        .load(
            batch_count,
            &[201, 204],
            Arc::new(move |client, index| {
                let request = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(batches[index].clone());
                with_context_link(request, link)
            }),
        )
        .await;
    if result.failed > 0 || result.succeeded < batch_count {
        return Err(format!(
            "could not load the territory: {}",
            result
                .first_failure
                .unwrap_or_else(|| "time cap reached".into())
        ));
    }
    bench.territory_in_store = wanted;
    Ok(wanted)
}
