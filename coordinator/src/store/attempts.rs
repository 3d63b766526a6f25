//! A trial's attempts as `sweep status SWEEP TRIAL` shows them: where each ran, how it ended, and
//! the epochs it reported, from which a resumed attempt is told apart from one that started over.

use super::Store;
use crate::error::Result;
use rusqlite::params;

#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub agent: String,
    /// None while the attempt runs.
    pub outcome: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
    pub leased_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// The first and last epoch it reported; None when it reported none.
    pub epochs: Option<(i64, i64)>,
    /// Set when it began past the trial's first reported epoch: it resumed after this epoch.
    pub resumed_after_epoch: Option<i64>,
}

impl Store {
    /// Every attempt of one trial, oldest first.
    pub fn attempts(&self, sweep: &str, trial_id: &str) -> Result<Vec<AttemptRecord>> {
        self.trial(sweep, trial_id)?;
        let mut q = self.conn.prepare(
            "SELECT a.attempt, a.agent, a.outcome, a.exit_code, a.signal, a.error, a.leased_at_ms,
                    a.started_at_ms, a.finished_at_ms,
                    (SELECT MIN(epoch) FROM metrics m WHERE m.sweep = a.sweep AND m.trial_id = a.trial_id AND m.attempt = a.attempt),
                    (SELECT MAX(epoch) FROM metrics m WHERE m.sweep = a.sweep AND m.trial_id = a.trial_id AND m.attempt = a.attempt)
             FROM attempts a WHERE a.sweep = ?1 AND a.trial_id = ?2 ORDER BY a.lease_id",
        )?;
        let rows = q.query_map(params![sweep, trial_id], |r| {
            let first: Option<i64> = r.get(9)?;
            let last: Option<i64> = r.get(10)?;
            Ok(AttemptRecord {
                attempt: r.get(0)?,
                agent: r.get(1)?,
                outcome: r.get(2)?,
                exit_code: r.get(3)?,
                signal: r.get(4)?,
                error: r.get(5)?,
                leased_at_ms: r.get(6)?,
                started_at_ms: r.get(7)?,
                finished_at_ms: r.get(8)?,
                epochs: first.zip(last),
                resumed_after_epoch: None,
            })
        })?;
        let mut attempts = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        mark_resumed(&mut attempts);
        Ok(attempts)
    }
}

/// An attempt whose first reported epoch is past the first epoch any attempt of the trial
/// reported did not train those epochs again: it resumed after the epoch before its first.
fn mark_resumed(attempts: &mut [AttemptRecord]) {
    let Some(start) = attempts.iter().filter_map(|a| a.epochs.map(|(first, _)| first)).min() else { return };
    for a in attempts {
        a.resumed_after_epoch = a.epochs.map(|(first, _)| first).filter(|&first| first > start).map(|first| first - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(n: u32, epochs: Option<(i64, i64)>) -> AttemptRecord {
        AttemptRecord {
            attempt: n,
            agent: "a-1".into(),
            outcome: None,
            exit_code: None,
            signal: None,
            error: None,
            leased_at_ms: 0,
            started_at_ms: None,
            finished_at_ms: None,
            epochs,
            resumed_after_epoch: None,
        }
    }

    #[test]
    fn an_attempt_that_starts_past_the_first_epoch_resumed_after_the_one_before() {
        let mut a =
            vec![attempt(1, Some((1, 4))), attempt(2, Some((1, 2))), attempt(3, Some((3, 10))), attempt(4, None)];
        mark_resumed(&mut a);
        let resumed: Vec<_> = a.iter().map(|a| a.resumed_after_epoch).collect();
        assert_eq!(resumed, [None, None, Some(2), None], "attempt 2 started over; attempt 3 resumed after epoch 2");
    }
}
