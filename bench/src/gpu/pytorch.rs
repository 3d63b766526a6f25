//! The PyTorch eager column of `sweep bench gpu`: `bench/gpu/pytorch_eager.py`, compiled into this
//! binary and piped to a Python interpreter on stdin, so a binary shipped to a GPU node without
//! the repository still measures it. A missing interpreter or torch is an absent column, not a
//! failed bench.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use sweep_workloads::models::Arch;

/// The reference script; `sweep bench gpu` runs this text, not the file on disk.
pub const SCRIPT: &str = include_str!("../../gpu/pytorch_eager.py");

/// The project's virtual environment (scripts/setup.sh installs torch there).
const VENV_PYTHON: &str = ".venv/bin/python";

/// One width as PyTorch measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub samples_per_second: f64,
    pub parameters: i64,
    pub device_name: String,
    pub torch: String,
}

/// What the script said for each width it reached: its figure, or why it has none.
pub type Column = BTreeMap<i64, Result<Reference, String>>;

/// The interpreter to run: the one named, else `.venv/bin/python` when it exists, else `python3`.
pub fn interpreter(named: Option<&Path>) -> PathBuf {
    match named {
        Some(path) => path.to_path_buf(),
        None if Path::new(VENV_PYTHON).exists() => PathBuf::from(VENV_PYTHON),
        None => PathBuf::from("python3"),
    }
}

/// What every width's cell trains: the network, and its batch and steps.
pub struct Cells {
    pub arch: Arch,
    pub batch: i64,
    pub steps: u32,
    pub warmup: u32,
}

/// Runs the script under `python` for `widths` on `device` ("cpu" or "cuda"). Err: the whole
/// column is absent, with the reason (no interpreter, no torch, no CUDA for torch).
pub fn measure(python: &Path, widths: &[i64], cells: &Cells, device: &str) -> Result<Column, String> {
    let list = widths.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let Cells { arch, batch, steps, warmup } = cells;
    let mut child = Command::new(python)
        .arg("-")
        .args(["--arch", arch.name(), "--widths", &list, "--batch", &batch.to_string()])
        .args(["--steps", &steps.to_string(), "--warmup", &warmup.to_string(), "--device", device])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
    // The script is a few KiB, well under a pipe's buffer: write it all, then close stdin so the
    // interpreter starts, then read.
    let written = child.stdin.take().expect("stdin is piped").write_all(SCRIPT.as_bytes());
    let out = child.wait_with_output().map_err(|e| format!("{}: {e}", python.display()))?;
    written.map_err(|e| format!("cannot pipe the script to {}: {e}", python.display()))?;
    let mut column = parse_lines(&String::from_utf8_lossy(&out.stdout), widths)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last_words = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
    if !out.status.success() || column.len() < widths.len() {
        let why =
            if last_words.is_empty() { format!("{} exited with {}", python.display(), out.status) } else { last_words };
        if column.is_empty() {
            return Err(why);
        }
        // It stopped part-way: the widths it never reached say why.
        for &w in widths {
            column.entry(w).or_insert_with(|| Err(why.clone()));
        }
    }
    Ok(column)
}

/// The script's stdout: one JSON object per width, either a measurement or `{"width", "error"}`.
fn parse_lines(stdout: &str, widths: &[i64]) -> Result<Column, String> {
    let mut column = Column::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("the PyTorch script printed a line that is not JSON ({e}): {line}"))?;
        let width = v["width"]
            .as_i64()
            .filter(|w| widths.contains(w))
            .ok_or_else(|| format!("the PyTorch script printed a row for a width that was not asked for: {line}"))?;
        let cell = match v["error"].as_str() {
            Some(error) => Err(error.to_string()),
            None => reference(&v).ok_or_else(|| format!("the PyTorch script printed an incomplete row: {line}")),
        };
        column.insert(width, cell);
    }
    Ok(column)
}

fn reference(v: &Value) -> Option<Reference> {
    Some(Reference {
        samples_per_second: v["samples_per_second"].as_f64().filter(|x| x.is_finite() && *x > 0.0)?,
        parameters: v["parameters"].as_i64()?,
        device_name: v["device_name"].as_str()?.to_string(),
        torch: v["torch"].as_str()?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_per_width_errors_are_read_and_strays_refused() {
        let out = concat!(
            r#"{"width": 1, "samples_per_second": 1474.6, "parameters": 2963, "device_name": "cpu", "torch": "2.11.0"}"#,
            "\n",
            r#"{"width": 64, "error": "CUDA out of memory"}"#,
            "\n"
        );
        let column = parse_lines(out, &[1, 64]).unwrap();
        assert_eq!(column[&1].as_ref().unwrap().parameters, 2963);
        assert_eq!(column[&64].as_ref().unwrap_err(), "CUDA out of memory");
        assert!(parse_lines(out, &[1]).unwrap_err().contains("not asked for"));
        assert!(parse_lines("Traceback", &[1]).unwrap_err().contains("not JSON"));
        let negative = r#"{"width": 1, "samples_per_second": -1, "parameters": 1, "device_name": "cpu", "torch": "x"}"#;
        assert!(parse_lines(negative, &[1]).unwrap()[&1].as_ref().unwrap_err().contains("incomplete"));
    }

    #[test]
    fn a_missing_interpreter_is_an_absent_column() {
        let cells = Cells { arch: Arch::Mlp, batch: 2, steps: 1, warmup: 0 };
        let err = measure(Path::new("/nonexistent/python"), &[1], &cells, "cpu").unwrap_err();
        assert!(err.contains("/nonexistent/python"), "{err}");
    }
}
