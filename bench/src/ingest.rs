//! `ingest`: metric rows per second. One sweep of T trials is leased by a simulated agent; T
//! concurrent senders post ReportMetrics batches of E epochs x R metrics until X rows in total.
//! Then one `flush()` writes them all to Parquet, which is timed and checked row for row.

use crate::harness::{self, per_second, Bench};
use crate::report::Table;
use clap::Args;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sweep_proto::v1 as pb;
use tokio::task::JoinSet;

#[derive(Args, Debug, Clone)]
pub struct IngestArgs {
    /// Trials reporting at once (one concurrent sender each).
    #[arg(long = "ingest-trials", env = "SWEEP_BENCH_INGEST_TRIALS", default_value_t = 8)]
    pub ingest_trials: u32,
    /// Epochs per ReportMetrics call.
    #[arg(long = "epochs-per-call", env = "SWEEP_BENCH_EPOCHS_PER_CALL", default_value_t = 10)]
    pub epochs: u32,
    /// Metrics per epoch.
    #[arg(long = "metrics-per-epoch", env = "SWEEP_BENCH_METRICS_PER_EPOCH", default_value_t = 10)]
    pub metrics: u32,
    /// Metric rows in total; a multiple of epochs-per-call x metrics-per-epoch.
    #[arg(long = "rows", env = "SWEEP_BENCH_ROWS", default_value_t = 200_000)]
    pub rows: u64,
}

pub struct IngestResult {
    pub rows_per_s: f64,
    pub parquet_rows_per_s: f64,
    pub table: Table,
}

pub async fn run(args: &IngestArgs, tmp_root: Option<&std::path::Path>) -> anyhow::Result<IngestResult> {
    let per_call = (args.epochs * args.metrics) as u64;
    anyhow::ensure!(
        per_call > 0 && args.rows.is_multiple_of(per_call),
        "--rows {} must be a multiple of {per_call} (epochs-per-call x metrics-per-epoch)",
        args.rows
    );
    let total_calls = args.rows / per_call;
    // The periodic flush is pushed out of the way so the one timed flush writes every row.
    let bench = Bench::start(tmp_root, Duration::from_secs(24 * 3600)).await?;
    let mut sweeps = bench.sweeps().await?;
    let sweep = harness::submit(&mut sweeps, "bench-ingest", args.ingest_trials, bench.dir.path()).await?;

    let mut agent = bench.agents().await?;
    let (agent_id, secret) = harness::register(&mut agent, "sim-ingest", args.ingest_trials).await?;
    let mut leases = Vec::new();
    while leases.len() < args.ingest_trials as usize {
        let req = pb::LeaseRequest {
            agent_id: agent_id.clone(),
            free_slots: args.ingest_trials - leases.len() as u32,
            free_gpus: 0,
            session_secret: secret.clone(),
            ..Default::default()
        };
        let got = agent.lease(req).await?.into_inner().leases;
        anyhow::ensure!(
            !got.is_empty(),
            "expected {} leases, the coordinator handed out {}",
            args.ingest_trials,
            leases.len()
        );
        leases.extend(got);
    }

    let next_call = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut senders = JoinSet::new();
    for lease in leases {
        let mut c = agent.clone();
        let next_call = next_call.clone();
        let secret = secret.clone();
        let (epochs, metrics) = (args.epochs, args.metrics);
        senders.spawn(async move {
            let (mut added, mut calls, mut epoch) = (0u64, 0u64, 0u32);
            while next_call.fetch_add(1, Ordering::Relaxed) < total_calls {
                let req = pb::ReportMetricsRequest {
                    lease_id: lease.lease_id,
                    epochs: harness::epochs(epoch, epochs, metrics),
                    session_secret: secret.clone(),
                    warnings: Vec::new(),
                };
                added += c.report_metrics(req).await?.into_inner().rows_added as u64;
                calls += 1;
                epoch += epochs;
            }
            anyhow::Ok((added, calls))
        });
    }
    let (mut added, mut calls) = (0u64, 0u64);
    while let Some(r) = senders.join_next().await {
        let (a, c) = r??;
        added += a;
        calls += c;
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(added == args.rows, "expected {} rows acknowledged as added, got {added}", args.rows);

    let flush_started = Instant::now();
    bench.coordinator.flush().await?;
    let flush = flush_started.elapsed();
    let dir = bench.sweep_dir(&sweep);
    let on_disk = sweep_coordinator::results::read_metrics(&dir)?.len() as u64;
    anyhow::ensure!(on_disk == args.rows, "metrics Parquet: expected exactly {} rows, found {on_disk}", args.rows);
    let parts = std::fs::read_dir(dir.join(sweep_coordinator::results::METRICS_DIR))?.count();
    bench.shutdown().await?;

    let rows_per_s = per_second(added, elapsed);
    let parquet_rows_per_s = per_second(on_disk, flush);
    let mut table = Table::new("ingest: ReportMetrics from simulated agents, then one flush to Parquet");
    table.row("rows (X)", args.rows.to_string());
    table.row("concurrent trials (T)", args.ingest_trials.to_string());
    table.row("rows per call (E x R)", format!("{per_call} ({} epochs x {} metrics)", args.epochs, args.metrics));
    table.row("ReportMetrics calls", calls.to_string());
    table.row("wall time (acknowledged)", format!("{:.3} s", elapsed.as_secs_f64()));
    table.row("rows/s acknowledged", format!("{rows_per_s:.0}"));
    table.row("calls/s (each one commit)", format!("{:.1}", per_second(calls, elapsed)));
    table.row("flush() of all rows", format!("{:.3} s", flush.as_secs_f64()));
    table.row("rows/s to Parquet", format!("{parquet_rows_per_s:.0}"));
    table.row("check", format!("Parquet holds {on_disk} rows in {parts} part file(s)"));
    Ok(IngestResult { rows_per_s, parquet_rows_per_s, table })
}
