//! The workload end to end on synthetic data written in the real `.npy` layout and read back
//! through the real loader: resume equality, and the shipped small study's effects.

use crate::dispatch::{checkpointed_ctx as ctx_in, run_recorded as run};
use crate::harness::StopFlag;
use crate::numeric_checks::{assert_same_runs, relative, OneThread, SAME_KERNELS};
use crate::{TrialContext, TrialError};
use serde_json::{json, Map, Value};
use std::path::Path;
use sweep_spec::workloads::EDGE_OF_STABILITY;
use sweep_spec::{DataRef, TrialSpec};

/// A small trial on a Gaussian mixture written to `data` on first use.
fn spec(data: &Path, changes: &[(&str, Value)]) -> TrialSpec {
    let mut params = EDGE_OF_STABILITY.defaults();
    for (k, v) in [
        ("width", json!(16)),
        ("steps", json!(12)),
        ("sharpness_every", json!(3)),
        ("eigenvalues", json!(2)),
        ("n_train", json!(60)),
        ("chunk_size", json!(25)),
        ("lr", json!(0.1)),
        ("seed", json!(5)),
    ]
    .iter()
    .chain(changes)
    {
        params.insert(k.to_string(), v.clone());
    }
    let mut options = Map::new();
    options.insert(
        "synthetic".into(),
        json!({ "generator": "gaussian_mixture", "train": 60, "test": 10, "classes": 3, "image_size": 8 }),
    );
    let mut spec = crate::dispatch::trial_spec(EDGE_OF_STABILITY.name, params);
    spec.data = Some(DataRef { format: "npy".into(), path: Some(data.display().to_string()), options });
    spec
}

#[test]
fn records_carry_every_step_and_the_sharpness_where_measured() {
    let data = tempfile::tempdir().unwrap();
    let (result, records) = run(&spec(&data.path().join("set"), &[]), &TrialContext::cpu());
    result.unwrap();
    assert_eq!(records.iter().map(|r| r.epoch).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>());
    assert!(records.iter().all(|r| r.step == Some(r.epoch as i64)));
    // Measured at steps 0, 3, 6, 9 (records 1, 4, 7, 10) and at the last (record 12).
    let measured: Vec<u32> = records.iter().filter(|r| r.metrics.contains_key("sharpness")).map(|r| r.epoch).collect();
    assert_eq!(measured, vec![1, 4, 7, 10, 12]);
    for r in &records {
        for name in ["train_loss", "train_acc", "grad_norm", "two_over_lr", "stability_threshold", "lr"] {
            assert!(r.metrics[name].is_finite(), "{name} at {}", r.epoch);
        }
        assert_eq!(r.metrics["two_over_lr"], 20.0);
        if let Some(&s) = r.metrics.get("sharpness") {
            assert_eq!(s, r.metrics["eigenvalue/1"]);
            assert!(r.metrics["eigenvalue/2"] <= s && s > 0.0, "{:?}", r.metrics);
            assert!(r.metrics["sharpness_seconds"] >= 0.0 && r.metrics["lanczos_iterations"] >= 2.0);
        }
    }
    let loss: Vec<f64> = records.iter().map(|r| r.metrics["train_loss"]).collect();
    assert!(loss[11] < loss[0], "the loss did not fall: {loss:?}");
}

/// Stopped by SIGTERM after step 5 and paused at a rung after step 8, then resumed each time: the
/// records are those of the uninterrupted run, sharpness included (Lanczos's start vectors are in
/// the checkpoint), for plain gradient descent and for Adam's moments and preconditioner.
#[test]
fn a_stopped_and_paused_trial_resumes_to_the_same_records() {
    for optimizer in ["gd", "gd_momentum", "adam"] {
        let data = tempfile::tempdir().unwrap();
        let lr = if optimizer == "adam" { 0.01 } else { 0.1 };
        let spec = spec(&data.path().join("set"), &[("optimizer", json!(optimizer)), ("lr", json!(lr))]);
        let (result, uninterrupted) = run(&spec, &TrialContext::cpu());
        result.unwrap();
        if optimizer == "adam" {
            assert!(uninterrupted[3].metrics["preconditioned_sharpness"] > 0.0);
            assert!(
                !uninterrupted[0].metrics.contains_key("preconditioned_sharpness"),
                "no preconditioner before a step"
            );
        }

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
        assert_same_runs(optimizer, &resumed, &uninterrupted, relative(SAME_KERNELS));
    }
}

