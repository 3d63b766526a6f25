//! The whole path of a sweep across real processes: `sweep submit` to a `sweep-coordinator`, two
//! `sweep-agent`s training the libtorch `mlp` workload, and the Parquet read back in Rust, pandas
//! and DuckDB.

mod common;

use common::*;
use std::collections::HashSet;
use std::time::Duration;
use sweep_coordinator::results;

const SWEEP: &str = r#"
name = "spine"
workload = "mlp"
[params]
hidden_trainable = false
n = 60
n_test = 200
dim = 5
[grid]
width = [8, 60, 400]
seed = [0, 1]
"#;

const CONTRACT_METRICS: [&str; 4] = ["train_loss", "train_error", "test_loss", "test_error"];

#[test]
fn a_sweep_runs_across_processes_and_lands_in_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let coordinator = start_coordinator(root, "5s");
    let _a = start_agent(root, &coordinator.url, "a", 2);
    let _b = start_agent(root, &coordinator.url, "b", 2);
    let file = root.join("spine.toml");
    std::fs::write(&file, SWEEP).unwrap();
    let file = file.to_str().unwrap();

    let out = sweep(&coordinator.url, &["submit", file]);
    assert_eq!(stdout_of(&out).trim(), "spine");
    let again = sweep(&coordinator.url, &["submit", file]);
    assert_eq!(stdout_of(&again).trim(), "spine");
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 new trials, 6 in all"), "resubmitting adds nothing");

    let status = wait_for(&coordinator.url, "spine", root, Duration::from_secs(120), |s| s["done"] == true);
    assert_eq!(count(&status, "succeeded"), 6, "{status:#}");
    let trials = status["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 6);
    assert!(trials.iter().all(|t| t["attempts"] == 1), "{status:#}");
    let agents: HashSet<&str> = trials.iter().map(|t| t["agent"].as_str().unwrap()).collect();
    assert!(agents.iter().all(|a| ["a", "b"].contains(a)), "agents register under the names given: {agents:?}");
    assert_eq!(status["agents"].as_array().unwrap().len(), 2);

    // The coordinator writes Parquet every 300 ms; wait for the final rows to land.
    let sweep_dir = results::sweep_dir(&coordinator.results, "spine");
    let metrics = wait_until(|| {
        let rows = results::read_metrics(&sweep_dir).ok()?;
        let trials: HashSet<&str> = rows.iter().map(|r| r.trial_id.as_str()).collect();
        (trials.len() == 6).then_some(rows)
    });
    let keys: HashSet<(String, i32, i32, String)> =
        metrics.iter().map(|r| (r.trial_id.clone(), r.attempt, r.epoch, r.metric.clone())).collect();
    assert_eq!(keys.len(), metrics.len(), "no duplicate (trial, attempt, epoch, metric) rows");
    for t in trials {
        let id = t["trial_id"].as_str().unwrap();
        for m in CONTRACT_METRICS {
            assert!(
                metrics.iter().any(|r| r.trial_id == id && r.metric == m && r.value.is_finite()),
                "trial {id} has no {m}"
            );
        }
    }

    let table = wait_until(|| {
        let rows = results::read_trials_table(&sweep_dir.join(results::TRIALS_FILE)).ok()?;
        rows.iter().all(|r| r.status == "succeeded").then_some(rows)
    });
    assert_eq!(table.len(), 6);
    assert!(table.iter().all(|r| r.finals.contains_key("test_error") && r.attempts == 1));

    // Double descent in miniature: the error at the interpolation threshold (width == n) is the worst.
    let mean_error = |width: i64| {
        let errs: Vec<f64> =
            table.iter().filter(|r| r.params["width"] == width).map(|r| r.finals["test_error"]).collect();
        errs.iter().sum::<f64>() / errs.len() as f64
    };
    assert!(mean_error(60) > mean_error(8) && mean_error(60) > mean_error(400), "no peak at width == n");

    let watched = stdout_of(&sweep(&coordinator.url, &["watch", "spine"]));
    assert!(watched.contains("spine: done: succeeded 6"), "{watched}");

    // The CLI reads the same rows from the files and from the coordinator.
    let from_files = stdout_of(&sweep(
        &coordinator.url,
        &["results", "spine", "--format", "csv", "--results", coordinator.results.to_str().unwrap()],
    ));
    let from_coordinator = stdout_of(&sweep(&coordinator.url, &["results", "spine", "--format", "csv"]));
    assert_eq!(from_files, from_coordinator);
    assert_eq!(from_files.lines().count(), 7);

    read_with_python(&coordinator.results, metrics.len());
}

/// pandas and DuckDB read the files with no options. Both are installed by `make setup`.
fn read_with_python(results_dir: &std::path::Path, metric_rows: usize) {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(python.exists(), "{} is missing: run `make setup`", python.display());
    let script = r#"
import sys, duckdb, pandas
root = sys.argv[1]
n = duckdb.sql(f"select count(*) from '{root}/*/metrics/*.parquet'").fetchall()[0][0]
keys = duckdb.sql(f"select count(distinct (trial_id, attempt, epoch, metric)) from '{root}/*/metrics/*.parquet'").fetchall()[0][0]
trials = pandas.read_parquet(f"{root}/spine/trials.parquet")
metrics = pandas.read_parquet(f"{root}/spine/metrics")
assert set(trials["status"]) == {"succeeded"}, trials["status"]
assert "params_width" in trials and "final_test_error" in trials, list(trials.columns)
assert str(metrics["recorded_at"].dtype).startswith("datetime64[us, UTC]"), metrics.dtypes
print(n, keys, len(trials), len(metrics))
"#;
    let out = std::process::Command::new(python).arg("-c").arg(script).arg(results_dir).output().expect("run python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<usize> = text.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(
        nums,
        vec![metric_rows, metric_rows, 6, metric_rows],
        "duckdb count, distinct keys, trials, pandas rows"
    );
}

fn wait_until<T>(f: impl Fn() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "parquet files did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
}
