//! `scale`: a sweep of N tiny trials (10k to 1M) through a real `sweep-coordinator` process.
//! Submission in parts, then M simulated agents Lease in batches, report one metric row and
//! Complete each trial until every one succeeded. A prober agent holds one lease of its own sweep
//! and heartbeats it every 100 ms throughout, so the table says how long an agent's call waited
//! while a big sweep was stored and run. The coordinator's memory is read from /proc; the
//! sweep's trials.parquet is read back and must hold exactly N succeeded trials.

use crate::harness::{self, per_second};
use crate::lease_rate::simulated_agent;
use crate::process::{CoordinatorProcess, Memory};
use crate::report::Table;
use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sweep_proto::v1::{self as pb, agent_service_client::AgentServiceClient, sweep_service_client::SweepServiceClient};
use sweep_spec::duration::parse_duration;
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

#[derive(Args, Debug, Clone)]
pub struct ScaleArgs {
    /// Sweep sizes, one fresh coordinator each; a size of 1,000 or more must be a multiple of
    /// 1,000 (the grid is N/1000 x 1000, as a user writes a million-trial sweep).
    #[arg(long = "sizes", env = "SWEEP_BENCH_SIZES", value_delimiter = ',', default_values_t = [10_000u32, 100_000, 1_000_000])]
    pub sizes: Vec<u32>,
    /// Simulated agents, each on its own connection.
    #[arg(long = "scale-agents", env = "SWEEP_BENCH_SCALE_AGENTS", default_value_t = 64)]
    pub scale_agents: u32,
    /// Free slots each simulated agent asks for per Lease call.
    #[arg(long = "scale-batch", env = "SWEEP_BENCH_SCALE_BATCH", default_value_t = 8)]
    pub scale_batch: u32,
    /// How often the prober heartbeats its lease.
    #[arg(long = "probe-every", env = "SWEEP_BENCH_PROBE_EVERY", default_value = "100ms", value_parser = parse_duration)]
    pub probe_every: Duration,
    /// The coordinator's lease lifetime: a heartbeat that waits this long loses its lease.
    #[arg(long = "scale-lease-ttl", env = "SWEEP_BENCH_SCALE_LEASE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub scale_lease_ttl: Duration,
    /// The `sweep-coordinator` binary to run [default: the one next to this program; build both
    /// with `cargo build --release`].
    #[arg(long = "coordinator-bin", env = "SWEEP_BENCH_COORDINATOR_BIN")]
    pub coordinator_bin: Option<PathBuf>,
    /// How long to wait after the last Complete for trials.parquet to show every trial succeeded.
    #[arg(long = "parquet-patience", env = "SWEEP_BENCH_PARQUET_PATIENCE", default_value = "10m", value_parser = parse_duration)]
    pub parquet_patience: Duration,
    /// Stop after the submission: its time, heartbeats and memory, then cancel the sweep and time
    /// that with its heartbeats (a million-trial run takes most of an hour, its submission and
    /// cancel a minute or two).
    #[arg(long = "submit-only", env = "SWEEP_BENCH_SUBMIT_ONLY")]
    pub submit_only: bool,
}

/// One size's figures.
pub struct ScaleRun {
    pub n: u32,
    /// Parsing and expanding the sweep file in this process, before anything is sent.
    pub expand: Duration,
    pub submit: Duration,
    pub heartbeats_submit: Latencies,
    pub memory_after_submit: Memory,
    /// None with `--submit-only`.
    pub ran: Option<Ran>,
    /// With `--submit-only`.
    pub cancelled: Option<Cancelled>,
}

/// Cancelling the submitted sweep, every trial of it pending.
pub struct Cancelled {
    pub cancel: Duration,
    pub heartbeats: Latencies,
}

/// The figures of leasing and completing every trial.
pub struct Ran {
    pub run: Duration,
    pub heartbeats_run: Latencies,
    pub memory_end: Memory,
    pub parquet_rows: usize,
    pub parquet_lag: Duration,
}

pub struct ScaleResult {
    pub runs: Vec<ScaleRun>,
}

