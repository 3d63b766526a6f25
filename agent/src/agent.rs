//! The agent's main loop: register, lease trials while slots are free, run each as a supervised
//! child process, heartbeat to keep the leases, and pass the coordinator's commands on.
//! Pull, not push: the agent only needs to reach the coordinator, never the other way round.

use crate::client::{self, Client};
use crate::config::{AgentConfig, TrialRunner};
use crate::gpus::{self, GpuPool};
use crate::heartbeat::{self, ActiveLeases};
use crate::held;
use crate::launch::Placement;
use crate::leases;
use crate::mps::AgentMps;
use crate::reporter::Reporter;
use crate::session::Session;
use crate::supervise::{self, Launch};
use anyhow::Context;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use sweep_proto::v1 as pb;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::{JoinError, JoinHandle, JoinSet};

/// How long a stopping agent waits for the coordinator to take its last reports; past it,
/// unreported leases simply expire.
const REPORTER_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Backoff between failed lease requests: from this base, doubling up to the cap.
const LEASE_RETRY_BASE: Duration = Duration::from_millis(200);
const LEASE_RETRY_CAP: Duration = Duration::from_secs(10);

/// Leases are held ahead of free slots (`--lease-ahead`) only while trials are this short: for
/// longer ones a round trip to the coordinator is noise, and a lease held ahead would keep its
/// trial from an agent that is idle now. Nor after a trial failed: a broken sweep or node would
/// fail the held trials too, using up their attempts before the coordinator pauses the sweep or
/// quarantines the node.
const LEASE_AHEAD_BELOW: Duration = Duration::from_secs(10);

/// A launch's result: the GPUs it held, how each of its leases ended, and how its process ran.
struct Finished {
    gpus: gpus::Taken,
    ended: supervise::Ended,
    ran: Ran,
}

enum Ran {
    /// The process never started.
    Never,
    /// It ran this long and exited 0.
    Clean(Duration),
    /// It failed, or was stopped, drained or abandoned.
    NotClean,
}

/// Runs until `shutdown` resolves. On shutdown the agent stops leasing and drains its trials
/// (SIGTERM: built-in workloads checkpoint; SIGKILL after the grace period), hands their leases
/// back, and returns once the coordinator has them (or the reporter gives up after a while); the
/// coordinator then hands them out again as new attempts, which resume from the checkpoints.
pub async fn run(config: AgentConfig, runner: TrialRunner, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let client = client::connect(&config.coordinator)?;
    let node = Node::detect(&config)?;
    let registered = tokio::select! {
        r = register(&client, node.register_request()) => {
            r.with_context(|| format!("registering with {}", config.coordinator))?
        }
        _ = &mut shutdown => return Ok(()),
    };
    tracing::info!(agent = %registered.agent_id, slots = node.slots, gpus = ?node.gpus, coordinator = %config.coordinator, "agent registered");
    let mut agent = Agent::new(config, runner, client, node, registered);
    agent.lease_until(&mut shutdown).await?;
    agent.stop().await;
    Ok(())
}

/// The node as the agent found it: what it tells the coordinator when it registers, and the MPS
/// daemon of its packed trials.
struct Node {
    gpus: Vec<String>,
    slots: u32,
    hostname: String,
    name: String,
    /// Held until the agent returns: dropping it stops a daemon this agent started.
    mps: Option<AgentMps>,
}

impl Node {
    /// Fails only when `--mps on` finds no CUDA MPS.
    fn detect(config: &AgentConfig) -> anyhow::Result<Node> {
        let gpus = match &config.gpus {
            Some(list) => listed_gpus(list),
            None => gpus::detect(),
        };
        let slots = config.slots.unwrap_or(gpus.len().max(1) as u32);
        let hostname = hostname();
        let name = config.name.clone().unwrap_or_else(|| hostname.clone());
        let mps = match gpus.is_empty() {
            true => None,
            false => {
                Some(AgentMps::new(config.mps, config.work_dir.join("mps").join(&name)).map_err(anyhow::Error::msg)?)
            }
        };
        Ok(Node { gpus, slots, hostname, name, mps })
    }

