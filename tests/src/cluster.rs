//! A cluster of real processes the chaos suite can hurt: one `sweep-coordinator` on a port fixed
//! for the whole run (so it can be SIGKILLed and started again on the same address, state and
//! results), agents that reach it only through the pausable [`Proxy`], and the `sweep` CLI.

use crate::faults::FaultLog;
use crate::proxy::Proxy;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Path of a workspace binary, next to the running test's folder (`target/<profile>/`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe.parent().and_then(Path::parent).expect("target folder").to_path_buf();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; `make test` does)",
        path.display()
    );
    path
}

/// A loopback port that was free a moment ago: bind port 0, note the port, release it.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Timing knobs of the processes; short, so lost leases are noticed within a second or two.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub agents: u32,
    pub slots: u32,
    pub lease_ttl_ms: u64,
    pub flush_interval_ms: u64,
    pub poll_interval_ms: u64,
}

struct AgentProc {
    name: String,
    child: Option<Child>,
}

pub struct Cluster {
    pub root: PathBuf,
    pub config: ClusterConfig,
    /// The coordinator's fixed address; the CLI and the replaying client talk to it directly.
    pub coordinator_addr: SocketAddr,
    /// What agents talk to.
    pub proxy: Proxy,
    coordinator: Option<Child>,
    agents: Vec<AgentProc>,
    pub coordinator_starts: u32,
    pub agent_starts: u32,
    /// Agents that exited without being killed by the suite (each is restarted).
    pub agent_self_exits: u32,
    log: Arc<FaultLog>,
}

impl Cluster {
    /// Starts the coordinator, the proxy in front of it and the agents.
    pub fn start(root: &Path, config: ClusterConfig, log: Arc<FaultLog>) -> Cluster {
        let port = free_port();
        let coordinator_addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("socket address");
        let proxy = Proxy::start(coordinator_addr).expect("start proxy");
        let agents = (0..config.agents).map(|i| AgentProc { name: format!("a{i}"), child: None }).collect();
        let mut cluster = Cluster {
            root: root.to_path_buf(),
            config,
            coordinator_addr,
            proxy,
            coordinator: None,
            agents,
            coordinator_starts: 0,
            agent_starts: 0,
            agent_self_exits: 0,
            log,
        };
        cluster.start_coordinator();
        for i in 0..cluster.agents.len() {
            cluster.start_agent(i);
        }
        cluster
    }

    pub fn coordinator_url(&self) -> String {
        format!("http://{}", self.coordinator_addr)
    }

    pub fn results_dir(&self) -> PathBuf {
        self.root.join("results")
    }

    pub fn checkpoint_root(&self) -> PathBuf {
        self.root.join("ckpt")
    }

    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// Starts the coordinator on its fixed port; retries while the port is still held by the
    /// previous incarnation.
    pub fn start_coordinator(&mut self) {
        assert!(self.coordinator.is_none(), "the coordinator is already running");
        for _ in 0..50 {
            let log =
                append_log(&self.root.join("coordinator.log"), &format!("=== start {}", self.coordinator_starts + 1));
            let mut child = Command::new(bin("sweep-coordinator"))
                .arg("--listen")
                .arg(self.coordinator_addr.to_string())
                .arg("--lease-ttl")
                .arg(format!("{}ms", self.config.lease_ttl_ms))
                .arg("--flush-interval")
                .arg(format!("{}ms", self.config.flush_interval_ms))
                .arg("--state")
                .arg(self.root.join("state"))
                .arg("--results")
                .arg(self.results_dir())
                .env("SWEEP_LOG", "info")
                .env("NO_COLOR", "1")
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .expect("start sweep-coordinator");
            let mut line = String::new();
            let read = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
            if matches!(read, Ok(n) if n > 0) && line.contains("listening on") {
                self.coordinator = Some(child);
                self.coordinator_starts += 1;
                self.log
                    .note(format!("coordinator started (#{}) on {}", self.coordinator_starts, self.coordinator_addr));
                return;
            }
            let _ = child.kill();
            let status = child.wait();
            self.log.note(format!("coordinator did not start ({status:?}); retrying"));
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("sweep-coordinator would not start on {}\n{}", self.coordinator_addr, self.log_tails(40));
    }

    /// SIGKILL: no drain, no flush.
    pub fn kill_coordinator(&mut self) {
        if let Some(mut c) = self.coordinator.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.log.note("coordinator SIGKILLed");
        }
    }

