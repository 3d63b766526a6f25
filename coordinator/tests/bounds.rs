//! What an outsider sends cannot grow the coordinator without bound: metric names are capped per
//! sweep (a trial over the cap fails, naming it), and connections that never speak are closed and
//! capped. The memory and connection checks run the real `sweep-coordinator` binary, so its own
//! resident memory and its own log are what is measured.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use sweep_proto::v1::{self as pb, agent_service_client::AgentServiceClient};
use tonic::Code;

#[tokio::test]
async fn metric_names_beyond_the_sweep_limit_fail_the_trial_and_name_the_limit() {
    let env = Env::new(LONG_TTL);
    let config = sweep_coordinator::CoordinatorConfig { max_metric_names: 8, ..env.config() };
    let c = Coordinator::connect(sweep_coordinator::start(&config).await.unwrap()).await;
    c.submit(sweep("names", &[1, 2], "")).await.unwrap();
    let mut agent = c.agent("a", 2).await;
    let first = agent.lease_one().await;
    let five: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    let metrics: Vec<(&str, f64)> = five.iter().map(|n| (n.as_str(), 1.0)).collect();
    assert_eq!(agent.report(first.lease_id, &[(1, &metrics)]).await.unwrap().rows_added, 5);

    // The second trial reuses the sweep's names, then brings four new ones: 9 > 8.
    let second = agent.lease_one().await;
    agent.heartbeat(second.lease_id, true).await;
    let mut over: Vec<(&str, f64)> = metrics.clone();
    over.extend([("n0", 1.0), ("n1", 1.0), ("n2", 1.0), ("n3", 1.0)]);
    assert_status(agent.report(second.lease_id, &[(1, &over)]).await, Code::FailedPrecondition, "--max-metric-names");

    let trials = c.get("names").await.trials;
    let refused = trials.iter().find(|t| t.trial_id == second.trial.as_ref().unwrap().trial_id).unwrap();
    assert_eq!(refused.state, "failed", "retrying cannot help: {refused:?}");
    assert!(
        refused.last_error.contains("limit of 8 distinct names per sweep") && refused.last_error.contains("\"n0\""),
        "{}",
        refused.last_error
    );
    // Its lease is over, and none of the refused report's rows were stored.
    assert_eq!(action(&agent.heartbeat(second.lease_id, true).await), pb::LeaseAction::Abandon);
    c.running.flush().await.unwrap();
    let rows = env.parquet_metrics("names");
    assert_eq!(rows.len(), 5, "only the first trial's rows: {rows:?}");
    // The first trial goes on within the names the sweep has.
    assert_eq!(agent.report(first.lease_id, &[(2, &metrics)]).await.unwrap().rows_added, 5);
    assert_eq!(agent.exit(first.lease_id, 0, "").await.unwrap(), "succeeded");
}

