//! How a leased trial becomes a process: program, arguments, environment and folders.
//!
//! A `command` trial runs the user's program with each parameter as `--name value` and as
//! `SWEEP_PARAM_<NAME>`; a built-in workload runs the trial runner with `--spec FILE`. Both get
//! their identity (`SWEEP_SWEEP`, `SWEEP_TRIAL_ID`, `SWEEP_ATTEMPT`), a checkpoint folder that is
//! the same for every attempt (`SWEEP_CHECKPOINT_DIR`), and only their GPUs.

use crate::config::TrialRunner;
use std::path::{Path, PathBuf};
use sweep_spec::{param_names, workloads, TrialSpec};
use tokio::process::Command;

/// The folders of one attempt.
#[derive(Debug, Clone)]
pub struct AttemptDirs {
    /// Working directory, spec and logs of this attempt.
    pub run: PathBuf,
    /// Shared by every attempt of the trial, so a retry resumes.
    pub checkpoint: PathBuf,
    /// Why the lease's names cannot become folders; `create` refuses with it, so the lease ends
    /// with a launch error instead of writing outside the work and checkpoint roots.
    refused: Option<String>,
}

impl AttemptDirs {
    /// Absolute paths: the trial runs with its run folder as working directory. The sweep name and
    /// the trial id come from the coordinator and each becomes one folder; unless both are safe
    /// single path components (`sweep_spec::file::is_safe_name`), the folders are left at the roots
    /// and [`AttemptDirs::create`] fails.
    pub fn new(work_dir: &Path, checkpoint_root: &Path, spec: &TrialSpec, attempt: u32) -> AttemptDirs {
        let work_dir = std::path::absolute(work_dir).unwrap_or_else(|_| work_dir.to_path_buf());
        let checkpoint_root = std::path::absolute(checkpoint_root).unwrap_or_else(|_| checkpoint_root.to_path_buf());
        let unsafe_name = [("sweep name", &spec.sweep), ("trial id", &spec.id.0)]
            .into_iter()
            .find(|(_, name)| !sweep_spec::file::is_safe_name(name));
        if let Some((what, name)) = unsafe_name {
            return AttemptDirs {
                run: work_dir.join("trials"),
                checkpoint: checkpoint_root,
                refused: Some(format!(
                    "{what} {name:?}: expected one folder name (letters, digits, '-', '_' or '.', not starting with '.')"
                )),
            };
        }
        AttemptDirs {
            run: work_dir.join("trials").join(&spec.sweep).join(&spec.id.0).join(format!("attempt-{attempt}")),
            checkpoint: checkpoint_root.join(&spec.sweep).join(&spec.id.0),
            refused: None,
        }
    }

    /// Creates both folders, or refuses (`InvalidInput`) when the lease's names were unsafe or
    /// when a folder below the roots (the sweep's, the trial's, the attempt's) is a symbolic link:
    /// a planted link must not send a trial's files or checkpoints elsewhere.
    pub fn create(&self) -> std::io::Result<()> {
        if let Some(why) = &self.refused {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, why.clone()));
        }
        // `trials/<sweep>/<trial>/attempt-<n>` below the work folder, `<sweep>/<trial>` below the
        // checkpoint root: see `new`.
        real_levels(&self.run, 3)?;
        real_levels(&self.checkpoint, 2)
    }
}

/// Creates `dir` so that it and the `levels - 1` folders above it are real folders, not links.
fn real_levels(dir: &Path, levels: usize) -> std::io::Result<()> {
    let root = dir.ancestors().nth(levels).expect("attempt folders lie below their roots");
    let below = dir.strip_prefix(root).expect("a path lies below its ancestors");
    sweep_safe_fs::real_dirs_below(root, below.components()).map(drop)
}

/// Why a launch could not start, naming what could not be run, and whether a retry could start it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchError {
    pub message: String,
    /// The program is missing or may not be executed: every retry would fail alike, so the trial
    /// fails at once (as with exit code 78) instead of using up its attempts.
    pub permanent: bool,
}

