//! Shared start-up for every benchmark: an in-process coordinator on a free loopback port with its
//! state and results in a temporary folder, gRPC clients, and the sweep of tiny `command` trials
//! built the way a user's file would be (TOML text -> `SweepFile::parse` -> `expand`).

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Duration;
use sweep_coordinator::{CoordinatorConfig, RunningCoordinator};
use sweep_proto::v1::{self as pb, agent_service_client::AgentServiceClient, sweep_service_client::SweepServiceClient};
use sweep_spec::SweepFile;
use tonic::transport::{Channel, Endpoint};

/// The trial every benchmark runs (or pretends to run): one epoch record on stdout, exit 0.
/// The agent appends `--i <n>`; with `sh -c SCRIPT` those become `$0 $1 ...` and are ignored.
pub const TINY_COMMAND: [&str; 3] = ["/bin/sh", "-c", r#"echo '{"epoch": 1, "metrics": {"loss": 0.5}}'"#];

/// A coordinator with its own temporary state and results folders, removed on drop.
pub struct Bench {
    pub coordinator: RunningCoordinator,
    pub url: String,
    pub results: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Bench {
    /// Starts a coordinator under `tmp_root` (the system temp folder when `None`). The store
    /// commits with `synchronous=FULL`, so the disk under that folder bounds every figure.
    pub async fn start(tmp_root: Option<&Path>, flush_interval: Duration) -> anyhow::Result<Bench> {
        let dir = match tmp_root {
            Some(root) => tempfile::Builder::new().prefix("sweep-bench-").tempdir_in(root)?,
            None => tempfile::Builder::new().prefix("sweep-bench-").tempdir()?,
        };
        let results = dir.path().join("results");
        let config = CoordinatorConfig {
            flush_interval,
            ..CoordinatorConfig::loopback(dir.path().join("state"), results.clone())
        };
        let coordinator = sweep_coordinator::start(&config).await.context("starting the coordinator")?;
        let url = format!("http://{}", coordinator.local_addr);
        Ok(Bench { coordinator, url, results, dir })
    }

    pub async fn sweeps(&self) -> anyhow::Result<SweepServiceClient<Channel>> {
        Ok(SweepServiceClient::new(channel(&self.url).await?))
    }

    pub async fn agents(&self) -> anyhow::Result<AgentServiceClient<Channel>> {
        Ok(AgentServiceClient::new(channel(&self.url).await?))
    }

    /// `<results>/<sweep>`: where the sink writes that sweep's Parquet files.
    pub fn sweep_dir(&self, sweep: &str) -> PathBuf {
        sweep_coordinator::results::sweep_dir(&self.results, sweep)
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.coordinator.shutdown().await
    }
}

/// One HTTP/2 connection; every clone of a client multiplexes over it, as an agent's calls do.
async fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_string())?.tcp_nodelay(true).connect().await?)
}

/// The sweep file text of `n` tiny command trials: a grid `i = [0, n)`.
pub fn tiny_sweep_text(name: &str, n: u32) -> String {
    let command: Vec<String> =
        TINY_COMMAND.iter().map(|w| serde_json::to_string(w).expect("strings serialize")).collect();
    let grid: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!(
        "name = \"{name}\"\nworkload = \"command\"\ncommand = [{}]\n[grid]\ni = [{}]\n[retry]\nmax_attempts = 1\n",
        command.join(", "),
        grid.join(", ")
    )
}

/// The sweep file text of `n` double-descent trials (a grid over `seed`) that the coordinator
/// hands out in fused groups of up to `fuse`. Simulated agents never train them.
pub fn fused_sweep_text(name: &str, n: u32, fuse: u32) -> String {
    let grid: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!(
        "name = \"{name}\"\nworkload = \"double_descent\"\n[params]\nmodel = \"cnn5\"\n[grid]\nseed = [{}]\n\
         [resources]\ngpus = 0\nfuse = {fuse}\n[retry]\nmax_attempts = 1\n",
        grid.join(", ")
    )
}

/// Parses, expands and wraps the sweep `text` of `n` trials as `SubmitSweep` would receive it from
/// `sweep submit`.
pub fn submit_request(name: &str, text: String, n: u32, base_dir: &Path) -> anyhow::Result<pb::SubmitSweepRequest> {
    let path = base_dir.join(format!("{name}.toml"));
    let file = SweepFile::parse(&text, &path, base_dir)?;
    let trials = sweep_spec::expand(&file)?;
    anyhow::ensure!(trials.len() == n as usize, "expected {n} trials from the grid, got {}", trials.len());
    Ok(pb::SubmitSweepRequest::from_file(&file, &trials, text, path.display().to_string()))
}

/// Submits the sweep of `n` tiny trials and returns its id.
pub async fn submit(
    client: &mut SweepServiceClient<Channel>,
    name: &str,
    n: u32,
    base_dir: &Path,
) -> anyhow::Result<String> {
    submit_text(client, name, tiny_sweep_text(name, n), n, base_dir).await
}

/// Submits the sweep `text` of `n` trials and returns its id.
pub async fn submit_text(
    client: &mut SweepServiceClient<Channel>,
    name: &str,
    text: String,
    n: u32,
    base_dir: &Path,
) -> anyhow::Result<String> {
    let resp = client.submit_sweep(submit_request(name, text, n, base_dir)?).await?.into_inner();
    anyhow::ensure!(resp.trials_added == n, "expected {n} trials added, got {}", resp.trials_added);
    Ok(resp.sweep_id)
}

/// Follows `WatchSweep` until the sweep is done; returns the last counts. The coordinator batches
/// changes for 100 ms before each update, so the end is seen at most ~100 ms late.
pub async fn wait_done(client: &mut SweepServiceClient<Channel>, sweep: &str) -> anyhow::Result<pb::StateCounts> {
    let mut stream = client.watch_sweep(pb::WatchSweepRequest { sweep_id: sweep.to_string() }).await?.into_inner();
    while let Some(update) = stream.message().await? {
        let summary = update.summary.context("a watch update without a summary")?;
        if summary.done {
            return Ok(summary.counts.unwrap_or_default());
        }
    }
    anyhow::bail!("the watch of sweep {sweep} ended before the sweep was done")
}

/// Registers a simulated agent and returns its id and session secret.
pub async fn register(
    client: &mut AgentServiceClient<Channel>,
    name: &str,
    slots: u32,
) -> anyhow::Result<(String, String)> {
    let req = pb::RegisterRequest { name: name.to_string(), hostname: "bench".into(), slots, gpus: Vec::new() };
    let r = client.register(req).await?.into_inner();
    Ok((r.agent_id, r.session_secret))
}

/// One `ReportMetrics` payload: epochs `first_epoch..first_epoch + epochs`, `metrics` values each.
pub fn epochs(first_epoch: u32, epochs: u32, metrics: u32) -> Vec<pb::EpochMetrics> {
    (first_epoch..first_epoch + epochs)
        .map(|epoch| pb::EpochMetrics {
            epoch,
            step: epoch as i64,
            metrics: (0..metrics)
                .map(|m| pb::Metric { name: format!("m{m:02}"), value: epoch as f64 + m as f64 / 100.0 })
                .collect(),
        })
        .collect()
}

/// A rate, guarding against a zero interval.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}
