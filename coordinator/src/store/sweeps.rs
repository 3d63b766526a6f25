//! Sweeps and their trials: submission, cancellation, and the views users ask for.

use super::{Chosen, Store};
use crate::error::{Error, Result};
use crate::lifecycle::{Policy, TrialState};
use crate::ownership::{self, Caller, Terms};
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::BTreeMap;
use sweep_spec::TrialSpec;

mod cancel;
pub use cancel::Cancelling;
mod uploads;

pub struct NewSweep {
    pub name: String,
    pub source: String,
    pub source_path: String,
    pub policy: Policy,
    /// The sweep's early stopping as checked JSON (`sweep_spec::schedule::Schedule`); None: none.
    pub schedule: Option<String>,
    /// TPE's plan as checked JSON (`sweep_spec::tpe::Plan`): the coordinator proposes the trials
    /// after those submitted. None: every trial is submitted.
    pub search: Option<String>,
    pub trials: Vec<TrialSpec>,
}

impl NewSweep {
    /// What the submission says of the sweep besides its trials.
    pub(super) fn head(&self) -> SweepHead<'_> {
        SweepHead {
            name: &self.name,
            source: &self.source,
            source_path: &self.source_path,
            policy: self.policy,
            schedule: self.schedule.as_deref(),
            search: self.search.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitOutcome {
    pub added: u32,
    pub total: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSummary {
    pub name: String,
    pub state: String,
    /// The name of the user token that submitted it; None without token files or from before
    /// owners were recorded.
    pub owner: Option<String>,
    pub created_at_ms: i64,
    pub counts: BTreeMap<TrialState, u32>,
    pub total: u32,
    /// Attempts beyond each trial's first, summed.
    pub retries: u32,
    /// Why it is paused (`state` is `paused`), and the common error of its failing attempts (the
    /// most frequent, the latest of equals).
    pub pause_reason: Option<String>,
    pub pause_error: Option<String>,
    /// Why its pending trials have nobody to run them ([`Store::stall`]); filled in by callers
    /// that know the time.
    pub waiting: Option<String>,
    /// What its schedule decided at each rung ([`Store::rung_counts`]); filled in by callers that
    /// show it.
    pub rungs: Vec<super::RungCount>,
    /// Trials it will have in all once TPE proposed them (`search`); 0: those it has.
    pub planned: u32,
    /// Under PBT, the most copies behind any of its trials; 0 otherwise.
    pub generation: u32,
}

impl SweepSummary {
    pub fn count(&self, s: TrialState) -> u32 {
        self.counts.get(&s).copied().unwrap_or(0)
    }

    /// No trial is waiting or running, and none is still to be proposed.
    pub fn is_done(&self) -> bool {
        TrialState::ALL.iter().filter(|s| !s.is_terminal()).all(|s| self.count(*s) == 0) && self.total >= self.planned
    }

    /// The state users see: an active sweep with nothing left to run is `done`, so a listing never
    /// says `active` of a sweep whose trials have all finished. The stored state stays `active`
    /// (trials added by a resubmission or a retry run without further ado).
    pub fn shown_state(&self) -> &str {
        if self.state == "active" && self.is_done() {
            "done"
        } else {
            &self.state
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    pub trial_id: String,
    pub index: u32,
    pub state: TrialState,
    pub attempt: u32,
    pub agent: Option<String>,
    pub last_error: Option<String>,
    pub params_json: String,
    /// Metrics of its output its agents could not record: `` `name`: why ``, oldest first.
    pub warnings: Vec<String>,
}

/// Which trials [`Store::trial_records`] reads.
#[derive(Clone, Copy)]
enum Which<'a> {
    Chosen(Chosen),
    One(&'a str),
}

/// Where the Parquet sink stands for one sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepCursor {
    pub name: String,
    /// The highest version of its trials (schema V8).
    pub trials_version: i64,
    pub last_metric_seq: i64,
    /// The highest sequence number of its schedule's decisions; 0 without any.
    pub last_decision_seq: i64,
    /// Some trial is waiting or running.
    pub open: bool,
}

impl Store {
    /// Stores the sweep and whatever trials it does not have yet. Trials already stored keep their
    /// state and history, so submitting the same file twice adds nothing. A sweep of the same name
    /// is resubmitted only by its owner or an admin, and only with its terms unchanged unless
    /// `force` (see [`ownership::check_resubmission`]); a new sweep belongs to `caller`.
    pub fn submit(&mut self, sweep: &NewSweep, caller: &Caller, force: bool, now_ms: i64) -> Result<SubmitOutcome> {
        let tx = self.conn.transaction()?;
        store_sweep(&tx, &sweep.head(), ownership::definitions(&sweep.trials), caller, force, now_ms)?;
        let base: i64 =
            tx.query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM trials WHERE sweep = ?1", [&sweep.name], |r| r.get(0))?;
        let rows = sweep.trials.iter().map(|t| NewTrial {
            trial_id: t.id.0.clone(),
            index: t.index as i64,
            workload: t.workload.clone(),
            spec: serde_json::to_string(t).expect("trial specs serialize"),
            gpus: t.resources.gpus,
        });
        let added = insert_trials(&tx, &sweep.name, base, rows)?;
        let total = trial_count(&tx, &sweep.name)?;
        tx.commit()?;
        Ok(SubmitOutcome { added, total })
    }

    pub fn summary(&self, sweep: &str) -> Result<SweepSummary> {
        #[allow(clippy::type_complexity)]
        let (state, created_at_ms, owner, pause_reason, pause_error, search): (
            String,
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = self
            .conn
            .query_row(
                "SELECT state, created_at_ms, owner, pause_reason, pause_error, search FROM sweeps WHERE name = ?1",
                [sweep],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()?
            .ok_or_else(|| Error::UnknownSweep(sweep.to_string()))?;
        let mut counts = BTreeMap::new();
        let mut q = self.conn.prepare_cached(
            "SELECT state, COUNT(*), SUM(MAX(attempt - 1 - segments, 0)), MAX(generation)
             FROM trials WHERE sweep = ?1 GROUP BY state",
        )?;
        let (mut total, mut retries, mut generation) = (0, 0, 0);
        let rows = q.query_map([sweep], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, u32>(2)?, r.get::<_, u32>(3)?))
        })?;
        for row in rows {
            let (s, n, again, deepest) = row?;
            counts.insert(s.parse().map_err(Error::Corrupt)?, n);
            total += n;
            retries += again;
            generation = generation.max(deepest);
        }
        // A cancelled sweep proposes nothing more.
        let planned = if state == "active" { super::proposals::planned(search.as_deref()) } else { 0 };
        Ok(SweepSummary {
            name: sweep.to_string(),
            state,
            owner,
            created_at_ms,
            counts,
            total,
            retries,
            pause_reason,
            pause_error,
            waiting: None,
            rungs: Vec::new(),
            planned,
            generation,
        })
    }

    /// UnknownSweep unless `sweep` is stored: one lookup, where [`Store::summary`] counts its trials.
    pub(super) fn known_sweep(&self, sweep: &str) -> Result<()> {
        let mut q = self.conn.prepare_cached("SELECT 1 FROM sweeps WHERE name = ?1")?;
        if q.exists([sweep])? {
            Ok(())
        } else {
            Err(Error::UnknownSweep(sweep.to_string()))
        }
    }

    pub fn sweep_names(&self) -> Result<Vec<String>> {
        let mut q = self.conn.prepare("SELECT name FROM sweeps ORDER BY seq")?;
        let names = q.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(names)
    }

    /// The chosen trials of a sweep, in queue order ([`Chosen`]).
    pub fn trials(&self, sweep: &str, chosen: Chosen) -> Result<Vec<TrialRecord>> {
        self.known_sweep(sweep)?;
        self.trial_records(sweep, Which::Chosen(chosen))
    }

    /// One trial of a sweep; NotFound names the sweep when the trial is not in it.
    pub fn trial(&self, sweep: &str, trial_id: &str) -> Result<TrialRecord> {
        self.known_sweep(sweep)?;
        let found = self.trial_records(sweep, Which::One(trial_id))?;
        found.into_iter().next().ok_or_else(|| Error::NotFound(format!("trial {trial_id} in sweep {sweep}")))
    }

    /// Trials of `sweep` in queue order, with their warnings.
    fn trial_records(&self, sweep: &str, which: Which) -> Result<Vec<TrialRecord>> {
        // Separate statements rather than `?2 IS NULL OR ...`, so one trial is found by its key.
        type Args = Vec<rusqlite::types::Value>;
        let (trials, warned, trial_args, warning_args): (String, &str, Args, Args) = match which {
            Which::Chosen(chosen) => (
                format!("WHERE t.sweep = ?1 {}", chosen.clause()),
                "WHERE sweep = ?1",
                super::trial_rows::args(sweep, chosen).collect(),
                vec![sweep.to_string().into()],
            ),
            Which::One(id) => {
                let args = vec![sweep.to_string().into(), id.to_string().into()];
                (
                    "WHERE t.sweep = ?1 AND t.trial_id = ?2".into(),
                    "WHERE sweep = ?1 AND trial_id = ?2",
                    args.clone(),
                    args,
                )
            }
        };
        let mut q = self.conn.prepare(&format!(
            "SELECT t.trial_id, t.idx, t.state, t.attempt, t.agent, t.last_error, t.spec FROM trials t {trials}"
        ))?;
        let rows = q.query_map(rusqlite::params_from_iter(trial_args), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, u32>(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        let mut warnings: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        let mut q = self.conn.prepare(&format!(
            "SELECT trial_id, field, message FROM trial_warnings {warned} ORDER BY trial_id, recorded_at_ms, field"
        ))?;
        let warning_rows = q.query_map(rusqlite::params_from_iter(warning_args), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })?;
        for w in warning_rows {
            let (trial, field, message) = w?;
            let line = if field.is_empty() { message } else { format!("metric `{field}` skipped: {message}") };
            warnings.entry(trial).or_default().push(line);
        }
        let mut out = Vec::new();
        for row in rows {
            let (trial_id, index, state, attempt, agent, last_error, spec) = row?;
            let spec = parse_spec(&spec)?;
            let warnings = warnings.remove(&trial_id).unwrap_or_default();
            out.push(TrialRecord {
                trial_id,
                index,
                state: state.parse().map_err(Error::Corrupt)?,
                attempt,
                agent,
                last_error,
                params_json: serde_json::Value::Object(spec.params).to_string(),
                warnings,
            });
        }
        Ok(out)
    }

    /// Where each sweep's trials and metrics stand, for the Parquet sink.
    pub fn cursors(&self) -> Result<Vec<SweepCursor>> {
        let mut q = self.conn.prepare_cached(
            "SELECT s.name, s.trials_version, s.last_metric_seq,
                    EXISTS (SELECT 1 FROM trials t WHERE t.state IN ('pending', 'leased', 'running', 'paused') AND t.sweep = s.name)
                    OR (s.search IS NOT NULL AND s.state = 'active'
                        AND (SELECT COUNT(*) FROM trials t WHERE t.sweep = s.name) < json_extract(s.search, '$.trials')),
                    (SELECT COALESCE(MAX(d.seq), 0) FROM decisions d WHERE d.sweep = s.name)
             FROM sweeps s ORDER BY s.seq",
        )?;
        let rows = q.query_map([], |r| {
            Ok(SweepCursor {
                name: r.get(0)?,
                trials_version: r.get(1)?,
                last_metric_seq: r.get(2)?,
                open: r.get(3)?,
                last_decision_seq: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

pub(super) fn sweep_policy(tx: &rusqlite::Connection, sweep: &str) -> Result<Policy> {
    tx.query_row("SELECT max_attempts, max_lost, retry_backoff_ms FROM sweeps WHERE name = ?1", [sweep], |r| {
        Ok(Policy { max_attempts: r.get(0)?, max_lost: r.get(1)?, retry_backoff_ms: r.get(2)? })
    })
    .optional()?
    .ok_or_else(|| Error::UnknownSweep(sweep.to_string()))
}

pub(super) fn parse_spec(json: &str) -> Result<TrialSpec> {
    serde_json::from_str(json).map_err(|e| Error::Corrupt(format!("trial spec: {e}")))
}

/// What a submission says of its sweep besides the trials.
pub struct SweepHead<'a> {
    pub name: &'a str,
    pub source: &'a str,
    pub source_path: &'a str,
    pub policy: Policy,
    pub schedule: Option<&'a str>,
    pub search: Option<&'a str>,
}

/// A trial about to be queued, its spec already as stored.
pub(super) struct NewTrial {
    pub trial_id: String,
    /// Its index in the sweep file: it queues at the submission's base plus this.
    pub index: i64,
    pub workload: String,
    pub spec: String,
    pub gpus: u32,
}

/// Creates the sweep, or updates a stored one with the submission's terms once
/// [`ownership::check_resubmission`] allows it. `definitions` are those of every trial submitted;
/// none leaves the stored definition as it is. A new sweep belongs to `caller`.
pub(super) fn store_sweep(
    tx: &Transaction,
    sweep: &SweepHead,
    definitions: Vec<serde_json::Value>,
    caller: &Caller,
    force: bool,
    now_ms: i64,
) -> Result<()> {
    let submitted = Terms { policy: sweep.policy, definitions, schedule: sweep.schedule.map(str::to_string) };
    // A submission without trials leaves the stored definition as it is.
    let definition = (!submitted.definitions.is_empty())
        .then(|| serde_json::to_string(&submitted.definitions).expect("definitions serialize"));
    let stored = super::owners::stored(tx, sweep.name)?;
    if let Some(stored) = &stored {
        ownership::check_resubmission(sweep.name, stored.owner.as_deref(), &stored.terms, &submitted, caller, force)?;
        tx.execute(
            // Resubmitting resumes a paused sweep: only failures from now on count towards
            // pausing it again (SQLite evaluates every expression on the row as it was).
            "UPDATE sweeps SET state = 'active', source = ?2, source_path = ?3, max_attempts = ?4, max_lost = ?5, retry_backoff_ms = ?6,
                    definition = COALESCE(?7, definition), schedule = ?8, search = ?9, pause_reason = NULL, pause_error = NULL,
                    failures_from_lease = CASE WHEN state = 'paused' THEN (SELECT COALESCE(MAX(lease_id), 0) FROM attempts)
                                               ELSE failures_from_lease END
             WHERE name = ?1",
            params![sweep.name, sweep.source, sweep.source_path, sweep.policy.max_attempts, sweep.policy.max_lost, sweep.policy.retry_backoff_ms, definition, sweep.schedule, sweep.search],
        )?;
    } else {
        let seq: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM sweeps", [], |r| r.get(0))?;
        tx.execute(
            "INSERT INTO sweeps (name, seq, created_at_ms, state, source, source_path, max_attempts, max_lost, retry_backoff_ms, owner, definition, schedule, search)
             VALUES (?1, ?2, ?3, 'active', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                sweep.name,
                seq,
                now_ms,
                sweep.source,
                sweep.source_path,
                sweep.policy.max_attempts,
                sweep.policy.max_lost,
                sweep.policy.retry_backoff_ms,
                caller.name(),
                definition,
                sweep.schedule,
                sweep.search
            ],
        )?;
    }
    Ok(())
}

/// Queues the trials the sweep does not have yet (by id), each at `base` plus its index: new
/// trials of a changed file queue after the ones already there. Those added are one change of the
/// sweep's trials, for the Parquet sink. Returns how many were added.
pub(super) fn insert_trials(
    tx: &Transaction,
    sweep: &str,
    base: i64,
    trials: impl Iterator<Item = NewTrial>,
) -> Result<u32> {
    // The trials one call adds are one change of the sweep's trials (schema V8).
    let version: i64 = tx.query_row("SELECT trials_version + 1 FROM sweeps WHERE name = ?1", [sweep], |r| r.get(0))?;
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO trials (sweep, trial_id, idx, workload, spec, gpus, state, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7)",
    )?;
    let mut added = 0u32;
    for t in trials {
        added +=
            insert.execute(params![sweep, t.trial_id, base + t.index, t.workload, t.spec, t.gpus, version])? as u32;
    }
    if added > 0 {
        tx.execute("UPDATE sweeps SET trials_version = ?2 WHERE name = ?1", params![sweep, version])?;
    }
    Ok(added)
}

pub(super) fn trial_count(tx: &rusqlite::Connection, sweep: &str) -> Result<u32> {
    Ok(tx.query_row("SELECT COUNT(*) FROM trials WHERE sweep = ?1", [sweep], |r| r.get(0))?)
}
