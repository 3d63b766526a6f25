//! `deploy/slurm/agents.sbatch` on a real Slurm (`scripts/slurm-up.sh` starts one on localhost):
//! the job's agent runs a `command` trial on the CPU, `scancel --signal=USR1 --batch` (what
//! `--signal=B:USR1@120` sends before a time limit) makes it drain (the lease goes back at once,
//! the job ends with status 0), and a second job of the same script resumes the trial from its
//! checkpoint on the shared checkpoint root: every epoch recorded once, attempt 2 starting right
//! after attempt 1's checkpoint.
//!
//! Skipped (with a message) when `sbatch` is not on PATH, unless `SWEEP_REQUIRE_SLURM` is set, as
//! `make test` does after bringing Slurm up.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use sweep_coordinator::results;

const EPOCHS: i32 = 12;

/// The trial: resumes after the epoch in `$SWEEP_CHECKPOINT_DIR/epoch`; each epoch "trains" (a
/// short sleep), then checkpoints atomically and prints its metrics. SIGTERM only raises a flag,
/// so checkpoint and metrics of an epoch go together: an epoch is either finished, checkpointed
/// and reported, or redone by the next attempt.
const TRAIN: &str = r#"#!/bin/sh
# Test trial for tests/tests/slurm.rs: resumable epochs that checkpoint atomically.
stop=0
trap 'stop=1' TERM
ck="$SWEEP_CHECKPOINT_DIR/epoch"
last=0
if [ -f "$ck" ]; then last=$(cat "$ck"); fi
echo "attempt $SWEEP_ATTEMPT resumes after epoch $last" >&2
e=$((last + 1))
while [ "$e" -le "$SWEEP_PARAM_EPOCHS" ]; do
  sleep 0.4
  if [ "$stop" = 1 ]; then echo "stopped during epoch $e" >&2; exit 143; fi
  echo "$e" > "$ck.tmp.$$"
  mv "$ck.tmp.$$" "$ck"
  echo "{\"epoch\": $e, \"metrics\": {\"loss\": 0.$((100 - e)), \"attempt\": $SWEEP_ATTEMPT}}"
  if [ "$stop" = 1 ]; then echo "stopped after epoch $e" >&2; exit 143; fi
  e=$((e + 1))
done
"#;

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn agents_sbatch() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/slurm/agents.sbatch")
}

/// Jobs this test submitted; cancelled when the test ends, pass or fail.
struct Jobs(Vec<String>);

impl Drop for Jobs {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let _ = Command::new("scancel").args(&self.0).status();
        // Wait (briefly) so that no agent still writes into the test's folder as it is removed.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) && self.0.iter().any(|id| job_active(id)) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `sbatch`es the agent script with the test's settings and returns the job id.
fn submit_agents(root: &Path, coordinator: &str, jobs: &mut Jobs) -> String {
    let export = format!(
        "--export=ALL,SWEEP_COORDINATOR={coordinator},SWEEP_WORK_DIR={},SWEEP_AGENT_BIN={},\
         SWEEP_POLL_INTERVAL=200ms,SWEEP_STOP_GRACE=5s,SWEEP_LOG=info",
        root.join("work").display(),
        bin("sweep-agent").display(),
    );
    let chdir = format!("--chdir={}", root.display());
    let script = agents_sbatch();
    let id = run(
        "sbatch",
        &["--parsable", "--job-name=sweep-e2e-agents", "--time=5", &chdir, &export, script.to_str().unwrap()],
    );
    let id = id.split(';').next().unwrap().to_string();
    jobs.0.push(id.clone());
    id
}

/// The job's state (`RUNNING`, `COMPLETED`, …), or None once Slurm has forgotten it.
fn job_state(id: &str) -> Option<String> {
    let out = Command::new("squeue").args(["-h", "-j", id, "-o", "%T", "--states=all"]).output().ok()?;
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !state.is_empty()).then_some(state)
}

/// Whether the job is queued, running or still cleaning up.
fn job_active(id: &str) -> bool {
    job_state(id)
        .is_some_and(|s| matches!(s.as_str(), "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" | "REQUEUED"))
}

fn job_output(root: &Path, id: &str) -> String {
    std::fs::read_to_string(root.join(format!("sweep-agents-{id}.out"))).unwrap_or_default()
}

fn epochs_recorded(sweep_dir: &Path, attempt: i32) -> usize {
    results::read_metrics(sweep_dir)
        .map(|r| r.iter().filter(|m| m.metric == "loss" && m.attempt == attempt).count())
        .unwrap_or(0)
}

