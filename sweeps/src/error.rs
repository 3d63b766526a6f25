//! Errors in sweep files. Each one names the file, the key and what was expected.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not valid TOML: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: key `{key}`: expected {expected}")]
    Invalid { file: PathBuf, key: String, expected: String },
}

impl SpecError {
    pub fn invalid(file: &std::path::Path, key: &str, expected: impl Into<String>) -> Self {
        SpecError::Invalid { file: file.to_path_buf(), key: key.to_string(), expected: expected.into() }
    }
}
