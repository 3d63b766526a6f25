//! `sweep-bench`: coordinator throughput, measured in one process on loopback (`scale` runs the
//! coordinator as its own process). `dispatch` runs
//! real agents and tiny `command` trials; `lease-rate` and `ingest` drive the agent API directly
//! to find the coordinator's own ceiling. Prints one Markdown table per benchmark and a summary.

mod dispatch;
mod harness;
mod ingest;
mod lease_rate;
mod process;
mod report;
mod scale;

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(about = "Measures the sweep coordinator: trials dispatched and metric rows ingested per second")]
struct Cli {
    /// Which benchmark to run.
    #[arg(value_enum, default_value = "all")]
    which: Which,
    /// Folder for the temporary stores and results [default: the system temp folder]. Every
    /// commit is an fsync, so put it on the disk you mean to measure.
    #[arg(long, env = "SWEEP_BENCH_TMP")]
    tmp: Option<PathBuf>,
    #[command(flatten)]
    dispatch: dispatch::DispatchArgs,
    #[command(flatten)]
    lease_rate: lease_rate::LeaseRateArgs,
    #[command(flatten)]
    ingest: ingest::IngestArgs,
    #[command(flatten)]
    scale: scale::ScaleArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    All,
    Dispatch,
    LeaseRate,
    Ingest,
    /// 10k to 1M trials through a `sweep-coordinator` process (not part of `all`: it takes long).
    Scale,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let tmp = cli.tmp.as_deref();
    let runs = |w: Which| cli.which == Which::All || cli.which == w;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cli.which == Which::Scale {
        println!("sweep-bench scale: a sweep-coordinator process and the clients in this one, {cpus} CPU(s), load average {}.\n", scale::load());
    } else {
        println!(
            "sweep-bench: coordinator and clients in one process, {cpus} CPU(s); the store commits every call \
             in its own SQLite transaction with synchronous=FULL (one fsync per call), which bounds these figures.\n"
        );
    }
    let mut summary = Vec::new();
    if runs(Which::Dispatch) {
        let r = dispatch::run(&cli.dispatch, tmp).await?;
        println!("{}", r.table.render());
        summary.push(format!("dispatch {:.1} trials/s", r.trials_per_s));
    }
    if runs(Which::LeaseRate) {
        let r = lease_rate::run(&cli.lease_rate, tmp).await?;
        println!("{}", r.table.render());
        summary.push(format!("lease-rate {:.1} trials/s", r.trials_per_s));
    }
    if runs(Which::Ingest) {
        let r = ingest::run(&cli.ingest, tmp).await?;
        println!("{}", r.table.render());
        summary.push(format!(
            "ingest {:.0} rows/s acknowledged, {:.0} rows/s to Parquet",
            r.rows_per_s, r.parquet_rows_per_s
        ));
    }
    if cli.which == Which::Scale {
        let r = scale::run(&cli.scale, tmp).await?;
        summary.push(scale::summary(&r.runs));
    }
    println!("summary: {}", summary.join(" | "));
    Ok(())
}
