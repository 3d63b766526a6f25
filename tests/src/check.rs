//! What a chaos run must leave behind, read from the Parquet files users read: every trial
//! succeeded, no (trial, attempt, epoch, metric) row twice, every epoch 1..=E present under some
//! attempt, and retried attempts resuming from their checkpoint instead of from epoch 1. Under an
//! early-stopping schedule a trial may also be `stopped_early`, with its epochs up to the rung it
//! was stopped at, by exactly one `stop` decision, its last; and no trial is judged twice at one
//! rung: its decisions there are `continue`, `stop`, `pause`, or `pause` then one `promote` or one
//! `stop` (a promoting schedule), never a second promotion. Under PBT a trial's `exploit` ends it
//! like a stop, and makes exactly one copy, whose lineage holds: its parent is in the sweep and
//! reported the epoch it copied, its generation is one more than its parent's, and it trained
//! every epoch after that one and none before.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use sweep_coordinator::results::{self, MetricRow};

/// Counts for the report; a clean run has zeros in every field named after a problem.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    pub trials: usize,
    pub rows: usize,
    pub duplicate_rows: usize,
    /// (trial, epoch) pairs of 1..=E that no attempt recorded.
    pub missing_epochs: usize,
    /// Attempts (number ≥ 2) that recorded at least one row.
    pub retried_attempts_with_rows: usize,
    /// Retried attempts that recorded an epoch an earlier attempt had surely checkpointed.
    pub rewound_attempts: usize,
    /// The subset of `rewound_attempts` that started again at epoch 1.
    pub restarted_from_zero: usize,
    /// Rows whose `attempt` metric differs from the attempt column they are filed under.
    pub misfiled_rows: usize,
    pub failed_trials: usize,
    /// Trials stopped by the schedule (allowed only under one).
    pub stopped_early: usize,
    /// `promote` decisions: paused trials that later values put inside the cut.
    pub promoted: usize,
    /// Trials PBT made as copies of others.
    pub copies: usize,
    /// Decisions that contradict the rules: a rung judged twice, a stop that is not a trial's
    /// last decision, a stopped trial without its stop or a stop of a trial that went on.
    pub bad_decisions: usize,
    /// Human-readable detail of every problem, for the failure message.
    pub problems: Vec<String>,
}

impl Findings {
    pub fn is_clean(&self) -> bool {
        self.duplicate_rows == 0
            && self.missing_epochs == 0
            && self.rewound_attempts == 0
            && self.misfiled_rows == 0
            && self.failed_trials == 0
            && self.bad_decisions == 0
    }
}

/// Reads `<results>/<sweep>/` and checks it against `trial_ids`, each with epochs 1..=`epochs`,
/// or, with `scheduled`, up to the rung a `stop` decision ended it at.
pub fn check_results(
    results_root: &Path,
    sweep: &str,
    trial_ids: &[String],
    epochs: u32,
    scheduled: bool,
) -> Result<Findings, String> {
    let dir = results::sweep_dir(results_root, sweep);
    let rows = results::read_metrics(&dir).map_err(|e| e.to_string())?;
    let table = results::read_trials_table(&dir.join(results::TRIALS_FILE)).map_err(|e| e.to_string())?;
    let decisions = results::read_decisions_table(&dir).map_err(|e| e.to_string())?;
    let stopped_at = check_decisions(&decisions, &table);
    let copied: HashMap<&str, u32> =
        table.iter().filter_map(|t| Some((t.trial_id.as_str(), t.copied_epoch? as u32))).collect();
    let mut f = check_rows(
        &rows,
        trial_ids,
        |id| copied.get(id).copied().unwrap_or(0),
        |id| stopped_at.0.get(id).map_or(epochs, |e| *e as u32),
    );
    f.bad_decisions += stopped_at.1.len();
    f.promoted = decisions.iter().filter(|d| d.action == "promote").count();
    f.problems.extend(stopped_at.1);
    let lineage = check_lineage(&table, &decisions, &rows);
    f.copies = copied.len();
    f.bad_decisions += lineage.len();
    f.problems.extend(lineage);
    for id in trial_ids {
        match table.iter().find(|t| &t.trial_id == id) {
            Some(t) if t.status == "succeeded" => {}
            Some(t) if scheduled && t.status == "stopped_early" => f.stopped_early += 1,
            Some(t) => {
                f.failed_trials += 1;
                f.problems.push(format!("trial {id}: trials.parquet says {}", t.status));
            }
            None => {
                f.failed_trials += 1;
                f.problems.push(format!("trial {id}: missing from trials.parquet"));
            }
        }
    }
    Ok(f)
}

