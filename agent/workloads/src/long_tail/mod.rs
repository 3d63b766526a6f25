//! Workload `long_tail`: classification on a long-tailed training split (CIFAR-LT, ImageNet-LT, or
//! any set cut with `imbalance_ratio`) and a balanced test split, with the losses, samplers and
//! decoupled second stage compared in the long-tail literature (survey: Zhang et al. 2021,
//! arXiv 2110.04596). One trial trains one (loss, sampler, stage) combination and reports
//! accuracy on the many-, medium- and few-shot classes after every epoch.
//!
//! With `crt_epochs` > 0 a second stage follows (classifier re-training, Kang et al. 2020): the
//! backbone is frozen, the classifier re-initialised and trained with class-balanced sampling and
//! cross-entropy. Its epochs are reported after the first stage's, numbered on.

mod group;
#[cfg(test)]
mod group_tests;
mod loss;
mod network;
mod params;
mod scores;
#[cfg(test)]
mod tests;

use crate::data::SamplerKind;
use crate::error::TrialError;
use crate::harness::{self, Plan, TrainData};
use crate::image_data::{self, Draws, ImageData};
use crate::optim::Optimizer;
use crate::rng::mix;
use crate::{Sink, TrialContext};
pub use group::run_group;
use loss::{Loss, LossSettings};
use network::{Classifier, Network};
pub(crate) use params::Params;
use scores::LongTail;
use sweep_spec::TrialSpec;
use tch::nn::VarStore;

/// The cRT stage's checkpoints, inside the trial's checkpoint folder.
const CRT_CHECKPOINTS: &str = "crt";

pub fn run(spec: &TrialSpec, ctx: &TrialContext, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    let device = ctx.device;
    let p = Params::parse(&spec.params)?;
    let data_ref = spec.data.as_ref().ok_or_else(|| {
        TrialError::bad_config(
            "data: workload `long_tail` needs a [data] section, e.g. format = \"cifar_lt\" with path and imbalance_ratio",
        )
    })?;
    let splits = image_data::load(data_ref)?;
    let classes = splits.train.classes;
    let size = splits.train.images.size();
    let shape = (size[1], size[2], size[3]);
    let draws =
        Draws { train: splits.train, batch_size: p.batch_size, seed: p.seed, augment: p.augment, sampler: p.sampler };
    let mut data = ImageData::new(draws, splits.test, (splits.mean, splits.std), device);
    let class_sizes = data.sampler.class_sizes();
    describe(&class_sizes, data.test.len());

    tch::manual_seed(p.seed as i64);
    let mut vs = VarStore::new(device);
    let (backbone, features) = p.backbone.build(&(vs.root() / "backbone"), shape, p.hidden);
    let cosine = p.loss.kind.wants_cosine_classifier();
    let classifier = Classifier::new(&(vs.root() / "classifier"), features, classes, cosine);
    let net = Network { backbone, classifier, frozen_backbone: false, tau_norm: p.tau_norm };
    eprintln!("{:?} backbone, {} parameters", p.backbone, crate::models::parameter_count(&vs));
    let objective = LongTail { loss: Loss::new(p.loss, &class_sizes, device), class_sizes, posthoc_tau: p.posthoc_tau };
    let mut plan = plan(&spec.workload, &p, ctx)?;
    // The cRT stage starts from the trained backbone, also after a restart.
    plan.checkpoint_at_end = p.crt_epochs > 0;
    let mut optimizer = Optimizer::new(p.optimizer.clone(), &vs);
    let trial = harness::Trial {
        net: &net,
        vars: &mut vs,
        optimizer: &mut optimizer,
        schedule: &p.schedule(p.epochs),
        base_lr: p.optimizer.lr,
        data: &data,
        objective: &objective,
        checkpoint_dir: ctx.checkpoint_dir.clone(),
    };
    harness::train(trial, &plan, sink)?;
    if p.crt_epochs == 0 {
        return Ok(());
    }

    // Stage 2: a fresh classifier on frozen features, class-balanced sampling, cross-entropy.
    tch::manual_seed(mix(p.seed, 2) as i64 >> 1);
    let mut crt_vs = VarStore::new(device);
    let classifier = Classifier::new(&(crt_vs.root() / "classifier"), features, classes, false);
    let crt_net = Network { backbone: net.backbone, classifier, frozen_backbone: true, tau_norm: p.tau_norm };
    data.sampler = data.sampler.with_kind(SamplerKind::ClassBalanced);
    let crt_objective = LongTail {
        loss: Loss::new(LossSettings::cross_entropy(), &objective.class_sizes, device),
        class_sizes: objective.class_sizes,
        posthoc_tau: p.posthoc_tau,
    };
    // A pause stops the first stage: the schedule's rungs lie below its last epoch.
    let crt_plan =
        Plan { epochs: p.crt_epochs, checkpoint_at_end: false, seed: mix(p.seed, 2), stop_after: None, ..plan };
    let (epoch_offset, step_offset) = (p.epochs, p.epochs as i64 * data.batches_per_epoch() as i64);
    let mut numbered_on = |mut record: sweep_spec::EpochRecord| {
        record.epoch += epoch_offset;
        record.step = record.step.map(|s| s + step_offset);
        record.metrics.insert("stage".into(), 2.0);
        sink(record)
    };
    let mut crt_optimizer = Optimizer::new(p.optimizer.clone(), &crt_vs);
    let crt = harness::Trial {
        net: &crt_net,
        vars: &mut crt_vs,
        optimizer: &mut crt_optimizer,
        schedule: &p.schedule(p.crt_epochs),
        base_lr: p.optimizer.lr,
        data: &data,
        objective: &crt_objective,
        checkpoint_dir: ctx.checkpoint_dir.as_ref().map(|d| d.join(CRT_CHECKPOINTS)),
    };
    harness::train(crt, &crt_plan, &mut numbered_on)
}

/// The plan a trial of these parameters trains by, alone or as a member of a fused group: the
/// long-tail backbones keep the default layout.
fn plan(workload: &str, p: &Params, ctx: &TrialContext) -> Result<Plan, TrialError> {
    let mut plan = Plan::new(workload, ctx, p.epochs, p.seed);
    plan.eval_every = p.eval_every;
    plan.precision = harness::Precision::parse(&p.precision, ctx.device).map_err(TrialError::bad_config)?;
    Ok(plan)
}

/// One line on stderr: how long the tail is, and how the classes fall into shot groups.
fn describe(class_sizes: &[usize], test: usize) {
    let count = |f: &dyn Fn(usize) -> bool| class_sizes.iter().filter(|&&n| f(n)).count();
    eprintln!(
        "{} training images in {} classes (largest {}, smallest {}; {} many-shot, {} medium-shot, {} few-shot), {test} test images",
        class_sizes.iter().sum::<usize>(),
        class_sizes.len(),
        class_sizes.iter().max().unwrap_or(&0),
        class_sizes.iter().min().unwrap_or(&0),
        count(&|n| n > scores::MANY_ABOVE),
        count(&|n| (scores::FEW_BELOW..=scores::MANY_ABOVE).contains(&n)),
        count(&|n| n < scores::FEW_BELOW),
    );
}
