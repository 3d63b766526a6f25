//! A draining agent (SIGTERM, as Kubernetes or a preempting scheduler sends): its libtorch trial
//! checkpoints, the lease goes back at once (no waiting for it to expire), and another agent
//! resumes the trial from the checkpoint on the shared checkpoint root: every epoch is recorded
//! once, none is trained twice past the checkpoint.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use sweep_coordinator::results;

const EPOCHS: i32 = 30;

fn sweep_file() -> String {
    format!(
        r#"
name = "drain"
workload = "mlp"
[params]
hidden_trainable = true
n = 2000
n_test = 500
dim = 32
width = 128
epochs = {EPOCHS}
batch_size = 16
"#
    )
}

#[test]
fn a_drained_trial_resumes_from_its_checkpoint_on_another_agent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("drain.toml"), sweep_file()).unwrap();
    // A long lease: only the hand-back, not an expiry, can move the trial in time.
    let coordinator = start_coordinator(root, "60s");
    let checkpoints = root.join("shared-checkpoints");
    let agent = |name: &str| {
        let mut cmd = agent_command(root, &coordinator.url, name, 1);
        cmd.arg("--checkpoint-root").arg(&checkpoints);
        Proc(cmd.spawn().unwrap())
    };
    let mut a = agent("a");
    stdout_of(&sweep(&coordinator.url, &["submit", root.join("drain.toml").to_str().unwrap()]));

    let sweep_dir = results::sweep_dir(&coordinator.results, "drain");
    let start = Instant::now();
    while results::read_metrics(&sweep_dir).map(|r| r.iter().filter(|m| m.metric == "test_error").count()).unwrap_or(0)
        < 3
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no epochs before the drain");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(a.0.id() as i32, libc::SIGTERM) };
    let status = a.0.wait().unwrap();
    assert!(status.success(), "a drained agent exits 0, got {status:?}");
    let status = status_json(&coordinator.url, "drain");
    assert_eq!(count(&status, "pending"), 1, "handed back at once: {status:#}");

    let _b = agent("b");
    let status = wait_for(&coordinator.url, "drain", root, Duration::from_secs(120), |s| s["done"] == true);
    let trial = &status["trials"][0];
    assert_eq!((trial["state"].as_str(), trial["attempts"].as_u64()), (Some("succeeded"), Some(2)), "{status:#}");

    let rows = loop {
        let rows = results::read_metrics(&sweep_dir).unwrap();
        if rows.iter().any(|r| r.metric == "test_error" && r.epoch == EPOCHS) {
            break rows;
        }
        assert!(start.elapsed() < Duration::from_secs(180), "last epoch not in parquet");
        std::thread::sleep(Duration::from_millis(100));
    };
    let epochs_of = |attempt: i32| -> BTreeSet<i32> {
        rows.iter().filter(|r| r.metric == "test_error" && r.attempt == attempt).map(|r| r.epoch).collect()
    };
    let (first, second) = (epochs_of(1), epochs_of(2));
    let all: BTreeSet<i32> = first.union(&second).copied().collect();
    assert_eq!(all, (1..=EPOCHS).collect(), "every epoch recorded");
    assert!(first.is_disjoint(&second), "no epoch trained twice: {first:?} then {second:?}");
    assert_eq!(
        *second.first().unwrap(),
        *first.last().unwrap() + 1,
        "attempt 2 starts where attempt 1's checkpoint left off"
    );

    let resumed = std::fs::read_to_string(
        root.join("b/trials/drain").read_dir().unwrap().next().unwrap().unwrap().path().join("attempt-2/stderr.log"),
    )
    .unwrap();
    assert!(resumed.contains("resuming from"), "{resumed}");
}