/// The epoch each stopped trial was stopped at, and what contradicts the rules: a (trial, rung)
/// judged twice, a decision after a trial's stop, a `stopped_early` trial without a stop or a stop
/// of a trial that did not end `stopped_early`.
fn check_decisions(
    decisions: &[results::DecisionRow],
    table: &[results::TrialRow],
) -> (HashMap<String, i32>, Vec<String>) {
    let mut problems = Vec::new();
    let mut at_rung: HashMap<(&str, i32), Vec<&str>> = HashMap::new();
    let mut stopped_at: HashMap<String, i32> = HashMap::new();
    for d in decisions {
        let actions = at_rung.entry((&d.trial_id, d.epoch)).or_default();
        actions.push(&d.action);
        if !matches!(actions.as_slice(), ["continue" | "stop" | "pause" | "exploit"] | ["pause", "promote" | "stop"]) {
            problems.push(format!(
                "trial {}: decisions {actions:?} at the rung at epoch {} (judged or promoted twice)",
                d.trial_id, d.epoch
            ));
        }
        if let Some(stop) = stopped_at.get(&d.trial_id) {
            problems
                .push(format!("trial {}: decision at epoch {} after its stop at epoch {stop}", d.trial_id, d.epoch));
        }
        if d.action == "stop" || d.action == "exploit" {
            stopped_at.insert(d.trial_id.clone(), d.epoch);
        }
    }
    for t in table {
        let stopped = t.status == "stopped_early";
        if stopped != stopped_at.contains_key(&t.trial_id) {
            problems.push(format!(
                "trial {}: status {} but stop decisions {:?}",
                t.trial_id,
                t.status,
                stopped_at.get(&t.trial_id)
            ));
        }
    }
    (stopped_at, problems)
}

/// PBT's copies against the trials they copied: one copy per `exploit` decision, each with a
/// parent in the sweep that reported the epoch it copied, one generation below it.
fn check_lineage(table: &[results::TrialRow], decisions: &[results::DecisionRow], rows: &[MetricRow]) -> Vec<String> {
    let mut problems = Vec::new();
    let copies: Vec<&results::TrialRow> = table.iter().filter(|t| t.parent_trial_id.is_some()).collect();
    let exploits = decisions.iter().filter(|d| d.action == "exploit").count();
    if copies.len() != exploits {
        problems.push(format!("{} copies for {exploits} exploit decisions", copies.len()));
    }
    let reported: HashSet<(&str, i32)> =
        rows.iter().filter(|r| r.metric == "loss").map(|r| (r.trial_id.as_str(), r.epoch)).collect();
    for copy in copies {
        let (parent_id, epoch) = (copy.parent_trial_id.as_deref().unwrap_or_default(), copy.copied_epoch.unwrap_or(-1));
        let Some(parent) = table.iter().find(|t| t.trial_id == parent_id) else {
            problems.push(format!("copy {}: parent {parent_id} is not in the sweep", copy.trial_id));
            continue;
        };
        if copy.generation != parent.generation + 1 {
            problems.push(format!(
                "copy {}: generation {} under a parent of {}",
                copy.trial_id, copy.generation, parent.generation
            ));
        }
        if !reported.contains(&(parent_id, epoch)) {
            problems.push(format!(
                "copy {}: its parent {parent_id} never reported epoch {epoch}, which it copied",
                copy.trial_id
            ));
        }
    }
    problems
}

