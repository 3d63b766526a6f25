//! Early stopping in the store: each trial's value at each rung of its sweep's schedule, and what
//! the schedule decided with it, written in the transaction of the report that reached the rung.
//! A coordinator killed at any moment has recorded both or neither, so no rung value is lost and
//! no trial is judged twice at one rung (the value's row is the proof it was judged). The rule
//! itself is `sweep_spec::schedule::decide`.
//!
//! Under a promoting schedule each trial also has an epoch budget (`trials.epochs_budget`): the
//! rung its next lease stops after, or NULL once it went on past the last rung. A trial judged
//! outside the cut keeps the rung as its budget, so its attempt ends there and it waits, paused;
//! one inside gets the next rung. Every new value at a rung (a report, or a failure counted as
//! the worst value) promotes the waiting trials that it puts inside the cut, in the same
//! transaction, so a promotion happens once, and the budget it raised is what the next lease
//! states.

use crate::error::{Error, Result};
use crate::lifecycle::{self, Event, TrialState};
use rusqlite::{params, OptionalExtension, Transaction};
use sweep_spec::schedule::{self, Action, Schedule};

/// Metric names a refusal lists at most.
const NAMES_SHOWN: i64 = 20;

/// The retry policy plays no part in the schedule's events (stop early, promote).
const NO_POLICY: lifecycle::Policy = lifecycle::Policy { max_attempts: 1, max_lost: 0, retry_backoff_ms: 0 };

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
    /// `trials.epochs_budget`.
    budget: Option<u32>,
}

