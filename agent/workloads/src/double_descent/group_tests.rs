//! A fused group against its members trained alone, through the real loader on synthetic CIFAR
//! binaries: the same records epoch by epoch, each member with its own seed, learning rate, weight
//! decay and label noise; a diverging member dropped while the others go on.

use super::super::tests::{run as run_alone, spec, synthetic_cifar};
use super::*;
use crate::numeric_checks::{
    assert_member_trains_as_alone, assert_same_runs, relative, rounding, without_group_size, ONE_STEP, SAME_KERNELS,
};
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
    run_fused_in(specs, &TrialContext::cpu(), vec![None; specs.len()])
}

/// With each member's checkpoint folder and the context's stop flag.
fn run_fused_in(
    specs: &[TrialSpec],
    ctx: &TrialContext,
    dirs: Vec<Option<std::path::PathBuf>>,
) -> (Result<Vec<MemberOutcome>, TrialError>, Vec<Vec<EpochRecord>>) {
    crate::fused_group::run_recorded(specs, ctx, dirs, run_group)
}

/// A training set of one batch.
const ONE_BATCH: i64 = 32;

/// `s` with a training set of one batch, so that each epoch is one optimizer step.
fn one_batch(mut s: TrialSpec) -> TrialSpec {
    s.params.insert("n_train".into(), json!(ONE_BATCH));
    s.params.insert("batch_size".into(), json!(ONE_BATCH));
    s
}

#[test]
fn each_member_reports_what_it_would_have_alone() {
    let data = synthetic_cifar();
    let specs: Vec<TrialSpec> =
        (0..3).map(|i| one_batch(member(data.path(), i, [0.05, 0.02, 0.1][i as usize]))).collect();
    assert_members_train_as_alone(&specs);
}

/// The other architectures of the study fuse the same way: the 5-layer CNN (grouped convolutions
/// with biases, max pooling) and the MLP (both layers batched matmuls).
#[test]
fn cnn5_and_mlp_members_report_what_they_would_have_alone() {
    let data = synthetic_cifar();
    for model in ["cnn5", "mlp"] {
        let specs: Vec<TrialSpec> = (0..3)
            .map(|i| {
                let mut s = one_batch(member(data.path(), i, [0.05, 0.02, 0.1][i as usize]));
                s.params.insert("model".into(), json!(model));
                // Random crops leave zero bands, where max pooling meets exact ties; which tied
                // position takes the gradient follows the kernel's loop order over a layer's
                // channels, and a grouped layer has more. Such a flip is a rounding-sized event
                // that training then amplifies, so the CNN is compared on uncropped images (the
                // model-level test `fused_members_follow_their_lone_trajectories` covers it on
                // tie-free inputs).
                s.params.insert("augment".into(), json!(model != "cnn5"));
                s
            })
            .collect();
        assert_members_train_as_alone(&specs);
    }
}

fn assert_members_train_as_alone(specs: &[TrialSpec]) {
    let (result, fused) = run_fused(specs);
    assert_eq!(result.unwrap(), vec![MemberOutcome::Finished; 3]);
    for (i, s) in specs.iter().enumerate() {
        let (alone_result, alone) = run_alone(s, &TrialContext::cpu());
        alone_result.unwrap();
        assert_member_trains_as_alone(&format!("member {i}"), &fused[i], &alone, ONE_BATCH as usize);
        assert_eq!(fused[i][0].metrics["fused_members"], 3.0);
    }
    // The members really differ (their own data, labels and rates), so matching is not trivial.
    assert_ne!(fused[0][0].metrics["train_loss"], fused[1][0].metrics["train_loss"]);
}

/// Member 1's rate makes its first step blow up: epoch 2's training loss is not finite, so it is
/// reported and dropped, and members 0 and 2 go on as a group of two.
#[test]
fn a_diverging_member_is_dropped_and_the_others_go_on() {
    let data = synthetic_cifar();
    let specs: Vec<TrialSpec> = (0..3)
        .map(|i| {
            let mut s = one_batch(member(data.path(), i, if i == 1 { 1e30 } else { 0.05 }));
            s.params.insert("epochs".into(), json!(3));
            s
        })
        .collect();
    let (result, fused) = run_fused(&specs);
    let outcome = result.unwrap();
    assert_eq!(outcome[1], MemberOutcome::Diverged { epoch: 2 }, "{outcome:?}");
    assert_eq!(fused[1].len(), 2, "the diverged member's last epoch is reported, then nothing");
    assert!(!fused[1][1].metrics["train_loss"].is_finite());
    for i in [0, 2] {
        assert_eq!(outcome[i], MemberOutcome::Finished);
        let (alone_result, alone) = run_alone(&specs[i], &TrialContext::cpu());
        alone_result.unwrap();
        assert_member_trains_as_alone(&format!("member {i}"), &fused[i], &alone, ONE_BATCH as usize);
        assert!(fused[i].iter().all(|r| r.metrics["train_loss"].is_finite()), "member {i} went on: {:?}", fused[i]);
    }
    assert_eq!(fused[0][1].metrics["fused_members"], 3.0);
    assert_eq!(fused[0][2].metrics["fused_members"], 2.0);
}

#[test]
fn trials_that_differ_in_shared_parameters_are_refused() {
    let data = synthetic_cifar();
    let mut other = member(data.path(), 1, 0.05);
    other.params.insert("width".into(), json!(4));
    let (result, _) = run_fused(&[member(data.path(), 0, 0.05), other]);
    let err = result.unwrap_err();
    assert!(matches!(err, TrialError::BadConfig(_)) && err.to_string().contains("params.width"), "{err}");

    let mut features = member(data.path(), 0, 0.05);
    features.params.insert("model".into(), json!("random_features"));
    let err = run_fused(&[features]).0.unwrap_err();
    assert!(err.to_string().contains("params.model"), "{err}");
}

