//! Horizontal fusion through the whole product: `[resources] fuse` in a sweep file, the
//! coordinator leasing groups, one agent process training each group, and every member's metrics
//! in Parquet under its own trial — the same numbers as the sweep trained without fusion. A member
//! that diverges fails alone while the rest of its group succeeds.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn synth_cifar(dir: &Path) {
    let out = Command::new(bin("sweep"))
        .args(["data", "synth", "--format", "cifar10", "--out", "cifar", "--train", "64", "--test", "32"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Runs a preact_resnet18 sweep with `sweep local` and returns its trials table and metrics.
fn run(
    dir: &Path,
    name: &str,
    grid: &str,
    resources: &str,
) -> (Vec<sweep_coordinator::results::TrialRow>, Vec<sweep_coordinator::results::MetricRow>) {
    let text = format!(
        r#"
name = "{name}"
workload = "double_descent"
[data]
format = "cifar10"
path = "cifar"
[params]
model = "preact_resnet18"
width = 2
epochs = 2
batch_size = 32
[grid]
{grid}
[retry]
max_attempts = 1
{resources}
"#
    );
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    let out = Command::new(bin("sweep"))
        .args(["local", &format!("{name}.toml"), "--agents", "1"])
        .current_dir(dir)
        .env("SWEEP_DEVICE", "cpu")
        .output()
        .unwrap();
    let results = dir.join("results").join(name);
    let trials = sweep_coordinator::results::read_trials_table(&results.join("trials.parquet"))
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", stdout_of(&out), String::from_utf8_lossy(&out.stderr)));
    (trials, sweep_coordinator::results::read_metrics(&results).unwrap())
}

#[test]
fn a_fused_sweep_records_what_the_unfused_sweep_records() {
    let dir = tempfile::tempdir().unwrap();
    synth_cifar(dir.path());
    let grid = r#"seed = [0, 1, 2]
optimizer = [{ name = "sgd", lr = 0.02, momentum = 0.9 }, { name = "sgd", lr = 0.01, momentum = 0.9 }]"#;
    let (fused, fused_rows) = run(dir.path(), "fused", grid, "[resources]\nfuse = 3");
    let (alone, _) = run(dir.path(), "alone", grid, "");
    assert_eq!(fused.len(), 6);
    for t in &fused {
        assert_eq!(t.status, "succeeded", "{t:?}");
    }
    // Every trial trained in a group of three, and reported both epochs under its own id.
    let members: BTreeMap<&str, Vec<f64>> =
        fused_rows.iter().filter(|r| r.metric == "fused_members").fold(BTreeMap::new(), |mut m, r| {
            m.entry(r.trial_id.as_str()).or_insert_with(Vec::new).push(r.value);
            m
        });
    assert_eq!(members.len(), 6, "{members:?}");
    assert!(members.values().all(|v| v == &vec![3.0, 3.0]), "{members:?}");

    // Trial ids name content, not sweeps: the same trial in both sweeps ends with the same numbers,
    // within bf16 tolerance. (On a set this small, the lone run's own losses move by up to 1e-3
    // between one and two CPU threads: BatchNorm over 32 images amplifies rounding.)
    let by_id: BTreeMap<&str, &sweep_coordinator::results::TrialRow> =
        alone.iter().map(|t| (t.trial_id.as_str(), t)).collect();
    let mut worst = 0.0f64;
    for t in &fused {
        let a = by_id[t.trial_id.as_str()];
        assert_eq!(a.status, "succeeded");
        for metric in ["train_loss", "test_loss"] {
            let (x, y) = (t.finals[metric], a.finals[metric]);
            worst = worst.max((x - y).abs() / y.abs().max(1.0));
            assert!((x - y).abs() <= 1e-2 * y.abs().max(1.0), "trial {}: {metric} {x} fused, {y} alone", t.trial_id);
        }
        for metric in ["train_error", "test_error"] {
            let (x, y) = (t.finals[metric], a.finals[metric]);
            assert!((x - y).abs() <= 2.0 / 32.0, "trial {}: {metric} {x} fused, {y} alone", t.trial_id);
        }
    }
    eprintln!("largest relative difference of a final loss, fused vs alone: {worst:.2e}");
}

#[test]
fn a_diverging_member_fails_alone_and_its_group_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    synth_cifar(dir.path());
    let grid = r#"seed = [0]
optimizer = [{ name = "sgd", lr = 0.05 }, { name = "sgd", lr = 1e30 }, { name = "sgd", lr = 0.02 }]"#;
    let (trials, rows) = run(dir.path(), "diverge", grid, "[resources]\nfuse = 3");
    let lr = |t: &sweep_coordinator::results::TrialRow| t.params["optimizer"]["lr"].as_f64().unwrap();
    for t in &trials {
        let expected = if lr(t) > 1.0 { "failed" } else { "succeeded" };
        assert_eq!(t.status, expected, "{t:?}");
    }
    let diverged = trials.iter().find(|t| lr(t) > 1.0).unwrap();
    let epochs = |id: &str| rows.iter().filter(|r| r.trial_id == id && r.metric == "train_loss").count();
    assert_eq!(epochs(&diverged.trial_id), 1, "its last epoch is recorded, then nothing");
    for t in trials.iter().filter(|t| lr(t) < 1.0) {
        assert_eq!(epochs(&t.trial_id), 2);
    }
}
