//! Adaptive sweeps as a user runs them with `sweep local`: a grid of `command` trials under an
//! ASHA or median `[schedule]`, whose trials below the cut stop or pause at a rung and whose
//! decisions can be read back from `decisions.parquet`, and a TPE search whose later trials the
//! coordinator proposes.

mod common;

use common::*;
use std::collections::HashMap;
use std::process::Command;

/// Reports `val_error = q + 1 / epoch` for 9 epochs, 0.4 s each: a smaller `q` is better at every
/// epoch, so which trials deserve to go on is known.
const TRIAL: &str = r#"import json, sys, time
q = float(sys.argv[sys.argv.index("--q") + 1])
for epoch in range(1, 10):
    time.sleep(0.4)
    print(json.dumps({"epoch": epoch, "metrics": {"val_error": q + 1.0 / epoch, "train_loss": q}}), flush=True)
"#;

const SWEEP: &str = r#"
name = "asha"
workload = "command"
command = ["python3", "trial.py"]
[grid]
q = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
[search]
metric = "val_error"
mode = "min"
[schedule]
type = "asha"
min_epochs = 1
max_epochs = 9
reduction_factor = 3
promote = false
"#;

#[test]
fn asha_stops_trials_below_the_cut_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trial.py"), TRIAL).unwrap();
    std::fs::write(dir.path().join("asha.toml"), SWEEP).unwrap();
    let out = Command::new(bin("sweep"))
        .args(["local", "asha.toml", "--agents", "2"])
        .current_dir(dir.path())
        .output()
        .expect("run sweep local");
    let text = stdout_of(&out);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));

    let results = dir.path().join("results/asha");
    let trials = sweep_coordinator::results::read_trials_table(&results.join("trials.parquet")).unwrap();
    let q_of = |t: &sweep_coordinator::results::TrialRow| t.params["q"].as_f64().unwrap();
    let status: HashMap<String, (f64, String, Option<i32>)> =
        trials.iter().map(|t| (t.trial_id.clone(), (q_of(t), t.status.clone(), t.rung))).collect();
    let best = status.values().find(|(q, _, _)| *q == 0.1).unwrap();
    assert_eq!(best.1, "succeeded", "the best trial is never below the cut: {status:?}");
    assert_eq!(best.2, Some(3), "it reached the rungs at epochs 1 and 3: {status:?}");
    let stopped: Vec<_> = status.values().filter(|(_, s, _)| s == "stopped_early").collect();
    // Two trials run at a time, best first: the third and every later one reach the rung at
    // epoch 1 behind two better values, with one in three kept.
    assert!(stopped.len() >= 7, "{status:?}");
    assert!(stopped.iter().all(|(_, _, rung)| rung.is_some()), "a stopped trial reached a rung: {status:?}");

    // A stopped trial trained fewer than its 9 epochs.
    let metrics = sweep_coordinator::results::read_metrics(&results).unwrap();
    let mut last_epoch: HashMap<&str, i32> = HashMap::new();
    for row in &metrics {
        let e = last_epoch.entry(row.trial_id.as_str()).or_default();
        *e = (*e).max(row.epoch);
    }
    for (id, (q, s, _)) in &status {
        if s == "stopped_early" {
            assert!(last_epoch[id.as_str()] < 9, "trial q={q} went on after it was stopped: {last_epoch:?}");
        }
    }

    // Why each was stopped: one row per decision, the stop's value worse than its threshold.
    let decisions = sweep_coordinator::results::read_decisions_table(&results).unwrap();
    for (id, (q, s, _)) in &status {
        let mine: Vec<_> = decisions.iter().filter(|d| &d.trial_id == id).collect();
        let stops = mine.iter().filter(|d| d.action == "stop").count();
        assert_eq!(stops, usize::from(s == "stopped_early"), "trial q={q}: {mine:?}");
        for d in mine.iter().filter(|d| d.action == "stop") {
            assert!(d.value.unwrap() > d.threshold.unwrap(), "{d:?}");
            assert_eq!(d.metric, "val_error");
        }
    }
    assert!(text.contains("stopped_early"), "the results table shows the status: {text}");
}

