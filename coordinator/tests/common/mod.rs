//! Shared setup for the coordinator's integration tests: a real coordinator on 127.0.0.1:0 with its
//! SQLite store and results folder in a temporary folder, gRPC clients for a user and an agent, and
//! sweeps built from TOML through `sweep-spec` exactly as the CLI builds them.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use sweep_coordinator::{CoordinatorConfig, RunningCoordinator};
use sweep_proto::v1::{self as pb, agent_service_client::AgentServiceClient, sweep_service_client::SweepServiceClient};
use tempfile::TempDir;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Long enough that no lease expires unless a test waits for it; expiry tests pass a short TTL.
pub const LONG_TTL: Duration = Duration::from_secs(30);
/// Short enough that an expiry test waits well under a second.
pub const SHORT_TTL: Duration = Duration::from_millis(400);
/// How long a poll waits for something that should happen within a TTL or two.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// The folders one coordinator (or a coordinator and its restarted successor) lives in.
pub struct Env {
    pub dir: TempDir,
    pub lease_ttl: Duration,
}

impl Env {
    pub fn new(lease_ttl: Duration) -> Env {
        Env { dir: tempfile::tempdir().expect("temporary folder"), lease_ttl }
    }

    pub fn config(&self) -> CoordinatorConfig {
        CoordinatorConfig {
            lease_ttl: self.lease_ttl,
            flush_interval: Duration::from_millis(100),
            ..CoordinatorConfig::loopback(self.dir.path().join("state"), self.dir.path().join("results"))
        }
    }

    pub async fn start(&self) -> Coordinator {
        Coordinator::connect(sweep_coordinator::start(&self.config()).await.expect("coordinator starts")).await
    }

    /// `results/<sweep>`.
    pub fn sweep_dir(&self, sweep: &str) -> PathBuf {
        sweep_coordinator::results::sweep_dir(&self.config().results, sweep)
    }

    /// Every metric row in the sweep's Parquet parts, checked to hold each key once.
    pub fn parquet_metrics(&self, sweep: &str) -> Vec<sweep_coordinator::results::MetricRow> {
        let rows = sweep_coordinator::results::read_metrics(&self.sweep_dir(sweep)).expect("metrics parquet reads");
        let mut keys: Vec<_> =
            rows.iter().map(|r| (r.trial_id.clone(), r.attempt, r.epoch, r.metric.clone())).collect();
        keys.sort();
        let before = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), before, "duplicate (trial_id, attempt, epoch, metric) keys in the metrics parquet");
        rows
    }
}

pub struct Coordinator {
    pub running: RunningCoordinator,
    pub clients: Clients,
}

/// gRPC clients of a coordinator, whether started by the test in-process or as a child process.
pub struct Clients {
    pub channel: Channel,
    pub sweeps: SweepServiceClient<Channel>,
}

impl std::ops::Deref for Coordinator {
    type Target = Clients;
    fn deref(&self) -> &Clients {
        &self.clients
    }
}

impl std::ops::DerefMut for Coordinator {
    fn deref_mut(&mut self) -> &mut Clients {
        &mut self.clients
    }
}

impl Coordinator {
    /// Clients for a coordinator started by the test.
    pub async fn connect(running: RunningCoordinator) -> Coordinator {
        let clients = Clients::connect(&running.local_addr.to_string()).await;
        Coordinator { running, clients }
    }
}

impl Clients {
    /// Clients of the coordinator at `addr` (`host:port`).
    pub async fn connect(addr: &str) -> Clients {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
            .expect("connect to the coordinator");
        Clients { channel: channel.clone(), sweeps: SweepServiceClient::new(channel) }
    }
}

impl Clients {
    /// Registers an agent with `slots` slots and no GPUs listed.
    pub async fn agent(&self, name: &str, slots: u32) -> Agent {
        let mut client = AgentServiceClient::new(self.channel.clone());
        let r = client
            .register(pb::RegisterRequest { name: name.into(), hostname: "test-host".into(), slots, gpus: vec![] })
            .await
            .expect("register")
            .into_inner();
        Agent { client, id: r.agent_id, secret: r.session_secret }
    }

    /// An agent registered earlier (with this or a previous coordinator on the same store), with
    /// the session secret its registration was answered with.
    pub fn agent_as(&self, earlier: &Agent) -> Agent {
        Agent {
            client: AgentServiceClient::new(self.channel.clone()),
            id: earlier.id.clone(),
            secret: earlier.secret.clone(),
        }
    }

    pub async fn submit(&self, req: pb::SubmitSweepRequest) -> Result<pb::SubmitSweepResponse, Status> {
        self.sweeps.clone().submit_sweep(req).await.map(|r| r.into_inner())
    }

    pub async fn get(&self, sweep: &str) -> pb::GetSweepResponse {
        self.sweeps
            .clone()
            .get_sweep(pb::GetSweepRequest { sweep_id: sweep.into(), ..Default::default() })
            .await
            .expect("get sweep")
            .into_inner()
    }

    /// The sweep's trials as (trial_id, state, attempt), in queue order.
    pub async fn trial_states(&self, sweep: &str) -> Vec<(String, String, u32)> {
        self.get(sweep).await.trials.into_iter().map(|t| (t.trial_id, t.state, t.attempt)).collect()
    }

