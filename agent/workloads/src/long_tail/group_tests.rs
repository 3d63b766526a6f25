//! A fused long-tail group against its members trained alone, on synthetic CIFAR-10 binaries cut
//! long-tailed through the real loader: each member with its own seed, learning rate, weight decay
//! and sampled batches. The group and the lone networks sum through different kernels, so records
//! are compared to rounding after one step, and by their names and rates after that
//! (`numeric_checks`).

use super::tests::{cifar_lt_spec, run as run_alone, synthetic_cifar};
use super::*;
use crate::harness::{GraphMode, MemberOutcome};
use crate::numeric_checks::{assert_checkpoints_agree, assert_member_trains_as_alone, ONE_STEP};
use serde_json::json;
use sweep_spec::EpochRecord;

/// The CIFAR-10-LT study's trial (ResNet-32) without its cRT stage, as member i. The rates are a
/// tenth of the study's: at its own, on 400 images, BatchNorm's running statistics lag so far
/// behind that evaluation losses reach the hundreds, where rounding counts for more. The
/// network-level test `one_fused_resnet32_step_moves_each_member_as_alone` checks a step at the
/// study's rate.
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

/// Test images of each class in `synthetic_cifar`: an accuracy moves by at most one of them when
/// rounding flips a near-tie.
const TEST_PER_CLASS: usize = 20;

/// `s` with batches larger than its training set: each epoch is one optimizer step.
fn one_batch(mut s: TrialSpec) -> TrialSpec {
    s.params.insert("batch_size".into(), json!(1024));
    s
}

/// Like `synthetic_cifar` with 400 training images, about 160 once cut long-tailed: ResNet-32 over
/// the whole set in one batch, six times per loss (the group and each member alone), costs less
/// than half as much.
fn small_cifar() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let opts =
        crate::data::SynthOptions { train: 400, test: 200, classes: 10, image_size: 32, seed: 4, ..Default::default() };
    crate::data::write_synthetic("cifar10", data.path(), &opts).unwrap();
    data
}

#[test]
fn each_member_reports_its_per_class_records_as_alone() {
    let data = small_cifar();
    // Balanced softmax on class-balanced batches over-corrects for the tail, which makes the
    // same evaluation losses large; it is compared at a hundredth of the study's rates.
    for (loss, sampler, scale) in [("ldam_drw", "instance", 0.1), ("balanced_softmax", "class_balanced", 0.01)] {
        let specs: Vec<TrialSpec> =
            (0..3).map(|i| one_batch(member_at(data.path(), i, loss, sampler, scale))).collect();
        let (result, fused) = run_fused(&specs, &TrialContext::cpu());
        assert_eq!(result.unwrap(), vec![MemberOutcome::Finished; 3]);
        for (i, s) in specs.iter().enumerate() {
            let (alone_result, alone) = run_alone(s, &TrialContext::cpu());
            alone_result.unwrap();
            let what = format!("{loss}/{sampler} member {i}");
            assert_member_trains_as_alone(&what, &fused[i], &alone, TEST_PER_CLASS);
            assert_eq!(fused[i][0].metrics["fused_members"], 3.0);
        }
        // The members really differ (their own initialisation, batches and rates).
        assert_ne!(fused[0][1].metrics["test_loss"], fused[1][1].metrics["test_loss"]);
    }
}

/// The steps a CUDA graph would replay, rehearsed on the CPU, train the group as eager steps do,
/// with LDAM's deferred re-weighting on from the start (`drw_epoch = 0`). Both runs are stopped at
/// the third batch, after one eager step (then the capture) and one replayed step, whose update is
/// computed from the rates on the device: each member's checkpoint, variables and optimizer state,
/// agrees to rounding.
#[test]
fn graph_steps_train_the_group_as_eager_steps_do() {
    let data = synthetic_cifar();
    let specs: Vec<TrialSpec> = (0..2)
        .map(|i| {
            let mut s = member(data.path(), i, "ldam_drw", "instance");
            s.params.insert("drw_epoch".into(), json!(0));
            s
        })
        .collect();
    let stopped = |mode: GraphMode| {
        let dirs = tempfile::tempdir().unwrap();
        let ctx =
            TrialContext { cuda_graphs: mode, stop: crate::harness::StopFlag::after_checks(3), ..TrialContext::cpu() };
        let members = (0..2).map(|g| Some(dirs.path().join(format!("m{g}")))).collect();
        let (result, _) = crate::fused_group::run_recorded(&specs, &ctx, members, run_group);
        assert!(matches!(result, Err(TrialError::Interrupted)), "{mode:?}: {result:?}");
        dirs
    };
    let (eager, graphed) = (stopped(GraphMode::Off), stopped(GraphMode::Rehearse));
    for g in 0..2 {
        let member = format!("m{g}");
        assert_checkpoints_agree(
            &format!("member {g}"),
            &graphed.path().join(&member),
            &eager.path().join(&member),
            ONE_STEP,
        );
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
