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

/// Printing into a closed pipe (`sweep validate f | head -0`) ends the command by SIGPIPE, as other
/// command-line tools end, with nothing on stderr. (SIGPIPE stays ignored otherwise, so that
/// `sweep local`, which serves gRPC in its own process, survives a connection its peer closed:
/// run again, the test above failed about one time in three without that.)
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.toml"), SMALL).unwrap();
    let mut child = Command::new(bin("sweep"))
        .args(["validate", "small.toml"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
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
    let rows = local_sweep(dir.path(), "dd", 4);
    let cnn_epochs: std::collections::BTreeSet<i32> =
        rows.iter().filter(|r| r.metric == "test_error" && r.epoch == 2).map(|r| r.epoch).collect();
    assert_eq!(cnn_epochs.len(), 1, "the cnn5 trials report two epochs");

    let paths = sweep_in(dir.path(), &["plot", "dd"]);
    assert!(paths.lines().count() >= 4, "{paths}");
    for p in paths.lines() {
        assert!(dir.path().join(p).exists() || std::path::Path::new(p).exists(), "{p}");
    }
}

/// An edge-of-stability sweep through the coordinator and an agent: one record per full-batch step,
/// the sharpness in the Parquet metrics where measured, both models, and the sharpness figure.
#[test]
fn edge_of_stability_records_each_step_and_plots_the_sharpness() {
    let dir = tempfile::tempdir().unwrap();
    synth_cifar(dir.path(), 40, 8);
    std::fs::write(
        dir.path().join("eos.toml"),
        r#"
name = "eos"
workload = "edge_of_stability"
[data]
format = "cifar10"
path = "cifar"
[params]
width = 4
steps = 6
sharpness_every = 3
eigenvalues = 2
n_train = 40
chunk_size = 16
lr = 0.01
[grid]
model = ["mlp", "cnn5"]
"#,
    )
    .unwrap();
    let rows = local_sweep(dir.path(), "eos", 2);
    for trial in rows.iter().map(|r| r.trial_id.clone()).collect::<std::collections::BTreeSet<_>>() {
        let of = |metric: &str| -> Vec<(i32, i64)> {
            rows.iter().filter(|r| r.trial_id == trial && r.metric == metric).map(|r| (r.epoch, r.step)).collect()
        };
        assert_eq!(of("train_loss"), (1..=6).map(|s| (s, s as i64)).collect::<Vec<_>>(), "{trial}");
        assert_eq!(of("sharpness"), vec![(1, 1), (4, 4), (6, 6)], "{trial}");
        assert_eq!(of("eigenvalue/2").len(), 3, "{trial}");
    }
    let paths = sweep_in(dir.path(), &["plot", "eos"]);
    assert!(paths.lines().any(|p| p.ends_with("eos-sharpness.png")), "{paths}");
    assert!(paths.lines().any(|p| p.ends_with("eos-sharpness.svg")), "{paths}");
}

/// The `optimizers` workload through `sweep local`: a record every few steps with the clock and
/// the optimizer's state size, steps to the target in the Parquet, and the figure.
#[test]
fn optimizers_records_loss_against_steps_and_seconds_and_plots_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("opt.toml"),
        r#"
name = "opt"
workload = "optimizers"
[params]
dim = 6
outputs = 4
points = 60
condition_number = 100.0
steps = 40
record_every = 4
target_loss = 0.05
[grid]
optimizer = [{ name = "sgd", lr = 1.0 }, { name = "shampoo", lr = 0.3, block_size = 4 }]
"#,
    )
    .unwrap();
    let rows = local_sweep(dir.path(), "opt", 2);
    for trial in rows.iter().map(|r| r.trial_id.clone()).collect::<std::collections::BTreeSet<_>>() {
        let of = |metric: &str| -> Vec<(i32, i64, f64)> {
            rows.iter()
                .filter(|r| r.trial_id == trial && r.metric == metric)
                .map(|r| (r.epoch, r.step, r.value))
                .collect()
        };
        let steps: Vec<(i32, i64)> = of("train_loss").iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(steps, (1..=10).map(|i| (4 * i, 4 * i as i64)).collect::<Vec<_>>(), "{trial}");
        assert_eq!(of("seconds").len(), 10, "{trial}");
        assert!(of("optimizer_state_bytes")[0].2 >= 16.0, "{trial}");
        let reached = of("steps_to_target");
        assert_eq!(reached.len(), 1, "{trial}: {reached:?}");
        assert_eq!(reached[0].2, reached[0].0 as f64);
    }
    let paths = sweep_in(dir.path(), &["plot", "opt"]);
    assert!(paths.lines().any(|p| p.ends_with("opt-optimizers.png")), "{paths}");
    assert!(paths.lines().any(|p| p.ends_with("opt-optimizers.svg")), "{paths}");
}

