//! The loop of a fused group (`models::fused`): G trials of one architecture and width trained as
//! one network. Each member trains on its own batches (its own data order, augmentation and
//! labels) with its own learning rate and weight decay, and is reported as its own trial. A member
//! whose training loss turns non-finite is dropped: its last record is reported, it no longer
//! shapes the loss, and the others go on.
//!
//! Each member checkpoints into its own folder in the format of a lone trial
//! ([`super::MemberState`]): every `checkpoint_every` epochs and when stopped (SIGTERM), after
//! which the loop ends with `TrialError::Interrupted`.

use super::train_loop::{batch_seed, graph_error};
use super::{
    autocast, fused_batches, GraphMode, GroupObjective, MemberState, Precision, StepGraph, StopFlag, TrainData,
};
use crate::checkpoint::Meta;
use crate::error::TrialError;
use crate::optim::{LrSchedule, Optimizer};
use std::time::Instant;
use sweep_spec::EpochRecord;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// What the loop tells about one member.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberReport {
    /// An evaluated epoch.
    Epoch(EpochRecord),
    /// The member left the group, for this reason; nothing more follows.
    Dropped(String),
}

/// Where one member's reports go.
pub type MemberSink<'a> = Box<dyn FnMut(MemberReport) -> anyhow::Result<()> + 'a>;

/// One trial of the group.
pub struct Member<'a> {
    pub data: &'a dyn TrainData,
    pub base_lr: f64,
    pub weight_decay: f64,
    pub sink: MemberSink<'a>,
    /// Its checkpoint folder and lone copy; none: it cannot resume.
    pub state: Option<MemberState>,
}

/// What a fused run does; the members share all of it.
#[derive(Debug, Clone)]
pub struct FusedPlan {
    /// Recorded in the members' checkpoints.
    pub workload: String,
    /// Where every member stands (they share it): from a checkpoint, or the start.
    pub start: Position,
    pub epochs: u32,
    /// Seeds libtorch's generator before each batch (dropout).
    pub seed: u64,
    /// Evaluate and report every this many epochs, and always after the last.
    pub eval_every: u32,
    pub precision: Precision,
    pub channels_last: bool,
    /// Also checkpoint after every this many epochs (besides on SIGTERM).
    pub checkpoint_every: Option<u32>,
    /// Capture the group's training step as a CUDA graph (on CUDA devices).
    pub cuda_graphs: GraphMode,
}

/// A point in training: epochs done, batches done into the next epoch, optimizer steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Position {
    pub epoch: u32,
    pub batch: u64,
    pub step: u64,
}

