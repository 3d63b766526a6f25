//! `sweep local FILE`: the whole system in one process. A real coordinator serves gRPC on a free
//! loopback port and real agents lease from it, so a local run takes the same path as a cluster
//! run and writes the same files.

use crate::commands::{results, submit};
use crate::exit::Ended;
use crate::{client, progress, table};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use sweep_agent::{AgentConfig, TrialRunner};
use sweep_coordinator::CoordinatorConfig;
use sweep_spec::duration::parse_duration;

#[derive(Args, Debug)]
pub struct LocalArgs {
    /// The sweep file.
    file: PathBuf,
    /// Agents to run [default: 2 on the CPU, one per GPU when there are GPUs].
    #[arg(long, env = "SWEEP_LOCAL_AGENTS")]
    agents: Option<u32>,
    /// Folder for results: this sweep's files go to `<DIR>/<sweep>/` (trials.parquet, metrics/).
    /// Only the sweep being run is written, whatever other sweeps the state folder holds.
    #[arg(long, env = "SWEEP_RESULTS", default_value = "results")]
    results: PathBuf,
    /// Folder for the store, agent work folders and checkpoints.
    #[arg(long, env = "SWEEP_STATE", default_value = ".sweep")]
    state: PathBuf,
    /// Lease lifetime; after an interrupted run, unfinished trials are retried once it passes.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    lease_ttl: Duration,
    /// Output format of the final results.
    #[arg(long, value_enum, default_value = "table")]
    format: table::Format,
    /// Address of the live dashboard while the sweep runs (the coordinator's HTTP port, with
    /// /metrics); port 0 picks a free one. Loopback only unless you say otherwise: it has no token.
    #[arg(long, env = "SWEEP_UI_LISTEN", default_value = "127.0.0.1:0")]
    ui_listen: String,
    /// Run again with a changed retry policy or trial definition: replace the stored sweep's (its
    /// trials keep their state and results; see `sweep submit --force`).
    #[arg(long)]
    force: bool,
}

pub async fn run(args: LocalArgs) -> anyhow::Result<Ended> {
    let (file, trials) = super::validate::load(&args.file)?;
    let gpus = sweep_agent::gpus::detect();
    if let Some(t) = trials.iter().find(|t| t.resources.gpus as usize > gpus.len()) {
        anyhow::bail!(
            "{}: key `resources.gpus`: trial {} needs {} GPUs but this machine has {}; set resources.gpus = 0 to run on the CPU",
            file.path.display(),
            t.id,
            t.resources.gpus,
            gpus.len()
        );
    }

    let figures = super::plot::dashboard_figures(
        args.results.clone(),
        args.state.join("agents").join("checkpoints"),
        PathBuf::from(crate::plot::font::DEFAULT_FONT),
    );
    let config = CoordinatorConfig {
        lease_ttl: args.lease_ttl,
        flush_interval: Duration::from_secs(1),
        results_only_for: Some(file.name.clone()),
        http_listen: Some(args.ui_listen.clone()),
        ..CoordinatorConfig::loopback(args.state.clone(), args.results.clone())
    };
    let coordinator = sweep_coordinator::start_with(&config, Some(figures)).await?;
    let url = format!("http://{}", coordinator.local_addr);

    // Loopback only and started just now: no token or TLS.
    let mut c = client::connect(&client::Remote::plain(url.clone())).await?;
    let req = sweep_proto::v1::SubmitSweepRequest { force: args.force, ..submit::request(&file, &trials)? };
    let submitted = submit::send(&mut c, req).await?;
    eprintln!(
        "sweep {}: {} trials ({} new), state in {}, results in {}",
        submitted.sweep_id,
        submitted.trials_total,
        submitted.trials_added,
        args.state.display(),
        args.results.display()
    );
    if let Some(http) = coordinator.http_addr {
        eprintln!("dashboard: http://{http}/ui/#/sweep/{} (while it runs)", submitted.sweep_id);
    }

    let n_agents = args.agents.unwrap_or(if gpus.is_empty() { 2 } else { gpus.len() as u32 }).max(1);
    let (stop_agents, agents_stopped) = tokio::sync::watch::channel(false);
    let mut agents = tokio::task::JoinSet::new();
    for i in 0..n_agents {
        // GPUs are dealt out round-robin so no two agents share one.
        let share: Vec<String> = gpus.iter().skip(i as usize).step_by(n_agents as usize).cloned().collect();
        let slots = share.len().max(1) as u32;
        let config = AgentConfig {
            coordinator: sweep_agent::config::Remote::plain(url.clone()),
            slots: Some(slots),
            gpus: Some(share),
            work_dir: args.state.join("agents"),
            checkpoint_root: None,
            // Earlier sweeps left unfinished in the same state folder wait for their own run.
            only_sweep: Some(submitted.sweep_id.clone()),
            name: Some(format!("local-{i}")),
            poll_interval: Duration::from_millis(250),
            lease_ahead: None,
            device: "auto".into(),
            stop_grace: Duration::from_secs(10),
            mps: sweep_agent::mps::MpsMode::Auto,
        };
        let mut stopped = agents_stopped.clone();
        // The agents share this machine: each trial gets its part of the cores across all of them.
        let runner = TrialRunner::current_exe()?.sharing_cores(n_agents * slots);
        agents.spawn(async move {
            let until_stopped = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            sweep_agent::run(config, runner, until_stopped).await
        });
    }

    // An agent that stops on its own (it could not start, say) ends the run with its reason
    // rather than leaving the sweep waiting for it.
    let outcome = tokio::select! {
        r = progress::follow(&mut c, &submitted.sweep_id, progress::Lines::Stderr) => r.map(Some),
        _ = tokio::signal::ctrl_c() => Ok(None),
        Some(ended) = agents.join_next() => Err(match ended.context("agent task") {
            Ok(Ok(())) => anyhow::anyhow!("an agent stopped before the sweep ended"),
            Ok(Err(e)) | Err(e) => e.context("an agent stopped before the sweep ended"),
        }),
    };
    let _ = stop_agents.send(true);
    while let Some(ended) = agents.join_next().await {
        ended.context("agent task")??;
    }
    coordinator.flush().await?;
    coordinator.shutdown().await?;
    let Some(last) = outcome? else {
        eprintln!("interrupted: progress is kept in {}; run the same command again to go on", args.state.display());
        return Ok(Ended::Interrupted);
    };

    if last.state == "paused" {
        anyhow::bail!(
            "sweep {} is paused: {}; last error: {}. Fix the sweep file and run `sweep local --force` with it (state in {})",
            submitted.sweep_id,
            last.pause_reason,
            last.pause_error.trim(),
            args.state.display()
        );
    }
    let rows = results::from_files(&args.results, &submitted.sweep_id)?;
    print!("{}", table::render(&rows, args.format));
    let counts = last.counts.unwrap_or_default();
    eprintln!(
        "{}: {}. Parquet: {}/{}/trials.parquet and metrics/part-*.parquet",
        submitted.sweep_id,
        crate::commands::status::counts_line(&counts),
        args.results.display(),
        submitted.sweep_id
    );
    eprintln!(
        "look at it in the dashboard: sweep ui --results {}, then open http://127.0.0.1:8765/ui/#/sweep/{}",
        args.results.display(),
        submitted.sweep_id
    );
    if counts.failed > 0 {
        eprintln!(
            "see why with: sweep results {} --results {} --format json, and the logs under {}/agents/trials/",
            submitted.sweep_id,
            args.results.display(),
            args.state.display()
        );
    }
    Ok(Ended::of_sweep(&last))
}
