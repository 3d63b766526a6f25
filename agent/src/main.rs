//! `sweep-agent`: one per node (or per Slurm task / Kubernetes pod).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use sweep_agent::{AgentConfig, TrialRunner};

#[derive(Parser)]
#[command(
    name = "sweep-agent",
    version,
    about = "Lease trials from a sweep coordinator and run them on this node's GPUs or CPU.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: AgentConfig,
}

#[derive(Subcommand)]
enum Command {
    /// Run one built-in trial in this process (the agent starts this itself).
    RunTrial {
        /// The trial's spec.json, written by the agent. Several: train them as one fused group
        /// (same double_descent or long_tail model and data; seed, learning rate, weight decay and
        /// label noise may differ), each record tagged with its trial id.
        #[arg(long, required = true)]
        spec: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::RunTrial { spec }) = cli.command {
        std::process::exit(sweep_agent::run_trial(&spec));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let runner = TrialRunner::current_exe()?;
    runtime.block_on(async {
        // Inside the runtime: the OTLP exporter (when configured) runs on it.
        let _telemetry = sweep_telemetry::init("sweep-agent", "info");
        // Trials run as this user, and a process may read the environment and memory of another
        // process of its user through /proc unless that one is marked undumpable (as ssh-agent is).
        // The agent's token must stay out of the trials' reach.
        // SAFETY: prctl with these arguments only sets a flag of this process.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "could not mark the agent undumpable: trials may read its environment through /proc");
        }
        sweep_agent::run(cli.config, runner, shutdown_signal()).await
    })
}

/// SIGTERM (Kubernetes, preemption), SIGUSR1 (Slurm's warning before a time limit) and Ctrl-C all
/// drain: trials checkpoint, leases go back, the agent exits 0.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut usr1 = signal(SignalKind::user_defined1()).expect("install SIGUSR1 handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
        _ = usr1.recv() => {},
    }
}
