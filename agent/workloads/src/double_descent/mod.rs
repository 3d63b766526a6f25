//! Workload `double_descent` (Nakkiran et al. 2019, "Deep Double Descent"): an image classifier of
//! width k trained on data with a fixed fraction of noisy labels. Swept over k, test error rises
//! to a peak where the model first fits the training set, then falls again.

mod group;
mod params;

pub(crate) use group::run_group;

use crate::data;
use crate::error::TrialError;
use crate::harness::{self, Plan};
use crate::image_data::{self, Draws, ImageData};
use crate::models::{self, ModelSpec};
use crate::optim::Optimizer;
use crate::random_features::{self, Problem};
use crate::{Sink, TrialContext};
use params::Model;
pub(crate) use params::Params;
use sweep_spec::TrialSpec;
use tch::nn::VarStore;

pub fn run(spec: &TrialSpec, ctx: &TrialContext, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    let device = ctx.device;
    let p = Params::parse(&spec.params)?;
    let data_ref = spec.data.as_ref().ok_or_else(|| {
        TrialError::bad_config("data: workload `double_descent` needs a [data] section with `format` and `path`")
    })?;
    let splits = image_data::load(data_ref)?;
    let train = noisy_training_set(&image_data::first(splits.train, p.n_train), &p);
    let classes = train.classes;
    let (c, h) = (train.images.size()[1], train.images.size()[2]);
    eprintln!(
        "{} training images ({} noisy labels), {} test images, {c}x{h}x{h}, {classes} classes",
        train.len(),
        (p.label_noise * train.len() as f64).round(),
        splits.test.len()
    );

    match p.model {
        Model::RandomFeatures => {
            let flat =
                |set: &data::ImageSet| image_data::normalised(&set.images, &splits.mean, &splits.std).flatten(1, -1);
            let (train_x, test_x) = (flat(&train), flat(&splits.test));
            let problem = Problem {
                train_x: &train_x,
                train_y: &train.labels,
                test_x: &test_x,
                test_y: &splits.test.labels,
                classes,
            };
            random_features::fit(&problem, p.width as usize, p.weight_decay, p.seed, device).report(train.len(), sink)
        }
        Model::Net(arch) => {
            tch::manual_seed(p.seed as i64);
            let mut vs = VarStore::new(device);
            let net = models::build(&vs.root(), &model_spec(arch, &p, &train))
                .map_err(|e| TrialError::bad_config(format!("params: {e}")))?;
            eprintln!("{arch} width {}: {} parameters", p.width, models::parameter_count(&vs));
            let plan = plan(&spec.workload, &p, arch, ctx)?;
            if plan.channels_last {
                models::to_channels_last(&mut vs);
            }
            let mut optimizer = Optimizer::new(p.optimizer.clone(), &vs);
            let sampler = data::SamplerKind::Instance;
            let draws = Draws { train, batch_size: p.batch_size, seed: p.seed, augment: p.augment, sampler };
            let data = ImageData::new(draws, splits.test, (splits.mean, splits.std), device);
            let trial = harness::Trial {
                net: net.as_ref(),
                vars: &mut vs,
                optimizer: &mut optimizer,
                schedule: &p.schedule,
                base_lr: p.optimizer.lr,
                data: &data,
                objective: &harness::ErrorRates,
                checkpoint_dir: ctx.checkpoint_dir.clone(),
            };
            harness::train(trial, &plan, sink)
        }
    }
}

/// The plan a trial of these parameters trains by, alone or as a member of a fused group.
fn plan(workload: &str, p: &Params, arch: models::Arch, ctx: &TrialContext) -> Result<Plan, TrialError> {
    let mut plan = Plan::new(workload, ctx, p.epochs, p.seed);
    plan.eval_every = p.eval_every;
    plan.precision = harness::Precision::parse(&p.precision, ctx.device).map_err(TrialError::bad_config)?;
    plan.channels_last = arch.channels_last_on(ctx.device);
    Ok(plan)
}

/// The training split a trial learns from: the given images with the trial's own noisy labels.
fn noisy_training_set(train: &data::ImageSet, p: &Params) -> data::ImageSet {
    let labels = data::with_label_noise(&train.labels, train.classes, p.label_noise, p.seed);
    data::ImageSet { images: train.images.shallow_clone(), labels, classes: train.classes }
}

