//! Population based training in the store: the checkpoints agents kept at the end of each
//! interval (`kept_checkpoints`), and the exploit of a trial judged in the bottom quantile, made
//! in the transaction of the report that reached the epoch. The new trial, its lineage (parent,
//! copied epoch, generation) and the end of the trial it replaces are written together, so a
//! coordinator killed at any moment has made the copy once or not at all. The rule itself is
//! `sweep_spec::schedule::Pbt`.

use crate::error::{Error, Result};
use rusqlite::{params, Transaction};
use sweep_spec::schedule::{Pbt, Schedule};
use sweep_spec::{CopyFrom, TrialId, TrialSpec};

/// Records that the trial's agent kept its checkpoint at `epoch`: later trials may copy it.
pub(super) fn record_kept(tx: &Transaction, sweep: &str, trial_id: &str, epoch: u32) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO kept_checkpoints (sweep, trial_id, epoch) VALUES (?1, ?2, ?3)",
        params![sweep, trial_id, epoch],
    )?;
    Ok(())
}

/// The exploit of `trial_id`, judged at `epoch` in the bottom quantile: queues a trial that
/// starts from the checkpoint a top trial kept at that epoch, with that trial's parameters
/// perturbed, and returns its id. None when no trial of the top quantile has kept a checkpoint
/// there yet (their attempts may still be ending): the trial then goes on.
pub(super) fn exploit(
    tx: &Transaction,
    schedule: &Schedule,
    pbt: &Pbt,
    sweep: &str,
    trial_id: &str,
    epoch: u32,
) -> Result<Option<String>> {
    let values: Vec<Option<f64>> = {
        let mut q = tx.prepare_cached("SELECT value FROM rungs WHERE sweep = ?1 AND epoch = ?2")?;
        let rows = q.query_map(params![sweep, epoch], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
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
    let top = pbt.top(&values, &candidate_values, schedule.objective.mode);
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

impl super::Store {
    /// The most copies behind any trial of `sweep`: its PBT generation (0 for any other sweep).
    pub fn generation(&self, sweep: &str) -> Result<u32> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(generation), 0) FROM trials WHERE sweep = ?1", [sweep], |r| r.get(0))?)
    }
}