    pub async fn counts(&self, sweep: &str) -> pb::StateCounts {
        self.get(sweep).await.summary.and_then(|s| s.counts).expect("summary with counts")
    }
}

/// One registered agent, its client and its session secret, which every call of it carries.
pub struct Agent {
    pub client: AgentServiceClient<Channel>,
    pub id: String,
    pub secret: String,
}

impl Agent {
    pub async fn lease(&mut self, free_slots: u32, free_gpus: u32) -> Vec<pb::Lease> {
        let req = pb::LeaseRequest { free_slots, free_gpus, ..self.lease_request() };
        self.client.lease(req).await.expect("lease").into_inner().leases
    }

    /// A lease request of this agent, for nothing yet.
    pub fn lease_request(&self) -> pb::LeaseRequest {
        pb::LeaseRequest { agent_id: self.id.clone(), session_secret: self.secret.clone(), ..Default::default() }
    }

    /// A heartbeat of this agent for `leases`.
    pub fn heartbeat_request(&self, leases: Vec<pb::LeaseState>) -> pb::HeartbeatRequest {
        pb::HeartbeatRequest { agent_id: self.id.clone(), leases, session_secret: self.secret.clone() }
    }

    /// Leases exactly one CPU trial.
    pub async fn lease_one(&mut self) -> pb::Lease {
        let mut leases = self.lease(1, 0).await;
        assert_eq!(leases.len(), 1, "expected one lease, got {leases:?}");
        leases.remove(0)
    }

    /// Heartbeats one lease; returns the coordinator's command for it.
    pub async fn heartbeat(&mut self, lease_id: i64, running: bool) -> pb::LeaseCommand {
        let req = self.heartbeat_request(vec![pb::LeaseState { lease_id, running }]);
        let mut commands = self.client.heartbeat(req).await.expect("heartbeat").into_inner().commands;
        assert_eq!(commands.len(), 1, "one command per lease: {commands:?}");
        commands.remove(0)
    }

    pub async fn report(
        &mut self,
        lease_id: i64,
        epochs: &[(u32, &[(&str, f64)])],
    ) -> Result<pb::ReportMetricsResponse, Status> {
        let req = pb::ReportMetricsRequest { session_secret: self.secret.clone(), ..report(lease_id, epochs) };
        self.client.report_metrics(req).await.map(|r| r.into_inner())
    }

    /// Completes an attempt that exited on its own with `exit_code`.
    pub async fn exit(&mut self, lease_id: i64, exit_code: i32, stderr_tail: &str) -> Result<String, Status> {
        let req = pb::CompleteRequest {
            lease_id,
            exit_code: Some(exit_code),
            stderr_tail: stderr_tail.into(),
            ..Default::default()
        };
        self.complete(req).await
    }

    /// Sends `req` under this agent's session.
    pub async fn complete(&mut self, req: pb::CompleteRequest) -> Result<String, Status> {
        let req = pb::CompleteRequest { session_secret: self.secret.clone(), ..req };
        self.client.complete(req).await.map(|r| r.into_inner().trial_state)
    }
}

/// A report of `(epoch, [(metric, value)])` records without a session; the step is ten times the
/// epoch.
pub fn report(lease_id: i64, epochs: &[(u32, &[(&str, f64)])]) -> pb::ReportMetricsRequest {
    pb::ReportMetricsRequest {
        lease_id,
        epochs: epochs
            .iter()
            .map(|(epoch, metrics)| pb::EpochMetrics {
                epoch: *epoch,
                step: *epoch as i64 * 10,
                metrics: metrics
                    .iter()
                    .map(|(name, value)| pb::Metric { name: name.to_string(), value: *value })
                    .collect(),
            })
            .collect(),
        session_secret: String::new(),
        warnings: Vec::new(),
    }
}

/// A `command` sweep over `width = widths`; `extra` adds tables such as `[retry]` or `[resources]`.
pub fn sweep(name: &str, widths: &[u32], extra: &str) -> pb::SubmitSweepRequest {
    submission(format!(
        "name = \"{name}\"\nworkload = \"command\"\ncommand = [\"train\"]\n[grid]\nwidth = {widths:?}\n{extra}\n"
    ))
}

/// The submission of a sweep file's text, as `sweep submit` makes it.
pub fn submission(text: String) -> pb::SubmitSweepRequest {
    let path = Path::new("sweep.toml");
    let file = sweep_spec::SweepFile::parse(&text, path, Path::new(".")).expect("test sweep file parses");
    let trials = sweep_spec::expand(&file).expect("test sweep expands");
    pb::SubmitSweepRequest::from_file(&file, &trials, text, path.display().to_string())
}

/// Asserts that `result` failed with `code` and a message containing `needle`.
pub fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, needle: &str) {
    let status = result.expect_err(&format!("expected {code:?}"));
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    assert!(status.message().contains(needle), "message `{}` should name `{needle}`", status.message());
}

/// Polls `probe` until it gives a value, failing the test after `PATIENCE`.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn action(c: &pb::LeaseCommand) -> pb::LeaseAction {
    pb::LeaseAction::try_from(c.action).expect("a known lease action")
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_millis() as i64
}
