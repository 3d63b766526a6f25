//! A `sweep-coordinator` run as its own process, so its memory is measured apart from the
//! benchmark's clients: peak (`VmHWM`) and current (`VmRSS`) resident memory from /proc.

use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct CoordinatorProcess {
    child: Child,
    pub url: String,
}

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub peak: u64,
    pub current: u64,
}

impl CoordinatorProcess {
    /// Starts `binary` on a free loopback port with its state, results and log (at its default
    /// level, as operators run it) under `dir`; `extra` flags follow. Waits for the line that names
    /// the address it listens on.
    pub fn start(binary: &Path, dir: &Path, extra: &[String]) -> anyhow::Result<CoordinatorProcess> {
        let log = std::fs::File::create(dir.join("coordinator.log"))?;
        let mut child = Command::new(binary)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--results")
            .arg(dir.join("results"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("the coordinator's stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("sweep-coordinator listening on ")
            .with_context(|| format!("{} did not say where it listens: {line:?}", binary.display()))?
            .to_string();
        Ok(CoordinatorProcess { child, url: format!("http://{addr}") })
    }

    /// `sweep-coordinator` next to this program: `cargo build --release` puts both in one folder.
    pub fn default_binary() -> anyhow::Result<PathBuf> {
        Ok(std::env::current_exe()?.with_file_name("sweep-coordinator"))
    }

    pub fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line =
                status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name} in /proc status"))?;
            let kib: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse()?;
            Ok(kib * 1024)
        };
        Ok(Memory { peak: field("VmHWM:")?, current: field("VmRSS:")? })
    }

    /// SIGTERM, as an operator stops it: calls in flight finish and Parquet is written a last time.
    pub fn stop(mut self, patience: Duration) -> anyhow::Result<()> {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let until = std::time::Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "the coordinator ended with {status}");
                return Ok(());
            }
            if std::time::Instant::now() > until {
                self.child.kill()?;
                anyhow::bail!("the coordinator did not stop within {patience:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
