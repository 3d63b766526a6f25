//! Whose fault failed trials are, across real processes: a sweep whose command rejects a flag is
//! paused without quarantining anyone, a healthy sweep behind it finishes, and a node whose
//! `python3` is `/bin/false` is quarantined because the trials it fails succeed on the other node.
//! `sweep local` of a broken sweep ends, with the reason, instead of waiting forever.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A training script that accepts `--width` and nothing else (argparse exits 2 on anything more).
const TRAIN: &str = r#"import argparse, json
p = argparse.ArgumentParser()
p.add_argument("--width", type=int, required=True)
a = p.parse_args()
print(json.dumps({"epoch": 1, "loss": 1.0 / a.width}), flush=True)
"#;

fn command_sweep(name: &str, script: &Path, widths: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nworkload = \"command\"\ncommand = [\"python3\", \"{}\"]\n[grid]\nwidth = {widths}\n{extra}\n",
        script.display()
    )
}

fn agents_json(url: &str) -> Vec<Value> {
    let out = stdout_of(&sweep(url, &["agents", "--json"]));
    serde_json::from_str::<Value>(&out).expect("sweep agents --json is JSON").as_array().expect("a list").clone()
}

/// The agent registered as `name` (`name-N` when a registration already held the name).
fn agent<'a>(agents: &'a [Value], name: &str) -> &'a Value {
    agents
        .iter()
        .find(|a| a["agent_id"].as_str().is_some_and(|id| id == name || id.starts_with(&format!("{name}-"))))
        .unwrap_or_else(|| panic!("agent {name} in {agents:?}"))
}

