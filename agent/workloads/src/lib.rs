//! Built-in libtorch workloads and the entry point of a trial process.
//!
//! A trial process reads its `TrialSpec`, runs one workload, and speaks the metric protocol of
//! `sweep_spec::report` on stdout: one `EpochRecord` per line and nothing else (logs go to stderr).

pub use tch;

pub mod checkpoint;
pub mod data;
mod device;
mod double_descent;
mod error;
mod fused_group;
pub mod harness;
mod image_data;
mod long_tail;
mod mlp;
pub mod models;
pub mod optim;
mod params;
pub mod random_features;
mod rng;
pub mod throughput;

pub use error::TrialError;

use std::io::Write;
use std::path::{Path, PathBuf};
use sweep_spec::report::MemberLine;
use sweep_spec::{EpochRecord, TrialSpec};
use tch::Device;

/// Where a workload hands its records: stdout in a trial process, a vector in tests.
pub(crate) type Sink<'a> = dyn FnMut(EpochRecord) -> anyhow::Result<()> + 'a;

/// Entry point of a trial process (`sweep-agent run-trial --spec FILE` and `sweep run-trial --spec FILE` both call this).
/// Reads the TrialSpec JSON at `spec_path`, picks the device, runs the workload named by spec.workload,
/// prints one `EpochRecord::to_line()` per epoch on stdout (flushed after each line), and returns the process exit code:
/// 0 success, sweep_spec::trial::EXIT_BAD_CONFIG (78) for an invalid configuration (message on stderr naming the
/// parameter, e.g. "params.width: expected an integer >= 1, got 0"), 1 for any other error (message on stderr).
pub fn run_trial_main(spec_path: &Path) -> i32 {
    match run_trial(spec_path) {
        Ok(()) => 0,
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
    // Any other workload is refused, with the reason, by the double-descent group's checks.
    if first.workload == sweep_spec::workloads::LONG_TAIL.name {
        long_tail::run_group(&specs, &ctx, checkpoint_dirs, sinks).map(|_| ())
    } else {
        double_descent::run_group(&specs, &ctx, checkpoint_dirs, sinks).map(|_| ())
    }
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
    run_workload(&spec, &ctx, &mut |record: EpochRecord| print_line(&stdout, &record.to_line()))
}

/// Where and how a trial runs, apart from its parameters.
pub(crate) struct TrialContext {
    pub device: Device,
    /// The trial's checkpoint folder, the same for every attempt (`SWEEP_CHECKPOINT_DIR`).
    pub checkpoint_dir: Option<PathBuf>,
    /// Checkpoint after every this many epochs (`[retry] checkpoint_every_epochs`).
    pub checkpoint_every: Option<u32>,
    /// Raised by SIGTERM/SIGUSR1: checkpoint and stop.
    pub stop: harness::StopFlag,
    /// Capture steps as CUDA graphs on CUDA devices (`[resources] cuda_graphs`, on by default).
    pub cuda_graphs: harness::GraphMode,
}

/// libtorch's generator is process-global: tests that seed it and then draw (initialisation,
/// dropout) hold this lock so that no other test draws in between.
#[cfg(test)]
pub(crate) fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

impl TrialContext {
    /// The device from `SWEEP_DEVICE`, the checkpoint folder from `SWEEP_CHECKPOINT_DIR`, a stop
    /// flag raised by SIGTERM/SIGUSR1, and the checkpoint cadence and CUDA graphs `spec` asks for.
    fn from_env(spec: &TrialSpec) -> Result<TrialContext, TrialError> {
        Ok(TrialContext {
            device: device::from_env()?,
            checkpoint_dir: std::env::var_os("SWEEP_CHECKPOINT_DIR").filter(|v| !v.is_empty()).map(PathBuf::from),
            checkpoint_every: spec.checkpoint_every_epochs,
            stop: harness::StopFlag::on_signals().map_err(anyhow::Error::from)?,
            cuda_graphs: match spec.resources.cuda_graphs {
                true => harness::GraphMode::On,
                false => harness::GraphMode::Off,
            },
        })
    }

    #[cfg(test)]
    pub(crate) fn cpu() -> TrialContext {
        TrialContext {
            device: Device::Cpu,
            checkpoint_dir: None,
            checkpoint_every: None,
            stop: harness::StopFlag::default(),
            cuda_graphs: harness::GraphMode::Off,
        }
    }
}

/// Runs the workload a spec names, handing each record to `sink`.
pub(crate) fn run_workload(spec: &TrialSpec, ctx: &TrialContext, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    match spec.workload.as_str() {
        name if name == sweep_spec::workloads::DOUBLE_DESCENT.name => double_descent::run(spec, ctx, sink),
        name if name == sweep_spec::workloads::LONG_TAIL.name => long_tail::run(spec, ctx, sink),
        name if name == sweep_spec::workloads::MLP.name => {
            if spec.data.is_some() {
                return Err(TrialError::bad_config(
                    "data: workload `mlp` generates its own synthetic data and takes no [data] section",
                ));
            }
            mlp::run(&spec.params, ctx, sink)
        }
        // The label-tree study is pure Rust on the CPU (crate sweep-xmc); no libtorch, device or checkpoint.
        name if name == sweep_spec::workloads::XMC_TREE.name => sweep_xmc::run(spec, sink).map_err(|e| match e {
            sweep_xmc::XmcError::BadConfig(message) => TrialError::BadConfig(message),
            sweep_xmc::XmcError::Other(e) => TrialError::Other(e),
        }),
        other => Err(TrialError::bad_config(format!(
            "workload: expected a built-in workload ({}), got \"{other}\"",
            sweep_spec::workloads::BUILT_IN.iter().map(|w| w.name).collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// The shipped quickstart study must show what its header promises: averaged over seeds, test
    /// error peaks near width == n at 1.5x or more the error at both ends of the grid.
    #[test]
    fn quickstart_study_shows_double_descent() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/studies/quickstart.toml");
        let file = sweep_spec::SweepFile::read(&path).unwrap();
        let n = file.params["n"].as_u64().unwrap();
        let mut by_width: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
        for trial in sweep_spec::expand(&file).unwrap() {
            let mut last = None;
            run_workload(&trial, &TrialContext::cpu(), &mut |r| {
                last = Some(r);
                Ok(())
            })
            .unwrap();
            let width = trial.params["width"].as_u64().unwrap();
            by_width.entry(width).or_default().push(last.unwrap().metrics["test_error"]);
        }
        let curve: Vec<(u64, f64)> =
            by_width.iter().map(|(&w, errs)| (w, errs.iter().sum::<f64>() / errs.len() as f64)).collect();
        eprintln!("quickstart mean test_error by width: {curve:?}");
        let &(peak_width, peak) = curve.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        let (first, last) = (curve[0].1, curve[curve.len() - 1].1);
        assert!((n / 2..=2 * n).contains(&peak_width), "peak at width {peak_width}, n = {n}: {curve:?}");
        assert!(peak >= 1.5 * first && peak >= 1.5 * last, "peak too low: {curve:?}");
    }
}