/// A sparsity sweep through `sweep local` on MNIST IDX files written by `sweep data synth`: each
/// trial ends at its sparsity with the per-layer and byte metrics, leaves its final weights and
/// masks in its checkpoint folder, and `sweep plot` draws all four figures from them.
#[test]
fn sparsity_sweep_prunes_through_local_and_plots_filters_and_masks() {
    let dir = tempfile::tempdir().unwrap();
    sweep_in(dir.path(), &["data", "synth", "--format", "mnist", "--out", "digits", "--train", "300", "--test", "100"]);
    std::fs::write(
        dir.path().join("thin.toml"),
        r#"
name = "thin"
workload = "sparsity"
[data]
format = "mnist"
path = "digits"
[params]
epochs = 3
end = 1
batch_size = 50
inference_batch = 16
quantize = true
[grid]
final_sparsity = [0.0, 0.9]
"#,
    )
    .unwrap();
    let rows = local_sweep(dir.path(), "thin", 2);
    let last = |metric: &str| -> Vec<f64> {
        let mut v: Vec<(String, i32, f64)> = rows
            .iter()
            .filter(|r| r.metric == metric && r.epoch == 3)
            .map(|r| (r.trial_id.clone(), r.epoch, r.value))
            .collect();
        v.sort_by(|a, b| a.2.total_cmp(&b.2));
        v.into_iter().map(|r| r.2).collect()
    };
    assert_eq!(last("sparsity"), [0.0, 0.9]);
    assert_eq!(last("sparsity/layer0").len(), 2);
    assert_eq!(last("test_acc_int8").len(), 2);
    let bytes = last("model_bytes_sparse");
    assert!(bytes[0] < bytes[1] / 4.0, "{bytes:?}");
    let paths = sweep_in(dir.path(), &["plot", "thin"]);
    for figure in ["accuracy-vs-sparsity", "layer-sparsity", "first-layer-weights", "masks"] {
        assert!(paths.lines().any(|p| p.ends_with(&format!("thin-{figure}.png"))), "{figure}: {paths}");
    }
}

/// A chess sweep through `sweep local` on PGN files written by `sweep data synth --chess`: both
/// transformer forms train, report the chess metrics every epoch, and `sweep plot` draws the
/// legal-move and next-move figures.
#[test]
fn seq2seq_sweep_learns_chess_through_local_and_plots_legal_moves() {
    let dir = tempfile::tempdir().unwrap();
    sweep_in(dir.path(), &["data", "synth", "--chess", "200", "--test", "20", "--max-plies", "16", "--out", "games"]);
    assert!(dir.path().join("games/train.pgn").is_file() && dir.path().join("games/test.pgn").is_file());
    std::fs::write(
        dir.path().join("moves.toml"),
        r#"
name = "moves"
workload = "seq2seq"
[data]
format = "pgn"
path = "games"
[params]
d_model = 32
max_len = 20
epochs = 2
eval_positions = 20
continue_plies = 4
[grid]
form = ["decoder_only", "encoder_decoder"]
"#,
    )
    .unwrap();
    let rows = local_sweep(dir.path(), "moves", 2);
    for metric in ["legal_move_rate", "next_move_acc", "plies_until_illegal", "val_token_acc", "parameters"] {
        let epochs: Vec<i32> = rows.iter().filter(|r| r.metric == metric).map(|r| r.epoch).collect();
        assert_eq!(epochs.len(), 4, "{metric}: {epochs:?}");
    }
    let paths = sweep_in(dir.path(), &["plot", "moves"]);
    for figure in ["legal-move-rate-per-epoch", "next-move-acc-per-epoch"] {
        assert!(paths.lines().any(|p| p.ends_with(&format!("moves-{figure}.png"))), "{figure}: {paths}");
    }
}