    fn register_request(&self) -> pb::RegisterRequest {
        let (name, hostname) = (self.name.clone(), self.hostname.clone());
        pb::RegisterRequest { name, hostname, slots: self.slots, gpus: self.gpus.clone() }
    }
}

/// `--gpus` as given; `--gpus ''` (or an empty SWEEP_GPUS) means no GPUs.
fn listed_gpus(list: &[String]) -> Vec<String> {
    list.iter().map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect()
}

async fn register(client: &Client, req: pb::RegisterRequest) -> Result<pb::RegisterResponse, tonic::Status> {
    let registered = client::with_retry("register", || {
        let (mut c, r) = (client.clone(), req.clone());
        async move { c.register(r).await }
    });
    registered.await.map(tonic::Response::into_inner)
}

/// A registered agent and everything it owns: its slots and GPUs, the launches running on them,
/// the leases the heartbeats keep, and the queue of reports to the coordinator.
struct Agent {
    config: AgentConfig,
    runner: TrialRunner,
    client: Client,
    /// This registration: the agent id and the secret every call carries.
    session: Session,
    slots: u32,
    /// One permit per slot: a launch's process runs only while it holds one.
    free_slots: Arc<Semaphore>,
    /// Leases held ahead of free slots at most, while trials are short.
    lease_ahead: u32,
    /// How long the last trial to end ran, if it ended well.
    last_run: Option<Duration>,
    pool: GpuPool,
    /// Held until the agent returns: dropping it stops a daemon this agent started.
    mps: Option<AgentMps>,
    checkpoint_root: PathBuf,
    reporter: Reporter,
    reporter_task: JoinHandle<()>,
    active: ActiveLeases,
    wake_heartbeat: Arc<Notify>,
    heartbeats: JoinHandle<()>,
    running: JoinSet<Finished>,
    /// Lease requests failed in a row; the wait before the next one grows with it.
    failures: u32,
    /// Why the coordinator quarantined this agent, as it last said; logged when it changes.
    quarantine: Option<String>,
}

impl Agent {
    /// Starts the reporter (re-sending what an earlier run of this agent left unreported) and the
    /// heartbeats.
    fn new(
        config: AgentConfig,
        runner: TrialRunner,
        client: Client,
        node: Node,
        registered: pb::RegisterResponse,
    ) -> Agent {
        let checkpoint_root = crate::checkpoint_root::choose(&config, &registered);
        let session = Session::new(registered.agent_id, registered.session_secret);
        if let Err(e) = session.save(&config.work_dir) {
            tracing::warn!(error = %e, "could not keep the session secret: output left unreported by this run cannot be re-sent after a restart");
        }
        let wake_heartbeat = Arc::new(Notify::new());
        let (reporter, reporter_task) = Reporter::spawn(client.clone(), session.clone(), wake_heartbeat.clone());
        let (replaying, work_dir) = (reporter.clone(), config.work_dir.clone());
        tokio::spawn(async move {
            let sent = crate::recover::replay_unreported(&work_dir, &replaying).await;
            if sent > 0 {
                tracing::info!(records = sent, "re-sent metrics from before a restart");
            }
        });
        let active = ActiveLeases::default();
        let every = Duration::from_millis(registered.heartbeat_interval_ms.max(50) as u64);
        let beats =
            heartbeat::beat_forever(client.clone(), session.clone(), active.clone(), every, wake_heartbeat.clone());
        Agent {
            checkpoint_root,
            runner: runner.sharing_cores(node.slots),
            client,
            session,
            slots: node.slots,
            free_slots: Arc::new(Semaphore::new(node.slots as usize)),
            lease_ahead: config.lease_ahead.unwrap_or(node.slots),
            last_run: None,
            pool: GpuPool::new(&node.gpus),
            mps: node.mps,
            reporter,
            reporter_task,
            active,
            wake_heartbeat,
            heartbeats: tokio::spawn(beats),
            running: JoinSet::new(),
            failures: 0,
            quarantine: None,
            config,
        }
    }

