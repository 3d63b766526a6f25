//! `sweep-coordinator`: one per cluster. Serves gRPC, keeps the store, writes Parquet.

use clap::Parser;
use sweep_coordinator::CoordinatorConfig;

#[derive(Parser)]
#[command(name = "sweep-coordinator", version, about = "Serve sweeps to agents and record every metric in Parquet.")]
struct Cli {
    #[command(flatten)]
    config: CoordinatorConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Inside the runtime: the OTLP exporter (when configured) runs on it. Dropped last, it
    // flushes the spans of the drain below.
    let _telemetry = sweep_telemetry::init("sweep-coordinator", "info");
    let cli = Cli::parse();
    for warning in sweep_coordinator::server::security_warnings(&cli.config) {
        tracing::warn!("{warning}");
    }
    let running = sweep_coordinator::start(&cli.config).await?;
    // Scripts and tests read the bound address from this line (useful with port 0).
    println!("sweep-coordinator listening on {}", running.local_addr);
    shutdown_signal().await;
    tracing::info!("shutting down: finishing calls in flight and flushing parquet");
    running.shutdown().await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
