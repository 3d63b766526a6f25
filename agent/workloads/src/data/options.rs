//! Typed reads of the loader options (the [data] table of a sweep file, minus format and path).
//!
//! A key that is present with the wrong type is an error naming `data.<key>`; an absent key takes
//! the format's default.

use super::DataError;
use serde_json::{Map, Value};

fn bad(key: &str, expected: &str, got: &Value) -> DataError {
    DataError::BadOption { key: key.to_string(), expected: expected.to_string(), got: got.to_string() }
}

/// An integer >= 1, if the key is present.
pub(crate) fn opt_positive_int(options: &Map<String, Value>, key: &str) -> Result<Option<i64>, DataError> {
    match options.get(key) {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 1 => Ok(Some(n)),
            _ => Err(bad(key, "an integer >= 1", v)),
        },
    }
}

/// One of `choices` (the first is the default), if the key is present.
pub(crate) fn choice(
    options: &Map<String, Value>,
    key: &str,
    choices: &[&'static str],
) -> Result<&'static str, DataError> {
    match options.get(key) {
        None => Ok(choices[0]),
        Some(v) => v.as_str().and_then(|s| choices.iter().copied().find(|c| *c == s)).ok_or_else(|| {
            let list: Vec<String> = choices.iter().map(|c| format!("\"{c}\"")).collect();
            bad(key, &format!("one of {}", list.join(", ")), v)
        }),
    }
}
