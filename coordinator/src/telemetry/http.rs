//! The coordinator's HTTP port: `/metrics` in Prometheus text format, read from the store at each
//! scrape so the figures are never stale, `/healthz` for load balancers that cannot speak gRPC, and
//! the web dashboard (`crate::dashboard`) on every other path.

use super::RpcStats;
use crate::shared::Shared;
use crate::store::Gauges;
use std::fmt::Write;
use std::sync::Arc;

#[derive(Clone)]
struct State {
    shared: Shared,
    rpc: Arc<RpcStats>,
    /// Agents heard from within this window count as alive.
    alive_window_ms: i64,
}

/// Serves until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Shared,
    rpc: Arc<RpcStats>,
    alive_window_ms: i64,
    dashboard: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .with_state(State { shared, rpc, alive_window_ms })
        .merge(dashboard);
    axum::serve(listener, app).with_graceful_shutdown(stop).await
}

async fn metrics(axum::extract::State(s): axum::extract::State<State>) -> Result<String, (http::StatusCode, String)> {
    let window = s.alive_window_ms;
    let gauges = s
        .shared
        .read(move |store, now| store.gauges(now, window))
        .await
        .map_err(|e| (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut out = render(&gauges);
    s.rpc.render(&mut out);
    Ok(out)
}

fn render(g: &Gauges) -> String {
    let mut out = String::new();
    out.push_str("# HELP sweep_trials Trials by sweep and state.\n# TYPE sweep_trials gauge\n");
    for ((sweep, state), n) in &g.trials {
        let _ = writeln!(out, "sweep_trials{{sweep=\"{sweep}\",state=\"{state}\"}} {n}");
    }
    let _ = write!(
        out,
        "# HELP sweep_leases Leases held by agents now.\n# TYPE sweep_leases gauge\nsweep_leases {}\n\
         # HELP sweep_agents_alive Agents heard from recently.\n# TYPE sweep_agents_alive gauge\nsweep_agents_alive {}\n\
         # HELP sweep_agents_quarantined Agents that get no new leases.\n# TYPE sweep_agents_quarantined gauge\nsweep_agents_quarantined {}\n\
         # HELP sweep_sweeps_paused Sweeps paused because their trials fail on every agent (`sweep resume`).\n# TYPE sweep_sweeps_paused gauge\nsweep_sweeps_paused {}\n\
         # HELP sweep_metric_rows_ingested_total Metric rows stored since the store was created.\n# TYPE sweep_metric_rows_ingested_total counter\nsweep_metric_rows_ingested_total {}\n",
        g.leases, g.agents_alive, g.agents_quarantined, g.sweeps_paused, g.metric_rows
    );
    out
}
