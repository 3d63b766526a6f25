//! Files that hold secrets (token files, TLS private keys) should be readable by their owner only.
//! As ssh does, one that group or others can access is reported by name and mode: a warning in the
//! log, or with `--strict-perms` an error that stops the program before it uses the file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Permission bits that let someone other than the file's owner in.
const OTHERS: u32 = 0o077;

/// What is wrong with `path`'s permissions, if anything: a sentence naming the file and its mode.
/// Err: the file cannot be examined at all.
pub fn secret_file_problem(path: &Path) -> Result<Option<String>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & OTHERS == 0 {
        return Ok(None);
    }
    Ok(Some(format!(
        "{} holds a secret but has mode {mode:04o}: group or others can access it; run `chmod 600 {}`",
        path.display(),
        path.display()
    )))
}

/// Warns (log line with the file and its mode) about a secret file others can access, or refuses
/// it under `strict` (`--strict-perms`).
pub fn check_secret_file(path: &Path, strict: bool) -> Result<(), String> {
    match secret_file_problem(path)? {
        None => Ok(()),
        Some(problem) if strict => Err(format!("{problem} (refused under --strict-perms)")),
        Some(problem) => {
            tracing::warn!(file = %path.display(), "{problem}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_mode(dir: &Path, name: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn files_others_can_read_are_named_with_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o400, 0o700] {
            let p = with_mode(dir.path(), &format!("ok-{mode:o}"), mode);
            assert_eq!(secret_file_problem(&p).unwrap(), None, "{mode:o}");
            check_secret_file(&p, true).unwrap();
        }
        for mode in [0o644, 0o640, 0o604, 0o620] {
            let p = with_mode(dir.path(), &format!("open-{mode:o}"), mode);
            let problem = secret_file_problem(&p).unwrap().expect("a problem");
            assert!(
                problem.contains(&p.display().to_string()) && problem.contains(&format!("{mode:04o}")),
                "{problem}"
            );
            check_secret_file(&p, false).expect("only a warning without --strict-perms");
            let refused = check_secret_file(&p, true).unwrap_err();
            assert!(refused.contains("--strict-perms") && refused.contains(&format!("{mode:04o}")), "{refused}");
        }
        let missing = dir.path().join("missing");
        assert!(check_secret_file(&missing, false).unwrap_err().contains("missing"));
    }
}
