//! Runs one launch: starts its process, relays its output (`relay.rs`), carries out what
//! `launch_state` decides about each command, and reports how each lease ended. A crash, an OOM or
//! a segfault ends the child, never the agent.

use crate::config::TrialRunner;
use crate::launch::{self, AttemptDirs};
use crate::launch_state::{self, Action, Control, Ending, LaunchState};
use crate::recover;
use crate::relay::{self, Muted};
use crate::reporter::Reporter;
use std::process::ExitStatus;
use std::time::Duration;
use sweep_proto::v1::CompleteRequest;
use sweep_spec::TrialSpec;
use tokio::process::Child;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// One lease of a launch: a trial alone, or one member of a fused group.
pub struct Attempt {
    pub lease_id: i64,
    pub attempt: u32,
    pub spec: TrialSpec,
    pub dirs: AttemptDirs,
    /// The last epoch this attempt trains (`Lease.stop_after_epoch`, a rung of a promoting
    /// schedule); None: to the end.
    pub stop_after: Option<u32>,
    /// Under PBT: once the attempt reached `stop_after` and ended well, keep a copy of its
    /// checkpoint as the one of that epoch (`kept.rs`).
    pub keep_checkpoint: bool,
}

/// What one process runs: one attempt, or the members of a fused group (`sweep_spec::fusion`),
/// which share the process, its GPUs and its stderr but report and complete lease by lease.
pub struct Launch {
    pub members: Vec<Attempt>,
    pub placement: launch::Placement,
}

/// A finished attempt whose completion is on its way to the coordinator.
pub struct Delivery {
    delivered: tokio::sync::oneshot::Receiver<()>,
    /// The attempt's folder; None for a lease handed back before its trial started.
    run_dir: Option<std::path::PathBuf>,
}

impl Delivery {
    /// The completion of a lease whose trial never started: no folder records its output.
    pub fn unstarted(delivered: tokio::sync::oneshot::Receiver<()>) -> Delivery {
        Delivery { delivered, run_dir: None }
    }

    /// Returns once the coordinator has the completion (or refused it for good), and records that
    /// everything the attempt printed was delivered.
    pub async fn wait(self) {
        let _ = self.delivered.await;
        if let Some(run_dir) = &self.run_dir {
            recover::mark_reported(run_dir);
        }
    }
}

/// How each lease of a launch ended on this side: its completion on the way, or none (abandoned,
/// or refused before it started).
pub type Ended = Vec<(i64, Option<Delivery>)>;

/// Runs the launch until its process ends. `control` carries the coordinator's commands lease by
/// lease; `started` flips to true once the process runs. Each returned delivery still has its
/// completion in flight: the lease must be heartbeated until it resolves, or the coordinator would
/// count a finished trial as lost.
///
/// A fused group reacts member by member where it can: a member that diverged (the runner's
/// `dropped` line) or that the coordinator stops is completed at once while the others train on;
/// a member whose lease is lost is left to the coordinator. When no member is left to train, or
/// the agent drains, the whole process is stopped. Also returns whether the process ran to its end
/// and exited 0.
#[tracing::instrument(name = "trial_attempt", skip_all, fields(sweep = %launch.members[0].spec.sweep, trial = %launch.members[0].spec.id, attempt = launch.members[0].attempt, lease = launch.members[0].lease_id, members = launch.members.len()))]
pub async fn run(
    launch: Launch,
    runner: &TrialRunner,
    reporter: &Reporter,
    control: mpsc::Receiver<(i64, Control)>,
    started: watch::Sender<bool>,
    stop_grace: Duration,
) -> (Ended, bool) {
    let members = &launch.members;
    let child = match spawn(&launch, runner, &reporter.session().agent_id) {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(trial = %members[0].spec.id, error = %e, permanent = e.permanent, "could not start the trial");
            let leases = members.iter().map(|m| m.lease_id).collect();
            return (launch_failed(reporter, leases, &e).await, false);
        }
    };
    let _ = started.send(true);
    tracing::info!(trial = %members[0].spec.id, attempt = members[0].attempt, members = members.len(), pid = child.id(), "trial started");
    let mut supervisor = Supervisor::attach(members, reporter, child);
    match supervisor.watch(control, stop_grace).await {
        Some((status, ending)) => {
            let clean = ending == Ending::Exited && status.as_ref().is_ok_and(|s| s.success());
            (supervisor.finish(status, ending).await, clean)
        }
        None => (supervisor.abandon().await, false),
    }
}

/// Completes each of `leases` with `error` as its launch error, once the coordinator has each:
/// the launch never ran.
pub async fn launch_failed(reporter: &Reporter, leases: Vec<i64>, error: &launch::LaunchError) -> Ended {
    for &lease_id in &leases {
        let req = CompleteRequest {
            lease_id,
            launch_error: error.message.clone(),
            launch_error_permanent: error.permanent,
            ..Default::default()
        };
        reporter.complete(req).await;
    }
    leases.into_iter().map(|l| (l, None)).collect()
}

