//! Horizontal fusion through the whole product: `[resources] fuse` in a sweep file, the
//! coordinator leasing groups, one agent process training each group, and every member's metrics
//! in Parquet under its own trial — the same numbers as the sweep trained without fusion. A member
//! that diverges fails alone while the rest of its group succeeds.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Runs a preact_resnet18 sweep with `sweep local` and returns its trials table and metrics.
fn run(
    dir: &Path,
    name: &str,
    grid: &str,
    resources: &str,
    epochs: u32,
) -> (Vec<sweep_coordinator::results::TrialRow>, Vec<sweep_coordinator::results::MetricRow>) {
    let text = preact_sweep(name, epochs, &format!("[grid]\n{grid}\n[retry]\nmax_attempts = 1\n{resources}"));
    run_text(dir, name, &text)
}

/// Runs the sweep `text` with `sweep local` and one agent; its trials table and metrics.
fn run_text(
    dir: &Path,
    name: &str,
    text: &str,
) -> (Vec<sweep_coordinator::results::TrialRow>, Vec<sweep_coordinator::results::MetricRow>) {
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
    synth_cifar(dir.path(), 64, 32);
    let grid = r#"seed = [0, 1, 2]
optimizer = [{ name = "sgd", lr = 0.02, momentum = 0.9 }, { name = "sgd", lr = 0.01, momentum = 0.9 }]"#;
    let (fused, fused_rows) = run(dir.path(), "fused", grid, "[resources]\nfuse = 3", 2);
    let (alone, alone_rows) = run(dir.path(), "alone", grid, "", 2);
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

    // Trial ids name content, not sweeps: the same trial in both sweeps follows the same loss
    // trajectory, epoch by epoch, within bf16 tolerance. (On a set this small, the lone run's own
    // losses move by up to 1e-3 between one and two CPU threads: BatchNorm over 32 images amplifies
    // rounding.)
    let losses = |rows: &[sweep_coordinator::results::MetricRow]| -> BTreeMap<(String, i32, String), f64> {
        rows.iter()
            .filter(|r| r.metric == "train_loss" || r.metric == "test_loss")
            .map(|r| ((r.trial_id.clone(), r.epoch, r.metric.clone()), r.value))
            .collect()
    };
    let (fused_losses, alone_losses) = (losses(&fused_rows), losses(&alone_rows));
    assert_eq!(fused_losses.len(), 6 * 2 * 2, "both losses of both epochs of every trial");
    assert_eq!(fused_losses.keys().collect::<Vec<_>>(), alone_losses.keys().collect::<Vec<_>>());
    let mut worst = 0.0f64;
    for (key, &x) in &fused_losses {
        let y = alone_losses[key];
        worst = worst.max((x - y).abs() / y.abs().max(1.0));
        assert!((x - y).abs() <= 1e-2 * y.abs().max(1.0), "{key:?}: {x} fused, {y} alone");
    }
    let by_id: BTreeMap<&str, &sweep_coordinator::results::TrialRow> =
        alone.iter().map(|t| (t.trial_id.as_str(), t)).collect();
    for t in &fused {
        let a = by_id[t.trial_id.as_str()];
        assert_eq!(a.status, "succeeded");
        for metric in ["train_error", "test_error"] {
            let (x, y) = (t.finals[metric], a.finals[metric]);
            assert!((x - y).abs() <= 2.0 / 32.0, "trial {}: {metric} {x} fused, {y} alone", t.trial_id);
        }
    }
    eprintln!("largest relative difference of a loss at any epoch, fused vs alone: {worst:.2e}");
}