impl LaunchError {
    /// A failure that may not repeat (a full disk, a folder refused): retried as usual.
    pub fn transient(e: std::io::Error) -> LaunchError {
        LaunchError { message: e.to_string(), permanent: false }
    }

    /// `spawn` of `program` failed: "could not start `pyhton3`: not found on PATH".
    pub fn of_spawn(program: &std::ffi::OsStr, e: &std::io::Error) -> LaunchError {
        let name = program.to_string_lossy();
        let shown = sweep_spec::text::escape(&name);
        let on_path = !name.contains('/');
        let (why, permanent) = match (e.kind(), e.raw_os_error()) {
            (std::io::ErrorKind::NotFound, _) if on_path => ("not found on PATH".to_string(), true),
            (std::io::ErrorKind::NotFound, _) => ("no such file".to_string(), true),
            (std::io::ErrorKind::PermissionDenied, _) => ("permission denied (is it executable?)".to_string(), true),
            (_, Some(libc::ENOEXEC)) => ("not an executable (a script needs a `#!` line)".to_string(), true),
            (_, Some(libc::EISDIR)) => ("it is a folder".to_string(), true),
            _ => (e.to_string(), false),
        };
        LaunchError { message: format!("could not start `{shown}`: {why}"), permanent }
    }
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Where a launch runs: its GPUs, the device built-in workloads pick, and what else its
/// environment needs (the CUDA MPS daemon, for a trial packed onto a shared GPU).
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub gpus: Vec<String>,
    /// `SWEEP_DEVICE` for built-in workloads: auto, cpu or cuda.
    pub device: String,
    pub env: Vec<(&'static str, PathBuf)>,
}

pub fn build_command(
    spec: &TrialSpec,
    attempt: u32,
    dirs: &AttemptDirs,
    placement: &Placement,
    runner: &TrialRunner,
) -> std::io::Result<Command> {
    // The coordinator checked the names; a lease from one that did not must not become a bare `--`
    // or two parameters in one variable.
    param_names::check(spec.params.keys().map(String::as_str))
        .map_err(|problem| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("params: {problem}")))?;
    let mut cmd = if spec.workload == workloads::COMMAND {
        let argv = spec.command.as_deref().unwrap_or_default();
        let (program, fixed) =
            argv.split_first().ok_or_else(|| std::io::Error::other("the trial has an empty command"))?;
        let mut cmd = Command::new(program);
        cmd.args(fixed);
        for (name, value) in &spec.params {
            cmd.args(spec.command_bool.args(name, value));
        }
        cmd
    } else {
        let mut cmd = Command::new(&runner.program);
        cmd.args(&runner.args).arg("--spec").arg(write_spec(spec, dirs)?);
        cmd
    };
    for (name, value) in &spec.params {
        cmd.env(param_names::env_name(name), TrialSpec::param_as_arg(value));
    }
    cmd.env("SWEEP_TRIAL_ID", &spec.id.0)
        .env("SWEEP_ATTEMPT", attempt.to_string())
        .env("SWEEP_CHECKPOINT_DIR", &dirs.checkpoint);
    if let Some(every) = spec.checkpoint_every_epochs {
        cmd.env("SWEEP_CHECKPOINT_EVERY_EPOCHS", every.to_string());
    }
    set_up(&mut cmd, &spec.sweep, dirs, placement, runner);
    Ok(cmd)
}

/// One process for a fused group (`sweep_spec::fusion`): the trial runner with every member's
/// spec, run in the first member's folder. Members are told apart by the trial tag of each output
/// line; each keeps its own checkpoint folder (`SWEEP_GROUP_CHECKPOINT_DIRS`, trial id to folder).
pub fn build_group_command(
    members: &[(&TrialSpec, &AttemptDirs)],
    placement: &Placement,
    runner: &TrialRunner,
) -> std::io::Result<Command> {
    let (first_spec, first_dirs) = members.first().ok_or_else(|| std::io::Error::other("an empty fused group"))?;
    let mut cmd = Command::new(&runner.program);
    cmd.args(&runner.args);
    let mut checkpoints = serde_json::Map::new();
    for (spec, dirs) in members {
        cmd.arg("--spec").arg(write_spec(spec, dirs)?);
        checkpoints.insert(spec.id.0.clone(), dirs.checkpoint.display().to_string().into());
    }
    cmd.env(sweep_workloads::GROUP_CHECKPOINT_DIRS, serde_json::Value::Object(checkpoints).to_string());
    set_up(&mut cmd, &first_spec.sweep, first_dirs, placement, runner);
    Ok(cmd)
}

