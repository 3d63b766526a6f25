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
    /// Rewrite a running sweep's trials.parquet at most once per this many times as long as its
    /// last rewrite took; in between, flushes write only the trials that changed, to
    /// <results>/<sweep>/trial-changes/. A 10,000-trial table takes milliseconds and is rewritten
    /// on every flush; a million-trial one takes seconds. A sweep with nothing left to run is
    /// always written whole. 0: rewrite on every flush.
    #[arg(long, env = "SWEEP_TRIALS_REWRITE_SPACING", default_value_t = crate::sink::DEFAULT_REWRITE_SPACING)]
    pub trials_rewrite_spacing: u32,
    /// Address for HTTP: the web dashboard on / (with the same user tokens as gRPC), Prometheus
    /// metrics on /metrics and a probe on /healthz [default: off].
    #[arg(long, env = "SWEEP_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Quarantine an agent (no new leases until `sweep agents --unquarantine`) after this many
    /// failed attempts since its last success that blame the node: their trial succeeded on
    /// another agent, or their sweep succeeds on other agents and the trial failed nowhere else.
    /// Failures of a sweep that fails everywhere never count. 0 turns quarantine off.
    #[arg(long, env = "SWEEP_QUARANTINE_AFTER", default_value_t = crate::store::DEFAULT_QUARANTINE_AFTER)]
    pub quarantine_after: u32,
    /// Pause a sweep (no new leases until `sweep resume`) after this many failed attempts with
    /// none succeeding since it was submitted or resumed, on two agents (or the only one not
    /// quarantined). 0 turns pausing off.
    #[arg(long, env = "SWEEP_PAUSE_AFTER", default_value_t = crate::store::DEFAULT_PAUSE_AFTER)]
    pub pause_after: u32,
    /// Distinct metric names one sweep may report. A trial that reports a name beyond it fails,
    /// naming the limit: every name costs memory in the coordinator and a `final_<name>` column in
    /// trials.parquet. Per-class accuracies of a 1,000-class model fit in the default.
    #[arg(long, env = "SWEEP_MAX_METRIC_NAMES", default_value_t = crate::limits::DEFAULT_MAX_METRIC_NAMES)]
    pub max_metric_names: u32,
    /// The cluster's checkpoint folder, on a filesystem every agent mounts at this path. Agents
    /// started without `--checkpoint-root` use it, so a retry on another node resumes instead of
    /// starting over [default: none; each agent keeps checkpoints under its own work dir].
    #[arg(long, env = "SWEEP_CHECKPOINT_ROOT")]
    pub checkpoint_root: Option<PathBuf>,
    #[command(flatten)]
    pub connections: ConnectionConfig,
    #[command(flatten)]
    pub security: SecurityConfig,
    /// Write Parquet for this sweep only (None: every sweep). `sweep local` runs one sweep and
    /// writes only it into its results folder, whatever else the state folder holds.
    #[arg(skip)]
    pub results_only_for: Option<String>,
}

/// Bounds on connections, checked before any token is: see `connections.rs`.
#[derive(Args, Debug, Clone)]
pub struct ConnectionConfig {
    /// Connections open at once; more are closed at accept, with a log line. Agents hold one
    /// each, and every `sweep` command one while it runs.
    #[arg(long, env = "SWEEP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// A new connection that sends nothing (no TLS or HTTP/2 handshake) for this long is closed.
    #[arg(long, env = "SWEEP_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed. The server pings every connection
    /// four times per period, and a client's answer counts, so only dead or silent peers hit it.
    #[arg(long, env = "SWEEP_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> ConnectionConfig {
        ConnectionConfig {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
        }
    }
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
    /// A coordinator on a free loopback port, every other setting at its default, keeping its
    /// state in `state` and writing results to `results`: what `sweep local`, the benchmarks and
    /// the tests start. Callers change fields with struct update syntax.
    pub fn loopback(state: PathBuf, results: PathBuf) -> CoordinatorConfig {
        CoordinatorConfig {
            listen: "127.0.0.1:0".into(),
            state,
            results,
            lease_ttl: Duration::from_secs(30),
            flush_interval: Duration::from_secs(2),
            trials_rewrite_spacing: crate::sink::DEFAULT_REWRITE_SPACING,
            http_listen: None,
            quarantine_after: crate::store::DEFAULT_QUARANTINE_AFTER,
            pause_after: crate::store::DEFAULT_PAUSE_AFTER,
            max_metric_names: crate::limits::DEFAULT_MAX_METRIC_NAMES,
            checkpoint_root: None,
            connections: ConnectionConfig::default(),
            security: SecurityConfig::default(),
            results_only_for: None,
        }
    }

    /// Agents heartbeat three times per lease lifetime, so one lost heartbeat never loses a lease.
    pub fn heartbeat_interval(&self) -> Duration {
        self.lease_ttl / 3
    }

    /// How often expired leases are looked for.
    pub fn reap_interval(&self) -> Duration {
        (self.lease_ttl / 10).clamp(Duration::from_millis(50), Duration::from_secs(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{FromArgMatches, Parser};

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        config: CoordinatorConfig,
    }

    /// The defaults written out for embedded coordinators are the flags' defaults.
    #[test]
    fn loopback_defaults_are_the_flags_defaults() {
        let matches = <Flags as clap::CommandFactory>::command()
            .try_get_matches_from(["sweep-coordinator", "--listen", "127.0.0.1:0", "--state", "s", "--results", "r"])
            .unwrap();
        let parsed = Flags::from_arg_matches(&matches).unwrap().config;
        let built = CoordinatorConfig::loopback("s".into(), "r".into());
        assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
    }
}
