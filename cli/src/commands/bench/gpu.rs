//! `sweep bench gpu`: for each width, the training step of preact-ResNet-18 timed as PyTorch eager
//! (the reference), tch eager, and tch fused groups, each tch cell also captured as a CUDA graph
//! and replayed, on one device in one run, so every ratio compares the same step, batch and
//! device. Rows print as each width finishes.

use super::pytorch::{self, Column, Reference};
use anyhow::anyhow;
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use sweep_workloads::harness::{GraphMode, Precision, StepGraph};
use sweep_workloads::tch::{self, Device};
use sweep_workloads::throughput::{self, DeviceChoice, StepBench, Throughput};

const DEFAULT_WIDTHS: [i64; 7] = [1, 2, 4, 8, 16, 32, 64];
const DEFAULT_FUSE: [i64; 3] = [4, 8, 16];

/// Said on every run, so that the missing rows are not read as results.
const NOT_MEASURED: &str = "packing several trials onto one GPU (one process each) is not measured by this command, \
     so there are no rows for it";

#[derive(Args, Debug)]
pub struct GpuArgs {
    /// Widths k to measure (stages of k, 2k, 4k, 8k channels), comma-separated.
    #[arg(long, env = "SWEEP_BENCH_WIDTHS", value_delimiter = ',', default_values_t = DEFAULT_WIDTHS,
          value_parser = clap::value_parser!(i64).range(1..))]
    widths: Vec<i64>,
    /// Fused group sizes G, comma-separated: G networks trained as one; the column reports
    /// samples/s summed over the G members.
    #[arg(long, env = "SWEEP_BENCH_FUSE", value_delimiter = ',', default_values_t = DEFAULT_FUSE,
          value_parser = clap::value_parser!(i64).range(2..))]
    fuse: Vec<i64>,
    /// Examples per network per step.
    #[arg(long, env = "SWEEP_BENCH_BATCH", default_value_t = 128, value_parser = clap::value_parser!(i64).range(1..))]
    batch: i64,
    /// Steps timed per cell.
    #[arg(long, env = "SWEEP_BENCH_STEPS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    steps: u32,
    /// Untimed steps first (cuDNN autotuning, allocator growth).
    #[arg(long, env = "SWEEP_BENCH_WARMUP", default_value_t = 10)]
    warmup: u32,
    /// auto (CUDA when libtorch sees a GPU, else the CPU), cpu or cuda. Both columns run there.
    #[arg(long, env = "SWEEP_DEVICE", default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
    /// Python with torch for the PyTorch eager column [default: .venv/bin/python if it exists,
    /// else python3]. Without torch the column is left empty and the rest still runs.
    #[arg(long, env = "SWEEP_BENCH_PYTHON")]
    python: Option<PathBuf>,
    /// Also time each tch cell's step captured once as a CUDA graph and replayed ("tch graph",
    /// "fused xG graph"); `--graphs false` leaves those columns out. Off a CUDA device the graph
    /// cells are empty, with the reason.
    #[arg(long, env = "SWEEP_BENCH_GRAPHS", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    graphs: bool,
    /// Print one JSON object per width on stdout instead of the table (notes go to stderr).
    #[arg(long)]
    json: bool,
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    match s {
        "auto" => Ok(DeviceChoice::Auto),
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" => Ok(DeviceChoice::Cuda),
        other => Err(format!("expected auto, cpu or cuda, got \"{other}\"")),
    }
}

/// What every row shares.
struct Setup {
    device: Device,
    device_name: String,
    batch: i64,
    steps: u32,
    warmup: u32,
    fuse: Vec<i64>,
    /// Whether the CUDA-graph columns are in the table.
    graphs: bool,
}

/// One width: the reference, tch alone, and tch fused for each G, each tch cell eager and (with
/// `--graphs`) as a CUDA graph. A cell that failed (CUDA out of memory, not a CUDA device) holds
/// why.
struct Row {
    width: i64,
    pytorch: Result<Reference, String>,
    tch: Result<Throughput, String>,
    fused: Vec<(i64, Result<Throughput, String>)>,
    /// tch alone, replaying its captured step; None without `--graphs`.
    tch_graph: Option<Result<Throughput, String>>,
    /// Each fused group's captured step, in the order of `fused`; empty without `--graphs`.
    fused_graph: Vec<(i64, Result<Throughput, String>)>,
}