/// Creates the members' folders, records each one's lease and agent there (for a restarted
/// agent), and starts the process.
fn spawn(launch: &Launch, runner: &TrialRunner, agent_id: &str) -> Result<Child, launch::LaunchError> {
    let transient = launch::LaunchError::transient;
    for m in &launch.members {
        m.dirs.create().map_err(transient)?;
        if let Some(from) = &m.spec.copy_from {
            crate::kept::copy_into(&m.dirs.checkpoint, from).map_err(|e| {
                transient(std::io::Error::new(e.kind(), format!("starting from the checkpoint PBT copies: {e}")))
            })?;
        }
        recover::write_agent_file(&m.dirs.run, agent_id).map_err(transient)?;
        recover::write_lease_file(&m.dirs.run, m.lease_id).map_err(transient)?;
    }
    let command = match launch.members.as_slice() {
        [a] => launch::build_command(&a.spec, a.attempt, &a.dirs, &launch.placement, runner).map(|mut cmd| {
            if let Some(epoch) = a.stop_after {
                cmd.env(sweep_spec::schedule::STOP_AFTER_EPOCH, epoch.to_string());
            }
            cmd
        }),
        group => {
            let pairs: Vec<_> = group.iter().map(|m| (&m.spec, &m.dirs)).collect();
            launch::build_group_command(&pairs, &launch.placement, runner)
        }
    }
    .map_err(transient)?;
    let program = command.as_std().get_program().to_owned();
    let mut command = crate::orphans::tie_to_agent(command).map_err(|e| launch::LaunchError::of_spawn(&program, &e))?;
    command.spawn().map_err(|e| launch::LaunchError::of_spawn(&program, &e))
}

/// A started launch: its process, the tasks reading its output, and what became of its leases.
struct Supervisor<'a> {
    members: &'a [Attempt],
    reporter: &'a Reporter,
    child: Child,
    /// The process group to signal: the child leads its own.
    pid: Option<i32>,
    relay: JoinHandle<()>,
    /// Answers with the last lines of stderr once the process closed it.
    stderr_tail: JoinHandle<String>,
    /// Fused members the runner dropped (they diverged), with its reason.
    dropped: mpsc::Receiver<(i64, String)>,
    /// A trial alone reported the last epoch of its budget (`Attempt::stop_after`).
    reached: mpsc::Receiver<()>,
    /// It did (the message may wait unread when the process exits at once).
    budget_reached: bool,
    muted: Muted,
    state: LaunchState,
    ended: Ended,
}

