//! Runs one attempt: starts the process, relays its metric lines, keeps the tail of its stderr,
//! obeys stop and abandon commands, and reports how it ended. A crash, an OOM or a segfault ends
//! the child, never the agent.

use crate::config::TrialRunner;
use crate::launch::{self, AttemptDirs};
use crate::recover;
use crate::reporter::Reporter;
use std::collections::HashSet;
use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sweep_proto::v1::CompleteRequest;
use sweep_spec::report::MemberLine;
use sweep_spec::{EpochRecord, TrialSpec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

/// Lines of stderr kept for the failure message.
const STDERR_TAIL_LINES: usize = 30;
/// Longest line of output relayed; longer ones are cut so one bad print cannot exhaust memory.
const MAX_LINE_BYTES: usize = 1 << 20;

/// What the coordinator asks of a running attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Cancelled or early-stopped: terminate gracefully, then report.
    Stop,
    /// The lease is gone: kill at once and report nothing.
    Abandon,
    /// The agent is shutting down: SIGTERM (the trial checkpoints), wait the grace period, then
    /// hand the lease back so the next attempt starts at once and resumes from the checkpoint.
    Drain,
}

/// One lease of a launch: a trial alone, or one member of a fused group.
pub struct Attempt {
    pub lease_id: i64,
    pub attempt: u32,
    pub spec: TrialSpec,
    pub dirs: AttemptDirs,
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
    run_dir: std::path::PathBuf,
}

