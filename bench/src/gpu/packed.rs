//! The packed cells of `sweep bench gpu`: N copies of the lone tch step in N processes on one
//! device, as trials packed with `[resources] gpu_share` run. Each process builds and warms up on
//! its own, says it is ready, and waits; all are then released together, and the cell's rate is
//! every process's examples over the wall time from the release to the last one's finish.
//!
//! A worker is this binary again, `sweep bench gpu --packed-worker`, which prints `ready`, waits
//! for a line on stdin, times its steps and prints its `Throughput` as JSON. Its output is read on
//! threads, so a chatty worker never blocks on a full pipe, and a worker that stops answering
//! fails the cell after `--packed-timeout` instead of hanging the bench.

use super::throughput::{self, StepBench, Throughput};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const READY: &str = "ready";

/// How the packed cells' processes are started: this executable, the bench's own arguments for
/// the cell, and the environment (CUDA MPS, when it is used).
pub struct Packer {
    pub exe: PathBuf,
    pub env: Vec<(&'static str, PathBuf)>,
    /// How long a cell may take from its first process's start to its last figure.
    pub timeout: Duration,
}

/// A started worker: its stdout line by line, and its stderr gathered whole, each by a thread.
struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    /// Worker `i`'s next line, waiting until `deadline` at most.
    fn next_line(&mut self, i: usize, deadline: Instant) -> Result<String, String> {
        match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => Ok(line.trim().to_string()),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                Err(format!("process {} of the pack: no answer within --packed-timeout", i + 1))
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.failure(i)),
        }
    }

    /// Why worker `i` stopped early: the last `error:` line of its stderr.
    fn failure(&mut self, i: usize) -> String {
        let _ = self.child.wait();
        let stderr = self.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
        let why = stderr.lines().rev().find(|l| l.starts_with("error: ")).map(|l| l.trim_start_matches("error: "));
        format!("process {} of the pack: {}", i + 1, why.unwrap_or("exited without a figure"))
    }
}

impl Packer {
    /// `bench` run in `processes` processes at once; the rate is summed over all of them.
    pub fn measure(&self, bench: &StepBench, processes: usize) -> Result<Throughput, String> {
        let deadline = Instant::now() + self.timeout;
        let mut workers = Vec::with_capacity(processes);
        for _ in 0..processes {
            workers.push(self.spawn(bench, processes)?);
        }
        for (i, w) in workers.iter_mut().enumerate() {
            match w.next_line(i, deadline)? {
                line if line == READY => {}
                other => return Err(format!("process {} of the pack said {other:?} instead of {READY:?}", i + 1)),
            }
        }
        let released = Instant::now();
        for (i, w) in workers.iter_mut().enumerate() {
            let stdin = w.child.stdin.as_mut().ok_or("a worker without stdin")?;
            stdin.write_all(b"go\n").and_then(|_| stdin.flush()).map_err(|e| format!("process {}: {e}", i + 1))?;
        }
        let mut each = Vec::with_capacity(processes);
        for (i, w) in workers.iter_mut().enumerate() {
            let line = w.next_line(i, deadline)?;
            each.push(from_json(&line).ok_or_else(|| format!("process {} printed {line:?}", i + 1))?);
        }
        let seconds = released.elapsed().as_secs_f64();
        let first = each[0];
        let samples = (processes as i64 * bench.batch) as f64 * bench.steps as f64;
        Ok(Throughput {
            samples_per_second: samples / seconds.max(1e-9),
            seconds,
            parameters: first.parameters * processes as i64,
            precision: first.precision,
        })
    }

    /// One of `processes` workers. On the CPU each gets its share of the cores, as the agent gives
    /// trials that run side by side; unshared, their thread pools would spin against each other.
    fn spawn(&self, bench: &StepBench, processes: usize) -> Result<Worker, String> {
        let device = throughput::DeviceChoice::name_of(bench.device);
        let mut cmd = Command::new(&self.exe);
        if !bench.device.is_cuda() {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            cmd.env("OMP_NUM_THREADS", (cores / processes).max(1).to_string());
        }
        let mut child = cmd
            .args(["bench", "gpu", "--packed-worker", "--arch", bench.arch.name()])
            .args(["--widths", &bench.width.to_string()])
            .args(["--batch", &bench.batch.to_string(), "--steps", &bench.steps.to_string()])
            .args(["--warmup", &bench.warmup.to_string(), "--device", device])
            .args(["--graphs", &bench.graphs.to_string()])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        let (tx, lines) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Ok(Worker { child, lines, stderr: Some(stderr) })
    }
}

