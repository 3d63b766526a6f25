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
    /// Address for HTTP: Prometheus metrics on /metrics and a probe on /healthz [default: off].
    #[arg(long, env = "SWEEP_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// An agent whose attempts fail this many times in a row gets no new leases; 0 turns it off.
    #[arg(long, env = "SWEEP_QUARANTINE_AFTER", default_value_t = crate::store::DEFAULT_QUARANTINE_AFTER)]
    pub quarantine_after: u32,
    #[command(flatten)]
    pub security: SecurityConfig,
}

/// Who may call, and over what. All off by default so one machine needs no setup; a shared
/// cluster should set both token files and a certificate.
#[derive(Args, Debug, Clone, Default)]
pub struct SecurityConfig {
    /// File of tokens for users (the `sweep` CLI), one per line as `NAME:TOKEN` (or a bare `TOKEN`,
    /// named `token-<hash prefix>`); blank lines and `#` comments are skipped. Sweeps record the
    /// name of the token that submitted them, and only that name or `admin` may cancel or change
    /// them. Needs --agent-tokens too. With neither file, every call is admitted.
    #[arg(long, env = "SWEEP_USER_TOKENS")]
    pub user_tokens: Option<PathBuf>,
    /// File of tokens for agents, one per line. An agent token cannot submit or cancel sweeps, and
    /// a user token cannot lease trials.
    #[arg(long, env = "SWEEP_AGENT_TOKENS")]
    pub agent_tokens: Option<PathBuf>,
    /// PEM certificate (chain) to serve TLS with; clients then use an `https://` URL.
    #[arg(long, env = "SWEEP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SWEEP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate for mutual TLS: every client must present a certificate it signed.
    #[arg(long, env = "SWEEP_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Refuse to start when a token file or --tls-key can be read by group or others, instead of
    /// only warning (as ssh does with private keys).
    #[arg(long, env = "SWEEP_STRICT_PERMS")]
    pub strict_perms: bool,
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
