//! Sweeps received in parts (`SubmitSweepStream`). Each part's trials wait in `upload_trials`,
//! where no lease, listing or Parquet file sees them, each part in its own short transaction.
//! Once the last part arrived, one transaction stores the sweep's terms, fixes where the trials
//! queue and moves the first batch into `trials`; the rest move a batch per transaction, so agents'
//! calls are served in between. An upload broken off before its end is dropped; one that reached
//! its end is finished, also by a restarted coordinator.

use super::{insert_trials, store_sweep, trial_count, NewSweep, NewTrial};
use crate::error::{Error, Result};
use crate::ownership::{self, Caller, Terms};
use crate::store::Store;
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::Value;
use sweep_spec::TrialSpec;

/// One trial of an upload, with its spec already as stored (made before the store's lock is taken).
pub type StagedTrial = (TrialSpec, String);

/// What one step of moving an upload's trials into its sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Trials the sweep did not have.
    pub added: u32,
    /// Staged trials are left for further steps.
    pub more: bool,
}

impl Store {
    /// Refuses at the first part what the last would refuse for the sweep's head alone: another
    /// user's sweep, or a changed retry policy without `force`. The trials' definitions are judged
    /// once all have arrived ([`Store::finish_upload`]).
    pub fn check_submission(&self, sweep: &NewSweep, caller: &Caller, force: bool) -> Result<()> {
        if let Some(stored) = crate::store::owners::stored(&self.conn, &sweep.name)? {
            let submitted = Terms { policy: sweep.policy, definitions: Vec::new(), schedule: sweep.schedule.clone() };
            ownership::check_resubmission(
                &sweep.name,
                stored.owner.as_deref(),
                &stored.terms,
                &submitted,
                caller,
                force,
            )?;
        }
        Ok(())
    }