/// `sweep data synth --cub` writes the CUB-200-2011 layout with its text_c10 captions: a class for
/// each pair of an image group and a text group, `--train` and `--test` images of each; a second
/// run into the same folder is refused as for every format. A multimodal sweep reads it through
/// `sweep local`, reports every fusion's accuracy with each modality removed, and `sweep plot`
/// draws the bars per fusion.
#[test]
fn data_synth_cub_writes_the_cub_layout_that_a_multimodal_sweep_learns_from() {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<&str> =
        "data synth --cub --image-groups 2 --text-groups 3 --train 4 --test 2 --out birds".split(' ').collect();
    assert_eq!(sweep_in(dir.path(), &args).trim(), "birds");
    let root = dir.path().join("birds");
    let read = |file: &str| std::fs::read_to_string(root.join(file)).unwrap();
    let classes = read("classes.txt");
    assert_eq!(classes.lines().count(), 6);
    assert_eq!(classes.lines().next(), Some("1 001.Synthetic_Bird_00"));
    let images = read("images.txt");
    assert_eq!(images.lines().count(), 36);
    for line in images.lines() {
        let path = std::path::Path::new(line.split_once(' ').unwrap().1);
        assert!(root.join("images").join(path).is_file(), "{line}");
        let text = std::fs::read_to_string(root.join("text_c10").join(path.with_extension("txt"))).unwrap();
        assert_eq!(text.lines().count(), 10, "{line}");
        assert!(text.lines().all(|l| l.ends_with(" .")), "{text}");
    }
    assert_eq!(read("image_class_labels.txt").lines().filter(|l| l.ends_with(" 6")).count(), 6);
    assert_eq!(read("train_test_split.txt").lines().filter(|l| l.ends_with(" 1")).count(), 24);
    let again = Command::new(bin("sweep")).args(&args).current_dir(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && stderr.contains("birds: already exists"), "{stderr}");

    std::fs::write(
        dir.path().join("birds.toml"),
        "name = \"birds\"\nworkload = \"multimodal\"\n[data]\nformat = \"cub\"\npath = \"birds\"\n\
         [params]\nwidth = 2\ndim = 8\nheads = 2\nepochs = 1\n[grid]\nfusion = [\"late\", \"cross_attention\"]\n",
    )
    .unwrap();
    let rows = local_sweep(dir.path(), "birds", 2);
    for metric in ["test_acc", "test_acc/no_image", "test_acc/no_text", "class_acc/5", "parameters"] {
        assert_eq!(rows.iter().filter(|r| r.metric == metric).count(), 2, "{metric}");
    }
    let paths = sweep_in(dir.path(), &["plot", "birds"]);
    assert!(paths.lines().any(|p| p.ends_with("birds-fusions.png")), "{paths}");
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

/// `sweep validate` refuses parameter names that make no clean `--name` flag or share a
/// `SWEEP_PARAM_*` variable, naming the keys.
#[test]
fn validate_refuses_parameter_names_that_make_no_clean_flag_or_variable() {
    let dir = tempfile::tempdir().unwrap();
    let head = "name = \"p\"\nworkload = \"command\"\ncommand = [\"run\"]\n";
    for (tables, needles) in [
        ("[params]\n\"\" = 1\n", &["p.toml", "key `params.`", "expected a parameter name"][..]),
        ("[params]\n\"-lr\" = 1\n", &["key `params.-lr`", "not starting with '-'"]),
        (
            "[params]\na-b = 1\n[grid]\na_b = [1, 2]\n",
            &["key `grid.a_b`", "`a-b` and `a_b` both become SWEEP_PARAM_A_B", "set by `params.a-b`"],
        ),
        (&format!("[params]\n{} = 1\n", "p".repeat(129)), &["expected a parameter name of 1 to 128 bytes"]),
    ] {
        let file = dir.path().join("p.toml");
        std::fs::write(&file, format!("{head}{tables}")).unwrap();
        let out = Command::new(bin("sweep")).arg("validate").arg(&file).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{tables}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{tables}: expected {needle:?} in {err}");
        }
    }
}

