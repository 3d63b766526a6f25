//! Population based training as a user runs it with `sweep local`: every interval each trial
//! pauses with a checkpoint; the worst are replaced by copies of the best, which resume from the
//! checkpoint the best kept at that epoch with a perturbed learning rate. The lineage lands in
//! `trials.parquet`, each exploit in `decisions.parquet`.

mod common;

use common::*;
use std::collections::HashMap;
use std::process::Command;
use sweep_coordinator::results::TrialRow;

/// One weight `w` pulled towards 1: each epoch `w += lr * (1 - w)`, reported with `lr` and
/// `val_error = 1 - w`. The state (`w` and the epoch) is checkpointed after every epoch into
/// `$SWEEP_CHECKPOINT_DIR/state.json` and resumed from, so a copy PBT makes continues the
/// parent's `w` with its own `lr`. Trains to `$SWEEP_STOP_AFTER_EPOCH`.
const TRIAL: &str = r#"import json, os, sys, time
lr = float(sys.argv[sys.argv.index("--lr") + 1])
ck = os.path.join(os.environ["SWEEP_CHECKPOINT_DIR"], "state.json")
state = json.load(open(ck)) if os.path.exists(ck) else {"epoch": 0, "w": 0.0}
last = int(os.environ.get("SWEEP_STOP_AFTER_EPOCH") or 8)
for epoch in range(state["epoch"] + 1, last + 1):
    time.sleep(0.05)
    state = {"epoch": epoch, "w": state["w"] + lr * (1.0 - state["w"])}
    print(json.dumps({"epoch": epoch, "metrics": {"val_error": 1.0 - state["w"], "lr": lr}}), flush=True)
    with open(ck + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(ck + ".tmp", ck)
"#;

/// Eight trials, best first (a larger rate pulls `w` to 1 sooner), judged every 2 epochs.
const SWEEP: &str = r#"
name = "pbt"
workload = "command"
command = ["python3", "trial.py"]
[grid]
lr = [0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02]
[search]
metric = "val_error"
mode = "min"
[schedule]
type = "pbt"
interval = 2
max_epochs = 8
quantile = 0.25
resample_probability = 0.0
perturb = { lr = { log_uniform = [0.01, 0.9] } }
"#;

#[test]
fn pbt_replaces_the_worst_trials_with_perturbed_copies_of_the_best() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trial.py"), TRIAL).unwrap();
    std::fs::write(dir.path().join("pbt.toml"), SWEEP).unwrap();
    let validated = Command::new(bin("sweep")).args(["validate", "pbt.toml"]).current_dir(dir.path()).output().unwrap();
    assert!(stdout_of(&validated).contains("schedule: pbt on `val_error`"), "{}", stdout_of(&validated));
    let out = Command::new(bin("sweep"))
        .args(["local", "pbt.toml", "--agents", "2"])
        .current_dir(dir.path())
        .output()
        .expect("run sweep local");
    assert!(out.status.success(), "{}\n{}", stdout_of(&out), String::from_utf8_lossy(&out.stderr));

    let results = dir.path().join("results/pbt");
    let trials = sweep_coordinator::results::read_trials_table(&results.join("trials.parquet")).unwrap();
    let by_id: HashMap<&str, &TrialRow> = trials.iter().map(|t| (t.trial_id.as_str(), t)).collect();
    let lr = |t: &TrialRow| t.params["lr"].as_f64().unwrap();
    let summary: Vec<_> = trials
        .iter()
        .map(|t| (lr(t), t.status.clone(), t.generation, t.parent_trial_id.clone(), t.copied_epoch))
        .collect();
    let decisions = sweep_coordinator::results::read_decisions_table(&results).unwrap();
    let exploited: Vec<&str> =
        decisions.iter().filter(|d| d.action == "exploit").map(|d| d.trial_id.as_str()).collect();
    let copies: Vec<&TrialRow> = trials.iter().filter(|t| t.parent_trial_id.is_some()).collect();
    assert!(!exploited.is_empty(), "the worst trials are exploited: {summary:?}");
    assert_eq!(copies.len(), exploited.len(), "each exploit makes one copy: {summary:?}");
    // Every lineage ends in one trial trained to the last epoch; the others were replaced.
    assert_eq!(trials.iter().filter(|t| t.status == "succeeded").count(), 8, "{summary:?}");
    for id in &exploited {
        assert_eq!(by_id[id].status, "stopped_early", "an exploited trial ends: {summary:?}");
    }

    let metrics = sweep_coordinator::results::read_metrics(&results).unwrap();
    let mut val: HashMap<(&str, i32), f64> = HashMap::new();
    for row in metrics.iter().filter(|r| r.metric == "val_error") {
        let first = val.insert((row.trial_id.as_str(), row.epoch), row.value);
        assert!(first.is_none(), "trial {} reported epoch {} twice", row.trial_id, row.epoch);
    }
    for copy in &copies {
        let parent = by_id[copy.parent_trial_id.as_deref().unwrap()];
        let epoch = copy.copied_epoch.unwrap();
        assert_eq!(epoch % 2, 0, "copied at the end of an interval: {summary:?}");
        assert_eq!(copy.generation, parent.generation + 1, "{summary:?}");
        // The perturbed rate: the parent's times 0.8 or 1.2, kept inside the range.
        let ratio = lr(copy) / lr(parent);
        assert!(
            [0.8, 1.2].iter().any(|f| (ratio - f).abs() < 1e-9) || lr(copy) == 0.9 || lr(copy) == 0.01,
            "{summary:?}"
        );
        // It resumed from the parent's checkpoint at that epoch, with its own rate: its first
        // epoch continues the parent's `w`, and it trained nothing before.
        let parent_w = 1.0 - val[&(parent.trial_id.as_str(), epoch)];
        let expected = 1.0 - (parent_w + lr(copy) * (1.0 - parent_w));
        let first = val[&(copy.trial_id.as_str(), epoch + 1)];
        assert!(
            (first - expected).abs() < 1e-9,
            "copy {} at epoch {}: {first} vs {expected}",
            copy.trial_id,
            epoch + 1
        );
        assert!(!val.contains_key(&(copy.trial_id.as_str(), epoch)), "a copy trains only after its epoch");
    }
    for d in decisions.iter().filter(|d| d.action == "exploit") {
        assert!(d.value.unwrap() > d.threshold.unwrap(), "an exploit is worse than every value kept: {d:?}");
    }
    let status = Command::new(bin("sweep")).args(["results", "pbt"]).current_dir(dir.path()).output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
}
