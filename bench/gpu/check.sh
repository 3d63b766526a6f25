#!/usr/bin/env bash
# The GPU checks of fused groups and CUDA graphs, in one run on a GPU node (see BENCHMARKS.md):
#   1. the same double-descent sweep trained four ways through `sweep local`: each trial alone,
#      alone with CUDA graphs, in fused groups, and in fused groups with CUDA graphs;
#   2. every way's final losses against the trials trained alone (bf16 tolerance), and its whole
#      sweep's examples per second of wall time against theirs; the same for a long-tail sweep
#      (ResNet-32 with LDAM-DRW on the same images cut to CIFAR-10-LT, LT_SEEDS seeds fused), alone
#      and eager against fused with graphs (LONG_TAIL=0 leaves it out);
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
LONG_TAIL=${LONG_TAIL:-1}
LT_SEEDS=${LT_SEEDS:-"0, 1, 2"}
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

lt_sweep_file() { # name, resources
  cat >"$WORK/$1.toml" <<TOML
name = "$1"
workload = "long_tail"
[data]
format = "cifar_lt"
path = "cifar"
imbalance_ratio = 10
[params]
model = "resnet32"
loss = "ldam_drw"
drw_epoch = 1
epochs = $EPOCHS
batch_size = 128
optimizer = { name = "sgd", lr = 0.05, momentum = 0.9 }
[grid]
seed = [$LT_SEEDS]
[resources]
gpus = $GPUS
$2
[retry]
max_attempts = 1
TOML
}

run() { # name, resources[, sweep file writer]
  "${3:-sweep_file}" "$1" "$2"
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
if [ "$LONG_TAIL" = 1 ]; then
  LT_FUSE=$(echo "$LT_SEEDS" | tr ',' '\n' | wc -l)
  run lt-alone "cuda_graphs = false" lt_sweep_file
  run lt-fused-graphs "fuse = $LT_FUSE" lt_sweep_file
fi

"$PYTHON" - "$WORK" "$TRAIN" "$EPOCHS" "$LONG_TAIL" <<'PY'
import sys, pathlib
import pyarrow.parquet as pq

work, train, epochs, long_tail = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"

def trials_of(name):
    return pq.read_table(work / "results" / name / "trials.parquet").to_pandas().set_index("trial_id")

def trajectories(name, metric):
    """Each trial's `metric` at every reported epoch, as a (trial_id, epoch)-indexed series."""
    m = pq.ParquetDataset(work / "results" / name / "metrics").read().to_pandas()
    m = m[m.metric == metric]
    return m.groupby(["trial_id", "epoch"]).value.last()

def throughput(trials, examples):
    """Training examples of the whole sweep over its wall time (first start to last finish)."""
    seconds = (trials.finished_at.max() - trials.started_at.min()).total_seconds()
    return len(trials) * examples * epochs / seconds, seconds

def compare(baseline, ways, metrics, examples):
    """Each way's largest relative difference from `baseline` in `metrics` over every epoch of
    every trial, and its sweep's examples per second of wall time against the baseline's;
    `examples`: a trial's training images per epoch."""
    base, _ = throughput(trials_of(baseline), examples)
    header = "".join(f" {m:>11}" for m in metrics)
    print(f"{'way':16} {'trials ok':>9}{header} {'sweep seconds':>14} {'examples/s':>11} {'vs alone':>9}")
    for name in [baseline] + ways:
        trials = trials_of(name)
        ok = (trials.status == "succeeded").sum()
        worst = ""
        for metric in metrics:
            a = trajectories(baseline, metric)
            b = trajectories(name, metric).reindex(a.index)
            worst += f" {((a - b).abs() / a.abs().clip(lower=1.0)).max():>11.2e}"
        rate, seconds = throughput(trials, examples)
        print(f"{name:16} {ok:>4}/{len(trials):<4}{worst} {seconds:>14.1f} {rate:>11.0f} {rate / base:>8.2f}x")

print("Largest relative difference from the trials trained alone over every epoch of every trial:")
compare("alone", ["alone-graphs", "fused", "fused-graphs"], ["train_loss", "test_loss"], train)
if long_tail:
    # The cut training set's size: the class sizes every record carries.
    m = pq.ParquetDataset(work / "results" / "lt-alone" / "metrics").read().to_pandas()
    first = m[m.epoch == m.epoch.min()]
    first = first[first.trial_id == first.trial_id.iloc[0]]
    cut = int(first[first.metric.str.startswith("class_train_count/")].value.sum())
    print(f"Long-tail sweep (ResNet-32, LDAM-DRW, the images cut to CIFAR-10-LT at 10: {cut} for training):")
    compare("lt-alone", ["lt-fused-graphs"], ["test_loss", "test_acc"], cut)
print("Whole sweeps, evaluation and data loading included. bf16 autocast and cuDNN's algorithm choices")
print("make relative differences up to ~1e-2 expected on a GPU.")
PY

if [ "$BENCH" = 1 ]; then
  # Every way, packed processes under CUDA MPS where the node has it; then packing without MPS.
  "$SWEEP" bench gpu --widths 1,2,4,8,16,32,64 --fuse 4,8,16 --packed 4,8
  "$SWEEP" bench gpu --widths 8,16 --fuse '' --packed 4,8 --mps off
fi
