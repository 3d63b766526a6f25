//! The workload end to end on synthetic data written in the real formats and read back through the
//! real loaders.

use crate::harness::StopFlag;
use crate::{TrialContext, TrialError};
use serde_json::{json, Map};
use std::path::Path;
use sweep_spec::{DataRef, TrialSpec};
use tch::Device;

pub(super) use crate::dispatch::run_recorded as run;

fn study(name: &str) -> sweep_spec::SweepFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/studies").join(name);
    sweep_spec::SweepFile::read(&path).unwrap()
}

/// The shipped small study must show what its header promises: balanced softmax and the
/// logit-adjusted loss beat cross-entropy on the few-shot classes and on balanced accuracy.
#[test]
fn small_study_shows_logit_adjustment_helping_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut scores = std::collections::BTreeMap::new();
    for mut trial in sweep_spec::expand(&study("long-tail-small.toml")).unwrap() {
        let loss = trial.params["loss"].as_str().unwrap().to_string();
        if trial.params["sampler"] != "instance" || trial.params["seed"] != 0 {
            continue;
        }
        if !["ce", "balanced_softmax", "logit_adjust"].contains(&loss.as_str()) {
            continue;
        }
        // The study's synthetic set, written to a temporary folder instead of the repository's.
        trial.data.as_mut().unwrap().path = Some(dir.path().join("mixture").to_string_lossy().into_owned());
        let (result, records) = run(&trial, &TrialContext::cpu());
        result.unwrap();
        let last = records.last().unwrap().metrics.clone();
        scores.insert(loss.clone(), (last["test_acc_balanced"], last["test_acc_few"], last["test_acc_many"]));
    }
    eprintln!("(balanced, few, many) by loss: {scores:?}");
    let ce = scores["ce"];
    for loss in ["balanced_softmax", "logit_adjust"] {
        let s = scores[loss];
        assert!(s.0 > ce.0 + 0.03, "{loss} balanced accuracy {} vs cross-entropy {}", s.0, ce.0);
        assert!(s.1 > ce.1 + 0.15, "{loss} few-shot accuracy {} vs cross-entropy {}", s.1, ce.1);
        // The price is paid by the head classes.
        assert!(s.2 < ce.2, "{loss} many-shot accuracy {} vs cross-entropy {}", s.2, ce.2);
    }
}

pub(super) fn cifar_lt_spec(path: &Path) -> TrialSpec {
    let mut trial = sweep_spec::expand(&study("cifar10-lt.toml"))
        .unwrap()
        .into_iter()
        .find(|t| t.params["loss"] == "ldam_drw" && t.params["sampler"] == "instance")
        .unwrap();
    for (k, v) in [
        ("epochs", json!(2)),
        ("drw_epoch", json!(1)),
        ("crt_epochs", json!(1)),
        ("tau_norm", json!(1.0)),
        ("posthoc_tau", json!(0.5)),
        ("batch_size", json!(64)),
        ("eval_every", json!(1)),
        ("schedule", json!("cosine")),
    ] {
        trial.params.insert(k.into(), v);
    }
    let study_data = trial.data.take().unwrap();
    assert_eq!(study_data.format, "cifar_lt");
    let mut options = Map::new();
    options.insert("imbalance_ratio".into(), json!(10));
    trial.data = Some(DataRef { format: "cifar_lt".into(), path: Some(path.to_string_lossy().into_owned()), options });
    trial
}

/// 1,000 training and 200 test images of 10 classes in the CIFAR-10 binary format.
pub(super) fn synthetic_cifar() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let opts = crate::data::SynthOptions {
        train: 1000,
        test: 200,
        classes: 10,
        image_size: 32,
        seed: 4,
        ..Default::default()
    };
    crate::data::write_synthetic("cifar10", data.path(), &opts).unwrap();
    data
}

/// The CIFAR-10-LT study's trial (ResNet-32, LDAM-DRW) on synthetic CIFAR-10 binary batches, with
/// a cRT stage: the class sizes follow the profile, the stages number their epochs on, and a trial
/// restarted after the first stage resumes from its checkpoint and reproduces the second stage.
#[test]
fn cifar10_lt_study_trial_runs_both_stages_and_resumes_between_them() {
    let data = synthetic_cifar();
    let spec = cifar_lt_spec(data.path());
    let ckpt = tempfile::tempdir().unwrap();
    let ctx = || TrialContext {
        device: Device::Cpu,
        checkpoint_dir: Some(ckpt.path().to_path_buf()),
        checkpoint_every: None,
        stop_after: None,
        stop: StopFlag::default(),
        cuda_graphs: crate::harness::GraphMode::Off,
    };
    let (result, records) = run(&spec, &ctx());
    result.unwrap();
    assert_eq!(records.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(!records[1].metrics.contains_key("stage") && records[2].metrics["stage"] == 2.0);
    // 100 images per class cut with rho = 10: 100 * 10^(-i/9).
    let sizes: Vec<f64> = (0..10).map(|c| records[0].metrics[&format!("class_train_count/{c}")]).collect();
    assert_eq!(sizes, [100.0, 77.0, 59.0, 46.0, 35.0, 27.0, 21.0, 16.0, 12.0, 10.0]);
    for r in &records {
        // No class has more than 100 images: there is no many-shot group to report.
        assert!(!r.metrics.contains_key("test_acc_many"));
        for key in ["test_acc", "test_acc_medium", "test_acc_few", "test_acc_balanced", "class_acc/9"] {
            assert!((0.0..=1.0).contains(&r.metrics[key]), "epoch {} {key}: {:?}", r.epoch, r.metrics.get(key));
        }
    }

    // Restarted after the end: stage 1 is loaded, not retrained, and stage 2 runs again the same.
    let (again, rerun) = run(&spec, &ctx());
    again.unwrap();
    assert_eq!(rerun.iter().map(|r| r.epoch).collect::<Vec<_>>(), [3]);
    for key in ["test_acc", "test_loss", "class_acc/0"] {
        let (a, b) = (records[2].metrics[key], rerun[0].metrics[key]);
        assert!((a - b).abs() < 1e-6, "{key}: {a} vs {b} after the restart");
    }
}

#[test]
fn missing_data_and_unknown_formats_are_configuration_errors() {
    let mut spec = cifar_lt_spec(Path::new("/nonexistent/cifar"));
    let (result, _) = run(&spec, &TrialContext::cpu());
    let err = result.unwrap_err();
    assert!(matches!(err, TrialError::BadConfig(_)) && err.to_string().contains("/nonexistent/cifar"), "{err}");
    spec.data = None;
    assert!(matches!(run(&spec, &TrialContext::cpu()).0, Err(TrialError::BadConfig(_))));
}
