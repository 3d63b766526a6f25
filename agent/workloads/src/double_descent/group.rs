//! A fused group of `double_descent` trials (`models::fused`): trials that differ only in seed,
//! learning rate, weight decay and label noise (`sweep_spec::fusion`) train as one network. Each
//! member starts from the network it would have had alone (initialised from its own seed), sees
//! its own noisy labels and batches, and reports its own records.

use super::params::{Model, Params};
use super::{model_spec, noisy_training_set};
use crate::error::TrialError;
use crate::harness::{self, FusedPlan, Member, MemberOutcome, MemberSink};
use crate::image_data::{self, ImageData};
use crate::models::{self, fused};
use crate::optim::Optimizer;
use crate::{data, TrialContext};
use sweep_spec::TrialSpec;
use tch::nn::VarStore;

/// Trains `specs` as one fused group, member i reporting to `sinks[i]`. Configuration errors
/// name the trial and the parameter that keeps it out of the group.
pub fn run_group(
    specs: &[TrialSpec],
    ctx: &TrialContext,
    sinks: Vec<MemberSink<'_>>,
) -> Result<Vec<MemberOutcome>, TrialError> {
    let first = specs.first().ok_or_else(|| TrialError::bad_config("a fused group needs at least one trial"))?;
    sweep_spec::fusion::key(first).map_err(|e| TrialError::bad_config(format!("trial {}: {e}", first.id)))?;
    for spec in &specs[1..] {
        if let Some(what) = sweep_spec::fusion::first_difference(first, spec) {
            return Err(TrialError::bad_config(format!(
                "trial {}: {what} differs from trial {}'s; fused members differ only in {}",
                spec.id,
                first.id,
                sweep_spec::fusion::MEMBER_PARAMS.join(", ")
            )));
        }
    }
    let params: Vec<Params> = specs
        .iter()
        .map(|s| Params::parse(&s.params).map_err(|e| TrialError::bad_config(format!("trial {}: {e}", s.id))))
        .collect::<Result<_, _>>()?;
    let p = &params[0];
    let Model::Net(arch) = p.model else { unreachable!("fusion::key admits networks only") };
    let device = ctx.device;
    let data_ref = first.data.as_ref().ok_or_else(|| TrialError::bad_config("data: a [data] section is needed"))?;
    let splits = image_data::load(data_ref)?;
    let train = image_data::first(splits.train, p.n_train);
    let spec = model_spec(arch, p, &train);

    // Each member's initial network, drawn from its own seed exactly as it would be alone.
    let members = specs.len() as i64;
    let fused_vs = VarStore::new(device);
    let net = fused::build(&fused_vs.root(), &spec, members).map_err(TrialError::bad_config)?;
    for (g, q) in params.iter().enumerate() {
        tch::manual_seed(q.seed as i64);
        let lone = VarStore::new(device);
        let _ = models::build(&lone.root(), &spec).map_err(TrialError::bad_config)?;
        fused::load_member(&fused_vs, g as i64, &lone).map_err(|e| TrialError::Other(anyhow::anyhow!(e)))?;
    }
    let mut fused_vs = fused_vs;
    let precision = harness::Precision::parse(&p.precision, device).map_err(TrialError::bad_config)?;
    let channels_last = device.is_cuda();
    if channels_last {
        models::to_channels_last(&mut fused_vs);
    }
    eprintln!(
        "fused group of {members} {arch} width {}: {} parameters, trials {}",
        p.width,
        models::parameter_count(&fused_vs),
        specs.iter().map(|s| s.id.0.as_str()).collect::<Vec<_>>().join(", ")
    );
    let mut optimizer = Optimizer::new(p.optimizer.clone(), &fused_vs);
    let member_data: Vec<ImageData> = params
        .iter()
        .map(|q| {
            ImageData::new(
                noisy_training_set(&train, q),
                splits.test.shallow_clone(),
                (splits.mean.clone(), splits.std.clone()),
                q.batch_size,
                q.seed,
                q.augment,
                device,
                data::SamplerKind::Instance,
            )
        })
        .collect();
    let mut group: Vec<Member<'_>> = member_data
        .iter()
        .zip(&params)
        .zip(sinks)
        .map(|((data, q), sink)| Member { data, base_lr: q.optimizer.lr, weight_decay: q.weight_decay, sink })
        .collect();
    let plan = FusedPlan { epochs: p.epochs, seed: p.seed, eval_every: p.eval_every, precision, channels_last };
    harness::train_fused(net.as_ref(), &mut optimizer, &p.schedule, &mut group, &plan, device, &ctx.stop)
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
