//! Runs one attempt: starts the process, relays its metric lines, keeps the tail of its stderr,
//! obeys stop and abandon commands, and reports how it ended. A crash, an OOM or a segfault ends
//! the child, never the agent.

use crate::config::TrialRunner;
use crate::launch::{self, AttemptDirs};
use crate::recover;
use crate::reporter::Reporter;
use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;
use sweep_proto::v1::CompleteRequest;
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

pub struct Attempt {
    pub lease_id: i64,
    pub attempt: u32,
    pub spec: TrialSpec,
    pub dirs: AttemptDirs,
    pub gpus: Vec<String>,
    /// `SWEEP_DEVICE` for built-in workloads: auto, cpu or cuda.
    pub device: String,
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

/// Runs the attempt until its process ends. `started` flips to true once the process runs. The
/// returned delivery, if any, still has the completion in flight: the lease must be heartbeated
/// until it resolves, or the coordinator would count a finished trial as lost.
#[tracing::instrument(name = "trial_attempt", skip_all, fields(sweep = %a.spec.sweep, trial = %a.spec.id, attempt = a.attempt, lease = a.lease_id))]
pub async fn run(
    a: Attempt,
    runner: &TrialRunner,
    reporter: &Reporter,
    mut control: mpsc::Receiver<Control>,
    started: watch::Sender<bool>,
    stop_grace: Duration,
) -> Option<Delivery> {
    let trial = a.spec.id.clone();
    let launched = a
        .dirs
        .create()
        .and_then(|_| std::fs::write(a.dirs.run.join(recover::LEASE_FILE), a.lease_id.to_string()))
        .and_then(|_| launch::build_command(&a.spec, a.attempt, &a.dirs, &a.gpus, runner, &a.device))
        .and_then(|mut c| c.spawn());
    let mut child = match launched {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(trial = %trial, error = %e, "could not start the trial");
            reporter
                .complete(CompleteRequest { lease_id: a.lease_id, launch_error: e.to_string(), ..Default::default() })
                .await;
            return None;
        }
    };
    let _ = started.send(true);
    tracing::info!(trial = %trial, attempt = a.attempt, pid = child.id(), "trial started");

    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let relay = tokio::spawn(relay_stdout(stdout, a.dirs.run.join(recover::STDOUT_FILE), a.lease_id, reporter.clone()));
    let tail = tokio::spawn(keep_stderr(stderr, a.dirs.run.join("stderr.log")));

    let pid = child.id().map(|p| p as i32);
    let mut stopped_by_request = false;
    let mut released = false;
    let status = tokio::select! {
        status = child.wait() => status,
        cmd = control.recv() => {
            match cmd {
                Some(Control::Abandon) | None => {
                    signal_group(pid, libc::SIGKILL);
                    let _ = child.wait().await;
                    tracing::warn!(trial = %trial, attempt = a.attempt, "lease lost; attempt abandoned");
                    // What it printed is still recorded under its own attempt.
                    let _ = relay.await;
                    reporter.barrier().await;
                    recover::mark_reported(&a.dirs.run);
                    return None;
                }
                Some(Control::Drain) => {
                    released = true;
                    terminate(&mut child, pid, stop_grace).await
                }
                Some(Control::Stop) => {
                    stopped_by_request = true;
                    terminate(&mut child, pid, stop_grace).await
                }
            }
        }
    };
    // Every metric line is queued before the completion, so the report order is the output order.
    let _ = relay.await;
    let stderr_tail = tail.await.unwrap_or_default();
    let (exit_code, signal) = match &status {
        Ok(s) => (s.code(), s.signal()),
        Err(_) => (None, None),
    };
    if released {
        tracing::info!(trial = %trial, attempt = a.attempt, ?exit_code, "trial drained; handing its lease back");
    } else {
        tracing::info!(trial = %trial, attempt = a.attempt, ?exit_code, ?signal, "trial ended");
    }
    let delivered = reporter
        .complete_queued(CompleteRequest {
            lease_id: a.lease_id,
            exit_code,
            signal,
            stderr_tail,
            launch_error: status.err().map(|e| e.to_string()).unwrap_or_default(),
            stopped_by_request,
            released,
        })
        .await?;
    Some(Delivery { delivered, run_dir: a.dirs.run.clone() })
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
    let mut lines = BufReader::new(out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match lines.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        buf.truncate(MAX_LINE_BYTES);
        if let Some(f) = log.as_mut() {
            let _ = f.write_all(&buf).await;
        }
        let line = String::from_utf8_lossy(&buf);
        match EpochRecord::parse_line(&line) {
            Some(Ok(record)) => reporter.metrics(lease_id, record).await,
            Some(Err(e)) => {
                tracing::warn!(lease = lease_id, error = %e, line = %line.trim(), "ignored a malformed metric line")
            }
            None => {}
        }
    }
}

/// Copies stderr to the log file and returns its last lines.
async fn keep_stderr(err: tokio::process::ChildStderr, log_path: std::path::PathBuf) -> String {
    let mut log = open_log(&log_path).await;
    let mut reader = BufReader::new(err);
    let mut tail: VecDeque<String> = VecDeque::with_capacity(STDERR_TAIL_LINES);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        buf.truncate(MAX_LINE_BYTES);
        if let Some(f) = log.as_mut() {
            let _ = f.write_all(&buf).await;
        }
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(String::from_utf8_lossy(&buf).trim_end().to_string());
    }
    tail.into_iter().collect::<Vec<_>>().join("\n")
}
