#!/usr/bin/env python3
"""Search quality on the LCBench surrogate of YAHPO Gym: sweep's random search, alone and under its
ASHA and Hyperband schedules, beside Ray Tune's ASHA and Optuna's TPE + Hyperband, with the same
epoch budget, the same concurrency and the same search space (LCBench's 7 hyperparameters, with the
log scales of its config_space.json).

A "trial" trains an MLP on one of LCBench's OpenML tasks; the surrogate (bench/search/surrogate.py,
one server per benchmark run) answers what the real run would report at each epoch, 1 to 52. Each
method searches until it has spent --budget x 52 trial-epochs (epochs of any trial, partial or
full; 100 x 52 = 5,200 by default), --concurrency trials at a time:

- sweep-random: a sweep file with `workload = "command"` running bench/search/lcbench_trial.py and
  `[random]` over the 7 hyperparameters (--budget samples, seeded with the run's seed), run by the
  release `sweep local --agents N`. Every trial trains all 52 epochs. Its epoch results are read
  back from the sweep's metrics Parquet, ordered by the coordinator's `recorded_at` (one row per
  trial and epoch: the rows a later attempt superseded are left out).
- sweep-asha: the same sweep with `[search]` (val_accuracy, max) and `[schedule]` `type = "asha"`
  (grace 1, max 52, reduction 3: rungs at 1, 3, 9, 27), `promote = true`: a trial below the cut
  pauses at its rung and a later attempt resumes it from its checkpoint once it is promoted.
- sweep-asha-stop: the same with `promote = false`: a trial below the cut is stopped for good.
- sweep-hyperband: `type = "hyperband"`, `promote = true`, default brackets (one per rung: first
  cut at epoch 1, 3, 9 or 27).
  A sweep file cannot say "stop after so many epochs in all", so these sample more configurations
  than the budget in full trainings (budget x 52 / EPOCHS_PER_SAMPLE[method]), the trial script
  counts the epochs it trains in a file, and compare.py interrupts `sweep local` (SIGINT: the
  agents stop their trials, the results are written) once the run has spent the budget. Only the
  first budget x 52 epochs count, as for the peers.
- ray-asha: Ray Tune's random search under AsyncHyperBandScheduler (grace 1, max 52, reduction 3).
- optuna-tpe-hyperband: Optuna's TPESampler with HyperbandPruner (min 1, max 52, reduction 3).
  Both peers run in bench/search/peers.py and record each epoch result as it arrives.

Regret at a budget of B full trainings is computed from the first B x 52 epochs of each run's
stream: the incumbent is the best val_accuracy at epoch 52 among trials that reached epoch 52
within those epochs (none did: it counts as accuracy 0, and the table says how often), and the
regret is the best epoch-52 val_accuracy any method saw on that instance within its runs' budget,
over all seeds (of the runs summarised), minus the incumbent's. The table shows the median and
interquartile range over instances x seeds, in accuracy points (%), the wall time per trial-epoch
(run wall time / epochs spent, all of them): sweep's is the whole `sweep local` process, start-up
and final Parquet flush included; the peers' is `Tuner.fit()` or `study.optimize()` alone; and the
trials (and the trials that reached epoch 52) within the budget's epochs.

Default instances (OpenML task ids), spread from hard to easy; the best val accuracy of 300 random
configurations at epoch 52 is about 32 %, 67 %, 83 %, 88 % and 99.6 %, and on 189873 most
configurations do not learn at all: 168329, 168331, 7593, 189873, 3945.

    bench/search/compare.py                   # 5 instances x 10 seeds, budget 100 x 52 epochs, 4 at a time
    bench/search/compare.py --quick           # 1 instance, 2 seeds, budget 10 x 52: a check in minutes
    bench/search/compare.py --seeds 3 --methods sweep-random,optuna-tpe-hyperband --out /tmp/search
    bench/search/compare.py --seeds 5 --out /tmp/search --resume   # adds seeds 3 and 4 to the runs there

Every run's epoch stream is written to OUT/runs/<method>-<instance>-s<seed>.json and the summary
to OUT/summary.json. Each finished run is also appended, in a few hundred bytes, to a ledger
(OUT/ledger.jsonl, or --ledger FILE): what the regret, the trial counts and the wall time are
computed from (the epoch-52 results and their place in the stream). --resume reuses a run found
in either, so a benchmark of many hours can be carried on from a ledger alone:

    bench/search/compare.py --ledger bench/search/ledger-budget100.jsonl --resume   # the table in BENCHMARKS.md

The surrogate, Ray Tune and Optuna go into their own virtual environment
(default ~/.cache/sweep-bench-search/venv, or $SEARCH_PEER_VENV), installed from PyPI on first
use; the LCBench data comes from --data (default $LCBENCH_DATA, else
../shared/bench-data/yahpo-lcbench beside the repository).
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "bench" / "search"
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(HERE))
import peer_venv  # noqa: E402  (bench/peer_venv.py, shared by the benchmarks that run peers)
from client import Surrogate  # noqa: E402

PEER_VENV = Path(os.environ.get("SEARCH_PEER_VENV", Path.home() / ".cache" / "sweep-bench-search" / "venv"))
# yahpo-gym pins NumPy < 2, and pyarrow 26 (which Ray Tune imports) needs NumPy 2.
PEER_PACKAGES = ["yahpo-gym", "optuna", "ray[tune]", "pyarrow<26"]
DATA = Path(os.environ.get("LCBENCH_DATA", ROOT.parent / "shared" / "bench-data" / "yahpo-lcbench"))
INSTANCES = "168329,168331,7593,189873,3945"
# sweep's methods: the [schedule] each adds to the [random] sweep (None: none, every trial trains
# all epochs); the rungs are at epochs 1, 3, 9 and 27, the last epoch is the benchmark's.
SWEEP_SCHEDULES = {
    "sweep-random": None,
    "sweep-asha": {"type": "asha", "promote": True},
    "sweep-asha-stop": {"type": "asha", "promote": False},
    "sweep-hyperband": {"type": "hyperband", "promote": True},
    # TPE proposing the configurations after the first ten, from every trial's value at the
    # highest rung it reached (the further first).
    "sweep-tpe-asha": {"type": "asha", "promote": True, "sampler": "tpe"},
    "sweep-tpe-hyperband": {"type": "hyperband", "promote": True, "sampler": "tpe"},
}
SCHEDULE = {"min_epochs": 1, "reduction_factor": 3}
# The trial-epochs a sampled configuration is counted on under each schedule, to choose how many to
# sample (budget x epochs / this): a run must spend at least the budget, and run_sweep says so if
# it did not. With promotion at least a third of the trials at each rung go on, so a trial spends
# at least ~3.3 epochs under ASHA and ~16 (the mean of the 4 brackets' 3.3, 7.9, 17.8 and 35.3)
# under Hyperband; measured on 168329 at budget 10 (260 samples): 4.9-5.4 and 19-21. Stop-only
# ASHA would spend ~3.3 if its stops were instant; they reach the trial a few tens of
# milliseconds after the rung, and the surrogate's epochs take milliseconds: 29-34 measured. Both
# ASHA variants sample the same configurations.
EPOCHS_PER_SAMPLE = {"sweep-asha": 3, "sweep-asha-stop": 3, "sweep-hyperband": 12, "sweep-tpe-asha": 3,
                     "sweep-tpe-hyperband": 12}
METHODS = (*SWEEP_SCHEDULES, "ray-asha", "optuna-tpe-hyperband")
# `sweep local`'s exit status once interrupted (SIGINT), its results written.
INTERRUPTED = 130
REPORT_BUDGETS = (10, 30, 100)

# The sweep's metric rows, run with the peer venv's Python (pyarrow): val_accuracy per trial and
# epoch, latest attempt's value, in the order the coordinator recorded them.
READ_METRICS_PY = r'''
import json, sys, pyarrow.parquet as pq
rows = [r for r in pq.read_table(sys.argv[1], columns=["trial_id", "epoch", "metric", "value", "recorded_at",
                                                      "superseded"]).to_pylist()
        if r["metric"] == "val_accuracy" and not r["superseded"]]
rows.sort(key=lambda r: (r["recorded_at"], r["epoch"]))
t0 = rows[0]["recorded_at"] if rows else None
print(json.dumps([[(r["recorded_at"] - t0).total_seconds(), r["trial_id"], r["epoch"], r["value"]] for r in rows]))
'''


# ----------------------------------------------------------------------------- surrogate server

def start_surrogate(py, data, folder):
    """The server on folder/lcbench.sock, once it answers."""
    sock = folder / "lcbench.sock"
    log = open(folder / "surrogate.log", "w")
    proc = subprocess.Popen([py, HERE / "surrogate.py", "--data", data, "--socket", sock],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    if proc.stdout.readline().strip() != "ready":
        proc.wait()
        raise SystemExit(f"compare: the surrogate server did not start:\n{(folder / 'surrogate.log').read_text()[-3000:]}")
    return proc, sock


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------- sweep

def sweep_file(name, instance, seed, samples, sock, space, schedule=None, epochs=None, count=None):
    """A `command` sweep of `samples` random configurations of the trial script, under `schedule`
    (SWEEP_SCHEDULES) up to epoch `epochs` if one is given; its trials count their epochs in the
    file `count` if one is given."""
    command = ", ".join(json.dumps(str(a)) for a in
                        [sys.executable, HERE / "lcbench_trial.py", "--instance", instance, "--socket", sock,
                         *(["--count", count] if count else [])])
    lines = [f'name = "{name}"', 'workload = "command"', f"command = [{command}]"]
    # Integers on a log scale are drawn log-uniformly; the trial rounds them.
    dists = [(p["name"], "log_uniform" if p["log"] else ("int_uniform" if p["type"] == "int" else "uniform"),
              p["lower"], p["upper"]) for p in space]
    if schedule is not None and schedule.get("sampler") == "tpe":
        entries = ", ".join(f"{n} = {{ {kind} = [{lo!r}, {hi!r}] }}" for n, kind, lo, hi in dists)
        lines += ["[search]", 'sampler = "tpe"', f"trials = {samples}", f"seed = {seed}", 'metric = "val_accuracy"',
                  'mode = "max"', f"space = {{ {entries} }}"]
    elif schedule is not None:
        lines += ["[search]", 'metric = "val_accuracy"', 'mode = "max"']
    if schedule is not None:
        lines += ["[schedule]",
                  f"type = {json.dumps(schedule['type'])}", f"min_epochs = {SCHEDULE['min_epochs']}",
                  f"max_epochs = {epochs}", f"reduction_factor = {SCHEDULE['reduction_factor']}",
                  f"promote = {str(schedule['promote']).lower()}"]
    if schedule is None or schedule.get("sampler") != "tpe":
        lines += ["[random]", f"samples = {samples}", f"seed = {seed}"]
        lines += [f"{n} = {{ {kind} = [{lo!r}, {hi!r}] }}" for n, kind, lo, hi in dists]
    return "\n".join(lines) + "\n"


def sweep_samples(method, budget, epochs):
    """How many configurations a run of `method` samples: the budget in full trainings without a
    schedule, enough to spend the budget's epochs with one."""
    if SWEEP_SCHEDULES[method] is None:
        return budget
    return -(-budget * epochs // EPOCHS_PER_SAMPLE[method])


def run_sweep(method, instance, seed, bench, sock, args, py):
    """One `sweep local` run of `method` in a folder of its own, removed afterwards unless it failed
    or --keep."""
    name = f"lcbench-{instance}-s{seed}"
    schedule, samples = SWEEP_SCHEDULES[method], sweep_samples(method, args.budget, bench["epochs"])
    tmp = Path(tempfile.mkdtemp(prefix=f"search-{method}-{instance}-s{seed}-"))
    expected = args.budget * bench["epochs"]
    count = tmp / "epochs.count" if schedule is not None else None
    (tmp / "sweep.toml").write_text(sweep_file(name, instance, seed, samples, sock, bench["space"], schedule,
                                               bench["epochs"], count))
    t = time.perf_counter()
    with open(tmp / "sweep.log", "w") as log:
        proc = subprocess.Popen([args.sweep, "local", tmp / "sweep.toml", "--agents", str(args.concurrency),
                                 "--state", tmp / "state", "--results", tmp / "results", "--format", "json"],
                                stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "SWEEP_GPUS": ""})
        interrupted = False
        while proc.poll() is None:
            # Past the budget, with room for the epochs of the trials running: the rest would not count.
            if count and not interrupted and count.exists() and count.stat().st_size >= expected + 2 * args.concurrency:
                proc.send_signal(signal.SIGINT)
                interrupted = True
            time.sleep(0.05)
    wall = time.perf_counter() - t
    if proc.returncode != (INTERRUPTED if interrupted else 0):
        log = (tmp / "sweep.log").read_text()
        raise SystemExit(f"compare: sweep local failed ({proc.returncode}); see {tmp}:\n{log[-3000:]}")
    out = subprocess.run([py, "-c", READ_METRICS_PY, tmp / "results" / name / "metrics"],
                         capture_output=True, text=True, check=True)
    stream = json.loads(out.stdout)
    trials = len({s[1] for s in stream})
    if len({(s[1], s[2]) for s in stream}) != len(stream):
        raise SystemExit(f"compare: {method} {name}: some (trial, epoch) appears more than once among the "
                         f"{len(stream)} epoch rows read (in {tmp})")
    if schedule is None:
        if len(stream) != expected or trials != args.budget:
            raise SystemExit(f"compare: sweep {name}: expected {args.budget} trials x {bench['epochs']} epochs, "
                             f"read {len(stream)} epoch rows of {trials} trials (in {tmp})")
    elif len(stream) < expected:
        raise SystemExit(f"compare: {method} {name}: {samples} sampled configurations spent {len(stream)} "
                         f"trial-epochs ({len(stream) / trials:.1f} per trial), fewer than the budget of {expected}; "
                         f"lower EPOCHS_PER_SAMPLE[{method!r}] (now {EPOCHS_PER_SAMPLE[method]}) so that more "
                         f"are sampled (in {tmp})")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"method": method, "instance": instance, "seed": seed, "budget": expected,
            "concurrency": args.concurrency, "wall_s": wall, "samples": samples, "stream": stream}


