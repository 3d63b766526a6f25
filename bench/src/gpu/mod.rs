//! `sweep bench gpu`: for each width, the training step of a double-descent network
//! (preact-ResNet-18 by default, or the 5-layer CNN or the MLP with `--arch`) timed as PyTorch
//! eager (the reference), tch eager, tch packed (N processes sharing the device, as `gpu_share`
//! packs trials) and tch fused groups, each tch cell also captured as a CUDA graph and replayed, on
//! one device in one run, so every ratio compares the same step, batch and device. Rows print as
//! each width finishes.

mod packed;
mod pytorch;
pub mod throughput;

use packed::Packer;
use pytorch::{Column, Reference};

use anyhow::anyhow;
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use sweep_agent::mps::{Mps, MpsMode};
use sweep_spec::duration::parse_duration;
use sweep_workloads::harness::{GraphMode, Precision, StepGraph};
use sweep_workloads::models::Arch;
use sweep_workloads::tch::{self, Device};
use throughput::{DeviceChoice, StepBench, Throughput};

const DEFAULT_WIDTHS: [i64; 7] = [1, 2, 4, 8, 16, 32, 64];

#[derive(Args, Debug)]
pub struct GpuArgs {
    /// The network: preact_resnet18, cnn5 (the 5-layer CNN) or mlp (one hidden layer of k
    /// units), as a double-descent sweep file names them.
    #[arg(long, env = "SWEEP_BENCH_ARCH", default_value = "preact_resnet18", value_parser = parse_arch)]
    arch: Arch,
    /// Widths k to measure (stages of k, 2k, 4k, 8k channels), comma-separated.
    #[arg(long, env = "SWEEP_BENCH_WIDTHS", value_delimiter = ',', default_values_t = DEFAULT_WIDTHS,
          value_parser = clap::value_parser!(i64).range(1..))]
    widths: Vec<i64>,
    /// Fused group sizes G, comma-separated: G networks trained as one; the column reports
    /// samples/s summed over the G members. `--fuse ''` leaves the fused columns out.
    #[arg(long, env = "SWEEP_BENCH_FUSE", default_value = "4,8,16", value_parser = sizes)]
    fuse: Sizes,
    /// Packed process counts N, comma-separated: N processes each training one network on the
    /// same device at once, as `[resources] gpu_share` packs trials; the column reports samples/s
    /// summed over the N, over the wall time from their joint start to the last one's finish.
    /// `--packed ''` leaves the packed columns out.
    #[arg(long, env = "SWEEP_BENCH_PACKED", default_value = "4,8", value_parser = sizes)]
    packed: Sizes,
    /// CUDA MPS for the packed processes: `auto` uses the node's daemon or starts one where
    /// nvidia-cuda-mps-control is installed (stopped afterwards), `on` fails without it, `off`
    /// measures the processes time-sharing the GPU.
    #[arg(long, env = "SWEEP_BENCH_MPS", value_enum, default_value = "auto")]
    mps: MpsMode,
    /// How long a packed cell may take, from starting its processes to the last one's figure; a
    /// cell whose processes do not answer in time fails with that reason.
    #[arg(long, env = "SWEEP_BENCH_PACKED_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    packed_timeout: std::time::Duration,
    /// Internal: one process of a packed cell (see `packed.rs`).
    #[arg(long, hide = true)]
    packed_worker: bool,
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

/// Group sizes or process counts of `--fuse` and `--packed`: each at least 2; none when empty.
#[derive(Debug, Clone)]
struct Sizes(Vec<i64>);

fn sizes(s: &str) -> Result<Sizes, String> {
    if s.trim().is_empty() {
        return Ok(Sizes(Vec::new()));
    }
    let each = s.split(',').map(|n| match n.trim().parse::<i64>() {
        Ok(n) if n >= 2 => Ok(n),
        _ => Err(format!("expected comma-separated numbers of at least 2, got {n:?}")),
    });
    each.collect::<Result<_, _>>().map(Sizes)
}

fn parse_arch(s: &str) -> Result<Arch, String> {
    s.parse()
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
    arch: Arch,
    device: Device,
    device_name: String,
    batch: i64,
    steps: u32,
    warmup: u32,
    fuse: Vec<i64>,
    packed: Vec<i64>,
    /// Whether the CUDA-graph columns are in the table.
    graphs: bool,
    /// How the packed processes share the GPU, for the header.
    packing: String,
}

