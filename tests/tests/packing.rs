//! Packing (`[resources] gpu_share`): trials that need a fraction of a GPU share one, each in its
//! own process, and whole-GPU trials get GPUs nothing else runs on. This machine has no GPU, so
//! the agent is given two GPU names (`SWEEP_GPUS=0,1`) and the trials are programs that record the
//! `CUDA_VISIBLE_DEVICES` they were given and when they ran; what is checked is the scheduling, not
//! CUDA itself.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// Prints its GPU and its start and end time (ms) as one epoch's metrics, after `sleep` seconds.
const TRIAL: &str = r#"
import json, os, sys, time
start = time.time()
time.sleep(float(sys.argv[sys.argv.index("--sleep") + 1]))
gpu = float(os.environ["CUDA_VISIBLE_DEVICES"])
print(json.dumps({"epoch": 1, "metrics": {"gpu": gpu, "start": start * 1e3, "end": time.time() * 1e3}}), flush=True)
"#;

#[test]
fn shared_trials_pack_four_to_a_gpu_and_whole_ones_wait_for_a_free_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("trial.py"), TRIAL).unwrap();
    let sweep_file = |name: &str, resources: &str, n: usize| {
        let path = root.join(format!("{name}.toml"));
        let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        std::fs::write(
            &path,
            format!(
                "name = \"{name}\"\nworkload = \"command\"\ncommand = [\"python3\", \"trial.py\"]\n[params]\nsleep = 1.5\n[grid]\nid = [{}]\n[resources]\n{resources}\n",
                ids.join(", ")
            ),
        )
        .unwrap();
        path
    };
    let shared = sweep_file("shared", "gpu_share = 0.25", 8);
    let whole = sweep_file("whole", "gpus = 1", 2);
    let coordinator = start_coordinator(root, "30s");
    stdout_of(&sweep(&coordinator.url, &["submit", shared.to_str().unwrap()]));
    stdout_of(&sweep(&coordinator.url, &["submit", whole.to_str().unwrap()]));
    let _agent = Proc(agent_command(root, &coordinator.url, "a", 10).env("SWEEP_GPUS", "0,1").spawn().unwrap());
    wait_for(&coordinator.url, "shared", root, Duration::from_secs(60), |s| s["done"] == true);
    wait_for(&coordinator.url, "whole", root, Duration::from_secs(60), |s| s["done"] == true);

    let runs = |sweep: &str| -> Vec<(f64, f64, f64)> {
        let dir = sweep_coordinator::results::sweep_dir(&coordinator.results, sweep);
        let rows = loop {
            let rows = sweep_coordinator::results::read_metrics(&dir).unwrap_or_default();
            if rows.iter().filter(|r| r.metric == "gpu").count() == if sweep == "shared" { 8 } else { 2 } {
                break rows;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut by_trial: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
        for r in &rows {
            by_trial.entry(&r.trial_id).or_default().insert(&r.metric, r.value);
        }
        by_trial.values().map(|m| (m["gpu"], m["start"], m["end"])).collect()
    };
    let (shared, whole) = (runs("shared"), runs("whole"));
    // At any moment, at most four quarter-GPU trials on one GPU, and no whole-GPU trial beside them.
    let busy_at = |t: f64, runs: &[(f64, f64, f64)], gpu: f64| {
        runs.iter().filter(|(g, start, end)| *g == gpu && *start <= t && t < *end).count()
    };
    let mut most = 0;
    for &(gpu, start, _) in shared.iter().chain(&whole) {
        let quarters = busy_at(start, &shared, gpu);
        let wholes = busy_at(start, &whole, gpu);
        assert!(quarters <= 4, "{quarters} quarter trials on GPU {gpu}: {shared:?}");
        assert!(wholes == 0 || quarters == 0, "a whole-GPU trial shared GPU {gpu}: {shared:?} {whole:?}");
        most = most.max(quarters);
    }
    assert_eq!(most, 4, "four quarter trials ran side by side on one GPU: {shared:?}");
    assert!(shared.iter().all(|(g, _, _)| *g == 0.0 || *g == 1.0));
}

/// Stands in for `nvidia-cuda-mps-control`, which needs a GPU. `-d` forks a daemon that listens
/// on the control socket in `$CUDA_MPS_PIPE_DIRECTORY`, as the real one does. Otherwise a command
/// read from stdin is sent to it: `quit` stops it and removes its socket; `die` ends it and leaves
/// the socket file behind, as a daemon killed by a signal does. Each start and command is recorded
/// in `$MPS_RECORD` with its pipe folder.
const FAKE_MPS_CONTROL: &str = r#"#!/usr/bin/env python3
import os, socket, sys
pipe = os.environ["CUDA_MPS_PIPE_DIRECTORY"]
control = os.path.join(pipe, "control")

def record(what):
    with open(os.environ["MPS_RECORD"], "a") as f:
        f.write(f"{what} {pipe}\n")

if sys.argv[1:] == ["-d"]:
    record("start")
    if os.fork() > 0:
        sys.exit(0)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    server = socket.socket(socket.AF_UNIX)
    server.bind(control)
    server.listen(16)
    while True:
        conn, _ = server.accept()
        command = conn.recv(64).decode().strip()
        if command == "quit":
            os.unlink(control)
        if command in ("quit", "die"):
            os._exit(0)
        conn.close()
command = sys.stdin.readline().strip()
record(command)
client = socket.socket(socket.AF_UNIX)
try:
    client.connect(control)
except OSError as e:
    sys.exit(f"cannot reach the MPS control daemon: {e}")
client.sendall(command.encode() + b"\n")
client.recv(1)
"#;

/// Reports whether its environment points at a running MPS daemon.
const MPS_TRIAL: &str = r#"
import json, os, socket
pipe = os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "")
mps = 0.0
if pipe and os.path.isabs(pipe):
    try:
        socket.socket(socket.AF_UNIX).connect(os.path.join(pipe, "control"))
        mps = 1.0
    except OSError:
        pass
