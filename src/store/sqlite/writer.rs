//! Group commit: one writer thread owns the write connection; requests that arrive
//! together share one transaction (and one fsync), each inside its own savepoint so a
//! failing one does not undo its neighbours. Nobody is answered before the commit.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;

use super::checkpointer::Checkpoints;
use crate::error::{NgsiError, Result};

/// Runs inside the shared transaction and returns what to do once the commit is known.
pub type Job = Box<dyn FnOnce(&Connection) -> Finisher + Send>;
pub type Finisher = Box<dyn FnOnce(Result<()>) + Send>;

/// Most jobs folded into one transaction: bounds the latency of the first one.
const MAX_GROUP: usize = 512;

/// Starts the writer thread on `conn`, the connection to the database file at `path`.
pub fn spawn(mut conn: Connection, path: &Path) -> std::io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    let mut checkpoints = Checkpoints::start(&conn, path)?;
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut jobs = vec![first];
                while jobs.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                run_group(&mut conn, jobs);
                checkpoints.after_commit(&conn);
            }
            tracing::debug!("sqlite writer stopped");
        })?;
    Ok(tx)
}

fn run_group(conn: &mut Connection, jobs: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = NgsiError::internal(format!("cannot begin a transaction: {e}"));
        for job in jobs {
            // The job never ran; tell its caller through a finisher made on a dummy run.
            let finish = job_failed(job, conn);
            finish(Err(err.clone()));
        }
        return;
    }
    let finishers: Vec<Finisher> = jobs.into_iter().map(|job| job(conn)).collect();
    let committed = conn
        .execute_batch("COMMIT")
        .map_err(|e| NgsiError::internal(format!("commit failed: {e}")));
    if committed.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
        super::writer_cache::clear();
    }
    for finish in finishers {
        finish(committed.clone());
    }
}

/// Runs a job whose transaction could not start, inside a savepoint that is rolled back,
/// only to obtain its finisher.
fn job_failed(job: Job, conn: &Connection) -> Finisher {
    let _ = conn.execute_batch("SAVEPOINT failed");
    let finish = job(conn);
    let _ = conn.execute_batch("ROLLBACK TO failed; RELEASE failed");
    super::writer_cache::clear();
    finish
}

/// Runs one of the few fixed statements of savepoint handling, prepared once per
/// connection: `execute_batch` would parse it again on every write.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
}

/// Runs `f` inside a savepoint: its changes stay if it succeeds, vanish if it fails.
pub fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    run_cached(conn, "SAVEPOINT op").map_err(NgsiError::internal)?;
    match f(conn) {
        Ok(v) => {
            run_cached(conn, "RELEASE op").map_err(NgsiError::internal)?;
            Ok(v)
        }
        Err(e) => {
            let _ = run_cached(conn, "ROLLBACK TO op").and_then(|_| run_cached(conn, "RELEASE op"));
            super::writer_cache::clear();
            Err(e)
        }
    }
}
