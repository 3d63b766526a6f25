//! A fused group of `long_tail` trials (`models::fused`): trials of one loss, sampler and backbone
//! that differ only in seed, learning rate and weight decay (`sweep_spec::fusion`) train as one
//! network. Each member starts from the network it would have had alone (initialised from its own
//! seed), draws its own batches with its own sampler, and reports its own per-class records.

use super::network::{Classifier, Network};
use super::params::Params;
use super::{describe, LongTail, Loss};
use crate::error::TrialError;
use crate::fused_group::{self, GroupWorkload};
use crate::harness::{MemberOutcome, MemberSink, MemberState, Position};
use crate::image_data::{self, Draws, ImageData};
use crate::optim::OptimizerConfig;
use crate::{data, TrialContext};
use std::path::PathBuf;
use sweep_spec::TrialSpec;
use tch::nn::VarStore;

/// Trains `specs` as one fused group, member i reporting to `sinks[i]` and checkpointing into
/// `checkpoint_dirs[i]` (see `fused_group::run` for members that stand at different points).
/// Configuration errors name the trial and the parameter that keeps it out of the group.
pub fn run_group(
    specs: &[TrialSpec],
    ctx: &TrialContext,
    checkpoint_dirs: Vec<Option<PathBuf>>,
    sinks: Vec<MemberSink<'_>>,
) -> Result<Vec<MemberOutcome>, TrialError> {
    let params = fused_group::check(specs, Params::parse)?;
    let first = &specs[0];
    let data_ref = first.data.as_ref().ok_or_else(|| TrialError::bad_config("data: a [data] section is needed"))?;
    let splits = image_data::load(data_ref)?;
    let size = splits.train.images.size();
    let group = Group { specs, params, shape: (size[1], size[2], size[3]), splits, device: ctx.device };
    fused_group::run(specs, ctx, checkpoint_dirs, sinks, &group)
}

/// What the members share: the data and the network's shape.
struct Group<'a> {
    specs: &'a [TrialSpec],
    params: Vec<Params>,
    /// Channels, height and width of an image.
    shape: (i64, i64, i64),
    splits: data::Splits,
    device: tch::Device,
}

impl GroupWorkload for Group<'_> {
    fn lone(&self, i: usize) -> Result<(VarStore, OptimizerConfig), TrialError> {
        let q = &self.params[i];
        tch::manual_seed(q.seed as i64);
        let vs = VarStore::new(self.device);
        let (_, features) = q.backbone.build(&(vs.root() / "backbone"), self.shape, q.hidden);
        let cosine = q.loss.kind.wants_cosine_classifier();
        Classifier::new(&(vs.root() / "classifier"), features, self.splits.train.classes, cosine);
        Ok((vs, q.optimizer.clone()))
    }

    fn together(
        &self,
        members: Vec<(usize, MemberState, MemberSink<'_>)>,
        start: Position,
        ctx: &TrialContext,
    ) -> Result<Vec<MemberOutcome>, TrialError> {
        let device = ctx.device;
        let p = &self.params[members[0].0];
        let count = members.len() as i64;
        let fused_vs = VarStore::new(device);
        let (backbone, features) = p
            .backbone
            .build_fused(&(fused_vs.root() / "backbone"), self.shape, p.hidden, count)
            .map_err(|e| TrialError::bad_config(format!("params.{e}")))?;
        let cosine = p.loss.kind.wants_cosine_classifier();
        let classes = self.splits.train.classes;
        let classifier = Classifier::fused(&(fused_vs.root() / "classifier"), count, features, classes, cosine);
        let net = Network { backbone, classifier, frozen_backbone: false, tau_norm: p.tau_norm };
        // Each member draws its own batches with its own sampler from the one training split.
        let draws = members
            .iter()
            .map(|&(i, _, _)| {
                let q = &self.params[i];
                let train = self.splits.train.shallow_clone();
                Draws { train, batch_size: q.batch_size, seed: q.seed, augment: q.augment, sampler: q.sampler }
            })
            .collect();
        let stats = (self.splits.mean.as_slice(), self.splits.std.as_slice());
        let member_data = ImageData::for_group(draws, &self.splits.test, stats, device);
        let class_sizes = member_data[0].sampler.class_sizes();
        describe(&class_sizes, member_data[0].test.len());
        eprintln!("{:?} backbone, fused", p.backbone);
        let objective =
            LongTail { loss: Loss::new(p.loss, &class_sizes, device), class_sizes, posthoc_tau: p.posthoc_tau };
        let fused = fused_group::Fused {
            net: &net,
            vars: &fused_vs,
            optimizer: p.optimizer.clone(),
            schedule: p.schedule(p.epochs),
            objective: &objective,
            plan: super::plan(&self.specs[0].workload, p, ctx)?,
        };
        let rates = |i: usize| (self.params[i].optimizer.lr, self.params[i].optimizer.weight_decay);
        fused_group::train(fused, members, &member_data, rates, start)
    }
}
