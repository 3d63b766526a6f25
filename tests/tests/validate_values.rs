//! `sweep validate`, `submit` and `local` refuse a value the workload would refuse at run time,
//! naming the key or the trial, before any trial is queued.

mod common;

use common::*;
use std::process::Command;

fn sweep(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin("sweep")).args(args).current_dir(dir).output().expect("run sweep");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_grid_value_the_workload_refuses_fails_validate_and_local_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("xmc.toml"),
        "name = \"xmc\"\nworkload = \"xmc_tree\"\n[data]\nformat = \"xc\"\ntrain = \"train.txt\"\ntest = \"test.txt\"\n\
         [grid]\nloss = [\"squared_hinge\", \"hinge\", \"logistic\"]\n",
    )
    .unwrap();
    for args in [&["validate", "xmc.toml"][..], &["local", "xmc.toml"]] {
        let (ok, stderr) = sweep(dir.path(), args);
        assert!(!ok, "{args:?}: {stderr}");
        assert!(
            stderr
                .contains("xmc.toml: key `grid.loss`: expected one of \"squared_hinge\", \"logistic\", got \"hinge\""),
            "{args:?}: {stderr}"
        );
    }
    assert!(!dir.path().join("results").exists(), "nothing ran");
}

#[test]
fn a_combination_only_the_workload_can_judge_names_the_trial() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lt.toml"),
        "name = \"lt\"\nworkload = \"long_tail\"\n[params]\nepochs = 4\n[grid]\nschedule = [\"cosine\", \"step\"]\n",
    )
    .unwrap();
    let (ok, stderr) = sweep(dir.path(), &["validate", "lt.toml"]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("lt.toml: trial "), "{stderr}");
    assert!(
        stderr.contains("({\"epochs\":4,\"schedule\":\"step\"}) would fail: params.schedule.every_epochs: missing"),
        "{stderr}"
    );
}
