//! WAL checkpoints off the writer. SQLite's default copies the write-ahead log into the database
//! file from inside the commit that crosses 1,000 pages, so every so often one write (a heartbeat,
//! say) holds the store's lock for the copy and its fsync. Instead the writer never checkpoints, and
//! a thread with its own connection does, every [`EVERY`]. In WAL mode a checkpoint runs beside
//! readers and the writer: it only copies pages that every reader has moved past, and the log is
//! reused from its start once everything in it is in the database file.

use super::Store;
use crate::error::Result;
use rusqlite::Connection;
use std::sync::Weak;
use std::time::Duration;

/// How often the log is copied into the database file. Between checkpoints the log grows by what
/// was committed meanwhile: a few MB under the heaviest submission.
const EVERY: Duration = Duration::from_millis(250);

impl Store {
    /// Stops this connection from checkpointing and starts a thread that does it instead, for as
    /// long as `alive` can be upgraded (the owner of the store holds it).
    pub fn checkpoint_apart<T: Send + Sync + 'static>(&self, alive: Weak<T>) -> Result<()> {
        let path = self.file()?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        std::thread::Builder::new().name("wal-checkpoint".into()).spawn(move || {
            while alive.strong_count() > 0 {
                std::thread::sleep(EVERY);
                // PASSIVE: copies what no reader still needs and never waits for a lock, so the
                // writer is not held up; what it could not copy goes with the next one.
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "checkpointing the state store's log failed; trying again");
                }
            }
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    /// Rows in the database file itself, leaving out the log (`immutable`: read as is).
    fn rows_in_database_file(dir: &std::path::Path) -> i64 {
        let uri = format!("file:{}?immutable=1", dir.join("state.db").display());
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(uri, flags).unwrap();
        conn.query_row("SELECT count(*) FROM copied", [], |r| r.get(0)).unwrap_or(0)
    }

    /// The writer leaves checkpoints to the thread, which copies every commit into the database
    /// file soon after, and stops when the store's owner is gone.
    #[test]
    fn the_log_is_copied_into_the_database_apart_from_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 30_000).unwrap();
        let alive = Arc::new(());
        store.checkpoint_apart(Arc::downgrade(&alive)).unwrap();
        let auto: i64 = store.conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
        assert_eq!(auto, 0, "the writer does not checkpoint");
        store.conn.execute_batch("CREATE TABLE copied(v TEXT)").unwrap();
        let tx = store.conn.unchecked_transaction().unwrap();
        for i in 0..3_000 {
            tx.execute("INSERT INTO copied(v) VALUES (?1)", [format!("{i:01000}")]).unwrap();
        }
        tx.commit().unwrap();
        let start = Instant::now();
        while rows_in_database_file(dir.path()) != 3_000 {
            assert!(start.elapsed() < Duration::from_secs(20), "the thread never checkpointed the log");
            std::thread::sleep(EVERY);
        }
        drop(alive);
    }
}