/// Trial output and values that carry terminal escapes (clear screen, window title) are shown,
/// not obeyed, by `sweep status`, `sweep results` and `sweep watch`: no ESC or BEL byte reaches
/// the terminal, and the escaped text is there to read.
#[test]
fn status_results_and_watch_show_terminal_escapes_instead_of_sending_them() {
    let dir = tempfile::tempdir().unwrap();
    write_script(
        &dir.path().join("hostile.sh"),
        "#!/bin/sh\n\
         printf '{\"epoch\": 1, \"metrics\": {\"ok\": 1}}\\n'\n\
         printf '{\"epoch\": 2, \"metrics\": {\"acc\\\\u001b[2J\": 0.5}}\\n'\n\
         printf 'boom \\033[2J \\033]0;title\\007 end\\n' >&2\n\
         exit 1\n",
    );
    let file = dir.path().join("hostile.toml");
    std::fs::write(
        &file,
        "name = \"hostile\"\nworkload = \"command\"\ncommand = [\"./hostile.sh\"]\n\
         [grid]\ntag = [\"\\u001b[2J\", \"\\u001b]0;title\\u0007\"]\n[retry]\nmax_attempts = 1\n",
    )
    .unwrap();
    let coordinator = start_coordinator(dir.path(), "5s");
    let _agent = start_agent(dir.path(), &coordinator.url, "a", 2);
    stdout_of(&sweep(&coordinator.url, &["submit", file.to_str().unwrap()]));
    wait_for(&coordinator.url, "hostile", dir.path(), std::time::Duration::from_secs(60), |s| count(s, "failed") == 2);

    let no_escapes = |what: &str, out: &str| {
        assert!(!out.contains(['\x1b', '\x07', '\u{9b}']), "{what} sent a terminal escape: {out:?}");
    };
    let status = stdout_of(&sweep(&coordinator.url, &["status", "hostile"]));
    no_escapes("status", &status);
    assert!(status.contains("exit code 1: boom \\u{1b}[2J \\u{1b}]0;title\\u{7} end"), "{status}");
    no_escapes("status of all sweeps", &stdout_of(&sweep(&coordinator.url, &["status"])));
    let watch = sweep(&coordinator.url, &["watch", "hostile"]);
    assert_eq!(watch.status.code(), Some(1), "both trials failed: {}", String::from_utf8_lossy(&watch.stderr));
    no_escapes("watch", &String::from_utf8_lossy(&watch.stdout));
    no_escapes("watch's progress", &String::from_utf8_lossy(&watch.stderr));

    for format in ["table", "csv"] {
        let results = stdout_of(&sweep(&coordinator.url, &["results", "hostile", "--format", format]));
        no_escapes("results", &results);
        assert!(results.contains("\\u{1b}[2J") && results.contains("\\u{1b}]0;title\\u{7}"), "{results}");
        assert!(
            results.contains("ok"),
            "the record with the refused metric name was dropped, not the trial: {results}"
        );
    }
    // JSON escapes control characters by its own rules.
    let json = stdout_of(&sweep(&coordinator.url, &["results", "hostile", "--format", "json"]));
    no_escapes("results --format json", &json);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(rows.as_array().unwrap().iter().any(|r| r["params"]["tag"] == "\x1b[2J"), "{json}");

    // Results files written by anyone (an older coordinator took any metric name) are shown safely.
    let old = dir.path().join("old");
    let row = sweep_coordinator::results::TrialRow {
        sweep: "hostile".into(),
        trial_id: "0123456789abcdef".into(),
        workload: "command".into(),
        status: "succeeded".into(),
        attempts: 1,
        agent: Some("a\u{202e}b".into()),
        started_at_us: None,
        finished_at_us: None,
        duration_s: None,
        params: serde_json::Map::new(),
        finals: [("acc\x1b[2J\x1b]0;title\x07".to_string(), 0.5)].into(),
        last_error: None,
        exit_code: None,
        version: 0,
        rung: None,
        epochs_budget: None,
        parent_trial_id: None,
        copied_epoch: None,
        generation: 0,
    };
    sweep_coordinator::results::write_trials_table(&old.join("hostile"), &[row]).unwrap();
    for format in ["table", "csv"] {
        let out =
            sweep(&coordinator.url, &["results", "hostile", "--format", format, "--results", old.to_str().unwrap()]);
        let results = stdout_of(&out);
        no_escapes("results from files", &results);
        assert!(results.contains("acc\\u{1b}[2J\\u{1b}]0;title\\u{7}"), "{results}");
    }
    let out = sweep(&coordinator.url, &["results", "hostile", "--format", "json", "--results", old.to_str().unwrap()]);
    let json = stdout_of(&out);
    no_escapes("json results from files", &json);
    assert!(!json.contains('\u{202e}') && json.contains("a\\u202eb"), "{json}");
}

/// `sweep ARGS` run in `dir`: its stdout, once it has succeeded.
fn sweep_in(dir: &std::path::Path, args: &[&str]) -> String {
    stdout_of(&Command::new(bin("sweep")).args(args).current_dir(dir).output().unwrap())
}

/// Runs `<dir>/<name>.toml` with `sweep local` in `dir`, checks that `succeeded` trials succeeded,
/// and returns the sweep's metric rows as its Parquet files hold them.
fn local_sweep(dir: &std::path::Path, name: &str, succeeded: usize) -> Vec<sweep_coordinator::results::MetricRow> {
    let file = format!("{name}.toml");
    let table = sweep_in(dir, &["local", &file]);
    assert_eq!(table.lines().filter(|l| l.contains(" succeeded ")).count(), succeeded, "{table}");
    sweep_coordinator::results::read_metrics(&dir.join("results").join(name)).unwrap()
}
