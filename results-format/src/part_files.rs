//! Part files named by the range they hold: `part-<first>-<last>.parquet`, zero-padded so that name
//! order is range order. The metrics parts number rows by the store's sequence, the trial-change
//! parts by the sweep's trial version; both are listed, resumed from and cleaned up here.

use std::fs;
use std::path::{Path, PathBuf};

use super::atomic::is_temp_name;
use super::ResultsError;

/// Zero-padded so that for all realistic numbers (< 10^16) name order is range order, which is
/// what `ls` and DuckDB's glob show users.
pub(crate) fn part_name(first: i64, last: i64) -> String {
    format!("part-{first:016}-{last:016}.parquet")
}

/// A finished part file and the range its name declares.
pub(crate) struct Part {
    pub first: i64,
    pub last: i64,
    pub path: PathBuf,
}

/// Finished parts of `dir`, sorted by range (numerically, so order stays right even past the
/// 16-digit padding). A missing folder means nothing was written yet. Files that are not
/// `part-*.parquet` are ignored, but a `part-*.parquet` whose name does not parse is an error:
/// guessing its range could silently skip or repeat rows on resume.
pub(crate) fn list_parts(dir: &Path) -> Result<Vec<Part>, ResultsError> {
    let mut parts = Vec::new();
    for name in file_names(dir)? {
        if is_temp_name(&name) || !(name.starts_with("part-") && name.ends_with(".parquet")) {
            continue;
        }
        let path = dir.join(&name);
        let (first, last) = parse_part_name(&name).ok_or_else(|| ResultsError::PartName { path: path.clone() })?;
        parts.push(Part { first, last, path });
    }
    parts.sort_by_key(|p| (p.first, p.last));
    Ok(parts)
}

fn parse_part_name(name: &str) -> Option<(i64, i64)> {
    let range = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (first, last) = range.split_once('-')?;
    let parse = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (first, last) = (parse(first)?, parse(last)?);
    (first <= last).then_some((first, last))
}

/// Removes the temporaries of writes that never got renamed (a crash mid-write).
pub(crate) fn remove_stale_temporaries(dir: &Path) -> Result<(), ResultsError> {
    for name in file_names(dir)? {
        if is_temp_name(&name) {
            let path = dir.join(&name);
            fs::remove_file(&path).map_err(ResultsError::io(&path))?;
        }
    }
    Ok(())
}

/// Names of the regular files in `dir`; empty if `dir` does not exist yet.
fn file_names(dir: &Path) -> Result<Vec<String>, ResultsError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ResultsError::io(dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(ResultsError::io(dir))?;
        let is_file = entry.file_type().map_err(ResultsError::io(&entry.path()))?.is_file();
        // Non-UTF-8 names cannot be ours; skipping them is safer than failing the whole sweep.
        if let (true, Ok(name)) = (is_file, entry.file_name().into_string()) {
            names.push(name);
        }
    }
    Ok(names)
}