impl Row {
    /// A cell's samples/s over PyTorch eager's, when both were measured.
    fn vs_pytorch(&self, cell: &Result<Throughput, String>) -> Option<f64> {
        match (&self.pytorch, cell) {
            (Ok(p), Ok(t)) => Some(t.samples_per_second / p.samples_per_second),
            _ => None,
        }
    }

    /// Notes for the end of the table: failed cells, and a PyTorch network that is not the same.
    /// `pytorch_absent`: the whole column is missing and already has its note; `graphs_absent`:
    /// so are the graph cells (not a CUDA device), said once for the whole table.
    fn problems(&self, pytorch_absent: bool, graphs_absent: bool) -> Vec<String> {
        let w = self.width;
        let mut out = Vec::new();
        match (&self.pytorch, &self.tch) {
            (Err(why), _) if !pytorch_absent => out.push(format!("width {w}, PyTorch eager: {why}")),
            (Ok(p), Ok(t)) if p.parameters != t.parameters => out.push(format!(
                "width {w}: PyTorch's network has {} parameters and tch's {}, so they are not the same model",
                p.parameters, t.parameters
            )),
            _ => {}
        }
        let eager = std::iter::once((1, &self.tch)).chain(self.fused.iter().map(|(g, c)| (*g, c)));
        let graph = self.tch_graph.iter().map(|c| (1, c)).chain(self.fused_graph.iter().map(|(g, c)| (*g, c)));
        let cells = eager.map(|(g, c)| (g, false, c)).chain(graph.map(|(g, c)| (g, true, c)));
        for (g, captured, cell) in cells {
            if let Err(why) = cell {
                if captured && graphs_absent {
                    continue;
                }
                out.push(format!("width {w}, {}: {why}", cell_name(g, captured)));
            }
        }
        out
    }

    fn to_json(&self, setup: &Setup) -> Value {
        let cell = |c: &Result<Throughput, String>| match c {
            Ok(t) => {
                json!({"samples_per_second": t.samples_per_second, "seconds": t.seconds, "parameters": t.parameters})
            }
            Err(why) => json!({"error": why}),
        };
        let groups = |cells: &[(i64, Result<Throughput, String>)]| -> Vec<Value> {
            cells
                .iter()
                .map(|(g, c)| {
                    let mut v = cell(c);
                    v["members"] = json!(g);
                    v["vs_pytorch"] = json!(self.vs_pytorch(c));
                    v
                })
                .collect()
        };
        let mut row = json!({
            "width": self.width,
            "batch": setup.batch,
            "steps": setup.steps,
            "warmup": setup.warmup,
            "device": device_kind(setup.device),
            "device_name": setup.device_name,
            "precision": precision_name(throughput::precision_for(setup.device)),
            "pytorch_eager": match &self.pytorch {
                Ok(p) => json!({"samples_per_second": p.samples_per_second, "parameters": p.parameters, "torch": p.torch}),
                Err(why) => json!({"error": why}),
            },
            "tch_eager": cell(&self.tch),
            "tch_eager_vs_pytorch": self.vs_pytorch(&self.tch),
            "fused": groups(&self.fused),
            "graphs": setup.graphs,
        });
        if let Some(tch_graph) = &self.tch_graph {
            row["tch_graph"] = cell(tch_graph);
            row["tch_graph_vs_pytorch"] = json!(self.vs_pytorch(tch_graph));
            row["fused_graph"] = json!(groups(&self.fused_graph));
        }
        row
    }
}

/// A cell's name in progress lines and notes.
fn cell_name(members: i64, graph: bool) -> String {
    let eager = if members == 1 { "tch eager".to_string() } else { format!("fused x{members}") };
    match (members, graph) {
        (_, false) => eager,
        (1, true) => "tch graph".into(),
        (g, true) => format!("fused x{g} graph"),
    }
}