    pub fn start_agent(&mut self, i: usize) {
        let name = self.agents[i].name.clone();
        let log = append_log(&self.root.join(format!("{name}.log")), "=== start");
        let child = Command::new(bin("sweep-agent"))
            .arg("--coordinator")
            .arg(self.proxy.url())
            .args(["--name", &name, "--slots", &self.config.slots.to_string()])
            .arg("--poll-interval")
            .arg(format!("{}ms", self.config.poll_interval_ms))
            .args(["--stop-grace", "2s"])
            // The replayed-reports fault leases pending trials with its own client; agents that
            // lease ahead of their slots would take every one first. Held leases under kills and
            // drains are tested in tests/tests/lease_ahead.rs.
            .args(["--lease-ahead", "0"])
            .arg("--work-dir")
            .arg(self.root.join(&name))
            .arg("--checkpoint-root")
            .arg(self.checkpoint_root())
            .env("SWEEP_LOG", "info")
            .env("NO_COLOR", "1")
            .env("SWEEP_GPUS", "")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sweep-agent");
        self.agents[i].child = Some(child);
        self.agent_starts += 1;
        self.log.note(format!("agent {name} started"));
    }

    /// SIGKILL one agent; its trials die with it (process group and PDEATHSIG).
    pub fn kill_agent(&mut self, i: usize) {
        if let Some(mut c) = self.agents[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.log.note(format!("agent {} SIGKILLed", self.agents[i].name));
        }
    }

    /// Restarts agents that exited on their own, and notes why they did.
    pub fn restart_exited_agents(&mut self) {
        for i in 0..self.agents.len() {
            let exited = match self.agents[i].child.as_mut() {
                Some(c) => c.try_wait().ok().flatten(),
                None => None,
            };
            if let Some(status) = exited {
                self.agents[i].child = None;
                self.agent_self_exits += 1;
                self.log.note(format!("agent {} exited by itself ({status}); restarting", self.agents[i].name));
                self.start_agent(i);
            }
        }
    }

    /// Runs the `sweep` CLI against the coordinator directly (not through the proxy).
    pub fn sweep(&self, args: &[&str]) -> Output {
        Command::new(bin("sweep"))
            .args(args)
            .env("SWEEP_COORDINATOR", self.coordinator_url())
            .output()
            .expect("run sweep")
    }

    /// `sweep status SWEEP --json`, or `None` while the coordinator cannot answer.
    pub fn status(&self, sweep: &str) -> Option<Value> {
        let out = self.sweep(&["status", sweep, "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The last `lines` lines of the coordinator's and every agent's log.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut names = vec!["coordinator.log".to_string()];
        names.extend(self.agents.iter().map(|a| format!("{}.log", a.name)));
        let mut out = String::new();
        for n in names {
            let text = std::fs::read_to_string(self.root.join(&n)).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            out.push_str(&format!("--- {n} (last {} of {} lines)\n{}\n", tail.len(), all.len(), tail.join("\n")));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for a in &mut self.agents {
            if let Some(mut c) = a.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(mut c) = self.coordinator.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Opens `path` for appending, writes a marker line, and hands it to a child as its stderr, so a
/// restarted process adds to its predecessor's log.
fn append_log(path: &Path, marker: &str) -> File {
    let mut f = OpenOptions::new().create(true).append(true).open(path).expect("log file");
    let _ = writeln!(f, "{marker}");
    f
}
