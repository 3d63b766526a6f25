//! Metric lines an agent relayed but may not have delivered before it died (SIGKILL, OOM, a node
//! reboot) are still on disk, in each attempt's `stdout.log`. On start the agent sends them again
//! under the lease they were produced under; the coordinator keeps each row once, so a line that
//! did arrive costs nothing. Without this, a retry resuming from a checkpoint that had moved past
//! undelivered epochs would leave a gap no one could fill.

use crate::reporter::Reporter;
use crate::session::Session;
use std::path::{Path, PathBuf};
use sweep_spec::EpochRecord;

/// Written in an attempt's folder before its process starts: the lease its output belongs to.
pub const LEASE_FILE: &str = "lease";
/// Written once everything the attempt printed was delivered (or refused for good).
pub const REPORTED_FILE: &str = "reported";
/// The attempt's standard output, every line, as relayed.
pub const STDOUT_FILE: &str = "stdout.log";

/// Records the lease an attempt's output belongs to, before its process starts.
pub fn write_lease_file(run_dir: &Path, lease_id: i64) -> std::io::Result<()> {
    write_record(&run_dir.join(LEASE_FILE), &lease_id.to_string())
}

/// Records the agent registration the attempt's lease was granted to (`crate::session`), before
/// its process starts.
pub fn write_agent_file(run_dir: &Path, agent_id: &str) -> std::io::Result<()> {
    write_record(&run_dir.join(crate::session::AGENT_FILE), agent_id)
}

fn write_record(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    sweep_safe_fs::create_or_truncate(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Marks an attempt's output as delivered.
pub fn mark_reported(run_dir: &Path) {
    if let Err(e) = sweep_safe_fs::create_or_truncate(&run_dir.join(REPORTED_FILE)) {
        tracing::warn!(dir = %run_dir.display(), error = %e, "could not mark the attempt's output as reported");
    }
}

/// Attempt folders under `work_dir` with output not known to be delivered.
fn unreported(work_dir: &Path) -> Vec<PathBuf> {
    let levels = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect())
            .unwrap_or_default()
    };
    let mut found = Vec::new();
    for sweep in levels(&work_dir.join("trials")) {
        for trial in levels(&sweep) {
            for attempt in levels(&trial) {
                if attempt.join(LEASE_FILE).exists() && !attempt.join(REPORTED_FILE).exists() {
                    found.push(attempt);
                }
            }
        }
    }
    found.sort();
    found
}

/// Sends again what earlier runs of this agent relayed, each attempt's under the session of the
/// run that leased it (`Session::of_attempt`; the current one where none was kept, which the
/// coordinator refuses unless it is the same); returns the number of records sent.
pub async fn replay_unreported(work_dir: &Path, reporter: &Reporter) -> usize {
    let mut sent = 0;
    for dir in unreported(work_dir) {
        let lease_id =
            match std::fs::read_to_string(dir.join(LEASE_FILE)).ok().and_then(|t| t.trim().parse::<i64>().ok()) {
                Some(id) => id,
                None => continue,
            };
        let text = std::fs::read_to_string(dir.join(STDOUT_FILE)).unwrap_or_default();
        let records: Vec<EpochRecord> =
            text.lines().filter_map(EpochRecord::parse_line).filter_map(Result::ok).collect();
        tracing::info!(dir = %dir.display(), lease = lease_id, records = records.len(), "re-sending the output of an attempt from before a restart");
        sent += records.len();
        let reporter = match Session::of_attempt(work_dir, &dir) {
            Some(session) => reporter.under(session),
            None => reporter.clone(),
        };
        for record in records {
            reporter.metrics(lease_id, record).await;
        }
        reporter.barrier().await;
        mark_reported(&dir);
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_attempts_with_a_lease_and_no_marker_are_replayed() {
        let work = tempfile::tempdir().unwrap();
        let attempt = |n: u32| work.path().join("trials/s/0123456789abcdef").join(format!("attempt-{n}"));
        for n in 1..=3 {
            std::fs::create_dir_all(attempt(n)).unwrap();
        }
        std::fs::write(attempt(1).join(LEASE_FILE), "7").unwrap();
        std::fs::write(attempt(2).join(LEASE_FILE), "8").unwrap();
        mark_reported(&attempt(2));
        assert_eq!(unreported(work.path()), vec![attempt(1)]);
        assert!(unreported(&work.path().join("absent")).is_empty());
    }
}
