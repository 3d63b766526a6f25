//! The agent's registration: its id and the session secret the coordinator answered `Register`
//! with. Every later call carries the secret, since the coordinator gives a lease's writes only to
//! the registration that was granted it. The secret is also kept under
//! `<work-dir>/sessions/<agent id>`, readable by the agent's user only, and each attempt folder
//! names its agent id (`agent`), so an agent that restarts re-sends the output of its earlier
//! run's attempts under that run's secret (`recover.rs`). The secret never goes into an attempt
//! folder: that is the trial's working directory.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Written in an attempt's folder before its process starts: the id of the agent registration
/// that holds its lease.
pub const AGENT_FILE: &str = "agent";

/// One registration with the coordinator.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    pub agent_id: String,
    secret: Arc<str>,
}

impl std::fmt::Debug for Session {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({})", self.agent_id)
    }
}

impl Session {
    pub fn new(agent_id: String, secret: String) -> Session {
        Session { agent_id, secret: secret.into() }
    }

    /// For the `session_secret` field of a request.
    pub fn secret(&self) -> String {
        self.secret.to_string()
    }

    /// Keeps the secret for a later run of this agent (mode 0600). Agent ids that are not a safe
    /// file name are not kept: their output cannot be re-sent after a restart.
    pub fn save(&self, work_dir: &Path) -> std::io::Result<()> {
        let Some(path) = saved_path(work_dir, &self.agent_id) else {
            tracing::warn!(agent = %self.agent_id, "agent id is no file name: output left unreported by this run cannot be re-sent after a restart");
            return Ok(());
        };
        std::fs::create_dir_all(path.parent().expect("a sessions folder"))?;
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(self.secret.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    /// The registration that ran the attempt in `run_dir`, as an earlier run of this agent saved
    /// it; None for folders written before sessions, or when the secret was not kept.
    pub fn of_attempt(work_dir: &Path, run_dir: &Path) -> Option<Session> {
        let agent_id = std::fs::read_to_string(run_dir.join(AGENT_FILE)).ok()?.trim().to_string();
        let secret = std::fs::read_to_string(saved_path(work_dir, &agent_id)?).ok()?;
        Some(Session::new(agent_id, secret.trim().to_string()))
    }
}

fn saved_path(work_dir: &Path, agent_id: &str) -> Option<PathBuf> {
    sweep_spec::file::is_safe_name(agent_id).then(|| work_dir.join("sessions").join(agent_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_saved_session_is_found_from_its_attempts_and_only_its_user_reads_it() {
        let work = tempfile::tempdir().unwrap();
        let s = Session::new("host-3".into(), "ab".repeat(32));
        s.save(work.path()).unwrap();
        let saved = work.path().join("sessions/host-3");
        assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);
        let run = work.path().join("trials/s/t/attempt-1");
        std::fs::create_dir_all(&run).unwrap();
        assert_eq!(Session::of_attempt(work.path(), &run), None, "an attempt from before sessions");
        std::fs::write(run.join(AGENT_FILE), "host-3").unwrap();
        assert_eq!(Session::of_attempt(work.path(), &run), Some(s.clone()));
        std::fs::write(run.join(AGENT_FILE), "../../etc/passwd").unwrap();
        assert_eq!(Session::of_attempt(work.path(), &run), None, "an id that is no file name is not followed");
        assert_eq!(format!("{s:?}"), "Session(host-3)");
    }
}
