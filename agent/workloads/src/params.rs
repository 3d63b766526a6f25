//! Checks of a trial's resolved parameters against the workload catalogue in `sweep-spec`, with
//! messages that name the key: the first line of defence before a workload's own typed parsing.

use crate::error::TrialError;
use serde_json::{Map, Value};
use sweep_spec::workloads::Workload;

/// Unknown, missing and mistyped keys, reported against the catalogue so the message names the key.
pub fn check(params: &Map<String, Value>, workload: &Workload) -> Result<(), TrialError> {
    workload.check_resolved(params).map_err(TrialError::bad_config)
}

pub fn at_least(key: &str, value: i64, min: i64) -> Result<usize, TrialError> {
    if value >= min {
        Ok(value as usize)
    } else {
        Err(TrialError::bad_config(format!("params.{key}: expected an integer >= {min}, got {value}")))
    }
}

/// The integer `key` of checked `params`, refused above `max`: the bound on a key that sizes memory,
/// so that a typo cannot ask for terabytes.
pub fn int_at_most(params: &Map<String, Value>, key: &str, max: i64) -> Result<i64, TrialError> {
    let v = params[key].as_i64().expect("checked integer");
    if v > max {
        Err(TrialError::bad_config(format!("params.{key}: expected at most {max}, got {v}")))
    } else {
        Ok(v)
    }
}

/// A count that the workload keeps as a u32 (steps, epochs), or an error naming the key.
pub fn fits_u32(key: &str, value: i64) -> Result<u32, TrialError> {
    u32::try_from(value)
        .map_err(|_| TrialError::bad_config(format!("params.{key}: expected at most {}, got {value}", u32::MAX)))
}

pub fn in_range(key: &str, value: f64, ok: bool, expected: &str) -> Result<f64, TrialError> {
    if ok && value.is_finite() {
        Ok(value)
    } else {
        Err(TrialError::bad_config(format!("params.{key}: expected {expected}, got {value}")))
    }
}

/// `name`, `Display` and `FromStr` of a parameter's choices: `named!(Ty, "key", Ty::A => "a",
/// ...)`; parsing an unknown name says which were expected and names the key.
macro_rules! named {
    ($ty:ty, $key:literal, $($variant:path => $name:literal),+) => {
        impl $ty {
            pub fn name(self) -> &'static str {
                match self { $($variant => $name),+ }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<$ty, String> {
                match s {
                    $($name => Ok($variant),)+
                    other => Err(format!(concat!($key, ": expected one of {}, got \"{}\""), [$($name),+].join(", "), other)),
                }
            }
        }
    };
}
pub(crate) use named;

/// The shipped studies (`sweeps/studies/*.toml`) of `workload`, each with its expanded trials, for
/// tests that check every trial parses before it reaches a cluster.
#[cfg(test)]
pub fn shipped_studies(workload: &Workload) -> Vec<(std::path::PathBuf, Vec<sweep_spec::TrialSpec>)> {
    let studies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/studies");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&studies).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let file = sweep_spec::SweepFile::read(&path).unwrap();
        if file.workload == workload.name {
            out.push((path, sweep_spec::expand(&file).unwrap()));
        }
    }
    out
}
