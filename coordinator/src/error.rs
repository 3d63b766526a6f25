//! The coordinator's errors, and their one mapping to gRPC status codes.

use crate::results::ResultsError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown sweep `{0}`")]
    UnknownSweep(String),
    #[error("unknown {0}")]
    NotFound(String),
    #[error("unknown agent `{0}`: register again")]
    UnknownAgent(String),
    /// `sweep agents --unquarantine NAME` named no agent.
    #[error("no agent has the id or name `{0}`: see `sweep agents`")]
    NoSuchAgent(String),
    #[error("lease {0} is no longer current (expired, superseded or finished)")]
    StaleLease(i64),
    #[error("lease {lease_id} is of trial {trial}, which is {state}: its results are final")]
    TrialFinished { lease_id: i64, trial: String, state: &'static str },
    #[error("{0}")]
    InvalidArgument(String),
    /// The coordinator ended the trial for a reason retrying cannot change.
    #[error("{0}")]
    Refused(String),
    /// The caller may not do this: a lease or agent of another registration, a sweep of another user.
    #[error("{0}")]
    PermissionDenied(String),
    /// The request conflicts with what is stored (a resubmission that changes a sweep).
    #[error("{0}")]
    Conflict(String),
    #[error("store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("results: {0}")]
    Results(#[from] ResultsError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("store record is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::UnknownSweep(_) | Error::UnknownAgent(_) | Error::NotFound(_) | Error::NoSuchAgent(_) => {
                tonic::Status::not_found(message)
            }
            Error::StaleLease(_) | Error::Refused(_) | Error::TrialFinished { .. } | Error::Conflict(_) => {
                tonic::Status::failed_precondition(message)
            }
            Error::PermissionDenied(_) => tonic::Status::permission_denied(message),
            Error::InvalidArgument(_) => tonic::Status::invalid_argument(message),
            Error::Store(_) | Error::Results(_) | Error::Io(_) | Error::Corrupt(_) => {
                tracing::error!(error = %message, "internal error");
                tonic::Status::internal(message)
            }
        }
    }
}
