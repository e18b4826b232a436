//! WAL checkpoints off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold: the
//! writer copies the whole WAL back and fsyncs twice while every queued write waits
//! (measured: half of single-create throughput). Here a second connection copies the
//! WAL back in the background (PASSIVE: it never blocks the writer), and the writer
//! only finishes the few frames written since, once the WAL has grown past a bound:
//! a checkpoint that ends with every frame copied lets the next write start the WAL
//! over, which keeps it from growing without limit under continuous writes.

use std::cell::Cell;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;

/// WAL frames that wake the background checkpointer. Four times SQLite's default: a
/// page written again and again (the last leaf of every append-only table) is copied
/// into the database once per pass, so fewer passes copy less (creates, updates and
/// batches measured 3-5% faster than at 1,000).
const BACKGROUND_EVERY_FRAMES: u32 = 4000;
/// WAL frames past which the writer itself completes the checkpoint between two
/// groups so the WAL restarts (~64 MB with 4 KB pages).
const WRITER_COMPLETES_AT_FRAMES: u32 = 16000;

thread_local! {
    /// Frames in the WAL after the writer thread's latest commit.
    static WAL_FRAMES: Cell<u32> = const { Cell::new(0) };
}

fn remember_frames(_: &rusqlite::hooks::Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(u32::try_from(frames).unwrap_or(0)));
    Ok(())
}

/// The writer's side: decides after each commit who checkpoints.
pub struct Checkpoints {
    wake: mpsc::SyncSender<()>,
    /// WAL size after the previous commit: a smaller one means the WAL started over.
    last_frames: u32,
    /// WAL size at the last wake-up, so one is sent per `BACKGROUND_EVERY_FRAMES`.
    woken_at: u32,
    /// WAL size at which the writer next tries to complete a checkpoint.
    complete_at: u32,
}

impl Checkpoints {
    /// Replaces automatic checkpoints on `writer` (the hook disables them) and starts
    /// the background thread on its own connection to `path`.
    pub fn start(writer: &Connection, path: &Path) -> std::io::Result<Self> {
        writer.wal_hook(Some(remember_frames));
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || background(&path, woken))?;
        Ok(Self {
            wake,
            last_frames: 0,
            woken_at: 0,
            complete_at: WRITER_COMPLETES_AT_FRAMES,
        })
    }

    /// Called on the writer thread after each commit.
    pub fn after_commit(&mut self, writer: &Connection) {
        let frames = WAL_FRAMES.with(Cell::get);
        if frames < self.last_frames {
            self.started_over();
        }
        self.last_frames = frames;
        if frames >= self.complete_at {
            if checkpoint(writer).is_ok_and(|done| done) {
                self.started_over();
                return;
            }
            // The background pass is running, or readers still use older frames: try
            // again a little later, not after every commit (each try fsyncs).
            self.complete_at = frames + BACKGROUND_EVERY_FRAMES;
        }
        if frames >= self.woken_at + BACKGROUND_EVERY_FRAMES {
            self.woken_at = frames;
            // Full means a wake-up is already pending.
            let _ = self.wake.try_send(());
        }
    }

    fn started_over(&mut self) {
        self.last_frames = 0;
        self.woken_at = 0;
        self.complete_at = WRITER_COMPLETES_AT_FRAMES;
    }
}

/// One PASSIVE checkpoint; true when every frame of the WAL is now in the database.
fn checkpoint(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        let busy: i64 = r.get(0)?;
        let log: i64 = r.get(1)?;
        let done: i64 = r.get(2)?;
        Ok(busy == 0 && log == done)
    })
}

/// Copies the whole WAL back into the database and empties it (the broker is stopping:
/// no write follows, and readers are gone or soon done — the busy timeout waits).
/// Best effort: a WAL left behind is still replayed by the next start.
pub fn fold_back(conn: &Connection) -> rusqlite::Result<()> {
    // A background pass still running makes the checkpoint give up at once: retry a
    // little while.
    for _ in 0..100 {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

fn background(path: &Path, woken: mpsc::Receiver<()>) {
    let conn = match Connection::open(path) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!("no background checkpoints ({e}): the writer will do them");
            return;
        }
    };
    // Its own commits (none) must not checkpoint, and a busy database is retried later.
    if let Err(e) = conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA busy_timeout = 0;") {
        tracing::warn!("background checkpoints disabled: {e}");
        return;
    }
    while woken.recv().is_ok() {
        if let Err(e) = checkpoint(&conn) {
            tracing::debug!("background checkpoint skipped: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rusqlite::Connection;

    use super::{Checkpoints, WAL_FRAMES, WRITER_COMPLETES_AT_FRAMES};

    /// Under writes that never pause, the WAL still starts over and stays bounded.
    #[test]
    fn the_wal_stays_bounded_under_continuous_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.db");
        let conn = Connection::open(&path).expect("database");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE t (b BLOB)",
        )
        .expect("schema");
        let mut checkpoints = Checkpoints::start(&conn, &path).expect("checkpointer");
        let (mut largest, mut restarts, mut previous) = (0, 0, 0);
        let write = format!(
            "BEGIN IMMEDIATE; {} DELETE FROM t WHERE rowid < (SELECT max(rowid) FROM t) - 200; COMMIT;",
            "INSERT INTO t VALUES (randomblob(3000));".repeat(10)
        );
        for _ in 0..4000 {
            conn.execute_batch(&write).expect("a write");
            let frames = WAL_FRAMES.with(Cell::get);
            checkpoints.after_commit(&conn);
            largest = largest.max(frames);
            if frames < previous {
                restarts += 1;
            }
            previous = frames;
        }
        assert!(
            restarts >= 1,
            "the WAL never started over (largest {largest} frames)"
        );
        assert!(
            largest < WRITER_COMPLETES_AT_FRAMES + 4000,
            "the WAL grew to {largest} frames"
        );
    }
}
