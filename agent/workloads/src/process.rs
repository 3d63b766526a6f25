//! The trial process's side of the agent protocol: its entry points (`run-trial --spec FILE`, once
//! or once per member of a fused group), the spec files and environment they read, and the
//! records they print on stdout, one flushed line each, while logs go to stderr.

use crate::{harness, TrialContext, TrialError};
use std::io::Write;
use std::path::{Path, PathBuf};
use sweep_spec::report::MemberLine;
use sweep_spec::{EpochRecord, TrialSpec};

/// Entry point of a trial process (`sweep-agent run-trial --spec FILE` and `sweep run-trial --spec FILE` both call this).
/// Reads the TrialSpec JSON at `spec_path`, picks the device, runs the workload named by spec.workload,
/// prints one `EpochRecord::to_line()` per epoch on stdout (flushed after each line), and returns the process exit code:
/// 0 success, sweep_spec::trial::EXIT_BAD_CONFIG (78) for an invalid configuration (message on stderr naming the
/// parameter, e.g. "params.width: expected an integer >= 1, got 0"), 1 for any other error (message on stderr).
pub fn run_trial_main(spec_path: &Path) -> i32 {
    match run_trial(spec_path) {
        Ok(()) => 0,
        Err(e @ TrialError::Paused(_)) => {
            eprintln!("{e}");
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            e.exit_code()
        }
    }
}

/// Entry point of a fused group (`run-trial --spec A --spec B ...`): trains the trials as one
/// network (see `sweep_spec::fusion` for which trials may share a group) and prints each member's
/// records tagged with its trial id (`sweep_spec::report::MemberLine`), and a `dropped` line for
/// a member that diverged and left the group. Exit code 0 when the group ran to its end (dropped
/// members included), 78 for trials that cannot be fused, 1 for any other error. Each member
/// checkpoints into its own folder (`SWEEP_GROUP_CHECKPOINT_DIRS`) in the format of a lone trial.
pub fn run_group_main(spec_paths: &[PathBuf]) -> i32 {
    match run_group(spec_paths) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            e.exit_code()
        }
    }
}

fn run_group(spec_paths: &[PathBuf]) -> Result<(), TrialError> {
    let specs: Vec<TrialSpec> = spec_paths.iter().map(|p| read_spec(p)).collect::<Result<_, _>>()?;
    let first = specs.first().ok_or_else(|| TrialError::bad_config("a group needs at least one trial spec"))?;
    let ctx = TrialContext::from_env(first)?;
    let checkpoint_dirs = group_checkpoint_dirs(&specs)?;
    let stdout = std::io::stdout();
    let sinks: Vec<harness::MemberSink<'_>> = specs
        .iter()
        .map(|spec| -> harness::MemberSink<'_> {
            let stdout = &stdout;
            Box::new(move |report| {
                let line = match report {
                    harness::MemberReport::Epoch(record) => MemberLine::Epoch(record),
                    harness::MemberReport::Dropped(why) => MemberLine::Dropped(why),
                };
                print_line(stdout, &line.to_line(&spec.id.0))
            })
        })
        .collect();
    crate::dispatch::run_group(&specs, &ctx, checkpoint_dirs, sinks).map(|_| ())
}

/// Each member's checkpoint folder, from `SWEEP_GROUP_CHECKPOINT_DIRS` (a JSON object from trial
/// id to folder, set by the agent); a member without one neither resumes nor checkpoints.
fn group_checkpoint_dirs(specs: &[TrialSpec]) -> Result<Vec<Option<PathBuf>>, TrialError> {
    let dirs: std::collections::HashMap<String, PathBuf> = match std::env::var(GROUP_CHECKPOINT_DIRS) {
        Ok(json) => serde_json::from_str(&json).map_err(|e| {
            TrialError::bad_config(format!("{GROUP_CHECKPOINT_DIRS}: expected a JSON object of folders: {e}"))
        })?,
        Err(_) => Default::default(),
    };
    Ok(specs.iter().map(|s| dirs.get(&s.id.0).cloned()).collect())
}

