//! The `sweep` command as a user meets it: `sweep local` end to end, and the errors for bad files,
//! unknown sweeps and a missing coordinator.

mod common;

use common::*;
use std::process::Command;

const SMALL: &str = r#"
name = "small"
workload = "mlp"
[params]
hidden_trainable = false
n = 40
n_test = 100
[grid]
width = [5, 40, 300]
seed = [0, 1]
"#;

fn local(dir: &std::path::Path) -> std::process::Output {
    Command::new(bin("sweep"))
        .args(["local", "small.toml", "--agents", "2"])
        .current_dir(dir)
        .output()
        .expect("run sweep local")
}

/// An agent that cannot start ends `sweep local` with its reason instead of leaving the sweep
/// waiting. Here a stand-in `nvidia-smi` lists a GPU id the coordinator refuses.
#[test]
fn sweep_local_stops_with_the_reason_when_an_agent_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.toml"), SMALL).unwrap();
    let path = path_with_stand_in(dir.path(), "nvidia-smi", "#!/bin/sh\necho 'not, an id'\n");
    let mut child = Command::new(bin("sweep"))
        .args(["local", "small.toml"])
        .current_dir(dir.path())
        .env("PATH", path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("sweep local still waits a minute after its agent failed to start");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("an agent stopped before the sweep ended") && stderr.contains("gpus[0]"), "{stderr}");
}

#[test]
fn sweep_local_runs_everything_and_prints_the_results() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.toml"), SMALL).unwrap();
    let out = local(dir.path());
    let text = stdout_of(&out);
    assert_eq!(text.lines().filter(|l| l.contains(" succeeded ")).count(), 6, "{text}");
    assert!(text.contains("mean over seeds"), "{text}");
    assert!(text.contains("test_error"), "{text}");
    assert!(dir.path().join("results/small/trials.parquet").exists());
    assert!(dir.path().join(".sweep/state.db").exists(), "state goes in .sweep/");
    let rows = sweep_coordinator::results::read_metrics(&dir.path().join("results/small")).unwrap();
    assert!(rows.iter().any(|r| r.metric == "test_error"));

    // Running it again adds nothing and shows the same results.
    let again = local(dir.path());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("6 trials (0 new)"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(stdout_of(&again), text);
}

#[test]
fn errors_name_the_file_the_key_and_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nworkload = \"mlp\"\n[grid]\nwidht = [1, 2]\n").unwrap();
    let out = Command::new(bin("sweep")).arg("validate").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("key `grid.widht`") && err.contains("width"), "{err}");

    let ok = dir.path().join("ok.toml");
    std::fs::write(&ok, SMALL).unwrap();
    let out = Command::new(bin("sweep")).arg("validate").arg(&ok).output().unwrap();
    assert!(stdout_of(&out).contains("6 trials"));

    // No coordinator listens on this port: the error says what to do.
    let out = sweep("http://127.0.0.1:1", &["submit", ok.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sweep local"), "{}", String::from_utf8_lossy(&out.stderr));

    let coordinator = start_coordinator(dir.path(), "5s");
    let out = sweep(&coordinator.url, &["status", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown sweep `nope`"));
    let out = sweep(&coordinator.url, &["cancel", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown sweep `nope`"));
}

/// The double-descent chain as a user runs it: synthetic CIFAR-10 files, a small sweep over two
/// models through `sweep local`, and `sweep plot` drawing its figures.
#[test]
fn synth_data_train_double_descent_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    synth_cifar(dir.path(), 64, 32);
    assert!(dir.path().join("cifar/data_batch_1.bin").exists() && dir.path().join("cifar/test_batch.bin").exists());

    std::fs::write(
        dir.path().join("dd.toml"),
        r#"
name = "dd"
workload = "double_descent"
[data]
format = "cifar10"
path = "cifar"
[params]
epochs = 2
batch_size = 32
optimizer = { name = "adam", lr = 1e-3 }
[grid]
model = ["cnn5", "random_features"]
width = [2, 100]
"#,
    )
    .unwrap();
    let out = Command::new(bin("sweep")).args(["local", "dd.toml"]).current_dir(dir.path()).output().unwrap();
    let table = stdout_of(&out);
    assert_eq!(table.lines().filter(|l| l.contains(" succeeded ")).count(), 4, "{table}");
    let rows = sweep_coordinator::results::read_metrics(&dir.path().join("results/dd")).unwrap();
    let cnn_epochs: std::collections::BTreeSet<i32> =
        rows.iter().filter(|r| r.metric == "test_error" && r.epoch == 2).map(|r| r.epoch).collect();
    assert_eq!(cnn_epochs.len(), 1, "the cnn5 trials report two epochs");

    let out = Command::new(bin("sweep")).args(["plot", "dd"]).current_dir(dir.path()).output().unwrap();
    let paths = stdout_of(&out);
    assert!(paths.lines().count() >= 4, "{paths}");
    for p in paths.lines() {
        assert!(dir.path().join(p).exists() || std::path::Path::new(p).exists(), "{p}");
    }
}

/// `run-trial` with several specs trains them as one fused group in one process: every member's
/// records, tagged with its trial id, on stdout.
#[test]
fn run_trial_with_several_specs_trains_a_fused_group() {
    let dir = tempfile::tempdir().unwrap();
    synth_cifar(dir.path(), 64, 32);
    let file = dir.path().join("fuse.toml");
    std::fs::write(&file, preact_sweep("fuse", 2, "[grid]\nseed = [0, 1]\nweight_decay = [0.0, 5e-4]")).unwrap();
    let trials = sweep_spec::expand(&sweep_spec::SweepFile::read(&file).unwrap()).unwrap();
    let mut args = vec!["run-trial".to_string()];
    for t in &trials {
        let path = dir.path().join(format!("{}.json", t.id));
        std::fs::write(&path, serde_json::to_vec(t).unwrap()).unwrap();
        args.extend(["--spec".to_string(), path.display().to_string()]);
    }
    let out =
        Command::new(bin("sweep")).args(&args).current_dir(dir.path()).env("SWEEP_DEVICE", "cpu").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("fused group of 4"), "{stderr}");
    let lines: Vec<serde_json::Value> =
        stdout_of(&out).lines().map(|l| serde_json::from_str(l).expect("only records on stdout")).collect();
    for t in &trials {
        let epochs: Vec<u64> =
            lines.iter().filter(|l| l["trial"] == t.id.0).map(|l| l["epoch"].as_u64().unwrap()).collect();
        assert_eq!(epochs, vec![1, 2], "trial {}", t.id);
    }
    assert!(lines.iter().all(|l| l["metrics"]["train_loss"].as_f64().unwrap().is_finite()));

    // Trials that differ in the model's width cannot share a group: a configuration error (78).
    let mut wide = trials[0].clone();
    wide.params.insert("width".into(), serde_json::json!(4));
    std::fs::write(dir.path().join("wide.json"), serde_json::to_vec(&wide).unwrap()).unwrap();
    let out = Command::new(bin("sweep"))
        .args(["run-trial", "--spec", &args[2], "--spec", "wide.json"])
        .current_dir(dir.path())
        .env("SWEEP_DEVICE", "cpu")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("params.width"));
}
