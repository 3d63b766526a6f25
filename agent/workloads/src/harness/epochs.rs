//! The one epoch driver of lone trials and fused groups: batch seeds, learning rates, the graph or
//! eager step, the evaluation cadence, checkpoints and stops. Everything random inside an epoch
//! is a function of (seed, epoch, batch): the data order and augmentation through
//! [`super::TrainData`], dropout through libtorch's generator reseeded before each batch. A
//! checkpoint therefore needs only the model, the optimizer state and the position, and resuming
//! reproduces the uninterrupted run.

use super::{Batch, Plan, Position, StepGraph};
use crate::error::TrialError;
use crate::optim::Optimizer;
use crate::rng::mix;
use std::collections::BTreeMap;
use std::time::Instant;
use tch::{Device, Tensor};

/// What the driver trains: a lone network ([`super::train`]) or a fused group
/// ([`super::train_fused`]). `'d` is the life of its data, which the batches borrow.
pub(super) trait Trainee<'d> {
    /// The training batches of `epoch` (from 0) from batch `start` on.
    fn batches(&self, epoch: u32, start: u64) -> Box<dyn Iterator<Item = Batch> + 'd>;
    fn batches_per_epoch(&self) -> u64;
    /// Before the first batch of every epoch (from 0); `fresh` unless the run resumed inside it.
    fn begin_epoch(&mut self, epoch: u32, fresh: bool, plan: &Plan);
    /// Sets the learning rates of batch `b` of `epoch`; with `graphs`, also the device copies of
    /// the rates that a captured step reads.
    fn set_rates(&mut self, epoch: u32, b: u64, per_epoch: u64, graphs: bool) -> Result<(), TrialError>;
    /// The loss of one batch, on the device, whose gradient the step follows.
    fn loss(&self, x: &Tensor, y: &Tensor, epoch: u32, plan: &Plan) -> Tensor;
    fn optimizer(&mut self) -> &mut Optimizer;
    /// The eager update at the rates set last.
    fn step(&mut self) -> Result<(), TrialError>;
    /// After an epoch: evaluates and reports when `due` (or when the trainee must, e.g. a fused
    /// member diverged); says whether anything is left to train.
    fn end_epoch(&mut self, done: &EpochDone, due: bool, plan: &Plan) -> Result<Flow, TrialError>;
    /// Checkpoints where the run stands.
    fn save(&mut self, at: Position, plan: &Plan) -> Result<(), TrialError>;
}

/// Whether the driver goes on after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    /// Nothing is left to train (every member of a group diverged).
    Done,
}

/// What an epoch took, for the records of its evaluation.
pub(super) struct EpochDone {
    /// Counted from 1.
    pub epoch: u32,
    /// Optimizer steps since the start of training.
    pub step: u64,
    pub seconds: f64,
    pub examples: i64,
    pub device: Device,
}

impl EpochDone {
    /// The metrics every evaluated epoch carries besides what the objective measured: its learning
    /// rate, how long it took and, on CUDA, its memory peak.
    pub fn annotate(&self, metrics: &mut BTreeMap<String, f64>, lr: f64) {
        metrics.insert("lr".into(), lr);
        metrics.insert("epoch_seconds".into(), self.seconds);
        metrics.insert("samples_per_second".into(), self.examples as f64 / self.seconds.max(1e-9));
        if let Some(peak) = super::gpu_memory::peak_bytes(self.device) {
            metrics.insert("gpu_mem_peak_bytes".into(), peak);
        }
    }
}

/// Trains `trainee` from `start` to the plan's last epoch. A raised stop flag saves a checkpoint at
/// the next batch boundary and ends the run with [`TrialError::Interrupted`]; reaching the plan's
/// `stop_after` epoch saves one there and ends it with [`TrialError::Paused`] (at once, when the
/// checkpoint it resumed from is already past it).
pub(super) fn drive<'d>(trainee: &mut dyn Trainee<'d>, plan: &Plan, start: Position) -> Result<(), TrialError> {
    let Position { epoch: first_epoch, batch: mut start_batch, mut step } = start;
    if let Some(rung) = super::plan::paused_before(first_epoch, plan.epochs, plan.stop_after) {
        return Err(TrialError::Paused(rung));
    }
    let device = plan.device;
    let per_epoch = trainee.batches_per_epoch();
    let mut graph = StepGraph::new(plan.cuda_graphs, device);
    let rule = trainee.optimizer().config().name;
    if !rule.fuses() {
        graph.turn_off(format!("optimizer \"{}\" reads its step count and norms on the host", rule.name()));
    }
    for epoch in first_epoch..plan.epochs {
        // A new capture each epoch: losses that change with the epoch, members dropped from a group.
        graph.new_epoch();
        trainee.begin_epoch(epoch, start_batch == 0, plan);
        let started = Instant::now();
        super::gpu_memory::reset_peak(device);
        let mut examples = 0i64;
        for (i, batch) in trainee.batches(epoch, start_batch).enumerate() {
            let b = start_batch + i as u64;
            if plan.stop.is_raised() {
                trainee.save(Position { epoch, batch: b, step }, plan)?;
                return Err(TrialError::Interrupted);
            }
            tch::manual_seed(batch_seed(plan.seed, epoch, b));
            let graphs = graph.eager_because().is_none();
            trainee.set_rates(epoch, b, per_epoch, graphs)?;
            let x = batch.inputs.to_device(device);
            let x = if plan.channels_last { crate::models::to_channels_last_tensor(&x) } else { x };
            let y = batch.labels.to_device(device);
            // The step a graph captures: static inputs in, the update with rates and counts on the device.
            let graph_step = |t: &mut dyn Trainee<'d>, x: &Tensor, y: &Tensor| {
                let loss = t.loss(x, y, epoch, plan);
                t.optimizer().zero_grad();
                loss.backward();
                t.optimizer().graph_step()
            };
            let replayed =
                graphs && graph.replay(&x, &y, |x, y| graph_step(&mut *trainee, x, y)).map_err(graph_error)?;
            if replayed {
                trainee.optimizer().count_step();
            } else {
                let loss = trainee.loss(&x, &y, epoch, plan);
                trainee.optimizer().zero_grad();
                loss.backward();
                trainee.step()?;
                graph.capture_after(&x, &y, |x, y| graph_step(&mut *trainee, x, y));
            }
            step += 1;
            examples += y.size()[0];
        }
        start_batch = 0;
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        let done = EpochDone { epoch: epoch + 1, step, seconds: started.elapsed().as_secs_f64(), examples, device };
        let due = done.epoch.is_multiple_of(plan.eval_every.max(1)) || done.epoch == plan.epochs;
        if trainee.end_epoch(&done, due, plan)? == Flow::Done {
            break;
        }
        let due = super::plan::due_after(done.epoch, plan.epochs, plan.checkpoint_every, plan.stop_after);
        if due.save || (plan.checkpoint_at_end && done.epoch == plan.epochs) {
            trainee.save(Position { epoch: done.epoch, batch: 0, step }, plan)?;
        }
        if due.pause {
            return Err(TrialError::Paused(done.epoch));
        }
    }
    Ok(())
}

/// A failed graph capture, replay or replayed evaluation.
pub(super) fn graph_error(why: String) -> TrialError {
    TrialError::Other(anyhow::anyhow!("CUDA graph: {why}"))
}

/// libtorch's generator state before batch `b` of `epoch`: dropout masks depend on nothing else.
fn batch_seed(seed: u64, epoch: u32, b: u64) -> i64 {
    (mix(mix(seed, epoch as u64), b) >> 1) as i64
}
