//! A fused group of `double_descent` trials (`models::fused`): trials that differ only in seed,
//! learning rate, weight decay and label noise (`sweep_spec::fusion`) train as one network. Each
//! member starts from the network it would have had alone (initialised from its own seed), sees
//! its own noisy labels and batches, and reports its own records.

use super::params::{Model, Params};
use super::{model_spec, noisy_training_set};
use crate::error::TrialError;
use crate::fused_group::{self, GroupWorkload};
use crate::harness::{self, MemberOutcome, MemberSink, MemberState, Position};
use crate::image_data::{self, Draws, ImageData};
use crate::models::{self, fused};
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
    let Model::Net(arch) = params[0].model else { unreachable!("fusion::key admits networks only") };
    let data_ref = first.data.as_ref().ok_or_else(|| TrialError::bad_config("data: a [data] section is needed"))?;
    let splits = image_data::load(data_ref)?;
    let train = image_data::first(splits.train.shallow_clone(), params[0].n_train);
    let spec = model_spec(arch, &params[0], &train);
    let group = Group { specs, params, spec, train, splits, device: ctx.device };
    fused_group::run(specs, ctx, checkpoint_dirs, sinks, &group)
}

/// What the members share: the data and the network's shape.
struct Group<'a> {
    specs: &'a [TrialSpec],
    params: Vec<Params>,
    spec: models::ModelSpec,
    train: data::ImageSet,
    splits: data::Splits,
    device: tch::Device,
}

impl GroupWorkload for Group<'_> {
    fn lone(&self, i: usize) -> Result<(VarStore, OptimizerConfig), TrialError> {
        let q = &self.params[i];
        tch::manual_seed(q.seed as i64);
        let lone = VarStore::new(self.device);
        let _ = models::build(&lone.root(), &self.spec).map_err(TrialError::bad_config)?;
        Ok((lone, q.optimizer.clone()))
    }

    fn together(
        &self,
        members: Vec<(usize, MemberState, MemberSink<'_>)>,
        start: Position,
        ctx: &TrialContext,
    ) -> Result<Vec<MemberOutcome>, TrialError> {
        let device = ctx.device;
        let p = &self.params[members[0].0];
        let mut fused_vs = VarStore::new(device);
        let net = fused::build(&fused_vs.root(), &self.spec, members.len() as i64).map_err(TrialError::bad_config)?;
        let plan = super::plan(&self.specs[0].workload, p, self.spec.arch, ctx)?;
        if plan.channels_last {
            models::to_channels_last(&mut fused_vs);
        }
        eprintln!("{} width {}, fused", self.spec.arch, p.width);
        let draws = members
            .iter()
            .map(|&(i, _, _)| {
                let q = &self.params[i];
                let train = noisy_training_set(&self.train, q);
                let sampler = data::SamplerKind::Instance;
                Draws { train, batch_size: q.batch_size, seed: q.seed, augment: q.augment, sampler }
            })
            .collect();
        let stats = (self.splits.mean.as_slice(), self.splits.std.as_slice());
        let member_data = ImageData::for_group(draws, &self.splits.test, stats, device);
        let fused = fused_group::Fused {
            net: net.as_ref(),
            vars: &fused_vs,
            optimizer: p.optimizer.clone(),
            schedule: p.schedule.clone(),
            objective: &harness::ErrorRates,
            plan,
        };
        let rates = |i: usize| (self.params[i].optimizer.lr, self.params[i].weight_decay);
        fused_group::train(fused, members, &member_data, rates, start)
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
