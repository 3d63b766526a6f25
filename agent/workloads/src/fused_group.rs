//! A fused group of trials (`models::fused`, `sweep_spec::fusion`), whatever their workload: the
//! checks that they may share a group, each member's lone copy and checkpoint, and the split by
//! where the members stand. Members that resume from different points (they were not grouped
//! together before) train as one group per point, one after another, and a member alone at its
//! point trains alone. The workload supplies the networks and the training.

use crate::error::TrialError;
use crate::harness::{self, GroupObjective, Member, MemberOutcome, MemberSink, MemberState, Position};
use crate::optim::{LrSchedule, Optimizer, OptimizerConfig};
use crate::TrialContext;
use serde_json::{Map, Value};
use std::path::PathBuf;
use sweep_spec::TrialSpec;
use tch::nn::{ModuleT, VarStore};

/// What a workload does for its fused groups.
pub(crate) trait GroupWorkload {
    /// Member `i`'s network initialised exactly as it would be alone (from its own seed), and its
    /// optimizer's configuration.
    fn lone(&self, i: usize) -> Result<(VarStore, OptimizerConfig), TrialError>;

    /// Trains the members `(i, state, sink)`, all standing at `start`, as one fused network; the
    /// outcomes are in the members' order.
    fn together(
        &self,
        members: Vec<(usize, MemberState, MemberSink<'_>)>,
        start: Position,
        ctx: &TrialContext,
    ) -> Result<Vec<MemberOutcome>, TrialError>;
}

/// A workload's fused network, ready for [`train`].
pub(crate) struct Fused<'a> {
    pub net: &'a dyn ModuleT,
    pub vars: &'a VarStore,
    /// The members' shared optimizer settings (each member's rates come with it).
    pub optimizer: OptimizerConfig,
    pub schedule: LrSchedule,
    pub objective: &'a dyn GroupObjective,
    /// The members' shared plan: the one a member alone would train by.
    pub plan: harness::Plan,
}

/// Refuses trials that may not share a group, naming the trial and the parameter that keeps it out;
/// otherwise each trial's parameters, parsed by `parse` (an error names the trial).
pub(crate) fn check<P>(
    specs: &[TrialSpec],
    parse: impl Fn(&Map<String, Value>) -> Result<P, TrialError>,
) -> Result<Vec<P>, TrialError> {
    check_keys(specs)?;
    specs.iter().map(|s| parse(&s.params).map_err(|e| TrialError::bad_config(format!("trial {}: {e}", s.id)))).collect()
}

/// Trains `members` `(i, state, sink)`, all standing at `start`, as the fused network, member g
/// on `data[g]` with the learning rate and weight decay `rates(i)`; each member's lone copy is
/// installed in its slice first.
pub(crate) fn train<D: harness::TrainData>(
    fused: Fused<'_>,
    members: Vec<(usize, MemberState, MemberSink<'_>)>,
    data: &[D],
    rates: impl Fn(usize) -> (f64, f64),
    start: Position,
) -> Result<Vec<MemberOutcome>, TrialError> {
    let mut optimizer = Optimizer::new(fused.optimizer, fused.vars);
    for (g, (_, state, _)) in members.iter().enumerate() {
        state.install(fused.vars, &mut optimizer, g as i64).map_err(|e| TrialError::Other(anyhow::anyhow!(e)))?;
    }
    let members: Vec<Member<'_>> = members
        .into_iter()
        .zip(data)
        .map(|((i, state, sink), data)| {
            let (base_lr, weight_decay) = rates(i);
            Member { data, base_lr, weight_decay, sink, state: Some(state) }
        })
        .collect();
    eprintln!(
        "fused group of {}: {} parameters, from epoch {}",
        members.len(),
        crate::models::parameter_count(fused.vars),
        start.epoch
    );
    let group = harness::Group {
        net: fused.net,
        vars: fused.vars,
        optimizer: &mut optimizer,
        schedule: &fused.schedule,
        members,
        objective: fused.objective,
        start,
    };
    harness::train_fused(group, &fused.plan)
}

fn check_keys(specs: &[TrialSpec]) -> Result<(), TrialError> {
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
    Ok(())
}

/// Runs `run_group` (a workload's) on `specs` from the start, collecting each member's records.
#[cfg(test)]
pub(crate) fn run_recorded(
    specs: &[TrialSpec],
    ctx: &TrialContext,
    dirs: Vec<Option<PathBuf>>,
    run_group: impl FnOnce(
        &[TrialSpec],
        &TrialContext,
        Vec<Option<PathBuf>>,
        Vec<MemberSink<'_>>,
    ) -> Result<Vec<MemberOutcome>, TrialError>,
) -> (Result<Vec<MemberOutcome>, TrialError>, Vec<Vec<sweep_spec::EpochRecord>>) {
    let mut records: Vec<Vec<sweep_spec::EpochRecord>> = vec![Vec::new(); specs.len()];
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
        run_group(specs, ctx, dirs, sinks)
    };
    (result, records)
}

/// Trains `specs` (checked by [`check`]) as fused groups, member i reporting to `sinks[i]` and
/// checkpointing into `checkpoint_dirs[i]`; each member resumes from its own checkpoint.
pub(crate) fn run(
    specs: &[TrialSpec],
    ctx: &TrialContext,
    checkpoint_dirs: Vec<Option<PathBuf>>,
    sinks: Vec<MemberSink<'_>>,
    workload: &dyn GroupWorkload,
) -> Result<Vec<MemberOutcome>, TrialError> {
    let mut states = Vec::with_capacity(specs.len());
    let mut positions = Vec::with_capacity(specs.len());
    for (i, (s, dir)) in specs.iter().zip(checkpoint_dirs).enumerate() {
        let (lone, optimizer) = workload.lone(i)?;
        let mut state = MemberState::new(dir, lone, optimizer);
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
                device: ctx.device,
                checkpoint_dir: dir,
                checkpoint_every: ctx.checkpoint_every,
                stop_after: ctx.stop_after,
                stop: ctx.stop.clone(),
                cuda_graphs: ctx.cuda_graphs,
            };
            crate::run_workload(&specs[i], &alone, &mut |record| sink(harness::MemberReport::Epoch(record)))?;
            continue;
        }
        let group = at
            .iter()
            .map(|&i| {
                let state = states[i].take().expect("one run per member");
                (i, state, sinks[i].take().expect("one run per member"))
            })
            .collect();
        let ran = workload.together(group, point, ctx)?;
        for (&i, outcome) in at.iter().zip(ran) {
            outcomes[i] = outcome;
        }
    }
    Ok(outcomes)
}
