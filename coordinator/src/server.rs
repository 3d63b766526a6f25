//! Assembles the coordinator: store, gRPC services (with health and reflection), the lease reaper
//! and the Parquet sink. Used by the `sweep-coordinator` binary and embedded by `sweep local`.

use crate::config::CoordinatorConfig;
use crate::service::{agents::AgentApi, sweeps::SweepApi};
use crate::shared::Shared;
use crate::sink::{self, SinkHandle};
use crate::store::Store;
use anyhow::Context;
use std::net::SocketAddr;
use sweep_proto::v1::{agent_service_server::AgentServiceServer, sweep_service_server::SweepServiceServer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct RunningCoordinator {
    pub local_addr: SocketAddr,
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
        self.server.await?.context("grpc server")?;
        self.reaper.abort();
        drop(self.sink);
        self.sink_task.await?;
        Ok(())
    }
}

pub async fn start(config: &CoordinatorConfig) -> anyhow::Result<RunningCoordinator> {
    let ttl_ms = config.lease_ttl.as_millis() as i64;
    let store = Store::open(&config.state, ttl_ms)
        .with_context(|| format!("opening the store in {}", config.state.display()))?;
    let shared = Shared::new(store);
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

    let sweeps = SweepApi { shared: shared.clone() };
    let agents = AgentApi {
        shared: shared.clone(),
        lease_ttl: config.lease_ttl,
        heartbeat_interval: config.heartbeat_interval(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(SweepServiceServer::new(sweeps))
            .add_service(AgentServiceServer::new(agents))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );

    let reaper = tokio::spawn(reap_forever(shared.clone(), config.reap_interval()));
    let (sink, sink_task) = sink::spawn(shared.clone(), config.results.clone(), config.flush_interval);
    tracing::info!(addr = %local_addr, state = %config.state.display(), results = %config.results.display(), "coordinator serving");
    Ok(RunningCoordinator { local_addr, shared, sink, stop, server, reaper, sink_task })
}

async fn reap_forever(shared: Shared, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match shared.write_then_wake_if(|s, now| s.reap_expired(now), |lost| !lost.is_empty()).await {
            Ok(lost) => {
                for (sweep, trial, attempt, state) in lost {
                    tracing::warn!(sweep = %sweep, trial = %trial, attempt, now = %state, "lease expired");
                }
            }
            Err(e) => tracing::error!(error = %e, "reaping expired leases failed"),
        }
    }
}
