//! A trial process's output: each metric line of stdout goes to its lease's reports (a fused
//! group's lines by their trial tag) and every line to the attempt's `stdout.log`, which a
//! restarted agent re-sends from; stderr goes to `stderr.log`, its last lines to the failure.

use crate::recover;
use crate::reporter::Reporter;
use crate::supervise::Attempt;
use std::collections::HashSet;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use sweep_spec::report::MemberLine;
use sweep_spec::EpochRecord;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Lines of stderr kept for the failure message.
const STDERR_TAIL_LINES: usize = 30;
/// Longest line of output relayed; longer ones are cut so one bad print cannot exhaust memory.
const MAX_LINE_BYTES: usize = 1 << 20;
/// Distinct warnings per attempt about output that could not be recorded (the coordinator keeps
/// as many per trial): enough to name every bad field, bounded whatever the trial prints.
const MAX_WARNINGS: usize = 16;

/// Leases of a fused group whose output is no longer relayed (completed members).
pub type Muted = Arc<Mutex<HashSet<i64>>>;

/// Where the relay tells the supervisor what the output said beyond metrics.
pub struct Outlets {
    /// A fused member's `dropped` line, after that member's records.
    pub dropped: mpsc::Sender<(i64, String)>,
    /// A trial alone reported the last epoch of its budget (once, after that record).
    pub reached: mpsc::Sender<()>,
    /// Fused members no longer relayed.
    pub muted: Muted,
}

/// Relays the launch's stdout until the process closes it: a trial alone to its lease, a fused
/// group member by member.
pub fn spawn_stdout(
    out: tokio::process::ChildStdout,
    members: &[Attempt],
    reporter: Reporter,
    outlets: Outlets,
) -> JoinHandle<()> {
    match members {
        [a] => {
            let budget = a.stop_after.map(|epoch| (epoch, outlets.reached));
            tokio::spawn(relay_stdout(out, a.dirs.run.join(recover::STDOUT_FILE), a.lease_id, reporter, budget))
        }
        group => {
            let outputs =
                group.iter().map(|m| (m.spec.id.0.clone(), m.lease_id, m.dirs.run.join(recover::STDOUT_FILE)));
            tokio::spawn(relay_group(out, outputs.collect(), reporter, outlets.dropped, outlets.muted))
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

/// A trial's log, appended to; never through a symbolic link planted at its name.
async fn open_log(path: &std::path::Path) -> Option<tokio::fs::File> {
    let mut options = tokio::fs::OpenOptions::from(sweep_safe_fs::no_follow());
    options.create(true).append(true).open(path).await.ok()
}

/// Metric records go to the reporter; every line also goes to the log file. A metric that cannot
/// be recorded (a string where a number belongs) is left out of its record, the rest kept, and
/// said once per name ([`Warnings`]).
async fn relay_stdout(
    out: tokio::process::ChildStdout,
    log_path: std::path::PathBuf,
    lease_id: i64,
    reporter: Reporter,
    mut budget: Option<(u32, mpsc::Sender<()>)>,
) {
    let mut log = open_log(&log_path).await;
    let mut lines = Lines::new(out);
    let mut warnings = Warnings::default();
    while let Some(buf) = lines.next().await {
        if let Some(f) = log.as_mut() {
            let _ = f.write_all(buf).await;
        }
        let line = String::from_utf8_lossy(buf);
        match EpochRecord::parse_line_keeping(&line) {
            Some(Ok((record, skipped))) => {
                for s in skipped {
                    warnings.say(&s.name, s.reason, lease_id, &reporter, &mut log).await;
                }
                let epoch = record.epoch;
                reporter.metrics(lease_id, record).await;
                if budget.as_ref().is_some_and(|(last, _)| epoch >= *last) {
                    let (_, reached) = budget.take().expect("checked");
                    let _ = reached.send(()).await;
                }
            }
            Some(Err(e)) => warnings.say("", format!("a line was ignored: {e}"), lease_id, &reporter, &mut log).await,
            None => {}
        }
    }
}

/// What of one attempt's output could not be recorded, said once per metric name (and once for
/// lines that are no record, under the name ""): in the attempt's `stdout.log`, right after the
/// line, in the agent's log, and to the coordinator, which shows it in `sweep status`.
#[derive(Default)]
struct Warnings {
    said: HashSet<String>,
}

impl Warnings {
    async fn say(
        &mut self,
        field: &str,
        message: String,
        lease_id: i64,
        reporter: &Reporter,
        log: &mut Option<tokio::fs::File>,
    ) {
        if self.said.len() >= MAX_WARNINGS || !self.said.insert(field.to_string()) {
            return;
        }
        let text = if field.is_empty() { message.clone() } else { format!("metric `{field}` skipped: {message}") };
        if let Some(f) = log.as_mut() {
            let line =
                format!("sweep-agent: warning: {text} (said once per name; the line's other metrics are kept)\n");
            let _ = f.write_all(line.as_bytes()).await;
        }
        tracing::warn!(lease = lease_id, "{text}");
        reporter.warning(lease_id, field.to_string(), message).await;
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
pub async fn keep_stderr(err: tokio::process::ChildStderr, log_path: std::path::PathBuf) -> String {
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
