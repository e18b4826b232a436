//! Limit: bare SQLite inserts (WAL, synchronous=NORMAL, transactions of 1000
//! rows) of the very documents the batch upsert scenario sends, in a
//! temporary file. No parsing, no JSON-LD, no index but the primary key:
//! the most any SQLite-backed broker could store per second here.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use rusqlite::{params, Connection};

use crate::bench_context::BenchContext;
use crate::figures::Figure;
use crate::latency::LatencySummary;
use crate::scenarios::batch_upsert::{upsert_batch, upsert_workload};
use crate::scenarios::Scenario;

pub struct BareSqlite;

const KEY: &str = "limit.sqlite_insert";
const LABEL: &str = "Limit: bare SQLite insert, 1000 rows per transaction";

impl Scenario for BareSqlite {
    fn key(&self) -> &'static str {
        "limit_sqlite"
    }

    fn summary(&self) -> &'static str {
        "limit: rusqlite inserts of the batch upsert's documents, WAL, 1000 rows per transaction"
    }

    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>> {
        Box::pin(run(bench))
    }
}

/// One row: id, type and the entity's JSON text.
type Row = (String, String, String);

async fn run(bench: &mut BenchContext) -> Vec<Figure> {
    let workload = upsert_workload(bench);
    let transactions: Vec<Vec<Row>> = (0..bench.options.batches as u64)
        .map(|batch| {
            let serde_json::Value::Array(entities) = upsert_batch(&workload, batch) else {
                unreachable!("a batch is a JSON array");
            };
            entities
                .into_iter()
                .map(|entity| {
                    let id = entity["id"].as_str().unwrap_or_default().to_owned();
                    let entity_type = entity["type"].as_str().unwrap_or_default().to_owned();
                    (id, entity_type, entity.to_string())
                })
                .collect()
        })
        .collect();
    let path = bench.work_dir().join("bare-sqlite.db");
    let time_cap = bench.options.time_cap();
    let outcome = tokio::task::spawn_blocking(move || insert_all(&path, &transactions, time_cap))
        .await
        .expect("the SQLite insert loop panicked");
    match outcome {
        Ok((rows, elapsed, latencies)) => {
            let mut figure =
                Figure::measured(KEY, LABEL, rows as f64 / elapsed.as_secs_f64(), "rows/s");
            figure.latency = LatencySummary::from_samples(latencies);
            vec![figure]
        }
        Err(err) => vec![Figure::not_available(
            KEY,
            LABEL,
            "rows/s",
            format!("SQLite error: {err}"),
        )],
    }
}

/// Inserts every transaction in turn until done or past the time cap;
/// returns rows inserted, time taken and each transaction's latency.
fn insert_all(
    path: &Path,
    transactions: &[Vec<Row>],
    time_cap: Duration,
) -> rusqlite::Result<(usize, Duration, Vec<Duration>)> {
    let mut connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode survives a killed process (the broker's promise);
    // FULL would add an fsync per commit that only power loss needs.
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS entities (
             id TEXT PRIMARY KEY,
             type TEXT NOT NULL,
             body TEXT NOT NULL
         )",
    )?;
    let started = Instant::now();
    let mut rows = 0;
    let mut latencies = Vec::with_capacity(transactions.len());
    for transaction_rows in transactions {
        if started.elapsed() >= time_cap {
            break;
        }
        let transaction_started = Instant::now();
        let transaction = connection.transaction()?;
        {
            let mut insert = transaction
                .prepare_cached("INSERT INTO entities (id, type, body) VALUES (?1, ?2, ?3)")?;
            for (id, entity_type, body) in transaction_rows {
                insert.execute(params![id, entity_type, body])?;
            }
        }
        transaction.commit()?;
        latencies.push(transaction_started.elapsed());
        rows += transaction_rows.len();
    }
    Ok((rows, started.elapsed(), latencies))
}
