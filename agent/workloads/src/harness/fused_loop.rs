//! A fused group (`models::fused`) in the epoch driver: G trials of one architecture and width
//! trained as one network. Each member trains on its own batches (its own data order,
//! augmentation and labels) with its own learning rate and weight decay, and is reported as its
//! own trial. A member whose training loss turns non-finite is dropped: its last record is
//! reported, it no longer shapes the loss, and the others go on.
//!
//! Each member checkpoints into its own folder in the format of a lone trial
//! ([`super::MemberState`]): every `checkpoint_every` epochs and when stopped (SIGTERM), after
//! which the loop ends with `TrialError::Interrupted`.

use super::epochs::{self, EpochDone, Flow, Trainee};
use super::{autocast, fused_batches, Batch, GroupObjective, MemberState, Plan, Position, TrainData};
use crate::error::TrialError;
use crate::optim::{LrSchedule, Optimizer};
use sweep_spec::EpochRecord;
use tch::nn::{ModuleT, VarStore};
use tch::{Kind, Tensor};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberOutcome {
    Finished,
    /// The training loss of this epoch (counted from 1) was not finite.
    Diverged {
        epoch: u32,
    },
}

/// A fused group as the loop trains it: the members stand at `start` and their lone copies are
/// installed in the network.
pub struct Group<'a> {
    pub net: &'a dyn ModuleT,
    pub vars: &'a VarStore,
    pub optimizer: &'a mut Optimizer,
    pub schedule: &'a LrSchedule,
    pub members: Vec<Member<'a>>,
    pub objective: &'a dyn GroupObjective,
    pub start: Position,
}

/// Trains `group` to the plan's last epoch; each member's outcome, in the members' order. A stop
/// (SIGTERM) checkpoints every member still in the group and ends with [`TrialError::Interrupted`].
pub fn train_fused(group: Group<'_>, plan: &Plan) -> Result<Vec<MemberOutcome>, TrialError> {
    let per_epoch = group.members.first().map_or(0, |m| m.data.batches_per_epoch());
    if group.members.iter().any(|m| m.data.batches_per_epoch() != per_epoch) {
        return Err(TrialError::bad_config("fused members must have the same training-set and batch sizes"));
    }
    let g = group.members.len();
    let start = group.start;
    let mut fused = Fused {
        per_epoch,
        weight_decay: group.members.iter().map(|m| m.weight_decay).collect(),
        lrs: vec![0.0; g],
        outcome: vec![MemberOutcome::Finished; g],
        live: (0..g).collect(),
        // Both are set at the start of each epoch (`begin_epoch`).
        live_index: Tensor::new(),
        loss_sum: Tensor::new(),
        group,
    };
    epochs::drive(&mut fused, plan, start)?;
    Ok(fused.outcome)
}

struct Fused<'a> {
    group: Group<'a>,
    /// Batches per epoch, the same for every member.
    per_epoch: u64,
    weight_decay: Vec<f64>,
    /// Each member's rate at the batch at hand.
    lrs: Vec<f64>,
    outcome: Vec<MemberOutcome>,
    /// The members still in the group, and the same on the device.
    live: Vec<usize>,
    live_index: Tensor,
    /// Each member's training losses summed over the epoch, on the device: read once an epoch.
    loss_sum: Tensor,
}

impl<'a> Trainee<'a> for Fused<'a> {
    fn batches(&self, epoch: u32, start: u64) -> Box<dyn Iterator<Item = Batch> + 'a> {
        let passes = self
            .group
            .members
            .iter()
            .map(|m| {
                let data: &'a dyn TrainData = m.data;
                data.train_batches(epoch as u64, start)
            })
            .collect();
        Box::new(fused_batches(passes))
    }

    fn batches_per_epoch(&self) -> u64 {
        self.per_epoch
    }

    fn begin_epoch(&mut self, _epoch: u32, _fresh: bool, plan: &Plan) {
        let live: Vec<i64> = self.live.iter().map(|&i| i as i64).collect();
        self.live_index = Tensor::from_slice(&live).to_device(plan.device);
        self.loss_sum = Tensor::zeros([self.group.members.len() as i64], (Kind::Double, plan.device));
        self.lrs.iter_mut().for_each(|lr| *lr = 0.0);
    }

    fn set_rates(&mut self, epoch: u32, b: u64, per_epoch: u64, graphs: bool) -> Result<(), TrialError> {
        for (lr, m) in self.lrs.iter_mut().zip(&self.group.members) {
            *lr = self.group.schedule.lr(m.base_lr, epoch, b, per_epoch);
        }
        if graphs {
            self.group.optimizer.set_graph_rates(&self.lrs, &self.weight_decay).map_err(epochs::graph_error)?;
        }
        Ok(())
    }

    /// Each member's mean loss; their sum gives each member exactly its own gradient.
    fn loss(&self, x: &Tensor, y: &Tensor, epoch: u32, plan: &Plan) -> Tensor {
        let losses = autocast(plan.precision, plan.device, || {
            self.group.objective.member_losses(&self.group.net.forward_t(x, true), y, epoch)
        });
        let _ = self.loss_sum.shallow_clone().f_add_(&losses.detach().to_kind(Kind::Double));
        losses.index_select(0, &self.live_index).sum(Kind::Float)
    }

    fn optimizer(&mut self) -> &mut Optimizer {
        self.group.optimizer
    }

    fn step(&mut self) -> Result<(), TrialError> {
        self.group.optimizer.step_members(&self.lrs, &self.weight_decay).map_err(TrialError::bad_config)
    }

    fn end_epoch(&mut self, done: &EpochDone, due: bool, plan: &Plan) -> Result<Flow, TrialError> {
        // One read per epoch: a member whose losses summed to a non-finite number diverged.
        let sums = Vec::<f64>::try_from(&self.loss_sum).unwrap_or_default();
        let diverged: Vec<usize> = self.live.iter().copied().filter(|&i| !sums[i].is_finite()).collect();
        let members = &mut self.group.members;
        if due || !diverged.is_empty() {
            let on = super::EvalOn { device: plan.device, precision: plan.precision, graphs: plan.cuda_graphs };
            let datas: Vec<&dyn TrainData> = members.iter().map(|m| m.data).collect();
            let mut evaluated =
                self.group.objective.evaluate_members(self.group.net, &datas, on).map_err(epochs::graph_error)?;
            for &i in &self.live {
                let mut metrics = std::mem::take(&mut evaluated[i]);
                done.annotate(&mut metrics, self.lrs[i]);
                metrics.insert("fused_members".into(), self.live.len() as f64);
                let record = EpochRecord { epoch: done.epoch, step: Some(done.step as i64), metrics };
                (members[i].sink)(MemberReport::Epoch(record))?;
            }
        }
        for &i in &diverged {
            let why =
                format!("diverged in epoch {}: training loss {}; dropped from its fused group", done.epoch, sums[i]);
            eprintln!("fused member {i} {why}");
            (members[i].sink)(MemberReport::Dropped(why))?;
            self.outcome[i] = MemberOutcome::Diverged { epoch: done.epoch };
        }
        self.live.retain(|i| !diverged.contains(i));
        Ok(if self.live.is_empty() { Flow::Done } else { Flow::Continue })
    }

    /// Saves every live member's slice where the loop stands.
    fn save(&mut self, at: Position, plan: &Plan) -> Result<(), TrialError> {
        let meta = at.meta(&plan.workload);
        for &i in &self.live {
            if let Some(state) = self.group.members[i].state.as_mut() {
                state.save(self.group.vars, self.group.optimizer, i as i64, &meta)?;
            }
        }
        Ok(())
    }
}
