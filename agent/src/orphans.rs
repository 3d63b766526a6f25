//! Trial processes die with their agent, even one killed with SIGKILL, so that no trial keeps
//! running (and holding GPUs) as an orphan: each trial process gets `PR_SET_PDEATHSIG` = SIGKILL.
//!
//! Where util-linux's `setpriv --pdeathsig` works, the trial runs through it: `setpriv` sets the
//! signal and execs the program, and the agent starts `setpriv` with `posix_spawn` (a vfork), whose
//! cost does not grow with the agent's own memory (hundreds of MB with libtorch mapped). Elsewhere
//! a `pre_exec` hook sets the signal between a full `fork` and `exec`. Either way the signal
//! follows the agent thread that started the process; tokio's workers live as long as the agent.

use std::ffi::OsStr;
use std::io::{Error, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tokio::process::Command;

/// `cmd`, made to die with the agent. Through `setpriv` the program is found here first (on the
/// agent's PATH, or relative to the trial's folder), so that a program that cannot start fails
/// with the error a direct start gives (not found, permission denied, not an executable) rather
/// than as a trial that exited.
pub fn tie_to_agent(cmd: Command) -> std::io::Result<Command> {
    match setpriv() {
        Some(setpriv) => through_setpriv(setpriv, &cmd),
        None => Ok(with_hook(cmd)),
    }
}

/// The `setpriv` on PATH, if it sets a parent-death signal here (util-linux 2.33 and later).
fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            let path = on_path(OsStr::new("setpriv"))?;
            let works = std::process::Command::new(&path)
                .args(["--pdeathsig", "KILL", "--", "true"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !works {
                tracing::info!(setpriv = %path.display(), "setpriv cannot set a parent-death signal here; trials start after a full fork");
            }
            works.then_some(path)
        })
        .as_deref()
}

fn through_setpriv(setpriv: &Path, cmd: &Command) -> std::io::Result<Command> {
    let std = cmd.as_std();
    let dir = std.get_current_dir();
    let program = resolve(std.get_program(), dir)?;
    let mut wrapped = Command::new(setpriv);
    wrapped.args(["--pdeathsig", "KILL", "--"]).arg(program).args(std.get_args());
    for (name, value) in std.get_envs() {
        match value {
            Some(value) => wrapped.env(name, value),
            None => wrapped.env_remove(name),
        };
    }
    if let Some(dir) = dir {
        wrapped.current_dir(dir);
    }
    crate::launch::process_settings(&mut wrapped);
    Ok(wrapped)
}

fn with_hook(mut cmd: Command) -> Command {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// The file `exec` would run for `program`, or the OS error it would fail with: ENOENT, EACCES
/// (not executable, or a folder), ENOEXEC (neither `#!` nor ELF).
pub fn resolve(program: &OsStr, dir: Option<&Path>) -> std::io::Result<PathBuf> {
    let path = if program.as_bytes().contains(&b'/') {
        match dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        }
    } else {
        on_path(program).ok_or_else(|| Error::from_raw_os_error(libc::ENOENT))?
    };
    let meta = std::fs::metadata(&path)?;
    if meta.is_dir() || !executable(&path) {
        return Err(Error::from_raw_os_error(libc::EACCES));
    }
    let mut magic = [0u8; 4];
    if let Ok(n) = std::fs::File::open(&path).and_then(|mut f| f.read(&mut magic)) {
        if !(magic[..n].starts_with(b"#!") || magic[..n] == *b"\x7fELF") {
            return Err(Error::from_raw_os_error(libc::ENOEXEC));
        }
    }
    Ok(path)
}

/// The first executable file named `name` in the agent's PATH.
fn on_path(name: &OsStr) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file() && executable(p))
}

fn executable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: access(2) reads the NUL-terminated path and changes nothing.
    let ok = unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
    ok && std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Programs that cannot start, each for another reason, made in `dir`: not on PATH, a missing
    /// file, a script without the execute bit, a file neither `#!` nor ELF, and a folder.
    pub(crate) fn programs_that_cannot_start(dir: &Path) -> [std::ffi::OsString; 5] {
        let not_executable = dir.join("train.sh");
        std::fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
        let no_shebang = dir.join("plain");
        std::fs::write(&no_shebang, [0u8, 1, 2, 3]).unwrap();
        std::fs::set_permissions(&no_shebang, std::fs::Permissions::from_mode(0o755)).unwrap();
        [
            std::ffi::OsString::from("pyhton3-no-such-program"),
            dir.join("missing.py").into_os_string(),
            not_executable.into_os_string(),
            no_shebang.into_os_string(),
            dir.as_os_str().to_owned(),
        ]
    }

    /// A program that cannot start fails here as a direct start fails: same kind, same errno.
    #[tokio::test]
    async fn resolving_fails_as_starting_would() {
        let dir = tempfile::tempdir().unwrap();
        for program in programs_that_cannot_start(dir.path()) {
            let direct = tokio::process::Command::new(&program).spawn().unwrap_err();
            let resolved = resolve(&program, None).unwrap_err();
            assert_eq!(
                (resolved.kind(), resolved.raw_os_error()),
                (direct.kind(), direct.raw_os_error()),
                "{program:?}"
            );
        }
        let sh = resolve(OsStr::new("sh"), None).unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
        let script = dir.path().join("ok.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(resolve(OsStr::new("./ok.sh"), Some(dir.path())).unwrap(), dir.path().join("./ok.sh"));
    }

    /// Through setpriv or not, the trial gets its program, arguments, environment and folder.
    #[tokio::test]
    async fn a_tied_trial_runs_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo \"$0 $1 $TIED_VAR ${TIED_GONE-unset} $(pwd)\"", "a b", "c"])
            .env("TIED_VAR", "v")
            .env_remove("TIED_GONE")
            .current_dir(dir.path());
        crate::launch::process_settings(&mut cmd);
        let out = tie_to_agent(cmd).unwrap().spawn().unwrap().wait_with_output().await.unwrap();
        let pwd = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("a b c v unset {}", pwd.display()));
    }
}
