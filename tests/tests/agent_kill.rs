//! An agent killed with SIGKILL in the middle of a trial: its lease expires, the trial runs again
//! as attempt 2 on the other agent and finishes, and nothing is recorded twice.

mod common;

use common::*;
use std::collections::HashSet;
use std::time::Duration;
use sweep_coordinator::results;

/// Five slow epochs (long enough for a loaded machine to see the trial running before it ends);
/// each attempt leaves its number in the checkpoint folder, which is the same for every attempt
/// of the trial.
const TRAIN: &str = r#"#!/bin/sh
echo "$SWEEP_ATTEMPT" >> "$SWEEP_CHECKPOINT_DIR/attempts"
for e in 1 2 3 4 5; do
  sleep 1
  echo "{\"epoch\": $e, \"metrics\": {\"loss\": 0.$e, \"attempt\": $SWEEP_ATTEMPT}}"
done
"#;

#[test]
fn a_killed_agents_trial_finishes_elsewhere_as_attempt_2() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_script(&root.join("train.sh"), TRAIN);
    std::fs::write(
        root.join("kill.toml"),
        "name = \"kill\"\nworkload = \"command\"\ncommand = [\"./train.sh\"]\n[params]\nx = 1\n",
    )
    .unwrap();

    // A lease TTL long enough that a loaded machine delaying heartbeats does not lose the retry too.
    let coordinator = start_coordinator(root, "3s");
    let mut agents = [
        ("a", Some(start_agent(root, &coordinator.url, "a", 1))),
        ("b", Some(start_agent(root, &coordinator.url, "b", 1))),
    ];
    // Both agents share one checkpoint root, as nodes share a filesystem on a cluster.
    let _ = std::fs::create_dir_all(root.join("ckpt"));
    stdout_of(&sweep(&coordinator.url, &["submit", root.join("kill.toml").to_str().unwrap()]));

    // Wait until the trial runs and has reported at least one epoch, then kill its agent.
    let status = wait_for(&coordinator.url, "kill", root, Duration::from_secs(30), |s| count(s, "running") == 1);
    let first_agent = status["trials"][0]["agent"].as_str().unwrap().to_string();
    let sweep_dir = results::sweep_dir(&coordinator.results, "kill");
    let start = std::time::Instant::now();
    while results::read_metrics(&sweep_dir).map(|r| r.is_empty()).unwrap_or(true) {
        assert!(start.elapsed() < Duration::from_secs(15), "no metrics before the kill");
        std::thread::sleep(Duration::from_millis(50));
    }
    let victim = agents.iter_mut().find(|(n, _)| first_agent == *n).expect("agent by name");
    let mut proc = victim.1.take().unwrap();
    proc.0.kill().unwrap(); // SIGKILL
    proc.0.wait().unwrap();

    let status = wait_for(&coordinator.url, "kill", root, Duration::from_secs(60), |s| s["done"] == true);
    let trial = &status["trials"][0];
    assert_eq!(trial["state"], "succeeded", "{status:#}");
    assert_eq!(trial["attempts"], 2, "{status:#}");
    assert_ne!(trial["agent"].as_str().unwrap(), first_agent, "finished on the other agent");

    let rows = loop {
        let rows = results::read_metrics(&sweep_dir).unwrap();
        if rows.iter().filter(|r| r.attempt == 2).count() == 10 {
            break rows;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "attempt 2 rows did not reach parquet: {rows:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let keys: HashSet<(i32, i32, String)> = rows.iter().map(|r| (r.attempt, r.epoch, r.metric.clone())).collect();
    assert_eq!(keys.len(), rows.len(), "no duplicate rows");
    assert!(rows.iter().any(|r| r.attempt == 1), "attempt 1's epochs before the kill are kept");
    assert!(
        rows.iter().filter(|r| r.metric == "attempt").all(|r| r.value == r.attempt as f64),
        "each row is recorded under the attempt that wrote it"
    );
}
