//! A fused group of `double_descent` trials (`models::fused`): trials that differ only in seed,
//! learning rate, weight decay and label noise (`sweep_spec::fusion`) train as one network. Each
//! member starts from the network it would have had alone (initialised from its own seed), sees
//! its own noisy labels and batches, and reports its own records.

use super::params::{Model, Params};
use super::{channels_last, model_spec, noisy_training_set};
use crate::error::TrialError;
use crate::harness::{self, FusedPlan, Member, MemberOutcome, MemberSink, MemberState, Position};
use crate::image_data::{self, ImageData};
use crate::models::{self, fused};
use crate::optim::Optimizer;
use crate::{data, TrialContext};
use std::path::PathBuf;
use sweep_spec::TrialSpec;
use tch::nn::VarStore;

/// Trains `specs` as one fused group, member i reporting to `sinks[i]` and checkpointing into
/// `checkpoint_dirs[i]`. Members resume from their own checkpoints; members that stand at
/// different points (they were not grouped together before) train as one group per point, one
/// after another, and a member alone at its point trains alone. Configuration errors name the
/// trial and the parameter that keeps it out of the group.
pub fn run_group(
    specs: &[TrialSpec],
    ctx: &TrialContext,
    checkpoint_dirs: Vec<Option<PathBuf>>,
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
    let train = image_data::first(splits.train.shallow_clone(), p.n_train);
    let spec = model_spec(arch, p, &train);

    // Each member's lone network, initialised from its own seed exactly as it would be alone,
    // then overwritten by its checkpoint if it has one.
    let mut states = Vec::with_capacity(specs.len());
    let mut positions = Vec::with_capacity(specs.len());
    for ((q, s), dir) in params.iter().zip(specs).zip(checkpoint_dirs) {
        tch::manual_seed(q.seed as i64);
        let lone = VarStore::new(device);
        let _ = models::build(&lone.root(), &spec).map_err(TrialError::bad_config)?;
        let mut state = MemberState::new(dir, lone, q.optimizer.clone());
        let position = match state.load().map_err(TrialError::Other)? {
            Some(meta) if meta.workload != s.workload => {
                return Err(TrialError::bad_config(format!(
                    "trial {}: its checkpoint is of workload `{}`, not `{}`",
                    s.id, meta.workload, s.workload
                )))
            }
            Some(meta) => {
                eprintln!("trial {} resumes from epoch {}, batch {}", s.id, meta.epochs_done, meta.batches_done);
                Position::of(&meta)
            }
            None => Position::default(),
        };
        states.push(Some(state));
        positions.push(position);
    }
    let mut sinks: Vec<Option<MemberSink<'_>>> = sinks.into_iter().map(Some).collect();
    let mut outcomes = vec![MemberOutcome::Finished; specs.len()];
    let mut points: Vec<Position> = Vec::new();
    for p in &positions {
        if !points.contains(p) {
            points.push(*p);
        }
    }
    for point in points {
        let at: Vec<usize> = (0..specs.len()).filter(|&i| positions[i] == point).collect();
        if let [i] = at[..] {
            // Alone at its point: the lone loop, which resumes from the member's checkpoint itself.
            let mut sink = sinks[i].take().expect("one run per member");
            let dir = states[i].take().and_then(|s| s.dir);
            let alone = TrialContext {
                device,
                checkpoint_dir: dir,
                checkpoint_every: ctx.checkpoint_every,
                stop: ctx.stop.clone(),
                cuda_graphs: ctx.cuda_graphs,
            };
            super::run(&specs[i], &alone, &mut |record| sink(harness::MemberReport::Epoch(record)))?;
            continue;
        }
        let group: Vec<(&Params, MemberState, MemberSink<'_>)> = at
            .iter()
            .map(|&i| {
                (
                    &params[i],
                    states[i].take().expect("one run per member"),
                    sinks[i].take().expect("one run per member"),
                )
            })
            .collect();
        let ran = train_group(first, &spec, &train, &splits, group, point, ctx)?;
        for (&i, outcome) in at.iter().zip(ran) {
            outcomes[i] = outcome;
        }
    }
    Ok(outcomes)
}

/// Trains members that stand at the same point as one fused network.
fn train_group(
    first: &TrialSpec,
    spec: &models::ModelSpec,
    train: &data::ImageSet,
    splits: &data::Splits,
    members: Vec<(&Params, MemberState, MemberSink<'_>)>,
    start: Position,
    ctx: &TrialContext,
) -> Result<Vec<MemberOutcome>, TrialError> {
    let device = ctx.device;
    let p = members[0].0;
    let count = members.len() as i64;
    let mut fused_vs = VarStore::new(device);
    let net = fused::build(&fused_vs.root(), spec, count).map_err(TrialError::bad_config)?;
    let channels_last = channels_last(spec.arch, device);
    if channels_last {
        models::to_channels_last(&mut fused_vs);
    }
    let mut optimizer = Optimizer::new(p.optimizer.clone(), &fused_vs);
    for (g, (_, state, _)) in members.iter().enumerate() {
        state.install(&fused_vs, &mut optimizer, g as i64).map_err(|e| TrialError::Other(anyhow::anyhow!(e)))?;
    }
    eprintln!(
        "fused group of {count} {} width {}: {} parameters, from epoch {}",
        spec.arch,
        p.width,
        models::parameter_count(&fused_vs),
        start.epoch
    );
    let precision = harness::Precision::parse(&p.precision, device).map_err(TrialError::bad_config)?;
    let member_data: Vec<ImageData> = members
        .iter()
        .map(|(q, _, _)| {
            ImageData::new(
                noisy_training_set(train, q),
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
    let mut group: Vec<Member<'_>> = members
        .into_iter()
        .zip(&member_data)
        .map(|((q, state, sink), data)| Member {
            data,
            base_lr: q.optimizer.lr,
            weight_decay: q.weight_decay,
            sink,
            state: Some(state),
        })
        .collect();
    let plan = FusedPlan {
        workload: first.workload.clone(),
        start,
        epochs: p.epochs,
        seed: p.seed,
        eval_every: p.eval_every,
        precision,
        channels_last,
        checkpoint_every: ctx.checkpoint_every,
        cuda_graphs: ctx.cuda_graphs,
    };
    let objective = harness::ErrorRates;
    harness::train_fused(
        net.as_ref(),
        &fused_vs,
        &mut optimizer,
        &p.schedule,
        &mut group,
        &objective,
        &plan,
        device,
        &ctx.stop,
    )
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