/// How a cell trains: one network in this process, N in N processes, or G fused as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Alone,
    Packed(i64),
    Fused(i64),
}

impl Way {
    /// The cell's name in headings, progress lines and notes.
    fn name(self, graph: bool) -> String {
        let eager = match self {
            Way::Alone => return if graph { "tch graph".into() } else { "tch eager".into() },
            Way::Packed(n) => format!("packed x{n}"),
            Way::Fused(g) => format!("fused x{g}"),
        };
        if graph {
            eager + " graph"
        } else {
            eager
        }
    }

    /// The heading of the cell's ratio to PyTorch.
    fn ratio_name(self, graph: bool) -> String {
        let short = match self {
            Way::Alone => return if graph { "graph/PyTorch".into() } else { "tch/PyTorch".into() },
            Way::Packed(n) => format!("p{n}"),
            Way::Fused(g) => format!("x{g}"),
        };
        format!("{short}{}/PyTorch", if graph { " graph" } else { "" })
    }
}

/// One tch cell: how it trains, whether it replays a captured step, and its figure or why it has
/// none (CUDA out of memory, not a CUDA device).
struct Cell {
    way: Way,
    graph: bool,
    result: Result<Throughput, String>,
}

/// One width: the reference, then the tch cells in table order (alone, each packed N, each fused
/// G; each eager and, with `--graphs`, as a CUDA graph).
struct Row {
    width: i64,
    pytorch: Result<Reference, String>,
    cells: Vec<Cell>,
}

impl Row {
    /// A cell's samples/s over PyTorch eager's, when both were measured.
    fn vs_pytorch(&self, cell: &Result<Throughput, String>) -> Option<f64> {
        match (&self.pytorch, cell) {
            (Ok(p), Ok(t)) => Some(t.samples_per_second / p.samples_per_second),
            _ => None,
        }
    }

    fn cell(&self, way: Way, graph: bool) -> Option<&Result<Throughput, String>> {
        self.cells.iter().find(|c| c.way == way && c.graph == graph).map(|c| &c.result)
    }

