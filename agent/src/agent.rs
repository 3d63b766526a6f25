//! The agent's main loop: register, lease trials while slots are free, run each as a supervised
//! child process, heartbeat to keep the leases, and pass the coordinator's commands on.
//! Pull, not push: the agent only needs to reach the coordinator, never the other way round.

use crate::client::{self, Client};
use crate::config::{AgentConfig, TrialRunner};
use crate::gpus::{self, GpuPool};
use crate::launch::AttemptDirs;
use crate::launch::Placement;
use crate::mps::AgentMps;
use crate::reporter::Reporter;
use crate::supervise::{self, Attempt, Control, Launch};
use anyhow::Context;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sweep_proto::v1::{self as pb, LeaseAction};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// How long a stopping agent waits for the coordinator to take its last reports; past it,
/// unreported leases simply expire.
const REPORTER_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A lease this agent is running: how to reach its supervisor, and whether its process started.
struct Active {
    /// The launch's supervisor; the members of a fused group share it.
    control: mpsc::Sender<(i64, Control)>,
    started: watch::Receiver<bool>,
}

/// A launch's result: the GPUs it held and how each of its leases ended.
type Finished = (gpus::Taken, supervise::Ended);

type ActiveMap = Arc<Mutex<HashMap<i64, Active>>>;