#[test]
fn a_step_size_too_large_ends_the_trial_with_a_diverged_record() {
    let data = tempfile::tempdir().unwrap();
    let (result, records) = run(&spec(&data.path().join("set"), &[("lr", json!(1e6))]), &TrialContext::cpu());
    result.unwrap();
    let last = records.last().unwrap();
    assert_eq!(last.metrics.get("diverged"), Some(&1.0), "{records:?}");
    assert!(records.len() < 12);
}

#[test]
fn a_trial_without_data_is_refused_by_name() {
    let mut spec = spec(Path::new("/nonexistent"), &[]);
    spec.data = None;
    let (result, _) = run(&spec, &TrialContext::cpu());
    let err = result.unwrap_err().to_string();
    assert!(err.starts_with("data: workload `edge_of_stability` needs a [data] section"), "{err}");
}

/// The shipped small study must show what its header promises: at the large step sizes the
/// sharpness rises to 2/eta and hovers within 10% of it; at the small one it stays below 2/eta.
#[test]
fn small_study_shows_the_edge_of_stability() {
    // One intra-op thread, as an agent gives a CPU trial (seven times faster here beside other tests).
    let _one = OneThread::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/studies/eos-small.toml");
    let dir = tempfile::tempdir().unwrap();
    let file = sweep_spec::SweepFile::read(&path).unwrap();
    let trials = sweep_spec::expand(&file).unwrap();
    let smallest = trials.iter().map(|t| t.params["lr"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
    let largest = trials.iter().map(|t| t.params["lr"].as_f64().unwrap()).fold(0.0, f64::max);
    for mut trial in trials.into_iter().filter(|t| [smallest, largest].contains(&t.params["lr"].as_f64().unwrap())) {
        trial.data.as_mut().unwrap().path = Some(dir.path().join("mixture").to_string_lossy().into_owned());
        let lr = trial.params["lr"].as_f64().unwrap();
        let (result, records) = run(&trial, &TrialContext::cpu());
        result.unwrap();
        let sharpness: Vec<(u32, f64)> =
            records.iter().filter_map(|r| r.metrics.get("sharpness").map(|s| (r.epoch, *s))).collect();
        let edge = 2.0 / lr;
        let at_edge = sharpness.iter().position(|(_, s)| *s >= 0.95 * edge);
        let loss: Vec<f64> = records.iter().map(|r| r.metrics["train_loss"]).collect();
        eprintln!("lr {lr}: 2/lr {edge:.3}, first at the edge {at_edge:?}, final loss {:.4}", loss.last().unwrap());
        if lr == smallest {
            let top = sharpness.iter().map(|(_, s)| *s).fold(0.0, f64::max);
            assert!(top < edge, "lr {lr}: sharpness reached {top}, 2/lr = {edge}");
            continue;
        }
        let first = at_edge.unwrap_or_else(|| panic!("lr {lr}: never reached 2/lr = {edge}: {sharpness:?}"));
        // Progressive sharpening: it started well below the edge.
        assert!(sharpness[0].1 < 0.7 * edge, "lr {lr}: started at {} already", sharpness[0].1);
        let after: Vec<f64> = sharpness[first..].iter().map(|(_, s)| *s).collect();
        let mean = after.iter().sum::<f64>() / after.len() as f64;
        assert!((mean / edge - 1.0).abs() <= 0.10, "lr {lr}: plateau at {mean}, 2/lr = {edge}: {after:?}");
        // Non-monotone: the loss rises on some steps at the edge, and still falls overall.
        let edge_step = sharpness[first].0 as usize - 1;
        let rises = loss[edge_step..].windows(2).filter(|w| w[1] > w[0]).count();
        assert!(rises > 0, "lr {lr}: the loss fell on every step at the edge");
        assert!(loss.last().unwrap() < &loss[edge_step], "lr {lr}: the loss did not fall at the edge");
    }
}
