#!/usr/bin/env bash
# The GPU checks of fused groups and CUDA graphs, in one run on a GPU node (see BENCHMARKS.md):
#   1. the same double-descent sweep trained four ways through `sweep local`: each trial alone,
#      alone with CUDA graphs, in fused groups, and in fused groups with CUDA graphs;
#   2. every way's final losses against the trials trained alone (bf16 tolerance) and its
#      samples/s against them;
#   3. `sweep bench gpu` for the step throughput table.
# Sizes come from the environment; the defaults fit an H100 in a few minutes. On a CPU machine,
#   WIDTH=2 TRAIN=256 TEST=64 EPOCHS=2 GPUS=0 BENCH=0 bench/gpu/check.sh
# runs the same path small (graphs then fall back to eager, and say so).
set -euo pipefail

SWEEP=${SWEEP:-$(dirname "$0")/../../target/release/sweep}
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
"$SWEEP" data synth --format cifar10 --out "$WORK/cifar" --train "$TRAIN" --test "$TEST" >/dev/null

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

run() { # name, resources, SWEEP_CUDA_GRAPHS
  sweep_file "$1" "$2"
  echo "== $1"
  (cd "$WORK" && SWEEP_CUDA_GRAPHS=$3 "$SWEEP" local "$1.toml" --state "state-$1" --format json >"$1.json" 2>"$1.log") || {
    tail -20 "$WORK/$1.log"
    exit 1
  }
  grep -h -i "graph capture failed" "$WORK/$1.log" | sort -u | head -2 || true
}

run alone "" 0
run alone-graphs "" 1
run fused "fuse = $FUSE" 0
run fused-graphs "fuse = $FUSE" 1

"$PYTHON" - "$WORK" <<'PY'
import sys, pathlib
import pyarrow.parquet as pq

work = pathlib.Path(sys.argv[1])

def load(name):
    trials = pq.read_table(work / "results" / name / "trials.parquet").to_pandas()
    metrics = pq.read_table(work / "results" / name / "metrics").to_pandas()
    return trials.set_index("trial_id"), metrics

alone, alone_m = load("alone")
rate = lambda m: m[m.metric == "samples_per_second"].groupby("trial_id").value.median().sum()
print(f"{'way':14} {'trials ok':>9} {'max rel diff train_loss':>24} {'test_loss':>10} {'samples/s (sum of trial medians)':>34} {'vs alone':>9}")
for name in ["alone", "alone-graphs", "fused", "fused-graphs"]:
    trials, metrics = load(name)
    ok = (trials.status == "succeeded").sum()
    worst = {}
    for metric in ["train_loss", "test_loss"]:
        a, b = alone[f"final_{metric}"], trials[f"final_{metric}"].reindex(alone.index)
        worst[metric] = ((a - b).abs() / a.abs().clip(lower=1.0)).max()
    r = rate(metrics)
    print(f"{name:14} {ok:>4}/{len(trials):<4} {worst['train_loss']:>24.2e} {worst['test_loss']:>10.2e} {r:>34.0f} {r / rate(alone_m):>8.2f}x")
print("bf16 tolerance: relative differences up to ~1e-2 are expected from bf16 autocast and cuDNN's choices.")
PY

if [ "$BENCH" = 1 ]; then
  "$SWEEP" bench gpu --widths 1,2,4,8,16,32,64 --fuse 4,8,16
fi