print(json.dumps({"epoch": 1, "metrics": {"mps": mps}}), flush=True)
"#;

/// An agent with GPUs starts its own MPS daemon at its first packed trial where the node runs none
/// (first stopping one an earlier, killed run of it left behind), points only its packed trials at
/// it, starts another when it dies, and stops it when it exits. Whole-GPU trials before it never
/// meet a daemon.
#[test]
fn packed_trials_run_under_an_mps_daemon_the_agent_starts_restarts_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let path = path_with_stand_in(root, "nvidia-cuda-mps-control", FAKE_MPS_CONTROL);
    std::fs::write(root.join("trial.py"), MPS_TRIAL).unwrap();
    std::fs::create_dir(root.join("no-node-daemon")).unwrap();
    let sweep_file = |name: &str, resources: &str| {
        let path = root.join(format!("{name}.toml"));
        let text = format!(
            "name = \"{name}\"\nworkload = \"command\"\ncommand = [\"python3\", \"trial.py\"]\n[grid]\nid = [0, 1]\n[resources]\n{resources}\n"
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let coordinator = start_coordinator(root, "30s");
    stdout_of(&sweep(&coordinator.url, &["submit", sweep_file("whole", "gpus = 1").to_str().unwrap()]));
    let record = root.join("mps-record");
    // What an agent killed by SIGKILL leaves: its daemon, still running.
    let pipe = root.join("a/mps/a/pipe");
    std::fs::create_dir_all(&pipe).unwrap();
    let control = |args: &[&str], stdin: &str| {
        let mut child = std::process::Command::new("nvidia-cuda-mps-control")
            .args(args)
            .env("PATH", &path)
            .env("MPS_RECORD", &record)
            .env("CUDA_MPS_PIPE_DIRECTORY", &pipe)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "nvidia-cuda-mps-control {args:?} <<< {stdin:?}");
    };
    control(&["-d"], "");
    let answers = || std::os::unix::net::UnixStream::connect(pipe.join("control")).is_ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !answers() {
        assert!(std::time::Instant::now() < deadline, "the stand-in daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut agent = Proc(
        agent_command(root, &coordinator.url, "a", 4)
            .env("SWEEP_GPUS", "0,1")
            .env("PATH", &path)
            .env("MPS_RECORD", &record)
            // No daemon of the node's: the agent must start its own.
            .env("CUDA_MPS_PIPE_DIRECTORY", root.join("no-node-daemon"))
            .spawn()
            .unwrap(),
    );
    wait_for(&coordinator.url, "whole", root, Duration::from_secs(60), |s| s["done"] == true);
    let recorded = || std::fs::read_to_string(&record).unwrap();
    assert_eq!(recorded(), format!("start {}\n", pipe.display()), "no daemon before the first packed trial");
    let mps_of = |sweep: &str| -> Vec<f64> {
        let dir = sweep_coordinator::results::sweep_dir(&coordinator.results, sweep);
        loop {
            let rows = sweep_coordinator::results::read_metrics(&dir).unwrap_or_default();
            let values: Vec<f64> = rows.iter().filter(|r| r.metric == "mps").map(|r| r.value).collect();
            if values.len() == 2 {
                return values;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert_eq!(mps_of("whole"), [0.0, 0.0], "whole-GPU trials run outside MPS");
    stdout_of(&sweep(&coordinator.url, &["submit", sweep_file("packed", "gpu_share = 0.5").to_str().unwrap()]));
    wait_for(&coordinator.url, "packed", root, Duration::from_secs(60), |s| s["done"] == true);
    assert_eq!(mps_of("packed"), [1.0, 1.0], "packed trials reach the agent's daemon");

    // The daemon dies between trials, its socket file left behind: the next packed trials find
    // a new one rather than running without MPS.
    control(&[], "die\n");
    assert!(pipe.join("control").exists() && !answers());
    stdout_of(&sweep(&coordinator.url, &["submit", sweep_file("after", "gpu_share = 0.5").to_str().unwrap()]));
    wait_for(&coordinator.url, "after", root, Duration::from_secs(60), |s| s["done"] == true);
    assert_eq!(mps_of("after"), [1.0, 1.0], "packed trials after the daemon died reach a new one");

    unsafe { libc::kill(agent.0.id() as i32, libc::SIGTERM) };
    assert!(agent.0.wait().unwrap().success());
    let p = pipe.display();
    let expected = format!("start {p}\nquit {p}\nstart {p}\ndie {p}\nstart {p}\nquit {p}\n");
    assert_eq!(
        recorded(),
        expected,
        "the stale daemon stopped, one started, died and was replaced, and the last stopped on exit"
    );
    assert!(!pipe.join("control").exists());
}

/// `--mps on` refuses to start an agent where MPS cannot be had, and says why.
#[test]
fn an_agent_that_must_have_mps_refuses_to_start_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("no-node-daemon")).unwrap();
    let coordinator = start_coordinator(root, "30s");
    let out = agent_command(root, &coordinator.url, "a", 1)
        .args(["--mps", "on"])
        .env("SWEEP_GPUS", "0")
        .env("PATH", root.join("nothing-here"))
        .env("CUDA_MPS_PIPE_DIRECTORY", root.join("no-node-daemon"))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--mps on") && stderr.contains("nvidia-cuda-mps-control"), "{stderr}");
}
