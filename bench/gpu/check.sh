#!/usr/bin/env bash
# The GPU checks of fused groups and CUDA graphs, in one run on a GPU node (see BENCHMARKS.md):
#   1. the same double-descent sweep trained four ways through `sweep local`: each trial alone,
#      alone with CUDA graphs, in fused groups, and in fused groups with CUDA graphs;
#   2. every way's final losses against the trials trained alone (bf16 tolerance), and its whole
#      sweep's examples per second of wall time against theirs;
#   3. `sweep bench gpu` for the step throughput table (packed cells under CUDA MPS where the
#      node has it), and its packed cells again without MPS.
# Sizes come from the environment; the defaults fit an H100 in a few minutes. On a CPU machine,
#   WIDTH=2 TRAIN=256 TEST=64 EPOCHS=2 GPUS=0 BENCH=0 bench/gpu/check.sh
# runs the same path small (graphs then fall back to eager, and say so).
set -euo pipefail

SWEEP=$(realpath "${SWEEP:-$(dirname "$0")/../../target/release/sweep}")
PYTHON=${PYTHON:-python3}
WIDTH=${WIDTH:-8}
TRAIN=${TRAIN:-10000}
TEST=${TEST:-2000}
EPOCHS=${EPOCHS:-3}
SEEDS=${SEEDS:-"0, 1, 2, 3, 4, 5, 6, 7"}
GPUS=${GPUS:-1}
FUSE=${FUSE:-8}
BENCH=${BENCH:-1}
WORK=${WORK:-$(mktemp -d)}

echo "work folder: $WORK"
"$SWEEP" data synth --format cifar10 --out "$WORK/cifar" --train "$TRAIN" --test "$TEST" >/dev/null 2>&1

sweep_file() { # name, resources
  cat >"$WORK/$1.toml" <<TOML
name = "$1"
workload = "double_descent"
[data]
format = "cifar10"
path = "cifar"
[params]
model = "preact_resnet18"
width = $WIDTH
epochs = $EPOCHS
batch_size = 128
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 }
[grid]
seed = [$SEEDS]
[resources]
gpus = $GPUS
$2
[retry]
max_attempts = 1
TOML
}

run() { # name, resources
  sweep_file "$1" "$2"
  echo "== $1"
  (cd "$WORK" && "$SWEEP" local "$1.toml" --state "state-$1" --format json >"$1.json" 2>"$1.log") || {
    tail -20 "$WORK/$1.log"
    exit 1
  }
  grep -h -i "graph capture failed" "$WORK/$1.log" | sort -u | head -2 || true
}

run alone "cuda_graphs = false"
run alone-graphs ""
run fused "fuse = $FUSE
cuda_graphs = false"
run fused-graphs "fuse = $FUSE"

"$PYTHON" - "$WORK" "$TRAIN" "$EPOCHS" <<'PY'
import sys, pathlib
import pyarrow.parquet as pq

work, train, epochs = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def trials_of(name):
    return pq.read_table(work / "results" / name / "trials.parquet").to_pandas().set_index("trial_id")

def trajectories(name, metric):
    """Each trial's `metric` at every reported epoch, as a (trial_id, epoch)-indexed series."""
    m = pq.ParquetDataset(work / "results" / name / "metrics").read().to_pandas()
    m = m[m.metric == metric]
    return m.groupby(["trial_id", "epoch"]).value.last()

def throughput(trials):
    """Training examples of the whole sweep over its wall time (first start to last finish)."""
    seconds = (trials.finished_at.max() - trials.started_at.min()).total_seconds()
    return len(trials) * train * epochs / seconds, seconds

alone = trials_of("alone")
base, _ = throughput(alone)
print("Largest relative difference from the trials trained alone over every epoch of every trial:")
print(f"{'way':14} {'trials ok':>9} {'train_loss':>11} {'test_loss':>10} {'sweep seconds':>14} {'examples/s':>11} {'vs alone':>9}")
for name in ["alone", "alone-graphs", "fused", "fused-graphs"]:
    trials = trials_of(name)
    ok = (trials.status == "succeeded").sum()
    worst = {}
    for metric in ["train_loss", "test_loss"]:
        a = trajectories("alone", metric)
        b = trajectories(name, metric).reindex(a.index)
        worst[metric] = ((a - b).abs() / a.abs().clip(lower=1.0)).max()
    rate, seconds = throughput(trials)
    print(f"{name:14} {ok:>4}/{len(trials):<4} {worst['train_loss']:>11.2e} {worst['test_loss']:>10.2e} {seconds:>14.1f} {rate:>11.0f} {rate / base:>8.2f}x")
print("Whole sweeps, evaluation and data loading included. bf16 autocast and cuDNN's algorithm choices")
print("make relative differences up to ~1e-2 expected on a GPU.")
PY

if [ "$BENCH" = 1 ]; then
  # Every way, packed processes under CUDA MPS where the node has it; then packing without MPS.
  "$SWEEP" bench gpu --widths 1,2,4,8,16,32,64 --fuse 4,8,16 --packed 4,8
  "$SWEEP" bench gpu --widths 8,16 --fuse '' --packed 4,8 --mps off
fi
