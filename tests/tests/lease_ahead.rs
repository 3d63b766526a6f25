//! An agent whose trials are short holds the next trial's lease ahead of its one slot. When it
//! drains, the held lease goes back unstarted (not counted as lost) and another agent runs it;
//! when it is killed, its running trial dies with it and the held lease expires and runs
//! elsewhere. Either way every trial succeeds once.

mod common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// `seconds = 0` ends at once; on agent `a` (started with SLOW set) a slower trial sleeps, as the
/// process whose pid it records so a test can see it die; elsewhere every trial ends at once.
const TRAIN: &str = r#"#!/bin/sh
echo $$ > "$(dirname "$0")/pid-$SWEEP_TRIAL_ID"
if [ "$SWEEP_PARAM_SECONDS" != 0 ] && [ -n "$SLOW" ]; then
  exec sleep "$SWEEP_PARAM_SECONDS"
fi
echo "{\"epoch\": 1, \"metrics\": {\"loss\": 0.5}}"
"#;

/// Agent `a`, with one slot, on which slow trials are slow.
fn slow_agent(root: &std::path::Path, url: &str) -> Proc {
    Proc(agent_command(root, url, "a", 1).env("SLOW", "1").spawn().expect("start sweep-agent"))
}

fn set_up(root: &std::path::Path) {
    write_script(&root.join("train.sh"), TRAIN);
    std::fs::write(
        root.join("ahead.toml"),
        "name = \"ahead\"\nworkload = \"command\"\ncommand = [\"./train.sh\"]\n[grid]\nseconds = [0, 60, 61]\n",
    )
    .unwrap();
}

/// The trial with this `seconds`.
fn trial(status: &Value, seconds: u64) -> Value {
    let trials = status["trials"].as_array().expect("trials");
    trials.iter().find(|t| t["params"]["seconds"] == seconds).cloned().expect("trial by seconds")
}

/// A coordinator with this lease lifetime and agent `a`, once `a` has finished the quick trial,
/// runs one slow trial and holds the other; with the sweep's status then.
fn one_running_one_held(root: &std::path::Path, lease_ttl: &str) -> (Coordinator, Proc, Value) {
    set_up(root);
    let coordinator = start_coordinator(root, lease_ttl);
    let a = slow_agent(root, &coordinator.url);
    stdout_of(&sweep(&coordinator.url, &["submit", root.join("ahead.toml").to_str().unwrap()]));
    let status = wait_for(&coordinator.url, "ahead", root, Duration::from_secs(60), |s| {
        count(s, "succeeded") == 1 && count(s, "running") == 1 && count(s, "leased") == 1
    });
    (coordinator, a, status)
}

/// Agent `b` runs both slow trials, each on its second attempt, and the sweep ends.
fn both_run_on_b(root: &std::path::Path, coordinator: &Coordinator) {
    let _b = start_agent(root, &coordinator.url, "b", 1);
    let status = wait_for(&coordinator.url, "ahead", root, Duration::from_secs(60), |s| s["done"] == true);
    assert_eq!(count(&status, "succeeded"), 3, "{status:#}");
    for seconds in [60, 61] {
        let t = trial(&status, seconds);
        assert_eq!((t["attempts"].as_u64(), t["agent"].as_str()), (Some(2), Some("b")), "{status:#}");
    }
}

#[test]
fn a_draining_agent_hands_its_held_lease_back_unstarted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (coordinator, mut a, status) = one_running_one_held(root, "30s");
    let held = status["trials"].as_array().unwrap().iter().find(|t| t["state"] == "leased").cloned().unwrap();

    // SAFETY: signalling our own child process.
    unsafe { libc::kill(a.0.id() as i32, libc::SIGTERM) };
    assert!(a.0.wait().unwrap().success(), "a drained agent exits 0");
    let status = status_json(&coordinator.url, "ahead");
    assert_eq!(count(&status, "pending"), 2, "both handed back at once: {status:#}");
    let returned = status["trials"].as_array().unwrap().iter().find(|t| t["trial_id"] == held["trial_id"]).unwrap();
    assert_eq!(returned["last_error"], "handed back unstarted by a draining agent", "{status:#}");
    assert!(!root.join("a/trials/ahead").join(held["trial_id"].as_str().unwrap()).exists(), "it never started");

    both_run_on_b(root, &coordinator);
}

#[test]
fn a_killed_agents_trial_dies_with_it_and_its_held_lease_runs_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A short lease lifetime, so the held lease expires soon after the agent dies.
    let (coordinator, mut a, status) = one_running_one_held(root, "3s");
    let running = status["trials"].as_array().unwrap().iter().find(|t| t["state"] == "running").cloned().unwrap();
    let pid_file = root.join(format!("pid-{}", running["trial_id"].as_str().unwrap()));
    let started = Instant::now();
    let pid: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse().ok()) {
            break pid;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no {}", pid_file.display());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(alive(pid), "the trial runs before the kill");

    a.0.kill().unwrap(); // SIGKILL: no drain, no hand-back
    a.0.wait().unwrap();
    let killed = Instant::now();
    while alive(pid) {
        assert!(killed.elapsed() < Duration::from_secs(5), "trial {pid} outlived its agent");
        std::thread::sleep(Duration::from_millis(20));
    }

    both_run_on_b(root, &coordinator);
}

/// Whether `pid` still runs (a zombie waiting to be reaped does not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
