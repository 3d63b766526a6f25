//! The sweep agent: runs trials on one node. It leases work from the coordinator, runs each trial
//! as a supervised child process with its own GPUs, relays per-epoch metrics and heartbeats.
//! It knows nothing of SQLite or Parquet; trials' libtorch code lives in `sweep-workloads`.

pub mod agent;
mod checkpoint_root;
pub mod client;
pub mod config;
pub mod gpus;
mod heartbeat;
mod held;
mod kept;
pub mod launch;
pub mod launch_state;
mod leases;
pub mod mps;
mod orphans;
pub mod recover;
mod relay;
pub mod reporter;
pub mod session;
pub mod supervise;

pub use agent::run;
pub use config::{AgentConfig, TrialRunner};

/// Entry point of the `run-trial` mode shared by `sweep-agent` and `sweep`: runs one built-in
/// trial in this process, or with several specs one fused group (`sweep_spec::fusion`), and
/// returns its exit code.
pub fn run_trial(specs: &[std::path::PathBuf]) -> i32 {
    match specs {
        [one] => sweep_workloads::run_trial_main(one),
        many => sweep_workloads::run_group_main(many),
    }
}