impl Delivery {
    /// Returns once the coordinator has the completion (or refused it for good), and records that
    /// everything the attempt printed was delivered.
    pub async fn wait(self) {
        let _ = self.delivered.await;
        recover::mark_reported(&self.run_dir);
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
/// the agent drains, the whole process is stopped.
#[tracing::instrument(name = "trial_attempt", skip_all, fields(sweep = %launch.members[0].spec.sweep, trial = %launch.members[0].spec.id, attempt = launch.members[0].attempt, lease = launch.members[0].lease_id, members = launch.members.len()))]
pub async fn run(
    launch: Launch,
    runner: &TrialRunner,
    reporter: &Reporter,
    mut control: mpsc::Receiver<(i64, Control)>,
    started: watch::Sender<bool>,
    stop_grace: Duration,
) -> Ended {
    let members = &launch.members;
    let trial = members[0].spec.id.clone();
    let launched = members
        .iter()
        .try_for_each(|m| {
            m.dirs.create()?;
            std::fs::write(m.dirs.run.join(recover::LEASE_FILE), m.lease_id.to_string())
        })
        .and_then(|_| match members.as_slice() {
            [a] => launch::build_command(&a.spec, a.attempt, &a.dirs, &launch.placement, runner),
            group => {
                let pairs: Vec<_> = group.iter().map(|m| (&m.spec, &m.dirs)).collect();
                launch::build_group_command(&pairs, &launch.placement, runner)
            }
        })
        .and_then(|mut c| c.spawn());
    let mut child = match launched {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(trial = %trial, error = %e, "could not start the trial");
            for m in members {
                let req = CompleteRequest { lease_id: m.lease_id, launch_error: e.to_string(), ..Default::default() };
                reporter.complete(req).await;
            }
            return members.iter().map(|m| (m.lease_id, None)).collect();
        }
    };
    let _ = started.send(true);
    tracing::info!(trial = %trial, attempt = members[0].attempt, members = members.len(), pid = child.id(), "trial started");

    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (dropped_tx, mut dropped) = mpsc::channel::<(i64, String)>(members.len());
    let muted: Muted = Arc::default();
    let relay = match members.as_slice() {
        [a] => tokio::spawn(relay_stdout(stdout, a.dirs.run.join(recover::STDOUT_FILE), a.lease_id, reporter.clone())),
        group => {
            let outputs =
                group.iter().map(|m| (m.spec.id.0.clone(), m.lease_id, m.dirs.run.join(recover::STDOUT_FILE)));
            tokio::spawn(relay_group(stdout, outputs.collect(), reporter.clone(), dropped_tx, muted.clone()))
        }
    };
    let tail = tokio::spawn(keep_stderr(stderr, members[0].dirs.run.join("stderr.log")));

    let pid = child.id().map(|p| p as i32);
    let mut ended: Ended = Vec::new();
    // Leases still training in the process; completed or abandoned ones leave.
    let mut live: Vec<i64> = members.iter().map(|m| m.lease_id).collect();
    let mut stopped_by_request = false;
    let mut released = false;
    let status = loop {
        let whole = tokio::select! {
            status = child.wait() => break status,
            Some((lease_id, why)) = dropped.recv() => {
                ended.extend(fail_dropped(reporter, &mut live, &muted, members, lease_id, why).await);
                None
            }
            cmd = control.recv() => match cmd {
                None => Some(Control::Abandon),
                Some((_, Control::Drain)) => Some(Control::Drain),
                Some((lease_id, cmd)) if live.len() > 1 && live.contains(&lease_id) => {
                    match cmd {
                        Control::Stop => {
                            tracing::info!(lease = lease_id, "fused member stopped on request; the group goes on");
                            let d = complete_one(reporter, &mut live, &muted, members, lease_id, |req| req.stopped_by_request = true).await;
                            ended.push((lease_id, d));
                        }
                        _ => {
                            tracing::warn!(lease = lease_id, "fused member's lease lost; the group goes on");
                            live.retain(|l| *l != lease_id);
                            ended.push((lease_id, None));
                        }
                    }
                    None
                }
                Some((lease_id, cmd)) if live.contains(&lease_id) => Some(cmd),
                // A command for a lease that already left the group.
                Some(_) => None,
            },
        };
        match whole {
            None => continue,
            Some(Control::Abandon) => {
                signal_group(pid, libc::SIGKILL);
                let _ = child.wait().await;
                tracing::warn!(trial = %trial, attempt = members[0].attempt, "lease lost; attempt abandoned");
                // What it printed is still recorded under its own attempt.
                let _ = relay.await;
                reporter.barrier().await;
                for m in members {
                    recover::mark_reported(&m.dirs.run);
                }
                ended.extend(live.iter().map(|l| (*l, None)));
                return ended;
            }
            Some(Control::Drain) => {
                released = true;
                break terminate(&mut child, pid, stop_grace).await;
            }
            Some(Control::Stop) => {
                stopped_by_request = true;
                break terminate(&mut child, pid, stop_grace).await;
            }
        }
    };
    // Every metric line is queued before the completion, so the report order is the output order.
    let _ = relay.await;
    // A member dropped just before the process ended: the relay saw it, the loop had no time to.
    while let Ok((lease_id, why)) = dropped.try_recv() {
        ended.extend(fail_dropped(reporter, &mut live, &muted, members, lease_id, why).await);
    }
    let stderr_tail = tail.await.unwrap_or_default();
    let (exit_code, signal) = match &status {
        Ok(s) => (s.code(), s.signal()),
        Err(_) => (None, None),
    };
    if released {
        tracing::info!(trial = %trial, attempt = members[0].attempt, ?exit_code, "trial drained; handing its lease back");
    } else {
        tracing::info!(trial = %trial, attempt = members[0].attempt, ?exit_code, ?signal, "trial ended");
    }
    let launch_error = status.as_ref().err().map(|e| e.to_string()).unwrap_or_default();
    // A group's exit is every remaining member's alike: which one caused a failure is unknown.
    let whole_group = members.len() > 1;
    for lease_id in live.clone() {
        let d = complete_one(reporter, &mut live, &muted, members, lease_id, |req| {
            *req = CompleteRequest {
                lease_id,
                exit_code,
                signal,
                stderr_tail: stderr_tail.clone(),
                launch_error: launch_error.clone(),
                stopped_by_request,
                released,
                whole_group,
            }
        })
        .await;
        ended.push((lease_id, d));
    }
    ended
}

/// Leases of a fused group whose output is no longer relayed (stopped members).
type Muted = Arc<Mutex<HashSet<i64>>>;

fn run_dir(members: &[Attempt], lease_id: i64) -> std::path::PathBuf {
    members.iter().find(|m| m.lease_id == lease_id).map(|m| m.dirs.run.clone()).expect("a member's lease")
}

/// Fails a member the runner dropped from its group (it diverged), unless it already left.
async fn fail_dropped(
    reporter: &Reporter,
    live: &mut Vec<i64>,
    muted: &Muted,
    members: &[Attempt],
    lease_id: i64,
    why: String,
) -> Option<(i64, Option<Delivery>)> {
    if !live.contains(&lease_id) {
        return None;
    }
    tracing::warn!(lease = lease_id, reason = %why, "fused member dropped; the group goes on");
    let d = complete_one(reporter, live, muted, members, lease_id, |req| {
        req.exit_code = Some(1);
        req.stderr_tail = why;
    })
    .await;
    Some((lease_id, d))
}

/// Completes one lease of the launch (a fused member while the others go on, or each lease once
/// the process ended): it leaves `live`, its later output is no longer relayed, and its
/// completion is queued after everything it printed.
async fn complete_one(
    reporter: &Reporter,
    live: &mut Vec<i64>,
    muted: &Muted,
    members: &[Attempt],
    lease_id: i64,
    outcome: impl FnOnce(&mut CompleteRequest),
) -> Option<Delivery> {
    live.retain(|l| *l != lease_id);
    muted.lock().expect("muted set").insert(lease_id);
    let mut req = CompleteRequest { lease_id, ..Default::default() };
    outcome(&mut req);
    let delivered = reporter.complete_queued(req).await?;
    Some(Delivery { delivered, run_dir: run_dir(members, lease_id) })
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

/// A child's output, line by line; longer lines are cut at [`MAX_LINE_BYTES`].
struct Lines<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
}

impl<R: tokio::io::AsyncRead + Unpin> Lines<R> {
    fn new(out: R) -> Lines<R> {
        Lines { reader: BufReader::new(out), buf: Vec::new() }
    }

