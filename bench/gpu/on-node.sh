#!/usr/bin/env bash
# Every GPU figure BENCHMARKS.md owes, in one run on a GPU node that has PyTorch 2.11 (CUDA 13) but
# no Rust toolchain. Build on a CPU machine with `make gpu-bundle` (a stripped release `sweep` in
# .device/, about 26 MB), take the repository with .device/ to the node, then:
#   bash bench/gpu/on-node.sh [OUT]          # about 8 minutes on an H100
# It writes to OUT (default gpu-figures/, or $OUT): gpu.csv (the GPU), check.txt (bench/gpu/check.sh:
# the same sweep alone, with graphs, fused, fused with graphs), bench.txt (`sweep bench gpu`, packed
# under MPS where the node has it), bench-no-mps.txt (packing without MPS) and bench.log (progress).
# check.sh's sizes (WIDTH, TRAIN, EPOCHS, SEEDS, FUSE) pass through from the environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-${OUT:-gpu-figures}}
mkdir -p "$OUT"
SWEEP=$(realpath "${SWEEP:-.device/sweep}")
PYTHON=${PYTHON:-python3}
# The binary links the node's libtorch, from its PyTorch wheel.
TORCH_LIB=$("$PYTHON" -c 'import torch, os; print(os.path.dirname(torch.__file__) + "/lib")')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.csv"
cat "$OUT/gpu.csv"
SWEEP=$SWEEP PYTHON=$PYTHON BENCH=0 bash bench/gpu/check.sh 2>&1 | tee "$OUT/check.txt"
# Its defaults: widths 1-64, packed 4 and 8, fused 4, 8 and 16, batch 128 (SWEEP_BENCH_* change them).
"$SWEEP" bench gpu --python "$PYTHON" 2>"$OUT/bench.log" | tee "$OUT/bench.txt"
"$SWEEP" bench gpu --python "$PYTHON" --widths 8,16 --fuse '' --packed 4,8 --mps off \
  2>>"$OUT/bench.log" | tee "$OUT/bench-no-mps.txt"
