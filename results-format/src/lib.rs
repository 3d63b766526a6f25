//! Parquet results that users query with DuckDB and pandas: one `trials.parquet` per sweep and
//! append-only `metrics/part-*.parquet` files, with `trial-changes/part-*.parquet` holding what
//! changed in the trials since `trials.parquet` was last written, and `decisions.parquet` with what an
//! early-stopping schedule decided. The folder layout and column names are a contract
//! with users' notebooks (DESIGN.md, "Results layout"), so nothing here renames a column.

mod atomic;
mod decisions_table;
mod metrics_parts;
mod params_columns;
mod parquet_io;
mod part_files;
mod trial_changes;
mod trials_table;

use std::path::{Path, PathBuf};

pub use decisions_table::{read_decisions_table, write_decisions_table, DecisionRow, DECISIONS_FILE};
pub use metrics_parts::{
    last_written_seq, metric_parts, read_metrics, visit_metrics, write_metrics_part, MetricRow, MetricRowRef,
    PartSummary,
};
pub use trial_changes::{last_trial_change, read_current_trials, remove_trial_changes_upto, write_trial_changes};
pub use trials_table::{
    last_error_cell, read_trials_table, trials_table_version, write_trials_table, TrialRow, TrialsTableShape,
    TrialsTableWriter, MAX_LAST_ERROR,
};

/// File name of the per-sweep trials table, inside [`sweep_dir`].
pub const TRIALS_FILE: &str = "trials.parquet";
/// Folder of the metrics part files, inside [`sweep_dir`].
pub const METRICS_DIR: &str = "metrics";
/// Folder of the trials changed since `trials.parquet` was written, inside [`sweep_dir`].
pub const TRIAL_CHANGES_DIR: &str = "trial-changes";

/// Folder of one sweep's results: `<root>/<sweep>`.
///
/// # Panics
///
/// If `sweep` is not a safe sweep name (`sweep_spec::file::is_safe_name`): joining `..`, an
/// absolute path or a name with a separator would leave `root`. Every name that reaches the writer
/// was checked at submission, so this is an invariant; callers holding a name typed by a user call
/// [`checked_sweep_dir`] instead.
pub fn sweep_dir(root: &Path, sweep: &str) -> PathBuf {
    match checked_sweep_dir(root, sweep) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

/// [`sweep_dir`], refusing a name that would not stay one folder inside `root`.
pub fn checked_sweep_dir(root: &Path, sweep: &str) -> Result<PathBuf, ResultsError> {
    if !sweep_spec::file::is_safe_name(sweep) {
        return Err(ResultsError::UnsafeSweepName { root: root.to_path_buf(), sweep: sweep.to_string() });
    }
    Ok(root.join(sweep))
}

/// Everything that can go wrong reading or writing results. Every variant names the file, because
/// the user's next step is almost always to look at (or delete) that file.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parquet error on {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("arrow error on {path}: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow_schema::ArrowError,
    },
    #[error("unexpected schema in {path}: {message}")]
    Schema { path: PathBuf, message: String },
    #[error("invalid `params` json of trial {trial_id} in {path}: {message}")]
    ParamsJson { path: PathBuf, trial_id: String, message: String },
    #[error(
        "invalid sequence range {first_seq}..={last_seq} for a part in {path}: \
         expected 0 <= first_seq <= last_seq"
    )]
    SeqRange { path: PathBuf, first_seq: i64, last_seq: i64 },
    #[error(
        "unexpected file name {path}: expected part-<first_seq>-<last_seq>.parquet \
         with decimal sequence numbers"
    )]
    PartName { path: PathBuf },
    #[error(
        "sweep name {sweep:?} under {root}: expected one folder name (letters, digits, '-', '_' or '.', \
         not starting with '.')"
    )]
    UnsafeSweepName { root: PathBuf, sweep: String },
}

impl ResultsError {
    /// Adapter for `map_err` that attaches the file an i/o error happened on.
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn parquet(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> Self + '_ {
        move |source| Self::Parquet { path: path.to_path_buf(), source }
    }

    pub(crate) fn arrow(path: &Path) -> impl FnOnce(arrow_schema::ArrowError) -> Self + '_ {
        move |source| Self::Arrow { path: path.to_path_buf(), source }
    }

    pub(crate) fn schema(path: &Path, message: impl Into<String>) -> Self {
        Self::Schema { path: path.to_path_buf(), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_dir_joins_root_and_name() {
        assert_eq!(
            sweep_dir(Path::new("results"), "double-descent-cifar10"),
            PathBuf::from("results/double-descent-cifar10")
        );
    }

    #[test]
    fn unsafe_sweep_names_never_leave_the_root() {
        for bad in ["..", ".", "", "/etc", "a/b", "../x", ".hidden", "a\\b", "a\0b"] {
            let err = checked_sweep_dir(Path::new("results"), bad).unwrap_err();
            assert!(matches!(err, ResultsError::UnsafeSweepName { .. }), "{bad:?}");
            assert!(err.to_string().starts_with("sweep name"), "{err}");
            assert!(std::panic::catch_unwind(|| sweep_dir(Path::new("results"), bad)).is_err(), "{bad:?}");
        }
        assert_eq!(checked_sweep_dir(Path::new("r"), "a..b").unwrap(), PathBuf::from("r/a..b"));
    }

    #[test]
    fn error_messages_are_lowercase_and_name_the_file() {
        let err = ResultsError::PartName { path: PathBuf::from("r/s/metrics/part-x.parquet") };
        let text = err.to_string();
        assert!(text.starts_with("unexpected file name r/s/metrics/part-x.parquet"));
    }
}