pub fn run(args: GpuArgs) -> anyhow::Result<()> {
    let device = args.device.resolve().map_err(|e| anyhow!("--device: {e}"))?;
    let python = pytorch::interpreter(args.python.as_deref());
    eprintln!("bench gpu: PyTorch eager under {}, widths {:?}", python.display(), args.widths);
    let column = pytorch::measure(&python, &args.widths, args.batch, args.steps, args.warmup, device_kind(device));
    let setup = Setup {
        device,
        device_name: device_name(device, column.as_ref().ok()),
        batch: args.batch,
        steps: args.steps,
        warmup: args.warmup,
        fuse: args.fuse.clone(),
        graphs: args.graphs,
    };
    let mut notes = Vec::new();
    if let Err(why) = &column {
        notes.push(format!(
            "PyTorch eager is absent ({why}): its column and the ratios are empty; pass --python with torch installed"
        ));
    }
    // Known for the whole table before any cell runs (the CPU): said once here, not per cell.
    let graphs_off = StepGraph::new(GraphMode::On, device).eager_because().map(str::to_string);
    let graphs_absent = args.graphs && graphs_off.is_some();
    match (&graphs_off, args.graphs) {
        (_, false) => {
            notes.push("CUDA graphs are not measured (--graphs false), so there are no columns for them".into())
        }
        (Some(why), true) => notes.push(format!("the CUDA graph cells and their ratios are empty: {why}")),
        (None, true) => {}
    }
    if !args.json {
        print!("{}", header(&setup, &column, &python));
    }
    for &width in &args.widths {
        let pytorch = match &column {
            Ok(c) => c.get(&width).cloned().unwrap_or_else(|| Err("the PyTorch script gave no row".into())),
            Err(why) => Err(why.clone()),
        };
        let cell = |members: i64, graphs: bool| {
            eprintln!("bench gpu: width {width}, {}", cell_name(members, graphs));
            let (batch, steps, warmup) = (args.batch, args.steps, args.warmup);
            throughput::measure(&StepBench { width, members, batch, warmup, steps, device, graphs })
        };
        let tch = cell(1, false);
        let tch_graph = args.graphs.then(|| cell(1, true));
        let mut fused = Vec::new();
        let mut fused_graph = Vec::new();
        for &g in &args.fuse {
            fused.push((g, cell(g, false)));
            if args.graphs {
                fused_graph.push((g, cell(g, true)));
            }
        }
        let row = Row { width, pytorch, tch, fused, tch_graph, fused_graph };
        notes.extend(row.problems(column.is_err(), graphs_absent));
        if args.json {
            println!("{}", row.to_json(&setup));
        } else {
            println!("{}", table_line(&row));
        }
    }
    notes.push(NOT_MEASURED.into());
    for note in notes {
        if args.json {
            eprintln!("note: {note}");
        } else {
            println!("note: {note}");
        }
    }
    Ok(())
}

fn device_kind(device: Device) -> &'static str {
    if device.is_cuda() {
        "cuda"
    } else {
        "cpu"
    }
}

fn precision_name(precision: Precision) -> &'static str {
    match precision {
        Precision::Bf16 => "bf16",
        Precision::Fp32 => "fp32",
    }
}

/// The GPU's name from nvidia-smi (the first visible one, which is libtorch's device 0), else
/// from PyTorch; the CPU's model from /proc/cpuinfo.
fn device_name(device: Device, column: Option<&Column>) -> String {
    if device.is_cuda() {
        let mut cmd = Command::new("nvidia-smi");
        cmd.args(["--query-gpu=name", "--format=csv,noheader"]);
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default();
        if let Some(first) = visible.split(',').next().map(str::trim).filter(|s| !s.is_empty()) {
            cmd.args(["-i", first]);
        }
        let from_smi = cmd.output().ok().filter(|o| o.status.success()).and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().next().map(|l| l.trim().to_string()).filter(|l| !l.is_empty())
        });
        let from_torch =
            || column.and_then(|c| c.values().find_map(|r| r.as_ref().ok().map(|r| r.device_name.clone())));
        from_smi.or_else(from_torch).unwrap_or_else(|| "CUDA device 0".into())
    } else {
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, name)| name.trim().to_string())
            })
            .unwrap_or_else(|| "cpu".into())
    }
}

/// Every column of the table is this wide at least.
const CELL: usize = 11;

