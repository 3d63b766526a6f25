//! Failures as a user meets them, with the real coordinator and agent: a script that dies says
//! why in `trials.parquet` and `sweep results`; a misspelled program fails at once, named; a
//! metric that is not a number costs that metric only and is named in `sweep status`; a retried
//! trial's re-reported epochs are counted once by DuckDB and pandas.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;
use sweep_coordinator::results;

/// `mode = fail` dies with a Python-like traceback on stderr and exit code 3; `mode = note`
/// prints a string beside its numbers in two epochs and succeeds.
const TRAIN: &str = r#"#!/bin/sh
if [ "$SWEEP_PARAM_MODE" = fail ]; then
  echo '{"epoch": 1, "metrics": {"loss": 0.9}}'
  echo 'Traceback (most recent call last):' >&2
  printf '  File "train.py", line 3\033[2J\n' >&2
  echo 'ValueError: lr must be positive' >&2
  exit 3
fi
echo '{"epoch": 1, "metrics": {"loss": 0.5, "note": "hi"}}'
echo '{"epoch": 2, "metrics": {"loss": 0.25, "note": "again"}}'
"#;

fn submit(root: &Path, url: &str, file: &str, text: &str) {
    std::fs::write(root.join(file), text).unwrap();
    stdout_of(&sweep(url, &["submit", root.join(file).to_str().unwrap()]));
}

fn by_mode<'a>(trials: &'a [serde_json::Value], mode: &str) -> &'a serde_json::Value {
    trials.iter().find(|t| t["params"]["mode"] == mode).expect("a trial of each mode")
}

#[test]
fn failures_explain_themselves_and_a_bad_field_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_script(&root.join("train.sh"), TRAIN);
    let coordinator = start_coordinator(root, "5s");
    let _agent = start_agent(root, &coordinator.url, "a", 2);
    let url = &coordinator.url;
    submit(
        root,
        url,
        "explain.toml",
        "name = \"explain\"\nworkload = \"command\"\ncommand = [\"./train.sh\"]\n[grid]\nmode = [\"fail\", \"note\"]\n\
         [retry]\nmax_attempts = 1\n",
    );
    // A misspelled program cannot start on any retry: it fails at once despite max_attempts = 3.
    submit(
        root,
        url,
        "typo.toml",
        "name = \"typo\"\nworkload = \"command\"\ncommand = [\"pyhton3-not-installed\", \"train.py\"]\n\
         [params]\nx = 1\n[retry]\nmax_attempts = 3\nbackoff = \"0s\"\n",
    );
    wait_for(url, "explain", root, Duration::from_secs(60), |s| s["done"] == true);
    let typo = wait_for(url, "typo", root, Duration::from_secs(60), |s| s["done"] == true);
    let trial = &typo["trials"][0];
    assert_eq!((&trial["state"], &trial["attempts"]), (&"failed".into(), &1.into()), "{typo:#}");
    assert_eq!(trial["last_error"], "could not start `pyhton3-not-installed`: not found on PATH", "{typo:#}");

    // `sweep results --format json`, from the coordinator and from the files alike.
    let results_dir = coordinator.results.to_str().unwrap();
    let from_coordinator = stdout_of(&sweep(url, &["results", "explain", "--format", "json"]));
    let files = wait_until(|| {
        let out = sweep(url, &["results", "explain", "--format", "json", "--results", results_dir]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text == from_coordinator).then_some(text)
    });
    let rows: Vec<serde_json::Value> = serde_json::from_str(&files).unwrap();
    let failed = by_mode(&rows, "fail");
    assert_eq!((&failed["status"], &failed["exit_code"]), (&"failed".into(), &3.into()), "{failed:#}");
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.starts_with("exit code 3: Traceback"), "{error}");
    assert!(error.ends_with("line 3\\u{1b}[2J\nValueError: lr must be positive"), "escaped, lines kept: {error}");
    let noted = by_mode(&rows, "note");
    assert_eq!((&noted["status"], &noted["exit_code"]), (&"succeeded".into(), &0.into()), "{noted:#}");
    assert_eq!(noted["finals"]["loss"], 0.25, "the numbers of a line with a string are kept: {noted:#}");
    assert_eq!(noted["last_error"], serde_json::Value::Null);

    // trials.parquet holds the same, for pandas and DuckDB.
    let table = results::read_trials_table(&results::sweep_dir(&coordinator.results, "explain").join("trials.parquet"));
    let table = table.unwrap();
    let failed = table.iter().find(|r| r.status == "failed").unwrap();
    assert_eq!(failed.exit_code, Some(3));
    assert!(failed.last_error.as_deref().unwrap().ends_with("ValueError: lr must be positive"));
    let metrics = results::read_metrics(&results::sweep_dir(&coordinator.results, "explain")).unwrap();
    let losses: Vec<_> = metrics.iter().filter(|m| m.metric == "loss").map(|m| (m.epoch, m.value)).collect();
    assert!(losses.contains(&(1, 0.5)) && losses.contains(&(2, 0.25)), "{losses:?}");
    assert!(metrics.iter().all(|m| m.metric != "note"));

    // `sweep status` names the skipped field once for the trial, not once per line.
    let status = stdout_of(&sweep(url, &["status", "explain"]));
    // ... and shows the failure's first and last lines: the exit and the exception.
    let failed_line = "exit code 3: Traceback (most recent call last): … ValueError: lr must be positive";
    assert!(status.lines().any(|l| l.contains(" failed ") && l.ends_with(failed_line)), "{status}");
    let warnings: Vec<_> = status.lines().filter(|l| l.trim_start().starts_with("warning:")).collect();
    assert_eq!(warnings, ["      warning: metric `note` skipped: expected a number, got \"hi\""], "{status}");
    let json = status_json(url, "explain");
    assert_eq!(by_mode(json["trials"].as_array().unwrap(), "note")["warnings"].as_array().unwrap().len(), 1);
    // So does the trial's log, right after the line.
    let logs = trial_logs(&root.join("a"), "stdout.log");
    assert_eq!(logs.matches("sweep-agent: warning: metric `note` skipped").count(), 1, "{logs}");
}

