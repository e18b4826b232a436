//! WAL checkpoints on a thread of their own, so the writer thread never stops to copy
//! pages back into the database file (with SQLite's automatic checkpoints, the commit
//! that crosses the threshold pays for the whole copy: a stall of tens of milliseconds
//! for every write queued behind it).

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is copied back. At a few thousand writes a second the WAL grows by
/// a few tens of MB between two checkpoints.
const INTERVAL: Duration = Duration::from_millis(500);
/// A WAL that passive checkpoints could not bring back (readers kept using old frames)
/// is forced back once it holds this many frames (~256 MiB), at the price of a short
/// wait of the writer.
const FORCE_AT_FRAMES: i64 = 65_536;

/// Keeps the checkpointer running: it stops once this handle is dropped.
pub struct Checkpointer {
    _alive: Arc<()>,
}

/// Starts the thread; `None` if it could not open its connection (the caller then keeps
/// SQLite's automatic checkpoints).
pub fn spawn(path: &Path) -> Option<Checkpointer> {
    let conn = match Connection::open(path)
        .and_then(|c| c.execute_batch("PRAGMA busy_timeout = 5000;").map(|_| c))
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no checkpoint thread; the writer checkpoints itself");
            return None;
        }
    };
    let alive = Arc::new(());
    let watch = Arc::downgrade(&alive);
    let started = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || run(conn, watch));
    match started {
        Ok(_) => Some(Checkpointer { _alive: alive }),
        Err(e) => {
            tracing::warn!(error = %e, "no checkpoint thread; the writer checkpoints itself");
            None
        }
    }
}

fn run(conn: Connection, alive: Weak<()>) {
    while alive.strong_count() > 0 {
        std::thread::sleep(INTERVAL);
        // (busy, frames in the WAL, frames copied back)
        let passive = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        match passive {
            Ok((_, frames, _)) if frames >= FORCE_AT_FRAMES => {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint (restart) failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
    tracing::debug!("sqlite checkpointer stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_pages_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.db");
        let writer = Connection::open(&path).expect("open");
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (x TEXT);",
            )
            .expect("schema");
        let file_size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let before = file_size();
        let checkpointer = spawn(&path).expect("checkpointer");
        for i in 0..200 {
            writer
                .execute("INSERT INTO t (x) VALUES (?1)", [format!("{i:0>1000}")])
                .expect("insert");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while file_size() <= before && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            file_size() > before + 100_000,
            "the database file did not grow: {} then {}",
            before,
            file_size()
        );
        drop(checkpointer);
    }
}