/// The environment variable that names a fused group's checkpoint folders, member by member.
pub const GROUP_CHECKPOINT_DIRS: &str = "SWEEP_GROUP_CHECKPOINT_DIRS";

fn read_spec(spec_path: &Path) -> Result<TrialSpec, TrialError> {
    let text = std::fs::read_to_string(spec_path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the trial spec: {e}", spec_path.display()))?;
    // A spec that does not parse never will: failing fast beats retrying it.
    serde_json::from_str(&text)
        .map_err(|e| TrialError::bad_config(format!("{}: not a trial spec: {e}", spec_path.display())))
}

/// One line on stdout, flushed: the agent relays records as they come, and a buffered record is a
/// lost one if the trial dies.
fn print_line(stdout: &std::io::Stdout, line: &str) -> anyhow::Result<()> {
    let mut out = stdout.lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

fn run_trial(spec_path: &Path) -> Result<(), TrialError> {
    let spec = read_spec(spec_path)?;
    let ctx = TrialContext::from_env(&spec)?;
    eprintln!("trial {} of sweep {}: workload {} on {:?}", spec.id, spec.sweep, spec.workload, ctx.device);
    let stdout = std::io::stdout();
    crate::dispatch::run_workload(&spec, &ctx, &mut |record: EpochRecord| print_line(&stdout, &record.to_line()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp;
    use serde_json::{json, Map, Value};
    use sweep_spec::{Resources, TrialId};

    fn spec(params: Map<String, Value>) -> TrialSpec {
        TrialSpec {
            id: TrialId("0123456789abcdef".into()),
            sweep: "test".into(),
            index: 0,
            workload: "mlp".into(),
            command: None,
            params,
            data: None,
            resources: Resources::default(),
            checkpoint_every_epochs: None,
            command_bool: Default::default(),
            copy_from: None,
        }
    }

    fn write_spec(dir: &tempfile::TempDir, spec: &TrialSpec) -> std::path::PathBuf {
        let path = dir.path().join("spec.json");
        std::fs::write(&path, serde_json::to_string(spec).unwrap()).unwrap();
        path
    }

    #[test]
    fn invalid_params_exit_with_bad_config() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(&str, Value)> = vec![
            ("width", json!(0)),
            ("width", json!(2.5)),
            ("classes", json!(1)),
            ("label_noise", json!(1.5)),
            ("optimizer", json!({"name": "rmsprop", "lr": 0.1})),
            ("optimizer", json!({"name": "adam", "lr": 0.1, "momentum": 0.9})),
            ("no_such_param", json!(3)),
        ];
        for (key, value) in cases {
            let mut params = mlp::tests::params_map();
            params.insert(key.into(), value.clone());
            let path = write_spec(&dir, &spec(params));
            assert_eq!(run_trial_main(&path), 78, "{key} = {value}");
        }
        let mut missing = mlp::tests::params_map();
        missing.remove("seed");
        assert_eq!(run_trial_main(&write_spec(&dir, &spec(missing))), 78);
    }

    #[test]
    fn unknown_workload_and_broken_spec_are_bad_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(mlp::tests::params_map());
        s.workload = "resnet".into();
        assert_eq!(run_trial_main(&write_spec(&dir, &s)), 78);
        let path = dir.path().join("broken.json");
        std::fs::write(&path, "{ not json").unwrap();
        assert_eq!(run_trial_main(&path), 78);
        assert_eq!(run_trial_main(&dir.path().join("absent.json")), 1);
    }

    #[test]
    fn xmc_tree_is_dispatched_and_its_bad_config_exits_78() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(sweep_xmc::params::defaults());
        s.workload = "xmc_tree".into();
        s.params.insert("branching".into(), json!(1));
        assert_eq!(run_trial_main(&write_spec(&dir, &s)), 78);
    }

    #[test]
    fn a_valid_spec_runs_to_completion() {
        let mut params = mlp::tests::params_map();
        params.insert("hidden_trainable".into(), json!(false));
        let dir = tempfile::tempdir().unwrap();
        // Records go to stdout here; the point is the exit code of the whole path.
        assert_eq!(run_trial_main(&write_spec(&dir, &spec(params))), 0);
    }
}
