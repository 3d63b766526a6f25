//! Cancelling a sweep. The first transaction marks it cancelled, so none of its trials is leased
//! from then on, and cancels the first batch of its unfinished trials; the rest go a batch per
//! transaction, so agents' calls are served in between even for a million-trial sweep. A cancel
//! that a stop cut short is finished by the next start.

use super::sweep_policy;
use crate::error::{Error, Result};
use crate::lifecycle::{self, Counters, Event, TrialState};
use crate::ownership::Caller;
use crate::store::Store;
use rusqlite::{params, OptionalExtension, Transaction};

impl Store {
    /// Cancels the sweep: no trial of it is leased from now on, and up to `batch` of its unfinished
    /// trials are cancelled in this transaction; [`Store::cancel_more`] cancels the rest a batch at
    /// a time, so a million-trial sweep does not hold the store for seconds. Running ones are told
    /// to stop at their next heartbeat. Only the sweep's owner or an admin may (see
    /// [`Caller::may_manage`]).
    pub fn cancel(&mut self, sweep: &str, caller: &Caller, now_ms: i64, batch: usize) -> Result<Cancelling> {
        let tx = self.conn.transaction()?;
        caller.check_may("cancel", sweep, crate::store::owners::owner(&tx, sweep)?.as_deref())?;
        tx.execute("UPDATE sweeps SET state = 'cancelled' WHERE name = ?1", [sweep])?;
        let step = cancel_batch(&tx, sweep, now_ms, batch)?;
        tx.commit()?;
        Ok(step)
    }

    /// Cancels up to `batch` more unfinished trials of a cancelled sweep; nothing once it is
    /// active again (`sweep retry` re-opened it).
    pub fn cancel_more(&mut self, sweep: &str, now_ms: i64, batch: usize) -> Result<Cancelling> {
        let tx = self.conn.transaction()?;
        let state: Option<String> =
            tx.query_row("SELECT state FROM sweeps WHERE name = ?1", [sweep], |r| r.get(0)).optional()?;
        if state.as_deref() != Some("cancelled") {
            return Ok(Cancelling { cancelled: 0, more: false });
        }
        let step = cancel_batch(&tx, sweep, now_ms, batch)?;
        tx.commit()?;
        Ok(step)
    }

    /// At start: finishes the cancels a stop cut short, `batch` trials per transaction; returns the
    /// trials it cancelled.
    pub fn finish_cancels(&mut self, now_ms: i64, batch: usize) -> Result<u32> {
        let sweeps: Vec<String> = {
            let mut q = self.conn.prepare(
                "SELECT name FROM sweeps s WHERE state = 'cancelled' AND EXISTS
                 (SELECT 1 FROM trials t WHERE t.sweep = s.name AND t.state IN ('pending', 'leased', 'running', 'paused'))",
            )?;
            let names = q.query_map([], |r| r.get(0))?;
            names.collect::<rusqlite::Result<_>>()?
        };
        let mut cancelled = 0;
        for sweep in sweeps {
            loop {
                let step = self.cancel_more(&sweep, now_ms, batch)?;
                cancelled += step.cancelled;
                if !step.more {
                    break;
                }
            }
        }
        Ok(cancelled)
    }
}

/// One transaction's share of a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelling {
    pub cancelled: u32,
    /// Whether unfinished trials may be left for the next batch.
    pub more: bool,
}

/// Cancels up to `batch` of the sweep's unfinished trials.
fn cancel_batch(tx: &Transaction, sweep: &str, now_ms: i64, batch: usize) -> Result<Cancelling> {
    let policy = sweep_policy(tx, sweep)?;
    let open: Vec<(String, String, Counters)> = {
        let mut q = tx.prepare_cached(
            "SELECT trial_id, state, attempt, user_failures, lost FROM trials
             WHERE sweep = ?1 AND state IN ('pending', 'leased', 'running', 'paused') LIMIT ?2",
        )?;
        let rows = q.query_map(params![sweep, batch as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, crate::store::counters_at(r, 2)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut update =
        tx.prepare_cached("UPDATE trials SET state = ?3, finished_at_ms = ?4 WHERE sweep = ?1 AND trial_id = ?2")?;
    for (trial_id, state, counters) in &open {
        let state: TrialState = state.parse().map_err(Error::Corrupt)?;
        let (next, _) = lifecycle::transition(state, *counters, Event::Cancel, policy)
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        // The lease id stays, so the agent holding it hears `stop` rather than `abandon`.
        update.execute(params![sweep, trial_id, next.as_str(), now_ms])?;
    }
    Ok(Cancelling { cancelled: open.len() as u32, more: open.len() == batch })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewSweep;
    use std::path::Path;

    fn sweep(n: u32) -> NewSweep {
        let grid: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let text =
            format!("name = \"s\"\nworkload = \"command\"\ncommand = [\"train\"]\n[grid]\ni = [{}]\n", grid.join(", "));
        let file = sweep_spec::SweepFile::parse(&text, Path::new("s.toml"), Path::new(".")).unwrap();
        NewSweep {
            name: "s".into(),
            source: text,
            source_path: "s.toml".into(),
            policy: lifecycle::Policy { max_attempts: 1, max_lost: 1, retry_backoff_ms: 0 },
            schedule: None,
            search: None,
            trials: sweep_spec::expand(&file).unwrap(),
        }
    }

    fn states(store: &Store) -> Vec<(String, i64)> {
        let mut q = store.conn.prepare("SELECT state, COUNT(*) FROM trials GROUP BY state ORDER BY state").unwrap();
        let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    /// A cancel goes a batch per transaction; from the first batch on no trial of the sweep is
    /// leased, and a start finishes a cancel that a stop cut short.
    #[test]
    fn a_cancel_goes_by_batches_and_a_restart_finishes_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 30_000).unwrap();
        store.submit(&sweep(5), &Caller::open(), false, 0).unwrap();
        let (_, session) = crate::session::new_secret().unwrap();
        let agent = store.register_agent("a", "host", 8, &[], &session, 0).unwrap();
        let first = store.cancel("s", &Caller::open(), 1, 2).unwrap();
        assert_eq!(first, Cancelling { cancelled: 2, more: true });
        assert_eq!(states(&store), [("cancelled".into(), 2), ("pending".into(), 3)]);
        let leased = store.lease(&agent, &session, 8, Vec::new(), None, 2).unwrap();
        assert!(leased.grants.is_empty(), "a cancelled sweep's trials are not leased");

        // The coordinator stops here; the next start cancels the rest.
        drop(store);
        let mut store = Store::open(dir.path(), 30_000).unwrap();
        assert_eq!(store.finish_cancels(3, 2).unwrap(), 3);
        assert_eq!(states(&store), [("cancelled".into(), 5)]);
        assert_eq!(store.finish_cancels(4, 2).unwrap(), 0);
        assert_eq!(store.cancel_more("s", 5, 2).unwrap(), Cancelling { cancelled: 0, more: false });
    }
}
