//! The coordinator's settings: flags with `SWEEP_*` environment fallbacks and defaults that work
//! on one machine.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use sweep_spec::duration::parse_duration;

#[derive(Args, Debug, Clone)]
pub struct CoordinatorConfig {
    /// Address to serve gRPC on; port 0 picks a free port (printed at start).
    #[arg(long, env = "SWEEP_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: String,
    /// Folder for the SQLite store (state.db). Use a local disk or a persistent volume.
    #[arg(long, env = "SWEEP_STATE", default_value = ".sweep")]
    pub state: PathBuf,
    /// Folder for results: <results>/<sweep>/trials.parquet and metrics/part-*.parquet.
    #[arg(long, env = "SWEEP_RESULTS", default_value = "results")]
    pub results: PathBuf,
    /// How long a lease lives without a heartbeat before its trial is retried elsewhere.
    #[arg(long, env = "SWEEP_LEASE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub lease_ttl: Duration,
    /// How often new metric rows and trial changes are written to Parquet.
    #[arg(long, env = "SWEEP_FLUSH_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub flush_interval: Duration,
}

impl CoordinatorConfig {
    /// Agents heartbeat three times per lease lifetime, so one lost heartbeat never loses a lease.
    pub fn heartbeat_interval(&self) -> Duration {
        self.lease_ttl / 3
    }

    /// How often expired leases are looked for.
    pub fn reap_interval(&self) -> Duration {
        (self.lease_ttl / 10).clamp(Duration::from_millis(50), Duration::from_secs(2))
    }
}
