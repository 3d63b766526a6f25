//! What changed in a sweep's trials since `trials.parquet` was last written. Rewriting the whole
//! table costs time in proportion to the sweep (seconds at a million trials), so between rewrites
//! the coordinator writes only the trials that changed, one row each with the columns of
//! `trials.parquet`, as `trial-changes/part-<first_version>-<last_version>.parquet`. Each row's
//! `version` says how recent it is: a trial's current row is its row with the highest version,
//! whichever file holds it ([`read_current_trials`]). When `trials.parquet` is written again it
//! holds every change, and the parts it covers are removed ([`remove_trial_changes_upto`]).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::atomic::{ensure_dir, refuse_link};
use super::part_files::{list_parts, part_name, remove_stale_temporaries};
use super::trials_table::{read_trials_table, write_trials_file, TrialRow};
use super::{ResultsError, TRIALS_FILE, TRIAL_CHANGES_DIR};

/// Writes the rows of trials changed in versions `first_version..=last_version` as one part.
/// The sweep's folder and its `trial-changes/` must be real folders, not symbolic links.
pub fn write_trial_changes(
    sweep_dir: &Path,
    first_version: i64,
    last_version: i64,
    rows: &[TrialRow],
) -> Result<PathBuf, ResultsError> {
    let path = sweep_dir.join(TRIAL_CHANGES_DIR).join(part_name(first_version, last_version));
    if first_version < 0 || first_version > last_version {
        return Err(ResultsError::SeqRange { path, first_seq: first_version, last_seq: last_version });
    }
    ensure_dir(sweep_dir)?;
    write_trials_file(&path, rows)?;
    Ok(path)
}

/// The highest version the sweep's change parts hold, or None. Removes leftover temporaries, so
/// call it at startup, before this process writes a part.
pub fn last_trial_change(sweep_dir: &Path) -> Result<Option<i64>, ResultsError> {
    let dir = sweep_dir.join(TRIAL_CHANGES_DIR);
    refuse_link(sweep_dir)?;
    refuse_link(&dir)?;
    remove_stale_temporaries(&dir)?;
    Ok(list_parts(&dir)?.iter().map(|p| p.last).max())
}

/// Removes the change parts whose every row `trials.parquet` now holds (their last version is at
/// most `version`); with `None`, all of them.
pub fn remove_trial_changes_upto(sweep_dir: &Path, version: Option<i64>) -> Result<(), ResultsError> {
    let dir = sweep_dir.join(TRIAL_CHANGES_DIR);
    refuse_link(&dir)?;
    for part in list_parts(&dir)? {
        if version.is_none_or(|v| part.last <= v) {
            fs::remove_file(&part.path).map_err(ResultsError::io(&part.path))?;
        }
    }
    Ok(())
}

/// Every trial of the sweep as it stands now: the rows of `trials.parquet`, each replaced by its
/// newest row in the change parts, then the trials only the parts hold, in the order they first
/// appear. An empty list when nothing was written yet. The coordinator may rewrite the table and
/// remove parts meanwhile; a read that saw either happen is made again.
pub fn read_current_trials(sweep_dir: &Path) -> Result<Vec<TrialRow>, ResultsError> {
    let table = sweep_dir.join(TRIALS_FILE);
    let written = || fs::metadata(&table).and_then(|m| m.modified()).ok();
    let mut tries = 0;
    loop {
        tries += 1;
        let before = written();
        match read_table_and_changes(sweep_dir, &table) {
            Ok(rows) if written() == before => return Ok(rows),
            Err(ResultsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && tries < 5 => {}
            Ok(_) if tries < 5 => {}
            other => return other,
        }
    }
}

fn read_table_and_changes(sweep_dir: &Path, table: &Path) -> Result<Vec<TrialRow>, ResultsError> {
    let mut rows = match table.exists() {
        true => read_trials_table(table)?,
        false => Vec::new(),
    };
    let mut at: HashMap<String, usize> = rows.iter().enumerate().map(|(i, r)| (r.trial_id.clone(), i)).collect();
    for part in list_parts(&sweep_dir.join(TRIAL_CHANGES_DIR))? {
        for row in read_trials_table(&part.path)? {
            match at.get(&row.trial_id) {
                Some(&i) if rows[i].version >= row.version => {}
                Some(&i) => rows[i] = row,
                None => {
                    at.insert(row.trial_id.clone(), rows.len());
                    rows.push(row);
                }
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{trials_table_version, write_trials_table};

    fn row(id: &str, status: &str, version: i64) -> TrialRow {
        TrialRow {
            sweep: "s".into(),
            trial_id: id.into(),
            workload: "command".into(),
            status: status.into(),
            attempts: 1,
            agent: None,
            started_at_us: None,
            finished_at_us: None,
            duration_s: None,
            params: serde_json::Map::new(),
            finals: Default::default(),
            last_error: None,
            exit_code: None,
            version,
            rung: None,
            epochs_budget: None,
            parent_trial_id: None,
            copied_epoch: None,
            generation: 0,
        }
    }

    fn current(dir: &Path) -> Vec<(String, String)> {
        read_current_trials(dir).unwrap().into_iter().map(|r| (r.trial_id, r.status)).collect()
    }

    #[test]
    fn the_newest_row_of_each_trial_wins_whichever_file_holds_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        assert!(read_current_trials(&dir).unwrap().is_empty(), "nothing written yet");
        write_trials_table(&dir, &[row("a", "pending", 1), row("b", "pending", 1)]).unwrap();
        assert_eq!(trials_table_version(&dir).unwrap(), Some(1));
        write_trial_changes(&dir, 2, 3, &[row("a", "running", 3)]).unwrap();
        write_trial_changes(&dir, 4, 5, &[row("a", "succeeded", 5), row("c", "pending", 4)]).unwrap();
        assert_eq!(last_trial_change(&dir).unwrap(), Some(5));
        assert_eq!(
            current(&dir),
            [("a".into(), "succeeded".into()), ("b".into(), "pending".into()), ("c".into(), "pending".into())]
        );

        // The table catches up with the first part: that part goes, the later one stays and wins.
        write_trials_table(&dir, &[row("a", "running", 3), row("b", "pending", 1)]).unwrap();
        remove_trial_changes_upto(&dir, trials_table_version(&dir).unwrap()).unwrap();
        assert_eq!(last_trial_change(&dir).unwrap(), Some(5));
        assert_eq!(current(&dir)[0], ("a".into(), "succeeded".into()));
        remove_trial_changes_upto(&dir, None).unwrap();
        assert_eq!(last_trial_change(&dir).unwrap(), None);
        assert_eq!(current(&dir)[0], ("a".into(), "running".into()));
    }

    #[test]
    fn a_bad_range_and_a_linked_folder_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        assert!(matches!(write_trial_changes(&dir, 5, 4, &[]), Err(ResultsError::SeqRange { .. })));
        std::fs::create_dir_all(&dir).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join(TRIAL_CHANGES_DIR)).unwrap();
        assert!(write_trial_changes(&dir, 1, 1, &[row("a", "pending", 1)]).is_err());
        assert!(last_trial_change(&dir).is_err());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "nothing was written through the link");
    }
}
