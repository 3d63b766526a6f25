//! The workload end to end: records, exact resumes mid-pass for every rule whose state is more
//! than moments, images written in the real `.npy` layout and read back through the real loader,
//! and the shipped small study's effect.

use crate::dispatch::{checkpointed_ctx as ctx_in, run_recorded as run};
use crate::harness::StopFlag;
use crate::numeric_checks::{assert_same_runs, relative, OneThread, SAME_KERNELS};
use crate::{TrialContext, TrialError};
use serde_json::{json, Map, Value};
use std::path::Path;
use sweep_spec::workloads::OPTIMIZERS;
use sweep_spec::{DataRef, EpochRecord, TrialSpec};

/// A small least-squares trial.
fn spec(changes: &[(&str, Value)]) -> TrialSpec {
    let mut params = OPTIMIZERS.defaults();
    for (k, v) in [
        ("dim", json!(8)),
        ("outputs", json!(6)),
        ("points", json!(120)),
        ("condition_number", json!(100.0)),
        ("steps", json!(12)),
        ("record_every", json!(3)),
        ("seed", json!(4)),
    ]
    .iter()
    .chain(changes)
    {
        params.insert(k.to_string(), v.clone());
    }
    crate::dispatch::trial_spec(OPTIMIZERS.name, params)
}

/// The same trial on synthetic images (`generator` `patterns`: 3 x 8 x 8 class patterns;
/// `gaussian_mixture`: points in 8 dimensions) written to `data` on first use in the `.npy` layout.
fn on_images(data: &Path, generator: &str, problem: &str, changes: &[(&str, Value)]) -> TrialSpec {
    let mut all = vec![("problem", json!(problem)), ("width", json!(4))];
    all.extend(changes.iter().cloned());
    let mut spec = spec(&all);
    let mut options = Map::new();
    options.insert(
        "synthetic".into(),
        json!({ "generator": generator, "train": 90, "test": 10, "classes": 3, "image_size": 8 }),
    );
    spec.data = Some(DataRef { format: "npy".into(), path: Some(data.display().to_string()), options });
    spec
}

fn losses(records: &[EpochRecord]) -> Vec<f64> {
    records.iter().map(|r| r.metrics["train_loss"]).collect()
}

#[test]
fn records_come_every_few_steps_with_the_loss_the_clock_and_the_state_size() {
    let (result, records) = run(&spec(&[("steps", json!(10))]), &TrialContext::cpu());
    result.unwrap();
    assert_eq!(records.iter().map(|r| r.epoch).collect::<Vec<_>>(), [3, 6, 9, 10]);
    assert!(records.iter().all(|r| r.step == Some(r.epoch as i64)));
    for r in &records {
        for name in ["train_loss", "batch_loss", "seconds", "step_seconds", "optimizer_state_bytes", "lr"] {
            assert!(r.metrics[name].is_finite(), "{name} at {}", r.epoch);
        }
        // Plain SGD keeps only its two step counts (its own and the weight's), 8 bytes each.
        assert_eq!(r.metrics["optimizer_state_bytes"], 16.0);
    }
    let loss = losses(&records);
    assert!(loss.windows(2).all(|w| w[1] < w[0]) && loss[0] < 0.5, "{loss:?}");
    let seconds: Vec<f64> = records.iter().map(|r| r.metrics["seconds"]).collect();
    assert!(seconds.windows(2).all(|w| w[1] >= w[0]), "{seconds:?}");
}

#[test]
fn the_first_record_under_the_target_carries_steps_and_seconds_to_it() {
    let (result, records) = run(&spec(&[("steps", json!(30)), ("target_loss", json!(0.1))]), &TrialContext::cpu());
    result.unwrap();
    let reached: Vec<&EpochRecord> = records.iter().filter(|r| r.metrics.contains_key("steps_to_target")).collect();
    assert_eq!(reached.len(), 1, "{records:?}");
    let first_below = records.iter().find(|r| r.metrics["train_loss"] <= 0.1).unwrap();
    assert_eq!(reached[0].epoch, first_below.epoch);
    assert_eq!(reached[0].metrics["steps_to_target"], first_below.epoch as f64);
    assert_eq!(reached[0].metrics["seconds_to_target"], reached[0].metrics["seconds"]);
}

