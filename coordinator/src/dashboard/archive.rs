//! Finished sweeps read back from a results folder (`sweep ui --results DIR`), with no coordinator:
//! each sweep's `trials.parquet` (with its change parts) and metric parts, held in memory in the
//! shapes the dashboard serves. Read-only: nothing here writes to the folder.

use super::table::SweepTable;
use crate::results::{self, DecisionRow, TrialRow};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One sweep as its results files hold it.
pub struct ArchivedSweep {
    pub name: String,
    pub trials: Vec<TrialRow>,
    pub table: Arc<tokio::sync::Mutex<SweepTable>>,
    /// Each trial's curves: metric, then (epoch, value) in epoch order, the latest attempt's value
    /// where several reported an epoch.
    pub curves: HashMap<String, HashMap<String, Vec<(i64, f64)>>>,
    pub decisions: Vec<DecisionRow>,
    /// The earliest start of any trial, microseconds since the epoch.
    pub started_at_us: Option<i64>,
}

pub struct Archive {
    pub root: PathBuf,
    pub sweeps: Vec<ArchivedSweep>,
}

impl Archive {
    /// Reads every sweep folder under `root` that holds a `trials.parquet`. A folder whose name is
    /// not a sweep name, or that is a symbolic link, is passed over.
    pub fn read(root: &Path) -> Result<Archive, String> {
        let entries =
            std::fs::read_dir(root).map_err(|e| format!("reading the results folder {}: {e}", root.display()))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("reading the results folder {}: {e}", root.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && sweep_spec::file::is_safe_name(&name) && entry.path().join(results::TRIALS_FILE).is_file() {
                names.push(name);
            }
        }
        names.sort();
        let sweeps = names.into_iter().map(|name| read_sweep(root, name)).collect::<Result<_, _>>()?;
        Ok(Archive { root: root.to_path_buf(), sweeps })
    }

    pub fn sweep(&self, name: &str) -> Option<&ArchivedSweep> {
        self.sweeps.iter().find(|s| s.name == name)
    }
}

fn read_sweep(root: &Path, name: String) -> Result<ArchivedSweep, String> {
    let dir = results::checked_sweep_dir(root, &name).map_err(|e| e.to_string())?;
    let trials = results::read_current_trials(&dir).map_err(|e| e.to_string())?;
    let mut latest: HashMap<(String, String, i64), (i32, f64)> = HashMap::new();
    for row in results::read_metrics(&dir).map_err(|e| e.to_string())? {
        let key = (row.trial_id, row.metric, row.epoch as i64);
        match latest.get(&key) {
            Some((attempt, _)) if *attempt > row.attempt => {}
            _ => {
                latest.insert(key, (row.attempt, row.value));
            }
        }
    }
    let mut curves: HashMap<String, HashMap<String, Vec<(i64, f64)>>> = HashMap::new();
    for ((trial, metric, epoch), (_, value)) in latest {
        curves.entry(trial).or_default().entry(metric).or_default().push((epoch, value));
    }
    for points in curves.values_mut().flat_map(|m| m.values_mut()) {
        points.sort_by_key(|p| p.0);
    }
    let decisions = results::read_decisions_table(&dir).map_err(|e| e.to_string())?;
    let mut table = SweepTable::default();
    table.upsert(&trials);
    let started_at_us = trials.iter().filter_map(|t| t.started_at_us).min();
    Ok(ArchivedSweep {
        name,
        trials,
        table: Arc::new(tokio::sync::Mutex::new(table)),
        curves,
        decisions,
        started_at_us,
    })
}
