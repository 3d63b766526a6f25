//! How `sweep` commands end and where they look, with the real binaries: exit 1 with the count when
//! trials failed, 130 after Ctrl-C, `sweep results` finding what `sweep local` wrote, `sweep local
//! --results` writing only its own sweep, and `sweep retry`, `watch --json` and `status` against a
//! real coordinator and agent.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `command` sweep over x = 1, 2, 3 whose trial fails for x = 2, without retries.
fn failing_sweep(dir: &Path, name: &str) {
    write_script(
        &dir.join("trial.sh"),
        "#!/bin/sh\nif [ \"$SWEEP_PARAM_X\" = 2 ]; then echo 'x = 2 is broken' >&2; exit 3; fi\n\
         echo '{\"epoch\": 1, \"metrics\": {\"loss\": 0.5}}'\n",
    );
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!(
            "name = \"{name}\"\nworkload = \"command\"\ncommand = [\"./trial.sh\"]\n[grid]\nx = [1, 2, 3]\n\
             [retry]\nmax_attempts = 1\nbackoff = \"0s\"\n"
        ),
    )
    .unwrap();
}

/// `sweep ARGS` in `dir`, with no coordinator configured in the environment.
fn sweep_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin("sweep"))
        .args(args)
        .current_dir(dir)
        .env_remove("SWEEP_COORDINATOR")
        .env_remove("SWEEP_RESULTS")
        .output()
        .expect("run sweep")
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn sweep_local_exits_1_naming_the_failed_count_and_results_finds_its_files() {
    let dir = tempfile::tempdir().unwrap();
    failing_sweep(dir.path(), "flaky");
    let out = sweep_in(dir.path(), &["local", "flaky.toml", "--agents", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("flaky: 1 of 3 trials failed"), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(" succeeded ")).count(), 2);

    // No coordinator named: the files `sweep local` wrote here are read.
    let out = sweep_in(dir.path(), &["results", "flaky", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("results --json is JSON");
    assert_eq!(rows.as_array().unwrap().len(), 3);
    let legacy = sweep_in(dir.path(), &["results", "flaky", "--format", "json"]);
    assert_eq!(stdout_of(&legacy), stdout_of(&out), "--format json stays the same as --json");

    // SWEEP_RESULTS names the folder as --results does.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(bin("sweep"))
        .args(["results", "flaky", "--format", "csv"])
        .current_dir(elsewhere.path())
        .env_remove("SWEEP_COORDINATOR")
        .env("SWEEP_RESULTS", dir.path().join("results"))
        .output()
        .unwrap();
    assert_eq!(stdout_of(&out).lines().count(), 4, "a header and three trials");

    // A coordinator named explicitly is asked, even with the files here.
    let out = sweep_in(dir.path(), &["--coordinator", "http://127.0.0.1:1", "results", "flaky"]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("cannot reach the coordinator at http://127.0.0.1:1"), "{}", stderr_of(&out));

    // Neither files nor a coordinator: the error names both ways.
    let out = sweep_in(elsewhere.path(), &["--coordinator", "http://127.0.0.1:1", "results", "nothing"]);
    assert!(!out.status.success());
    let out = Command::new(bin("sweep"))
        .args(["results", "nothing"])
        .current_dir(elsewhere.path())
        .env_remove("SWEEP_COORDINATOR")
        .env_remove("SWEEP_RESULTS")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(!out.status.success());
    if !err.contains("unknown sweep") {
        // (Unless a coordinator happens to listen on the default address.)
        assert!(
            err.contains("./results/nothing/trials.parquet")
                && err.contains("--results")
                && err.contains("--coordinator"),
            "{err}"
        );
    }
}

#[test]
fn sweep_local_results_holds_only_the_sweep_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    failing_sweep(dir.path(), "first");
    failing_sweep(dir.path(), "second");
    assert_eq!(sweep_in(dir.path(), &["local", "first.toml"]).status.code(), Some(1));
    assert!(dir.path().join("results/first/trials.parquet").exists());
    let out = sweep_in(dir.path(), &["local", "second.toml", "--results", "out"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(dir.path().join("out/second/trials.parquet").exists());
    let written: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, vec!["second".to_string()], "the earlier sweep of this state folder is not copied");
}

#[test]
fn ctrl_c_stops_sweep_local_with_status_130() {
    let dir = tempfile::tempdir().unwrap();
    write_script(&dir.path().join("slow.sh"), "#!/bin/sh\nexec sleep 60\n");
    std::fs::write(
        dir.path().join("slow.toml"),
        "name = \"slow\"\nworkload = \"command\"\ncommand = [\"./slow.sh\"]\n[grid]\nx = [1, 2]\n",
    )
    .unwrap();
    let child = Command::new(bin("sweep"))
        .args(["local", "slow.toml", "--agents", "1"])
        .current_dir(dir.path())
        .env_remove("SWEEP_COORDINATOR")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("local.log")).unwrap())
        .spawn()
        .unwrap();
    let mut child = Proc(child);
    // Wait until a trial runs: its attempt folder appears.
    let trials = dir.path().join(".sweep/agents/trials/slow");
    let started = Instant::now();
    while std::fs::read_dir(&trials).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no trial started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) }, 0);
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(stopping.elapsed() < Duration::from_secs(30), "sweep local still runs 30 s after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(dir.path().join("local.log")).unwrap();
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(log.contains("interrupted"), "{log}");

    // The interrupted sweep's trials wait in `.sweep/` for its own next run: another sweep run
    // here does not run them first (they are older), and leaves them untouched.
    let attempts = |sweep: &str| {
        let root = dir.path().join(".sweep/agents/trials").join(sweep);
        std::fs::read_dir(root)
            .map(|trials| trials.flatten().map(|t| std::fs::read_dir(t.path()).unwrap().count()).sum::<usize>())
            .unwrap_or(0)
    };
    let slow_attempts = attempts("slow");
    std::fs::write(
        dir.path().join("quick.toml"),
        "name = \"quick\"\nworkload = \"command\"\ncommand = [\"true\"]\n[grid]\nx = [1, 2]\n",
    )
    .unwrap();
    let out = Command::new(bin("sweep"))
        .args(["local", "quick.toml", "--agents", "1"])
        .current_dir(dir.path())
        .env_remove("SWEEP_COORDINATOR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(attempts("quick"), 2);
    assert_eq!(attempts("slow"), slow_attempts, "the earlier sweep's trials did not run");
}

#[test]
fn watch_retry_and_status_against_a_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    failing_sweep(dir.path(), "remote");
    let coordinator = start_coordinator(dir.path(), "5s");
    let file = dir.path().join("remote.toml");
    stdout_of(&sweep(&coordinator.url, &["submit", file.to_str().unwrap()]));
    let _agent = start_agent(dir.path(), &coordinator.url, "a", 2);

    let watched = sweep(&coordinator.url, &["watch", "remote", "--json"]);
    assert_eq!(watched.status.code(), Some(1), "{}", stderr_of(&watched));
    assert!(stderr_of(&watched).contains("remote: 1 of 3 trials failed"), "{}", stderr_of(&watched));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&watched.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let last = lines.last().expect("at least one change");
    assert_eq!((last["done"].as_bool(), last["state"].as_str()), (Some(true), Some("done")));
    assert_eq!(last["counts"]["failed"], 1);

    // The status of each trial shows its parameters beside its id.
    let status = stdout_of(&sweep(&coordinator.url, &["status", "remote"]));
    assert!(status.contains("remote (done,"), "{status}");
    for x in 1..=3 {
        assert!(status.contains(&format!("x={x}")), "{status}");
    }

    // The script is fixed; the failed trial runs again with a fresh budget and the sweep succeeds.
    write_script(&dir.path().join("trial.sh"), "#!/bin/sh\necho '{\"epoch\": 1, \"metrics\": {\"loss\": 0.1}}'\n");
    let retried = stdout_of(&sweep(&coordinator.url, &["retry", "remote", "--failed"]));
    assert!(retried.contains("queued 1 failed trials again"), "{retried}");
    let watched = sweep(&coordinator.url, &["watch", "remote"]);
    assert_eq!(watched.status.code(), Some(0), "{}", stderr_of(&watched));
    let json = status_json(&coordinator.url, "remote");
    assert_eq!((json["state"].as_str(), count(&json, "succeeded")), (Some("done"), 3));
    let retried = json["trials"].as_array().unwrap().iter().find(|t| t["params"]["x"] == 2).unwrap().clone();
    assert_eq!(retried["attempts"], 2, "the retry is the trial's second attempt: {retried}");
    assert_eq!(json["retries"], 1);

    // Logs written to files carry no colour codes.
    for log in ["coordinator.log", "a.log"] {
        let text = std::fs::read_to_string(dir.path().join(log)).unwrap();
        assert!(!text.is_empty() && !text.contains('\u{1b}'), "{log}: {text}");
    }
}
