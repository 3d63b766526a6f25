//! Creating files and folders in places other people may write to: results folders on a shared
//! filesystem, an agent's trial and checkpoint folders. A symbolic link planted there must never
//! make us write somewhere else, so new files are opened with `O_EXCL | O_NOFOLLOW`, temporaries
//! get unguessable names, and the folders we write into are checked to be real folders.
//!
//! Errors are `std::io::Error`s without the path, as the standard library's are: the caller names
//! the path, as it does for every other i/o error.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Options that refuse to open through a symbolic link at the last component of the path
/// (`O_NOFOLLOW`, failing with `ELOOP`). Callers add the access mode.
pub fn no_follow() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    options
}

/// Creates `path` as a new file for writing: fails if anything is there already, a symbolic link
/// (even a dangling one) included.
pub fn create_new(path: &Path) -> io::Result<File> {
    no_follow().write(true).create_new(true).open(path)
}

/// Creates or truncates the regular file `path` for writing; refuses a symbolic link there. For
/// files that a process rewrites under a name it chose before (a trial's `spec.json`).
pub fn create_or_truncate(path: &Path) -> io::Result<File> {
    no_follow().write(true).create(true).truncate(true).open(path)
}

/// Creates a new file next to `path` under a hidden name nobody can guess,
/// `.<name>.<16 random hex digits>.tmp`, and returns its path and the open file. The leading dot
/// and the `.tmp` suffix keep it out of globs on the final name's extension; the same folder keeps
/// a later rename atomic. A name that is taken (by a leftover or by someone else's planted link) is
/// never opened: another is drawn.
pub fn create_temp_beside(path: &Path) -> io::Result<(PathBuf, File)> {
    const TRIES: usize = 8;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = parent_dir(path);
    let mut last = None;
    for _ in 0..TRIES {
        let tmp = dir.join(format!(".{name}.{}.tmp", random_hex()?));
        match create_new(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// Whether a file name is one of [`create_temp_beside`]'s temporaries.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// 16 hex digits from the operating system's random source, for names nobody can predict.
pub fn random_hex() -> io::Result<String> {
    let mut bytes = [0u8; 8];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Makes sure `dir` is a real folder, creating it (and missing parents) if needed, and returns
/// whether it was created. Refuses when `dir` itself is a symbolic link, even to a folder, or is
/// not a folder. Only the last component is checked: callers check each level someone else could
/// replace, from the top down, so that no level is created through a link.
pub fn real_dir(dir: &Path) -> io::Result<bool> {
    let created = match fs::create_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(parent_dir(dir))?;
            match fs::create_dir(dir) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    check_real_dir(dir)?;
    Ok(created)
}

/// [`real_dir`] for each of `names` below `root`, in order, and the deepest folder. `root` itself
/// may be a link (an operator's choice of disk); nothing below it may.
pub fn real_dirs_below<I>(root: &Path, names: I) -> io::Result<PathBuf>
where
    I: IntoIterator,
    I::Item: AsRef<Path>,
{
    let mut dir = root.to_path_buf();
    fs::create_dir_all(&dir)?;
    for name in names {
        dir.push(name);
        real_dir(&dir).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    }
    Ok(dir)
}

/// Refuses `dir` when it is a symbolic link or not a folder; a missing `dir` is fine. For folders
/// that are read and cleaned up, not created.
pub fn refuse_link(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(_) => check_real_dir(dir),
    }
}

fn check_real_dir(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a symbolic link; refusing to write through it (make it a real folder)",
        ));
    }
    if !meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "is not a folder"));
    }
    Ok(())
}

/// The folder of `path`; `.` for a bare file name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    #[test]
    fn create_new_never_writes_through_a_planted_link() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let planted = tmp.path().join("new");
        symlink(&victim, &planted).unwrap();
        assert!(create_new(&planted).is_err());
        // A dangling link is refused too: O_CREAT | O_EXCL never creates its target.
        let dangling = tmp.path().join("dangling");
        symlink(tmp.path().join("would-be-created"), &dangling).unwrap();
        assert!(create_new(&dangling).is_err());
        assert!(!tmp.path().join("would-be-created").exists());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn truncate_and_append_refuse_links_but_open_regular_files() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let planted = tmp.path().join("spec.json");
        symlink(&victim, &planted).unwrap();
        assert!(create_or_truncate(&planted).is_err());
        assert!(no_follow().append(true).create(true).open(&planted).is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");

        let real = tmp.path().join("log");
        let append = || no_follow().append(true).create(true).open(&real).unwrap();
        append().write_all(b"a").unwrap();
        append().write_all(b"b").unwrap();
        assert_eq!(fs::read_to_string(&real).unwrap(), "ab");
        create_or_truncate(&real).unwrap().write_all(b"c").unwrap();
        assert_eq!(fs::read_to_string(&real).unwrap(), "c");
    }

    #[test]
    fn temporaries_are_hidden_unguessable_and_new() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("out.parquet");
        let (a, _) = create_temp_beside(&target).unwrap();
        let (b, _) = create_temp_beside(&target).unwrap();
        assert_ne!(a, b);
        for t in [&a, &b] {
            let name = t.file_name().unwrap().to_str().unwrap();
            assert_eq!(t.parent().unwrap(), tmp.path());
            assert!(is_temp_name(name) && name.starts_with(".out.parquet.") && !name.ends_with(".parquet"), "{name}");
            let random = name.trim_start_matches(".out.parquet.").trim_end_matches(".tmp");
            assert!(random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        }
        assert!(!is_temp_name("part-1-2.parquet"));
    }

    #[test]
    fn real_dir_creates_folders_and_refuses_links_naming_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        assert!(real_dir(&dir).unwrap());
        assert!(!real_dir(&dir).unwrap());
        assert!(dir.is_dir());

        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let link = tmp.path().join("linked");
        symlink(&elsewhere, &link).unwrap();
        let err = real_dir(&link).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(refuse_link(&link).is_err());
        assert!(refuse_link(&tmp.path().join("missing")).is_ok());
        assert!(refuse_link(&dir).is_ok());

        let file = tmp.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(real_dir(&file).unwrap_err().to_string().contains("not a folder"));
    }

    #[test]
    fn real_dirs_below_checks_every_level_and_names_the_link() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("checkpoints");
        let made = real_dirs_below(&root, &["sweep", "trial"]).unwrap();
        assert_eq!(made, root.join("sweep/trial"));
        assert!(made.is_dir());

        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        symlink(&elsewhere, root.join("other")).unwrap();
        let err = real_dirs_below(&root, &["other", "trial"]).unwrap_err();
        assert!(err.to_string().starts_with(&format!("{}: ", root.join("other").display())), "{err}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "nothing was created through the link");

        // The root itself may be a link: an operator put it on another disk.
        let root_link = tmp.path().join("root-link");
        symlink(&root, &root_link).unwrap();
        assert!(real_dirs_below(&root_link, &["sweep", "t2"]).is_ok());
    }
}
