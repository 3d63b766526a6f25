//! Early stopping in the store: each trial's value at each rung of its sweep's schedule, and what
//! the schedule decided with it, written in the transaction of the report that reached the rung.
//! A coordinator killed at any moment has recorded both or neither, so no rung value is lost and
//! no trial is judged twice at one rung (the value's row is the proof it was judged). The rule
//! itself is `sweep_spec::schedule::decide`.

use crate::error::{Error, Result};
use crate::lifecycle::{self, Event, TrialState};
use rusqlite::{params, OptionalExtension, Transaction};
use sweep_spec::schedule::{self, Action, Schedule};

/// Metric names a refusal lists at most.
const NAMES_SHOWN: i64 = 20;

/// The early-stopping schedule of `sweep`, if it has one.
pub(super) fn schedule_of(tx: &Transaction, sweep: &str) -> Result<Option<Schedule>> {
    let json: Option<String> =
        tx.query_row("SELECT schedule FROM sweeps WHERE name = ?1", [sweep], |r| r.get(0)).optional()?.flatten();
    json.map(|j| serde_json::from_str(&j).map_err(|e| Error::Corrupt(format!("sweep {sweep} schedule: {e}"))))
        .transpose()
}

/// The trial as a rung sees it.
struct Judged {
    state: TrialState,
    index: u32,
    counters: lifecycle::Counters,
}