fn write_spec(spec: &TrialSpec, dirs: &AttemptDirs) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let spec_path = dirs.run.join("spec.json");
    sweep_safe_fs::create_or_truncate(&spec_path)
        .and_then(|mut f| f.write_all(&serde_json::to_vec_pretty(spec).expect("trial specs serialize")))
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", spec_path.display())))?;
    Ok(spec_path)
}

/// What every trial process gets: its sweep, its placement, its share of the cores, its run
/// folder, piped output and its own process group. Death with the agent comes when it is started
/// (`orphans::tie_to_agent`).
fn set_up(cmd: &mut Command, sweep: &str, dirs: &AttemptDirs, placement: &Placement, runner: &TrialRunner) {
    cmd.env("SWEEP_SWEEP", sweep)
        .env("CUDA_VISIBLE_DEVICES", placement.gpus.join(","))
        .env("SWEEP_DEVICE", &placement.device)
        .envs(placement.env.iter().map(|(k, v)| (k, v)))
        // Python buffers stdout when it is a pipe; metrics must arrive as each epoch ends.
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(&dirs.run);
    for secret in sweep_proto::remote::SECRET_VARIABLES {
        cmd.env_remove(secret);
    }
    process_settings(cmd);
    if runner.cpu_threads > 0 {
        let threads = runner.cpu_threads.to_string();
        cmd.env("SWEEP_CPU_THREADS", &threads);
        for var in ["OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
            if std::env::var_os(var).is_none() {
                cmd.env(var, &threads);
            }
        }
    }
}

