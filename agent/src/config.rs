//! The agent's settings: flags with `SWEEP_*` environment fallbacks and defaults for one machine.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use sweep_spec::duration::parse_duration;

#[derive(Args, Debug, Clone)]
pub struct AgentConfig {
    /// The coordinator to pull trials from, and the agent's credentials for it.
    #[command(flatten)]
    pub coordinator: Remote,
    /// Trials to run at once [default: one per GPU, or 1 without GPUs].
    #[arg(long, env = "SWEEP_SLOTS")]
    pub slots: Option<u32>,
    /// GPU indices this agent may use, e.g. `0,1,2,3` [default: every GPU nvidia-smi lists].
    /// Each trial sees only its share through CUDA_VISIBLE_DEVICES.
    #[arg(long, env = "SWEEP_GPUS", value_delimiter = ',')]
    pub gpus: Option<Vec<String>>,
    /// Folder for trial logs and per-attempt files.
    #[arg(long, env = "SWEEP_WORK_DIR", default_value = ".sweep/agent")]
    pub work_dir: PathBuf,
    /// Folder for checkpoints, `<root>/<sweep>/<trial>/`; put it on a shared filesystem so a
    /// retry on another node resumes [default: <work-dir>/checkpoints].
    #[arg(long, env = "SWEEP_CHECKPOINT_ROOT")]
    pub checkpoint_root: Option<PathBuf>,
    /// Lease only trials of this sweep: an agent dedicated to one sweep, as `sweep local` starts
    /// them [default: any sweep, oldest first].
    #[arg(long, env = "SWEEP_ONLY_SWEEP", value_name = "SWEEP")]
    pub only_sweep: Option<String>,
    /// Name the agent registers under, shown in `sweep status` [default: the host name]. When an
    /// earlier registration holds the name (this agent before a restart, or another agent given
    /// the same name), the coordinator adds a number: `gpu-node-3`.
    #[arg(long, env = "SWEEP_AGENT_NAME")]
    pub name: Option<String>,
    /// How long to wait before asking again when no trial is pending.
    #[arg(long, env = "SWEEP_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Leases to hold ahead of free slots while this agent's trials are short (the last one ran
    /// under 10 s and exited 0): when a trial ends, the next starts at once instead of after a
    /// round trip to the coordinator. Held leases are heartbeated like running ones and handed
    /// back unstarted when the agent drains. Once a trial has run 10 s or more, or failed, no more
    /// are taken ahead [default: the number of slots; 0: lease only for free slots].
    #[arg(long, env = "SWEEP_LEASE_AHEAD")]
    pub lease_ahead: Option<u32>,
    /// Where built-in trials compute: `auto` (CUDA when the trial has a GPU, else the CPU), `cpu`
    /// or `cuda`.
    #[arg(long, env = "SWEEP_DEVICE", default_value = "auto", value_parser = ["auto", "cpu", "cuda"])]
    pub device: String,
    /// How long a stopped trial gets between SIGTERM and SIGKILL (it checkpoints meanwhile).
    #[arg(long, env = "SWEEP_STOP_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub stop_grace: Duration,
    /// CUDA MPS for trials packed onto a shared GPU (`gpu_share`): `auto` uses the node's daemon
    /// or starts one with nvidia-cuda-mps-control where it is installed, `on` refuses to start
    /// without it, `off` lets packed trials time-share the GPU.
    #[arg(long, env = "SWEEP_MPS", value_enum, default_value = "auto")]
    pub mps: crate::mps::MpsMode,
}

/// Where the coordinator is and how the agent proves who it is: an agent token, and under TLS the
/// CA to trust and (for mutual TLS) the agent's own certificate. The same flags as `sweep`'s.
pub type Remote = sweep_proto::remote::Credentials;

impl AgentConfig {
    pub fn checkpoint_root(&self) -> PathBuf {
        self.checkpoint_root.clone().unwrap_or_else(|| self.work_dir.join("checkpoints"))
    }
}

/// How the agent starts a built-in (libtorch) workload: a program and the arguments before
/// `--spec FILE`, normally this very binary with `run-trial`.
#[derive(Debug, Clone)]
pub struct TrialRunner {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// CPU threads each trial may use (`OMP_NUM_THREADS`, unless the agent's environment sets
    /// it); 0 leaves the choice to the trial's libraries.
    pub cpu_threads: usize,
}

impl TrialRunner {
    /// The running executable's own `run-trial` mode.
    pub fn current_exe() -> std::io::Result<TrialRunner> {
        Ok(TrialRunner { program: std::env::current_exe()?, args: vec!["run-trial".to_string()], cpu_threads: 0 })
    }

    /// The machine's cores shared among `slots` trials, unless a share is already set (by
    /// `sweep local`, whose agents share one machine). Without a share, every trial's thread pool
    /// spans all cores, and trials running side by side spin against each other: on two cores,
    /// six small libtorch trials that take 1.4 s each alone took 400 s run together.
    pub fn sharing_cores(mut self, slots: u32) -> TrialRunner {
        if self.cpu_threads == 0 {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            self.cpu_threads = (cores / slots.max(1) as usize).max(1);
        }
        self
    }
}