    /// Leases and starts trials while slots are free, until `shutdown` resolves. Err: the
    /// coordinator no longer knows this agent; its trials were drained first.
    async fn lease_until(&mut self, shutdown: &mut (impl Future<Output = ()> + Unpin)) -> anyhow::Result<()> {
        loop {
            let free = self.capacity().saturating_sub(self.running.len() as u32);
            // An idle agent lets the coordinator hold its request until trials are queued (up to
            // the poll interval), so a sweep submitted meanwhile starts at once; a busy one asks
            // without waiting, since its loop must see its trials end.
            let hold = if self.running.is_empty() { self.config.poll_interval } else { Duration::ZERO };
            let asked = tokio::time::Instant::now();
            let granted = if free > 0 { self.lease(free, hold).await? } else { 0 };
            let jitter = sweep_spec::backoff::jitter_unit();
            let wait = next_wait(free, granted, self.failures, self.config.poll_interval, jitter);
            // A coordinator that held the request has waited already.
            let wait =
                wait.map(|w| if granted == 0 && !hold.is_zero() { w.saturating_sub(asked.elapsed()) } else { w });
            tokio::select! {
                Some(done) = self.running.join_next(), if !self.running.is_empty() => self.launch_ended(done),
                _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
                _ = &mut *shutdown => return Ok(()),
            }
        }
    }

    /// Launches this agent takes at once, running or waiting for a slot: its slots, and while its
    /// trials are short and end well as many leases held ahead as `--lease-ahead` allows.
    fn capacity(&self) -> u32 {
        let short = self.last_run.is_some_and(|ran| ran < LEASE_AHEAD_BELOW);
        self.slots + if short { self.lease_ahead } else { 0 }
    }

