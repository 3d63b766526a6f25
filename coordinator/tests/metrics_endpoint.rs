//! The Prometheus endpoint, scraped over real HTTP: trial states, leases, agents and RPC latency.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::Duration;

fn scrape(addr: std::net::SocketAddr, path: &str) -> String {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// A coordinator that also serves HTTP, and the address of its HTTP server.
async fn start_with_http(env: &Env) -> (Coordinator, std::net::SocketAddr) {
    let mut config = env.config();
    config.http_listen = Some("127.0.0.1:0".into());
    let running = sweep_coordinator::start(&config).await.unwrap();
    let http = running.http_addr.expect("http served");
    (Coordinator::connect(running).await, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_trials_leases_agents_and_rpc_latency() {
    let env = Env::new(Duration::from_secs(60));
    let (c, http) = start_with_http(&env).await;
    c.submit(sweep("scraped", &[1, 2, 3], "")).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    let lease = agent.lease_one().await;
    agent.report(lease.lease_id, &[(1, &[("loss", 0.5), ("acc", 0.9)])]).await.unwrap();

    let text = tokio::task::spawn_blocking(move || scrape(http, "/metrics")).await.unwrap();
    for line in [
        "sweep_trials{sweep=\"scraped\",state=\"pending\"} 2",
        "sweep_trials{sweep=\"scraped\",state=\"leased\"} 1",
        "sweep_leases 1",
        "sweep_agents_alive 1",
        "sweep_agents_quarantined 0",
        "sweep_sweeps_paused 0",
        "sweep_metric_rows_ingested_total 2",
        "sweep_rpc_duration_seconds_count{method=\"/sweep.v1.SweepService/SubmitSweep\"} 1",
        "sweep_rpc_duration_seconds_count{method=\"/sweep.v1.AgentService/Lease\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    let health = tokio::task::spawn_blocking(move || scrape(http, "/healthz")).await.unwrap();
    assert!(health.ends_with("ok\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_sweep_shows_in_the_metrics() {
    let env = Env::new(Duration::from_secs(60));
    let (c, http) = start_with_http(&env).await;
    c.submit(sweep("broken", &[1], "[retry]\nmax_attempts = 10\nbackoff = \"0s\"")).await.unwrap();
    // The only agent: its failures alone pause the sweep (`--pause-after`, 5 by default).
    let mut agent = c.agent("a", 1).await;
    for _ in 0..sweep_coordinator::store::DEFAULT_PAUSE_AFTER {
        let lease = agent.lease_one().await;
        agent.exit(lease.lease_id, 2, "error: unrecognized arguments: --lr").await.unwrap();
    }
    assert_eq!(c.get("broken").await.summary.unwrap().state, "paused");
    let text = tokio::task::spawn_blocking(move || scrape(http, "/metrics")).await.unwrap();
    assert!(text.lines().any(|l| l == "sweep_sweeps_paused 1"), "{text}");
}
