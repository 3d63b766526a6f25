//! Which code runs a trial or a fused group: the one place a workload's name is matched, so an
//! unknown workload, or one that does not fuse, is refused here with the names that would do.

use crate::harness::{MemberOutcome, MemberSink};
use crate::{
    double_descent, edge_of_stability, long_tail, mlp, multimodal, optimizers, seq2seq, sparsity, Sink, TrialContext,
    TrialError,
};
use std::path::PathBuf;
use sweep_spec::workloads::{
    DOUBLE_DESCENT, EDGE_OF_STABILITY, LONG_TAIL, MLP, MULTIMODAL, OPTIMIZERS, SEQ2SEQ, SPARSITY, XMC_TREE,
};
use sweep_spec::TrialSpec;

/// Runs the workload a spec names, handing each record to `sink`.
pub(crate) fn run_workload(spec: &TrialSpec, ctx: &TrialContext, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    match spec.workload.as_str() {
        name if name == DOUBLE_DESCENT.name => double_descent::run(spec, ctx, sink),
        name if name == LONG_TAIL.name => long_tail::run(spec, ctx, sink),
        name if name == EDGE_OF_STABILITY.name => edge_of_stability::run(spec, ctx, sink),
        name if name == OPTIMIZERS.name => optimizers::run(spec, ctx, sink),
        name if name == SPARSITY.name => sparsity::run(spec, ctx, sink),
        name if name == SEQ2SEQ.name => seq2seq::run(spec, ctx, sink),
        name if name == MULTIMODAL.name => multimodal::run(spec, ctx, sink),
        name if name == MLP.name => {
            if spec.data.is_some() {
                return Err(TrialError::bad_config(
                    "data: workload `mlp` generates its own synthetic data and takes no [data] section",
                ));
            }
            mlp::run(&spec.params, ctx, sink)
        }
        // The label-tree study is pure Rust on the CPU (crate sweep-xmc); no libtorch, device or checkpoint.
        name if name == XMC_TREE.name => sweep_xmc::run(spec, sink).map_err(|e| match e {
            sweep_xmc::XmcError::BadConfig(message) => TrialError::BadConfig(message),
            sweep_xmc::XmcError::Other(e) => TrialError::Other(e),
        }),
        other => Err(TrialError::bad_config(format!(
            "workload: expected a built-in workload ({}), got \"{other}\"",
            sweep_spec::workloads::BUILT_IN.iter().map(|w| w.name).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Checks a trial's parameters the way its workload will before training, without data or a
/// device: what `sweep validate`, `submit` and `local` run over every trial, so a trial never
/// fails for a parameter the sweep file already showed. A user's command is not checked here.
pub fn check_params(spec: &TrialSpec) -> Result<(), TrialError> {
    match spec.workload.as_str() {
        name if name == DOUBLE_DESCENT.name => double_descent::Params::parse(&spec.params).map(drop),
        name if name == LONG_TAIL.name => long_tail::Params::parse(&spec.params).map(drop),
        name if name == EDGE_OF_STABILITY.name => edge_of_stability::Params::parse(&spec.params).map(drop),
        name if name == OPTIMIZERS.name => optimizers::Params::parse(&spec.params).map(drop),
        name if name == SPARSITY.name => sparsity::Params::parse(&spec.params).map(drop),
        name if name == SEQ2SEQ.name => seq2seq::Params::parse(&spec.params).map(drop),
        name if name == MULTIMODAL.name => multimodal::Params::parse(&spec.params).map(drop),
        name if name == MLP.name => mlp::MlpParams::parse(&spec.params).map(drop),
        name if name == XMC_TREE.name => {
            sweep_xmc::params::Params::parse(&spec.params).map(drop).map_err(|e| TrialError::bad_config(e.to_string()))
        }
        _ => Ok(()),
    }
}

/// Trains `specs` as fused groups of their workload, member i reporting to `sinks[i]` and
/// checkpointing into `checkpoint_dirs[i]`.
pub(crate) fn run_group(
    specs: &[TrialSpec],
    ctx: &TrialContext,
    checkpoint_dirs: Vec<Option<PathBuf>>,
    sinks: Vec<MemberSink<'_>>,
) -> Result<Vec<MemberOutcome>, TrialError> {
    let first = specs.first().ok_or_else(|| TrialError::bad_config("a group needs at least one trial spec"))?;
    match first.workload.as_str() {
        name if name == DOUBLE_DESCENT.name => double_descent::run_group(specs, ctx, checkpoint_dirs, sinks),
        name if name == LONG_TAIL.name => long_tail::run_group(specs, ctx, checkpoint_dirs, sinks),
        other => Err(TrialError::bad_config(format!(
            "trial {}: workload `{other}` does not fuse; fused groups are of {} or {} trials",
            first.id, DOUBLE_DESCENT.name, LONG_TAIL.name
        ))),
    }
}

/// Runs `spec` as [`run_workload`] does, with its records collected, holding libtorch's generator
/// lock: a trial seeds the global generator and draws from it.
#[cfg(test)]
pub(crate) fn run_recorded(
    spec: &TrialSpec,
    ctx: &TrialContext,
) -> (Result<(), TrialError>, Vec<sweep_spec::EpochRecord>) {
    let _guard = crate::torch_rng_lock();
    let mut records = Vec::new();
    let result = run_workload(spec, ctx, &mut |r| {
        records.push(r);
        Ok(())
    });
    (result, records)
}

/// A trial of `workload` with `params` and nothing else set, for tests.
#[cfg(test)]
pub(crate) fn trial_spec(workload: &str, params: serde_json::Map<String, serde_json::Value>) -> TrialSpec {
    TrialSpec {
        id: sweep_spec::TrialId("0123456789abcdef".into()),
        sweep: "s".into(),
        index: 0,
        workload: workload.into(),
        command: None,
        params,
        data: None,
        resources: Default::default(),
        checkpoint_every_epochs: None,
        command_bool: Default::default(),
        copy_from: None,
    }
}

/// The CPU context of a test trial that checkpoints into `dir`, with its stop flag and rung.
#[cfg(test)]
pub(crate) fn checkpointed_ctx(
    dir: &std::path::Path,
    stop: crate::harness::StopFlag,
    stop_after: Option<u32>,
) -> TrialContext {
    TrialContext { checkpoint_dir: Some(dir.to_path_buf()), stop, stop_after, ..TrialContext::cpu() }
}

#[cfg(test)]
mod tests {
    use super::trial_spec as spec;
    use super::*;
    use std::path::Path;

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

    #[test]
    fn a_group_of_a_workload_that_does_not_fuse_is_refused_by_name() {
        let mut spec = spec("mlp", Default::default());
        let err = run_group(&[spec.clone()], &TrialContext::cpu(), vec![None], vec![Box::new(|_| Ok(()))]).unwrap_err();
        assert!(matches!(err, TrialError::BadConfig(_)), "{err}");
        assert!(err.to_string().contains("workload `mlp` does not fuse"), "{err}");
        spec.workload = "<script>".into();
        let err = run_group(&[spec], &TrialContext::cpu(), vec![None], vec![Box::new(|_| Ok(()))]).unwrap_err();
        assert!(err.to_string().contains("does not fuse"), "{err}");
        assert!(run_group(&[], &TrialContext::cpu(), vec![], vec![]).is_err());
    }

    /// The workload catalogue (`sweep_spec::workloads`) is what `sweep validate` checks values
    /// against. Every value it lets through for a parameter on its own (each named choice, each
    /// bound) must be one the workload trains with, or a trial could fail for a value validate
    /// passed.
    #[test]
    fn every_value_the_catalogue_allows_the_workload_accepts() {
        use serde_json::{json, Value};
        use sweep_spec::workloads::{Domain, Kind, BUILT_IN};
        let mut checked = 0;
        for w in BUILT_IN {
            let defaults = w.defaults();
            for p in w.params {
                let int = |x: f64| if p.kind == Kind::Int { json!(x as i64) } else { json!(x) };
                let values: Vec<Value> = match p.domain {
                    Domain::Any => continue,
                    Domain::OneOf(names) => names
                        .iter()
                        .map(|&name| match (p.kind, name) {
                            // Step decay is written as a table: it needs its period.
                            (_, "step") => json!({ "name": "step", "every_epochs": 1 }),
                            (Kind::Table, _) => json!({ "name": name, "lr": 0.01 }),
                            _ => json!(name),
                        })
                        .collect(),
                    Domain::AtLeast(min) => vec![int(min)],
                    Domain::Above(min) => vec![int(min + 1e-3)],
                    Domain::HalfOpen(lo, hi) => vec![int(lo), int(hi - 1e-3)],
                    Domain::Closed(lo, hi) => vec![int(lo), int(hi)],
                };
                for value in values {
                    let mut spec = spec(w.name, defaults.clone());
                    spec.params.insert(p.name.into(), value.clone());
                    // A value may clash with another key's default (sparsity's `epochs = 1` with
                    // its `end = 12`, seq2seq's `d_model = 1` with its `heads = 4`): that error
                    // names the other key, as the error's subject or with its value.
                    if let Err(e) = check_params(&spec).map_err(|e| e.to_string()) {
                        let names_another =
                            w.params.iter().any(|q| q.name != p.name && e.contains(&format!("{} = ", q.name)));
                        if !e.starts_with(&format!("params.{}", p.name)) || names_another {
                            continue;
                        }
                        panic!(
                            "{} {} = {value}: allowed by the catalogue, refused by the workload: {e}",
                            w.name, p.name
                        );
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 60, "{checked}");
    }

    #[test]
    fn a_value_the_catalogue_cannot_see_is_still_checked_before_training() {
        let mut spec = spec("long_tail", sweep_spec::workloads::LONG_TAIL.defaults());
        assert!(check_params(&spec).is_ok());
        spec.params.insert("schedule".into(), serde_json::json!("step"));
        let err = check_params(&spec).unwrap_err().to_string();
        assert!(err.starts_with("params.schedule.every_epochs: missing"), "{err}");
    }
}