/// Heartbeat round trips of one phase, sorted.
#[derive(Default, Clone)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    fn quantile(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.0.len() as f64 - 1.0) * q).round() as usize;
        self.0[i]
    }

    pub fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    pub fn max(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }

    fn cell(&self) -> String {
        format!("{} / {} / {} ({} beats)", ms(self.p50()), ms(self.p99()), ms(self.max()), self.0.len())
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The machine's load averages, as `uptime` prints them.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub async fn run(args: &ScaleArgs, tmp_root: Option<&Path>) -> anyhow::Result<ScaleResult> {
    let binary = match &args.coordinator_bin {
        Some(b) => b.clone(),
        None => CoordinatorProcess::default_binary()?,
    };
    anyhow::ensure!(binary.is_file(), "no coordinator binary at {}: pass --coordinator-bin", binary.display());
    let mut runs = Vec::new();
    for &n in &args.sizes {
        anyhow::ensure!(n > 0 && (n < 1000 || n % 1000 == 0), "--sizes: {n} is not a multiple of 1,000");
        let load_before = load();
        let r = run_one(args, &binary, tmp_root, n).await.with_context(|| format!("the run of {n} trials"))?;
        // A million trials take most of an hour: each size's figures are printed as they come.
        println!("{}", table(args, &binary, &r, &load_before).render());
        runs.push(r);
    }
    Ok(ScaleResult { runs })
}

fn table(args: &ScaleArgs, binary: &Path, r: &ScaleRun, load_before: &str) -> Table {
    let n = r.n as f64;
    let mut t = Table::new(format!("scale: {} trials through a sweep-coordinator process", r.n));
    t.row("coordinator", binary.display().to_string());
    t.row("simulated agents x lease batch", format!("{} x {}", args.scale_agents, args.scale_batch));
    t.row("expand the sweep file (client side, before submit)", format!("{:.2} s", r.expand.as_secs_f64()));
    t.row(
        "submit (parts of 10,000 trials)",
        format!("{:.2} s, {:.1} µs/trial", r.submit.as_secs_f64(), r.submit.as_secs_f64() * 1e6 / n),
    );
    t.row(
        format!("heartbeat every {} during submit: p50 / p99 / max", ms(args.probe_every)),
        r.heartbeats_submit.cell(),
    );
    t.row(
        "coordinator RSS after submit (peak / now)",
        format!("{} / {}", mib(r.memory_after_submit.peak), mib(r.memory_after_submit.current)),
    );
    let Some(ran) = &r.ran else {
        t.row("run", "not run (--submit-only)".to_string());
        if let Some(c) = &r.cancelled {
            t.row("cancel every trial", format!("{:.2} s", c.cancel.as_secs_f64()));
            t.row(
                format!("heartbeat every {} during cancel: p50 / p99 / max", ms(args.probe_every)),
                c.heartbeats.cell(),
            );
        }
        t.row("load average before / after", format!("{load_before} / {}", load()));
        return t;
    };
    t.row(
        "run (first Lease -> last Complete)",
        format!(
            "{:.1} s, {:.3} ms/trial, {:.0} trials/s",
            ran.run.as_secs_f64(),
            ran.run.as_secs_f64() * 1e3 / n,
            per_second(r.n as u64, ran.run)
        ),
    );
    t.row(format!("heartbeat every {} during run: p50 / p99 / max", ms(args.probe_every)), ran.heartbeats_run.cell());
    t.row(
        "coordinator RSS at the end (peak / now)",
        format!("{} / {}", mib(ran.memory_end.peak), mib(ran.memory_end.current)),
    );
    t.row(
        "trials.parquet check",
        format!(
            "{} succeeded rows of distinct trials, complete {:.1} s after the last Complete",
            ran.parquet_rows,
            ran.parquet_lag.as_secs_f64()
        ),
    );
    t.row("load average before / after", format!("{load_before} / {}", load()));
    t
}

/// The sweep file of `n` tiny trials: a grid of n/1000 x 1000 values.
fn grid_text(name: &str, n: u32) -> String {
    let (rows, cols) = if n >= 1000 { (n / 1000, 1000) } else { (n, 1) };
    let values = |k: u32| (0..k).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let command: Vec<String> =
        harness::TINY_COMMAND.iter().map(|w| serde_json::to_string(w).expect("strings serialize")).collect();
    format!(
        "name = \"{name}\"\nworkload = \"command\"\ncommand = [{}]\n[grid]\na = [{}]\nb = [{}]\n[retry]\nmax_attempts = 1\n",
        command.join(", "),
        values(rows),
        values(cols)
    )
}

async fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_string())?.tcp_nodelay(true).connect().await?)
}

const SUBMIT: u8 = 0;
const RUN: u8 = 1;
const CANCEL: u8 = 2;
const DONE: u8 = 3;
/// Heartbeats are recorded under the phase they started in: submit, run, cancel.
type Beats = [Vec<Duration>; 3];