/// Attempt 1 reports epochs 1 and 2, then fails; attempt 2 reports epochs 1 to 3 again, with other
/// values. `WHERE NOT superseded` counts each epoch once, with the retry's value.
const FLAKY: &str = r#"#!/bin/sh
for epoch in 1 2; do
  echo "{\"epoch\": $epoch, \"metrics\": {\"loss\": $((SWEEP_ATTEMPT * 10 + epoch))}}"
done
if [ "$SWEEP_ATTEMPT" = 1 ]; then echo 'flaky node' >&2; exit 1; fi
echo '{"epoch": 3, "metrics": {"loss": 23}}'
"#;

#[test]
fn a_retried_trials_epochs_count_once_in_duckdb_and_pandas() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_script(&root.join("flaky.sh"), FLAKY);
    let coordinator = start_coordinator(root, "5s");
    let _agent = start_agent(root, &coordinator.url, "a", 1);
    submit(
        root,
        &coordinator.url,
        "flaky.toml",
        "name = \"flaky\"\nworkload = \"command\"\ncommand = [\"./flaky.sh\"]\n[params]\nx = 1\n\
         [retry]\nmax_attempts = 2\nbackoff = \"0s\"\n",
    );
    let status = wait_for(&coordinator.url, "flaky", root, Duration::from_secs(60), |s| s["done"] == true);
    assert_eq!(status["trials"][0]["state"], "succeeded", "{status:#}");
    let sweep_dir = results::sweep_dir(&coordinator.results, "flaky");
    // The sink marks attempt 1's rows once it has written attempt 2's.
    let rows = wait_until(|| {
        let rows = results::read_metrics(&sweep_dir).ok()?;
        (rows.len() == 5 && rows.iter().filter(|r| r.superseded).count() == 2).then_some(rows)
    });
    let marked: Vec<_> = rows.iter().filter(|r| r.superseded).map(|r| (r.attempt, r.epoch)).collect();
    assert_eq!(marked, [(1, 1), (1, 2)]);

    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(python.exists(), "{} is missing: run `make setup`", python.display());
    let script = r#"
import sys, duckdb, pandas
metrics = sys.argv[1] + "/metrics"
naive = duckdb.sql(f"select avg(value) from '{metrics}/*.parquet' where metric = 'loss'").fetchall()[0][0]
right = duckdb.sql(f"select avg(value) from '{metrics}/*.parquet' where metric = 'loss' and not superseded").fetchall()[0][0]
frame = pandas.read_parquet(metrics)
latest = frame[~frame["superseded"]]
print(naive, right, latest.loc[latest["metric"] == "loss", "value"].mean(), len(latest))
"#;
    let out = std::process::Command::new(python).arg("-c").arg(script).arg(&sweep_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let nums: Vec<f64> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(|x| x.parse().unwrap()).collect();
    // Naively: (11 + 12 + 21 + 22 + 23) / 5; right: the retry's (21 + 22 + 23) / 3.
    assert_eq!(nums, [17.8, 22.0, 22.0, 3.0], "duckdb naive, duckdb right, pandas right, pandas rows");
}

/// Every `<file>` below the agent's trial folders, concatenated.
fn trial_logs(work_dir: &Path, file: &str) -> String {
    let mut out = String::new();
    let mut stack = vec![work_dir.join("trials")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == file) {
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    out
}

fn wait_until<T>(f: impl Fn() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the parquet files did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `sweep validate` names a misspelled program and a missing script, and still passes the file:
/// the agents' nodes may have what this machine lacks.
#[test]
fn validate_warns_about_a_misspelled_program_and_a_missing_script() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(
        &file,
        "name = \"typo\"\nworkload = \"command\"\ncommand = [\"pyhton3-not-installed\", \"trian.py\"]\n[grid]\nlr = [1, 2]\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin("sweep")).arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a warning, not a refusal: {stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: sweep `typo`"));
    assert!(
        stderr.contains("warning: ") && stderr.contains("command[0] `pyhton3-not-installed`: not found on PATH"),
        "{stderr}"
    );
    assert!(stderr.contains("command[1] `trian.py`: no such file"), "{stderr}");

    std::fs::write(dir.path().join("train.py"), "print(1)\n").unwrap();
    std::fs::write(
        &file,
        "name = \"ok\"\nworkload = \"command\"\ncommand = [\"sh\", \"train.py\"]\n[grid]\nlr = [1]\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin("sweep")).arg("validate").arg(&file).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