fn headings(fuse: &[i64], graphs: bool) -> Vec<String> {
    let mut h: Vec<String> = ["width", "PyTorch eager", "tch eager", "tch/PyTorch"].map(String::from).into();
    if graphs {
        h.extend(["tch graph", "graph/PyTorch"].map(String::from));
    }
    for g in fuse {
        h.push(format!("fused x{g}"));
        h.push(format!("x{g}/PyTorch"));
        if graphs {
            h.push(format!("fused x{g} graph"));
            h.push(format!("x{g} graph/PyTorch"));
        }
    }
    h
}

fn header(setup: &Setup, column: &Result<Column, String>, python: &Path) -> String {
    let precision = throughput::precision_for(setup.device);
    let reference = match column {
        Ok(c) => match c.values().find_map(|r| r.as_ref().ok()) {
            Some(r) => format!("PyTorch {} under {}", r.torch, python.display()),
            None => format!("PyTorch under {}", python.display()),
        },
        Err(_) => "PyTorch: absent".into(),
    };
    let threads = if setup.device.is_cuda() { String::new() } else { format!(", {} threads", tch::get_num_threads()) };
    let mut out = format!(
        "preact-ResNet-18, 3x32x32 inputs, 10 classes; batch {} per network; {} steps timed after {} warmup; \
         SGD lr {} momentum {} weight decay {}; {}\n",
        setup.batch,
        setup.steps,
        setup.warmup,
        throughput::LR,
        throughput::MOMENTUM,
        throughput::WEIGHT_DECAY,
        precision_name(precision),
    );
    out += &format!(
        "device: {} ({}{threads}); {reference}\nsamples/s per cell (fused: summed over the members{}); ratios are to \
         PyTorch eager\n\n",
        device_kind(setup.device),
        setup.device_name,
        if setup.graphs { "; graph: the step captured once as a CUDA graph, then replayed" } else { "" },
    );
    let cells: Vec<String> =
        headings(&setup.fuse, setup.graphs).iter().map(|h| format!("{h:>w$}", w = CELL.max(h.len()))).collect();
    out + &cells.join("  ") + "\n"
}