/// No input, piped output, and its own process group, so stopping a trial also stops what it
/// started.
pub(crate) fn process_settings(cmd: &mut Command) {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(sweep: &str, id: &str) -> TrialSpec {
        TrialSpec {
            id: sweep_spec::TrialId(id.to_string()),
            sweep: sweep.to_string(),
            index: 0,
            workload: workloads::COMMAND.to_string(),
            command: Some(vec!["true".to_string()]),
            params: Default::default(),
            data: None,
            resources: Default::default(),
            checkpoint_every_epochs: None,
            command_bool: Default::default(),
            copy_from: None,
        }
    }

    /// What a user sees when the program cannot run: its name, and why; and whether retrying
    /// could help. Real spawns, so the kinds are the ones the OS gives.
    #[tokio::test]
    async fn a_program_that_cannot_start_is_named_and_fails_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let expected = [
            "could not start `pyhton3-no-such-program`: not found on PATH",
            "no such file",
            "permission denied",
            "not an executable",
            "",
        ];
        let cases = crate::orphans::tests::programs_that_cannot_start(dir.path()).into_iter().zip(expected);
        for (program, expected) in cases {
            let e = tokio::process::Command::new(&program).spawn().unwrap_err();
            let error = LaunchError::of_spawn(&program, &e);
            assert!(error.permanent, "{error}");
            assert!(
                error.message.starts_with(&format!("could not start `{}`: ", program.to_string_lossy())),
                "{error}"
            );
            assert!(error.message.contains(expected), "{error}");
        }
        let odd = LaunchError::of_spawn(
            std::ffi::OsStr::new("a\u{1b}[2Jb"),
            &std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(odd.message, "could not start `a\\u{1b}[2Jb`: not found on PATH");
        assert!(!LaunchError::of_spawn(std::ffi::OsStr::new("x"), &std::io::Error::other("fork failed")).permanent);
    }

    #[test]
    fn unsafe_sweep_names_and_trial_ids_are_refused_before_any_folder_exists() {
        let dir = tempfile::tempdir().unwrap();
        let (work, ckpt) = (dir.path().join("work"), dir.path().join("ckpt"));
        for (sweep, id) in [
            ("..", "0123456789abcdef"),
            ("/tmp/evil", "0123456789abcdef"),
            ("a/b", "0123456789abcdef"),
            ("", "0123456789abcdef"),
            ("ok", ".."),
            ("ok", "../../../etc"),
            ("ok", "/etc"),
        ] {
            let dirs = AttemptDirs::new(&work, &ckpt, &spec(sweep, id), 1);
            let err = dirs.create().unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{sweep:?} {id:?}");
            assert!(err.to_string().contains("expected one folder name"), "{err}");
            assert!(dirs.run.starts_with(&work) && dirs.checkpoint.starts_with(&ckpt));
        }
        assert!(!work.exists() && !ckpt.exists(), "nothing was created");

        let dirs = AttemptDirs::new(&work, &ckpt, &spec("sweep-1", "0123456789abcdef"), 2);
        dirs.create().unwrap();
        assert!(dirs.run.ends_with("trials/sweep-1/0123456789abcdef/attempt-2") && dirs.run.is_dir());
        assert!(dirs.checkpoint.ends_with("sweep-1/0123456789abcdef") && dirs.checkpoint.is_dir());
    }

    /// `command_bool = "flag"` passes true booleans as bare flags and leaves false ones out, as
    /// argparse's `store_true` expects; the default passes every value after its flag.
    #[test]
    fn boolean_parameters_follow_command_bool() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = AttemptDirs::new(&dir.path().join("w"), &dir.path().join("c"), &spec("s", "0123456789abcdef"), 1);
        dirs.create().unwrap();
        let runner = TrialRunner { program: "true".into(), args: vec![], cpu_threads: 0 };
        let mut trial = spec("s", "0123456789abcdef");
        let params = serde_json::json!({"amp": true, "lr": 0.1, "no_bias": false});
        trial.params = params.as_object().unwrap().clone();
        let args = |t: &TrialSpec| -> Vec<String> {
            let cmd = build_command(t, 1, &dirs, &Placement::default(), &runner).unwrap();
            cmd.as_std().get_args().map(|a| a.to_string_lossy().into_owned()).collect()
        };
        assert_eq!(args(&trial), ["--amp", "true", "--lr", "0.1", "--no_bias", "false"]);
        trial.command_bool = sweep_spec::CommandBool::Flag;
        assert_eq!(args(&trial), ["--amp", "--lr", "0.1"]);
    }

    /// The agent's own credentials never reach a trial, whatever the agent's environment holds.
    #[test]
    fn trials_do_not_inherit_the_agents_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = AttemptDirs::new(&dir.path().join("w"), &dir.path().join("c"), &spec("s", "0123456789abcdef"), 1);
        dirs.create().unwrap();
        let runner = TrialRunner { program: "true".into(), args: vec![], cpu_threads: 0 };
        let cmd = build_command(&spec("s", "0123456789abcdef"), 1, &dirs, &Placement::default(), &runner).unwrap();
        for secret in sweep_proto::remote::SECRET_VARIABLES {
            let set = cmd.as_std().get_envs().find(|(k, _)| *k == secret);
            assert_eq!(
                set,
                Some((std::ffi::OsStr::new(secret), None)),
                "{secret} is removed from the trial's environment"
            );
        }
    }

    #[test]
    fn linked_sweep_and_trial_folders_are_refused_and_named() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let (work, ckpt) = (dir.path().join("work"), dir.path().join("ckpt"));
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::create_dir_all(&ckpt).unwrap();
        std::fs::create_dir_all(work.join("trials")).unwrap();
        let id = "0123456789abcdef";

        // The checkpoint folder of the sweep is a link.
        symlink(&elsewhere, ckpt.join("s1")).unwrap();
        let err = AttemptDirs::new(&work, &ckpt, &spec("s1", id), 1).create().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains(&ckpt.join("s1").display().to_string()), "{err}");

        // The trial's checkpoint folder is a link.
        std::fs::create_dir_all(ckpt.join("s2")).unwrap();
        symlink(&elsewhere, ckpt.join("s2").join(id)).unwrap();
        let err = AttemptDirs::new(&work, &ckpt, &spec("s2", id), 1).create().unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");

        // The sweep's run folder is a link.
        symlink(&elsewhere, work.join("trials").join("s3")).unwrap();
        let err = AttemptDirs::new(&work, &ckpt, &spec("s3", id), 1).create().unwrap_err();
        assert!(err.to_string().contains(&work.join("trials/s3").display().to_string()), "{err}");

        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "nothing was created through a link");
    }

    #[test]
    fn a_spec_file_planted_as_a_link_is_refused() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let dirs = AttemptDirs::new(&dir.path().join("w"), &dir.path().join("c"), &spec("s", "0123456789abcdef"), 1);
        dirs.create().unwrap();
        symlink(&victim, dirs.run.join("spec.json")).unwrap();
        let mut s = spec("s", "0123456789abcdef");
        s.workload = "mlp".into();
        let runner = TrialRunner { program: "true".into(), args: vec![], cpu_threads: 0 };
        let err = build_command(&s, 1, &dirs, &Placement::default(), &runner).unwrap_err();
        assert!(err.to_string().contains("spec.json"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn parameters_become_flags_and_variables_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = AttemptDirs::new(&dir.path().join("w"), &dir.path().join("c"), &spec("s", "0123456789abcdef"), 1);
        dirs.create().unwrap();
        let runner = TrialRunner { program: "true".into(), args: vec![], cpu_threads: 0 };
        let with = |names: &[&str]| {
            let mut s = spec("s", "0123456789abcdef");
            s.params = names.iter().map(|n| (n.to_string(), serde_json::json!(1))).collect();
            build_command(&s, 1, &dirs, &Placement::default(), &runner)
        };
        let cmd = with(&["lr", "label-noise.x"]).unwrap();
        let args: Vec<_> = cmd.as_std().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args.len(), 4, "{args:?}");
        for flag in ["--lr", "--label-noise.x"] {
            assert!(args.windows(2).any(|w| w[0] == flag && w[1] == "1"), "{args:?}");
        }
        let envs: Vec<_> = cmd.as_std().get_envs().map(|(k, _)| k.to_string_lossy().into_owned()).collect();
        assert!(envs.contains(&"SWEEP_PARAM_LR".into()) && envs.contains(&"SWEEP_PARAM_LABEL_NOISE_X".into()));
        for bad in [&[""][..], &["-x"], &["a-b", "a_b"]] {
            let err = with(bad).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().starts_with("params: "), "{err}");
        }
    }

    /// Each trial gets its share of the cores, so trials side by side do not spin against each other.
    #[test]
    fn trials_get_their_share_of_the_cores() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = AttemptDirs::new(&dir.path().join("w"), &dir.path().join("c"), &spec("s", "0123456789abcdef"), 1);
        dirs.create().unwrap();
        let env_of = |runner: &TrialRunner, name: &str| -> Option<String> {
            let cmd = build_command(&spec("s", "0123456789abcdef"), 1, &dirs, &Placement::default(), runner).unwrap();
            let found = cmd.as_std().get_envs().find(|(k, _)| *k == name).and_then(|(_, v)| v);
            found.map(|v| v.to_string_lossy().into_owned())
        };
        let runner = TrialRunner { program: "true".into(), args: vec![], cpu_threads: 0 };
        assert_eq!(env_of(&runner, "SWEEP_CPU_THREADS"), None);
        let cores = std::thread::available_parallelism().unwrap().get();
        let shared = runner.clone().sharing_cores(cores as u32 * 4);
        assert_eq!(shared.cpu_threads, 1, "never fewer than one thread");
        let shared = runner.sharing_cores(1);
        assert_eq!(env_of(&shared, "SWEEP_CPU_THREADS"), Some(cores.to_string()));
        // A share set before (by `sweep local` for all its agents) is kept.
        assert_eq!(shared.clone().sharing_cores(cores as u32 * 4).cpu_threads, cores);
        if std::env::var_os("OMP_NUM_THREADS").is_none() {
            assert_eq!(env_of(&shared, "OMP_NUM_THREADS"), Some(cores.to_string()));
        }
    }
}
