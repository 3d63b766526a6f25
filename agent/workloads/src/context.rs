//! Where and how a trial runs, apart from its parameters: its device, checkpoint folder and
//! cadence, stop flag and CUDA graph switch, read from the environment the agent sets.

use crate::{device, harness, TrialError};
use std::path::PathBuf;
use sweep_spec::TrialSpec;
use tch::Device;

/// Where and how a trial runs, apart from its parameters.
pub(crate) struct TrialContext {
    pub device: Device,
    /// The trial's checkpoint folder, the same for every attempt (`SWEEP_CHECKPOINT_DIR`).
    pub checkpoint_dir: Option<PathBuf>,
    /// Checkpoint after every this many epochs (`[retry] checkpoint_every_epochs`).
    pub checkpoint_every: Option<u32>,
    /// The last epoch this attempt trains (`SWEEP_STOP_AFTER_EPOCH`: a rung of a promoting
    /// schedule); None: to the end.
    pub stop_after: Option<u32>,
    /// Raised by SIGTERM/SIGUSR1: checkpoint and stop.
    pub stop: harness::StopFlag,
    /// Capture steps as CUDA graphs on CUDA devices (`[resources] cuda_graphs`, on by default).
    pub cuda_graphs: harness::GraphMode,
}

/// libtorch's generator is process-global: tests that seed it and then draw (initialisation,
/// dropout) hold this lock so that no other test draws in between.
#[cfg(test)]
pub(crate) fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

impl TrialContext {
    /// The device from `SWEEP_DEVICE`, the checkpoint folder from `SWEEP_CHECKPOINT_DIR`, a stop
    /// flag raised by SIGTERM/SIGUSR1, and the checkpoint cadence and CUDA graphs `spec` asks for.
    pub(crate) fn from_env(spec: &TrialSpec) -> Result<TrialContext, TrialError> {
        Ok(TrialContext {
            device: device::from_env()?,
            checkpoint_dir: std::env::var_os("SWEEP_CHECKPOINT_DIR").filter(|v| !v.is_empty()).map(PathBuf::from),
            checkpoint_every: spec.checkpoint_every_epochs,
            stop_after: stop_after_from_env()?,
            stop: harness::StopFlag::on_signals().map_err(anyhow::Error::from)?,
            cuda_graphs: match spec.resources.cuda_graphs {
                true => harness::GraphMode::On,
                false => harness::GraphMode::Off,
            },
        })
    }

    #[cfg(test)]
    pub(crate) fn cpu() -> TrialContext {
        TrialContext {
            device: Device::Cpu,
            checkpoint_dir: None,
            checkpoint_every: None,
            stop_after: None,
            stop: harness::StopFlag::default(),
            cuda_graphs: harness::GraphMode::Off,
        }
    }
}

/// `SWEEP_STOP_AFTER_EPOCH`, when the agent set it: a positive epoch.
fn stop_after_from_env() -> Result<Option<u32>, TrialError> {
    let name = sweep_spec::schedule::STOP_AFTER_EPOCH;
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => match v.parse::<u32>() {
            Ok(e) if e > 0 => Ok(Some(e)),
            _ => Err(TrialError::bad_config(format!("{name}: a positive epoch, got `{v}`"))),
        },
    }
}
