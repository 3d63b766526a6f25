//! Assembles the coordinator: store, gRPC services (with health and reflection), the lease reaper
//! and the Parquet sink. Used by the `sweep-coordinator` binary and embedded by `sweep local`.

use crate::auth::{Role, Tokens};
use crate::config::CoordinatorConfig;
use crate::service::{agents::AgentApi, sweeps::SweepApi};
use crate::shared::Shared;
use crate::sink::{self, SinkHandle};
use crate::store::Store;
use crate::telemetry::{RpcStats, RpcTimingLayer};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use sweep_proto::v1::{agent_service_server::AgentServiceServer, sweep_service_server::SweepServiceServer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;

/// Largest request SweepService decodes. Clients send big sweeps in parts of 10,000 trials
/// (`SubmitSweepStream`), but one `SubmitSweep` may still carry a whole sweep, so this is far above
/// tonic's 4 MiB default. tonic refuses a larger
/// message before the handler runs (with OUT_OF_RANGE in 0.14).
pub const MAX_SWEEP_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Largest request AgentService decodes. Agents send metric batches and completions with a stderr
/// tail, which stay small; the limit only stops a broken or hostile agent from using up memory.
pub const MAX_AGENT_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

pub struct RunningCoordinator {
    pub local_addr: SocketAddr,
    /// Where /metrics and the dashboard are served, with `--http-listen`.
    pub http_addr: Option<SocketAddr>,
    http: Option<JoinHandle<std::io::Result<()>>>,
    shared: Shared,
    sink: SinkHandle,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    reaper: JoinHandle<()>,
    sink_task: JoinHandle<()>,
}

impl RunningCoordinator {
    /// Writes every stored row and trial change to Parquet now.
    pub async fn flush(&self) -> crate::Result<()> {
        self.sink.flush().await
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Stops accepting calls, finishes those in flight, writes Parquet a last time.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shared.begin_stopping();
        let _ = self.stop.send(());
        if let Some(http) = self.http {
            http.await?.context("http server")?;
        }
        self.server.await?.context("grpc server")?;
        self.reaper.abort();
        drop(self.sink);
        self.sink_task.await?;
        Ok(())
    }
}

pub async fn start(config: &CoordinatorConfig) -> anyhow::Result<RunningCoordinator> {
    start_with(config, None).await
}

/// [`start`], with the dashboard drawing each sweep's figures through `plots` (`sweep local` gives
/// `sweep plot`'s).
pub async fn start_with(
    config: &CoordinatorConfig,
    plots: Option<crate::dashboard::DrawPlots>,
) -> anyhow::Result<RunningCoordinator> {
    // Credentials and certificates are checked before anything is opened, so a typo in a path
    // fails the start with the file's name.
    let sec = &config.security;
    let tokens = Tokens::load(sec.user_tokens.as_deref(), sec.agent_tokens.as_deref(), sec.strict_perms)
        .map_err(anyhow::Error::msg)?;
    let tls = crate::tls::server_config(
        sec.tls_cert.as_deref(),
        sec.tls_key.as_deref(),
        sec.tls_client_ca.as_deref(),
        sec.strict_perms,
    )
    .map_err(anyhow::Error::msg)?;
    let rpc_stats = Arc::new(RpcStats::default());
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(crate::connections::keepalive_interval(&config.connections)))
        .http2_keepalive_timeout(Some(config.connections.handshake_timeout));
    if let (Some(tls), Some(cert), Some(key)) = (tls, &sec.tls_cert, &sec.tls_key) {
        builder = builder.tls_config(tls).map_err(|e| {
            anyhow::anyhow!(
                "tls with certificate {} and key {}: {}",
                cert.display(),
                key.display(),
                sweep_proto::remote::error_chain(&e)
            )
        })?;
    }

    let ttl_ms = config.lease_ttl.as_millis() as i64;
    let mut store = Store::open(&config.state, ttl_ms)
        .with_context(|| format!("opening the store in {}", config.state.display()))?;
    store.set_quarantine_after(config.quarantine_after);
    store.set_pause_after(config.pause_after);
    store.set_max_metric_names(config.max_metric_names);
    let (dropped, finished) = store
        .recover_uploads(crate::store::BATCH)
        .with_context(|| format!("finishing the sweeps received in parts in {}", config.state.display()))?;
    if dropped + finished > 0 {
        tracing::info!(
            dropped,
            finished,
            "sweeps received in parts before the last stop: broken off ones dropped, whole ones stored"
        );
    }
    let cancelled = store
        .finish_cancels(crate::store::now_ms(), crate::store::BATCH)
        .with_context(|| format!("finishing the cancels of sweeps in {}", config.state.display()))?;
    if cancelled > 0 {
        tracing::info!(trials = cancelled, "cancels cut short by the last stop finished");
    }
    let shared = Shared::new(store)
        .with_context(|| format!("opening read-only connections to the store in {}", config.state.display()))?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let local_addr = listener.local_addr()?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<SweepServiceServer<SweepApi>>().await;
    health.set_serving::<AgentServiceServer<AgentApi>>().await;
    let reflection = |b: tonic_reflection::server::Builder<'static>| {
        b.register_encoded_file_descriptor_set(sweep_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection(tonic_reflection::server::Builder::configure()).build_v1()?;
    let reflection_v1alpha = reflection(tonic_reflection::server::Builder::configure()).build_v1alpha()?;

    let sweeps = SweepApi {
        shared: shared.clone(),
        uploads: crate::service::upload::Uploads::new(
            crate::limits::MAX_UPLOADS_IN_FLIGHT,
            crate::limits::MAX_WAIT_FOR_PART,
        ),
    };
    let agents = AgentApi {
        shared: shared.clone(),
        lease_ttl: config.lease_ttl,
        heartbeat_interval: config.heartbeat_interval(),
        checkpoint_root: config.checkpoint_root.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
    };
    // Only the two sweep services are guarded; health and reflection stay open for probes.
    let sweeps = InterceptedService::new(
        SweepServiceServer::new(sweeps).max_decoding_message_size(MAX_SWEEP_MESSAGE_BYTES),
        tokens.guard(Role::User),
    );
    let agents = InterceptedService::new(
        AgentServiceServer::new(agents).max_decoding_message_size(MAX_AGENT_MESSAGE_BYTES),
        tokens.guard(Role::Agent),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        builder
            .layer(RpcTimingLayer(rpc_stats.clone()))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(sweeps)
            .add_service(agents)
            .serve_with_incoming_shutdown(crate::connections::accept(listener, config.connections.clone()), async {
                let _ = stopped.await;
            }),
    );

    let (http_addr, http) = match &config.http_listen {
        Some(addr) => {
            let listener =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("http listening on {addr}"))?;
            let http_addr = listener.local_addr()?;
            let mut stopping = shared.stopping();
            let alive_window_ms = 2 * ttl_ms;
            let mut dashboard = crate::dashboard::Dashboard::live(shared.clone(), tokens.clone());
            if let Some(plots) = plots {
                dashboard = dashboard.with_plots(plots);
            }
            let dashboard = dashboard.router();
            let serve =
                crate::telemetry::serve(listener, shared.clone(), rpc_stats, alive_window_ms, dashboard, async move {
                    let _ = stopping.wait_for(|s| *s).await;
                });
            (Some(http_addr), Some(tokio::spawn(serve)))
        }
        None => (None, None),
    };
    let reaper = tokio::spawn(reap_forever(shared.clone(), config.reap_interval()));
    let (sink, sink_task) = sink::spawn(
        shared.clone(),
        config.results.clone(),
        config.results_only_for.clone(),
        config.flush_interval,
        config.trials_rewrite_spacing,
    );
    tracing::info!(
        addr = %local_addr,
        state = %config.state.display(),
        results = %config.results.display(),
        auth = tokens.enabled(),
        tls = config.security.tls_cert.is_some(),
        mutual_tls = config.security.tls_client_ca.is_some(),
        "coordinator serving"
    );
    Ok(RunningCoordinator { local_addr, http_addr, shared, sink, stop, server, http, reaper, sink_task })
}

