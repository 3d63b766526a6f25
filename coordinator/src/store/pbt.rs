//! Population based training in the store. Every trial pauses at the end of each interval, its
//! value there recorded by `rungs::judge`; the checkpoint its agent kept is recorded here
//! (`kept_checkpoints`). An epoch is judged once every trial that can still reach it has, and
//! ended its attempt there ([`settle`]): the whole population's values at the epoch are known, so
//! the trials that happen to reach it first are not judged against a few early values. Each
//! trial waiting there then goes on, or, in the bottom quantile, is exploited: a new trial starts
//! from the checkpoint a top trial kept at that epoch, with that trial's parameters perturbed.
//! The new trial, its lineage (parent, copied epoch, generation), the end of the trial it
//! replaces and every decision are written in the transaction of the completion that made the
//! epoch whole, so a coordinator killed at any moment has judged the epoch once or not at all.
//! The rule itself is `sweep_spec::schedule::Pbt`.

use super::rungs::{self, Rung};
use crate::error::{Error, Result};
use rusqlite::{params, OptionalExtension, Transaction};
use sweep_spec::schedule::{Action, Pbt, Schedule};
use sweep_spec::{CopyFrom, TrialId, TrialSpec};

/// How far a trial trained, as an epoch waits for it: its highest judged epoch, or the epoch a
/// copy started from.
const PROGRESS: &str = "COALESCE(rung, copied_epoch, 0)";

/// Records that the trial's agent kept its checkpoint at `epoch`: later trials may copy it.
pub(super) fn record_kept(tx: &Transaction, sweep: &str, trial_id: &str, epoch: u32) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO kept_checkpoints (sweep, trial_id, epoch) VALUES (?1, ?2, ?3)",
        params![sweep, trial_id, epoch],
    )?;
    Ok(())
}

