//! Crash-safe file replacement: write to a hidden temporary name in the same folder, fsync it,
//! rename it over the target, fsync the folder. Readers (DuckDB globs, pandas, our own readers)
//! therefore see either the old file or the complete new one, never a torn one.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::ResultsError;

/// Creates or replaces `path` with whatever `write` puts into the file it is handed; `write`
/// returns the file so that it can be synced after any buffering writer on top has finished.
/// On error the temporary file is removed and the previous `path` (if any) is left untouched.
pub(crate) fn write_atomically<F>(path: &Path, write: F) -> Result<(), ResultsError>
where
    F: FnOnce(File) -> Result<File, ResultsError>,
{
    let dir = parent_dir(path);
    ensure_dir(dir)?;
    let tmp = temp_path(path);
    let result = write_then_rename(path, &tmp, dir, write);
    if result.is_err() {
        // Best effort: the file may never have been created, and a stale one is also removed
        // by `last_written_seq` on the next start.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename<F>(path: &Path, tmp: &Path, dir: &Path, write: F) -> Result<(), ResultsError>
where
    F: FnOnce(File) -> Result<File, ResultsError>,
{
    let file = File::create(tmp).map_err(ResultsError::io(tmp))?;
    let file = write(file)?;
    // The data must be on disk before the rename is, or a crash could leave a complete-looking
    // name pointing at an empty or partial file.
    file.sync_all().map_err(ResultsError::io(tmp))?;
    drop(file);
    fs::rename(tmp, path).map_err(ResultsError::io(path))?;
    sync_dir(dir)
}

/// The temporary name for `path`: `.<name>.<pid>.tmp` in the same folder. The leading dot and the
/// `.tmp` suffix keep it out of `*.parquet` globs; the same folder keeps the rename atomic (no
/// cross-filesystem copy); the pid keeps two processes rewriting one file from clobbering each
/// other's half-written temporary.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    parent_dir(path).join(format!(".{name}.{}.tmp", std::process::id()))
}

/// Whether a file name is one of our temporaries (see [`temp_path`]).
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `dir` (and its parents) if missing. A new folder's entry lives in its parent, so the
/// parent is synced too; otherwise a crash could lose the folder along with the files inside it.
fn ensure_dir(dir: &Path) -> Result<(), ResultsError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(ResultsError::io(dir))?;
    sync_dir(parent_dir(dir))
}

/// Makes a rename or a creation inside `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), ResultsError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(ResultsError::io(dir))
}

/// Folders cannot be opened as files on other platforms; rename is the best we can do there.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), ResultsError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/out.parquet");
        for text in ["first", "second"] {
            write_atomically(&path, |mut f| {
                f.write_all(text.as_bytes()).unwrap();
                Ok(f)
            })
            .unwrap();
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "second");
        assert_eq!(names_in(path.parent().unwrap()), vec!["out.parquet"]);
    }

    #[test]
    fn failed_write_keeps_the_old_file_and_removes_the_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out.parquet");
        fs::write(&path, "old").unwrap();
        let err = write_atomically(&path, |mut f| {
            f.write_all(b"half").unwrap();
            Err(ResultsError::schema(&path, "boom"))
        })
        .unwrap_err();
        assert!(matches!(err, ResultsError::Schema { .. }));
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(names_in(tmp.path()), vec!["out.parquet"]);
    }

    #[test]
    fn temporary_names_are_hidden_from_parquet_globs() {
        let t = temp_path(Path::new("r/s/metrics/part-1-2.parquet"));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert_eq!(t.parent().unwrap(), Path::new("r/s/metrics"));
        assert!(is_temp_name(name));
        assert!(!name.ends_with(".parquet"));
        assert!(!is_temp_name("part-1-2.parquet"));
    }
}