fn trial(tx: &Transaction, sweep: &str, trial_id: &str) -> Result<Judged> {
    let (state, index, attempt, user_failures, lost, budget): (String, i64, u32, u32, u32, Option<u32>) = tx
        .query_row(
        "SELECT state, idx, attempt, user_failures, lost, epochs_budget FROM trials WHERE sweep = ?1 AND trial_id = ?2",
        params![sweep, trial_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
    )?;
    Ok(Judged {
        state: state.parse().map_err(Error::Corrupt)?,
        index: queue_position(index),
        counters: lifecycle::Counters { attempt, user_failures, lost },
        budget,
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
    let promotes = schedule.promotes();
    let bracket = schedule.bracket(t.index);
    let metric = &schedule.objective.metric;
    // Under a promoting schedule a trial is judged only up to its budget: epochs it trained past
    // its rung before its agent stopped it do not make it skip the wait for promotion.
    let judged_to = if promotes { t.budget.unwrap_or(u32::MAX) } else { u32::MAX };
    for (rung, epoch) in schedule.rungs(bracket).into_iter().enumerate().filter(|(_, e)| *e <= latest.min(judged_to)) {
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
        if schedule.pbt().is_some() {
            // PBT judges an epoch once every trial that can reach it has (`pbt::settle`): until
            // then the trial waits there, its budget at this epoch.
            break;
        }
        let others = values_at(tx, sweep, bracket, epoch, trial_id)?;
        let d = schedule.decide(&others, value);
        let action = match d.action {
            Action::Stop if promotes => Action::Pause,
            action => action,
        };
        let at = Rung { sweep, bracket, epoch, index: rung as u32, now_ms };
        record(tx, &at, trial_id, action, metric, value, &d)?;
        match action {
            Action::Stop => {
                stop_early(tx, sweep, trial_id, &t, now_ms)?;
                judgement.stopped = true;
                break;
            }
            Action::Continue if promotes => {
                set_budget(tx, sweep, trial_id, schedule.budget_after(bracket, Some(epoch)))?
            }
            _ => {}
        }
        if schedule.asha().is_some_and(|a| a.promote) {
            promote_waiting(tx, &schedule, &at)?;
        }
        if action == Action::Pause {
            break;
        }
    }
    Ok(judgement)
}

/// A trial's queue position (`trials.idx`) as the schedule reads it: what picks its bracket.
fn queue_position(idx: i64) -> u32 {
    idx.clamp(0, u32::MAX as i64) as u32
}

/// A rung of one bracket of a sweep, as a decision there records it.
pub(super) struct Rung<'a> {
    pub sweep: &'a str,
    pub bracket: u32,
    pub epoch: u32,
    /// Its position among the bracket's rungs, from 0.
    pub index: u32,
    pub now_ms: i64,
}

/// Writes one decision of the schedule: `decisions.parquet`'s row.
pub(super) fn record(
    tx: &Transaction,
    at: &Rung<'_>,
    trial_id: &str,
    action: Action,
    metric: &str,
    value: Option<f64>,
    d: &schedule::Decision,
) -> Result<()> {
    tx.execute(
        "INSERT INTO decisions (sweep, trial_id, decided_at_ms, epoch, rung, action, metric, value, threshold, reached, kept)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            at.sweep,
            trial_id,
            at.now_ms,
            at.epoch,
            at.index,
            action.as_str(),
            metric,
            value,
            d.threshold,
            d.reached,
            d.kept
        ],
    )?;
    Ok(())
}

pub(super) fn set_budget(tx: &Transaction, sweep: &str, trial_id: &str, budget: Option<u32>) -> Result<()> {
    tx.execute(
        "UPDATE trials SET epochs_budget = ?3 WHERE sweep = ?1 AND trial_id = ?2",
        params![sweep, trial_id, budget],
    )?;
    Ok(())
}

/// Promotes the trials waiting at `at` (judged there outside the cut, not promoted since) that
/// the rung's values now put inside the cut: each gets the next rung as its budget, and a paused
/// one queues again. One whose attempt is still ending is promoted too: it queues when it ends.
fn promote_waiting(tx: &Transaction, schedule: &Schedule, at: &Rung<'_>) -> Result<()> {
    let mut q = tx.prepare_cached(
        "SELECT r.trial_id, r.value, t.state FROM rungs r
         JOIN trials t ON t.sweep = r.sweep AND t.trial_id = r.trial_id
         WHERE r.sweep = ?1 AND r.bracket = ?2 AND r.epoch = ?3 AND t.epochs_budget = ?3
           AND t.state IN ('paused', 'leased', 'running')",
    )?;
    let waiting: Vec<(String, Option<f64>, String)> = q
        .query_map(params![at.sweep, at.bracket, at.epoch], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if waiting.is_empty() {
        return Ok(());
    }
    let values = values_at(tx, at.sweep, at.bracket, at.epoch, "")?;
    let Some(cut) = schedule.cut(&values) else { return Ok(()) };
    for (trial_id, value, state) in waiting.into_iter().filter(|w| cut.admits(w.1)) {
        let d = schedule::Decision {
            action: Action::Promote,
            threshold: cut.threshold,
            reached: cut.reached,
            kept: cut.kept,
        };
        record(tx, at, &trial_id, Action::Promote, &schedule.objective.metric, value, &d)?;
        set_budget(tx, at.sweep, &trial_id, schedule.budget_after(at.bracket, Some(at.epoch)))?;
        if state.parse::<TrialState>().map_err(Error::Corrupt)? == TrialState::Paused {
            requeue(tx, at.sweep, &trial_id)?;
        }
    }
    Ok(())
}

/// Queues a paused trial again for its next segment (promoted, or gone on under PBT).
pub(super) fn requeue(tx: &Transaction, sweep: &str, trial_id: &str) -> Result<()> {
    let t = trial(tx, sweep, trial_id)?;
    let (next, _) = lifecycle::transition(t.state, t.counters, Event::Promote, NO_POLICY)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    tx.execute(
        "UPDATE trials SET state = ?3, not_before_ms = 0, segments = segments + 1 WHERE sweep = ?1 AND trial_id = ?2",
        params![sweep, trial_id, next.as_str()],
    )?;
    Ok(())
}

/// What a new lease of a trial trains: the epoch it stops after, and whether its agent keeps the
/// checkpoint it ends with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct LeaseBudget {
    /// The trial's budget under a promoting schedule (the first rung of its bracket before it was
    /// ever judged); None to train to the end. Stored on the trial, so `trials.parquet` shows it.
    pub stop_after: Option<u32>,
    /// Under PBT, where later trials may copy it.
    pub keep_checkpoint: bool,
}

pub(super) fn lease_budget(tx: &Transaction, sweep: &str, trial_id: &str) -> Result<LeaseBudget> {
    let Some(schedule) = schedule_of(tx, sweep)? else { return Ok(LeaseBudget::default()) };
    if !schedule.promotes() {
        return Ok(LeaseBudget::default());
    }
    let (index, rung, copied, budget): (i64, Option<u32>, Option<u32>, Option<u32>) = tx.query_row(
        "SELECT idx, rung, copied_epoch, epochs_budget FROM trials WHERE sweep = ?1 AND trial_id = ?2",
        params![sweep, trial_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    // Judged before, or a copy PBT made (its budget set then): the stored budget holds.
    let stop_after = if rung.is_some() || copied.is_some() {
        budget
    } else {
        let first = schedule.budget_after(schedule.bracket(queue_position(index)), None);
        set_budget(tx, sweep, trial_id, first)?;
        first
    };
    Ok(LeaseBudget { stop_after, keep_checkpoint: schedule.pbt().is_some() && stop_after.is_some() })
}

/// Whether the attempt under `stop_after` ended at a rung the trial was judged at: a segment of a
/// promoting schedule, not the trial's end. Some(promoted): it went on there, or was promoted
/// since, so it queues for its next rung; Some(false): it waits, paused.
pub(super) fn segment_end(
    tx: &Transaction,
    sweep: &str,
    trial_id: &str,
    stop_after: Option<u32>,
) -> Result<Option<bool>> {
    let Some(stop_after) = stop_after else { return Ok(None) };
    let judged = exists(
        tx,
        "SELECT 1 FROM rungs WHERE sweep = ?1 AND epoch = ?2 AND trial_id = ?3",
        params![sweep, stop_after, trial_id],
    )?;
    if !judged {
        // It ended well before the rung: it trained all it had to.
        return Ok(None);
    }
    let budget: Option<u32> = tx.query_row(
        "SELECT epochs_budget FROM trials WHERE sweep = ?1 AND trial_id = ?2",
        params![sweep, trial_id],
        |r| r.get(0),
    )?;
    Ok(Some(budget.is_none_or(|b| b > stop_after)))
}

/// Stops early every paused trial of `sweep` once nothing that could promote one is left (no
/// trial pending or leased, none still to be proposed): its rung's values are final. Each stop is recorded as a decision.
pub(super) fn settle_paused(tx: &Transaction, sweep: &str, now_ms: i64) -> Result<()> {
    let Some(schedule) = schedule_of(tx, sweep)? else { return Ok(()) };
    if let Some(pbt) = schedule.pbt() {
        return super::pbt::settle(tx, &schedule, pbt, sweep, now_ms);
    }
    if !schedule.promotes()
        || exists(
            tx,
            "SELECT 1 FROM trials WHERE sweep = ?1 AND state IN ('pending', 'leased', 'running') LIMIT 1",
            [sweep],
        )?
        || super::proposals::more_to_come(tx, sweep)?
    {
        return Ok(());
    }
    // Each paused trial waits at the rung of its budget.
    let paused: Vec<(String, i64, u32)> = {
        let mut q = tx.prepare_cached(
            "SELECT trial_id, idx, epochs_budget FROM trials WHERE sweep = ?1 AND state = 'paused' ORDER BY idx",
        )?;
        let rows = q.query_map([sweep], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // The cut of each rung waited at, read once: the values there are final.
    let mut cuts: std::collections::HashMap<(u32, u32), Option<schedule::Cut>> = std::collections::HashMap::new();
    for (trial_id, index, epoch) in paused {
        let bracket = schedule.bracket(queue_position(index));
        let cut = match cuts.entry((bracket, epoch)) {
            std::collections::hash_map::Entry::Occupied(e) => *e.get(),
            std::collections::hash_map::Entry::Vacant(e) => {
                *e.insert(schedule.cut(&values_at(tx, sweep, bracket, epoch, "")?))
            }
        };
        let Some(cut) = cut else { continue };
        let rung = schedule.rungs(bracket).iter().position(|e| *e == epoch).unwrap_or(0) as u32;
        let value: Option<f64> = tx
            .query_row(
                "SELECT value FROM rungs WHERE sweep = ?1 AND bracket = ?2 AND epoch = ?3 AND trial_id = ?4",
                params![sweep, bracket, epoch, trial_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let d =
            schedule::Decision { action: Action::Stop, threshold: cut.threshold, reached: cut.reached, kept: cut.kept };
        let at = Rung { sweep, bracket, epoch, index: rung, now_ms };
        record(tx, &at, &trial_id, Action::Stop, &schedule.objective.metric, value, &d)?;
        let t = trial(tx, sweep, &trial_id)?;
        stop_early(tx, sweep, &trial_id, &t, now_ms)?;
    }
    Ok(())
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

/// The values the other trials of the bracket recorded at the rung at `epoch` (every trial's, for
/// an empty `trial_id`).
pub(super) fn values_at(
    tx: &Transaction,
    sweep: &str,
    bracket: u32,
    epoch: u32,
    trial_id: &str,
) -> Result<Vec<Option<f64>>> {
    let mut q = tx.prepare_cached(
        "SELECT value FROM rungs WHERE sweep = ?1 AND bracket = ?2 AND epoch = ?3 AND trial_id <> ?4",
    )?;
    let values = q.query_map(params![sweep, bracket, epoch, trial_id], |r| r.get(0))?;
    Ok(values.collect::<rusqlite::Result<_>>()?)
}

/// Ends the trial as stopped early; its lease stays current, so its agent's next heartbeat is
/// told to stop it, and the epochs it finishes meanwhile are still recorded.
pub(super) fn stop_early_now(tx: &Transaction, sweep: &str, trial_id: &str, now_ms: i64) -> Result<()> {
    let t = trial(tx, sweep, trial_id)?;
    stop_early(tx, sweep, trial_id, &t, now_ms)
}

fn stop_early(tx: &Transaction, sweep: &str, trial_id: &str, t: &Judged, now_ms: i64) -> Result<()> {
    let (next, _) = lifecycle::transition(t.state, t.counters, Event::StopEarly, NO_POLICY)
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RungCount {
    pub epoch: u32,
    /// Trials judged there.
    pub judged: u32,
    /// Inside the cut when they reached it.
    pub went_on: u32,
    /// Stopped there: at once (stop-only), or paused and never promoted.
    pub stopped: u32,
    /// Outside the cut when they reached it, under a promoting schedule.
    pub paused: u32,
    /// Paused there, then promoted.
    pub promoted: u32,
    /// Under PBT: replaced there by a perturbed copy of a top trial.
    pub exploited: u32,
}

impl super::Store {
    /// What the schedule of `sweep` decided at each rung so far, lowest epoch first.
    pub fn rung_counts(&self, sweep: &str) -> Result<Vec<RungCount>> {
        let mut q = self.conn.prepare_cached(
            "SELECT epoch, COUNT(DISTINCT trial_id), SUM(action = 'continue'), SUM(action = 'stop'),
                    SUM(action = 'pause'), SUM(action = 'promote'), SUM(action = 'exploit')
             FROM decisions WHERE sweep = ?1 GROUP BY epoch ORDER BY epoch",
        )?;
        let rows = q.query_map([sweep], |r| {
            Ok(RungCount {
                epoch: r.get(0)?,
                judged: r.get(1)?,
                went_on: r.get(2)?,
                stopped: r.get(3)?,
                paused: r.get(4)?,
                promoted: r.get(5)?,
                exploited: r.get(6)?,
            })
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
pub(super) fn count_failure(tx: &Transaction, sweep: &str, trial_id: &str, now_ms: i64) -> Result<()> {
    let Some(schedule) = schedule_of(tx, sweep)? else { return Ok(()) };
    let t = trial(tx, sweep, trial_id)?;
    let bracket = schedule.bracket(t.index);
    for (index, epoch) in schedule.rungs(bracket).into_iter().enumerate() {
        if !has_value(tx, sweep, bracket, epoch, trial_id)? {
            tx.execute(
                "INSERT INTO rungs (sweep, bracket, epoch, trial_id, value) VALUES (?1, ?2, ?3, ?4, NULL)",
                params![sweep, bracket, epoch, trial_id],
            )?;
            if schedule.asha().is_some_and(|a| a.promote) {
                promote_waiting(tx, &schedule, &Rung { sweep, bracket, epoch, index: index as u32, now_ms })?;
            }
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
        running_under(SCHEDULE, n)
    }

    fn running_under(schedule: &str, n: u32) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 60_000).unwrap();
        let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let text = format!(
            "name = \"s\"\nworkload = \"command\"\ncommand = [\"train\"]\n{schedule}\n[grid]\ni = [{}]\n",
            values.join(", ")
        );
        let file = sweep_spec::SweepFile::parse(&text, "s.toml".as_ref(), ".".as_ref()).unwrap();
        let sweep = NewSweep {
            name: "s".into(),
            source: text.clone(),
            source_path: "s.toml".into(),
            policy: lifecycle::Policy { max_attempts: 1, max_lost: 1, retry_backoff_ms: 0 },
            schedule: file.schedule.as_ref().map(|s| serde_json::to_string(s).unwrap()),
            search: None,
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

        fn end(&mut self, trial: usize, c: &Completion) -> TrialState {
            let lease = self.grants[trial].lease_id;
            self.store.complete(lease, &self.session, c, 3_000).unwrap()
        }

        fn state(&self, trial: usize) -> (TrialState, Option<u32>) {
            let (state, budget): (String, Option<u32>) = self
                .store
                .conn
                .query_row(
                    "SELECT state, epochs_budget FROM trials WHERE trial_id = ?1",
                    [&self.grants[trial].spec.id.0],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            (state.parse().unwrap(), budget)
        }

        /// Leases the queued trials again; each one's new grant replaces its old.
        fn lease_again(&mut self) -> Vec<(usize, Option<u32>)> {
            let grants = self.store.lease(&self.agent, &self.session, 64, Vec::new(), None, 4_000).unwrap().grants;
            let mut leased = Vec::new();
            for g in grants {
                let i = self.grants.iter().position(|o| o.spec.id == g.spec.id).unwrap();
                leased.push((i, g.stop_after));
                self.grants[i] = g;
            }
            leased.sort();
            leased
        }

        fn verdict(&mut self, trial: usize) -> LeaseVerdict {
            let lease = LeaseReport { lease_id: self.grants[trial].lease_id, running: true };
            self.store.heartbeat(&self.agent, &self.session, &[lease], 2_000).unwrap()[0].1
        }
    }

    /// SCHEDULE with pause and promote, the default.
    fn promote() -> String {
        SCHEDULE.replace("promote = false\n", "")
    }

    const EXIT_0: Completion = Completion {
        exit_code: Some(0),
        signal: None,
        stderr_tail: String::new(),
        launch_error: String::new(),
        launch_error_permanent: false,
        stopped_by_request: false,
        released: false,
        unstarted: false,
        whole_group: false,
        refused: None,
        reached_budget: false,
        kept_checkpoint: false,
    };

    /// ASHA with pause and promote, through two rungs (epochs 1 and 3, one in three kept): each
    /// lease stops at the trial's budget, a trial outside the cut waits paused, later worse values
    /// promote it (also while its attempt is still ending), and once nothing could promote the
    /// trials still waiting they are stopped early, each decision on record.
    #[test]
    fn trials_below_the_cut_pause_and_are_promoted_when_later_values_are_worse() {
        let mut r = running_under(&promote(), 4);
        assert!(r.grants.iter().all(|g| g.stop_after == Some(1)), "every first lease stops at the first rung");
        for (trial, value) in [(0, 0.5), (1, 0.6), (2, 0.9)] {
            assert!(!r.report(trial, 1, &[("val_error", value)]).unwrap().stopped, "a pause needs no stop");
        }
        assert_eq!(r.state(0), (TrialState::Leased, Some(3)), "inside the cut: its next budget is the next rung");
        assert_eq!(r.state(1), (TrialState::Leased, Some(1)), "outside: it waits at the rung");
        assert_eq!(r.end(2, &EXIT_0), TrialState::Paused);
        // A fourth value: two of four are kept now, so 0.6 is inside the cut, though its attempt
        // has not ended yet.
        r.report(3, 1, &[("val_error", 0.8)]).unwrap();
        assert_eq!(r.actions(), ["1:continue", "1:pause", "1:pause", "1:pause", "1:promote"]);
        assert_eq!(r.state(1).1, Some(3));
        assert_eq!(r.end(1, &EXIT_0), TrialState::Pending, "promoted before its attempt ended: it queues at once");
        assert_eq!(r.end(0, &EXIT_0), TrialState::Pending);
        // An attempt its agent had to stop at the budget ended as well as one that exited.
        let stopped_at_budget = Completion { signal: Some(15), reached_budget: true, ..EXIT_0 };
        assert_eq!(r.end(3, &stopped_at_budget), TrialState::Paused);
        let counts = r.store.rung_counts("s").unwrap();
        assert_eq!(
            counts,
            [RungCount { epoch: 1, judged: 4, went_on: 1, stopped: 0, paused: 3, promoted: 1, exploited: 0 }]
        );

        // The second segment, to the rung at epoch 3: the promoted trials resume with the next budget.
        assert_eq!(r.lease_again(), [(0, Some(3)), (1, Some(3))]);
        r.report(0, 3, &[("val_error", 0.3)]).unwrap();
        r.report(1, 3, &[("val_error", 0.4)]).unwrap();
        assert_eq!(r.state(0), (TrialState::Leased, None), "past the last rung: no budget");
        assert_eq!(r.end(0, &EXIT_0), TrialState::Pending);
        assert_eq!(r.lease_again(), [(0, None)], "the last segment trains to the end");
        assert_eq!(r.end(1, &EXIT_0), TrialState::Paused);
        assert_eq!(r.state(2).0, TrialState::Paused, "trial 0 still runs: a later value could promote");
        assert_eq!(r.end(0, &EXIT_0), TrialState::Succeeded);
        // Nothing is left to run: whoever waits is stopped, a decision each.
        for trial in 1..4 {
            assert_eq!(r.state(trial).0, TrialState::StoppedEarly, "trial {trial}");
        }
        assert_eq!(
            r.actions()[5..],
            ["3:continue", "3:pause", "3:stop", "1:stop", "1:stop"],
            "each waiting trial is stopped at the rung it waited at"
        );
        assert!(r.lease_again().is_empty());
        assert_eq!(r.store.summary("s").unwrap().retries, 0, "an attempt for the next rung is no retry");
    }

    /// PBT over four trials judged every epoch to epoch 3. Each trial waits at the end of an
    /// interval until all four have ended theirs there; then the one in the bottom quarter is
    /// replaced by a perturbed copy of the best trial that kept its checkpoint at that epoch, or,
    /// when none did, goes on.
    #[test]
    fn pbt_judges_an_epoch_once_the_whole_population_reached_it() {
        let pbt = "[search]\nmetric = \"val_error\"\nmode = \"min\"\n[schedule]\ntype = \"pbt\"\ninterval = 1\nmax_epochs = 3\n\
                   resample_probability = 0.0\nperturb = { i = { int_uniform = [0, 100] } }\n";
        let mut r = running_under(pbt, 4);
        assert!(r.grants.iter().all(|g| g.stop_after == Some(1) && g.keep_checkpoint), "every trial pauses at epoch 1");
        let kept = Completion { kept_checkpoint: true, ..EXIT_0 };
        for (trial, value) in [0.1, 0.2, 0.3, 0.9].into_iter().enumerate() {
            assert!(!r.report(trial, 1, &[("val_error", value)]).unwrap().stopped);
        }
        assert!(r.actions().is_empty(), "nothing is judged while attempts are still ending");
        // The best trial's agent could not keep its checkpoint: the worst has nothing to copy.
        assert_eq!(r.end(0, &EXIT_0), TrialState::Paused);
        for trial in [3, 1] {
            assert_eq!(r.end(trial, &kept), TrialState::Paused, "trial 2 still runs at epoch 1");
        }
        assert!(r.actions().is_empty());
        assert_eq!(r.end(2, &kept), TrialState::Paused);
        assert_eq!(r.actions(), ["1:continue"; 4], "judged together once the last ended there");
        assert_eq!(r.lease_again(), [(0, Some(2)), (1, Some(2)), (2, Some(2)), (3, Some(2))]);

        for (trial, value) in [0.05, 0.15, 0.25, 0.95].into_iter().enumerate() {
            assert!(!r.report(trial, 2, &[("val_error", value)]).unwrap().stopped);
            r.end(trial, &kept);
        }
        assert_eq!(r.actions()[4..], ["2:continue", "2:continue", "2:continue", "2:exploit"]);
        assert_eq!(r.state(3).0, TrialState::StoppedEarly);
        assert_eq!(r.state(0), (TrialState::Pending, None), "past the last interval: trains to the end");

        let (child, parent, copied, generation, budget, spec): (String, String, u32, u32, Option<u32>, String) = r
            .store
            .conn
            .query_row(
                "SELECT trial_id, parent_trial_id, copied_epoch, generation, epochs_budget, spec FROM trials
                 WHERE parent_trial_id IS NOT NULL",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)),
            )
            .unwrap();
        assert_eq!((parent.as_str(), copied, generation, budget), (r.grants[0].spec.id.0.as_str(), 2, 1, None));
        let spec: sweep_spec::TrialSpec = serde_json::from_str(&spec).unwrap();
        assert_eq!(spec.copy_from, Some(sweep_spec::CopyFrom { trial_id: parent.clone(), epoch: 2 }));
        assert_eq!(spec.id.0, child);
        // The best trial's i is 0; moved by one (0 x 0.8 rounds back to 0), kept inside [0, 100].
        assert!(spec.params["i"] == 0 || spec.params["i"] == 1, "{:?}", spec.params);

        let grants = r.store.lease(&r.agent, &r.session, 64, Vec::new(), None, 5_000).unwrap().grants;
        let copy = grants.iter().find(|g| g.spec.id.0 == child).expect("the copy is leased");
        assert_eq!(
            (copy.stop_after, copy.keep_checkpoint),
            (None, false),
            "past the last interval it trains to the end"
        );
        assert_eq!(copy.spec.copy_from, spec.copy_from);
        let counts = r.store.rung_counts("s").unwrap();
        assert_eq!((counts[1].epoch, counts[1].judged, counts[1].exploited), (2, 4, 1));
        assert_eq!(r.store.summary("s").unwrap().generation, 1);
    }

    /// A trial that fails for good before an epoch no longer holds the others there: they are
    /// judged without it, its failure the worst value.
    #[test]
    fn a_pbt_trial_that_fails_does_not_hold_the_population() {
        let pbt = "[search]\nmetric = \"val_error\"\nmode = \"min\"\n[schedule]\ntype = \"pbt\"\ninterval = 1\nmax_epochs = 3\n\
                   perturb = { i = { int_uniform = [0, 100] } }\n";
        let mut r = running_under(pbt, 3);
        for (trial, value) in [0.1, 0.2].into_iter().enumerate() {
            r.report(trial, 1, &[("val_error", value)]).unwrap();
            assert_eq!(r.end(trial, &Completion { kept_checkpoint: true, ..EXIT_0 }), TrialState::Paused);
        }
        assert_eq!(r.end(2, &Completion { exit_code: Some(1), ..EXIT_0 }), TrialState::Failed);
        assert_eq!(r.actions(), ["1:continue", "1:continue"]);
        assert_eq!((r.state(0).0, r.state(1).0), (TrialState::Pending, TrialState::Pending));
    }

    #[test]
    fn a_failure_at_a_rung_can_promote_the_trials_waiting_there() {
        let mut r = running_under(&promote(), 4);
        r.report(0, 1, &[("val_error", 0.5)]).unwrap();
        r.report(1, 1, &[("val_error", 0.6)]).unwrap();
        r.report(2, 1, &[("val_error", 0.7)]).unwrap();
        assert_eq!(r.end(1, &EXIT_0), TrialState::Paused);
        // A fourth value at the rung, the failure's, the worst: two of four are kept now.
        let failed = Completion { exit_code: Some(1), ..EXIT_0 };
        assert_eq!(r.end(3, &failed), TrialState::Failed);
        assert_eq!(r.state(1), (TrialState::Pending, Some(3)), "0.6 is inside the cut now");
        assert_eq!(r.actions(), ["1:continue", "1:pause", "1:pause", "1:promote"]);
    }

    #[test]
    fn an_attempt_that_ends_before_its_rung_has_trained_all_it_had() {
        let mut r = running_under(&promote(), 1);
        assert_eq!(r.end(0, &EXIT_0), TrialState::Succeeded, "it reported no rung: nothing to judge or resume");
    }

    #[test]
    fn cancelling_a_sweep_cancels_its_paused_trials() {
        let mut r = running_under(&promote(), 2);
        r.report(0, 1, &[("val_error", 0.5)]).unwrap();
        r.report(1, 1, &[("val_error", 0.6)]).unwrap();
        assert_eq!(r.end(1, &EXIT_0), TrialState::Paused);
        r.store.cancel("s", &Caller::open(), 5_000, 10).unwrap();
        while r.store.cancel_more("s", 5_000, 10).unwrap().more {}
        assert_eq!(r.state(1).0, TrialState::Cancelled);
    }

    #[test]
    fn median_stopping_judges_every_epoch_against_the_trials_before() {
        let median = "[search]\nmetric = \"val_error\"\nmode = \"min\"\n[schedule]\ntype = \"median\"\nmax_epochs = 9\nmin_trials = 2\n";
        let mut r = running_under(median, 4);
        assert!(r.grants.iter().all(|g| g.stop_after.is_none()), "median stopping never pauses");
        let stopped: Vec<bool> = [0.5, 0.6, 0.7, 0.55]
            .into_iter()
            .enumerate()
            .map(|(trial, value)| r.report(trial, 1, &[("val_error", value)]).unwrap().stopped)
            .collect();
        // Two trials go on unjudged; 0.7 is worse than the median of 0.5 and 0.6 (the better
        // middle value, 0.5); 0.55 beats the median of three, 0.6.
        assert_eq!(stopped, [false, false, true, false]);
        r.report(0, 2, &[("val_error", 0.4)]).unwrap();
        assert_eq!(r.actions(), ["1:continue", "1:continue", "1:stop", "1:continue", "2:continue"]);
        assert_eq!(r.verdict(2), LeaseVerdict::Stop);
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
        assert_eq!(
            r.store.rung_counts("s").unwrap(),
            [RungCount { epoch: 1, judged: 4, went_on: 3, stopped: 1, ..Default::default() }]
        );
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