    /// Notes for the end of the table: failed cells, and a PyTorch network that is not the same.
    /// `pytorch_absent`: the whole column is missing and already has its note; `graphs_absent`:
    /// so are the graph cells (not a CUDA device), said once for the whole table.
    fn problems(&self, pytorch_absent: bool, graphs_absent: bool) -> Vec<String> {
        let w = self.width;
        let mut out = Vec::new();
        match (&self.pytorch, self.cell(Way::Alone, false)) {
            (Err(why), _) if !pytorch_absent => out.push(format!("width {w}, PyTorch eager: {why}")),
            (Ok(p), Some(Ok(t))) if p.parameters != t.parameters => out.push(format!(
                "width {w}: PyTorch's network has {} parameters and tch's {}, so they are not the same model",
                p.parameters, t.parameters
            )),
            _ => {}
        }
        for c in &self.cells {
            match &c.result {
                Err(_) if c.graph && graphs_absent => {}
                Err(why) => out.push(format!("width {w}, {}: {why}", c.way.name(c.graph))),
                Ok(_) => {}
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
        // The packed or fused cells of one kind, each with its size and ratio.
        let group = |graph: bool, size_key: &str, of: fn(Way) -> Option<i64>| -> Vec<Value> {
            self.cells
                .iter()
                .filter(|c| c.graph == graph)
                .filter_map(|c| of(c.way).map(|n| (n, &c.result)))
                .map(|(n, c)| {
                    let mut v = cell(c);
                    v[size_key] = json!(n);
                    v["vs_pytorch"] = json!(self.vs_pytorch(c));
                    v
                })
                .collect()
        };
        let packed_of = |w: Way| if let Way::Packed(n) = w { Some(n) } else { None };
        let fused_of = |w: Way| if let Way::Fused(g) = w { Some(g) } else { None };
        let alone = self.cell(Way::Alone, false).cloned().unwrap_or_else(|| Err("not measured".into()));
        let mut row = json!({
            "arch": setup.arch.name(),
            "width": self.width,
            "batch": setup.batch,
            "steps": setup.steps,
            "warmup": setup.warmup,
            "device": DeviceChoice::name_of(setup.device),
            "device_name": setup.device_name,
            "precision": precision_name(throughput::precision_for(setup.device)),
            "pytorch_eager": match &self.pytorch {
                Ok(p) => json!({"samples_per_second": p.samples_per_second, "parameters": p.parameters, "torch": p.torch}),
                Err(why) => json!({"error": why}),
            },
            "tch_eager": cell(&alone),
            "tch_eager_vs_pytorch": self.vs_pytorch(&alone),
            "packed": group(false, "processes", packed_of),
            "packing": setup.packing,
            "fused": group(false, "members", fused_of),
            "graphs": setup.graphs,
        });
        if let Some(tch_graph) = self.cell(Way::Alone, true) {
            row["tch_graph"] = cell(tch_graph);
            row["tch_graph_vs_pytorch"] = json!(self.vs_pytorch(tch_graph));
            row["packed_graph"] = json!(group(true, "processes", packed_of));
            row["fused_graph"] = json!(group(true, "members", fused_of));
        }
        row
    }
}

pub fn run(args: GpuArgs) -> anyhow::Result<()> {
    let device = args.device.resolve().map_err(|e| anyhow!("--device: {e}"))?;
    if args.packed_worker {
        let width = *args.widths.first().ok_or_else(|| anyhow!("--packed-worker needs a width"))?;
        let (arch, batch, steps, warmup, graphs) = (args.arch, args.batch, args.steps, args.warmup, args.graphs);
        return packed::work(&StepBench { arch, width, members: 1, batch, warmup, steps, device, graphs });
    }
    let mut notes = Vec::new();
    // Held until the table is done: dropping it stops a daemon the bench started.
    let (mps, packing) = packing(&args, device)?;
    let packer = Packer {
        exe: std::env::current_exe()?,
        env: mps.as_ref().map(|m| m.env().to_vec()).unwrap_or_default(),
        timeout: args.packed_timeout,
    };
    let python = pytorch::interpreter(args.python.as_deref());
    eprintln!("bench gpu: {}, PyTorch eager under {}, widths {:?}", args.arch, python.display(), args.widths);
    let cell = pytorch::Cells { arch: args.arch, batch: args.batch, steps: args.steps, warmup: args.warmup };
    let column = pytorch::measure(&python, &args.widths, &cell, DeviceChoice::name_of(device));
    let setup = Setup {
        arch: args.arch,
        device,
        device_name: device_name(device, column.as_ref().ok()),
        batch: args.batch,
        steps: args.steps,
        warmup: args.warmup,
        fuse: args.fuse.0.clone(),
        packed: args.packed.0.clone(),
        graphs: args.graphs,
        packing,
    };
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
        let measure = |way: Way, graph: bool| -> Cell {
            eprintln!("bench gpu: width {width}, {}", way.name(graph));
            let (arch, batch, steps, warmup) = (args.arch, args.batch, args.steps, args.warmup);
            let bench = StepBench { arch, width, members: 1, batch, warmup, steps, device, graphs: graph };
            let result = match (way, &graphs_off) {
                (_, Some(why)) if graph => Err(why.clone()),
                (Way::Alone, _) => throughput::measure(&bench),
                (Way::Packed(n), _) => packer.measure(&bench, n as usize),
                (Way::Fused(g), _) => throughput::measure(&StepBench { members: g, ..bench }),
            };
            Cell { way, graph, result }
        };
        let row = Row { width, pytorch, cells: layout(&setup).into_iter().map(|(way, g)| measure(way, g)).collect() };
        notes.extend(row.problems(column.is_err(), graphs_absent));
        if args.json {
            println!("{}", row.to_json(&setup));
        } else {
            println!("{}", table_line(&row));
        }
    }
    for note in notes {
        if args.json {
            eprintln!("note: {note}");
        } else {
            println!("note: {note}");
        }
    }
    Ok(())
}

/// The tch cells of a row in table order: alone, each packed N, each fused G; each eager, then
/// (with `--graphs`) as a graph.
fn layout(setup: &Setup) -> Vec<(Way, bool)> {
    let packed = setup.packed.iter().map(|&n| Way::Packed(n));
    let ways = std::iter::once(Way::Alone).chain(packed).chain(setup.fuse.iter().map(|&g| Way::Fused(g)));
    ways.flat_map(|way| [(way, false), (way, true)]).filter(|&(_, graph)| !graph || setup.graphs).collect()
}

/// The MPS daemon the packed cells run under, if any, and how they share the device, in words.
fn packing(args: &GpuArgs, device: Device) -> anyhow::Result<(Option<Mps>, String)> {
    if args.packed.0.is_empty() {
        return Ok((None, "not measured (--packed '')".into()));
    }
    if !device.is_cuda() {
        return Ok((None, "processes sharing the CPU's cores evenly".into()));
    }
    if args.mps == MpsMode::Off {
        return Ok((None, "processes time-sharing the GPU without CUDA MPS (--mps off)".into()));
    }
    match Mps::start(&packed::mps_dir()) {
        Ok(mps) if mps.is_own() => Ok((Some(mps), "processes under a CUDA MPS daemon this bench started".into())),
        Ok(mps) => Ok((Some(mps), "processes under the node's CUDA MPS daemon".into())),
        Err(why) if args.mps == MpsMode::On => Err(anyhow!("--mps on: {why}")),
        Err(why) => Ok((None, format!("processes time-sharing the GPU without CUDA MPS ({why})"))),
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

fn headings(cells: &[(Way, bool)]) -> Vec<String> {
    let mut h: Vec<String> = vec!["width".into(), "PyTorch eager".into()];
    for &(way, graph) in cells {
        h.push(way.name(graph));
        h.push(way.ratio_name(graph));
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
        "{}, 3x32x32 inputs, 10 classes; batch {} per network; {} steps timed after {} warmup; \
         SGD lr {} momentum {} weight decay {}; {}\n",
        network_title(setup.arch),
        setup.batch,
        setup.steps,
        setup.warmup,
        throughput::LR,
        throughput::MOMENTUM,
        throughput::WEIGHT_DECAY,
        precision_name(precision),
    );
    out += &format!(
        "device: {} ({}{threads}); {reference}\nsamples/s per cell (packed: summed over the processes, {}; fused: \
         summed over the members{}); ratios are to PyTorch eager\n\n",
        DeviceChoice::name_of(setup.device),
        setup.device_name,
        setup.packing,
        if setup.graphs { "; graph: the step captured once as a CUDA graph, then replayed" } else { "" },
    );
    let cells: Vec<String> =
        headings(&layout(setup)).iter().map(|h| format!("{h:>w$}", w = CELL.max(h.len()))).collect();
    out + &cells.join("  ") + "\n"
}

/// The network in the table's first line.
fn network_title(arch: Arch) -> &'static str {
    match arch {
        Arch::PreactResnet18 => "preact-ResNet-18 (--arch preact_resnet18)",
        Arch::Cnn5 => "5-layer CNN (--arch cnn5)",
        Arch::Mlp => "MLP with one hidden layer (--arch mlp)",
    }
}

fn table_line(row: &Row) -> String {
    let rate = |x: f64| if x >= 100.0 { format!("{x:.0}") } else { format!("{x:.1}") };
    let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
    let mut cells = vec![
        row.width.to_string(),
        match &row.pytorch {
            Ok(p) => rate(p.samples_per_second),
            Err(_) => "-".into(),
        },
    ];
    for c in &row.cells {
        cells.push(c.result.as_ref().map_or_else(|_| "failed".into(), |t| rate(t.samples_per_second)));
        cells.push(ratio(row.vs_pytorch(&c.result)));
    }
    let layout: Vec<(Way, bool)> = row.cells.iter().map(|c| (c.way, c.graph)).collect();
    let widths = headings(&layout).into_iter().map(|h| CELL.max(h.len()));
    cells.iter().zip(widths).map(|(c, w)| format!("{c:>w$}")).collect::<Vec<_>>().join("  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(samples_per_second: f64, parameters: i64) -> Result<Throughput, String> {
        Ok(Throughput { samples_per_second, seconds: 1.0, parameters, precision: Precision::Fp32 })
    }

    fn cell(way: Way, graph: bool, result: Result<Throughput, String>) -> Cell {
        Cell { way, graph, result }
    }

    /// Without graph cells (`--graphs false`): alone, packed x4, fused x4 and x16.
    fn row() -> Row {
        Row {
            width: 8,
            pytorch: Ok(Reference {
                samples_per_second: 1000.0,
                parameters: 10,
                device_name: "cpu".into(),
                torch: "2.11.0".into(),
            }),
            cells: vec![
                cell(Way::Alone, false, measured(1250.0, 10)),
                cell(Way::Packed(4), false, measured(3000.0, 40)),
                cell(Way::Fused(4), false, measured(4000.0, 40)),
                cell(Way::Fused(16), false, Err("CUDA out of memory".into())),
            ],
        }
    }

    /// The same with each cell's graph beside it, one of which failed.
    fn graph_row() -> Row {
        let graph =
            [measured(2500.0, 10), measured(5000.0, 40), measured(6000.0, 40), Err("capture refused".to_string())];
        let cells = row().cells.into_iter().zip(graph).flat_map(|(c, g)| {
            let way = c.way;
            [c, cell(way, true, g)]
        });
        Row { cells: cells.collect(), ..row() }
    }

    fn setup(graphs: bool) -> Setup {
        Setup {
            arch: Arch::PreactResnet18,
            device: Device::Cpu,
            device_name: "cpu".into(),
            batch: 8,
            steps: 2,
            warmup: 1,
            fuse: vec![4, 16],
            packed: vec![4],
            graphs,
            packing: "processes sharing the CPU's cores evenly".into(),
        }
    }

    #[test]
    fn ratios_are_to_pytorch_eager_and_failed_cells_say_so() {
        let line = table_line(&row());
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells, ["8", "1000", "1250", "1.25x", "3000", "3.00x", "4000", "4.00x", "failed", "-"]);
        assert_eq!(row().problems(false, false), ["width 8, fused x16: CUDA out of memory"]);
    }

    #[test]
    fn graph_cells_sit_beside_their_eager_cells_under_their_own_headings() {
        let line = table_line(&graph_row());
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "8", "1000", "1250", "1.25x", "2500", "2.50x", "3000", "3.00x", "5000", "5.00x", "4000", "4.00x",
                "6000", "6.00x", "failed", "-", "failed", "-"
            ]
        );
        let heads = headings(&layout(&setup(true)));
        assert_eq!(heads.len(), cells.len());
        assert_eq!(
            (heads[4].as_str(), heads[6].as_str(), heads[8].as_str(), heads[9].as_str(), heads[12].as_str()),
            ("tch graph", "packed x4", "packed x4 graph", "p4 graph/PyTorch", "fused x4 graph")
        );
        // Each heading is as wide as its cells, so the columns line up.
        let header_line = header(&setup(true), &Err("absent".into()), Path::new("python3"));
        assert!(header_line.contains("processes sharing the CPU's cores evenly"), "{header_line}");
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
        assert_eq!((&v["packed"][0]["processes"], &v["packed"][0]["vs_pytorch"]), (&json!(4), &json!(3.0)));
        assert_eq!(v["packing"], json!("processes sharing the CPU's cores evenly"));
        assert_eq!(v["fused"][0]["members"], json!(4));
        assert_eq!(v["fused"][1]["error"], json!("CUDA out of memory"));
        assert_eq!(v["graphs"], json!(false));
        assert!(v.get("tch_graph").is_none() && v.get("fused_graph").is_none() && v.get("packed_graph").is_none());
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
        assert_eq!(v["packed_graph"][0]["processes"], json!(4));
        assert_eq!(v["packed_graph"][0]["vs_pytorch"], json!(5.0));
        assert_eq!(v["fused_graph"][0]["members"], json!(4));
        assert_eq!(v["fused_graph"][0]["vs_pytorch"], json!(6.0));
        assert_eq!(v["fused_graph"][1]["error"], json!("capture refused"));
        assert!(v["fused_graph"][1]["vs_pytorch"].is_null() && v["fused_graph"][1]["samples_per_second"].is_null());
    }

    #[test]
    fn a_different_parameter_count_is_reported() {
        let other = Row { cells: vec![cell(Way::Alone, false, measured(1250.0, 11))], ..row() };
        assert!(other.problems(false, false)[0].contains("not the same model"));
    }
}