/// Judges the lowest epoch trials of `sweep` wait at undecided, once no trial can still reach it:
/// none queued or running at or below it, none paused below it.
pub(super) fn settle(tx: &Transaction, schedule: &Schedule, pbt: &Pbt, sweep: &str, now_ms: i64) -> Result<()> {
    let epoch: Option<u32> = tx
        .query_row(
            "SELECT MIN(t.epochs_budget) FROM trials t WHERE t.sweep = ?1 AND t.state = 'paused'",
            [sweep],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let Some(epoch) = epoch else { return Ok(()) };
    let blocked = tx
        .query_row(
            &format!(
                "SELECT 1 FROM trials WHERE sweep = ?1 AND (
                   (state IN ('pending', 'leased', 'running') AND {PROGRESS} <= ?2)
                   OR (state = 'paused' AND {PROGRESS} < ?2)) LIMIT 1"
            ),
            params![sweep, epoch],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if blocked {
        return Ok(());
    }
    let waiting: Vec<(String, Option<f64>)> = {
        let mut q = tx.prepare_cached(
            "SELECT t.trial_id, r.value FROM trials t
             JOIN rungs r ON r.sweep = t.sweep AND r.trial_id = t.trial_id AND r.epoch = t.epochs_budget
             WHERE t.sweep = ?1 AND t.state = 'paused' AND t.epochs_budget = ?2 ORDER BY t.idx",
        )?;
        let rows = q.query_map(params![sweep, epoch], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let index = pbt.rungs().iter().position(|e| *e == epoch).unwrap_or(0) as u32;
    let at = Rung { sweep, bracket: 0, epoch, index, now_ms };
    // Every value at the epoch: final, since no trial can reach it any more.
    let values = rungs::values_at(tx, sweep, 0, epoch, "")?;
    for (trial_id, value) in waiting {
        let others = rungs::values_at(tx, sweep, 0, epoch, &trial_id)?;
        let d = pbt.decide(&others, value, schedule.objective.mode);
        // Nothing to copy when no top trial kept a checkpoint here: the trial goes on.
        let exploited =
            d.action == Action::Exploit && exploit(tx, schedule, pbt, &values, sweep, &trial_id, epoch)?.is_some();
        let action = if exploited { Action::Exploit } else { Action::Continue };
        rungs::record(tx, &at, &trial_id, action, &schedule.objective.metric, value, &d)?;
        if exploited {
            rungs::stop_early_now(tx, sweep, &trial_id, now_ms)?;
        } else {
            rungs::set_budget(tx, sweep, &trial_id, pbt.budget_after(Some(epoch)))?;
            rungs::requeue(tx, sweep, &trial_id)?;
        }
    }
    Ok(())
}

/// The exploit of `trial_id`, judged at `epoch` in the bottom quantile: queues a trial that
/// starts from the checkpoint a top trial kept at that epoch, with that trial's parameters
/// perturbed, and returns its id; `values` are every value at the epoch. None when no trial of
/// the top quantile kept a checkpoint there (its agent could not, or a retry resumed past the
/// epoch without reporting it).
fn exploit(
    tx: &Transaction,
    schedule: &Schedule,
    pbt: &Pbt,
    values: &[Option<f64>],
    sweep: &str,
    trial_id: &str,
    epoch: u32,
) -> Result<Option<String>> {
    let candidates: Vec<(String, Option<f64>)> = {
        let mut q = tx.prepare_cached(
            "SELECT k.trial_id, r.value FROM kept_checkpoints k
             JOIN rungs r ON r.sweep = k.sweep AND r.epoch = k.epoch AND r.trial_id = k.trial_id
             WHERE k.sweep = ?1 AND k.epoch = ?2 AND k.trial_id <> ?3 ORDER BY k.trial_id",
        )?;
        let rows = q.query_map(params![sweep, epoch, trial_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let candidate_values: Vec<Option<f64>> = candidates.iter().map(|c| c.1).collect();
    let top = pbt.top(values, &candidate_values, schedule.objective.mode);
    if top.is_empty() {
        return Ok(None);
    }
    let seed = seed_of(trial_id, epoch);
    let parent_id = &candidates[pbt.parent(&top, seed)].0;
    let (parent_spec, generation): (String, u32) = tx.query_row(
        "SELECT spec, generation FROM trials WHERE sweep = ?1 AND trial_id = ?2",
        params![sweep, parent_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut spec: TrialSpec =
        serde_json::from_str(&parent_spec).map_err(|e| Error::Corrupt(format!("trial {parent_id} spec: {e}")))?;
    spec.params = pbt.explore(&spec.params, seed);
    spec.copy_from = Some(CopyFrom { trial_id: parent_id.clone(), epoch });
    let next_idx: i64 =
        tx.query_row("SELECT COALESCE(MAX(idx), -1) + 1 FROM trials WHERE sweep = ?1", [sweep], |r| r.get(0))?;
    spec.index = next_idx.clamp(0, u32::MAX as i64) as u32;
    spec.id = spec.copy_id(&TrialId(trial_id.to_string()));
    let child = spec.id.0.clone();
    super::sweeps::insert_trials(
        tx,
        sweep,
        next_idx,
        std::iter::once(super::sweeps::NewTrial {
            trial_id: child.clone(),
            index: 0,
            workload: spec.workload.clone(),
            spec: serde_json::to_string(&spec).expect("trial specs serialize"),
            gpus: spec.resources.gpus,
        }),
    )?;
    tx.execute(
        "UPDATE trials SET parent_trial_id = ?3, copied_epoch = ?4, generation = ?5, epochs_budget = ?6
         WHERE sweep = ?1 AND trial_id = ?2",
        params![sweep, child, parent_id, epoch, generation + 1, pbt.budget_after(Some(epoch))],
    )?;
    Ok(Some(child))
}

/// The seed of one exploit: the same for the same trial at the same epoch (FNV-1a of both).
fn seed_of(trial_id: &str, epoch: u32) -> u64 {
    trial_id
        .bytes()
        .chain(epoch.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