/// Stopped by SIGTERM in the middle of a pass and paused at a rung, then resumed each time: the
/// records are those of the uninterrupted run, for every rule whose state is more than moments
/// (Adafactor's factors, Shampoo's statistics, roots and graft) and on mini-batches.
#[test]
fn a_stopped_and_paused_trial_resumes_to_the_same_records() {
    let cases = [
        json!({"name": "adafactor", "lr": 0.05, "beta1": 0.9}),
        json!({"name": "shampoo", "lr": 0.2, "momentum": 0.5, "precondition_every": 4, "graft": "adagrad", "block_size": 4}),
        json!({"name": "adagrad", "lr": 0.2}),
    ];
    for optimizer in cases {
        // 120 points in batches of 50: two steps a pass, so a stop after step 5 is mid-pass.
        let spec = spec(&[("optimizer", optimizer.clone()), ("batch_size", json!(50)), ("record_every", json!(1))]);
        let (result, uninterrupted) = run(&spec, &TrialContext::cpu());
        result.unwrap();
        assert_eq!(uninterrupted.len(), 12);

        let ckpt = tempfile::tempdir().unwrap();
        let (first, mut resumed) = run(&spec, &ctx_in(ckpt.path(), StopFlag::after_checks(6), None));
        assert!(matches!(first, Err(TrialError::Interrupted)), "{optimizer}: {first:?}");
        assert_eq!(resumed.len(), 5);
        let (second, more) = run(&spec, &ctx_in(ckpt.path(), StopFlag::default(), Some(8)));
        assert!(matches!(second, Err(TrialError::Paused(8))), "{optimizer}: {second:?}");
        resumed.extend(more);
        let (third, rest) = run(&spec, &ctx_in(ckpt.path(), StopFlag::default(), None));
        third.unwrap();
        resumed.extend(rest);
        assert_same_runs(&optimizer.to_string(), &resumed, &uninterrupted, relative(SAME_KERNELS));
    }
}

#[test]
fn image_problems_read_the_data_section_and_learn() {
    let data = tempfile::tempdir().unwrap();
    for (generator, problem, optimizer) in [
        ("gaussian_mixture", "logistic", json!({"name": "adafactor", "lr": 0.05})),
        ("gaussian_mixture", "mlp", json!({"name": "shampoo", "lr": 0.05, "graft": "sgd"})),
        ("patterns", "cnn5", json!({"name": "adam", "lr": 0.01})),
    ] {
        let changes = [("optimizer", optimizer), ("batch_size", json!(30))];
        let spec = on_images(&data.path().join(generator), generator, problem, &changes);
        let (result, records) = run(&spec, &TrialContext::cpu());
        result.unwrap();
        let loss = losses(&records);
        assert!(loss.last() < loss.first(), "{problem}: {loss:?}");
        assert!(records.iter().all(|r| (0.0..=1.0).contains(&r.metrics["train_acc"])), "{problem}");
    }
    let mut spec = on_images(&data.path().join("gaussian_mixture"), "gaussian_mixture", "logistic", &[]);
    spec.data = None;
    let err = run(&spec, &TrialContext::cpu()).0.unwrap_err().to_string();
    assert!(err.starts_with("data: problem = \"logistic\" of workload `optimizers` needs a [data] section"), "{err}");
    let with_data = on_images(&data.path().join("gaussian_mixture"), "gaussian_mixture", "least_squares", &[]);
    let err = run(&with_data, &TrialContext::cpu()).0.unwrap_err().to_string();
    assert!(err.starts_with("data: problem = \"least_squares\" makes its own data"), "{err}");
}

#[test]
fn a_step_size_too_large_ends_the_trial_with_a_diverged_record() {
    let (result, records) = run(&spec(&[("optimizer", json!({"name": "sgd", "lr": 1e6}))]), &TrialContext::cpu());
    result.unwrap();
    assert_eq!(records.last().unwrap().metrics.get("diverged"), Some(&1.0), "{records:?}");
    assert!(records.len() < 4);
}

/// The shipped small study must show what its header promises: on the ill-conditioned problem,
/// full-batch, Shampoo at its best step size reaches the target in fewer steps than SGD at its best.
#[test]
fn small_study_shows_shampoo_ahead_of_sgd_in_steps_on_the_ill_conditioned_problem() {
    let _one = OneThread::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/studies/optimizers-small.toml");
    let file = sweep_spec::SweepFile::read(&path).unwrap();
    let trials = sweep_spec::expand(&file).unwrap();
    let worst = trials.iter().map(|t| t.params["condition_number"].as_f64().unwrap()).fold(1.0, f64::max);
    let mut best = std::collections::BTreeMap::<String, u32>::new();
    for trial in trials.iter().filter(|t| {
        let name = t.params["optimizer"]["name"].as_str().unwrap();
        ["sgd", "shampoo"].contains(&name)
            && t.params["condition_number"].as_f64() == Some(worst)
            && t.params["batch_size"].as_i64() == Some(0)
    }) {
        let (result, records) = run(trial, &TrialContext::cpu());
        result.unwrap();
        let name = trial.params["optimizer"]["name"].as_str().unwrap().to_string();
        let steps = records.iter().find_map(|r| r.metrics.get("steps_to_target")).map_or(u32::MAX, |s| *s as u32);
        eprintln!("{}: steps to target {steps}", trial.params["optimizer"]);
        let entry = best.entry(name).or_insert(u32::MAX);
        *entry = (*entry).min(steps);
    }
    assert!(best["shampoo"] < u32::MAX, "shampoo never reached the target: {best:?}");
    assert!(best["shampoo"] < best["sgd"], "{best:?}");
}