# ---------------------------------------------------------------------------------------- peers

def run_peer(method, runs, sock, args, py, out, ledger):
    """Every (instance, seed) of one peer in one process of bench/search/peers.py; each run goes
    into the ledger as it finishes. Returns them compact."""
    spec = ",".join(f"{i}:{s}" for i, s in runs)
    log_path = out / f"{method}.log"
    results = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen([py, HERE / "peers.py", method, "--socket", sock, "--runs", spec, "--budget",
                                 str(args.budget * args.epochs), "--concurrency", str(args.concurrency),
                                 "--out", out / "runs"], stdout=subprocess.PIPE, stderr=log, text=True)
        for line in proc.stdout:
            if not line.startswith('{"instance"'):  # the peers' libraries may print too
                log.write(line)
                continue
            r = json.loads(line)
            progress(method, r["instance"], r["seed"], r["wall_s"], r["epochs"])
            run = json.loads(run_path(out, method, r["instance"], r["seed"]).read_text())
            if len(run["stream"]) < run["budget"]:
                raise SystemExit(f"compare: {method} {r['instance']} seed {r['seed']}: {len(run['stream'])} epochs "
                                 f"reported, expected the budget of {run['budget']}")
            results.append(record(ledger, run, args.epochs))
        if proc.wait() != 0:
            raise SystemExit(f"compare: {method} failed ({proc.returncode}); see {log_path}:\n"
                             f"{log_path.read_text()[-3000:]}")
    return results