async fn run_one(args: &ScaleArgs, binary: &Path, tmp_root: Option<&Path>, n: u32) -> anyhow::Result<ScaleRun> {
    let dir = match tmp_root {
        Some(root) => tempfile::Builder::new().prefix("sweep-bench-scale-").tempdir_in(root)?,
        None => tempfile::Builder::new().prefix("sweep-bench-scale-").tempdir()?,
    };
    let ttl = format!("{}ms", args.scale_lease_ttl.as_millis());
    let coordinator = CoordinatorProcess::start(binary, dir.path(), &["--lease-ttl".into(), ttl])?;
    let mut sweeps = SweepServiceClient::new(channel(&coordinator.url).await?);

    // The prober's own one-trial sweep, leased before the big one arrives.
    harness::submit_text(&mut sweeps, "probe", harness::tiny_sweep_text("probe", 1), 1, dir.path()).await?;
    let mut prober = AgentServiceClient::new(channel(&coordinator.url).await?);
    let (probe_id, probe_secret) = harness::register(&mut prober, "prober", 1).await?;
    let req = pb::LeaseRequest {
        agent_id: probe_id.clone(),
        free_slots: 1,
        session_secret: probe_secret.clone(),
        only_sweep: "probe".into(),
        ..Default::default()
    };
    let probe_lease = prober.lease(req).await?.into_inner().leases.pop().context("the prober got no lease")?.lease_id;
    let phase = Arc::new(AtomicU8::new(SUBMIT));
    let beats: Arc<Mutex<Beats>> = Arc::default();
    let probe = tokio::spawn(heartbeat_forever(
        prober,
        probe_id,
        probe_secret,
        probe_lease,
        args.probe_every,
        phase.clone(),
        beats.clone(),
    ));

    let name = format!("scale-{n}");
    let text = grid_text(&name, n);
    let started = Instant::now();
    let req = harness::submit_request(&name, text, n, dir.path())?;
    let expand = started.elapsed();
    let started = Instant::now();
    let resp = sweep_proto::submit::submit_in_parts(&mut sweeps, req, sweep_proto::submit::TRIALS_PER_PART).await?;
    let submit = started.elapsed();
    anyhow::ensure!(resp.trials_added == n, "expected {n} trials added, got {}", resp.trials_added);
    let memory_after_submit = coordinator.memory()?;
    if args.submit_only {
        phase.store(CANCEL, Ordering::Relaxed);
        let started = Instant::now();
        let req = pb::CancelSweepRequest { sweep_id: name.clone() };
        let cancelled = sweeps.cancel_sweep(req).await?.into_inner().trials_cancelled;
        let cancel = started.elapsed();
        anyhow::ensure!(cancelled == n, "expected {n} trials cancelled, got {cancelled}");
        phase.store(DONE, Ordering::Relaxed);
        probe.await??;
        coordinator.stop(Duration::from_secs(120))?;
        let [submit_beats, _, cancel_beats] = sorted(&beats);
        return Ok(ScaleRun {
            n,
            expand,
            submit,
            heartbeats_submit: Latencies(submit_beats),
            memory_after_submit,
            ran: None,
            cancelled: Some(Cancelled { cancel, heartbeats: Latencies(cancel_beats) }),
        });
    }

    let mut agents = Vec::new();
    for i in 0..args.scale_agents {
        let mut client = AgentServiceClient::new(channel(&coordinator.url).await?);
        let (id, secret) = harness::register(&mut client, &format!("sim-{i}"), args.scale_batch).await?;
        agents.push((client, id, secret));
    }
    phase.store(RUN, Ordering::Relaxed);
    let started = Instant::now();
    let mut running = JoinSet::new();
    for (client, id, secret) in agents {
        running.spawn(simulated_agent(client, id, secret, args.scale_batch, name.clone(), Default::default()));
    }
    let mut done = 0u64;
    while let Some(r) = running.join_next().await {
        done += r??;
    }
    let run = started.elapsed();
    phase.store(DONE, Ordering::Relaxed);
    probe.await??;
    anyhow::ensure!(done == n as u64, "expected {n} trials completed, got {done}");

    let results = sweep_coordinator::results::sweep_dir(&dir.path().join("results"), &name);
    let waited = Instant::now();
    let parquet_rows = loop {
        let rows = succeeded_rows(&results.join("trials.parquet")).unwrap_or(0);
        if rows == n as usize {
            break rows;
        }
        anyhow::ensure!(
            waited.elapsed() < args.parquet_patience,
            "trials.parquet shows {rows} succeeded trials of {n} {:?} after the last Complete",
            args.parquet_patience
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let parquet_lag = waited.elapsed();
    let memory_end = coordinator.memory()?;
    coordinator.stop(Duration::from_secs(120))?;

    let [submit_beats, run_beats, _] = sorted(&beats);
    Ok(ScaleRun {
        n,
        expand,
        submit,
        heartbeats_submit: Latencies(submit_beats),
        memory_after_submit,
        ran: Some(Ran { run, heartbeats_run: Latencies(run_beats), memory_end, parquet_rows, parquet_lag }),
        cancelled: None,
    })
}

/// The heartbeats of each phase, sorted.
fn sorted(beats: &Mutex<Beats>) -> Beats {
    let mut beats = std::mem::take(&mut *beats.lock().expect("beats"));
    for b in beats.iter_mut() {
        b.sort();
    }
    beats
}

/// Heartbeats one lease every `every` until the run is done, recording each round trip under the
/// phase it started in. A lease that is no longer current (it waited past its lifetime) fails the
/// benchmark.
async fn heartbeat_forever(
    mut client: AgentServiceClient<Channel>,
    agent_id: String,
    secret: String,
    lease_id: i64,
    every: Duration,
    phase: Arc<AtomicU8>,
    beats: Arc<Mutex<Beats>>,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = phase.load(Ordering::Relaxed);
        if now == DONE {
            return Ok(());
        }
        let req = pb::HeartbeatRequest {
            agent_id: agent_id.clone(),
            leases: vec![pb::LeaseState { lease_id, running: true }],
            session_secret: secret.clone(),
        };
        let started = Instant::now();
        let commands = client.heartbeat(req).await?.into_inner().commands;
        let took = started.elapsed();
        let action = commands.first().map(|c| c.action).unwrap_or_default();
        anyhow::ensure!(
            action == pb::LeaseAction::Continue as i32,
            "the prober's lease was not extended (action {action}) after a heartbeat of {}",
            ms(took)
        );
        beats.lock().expect("beats")[now as usize].push(took);
    }
}

/// Rows of `trials.parquet` with status `succeeded`, each of a distinct trial; 0 while the file is
/// not there. Reads only the two columns it needs.
fn succeeded_rows(path: &Path) -> anyhow::Result<usize> {
    use arrow_array::{Array, StringArray};
    use parquet::arrow::{arrow_reader::ParquetRecordBatchReaderBuilder, ProjectionMask};
    if !path.exists() {
        return Ok(0);
    }
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?;
    let schema = builder.parquet_schema();
    let wanted: Vec<usize> =
        (0..schema.num_columns()).filter(|&i| matches!(schema.column(i).name(), "trial_id" | "status")).collect();
    anyhow::ensure!(wanted.len() == 2, "{}: no trial_id or status column", path.display());
    let mask = ProjectionMask::leaves(schema, wanted);
    let mut ids = std::collections::HashSet::new();
    let mut succeeded = 0usize;
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let column = |name: &str| -> anyhow::Result<StringArray> {
            let c = batch.column_by_name(name).with_context(|| format!("no {name} column"))?;
            c.as_any().downcast_ref::<StringArray>().cloned().with_context(|| format!("{name} is not a string column"))
        };
        let (trial_ids, statuses) = (column("trial_id")?, column("status")?);
        for i in 0..batch.num_rows() {
            anyhow::ensure!(
                ids.insert(trial_ids.value(i).to_string()),
                "{}: trial {} twice",
                path.display(),
                trial_ids.value(i)
            );
            if !statuses.is_null(i) && statuses.value(i) == "succeeded" {
                succeeded += 1;
            }
        }
    }
    Ok(succeeded)
}