    /// The next line with its newline, or None at the end of the output (or a read error).
    async fn next(&mut self) -> Option<&[u8]> {
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf).await {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                self.buf.truncate(MAX_LINE_BYTES);
                Some(&self.buf)
            }
        }
    }
}

async fn open_log(path: &std::path::Path) -> Option<tokio::fs::File> {
    tokio::fs::OpenOptions::new().create(true).append(true).open(path).await.ok()
}

/// Metric records go to the reporter; every line also goes to the log file.
async fn relay_stdout(
    out: tokio::process::ChildStdout,
    log_path: std::path::PathBuf,
    lease_id: i64,
    reporter: Reporter,
) {
    let mut log = open_log(&log_path).await;
    let mut lines = Lines::new(out);
    while let Some(buf) = lines.next().await {
        if let Some(f) = log.as_mut() {
            let _ = f.write_all(buf).await;
        }
        let line = String::from_utf8_lossy(buf);
        match EpochRecord::parse_line(&line) {
            Some(Ok(record)) => reporter.metrics(lease_id, record).await,
            Some(Err(e)) => {
                tracing::warn!(lease = lease_id, error = %e, line = %line.trim(), "ignored a malformed metric line")
            }
            None => {}
        }
    }
}

/// A fused group's output: each tagged line goes to its member's lease and log (untagged, so a
/// restarted agent can re-send it like any attempt's); a `dropped` line is passed to the
/// supervisor after the member's records; anything else goes to the first member's log.
async fn relay_group(
    out: tokio::process::ChildStdout,
    members: Vec<(String, i64, std::path::PathBuf)>,
    reporter: Reporter,
    dropped: mpsc::Sender<(i64, String)>,
    muted: Muted,
) {
    let mut logs = Vec::with_capacity(members.len());
    for (_, _, path) in &members {
        logs.push(open_log(path).await);
    }
    let mut lines = Lines::new(out);
    while let Some(buf) = lines.next().await {
        let line = String::from_utf8_lossy(buf);
        let parsed = MemberLine::parse(&line);
        let Some(Ok((trial, member_line))) = parsed else {
            if let Some(Err(e)) = parsed {
                tracing::warn!(error = %e, line = %line.trim(), "ignored a malformed metric line");
            }
            if let Some(f) = logs[0].as_mut() {
                let _ = f.write_all(buf).await;
            }
            continue;
        };
        let Some(i) = members.iter().position(|(id, _, _)| *id == trial) else {
            tracing::warn!(trial = %trial, "ignored a line for a trial outside the group");
            continue;
        };
        let lease_id = members[i].1;
        if muted.lock().expect("muted set").contains(&lease_id) {
            continue;
        }
        match member_line {
            MemberLine::Epoch(record) => {
                if let Some(f) = logs[i].as_mut() {
                    let _ = f.write_all(format!("{}\n", record.to_line()).as_bytes()).await;
                }
                reporter.metrics(lease_id, record).await;
            }
            MemberLine::Dropped(why) => {
                let _ = dropped.send((lease_id, why)).await;
            }
        }
    }
}

/// Copies stderr to the log file and returns its last lines.
async fn keep_stderr(err: tokio::process::ChildStderr, log_path: std::path::PathBuf) -> String {
    let mut log = open_log(&log_path).await;
    let mut lines = Lines::new(err);
    let mut tail: VecDeque<String> = VecDeque::with_capacity(STDERR_TAIL_LINES);
    while let Some(buf) = lines.next().await {
        if let Some(f) = log.as_mut() {
            let _ = f.write_all(buf).await;
        }
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(String::from_utf8_lossy(buf).trim_end().to_string());
    }
    tail.into_iter().collect::<Vec<_>>().join("\n")
}