fn model_spec(arch: models::Arch, p: &Params, train: &data::ImageSet) -> ModelSpec {
    let size = train.images.size();
    ModelSpec {
        arch,
        width: p.width,
        in_channels: size[1],
        image_size: size[2],
        classes: train.classes,
        dropout: p.dropout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::StopFlag;
    use crate::numeric_checks::{assert_same_runs, relative, rounding, ONE_STEP, SAME_KERNELS};
    use crate::TrialContext;
    use serde_json::{json, Map, Value};
    use sweep_spec::{DataRef, EpochRecord, Resources, TrialId};
    use tch::Device;

    const TRAIN_IMAGES: usize = 96;
    const BATCH: i64 = 32;

    /// A small CNN with dropout and augmentation on a synthetic CIFAR-10 folder: every source of
    /// randomness the loop has is in play.
    pub(super) fn spec(data: &std::path::Path, epochs: i64) -> TrialSpec {
        let mut params = sweep_spec::workloads::DOUBLE_DESCENT.defaults();
        for (k, v) in [
            ("model", json!("cnn5")),
            ("width", json!(4)),
            ("epochs", json!(epochs)),
            ("batch_size", json!(BATCH)),
            ("dropout", json!(0.3)),
            ("label_noise", json!(0.1)),
            ("optimizer", json!({"name": "adam", "lr": 3e-3})),
            ("seed", json!(7)),
        ] {
            params.insert(k.into(), v);
        }
        TrialSpec {
            id: TrialId("0000000000000000".into()),
            sweep: "t".into(),
            index: 0,
            workload: "double_descent".into(),
            command: None,
            params,
            data: Some(DataRef {
                format: "cifar10".into(),
                path: Some(data.display().to_string()),
                options: Map::new(),
            }),
            resources: Resources::default(),
            checkpoint_every_epochs: None,
            command_bool: Default::default(),
            copy_from: None,
        }
    }

    pub(super) fn synthetic_cifar() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let opts = data::SynthOptions {
            train: TRAIN_IMAGES,
            test: 64,
            classes: 10,
            image_size: 32,
            seed: 3,
            ..data::SynthOptions::default()
        };
        data::write_synthetic("cifar10", dir.path(), &opts).unwrap();
        dir
    }

    pub(super) fn run(spec: &TrialSpec, ctx: &TrialContext) -> (Result<(), TrialError>, Vec<EpochRecord>) {
        let mut records = Vec::new();
        let _guard = crate::torch_rng_lock();
        let result = super::run(spec, ctx, &mut |r| {
            records.push(r);
            Ok(())
        });
        (result, records)
    }

    #[test]
    fn a_trial_stopped_mid_epoch_resumes_to_the_same_metrics() {
        let data = synthetic_cifar();
        let spec = spec(data.path(), 3);
        let (straight, uninterrupted) = run(&spec, &TrialContext::cpu());
        straight.unwrap();
        assert_eq!(uninterrupted.len(), 3);

        // Stop at batch 2 of epoch 2 (3 batches per epoch, so the 6th check), as SIGTERM would.
        let ckpt = tempfile::tempdir().unwrap();
        let ctx = |stop: StopFlag| TrialContext {
            device: Device::Cpu,
            checkpoint_dir: Some(ckpt.path().to_path_buf()),
            checkpoint_every: None,
            stop_after: None,
            stop,
            cuda_graphs: crate::harness::GraphMode::Off,
        };
        let (first, before) = run(&spec, &ctx(StopFlag::after_checks(6)));
        assert!(matches!(first, Err(TrialError::Interrupted)), "{first:?}");
        assert_eq!(before.len(), 1, "epoch 1 was reported before the stop");
        let (second, after) = run(&spec, &ctx(StopFlag::default()));
        second.unwrap();
        assert_eq!(after.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![2, 3]);

        let resumed: Vec<EpochRecord> = before.into_iter().chain(after).collect();
        assert_same_runs("resumed", &resumed, &uninterrupted, relative(SAME_KERNELS));
        // The run learned something, so the comparison is not between two constant curves.
        assert!(uninterrupted[2].metrics["train_loss"] < uninterrupted[0].metrics["train_loss"], "{uninterrupted:?}");
    }

    /// A promoting schedule's lease: the first attempt trains to its rung, checkpoints and ends
    /// well; the promoted attempt resumes after it. Together they report each epoch once, as the
    /// uninterrupted run does (same kernels, same process); an attempt leased again with the rung
    /// it already reached trains nothing.
    #[test]
    fn a_trial_paused_at_a_rung_resumes_after_it_when_promoted() {
        let data = synthetic_cifar();
        let spec = spec(data.path(), 3);
        let (straight, uninterrupted) = run(&spec, &TrialContext::cpu());
        straight.unwrap();

        let ckpt = tempfile::tempdir().unwrap();
        let ctx = |stop_after| TrialContext {
            checkpoint_dir: Some(ckpt.path().to_path_buf()),
            stop_after,
            ..TrialContext::cpu()
        };
        let (first, before) = run(&spec, &ctx(Some(1)));
        assert!(matches!(first, Err(TrialError::Paused(1))), "{first:?}");
        assert_eq!(first.as_ref().unwrap_err().exit_code(), 0, "a pause is a good end");
        assert_eq!(before.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![1]);
        let (again, nothing) = run(&spec, &ctx(Some(1)));
        assert!(matches!(again, Err(TrialError::Paused(1))) && nothing.is_empty(), "{again:?} {nothing:?}");
        let (second, after) = run(&spec, &ctx(None));
        second.unwrap();
        assert_eq!(after.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![2, 3]);
        let resumed: Vec<EpochRecord> = before.into_iter().chain(after).collect();
        assert_same_runs("paused and promoted", &resumed, &uninterrupted, relative(SAME_KERNELS));
    }

    /// A copy PBT made: it starts from another trial's checkpoint (model and optimizer state,
    /// copied as files, as its agent does) with its own learning rate and weight decay, which the
    /// resumed training uses from its first step on. With the parent's own parameters it trains
    /// the parent's next epoch exactly (same kernels, same process): nothing of the state is lost.
    #[test]
    fn a_copy_resumes_from_the_copied_checkpoint_with_its_own_rate_and_decay() {
        let data = synthetic_cifar();
        let mut parent = spec(data.path(), 2);
        parent.params.insert("weight_decay".into(), json!(0.0));
        let parent_ckpt = tempfile::tempdir().unwrap();
        let ctx = |dir: &std::path::Path, stop_after| TrialContext {
            checkpoint_dir: Some(dir.to_path_buf()),
            stop_after,
            ..TrialContext::cpu()
        };
        let (paused, _) = run(&parent, &ctx(parent_ckpt.path(), Some(1)));
        assert!(matches!(paused, Err(TrialError::Paused(1))), "{paused:?}");
        let (done, parent_on) = run(&parent, &ctx(parent_ckpt.path(), None));
        done.unwrap();
        assert_eq!(parent_on.len(), 1, "the parent's own second epoch");

        // Copy the parent as it stood at epoch 1: pause a twin there and copy its checkpoint.
        let twin_ckpt = tempfile::tempdir().unwrap();
        let (paused, _) = run(&parent, &ctx(twin_ckpt.path(), Some(1)));
        assert!(matches!(paused, Err(TrialError::Paused(1))), "{paused:?}");
        let copy = |lr: f64, weight_decay: f64| {
            let mut s = parent.clone();
            s.params.insert("optimizer".into(), json!({"name": "adam", "lr": lr}));
            s.params.insert("weight_decay".into(), json!(weight_decay));
            let dir = tempfile::tempdir().unwrap();
            copy_files(&twin_ckpt.path().join("latest"), &dir.path().join("latest"));
            let (result, records) = run(&s, &ctx(dir.path(), None));
            result.unwrap();
            records
        };
        let same = copy(3e-3, 0.0);
        assert_eq!(same.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![2], "it resumes after the copied epoch");
        assert_same_runs("a copy with the parent's parameters", &same, &parent_on, relative(SAME_KERNELS));
        let slower = copy(3e-4, 0.0);
        let lr = |r: &[EpochRecord]| r[0].metrics["lr"];
        assert!((lr(&slower) / lr(&same) - 0.1).abs() < 1e-12, "the copy's own rate: {} vs {}", lr(&slower), lr(&same));
        assert_ne!(slower[0].metrics["train_loss"], same[0].metrics["train_loss"]);
        let decayed = copy(3e-3, 0.5);
        assert_ne!(decayed[0].metrics["train_loss"], same[0].metrics["train_loss"], "the copy's own weight decay");
    }

    fn copy_files(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }

    /// The step a CUDA graph would replay, rehearsed eagerly on the CPU, with Adam (its bias
    /// corrections counted on the device) and with SGD. An epoch of two batches is one eager step
    /// (then the capture) and one replayed step, whose update is computed from the rates on the
    /// device: the same records to rounding. A short second batch runs eagerly: the same exactly.
    #[test]
    fn graph_steps_train_as_eager_steps_do() {
        let data = synthetic_cifar();
        for optimizer in [json!({"name": "adam", "lr": 3e-3}), json!({"name": "sgd", "lr": 0.05, "momentum": 0.9})] {
            for (n_train, check) in [(64, rounding(ONE_STEP, 64)), (48, rounding(0.0, usize::MAX))] {
                let mut s = spec(data.path(), 1);
                s.params.insert("optimizer".into(), optimizer.clone());
                s.params.insert("n_train".into(), json!(n_train));
                s.params.insert("dropout".into(), json!(0.0));
                let (eager, a) = run(&s, &TrialContext::cpu());
                eager.unwrap();
                let ctx = TrialContext { cuda_graphs: crate::harness::GraphMode::Rehearse, ..TrialContext::cpu() };
                let (graphed, b) = run(&s, &ctx);
                graphed.unwrap();
                assert_same_runs(&format!("{optimizer}, {n_train} images"), &b, &a, &check);
            }
        }
    }

    #[test]
    fn bf16_autocast_training_learns() {
        let data = synthetic_cifar();
        let mut s = spec(data.path(), 3);
        s.params.insert("precision".into(), json!("bf16"));
        s.params.insert("dropout".into(), json!(0.0));
        let (result, records) = run(&s, &TrialContext::cpu());
        result.unwrap();
        let losses: Vec<f64> = records.iter().map(|r| r.metrics["train_loss"]).collect();
        assert!(losses.iter().all(|l| l.is_finite()) && losses[2] < losses[0], "{losses:?}");
    }

    #[test]
    fn random_features_on_images_report_one_fit() {
        let data = synthetic_cifar();
        let mut s = spec(data.path(), 1);
        s.params.insert("model".into(), json!("random_features"));
        s.params.insert("width".into(), json!(200));
        let (result, records) = run(&s, &TrialContext::cpu());
        result.unwrap();
        assert_eq!(records.len(), 1);
        let m = &records[0].metrics;
        assert_eq!(m["train_error"], 0.0, "200 features interpolate 96 images");
        assert_eq!(m["interpolated"], 1.0);
        assert!(m["test_error"] > 0.0 && m["test_error"] < 0.9, "{m:?}");
    }

    #[test]
    fn bad_parameters_and_missing_data_are_configuration_errors() {
        let data = synthetic_cifar();
        for (key, value) in [
            ("model", json!("vgg")),
            ("width", json!(0)),
            ("label_noise", json!(1.0)),
            ("optimizer", json!({"name": "adam"})),
        ] {
            let mut s = spec(data.path(), 1);
            s.params.insert(key.into(), value.clone());
            let (result, _) = run(&s, &TrialContext::cpu());
            let err = result.unwrap_err();
            assert!(matches!(err, TrialError::BadConfig(_)), "{key} = {value}: {err}");
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        let mut s = spec(data.path(), 1);
        s.data = None;
        assert!(matches!(run(&s, &TrialContext::cpu()).0, Err(TrialError::BadConfig(_))));
        let mut s = spec(&data.path().join("absent"), 1);
        s.params.insert("model".into(), Value::from("random_features"));
        let err = run(&s, &TrialContext::cpu()).0.unwrap_err();
        assert!(err.to_string().contains("sweep data synth"), "{err}");
    }
}
