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