fn context(stop: crate::harness::StopFlag) -> TrialContext {
    TrialContext { stop, ..TrialContext::cpu() }
}

/// A group stopped mid-epoch (SIGTERM) checkpoints every member into its own folder; started
/// again, it resumes and reports what the uninterrupted group reports. Each member's checkpoint
/// is a lone trial's: a member resumed alone ends where it would have in the group.
#[test]
fn a_stopped_group_resumes_member_by_member() {
    let data = synthetic_cifar();
    let specs: Vec<TrialSpec> = (0..2).map(|i| member(data.path(), i, [0.05, 0.02][i as usize])).collect();
    let (done, uninterrupted) = run_fused(&specs);
    done.unwrap();

    let ckpt = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..2).map(|i| Some(ckpt.path().join(format!("m{i}")))).collect();
    // Three batches an epoch: the fifth check is batch 1 of epoch 2.
    let (first, before) = run_fused_in(&specs, &context(crate::harness::StopFlag::after_checks(5)), dirs.clone());
    assert!(matches!(first, Err(TrialError::Interrupted)), "{first:?}");
    assert!(before.iter().all(|r| r.len() == 1), "epoch 1 was reported before the stop");
    let (second, after) = run_fused_in(&specs, &context(Default::default()), dirs.clone());
    second.unwrap();
    for g in 0..2 {
        let resumed: Vec<EpochRecord> = before[g].iter().chain(&after[g]).cloned().collect();
        assert_same_runs(&format!("member {g}"), &resumed, &uninterrupted[g], relative(SAME_KERNELS));
    }

    // Member 1 stopped in the group before the last batch (the sixth check), resumed alone from
    // its checkpoint: one step alone, through the lone network's kernels, to the group's end.
    let again_dir = ckpt.path().join("alone");
    let (stopped, _) =
        run_fused_in(&specs, &context(crate::harness::StopFlag::after_checks(6)), vec![None, Some(again_dir.clone())]);
    assert!(matches!(stopped, Err(TrialError::Interrupted)));
    let ctx = TrialContext { checkpoint_dir: Some(again_dir), ..context(Default::default()) };
    let (alone, rest) = run_alone(&specs[1], &ctx);
    alone.unwrap();
    let last_step = without_group_size(rounding(ONE_STEP, 64));
    assert_same_runs("member 1 resumed alone", &rest, &uninterrupted[1][1..], last_step);
}

/// Members that stand at different points train in one group per point: here member 0 resumes
/// alone from epoch 1 while members 1 and 2 train fused from the start. Member 0 ends where it
/// would have alone, members 1 and 2 where a group of the two ends.
#[test]
fn members_at_different_points_train_apart() {
    let data = synthetic_cifar();
    let specs: Vec<TrialSpec> = (0..3).map(|i| member(data.path(), i, [0.05, 0.02, 0.1][i as usize])).collect();
    let ckpt = tempfile::tempdir().unwrap();
    let dir0 = ckpt.path().join("m0");
    let ctx = TrialContext { checkpoint_dir: Some(dir0.clone()), ..context(crate::harness::StopFlag::after_checks(4)) };
    let (stopped, _) = run_alone(&specs[0], &ctx);
    assert!(matches!(stopped, Err(TrialError::Interrupted)), "{stopped:?}");

    let (result, fused) = run_fused_in(&specs, &context(Default::default()), vec![Some(dir0), None, None]);
    assert_eq!(result.unwrap(), vec![MemberOutcome::Finished; 3]);
    assert_eq!(fused[0].iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![2], "member 0 resumed after epoch 1");
    assert!(!fused[0][0].metrics.contains_key("fused_members"), "it trained alone");
    assert_eq!(fused[1][0].metrics["fused_members"], 2.0);
    let (r, alone) = run_alone(&specs[0], &TrialContext::cpu());
    r.unwrap();
    assert_same_runs("member 0", &fused[0], &alone[1..], relative(SAME_KERNELS));
    let (r, pair) = run_fused(&specs[1..]);
    r.unwrap();
    for i in 1..3 {
        assert_same_runs(&format!("member {i}"), &fused[i], &pair[i - 1], relative(SAME_KERNELS));
    }
}

/// The steps a CUDA graph would replay (static inputs, rates and counts on the device), rehearsed
/// eagerly on the CPU, train the group as the ordinary steps do. An epoch of two batches is one
/// eager step (then the capture) and one replayed step, whose update is computed from the rates
/// on the device: the same to rounding. A short second batch runs eagerly: the same exactly.
#[test]
fn graph_steps_train_the_group_as_eager_steps_do() {
    let data = synthetic_cifar();
    for (n_train, check) in [(64, rounding(ONE_STEP, 64)), (48, rounding(0.0, usize::MAX))] {
        let specs: Vec<TrialSpec> = (0..2)
            .map(|i| {
                let mut s = member(data.path(), i, [0.05, 0.02][i as usize]);
                s.params.insert("n_train".into(), json!(n_train));
                s.params.insert("epochs".into(), json!(1));
                s
            })
            .collect();
        let (eager, eager_records) = run_fused(&specs);
        eager.unwrap();
        let ctx = TrialContext { cuda_graphs: crate::harness::GraphMode::Rehearse, ..TrialContext::cpu() };
        let (graphed, graphed_records) = run_fused_in(&specs, &ctx, vec![None, None]);
        graphed.unwrap();
        for g in 0..2 {
            assert_same_runs(&format!("{n_train} images, member {g}"), &graphed_records[g], &eager_records[g], &check);
        }
    }
}