/// A long-tail sweep over losses and seeds: the seeds of each loss train as one group, and every
/// member's per-class metrics land under its own trial, as the sweep trained without fusion has
/// them.
#[test]
fn long_tail_seeds_train_as_one_group_per_loss() {
    let dir = tempfile::tempdir().unwrap();
    synth_cifar(dir.path(), 200, 50);
    let sweep = |name: &str, fuse: u32| {
        format!(
            r#"name = "{name}"
workload = "long_tail"
[data]
format = "cifar_lt"
path = "cifar"
imbalance_ratio = 5
[params]
model = "mlp"
hidden = 16
epochs = 2
batch_size = 16
optimizer = {{ name = "sgd", lr = 0.01, momentum = 0.9 }}
[grid]
loss = ["ce", "balanced_softmax"]
seed = [0, 1, 2]
[resources]
fuse = {fuse}
[retry]
max_attempts = 1
"#
        )
    };
    let (fused, fused_rows) = run_text(dir.path(), "lt-fused", &sweep("lt-fused", 3));
    let (alone, alone_rows) = run_text(dir.path(), "lt-alone", &sweep("lt-alone", 1));
    assert_eq!((fused.len(), alone.len()), (6, 6));
    assert!(fused.iter().chain(&alone).all(|t| t.status == "succeeded"), "{fused:?}\n{alone:?}");
    let groups: Vec<f64> = fused_rows.iter().filter(|r| r.metric == "fused_members").map(|r| r.value).collect();
    assert_eq!(groups, vec![3.0; 12], "every trial in a group of three, both epochs");
    let of = |rows: &[sweep_coordinator::results::MetricRow]| -> BTreeMap<(String, i32, String), f64> {
        rows.iter()
            .filter(|r| r.metric == "test_loss" || r.metric == "test_acc" || r.metric.starts_with("class_acc/"))
            .map(|r| ((r.trial_id.clone(), r.epoch, r.metric.clone()), r.value))
            .collect()
    };
    let (f, a) = (of(&fused_rows), of(&alone_rows));
    assert_eq!(f.keys().collect::<Vec<_>>(), a.keys().collect::<Vec<_>>());
    for (key, &x) in &f {
        let y = a[key];
        assert!((x - y).abs() <= 1e-3 * y.abs().max(1.0), "{key:?}: {x} fused, {y} alone");
    }
}

#[test]
fn a_diverging_member_fails_alone_and_its_group_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    synth_cifar(dir.path(), 64, 32);
    let grid = r#"seed = [0]
optimizer = [{ name = "sgd", lr = 0.05 }, { name = "sgd", lr = 1e30 }, { name = "sgd", lr = 0.02 }]"#;
    let (trials, rows) = run(dir.path(), "diverge", grid, "[resources]\nfuse = 3", 2);
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

    // Diverging in the last epoch: the group process ends right after saying so, and the member
    // still fails (its drop is not taken for a clean exit).
    let (trials, _) = run(dir.path(), "diverge-last", grid, "[resources]\nfuse = 3", 1);
    for t in &trials {
        let expected = if lr(t) > 1.0 { "failed" } else { "succeeded" };
        assert_eq!(t.status, expected, "{t:?}");
    }
}

/// One member's checkpoint is unreadable, so its group's process fails before training. The
/// group comes back in halves, here at once to each trial alone; the faulty trial fails on its own
/// and the other two succeed, though the sweep allows one attempt.
#[test]
fn a_group_failed_by_one_member_leaves_the_others_to_succeed() {
    let dir = tempfile::tempdir().unwrap();
    synth_cifar(dir.path(), 64, 32);
    let tables = "[grid]\nseed = [0, 1, 2]\n[retry]\nmax_attempts = 1\n[resources]\nfuse = 3";
    let text = preact_sweep("broken", 1, tables);
    let file = sweep_spec::SweepFile::parse(&text, &dir.path().join("broken.toml"), dir.path()).unwrap();
    let trials = sweep_spec::expand(&file).unwrap();
    let faulty = &trials[1].id.0;
    // `sweep local` keeps its agents' checkpoints under .sweep/agents/checkpoints/<sweep>/<trial>.
    let latest = dir.path().join(".sweep/agents/checkpoints/broken").join(faulty).join("latest");
    std::fs::create_dir_all(&latest).unwrap();
    let meta =
        r#"{"epochs_done": 1, "batches_done": 0, "global_step": 2, "workload": "double_descent", "extra": null}"#;
    std::fs::write(latest.join("meta.json"), meta).unwrap();
    std::fs::write(latest.join("model.safetensors"), b"not a safetensors file").unwrap();
    std::fs::write(latest.join("optimizer.safetensors"), b"not a safetensors file").unwrap();

    let (rows, metrics) = run_text(dir.path(), "broken", &text);
    for t in &rows {
        let expected = if &t.trial_id == faulty { "failed" } else { "succeeded" };
        assert_eq!(t.status, expected, "{t:?}");
    }
    // One attempt in the group that failed, which used none of the budget, then one alone.
    assert!(rows.iter().all(|t| t.attempts == 2), "{rows:?}");
    assert!(metrics.iter().all(|r| r.metric != "fused_members"), "the others trained alone");
}