fn table_line(row: &Row) -> String {
    let rate = |x: f64| if x >= 100.0 { format!("{x:.0}") } else { format!("{x:.1}") };
    let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
    let cell =
        |c: &Result<Throughput, String>| c.as_ref().map_or_else(|_| "failed".into(), |t| rate(t.samples_per_second));
    let mut cells = vec![
        row.width.to_string(),
        match &row.pytorch {
            Ok(p) => rate(p.samples_per_second),
            Err(_) => "-".into(),
        },
        cell(&row.tch),
        ratio(row.vs_pytorch(&row.tch)),
    ];
    if let Some(c) = &row.tch_graph {
        cells.push(cell(c));
        cells.push(ratio(row.vs_pytorch(c)));
    }
    for (i, (_, c)) in row.fused.iter().enumerate() {
        cells.push(cell(c));
        cells.push(ratio(row.vs_pytorch(c)));
        if let Some((_, c)) = row.fused_graph.get(i) {
            cells.push(cell(c));
            cells.push(ratio(row.vs_pytorch(c)));
        }
    }
    let fuse: Vec<i64> = row.fused.iter().map(|(g, _)| *g).collect();
    let widths = headings(&fuse, row.tch_graph.is_some()).into_iter().map(|h| CELL.max(h.len()));
    cells.iter().zip(widths).map(|(c, w)| format!("{c:>w$}")).collect::<Vec<_>>().join("  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(samples_per_second: f64, parameters: i64) -> Result<Throughput, String> {
        Ok(Throughput { samples_per_second, seconds: 1.0, parameters, precision: Precision::Fp32 })
    }

    /// Without graph cells (`--graphs false`).
    fn row() -> Row {
        Row {
            width: 8,
            pytorch: Ok(Reference {
                samples_per_second: 1000.0,
                parameters: 10,
                device_name: "cpu".into(),
                torch: "2.11.0".into(),
            }),
            tch: measured(1250.0, 10),
            fused: vec![(4, measured(4000.0, 40)), (16, Err("CUDA out of memory".into()))],
            tch_graph: None,
            fused_graph: vec![],
        }
    }

    /// With graph cells, one of which failed.
    fn graph_row() -> Row {
        Row {
            tch_graph: Some(measured(2500.0, 10)),
            fused_graph: vec![(4, measured(6000.0, 40)), (16, Err("capture refused".into()))],
            ..row()
        }
    }

    fn setup(graphs: bool) -> Setup {
        Setup {
            device: Device::Cpu,
            device_name: "cpu".into(),
            batch: 8,
            steps: 2,
            warmup: 1,
            fuse: vec![4, 16],
            graphs,
        }
    }

    #[test]
    fn ratios_are_to_pytorch_eager_and_failed_cells_say_so() {
        let line = table_line(&row());
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells, ["8", "1000", "1250", "1.25x", "4000", "4.00x", "failed", "-"]);
        assert_eq!(row().problems(false, false), ["width 8, fused x16: CUDA out of memory"]);
    }

    #[test]
    fn graph_cells_sit_beside_their_eager_cells_under_their_own_headings() {
        let line = table_line(&graph_row());
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "8", "1000", "1250", "1.25x", "2500", "2.50x", "4000", "4.00x", "6000", "6.00x", "failed", "-",
                "failed", "-"
            ]
        );
        let heads = headings(&[4, 16], true);
        assert_eq!(heads.len(), cells.len());
        assert_eq!(
            (heads[4].as_str(), heads[8].as_str(), heads[9].as_str()),
            ("tch graph", "fused x4 graph", "x4 graph/PyTorch")
        );
        // Each heading is as wide as its cells, so the columns line up.
        let header_line = header(&setup(true), &Err("absent".into()), Path::new("python3"));
        let last = header_line.lines().last().unwrap();
        assert_eq!(last.len(), line.len(), "{last}\n{line}");
        assert_eq!(
            graph_row().problems(false, false),
            ["width 8, fused x16: CUDA out of memory", "width 8, fused x16 graph: capture refused"]
        );
        // Off a CUDA device the reason is one note for the table, not one per cell.
        assert_eq!(graph_row().problems(false, true), ["width 8, fused x16: CUDA out of memory"]);
    }

    #[test]
    fn json_rows_hold_every_cell_and_null_ratios_without_a_reference() {
        let v = row().to_json(&setup(false));
        assert_eq!(v["tch_eager_vs_pytorch"], json!(1.25));
        assert_eq!(v["fused"][0]["members"], json!(4));
        assert_eq!(v["fused"][1]["error"], json!("CUDA out of memory"));
        assert_eq!(v["graphs"], json!(false));
        assert!(v.get("tch_graph").is_none() && v.get("fused_graph").is_none(), "{v}");
        let absent = Row { pytorch: Err("no torch".into()), ..row() };
        let v = absent.to_json(&setup(false));
        assert_eq!(v["pytorch_eager"]["error"], json!("no torch"));
        assert!(v["tch_eager_vs_pytorch"].is_null() && v["fused"][0]["vs_pytorch"].is_null());
        assert_eq!(
            absent.problems(true, false),
            ["width 8, fused x16: CUDA out of memory"],
            "the column's note is enough"
        );
    }

    #[test]
    fn json_rows_hold_the_graph_cells_with_their_ratios() {
        let v = graph_row().to_json(&setup(true));
        assert_eq!(v["graphs"], json!(true));
        assert_eq!(v["tch_graph"]["samples_per_second"], json!(2500.0));
        assert_eq!(v["tch_graph_vs_pytorch"], json!(2.5));
        assert_eq!(v["fused_graph"][0]["members"], json!(4));
        assert_eq!(v["fused_graph"][0]["vs_pytorch"], json!(6.0));
        assert_eq!(v["fused_graph"][1]["error"], json!("capture refused"));
        assert!(v["fused_graph"][1]["vs_pytorch"].is_null() && v["fused_graph"][1]["samples_per_second"].is_null());
    }

    #[test]
    fn a_different_parameter_count_is_reported() {
        let other = Row { tch: measured(1250.0, 11), fused: vec![], ..row() };
        assert!(other.problems(false, false)[0].contains("not the same model"));
    }
}
