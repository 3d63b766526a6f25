//! What one run of the training loop does, the same for a lone trial and a fused group, and where
//! in training a run stands.

use super::{GraphMode, Precision, StopFlag};
use crate::checkpoint::Meta;
use crate::TrialContext;
use tch::Device;

/// What one run of the loop does; the members of a fused group share it.
#[derive(Clone)]
pub struct Plan {
    /// Recorded in checkpoints, so a checkpoint of another workload is never loaded.
    pub workload: String,
    pub epochs: u32,
    /// Seeds libtorch's generator before each batch (dropout).
    pub seed: u64,
    /// Evaluate and report every this many epochs, and always after the last.
    pub eval_every: u32,
    pub precision: Precision,
    /// Feed inputs in channels-last layout (the model's weights must be converted too).
    pub channels_last: bool,
    /// Also checkpoint after every this many epochs (besides on SIGTERM).
    pub checkpoint_every: Option<u32>,
    /// Also checkpoint after the last epoch, for a later stage that starts from this one's model.
    pub checkpoint_at_end: bool,
    /// Capture the training step as a CUDA graph (on CUDA devices).
    pub cuda_graphs: GraphMode,
    pub device: Device,
    /// Raised by SIGTERM: checkpoint at the next batch boundary and stop.
    pub stop: StopFlag,
    /// Checkpoint after this epoch and end with [`crate::TrialError::Paused`]: the rung a
    /// promoting schedule's lease stops at (`SWEEP_STOP_AFTER_EPOCH`). None: train to the end.
    pub stop_after: Option<u32>,
}

impl Plan {
    /// A trial's plan of `epochs` epochs: its context's device, stop flag, checkpoint cadence and
    /// graph switch; evaluated every epoch, in fp32 and the default layout, no checkpoint at the
    /// end. Workloads change the fields that differ.
    pub(crate) fn new(workload: &str, ctx: &TrialContext, epochs: u32, seed: u64) -> Plan {
        Plan {
            workload: workload.to_string(),
            epochs,
            seed,
            eval_every: 1,
            precision: Precision::Fp32,
            channels_last: false,
            checkpoint_every: ctx.checkpoint_every,
            checkpoint_at_end: false,
            cuda_graphs: ctx.cuda_graphs,
            device: ctx.device,
            stop: ctx.stop.clone(),
            stop_after: ctx.stop_after,
        }
    }
}

/// Where a run of `total` units (epochs, or steps where each step is a record) that has done
/// `done` must checkpoint: every `checkpoint_every`, and at the rung `stop_after`, where it then
/// pauses; never after the last unit (the trial is over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub save: bool,
    pub pause: bool,
}

pub fn due_after(done: u32, total: u32, checkpoint_every: Option<u32>, stop_after: Option<u32>) -> Due {
    let unfinished = done < total;
    let periodic = checkpoint_every.is_some_and(|n| done.is_multiple_of(n.max(1))) && unfinished;
    let pause = stop_after == Some(done) && unfinished;
    Due { save: periodic || pause, pause }
}

/// The rung a run resumed at `first` of `total` units has already passed, if any: it ends at once,
/// paused there (a lease for an earlier rung than the checkpoint reached).
pub fn paused_before(first: u32, total: u32, stop_after: Option<u32>) -> Option<u32> {
    stop_after.filter(|last| *last < total && first >= *last).map(|last| last.max(first))
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

    /// The checkpoint record of this position in a run of `workload`.
    pub fn meta(self, workload: &str) -> Meta {
        Meta {
            epochs_done: self.epoch,
            batches_done: self.batch,
            global_step: self.step,
            workload: workload.to_string(),
            extra: serde_json::Value::Null,
        }
    }
}
