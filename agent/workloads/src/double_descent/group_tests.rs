//! A fused group against its members trained alone, through the real loader on synthetic CIFAR
//! binaries: the same records epoch by epoch, each member with its own seed, learning rate, weight
//! decay and label noise; a diverging member dropped while the others go on.

use super::super::tests::{run as run_alone, spec, synthetic_cifar};
use super::*;
use serde_json::json;
use sweep_spec::EpochRecord;

/// preact_resnet18 of width 2 with SGD, member i with its own seed, learning rate, weight decay
/// and label noise.
fn member(data: &std::path::Path, i: u64, lr: f64) -> TrialSpec {
    let mut s = spec(data, 2);
    for (k, v) in [
        ("model", json!("preact_resnet18")),
        ("width", json!(2)),
        ("dropout", json!(0.0)),
        ("augment", json!(true)),
        ("seed", json!(11 + i)),
        ("label_noise", json!(0.1 * i as f64)),
        ("weight_decay", json!([5e-4, 0.0, 1e-3][i as usize % 3])),
        ("optimizer", json!({"name": "sgd", "lr": lr, "momentum": 0.9})),
    ] {
        s.params.insert(k.into(), v);
    }
    s.id = sweep_spec::TrialId(format!("{i:016x}"));
    s
}

fn run_fused(specs: &[TrialSpec]) -> (Result<Vec<MemberOutcome>, TrialError>, Vec<Vec<EpochRecord>>) {
    let mut records: Vec<Vec<EpochRecord>> = vec![Vec::new(); specs.len()];
    let _guard = crate::torch_rng_lock();
    let result = {
        let sinks: Vec<MemberSink<'_>> = records
            .iter_mut()
            .map(|r| -> MemberSink<'_> {
                Box::new(move |report| {
                    if let harness::MemberReport::Epoch(record) = report {
                        r.push(record);
                    }
                    Ok(())
                })
            })
            .collect();
        run_group(specs, &TrialContext::cpu(), sinks)
    };
    (result, records)
}

fn assert_same_records(member: usize, fused: &[EpochRecord], alone: &[EpochRecord]) {
    assert_eq!(fused.len(), alone.len(), "member {member}: epochs reported");
    for (f, a) in fused.iter().zip(alone) {
        assert_eq!((f.epoch, f.step), (a.epoch, a.step));
        assert_eq!(f.metrics["lr"], a.metrics["lr"], "member {member}, epoch {}", f.epoch);
        for loss in ["train_loss", "test_loss"] {
            let (x, y) = (f.metrics[loss], a.metrics[loss]);
            assert!(
                (x - y).abs() <= 1e-3 * y.abs().max(1.0),
                "member {member}, epoch {}: {loss} {x} fused, {y} alone",
                f.epoch
            );
        }
        for error in ["train_error", "test_error"] {
            let (x, y) = (f.metrics[error], a.metrics[error]);
            assert!((x - y).abs() <= 2.0 / 64.0, "member {member}, epoch {}: {error} {x} fused, {y} alone", f.epoch);
        }
    }
}

#[test]
fn each_member_reports_what_it_would_have_alone() {
    let data = synthetic_cifar();
    let specs: Vec<TrialSpec> = (0..3).map(|i| member(data.path(), i, [0.05, 0.02, 0.1][i as usize])).collect();
    let (result, fused) = run_fused(&specs);
    assert_eq!(result.unwrap(), vec![MemberOutcome::Finished; 3]);
    for (i, s) in specs.iter().enumerate() {
        let (alone_result, alone) = run_alone(s, &TrialContext::cpu());
        alone_result.unwrap();
        assert_same_records(i, &fused[i], &alone);
        assert_eq!(fused[i][0].metrics["fused_members"], 3.0);
    }
    // The members really differ (their own data, labels and rates), so matching is not trivial.
    assert_ne!(fused[0][1].metrics["train_loss"], fused[1][1].metrics["train_loss"]);
}

#[test]
fn a_diverging_member_is_dropped_and_the_others_go_on() {
    let data = synthetic_cifar();
    let specs: Vec<TrialSpec> = (0..3).map(|i| member(data.path(), i, if i == 1 { 1e30 } else { 0.05 })).collect();
    let (result, fused) = run_fused(&specs);
    let outcome = result.unwrap();
    assert_eq!(outcome[1], MemberOutcome::Diverged { epoch: 1 }, "{outcome:?}");
    assert_eq!(fused[1].len(), 1, "the diverged member's last epoch is reported, then nothing");
    assert!(!fused[1][0].metrics["train_loss"].is_finite());
    for i in [0, 2] {
        assert_eq!(outcome[i], MemberOutcome::Finished);
        let (alone_result, alone) = run_alone(&specs[i], &TrialContext::cpu());
        alone_result.unwrap();
        assert_same_records(i, &fused[i], &alone);
    }
    assert_eq!(fused[0][1].metrics["fused_members"], 2.0);
}

#[test]
fn trials_that_differ_in_shared_parameters_are_refused() {
    let data = synthetic_cifar();
    let mut other = member(data.path(), 1, 0.05);
    other.params.insert("width".into(), json!(4));
    let (result, _) = run_fused(&[member(data.path(), 0, 0.05), other]);
    let err = result.unwrap_err();
    assert!(matches!(err, TrialError::BadConfig(_)) && err.to_string().contains("params.width"), "{err}");

    let mut cnn = member(data.path(), 0, 0.05);
    cnn.params.insert("model".into(), json!("cnn5"));
    let err = run_fused(&[cnn]).0.unwrap_err();
    assert!(err.to_string().contains("params.model"), "{err}");
}