/// A draining agent (SIGTERM) stops its fused group: every member checkpoints into its own
/// folder and hands its lease back; the next agent trains the group again from there. Every
/// epoch of every member is recorded once.
#[test]
fn a_drained_group_resumes_from_its_members_checkpoints() {
    const EPOCHS: i32 = 12;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    synth_cifar(root, 256, 32);
    let rest =
        "optimizer = { name = \"sgd\", lr = 0.01, momentum = 0.9 }\n[grid]\nseed = [0, 1]\n[resources]\nfuse = 2";
    std::fs::write(root.join("drain.toml"), preact_sweep("drain", EPOCHS as u32, rest)).unwrap();
    let coordinator = start_coordinator(root, "60s");
    let checkpoints = root.join("shared-checkpoints");
    let agent = |name: &str| {
        // Checkpointing a group takes longer than a lone trial on two busy cores: a generous grace,
        // so the drain is never cut short by SIGKILL.
        let mut cmd = agent_command_with_grace(root, &coordinator.url, name, 1, "60s");
        cmd.arg("--checkpoint-root").arg(&checkpoints).env("SWEEP_DEVICE", "cpu");
        Proc(cmd.spawn().unwrap())
    };
    let mut a = agent("a");
    stdout_of(&sweep(&coordinator.url, &["submit", root.join("drain.toml").to_str().unwrap()]));
    let sweep_dir = sweep_coordinator::results::sweep_dir(&coordinator.results, "drain");
    let start = std::time::Instant::now();
    let epochs_seen = || {
        sweep_coordinator::results::read_metrics(&sweep_dir)
            .map(|r| r.iter().filter(|m| m.metric == "test_error").count())
            .unwrap_or(0)
    };
    while epochs_seen() < 4 {
        assert!(start.elapsed() < std::time::Duration::from_secs(90), "no epochs before the drain");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(a.0.id() as i32, libc::SIGTERM) };
    assert!(a.0.wait().unwrap().success(), "a drained agent exits 0");
    assert_eq!(count(&status_json(&coordinator.url, "drain"), "pending"), 2, "both members handed back");

    let _b = agent("b");
    let status = wait_for(&coordinator.url, "drain", root, std::time::Duration::from_secs(180), |s| s["done"] == true);
    let rows = loop {
        let rows = sweep_coordinator::results::read_metrics(&sweep_dir).unwrap();
        if rows.iter().filter(|r| r.metric == "test_error" && r.epoch == EPOCHS).count() == 2 {
            break rows;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(240), "last epochs not in parquet");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    for trial in status["trials"].as_array().unwrap() {
        let id = trial["trial_id"].as_str().unwrap();
        assert_eq!((trial["state"].as_str(), trial["attempts"].as_u64()), (Some("succeeded"), Some(2)), "{status:#}");
        let epochs_of = |attempt: i32| -> Vec<i32> {
            let mut e: Vec<i32> = rows
                .iter()
                .filter(|r| r.trial_id == id && r.metric == "test_error" && r.attempt == attempt)
                .map(|r| r.epoch)
                .collect();
            e.sort();
            e
        };
        let (first, second) = (epochs_of(1), epochs_of(2));
        assert!(!first.is_empty(), "trial {id} trained before the drain");
        assert_eq!(second.first().copied(), first.last().map(|e| e + 1), "trial {id} resumed where it stopped");
        let all: Vec<i32> = first.iter().chain(&second).copied().collect();
        assert_eq!(all, (1..=EPOCHS).collect::<Vec<_>>(), "trial {id}: every epoch once");
        let fused: Vec<f64> =
            rows.iter().filter(|r| r.trial_id == id && r.metric == "fused_members").map(|r| r.value).collect();
        assert!(fused.iter().all(|&m| m == 2.0) && fused.len() == EPOCHS as usize, "trained fused throughout");
    }
}
