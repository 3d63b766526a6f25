//! The training loop itself. Everything random inside an epoch is a function of
//! (seed, epoch, batch): the data order and augmentation through [`TrainData`], dropout through
//! libtorch's generator reseeded before each batch. A checkpoint therefore needs only the model,
//! the optimizer state and the position, and resuming reproduces the uninterrupted run.

use super::{autocast, GraphMode, Objective, Precision, StepGraph, StopFlag, TrainData};
use crate::checkpoint::{self, Meta};
use crate::error::TrialError;
use crate::optim::{LrSchedule, Optimizer};
use crate::rng::mix;
use crate::Sink;
use std::path::PathBuf;
use std::time::Instant;
use sweep_spec::EpochRecord;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Tensor};

/// What one run of the loop does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Recorded in checkpoints, so a checkpoint of another workload is never loaded.
    pub workload: String,
    pub epochs: u32,
    pub seed: u64,
    pub base_lr: f64,
    /// Evaluate and report every this many epochs, and always after the last.
    pub eval_every: u32,
    /// Where checkpoints go; none: the trial cannot resume.
    pub checkpoint_dir: Option<PathBuf>,
    /// Also checkpoint after every this many epochs (besides on SIGTERM).
    pub checkpoint_every: Option<u32>,
    pub precision: Precision,
    /// Feed inputs in channels-last layout (the model's weights must be converted too).
    pub channels_last: bool,
    /// Also checkpoint after the last epoch, for a later stage that starts from this one's model.
    pub checkpoint_at_end: bool,
    /// Capture the training step as a CUDA graph (on CUDA devices).
    pub cuda_graphs: GraphMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// Stopped on request after saving a checkpoint at this position.
    Stopped {
        epochs_done: u32,
        batches_done: u64,
    },
}

#[allow(clippy::too_many_arguments)]
pub fn train(
    net: &dyn ModuleT,
    vs: &mut VarStore,
    optimizer: &mut Optimizer,
    schedule: &LrSchedule,
    data: &dyn TrainData,
    objective: &dyn Objective,
    plan: &Plan,
    device: Device,
    stop: &StopFlag,
    sink: &mut Sink<'_>,
) -> Result<Outcome, TrialError> {
    let (mut epoch, mut start_batch, mut step) = match &plan.checkpoint_dir {
        Some(dir) => match checkpoint::load(dir, vs, optimizer)? {
            Some(meta) if meta.workload != plan.workload => {
                return Err(TrialError::bad_config(format!(
                    "{}: holds a checkpoint of workload `{}`, not `{}`",
                    dir.display(),
                    meta.workload,
                    plan.workload
                )))
            }
            Some(meta) => {
                eprintln!("resuming from {}: epoch {}, batch {}", dir.display(), meta.epochs_done, meta.batches_done);
                (meta.epochs_done, meta.batches_done, meta.global_step)
            }
            None => (0, 0, 0),
        },
        None => (0, 0, 0),
    };
    let per_epoch = data.batches_per_epoch();
    let save = |vs: &VarStore,
                optimizer: &Optimizer,
                epochs_done: u32,
                batches_done: u64,
                step: u64|
     -> Result<(), TrialError> {
        if let Some(dir) = &plan.checkpoint_dir {
            let meta = Meta {
                epochs_done,
                batches_done,
                global_step: step,
                workload: plan.workload.clone(),
                extra: serde_json::Value::Null,
            };
            checkpoint::save(dir, vs, optimizer, &meta)?;
        }
        Ok(())
    };

    let mut graph = StepGraph::new(plan.cuda_graphs, device);
    // The step a graph captures: static inputs in, the update with rates and count on the device.
    let graph_step = |optimizer: &mut Optimizer, x: &Tensor, y: &Tensor, epoch: u32| -> Result<(), String> {
        let loss = autocast(plan.precision, device, || objective.loss(&net.forward_t(x, true), y, epoch));
        optimizer.zero_grad();
        loss.backward();
        optimizer.graph_step()
    };
    while epoch < plan.epochs {
        graph.new_epoch();
        let started = Instant::now();
        super::gpu_memory::reset_peak(device);
        let mut examples = 0i64;
        let mut lr = plan.base_lr;
        for (i, batch) in data.train_batches(epoch as u64, start_batch).enumerate() {
            let b = start_batch + i as u64;
            if stop.is_raised() {
                save(vs, optimizer, epoch, b, step)?;
                return Ok(Outcome::Stopped { epochs_done: epoch, batches_done: b });
            }
            tch::manual_seed(batch_seed(plan.seed, epoch, b));
            lr = schedule.lr(plan.base_lr, epoch, b, per_epoch);
            let x = batch.inputs.to_device(device);
            let x = if plan.channels_last { crate::models::to_channels_last_tensor(&x) } else { x };
            let y = batch.labels.to_device(device);
            let replayed = graph.eager_because().is_none() && {
                let weight_decay = optimizer.config().weight_decay;
                optimizer.set_graph_rates(&[lr], &[weight_decay]).map_err(graph_error)?;
                graph.replay(&x, &y, |x, y| graph_step(optimizer, x, y, epoch)).map_err(graph_error)?
            };
            if replayed {
                optimizer.count_step();
            } else {
                let loss = autocast(plan.precision, device, || objective.loss(&net.forward_t(&x, true), &y, epoch));
                optimizer.zero_grad();
                loss.backward();
                optimizer.step(lr);
                graph.capture_after(&x, &y, |x, y| graph_step(optimizer, x, y, epoch));
            }
            step += 1;
            examples += y.size()[0];
        }
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        let seconds = started.elapsed().as_secs_f64();
        start_batch = 0;
        epoch += 1;

        if epoch % plan.eval_every.max(1) == 0 || epoch == plan.epochs {
            let on = super::EvalOn { device, precision: plan.precision, graphs: plan.cuda_graphs };
            let mut metrics = objective.evaluate(net, data, on).map_err(graph_error)?;
            metrics.insert("lr".into(), lr);
            metrics.insert("epoch_seconds".into(), seconds);
            metrics.insert("samples_per_second".into(), examples as f64 / seconds.max(1e-9));
            if let Some(peak) = super::gpu_memory::peak_bytes(device) {
                metrics.insert("gpu_mem_peak_bytes".into(), peak);
            }
            sink(EpochRecord { epoch, step: Some(step as i64), metrics })?;
        }
        let periodic = plan.checkpoint_every.is_some_and(|n| epoch % n.max(1) == 0) && epoch < plan.epochs;
        if periodic || (plan.checkpoint_at_end && epoch == plan.epochs) {
            save(vs, optimizer, epoch, 0, step)?;
        }
    }
    Ok(Outcome::Finished)
}

pub(super) fn graph_error(why: String) -> TrialError {
    TrialError::Other(anyhow::anyhow!("CUDA graph: {why}"))
}

/// libtorch's generator state before batch `b` of `epoch`: dropout masks depend on nothing else.
pub(super) fn batch_seed(seed: u64, epoch: u32, b: u64) -> i64 {
    (mix(mix(seed, epoch as u64), b) >> 1) as i64
}