/// What is unsafe about these settings on a shared network, as warnings for the log at start:
/// no token files (anyone who reaches the port may submit, cancel and lease), or tokens sent in
/// clear text without TLS. `sweep local` skips this: its coordinator is on loopback.
pub fn security_warnings(config: &CoordinatorConfig) -> Vec<&'static str> {
    let sec = &config.security;
    let auth = sec.user_tokens.is_some() || sec.agent_tokens.is_some();
    let mut warnings = Vec::new();
    if !auth {
        warnings.push("authentication is off: anyone who reaches this port can submit, cancel and lease trials; set --user-tokens and --agent-tokens");
    } else if sec.tls_cert.is_none() {
        warnings
            .push("tokens travel in clear text: set --tls-cert and --tls-key so they cannot be read on the network");
    }
    warnings
}

async fn reap_forever(shared: Shared, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match shared.write_then_wake_if(|s, now| s.reap_expired(now), |lost| !lost.is_empty()).await {
            Ok(lost) => {
                if lost.iter().any(|(_, _, _, state)| *state == crate::lifecycle::TrialState::Pending) {
                    shared.trials_queued();
                }
                for (sweep, trial, attempt, state) in lost {
                    tracing::warn!(sweep = %sweep, trial = %trial, attempt, now = %state, "lease expired");
                }
            }
            Err(e) => tracing::error!(error = %e, "reaping expired leases failed"),
        }
    }
}