    /// Asks for work for `free` slots and starts what the coordinator grants; returns how many
    /// launches started.
    async fn lease(&mut self, free: u32, hold: Duration) -> anyhow::Result<u32> {
        let req = self.lease_request(free, hold).await;
        let granted = match self.client.clone().lease(req).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                self.note_quarantine(resp.quarantine);
                resp.leases
            }
            // NOT_FOUND: the store no longer has this agent. PERMISSION_DENIED: its id now belongs
            // to another registration (the store was replaced). Either way this registration is over.
            Err(status) if matches!(status.code(), tonic::Code::NotFound | tonic::Code::PermissionDenied) => {
                return Err(self.forgotten(status).await)
            }
            Err(status) => {
                self.failures += 1;
                tracing::warn!(code = ?status.code(), error = status.message(), "lease request failed");
                return Ok(0);
            }
        };
        self.failures = 0;
        let launches = leases::by_group(granted);
        let started = launches.len() as u32;
        for launch in launches {
            self.start_launch(launch);
        }
        Ok(started)
    }

    /// Logs when the coordinator quarantines this agent or lets it out: a quarantined agent stays
    /// connected but gets no trials, and its operator should see why in its own log.
    fn note_quarantine(&mut self, reason: String) {
        let now = (!reason.is_empty()).then_some(reason);
        if now == self.quarantine {
            return;
        }
        match &now {
            Some(reason) => tracing::error!(
                evidence = %sweep_spec::text::escape(reason),
                "quarantined by the coordinator: no trials until the node is fixed and `sweep agents --unquarantine` is run"
            ),
            None => tracing::info!("out of quarantine: leasing trials again"),
        }
        self.quarantine = now;
    }

    async fn lease_request(&self, free: u32, hold: Duration) -> pb::LeaseRequest {
        let shares = self.pool.free_shares();
        // The driver's view counts memory other processes use too. Asked only when some GPU has
        // room (otherwise no GPU trial can be granted), and off the async workers: nvidia-smi can
        // take a second on a busy node.
        let gpu_free_bytes = if shares.iter().any(|&s| s > 0.0) {
            tokio::task::spawn_blocking(gpus::free_memory).await.unwrap_or_default()
        } else {
            Vec::new()
        };
        pb::LeaseRequest {
            agent_id: self.session.agent_id.clone(),
            session_secret: self.session.secret(),
            free_slots: free,
            free_gpus: self.pool.free(),
            gpu_free_shares: shares,
            gpu_free_bytes,
            only_sweep: self.config.only_sweep.clone().unwrap_or_default(),
            wait_ms: u32::try_from(hold.as_millis()).unwrap_or(u32::MAX),
        }
    }

    /// The coordinator's store no longer has this agent (it was reset): nothing this agent holds
    /// is valid there. The agent drains and fails, so its supervisor (Slurm, Kubernetes) restarts it.
    async fn forgotten(&mut self, status: tonic::Status) -> anyhow::Error {
        tracing::error!(error = status.message(), "the coordinator does not know this agent; stopping");
        self.drain().await;
        let (coordinator, agent_id) = (&self.config.coordinator, &self.session.agent_id);
        anyhow::anyhow!("the coordinator at {coordinator} does not know agent {agent_id}: {}", status.message())
    }

    /// Starts one launch (a trial alone or a fused group) on the GPUs it asked for, under its own
    /// supervisor, and adds its leases to the heartbeats. Its process starts once a slot is free
    /// (at once, unless the lease was granted ahead of one).
    fn start_launch(&mut self, granted: Vec<pb::Lease>) {
        let members = match leases::attempts(granted, &self.config.work_dir, &self.checkpoint_root) {
            Ok(members) => members,
            Err(leases) => return self.refuse(leases),
        };
        let resources = members[0].spec.resources;
        let taken = self.pool.take(resources.gpus, resources.gpu_share).unwrap_or_default();
        let (control_tx, control_rx) = mpsc::channel(4 * members.len());
        let (started_tx, started_rx) = watch::channel(false);
        let lease_ids: Vec<i64> = members.iter().map(|m| m.lease_id).collect();
        self.active.insert(&lease_ids, &control_tx, &started_rx);
        // Only trials packed onto a shared GPU run under MPS.
        let env = match (taken.share, self.mps.as_mut()) {
            (Some(_), Some(mps)) => mps.packed_env(),
            _ => Vec::new(),
        };
        let placement = Placement { gpus: taken.gpus.clone(), device: self.config.device.clone(), env };
        let launch = Launch { members, placement };
        let (runner, reporter, grace) = (self.runner.clone(), self.reporter.clone(), self.config.stop_grace);
        let (slots, wake_heartbeat) = (self.free_slots.clone(), self.wake_heartbeat.clone());
        self.running.spawn(async move {
            let (launch, slot, control_rx, mut ended) = match held::for_slot(slots, launch, control_rx, &reporter).await
            {
                held::Waited::Run { launch, slot, control, ended } => (launch, slot, control, ended),
                held::Waited::Done(ended) => return Finished { gpus: taken, ended, ran: Ran::Never },
            };
            wake_heartbeat.notify_one();
            let started = std::time::Instant::now();
            let (more, clean) = supervise::run(launch, &runner, &reporter, control_rx, started_tx, grace).await;
            ended.extend(more);
            // The slot is free for a launch waiting for one as soon as the process has ended.
            drop(slot);
            let ran = if clean { Ran::Clean(started.elapsed()) } else { Ran::NotClean };
            Finished { gpus: taken, ended, ran }
        });
    }

    /// Ends, as a launch that could not start, the leases of one that carries no readable trial.
    fn refuse(&mut self, leases: Vec<i64>) {
        tracing::error!(leases = ?leases, "lease without a readable trial");
        let reporter = self.reporter.clone();
        self.running.spawn(async move {
            let why = crate::launch::LaunchError {
                message: "the lease (or one of its fused group) carried no readable trial".into(),
                permanent: false,
            };
            let ended = supervise::launch_failed(&reporter, leases, &why).await;
            Finished { gpus: gpus::Taken::default(), ended, ran: Ran::Never }
        });
    }

    /// A launch's process ended: its slot and GPUs are free at once, and each lease stays in the
    /// heartbeats until the coordinator has its completion.
    fn launch_ended(&mut self, done: Result<Finished, JoinError>) {
        let Ok(Finished { gpus, ended, ran }) = done else { return };
        self.pool.give_back(gpus);
        match ran {
            Ran::Never => {}
            Ran::Clean(took) => self.last_run = Some(took),
            Ran::NotClean => self.last_run = None,
        }
        for (lease_id, delivery) in ended {
            let active = self.active.clone();
            tokio::spawn(async move {
                if let Some(d) = delivery {
                    d.wait().await;
                }
                active.remove(lease_id);
            });
        }
    }

    /// Drains every trial this agent runs; each hands its lease back through the reporter.
    async fn drain(&mut self) {
        self.active.drain_all();
        while self.running.join_next().await.is_some() {}
    }

    /// Drains the trials, then waits (a while at most) until the coordinator has their leases back.
    async fn stop(mut self) {
        let trials = self.running.len();
        tracing::info!(agent = %self.session.agent_id, trials, "agent stopping; its leases will be retried elsewhere");
        self.drain().await;
        self.heartbeats.abort();
        let Agent { reporter, reporter_task, mps, .. } = self;
        drop(reporter);
        // Hand-backs queued by the drained trials go out before the agent exits.
        let _ = tokio::time::timeout(REPORTER_DRAIN_TIMEOUT, reporter_task).await;
        // An MPS daemon this agent started stops only once its trials and reports are done.
        drop(mps);
    }
}

