//! How a trial fails. The split matters to the coordinator: a bad configuration fails the trial at
//! once (exit 78), anything else may be retried under the sweep's policy (exit 1).

use sweep_spec::trial::EXIT_BAD_CONFIG;

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// The configuration can never run; the message names the parameter and what was expected.
    #[error("{0}")]
    BadConfig(String),
    /// Stopped on SIGTERM after saving a checkpoint; the next attempt resumes from it.
    #[error("stopped on request; a checkpoint was saved")]
    Interrupted,
    /// Trained to the epoch its attempt stops after (`SWEEP_STOP_AFTER_EPOCH`, a rung of a
    /// promoting schedule) and checkpointed there: the attempt ended well, exit 0.
    #[error("paused after epoch {0}, as the sweep's schedule asked; a checkpoint was saved")]
    Paused(u32),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Exit status of a trial that stopped on SIGTERM after checkpointing: 128 + SIGTERM, as a shell
/// reports a process ended by that signal.
pub const EXIT_INTERRUPTED: i32 = 143;

impl TrialError {
    pub fn bad_config(message: impl Into<String>) -> TrialError {
        TrialError::BadConfig(message.into())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            TrialError::BadConfig(_) => EXIT_BAD_CONFIG,
            TrialError::Interrupted => EXIT_INTERRUPTED,
            TrialError::Paused(_) => 0,
            TrialError::Other(_) => 1,
        }
    }
}

impl From<tch::TchError> for TrialError {
    fn from(e: tch::TchError) -> TrialError {
        TrialError::Other(e.into())
    }
}

/// A `[data]` table that names an unknown format, option or key is a configuration error; a data
/// set that cannot be read or written where the trial asked is not one in itself.
impl From<crate::data::DataError> for TrialError {
    fn from(e: crate::data::DataError) -> TrialError {
        use crate::data::DataError;
        match e {
            DataError::UnknownFormat { .. } | DataError::BadOption { .. } | DataError::UnknownKey { .. } => {
                TrialError::bad_config(e.to_string())
            }
            other => TrialError::Other(other.into()),
        }
    }
}

/// What a caught libtorch panic (tch panics on libtorch errors) says: its first line, since
/// libtorch's messages carry a C++ backtrace after it.
pub fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "libtorch failed".into());
    text.lines().next().unwrap_or_default().to_string()
}
