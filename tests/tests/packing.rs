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