impl<'a> Supervisor<'a> {
    fn attach(members: &'a [Attempt], reporter: &'a Reporter, mut child: Child) -> Supervisor<'a> {
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (dropped_tx, dropped) = mpsc::channel(members.len());
        let (reached_tx, reached) = mpsc::channel(1);
        let muted = Muted::default();
        let outlets = relay::Outlets { dropped: dropped_tx, reached: reached_tx, muted: muted.clone() };
        let relay = relay::spawn_stdout(stdout, members, reporter.clone(), outlets);
        let stderr_tail = tokio::spawn(relay::keep_stderr(stderr, members[0].dirs.run.join("stderr.log")));
        Supervisor {
            members,
            reporter,
            pid: child.id().map(|p| p as i32),
            child,
            relay,
            stderr_tail,
            dropped,
            reached,
            budget_reached: false,
            muted,
            state: LaunchState::new(members.iter().map(|m| m.lease_id).collect()),
            ended: Vec::new(),
        }
    }

    /// Runs until the process ends or a command ends it: how it ended and why, or None when the
    /// launch is to be abandoned.
    async fn watch(
        &mut self,
        mut control: mpsc::Receiver<(i64, Control)>,
        grace: Duration,
    ) -> Option<(std::io::Result<ExitStatus>, Ending)> {
        // Once the trial reported the last epoch of its budget it has `grace` to checkpoint and
        // exit by itself; after that it is stopped as the coordinator would stop it.
        let mut budget_spent: Option<tokio::time::Instant> = None;
        loop {
            let action = tokio::select! {
                status = self.child.wait() => return Some((status, Ending::Exited)),
                Some((lease_id, why)) = self.dropped.recv() => {
                    self.member_dropped(lease_id, why).await;
                    continue;
                }
                Some(()) = self.reached.recv(), if budget_spent.is_none() => {
                    self.budget_reached = true;
                    budget_spent = Some(tokio::time::Instant::now() + grace);
                    continue;
                }
                _ = tokio::time::sleep_until(budget_spent.unwrap_or_else(tokio::time::Instant::now)), if budget_spent.is_some() => {
                    tracing::info!(trial = %self.members[0].spec.id, "trial went on past the epoch its lease stops after; stopping it");
                    Action::Terminate(Ending::ReachedBudget)
                }
                cmd = control.recv() => self.state.on_control(cmd),
            };
            match action {
                Action::Ignore => {}
                Action::StopMember(lease_id) => {
                    tracing::info!(lease = lease_id, "fused member stopped on request; the group goes on");
                    self.complete(launch_state::member_stopped(lease_id)).await;
                }
                Action::LoseMember(lease_id) => {
                    tracing::warn!(lease = lease_id, "fused member's lease lost; the group goes on");
                    self.state.leave(lease_id);
                    self.ended.push((lease_id, None));
                }
                Action::Abandon => return None,
                Action::Terminate(ending) => return Some((terminate(&mut self.child, self.pid, grace).await, ending)),
            }
        }
    }

    /// The launch's lease is gone: the process is killed and no lease is completed. What it
    /// printed is still recorded under its own attempt.
    async fn abandon(mut self) -> Ended {
        signal_group(self.pid, libc::SIGKILL);
        let _ = self.child.wait().await;
        let first = &self.members[0];
        tracing::warn!(trial = %first.spec.id, attempt = first.attempt, "lease lost; attempt abandoned");
        let _ = self.relay.await;
        self.reporter.barrier().await;
        for m in self.members {
            recover::mark_reported(&m.dirs.run);
        }
        self.ended.extend(self.state.live().iter().map(|l| (*l, None)));
        self.ended
    }

    /// The process ended: each lease still in it is completed with its exit.
    async fn finish(mut self, status: std::io::Result<ExitStatus>, ending: Ending) -> Ended {
        // Every metric line is queued before the completion, so the report order is the output order.
        let _ = (&mut self.relay).await;
        // A member dropped just before the process ended: the relay saw it, the loop had no time to.
        while let Ok((lease_id, why)) = self.dropped.try_recv() {
            self.member_dropped(lease_id, why).await;
        }
        let stderr_tail = (&mut self.stderr_tail).await.unwrap_or_default();
        let (exit_code, signal) = launch_state::exit_of(&status);
        let first = &self.members[0];
        if ending == Ending::Drained {
            tracing::info!(trial = %first.spec.id, attempt = first.attempt, ?exit_code, "trial drained; handing its lease back");
        } else {
            tracing::info!(trial = %first.spec.id, attempt = first.attempt, ?exit_code, ?signal, "trial ended");
        }
        let kept = self.keep_checkpoint(&status, ending);
        for mut req in self.state.completions(&status, &stderr_tail, ending) {
            req.kept_checkpoint = kept;
            self.complete(req).await;
        }
        self.ended
    }

    /// Under PBT, keeps the checkpoint of a trial alone that reached the epoch its lease stops
    /// after and ended well (exit 0, or stopped there by this agent): whether it was kept.
    fn keep_checkpoint(&mut self, status: &std::io::Result<ExitStatus>, ending: Ending) -> bool {
        let [m] = self.members else { return false };
        let (true, Some(epoch)) = (m.keep_checkpoint, m.stop_after) else { return false };
        self.budget_reached |= self.reached.try_recv().is_ok();
        let ended_well =
            ending == Ending::ReachedBudget || (ending == Ending::Exited && status.as_ref().is_ok_and(|s| s.success()));
        if !(self.budget_reached && ended_well) {
            return false;
        }
        match crate::kept::keep(&m.dirs.checkpoint, epoch) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(trial = %m.spec.id, epoch, error = %e, "could not keep the checkpoint for PBT; no trial will copy it");
                false
            }
        }
    }

    /// Fails a member the runner dropped from its group (it diverged), unless it already left.
    async fn member_dropped(&mut self, lease_id: i64, why: String) {
        if !self.state.contains(lease_id) {
            return;
        }
        tracing::warn!(lease = lease_id, reason = %why, "fused member dropped; the group goes on");
        self.complete(launch_state::member_dropped(lease_id, why)).await;
    }

    /// Completes one lease (a fused member while the others go on, or each lease once the process
    /// ended): it leaves the launch, its later output is no longer relayed, and its completion is
    /// queued after everything it printed.
    async fn complete(&mut self, req: CompleteRequest) {
        let lease_id = req.lease_id;
        self.state.leave(lease_id);
        self.muted.lock().expect("muted set").insert(lease_id);
        let queued = self.reporter.complete_queued(req).await;
        let delivery = queued.map(|delivered| Delivery { delivered, run_dir: Some(self.run_dir(lease_id)) });
        self.ended.push((lease_id, delivery));
    }

    fn run_dir(&self, lease_id: i64) -> std::path::PathBuf {
        self.members.iter().find(|m| m.lease_id == lease_id).map(|m| m.dirs.run.clone()).expect("a member's lease")
    }
}

/// SIGTERM, then SIGKILL if the trial is still there after `grace`.
async fn terminate(
    child: &mut tokio::process::Child,
    pid: Option<i32>,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    signal_group(pid, libc::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            signal_group(pid, libc::SIGKILL);
            child.wait().await
        }
    }
}

fn signal_group(pid: Option<i32>, sig: i32) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) with a negative pid signals the process group the child leads.
        unsafe {
            libc::kill(-pid, sig);
        }
    }
}
