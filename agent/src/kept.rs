//! Checkpoints kept for population based training. At the end of each interval a trial's
//! checkpoint folder is copied, as it stood at that epoch, to
//! `<checkpoint root>/<sweep>/.kept/<trial>/epoch-<n>/`; the trial may train on and overwrite its
//! own folder while a trial PBT made later starts from the copy. Such a trial's folder is filled
//! from the copy before its first start. `.kept` can be no trial's folder: trial ids never start
//! with a dot.
//!
//! Files are copied, not linked: a `command` trial may rewrite its checkpoint in place, and a
//! link would change the kept copy with it. Every copy is written beside its place and renamed
//! into it, so a crash leaves no half copy where one is looked for. Symbolic links inside a
//! checkpoint folder are refused, so that no copy reads or writes outside the checkpoint root.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use sweep_spec::CopyFrom;

const KEPT: &str = ".kept";

/// Where the checkpoint a trial kept at `epoch` lies, given the folder of its kept checkpoints
/// (`<root>/<sweep>/.kept/<trial>`).
fn epoch_dir(trial_dir: &Path, epoch: u32) -> PathBuf {
    trial_dir.join(format!("epoch-{epoch}"))
}

/// Keeps a copy of the trial's checkpoint folder `checkpoint` as the one of `epoch`. A copy kept
/// before (an attempt that ran to the same epoch again) is replaced.
pub fn keep(checkpoint: &Path, epoch: u32) -> io::Result<()> {
    let (sweep_dir, trial_id) = split(checkpoint)?;
    let trial_dir = kept_trial_dir(sweep_dir, &trial_id)?;
    let dest = epoch_dir(&trial_dir, epoch);
    let staging = trial_dir.join(format!("epoch-{epoch}.tmp-{}", std::process::id()));
    copy_staged(checkpoint, &staging)?;
    remove_if_present(&dest)?;
    fs::rename(&staging, &dest)
}

/// Fills the checkpoint folder `checkpoint` of a trial PBT made from the copy `from` names, unless
/// the folder holds something already (a later attempt resumes from its own checkpoint).
pub fn copy_into(checkpoint: &Path, from: &CopyFrom) -> io::Result<()> {
    if !sweep_spec::file::is_safe_name(&from.trial_id) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("trial id {:?}: not a folder name", from.trial_id),
        ));
    }
    sweep_safe_fs::refuse_link(checkpoint)?;
    if fs::read_dir(checkpoint).is_ok_and(|mut d| d.next().is_some()) {
        return Ok(());
    }
    let (sweep_dir, _) = split(checkpoint)?;
    let source = epoch_dir(&sweep_dir.join(KEPT).join(&from.trial_id), from.epoch);
    sweep_safe_fs::refuse_link(&source)?;
    if !source.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{}: no checkpoint of trial {} at epoch {} to start from (do all agents share one --checkpoint-root?)",
                source.display(),
                from.trial_id,
                from.epoch
            ),
        ));
    }
    let staging = sweep_dir.join(KEPT).join(format!("incoming-{}-{}", file_name(checkpoint)?, std::process::id()));
    copy_staged(&source, &staging)?;
    // An empty folder is replaced by the rename; the attempt's own folder is created if missing.
    let _ = fs::remove_dir(checkpoint);
    fs::rename(&staging, checkpoint)
}

/// The sweep's folder and the trial id of a trial's checkpoint folder.
fn split(checkpoint: &Path) -> io::Result<(&Path, String)> {
    let sweep_dir = checkpoint.parent().ok_or_else(|| io::Error::other("a checkpoint folder has a sweep folder"))?;
    Ok((sweep_dir, file_name(checkpoint)?))
}

fn file_name(path: &Path) -> io::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| io::Error::other(format!("{}: no folder name", path.display())))
}

/// `<sweep>/.kept/<trial>`, each level a real folder.
fn kept_trial_dir(sweep_dir: &Path, trial_id: &str) -> io::Result<PathBuf> {
    sweep_safe_fs::real_dirs_below(sweep_dir, [KEPT, trial_id])
}

/// Copies `from` to `staging`, removing what a failed copy left there.
fn copy_staged(from: &Path, staging: &Path) -> io::Result<()> {
    remove_if_present(staging)?;
    copy_tree(from, staging).inspect_err(|_| {
        let _ = remove_if_present(staging);
    })
}

/// Copies the folder `from` to a new folder `to`, file by file, refusing links.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: a symbolic link in a checkpoint folder; refusing to copy it", entry.path().display()),
            ));
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    fs::File::open(to)?.sync_all()
}

fn remove_if_present(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn a_kept_checkpoint_survives_its_trial_and_starts_a_copy() {
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("s/aaaa");
        write(&parent.join("latest/model.bin"), "epoch 4");
        keep(&parent, 4).unwrap();
        // The trial trains on and rewrites its checkpoint in place.
        write(&parent.join("latest/model.bin"), "epoch 8");
        keep(&parent, 8).unwrap();

        let child = root.path().join("s/bbbb");
        copy_into(&child, &CopyFrom { trial_id: "aaaa".into(), epoch: 4 }).unwrap();
        assert_eq!(fs::read_to_string(child.join("latest/model.bin")).unwrap(), "epoch 4");
        // A later attempt of the copy resumes from its own checkpoint, not the kept one.
        write(&child.join("latest/model.bin"), "epoch 6");
        copy_into(&child, &CopyFrom { trial_id: "aaaa".into(), epoch: 8 }).unwrap();
        assert_eq!(fs::read_to_string(child.join("latest/model.bin")).unwrap(), "epoch 6");
        let names: Vec<_> =
            fs::read_dir(root.path().join("s/.kept/aaaa")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no staging folder left: {names:?}");
    }

    #[test]
    fn a_missing_copy_or_a_planted_link_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let child = root.path().join("s/bbbb");
        let err = copy_into(&child, &CopyFrom { trial_id: "aaaa".into(), epoch: 4 }).unwrap_err();
        assert!(err.to_string().contains("no checkpoint of trial aaaa at epoch 4"), "{err}");
        let err = copy_into(&child, &CopyFrom { trial_id: "../x".into(), epoch: 4 }).unwrap_err();
        assert!(err.to_string().contains("not a folder name"), "{err}");

        let outside = tempfile::tempdir().unwrap();
        write(&outside.path().join("secret"), "x");
        let parent = root.path().join("s/aaaa");
        fs::create_dir_all(&parent).unwrap();
        std::os::unix::fs::symlink(outside.path(), parent.join("latest")).unwrap();
        let err = keep(&parent, 4).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let left: Vec<_> = fs::read_dir(root.path().join("s/.kept/aaaa")).unwrap().collect();
        assert!(left.is_empty(), "a failed copy leaves nothing: {left:?}");
        fs::remove_file(parent.join("latest")).unwrap();
        fs::remove_dir(root.path().join("s/.kept/aaaa")).unwrap();
        write(&parent.join("latest/m"), "ok");
        fs::create_dir_all(root.path().join("s/.kept")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("s/.kept/aaaa")).unwrap();
        assert!(keep(&parent, 4).is_err(), "a planted link at the kept folder");
    }
}