/// Runs until `shutdown` resolves. On shutdown the agent stops leasing and drains its trials
/// (SIGTERM: built-in workloads checkpoint; SIGKILL after the grace period), hands their leases
/// back, and returns once the coordinator has them (or the reporter gives up after a while); the
/// coordinator then hands them out again as new attempts, which resume from the checkpoints.
pub async fn run(
    config: AgentConfig,
    runner: TrialRunner,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    // `--gpus ''` (or an empty SWEEP_GPUS) means no GPUs.
    let gpus: Vec<String> = match &config.gpus {
        Some(list) => list.iter().map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect(),
        None => gpus::detect(),
    };
    let slots = config.slots.unwrap_or(gpus.len().max(1) as u32);
    let runner = runner.sharing_cores(slots);
    let client = client::connect(&config.coordinator)?;
    let hostname = hostname();
    let name = config.name.clone().unwrap_or_else(|| hostname.clone());
    // Held until the agent returns: dropping it stops a daemon this agent started.
    let mut mps = match gpus.is_empty() {
        true => None,
        false => Some(AgentMps::new(config.mps, config.work_dir.join("mps").join(&name)).map_err(anyhow::Error::msg)?),
    };
    let register = pb::RegisterRequest { name, hostname, slots, gpus: gpus.clone() };
    let registered = tokio::select! {
        r = client::with_retry("register", || { let mut c = client.clone(); let r = register.clone(); async move { c.register(r).await } }) => {
            r.with_context(|| format!("registering with {}", config.coordinator))?.into_inner()
        }
        _ = &mut shutdown => return Ok(()),
    };
    let agent_id = registered.agent_id;
    tracing::info!(agent = %agent_id, slots, gpus = ?gpus, coordinator = %config.coordinator, "agent registered");

    let (reporter, reporter_task) = Reporter::spawn(client.clone());
    {
        let (reporter, work_dir) = (reporter.clone(), config.work_dir.clone());
        tokio::spawn(async move {
            let sent = crate::recover::replay_unreported(&work_dir, &reporter).await;
            if sent > 0 {
                tracing::info!(records = sent, "re-sent metrics from before a restart");
            }
        });
    }
    let active: ActiveMap = Arc::default();
    let wake_heartbeat = Arc::new(tokio::sync::Notify::new());
    let heartbeat_every = Duration::from_millis(registered.heartbeat_interval_ms.max(50) as u64);
    let heartbeats = tokio::spawn(heartbeat_forever(
        client.clone(),
        agent_id.clone(),
        active.clone(),
        heartbeat_every,
        wake_heartbeat.clone(),
    ));

    let mut pool = GpuPool::new(&gpus);
    let mut running: JoinSet<Finished> = JoinSet::new();
    let checkpoint_root = config.checkpoint_root();
    let mut failures = 0u32;
    loop {
        let free = slots.saturating_sub(running.len() as u32);
        let mut granted = 0;
        if free > 0 {
            let shares = pool.free_shares();
            // The driver's view counts memory other processes use too. Asked only when some GPU
            // has room (otherwise no GPU trial can be granted), and off the async workers:
            // nvidia-smi can take a second on a busy node.
            let gpu_free_bytes = if shares.iter().any(|&s| s > 0.0) {
                tokio::task::spawn_blocking(gpus::free_memory).await.unwrap_or_default()
            } else {
                Vec::new()
            };
            let req = pb::LeaseRequest {
                agent_id: agent_id.clone(),
                free_slots: free,
                free_gpus: pool.free(),
                gpu_free_shares: shares,
                gpu_free_bytes,
            };
            match client.clone().lease(req).await {
                Ok(resp) => {
                    failures = 0;
                    for launch in by_group(resp.into_inner().leases) {
                        granted += 1;
                        start_launch(
                            launch,
                            &mut pool,
                            &config,
                            &checkpoint_root,
                            &runner,
                            mps.as_mut(),
                            &reporter,
                            &active,
                            &mut running,
                        );
                        wake_heartbeat.notify_one();
                    }
                }
                Err(status) if status.code() == tonic::Code::NotFound => {
                    // The coordinator's store no longer has this agent (it was reset): nothing this
                    // agent holds is valid there. Exit so the supervisor (Slurm, Kubernetes) restarts it.
                    tracing::error!(error = status.message(), "the coordinator does not know this agent; stopping");
                    shutdown_trials(&active, &mut running).await;
                    anyhow::bail!(
                        "the coordinator at {} does not know agent {agent_id}: {}",
                        config.coordinator,
                        status.message()
                    );
                }
                Err(status) => {
                    failures += 1;
                    tracing::warn!(code = ?status.code(), error = status.message(), "lease request failed");
                }
            }
        }
        // Ask again at once while trials keep coming; otherwise wait for a free slot or the poll.
        let wait = if failures > 0 {
            sweep_spec::backoff::full_jitter(
                failures,
                Duration::from_millis(200),
                Duration::from_secs(10),
                sweep_spec::backoff::jitter_unit(),
            )
        } else if granted > 0 && granted < free {
            Duration::ZERO
        } else {
            config.poll_interval
        };
        let full = free == granted;
        tokio::select! {
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok((gpus, ended)) = done {
                    // The slot is free as soon as the process ended; each lease stays in the
                    // heartbeats until the coordinator has its completion.
                    pool.give_back(gpus);
                    for (lease_id, delivery) in ended {
                        let active = active.clone();
                        tokio::spawn(async move {
                            if let Some(d) = delivery {
                                d.wait().await;
                            }
                            active.lock().expect("active map").remove(&lease_id);
                        });
                    }
                }
            }
            _ = tokio::time::sleep(wait), if !full || wait.is_zero() => {}
            _ = &mut shutdown => break,
        }
    }

    tracing::info!(agent = %agent_id, trials = running.len(), "agent stopping; its leases will be retried elsewhere");
    shutdown_trials(&active, &mut running).await;
    heartbeats.abort();
    drop(reporter);
    // Hand-backs queued by the drained trials go out before the agent exits.
    let _ = tokio::time::timeout(REPORTER_DRAIN_TIMEOUT, reporter_task).await;
    Ok(())
}

/// Drains every trial this agent runs; each hands its lease back through the reporter.
async fn shutdown_trials(active: &ActiveMap, running: &mut JoinSet<Finished>) {
    for (lease_id, a) in active.lock().expect("active map").iter() {
        let _ = a.control.try_send((*lease_id, Control::Drain));
    }
    while running.join_next().await.is_some() {}
}

/// The leases of one response as launches: the members of a fused group (same `group`) together,
/// every other lease alone, in the order the coordinator granted them.
fn by_group(leases: Vec<pb::Lease>) -> Vec<Vec<pb::Lease>> {
    let mut launches: Vec<Vec<pb::Lease>> = Vec::new();
    for lease in leases {
        match launches.iter_mut().find(|l| lease.group != 0 && l[0].group == lease.group) {
            Some(group) => group.push(lease),
            None => launches.push(vec![lease]),
        }
    }
    launches
}