    /// Opens an upload of sweep `sweep`; its id names it in the calls that follow.
    pub fn begin_upload(&mut self, sweep: &str, now_ms: i64) -> Result<i64> {
        self.conn.execute("INSERT INTO uploads (sweep, started_at_ms) VALUES (?1, ?2)", params![sweep, now_ms])?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Keeps trials of an open upload until it ends.
    pub fn stage(&mut self, upload: i64, trials: &[StagedTrial]) -> Result<()> {
        let tx = self.conn.transaction()?;
        open_upload(&tx, upload)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO upload_trials (upload, trial_id, idx, workload, spec, gpus)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (t, spec) in trials {
                insert.execute(params![upload, t.id.0, t.index, t.workload, spec, t.resources.gpus])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Ends an upload whose every part arrived: stores the sweep (as [`Store::submit`] would, with
    /// `definitions` of all its trials and `max_index` the highest index among them), and moves
    /// the first `batch` trials into it. [`Store::publish`] moves the rest.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_upload(
        &mut self,
        upload: i64,
        sweep: &NewSweep,
        definitions: Vec<Value>,
        max_index: Option<u32>,
        caller: &Caller,
        force: bool,
        now_ms: i64,
        batch: usize,
    ) -> Result<Published> {
        let tx = self.conn.transaction()?;
        open_upload(&tx, upload)?;
        store_sweep(&tx, &sweep.head(), definitions, caller, force, now_ms)?;
        // After the sweep's trials and after every other upload of it still being moved in.
        let base: i64 = tx.query_row(
            "SELECT MAX((SELECT COALESCE(MAX(idx) + 1, 0) FROM trials WHERE sweep = ?1),
                        (SELECT COALESCE(MAX(end_idx), 0) FROM uploads WHERE sweep = ?1 AND base_idx IS NOT NULL))",
            [&sweep.name],
            |r| r.get(0),
        )?;
        let end = base + max_index.map_or(0, |i| i as i64 + 1);
        tx.execute("UPDATE uploads SET base_idx = ?2, end_idx = ?3 WHERE id = ?1", params![upload, base, end])?;
        let step = publish_in(&tx, upload, batch)?;
        tx.commit()?;
        Ok(step)
    }

    /// Moves up to `batch` more trials of an ended upload into its sweep.
    pub fn publish(&mut self, upload: i64, batch: usize) -> Result<Published> {
        let tx = self.conn.transaction()?;
        let step = publish_in(&tx, upload, batch)?;
        tx.commit()?;
        Ok(step)
    }

    /// How many trials the sweep has.
    pub fn trials_total(&self, sweep: &str) -> Result<u32> {
        trial_count(&self.conn, sweep)
    }

    /// Drops an upload broken off before its end: it is forgotten at once, its staged trials up to
    /// `batch` per call; true while some are left.
    pub fn drop_upload(&mut self, upload: i64, batch: usize) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let ended: Option<bool> = tx
            .query_row("SELECT base_idx IS NOT NULL FROM uploads WHERE id = ?1", [upload], |r| r.get(0))
            .optional()?;
        if ended == Some(true) {
            // Every part arrived: it is finished, not dropped, whatever became of its caller.
            return Ok(false);
        }
        tx.execute("DELETE FROM uploads WHERE id = ?1", [upload])?;
        // The batch ends at its last key, so the delete walks one range of the primary key.
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT idx, trial_id FROM upload_trials WHERE upload = ?1 ORDER BY idx, trial_id LIMIT 1 OFFSET ?2",
                params![upload, batch.max(1) as i64 - 1],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match &last {
            Some((idx, trial_id)) => tx.execute(DELETE_THROUGH, params![upload, idx, trial_id])?,
            None => tx.execute("DELETE FROM upload_trials WHERE upload = ?1", [upload])?,
        };
        tx.commit()?;
        Ok(last.is_some())
    }

    /// At start-up, before any call is served: drops the uploads that were broken off (by the
    /// client or a stop of the coordinator) and finishes those whose every part had arrived.
    /// Returns how many of each.
    pub fn recover_uploads(&mut self, batch: usize) -> Result<(u32, u32)> {
        let tx = self.conn.transaction()?;
        let dropped = tx.execute("DELETE FROM uploads WHERE base_idx IS NULL", [])? as u32;
        tx.execute("DELETE FROM upload_trials WHERE upload NOT IN (SELECT id FROM uploads)", [])?;
        tx.commit()?;
        let ended: Vec<i64> = {
            let mut q = self.conn.prepare("SELECT id FROM uploads ORDER BY id")?;
            let rows = q.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for &upload in &ended {
            while self.publish(upload, batch)?.more {}
        }
        Ok((dropped, ended.len() as u32))
    }
}

/// Refuses a write to an upload that is not open: dropped, or already ended.
fn open_upload(tx: &Transaction, upload: i64) -> Result<()> {
    let open: Option<bool> =
        tx.query_row("SELECT base_idx IS NULL FROM uploads WHERE id = ?1", [upload], |r| r.get(0)).optional()?;
    match open {
        Some(true) => Ok(()),
        _ => Err(Error::NotFound(format!("open upload {upload}"))),
    }
}

/// The first staged trials of an upload, in queue order, up to and with the one given: a range of
/// the primary key `(upload, idx, trial_id)`, so each batch costs the same however many are staged.
const DELETE_THROUGH: &str = "DELETE FROM upload_trials WHERE upload = ?1 AND (idx, trial_id) <= (?2, ?3)";

/// The first `batch` staged trials of an upload in queue order: a walk of the primary key.
const FIRST_STAGED: &str =
    "SELECT trial_id, idx, workload, spec, gpus FROM upload_trials WHERE upload = ?1 ORDER BY idx, trial_id LIMIT ?2";

/// Moves the first `batch` staged trials of an ended upload, in queue order, into its sweep, and
/// forgets the upload with its last.
fn publish_in(tx: &Transaction, upload: i64, batch: usize) -> Result<Published> {
    let (sweep, base): (String, Option<i64>) = tx
        .query_row("SELECT sweep, base_idx FROM uploads WHERE id = ?1", [upload], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("upload {upload}")))?;
    let base = base.ok_or_else(|| Error::Corrupt(format!("upload {upload} is moved in before its end")))?;
    let rows: Vec<NewTrial> = {
        let mut q = tx.prepare_cached(FIRST_STAGED)?;
        let rows = q.query_map(params![upload, batch as i64], |r| {
            Ok(NewTrial {
                trial_id: r.get(0)?,
                index: r.get(1)?,
                workload: r.get(2)?,
                spec: r.get(3)?,
                gpus: r.get(4)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let more = rows.len() == batch;
    let last = rows.last().map(|t| (t.index, t.trial_id.clone()));
    let added = insert_trials(tx, &sweep, base, rows.into_iter())?;
    if let Some((idx, trial_id)) = last {
        tx.execute(DELETE_THROUGH, params![upload, idx, trial_id])?;
    }
    if !more {
        tx.execute("DELETE FROM uploads WHERE id = ?1", [upload])?;
    }
    Ok(Published { added, more })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Policy;
    use std::path::Path;

    fn trials(n: u32) -> (NewSweep, Vec<StagedTrial>) {
        let grid: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let text =
            format!("name = \"s\"\nworkload = \"command\"\ncommand = [\"train\"]\n[grid]\ni = [{}]\n", grid.join(", "));
        let file = sweep_spec::SweepFile::parse(&text, Path::new("s.toml"), Path::new(".")).unwrap();
        let specs = sweep_spec::expand(&file).unwrap();
        let head = NewSweep {
            name: "s".into(),
            source: text,
            source_path: "s.toml".into(),
            policy: Policy { max_attempts: 1, max_lost: 1, retry_backoff_ms: 0 },
            schedule: None,
            search: None,
            trials: Vec::new(),
        };
        let staged = specs.into_iter().map(|t| (t.clone(), serde_json::to_string(&t).unwrap())).collect();
        (head, staged)
    }

    fn staged_rows(store: &Store) -> i64 {
        store.conn.query_row("SELECT COUNT(*) FROM upload_trials", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn moving_and_dropping_a_batch_walks_the_primary_key_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1000).unwrap();
        let plan = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> String {
            let mut q = store.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = q.query_map(args, |r| r.get::<_, String>(3)).unwrap();
            rows.collect::<rusqlite::Result<Vec<_>>>().unwrap().join("; ")
        };
        let read = plan(FIRST_STAGED, &[&1, &2]);
        assert!(read.contains("USING PRIMARY KEY (upload=?)") && !read.contains("TEMP B-TREE"), "{read}");
        let delete = plan(DELETE_THROUGH, &[&1, &2, &"x"]);
        assert!(delete.contains("USING PRIMARY KEY (upload=? AND (idx,trial_id)<"), "{delete}");
    }

    #[test]
    fn a_restart_drops_uploads_broken_off_and_finishes_whole_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (head, staged) = trials(5);
        let mut store = Store::open(dir.path(), 1000).unwrap();
        let broken = store.begin_upload("s", 0).unwrap();
        store.stage(broken, &staged[..3]).unwrap();
        drop(store);

        let mut store = Store::open(dir.path(), 1000).unwrap();
        assert_eq!(store.recover_uploads(2).unwrap(), (1, 0), "the broken-off upload is dropped");
        assert_eq!(staged_rows(&store), 0);
        assert!(store.summary("s").is_err(), "nothing of it became a sweep");

        let whole = store.begin_upload("s", 0).unwrap();
        store.stage(whole, &staged).unwrap();
        let definitions = ownership::definitions(&staged.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>());
        let step = store.finish_upload(whole, &head, definitions, Some(4), &Caller::open(), false, 0, 2).unwrap();
        assert_eq!(step, Published { added: 2, more: true });
        assert!(store.stage(whole, &staged).is_err(), "an ended upload takes no more trials");
        assert!(!store.drop_upload(whole, 2).unwrap(), "nor is it dropped");
        drop(store);

        let mut store = Store::open(dir.path(), 1000).unwrap();
        assert_eq!(store.recover_uploads(2).unwrap(), (0, 1), "the whole upload is finished");
        assert_eq!(store.trials_total("s").unwrap(), 5);
        assert_eq!(staged_rows(&store), 0);
        let queued: Vec<i64> = {
            let mut q = store.conn.prepare("SELECT idx FROM trials WHERE sweep = 's' ORDER BY idx").unwrap();
            q.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
        };
        assert_eq!(queued, vec![0, 1, 2, 3, 4]);
    }
}
