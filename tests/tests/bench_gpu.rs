//! `sweep bench gpu` as a user runs it, on the CPU at a tiny size: every width gets a row with
//! PyTorch eager (when the project's venv has torch), tch eager, a pack of processes started
//! together (real child processes of the bench) and each fused group measured,
//! the CUDA-graph cells present but empty because the CPU cannot capture (said once, not per
//! cell), and a PyTorch that cannot start leaves its column empty without failing the bench.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TINY: [&str; 16] = [
    "bench", "gpu", "--widths", "1,2", "--fuse", "2", "--packed", "2", "--batch", "8", "--steps", "2", "--warmup", "1",
    "--device", "cpu",
];

/// The project's venv, which scripts/setup.sh fills with torch 2.11.0.
fn venv_python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    python.exists().then_some(python)
}

fn bench(extra: &[&str], python: &Path) -> Output {
    let out = Command::new(bin("sweep"))
        .args(TINY)
        .args(extra)
        .arg("--python")
        .arg(python)
        .output()
        .expect("run sweep bench");
    assert!(out.status.success(), "sweep bench gpu failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The reason every graph cell gives on the CPU.
const NO_CUDA: &str = "not a CUDA device";

/// A graph cell that was not measured on the CPU: the reason, and no figure at all.
fn unmeasured(cell: &Value, what: &str) {
    assert_eq!(cell["error"].as_str(), Some(NO_CUDA), "{what}: {cell}");
    assert!(cell.get("samples_per_second").is_none() && cell.get("seconds").is_none(), "{what}: a figure in {cell}");
}

/// A positive, finite samples/s under `cell`.
fn rate(cell: &Value, what: &str) -> f64 {
    let x = cell["samples_per_second"].as_f64().unwrap_or_else(|| panic!("{what}: no samples_per_second in {cell}"));
    assert!(x.is_finite() && x > 0.0, "{what}: samples/s {x}");
    x
}

#[test]
fn json_rows_hold_every_width_and_column_with_a_measured_rate() {
    let python = venv_python();
    let out = bench(&["--json"], python.as_deref().unwrap_or(Path::new("python3")));
    let rows: Vec<Value> =
        stdout_of(&out).lines().map(|l| serde_json::from_str(l).expect("each stdout line is a JSON row")).collect();
    assert_eq!(rows.iter().map(|r| r["width"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    for row in &rows {
        let w = &row["width"];
        assert_eq!(
            (row["device"].as_str(), row["batch"].as_i64(), row["steps"].as_i64()),
            (Some("cpu"), Some(8), Some(2))
        );
        let tch = rate(&row["tch_eager"], &format!("width {w} tch eager"));
        let fused = &row["fused"].as_array().expect("fused cells")[..];
        assert_eq!(fused.len(), 1, "{row}");
        assert_eq!(fused[0]["members"], 2);
        rate(&fused[0], &format!("width {w} fused x2"));
        let packed = &row["packed"].as_array().expect("packed cells")[..];
        assert_eq!(packed.len(), 1, "{row}");
        assert_eq!(packed[0]["processes"], 2);
        rate(&packed[0], &format!("width {w} packed x2"));
        assert_eq!(packed[0]["parameters"].as_i64(), row["tch_eager"]["parameters"].as_i64().map(|p| 2 * p), "{row}");
        assert_eq!(row["packing"], "processes sharing the CPU's cores evenly", "{row}");
        // A fused pair holds two networks of the lone one's size.
        assert_eq!(fused[0]["parameters"].as_i64(), row["tch_eager"]["parameters"].as_i64().map(|p| 2 * p), "{row}");
        if python.is_some() {
            let pytorch = rate(&row["pytorch_eager"], &format!("width {w} PyTorch eager"));
            assert_eq!(row["pytorch_eager"]["parameters"], row["tch_eager"]["parameters"], "the same network: {row}");
            let ratio = row["tch_eager_vs_pytorch"].as_f64().expect("a ratio when both ran");
            assert!((ratio - tch / pytorch).abs() <= 1e-9 * ratio, "{row}");
            assert!(fused[0]["vs_pytorch"].as_f64().is_some_and(|r| r.is_finite() && r > 0.0), "{row}");
        }
        // The graph cells are there, with the reason the CPU cannot capture and no figure.
        assert_eq!(row["graphs"], true, "{row}");
        unmeasured(&row["tch_graph"], &format!("width {w} tch graph"));
        assert!(row["tch_graph_vs_pytorch"].is_null(), "{row}");
        let fused_graph = &row["fused_graph"].as_array().expect("fused graph cells")[..];
        assert_eq!(fused_graph.len(), 1, "{row}");
        assert_eq!(fused_graph[0]["members"], 2);
        unmeasured(&fused_graph[0], &format!("width {w} fused x2 graph"));
        assert!(fused_graph[0]["vs_pytorch"].is_null(), "{row}");
        unmeasured(&row["packed_graph"][0], &format!("width {w} packed x2 graph"));
    }
    let notes = String::from_utf8_lossy(&out.stderr);
    assert_eq!(notes.matches(NO_CUDA).count(), 1, "the CPU's reason once, not per cell: {notes}");
    assert!(!notes.contains("not measured"), "every way is measured: {notes}");
}

#[test]
fn without_graphs_the_rows_have_no_graph_cells() {
    let out = bench(&["--json", "--graphs", "false"], Path::new("/nonexistent/python3"));
    let rows: Vec<Value> = stdout_of(&out).lines().map(|l| serde_json::from_str(l).expect("a JSON row")).collect();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row["graphs"], false, "{row}");
        assert!(row.get("tch_graph").is_none() && row.get("fused_graph").is_none(), "{row}");
        assert!(row.get("packed_graph").is_none(), "{row}");
        rate(&row["tch_eager"], "tch eager");
    }
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(notes.contains("--graphs false") && !notes.contains(NO_CUDA), "{notes}");
}

#[test]
fn without_pytorch_the_table_still_shows_tch_and_says_why() {
    let out = bench(&[], Path::new("/nonexistent/python3"));
    let text = stdout_of(&out);
    let table: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with(['1', '2'])).collect();
    assert_eq!(table.len(), 2, "{text}");
    for line in table {
        let cells: Vec<&str> = line.split_whitespace().collect();
        // width, PyTorch eager, then a figure and its ratio for: tch eager, tch graph, packed x2,
        // packed x2 graph, fused x2, fused x2 graph
        assert_eq!(cells.len(), 14, "{line}");
        for (figure, ratio) in [(2, 3), (6, 7), (10, 11)] {
            assert!(cells[figure].parse::<f64>().is_ok_and(|x| x > 0.0), "{line}");
            assert_eq!(cells[ratio], "-", "no ratio without PyTorch: {line}");
        }
        for graph in [4, 8, 12] {
            assert_eq!((cells[graph], cells[graph + 1]), ("failed", "-"), "graph cells: {line}");
        }
        assert_eq!(cells[1], "-", "{line}");
    }
    for heading in ["tch graph", "packed x2", "packed x2 graph", "fused x2 graph"] {
        assert!(text.contains(heading), "{heading}: {text}");
    }
    assert!(text.contains("PyTorch eager is absent") && text.contains("/nonexistent/python3"), "{text}");
    assert_eq!(text.matches(NO_CUDA).count(), 1, "the CPU's reason once, not per cell: {text}");
}

/// `--arch` times the study's other networks the same way: PyTorch builds the network tch does (the
/// same parameter count), the packed processes train it too, and a fused pair holds two of it.
#[test]
fn the_other_double_descent_networks_are_benched_against_the_same_pytorch_network() {
    let python = venv_python();
    for arch in ["cnn5", "mlp"] {
        let out = Command::new(bin("sweep"))
            .args([
                "bench", "gpu", "--arch", arch, "--widths", "3", "--fuse", "2", "--packed", "2", "--graphs", "false",
            ])
            .args(["--batch", "8", "--steps", "2", "--warmup", "1", "--device", "cpu", "--json", "--python"])
            .arg(python.as_deref().unwrap_or(Path::new("python3")))
            .output()
            .expect("run sweep bench");
        assert!(out.status.success(), "{arch}: {}", String::from_utf8_lossy(&out.stderr));
        let row: Value = serde_json::from_str(stdout_of(&out).trim()).expect("one JSON row");
        assert_eq!(row["arch"], arch, "{row}");
        rate(&row["tch_eager"], arch);
        let lone = row["tch_eager"]["parameters"].as_i64().expect("tch's parameter count");
        for cells in ["fused", "packed"] {
            let cell = &row[cells][0];
            rate(cell, &format!("{arch} {cells}"));
            assert_eq!(cell["parameters"].as_i64(), Some(2 * lone), "{arch} {cells}: two of the network: {row}");
        }
        if python.is_some() {
            rate(&row["pytorch_eager"], &format!("{arch} PyTorch eager"));
            assert_eq!(row["pytorch_eager"]["parameters"].as_i64(), Some(lone), "{arch}: the same network: {row}");
        }
    }
}

/// `bench/gpu/check.sh`, the fused and CUDA-graph checks a GPU node runs, small on the CPU: the
/// same sweep trained four ways through `sweep local`, and a long-tail sweep alone and fused, every
/// trial succeeding, and the fused ways ending within the tolerance of the trials trained alone.
#[test]
fn the_gpu_check_script_runs_its_four_sweeps_and_the_long_tail_pair() {
    let Some(python) = venv_python() else {
        eprintln!("skipped: no .venv with pyarrow (scripts/setup.sh makes it)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/gpu/check.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("SWEEP", bin("sweep"))
        .env("PYTHON", python)
        .env("WORK", work.path())
        .envs([("WIDTH", "2"), ("TRAIN", "128"), ("TEST", "32"), ("EPOCHS", "1"), ("SEEDS", "0, 1")])
        .envs([("GPUS", "0"), ("FUSE", "2"), ("BENCH", "0"), ("LT_SEEDS", "0, 1")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for way in ["alone", "alone-graphs", "fused", "fused-graphs", "lt-alone", "lt-fused-graphs"] {
        let row = text.lines().find(|l| l.starts_with(&format!("{way} "))).unwrap_or_else(|| panic!("{way}: {text}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1], "2/2", "{row}");
        let worst: f64 = cells[2].parse().unwrap();
        assert!(worst < 1e-2, "{row}");
    }
}
