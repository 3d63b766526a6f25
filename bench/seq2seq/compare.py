#!/usr/bin/env python3
"""Training throughput of seq2seq's transformer, tch against PyTorch on the same CPU: the release
example agent/workloads/examples/transformer_throughput.rs and bench/seq2seq/pytorch_transformer.py
build the same decoder-only network (same parameter count, checked) and train it on the same shape
of random token batches with AdamW. The two run in turns, `--rounds` times each, on the same
number of threads; the table has the median tokens/s of each and their ratio.

    cargo build --release -p sweep-workloads --example transformer_throughput
    python3 bench/seq2seq/compare.py [--threads 2] [--rounds 3]
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# (d_model, layers, heads, sequence length, batch): chess-small's sizes, then a larger model.
CONFIGS = [(64, 2, 4, 40, 32), (128, 2, 4, 40, 32), (256, 4, 8, 128, 16)]


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    example = ROOT / "target" / "release" / "examples" / "transformer_throughput"
    python = ROOT / ".venv" / "bin" / "python"
    if not example.exists():
        sys.exit(f"{example} is missing: cargo build --release -p sweep-workloads --example transformer_throughput")
    print("| d_model | layers | heads | tokens per row | batch | parameters | tch tokens/s | PyTorch tokens/s | tch / PyTorch |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for d, layers, heads, seq, batch in CONFIGS:
        args = ["--d-model", d, "--layers", layers, "--heads", heads, "--seq", seq, "--batch", batch,
                "--steps", a.steps, "--threads", a.threads]
        args = [str(x) for x in args]
        tch_runs, torch_runs = [], []
        for _ in range(a.rounds):
            tch_runs.append(run([str(example), *args]))
            torch_runs.append(run([str(python), str(ROOT / "bench" / "seq2seq" / "pytorch_transformer.py"), *args]))
        if tch_runs[0]["parameters"] != torch_runs[0]["parameters"]:
            sys.exit(f"parameter counts differ: tch {tch_runs[0]['parameters']}, PyTorch {torch_runs[0]['parameters']}")
        t = statistics.median(r["tokens_per_second"] for r in tch_runs)
        p_ = statistics.median(r["tokens_per_second"] for r in torch_runs)
        print(f"| {d} | {layers} | {heads} | {seq} | {batch} | {tch_runs[0]['parameters']:,} | {t:,.0f} | {p_:,.0f} | {t / p_:.2f} |")
    print(f"\n{a.rounds} rounds of {a.steps} steps each, in turns, {a.threads} threads; torch {torch_runs[0]['torch']}")


if __name__ == "__main__":
    main()
