#!/usr/bin/env bash
# Every GPU figure BENCHMARKS.md owes, in one run on a GPU node that has PyTorch 2.11 (CUDA 13) but
# no Rust toolchain. Build on a CPU machine with `make gpu-bundle` (a stripped release `sweep` in
# .device/, about 26 MB), take the repository with .device/ to the node, then:
#   bash bench/gpu/on-node.sh [OUT]          # about 9 minutes on an H100 (an estimate)
# It writes to OUT (default gpu-figures/, or $OUT), most important first, so that a run cut short
# still leaves the figures it reached:
#   gpu.csv             the GPU
#   bench.txt           `sweep bench gpu` at widths 1-16: PyTorch eager, tch eager, graphs, packed
#                       (under MPS where the node has it) and fused, with their ratios
#   check.txt           bench/gpu/check.sh: the same sweep alone, with graphs, fused, fused with
#                       graphs, and a long-tail sweep alone and fused; trajectories against the
#                       eager lone trials
#   bench-wide.txt      widths 32 and 64, without packing
#   bench-no-mps.txt    packing without MPS
#   bench-cnn5.txt, bench-mlp.txt   the double-descent 5-layer CNN and MLP, alone and fused
#   bench.log, stages.txt   progress, and each stage's exit status and seconds
# A stage that fails is recorded in stages.txt and the next one still runs. check.sh's sizes
# (WIDTH, TRAIN, EPOCHS, SEEDS, FUSE) pass through from the environment.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-${OUT:-gpu-figures}}
mkdir -p "$OUT"
SWEEP=$(realpath "${SWEEP:-.device/sweep}")
PYTHON=${PYTHON:-python3}
# The binary links the node's libtorch, from its PyTorch wheel.
TORCH_LIB=$("$PYTHON" -c 'import torch, os; print(os.path.dirname(torch.__file__) + "/lib")') || exit 1
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# A pack that stops answering fails its cell after this long instead of the default 300 s.
export SWEEP_BENCH_PACKED_TIMEOUT=${SWEEP_BENCH_PACKED_TIMEOUT:-120s}

stage() { # name, output file, command...
  local name=$1 file=$2 started=$SECONDS rc
  shift 2
  echo "== $name" | tee -a "$OUT/bench.log" >&2
  "$@" 2>>"$OUT/bench.log" | tee "$OUT/$file"
  rc=${PIPESTATUS[0]}
  echo "$name: exit $rc after $((SECONDS - started)) s" | tee -a "$OUT/stages.txt" >&2
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
stage bench bench.txt "$SWEEP" bench gpu --python "$PYTHON" --widths 1,2,4,8,16 --packed 4,8 --fuse 4,8,16
stage check check.txt env SWEEP="$SWEEP" PYTHON="$PYTHON" BENCH=0 bash bench/gpu/check.sh
stage bench-wide bench-wide.txt "$SWEEP" bench gpu --python "$PYTHON" --widths 32,64 --packed '' --fuse 4,8,16
stage bench-no-mps bench-no-mps.txt \
  "$SWEEP" bench gpu --python "$PYTHON" --widths 8,16 --fuse '' --packed 4,8 --mps off
stage bench-cnn5 bench-cnn5.txt "$SWEEP" bench gpu --python "$PYTHON" --arch cnn5 --widths 4,16,64 --packed '' --fuse 8,16
stage bench-mlp bench-mlp.txt "$SWEEP" bench gpu --python "$PYTHON" --arch mlp --widths 64,512,4096 --packed '' --fuse 8,16
cat "$OUT/stages.txt"