#[test]
fn a_broken_sweep_is_paused_and_a_broken_node_quarantined_while_healthy_work_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let script = root.join("train.py");
    std::fs::write(&script, TRAIN).unwrap();
    // The broken node: `python3` on its PATH is /bin/false.
    let broken_bin = root.join("broken-bin");
    std::fs::create_dir_all(&broken_bin).unwrap();
    std::os::unix::fs::symlink("/bin/false", broken_bin.join("python3")).unwrap();
    let broken_path = format!("{}:{}", broken_bin.display(), std::env::var("PATH").unwrap_or_default());

    let coordinator = start_coordinator_with(root, "5s", &["--quarantine-after", "3", "--pause-after", "4"]);
    let _good = start_agent(root, &coordinator.url, "good", 1);
    let _bad = Proc(
        agent_command(root, &coordinator.url, "bad", 1).env("PATH", &broken_path).spawn().expect("start sweep-agent"),
    );
    // Both registered before any trial is there: a node that fails at once while the other is
    // still starting would be the only agent, and its failures the sweep's own.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while agents_json(&coordinator.url).len() < 2 {
        assert!(std::time::Instant::now() < deadline, "both agents register within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }

    // `--lr` is rejected by the script on every node.
    let typo = root.join("typo.toml");
    let retry = "[retry]\nmax_attempts = 3\nbackoff = \"0s\"";
    std::fs::write(
        &typo,
        command_sweep(
            "typo",
            &script,
            "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]",
            &format!("[params]\nlr = 0.1\n{retry}"),
        ),
    )
    .unwrap();
    let fine = root.join("fine.toml");
    // Backoff spreads the broken node's failures over the trials, so none runs out of attempts.
    std::fs::write(
        &fine,
        command_sweep("fine", &script, "[1, 2, 3, 4, 5, 6]", "[retry]\nmax_attempts = 10\nbackoff = \"2s\""),
    )
    .unwrap();
    assert_eq!(stdout_of(&sweep(&coordinator.url, &["submit", typo.to_str().unwrap()])).trim(), "typo");
    assert_eq!(stdout_of(&sweep(&coordinator.url, &["submit", fine.to_str().unwrap()])).trim(), "fine");

    let status = wait_for(&coordinator.url, "fine", root, Duration::from_secs(120), |s| s["done"] == true);
    assert_eq!(count(&status, "succeeded"), 6, "{status:#}");
    let typo_status = wait_for(&coordinator.url, "typo", root, Duration::from_secs(30), |s| s["state"] == "paused");
    // The common error is the broken node's bare exit code or the script's complaint, whichever
    // came more often; the trials show the complaint.
    assert!(!typo_status["pause_error"].as_str().unwrap().is_empty(), "{typo_status:#}");
    let complaint = |t: &Value| t["last_error"].as_str().is_some_and(|e| e.contains("unrecognized arguments: --lr"));
    assert!(typo_status["trials"].as_array().unwrap().iter().any(complaint), "{typo_status:#}");
    let agents = agents_json(&coordinator.url);
    let bad = agent(&agents, "bad");
    let good = agent(&agents, "good");
    assert_eq!(bad["state"], "quarantined", "{agents:#?}");
    assert!(bad["quarantine_reason"].as_str().unwrap().contains("fine"), "{bad:#}");
    assert_eq!(good["state"], "ok", "a broken sweep blames no node: {agents:#?}");

    // Both ends say so in their logs, and the user's listings show it.
    let coordinator_log = std::fs::read_to_string(root.join("coordinator.log")).unwrap();
    assert!(
        coordinator_log.contains("agent quarantined") && coordinator_log.contains("sweep paused"),
        "{coordinator_log}"
    );
    let watched = sweep(&coordinator.url, &["watch", "typo"]);
    let watch_err = String::from_utf8_lossy(&watched.stderr);
    assert!(!watched.status.success() && watch_err.contains("typo is paused"), "{watch_err}");
    let status_text = stdout_of(&sweep(&coordinator.url, &["status", "typo"]));
    assert!(status_text.contains("paused:") && status_text.contains("last error:"), "{status_text}");
    let bad_id = bad["agent_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bad_log = std::fs::read_to_string(root.join("bad.log")).unwrap();
        if bad_log.contains("quarantined by the coordinator") {
            break;
        }
        assert!(Instant::now() < deadline, "the agent never logged its quarantine:\n{bad_log}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Let out, the node is listed as ok again; the paused sweep resumes on request.
    let out = stdout_of(&sweep(&coordinator.url, &["agents", "--unquarantine", &bad_id]));
    assert!(out.contains("out of quarantine"), "{out}");
    assert_eq!(agent(&agents_json(&coordinator.url), "bad")["state"], "ok");
    let resumed = stdout_of(&sweep(&coordinator.url, &["resume", "typo"]));
    assert!(resumed.contains("resumed typo"), "{resumed}");
    // Nothing was fixed: new failures pause it again, and only new ones count.
    wait_for(&coordinator.url, "typo", root, Duration::from_secs(30), |s| s["state"] == "paused");
    let log = std::fs::read_to_string(root.join("coordinator.log")).unwrap();
    assert!(log.contains("sweep resumed") && log.matches("sweep paused").count() >= 2, "{log}");
}

#[test]
fn sweep_local_of_a_broken_sweep_ends_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("train.py");
    std::fs::write(&script, TRAIN).unwrap();
    let text = command_sweep("typo", &script, "[1, 2, 3, 4]", "[params]\nlr = 0.1\n[retry]\nbackoff = \"0s\"");
    std::fs::write(dir.path().join("typo.toml"), text).unwrap();
    let mut child = Command::new(bin("sweep"))
        .args(["local", "typo.toml", "--agents", "1"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("sweep local of a broken sweep still runs after a minute");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("typo is paused") && stderr.contains("unrecognized arguments: --lr"), "{stderr}");
}

/// With no agent connected, `sweep watch` into a pipe still prints a progress line every 10 s,
/// and warns that the pending trials have nobody to run them.
#[test]
fn sweep_watch_into_a_pipe_shows_progress_and_why_trials_wait() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let coordinator = start_coordinator(root, "5s");
    let file = root.join("lonely.toml");
    std::fs::write(&file, command_sweep("lonely", &root.join("train.py"), "[1, 2]", "")).unwrap();
    stdout_of(&sweep(&coordinator.url, &["submit", file.to_str().unwrap()]));
    let mut watch = Proc(
        Command::new(bin("sweep"))
            .args(["watch", "lonely"])
            .env("SWEEP_COORDINATOR", &coordinator.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Read as it comes: a first line at once, the next 10 s later, however slowly the CLI starts.
    let (tx, rx) = std::sync::mpsc::channel();
    let out = watch.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut stdout = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stdout.lines().filter(|l| l.starts_with("lonely: 0/2 finished")).count() < 2 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            stdout.push_str(&line);
            stdout.push('\n');
        }
    }
    let _ = watch.0.kill();
    let _ = watch.0.wait();
    let mut stderr = String::new();
    use std::io::Read;
    watch.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("lonely: 0/2 finished")).collect();
    assert!(lines.len() >= 2, "a first line and one 10 s later: {stdout}");
    assert!(lines.iter().all(|l| l.contains("pending 2") && l.contains("waiting")), "{stdout}");
    assert!(stderr.contains("2 pending trials have no agent to run them: no agent is connected"), "{stderr}");
}
