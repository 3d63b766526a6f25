//! Finished sweeps read back from a results folder (`sweep ui --results DIR`), with no coordinator:
//! each sweep's `trials.parquet` (with its change parts) and metric parts, held in memory in the
//! shapes the dashboard serves. Read-only: nothing here writes to the folder.

use super::table::SweepTable;
use crate::results::{self, DecisionRow, TrialRow};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A metric's points of one trial: (epoch, value) in epoch order.
pub type Points = Vec<(i64, f64)>;

/// One sweep as its results files hold it.
pub struct ArchivedSweep {
    pub name: String,
    pub trials: Vec<TrialRow>,
    pub table: Arc<tokio::sync::Mutex<SweepTable>>,
    /// Each trial's curves: (metric, as a position in `metrics`; (epoch, value) in epoch order),
    /// the latest attempt's value where several reported an epoch.
    pub curves: HashMap<String, Vec<(u32, Points)>>,
    /// The names of the metrics the curves hold.
    pub metrics: Vec<String>,
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
    // Rows a later attempt superseded are marked so; should a mark be missing (a stop between
    // writing a part and marking the rows before it), the highest attempt of an epoch still wins.
    let mut metrics: Vec<String> = Vec::new();
    let mut metric_at: HashMap<String, u32> = HashMap::new();
    // Per trial and metric: (epoch, attempt, value) as read.
    type Reported = HashMap<u32, Vec<(i64, i32, f64)>>;
    let mut points: HashMap<String, Reported> = HashMap::new();
    results::visit_metrics(&dir, |row| {
        if row.superseded {
            return;
        }
        let m = match metric_at.get(row.metric) {
            Some(&m) => m,
            None => {
                metrics.push(row.metric.to_string());
                metric_at.insert(row.metric.to_string(), metrics.len() as u32 - 1);
                metrics.len() as u32 - 1
            }
        };
        let trial = match points.get_mut(row.trial_id) {
            Some(t) => t,
            None => points.entry(row.trial_id.to_string()).or_default(),
        };
        trial.entry(m).or_default().push((row.epoch as i64, row.attempt, row.value));
    })
    .map_err(|e| e.to_string())?;
    let curves = points
        .into_iter()
        .map(|(trial, by_metric)| {
            let mut by_metric: Vec<(u32, Points)> = by_metric
                .into_iter()
                .map(|(m, mut p)| {
                    p.sort_by_key(|&(epoch, attempt, _)| (epoch, attempt));
                    // Of one epoch's rows, the last (the highest attempt) is kept.
                    let mut kept: Points = Vec::with_capacity(p.len());
                    for (epoch, _, value) in p {
                        match kept.last_mut() {
                            Some(last) if last.0 == epoch => last.1 = value,
                            _ => kept.push((epoch, value)),
                        }
                    }
                    (m, kept)
                })
                .collect();
            by_metric.sort_by_key(|(m, _)| *m);
            (trial, by_metric)
        })
        .collect();
    let decisions = results::read_decisions_table(&dir).map_err(|e| e.to_string())?;
    let mut table = SweepTable::default();
    table.upsert(&trials);
    let started_at_us = trials.iter().filter_map(|t| t.started_at_us).min();
    Ok(ArchivedSweep {
        name,
        trials,
        table: Arc::new(tokio::sync::Mutex::new(table)),
        curves,
        metrics,
        decisions,
        started_at_us,
    })
}

#[cfg(test)]
mod tests {
    use super::super::table::testing::row;
    use super::*;
    use crate::results::MetricRow;

    fn metric(trial: &str, attempt: i32, epoch: i32, value: f64, superseded: bool) -> MetricRow {
        MetricRow {
            sweep: "s1".into(),
            trial_id: trial.into(),
            attempt,
            epoch,
            step: epoch as i64,
            metric: "test_acc".into(),
            value,
            recorded_at_us: 0,
            superseded,
        }
    }

    #[test]
    fn a_results_folder_reads_back_with_the_latest_attempt_of_each_epoch() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("s1");
        std::fs::create_dir_all(&dir).unwrap();
        let mut trials = vec![row("t0", "succeeded", 0.1, "sgd", Some(0.9)), row("t1", "failed", 0.01, "adam", None)];
        for t in &mut trials {
            t.sweep = "s1".into();
        }
        results::write_trials_table(&dir, &trials).unwrap();
        // t0's epoch 2 was reported again by attempt 2, and marked; t1's second report of epoch 1
        // was not marked (a stop between writing a part and marking the rows before it).
        let first = [metric("t0", 1, 1, 0.5, false), metric("t0", 1, 2, 0.6, true), metric("t1", 1, 1, 0.1, false)];
        results::write_metrics_part(&dir, 1, 3, &first).unwrap();
        results::write_metrics_part(&dir, 4, 5, &[metric("t0", 2, 2, 0.9, false), metric("t1", 2, 1, 0.2, false)])
            .unwrap();
        // Passed over: a folder that is no sweep name, one without a trials table, and a link.
        std::fs::create_dir_all(root.path().join("not a sweep")).unwrap();
        std::fs::create_dir_all(root.path().join("empty")).unwrap();
        std::os::unix::fs::symlink(&dir, root.path().join("linked")).unwrap();

        let archive = Archive::read(root.path()).unwrap();
        let names: Vec<&str> = archive.sweeps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["s1"]);
        let s = archive.sweep("s1").unwrap();
        assert_eq!(s.trials.len(), 2);
        let curve = |trial: &str| s.curves[trial].iter().map(|(_, p)| p.clone()).next().unwrap();
        assert_eq!(curve("t0"), [(1, 0.5), (2, 0.9)]);
        assert_eq!(curve("t1"), [(1, 0.2)], "the higher attempt wins an unmarked epoch");
        assert_eq!(s.metrics, ["test_acc"]);
    }
}