#[test]
fn a_slurm_agent_drains_on_usr1_and_the_next_job_resumes_the_trial() {
    if !on_path("sbatch") && std::env::var_os("SWEEP_REQUIRE_SLURM").is_none() {
        eprintln!(
            "SKIPPED: sbatch is not on PATH, so the Slurm test does not run \
             (scripts/slurm-up.sh starts a local Slurm; SWEEP_REQUIRE_SLURM=1 makes this test required)"
        );
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let script = root.join("train.sh");
    std::fs::write(&script, TRAIN).unwrap();
    std::fs::write(
        root.join("slurm.toml"),
        format!(
            "name = \"slurm\"\nworkload = \"command\"\ncommand = [\"/bin/sh\", \"{}\"]\n[params]\nepochs = {EPOCHS}\n",
            script.display()
        ),
    )
    .unwrap();
    // A long lease: only the hand-back, not an expiry, can put the trial back in time.
    let coordinator = start_coordinator(root, "60s");
    stdout_of(&sweep(&coordinator.url, &["submit", root.join("slurm.toml").to_str().unwrap()]));
    let sweep_dir = results::sweep_dir(&coordinator.results, "slurm");
    let mut jobs = Jobs(Vec::new());
    let logs = |jobs: &Jobs| -> String {
        let mut text = std::fs::read_to_string(root.join("coordinator.log")).unwrap_or_default();
        for id in &jobs.0 {
            text += &format!("\n--- job {id} ({:?})\n{}", job_state(id), job_output(root, id));
        }
        text
    };

    // Job 1 runs the trial for a few epochs.
    let first = submit_agents(root, &coordinator.url, &mut jobs);
    let wait_start = Instant::now();
    while epochs_recorded(&sweep_dir, 1) < 3 {
        assert!(wait_start.elapsed() < Duration::from_secs(30), "no epochs from job {first}\n{}", logs(&jobs));
        std::thread::sleep(Duration::from_millis(100));
    }

    // The time-limit warning, by hand: SIGUSR1 to the batch shell only, as --signal=B:USR1 sends.
    run("scancel", &["--signal=USR1", "--batch", &first]);
    let wait_start = Instant::now();
    while job_active(&first) {
        assert!(wait_start.elapsed() < Duration::from_secs(20), "job {first} did not end after USR1\n{}", logs(&jobs));
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = job_output(root, &first);
    assert!(out.contains("SIGUSR1 received; draining"), "the batch script trapped USR1:\n{}", logs(&jobs));
    assert!(out.contains("agent step ended with status 0"), "the drained agent exits 0:\n{}", logs(&jobs));
    if let Some(state) = job_state(&first) {
        assert_eq!(state, "COMPLETED", "{}", logs(&jobs));
    }
    let status = status_json(&coordinator.url, "slurm");
    assert_eq!(count(&status, "pending"), 1, "the lease was handed back at once: {status:#}\n{}", logs(&jobs));

    // Job 2, the same script, resumes the trial from the shared checkpoint root.
    let second = submit_agents(root, &coordinator.url, &mut jobs);
    let status = wait_for(&coordinator.url, "slurm", root, Duration::from_secs(40), |s| s["done"] == true);
    let trial = &status["trials"][0];
    assert_eq!((trial["state"].as_str(), trial["attempts"].as_u64()), (Some("succeeded"), Some(2)), "{status:#}");
    let agent = trial["agent"].as_str().unwrap_or_default();
    assert!(agent.starts_with(&format!("slurm-{second}-")), "job {second}'s agent finished it, not {agent}");

    let rows = loop {
        let rows = results::read_metrics(&sweep_dir).unwrap();
        if rows.iter().any(|r| r.metric == "loss" && r.epoch == EPOCHS) {
            break rows;
        }
        assert!(wait_start.elapsed() < Duration::from_secs(20), "last epoch not in parquet");
        std::thread::sleep(Duration::from_millis(100));
    };
    let epochs_of = |attempt: i32| -> Vec<i32> {
        let mut e: Vec<i32> =
            rows.iter().filter(|r| r.metric == "loss" && r.attempt == attempt).map(|r| r.epoch).collect();
        e.sort();
        e
    };
    let (a1, a2) = (epochs_of(1), epochs_of(2));
    let all: Vec<i32> = a1.iter().chain(&a2).copied().collect::<BTreeSet<_>>().into_iter().collect();
    assert_eq!(a1.len() + a2.len(), EPOCHS as usize, "every epoch recorded once: {a1:?} then {a2:?}");
    assert_eq!(all, (1..=EPOCHS).collect::<Vec<_>>(), "every epoch recorded: {a1:?} then {a2:?}");
    assert_eq!(a2.first(), Some(&(a1.last().unwrap() + 1)), "attempt 2 starts after attempt 1's checkpoint");

    // The resumed attempt read the checkpoint attempt 1 left on the shared root.
    let attempt2 =
        find_file(&root.join("work/agents").join(&second), "attempt-2", "stderr.log").expect("attempt 2's log");
    let text = std::fs::read_to_string(&attempt2).unwrap();
    assert!(text.contains(&format!("attempt 2 resumes after epoch {}", a1.last().unwrap())), "{text}");
    eprintln!("slurm test: attempt 1 ran epochs {a1:?}, attempt 2 {a2:?}; {:.1} s", started.elapsed().as_secs_f64());
}

/// The first `<dir_name>/<file>` below `root`.
fn find_file(root: &Path, dir_name: &str, file: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == dir_name) && path.join(file).is_file() {
                return Some(path.join(file));
            }
            if let Some(found) = find_file(&path, dir_name, file) {
                return Some(found);
            }
        }
    }
    None
}
