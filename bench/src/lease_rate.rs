//! `lease-rate`: the coordinator's dispatch capacity with no processes. M simulated agents each
//! loop Lease(free_slots = B) -> per lease one ReportMetrics (one epoch) and Complete(exit 0),
//! concurrently, until all N trials are done; what remains is the store and the gRPC path. With
//! `--lease-fuse G` the trials lease in fused groups of up to G, as a `fuse = G` sweep's do.

use crate::harness::{self, per_second, Bench};
use crate::report::Table;
use clap::Args;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sweep_proto::v1 as pb;
use tokio::task::JoinSet;

#[derive(Args, Debug, Clone)]
pub struct LeaseRateArgs {
    /// Trials in the lease-rate sweep.
    #[arg(long = "lease-trials", env = "SWEEP_BENCH_LEASE_TRIALS", default_value_t = 2000)]
    pub lease_trials: u32,
    /// Simulated agents, each on its own connection.
    #[arg(long = "sim-agents", env = "SWEEP_BENCH_SIM_AGENTS", default_value_t = 8)]
    pub sim_agents: u32,
    /// Free slots each simulated agent asks for per Lease call.
    #[arg(long = "lease-batch", env = "SWEEP_BENCH_LEASE_BATCH", default_value_t = 4)]
    pub batch: u32,
    /// Fused group size of the lease-rate sweep (`[resources] fuse`): above 1, its trials are
    /// double-descent trials that the coordinator hands out in groups of up to this many, each
    /// group taking one slot.
    #[arg(long = "lease-fuse", env = "SWEEP_BENCH_LEASE_FUSE", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub fuse: u32,
}

pub struct LeaseRateResult {
    pub trials_per_s: f64,
    pub table: Table,
}

/// Calls made, for the commits-per-second figure (every call is one committed transaction).
#[derive(Default)]
pub(crate) struct Calls {
    lease: AtomicU64,
    report: AtomicU64,
    complete: AtomicU64,
}

pub async fn run(args: &LeaseRateArgs, tmp_root: Option<&std::path::Path>) -> anyhow::Result<LeaseRateResult> {
    let bench = Bench::start(tmp_root, Duration::from_secs(1)).await?;
    let mut sweeps = bench.sweeps().await?;
    let submit_started = Instant::now();
    let (name, n) = ("bench-lease-rate", args.lease_trials);
    let text =
        if args.fuse > 1 { harness::fused_sweep_text(name, n, args.fuse) } else { harness::tiny_sweep_text(name, n) };
    let sweep = harness::submit_text(&mut sweeps, name, text, n, bench.dir.path()).await?;
    let submit = submit_started.elapsed();

    let mut clients = Vec::new();
    for i in 0..args.sim_agents {
        let mut client = bench.agents().await?;
        let (id, secret) = harness::register(&mut client, &format!("sim-{i}"), args.batch).await?;
        clients.push((client, id, secret));
    }
    let calls = Arc::new(Calls::default());
    let started = Instant::now();
    let mut agents = JoinSet::new();
    for (client, id, secret) in clients {
        agents.spawn(simulated_agent(client, id, secret, args.batch, String::new(), calls.clone()));
    }
    let mut done = 0u64;
    while let Some(r) = agents.join_next().await {
        done += r??;
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(done == args.lease_trials as u64, "expected {} trials completed, got {done}", args.lease_trials);
    let summary = sweeps
        .get_sweep(pb::GetSweepRequest { sweep_id: sweep.clone(), ..Default::default() })
        .await?
        .into_inner()
        .summary
        .unwrap_or_default();
    let succeeded = summary.counts.unwrap_or_default().succeeded;
    anyhow::ensure!(
        succeeded == args.lease_trials,
        "expected {} succeeded trials, the coordinator says {succeeded}",
        args.lease_trials
    );
    bench.shutdown().await?;

    let (lease, report, complete) = (
        calls.lease.load(Ordering::Relaxed),
        calls.report.load(Ordering::Relaxed),
        calls.complete.load(Ordering::Relaxed),
    );
    let trials_per_s = per_second(done, elapsed);
    let mut table = Table::new("lease-rate: simulated agents, no processes (Lease -> ReportMetrics -> Complete)");
    table.row("trials (N)", args.lease_trials.to_string());
    table.row("simulated agents x lease batch (M x B)", format!("{} x {}", args.sim_agents, args.batch));
    if args.fuse > 1 {
        table.row("fused groups of up to (one slot each)", args.fuse.to_string());
    }
    table.row("SubmitSweep of N trials", format!("{:.1} ms", submit.as_secs_f64() * 1e3));
    table.row("wall time (first Lease -> last Complete)", format!("{:.3} s", elapsed.as_secs_f64()));
    table.row("trials/s", format!("{trials_per_s:.1}"));
    table.row("calls (Lease / ReportMetrics / Complete)", format!("{lease} / {report} / {complete}"));
    table.row("agent calls/s (each one commit)", format!("{:.1}", per_second(lease + report + complete, elapsed)));
    table.row("check", format!("{succeeded} trials succeeded"));
    Ok(LeaseRateResult { trials_per_s, table })
}

/// Leases until the coordinator has nothing left to hand out (of `only_sweep`, unless empty);
/// reports one row and completes each trial; returns the trials it completed.
pub(crate) async fn simulated_agent(
    client: pb::agent_service_client::AgentServiceClient<tonic::transport::Channel>,
    agent_id: String,
    secret: String,
    batch: u32,
    only_sweep: String,
    calls: Arc<Calls>,
) -> anyhow::Result<u64> {
    let mut done = 0u64;
    loop {
        let req = pb::LeaseRequest {
            agent_id: agent_id.clone(),
            free_slots: batch,
            free_gpus: 0,
            session_secret: secret.clone(),
            only_sweep: only_sweep.clone(),
            ..Default::default()
        };
        let leases = client.clone().lease(req).await?.into_inner().leases;
        calls.lease.fetch_add(1, Ordering::Relaxed);
        // Nothing pending: every trial is done or held by another agent that will finish it.
        if leases.is_empty() {
            return Ok(done);
        }
        let mut attempts = JoinSet::new();
        for lease in leases {
            let mut c = client.clone();
            let calls = calls.clone();
            let secret = secret.clone();
            attempts.spawn(async move {
                let report = pb::ReportMetricsRequest {
                    lease_id: lease.lease_id,
                    epochs: harness::epochs(1, 1, 1),
                    session_secret: secret.clone(),
                    warnings: Vec::new(),
                };
                let added = c.report_metrics(report).await?.into_inner().rows_added;
                calls.report.fetch_add(1, Ordering::Relaxed);
                anyhow::ensure!(added == 1, "lease {}: expected 1 metric row added, got {added}", lease.lease_id);
                let complete = pb::CompleteRequest {
                    lease_id: lease.lease_id,
                    exit_code: Some(0),
                    session_secret: secret,
                    ..Default::default()
                };
                let state = c.complete(complete).await?.into_inner().trial_state;
                calls.complete.fetch_add(1, Ordering::Relaxed);
                anyhow::ensure!(
                    state == "succeeded",
                    "lease {}: expected the trial to succeed, it is {state}",
                    lease.lease_id
                );
                Ok(())
            });
        }
        while let Some(r) = attempts.join_next().await {
            r??;
            done += 1;
        }
    }
}
