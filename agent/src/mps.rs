//! CUDA MPS for packed trials (`[resources] gpu_share`): without it, the processes sharing a GPU
//! take turns on it; under MPS their kernels run side by side. On an H100, eight packed k=8
//! preact-ResNet-18 trials trained 66.4k samples/s in all without MPS and 97.9k with it.
//!
//! At its first packed trial, an agent uses the node's MPS daemon if one runs (its control pipe in
//! `CUDA_MPS_PIPE_DIRECTORY`, default `/tmp/nvidia-mps`), else starts its own with
//! `nvidia-cuda-mps-control -d`, its pipe and log folders under the agent's work folder (one per
//! agent name, so the agents of `sweep local` keep apart) so it needs no root and touches no other
//! user's processes, and stops it when the agent exits. Only shared
//! trials are pointed at the daemon; a whole-GPU trial runs as a plain CUDA process.
//!
//! A daemon is alive when its control socket (`control` in the pipe folder) accepts a connection:
//! one killed leaves its socket file behind, and CUDA, failing to connect, would then quietly run
//! the next packed trials without MPS (nvidia-cuda-mps-control(1)). So before each packed trial
//! the agent checks its daemon, and starts another (or finds the node's again) when it has died,
//! logging that it did.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The control program, looked up on PATH.
pub const CONTROL: &str = "nvidia-cuda-mps-control";
const PIPE_ENV: &str = "CUDA_MPS_PIPE_DIRECTORY";
const LOG_ENV: &str = "CUDA_MPS_LOG_DIRECTORY";
/// Where the driver's tools look for the pipe when `CUDA_MPS_PIPE_DIRECTORY` is unset.
const DEFAULT_PIPE_DIR: &str = "/tmp/nvidia-mps";

/// `--mps`: whether packed processes run under CUDA MPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MpsMode {
    /// Use MPS where the node has it (a running daemon, or `nvidia-cuda-mps-control` to start
    /// one); otherwise go without, and say why.
    Auto,
    /// Fail without MPS.
    On,
    /// Never: packed processes time-share their GPU.
    Off,
}

/// An agent's MPS daemon: none until its first packed trial, so sweeps that pack nothing never
/// meet one; `--mps on` starts it at once, so an agent that must have MPS fails when it starts.
#[derive(Debug)]
pub struct AgentMps {
    mode: MpsMode,
    dir: PathBuf,
    /// None until asked for; then the daemon, or None when packed trials go without.
    daemon: Option<Option<Mps>>,
}

impl AgentMps {
    pub fn new(mode: MpsMode, dir: PathBuf) -> Result<AgentMps, String> {
        let mut mps = AgentMps { mode, dir, daemon: None };
        if mode == MpsMode::On {
            mps.daemon = Some(Mps::for_mode(mode, &mps.dir)?);
        }
        Ok(mps)
    }

    /// The environment of a trial packed onto a shared GPU: the daemon's, started on first use
    /// and again when it has died (empty without MPS, or where the agent's own environment already
    /// reaches the node's).
    pub fn packed_env(&mut self) -> Vec<(&'static str, PathBuf)> {
        if let Some(Some(mut dead)) = self.daemon.take_if(|d| d.as_ref().is_some_and(|m| !m.alive())) {
            tracing::warn!(pipe = %dead.pipe.display(), "the CUDA MPS daemon stopped answering; finding another");
            // Nothing is left to stop: a new daemon of this agent's replaces its socket file.
            dead.own = false;
        }
        if self.daemon.is_none() {
            match Mps::for_mode(self.mode, &self.dir) {
                Ok(daemon) => self.daemon = Some(daemon),
                // `on` started one in `new`, so this replaces one that died: the next packed trial
                // tries again.
                Err(why) => tracing::error!("a packed trial runs without CUDA MPS: {why}"),
            }
        }
        let daemon = self.daemon.as_ref().and_then(Option::as_ref);
        daemon.map(|m| m.env().to_vec()).unwrap_or_default()
    }
}

