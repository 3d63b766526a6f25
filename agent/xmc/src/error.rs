//! How an `xmc_tree` trial fails: a configuration that can never run (the trial process exits 78
//! and is not retried) or anything else.

#[derive(Debug, thiserror::Error)]
pub enum XmcError {
    /// The message names the key and what was expected, e.g.
    /// "params.branching: expected an integer >= 2, got 1".
    #[error("{0}")]
    BadConfig(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl XmcError {
    pub fn bad_config(message: impl Into<String>) -> XmcError {
        XmcError::BadConfig(message.into())
    }
}