/// Trains to `$SWEEP_STOP_AFTER_EPOCH` when it is set, checkpointing each epoch into
/// `$SWEEP_CHECKPOINT_DIR/epoch` and resuming after it: `val_error = q + 1 / epoch`. The trial
/// with `q = 0.9` ignores the budget and trains on slowly after it, so its agent has to stop it.
const PAUSING_TRIAL: &str = r#"import json, os, sys, time
q = float(sys.argv[sys.argv.index("--q") + 1])
ck = os.path.join(os.environ["SWEEP_CHECKPOINT_DIR"], "epoch")
start = int(open(ck).read()) if os.path.exists(ck) else 0
last = int(os.environ.get("SWEEP_STOP_AFTER_EPOCH") or 9)
if q == 0.9:
    last = 9
for epoch in range(start + 1, last + 1):
    time.sleep(0.2 if epoch == 1 or q != 0.9 else 4)
    print(json.dumps({"epoch": epoch, "metrics": {"val_error": q + 1.0 / epoch}}), flush=True)
    with open(ck + ".tmp", "w") as f:
        f.write(str(epoch))
    os.replace(ck + ".tmp", ck)
"#;

/// ASHA with pause and promote, as a user runs it: the trials are queued best first, so each
/// later one is worse and lifts earlier ones into the cut. Trials outside the cut wait paused,
/// are promoted and resume from their checkpoints, and no epoch is trained twice.
#[test]
fn asha_pauses_trials_below_the_cut_and_promotes_them_later() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trial.py"), PAUSING_TRIAL).unwrap();
    let sweep = SWEEP.replace("promote = false\n", "").replace("name = \"asha\"", "name = \"promote\"");
    std::fs::write(dir.path().join("promote.toml"), &sweep).unwrap();
    let out = Command::new(bin("sweep"))
        .args(["local", "promote.toml", "--agents", "2"])
        .current_dir(dir.path())
        .output()
        .expect("run sweep local");
    let text = stdout_of(&out);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));

    let results = dir.path().join("results/promote");
    let trials = sweep_coordinator::results::read_trials_table(&results.join("trials.parquet")).unwrap();
    let by_q: HashMap<String, &sweep_coordinator::results::TrialRow> =
        trials.iter().map(|t| (t.params["q"].to_string(), t)).collect();
    let statuses: Vec<(String, String, i32)> =
        trials.iter().map(|t| (t.params["q"].to_string(), t.status.clone(), t.attempts)).collect();
    assert!(
        trials.iter().all(|t| t.status == "succeeded" || t.status == "stopped_early"),
        "none left paused: {statuses:?}"
    );
    assert_eq!(by_q["0.1"].status, "succeeded", "{statuses:?}");

    let decisions = sweep_coordinator::results::read_decisions_table(&results).unwrap();
    let promoted: Vec<&str> = decisions.iter().filter(|d| d.action == "promote").map(|d| d.trial_id.as_str()).collect();
    assert!(!promoted.is_empty(), "later, worse trials promote earlier ones: {decisions:?}");
    for id in &promoted {
        let t = trials.iter().find(|t| &t.trial_id == id).unwrap();
        assert!(t.attempts >= 2, "a promoted trial resumed in a new attempt: {statuses:?}");
    }
    for t in trials.iter().filter(|t| t.status == "stopped_early") {
        let last = decisions.iter().rfind(|d| d.trial_id == t.trial_id).unwrap();
        assert_eq!(last.action, "stop", "a trial left waiting is stopped, on record: {decisions:?}");
    }

    // Each epoch of each trial was trained and reported once, whichever attempt ran it, and each
    // resumed attempt started after the last epoch of the one before.
    let metrics = sweep_coordinator::results::read_metrics(&results).unwrap();
    let mut seen: HashMap<(&str, i32), i32> = HashMap::new();
    for row in metrics.iter().filter(|r| r.metric == "val_error") {
        if let Some(attempt) = seen.insert((row.trial_id.as_str(), row.epoch), row.attempt) {
            panic!("trial {} reported epoch {} in attempts {attempt} and {}", row.trial_id, row.epoch, row.attempt);
        }
    }
    let epochs = |q: &str| seen.keys().filter(|(id, _)| *id == by_q[q].trial_id).count();
    assert_eq!(epochs("0.1"), 9, "the best trial trained every epoch once");
    // The trial that ignored its budget was stopped by its agent: it is paused at the first rung
    // behind better trials, and was never allowed to finish its 9 slow epochs.
    assert_eq!(by_q["0.9"].status, "stopped_early", "{statuses:?}");
    assert!(epochs("0.9") < 9, "{statuses:?}");
    assert!(text.contains("stopped_early"), "{text}");
}

