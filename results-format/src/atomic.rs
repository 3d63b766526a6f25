//! Crash-safe file replacement: write to a hidden temporary name in the same folder, fsync it,
//! rename it over the target, fsync the folder. Readers (DuckDB globs, pandas, our own readers)
//! therefore see either the old file or the complete new one, never a torn one.
//!
//! Results folders may be writable by others (a shared filesystem). The temporary gets a random
//! name and is created with `O_EXCL | O_NOFOLLOW`, the rename replaces a link at the target rather
//! than following it, and the folder written into must be a real folder, not a link
//! (`sweep_safe_fs`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use sweep_safe_fs as safe_fs;

use super::ResultsError;

/// Creates or replaces `path` with whatever `write` puts into the file it is handed; `write`
/// returns the file so that it can be synced after any buffering writer on top has finished.
/// On error the temporary file is removed and the previous `path` (if any) is left untouched.
/// The folder of `path` must be a real folder or missing (it is created); a writer into a
/// subfolder of a sweep's folder first checks the sweep's folder with [`ensure_dir`].
pub(crate) fn write_atomically<F>(path: &Path, write: F) -> Result<(), ResultsError>
where
    F: FnOnce(File) -> Result<File, ResultsError>,
{
    let (pending, file) = Replacement::begin(path)?;
    pending.commit(write(file)?)
}

/// A file being written under a temporary name, to replace `path` once complete: what
/// [`write_atomically`] does, for writers that write in several steps. Dropped without
/// [`Replacement::commit`], it removes the temporary and leaves `path` as it was.
pub(crate) struct Replacement {
    path: PathBuf,
    tmp: Option<PathBuf>,
}

impl Replacement {
    /// Creates the temporary beside `path` (and the folder, if missing) and hands out its file.
    pub(crate) fn begin(path: &Path) -> Result<(Replacement, File), ResultsError> {
        ensure_dir(safe_fs::parent_dir(path))?;
        let (tmp, file) = safe_fs::create_temp_beside(path).map_err(ResultsError::io(path))?;
        Ok((Replacement { path: path.to_path_buf(), tmp: Some(tmp) }, file))
    }

    /// Syncs `file` (the temporary's, after any buffering writer on top has finished) and renames
    /// it over `path`.
    pub(crate) fn commit(mut self, file: File) -> Result<(), ResultsError> {
        let tmp = self.tmp.take().expect("a replacement commits once");
        let result = write_then_rename(&self.path, file, &tmp);
        if result.is_err() {
            // Best effort: a stale one is also removed by `last_written_seq` on the next start.
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

impl Drop for Replacement {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

fn write_then_rename(path: &Path, file: File, tmp: &Path) -> Result<(), ResultsError> {
    // The data must be on disk before the rename is, or a crash could leave a complete-looking
    // name pointing at an empty or partial file.
    file.sync_all().map_err(ResultsError::io(tmp))?;
    drop(file);
    // rename(2) replaces whatever entry `path` is, a symbolic link included, and never follows it.
    fs::rename(tmp, path).map_err(ResultsError::io(path))?;
    sync_dir(safe_fs::parent_dir(path))
}

/// Whether a file name is one of our temporaries.
pub(crate) fn is_temp_name(name: &str) -> bool {
    safe_fs::is_temp_name(name)
}

/// Creates `dir` (and its parents) if missing, and refuses it if it is a symbolic link or not a
/// folder, naming it. A new folder's entry lives in its parent, so the parent is synced too;
/// otherwise a crash could lose the folder along with the files inside it.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), ResultsError> {
    if safe_fs::real_dir(dir).map_err(ResultsError::io(dir))? {
        sync_dir(safe_fs::parent_dir(dir))?;
    }
    Ok(())
}

/// Refuses `dir` if it is a symbolic link or not a folder; a missing `dir` is fine.
pub(crate) fn refuse_link(dir: &Path) -> Result<(), ResultsError> {
    safe_fs::refuse_link(dir).map_err(ResultsError::io(dir))
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
    fn a_link_planted_at_the_target_or_an_old_temporary_name_is_replaced_not_followed() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim.txt");
        fs::write(&victim, "precious").unwrap();
        let dir = tmp.path().join("results/s");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trials.parquet");
        // The name a temporary had before names were random, and the target itself.
        symlink(&victim, dir.join(format!(".trials.parquet.{}.tmp", std::process::id()))).unwrap();
        symlink(&victim, &path).unwrap();
        write_atomically(&path, |mut f| {
            f.write_all(b"new").unwrap();
            Ok(f)
        })
        .unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn a_linked_folder_is_refused_and_named() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::create_dir(tmp.path().join("results")).unwrap();
        let dir = tmp.path().join("results/s");
        symlink(&elsewhere, &dir).unwrap();
        let err = write_atomically(&dir.join("trials.parquet"), Ok).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&dir.display().to_string()) && text.contains("symbolic link"), "{text}");
        assert!(names_in(&elsewhere).is_empty());
    }
}
