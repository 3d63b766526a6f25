//! The one training loop every study uses: seeded batches, optimizer steps with a scheduled
//! learning rate, evaluation passes, per-epoch metric records, and checkpoints every N epochs and
//! on SIGTERM. A lone trial and a fused group run through the same epoch driver (`epochs`); a
//! trial resumed from its checkpoint continues exactly where it stopped: data order, augmentation
//! and dropout depend only on (seed, epoch, batch), never on history.

mod cuda_graph;
mod epochs;
mod eval;
mod fused_checkpoint;
mod fused_loop;
pub mod gpu_memory;
mod objective;
mod plan;
mod precision;
mod source;
mod stop;
mod train_loop;

pub use cuda_graph::{cuda_devices, GraphMode, StepGraph};
pub use eval::{
    evaluate, evaluate_members, for_each_batch, member_cross_entropy, summed_cross_entropy, EvalOn, Evaluation,
};
pub use fused_checkpoint::MemberState;
pub use fused_loop::{train_fused, Group, Member, MemberOutcome, MemberReport, MemberSink};
pub use objective::{error_metrics, ErrorRates, GroupObjective, Objective};
pub use plan::{due_after, paused_before, Due, Plan, Position};
pub use precision::{autocast, Precision};
pub use source::{fused_batches, Batch, TrainData};
pub use stop::StopFlag;
pub use train_loop::{resume, train, train_with, BetweenEpochs, Trial};
