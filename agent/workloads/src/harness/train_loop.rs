//! A lone trial in the epoch driver: one network, one optimizer, one learning rate, its records
//! straight to the trial's sink, its checkpoint in the trial's folder.

use super::epochs::{self, EpochDone, Flow, Trainee};
use super::{autocast, Batch, Objective, Plan, Position, TrainData};
use crate::checkpoint;
use crate::error::TrialError;
use crate::optim::{LrSchedule, Optimizer};
use crate::Sink;
use std::path::{Path, PathBuf};
use sweep_spec::EpochRecord;
use tch::nn::{ModuleT, VarStore};
use tch::Tensor;

/// A lone trial as the loop trains it.
pub struct Trial<'a> {
    pub net: &'a dyn ModuleT,
    pub vars: &'a mut VarStore,
    pub optimizer: &'a mut Optimizer,
    pub schedule: &'a LrSchedule,
    pub base_lr: f64,
    pub data: &'a dyn TrainData,
    pub objective: &'a dyn Objective,
    /// Where its checkpoints go, and where it resumes from; none: it cannot resume.
    pub checkpoint_dir: Option<PathBuf>,
}

/// What a workload changes in its network between epochs, beyond the optimizer's updates: the
/// sparsity workload's pruning schedule. Whatever it changes must live in the var store or the
/// optimizer's state, so that a checkpoint holds it.
pub trait BetweenEpochs {
    /// Runs before epoch `epoch` (from 0) trains its first batch, and not again when a run resumes
    /// inside that epoch: the checkpoint taken there already holds its effect. It must be
    /// idempotent all the same: a stop that arrives before the first batch checkpoints at batch 0,
    /// and the resumed run calls it again.
    fn before_epoch(&mut self, epoch: u32, optimizer: &mut Optimizer);
}

/// Trains `trial` to the plan's last epoch, from its checkpoint if it has one, its records going to
/// `sink`. A stop (SIGTERM) checkpoints and ends with [`TrialError::Interrupted`].
pub fn train(trial: Trial<'_>, plan: &Plan, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    train_with(trial, plan, sink, None)
}

/// [`train`], with `between` run before each epoch.
pub fn train_with(
    trial: Trial<'_>,
    plan: &Plan,
    sink: &mut Sink<'_>,
    between: Option<&mut dyn BetweenEpochs>,
) -> Result<(), TrialError> {
    let start = resume(trial.checkpoint_dir.as_deref(), trial.vars, trial.optimizer, &plan.workload)?;
    let lr = trial.base_lr;
    epochs::drive(&mut Lone { trial, lr, sink, between }, plan, start)
}

struct Lone<'a, 's, 'k, 'b> {
    trial: Trial<'a>,
    /// The rate of the batch at hand.
    lr: f64,
    sink: &'s mut Sink<'k>,
    between: Option<&'b mut dyn BetweenEpochs>,
}

impl<'a> Trainee<'a> for Lone<'a, '_, '_, '_> {
    fn batches(&self, epoch: u32, start: u64) -> Box<dyn Iterator<Item = Batch> + 'a> {
        let data: &'a dyn TrainData = self.trial.data;
        data.train_batches(epoch as u64, start)
    }

    fn batches_per_epoch(&self) -> u64 {
        self.trial.data.batches_per_epoch()
    }

    fn begin_epoch(&mut self, epoch: u32, fresh: bool, _plan: &Plan) {
        self.lr = self.trial.base_lr;
        if let (true, Some(between)) = (fresh, self.between.as_deref_mut()) {
            between.before_epoch(epoch, self.trial.optimizer);
        }
    }

    fn set_rates(&mut self, epoch: u32, b: u64, per_epoch: u64, graphs: bool) -> Result<(), TrialError> {
        self.lr = self.trial.schedule.lr(self.trial.base_lr, epoch, b, per_epoch);
        if graphs {
            let weight_decay = self.trial.optimizer.config().weight_decay;
            self.trial.optimizer.set_graph_rates(&[self.lr], &[weight_decay]).map_err(epochs::graph_error)?;
        }
        Ok(())
    }

    fn loss(&self, x: &Tensor, y: &Tensor, epoch: u32, plan: &Plan) -> Tensor {
        autocast(plan.precision, plan.device, || {
            self.trial.objective.loss(&self.trial.net.forward_t(x, true), y, epoch)
        })
    }

    fn optimizer(&mut self) -> &mut Optimizer {
        self.trial.optimizer
    }

    fn step(&mut self) -> Result<(), TrialError> {
        self.trial.optimizer.step(self.lr);
        Ok(())
    }

    fn end_epoch(&mut self, done: &EpochDone, due: bool, plan: &Plan) -> Result<Flow, TrialError> {
        if due {
            let on = super::EvalOn { device: plan.device, precision: plan.precision, graphs: plan.cuda_graphs };
            let mut metrics =
                self.trial.objective.evaluate(self.trial.net, self.trial.data, on).map_err(epochs::graph_error)?;
            done.annotate(&mut metrics, self.lr);
            (self.sink)(EpochRecord { epoch: done.epoch, step: Some(done.step as i64), metrics })?;
        }
        Ok(Flow::Continue)
    }

    fn save(&mut self, at: Position, plan: &Plan) -> Result<(), TrialError> {
        if let Some(dir) = &self.trial.checkpoint_dir {
            checkpoint::save(dir, self.trial.vars, self.trial.optimizer, &at.meta(&plan.workload))?;
        }
        Ok(())
    }
}

/// Where a run of `workload` starts: the position of the checkpoint in `dir`, loaded into `vars`
/// and `optimizer`, or the beginning when there is none. A checkpoint of another workload is
/// refused, never loaded.
pub fn resume(
    dir: Option<&Path>,
    vars: &mut VarStore,
    optimizer: &mut Optimizer,
    workload: &str,
) -> Result<Position, TrialError> {
    let Some(dir) = dir else {
        return Ok(Position::default());
    };
    match checkpoint::load(dir, vars, optimizer)? {
        Some(meta) if meta.workload != workload => Err(TrialError::bad_config(format!(
            "{}: holds a checkpoint of workload `{}`, not `{workload}`",
            dir.display(),
            meta.workload,
        ))),
        Some(meta) => {
            eprintln!("resuming from {}: epoch {}, batch {}", dir.display(), meta.epochs_done, meta.batches_done);
            Ok(Position::of(&meta))
        }
        None => Ok(Position::default()),
    }
}
