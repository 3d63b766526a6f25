//! `dispatch`: end to end with real processes. K in-process agents (`sweep_agent::run`, S slots
//! each) run N tiny `command` trials; the figure is trials per second from `SubmitSweep` until
//! every trial has succeeded, then trials.parquet is checked to hold N succeeded rows.

use crate::harness::{self, per_second, Bench};
use crate::report::Table;
use clap::Args;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use sweep_agent::{AgentConfig, TrialRunner};

#[derive(Args, Debug, Clone)]
pub struct DispatchArgs {
    /// Trials in the dispatch sweep.
    #[arg(long = "trials", env = "SWEEP_BENCH_TRIALS", default_value_t = 500)]
    pub trials: u32,
    /// In-process agents.
    #[arg(long = "agents", env = "SWEEP_BENCH_AGENTS", default_value_t = 2)]
    pub agents: u32,
    /// Slots (trials at once) per agent.
    #[arg(long = "slots", env = "SWEEP_BENCH_SLOTS", default_value_t = 4)]
    pub slots: u32,
    /// Agents' poll interval when no trial is pending, in milliseconds.
    #[arg(long = "poll-ms", env = "SWEEP_BENCH_POLL_MS", default_value_t = 50)]
    pub poll_ms: u64,
}

pub struct DispatchResult {
    pub trials_per_s: f64,
    pub table: Table,
}

pub async fn run(args: &DispatchArgs, tmp_root: Option<&std::path::Path>) -> anyhow::Result<DispatchResult> {
    let bench = Bench::start(tmp_root, Duration::from_secs(1)).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut agents = Vec::new();
    for i in 0..args.agents {
        let config = AgentConfig {
            coordinator: sweep_agent::config::Remote::plain(bench.url.clone()),
            slots: Some(args.slots),
            gpus: Some(Vec::new()),
            work_dir: bench.dir.path().join(format!("agent-{i}")),
            checkpoint_root: None,
            only_sweep: None,
            name: Some(format!("bench-{i}")),
            poll_interval: Duration::from_millis(args.poll_ms),
            lease_ahead: None,
            device: "auto".into(),
            stop_grace: Duration::from_secs(1),
            mps: sweep_agent::mps::MpsMode::Off,
        };
        // Only built-in workloads use the runner; these trials are all `command`.
        let runner = TrialRunner { program: PathBuf::from("/bin/false"), args: Vec::new(), cpu_threads: 0 };
        let mut stopped = stopped.clone();
        agents.push(tokio::spawn(async move {
            sweep_agent::run(config, runner, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
        }));
    }

    let mut sweeps = bench.sweeps().await?;
    let started = Instant::now();
    let sweep = harness::submit(&mut sweeps, "bench-dispatch", args.trials, bench.dir.path()).await?;
    let counts = harness::wait_done(&mut sweeps, &sweep).await?;
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    for a in agents {
        a.await??;
    }
    anyhow::ensure!(counts.succeeded == args.trials, "expected {} succeeded trials, got {counts:?}", args.trials);

    let flush_started = Instant::now();
    bench.coordinator.flush().await?;
    let flush = flush_started.elapsed();
    let dir = bench.sweep_dir(&sweep);
    let rows = sweep_coordinator::results::read_trials_table(&dir.join(sweep_coordinator::results::TRIALS_FILE))?;
    let succeeded = rows.iter().filter(|r| r.status == "succeeded").count();
    anyhow::ensure!(
        rows.len() == args.trials as usize && succeeded == rows.len(),
        "trials.parquet: expected {} succeeded rows, found {} rows ({succeeded} succeeded)",
        args.trials,
        rows.len()
    );
    let metric_rows = sweep_coordinator::results::read_metrics(&dir)?.len();
    anyhow::ensure!(
        metric_rows == args.trials as usize,
        "metrics: expected one row per trial ({}), found {metric_rows}",
        args.trials
    );
    bench.shutdown().await?;

    let trials_per_s = per_second(args.trials as u64, elapsed);
    let mut table = Table::new("dispatch: real agents running tiny `command` trials (submit -> all succeeded)");
    table.row("trials (N)", args.trials.to_string());
    table.row("agents x slots (K x S)", format!("{} x {}", args.agents, args.slots));
    table.row("agent poll interval", format!("{} ms", args.poll_ms));
    table.row("wall time", format!("{:.3} s", elapsed.as_secs_f64()));
    table.row("trials/s", format!("{trials_per_s:.1}"));
    table.row("flush after the run", format!("{:.1} ms", flush.as_secs_f64() * 1e3));
    table.row("check", format!("trials.parquet has {} succeeded rows, metrics {metric_rows} rows", succeeded));
    Ok(DispatchResult { trials_per_s, table })
}
