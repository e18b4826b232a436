//! Group commit: one writer thread owns the write connection; requests that arrive
//! together share one transaction (and one fsync). A write that is refused changes
//! nothing, so it does not undo its neighbours. Nobody is answered before the commit.

use std::cell::Cell;
use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;

use super::checkpointer::Checkpoints;
use crate::error::{NgsiError, Result};

/// Runs inside the shared transaction and returns what to do once the commit is known.
pub type Job = Box<dyn FnOnce(&Connection) -> Finisher + Send>;
pub type Finisher = Box<dyn FnOnce(Result<()>) + Send>;

/// What the writer thread is asked to do.
pub enum Message {
    /// A write, grouped with those queued beside it into one transaction.
    Write(Job),
    /// Work that must run outside any transaction (a checkpoint), after the writes
    /// queued before it.
    Alone(Box<dyn FnOnce(&Connection) + Send>),
}

/// Most jobs folded into one transaction: bounds the latency of the first one.
const MAX_GROUP: usize = 512;

/// Starts the writer thread on `conn`, the connection to the database file at `path`.
pub fn spawn(mut conn: Connection, path: &Path) -> std::io::Result<mpsc::Sender<Message>> {
    let (tx, rx) = mpsc::channel::<Message>();
    let mut checkpoints = Checkpoints::start(&conn, path)?;
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || {
            // A message that ended the previous group, handled before waiting again.
            let mut held = None;
            while let Some(message) = held.take().or_else(|| rx.recv().ok()) {
                let first = match message {
                    Message::Write(job) => job,
                    Message::Alone(work) => {
                        work(&conn);
                        continue;
                    }
                };
                let mut jobs = vec![first];
                while jobs.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(Message::Write(job)) => jobs.push(job),
                        Ok(alone) => {
                            held = Some(alone);
                            break;
                        }
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
    let committed = if HALF_DONE.take() {
        Err(NgsiError::internal(
            "a write failed half-way; its group of writes was rolled back",
        ))
    } else {
        conn.execute_batch("COMMIT")
            .map_err(|e| NgsiError::internal(format!("commit failed: {e}")))
    };
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
    HALF_DONE.set(false);
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

thread_local! {
    /// Set when a write failed after changing rows, outside any savepoint.
    static HALF_DONE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` without a savepoint, for writes that check everything before their first
/// change: a failure then leaves nothing to undo. Should one fail after changing rows
/// anyway (an I/O error, a full disk), the whole group is rolled back and every write
/// in it answered with the error, so nothing half-written is ever committed.
///
/// Savepoints cost SQLite a copy of every page a write touches (~8% of a batch).
pub fn checked_first<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let changes = conn.total_changes();
    let out = f(conn);
    if out.is_err() && conn.total_changes() != changes {
        HALF_DONE.set(true);
    }
    out
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use rusqlite::Connection;

    use super::{checked_first, run_group, Job};
    use crate::error::NgsiError;

    /// A job that inserts `value` then fails if asked to, reporting whether its group
    /// committed.
    fn job(
        value: i64,
        fail_after_insert: bool,
        fail_before: bool,
        done: mpsc::Sender<(i64, bool)>,
    ) -> Job {
        Box::new(move |conn: &Connection| {
            let ran = checked_first(conn, |conn| {
                if fail_before {
                    return Err(NgsiError::internal("refused before any change"));
                }
                conn.execute("INSERT INTO t (v) VALUES (?1)", [value])
                    .map_err(NgsiError::internal)?;
                if fail_after_insert {
                    return Err(NgsiError::internal("failed after a change"));
                }
                Ok(())
            });
            Box::new(move |committed| {
                let _ = done.send((value, ran.is_ok() && committed.is_ok()));
            })
        })
    }

    /// Runs `jobs` as one group on `conn` (a table `t` is made the first time) and
    /// returns each job's (value, committed), in job order.
    fn group(conn: &mut Connection, jobs: Vec<(i64, bool, bool)>) -> Vec<(i64, bool)> {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
            .expect("table");
        let (tx, rx) = mpsc::channel();
        let jobs = jobs
            .into_iter()
            .map(|(value, fail_after_insert, fail_before)| {
                job(value, fail_after_insert, fail_before, tx.clone())
            })
            .collect();
        drop(tx);
        run_group(conn, jobs);
        rx.iter().collect()
    }

    fn stored(conn: &Connection) -> Vec<i64> {
        conn.prepare("SELECT v FROM t ORDER BY v")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("rows")
    }

    #[test]
    fn a_refusal_before_any_change_leaves_its_neighbours_committed() {
        let mut conn = Connection::open_in_memory().expect("database");
        let mut outcomes = group(
            &mut conn,
            vec![(1, false, false), (2, false, true), (3, false, false)],
        );
        outcomes.sort();
        assert_eq!(outcomes, vec![(1, true), (2, false), (3, true)]);
        assert_eq!(stored(&conn), vec![1, 3]);
    }

    #[test]
    fn a_failure_after_a_change_rolls_the_whole_group_back() {
        let mut conn = Connection::open_in_memory().expect("database");
        let outcomes = group(
            &mut conn,
            vec![(1, false, false), (2, true, false), (3, false, false)],
        );
        assert!(outcomes.iter().all(|(_, ok)| !ok), "{outcomes:?}");
        assert!(
            stored(&conn).is_empty(),
            "nothing half-written is committed"
        );
        // The next group starts clean.
        assert_eq!(group(&mut conn, vec![(4, false, false)]), vec![(4, true)]);
        assert_eq!(stored(&conn), vec![4]);
    }
}