fn trial(tx: &Transaction, sweep: &str, trial_id: &str) -> Result<Judged> {
    let (state, index, attempt, user_failures, lost): (String, i64, u32, u32, u32) = tx.query_row(
        "SELECT state, idx, attempt, user_failures, lost FROM trials WHERE sweep = ?1 AND trial_id = ?2",
        params![sweep, trial_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    Ok(Judged {
        state: state.parse().map_err(Error::Corrupt)?,
        index: index.clamp(0, u32::MAX as i64) as u32,
        counters: lifecycle::Counters { attempt, user_failures, lost },
    })
}

/// Judges the trial at every rung of its bracket up to `latest` (the highest epoch just reported)
/// that it reported and has no value at yet, oldest first, until one stops it. The value at a rung
/// is the metric's latest row for that epoch, whichever report line or attempt brought it; a rung
/// epoch not reported yet (a restarted agent may replay it late) waits. Only a trial an agent is
/// running is judged. Says why the trial must fail when it reported a rung epoch without the
/// metric and went on past it.
pub(super) fn judge(tx: &Transaction, sweep: &str, trial_id: &str, latest: u32, now_ms: i64) -> Result<Judgement> {
    let mut judgement = Judgement::default();
    let Some(schedule) = schedule_of(tx, sweep)? else { return Ok(judgement) };
    let t = trial(tx, sweep, trial_id)?;
    if !t.state.is_leased() {
        return Ok(judgement);
    }
    let asha = schedule.asha;
    let bracket = asha.bracket(t.index);
    let metric = &schedule.objective.metric;
    for (rung, epoch) in asha.rungs(bracket).into_iter().enumerate().filter(|(_, e)| *e <= latest) {
        if has_value(tx, sweep, bracket, epoch, trial_id)? {
            continue;
        }
        let reported: Option<Option<f64>> = tx
            .query_row(
                "SELECT value FROM metrics WHERE sweep = ?1 AND trial_id = ?2 AND epoch = ?3 AND metric = ?4
                 ORDER BY attempt DESC LIMIT 1",
                params![sweep, trial_id, epoch, metric],
                |r| r.get(0),
            )
            .optional()?;
        let Some(reported) = reported else {
            // Nothing of that epoch yet (it may come late, replayed by a restarted agent), or
            // another line of the latest epoch may still bring the metric.
            if epoch == latest || !reported_epoch(tx, sweep, trial_id, epoch)? {
                continue;
            }
            judgement.refused = Some(missing_metric(tx, sweep, trial_id, epoch, metric)?);
            return Ok(judgement);
        };
        let value = reported.and_then(schedule::judged);
        tx.execute(
            "INSERT INTO rungs (sweep, bracket, epoch, trial_id, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![sweep, bracket, epoch, trial_id, value],
        )?;
        tx.execute(
            "UPDATE trials SET rung = ?3 WHERE sweep = ?1 AND trial_id = ?2 AND (rung IS NULL OR rung < ?3)",
            params![sweep, trial_id, epoch],
        )?;
        let others = values_at(tx, sweep, bracket, epoch, trial_id)?;
        let d = schedule::decide(&others, value, schedule.objective.mode, asha.reduction_factor);
        tx.execute(
            "INSERT INTO decisions (sweep, trial_id, decided_at_ms, epoch, rung, action, metric, value, threshold, reached, kept)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                sweep,
                trial_id,
                now_ms,
                epoch,
                rung as i64,
                d.action.as_str(),
                metric,
                value,
                d.threshold,
                d.reached,
                d.kept
            ],
        )?;
        if d.action == Action::Stop {
            stop_early(tx, sweep, trial_id, &t, now_ms)?;
            judgement.stopped = true;
            break;
        }
    }
    Ok(judgement)
}

/// What judging a report's rungs did.
#[derive(Debug, Default)]
pub(super) struct Judgement {
    /// The trial was stopped early.
    pub stopped: bool,
    /// Why the trial must fail: it went past a rung without the schedule's metric.
    pub refused: Option<String>,
}

/// Whether the trial reported anything at `epoch`, under any attempt.
fn reported_epoch(tx: &Transaction, sweep: &str, trial_id: &str, epoch: u32) -> Result<bool> {
    exists(
        tx,
        "SELECT 1 FROM metrics WHERE sweep = ?1 AND trial_id = ?2 AND epoch = ?3 LIMIT 1",
        params![sweep, trial_id, epoch],
    )
}

/// Whether the trial has a value at the rung at `epoch` of its bracket: it was judged there.
fn has_value(tx: &Transaction, sweep: &str, bracket: u32, epoch: u32, trial_id: &str) -> Result<bool> {
    exists(
        tx,
        "SELECT 1 FROM rungs WHERE sweep = ?1 AND bracket = ?2 AND epoch = ?3 AND trial_id = ?4",
        params![sweep, bracket, epoch, trial_id],
    )
}

/// Whether `select` finds a row.
fn exists(tx: &Transaction, select: &str, args: impl rusqlite::Params) -> Result<bool> {
    Ok(tx.query_row(select, args, |_| Ok(())).optional()?.is_some())
}

/// The values the other trials of the bracket recorded at the rung at `epoch`.
fn values_at(tx: &Transaction, sweep: &str, bracket: u32, epoch: u32, trial_id: &str) -> Result<Vec<Option<f64>>> {
    let mut q = tx.prepare_cached(
        "SELECT value FROM rungs WHERE sweep = ?1 AND bracket = ?2 AND epoch = ?3 AND trial_id <> ?4",
    )?;
    let values = q.query_map(params![sweep, bracket, epoch, trial_id], |r| r.get(0))?;
    Ok(values.collect::<rusqlite::Result<_>>()?)
}

/// Ends the trial as stopped early; its lease stays current, so its agent's next heartbeat is
/// told to stop it, and the epochs it finishes meanwhile are still recorded.
fn stop_early(tx: &Transaction, sweep: &str, trial_id: &str, t: &Judged, now_ms: i64) -> Result<()> {
    // The policy plays no part in this event.
    let policy = lifecycle::Policy { max_attempts: 1, max_lost: 0, retry_backoff_ms: 0 };
    let (next, _) = lifecycle::transition(t.state, t.counters, Event::StopEarly, policy)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    tx.execute(
        "UPDATE trials SET state = ?3, finished_at_ms = ?4 WHERE sweep = ?1 AND trial_id = ?2",
        params![sweep, trial_id, next.as_str(), now_ms],
    )?;
    Ok(())
}

/// Why a trial that went past the rung at `epoch` without reporting `metric` there fails: the
/// schedule cannot judge it, at this rung or any other, so no retry can help.
fn missing_metric(tx: &Transaction, sweep: &str, trial_id: &str, epoch: u32, metric: &str) -> Result<String> {
    let mut q = tx.prepare_cached(
        "SELECT DISTINCT metric FROM metrics WHERE sweep = ?1 AND trial_id = ?2 AND epoch = ?3 ORDER BY metric LIMIT ?4",
    )?;
    let seen: Vec<String> =
        q.query_map(params![sweep, trial_id, epoch, NAMES_SHOWN], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    let seen = if seen.is_empty() {
        "none".to_string()
    } else {
        seen.iter().map(|m| crate::convert::quoted(m)).collect::<Vec<_>>().join(", ")
    };
    Ok(format!(
        "trial {trial_id}: reported no {} at epoch {epoch}, a rung of the sweep's schedule ([search] metric); \
         it reported {seen} there",
        crate::convert::quoted(metric)
    ))
}

/// The decisions of a sweep's schedule at one rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RungCount {
    pub epoch: u32,
    pub judged: u32,
    pub went_on: u32,
    pub stopped: u32,
}

impl super::Store {
    /// What the schedule of `sweep` decided at each rung so far, lowest epoch first.
    pub fn rung_counts(&self, sweep: &str) -> Result<Vec<RungCount>> {
        let mut q = self.conn.prepare_cached(
            "SELECT epoch, COUNT(*), SUM(action = 'continue'), SUM(action = 'stop') FROM decisions
             WHERE sweep = ?1 GROUP BY epoch ORDER BY epoch",
        )?;
        let rows = q.query_map([sweep], |r| {
            Ok(RungCount { epoch: r.get(0)?, judged: r.get(1)?, went_on: r.get(2)?, stopped: r.get(3)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every decision of `sweep`'s schedule, in the order they were made: `decisions.parquet`.
    pub fn decision_rows(&self, sweep: &str) -> Result<Vec<crate::results::DecisionRow>> {
        let mut q = self.conn.prepare_cached(
            "SELECT seq, trial_id, decided_at_ms, epoch, rung, action, metric, value, threshold, reached, kept
             FROM decisions WHERE sweep = ?1 ORDER BY seq",
        )?;
        let rows = q.query_map([sweep], |r| {
            Ok(crate::results::DecisionRow {
                seq: r.get(0)?,
                sweep: sweep.to_string(),
                trial_id: r.get(1)?,
                decided_at_us: r.get::<_, i64>(2)? * 1000,
                epoch: r.get(3)?,
                rung: r.get(4)?,
                action: r.get(5)?,
                metric: r.get(6)?,
                value: r.get(7)?,
                threshold: r.get(8)?,
                reached: r.get(9)?,
                kept: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A trial that failed for good counts as the worst value at the first rung of its bracket it had
/// not reached, so the trials after it there are judged against one more value.
pub(super) fn count_failure(tx: &Transaction, sweep: &str, trial_id: &str) -> Result<()> {
    let Some(schedule) = schedule_of(tx, sweep)? else { return Ok(()) };
    let t = trial(tx, sweep, trial_id)?;
    let bracket = schedule.asha.bracket(t.index);
    for epoch in schedule.asha.rungs(bracket) {
        if !has_value(tx, sweep, bracket, epoch, trial_id)? {
            tx.execute(
                "INSERT INTO rungs (sweep, bracket, epoch, trial_id, value) VALUES (?1, ?2, ?3, ?4, NULL)",
                params![sweep, bracket, epoch, trial_id],
            )?;
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Completion;
    use crate::ownership::Caller;
    use crate::scheduler::LeaseVerdict;
    use crate::session::SessionHash;
    use crate::store::{Grant, LeaseReport, MetricBatch, NewSweep, Store};
    use std::collections::BTreeMap;
    use sweep_spec::EpochRecord;

    const SCHEDULE: &str = r#"
[search]
metric = "val_error"
mode = "min"
[schedule]
type = "asha"
min_epochs = 1
max_epochs = 9
reduction_factor = 3
promote = false
"#;

    /// A store holding a sweep of `n` command trials under SCHEDULE, each leased to one agent.
    struct Running {
        _dir: tempfile::TempDir,
        store: Store,
        agent: String,
        session: SessionHash,
        grants: Vec<Grant>,
    }

    fn running(n: u32) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 60_000).unwrap();
        let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let text = format!(
            "name = \"s\"\nworkload = \"command\"\ncommand = [\"train\"]\n{SCHEDULE}\n[grid]\ni = [{}]\n",
            values.join(", ")
        );
        let file = sweep_spec::SweepFile::parse(&text, "s.toml".as_ref(), ".".as_ref()).unwrap();
        let sweep = NewSweep {
            name: "s".into(),
            source: text.clone(),
            source_path: "s.toml".into(),
            policy: lifecycle::Policy { max_attempts: 1, max_lost: 1, retry_backoff_ms: 0 },
            schedule: file.schedule.as_ref().map(|s| serde_json::to_string(s).unwrap()),
            trials: sweep_spec::expand(&file).unwrap(),
        };
        store.submit(&sweep, &Caller::open(), false, 0).unwrap();
        let (_, session) = crate::session::new_secret().unwrap();
        let agent = store.register_agent("a", "host", 64, &[], &session, 0).unwrap();
        let grants = store.lease(&agent, &session, n, Vec::new(), None, 1).unwrap().grants;
        assert_eq!(grants.len(), n as usize);
        Running { _dir: dir, store, agent, session, grants }
    }

    impl Running {
        fn report(&mut self, trial: usize, epoch: u32, metrics: &[(&str, f64)]) -> Result<crate::store::Reported> {
            let metrics: BTreeMap<String, f64> = metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            let batch = MetricBatch {
                lease_id: self.grants[trial].lease_id,
                session: self.session,
                epochs: vec![EpochRecord { epoch, step: None, metrics }],
                warnings: vec![],
            };
            self.store.report_metrics(&batch, 1_000_000)
        }

        fn decisions(&self) -> Vec<(u32, String)> {
            let mut q = self.store.conn.prepare("SELECT epoch, action FROM decisions ORDER BY seq").unwrap();
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<rusqlite::Result<_>>().unwrap()
        }

        fn actions(&self) -> Vec<String> {
            self.decisions().into_iter().map(|(e, a)| format!("{e}:{a}")).collect()
        }

        fn verdict(&mut self, trial: usize) -> LeaseVerdict {
            let lease = LeaseReport { lease_id: self.grants[trial].lease_id, running: true };
            self.store.heartbeat(&self.agent, &self.session, &[lease], 2_000).unwrap()[0].1
        }
    }

    #[test]
    fn a_trial_below_the_cut_is_stopped_and_its_agent_told_to_stop() {
        let mut r = running(4);
        // Values at the rung at epoch 1, arriving in order.
        let stopped: Vec<bool> = [0.5, 0.4, 0.9, 0.3]
            .into_iter()
            .enumerate()
            .map(|(trial, value)| r.report(trial, 1, &[("val_error", value)]).unwrap().stopped)
            .collect();
        assert_eq!(stopped, [false, false, true, false], "the report that stops a trial says so");
        // 0.5 alone: on. 0.4 beats it: on. 0.9 of three, one kept: stop. 0.3 of four, two kept: on.
        assert_eq!(r.actions(), ["1:continue", "1:continue", "1:stop", "1:continue"]);
        assert_eq!(r.store.rung_counts("s").unwrap(), [RungCount { epoch: 1, judged: 4, went_on: 3, stopped: 1 }]);
        assert_eq!(r.verdict(2), LeaseVerdict::Stop, "its agent is told to stop it at the next heartbeat");
        assert_eq!(r.verdict(0), LeaseVerdict::Extend);
        // The epoch it finished before it stopped is kept; no second decision is made for it.
        r.report(2, 2, &[("val_error", 0.8)]).unwrap();
        let c = Completion { stopped_by_request: true, signal: Some(15), ..Completion::default() };
        let lease = r.grants[2].lease_id;
        assert_eq!(r.store.complete(lease, &r.session, &c, 3_000).unwrap(), TrialState::StoppedEarly);
        assert_eq!(r.decisions().len(), 4);
    }

    #[test]
    fn a_rung_is_judged_once_whatever_reports_it_again() {
        let mut r = running(2);
        r.report(0, 1, &[("val_error", 0.5)]).unwrap();
        r.report(0, 1, &[("val_error", 0.5)]).unwrap();
        r.report(0, 2, &[("val_error", 0.4)]).unwrap();
        assert_eq!(r.actions(), ["1:continue"], "epoch 2 is no rung; epoch 1 was judged once");
        r.report(0, 3, &[("val_error", 0.3)]).unwrap();
        assert_eq!(r.actions(), ["1:continue", "3:continue"]);
    }

    #[test]
    fn a_metric_on_a_separate_line_of_the_rung_epoch_is_waited_for() {
        let mut r = running(1);
        r.report(0, 1, &[("train_loss", 2.0)]).unwrap();
        assert!(r.decisions().is_empty());
        r.report(0, 1, &[("val_error", 0.5)]).unwrap();
        assert_eq!(r.actions(), ["1:continue"]);
    }

    #[test]
    fn a_trial_that_passes_a_rung_without_the_metric_fails_naming_it() {
        let mut r = running(1);
        r.report(0, 1, &[("train_loss", 2.0), ("val_acc", 0.5)]).unwrap();
        let err = r.report(0, 2, &[("train_loss", 1.0)]).unwrap_err().to_string();
        assert!(err.contains(r#"no "val_error" at epoch 1"#) && err.contains(r#""train_loss", "val_acc""#), "{err}");
        assert_eq!(r.verdict(0), LeaseVerdict::Abandon, "the trial failed for good");
    }

    #[test]
    fn nan_is_the_worst_value_for_its_own_trial_only() {
        let mut r = running(3);
        r.report(0, 1, &[("val_error", f64::NAN)]).unwrap();
        r.report(1, 1, &[("val_error", 0.5)]).unwrap();
        r.report(2, 1, &[("val_error", 0.6)]).unwrap();
        // NaN alone goes on; 0.5 beats it; 0.6 is second of three with one kept: stopped.
        assert_eq!(r.actions(), ["1:continue", "1:continue", "1:stop"]);
    }

    #[test]
    fn a_failed_trial_counts_as_the_worst_value_at_its_next_rung() {
        let mut r = running(3);
        r.report(0, 1, &[("val_error", 0.5)]).unwrap();
        let failed = Completion { exit_code: Some(1), ..Completion::default() };
        let lease = r.grants[1].lease_id;
        assert_eq!(r.store.complete(lease, &r.session, &failed, 2_000).unwrap(), TrialState::Failed);
        // Three values at the rung now (0.5, the failure, 0.7): one kept, and 0.7 is not it.
        r.report(2, 1, &[("val_error", 0.7)]).unwrap();
        assert_eq!(r.actions(), ["1:continue", "1:stop"]);
    }
}