/// The MPS daemon packed processes use.
#[derive(Debug)]
pub struct Mps {
    /// The environment that points a process at the daemon (empty: the agent's own environment
    /// already does).
    env: Vec<(&'static str, PathBuf)>,
    /// The folder of the daemon's control socket.
    pipe: PathBuf,
    /// Started by this agent, so stopped by it; false: the node's daemon.
    own: bool,
}

impl Mps {
    /// The daemon for this agent's packed trials under `mode`. Ok(None): packed trials run
    /// without MPS (`off`, or `auto` where MPS is unavailable, which is logged with the reason).
    /// Err: `on`, and MPS is unavailable.
    pub fn for_mode(mode: MpsMode, dir: &Path) -> Result<Option<Mps>, String> {
        if mode == MpsMode::Off {
            return Ok(None);
        }
        match Mps::start(dir) {
            Ok(mps) => Ok(Some(mps)),
            Err(why) if mode == MpsMode::On => Err(format!("--mps on: {why}")),
            Err(why) => {
                tracing::info!("packed trials time-share their GPU without CUDA MPS: {why}");
                Ok(None)
            }
        }
    }

    /// The node's running daemon, else one started with its folders in `dir`; Err says why
    /// neither can be had.
    pub fn start(dir: &Path) -> Result<Mps, String> {
        let node_pipe = std::env::var_os(PIPE_ENV).map_or_else(|| PathBuf::from(DEFAULT_PIPE_DIR), PathBuf::from);
        if answers(&node_pipe) {
            tracing::info!(pipe = %node_pipe.display(), "using the node's CUDA MPS daemon");
            return Ok(Mps { env: Vec::new(), pipe: node_pipe, own: false });
        }
        let mps = start_daemon(dir)?;
        tracing::info!(pipe = %mps.pipe.display(), "started a CUDA MPS daemon");
        Ok(mps)
    }

    /// Whether this process started the daemon (and so stops it), rather than using the node's.
    pub fn is_own(&self) -> bool {
        self.own
    }

    /// Whether the daemon still accepts connections on its control socket.
    pub fn alive(&self) -> bool {
        answers(&self.pipe)
    }

    /// The environment a packed trial needs to reach the daemon.
    pub fn env(&self) -> &[(&'static str, PathBuf)] {
        &self.env
    }
}

fn start_daemon(dir: &Path) -> Result<Mps, String> {
    // Trials run in their own folders: the daemon's must be absolute. Its sockets live in the pipe
    // folder, and a Unix socket's path has at most 107 bytes.
    let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (pipe, log) = (dir.join("pipe"), dir.join("log"));
    if pipe.as_os_str().len() > 80 {
        return Err(format!("{}: too long a path for MPS's sockets; use a shorter --work-dir", pipe.display()));
    }
    for d in [&pipe, &log] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let env = vec![(PIPE_ENV, pipe.clone()), (LOG_ENV, log)];
    // A daemon of an earlier run of this agent that was killed before it could stop it, or the
    // socket file of one that died.
    if answers(&pipe) {
        stop(&env);
    }
    let _ = std::fs::remove_file(pipe.join("control"));
    let status = Command::new(CONTROL)
        .arg("-d")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {CONTROL}: {e}"))?;
    if !status.status.success() {
        let stderr = String::from_utf8_lossy(&status.stderr);
        return Err(format!("{CONTROL} -d failed ({}): {}", status.status, stderr.trim()));
    }
    // `-d` returns once it has forked; the daemon listens on its control socket a moment later.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !answers(&pipe) {
        if Instant::now() > deadline {
            stop(&env);
            return Err(format!("{CONTROL} -d made no control socket in {} within 5 s", pipe.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Mps { pipe, own: true, env })
}

/// Whether a daemon listens on the control socket in `pipe`.
fn answers(pipe: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(pipe.join("control")).is_ok()
}

/// Asks the daemon `env` points at to quit (it stops its server once its clients have exited).
fn stop(env: &[(&'static str, PathBuf)]) {
    let quit = Command::new(CONTROL)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("piped stdin").write_all(b"quit\n")?;
            child.wait()
        });
    if let Err(e) = quit {
        tracing::warn!(error = %e, "could not stop the CUDA MPS daemon");
    }
}

impl Drop for Mps {
    fn drop(&mut self) {
        if self.own {
            tracing::info!(pipe = %self.pipe.display(), "stopping the CUDA MPS daemon");
            stop(&self.env);
        }
    }
}
