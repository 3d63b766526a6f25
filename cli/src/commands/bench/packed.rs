//! The packed cells of `sweep bench gpu`: N copies of the lone tch step in N processes on one
//! device, as trials packed with `[resources] gpu_share` run. Each process builds and warms up on
//! its own, says it is ready, and waits; all are then released together, and the cell's rate is
//! every process's examples over the wall time from the release to the last one's finish.
//!
//! A worker is this binary again, `sweep bench gpu --packed-worker`, which prints `ready`, waits
//! for a line on stdin, times its steps and prints its `Throughput` as JSON.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;
use sweep_workloads::throughput::{self, StepBench, Throughput};

const READY: &str = "ready";

/// How the packed cells' processes are started: this executable, the bench's own arguments for
/// the cell, and the environment (CUDA MPS, when it is used).
pub struct Packer {
    pub exe: PathBuf,
    pub env: Vec<(&'static str, PathBuf)>,
}

/// A started worker and its output, read line by line.
struct Worker {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    fn next_line(&mut self, i: usize) -> Result<String, String> {
        let mut line = String::new();
        match self.out.read_line(&mut line) {
            Ok(n) if n > 0 => Ok(line.trim().to_string()),
            Ok(_) | Err(_) => Err(self.failure(i)),
        }
    }

    /// Why worker `i` stopped early: the first line of its error, from its stderr.
    fn failure(&mut self, i: usize) -> String {
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        let why = stderr.lines().rev().find(|l| l.starts_with("error: ")).map(|l| l.trim_start_matches("error: "));
        format!("process {} of the pack: {}", i + 1, why.unwrap_or("exited without a figure"))
    }
}

impl Packer {
    /// `bench` run in `processes` processes at once; the rate is summed over all of them.
    pub fn measure(&self, bench: &StepBench, processes: usize) -> Result<Throughput, String> {
        let mut workers = Vec::with_capacity(processes);
        for _ in 0..processes {
            workers.push(self.spawn(bench, processes)?);
        }
        for (i, w) in workers.iter_mut().enumerate() {
            match w.next_line(i)? {
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
            let line = w.next_line(i)?;
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
        let device = if bench.device.is_cuda() { "cuda" } else { "cpu" };
        let mut cmd = Command::new(&self.exe);
        if !bench.device.is_cuda() {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            cmd.env("OMP_NUM_THREADS", (cores / processes).max(1).to_string());
        }
        let mut child = cmd
            .args(["bench", "gpu", "--packed-worker", "--widths", &bench.width.to_string()])
            .args(["--batch", &bench.batch.to_string(), "--steps", &bench.steps.to_string()])
            .args(["--warmup", &bench.warmup.to_string(), "--device", device])
            .args(["--graphs", &bench.graphs.to_string()])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Worker { child, out })
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