/// The worker's side: measures `bench`, saying `ready` on stdout before the timed steps and
/// waiting for a line on stdin; then prints the figure as one JSON line.
pub fn work(bench: &StepBench) -> anyhow::Result<()> {
    let throughput = throughput::measure_when(bench, || {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY}").and_then(|_| out.flush()).map_err(|e| e.to_string())?;
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).map_err(|e| e.to_string())?;
        Ok(())
    })
    .map_err(anyhow::Error::msg)?;
    println!("{}", to_json(&throughput));
    Ok(())
}

fn to_json(t: &Throughput) -> Value {
    json!({
        "samples_per_second": t.samples_per_second,
        "seconds": t.seconds,
        "parameters": t.parameters,
        "bf16": t.precision == sweep_workloads::harness::Precision::Bf16,
    })
}

fn from_json(line: &str) -> Option<Throughput> {
    let v: Value = serde_json::from_str(line).ok()?;
    Some(Throughput {
        samples_per_second: v["samples_per_second"].as_f64()?,
        seconds: v["seconds"].as_f64()?,
        parameters: v["parameters"].as_i64()?,
        precision: match v["bf16"].as_bool()? {
            true => sweep_workloads::harness::Precision::Bf16,
            false => sweep_workloads::harness::Precision::Fp32,
        },
    })
}

/// A short folder for the MPS daemon the bench starts (its sockets' paths must stay short).
pub fn mps_dir() -> PathBuf {
    Path::new("/tmp").join(format!("sweep-bench-mps-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packer whose "workers" are the shell script `body` (it ignores the bench's arguments).
    fn packer(dir: &Path, body: &str, timeout: Duration) -> Packer {
        use std::os::unix::fs::PermissionsExt;
        let exe = dir.join("worker.sh");
        std::fs::write(&exe, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        Packer { exe, env: Vec::new(), timeout }
    }

    fn bench() -> StepBench {
        StepBench {
            arch: sweep_workloads::models::Arch::PreactResnet18,
            width: 1,
            members: 1,
            batch: 4,
            warmup: 0,
            steps: 2,
            device: sweep_workloads::tch::Device::Cpu,
            graphs: false,
        }
    }

    const FIGURE: &str = r#"{"samples_per_second": 10, "seconds": 0.8, "parameters": 7, "bf16": false}"#;

    #[test]
    fn workers_released_together_give_one_figure_for_the_pack() {
        let dir = tempfile::tempdir().unwrap();
        // Much more stderr than a pipe holds before `ready`: read on a thread, it blocks nothing.
        let body = format!("head -c 200000 /dev/zero | tr '\\0' x >&2\necho ready\nread go\necho '{FIGURE}'");
        let t = packer(dir.path(), &body, Duration::from_secs(30)).measure(&bench(), 3).unwrap();
        assert_eq!(t.parameters, 21, "three networks of 7");
        assert!((t.samples_per_second - 3.0 * 4.0 * 2.0 / t.seconds).abs() < 1e-6, "{t:?}");
    }

    #[test]
    fn a_worker_that_fails_or_hangs_fails_the_cell_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let failing = packer(dir.path(), "echo 'error: CUDA out of memory' >&2\nexit 1", Duration::from_secs(30));
        let err = failing.measure(&bench(), 2).unwrap_err();
        assert_eq!(err, "process 1 of the pack: CUDA out of memory");
        let started = Instant::now();
        let hanging = packer(dir.path(), "echo ready\nsleep 30", Duration::from_millis(500));
        let err = hanging.measure(&bench(), 2).unwrap_err();
        assert!(err.contains("no answer within --packed-timeout"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "the cell gave up in time");
    }

    #[test]
    fn a_worker_figure_survives_its_json_line() {
        let t = Throughput {
            samples_per_second: 1234.5,
            seconds: 0.25,
            parameters: 42,
            precision: sweep_workloads::harness::Precision::Bf16,
        };
        assert_eq!(from_json(&to_json(&t).to_string()), Some(t));
        assert_eq!(from_json("{\"samples_per_second\": 1}"), None);
    }
}