impl Position {
    pub fn of(meta: &Meta) -> Position {
        Position { epoch: meta.epochs_done, batch: meta.batches_done, step: meta.global_step }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberOutcome {
    Finished,
    /// The training loss of this epoch (counted from 1) was not finite.
    Diverged {
        epoch: u32,
    },
}

#[allow(clippy::too_many_arguments)]
pub fn train_fused(
    net: &dyn ModuleT,
    vars: &VarStore,
    optimizer: &mut Optimizer,
    schedule: &LrSchedule,
    members: &mut [Member<'_>],
    objective: &dyn GroupObjective,
    plan: &FusedPlan,
    device: Device,
    stop: &StopFlag,
) -> Result<Vec<MemberOutcome>, TrialError> {
    let g = members.len();
    let per_epoch = members.first().map_or(0, |m| m.data.batches_per_epoch());
    if members.iter().any(|m| m.data.batches_per_epoch() != per_epoch) {
        return Err(TrialError::bad_config("fused members must have the same training-set and batch sizes"));
    }
    let weight_decay: Vec<f64> = members.iter().map(|m| m.weight_decay).collect();
    let mut outcome = vec![MemberOutcome::Finished; g];
    let mut live: Vec<usize> = (0..g).collect();
    // Saves every live member's slice where the loop stands.
    let save = |members: &mut [Member<'_>], live: &[usize], optimizer: &Optimizer, at: Position| {
        let meta = Meta {
            epochs_done: at.epoch,
            batches_done: at.batch,
            global_step: at.step,
            workload: plan.workload.clone(),
            extra: serde_json::Value::Null,
        };
        for &i in live {
            if let Some(state) = members[i].state.as_mut() {
                state.save(vars, optimizer, i as i64, &meta)?;
            }
        }
        Ok::<(), TrialError>(())
    };
    let Position { epoch: first_epoch, batch: mut start_batch, mut step } = plan.start;
    let mut graph = StepGraph::new(plan.cuda_graphs, device);
    for epoch in first_epoch..plan.epochs {
        // A new capture each epoch: the loss sums and the live members are the epoch's own.
        graph.new_epoch();
        let started = Instant::now();
        super::gpu_memory::reset_peak(device);
        let live_index = Tensor::from_slice(&live.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(device);
        let loss_sum = Tensor::zeros([g as i64], (Kind::Double, device));
        let (mut examples, mut lrs) = (0i64, vec![0.0; g]);
        let passes = members.iter().map(|m| m.data.train_batches(epoch as u64, start_batch)).collect();
        for (i, batch) in fused_batches(passes).enumerate() {
            let b = start_batch + i as u64;
            if stop.is_raised() {
                save(members, &live, optimizer, Position { epoch, batch: b, step })?;
                return Err(TrialError::Interrupted);
            }
            tch::manual_seed(batch_seed(plan.seed, epoch, b));
            for (lr, m) in lrs.iter_mut().zip(members.iter()) {
                *lr = schedule.lr(m.base_lr, epoch, b, per_epoch);
            }
            let x = batch.inputs.to_device(device);
            let x = if plan.channels_last { crate::models::to_channels_last_tensor(&x) } else { x };
            let y = batch.labels.to_device(device);
            // Each member's mean loss; their sum gives each member exactly its own gradient.
            let forward = |x: &Tensor, y: &Tensor| {
                let losses =
                    autocast(plan.precision, device, || objective.member_losses(&net.forward_t(x, true), y, epoch));
                let _ = loss_sum.shallow_clone().f_add_(&losses.detach().to_kind(Kind::Double));
                losses.index_select(0, &live_index).sum(Kind::Float)
            };
            let graph_step = |optimizer: &mut Optimizer, x: &Tensor, y: &Tensor| {
                let loss = forward(x, y);
                optimizer.zero_grad();
                loss.backward();
                optimizer.graph_step()
            };
            let replayed = graph.eager_because().is_none() && {
                optimizer.set_graph_rates(&lrs, &weight_decay).map_err(TrialError::bad_config)?;
                graph.replay(&x, &y, |x, y| graph_step(optimizer, x, y)).map_err(graph_error)?
            };
            if replayed {
                optimizer.count_step();
            } else {
                let loss = forward(&x, &y);
                optimizer.zero_grad();
                loss.backward();
                optimizer.step_members(&lrs, &weight_decay).map_err(TrialError::bad_config)?;
                graph.capture_after(&x, &y, |x, y| graph_step(optimizer, x, y));
            }
            examples += y.size()[0];
            step += 1;
        }
        start_batch = 0;
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        let seconds = started.elapsed().as_secs_f64();
        let epoch = epoch + 1;
        // One read per epoch: a member whose losses summed to a non-finite number diverged.
        let sums = Vec::<f64>::try_from(&loss_sum).unwrap_or_default();
        let diverged: Vec<usize> = live.iter().copied().filter(|&i| !sums[i].is_finite()).collect();

        if epoch % plan.eval_every.max(1) == 0 || epoch == plan.epochs || !diverged.is_empty() {
            let on = super::EvalOn { device, precision: plan.precision, graphs: plan.cuda_graphs };
            let datas: Vec<&dyn TrainData> = members.iter().map(|m| m.data).collect();
            let mut evaluated = objective.evaluate_members(net, &datas, on).map_err(graph_error)?;
            let peak = super::gpu_memory::peak_bytes(device);
            for &i in &live {
                let mut metrics = std::mem::take(&mut evaluated[i]);
                metrics.insert("lr".into(), lrs[i]);
                metrics.insert("epoch_seconds".into(), seconds);
                metrics.insert("samples_per_second".into(), examples as f64 / seconds.max(1e-9));
                metrics.insert("fused_members".into(), live.len() as f64);
                if let Some(peak) = peak {
                    metrics.insert("gpu_mem_peak_bytes".into(), peak);
                }
                (members[i].sink)(MemberReport::Epoch(EpochRecord { epoch, step: Some(step as i64), metrics }))?;
            }
        }
        for &i in &diverged {
            let why = format!("diverged in epoch {epoch}: training loss {}; dropped from its fused group", sums[i]);
            eprintln!("fused member {i} {why}");
            (members[i].sink)(MemberReport::Dropped(why))?;
            outcome[i] = MemberOutcome::Diverged { epoch };
        }
        live.retain(|i| !diverged.contains(i));
        if live.is_empty() {
            break;
        }
        if plan.checkpoint_every.is_some_and(|n| epoch % n.max(1) == 0) && epoch < plan.epochs {
            save(members, &live, optimizer, Position { epoch, batch: 0, step })?;
        }
    }
    Ok(outcome)
}