def run_path(out, method, instance, seed):
    return out / "runs" / f"{method}-{instance}-s{seed}.json"


def compact(run, last_epoch):
    """What the summary needs of a run, without its epoch stream: each epoch-`last_epoch` result
    with its place in the stream, and the trials that reported within the budget."""
    stream = run["stream"]
    return {**{k: run[k] for k in ("method", "instance", "seed", "budget", "concurrency", "wall_s")},
            "epochs": len(stream), "trials": len({s[1] for s in stream[:run["budget"]]}),
            "finals": [[i, s[3]] for i, s in enumerate(stream) if s[2] == last_epoch]}


def read_ledger(path):
    """The compact runs of a ledger by (method, instance, seed); a later line replaces an earlier."""
    if not path.exists():
        return {}
    runs = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {(r["method"], r["instance"], r["seed"]): r for r in runs}


def record(ledger, run, last_epoch):
    """Appends a finished run to the ledger and returns its compact form."""
    kept = compact(run, last_epoch)
    with open(ledger, "a") as f:
        f.write(json.dumps(kept) + "\n")
    return kept


def earlier_run(kept, source, args):
    """A run kept from an earlier invocation (--resume), if its settings match."""
    if kept["budget"] != args.budget * args.epochs or kept["concurrency"] != args.concurrency:
        raise SystemExit(f"compare: --resume: {source} ran with a budget of {kept['budget']} epochs and concurrency "
                         f"{kept['concurrency']}, not {args.budget * args.epochs} and {args.concurrency}")
    print(f"compare: {source}: kept from an earlier run", file=sys.stderr)
    return kept


