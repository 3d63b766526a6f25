//! A fused long-tail group against its members trained alone, on synthetic CIFAR-10 binaries cut
//! long-tailed through the real loader: the same per-class records epoch by epoch, each member
//! with its own seed, learning rate, weight decay and sampled batches.

use super::tests::{cifar_lt_spec, run as run_alone, synthetic_cifar};
use super::*;
use crate::harness::{GraphMode, MemberOutcome};
use serde_json::json;
use sweep_spec::EpochRecord;

/// The CIFAR-10-LT study's trial (ResNet-32) without its cRT stage, as member i. The rates are a
/// tenth of the study's: at its own, on 400 images, BatchNorm's running statistics lag so far
/// behind that evaluation losses reach the hundreds within an epoch, and rounding differences
/// between a grouped and a plain convolution grow to percents there. The network-level test
/// `fused_resnet32_members_follow_their_lone_trajectories` checks the steps at the study's rate.
fn member(data: &std::path::Path, i: u64, loss: &str, sampler: &str) -> TrialSpec {
    member_at(data, i, loss, sampler, 0.1)
}

/// With the study's learning rates scaled by `scale`.
fn member_at(data: &std::path::Path, i: u64, loss: &str, sampler: &str, scale: f64) -> TrialSpec {
    let mut s = cifar_lt_spec(data);
    let lr = [0.1, 0.05, 0.02][i as usize % 3] * scale;
    for (k, v) in [
        ("crt_epochs", json!(0)),
        ("loss", json!(loss)),
        ("sampler", json!(sampler)),
        ("seed", json!(11 + i)),
        ("weight_decay", json!([2e-4, 0.0, 5e-4][i as usize % 3])),
        ("optimizer", json!({"name": "sgd", "lr": lr, "momentum": 0.9})),
    ] {
        s.params.insert(k.into(), v);
    }
    s.id = sweep_spec::TrialId(format!("{i:016x}"));
    s
}

fn run_fused(
    specs: &[TrialSpec],
    ctx: &TrialContext,
) -> (Result<Vec<MemberOutcome>, TrialError>, Vec<Vec<EpochRecord>>) {
    crate::fused_group::run_recorded(specs, ctx, vec![None; specs.len()], run_group)
}

/// Losses to 1e-3, accuracies to two of the 200 test images, class sizes exactly.
fn assert_same_records(what: &str, fused: &[EpochRecord], alone: &[EpochRecord]) {
    assert_eq!(fused.len(), alone.len(), "{what}: epochs reported");
    for (f, a) in fused.iter().zip(alone) {
        assert_eq!((f.epoch, f.step), (a.epoch, a.step), "{what}");
        for (name, &y) in &a.metrics {
            if ["epoch_seconds", "samples_per_second"].contains(&name.as_str()) || name.starts_with("class_acc/") {
                continue;
            }
            let x = f.metrics[name];
            let tolerance = if name.starts_with("test_acc") { 2.0 / 20.0 } else { 1e-3 * y.abs().max(1.0) };
            assert!((x - y).abs() <= tolerance, "{what}, epoch {}: {name} {x} fused, {y} alone", f.epoch);
        }
    }
}

#[test]
fn each_member_reports_its_per_class_records_as_alone() {
    let data = synthetic_cifar();
    // Balanced softmax on class-balanced batches over-corrects for the tail, which makes the
    // same evaluation losses large; it is compared at a hundredth of the study's rates.
    for (loss, sampler, scale) in [("ldam_drw", "instance", 0.1), ("balanced_softmax", "class_balanced", 0.01)] {
        let specs: Vec<TrialSpec> = (0..3).map(|i| member_at(data.path(), i, loss, sampler, scale)).collect();
        let (result, fused) = run_fused(&specs, &TrialContext::cpu());
        assert_eq!(result.unwrap(), vec![MemberOutcome::Finished; 3]);
        for (i, s) in specs.iter().enumerate() {
            let (alone_result, alone) = run_alone(s, &TrialContext::cpu());
            alone_result.unwrap();
            assert_same_records(&format!("{loss}/{sampler} member {i}"), &fused[i], &alone);
            assert_eq!(fused[i][0].metrics["fused_members"], 3.0);
        }
        // The members really differ (their own initialisation, batches and rates).
        assert_ne!(fused[0][1].metrics["test_loss"], fused[1][1].metrics["test_loss"]);
    }
}

/// The steps a CUDA graph would replay, rehearsed on the CPU, train the group as eager steps do,
/// across the epoch where LDAM's deferred re-weighting switches on.
#[test]
fn graph_steps_train_the_group_as_eager_steps_do() {
    let data = synthetic_cifar();
    let specs: Vec<TrialSpec> = (0..2).map(|i| member(data.path(), i, "ldam_drw", "instance")).collect();
    let (eager, eager_records) = run_fused(&specs, &TrialContext::cpu());
    eager.unwrap();
    let ctx = TrialContext { cuda_graphs: GraphMode::Rehearse, ..TrialContext::cpu() };
    let (graphed, graphed_records) = run_fused(&specs, &ctx);
    graphed.unwrap();
    for g in 0..2 {
        assert_same_records(&format!("member {g}"), &graphed_records[g], &eager_records[g]);
    }
}

#[test]
fn a_crt_stage_or_an_imagenet_backbone_keeps_a_trial_out_of_groups() {
    let data = synthetic_cifar();
    let mut crt = member(data.path(), 0, "ce", "instance");
    crt.params.insert("crt_epochs".into(), json!(2));
    let err = run_fused(&[crt], &TrialContext::cpu()).0.unwrap_err();
    assert!(matches!(err, TrialError::BadConfig(_)) && err.to_string().contains("params.crt_epochs"), "{err}");
    let mut resnext = member(data.path(), 0, "ce", "instance");
    resnext.params.insert("model".into(), json!("resnext50"));
    let err = run_fused(&[resnext], &TrialContext::cpu()).0.unwrap_err();
    assert!(err.to_string().contains("params.model"), "{err}");
}