/// How long to wait before asking for work again; None: until a trial ends, since every slot is
/// taken. Ask again at once while trials keep coming, back off while requests fail.
fn next_wait(free: u32, granted: u32, failures: u32, poll: Duration, jitter: f64) -> Option<Duration> {
    let wait = if failures > 0 {
        sweep_spec::backoff::full_jitter(failures, LEASE_RETRY_BASE, LEASE_RETRY_CAP, jitter)
    } else if granted > 0 && granted < free {
        Duration::ZERO
    } else {
        poll
    };
    (free != granted || wait.is_zero()).then_some(wait)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_secs(1);

    #[test]
    fn a_partial_grant_asks_again_at_once() {
        assert_eq!(next_wait(4, 1, 0, POLL, 0.5), Some(Duration::ZERO));
        assert_eq!(next_wait(4, 3, 0, POLL, 0.5), Some(Duration::ZERO));
    }

    #[test]
    fn nothing_granted_waits_for_the_poll_interval() {
        assert_eq!(next_wait(4, 0, 0, POLL, 0.5), Some(POLL));
    }

    #[test]
    fn full_slots_wait_only_for_a_trial_to_end() {
        assert_eq!(next_wait(2, 2, 0, POLL, 0.5), None, "every free slot was just filled");
        assert_eq!(next_wait(0, 0, 0, POLL, 0.5), None, "no slot was free");
    }

    #[test]
    fn failed_requests_back_off_with_jitter_up_to_the_cap() {
        let almost_one = 0.999_999;
        let first = next_wait(4, 0, 1, POLL, almost_one).unwrap();
        assert!(first > Duration::from_millis(390) && first < Duration::from_millis(400), "{first:?}");
        assert_eq!(next_wait(4, 0, 30, POLL, almost_one).unwrap(), LEASE_RETRY_CAP.mul_f64(almost_one));
        assert_eq!(next_wait(4, 0, 3, POLL, 0.0), Some(Duration::ZERO), "a draw of zero asks at once");
    }

    #[test]
    fn an_empty_gpu_list_means_no_gpus() {
        assert_eq!(listed_gpus(&[" 0".into(), "1 ".into(), "".into()]), vec!["0", "1"]);
        assert!(listed_gpus(&["".into()]).is_empty());
    }
}