/// Median stopping as a user runs it: with the trials queued best first, every trial from the
/// third on is worse than the median of those before it at its first epoch and stops there.
#[test]
fn median_stopping_stops_trials_worse_than_the_median_before_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trial.py"), TRIAL).unwrap();
    let schedule = "[schedule]\ntype = \"median\"\nmax_epochs = 9\nmin_trials = 2\n";
    let sweep = SWEEP[..SWEEP.find("[schedule]").unwrap()].replace("name = \"asha\"", "name = \"median\"") + schedule;
    std::fs::write(dir.path().join("median.toml"), sweep).unwrap();
    let out = Command::new(bin("sweep"))
        .args(["local", "median.toml", "--agents", "2"])
        .current_dir(dir.path())
        .output()
        .expect("run sweep local");
    assert!(out.status.success(), "{}\n{}", stdout_of(&out), String::from_utf8_lossy(&out.stderr));
    let results = dir.path().join("results/median");
    let trials = sweep_coordinator::results::read_trials_table(&results.join("trials.parquet")).unwrap();
    let status: HashMap<String, String> =
        trials.iter().map(|t| (t.params["q"].to_string(), t.status.clone())).collect();
    assert_eq!(status["0.1"], "succeeded", "{status:?}");
    assert!(status.values().filter(|s| *s == "stopped_early").count() >= 6, "{status:?}");
    let decisions = sweep_coordinator::results::read_decisions_table(&results).unwrap();
    assert!(decisions.iter().any(|d| d.epoch > 1), "every epoch is judged: {decisions:?}");
    for d in decisions.iter().filter(|d| d.action == "stop") {
        assert!(d.value.unwrap() > d.threshold.unwrap(), "a stop is worse than its median: {d:?}");
    }
}

/// `loss = (x - 1.5)^2 + (log10 lr + 2)^2`, one epoch.
const QUADRATIC: &str = r#"import json, math, sys
a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
loss = (float(a["--x"]) - 1.5) ** 2 + (math.log10(float(a["--lr"])) + 2) ** 2
print(json.dumps({"epoch": 1, "metrics": {"loss": loss}}), flush=True)
"#;

/// TPE as a user runs it: the file draws the first ten trials, the coordinator proposes the other
/// twenty from their results, and `sweep local` waits for all thirty.
#[test]
fn tpe_proposes_the_trials_after_the_random_first_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trial.py"), QUADRATIC).unwrap();
    let sweep = r#"name = "tpe"
workload = "command"
command = ["python3", "trial.py"]
[search]
sampler = "tpe"
trials = 30
metric = "loss"
mode = "min"
space = { x = { uniform = [-5.0, 5.0] }, lr = { log_uniform = [1e-4, 1.0] } }
"#;
    std::fs::write(dir.path().join("tpe.toml"), sweep).unwrap();
    let validated = Command::new(bin("sweep")).args(["validate", "tpe.toml"]).current_dir(dir.path()).output().unwrap();
    assert!(stdout_of(&validated).contains("30 trials in all: these 10 drawn at random"), "{}", stdout_of(&validated));
    let out = Command::new(bin("sweep"))
        .args(["local", "tpe.toml", "--agents", "2"])
        .current_dir(dir.path())
        .output()
        .expect("run sweep local");
    assert!(out.status.success(), "{}\n{}", stdout_of(&out), String::from_utf8_lossy(&out.stderr));
    let trials = sweep_coordinator::results::read_trials_table(&dir.path().join("results/tpe/trials.parquet")).unwrap();
    assert_eq!(trials.len(), 30, "the plan's thirty trials, no more");
    assert!(trials.iter().all(|t| t.status == "succeeded"));
    let distinct: std::collections::HashSet<&str> = trials.iter().map(|t| t.trial_id.as_str()).collect();
    assert_eq!(distinct.len(), 30);
    for t in &trials {
        let (x, lr) = (t.params["x"].as_f64().unwrap(), t.params["lr"].as_f64().unwrap());
        assert!((-5.0..=5.0).contains(&x) && (1e-4..=1.0).contains(&lr), "{:?}", t.params);
    }
}