#[allow(clippy::too_many_arguments)]
fn start_launch(
    leases: Vec<pb::Lease>,
    pool: &mut GpuPool,
    config: &AgentConfig,
    checkpoint_root: &std::path::Path,
    runner: &TrialRunner,
    mps: Option<&mut AgentMps>,
    reporter: &Reporter,
    active: &ActiveMap,
    running: &mut JoinSet<Finished>,
) {
    let reporter = reporter.clone();
    let mut members = Vec::new();
    let mut unreadable = Vec::new();
    for lease in leases {
        match lease.trial.and_then(|t| t.into_spec(&lease.sweep_id).ok()) {
            Some(spec) => {
                let dirs = AttemptDirs::new(&config.work_dir, checkpoint_root, &spec, lease.attempt);
                members.push(Attempt { lease_id: lease.lease_id, attempt: lease.attempt, spec, dirs });
            }
            None => unreadable.push(lease.lease_id),
        }
    }
    if !unreadable.is_empty() || members.is_empty() {
        // One unreadable member spoils its group: every lease of it ends with the launch error.
        let leases: Vec<i64> = unreadable.into_iter().chain(members.iter().map(|m| m.lease_id)).collect();
        tracing::error!(leases = ?leases, "lease without a readable trial");
        running.spawn(async move {
            for &lease_id in &leases {
                let req = pb::CompleteRequest {
                    lease_id,
                    launch_error: "the lease (or one of its fused group) carried no readable trial".into(),
                    ..Default::default()
                };
                reporter.complete(req).await;
            }
            (gpus::Taken::default(), leases.into_iter().map(|l| (l, None)).collect())
        });
        return;
    }
    let resources = members[0].spec.resources;
    let taken = pool.take(resources.gpus, resources.gpu_share).unwrap_or_default();
    let (control_tx, control_rx) = mpsc::channel(4 * members.len());
    let (started_tx, started_rx) = watch::channel(false);
    {
        let mut map = active.lock().expect("active map");
        for m in &members {
            map.insert(m.lease_id, Active { control: control_tx.clone(), started: started_rx.clone() });
        }
    }
    // Only trials packed onto a shared GPU run under MPS.
    let env = match (taken.share, mps) {
        (Some(_), Some(mps)) => mps.packed_env(),
        _ => Vec::new(),
    };
    let placement = Placement { gpus: taken.gpus.clone(), device: config.device.clone(), env };
    let launch = Launch { members, placement };
    let runner = runner.clone();
    let grace = config.stop_grace;
    running.spawn(async move {
        let ended = supervise::run(launch, &runner, &reporter, control_rx, started_tx, grace).await;
        (taken, ended)
    });
}

/// Heartbeats every `every`, and soon after a trial starts so `sweep status` shows it running.
async fn heartbeat_forever(
    client: Client,
    agent_id: String,
    active: ActiveMap,
    every: Duration,
    wake: Arc<tokio::sync::Notify>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = wake.notified() => {
                // Give the process a moment to start, so the beat can say it runs.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let leases: Vec<pb::LeaseState> = active
            .lock()
            .expect("active map")
            .iter()
            .map(|(id, a)| pb::LeaseState { lease_id: *id, running: *a.started.borrow() })
            .collect();
        let req = pb::HeartbeatRequest { agent_id: agent_id.clone(), leases };
        match client.clone().heartbeat(req).await {
            Ok(resp) => {
                let map = active.lock().expect("active map");
                for cmd in resp.into_inner().commands {
                    let control = match LeaseAction::try_from(cmd.action) {
                        Ok(LeaseAction::Stop) => Control::Stop,
                        Ok(LeaseAction::Abandon) => Control::Abandon,
                        _ => continue,
                    };
                    if let Some(a) = map.get(&cmd.lease_id) {
                        tracing::info!(lease = cmd.lease_id, ?control, "coordinator command");
                        let _ = a.control.try_send((cmd.lease_id, control));
                    }
                }
            }
            Err(status) => tracing::warn!(code = ?status.code(), error = status.message(), "heartbeat failed"),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