def progress(method, instance, seed, wall, epochs):
    print(f"compare: {method} {instance} seed {seed}: {epochs} epochs in {wall:.1f} s "
          f"({1e3 * wall / epochs:.2f} ms each); load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------- regret

def incumbent(run, epochs):
    """Best val_accuracy at the last epoch among the run's first `epochs` results; None if no trial
    got there."""
    finals = [acc for i, acc in run["finals"] if i < epochs]
    return max(finals) if finals else None


def quartiles(values):
    if len(values) == 1:
        return values * 3
    return statistics.quantiles(values, n=4, method="inclusive")


def summarize(runs, budgets, last_epoch):
    """Per instance the best epoch-52 accuracy seen; per method and budget the regrets; per
    method the wall time per trial-epoch. `runs` are compact (see `compact`)."""
    best = {}
    for r in runs:
        seen = incumbent(r, r["budget"])
        if seen is not None:
            best[r["instance"]] = max(best.get(r["instance"], seen), seen)
    table = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        row = {"runs": len(mine), "regret": {}, "no_incumbent": {},
               "ms_per_epoch": statistics.median(1e3 * r["wall_s"] / r["epochs"] for r in mine),
               "trials": statistics.median(r["trials"] for r in mine),
               "full_trials": statistics.median(sum(1 for i, _ in r["finals"] if i < r["budget"]) for r in mine)}
        for b in budgets:
            regrets, missing = [], 0
            for r in mine:
                inc = incumbent(r, b * last_epoch)
                missing += inc is None
                regrets.append(best.get(r["instance"], 0.0) - (inc if inc is not None else 0.0))
                r.setdefault("regret", {})[str(b)] = regrets[-1]
            row["regret"][str(b)] = quartiles(regrets)
            row["no_incumbent"][str(b)] = missing
        table[method] = row
    return best, table


def print_table(table, budgets, args, versions, load_before, load_after, started, wall):
    print(f"\nLCBench surrogate (YAHPO Gym), instances {', '.join(args.instances)}; {args.seeds} seeds; budget "
          f"{args.budget} x {args.epochs} trial-epochs per run; {args.concurrency} trials at a time; started "
          f"{started} UTC, {wall / 60:.1f} min{f' ({args.kept} runs kept from before)' if args.kept else ''}; "
          f"{os.cpu_count()} CPUs; load average before {load_before[0]:.2f} / "
          f"{load_before[1]:.2f} / {load_before[2]:.2f}, after {load_after[0]:.2f} / {load_after[1]:.2f} / "
          f"{load_after[2]:.2f}")
    if versions:
        print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print("\nRegret in val accuracy points (%): median [25th, 75th percentile] over instances x seeds.\n")
    print("| method | " + " | ".join(f"regret @ {b}x" for b in budgets) +
          " | ms / trial-epoch | trials per run | trials to epoch 52 per run | runs |")
    print("| --- |" + " ---: |" * len(budgets) + " ---: | ---: | ---: | ---: |")
    notes = []
    for method, row in table.items():
        cells = []
        for b in budgets:
            q1, med, q3 = (100 * v for v in row["regret"][str(b)])
            cells.append(f"{med:.2f} [{q1:.2f}, {q3:.2f}]")
            if row["no_incumbent"][str(b)]:
                notes.append(f"{method} @ {b}x: {row['no_incumbent'][str(b)]} of {row['runs']} runs had no trial at "
                             f"epoch {args.epochs} yet (counted as accuracy 0)")
        print(f"| {method} | " + " | ".join(cells) + f" | {row['ms_per_epoch']:.2f} | {row['trials']:.0f} | "
              f"{row['full_trials']:.0f} | {row['runs']} |")
    for n in notes:
        print(f"\n{n}")


def print_per_instance(runs, best, budget, last_epoch):
    """The regret at the largest budget per instance: the instances differ in headroom."""
    methods = list(dict.fromkeys(r["method"] for r in runs))
    print(f"\nMedian regret @ {budget}x per instance (accuracy points, %), beside the best epoch-{last_epoch} "
          "val accuracy any method saw there:\n")
    print("| instance | best seen | " + " | ".join(methods) + " |")
    print("| --- | ---: |" + " ---: |" * len(methods))
    for instance in dict.fromkeys(r["instance"] for r in runs):
        cells = [100 * statistics.median(r["regret"][str(budget)] for r in runs
                                         if r["method"] == m and r["instance"] == instance) for m in methods]
        print(f"| {instance} | {100 * best.get(instance, 0.0):.2f} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


# ----------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", default=INSTANCES, help=f"comma-separated OpenML task ids [{INSTANCES}]")
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per instance and method [10]")
    ap.add_argument("--budget", type=int, default=100,
                    help="trial-epochs per run, in full trainings (x 52); also sweep-random's number of samples; "
                         "the sweep methods with a schedule sample budget x 52 / EPOCHS_PER_SAMPLE [100]")
    ap.add_argument("--concurrency", type=int, default=4,
                    help="trials at a time: sweep's agents, Ray's max_concurrent_trials, Optuna's n_jobs [4]")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help=f"comma-separated, among {', '.join(METHODS)} [all]")
    ap.add_argument("--quick", action="store_true", help="the first instance, 2 seeds, budget 10: a check in minutes")
    ap.add_argument("--out", type=Path, help="folder for summary.json and runs/ [/tmp/sweep-bench-search-DATE]")
    ap.add_argument("--data", type=Path, default=DATA, help=f"the yahpo-lcbench folder [{DATA}]")
    ap.add_argument("--sweep", type=Path, default=ROOT / "target" / "release" / "sweep", help="the sweep binary")
    ap.add_argument("--keep", action="store_true", help="keep each sweep run's folder (state, results, logs)")
    ap.add_argument("--ledger", type=Path, help="the file each finished run is appended to, compactly [OUT/ledger.jsonl]")
    ap.add_argument("--resume", action="store_true",
                    help="reuse the runs already in the ledger or OUT/runs (same budget and concurrency) and run only "
                         "the others, e.g. after an interruption or to add seeds")
    args = ap.parse_args()
    args.instances = [i.strip() for i in args.instances.split(",") if i.strip()]
    args.kept = 0
    if args.quick:
        args.instances, args.seeds, args.budget = args.instances[:1], 2, 10
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise SystemExit(f"compare: --methods: expected some of {', '.join(METHODS)}, got {args.methods}")
    if any(m in SWEEP_SCHEDULES for m in methods) and not args.sweep.exists():
        raise SystemExit(f"compare: {args.sweep} is missing; run `cargo build --release -p sweep-cli` first")
    if not (args.data / "model.onnx").exists():
        raise SystemExit(f"compare: --data {args.data}: expected the yahpo-lcbench folder (model.onnx, config_space.json)")
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    out = args.out or Path(f"/tmp/sweep-bench-search-{time.strftime('%Y%m%d-%H%M%S')}")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    ledger = args.ledger or out / "ledger.jsonl"
    kept_runs = read_ledger(ledger) if args.resume else {}

    py = peer_venv.ensure_peer_venv(PEER_VENV, PEER_PACKAGES, "yahpo_gym, optuna, ray.tune, pyarrow.parquet")
    versions = json.loads(subprocess.run([py, HERE / "peers.py", "--versions"], capture_output=True, text=True,
                                         check=True).stdout)
    if any(m in SWEEP_SCHEDULES for m in methods):
        versions["sweep"] = subprocess.run([args.sweep, "--version"], capture_output=True, text=True,
                                           check=True).stdout.split()[-1] + f" ({args.sweep})"
    work = Path(tempfile.mkdtemp(prefix="search-surrogate-"))
    server, sock = start_surrogate(py, args.data, work)
    load_before, t0 = os.getloadavg(), time.perf_counter()
    runs = []
    try:
        with Surrogate(sock) as s:
            bench = s.describe()
        args.epochs = bench["epochs"]
        unknown = [i for i in args.instances if i not in bench["instances"]]
        if unknown:
            raise SystemExit(f"compare: --instances: {', '.join(unknown)} not among LCBench's tasks "
                             f"({', '.join(bench['instances'])})")
        # Seed by seed, so an interrupted benchmark has every instance for the seeds it finished.
        pairs = [(i, s) for s in range(args.seeds) for i in args.instances]
        for method in methods:
            todo = []
            for p in pairs:
                path = run_path(out, method, *p)
                if (method, *p) in kept_runs:
                    runs.append(earlier_run(kept_runs[(method, *p)], f"{ledger.name}: {path.stem}", args))
                elif args.resume and path.exists():
                    run = json.loads(path.read_text())
                    runs.append(earlier_run(record(ledger, run, args.epochs), path.name, args))
                else:
                    todo.append(p)
            args.kept += len(pairs) - len(todo)
            if not todo:
                continue
            if method in SWEEP_SCHEDULES:
                for instance, seed in todo:
                    run = run_sweep(method, instance, seed, bench, sock, args, py)
                    run_path(out, method, instance, seed).write_text(json.dumps(run))
                    progress(method, instance, seed, run["wall_s"], len(run["stream"]))
                    runs.append(record(ledger, run, args.epochs))
            else:
                runs += run_peer(method, todo, sock, args, py, out, ledger)
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)
    wall, load_after = time.perf_counter() - t0, os.getloadavg()

    budgets = sorted({b for b in REPORT_BUDGETS if b <= args.budget} | {args.budget})
    best, table = summarize(runs, budgets, args.epochs)
    print_table(table, budgets, args, versions, load_before, load_after, started, wall)
    print_per_instance(runs, best, budgets[-1], args.epochs)
    summary = {"started_utc": started, "wall_s": wall, "cpus": os.cpu_count(), "load_before": load_before,
               "load_after": load_after, "versions": versions, "instances": args.instances, "seeds": args.seeds,
               "budget": args.budget, "epochs": args.epochs, "concurrency": args.concurrency, "methods": methods,
               "best_per_instance": best, "table": table,
               "regret_per_run": [{k: r[k] for k in ("method", "instance", "seed", "wall_s", "regret")} for r in runs]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\ncompare: every run's epoch stream in {out / 'runs'} (compactly in {ledger}), the summary in "
          f"{out / 'summary.json'}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
