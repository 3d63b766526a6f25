//! Built-in libtorch workloads and the entry point of a trial process.
//!
//! A trial process reads its `TrialSpec`, runs one workload, and speaks the metric protocol of
//! `sweep_spec::report` on stdout: one `EpochRecord` per line and nothing else (logs go to stderr).

pub use tch;

pub mod checkpoint;
mod context;
pub mod data;
mod device;
mod dispatch;
mod double_descent;
mod edge_of_stability;
mod error;
mod fused_group;
pub mod harness;
mod image_data;
mod long_tail;
mod mlp;
pub mod models;
mod multimodal;
#[cfg(test)]
mod numeric_checks;
pub mod optim;
mod optimizers;
mod params;
mod process;
pub mod random_features;
mod rng;
mod seq2seq;
mod sparsity;

pub use device::DeviceChoice;
pub use dispatch::check_params;
pub use error::{panic_message, TrialError};
pub use process::{run_group_main, run_trial_main, GROUP_CHECKPOINT_DIRS};

#[cfg(test)]
pub(crate) use context::torch_rng_lock;
pub(crate) use context::TrialContext;
pub(crate) use dispatch::run_workload;

use sweep_spec::EpochRecord;

/// Where a workload hands its records: stdout in a trial process, a vector in tests.
pub(crate) type Sink<'a> = dyn FnMut(EpochRecord) -> anyhow::Result<()> + 'a;
