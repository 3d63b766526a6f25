#!/usr/bin/env python3
"""One LCBench "training run" as a `workload = "command"` trial: each epoch asks the surrogate
server (bench/search/surrogate.py) what a real MLP with these hyperparameters would report, and
prints it as sweep's metric line. Standard library only, so the process starts as fast as Python.

    lcbench_trial.py --instance 3945 --socket /tmp/x/lcbench.sock --batch_size 91 --learning_rate 0.003 ...

Prints, for epochs 1..--epochs:
    {"epoch": e, "metrics": {"val_accuracy": ..., "val_error": ..., "sim_time": ...}}

Instance and socket come from the flags (a sweep file passes them through `command = [...]`) or
from LCBENCH_INSTANCE and LCBENCH_SOCKET. Integer hyperparameters may arrive as floats (a
log-uniform draw of batch_size): they are rounded. With SWEEP_CHECKPOINT_DIR set, the last
finished epoch is kept in state.json there and a new attempt resumes after it, so no epoch is
reported twice; with SWEEP_STOP_AFTER_EPOCH set, the trial exits 0 after that epoch (a pause that
a later attempt resumes from the checkpoint). Exit 78 (bad configuration) for a wrong flag.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from client import Surrogate, SurrogateError, typed

BAD_CONFIGURATION = 78


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instance", default=os.environ.get("LCBENCH_INSTANCE"), help="OpenML task id [$LCBENCH_INSTANCE]")
    ap.add_argument("--socket", default=os.environ.get("LCBENCH_SOCKET"), help="the surrogate server [$LCBENCH_SOCKET]")
    ap.add_argument("--epochs", type=int, help="train up to this epoch [the benchmark's last, 52]")
    ap.add_argument("--count", type=Path, help="append a byte to this file per epoch trained: the epochs a "
                                               "benchmark run has spent, over all its trials")
    args, rest = ap.parse_known_args(argv)
    if not args.instance or not args.socket:
        ap.error("--instance and --socket (or LCBENCH_INSTANCE and LCBENCH_SOCKET) are required")
    # Everything else is the hyperparameters, as sweep passes them: --name value.
    if len(rest) % 2 or not all(flag.startswith("--") for flag in rest[::2]):
        ap.error(f"expected hyperparameters as `--name value` pairs, got {' '.join(rest)}")
    hparams = {}
    for flag, value in zip(rest[::2], rest[1::2]):
        try:
            hparams[flag[2:]] = float(value)
        except ValueError:
            ap.error(f"{flag}: expected a number, got {value!r}")
    return args, hparams


def last_epoch(state):
    """The last epoch an earlier attempt finished, 0 if none did."""
    try:
        return int(json.loads(state.read_text())["epoch"])
    except FileNotFoundError:
        return 0


def save_epoch(state, epoch):
    """Atomically: a crash leaves the old state or the new one, never half a file."""
    fd, tmp = tempfile.mkstemp(dir=state.parent, prefix=".state-")
    with os.fdopen(fd, "w") as f:
        json.dump({"epoch": epoch}, f)
    os.replace(tmp, state)


def main():
    try:
        args, hparams = parse(sys.argv[1:])
    except SystemExit as e:
        sys.exit(BAD_CONFIGURATION if e.code else 0)
    stop_after = int(os.environ.get("SWEEP_STOP_AFTER_EPOCH") or 0)
    state = Path(os.environ["SWEEP_CHECKPOINT_DIR"]) / "state.json" if os.environ.get("SWEEP_CHECKPOINT_DIR") else None
    if state:
        state.parent.mkdir(parents=True, exist_ok=True)
    with Surrogate(args.socket) as surrogate:
        bench = surrogate.describe()
        missing = sorted({p["name"] for p in bench["space"]} - set(hparams))
        unknown = sorted(set(hparams) - {p["name"] for p in bench["space"]})
        if missing or unknown:
            print(f"lcbench_trial: hyperparameters missing: {missing or 'none'}; unknown: {unknown or 'none'}",
                  file=sys.stderr)
            sys.exit(BAD_CONFIGURATION)
        config = typed(bench["space"], hparams)
        epochs = args.epochs or bench["epochs"]
        start = last_epoch(state) + 1 if state else 1
        for epoch in range(start, epochs + 1):
            if stop_after and epoch > stop_after:
                break
            try:
                metrics = surrogate.epoch(args.instance, config, epoch)
            except SurrogateError as e:
                print(f"lcbench_trial: {e}", file=sys.stderr)
                sys.exit(BAD_CONFIGURATION)
            print(json.dumps({"epoch": epoch, "metrics": metrics}), flush=True)
            if state:
                save_epoch(state, epoch)
            if args.count:
                # O_APPEND: the trials running at once never overwrite each other's bytes.
                with open(args.count, "ab") as f:
                    f.write(b".")


if __name__ == "__main__":
    main()