/// The row-level checks, without files; each trial trained from the epoch after `first` (0, or
/// the epoch a PBT copy started from) to `epochs`.
pub fn check_rows(
    rows: &[MetricRow],
    trial_ids: &[String],
    first: impl Fn(&str) -> u32,
    epochs: impl Fn(&str) -> u32,
) -> Findings {
    let mut f = Findings { trials: trial_ids.len(), rows: rows.len(), ..Findings::default() };
    let mut seen = HashSet::new();
    for r in rows {
        if !seen.insert((&r.trial_id, r.attempt, r.epoch, &r.metric)) {
            f.duplicate_rows += 1;
            f.problems
                .push(format!("duplicate row {} attempt {} epoch {} {}", r.trial_id, r.attempt, r.epoch, r.metric));
        }
        if r.metric == "attempt" && r.value != r.attempt as f64 {
            f.misfiled_rows += 1;
            f.problems.push(format!(
                "trial {} epoch {}: written by attempt {} but filed under {}",
                r.trial_id, r.epoch, r.value, r.attempt
            ));
        }
    }
    // trial -> attempt -> epochs (of the `loss` metric, which every epoch carries).
    let mut by_trial: BTreeMap<&str, BTreeMap<i32, BTreeSet<i32>>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.metric == "loss") {
        by_trial.entry(&r.trial_id).or_default().entry(r.attempt).or_default().insert(r.epoch);
    }
    let empty = BTreeMap::new();
    for id in trial_ids {
        let attempts = by_trial.get(id.as_str()).unwrap_or(&empty);
        let covered: BTreeSet<i32> = attempts.values().flatten().copied().collect();
        let start = first(id) as i32;
        let missing: Vec<i32> = (start + 1..=epochs(id) as i32).filter(|e| !covered.contains(e)).collect();
        if !missing.is_empty() {
            f.missing_epochs += missing.len();
            f.problems.push(format!("trial {id}: epochs {missing:?} missing; recorded {attempts:?}"));
        }
        // The script prints epoch e+1 only after checkpointing e, and an attempt's rows are all
        // stored while its lease is live, i.e. before the next attempt is leased. So an attempt
        // with max epoch m had surely checkpointed m-1 before any later attempt began.
        // A copy starts from its parent's checkpoint: its first attempt must not train before it.
        let mut surely_checkpointed = start;
        for (&attempt, eps) in attempts {
            let first = *eps.iter().next().expect("non-empty");
            if attempt >= 2 {
                f.retried_attempts_with_rows += 1;
            }
            if (attempt >= 2 || start > 0) && first <= surely_checkpointed {
                f.rewound_attempts += 1;
                if first == 1 {
                    f.restarted_from_zero += 1;
                }
                f.problems.push(format!(
                    "trial {id}: attempt {attempt} recorded epoch {first}, but an earlier attempt had checkpointed epoch {surely_checkpointed}"
                ));
            }
            let last = *eps.iter().next_back().expect("non-empty");
            surely_checkpointed = surely_checkpointed.max(last - 1);
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(trial: &str, attempt: i32, epoch: i32) -> Vec<MetricRow> {
        ["loss", "attempt"]
            .iter()
            .map(|m| MetricRow {
                sweep: "s".into(),
                trial_id: trial.into(),
                attempt,
                epoch,
                step: epoch as i64,
                metric: m.to_string(),
                value: if *m == "attempt" { attempt as f64 } else { 0.5 },
                recorded_at_us: 0,
                superseded: false,
            })
            .collect()
    }

    #[test]
    fn a_resumed_trial_is_clean() {
        // Attempt 1 reached epoch 3 (so checkpointed 2); attempt 2 redoes 3 and goes on.
        let rows: Vec<MetricRow> =
            [(1, 1), (1, 2), (1, 3), (2, 3), (2, 4)].iter().flat_map(|&(a, e)| row("t", a, e)).collect();
        let f = check_rows(&rows, &["t".into()], |_| 0, |_| 4);
        assert!(f.is_clean(), "{f:?}");
        assert_eq!(f.retried_attempts_with_rows, 1);
    }

    #[test]
    fn a_pbt_copy_trains_only_after_the_epoch_it_copied() {
        let rows: Vec<MetricRow> = [(1, 3), (1, 4)].iter().flat_map(|&(a, e)| row("c", a, e)).collect();
        assert!(check_rows(&rows, &["c".into()], |_| 2, |_| 4).is_clean());
        let from_scratch: Vec<MetricRow> = (1..=4).flat_map(|e| row("c", 1, e)).collect();
        assert_eq!(check_rows(&from_scratch, &["c".into()], |_| 2, |_| 4).rewound_attempts, 1);
    }

    #[test]
    fn gaps_rewinds_and_duplicates_are_found() {
        let mut rows: Vec<MetricRow> =
            [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)].iter().flat_map(|&(a, e)| row("t", a, e)).collect();
        rows.extend(row("t", 2, 2));
        let f = check_rows(&rows, &["t".into()], |_| 0, |_| 4);
        assert_eq!(f.missing_epochs, 1);
        assert_eq!(f.restarted_from_zero, 1);
        assert_eq!(f.duplicate_rows, 2);
    }
}
