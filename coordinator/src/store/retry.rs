//! `sweep retry`: finished trials queued again with a fresh attempt budget. What they did before
//! stays: their rows in `attempts`, their metric rows and finals, their last error.

use super::sweeps::sweep_policy;
use super::{counters_at, Store};
use crate::error::{Error, Result};
use crate::lifecycle::{self, Counters, Event, TrialState};
use crate::ownership::Caller;
use rusqlite::params;

/// Which finished trials a retry queues again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryWhich {
    pub failed: bool,
    pub cancelled: bool,
}

impl RetryWhich {
    fn states(self) -> Vec<TrialState> {
        let mut states = Vec::new();
        if self.failed {
            states.push(TrialState::Failed);
        }
        if self.cancelled {
            states.push(TrialState::Cancelled);
        }
        states
    }
}

impl Store {
    /// Queues the sweep's trials in the chosen finished states again: pending, with no failures or
    /// lost leases counted and no backoff, their attempt number kept so the next lease is a new
    /// attempt. A cancelled sweep with trials queued becomes active again. Only its owner or an admin may (see
    /// [`Caller::check_may`]). Returns how many trials were queued.
    pub fn retry(&mut self, sweep: &str, which: RetryWhich, caller: &Caller, now_ms: i64) -> Result<u32> {
        self.retry_where(sweep, which, None, caller, now_ms)
    }

    /// Queues one failed or cancelled trial again, as [`Store::retry`] does its sweep's. NotFound
    /// when the sweep has no such trial; InvalidArgument when it is not failed or cancelled.
    pub fn retry_trial(&mut self, sweep: &str, trial_id: &str, caller: &Caller, now_ms: i64) -> Result<u32> {
        let trial = self.trial(sweep, trial_id)?;
        if !matches!(trial.state, TrialState::Failed | TrialState::Cancelled) {
            return Err(Error::InvalidArgument(format!(
                "trial {trial_id} of sweep `{sweep}` is {}: only failed or cancelled trials are retried",
                trial.state.as_str()
            )));
        }
        let which = RetryWhich { failed: true, cancelled: true };
        self.retry_where(sweep, which, Some(trial_id), caller, now_ms)
    }

    fn retry_where(
        &mut self,
        sweep: &str,
        which: RetryWhich,
        only: Option<&str>,
        caller: &Caller,
        now_ms: i64,
    ) -> Result<u32> {
        let states = which.states();
        if states.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "retry of sweep `{sweep}`: choose failed or cancelled trials (or both)"
            )));
        }
        let tx = self.conn.transaction()?;
        caller.check_may("retry", sweep, super::owners::owner(&tx, sweep)?.as_deref())?;
        let policy = sweep_policy(&tx, sweep)?;
        let chosen: Vec<(String, String, Counters, Option<i64>)> = {
            let mut q = tx.prepare(
                "SELECT trial_id, state, attempt, user_failures, lost, lease_id FROM trials
                 WHERE sweep = ?1 AND state IN (?2, ?3) AND (?4 IS NULL OR trial_id = ?4) ORDER BY idx",
            )?;
            let (a, b) = (states[0].as_str(), states.last().expect("one state at least").as_str());
            let rows =
                q.query_map(params![sweep, a, b, only], |r| Ok((r.get(0)?, r.get(1)?, counters_at(r, 2)?, r.get(5)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (trial_id, state, counters, lease_id) in &chosen {
            let state: TrialState = state.parse().map_err(Error::Corrupt)?;
            let (next, counters) = lifecycle::transition(state, *counters, Event::Retry, policy)
                .map_err(|e| Error::Corrupt(e.to_string()))?;
            // A trial cancelled while running may still hold its lease: that attempt ends here, for
            // the record, and the agent that ran it hears `abandon` at its next heartbeat.
            if let Some(lease_id) = lease_id {
                tx.execute(
                    "UPDATE attempts SET finished_at_ms = ?2, outcome = 'cancelled'
                     WHERE lease_id = ?1 AND finished_at_ms IS NULL",
                    params![lease_id, now_ms],
                )?;
            }
            tx.execute(
                "UPDATE trials SET state = ?3, user_failures = ?4, lost = ?5, lease_id = NULL, deadline_ms = NULL,
                        not_before_ms = 0, finished_at_ms = NULL
                 WHERE sweep = ?1 AND trial_id = ?2",
                params![sweep, trial_id, next.as_str(), counters.user_failures, counters.lost],
            )?;
        }
        if !chosen.is_empty() {
            // Only active sweeps are leased from: queued trials of a cancelled sweep would wait forever.
            tx.execute("UPDATE sweeps SET state = 'active' WHERE name = ?1 AND state = 'cancelled'", [sweep])?;
        }
        tx.commit()?;
        Ok(chosen.len() as u32)
    }
}
