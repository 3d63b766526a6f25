//! Starting the real binaries for end-to-end tests: `sweep-coordinator` on 127.0.0.1:0, agents,
//! and the `sweep` CLI. Binaries come from the same target folder as this test (`make test`
//! builds them first).

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Binaries come from the same target folder as the test.
pub use sweep_e2e::cluster::bin;

/// A child process killed when the test ends, pass or fail.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Coordinator {
    pub proc: Proc,
    pub url: String,
    pub results: PathBuf,
}

/// Starts `sweep-coordinator` on a free port and waits for its address line.
pub fn start_coordinator(root: &Path, lease_ttl: &str) -> Coordinator {
    start_coordinator_with(root, lease_ttl, &[])
}

/// The same, with more flags.
pub fn start_coordinator_with(root: &Path, lease_ttl: &str, flags: &[&str]) -> Coordinator {
    let results = root.join("results");
    let mut child = Command::new(bin("sweep-coordinator"))
        .args(["--listen", "127.0.0.1:0", "--lease-ttl", lease_ttl, "--flush-interval", "300ms"])
        .args(flags)
        .arg("--state")
        .arg(root.join("state"))
        .arg("--results")
        .arg(&results)
        .env("SWEEP_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(root.join("coordinator.log")).expect("log file"))
        .spawn()
        .expect("start sweep-coordinator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("address line");
    let addr = line.trim().rsplit(' ').next().expect("address").to_string();
    assert!(addr.starts_with("127.0.0.1:"), "unexpected first line: {line}");
    Coordinator { proc: Proc(child), url: format!("http://{addr}"), results }
}

/// Starts `sweep-agent` with its own work folder and a log file named after it.
pub fn start_agent(root: &Path, url: &str, name: &str, slots: u32) -> Proc {
    Proc(agent_command(root, url, name, slots).spawn().expect("start sweep-agent"))
}

/// The `sweep-agent` command `start_agent` runs, for tests that add flags.
pub fn agent_command(root: &Path, url: &str, name: &str, slots: u32) -> Command {
    agent_command_with_grace(root, url, name, slots, "2s")
}

/// The same, with the time a drained trial gets to checkpoint before SIGKILL.
pub fn agent_command_with_grace(root: &Path, url: &str, name: &str, slots: u32, stop_grace: &str) -> Command {
    let mut cmd = Command::new(bin("sweep-agent"));
    cmd.args([
        "--coordinator",
        url,
        "--name",
        name,
        "--slots",
        &slots.to_string(),
        "--poll-interval",
        "200ms",
        "--stop-grace",
        stop_grace,
    ])
    .arg("--work-dir")
    .arg(root.join(name))
    .env("SWEEP_LOG", "info")
    .env("SWEEP_GPUS", "")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(root.join(format!("{name}.log"))).expect("log file"));
    cmd
}

/// Runs the `sweep` CLI against `url` and returns its output.
pub fn sweep(url: &str, args: &[&str]) -> Output {
    Command::new(bin("sweep")).args(args).env("SWEEP_COORDINATOR", url).output().expect("run sweep")
}

pub fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "sweep failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn status_json(url: &str, sweep_id: &str) -> Value {
    serde_json::from_str(&stdout_of(&sweep(url, &["status", sweep_id, "--json"]))).expect("status --json is JSON")
}

/// Polls `sweep status --json` until `pred` holds; panics with the last status and the logs
/// after `limit`.
pub fn wait_for(url: &str, sweep_id: &str, root: &Path, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let status = status_json(url, sweep_id);
        if pred(&status) {
            return status;
        }
        if start.elapsed() > limit {
            let logs: String = ["coordinator.log", "a.log", "b.log"]
                .iter()
                .filter_map(|f| std::fs::read_to_string(root.join(f)).ok().map(|t| format!("--- {f}\n{t}")))
                .collect();
            panic!("timed out; last status: {status:#}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn count(status: &Value, state: &str) -> u64 {
    status["counts"][state].as_u64().unwrap_or(0)
}

/// Synthetic CIFAR-10 binaries (`sweep data synth`) in `dir/cifar`, the real on-disk format.
pub fn synth_cifar(dir: &Path, train: u32, test: u32) {
    let out = Command::new(bin("sweep"))
        .args(["data", "synth", "--format", "cifar10", "--out", "cifar", "--train", &train.to_string()])
        .args(["--test", &test.to_string()])
        .current_dir(dir)
        .output()
        .expect("run sweep data synth");
    assert_eq!(stdout_of(&out).trim(), "cifar");
}

/// A double-descent sweep of width-2 preact-ResNet-18 on the synthetic `cifar` folder
/// ([`synth_cifar`]), batches of 32, `epochs` epochs; `rest` follows the `[params]` keys (more of
/// them first, then the other tables).
pub fn preact_sweep(name: &str, epochs: u32, rest: &str) -> String {
    format!(
        r#"
name = "{name}"
workload = "double_descent"
[data]
format = "cifar10"
path = "cifar"
[params]
model = "preact_resnet18"
width = 2
epochs = {epochs}
batch_size = 32
{rest}
"#
    )
}

/// Writes `text` to `path` as an executable script.
pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write the script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("make the script executable");
}

/// Puts a stand-in program `name` (the script `text`) in `root/bin` and returns a PATH that finds
/// it before the real one: for programs that need hardware this machine lacks (`nvidia-smi`,
/// `nvidia-cuda-mps-control`).
pub fn path_with_stand_in(root: &Path, name: &str, text: &str) -> String {
    let bin_dir = root.join("bin");
    std::fs::create_dir_all(&bin_dir).expect("create the stand-ins' folder");
    write_script(&bin_dir.join(name), text);
    format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default())
}
