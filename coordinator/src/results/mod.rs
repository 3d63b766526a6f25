//! Parquet results that users query with DuckDB and pandas: one `trials.parquet` per sweep and
//! append-only `metrics/part-*.parquet` files. The folder layout and column names are a contract
//! with users' notebooks (DESIGN.md, "Results layout"), so nothing here renames a column.

mod atomic;
mod metrics_parts;
mod params_columns;
mod parquet_io;
mod trials_table;

use std::path::{Path, PathBuf};

pub use metrics_parts::{last_written_seq, read_metrics, write_metrics_part, MetricRow};
pub use trials_table::{read_trials_table, write_trials_table, TrialRow};

/// File name of the per-sweep trials table, inside [`sweep_dir`].
pub const TRIALS_FILE: &str = "trials.parquet";
/// Folder of the metrics part files, inside [`sweep_dir`].
pub const METRICS_DIR: &str = "metrics";

/// Folder of one sweep's results: `<root>/<sweep>`.
pub fn sweep_dir(root: &Path, sweep: &str) -> PathBuf {
    root.join(sweep)
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
    fn error_messages_are_lowercase_and_name_the_file() {
        let err = ResultsError::PartName { path: PathBuf::from("r/s/metrics/part-x.parquet") };
        let text = err.to_string();
        assert!(text.starts_with("unexpected file name r/s/metrics/part-x.parquet"));
    }
}