/// The attack that took a coordinator to 13.5 GB: hundreds of thousands of distinct metric names.
/// Here 4 trials send 60,000 new names each after the sweep has used most of its names; the
/// coordinator's resident memory must stay within a fixed bound of where it started.
#[tokio::test]
async fn a_flood_of_metric_names_leaves_the_coordinator_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_coordinator(dir.path(), &[]);
    let coordinator = Killed(child);
    let c = Clients::connect(&addr).await;
    c.submit(sweep("flood", &[1, 2, 3, 4, 5], "")).await.unwrap();
    let mut agent = c.agent("a", 8).await;
    let leases = agent.lease(5, 0).await;
    assert_eq!(leases.len(), 5);

    // The sweep's own names, up to near the default limit of 2,048.
    let own: Vec<String> = (0..2_000).map(|i| format!("class_acc/{i}")).collect();
    let own: Vec<(&str, f64)> = own.iter().map(|n| (n.as_str(), 0.5)).collect();
    agent.report(leases[0].lease_id, &[(1, &own)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await; // one flush of trials.parquet
    let before = resident_kib(coordinator.0.id());

    for (n, lease) in leases[1..].iter().enumerate() {
        let names: Vec<String> = (0..60_000).map(|i| format!("flood_{n}_{i:06}_{}", "x".repeat(24))).collect();
        let metrics: Vec<(&str, f64)> = names.iter().map(|s| (s.as_str(), 1.0)).collect();
        assert_status(agent.report(lease.lease_id, &[(1, &metrics)]).await, Code::FailedPrecondition, "limit of 2048");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = resident_kib(coordinator.0.id());
    assert!(
        after < before + 100 * 1024,
        "resident memory grew from {before} KiB to {after} KiB under a flood of metric names"
    );
    assert_eq!(c.counts("flood").await.failed, 4);
    let table = dir.path().join("results").join("flood").join(sweep_coordinator::results::TRIALS_FILE);
    let rows = sweep_coordinator::results::read_trials_table(&table).unwrap();
    let finals = rows.iter().map(|t| t.finals.len()).max().unwrap_or(0);
    assert!(finals <= 2_048, "trials.parquet holds one final per admitted name, got {finals}");
}

#[tokio::test]
async fn connections_that_never_speak_are_closed_and_the_cap_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_coordinator(dir.path(), &["--max-connections", "16", "--handshake-timeout", "700ms"]);
    let _coordinator = Killed(child);

    let idle: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Over the cap: closed at once, before the server says anything.
    std::thread::sleep(Duration::from_millis(100));
    let extra = TcpStream::connect(&addr).unwrap();
    assert_eq!(closed_within(extra, Duration::from_secs(2)), Some(0), "a connection over the cap is closed at once");
    let log = dir.path().join("coordinator.log");
    let logged = wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("--max-connections reached")
    });
    assert!(logged, "the refusal is logged:\n{}", std::fs::read_to_string(&log).unwrap_or_default());

    // The silent ones are closed after the handshake timeout, and their places serve real calls.
    let started = Instant::now();
    for stream in idle {
        assert!(closed_within(stream, Duration::from_secs(5)).is_some(), "a silent connection is closed");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let c = Clients::connect(&addr).await;
    c.submit(sweep("after", &[1], "")).await.expect("a real call is served once the silent ones are gone");
}

/// Connections that speak stay open past the handshake timeout: the server's keepalive pings and
/// the client's answers are traffic.
#[tokio::test]
async fn a_quiet_client_that_answers_pings_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_coordinator(dir.path(), &["--handshake-timeout", "300ms", "--idle-timeout", "800ms"]);
    let _coordinator = Killed(child);
    let c = Clients::connect(&addr).await;
    c.submit(sweep("kept", &[1], "")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut agent = AgentServiceClient::new(c.channel.clone());
    let r = agent
        .register(pb::RegisterRequest { name: "later".into(), hostname: "h".into(), slots: 1, gpus: vec![] })
        .await;
    assert!(r.is_ok(), "the connection survived its quiet period: {r:?}");
}

/// Kills the coordinator when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sweep-coordinator` on a free port with its log in `<dir>/coordinator.log`.
fn spawn_coordinator(dir: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sweep-coordinator"))
        .args(["--listen", "127.0.0.1:0", "--flush-interval", "200ms"])
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--results")
        .arg(dir.join("results"))
        .args(extra)
        .env("SWEEP_LOG", "info")
        .env_remove("SWEEP_USER_TOKENS")
        .env_remove("SWEEP_AGENT_TOKENS")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("coordinator.log")).unwrap())
        .spawn()
        .expect("start sweep-coordinator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "unexpected first line `{line}`");
    (child, addr)
}

/// VmRSS of a process, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/<pid>/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Reads `stream` until the server closes it; returns how many bytes the server sent first (its
/// HTTP/2 settings), or None if it stayed open for `patience`.
fn closed_within(mut stream: TcpStream, patience: Duration) -> Option<usize> {
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut sent = Vec::new();
    match stream.read_to_end(&mut sent) {
        Ok(_) => Some(sent.len()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(sent.len()),
        Err(_) => None,
    }
}

fn wait_for(patience: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}