/// One line per size, and how the per-trial costs of the largest size compare with the smallest's.
pub fn summary(runs: &[ScaleRun]) -> String {
    let per_size: Vec<String> = runs
        .iter()
        .map(|r| {
            let n = r.n as f64;
            let submit = format!(
                "{}: submit {:.1} µs/trial, heartbeat p99 during submit {}",
                r.n,
                r.submit.as_secs_f64() * 1e6 / n,
                ms(r.heartbeats_submit.p99())
            );
            match &r.ran {
                Some(ran) => format!(
                    "{submit}, run {:.3} ms/trial, heartbeat p99 during run {}, peak RSS {}",
                    ran.run.as_secs_f64() * 1e3 / n,
                    ms(ran.heartbeats_run.p99()),
                    mib(ran.memory_end.peak)
                ),
                None => format!(
                    "{submit}, heartbeat p99 during cancel {}, peak RSS {}",
                    r.cancelled.as_ref().map_or("-".into(), |c| ms(c.heartbeats.p99())),
                    mib(r.memory_after_submit.peak)
                ),
            }
        })
        .collect();
    let mut line = format!("scale {}", per_size.join("; "));
    if let (Some(small), Some(large)) = (runs.first(), runs.last()) {
        if large.n > small.n {
            let per = |d: Duration, n: u32| d.as_secs_f64() / n as f64;
            line.push_str(&format!(
                "; per-trial cost at {} vs {}: submit x{:.2}",
                large.n,
                small.n,
                per(large.submit, large.n) / per(small.submit, small.n),
            ));
            if let (Some(l), Some(s)) = (&large.ran, &small.ran) {
                line.push_str(&format!(", run x{:.2}", per(l.run, large.n) / per(s.run, small.n)));
            }
        }
    }
    line
}
