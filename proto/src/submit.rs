//! The submission of a parsed sweep file: one builder for the CLI, the benchmark and the tests.

use crate::v1::{SubmitSweepRequest, Trial};
use sweep_spec::{SweepFile, TrialSpec};

impl SubmitSweepRequest {
    /// `source` is the file's text and `source_path` where it was read, kept with the sweep.
    pub fn from_file(
        file: &SweepFile,
        trials: &[TrialSpec],
        source: String,
        source_path: String,
    ) -> SubmitSweepRequest {
        SubmitSweepRequest {
            name: file.name.clone(),
            source,
            source_path,
            max_attempts: file.retry.max_attempts,
            max_lost: file.retry.max_lost,
            retry_backoff_ms: file.retry.backoff_ms,
            trials: trials.iter().map(Trial::from).collect(),
            force: false,
        }
    }
}