#[test]
fn a_schedule_the_workload_cannot_follow_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "name = \"m\"\nworkload = \"mlp\"\n[search]\nmetric = \"val_acc\"\nmode = \"max\"\n[schedule]\ntype = \"asha\"\nmax_epochs = 9\npromote = false\n",
            "search.metric",
            "test_error",
        ),
        (
            "name = \"m\"\nworkload = \"mlp\"\n[params]\nepochs = 5\n[search]\nmetric = \"test_error\"\nmode = \"min\"\n[schedule]\ntype = \"asha\"\nmax_epochs = 9\npromote = false\n",
            "schedule.max_epochs",
            "trains 5 epochs",
        ),
        (
            "name = \"m\"\nworkload = \"mlp\"\n[schedule]\ntype = \"asha\"\nmax_epochs = 9\npromote = false\n",
            "search.metric",
            "missing",
        ),
        (
            "name = \"m\"\nworkload = \"mlp\"\n[search]\nmetric = \"test_error\"\nmode = \"min\"\n[schedule]\ntype = \"asha\"\nmax_epochs = 9\npromote = \"yes\"\n",
            "schedule.promote",
            "true (pause",
        ),
        (
            "name = \"m\"\nworkload = \"mlp\"\n[resources]\nfuse = 4\n[search]\nmetric = \"test_error\"\nmode = \"min\"\n[schedule]\ntype = \"asha\"\nmax_epochs = 9\n",
            "resources.fuse",
            "promote = false",
        ),
        (
            "name = \"m\"\nworkload = \"mlp\"\n[grid]\nwidth = [1, 2]\n[search]\nsampler = \"random\"\ntrials = 4\nspace = { width = { int_uniform = [1, 8] } }\n",
            "search.space.width",
            "already set by `grid.width`",
        ),
        ("name = \"m\"\nworkload = \"mlp\"\n[search]\nsampler = \"random\"\nspace = { width = { int_uniform = [1, 8] } }\n", "search.trials", "missing"),
        ("name = \"m\"\nworkload = \"mlp\"\n[search]\nsampler = \"bayes\"\n", "search.sampler", "\"grid\", \"random\", \"tpe\""),
        ("name = \"m\"\nworkload = \"mlp\"\n[search]\nsampler = \"tpe\"\nmetric = \"test_error\"\nmode = \"min\"\nspace = { width = { int_uniform = [1, 8] } }\n", "search.trials", "missing"),
        (
            "name = \"m\"\nworkload = \"mlp\"\n[search]\nmetric = \"test_error\"\nmode = \"min\"\n[schedule]\ntype = \"pbt\"\ninterval = 2\nmax_epochs = 9\n",
            "schedule.perturb",
            "PBT needs at least one",
        ),
        (
            "name = \"m\"\nworkload = \"mlp\"\n[search]\nmetric = \"test_error\"\nmode = \"min\"\n[schedule]\ntype = \"pbt\"\ninterval = 2\nmax_epochs = 9\nperturb = { momentum = { uniform = [0.0, 0.9] } }\n",
            "schedule.perturb.momentum",
            "has none",
        ),
    ];
    for (text, key, expected) in cases {
        std::fs::write(dir.path().join("m.toml"), text).unwrap();
        let out = Command::new(bin("sweep")).args(["validate", "m.toml"]).current_dir(dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(stderr.contains(&format!("key `{key}`")) && stderr.contains(expected), "{text}\n{stderr}");
    }
}
